"""Geometry that links viewports: slice planes, the nearest slice, reference lines (no Qt).

A frame's plane in patient coordinates (PS3.3 C.7.6.2.1.1): Image Position (Patient) is the
centre of the first transmitted pixel, Image Orientation (Patient) the row and column direction
cosines, Pixel Spacing the distance between the centres of adjacent rows and of adjacent
columns. For a pixel at row ``r`` and column ``c``::

    P = S + c * spacing_col * row_cosines + r * spacing_row * column_cosines

(the row cosines point along a row, that is to increasing column). Enhanced multi-frame
objects carry the same in their functional groups (C.7.6.16.2.1 Pixel Measures, C.7.6.16.2.3
Plane Position, C.7.6.16.2.4 Plane Orientation), per frame or shared.

Two viewports are linked by position: the other shows its slice nearest, along its own normal,
to the point where this one's slice is (through the plane's centre), plus an offset in mm the
user set when the two series do not share a Frame of Reference. A reference line is where one
frame's plane cuts another's image, drawn on the other when the two are far from parallel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from viewer.imaging.annotations import finite_floats, functional_attr
from viewer.imaging.stack import Stack

Vector = tuple[float, float, float]

#: Planes closer to parallel than this get no reference line (it would be everywhere or nowhere).
PARALLEL_DEGREES = 10.0


@dataclass(frozen=True, slots=True)
class Plane:
    """One frame's plane: where its first pixel is, its row and column directions (unit
    vectors), the spacing between rows and between columns (mm) and its size in pixels."""

    origin: Vector
    row_direction: Vector
    column_direction: Vector
    spacing: tuple[float, float]  # (between rows, between columns)
    rows: int
    columns: int
    frame_of_reference: str = ""

    @property
    def normal(self) -> Vector:
        r, c = np.asarray(self.row_direction), np.asarray(self.column_direction)
        n = np.cross(r, c)
        length = float(np.linalg.norm(n))
        return tuple(float(v) for v in n / length) if length > 0 else (0.0, 0.0, 0.0)  # type: ignore[return-value]

    @property
    def centre(self) -> Vector:
        """The patient position of the image's centre (mm)."""
        return self.to_patient((self.rows - 1) / 2, (self.columns - 1) / 2)

    def to_patient(self, row: float, column: float) -> Vector:
        """The patient position (mm) of the image point (row, column)."""
        s = np.asarray(self.origin, float)
        p = (
            s
            + column * self.spacing[1] * np.asarray(self.row_direction, float)
            + row * self.spacing[0] * np.asarray(self.column_direction, float)
        )
        return (float(p[0]), float(p[1]), float(p[2]))

    def to_image(self, point: Sequence[float]) -> tuple[float, float]:
        """(row, column) of the projection of a patient position onto this plane."""
        d = np.asarray(point, float) - np.asarray(self.origin, float)
        column = float(d @ np.asarray(self.row_direction, float)) / self.spacing[1]
        row = float(d @ np.asarray(self.column_direction, float)) / self.spacing[0]
        return row, column

    def distance(self, point: Sequence[float]) -> float:
        """Signed distance (mm) of a patient position from this plane, along its normal."""
        d = np.asarray(point, float) - np.asarray(self.origin, float)
        return float(d @ np.asarray(self.normal, float))


def plane_of(ds: Any, frame_index: int = 0) -> Plane | None:
    """The plane of frame ``frame_index`` of a data set, or None when it lacks geometry."""
    if ds is None:
        return None
    position = finite_floats(
        functional_attr(ds, "ImagePositionPatient", frame_index, "PlanePositionSequence"), 3
    )
    orientation = finite_floats(
        functional_attr(ds, "ImageOrientationPatient", frame_index, "PlaneOrientationSequence"),
        6,
    )
    spacing = finite_floats(
        functional_attr(ds, "PixelSpacing", frame_index, "PixelMeasuresSequence"), 2
    )
    try:
        rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    except (TypeError, ValueError):
        return None
    if position is None or orientation is None or spacing is None or rows < 1 or columns < 1:
        return None
    if spacing[0] <= 0 or spacing[1] <= 0:
        return None
    row_dir = np.asarray(orientation[:3])
    col_dir = np.asarray(orientation[3:])
    if np.linalg.norm(row_dir) < 1e-6 or np.linalg.norm(col_dir) < 1e-6:
        return None
    row_dir = row_dir / np.linalg.norm(row_dir)
    col_dir = col_dir / np.linalg.norm(col_dir)
    if np.linalg.norm(np.cross(row_dir, col_dir)) < 1e-3:
        return None
    return Plane(
        origin=(position[0], position[1], position[2]),
        row_direction=(float(row_dir[0]), float(row_dir[1]), float(row_dir[2])),
        column_direction=(float(col_dir[0]), float(col_dir[1]), float(col_dir[2])),
        spacing=(spacing[0], spacing[1]),
        rows=rows,
        columns=columns,
        frame_of_reference=str(ds.get("FrameOfReferenceUID", "") or ""),
    )


def stack_positions(stack: Stack) -> list[Vector | None]:
    """Each frame's Image Position (Patient) as the headers listed them (None when unknown:
    frames of a multi-frame file carry theirs in the data set, see :func:`plane_of`)."""
    out: list[Vector | None] = []
    for ref in stack.frames:
        position = ref.instance.image_position
        single = ref.instance.number_of_frames <= 1
        out.append(tuple(position) if position is not None and single else None)  # type: ignore[arg-type]
    return out


def stack_normal(stack: Stack) -> Vector | None:
    """The slice normal of a stack whose frames share one orientation (from the headers)."""
    for ref in stack.frames:
        orientation = ref.instance.image_orientation
        if orientation is not None:
            r = np.asarray(orientation[:3], float)
            c = np.asarray(orientation[3:], float)
            n = np.cross(r, c)
            length = float(np.linalg.norm(n))
            if length > 1e-6:
                return (float(n[0] / length), float(n[1] / length), float(n[2] / length))
    return None


def nearest_frame(
    positions: Sequence[Vector | None],
    normal: Vector,
    point: Sequence[float],
    *,
    offset_mm: float = 0.0,
) -> int | None:
    """The frame whose slice lies nearest (along ``normal``) to ``point`` moved by
    ``offset_mm`` along the normal; None when no frame has a position."""
    n = np.asarray(normal, float)
    target = float(np.asarray(point, float) @ n) + offset_mm
    known = [(index, p) for index, p in enumerate(positions) if p is not None]
    if not known:
        return None
    along = np.asarray([p for _, p in known], float) @ n
    gaps = np.abs(along - target)
    return known[int(np.argmin(gaps))][0]  # the first of equal gaps


def slice_offset(source: Plane, target_position: Sequence[float], normal: Vector) -> float:
    """The offset (mm along ``normal``) that makes the slice at ``target_position`` the one
    linked to ``source``'s slice: what the user sets once for two frames of reference."""
    n = np.asarray(normal, float)
    return float(np.asarray(target_position, float) @ n - np.asarray(source.centre, float) @ n)


def angle_between(a: Plane, b: Plane) -> float:
    """The angle between two planes in degrees (0: parallel, 90: orthogonal)."""
    cosine = abs(float(np.asarray(a.normal) @ np.asarray(b.normal)))
    return math.degrees(math.acos(min(1.0, cosine)))


def reference_line(
    source: Plane, target: Plane
) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """Where ``source``'s plane cuts ``target``'s image: two (row, column) points on the
    image's border, or None (planes near parallel, or the line misses the image)."""
    if angle_between(source, target) < PARALLEL_DEGREES:
        return None
    # Points of the target image satisfy (P - S_source) . n_source = 0. Along the target's
    # rows and columns that is an affine function of (row, column): a*row + b*column + k = 0.
    n = np.asarray(source.normal, float)
    k = float((np.asarray(target.origin, float) - np.asarray(source.origin, float)) @ n)
    a = target.spacing[0] * float(np.asarray(target.column_direction, float) @ n)
    b = target.spacing[1] * float(np.asarray(target.row_direction, float) @ n)
    top, left = -0.5, -0.5
    bottom, right = target.rows - 0.5, target.columns - 0.5
    points: list[tuple[float, float]] = []
    if abs(b) > 1e-12:  # crossings of the top and bottom edges
        for row in (top, bottom):
            column = -(a * row + k) / b
            if left - 1e-9 <= column <= right + 1e-9:
                points.append((row, column))
    if abs(a) > 1e-12:  # crossings of the left and right edges
        for column in (left, right):
            row = -(b * column + k) / a
            if top - 1e-9 <= row <= bottom + 1e-9:
                points.append((row, column))
    unique: list[tuple[float, float]] = []
    for p in points:
        if all(abs(p[0] - q[0]) > 1e-6 or abs(p[1] - q[1]) > 1e-6 for q in unique):
            unique.append(p)
    if len(unique) < 2:
        return None
    # the two points farthest apart (a line through a corner may be found twice)
    pairs = [(p, q) for i, p in enumerate(unique) for q in unique[i + 1 :]]
    p, q = max(pairs, key=lambda pq: (pq[0][0] - pq[1][0]) ** 2 + (pq[0][1] - pq[1][1]) ** 2)
    return p, q
