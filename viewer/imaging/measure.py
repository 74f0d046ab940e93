"""Measurements on one frame, without Qt: calibration, shapes, their values, storage and CSV.

Coordinates. Shapes hold points in image coordinates ``(row, column)`` as floats, pixel centres
at integers: pixel ``(r, c)`` covers ``r - 0.5 .. r + 0.5`` and ``c - 0.5 .. c + 0.5``, which is
numpy's indexing of the frame. :class:`viewer.imaging.viewport.Viewport` speaks ``(x, y)`` with
centres at +0.5; :func:`from_view` and :func:`to_view` convert, so a tool never swaps the axes or
shifts by half a pixel on its own. Shapes are frozen dataclasses: editing one (:func:`moved`,
:func:`with_handle`) makes a new one.

Calibration (:class:`Calibration`), in this order:

- Pixel Spacing (0028,0030; in the Pixel Measures functional group of an enhanced multi-frame
  image, PS3.3 C.7.6.16.2.1): millimetres in the patient, ``"mm"``. In a projection radiograph
  whose Pixel Spacing merely repeats Imager Pixel Spacing with no Pixel Spacing Calibration Type
  (0028,0A02), nothing was corrected for magnification (PS3.3 10.7.1.1): ``"mm (at detector)"``.
- Imager Pixel Spacing alone (0018,1164, PS3.3 C.8.11.1.1.1): millimetres at the detector,
  ``"mm (at detector)"``, the wording of the view's scale bar. Not corrected by Estimated
  Radiographic Magnification Factor (0018,1114): that factor holds for one plane through the
  patient (an estimate by the modality), and an object nearer the detector or the tube is
  magnified differently, so a corrected number would look exact and not be; the scale bar is
  not corrected either, and a measurement must agree with the ruler beside it. The factor is
  kept in :attr:`Calibration.magnification` for a caller that wants to offer it.
- Sequence of Ultrasound Regions (0018,6011, PS3.3 C.8.5.5.1) whose Physical Units X and Y are
  both cm (3): Physical Delta X/Y (cm per pixel) as mm, ``"mm (ultrasound region)"``, only for a
  shape that lies wholly inside one such region (Region Location Min/Max X0 Y0 X1 Y1). A shape
  across two regions, or outside every calibrated one, is measured in pixels.
- Nothing: ``"px"``.

Row and column spacing may differ: lengths, angles, perpendiculars and areas are computed in
millimetres along each axis (Pixel Spacing is row spacing first, PS3.3 10.7.1.3).

Values. An ROI's statistics cover the pixels of the frame whose centres lie inside the shape:
rectangle and ellipse edges included; a polygon by the even-odd rule, a centre exactly on one of
its sides decided as a ray cast to the left decides it (inside on a right-hand side, outside on a
left-hand one; a top side's row in, a bottom side's out). They are computed on
modality values (PS3.3 C.11.1: rescale or Modality LUT Sequence, HU for CT) in the unit the
readout shows (``display.units_label``). The SD is the sample standard deviation (n - 1): an ROI
samples a tissue and the SD estimates that tissue's spread, as ImageJ and most workstations
report it; with fewer than two pixels it is undefined (None). Colour frames give statistics per
channel (R, G, B of the samples as decoded; PALETTE COLOR through its palette): a luminance
would mix channels with weights that mean nothing for a colour-flow map, and the three channels
keep everything the pixels hold. The area is the shape's own area (mm², else px²), not the
pixel count, which is reported beside it.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from viewer.imaging.annotations import functional_attr
from viewer.imaging.display import (
    ModalityTransform,
    modality_transform,
    palette_to_rgb,
    units_label,
)
from viewer.text import escape

RowCol = tuple[float, float]
"""An image point: (row, column), pixel centres at integers."""

FORMAT_VERSION = 1
"""The version of :func:`to_dict`'s form; :func:`from_dict` refuses any other."""

MAX_VERTICES = 4096
"""The most vertices a freehand ROI may have (a tool should thin a mouse trail to this)."""

MAX_COORDINATE = 1_000_000.0
"""The largest coordinate a point may have, either sign: frames have at most 65,535 rows and
columns (US), and the bound keeps every product of coordinates exact and every cast in range."""

# -- coordinates -------------------------------------------------------------------------------


def from_view(point: tuple[float, float]) -> RowCol:
    """A :class:`~viewer.imaging.viewport.Viewport` image point (x, y; centres at +0.5) as
    (row, column) with centres at integers."""
    return (float(point[1]) - 0.5, float(point[0]) - 0.5)


def to_view(point: RowCol) -> tuple[float, float]:
    """The inverse of :func:`from_view`."""
    return (point[1] + 0.5, point[0] + 0.5)


# -- calibration -------------------------------------------------------------------------------

MM = "mm"
AT_DETECTOR = "mm (at detector)"
US_REGION = "mm (ultrasound region)"
PX = "px"


@dataclass(frozen=True)
class Scale:
    """Millimetres per pixel step along rows (vertical) and columns, and what they are."""

    row_mm: float
    column_mm: float
    label: str
    """``"mm"``, ``"mm (at detector)"``, ``"mm (ultrasound region)"`` or ``"px"``."""

    @property
    def unit(self) -> str:
        """The unit of lengths: ``"mm"`` or ``"px"``."""
        return PX if self.label == PX else MM

    @property
    def area_unit(self) -> str:
        return f"{self.unit}²"

    def physical(self, delta: Sequence[float] | NDArray[np.float64]) -> NDArray[np.float64]:
        """A difference of image points (rows, columns) in calibrated units (mm, or px)."""
        return np.array((float(delta[0]) * self.row_mm, float(delta[1]) * self.column_mm))

    def length(self, p0: RowCol, p1: RowCol) -> float:
        return math.hypot((p1[0] - p0[0]) * self.row_mm, (p1[1] - p0[1]) * self.column_mm)


PIXELS = Scale(1.0, 1.0, PX)


@dataclass(frozen=True)
class UltrasoundRegion:
    """One region of PS3.3 C.8.5.5.1 calibrated in cm along both axes, in pixel indices
    (inclusive, as Region Location Min/Max X0, Y0, X1, Y1 give them)."""

    min_row: int
    max_row: int
    min_column: int
    max_column: int
    row_mm: float
    column_mm: float

    def contains(self, point: RowCol) -> bool:
        """Whether a point lies on a pixel of the region (its pixels' edges included)."""
        row, column = point
        return (
            self.min_row - 0.5 <= row <= self.max_row + 0.5
            and self.min_column - 0.5 <= column <= self.max_column + 0.5
        )


#: Physical Units X/Y Direction (0018,6024/6026) code for centimetres (PS3.3 C.8.5.5.1.15).
_UNITS_CM = 3


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _spacing_pair(value: Any) -> tuple[float, float] | None:
    """Two positive finite numbers (row spacing, column spacing), else None."""
    if value is None or isinstance(value, str | bytes):
        return None
    try:
        numbers = [_number(v) for v in value]
    except TypeError:
        return None
    if len(numbers) != 2 or any(n is None or n <= 0 for n in numbers):
        return None
    row, column = numbers
    assert row is not None and column is not None
    return row, column


def _ultrasound_regions(ds: Dataset) -> tuple[UltrasoundRegion, ...]:
    regions = []
    for item in ds.get("SequenceOfUltrasoundRegions") or []:
        try:
            units = (int(item.PhysicalUnitsXDirection), int(item.PhysicalUnitsYDirection))
            bounds = [
                int(item.RegionLocationMinX0),
                int(item.RegionLocationMaxX1),
                int(item.RegionLocationMinY0),
                int(item.RegionLocationMaxY1),
            ]
        except (AttributeError, TypeError, ValueError):
            continue
        dx, dy = _number(item.get("PhysicalDeltaX")), _number(item.get("PhysicalDeltaY"))
        if units != (_UNITS_CM, _UNITS_CM) or not dx or not dy:
            continue
        x0, x1, y0, y1 = bounds
        if x1 < x0 or y1 < y0:
            continue
        # some scanners write a negative delta for a flipped axis: the spacing is its size
        regions.append(UltrasoundRegion(y0, y1, x0, x1, abs(dy) * 10.0, abs(dx) * 10.0))
    return tuple(regions)


@dataclass(frozen=True)
class Calibration:
    """How lengths on one frame become millimetres (see the module docstring)."""

    scale: Scale = PIXELS
    """The scale of every shape; for ultrasound regions, of a shape outside them (pixels)."""
    regions: tuple[UltrasoundRegion, ...] = ()
    magnification: float | None = None
    """Estimated Radiographic Magnification Factor (0018,1114), recorded, never applied."""

    @classmethod
    def from_dataset(cls, ds: Dataset | None, frame_index: int = 0) -> Calibration:
        if ds is None:
            return cls()
        magnification = _number(ds.get("EstimatedRadiographicMagnificationFactor"))
        if magnification is not None and magnification <= 0:
            magnification = None
        imager = _spacing_pair(ds.get("ImagerPixelSpacing"))
        spacing = _spacing_pair(
            functional_attr(ds, "PixelSpacing", frame_index, "PixelMeasuresSequence")
        )
        if spacing is not None:
            label = MM
            uncalibrated_copy = (
                imager is not None
                and not str(ds.get("PixelSpacingCalibrationType", "") or "").strip()
                and all(
                    math.isclose(a, b, rel_tol=1e-6) for a, b in zip(spacing, imager, strict=True)
                )
            )
            if uncalibrated_copy:
                label = AT_DETECTOR
            return cls(Scale(spacing[0], spacing[1], label), magnification=magnification)
        if imager is not None:
            return cls(Scale(imager[0], imager[1], AT_DETECTOR), magnification=magnification)
        return cls(PIXELS, _ultrasound_regions(ds), magnification)

    def scale_for(self, points: Iterable[RowCol]) -> Scale:
        """The scale of a shape with these points (for a region: all inside the same one)."""
        if not self.regions:
            return self.scale
        points = list(points)
        for region in self.regions:
            if points and all(region.contains(p) for p in points):
                return Scale(region.row_mm, region.column_mm, US_REGION)
        return PIXELS

    def scale_of(self, shape: Shape) -> Scale:
        return self.scale_for(handles(shape))


# -- shapes ------------------------------------------------------------------------------------


def _point(value: Any, what: str) -> RowCol:
    """A (row, column) pair of finite numbers, as floats; ValueError naming ``what``."""
    if isinstance(value, str | bytes | Mapping):
        raise ValueError(f"{what} is not a (row, column) pair")
    try:
        items = list(value)
    except TypeError:
        raise ValueError(f"{what} is not a (row, column) pair") from None
    if len(items) != 2:
        raise ValueError(f"{what} has {len(items)} coordinates, not 2")
    out = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | float | np.integer | np.floating):
            raise ValueError(f"{what} holds {type(item).__name__}, not a number")
        number = float(item)
        if not math.isfinite(number):
            raise ValueError(f"{what} holds {number}, not a finite number")
        if abs(number) > MAX_COORDINATE:
            raise ValueError(f"{what} holds {number:g}, beyond ±{MAX_COORDINATE:g}")
        out.append(number)
    return out[0], out[1]


class _TwoPoints:
    """Shared checks of the shapes given by two points."""

    p0: RowCol
    p1: RowCol

    def __post_init__(self) -> None:
        object.__setattr__(self, "p0", _point(self.p0, "p0"))
        object.__setattr__(self, "p1", _point(self.p1, "p1"))


@dataclass(frozen=True)
class Distance(_TwoPoints):
    """A straight line from ``p0`` to ``p1``."""

    p0: RowCol
    p1: RowCol
    kind: ClassVar[str] = "distance"


@dataclass(frozen=True)
class Angle:
    """The angle at ``vertex`` between the arms to ``a`` and to ``b`` (0-180 degrees)."""

    a: RowCol
    vertex: RowCol
    b: RowCol
    kind: ClassVar[str] = "angle"

    def __post_init__(self) -> None:
        for name in ("a", "vertex", "b"):
            object.__setattr__(self, name, _point(getattr(self, name), name))


@dataclass(frozen=True)
class RectROI(_TwoPoints):
    """An axis-aligned rectangle with opposite corners ``p0`` and ``p1``."""

    p0: RowCol
    p1: RowCol
    kind: ClassVar[str] = "rectangle"


@dataclass(frozen=True)
class EllipseROI(_TwoPoints):
    """The axis-aligned ellipse inscribed in the rectangle of corners ``p0`` and ``p1``."""

    p0: RowCol
    p1: RowCol
    kind: ClassVar[str] = "ellipse"


@dataclass(frozen=True)
class FreehandROI:
    """A closed polygon through ``vertices`` (3 to :data:`MAX_VERTICES`)."""

    vertices: tuple[RowCol, ...]
    kind: ClassVar[str] = "freehand"

    def __post_init__(self) -> None:
        if isinstance(self.vertices, str | bytes | Mapping):
            raise ValueError("vertices are not a list of points")
        try:
            items = list(self.vertices)
        except TypeError:
            raise ValueError("vertices are not a list of points") from None
        if not 3 <= len(items) <= MAX_VERTICES:
            raise ValueError(f"a freehand ROI needs 3 to {MAX_VERTICES} vertices, not {len(items)}")
        vertices = tuple(_point(v, f"vertex {i}") for i, v in enumerate(items))
        object.__setattr__(self, "vertices", vertices)


@dataclass(frozen=True)
class Bidirectional:
    """RECIST long axis ``p0``-``p1`` and short axis ``q0``-``q1`` across it
    (:func:`bidirectional` builds the short axis perpendicular to the long one)."""

    p0: RowCol
    p1: RowCol
    q0: RowCol
    q1: RowCol
    kind: ClassVar[str] = "bidirectional"

    def __post_init__(self) -> None:
        for name in ("p0", "p1", "q0", "q1"):
            object.__setattr__(self, name, _point(getattr(self, name), name))


Shape = Distance | Angle | RectROI | EllipseROI | FreehandROI | Bidirectional
ROI_KINDS = frozenset({"rectangle", "ellipse", "freehand"})


def points_of(shape: Shape) -> tuple[RowCol, ...]:
    """The points that define a shape, in the order :func:`shape_from_points` takes them."""
    if isinstance(shape, FreehandROI):
        return shape.vertices
    if isinstance(shape, Angle):
        return (shape.a, shape.vertex, shape.b)
    if isinstance(shape, Bidirectional):
        return (shape.p0, shape.p1, shape.q0, shape.q1)
    return (shape.p0, shape.p1)


_KINDS: dict[str, type[Shape]] = {
    cls.kind: cls for cls in (Distance, Angle, RectROI, EllipseROI, FreehandROI, Bidirectional)
}
_POINT_COUNTS = {"distance": 2, "angle": 3, "rectangle": 2, "ellipse": 2, "bidirectional": 4}


def shape_from_points(kind: str, points: Sequence[Any]) -> Shape:
    """A shape of ``kind`` from its points; ValueError for an unknown kind or a wrong count."""
    if kind not in _KINDS:
        raise ValueError(f"unknown kind {escape(kind)!r}")
    if kind == "freehand":
        return FreehandROI(tuple(points))
    if len(points) != _POINT_COUNTS[kind]:
        raise ValueError(f"a {kind} has {_POINT_COUNTS[kind]} points, not {len(points)}")
    return _KINDS[kind](*points)


def _corners(p0: RowCol, p1: RowCol) -> tuple[RowCol, ...]:
    return (p0, (p0[0], p1[1]), p1, (p1[0], p0[1]))


def handles(shape: Shape) -> tuple[RowCol, ...]:
    """The points a user can drag: the defining points; the four corners of a rectangle or
    of an ellipse's bounding box (0 = ``p0``, then clockwise on screen, 2 = ``p1``)."""
    if isinstance(shape, RectROI | EllipseROI):
        return _corners(shape.p0, shape.p1)
    return points_of(shape)


# -- geometry ----------------------------------------------------------------------------------


def length(shape: Distance, scale: Scale = PIXELS) -> float:
    return scale.length(shape.p0, shape.p1)


def angle_degrees(shape: Angle, scale: Scale = PIXELS) -> float | None:
    """The angle at the vertex in degrees (0-180), measured in calibrated units (an image with
    unequal row and column spacing shows angles distorted); None when an arm has no length."""
    u = scale.physical((shape.a[0] - shape.vertex[0], shape.a[1] - shape.vertex[1]))
    v = scale.physical((shape.b[0] - shape.vertex[0], shape.b[1] - shape.vertex[1]))
    if not np.any(u) or not np.any(v):
        return None
    cross = u[0] * v[1] - u[1] * v[0]
    return math.degrees(math.atan2(abs(cross), float(np.dot(u, v))))


def axes(shape: Bidirectional, scale: Scale = PIXELS) -> tuple[float, float]:
    """(long axis, short axis) lengths."""
    return scale.length(shape.p0, shape.p1), scale.length(shape.q0, shape.q1)


def _unit_normal(p0: RowCol, p1: RowCol, scale: Scale) -> tuple[NDArray[np.float64], float]:
    """The unit normal to p0-p1 in calibrated units, turned a quarter clockwise on screen, and
    the segment's calibrated length."""
    d = scale.physical((p1[0] - p0[0], p1[1] - p0[1]))
    size = float(np.hypot(d[0], d[1]))
    if size == 0:
        return np.array((0.0, 1.0)), 0.0
    return np.array((d[1], -d[0])) / size, size


def _from_physical(vector: NDArray[np.float64], scale: Scale) -> NDArray[np.float64]:
    return np.array((vector[0] / scale.row_mm, vector[1] / scale.column_mm))


def bidirectional(
    p0: RowCol, p1: RowCol, short: float, *, scale: Scale = PIXELS, at: float = 0.5
) -> Bidirectional:
    """A long axis p0-p1 with a short axis of ``short`` (in ``scale``'s unit) across it at the
    fraction ``at`` of its length, centred on it and perpendicular in millimetres (not in
    pixels: with unequal spacing the two differ)."""
    p0, p1 = _point(p0, "p0"), _point(p1, "p1")
    normal, _ = _unit_normal(p0, p1, scale)
    cross = np.array(p0) + min(max(at, 0.0), 1.0) * (np.array(p1) - np.array(p0))
    half = _from_physical(normal * (short / 2), scale)
    q0, q1 = cross + half, cross - half
    return Bidirectional(p0, p1, (q0[0], q0[1]), (q1[0], q1[1]))


def _shoelace(vertices: Sequence[RowCol]) -> float:
    pts = np.asarray(vertices, dtype=np.float64)
    rows, cols = pts[:, 0], pts[:, 1]
    return 0.5 * abs(float(np.dot(rows, np.roll(cols, -1)) - np.dot(cols, np.roll(rows, -1))))


def area(shape: RectROI | EllipseROI | FreehandROI, scale: Scale = PIXELS) -> float:
    """The shape's own area in ``scale.area_unit`` (mm², else px²)."""
    if isinstance(shape, FreehandROI):
        pixels = _shoelace(shape.vertices)
    else:
        height, width = abs(shape.p1[0] - shape.p0[0]), abs(shape.p1[1] - shape.p0[1])
        pixels = height * width if isinstance(shape, RectROI) else math.pi * height * width / 4
    return pixels * scale.row_mm * scale.column_mm


# -- masks and statistics ----------------------------------------------------------------------


@dataclass(frozen=True)
class Mask:
    """Pixels of a frame inside a shape: ``inside`` covers rows ``top``.. and columns ``left``..
    (a window of the frame, so a small ROI on a large frame costs a small array)."""

    top: int
    left: int
    inside: NDArray[np.bool_]

    @property
    def count(self) -> int:
        return int(np.count_nonzero(self.inside))

    def window(self, frame: NDArray[Any]) -> NDArray[Any]:
        rows, cols = self.inside.shape
        return frame[self.top : self.top + rows, self.left : self.left + cols]


def _bounds(points: Sequence[RowCol], frame_shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """Rows and columns (inclusive) of the pixel centres in the points' bounding box, within
    the frame; empty (first > last) when none."""
    pts = np.asarray(points, dtype=np.float64)
    top = max(math.ceil(pts[:, 0].min()), 0)
    bottom = min(math.floor(pts[:, 0].max()), frame_shape[0] - 1)
    left = max(math.ceil(pts[:, 1].min()), 0)
    right = min(math.floor(pts[:, 1].max()), frame_shape[1] - 1)
    return top, bottom, left, right


#: Crossings computed at once when a polygon is filled (bounds the memory of a large polygon).
_CROSSINGS_PER_CHUNK = 1 << 20


def _polygon_inside(
    vertices: Sequence[RowCol], top: int, bottom: int, left: int, right: int
) -> NDArray[np.bool_]:
    """Even-odd fill of the pixel centres of rows top..bottom, columns left..right.

    For each edge, the rows whose centre line it crosses (half-open in the row, so a vertex is
    counted once) give a crossing column; a centre is inside when an odd number of crossings lie
    strictly left of it. Crossings are accumulated per row with ``bincount`` and a cumulative
    sum: no loop over pixels or rows, memory bounded by the window and a chunk of crossings.
    """
    rows, cols = bottom - top + 1, right - left + 1
    pts = np.asarray(vertices, dtype=np.float64)
    ya, xa = pts[:, 0], pts[:, 1]
    yb, xb = np.roll(ya, -1), np.roll(xa, -1)
    first = np.maximum(np.ceil(np.minimum(ya, yb)), top).astype(np.int64)
    last = np.minimum(np.ceil(np.maximum(ya, yb)) - 1, bottom).astype(np.int64)
    spans = np.maximum(last - first + 1, 0)
    edges = np.flatnonzero(spans)
    counts = np.zeros(rows * (cols + 1), dtype=np.int64)
    start = 0
    while start < len(edges):
        total = np.cumsum(spans[edges[start:]])
        stop = start + max(1, int(np.searchsorted(total, _CROSSINGS_PER_CHUNK, side="right")))
        chunk = edges[start:stop]
        n = spans[chunk]
        edge = np.repeat(chunk, n)
        offsets = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
        row = first[edge] + offsets
        x = xa[edge] + (row - ya[edge]) * (xb[edge] - xa[edge]) / (yb[edge] - ya[edge])
        column = np.clip(np.floor(x).astype(np.int64) + 1 - left, 0, cols)
        counts += np.bincount((row - top) * (cols + 1) + column, minlength=counts.size)
        start = stop
    crossings = np.cumsum(counts.reshape(rows, cols + 1), axis=1)[:, :cols]
    inside: NDArray[np.bool_] = (crossings & 1).astype(bool)
    return inside


def roi_mask(shape: RectROI | EllipseROI | FreehandROI, frame_shape: tuple[int, int]) -> Mask:
    """The pixels of a frame of ``frame_shape`` (rows, columns) whose centres lie inside."""
    if isinstance(shape, FreehandROI):
        top, bottom, left, right = _bounds(shape.vertices, frame_shape)
    else:
        top, bottom, left, right = _bounds((shape.p0, shape.p1), frame_shape)
    if top > bottom or left > right:
        return Mask(max(top, 0), max(left, 0), np.zeros((0, 0), dtype=bool))
    if isinstance(shape, RectROI):
        inside = np.ones((bottom - top + 1, right - left + 1), dtype=bool)
    elif isinstance(shape, EllipseROI):
        centre_row = (shape.p0[0] + shape.p1[0]) / 2
        centre_col = (shape.p0[1] + shape.p1[1]) / 2
        half_height = abs(shape.p1[0] - shape.p0[0]) / 2
        half_width = abs(shape.p1[1] - shape.p0[1]) / 2
        if half_height == 0 or half_width == 0:
            inside = np.zeros((bottom - top + 1, right - left + 1), dtype=bool)
        else:
            r = (np.arange(top, bottom + 1, dtype=np.float64)[:, None] - centre_row) / half_height
            c = (np.arange(left, right + 1, dtype=np.float64)[None, :] - centre_col) / half_width
            inside = r * r + c * c <= 1.0
    else:
        inside = _polygon_inside(shape.vertices, top, bottom, left, right)
    return Mask(top, left, inside)


@dataclass(frozen=True, eq=False)
class FrameValues:
    """One decoded frame and how to read its values: modality values for grayscale (PS3.3
    C.11.1), the samples of each channel for colour. Values are converted only where an ROI
    asks, never for the whole frame."""

    samples: NDArray[Any]
    """Stored values (rows, columns), or colour samples (rows, columns, 3)."""
    modality: ModalityTransform | None
    """The Modality LUT stage of a grayscale frame; None for colour."""
    unit: str
    """The values' unit, spelled as the readout spells it (``HU``, ``Bq/ml``; empty: none)."""

    @classmethod
    def from_frame(cls, ds: Dataset, frame_index: int, pixels: NDArray[Any]) -> FrameValues:
        """``pixels`` as ``decode.decode_frame`` gives them (RGB for colour)."""
        photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
        if pixels.ndim == 3:
            return cls(pixels, None, "")
        if photometric == "PALETTE COLOR":
            return cls(palette_to_rgb(pixels, ds), None, "")
        if pixels.ndim != 2:
            raise ValueError(f"a monochrome frame must be 2-D, not of shape {pixels.shape}")
        transform = modality_transform(ds, frame_index)
        return cls(pixels, transform, units_label(transform.rescale_type, ds))

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.samples.shape[0]), int(self.samples.shape[1])

    @property
    def channels(self) -> tuple[str, ...]:
        return ("",) if self.modality is not None else ("R", "G", "B")[: self.samples.shape[2]]

    def values(self, mask: Mask) -> NDArray[np.float64]:
        """The values inside ``mask``: shape (n,) for grayscale, (n, channels) for colour."""
        selected = mask.window(self.samples)[mask.inside]
        if self.modality is not None:
            return self.modality.apply(selected)
        return selected.astype(np.float64)


@dataclass(frozen=True)
class ChannelStats:
    """Statistics of one channel ("" for grayscale) over an ROI's pixels."""

    channel: str
    mean: float
    sd: float | None
    """Sample standard deviation (n - 1); None below two pixels."""
    minimum: float
    maximum: float


@dataclass(frozen=True)
class RoiStats:
    count: int
    """Pixels whose centres lie inside the ROI, within the frame."""
    area: float
    area_unit: str
    unit: str
    channels: tuple[ChannelStats, ...]
    """One per channel; none when no pixel centre lies inside."""


def roi_stats(
    shape: RectROI | EllipseROI | FreehandROI, frame: FrameValues, scale: Scale = PIXELS
) -> RoiStats:
    mask = roi_mask(shape, frame.shape)
    values = frame.values(mask)
    count = int(values.shape[0])
    channels: list[ChannelStats] = []
    if count:
        columns = values.reshape(count, -1)
        means = columns.mean(axis=0)
        sds = columns.std(axis=0, ddof=1) if count > 1 else None
        lows, highs = columns.min(axis=0), columns.max(axis=0)
        for i, name in enumerate(frame.channels):
            channels.append(
                ChannelStats(
                    name,
                    float(means[i]),
                    None if sds is None else float(sds[i]),
                    float(lows[i]),
                    float(highs[i]),
                )
            )
    return RoiStats(count, area(shape, scale), scale.area_unit, frame.unit, tuple(channels))


# -- results -----------------------------------------------------------------------------------


def _format(value: float) -> str:
    """One decimal from 10 up (``100.0 mm``, ``-1000.0 HU``), three significant digits below
    (``4.37 mm``, ``2.53`` for an SUV)."""
    if value == 0 or abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:#.3g}"


@dataclass(frozen=True)
class Value:
    """One number of a measurement, with its quantity and unit."""

    quantity: str
    """``length``, ``angle``, ``long axis``, ``short axis``, ``mean``, ``SD``, ``min``,
    ``max`` (followed by the channel for colour: ``mean R``), ``pixels``, ``area``."""
    value: float | None
    unit: str

    def number_text(self) -> str:
        """``100.0 mm``, ``90.0°``, ``200`` (a count); ``n/a`` for an undefined value."""
        if self.value is None:
            return "n/a"
        if self.quantity == "pixels":
            return f"{self.value:.0f}"
        if self.unit == "°":
            return f"{_format(self.value)}°"
        return f"{_format(self.value)} {self.unit}".rstrip()

    def text(self) -> str:
        return f"{self.quantity} {self.number_text()}"


@dataclass(frozen=True)
class Result:
    """What a shape measures on a frame."""

    kind: str
    values: tuple[Value, ...]
    calibration: str
    """The label of the scale used: ``mm``, ``mm (at detector)``, ``mm (ultrasound region)``,
    ``px``."""

    def value(self, quantity: str) -> float | None:
        for value in self.values:
            if value.quantity == quantity:
                return value.value
        raise KeyError(quantity)

    def text(self) -> str:
        """What the view writes beside the shape: ``100.0 mm (at detector)``,
        ``mean 40.0 HU, SD 2.00 HU, …, area 50.0 mm²``."""
        if len(self.values) == 1:
            body = self.values[0].number_text()
        else:
            body = ", ".join(v.text() for v in self.values)
        qualifier = self.calibration[len(MM) :].strip() if self.calibration != PX else ""
        geometric = any(v.unit.startswith(MM) for v in self.values)
        return f"{body} {qualifier}" if qualifier and geometric else body


def measure(shape: Shape, calibration: Calibration, frame: FrameValues | None = None) -> Result:
    """The values of ``shape`` on a frame: a length, an angle, the two axes, or an ROI's
    statistics (which need ``frame``; without it, only the area)."""
    scale = calibration.scale_of(shape)
    values: list[Value] = []
    if isinstance(shape, Distance):
        values.append(Value("length", length(shape, scale), scale.unit))
    elif isinstance(shape, Angle):
        values.append(Value("angle", angle_degrees(shape, scale), "°"))
    elif isinstance(shape, Bidirectional):
        long_axis, short_axis = axes(shape, scale)
        values.append(Value("long axis", long_axis, scale.unit))
        values.append(Value("short axis", short_axis, scale.unit))
    elif frame is None:
        values.append(Value("area", area(shape, scale), scale.area_unit))
    else:
        stats = roi_stats(shape, frame, scale)
        for channel in stats.channels:
            suffix = f" {channel.channel}" if channel.channel else ""
            values += [
                Value(f"mean{suffix}", channel.mean, stats.unit),
                Value(f"SD{suffix}", channel.sd, stats.unit),
                Value(f"min{suffix}", channel.minimum, stats.unit),
                Value(f"max{suffix}", channel.maximum, stats.unit),
            ]
        values.append(Value("pixels", float(stats.count), ""))
        values.append(Value("area", stats.area, stats.area_unit))
    return Result(shape.kind, tuple(values), scale.label)


# -- editing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    """Where a point touches a shape: a handle (its index in :func:`handles`), or an edge
    (``handle`` None: drag the whole shape)."""

    handle: int | None


def _segment_distance(
    point: RowCol, starts: NDArray[np.float64], ends: NDArray[np.float64]
) -> float:
    """The distance from ``point`` to the nearest of the segments starts[i]-ends[i]."""
    p = np.asarray(point, dtype=np.float64)
    d = ends - starts
    length2 = np.einsum("ij,ij->i", d, d)
    t = np.einsum("ij,ij->i", p - starts, d) / np.where(length2 > 0, length2, 1.0)
    nearest = starts + np.clip(t, 0.0, 1.0)[:, None] * d
    return float(np.min(np.hypot(*(nearest - p).T)))


#: Sides of the polygon that stands for an ellipse's outline in hit-testing.
_ELLIPSE_SIDES = 128


def _outline(shape: Shape) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The shape's edges as (starts, ends) arrays of segments."""
    if isinstance(shape, EllipseROI):
        theta = np.linspace(0.0, 2 * math.pi, _ELLIPSE_SIDES, endpoint=False)
        centre = (np.array(shape.p0) + np.array(shape.p1)) / 2
        half = np.abs(np.array(shape.p1) - np.array(shape.p0)) / 2
        pts = centre + np.stack((np.sin(theta) * half[0], np.cos(theta) * half[1]), axis=1)
        return pts, np.roll(pts, -1, axis=0)
    if isinstance(shape, RectROI | FreehandROI):
        pts = np.asarray(handles(shape), dtype=np.float64)
        return pts, np.roll(pts, -1, axis=0)
    if isinstance(shape, Angle):
        return np.array((shape.a, shape.b)), np.array((shape.vertex, shape.vertex))
    if isinstance(shape, Bidirectional):
        return np.array((shape.p0, shape.q0)), np.array((shape.p1, shape.q1))
    return np.array((shape.p0,)), np.array((shape.p1,))


def hit(shape: Shape, point: RowCol, tolerance: float = 4.0) -> Hit | None:
    """Whether ``point`` is within ``tolerance`` (image pixels; a view divides its screen
    tolerance by the zoom) of a handle (the nearest wins) or else of an edge; None: neither.
    The inside of an ROI is not a hit, so a new ROI can be drawn inside another."""
    pts = np.asarray(handles(shape), dtype=np.float64)
    gaps = np.hypot(pts[:, 0] - point[0], pts[:, 1] - point[1])
    nearest = int(np.argmin(gaps))
    if gaps[nearest] <= tolerance:
        return Hit(nearest)
    if _segment_distance(point, *_outline(shape)) <= tolerance:
        return Hit(None)
    return None


def moved(shape: Shape, *, drow: float, dcol: float) -> Shape:
    """The shape translated by ``drow`` rows and ``dcol`` columns (keywords: the order of
    image axes is easy to get wrong)."""
    return shape_from_points(shape.kind, [(p[0] + drow, p[1] + dcol) for p in points_of(shape)])


def with_handle(shape: Shape, handle: int, point: RowCol, *, scale: Scale = PIXELS) -> Shape:
    """The shape with handle ``handle`` (an index into :func:`handles`) dragged to ``point``.

    A rectangle or ellipse corner moves its two sides and keeps the opposite corner, and every
    handle keeps its index, so a drag can go on with the same one. A bidirectional's long-axis
    end turns the short axis with it (same length, same place along the long axis, still
    perpendicular in ``scale``'s units); a short-axis end slides along the perpendicular, and not
    across the long axis.
    """
    point = _point(point, "point")
    count = len(handles(shape))
    if not 0 <= handle < count:
        raise IndexError(f"handle {handle} of a {shape.kind} with {count} handles")
    if isinstance(shape, RectROI | EllipseROI):
        (r0, c0), (r1, c1) = shape.p0, shape.p1
        row, col = point
        r0, c0, r1, c1 = (
            (row, col, r1, c1),
            (row, c0, r1, col),
            (r0, c0, row, col),
            (r0, col, row, c1),
        )[handle]
        return type(shape)((r0, c0), (r1, c1))
    if isinstance(shape, Bidirectional):
        return _bidirectional_with_handle(shape, handle, point, scale)
    points = list(points_of(shape))
    points[handle] = point
    return shape_from_points(shape.kind, points)


def _bidirectional_with_handle(
    shape: Bidirectional, handle: int, point: RowCol, scale: Scale
) -> Bidirectional:
    p0 = np.array(shape.p0)
    normal, size = _unit_normal(shape.p0, shape.p1, scale)
    along = scale.physical(np.array(shape.p1) - p0) / (size or 1.0)
    # the short axis as: where it crosses (a fraction of the long axis), and its two ends'
    # signed distances along the normal, all in calibrated units
    offsets = [scale.physical(np.array(q) - p0) for q in (shape.q0, shape.q1)]
    at = float(np.dot((offsets[0] + offsets[1]) / 2, along)) / size if size else 0.5
    ends = [float(np.dot(o, normal)) for o in offsets]
    if handle in (0, 1):
        p0_new, p1_new = (point, shape.p1) if handle == 0 else (shape.p0, point)
        normal_new, _ = _unit_normal(p0_new, p1_new, scale)
        start = np.array(p0_new)
        cross = start + min(max(at, 0.0), 1.0) * (np.array(p1_new) - start)
        q = [cross + _from_physical(normal_new * e, scale) for e in ends]
        return Bidirectional(p0_new, p1_new, (q[0][0], q[0][1]), (q[1][0], q[1][1]))
    index = handle - 2
    wanted = float(np.dot(scale.physical(np.array(point) - p0), normal))
    sign = math.copysign(1.0, ends[index]) if ends[index] else math.copysign(1.0, wanted)
    ends[index] = sign * max(sign * wanted, 0.0)
    cross = p0 + min(max(at, 0.0), 1.0) * (np.array(shape.p1) - p0)
    q = [cross + _from_physical(normal * e, scale) for e in ends]
    return Bidirectional(shape.p0, shape.p1, (q[0][0], q[0][1]), (q[1][0], q[1][1]))


# -- storage form ------------------------------------------------------------------------------

#: A UID (PS3.5 9.1): digits and dots, at most 64 characters.
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")


@dataclass(frozen=True)
class Measurement:
    """A shape placed on one frame of one instance: what the store keeps with the study."""

    shape: Shape
    sop_instance_uid: str
    frame_number: int = 1
    """Counting from 1, as DICOM references frames (Referenced Frame Number, PS3.3 C.7.6.1)."""


def _uid(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"sop_instance_uid is {type(value).__name__}, not a string")
    if len(value) > 64 or not _UID.fullmatch(value):
        raise ValueError(f"sop_instance_uid {escape(value[:80])!r} is not a UID")
    return value


def to_dict(measurement: Measurement) -> dict[str, Any]:
    """A JSON-friendly form: ``{"version": 1, "kind", "sop_instance_uid", "frame_number",
    "points": [[row, column], ...]}``."""
    return {
        "version": FORMAT_VERSION,
        "kind": measurement.shape.kind,
        "sop_instance_uid": measurement.sop_instance_uid,
        "frame_number": measurement.frame_number,
        "points": [[p[0], p[1]] for p in points_of(measurement.shape)],
    }


_KEYS = frozenset({"version", "kind", "sop_instance_uid", "frame_number", "points"})


def from_dict(data: Any) -> Measurement:
    """The measurement :func:`to_dict` wrote; ValueError naming what is wrong with anything
    else (a store file may be damaged or edited by hand)."""
    if not isinstance(data, Mapping):
        raise ValueError(f"a measurement is a mapping, not {type(data).__name__}")
    missing = sorted(_KEYS - set(data))
    if missing:
        raise ValueError(f"measurement without {', '.join(missing)}")
    unknown = sorted(str(k) for k in set(data) - _KEYS)
    if unknown:
        raise ValueError(f"measurement with unknown keys {escape(', '.join(unknown))}")
    version = data["version"]
    if isinstance(version, bool) or version != FORMAT_VERSION:
        raise ValueError(f"measurement version {escape(repr(version)[:40])} (this reads 1)")
    kind = data["kind"]
    if not isinstance(kind, str) or kind not in _KINDS:
        raise ValueError(f"unknown kind {escape(repr(kind)[:40])}")
    uid = _uid(data["sop_instance_uid"])
    frame = data["frame_number"]
    if isinstance(frame, bool) or not isinstance(frame, int) or frame < 1:
        raise ValueError(f"frame_number {escape(repr(frame)[:40])} is not a number from 1")
    points = data["points"]
    if not isinstance(points, list | tuple):
        raise ValueError(f"points are {type(points).__name__}, not a list")
    return Measurement(shape_from_points(kind, points), uid, frame)


# -- CSV ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CsvRow:
    """One measurement with the identity of its image, for :func:`measurements_csv`."""

    patient_id: str
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    frame_number: int
    result: Result

    @classmethod
    def of(cls, ds: Dataset, measurement: Measurement, result: Result) -> CsvRow:
        """The row of a measurement on an instance whose header is ``ds``."""
        return cls(
            str(ds.get("PatientID", "") or ""),
            str(ds.get("StudyInstanceUID", "") or ""),
            str(ds.get("SeriesInstanceUID", "") or ""),
            measurement.sop_instance_uid,
            measurement.frame_number,
            result,
        )


CSV_HEADER = (
    "Patient ID",
    "Study Instance UID",
    "Series Instance UID",
    "SOP Instance UID",
    "Frame",
    "Kind",
    "Quantity",
    "Value",
    "Unit",
    "Calibration",
)

#: First characters that make a spreadsheet read a cell as a formula (OWASP "CSV Injection").
_FORMULA_START = frozenset("=+-@\t\r")


def _cell(text: str) -> str:
    """A text from a file, safe in a spreadsheet: control characters escaped
    (:func:`viewer.text.escape`), and a quote before a value a spreadsheet would run."""
    safe = escape(text)
    if safe[:1] in _FORMULA_START or safe.lstrip()[:1] in _FORMULA_START:
        return "'" + safe
    return safe


def measurements_csv(rows: Iterable[CsvRow]) -> str:
    """A CSV text with :data:`CSV_HEADER`, one line per value of each measurement (an ROI gives
    a line for its mean, SD, min, max, pixels and area), numbers in full precision (an undefined
    one empty), every text cell made safe by :func:`_cell`."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    for row in rows:
        identity = [
            _cell(row.patient_id),
            _cell(row.study_instance_uid),
            _cell(row.series_instance_uid),
            _cell(row.sop_instance_uid),
            str(int(row.frame_number)),
            _cell(row.result.kind),
        ]
        for value in row.result.values:
            number = "" if value.value is None else format(value.value, ".10g")
            writer.writerow(
                [
                    *identity,
                    _cell(value.quantity),
                    number,
                    _cell(value.unit),
                    _cell(row.result.calibration),
                ]
            )
    return out.getvalue()
