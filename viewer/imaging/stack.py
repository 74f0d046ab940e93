"""Instances -> stacks: what the view scrolls through.

A stack is one Series Instance UID's single-frame images in anatomical order, or one multi-frame
file's frames in stored order (issue 2 section 3). The order along the slice normal follows
PS3.3 C.7.6.2.1.1: the normal is the cross product of the row and column direction cosines of
Image Orientation (Patient), and a slice's place along it is the dot product of that normal with
its Image Position (Patient). When a series lacks that geometry (or mixes orientations, as a
three-plane localizer does) the order falls back to Instance Number (PS3.3 C.7.6.1), then path.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from viewer import model

#: Direction cosines that differ by less than this are taken as the same orientation.
ORIENTATION_TOLERANCE = 1e-4
#: Slices closer than this (mm) along the normal are taken as the same position.
POSITION_TOLERANCE = 0.01


@dataclass(frozen=True, slots=True)
class FrameRef:
    """One displayable frame: ``frame_index`` counts from 0 inside the file at ``path``."""

    path: Path
    frame_index: int
    instance: model.Instance


@dataclass(slots=True)
class Stack:
    """Frames the view shows one after the other, in view order."""

    key: str
    series_instance_uid: str
    modality: str = ""
    series_number: int | None = None
    series_description: str = ""
    frames: list[FrameRef] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frames)


def slice_normal(
    orientation: tuple[float, float, float, float, float, float],
) -> tuple[float, float, float] | None:
    """The unit normal of an image plane (row cosines x column cosines), None if degenerate."""
    rx, ry, rz, cx, cy, cz = orientation
    nx, ny, nz = ry * cz - rz * cy, rz * cx - rx * cz, rx * cy - ry * cx
    norm = math.sqrt(nx * nx + ny * ny + nz * nz)
    if not math.isfinite(norm) or norm < 1e-6:
        return None
    return nx / norm, ny / norm, nz / norm


def _same_orientation(
    a: tuple[float, float, float, float, float, float],
    b: tuple[float, float, float, float, float, float],
) -> bool:
    return all(abs(x - y) <= ORIENTATION_TOLERANCE for x, y in zip(a, b, strict=True))


def _fallback_key(instance: model.Instance) -> tuple[int, int, str]:
    number = instance.instance_number
    return (0 if number is not None else 1, number if number is not None else 0, str(instance.path))


def sort_instances(instances: Sequence[model.Instance]) -> list[model.Instance]:
    """Single-frame instances of one series in view order (see the module docstring).

    A series that holds the same set of positions several times over (a dynamic series,
    fMRI, multi-echo) is shown volume by volume: the j-th instance at each position (by
    Instance Number) belongs to volume j, and each volume runs along the normal.
    """
    items = list(instances)
    first = items[0].image_orientation if items else None
    normal = slice_normal(first) if first is not None else None
    geometric = normal is not None and all(
        inst.image_position is not None
        and inst.image_orientation is not None
        and _same_orientation(inst.image_orientation, first)  # type: ignore[arg-type]
        for inst in items
    )
    if not geometric or normal is None:
        return sorted(items, key=_fallback_key)

    def distance(inst: model.Instance) -> float:
        x, y, z = inst.image_position  # type: ignore[misc]
        return normal[0] * x + normal[1] * y + normal[2] * z

    keyed = sorted(((distance(i), _fallback_key(i), i) for i in items), key=lambda t: t[:2])
    # Runs of (nearly) equal distance are one position each.
    positions: list[list[model.Instance]] = []
    last: float | None = None
    for dist, _, inst in keyed:
        if last is None or dist - last > POSITION_TOLERANCE:
            positions.append([])
        positions[-1].append(inst)
        last = dist
    repeats = {len(p) for p in positions}
    if len(repeats) != 1 or len(positions) == 1 or repeats == {1}:
        return [inst for _, _, inst in keyed]
    (count,) = repeats
    return [position[j] for j in range(count) for position in positions]


def _series_lookup(series: Iterable[model.Series]) -> dict[str, model.Series]:
    return {s.series_instance_uid: s for s in series}


def build_stacks(
    instances: Iterable[model.Instance], *, series: Iterable[model.Series] = ()
) -> list[Stack]:
    """Group instances into stacks: one per Series Instance UID, plus one per multi-frame file.

    ``series`` (for example ``ScanResult.series()``) supplies modality, number and description,
    which :class:`model.Instance` does not carry. Stacks come ordered by series number (series
    without one last), then by first appearance; a series' multi-frame files follow its
    single-frame stack, in Instance Number order.
    """
    info = _series_lookup(series)
    groups: dict[str, list[model.Instance]] = {}
    for inst in instances:
        if inst.rows <= 0 or inst.columns <= 0:
            continue  # no image (a report, a plan): nothing to show in a stack
        # A file without a Series Instance UID (ACR-NEMA, some test files) is a series of
        # its own: nothing says it belongs with any other.
        key = inst.series_instance_uid or f"no-series:{inst.path}"
        groups.setdefault(key, []).append(inst)

    ordered: list[tuple[tuple[int, int, int], Stack]] = []
    for position, (group, members) in enumerate(groups.items()):
        uid = members[0].series_instance_uid
        meta = info.get(uid) if uid else None
        number = meta.series_number if meta is not None else None
        rank = (0 if number is not None else 1, number if number is not None else 0, position)

        def new_stack(key: str, uid: str = uid, meta: model.Series | None = meta) -> Stack:
            return Stack(
                key=key,
                series_instance_uid=uid,
                modality=meta.modality if meta else "",
                series_number=meta.series_number if meta else None,
                series_description=meta.series_description if meta else "",
            )

        singles = [m for m in members if m.number_of_frames <= 1]
        multis = sorted((m for m in members if m.number_of_frames > 1), key=_fallback_key)
        if singles:
            stack = new_stack(group)
            stack.frames = [FrameRef(inst.path, 0, inst) for inst in sort_instances(singles)]
            ordered.append((rank, stack))
        for inst in multis:
            stack = new_stack(f"{group}/{inst.sop_instance_uid or inst.path}")
            stack.frames = [FrameRef(inst.path, k, inst) for k in range(inst.number_of_frames)]
            ordered.append((rank, stack))
    ordered.sort(key=lambda item: item[0])
    return [stack for _, stack in ordered]
