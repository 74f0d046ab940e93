"""Slice planes, the nearest slice along a normal and reference lines, on known geometry."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from viewer import model
from viewer.imaging import linking
from viewer.imaging.stack import FrameRef, Stack


def axial(z: float, *, rows: int = 100, columns: int = 80, spacing: float = 0.5) -> Dataset:
    ds = Dataset()
    ds.Rows, ds.Columns = rows, columns
    ds.ImagePositionPatient = [-20.0, -25.0, z]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [spacing, spacing]
    ds.FrameOfReferenceUID = "1.2.3.99"
    return ds


def coronal(*, rows: int = 200, columns: int = 160, spacing: float = 1.0) -> Dataset:
    """Rows run head to foot (z falls), columns run right to left (x grows)."""
    ds = Dataset()
    ds.Rows, ds.Columns = rows, columns
    ds.ImagePositionPatient = [-80.0, 10.0, 100.0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    ds.PixelSpacing = [spacing, spacing]
    ds.FrameOfReferenceUID = "1.2.3.99"
    return ds


def test_a_plane_maps_pixels_to_patient_positions_and_back() -> None:
    plane = linking.plane_of(axial(12.5))
    assert plane is not None and plane.frame_of_reference == "1.2.3.99"
    assert plane.normal == pytest.approx((0, 0, 1))
    # column 10 is 5 mm along x, row 4 is 2 mm along y (spacing 0.5)
    assert plane.to_patient(4, 10) == pytest.approx((-15.0, -23.0, 12.5))
    assert plane.to_image((-15.0, -23.0, 40.0)) == pytest.approx((4, 10))
    assert plane.distance((0, 0, 20.0)) == pytest.approx(7.5)
    assert plane.centre == pytest.approx((-20 + 79 * 0.25, -25 + 99 * 0.25, 12.5))


def test_anisotropic_spacing_is_row_then_column() -> None:
    ds = axial(0)
    ds.PixelSpacing = [2.0, 0.5]  # between rows, between columns (PS3.3 10.7.1.3)
    plane = linking.plane_of(ds)
    assert plane is not None
    assert plane.to_patient(1, 1) == pytest.approx((-19.5, -23.0, 0))


def test_enhanced_multi_frame_geometry_comes_from_the_functional_groups() -> None:
    ds = Dataset()
    ds.Rows, ds.Columns = 64, 64
    shared = Dataset()
    orientation, measures = Dataset(), Dataset()
    orientation.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    measures.PixelSpacing = [0.8, 0.8]
    shared.PlaneOrientationSequence = [orientation]
    shared.PixelMeasuresSequence = [measures]
    ds.SharedFunctionalGroupsSequence = [shared]
    frames = []
    for k in range(3):
        item, position = Dataset(), Dataset()
        position.ImagePositionPatient = [0, 0, 3.0 * k]
        item.PlanePositionSequence = [position]
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = frames
    plane = linking.plane_of(ds, 2)
    assert plane is not None and plane.origin == pytest.approx((0, 0, 6.0))
    assert plane.spacing == (0.8, 0.8)
    assert linking.plane_of(ds, 7) is None  # no such frame, no top-level position


@pytest.mark.parametrize(
    "broken",
    [
        {"PixelSpacing": [0, 1]},
        {"ImageOrientationPatient": [1, 0, 0, 1, 0, 0]},  # rows and columns parallel
        {"ImagePositionPatient": [0, 0]},  # two values, not three
        {"Rows": 0},
    ],
)
def test_broken_geometry_is_no_plane(broken: dict[str, object]) -> None:
    ds = axial(0)
    for keyword, value in broken.items():
        setattr(ds, keyword, value)
    assert linking.plane_of(ds) is None


def _stack(zs: list[float]) -> Stack:
    frames = [
        FrameRef(
            Path(f"{k}.dcm"),
            0,
            model.Instance(
                Path(f"{k}.dcm"),
                f"1.2.{k}",
                image_position=(0.0, 0.0, z),
                image_orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
            ),
        )
        for k, z in enumerate(zs)
    ]
    return Stack("s", "1.2", frames=frames)


def test_the_nearest_slice_along_the_normal_with_and_without_an_offset() -> None:
    stack = _stack([0.0, 5.0, 10.0, 15.0, 20.0])
    positions = linking.stack_positions(stack)
    normal = linking.stack_normal(stack)
    assert normal == pytest.approx((0, 0, 1))
    assert linking.nearest_frame(positions, normal, (3, 4, 7.4)) == 1
    assert linking.nearest_frame(positions, normal, (3, 4, 7.6)) == 2
    assert linking.nearest_frame(positions, normal, (0, 0, 7.4), offset_mm=10.0) == 3
    assert linking.nearest_frame(positions, normal, (0, 0, 500.0)) == 4  # clamped to the end
    assert linking.nearest_frame([None, None], normal, (0, 0, 0)) is None
    # a prior whose slice at 15 mm shows what this one shows at its centre (z = 2.5)
    source = linking.plane_of(axial(2.5))
    assert source is not None
    offset = linking.slice_offset(source, (0, 0, 15.0), normal)
    assert offset == pytest.approx(12.5)
    assert linking.nearest_frame(positions, normal, source.centre, offset_mm=offset) == 3


def test_an_axial_slice_draws_a_horizontal_line_on_a_coronal_image() -> None:
    source = linking.plane_of(axial(20.0))
    target = linking.plane_of(coronal())
    assert source is not None and target is not None
    assert linking.angle_between(source, target) == pytest.approx(90)
    line = linking.reference_line(source, target)
    assert line is not None
    (r0, c0), (r1, c1) = sorted(line, key=lambda p: p[1])
    # z = 100 - row (spacing 1): z = 20 is row 80, across the whole width
    assert r0 == pytest.approx(80) and r1 == pytest.approx(80)
    assert (c0, c1) == pytest.approx((-0.5, 159.5))
    # and the coronal plane (y = 10) is a horizontal row of the axial image: y = -25 + 0.5 row
    back = linking.reference_line(target, source)
    assert back is not None
    assert {round(p[0], 6) for p in back} == {70.0}


def test_parallel_planes_and_a_line_outside_the_image_draw_nothing() -> None:
    a, b = linking.plane_of(axial(0)), linking.plane_of(axial(30))
    assert a is not None and b is not None
    assert linking.reference_line(a, b) is None
    far = linking.plane_of(axial(500.0))
    target = linking.plane_of(coronal())
    assert far is not None and target is not None
    assert linking.reference_line(far, target) is None  # z = 500 is above the coronal image


def test_an_oblique_slice_cuts_two_edges() -> None:
    ds = axial(0)
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0.8, 0.6]  # tilted about x
    source = linking.plane_of(ds)
    target = linking.plane_of(coronal())
    assert source is not None and target is not None
    line = linking.reference_line(source, target)
    assert line is not None
    for row, column in line:
        point = target.to_patient(row, column)
        assert source.distance(point) == pytest.approx(0, abs=1e-6)
