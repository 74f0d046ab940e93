"""Instances -> stacks: what the view scrolls through.

A stack is one Series Instance UID's single-frame images in anatomical order, or one multi-frame
file's frames in stored order (issue 2 section 3). The order along the slice normal follows
PS3.3 C.7.6.2.1.1: the normal is the cross product of the row and column direction cosines of
Image Orientation (Patient), and a slice's place along it is the dot product of that normal with
its Image Position (Patient). When a series lacks that geometry (or mixes orientations, as a
three-plane localizer does) the order falls back to Instance Number (PS3.3 C.7.6.1), then path.
"""

from __future__ import annotations

import enum
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
        if object_kind(inst) is not ObjectKind.IMAGE:
            continue  # a report, a PDF, a presentation state...: see route()
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


# -- routing every object of a study, not only its images ------------------------------------


class ObjectKind(enum.StrEnum):
    """What a composite object is for, by its SOP Class (PS3.4 Annex B, PS3.6 Annex A):
    which viewer takes it."""

    IMAGE = "image"
    STRUCTURED_REPORT = "structured report"
    PDF = "encapsulated PDF"
    PRESENTATION_STATE = "presentation state"
    KEY_OBJECTS = "key object selection"
    WAVEFORM = "waveform"
    OTHER = "other"


#: SOP Class UID roots and exact UIDs, most specific first (PS3.6 Annex A).
_KEY_OBJECT_SELECTION = "1.2.840.10008.5.1.4.1.1.88.59"
_ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
_SR_ROOT = "1.2.840.10008.5.1.4.1.1.88."
_PRESENTATION_STATE_ROOT = "1.2.840.10008.5.1.4.1.1.11."
_WAVEFORM_ROOT = "1.2.840.10008.5.1.4.1.1.9."


def object_kind(instance: model.Instance) -> ObjectKind:
    """The kind of ``instance``: its SOP Class first; an unknown class with pixels is an image
    (a private or future image storage class is still shown)."""
    uid = instance.sop_class_uid
    if uid == _KEY_OBJECT_SELECTION:
        return ObjectKind.KEY_OBJECTS
    if uid == _ENCAPSULATED_PDF:
        return ObjectKind.PDF
    if uid.startswith(_SR_ROOT):
        return ObjectKind.STRUCTURED_REPORT
    if uid.startswith(_PRESENTATION_STATE_ROOT):
        return ObjectKind.PRESENTATION_STATE
    if uid.startswith(_WAVEFORM_ROOT):
        return ObjectKind.WAVEFORM
    if instance.rows > 0 and instance.columns > 0:
        return ObjectKind.IMAGE
    return ObjectKind.OTHER


@dataclass(frozen=True, slots=True)
class Document:
    """A non-image object of a series (a report, a PDF, a presentation state, key images, a
    waveform): listed beside the stacks, for the viewer of its kind."""

    kind: ObjectKind
    instance: model.Instance
    series_instance_uid: str
    modality: str = ""
    series_number: int | None = None
    series_description: str = ""


@dataclass(slots=True)
class Routed:
    """Every object of some instances, each where it belongs: image stacks for the view, the
    other objects as documents by kind. Nothing is dropped."""

    stacks: list[Stack] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)

    def of_kind(self, kind: ObjectKind) -> list[Document]:
        return [d for d in self.documents if d.kind is kind]


def route(instances: Iterable[model.Instance], *, series: Iterable[model.Series] = ()) -> Routed:
    """Images into stacks (:func:`build_stacks`), every other object into a document of its
    kind, in series-number order, then Instance Number."""
    info = _series_lookup(series)
    images: list[model.Instance] = []
    documents: list[Document] = []
    for inst in instances:
        kind = object_kind(inst)
        if kind is ObjectKind.IMAGE:
            images.append(inst)
            continue
        meta = info.get(inst.series_instance_uid)
        documents.append(
            Document(
                kind,
                inst,
                inst.series_instance_uid,
                meta.modality if meta else "",
                meta.series_number if meta else None,
                meta.series_description if meta else "",
            )
        )
    documents.sort(
        key=lambda d: (
            d.series_number is None,
            d.series_number or 0,
            *_fallback_key(d.instance),
        )
    )
    return Routed([s for s in build_stacks(images, series=info.values()) if s.frames], documents)
