"""MPR (issue 11): reformats of synthetic volumes of known geometry against numpy slicing, slabs,
patient <-> voxel, crosshair navigation, and what irregular stacks get (corrected or refused)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
from numpy.typing import ArrayLike, NDArray
from pydicom.dataset import Dataset

from viewer.imaging.mpr import (
    Plane,
    Reformat,
    Volume,
    VolumeError,
    VolumeGeometry,
    cross_point,
    cross_point_at,
    reformat,
)

SLICES, ROWS, COLS = 7, 6, 5  # all different, so a wrong transpose changes the shape
DR, DC, DS = 0.8, 0.6, 2.5  # between rows, between columns, between slices (mm)
ORIGIN = np.array([-12.0, 30.5, 101.25])

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)


def at(x: float, y: float, z: float) -> NDArray[np.float64]:
    """ORIGIN moved by (x, y, z) mm."""
    return ORIGIN + np.array([x, y, z])


def frame(
    position: ArrayLike,
    orientation: Sequence[float] = AXIAL,
    *,
    rows: int = ROWS,
    cols: int = COLS,
    spacing: Sequence[float] = (DR, DC),
    slope: float = 1.0,
    intercept: float = -1024.0,
) -> Dataset:
    """The header of one CT frame: the attributes the volume reads, nothing else."""
    ds = Dataset()
    ds.Modality = "CT"
    ds.Rows, ds.Columns = rows, cols
    ds.ImagePositionPatient = [f"{v:.6f}" for v in np.asarray(position, dtype=float)]
    ds.ImageOrientationPatient = [f"{v:.8f}" for v in orientation]
    ds.PixelSpacing = [f"{v:g}" for v in spacing]
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    return ds


def stack(
    steps: ArrayLike,
    orientation: Sequence[float] = AXIAL,
    direction: ArrayLike = (0.0, 0.0, 1.0),
) -> list[Dataset]:
    """Frames at ORIGIN + d * direction for each distance d."""
    return [
        frame(ORIGIN + d * np.asarray(direction), orientation)
        for d in np.asarray(steps, dtype=float)
    ]


def random_frames(count: int = SLICES, seed: int = 11) -> NDArray[np.int16]:
    return np.random.default_rng(seed).integers(-1000, 3000, (count, ROWS, COLS), dtype=np.int16)


# The four acquisitions: orientation, step direction (the normal as the stack runs), and for
# each plane the numpy slicing (with the flips of the reading convention) that it must equal.
ACQUISITIONS = {
    "axial, feet to head": (
        AXIAL,
        (0.0, 0.0, 1.0),
        {
            "axial": lambda v, n: v[n],
            "coronal": lambda v, n: v[::-1, n, :],  # head at the top
            "sagittal": lambda v, n: v[::-1, :, n],  # head at the top, anterior left
        },
    ),
    "axial, head to feet": (
        AXIAL,
        (0.0, 0.0, -1.0),
        {
            "axial": lambda v, n: v[n],
            "coronal": lambda v, n: v[:, n, :],
            "sagittal": lambda v, n: v[:, :, n],
        },
    ),
    "sagittal": (  # normal row x column = -x; the stack runs from patient left to right
        SAGITTAL,
        (-1.0, 0.0, 0.0),
        {
            "sagittal": lambda v, n: v[n],
            "axial": lambda v, n: v[:, n, :].T[:, ::-1],  # patient right on the viewer's left
            "coronal": lambda v, n: v[:, :, n].T[:, ::-1],
        },
    ),
    "coronal": (  # normal +y; the stack runs from anterior to posterior
        CORONAL,
        (0.0, 1.0, 0.0),
        {
            "coronal": lambda v, n: v[n],
            "axial": lambda v, n: v[:, n, :],
            "sagittal": lambda v, n: v[:, :, n].T,
        },
    ),
}

# Reading convention: (row cosines, column cosines) of each reformat of a square acquisition.
CONVENTION = {
    "axial": ((1, 0, 0), (0, 1, 0)),  # right of the image = patient left, down = posterior
    "coronal": ((1, 0, 0), (0, 0, -1)),  # down = feet
    "sagittal": ((0, 1, 0), (0, 0, -1)),  # right of the image = posterior, down = feet
}

# Pixel spacing (between rows, between columns) of each reformat, per acquisition.
SPACINGS = {
    "axial, feet to head": {"axial": (DR, DC), "coronal": (DS, DC), "sagittal": (DS, DR)},
    "axial, head to feet": {"axial": (DR, DC), "coronal": (DS, DC), "sagittal": (DS, DR)},
    "sagittal": {"sagittal": (DR, DC), "axial": (DC, DS), "coronal": (DR, DS)},
    "coronal": {"coronal": (DR, DC), "axial": (DS, DC), "sagittal": (DR, DS)},
}


def acquisition(name: str) -> tuple[Volume, NDArray[np.int16], NDArray[np.float64]]:
    """The volume, its frames, and the test's own voxel -> patient matrix (columns: one step
    along slice, row, column)."""
    orientation, direction, _ = ACQUISITIONS[name]
    frames = random_frames()
    volume = Volume.from_frames(stack(np.arange(SLICES) * DS, orientation, direction), frames)
    row, col = np.array(orientation[:3]), np.array(orientation[3:])
    matrix = np.stack([np.array(direction) * DS, col * DR, row * DC], axis=1)
    return volume, frames, matrix


def oracle(
    result: Reformat, frames: NDArray[np.int16], matrix: NDArray[np.float64]
) -> NDArray[np.int16]:
    """The reformat rebuilt from its own geometry: each pixel's patient point (origin + cosines
    x spacing), back to a voxel with the test's matrix, its value read from the frames."""
    origin = np.array(result.origin)
    rows, cols = result.pixels.shape
    dr, dc = result.pixel_spacing
    r, c = np.mgrid[0:rows, 0:cols]
    points = (
        origin
        + r[..., None] * dr * np.array(result.column_cosines)
        + c[..., None] * dc * np.array(result.row_cosines)
    )
    voxels = np.linalg.solve(matrix, (points - ORIGIN).reshape(-1, 3).T).T
    assert np.allclose(voxels, np.round(voxels), atol=1e-6)
    k, j, i = np.round(voxels).astype(int).T
    return frames[k, j, i].reshape(rows, cols)


# -- reformats -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ACQUISITIONS))
@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
def test_every_reformat_equals_its_numpy_slicing_and_its_own_geometry(
    name: str, plane: str
) -> None:
    volume, frames, matrix = acquisition(name)
    slicing = ACQUISITIONS[name][2][plane]
    count = volume.geometry.axes(plane).count
    assert count > 1
    for index in range(count):
        result = reformat(volume, plane, index)
        expected = slicing(frames, index)
        assert result.pixels.shape == expected.shape
        np.testing.assert_array_equal(result.pixels, expected)
        np.testing.assert_array_equal(result.pixels, oracle(result, frames, matrix))
        assert result.pixels.dtype == np.int16
        assert result.pixels.flags.c_contiguous
        assert not np.shares_memory(result.pixels, volume.values)
        assert result.plane == Plane(plane)
        assert result.slab == (index, index + 1)
    row_cosines, column_cosines = CONVENTION[plane]
    np.testing.assert_allclose(result.row_cosines, row_cosines, atol=1e-9)
    np.testing.assert_allclose(result.column_cosines, column_cosines, atol=1e-9)
    np.testing.assert_allclose(result.pixel_spacing, SPACINGS[name][plane])


def test_the_acquired_plane_of_an_axial_stack_is_its_frames_and_the_others_cut_across() -> None:
    volume, frames, _ = acquisition("axial, feet to head")
    assert volume.geometry.axes("axial").count == SLICES
    assert volume.geometry.axes("coronal").count == ROWS
    assert volume.geometry.axes("sagittal").count == COLS
    # The top row of a coronal reformat is the head end: the last frame of this stack.
    coronal = reformat(volume, "coronal", 4)
    np.testing.assert_array_equal(coronal.pixels[0], frames[-1, 4, :])
    np.testing.assert_allclose(coronal.origin, at(0, 4 * DR, (SLICES - 1) * DS))


def test_an_oblique_stack_reformats_along_its_own_axes_with_the_true_cosines() -> None:
    theta = math.radians(20.0)
    orientation = (math.cos(theta), math.sin(theta), 0.0, -math.sin(theta), math.cos(theta), 0.0)
    frames = random_frames()
    volume = Volume.from_frames(stack(np.arange(SLICES) * DS, orientation), frames)
    assert volume.geometry.warnings == ()
    coronal = reformat(volume, "coronal", 3)
    np.testing.assert_array_equal(coronal.pixels, frames[::-1, 3, :])
    np.testing.assert_allclose(coronal.row_cosines, orientation[:3], atol=1e-7)
    np.testing.assert_allclose(coronal.column_cosines, (0, 0, -1), atol=1e-9)


# -- thick slabs -----------------------------------------------------------------------------


def test_thick_slab_mip_mean_and_minip_equal_numpy_over_the_slab() -> None:
    volume, frames, _ = acquisition("axial, feet to head")
    mip = reformat(volume, "coronal", 2, thickness=3)
    assert mip.slab == (1, 4)
    np.testing.assert_array_equal(mip.pixels, np.max(frames[:, 1:4, :], axis=1)[::-1])
    assert mip.slab_mm == pytest.approx(3 * DR)
    minip = reformat(volume, "coronal", 2, thickness=3, mode="minip")
    np.testing.assert_array_equal(minip.pixels, np.min(frames[:, 1:4, :], axis=1)[::-1])
    mean = reformat(volume, "coronal", 2, thickness=3, mode="mean")
    np.testing.assert_allclose(mean.pixels, np.mean(frames[:, 1:4, :], axis=1)[::-1], rtol=1e-6)
    assert mean.pixels.dtype == np.float32
    # Even thickness: one more after the index than before it.
    sagittal = reformat(volume, "sagittal", 2, thickness=4)
    assert sagittal.slab == (1, 5)
    np.testing.assert_array_equal(sagittal.pixels, np.max(frames[:, :, 1:5], axis=2)[::-1])
    # The slab is clipped at the ends of the volume.
    axial = reformat(volume, "axial", 0, thickness=3)
    assert axial.slab == (0, 2)
    np.testing.assert_array_equal(axial.pixels, np.max(frames[0:2], axis=0))
    assert axial.slab_mm == pytest.approx(2 * DS)
    # The mip really differs from a single slice here (the test could otherwise not fail).
    assert not np.array_equal(mip.pixels, reformat(volume, "coronal", 2).pixels)


def test_reformat_refuses_positions_outside_the_volume_and_bad_slabs() -> None:
    volume, _, _ = acquisition("axial, feet to head")
    with pytest.raises(IndexError, match=r"coronal position 6 outside 0\.\.5"):
        reformat(volume, "coronal", ROWS)
    with pytest.raises(IndexError):
        reformat(volume, "axial", -1)
    with pytest.raises(ValueError, match="below 1"):
        reformat(volume, "axial", 0, thickness=0)
    with pytest.raises(ValueError, match="slab mode"):
        reformat(volume, "axial", 0, thickness=3, mode="sum")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        reformat(volume, "oblique", 0)


# -- patient <-> voxel -----------------------------------------------------------------------


def test_voxel_to_patient_follows_the_standard_equation_and_round_trips() -> None:
    theta = math.radians(35.0)
    orientation = (1.0, 0.0, 0.0, 0.0, math.cos(theta), math.sin(theta))
    row, col = np.array(orientation[:3]), np.array(orientation[3:])
    normal = np.cross(row, col)
    volume = Volume.from_frames(stack(np.arange(SLICES) * DS, orientation, normal), random_frames())
    # PS3.3 C.7.6.2.1.1: P = S + X * dc * i + Y * dr * j, plus the slice step along the normal.
    k, j, i = 3, 2, 4
    expected = ORIGIN + normal * DS * k + col * DR * j + row * DC * i
    np.testing.assert_allclose(volume.voxel_to_patient((k, j, i)), expected, atol=1e-5)
    np.testing.assert_allclose(volume.voxel_to_patient((0, 0, 0)), ORIGIN, atol=1e-6)
    np.testing.assert_allclose(volume.patient_to_voxel(expected), (k, j, i), atol=1e-5)
    points = np.random.default_rng(5).uniform(-200, 200, (50, 3))
    np.testing.assert_allclose(volume.voxel_to_patient(volume.patient_to_voxel(points)), points)
    voxels = np.random.default_rng(6).uniform(-3, 9, (50, 3))
    np.testing.assert_allclose(volume.patient_to_voxel(volume.voxel_to_patient(voxels)), voxels)


# -- crosshair -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ACQUISITIONS))
def test_a_click_on_any_plane_finds_the_same_voxel_on_the_other_two(name: str) -> None:
    volume, _, _ = acquisition(name)
    rng = np.random.default_rng(3)
    for clicked in Plane:
        axes = volume.geometry.axes(clicked)
        for _ in range(10):
            index = int(rng.integers(axes.count))
            row, col = int(rng.integers(axes.shape[0])), int(rng.integers(axes.shape[1]))
            image = reformat(volume, clicked, index)
            point = cross_point(volume, clicked, index, row, col)
            assert point.index(clicked) == index
            assert point.on(clicked) == (row, col)
            expected_patient = (
                np.array(image.origin)
                + row * image.pixel_spacing[0] * np.array(image.column_cosines)
                + col * image.pixel_spacing[1] * np.array(image.row_cosines)
            )
            np.testing.assert_allclose(point.patient, expected_patient, atol=1e-6)
            for other in Plane:
                there = reformat(volume, other, point.index(other))
                r, c = point.on(other)
                assert (r, c) == (round(r), round(c))
                assert there.pixels[round(r), round(c)] == image.pixels[row, col]
                back = cross_point(volume, other, point.index(other), r, c)
                np.testing.assert_allclose(back.patient, point.patient, atol=1e-6)
            again = cross_point_at(volume, point.patient)
            np.testing.assert_allclose(again.voxel, point.voxel, atol=1e-6)
            assert again.indices() == point.indices()


def test_a_coronal_click_names_its_voxel_and_the_planes_through_it() -> None:
    volume, _, _ = acquisition("axial, feet to head")
    point = cross_point(volume, "coronal", 2, 1, 3)
    # Row 1 from the top of a feet-to-head stack is the second frame from the last.
    assert point.voxel == (SLICES - 2, 2, 3)
    assert point.indices() == {Plane.AXIAL: SLICES - 2, Plane.CORONAL: 2, Plane.SAGITTAL: 3}
    np.testing.assert_allclose(point.patient, at(3 * DC, 2 * DR, (SLICES - 2) * DS))
    assert point.on("axial") == (2, 3)
    assert point.on("sagittal") == (1, 2)
    # Outside the volume, the plane through it is the nearest inside.
    far = cross_point_at(volume, at(0, 0, -100))
    assert far.index("axial") == 0


# -- irregular stacks ------------------------------------------------------------------------


def test_regular_spacing_within_tolerance_is_used_as_it_is() -> None:
    jitter = np.array([0, 0.004, -0.003, 0.005, 0, -0.004, 0.002])
    frames = random_frames()
    volume = Volume.from_frames(stack(np.arange(SLICES) * DS + jitter), frames)
    assert volume.geometry.warnings == ()
    assert not volume.geometry.resampled
    assert volume.geometry.shape == (SLICES, ROWS, COLS)
    assert volume.geometry.slice_spacing == pytest.approx(DS, abs=1e-3)
    assert np.shares_memory(volume.values, frames)  # no copy for a regular stack
    assert (volume.slope, volume.intercept) == (1.0, -1024.0)


def test_a_missing_slice_is_interpolated_with_a_warning_naming_the_gap() -> None:
    distances = [0, 2.5, 5, 10, 12.5, 15]  # 7.5 is missing
    frames = random_frames(6) // 2 * 2  # even values: the interpolated mean is whole
    volume = Volume.from_frames(stack(distances), frames)
    geometry = volume.geometry
    assert geometry.resampled
    assert geometry.shape == (7, ROWS, COLS)
    assert geometry.slice_spacing == pytest.approx(2.5)
    (warning,) = geometry.warnings
    assert "uneven slice spacing" in warning
    assert "5 mm between frames 3 and 4" in warning
    assert "7 slices 2.5 mm apart" in warning
    np.testing.assert_array_equal(volume.values[:3], frames[:3])
    np.testing.assert_array_equal(volume.values[3], (frames[2] + frames[3]) // 2)
    np.testing.assert_array_equal(volume.values[4:], frames[3:])
    # The interpolated slice lies where the missing one would have been.
    np.testing.assert_allclose(volume.voxel_to_patient((3, 0, 0)), at(0, 0, 7.5))


def test_uneven_spacing_is_refused_when_asked_and_when_too_uneven() -> None:
    with pytest.raises(VolumeError, match=r"uneven slice spacing .*5 mm between frames 3 and 4"):
        VolumeGeometry.from_datasets(stack([0, 2.5, 5, 10, 12.5]), irregular="refuse")
    with pytest.raises(VolumeError, match="too uneven to resample"):
        VolumeGeometry.from_datasets(stack([0, 0.5, 1.0, 100]))


def tilted_stack(
    degrees: float, count: int, *, table_step: float, row_spacing: float
) -> list[Dataset]:
    """A CT with its gantry tilted about x: tilted frames, the table moving along z."""
    t = math.radians(degrees)
    orientation = (1.0, 0.0, 0.0, 0.0, math.cos(t), -math.sin(t))
    return [
        frame(at(0, 0, k * table_step), orientation, spacing=(row_spacing, DC))
        for k in range(count)
    ]


def test_gantry_tilt_is_corrected_with_its_angle_in_the_warning() -> None:
    # 30 degrees, 2 mm table steps: each frame lies 1 mm further along its column direction
    # than the orthogonal grid, so with 1 mm rows frame k's row j + k is the grid's row j.
    headers = tilted_stack(30.0, SLICES, table_step=2.0, row_spacing=1.0)
    frames = random_frames()
    volume = Volume.from_frames(headers, frames)
    geometry = volume.geometry
    (warning,) = geometry.warnings
    assert "gantry tilt of 30.00°" in warning
    assert geometry.tilt_degrees == pytest.approx(30.0, abs=1e-3)
    assert geometry.slice_spacing == pytest.approx(2.0 * math.cos(math.radians(30)), rel=1e-6)
    np.testing.assert_allclose(geometry.normal, (0, 0.5, math.cos(math.radians(30))), atol=1e-6)
    fill = frames.min()
    for k in range(SLICES):
        for j in range(ROWS):
            expected = frames[k, j + k] if j + k < ROWS else np.full(COLS, fill)
            np.testing.assert_array_equal(volume.values[k, j], expected, err_msg=f"{k=} {j=}")
    # The corrected grid is orthogonal: one voxel step along the slices is along the normal.
    step = volume.voxel_to_patient((1, 0, 0)) - volume.voxel_to_patient((0, 0, 0))
    np.testing.assert_allclose(step, np.array(geometry.normal) * geometry.slice_spacing)


def test_gantry_tilt_by_half_a_pixel_per_frame_interpolates_linearly() -> None:
    headers = tilted_stack(30.0, 3, table_step=2.0, row_spacing=2.0)
    frames = random_frames(3) // 2 * 2
    volume = Volume.from_frames(headers, frames)
    expected = (frames[1, :-1] + frames[1, 1:]) // 2  # frame 1 at row j + 0.5
    np.testing.assert_array_equal(volume.values[1, :-1], expected)
    np.testing.assert_array_equal(volume.values[0], frames[0])


def test_gantry_tilt_is_refused_when_asked_with_its_angle() -> None:
    headers = tilted_stack(12.5, SLICES, table_step=2.0, row_spacing=DR)
    with pytest.raises(VolumeError, match=r"gantry tilt of 12\.50°"):
        VolumeGeometry.from_datasets(headers, irregular="refuse")


def _changed(keyword: str, value: object) -> list[Dataset]:
    headers = stack(np.arange(SLICES) * DS)
    if value is None:
        del headers[2][keyword]
    else:
        setattr(headers[2], keyword, value)
    return headers


def _far_apart() -> list[Dataset]:
    headers = stack([0, 1, 2])
    headers[0].ImagePositionPatient = ["0", "0", "-1e308"]
    headers[2].ImagePositionPatient = ["0", "0", "1e308"]
    return headers


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (_changed("Rows", ROWS + 1), r"frame 3 is 7x5 pixels \(rows x columns\), frame 1 6x5"),
        (_changed("Columns", COLS - 1), "frame 3 is 6x4 pixels"),
        (_changed("ImageOrientationPatient", list(CORONAL)), "frame 3 has another orientation"),
        (_changed("PixelSpacing", [0.9, DC]), "frame 3 has another pixel spacing"),
        (_changed("ImagePositionPatient", None), "frame 3 has no usable Image Position"),
        (_changed("ImageOrientationPatient", None), "frame 3 has no usable Image Orientation"),
        (_changed("PixelSpacing", None), "frame 3 has no usable Pixel Spacing"),
        (stack([0, 2.5]), "2 frame\\(s\\): a volume needs at least 3"),
        (stack([0, 2.5, 2.5, 5]), "frames 2 and 3 lie at the same position"),
        (stack([0, 5, 2.5, 7.5]), "out of order along the normal: frame 3 lies 2.5 mm before"),
        (_far_apart(), "positions are too far apart"),
    ],
)
def test_frames_that_make_no_volume_are_refused_with_the_reason(
    headers: list[Dataset], reason: str
) -> None:
    with pytest.raises(VolumeError, match=reason):
        VolumeGeometry.from_datasets(headers)


def test_frames_with_different_rescales_become_modality_values() -> None:
    headers = stack(np.arange(SLICES) * DS)
    for k, ds in enumerate(headers):
        ds.RescaleSlope, ds.RescaleIntercept = 1 + k, -k
    frames = random_frames()
    volume = Volume.from_frames(headers, list(frames))
    assert volume.values.dtype == np.float32
    assert (volume.slope, volume.intercept) == (1.0, 0.0)
    for k in range(SLICES):
        np.testing.assert_array_equal(volume.values[k], frames[k] * (1 + k) - k)


def test_a_multiframe_header_gives_each_frame_its_own_position() -> None:
    ds = Dataset()
    ds.Rows, ds.Columns = ROWS, COLS
    shared = Dataset()
    shared.PlaneOrientationSequence = [Dataset()]
    shared.PlaneOrientationSequence[0].ImageOrientationPatient = list(AXIAL)
    shared.PixelMeasuresSequence = [Dataset()]
    shared.PixelMeasuresSequence[0].PixelSpacing = [DR, DC]
    ds.SharedFunctionalGroupsSequence = [shared]
    per_frame = []
    for k in range(SLICES):
        item = Dataset()
        item.PlanePositionSequence = [Dataset()]
        item.PlanePositionSequence[0].ImagePositionPatient = list(at(0, 0, k * DS))
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = per_frame
    geometry = VolumeGeometry.from_datasets([ds] * SLICES, range(SLICES))
    assert geometry.shape == (SLICES, ROWS, COLS)
    assert geometry.slice_spacing == pytest.approx(DS)
    assert geometry.warnings == ()
