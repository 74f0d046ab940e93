"""Multiplanar reformatting (MPR): a stack of parallel slices as a volume, cut along its three
axes, with thick slabs and crosshair navigation (issue 11). No Qt.

Geometry (PS3.3 C.7.6.2.1.1). The pixel of a frame at column ``i`` and row ``j`` (from 0, at
the pixel centre) lies at ``P = S + X * dc * i + Y * dr * j`` in the patient coordinate system
(LPS, mm), where ``S`` is Image Position (Patient), ``X`` and ``Y`` are the row and column
direction cosines of Image Orientation (Patient) (``X`` points along a row, towards increasing
column), ``dr`` and ``dc`` are the two values of Pixel Spacing (between rows, between columns).
A volume adds the slice index ``k``::

    P(k, j, i) = S0 + N * ds * k + Y * dr * j + X * dc * i

with ``S0`` the first frame's position, ``N`` the unit direction of increasing slice index
(``X x Y`` or its opposite, as the frames run) and ``ds`` the slice spacing. Arrays are indexed
``[k, j, i]`` (slice, row, column) and so are voxel coordinates.

What :meth:`VolumeGeometry.from_datasets` checks, and what it does about it:

- Refused (:class:`VolumeError`, its text the reason): fewer than 3 frames; a frame without
  Image Position (Patient), Image Orientation (Patient) or Pixel Spacing (Imager Pixel Spacing
  is at the detector, not in the patient); frames of different rows, columns, orientation or
  pixel spacing; two frames at one position (a second volume: a dynamic or multi-echo series);
  positions out of order along the normal; gaps so wide that a regular grid would need more
  than twice as many slices as there are frames.
- Gantry tilt (positions stepping off the normal, as a CT with a tilted gantry writes them):
  corrected by default, with a warning giving the angle in degrees: each frame is shifted in its
  own plane (linear interpolation, the edge filled with the volume's lowest value) onto the grid
  orthogonal to the slices through the first frame. ``irregular="refuse"`` refuses instead.
- Uneven spacing (a step more than 1% or 0.01 mm, whichever is larger, off the median step):
  corrected by default, with a warning naming the gaps: the frames are resampled along the
  normal by linear interpolation onto a regular grid at about the median step, from the first
  frame to the last. ``irregular="refuse"`` refuses instead.

Planes. "axial", "coronal" and "sagittal" are anatomical: each axis of the array is matched to
the patient axis (x: right to left, y: anterior to posterior, z: feet to head) it runs closest
to, so the sagittal reformat of a sagittal acquisition is its own frames and the axial reformat
of a coronal one cuts across them. The planes stay the array's own (an oblique acquisition gives
the nearest planes, not a resampled true axial); the direction cosines of every reformat are the
true ones, so orientation letters stay right. Each reformat is oriented the way radiologists
read: axial with anterior at the top and the patient's right on the viewer's left; coronal with
the head at the top and the patient's right on the viewer's left; sagittal with the head at the
top and anterior on the left. This follows the patient, not the table: a prone axial series is
shown anterior up, and an axial series stored with unusual cosines is turned to this convention.

Speed: a reformat one slice thick is one strided copy of a view of the array (the flips are
negative strides), as fast as numpy's own slice copy; a slab is one vectorised reduction.
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydicom.dataset import Dataset

from viewer.imaging.annotations import finite_floats, functional_attr
from viewer.imaging.display import modality_transform
from viewer.imaging.stack import ORIENTATION_TOLERANCE, POSITION_TOLERANCE

Vector = tuple[float, float, float]
Irregular = Literal["correct", "refuse"]
SlabMode = Literal["mip", "mean", "minip"]

#: Fewer frames than this make no useful volume.
MIN_SLICES = 3
#: A step off the median step by more than the larger of these is uneven spacing.
SPACING_TOLERANCE_MM = 0.01
SPACING_TOLERANCE_FRACTION = 0.01
#: Frames drifting in their plane by more than this fraction of a pixel are a gantry tilt.
TILT_TOLERANCE_PIXELS = 0.05
#: A regular grid may have at most this many times as many slices as there are frames.
MAX_RESAMPLING_FACTOR = 2
#: Pixel spacings closer than this (relative) are the same.
PIXEL_SPACING_TOLERANCE = 1e-4
#: Row and column cosines whose dot product exceeds this are not perpendicular.
ORTHOGONALITY_TOLERANCE = 1e-3
SLAB_MODES: tuple[SlabMode, ...] = ("mip", "mean", "minip")


class VolumeError(ValueError):
    """Frames that do not make a volume; ``str(error)`` is the reason, in a reader's words."""


class Plane(enum.StrEnum):
    """An anatomical plane of a reformat."""

    AXIAL = "axial"
    CORONAL = "coronal"
    SAGITTAL = "sagittal"


#: Per plane: the patient axis it cuts across (0 x, 1 y, 2 z in LPS), then the patient axis and
#: sign of its increasing row (down the screen) and of its increasing column (to the right).
_PLANES: dict[Plane, tuple[int, tuple[int, int], tuple[int, int]]] = {
    Plane.AXIAL: (2, (1, +1), (0, +1)),  # anterior at the top, patient's right on the left
    Plane.CORONAL: (1, (2, -1), (0, +1)),  # head at the top, patient's right on the left
    Plane.SAGITTAL: (0, (2, -1), (1, +1)),  # head at the top, anterior on the left
}


def _vector(values: NDArray[np.float64]) -> Vector:
    return (float(values[0]), float(values[1]), float(values[2]))


def _mm(value: float) -> str:
    return f"{value:.4g} mm"


@dataclass(frozen=True, slots=True)
class _Frame:
    position: tuple[float, ...]
    orientation: tuple[float, ...]
    rows: int
    columns: int
    spacing: tuple[float, ...]


def _read_frame(ds: Dataset, frame_index: int, number: int) -> _Frame:
    """The geometry of one frame (``number`` counts from 1, for messages)."""
    position = finite_floats(
        functional_attr(ds, "ImagePositionPatient", frame_index, "PlanePositionSequence"), 3
    )
    if position is None:
        raise VolumeError(f"frame {number} has no usable Image Position (Patient)")
    orientation = finite_floats(
        functional_attr(ds, "ImageOrientationPatient", frame_index, "PlaneOrientationSequence"), 6
    )
    if orientation is None:
        raise VolumeError(f"frame {number} has no usable Image Orientation (Patient)")
    spacing = finite_floats(
        functional_attr(ds, "PixelSpacing", frame_index, "PixelMeasuresSequence"), 2
    )
    if spacing is None or spacing[0] <= 0 or spacing[1] <= 0:
        raise VolumeError(f"frame {number} has no usable Pixel Spacing")
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
    except (AttributeError, TypeError, ValueError):
        raise VolumeError(f"frame {number} has no Rows or Columns") from None
    if rows < 1 or columns < 1:
        raise VolumeError(f"frame {number} is {rows}x{columns} pixels")
    return _Frame(position, orientation, rows, columns, spacing)


def _check_alike(frames: Sequence[_Frame]) -> None:
    first = frames[0]
    for number, frame in enumerate(frames[1:], start=2):
        if (frame.rows, frame.columns) != (first.rows, first.columns):
            raise VolumeError(
                f"frame {number} is {frame.rows}x{frame.columns} pixels (rows x columns), "
                f"frame 1 {first.rows}x{first.columns}: not one volume"
            )
        if any(
            abs(a - b) > ORIENTATION_TOLERANCE
            for a, b in zip(frame.orientation, first.orientation, strict=True)
        ):
            raise VolumeError(
                f"frame {number} has another orientation than frame 1 "
                f"({'/'.join(f'{v:g}' for v in frame.orientation)} against "
                f"{'/'.join(f'{v:g}' for v in first.orientation)}): not one volume"
            )
        if any(
            abs(a - b) > PIXEL_SPACING_TOLERANCE * max(a, b)
            for a, b in zip(frame.spacing, first.spacing, strict=True)
        ):
            raise VolumeError(
                f"frame {number} has another pixel spacing than frame 1 "
                f"({frame.spacing[0]:g}/{frame.spacing[1]:g} against "
                f"{first.spacing[0]:g}/{first.spacing[1]:g} mm): not one volume"
            )


@dataclass(frozen=True, slots=True)
class PlaneAxes:
    """How one plane cuts a volume's array (axes 0 slice, 1 row, 2 column): the axis it fixes,
    the axes running down and across the reformatted image and whether each runs reversed, and
    the reformat's geometry (direction cosines, pixel spacing)."""

    plane: Plane
    fixed: int
    down: int
    across: int
    flip_down: bool
    flip_across: bool
    count: int
    """Positions of the plane in the volume (the size of the fixed axis)."""
    shape: tuple[int, int]
    """(rows, columns) of the reformatted image."""
    row_cosines: Vector
    """Patient direction of increasing column of the reformat (Image Orientation's first half)."""
    column_cosines: Vector
    """Patient direction of increasing row of the reformat."""
    pixel_spacing: tuple[float, float]
    """(between rows, between columns) of the reformat, mm."""
    spacing: float
    """Between two positions of the plane, mm."""
    corner: Vector
    """Patient position of the reformat's pixel (0, 0) at position 0, mm."""
    step: Vector
    """Patient displacement from one position of the plane to the next, mm."""


@dataclass(frozen=True)
class VolumeGeometry:
    """Where the voxels of a regular grid lie in the patient (see the module docstring), and
    how the frames as stored map onto it."""

    shape: tuple[int, int, int]
    """(slices, rows, columns) of the regular grid."""
    origin: Vector
    """Image Position (Patient) of the first frame: the centre of voxel (0, 0, 0), mm."""
    row_cosines: Vector
    """Direction of increasing column (Image Orientation (Patient), first three values)."""
    column_cosines: Vector
    """Direction of increasing row (Image Orientation (Patient), last three values)."""
    normal: Vector
    """Direction of increasing slice index: ``row x column`` or its opposite."""
    pixel_spacing: tuple[float, float]
    """(between rows, between columns), mm."""
    slice_spacing: float
    """Between slices along the normal, mm."""
    warnings: tuple[str, ...] = ()
    """What was corrected (a gantry tilt, uneven spacing), one line each."""
    tilt_degrees: float = 0.0
    """Angle between the positions' step and the normal; non-zero only when corrected."""
    source_distances: tuple[float, ...] = ()
    """Each stored frame's distance from the origin along the normal, mm."""
    source_shifts: tuple[tuple[float, float], ...] = ()
    """Each stored frame's offset within its plane from the orthogonal grid, (rows, columns) in
    pixels; all zero unless a gantry tilt is corrected."""
    resampled: bool = False
    """The grid's slices are not the stored frames (uneven spacing was corrected)."""

    @classmethod
    def from_datasets(
        cls,
        datasets: Sequence[Dataset],
        frame_indices: Sequence[int] | None = None,
        *,
        irregular: Irregular = "correct",
    ) -> VolumeGeometry:
        """The geometry of frames given in stack order (see the module docstring).

        ``datasets`` holds one header per frame; ``frame_indices`` (from 0) says which frame of
        each it is, for a multi-frame file given once per frame (default: frame 0 of each).
        Raises :class:`VolumeError` when the frames make no volume, naming frames from 1.
        """
        if irregular not in ("correct", "refuse"):
            raise ValueError(f"irregular must be 'correct' or 'refuse', not {irregular!r}")
        indices = [0] * len(datasets) if frame_indices is None else list(frame_indices)
        if len(indices) != len(datasets):
            raise ValueError("one frame index per dataset")
        count = len(datasets)
        if count < MIN_SLICES:
            raise VolumeError(f"{count} frame(s): a volume needs at least {MIN_SLICES}")
        frames = [
            _read_frame(ds, index, number)
            for number, (ds, index) in enumerate(zip(datasets, indices, strict=True), start=1)
        ]
        _check_alike(frames)
        first = frames[0]
        row = np.array(first.orientation[:3])
        column = np.array(first.orientation[3:])
        row_norm, column_norm = float(np.linalg.norm(row)), float(np.linalg.norm(column))
        if row_norm < 0.5 or column_norm < 0.5:
            raise VolumeError("Image Orientation (Patient) is degenerate (a zero direction)")
        row, column = row / row_norm, column / column_norm
        if abs(float(row @ column)) > ORTHOGONALITY_TOLERANCE:
            raise VolumeError("the row and column directions of the frames are not perpendicular")
        normal = np.cross(row, column)
        normal /= np.linalg.norm(normal)
        dr, dc = first.spacing

        positions = np.array([f.position for f in frames], dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            offsets = positions - positions[0]
        if not np.isfinite(offsets).all():
            raise VolumeError("the frames' positions are too far apart to compute with")
        along = offsets @ normal
        if along[-1] < 0:  # the frames run against row x column
            normal, along = -normal, -along
        steps = np.diff(along)
        for k in np.flatnonzero(steps <= POSITION_TOLERANCE):
            if abs(steps[k]) <= POSITION_TOLERANCE:
                raise VolumeError(
                    f"frames {k + 1} and {k + 2} lie at the same position along the normal: "
                    "more than one volume (a dynamic or multi-echo series?)"
                )
            raise VolumeError(
                f"the frames are out of order along the normal: frame {k + 2} lies "
                f"{_mm(-float(steps[k]))} before frame {k + 1}"
            )

        warnings: list[str] = []
        shifts = np.zeros((count, 2))
        tilt = 0.0
        in_plane = offsets - along[:, None] * normal
        drift = np.linalg.norm(in_plane, axis=1)
        if float(drift.max()) > TILT_TOLERANCE_PIXELS * min(dr, dc):
            # The least-squares in-plane drift per mm along the normal: its angle is the tilt.
            slope = (along @ in_plane) / float(along @ along)
            tilt = math.degrees(math.atan(float(np.linalg.norm(slope))))
            what = f"gantry tilt of {tilt:.2f}° (the positions step off the slice normal)"
            if irregular == "refuse":
                raise VolumeError(f"{what}: the slices are not stacked square")
            shifts[:, 0] = in_plane @ column / dr
            shifts[:, 1] = in_plane @ row / dc
            warnings.append(
                f"{what}: each frame shifted in its plane by up to {_mm(float(drift.max()))} "
                "onto the grid orthogonal to the slices"
            )

        median = float(np.median(steps))
        tolerance = max(SPACING_TOLERANCE_MM, SPACING_TOLERANCE_FRACTION * median)
        uneven = np.flatnonzero(np.abs(steps - median) > tolerance)
        slices = count
        spacing = float(along[-1]) / (count - 1)
        if uneven.size:
            gaps = ", ".join(
                f"{_mm(float(steps[k]))} between frames {k + 1} and {k + 2}" for k in uneven[:5]
            )
            if uneven.size > 5:
                gaps += f" and {uneven.size - 5} more"
            what = f"uneven slice spacing (median step {_mm(median)}; {gaps})"
            if irregular == "refuse":
                raise VolumeError(what)
            slices = round(float(along[-1]) / median) + 1
            if slices > MAX_RESAMPLING_FACTOR * count:
                raise VolumeError(
                    f"{what}: too uneven to resample ({slices} slices from {count} frames)"
                )
            spacing = float(along[-1]) / (slices - 1)
            warnings.append(
                f"{what}: resampled to {slices} slices {_mm(spacing)} apart by linear "
                "interpolation along the normal"
            )

        return cls(
            shape=(slices, first.rows, first.columns),
            origin=_vector(positions[0]),
            row_cosines=_vector(row),
            column_cosines=_vector(column),
            normal=_vector(normal),
            pixel_spacing=(dr, dc),
            slice_spacing=spacing,
            warnings=tuple(warnings),
            tilt_degrees=tilt,
            source_distances=tuple(float(d) for d in along),
            source_shifts=tuple((float(a), float(b)) for a, b in shifts),
            resampled=bool(uneven.size),
        )

    # -- voxel <-> patient -----------------------------------------------------------------
    @cached_property
    def _matrix(self) -> NDArray[np.float64]:
        """Columns: the patient step of one voxel along the slice, row and column axes."""
        steps = [
            np.array(self.normal) * self.slice_spacing,
            np.array(self.column_cosines) * self.pixel_spacing[0],
            np.array(self.row_cosines) * self.pixel_spacing[1],
        ]
        matrix: NDArray[np.float64] = np.stack(steps, axis=1)
        return matrix

    @cached_property
    def _inverse(self) -> NDArray[np.float64]:
        inverse: NDArray[np.float64] = np.asarray(np.linalg.inv(self._matrix), np.float64)
        return inverse

    def voxel_to_patient(self, voxel: ArrayLike) -> NDArray[np.float64]:
        """Patient coordinates (mm) of voxel coordinates ``(..., 3)`` = (slice, row, column),
        fractional allowed, the voxel centres at whole numbers (PS3.3 C.7.6.2.1.1)."""
        v = np.asarray(voxel, dtype=np.float64)
        patient: NDArray[np.float64] = v @ self._matrix.T + np.array(self.origin)
        return patient

    def patient_to_voxel(self, point: ArrayLike) -> NDArray[np.float64]:
        """Voxel coordinates (slice, row, column) of patient points ``(..., 3)`` in mm."""
        p = np.asarray(point, dtype=np.float64) - np.array(self.origin)
        voxel: NDArray[np.float64] = p @ self._inverse.T
        return voxel

    # -- planes ----------------------------------------------------------------------------
    @cached_property
    def patient_axes(self) -> tuple[int, int, int]:
        """For each array axis (slice, row, column), the patient axis (0 x, 1 y, 2 z) it runs
        closest to, no two the same."""
        directions = (self.normal, self.column_cosines, self.row_cosines)
        best = max(
            itertools.permutations(range(3)),
            key=lambda p: sum(abs(directions[a][p[a]]) for a in range(3)),
        )
        return (best[0], best[1], best[2])

    @cached_property
    def planes(self) -> dict[Plane, PlaneAxes]:
        """How each anatomical plane cuts this volume's array."""
        directions = (self.normal, self.column_cosines, self.row_cosines)
        spacings = (self.slice_spacing, *self.pixel_spacing)
        array_axis = {patient: axis for axis, patient in enumerate(self.patient_axes)}
        out: dict[Plane, PlaneAxes] = {}
        for plane, (
            across_patient,
            (down_p, down_sign),
            (across_p, across_sign),
        ) in _PLANES.items():
            fixed, down, across = (
                array_axis[across_patient],
                array_axis[down_p],
                array_axis[across_p],
            )
            flip_down = directions[down][down_p] * down_sign < 0
            flip_across = directions[across][across_p] * across_sign < 0
            down_sign_f = -1.0 if flip_down else 1.0
            across_sign_f = -1.0 if flip_across else 1.0
            corner = [0.0, 0.0, 0.0]
            corner[down] = self.shape[down] - 1 if flip_down else 0
            corner[across] = self.shape[across] - 1 if flip_across else 0
            out[plane] = PlaneAxes(
                plane=plane,
                fixed=fixed,
                down=down,
                across=across,
                flip_down=flip_down,
                flip_across=flip_across,
                count=self.shape[fixed],
                shape=(self.shape[down], self.shape[across]),
                row_cosines=_vector(np.array(directions[across]) * across_sign_f),
                column_cosines=_vector(np.array(directions[down]) * down_sign_f),
                pixel_spacing=(spacings[down], spacings[across]),
                spacing=spacings[fixed],
                corner=_vector(self.voxel_to_patient(corner)),
                step=_vector(self._matrix[:, fixed]),
            )
        return out

    def axes(self, plane: Plane | str) -> PlaneAxes:
        return self.planes[Plane(plane)]

    # -- the frames onto the regular grid --------------------------------------------------
    @property
    def needs_regularizing(self) -> bool:
        return self.resampled or any(r or c for r, c in self.source_shifts)

    def regularize(self, frames: NDArray[Any]) -> NDArray[Any]:
        """The stored frames ``(frames, rows, columns)``, in stack order, on this regular grid:
        ``frames`` itself (no copy) when nothing needed correcting; else a new array of the
        same dtype (interpolated integers rounded)."""
        count = len(self.source_distances)
        if frames.shape != (count, *self.shape[1:]):
            raise ValueError(
                f"frames of shape {frames.shape} for a geometry of {count} frames of "
                f"{self.shape[1]}x{self.shape[2]}"
            )
        if not self.needs_regularizing:
            return frames
        work = frames
        if any(r or c for r, c in self.source_shifts):
            fill = float(frames.min())
            work = np.empty_like(frames)
            for k, (rows, columns) in enumerate(self.source_shifts):
                plane = frames[k].astype(np.float32)
                plane = _shift_axis(plane, rows, 0, fill)
                plane = _shift_axis(plane, columns, 1, fill)
                work[k] = _cast(plane, frames.dtype)
        if not self.resampled:
            return work
        distances = np.array(self.source_distances)
        targets = np.arange(self.shape[0]) * self.slice_spacing
        lower = np.clip(np.searchsorted(distances, targets, side="right") - 1, 0, count - 2)
        out = np.empty((self.shape[0], *frames.shape[1:]), dtype=frames.dtype)
        for k, (target, lo) in enumerate(zip(targets, lower, strict=True)):
            weight = (target - distances[lo]) / (distances[lo + 1] - distances[lo])
            weight = min(1.0, max(0.0, float(weight)))
            if weight < 1e-6:
                out[k] = work[lo]
            elif weight > 1 - 1e-6:
                out[k] = work[lo + 1]
            else:
                blend = work[lo].astype(np.float32) * np.float32(1 - weight)
                blend += work[lo + 1].astype(np.float32) * np.float32(weight)
                out[k] = _cast(blend, frames.dtype)
        return out


def _shift_axis(
    data: NDArray[np.float32], shift: float, axis: int, fill: float
) -> NDArray[np.float32]:
    """``out[m] = data[m - shift]`` along ``axis``, linearly interpolated; ``fill`` outside."""
    if abs(shift) < 1e-6:
        return data
    size = data.shape[axis]
    source = np.arange(size) - shift
    lower = np.floor(source).astype(np.intp)
    weight = np.float32(source[0] - lower[0])
    pad = [(0, 0)] * data.ndim
    pad[axis] = (1, 1)
    padded = np.pad(data, pad, constant_values=fill)
    a = np.take(padded, np.clip(lower, -1, size) + 1, axis=axis)
    b = np.take(padded, np.clip(lower + 1, -1, size) + 1, axis=axis)
    out: NDArray[np.float32] = a * (1 - weight) + b * weight
    return out


def _cast(values: NDArray[np.float32], dtype: np.dtype[Any]) -> NDArray[Any]:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)


@dataclass(frozen=True, eq=False)
class Volume:
    """A regular 3-D array ``values[slice, row, column]`` and where it lies in the patient.

    ``values`` are stored values with the one rescale ``slope`` / ``intercept`` of every frame
    (modality value = stored * slope + intercept, PS3.3 C.11.1), or modality values already
    (slope 1, intercept 0) when the frames' modality transforms differ, as PET's do.
    """

    values: NDArray[Any]
    geometry: VolumeGeometry
    slope: float = 1.0
    intercept: float = 0.0

    def __post_init__(self) -> None:
        if self.values.shape != self.geometry.shape:
            raise ValueError(
                f"values of shape {self.values.shape} for a geometry of {self.geometry.shape}"
            )

    @classmethod
    def from_frames(
        cls,
        datasets: Sequence[Dataset],
        frames: NDArray[Any] | Sequence[NDArray[Any]],
        frame_indices: Sequence[int] | None = None,
        *,
        irregular: Irregular = "correct",
    ) -> Volume:
        """A volume of decoded stored frames and their headers, in stack order.

        An array ``(frames, rows, columns)`` is used as it is when nothing needs correcting (no
        copy); a tilt or uneven spacing is corrected (see the module docstring), with the
        warnings in ``geometry.warnings``. Raises :class:`VolumeError`.
        """
        geometry = VolumeGeometry.from_datasets(datasets, frame_indices, irregular=irregular)
        stored = frames if isinstance(frames, np.ndarray) else np.stack(list(frames))
        indices = [0] * len(datasets) if frame_indices is None else list(frame_indices)
        transforms = [modality_transform(ds, i) for ds, i in zip(datasets, indices, strict=True)]
        rescales = {(t.slope, t.intercept) for t in transforms}
        if len(rescales) == 1 and all(t.lut is None for t in transforms):
            ((slope, intercept),) = rescales
            return cls(geometry.regularize(stored), geometry, slope, intercept)
        modality = np.empty(stored.shape, dtype=np.float32)
        for k, transform in enumerate(transforms):
            modality[k] = transform.apply(stored[k])
        return cls(geometry.regularize(modality), geometry)

    def voxel_to_patient(self, voxel: ArrayLike) -> NDArray[np.float64]:
        """See :meth:`VolumeGeometry.voxel_to_patient`."""
        return self.geometry.voxel_to_patient(voxel)

    def patient_to_voxel(self, point: ArrayLike) -> NDArray[np.float64]:
        """See :meth:`VolumeGeometry.patient_to_voxel`."""
        return self.geometry.patient_to_voxel(point)


# -- reformatting ----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Reformat:
    """One reformatted image and what the view needs to draw letters and a scale bar."""

    pixels: NDArray[Any]
    """2-D, C-contiguous, a copy (the volume's dtype; float32 for a mean slab)."""
    plane: Plane
    index: int
    slab: tuple[int, int]
    """Positions of the plane combined, ``range(*slab)`` (clipped at the volume's ends)."""
    mode: SlabMode
    pixel_spacing: tuple[float, float]
    """(between rows, between columns), mm."""
    row_cosines: Vector
    """Patient direction of increasing column."""
    column_cosines: Vector
    """Patient direction of increasing row."""
    origin: Vector
    """Patient position of the centre of pixel (0, 0), in the plane at ``index``, mm."""
    slab_mm: float
    """The slab's thickness along its normal, mm (one position's spacing when one thick)."""


def reformat(
    volume: Volume,
    plane: Plane | str,
    index: int,
    *,
    thickness: int = 1,
    mode: SlabMode = "mip",
) -> Reformat:
    """The ``plane`` at position ``index`` (0 .. ``volume.geometry.axes(plane).count - 1``,
    along the array) oriented for reading (see the module docstring).

    ``thickness`` > 1 combines that many positions centred on ``index`` (one more after it
    than before it when even), clipped at the ends: ``mode`` "mip" (maximum intensity), "mean"
    or "minip" (minimum).
    """
    axes = volume.geometry.axes(plane)
    if not 0 <= index < axes.count:
        raise IndexError(f"{axes.plane} position {index} outside 0..{axes.count - 1}")
    if thickness < 1:
        raise ValueError(f"slab thickness {thickness} is below 1")
    if mode not in SLAB_MODES:
        raise ValueError(f"slab mode {mode!r} is none of {', '.join(SLAB_MODES)}")
    start = index - (thickness - 1) // 2
    lo, hi = max(0, start), min(axes.count, start + thickness)
    where: list[int | slice] = [slice(None)] * 3
    cut: NDArray[Any]
    if hi - lo == 1:
        where[axes.fixed] = index
        cut = volume.values[tuple(where)]
    else:
        where[axes.fixed] = slice(lo, hi)
        slab = volume.values[tuple(where)]
        if mode == "mip":
            cut = np.max(slab, axis=axes.fixed)
        elif mode == "minip":
            cut = np.min(slab, axis=axes.fixed)
        else:
            cut = np.asarray(np.mean(slab, axis=axes.fixed, dtype=np.float32))
    if axes.down > axes.across:  # the cut's axes come in array order
        cut = cut.T
    oriented = cut[:: -1 if axes.flip_down else 1, :: -1 if axes.flip_across else 1]
    # One slice is always copied, even when the view is contiguous already (the acquired plane):
    # a reformat kept by the view must not keep the whole volume alive nor change with it.
    pixels = np.array(oriented, order="C") if hi - lo == 1 else np.ascontiguousarray(oriented)
    (cx, cy, cz), (sx, sy, sz) = axes.corner, axes.step
    return Reformat(
        pixels=pixels,
        plane=axes.plane,
        index=index,
        slab=(lo, hi),
        mode=mode,
        pixel_spacing=axes.pixel_spacing,
        row_cosines=axes.row_cosines,
        column_cosines=axes.column_cosines,
        origin=(cx + sx * index, cy + sy * index, cz + sz * index),
        slab_mm=axes.spacing * (hi - lo),
    )


# -- crosshair navigation --------------------------------------------------------------------


@dataclass(frozen=True)
class CrossPoint:
    """A point of a volume: where the crosshair is, on every plane at once.

    ``voxel`` is (slice, row, column) in the volume's array, fractional allowed. Row and
    column on a reformat count pixels from 0 at the centre of the top left pixel (the view's
    image coordinates, pixel centres at +0.5, are ``(column + 0.5, row + 0.5)``).
    """

    geometry: VolumeGeometry
    voxel: tuple[float, float, float]

    @property
    def patient(self) -> Vector:
        """Patient coordinates, mm."""
        return _vector(self.geometry.voxel_to_patient(self.voxel))

    def index(self, plane: Plane | str) -> int:
        """The position of ``plane`` through this point (nearest, inside the volume)."""
        axes = self.geometry.axes(plane)
        return min(axes.count - 1, max(0, math.floor(self.voxel[axes.fixed] + 0.5)))

    def indices(self) -> dict[Plane, int]:
        return {plane: self.index(plane) for plane in Plane}

    def on(self, plane: Plane | str) -> tuple[float, float]:
        """(row, column) of this point on the reformat of ``plane`` (where to draw the cross)."""
        axes = self.geometry.axes(plane)
        row, column = self.voxel[axes.down], self.voxel[axes.across]
        if axes.flip_down:
            row = axes.shape[0] - 1 - row
        if axes.flip_across:
            column = axes.shape[1] - 1 - column
        return (row, column)


def _geometry(volume: Volume | VolumeGeometry) -> VolumeGeometry:
    return volume.geometry if isinstance(volume, Volume) else volume


def cross_point(
    volume: Volume | VolumeGeometry, plane: Plane | str, index: float, row: float, column: float
) -> CrossPoint:
    """The point clicked at (``row``, ``column``) on the reformat of ``plane`` at ``index``;
    its ``index(other)`` gives the other planes' positions, ``patient`` its coordinates."""
    geometry = _geometry(volume)
    axes = geometry.axes(plane)
    voxel = [0.0, 0.0, 0.0]
    voxel[axes.fixed] = float(index)
    voxel[axes.down] = axes.shape[0] - 1 - row if axes.flip_down else row
    voxel[axes.across] = axes.shape[1] - 1 - column if axes.flip_across else column
    return CrossPoint(geometry, (voxel[0], voxel[1], voxel[2]))


def cross_point_at(volume: Volume | VolumeGeometry, patient: ArrayLike) -> CrossPoint:
    """The point at patient coordinates ``patient`` (mm), for example from another series."""
    geometry = _geometry(volume)
    voxel = geometry.patient_to_voxel(patient)
    return CrossPoint(geometry, _vector(voxel))
