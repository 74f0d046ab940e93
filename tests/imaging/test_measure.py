"""viewer.imaging.measure: calibration, lengths, angles, ROI statistics, editing, storage, CSV.

Frames are built here with known regions, so every expected number is known in advance (not
computed by the code under test); a few counts come from a brute-force loop over pixel centres,
an independent oracle for the vectorised masks.
"""

from __future__ import annotations

import csv
import io
import json
import math
import warnings
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from viewer.imaging import measure as m
from viewer.imaging.decode import decode_frame
from viewer.imaging.viewport import Viewport

# -- datasets made here --------------------------------------------------------------------------


def _image(
    pixels: NDArray[Any], *, modality: str = "CT", spacing: tuple[float, float] | None = (0.5, 0.5)
) -> Dataset:
    """A monochrome image of ``pixels`` (uint16 stored values); CT: rescale -1024 to HU."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = "1.2.3.4"
    ds.SeriesInstanceUID = "1.2.3.4.5"
    ds.PatientID = "PID-42"
    ds.Modality = modality
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 0
    if modality == "CT":
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    if spacing is not None:
        ds.PixelSpacing = list(spacing)
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    return ds


def _header(**attrs: Any) -> Dataset:
    ds = Dataset()
    for key, value in attrs.items():
        setattr(ds, key, value)
    return ds


def _region(
    x: tuple[int, int], y: tuple[int, int], units: tuple[int, int], delta: tuple[float, float]
) -> Dataset:
    item = Dataset()
    item.RegionSpatialFormat = 1
    item.RegionLocationMinX0, item.RegionLocationMaxX1 = x
    item.RegionLocationMinY0, item.RegionLocationMaxY1 = y
    item.PhysicalUnitsXDirection, item.PhysicalUnitsYDirection = units
    item.PhysicalDeltaX, item.PhysicalDeltaY = delta
    return item


def _ultrasound() -> Dataset:
    """Two B-mode views side by side, calibrated differently, over a spectral Doppler strip."""
    return _header(
        Modality="US",
        SequenceOfUltrasoundRegions=[
            _region((0, 99), (0, 199), (3, 3), (0.02, 0.025)),  # cm: 0.2 mm/col, 0.25 mm/row
            _region((100, 199), (0, 199), (3, 3), (-0.04, 0.05)),  # a flipped axis: |delta|
            _region((0, 199), (200, 299), (4, 7), (0.01, 0.5)),  # s and cm/s: not a length
        ],
    )


def _stats(result: m.Result) -> dict[str, float | None]:
    return {v.quantity: v.value for v in result.values}


# -- calibration and lengths ---------------------------------------------------------------------


def test_a_distance_across_a_known_100_mm_reads_100_mm() -> None:
    calibration = m.Calibration.from_dataset(_image(np.zeros((256, 256))))  # 0.5 mm pixels
    across = m.measure(m.Distance((10, 20), (10, 220)), calibration)  # 200 px
    down = m.measure(m.Distance((20, 7), (220, 7)), calibration)
    assert across.text() == down.text() == "100.0 mm"
    assert across.value("length") == pytest.approx(100.0)
    assert across.calibration == "mm"


def test_anisotropic_spacing_uses_rows_then_columns() -> None:
    """Pixel Spacing is row spacing (vertical) first (PS3.3 10.7.1.3): swapping the two would
    read the diagonal as 162.8 mm."""
    calibration = m.Calibration.from_dataset(_image(np.zeros((8, 8)), spacing=(0.5, 0.25)))
    assert m.length(m.Distance((0, 0), (200, 0)), calibration.scale) == pytest.approx(100.0)
    assert m.length(m.Distance((0, 0), (0, 400)), calibration.scale) == pytest.approx(100.0)
    diagonal = m.Distance((10, 10), (130, 330))  # 60 mm down, 80 mm across
    assert m.measure(diagonal, calibration).value("length") == pytest.approx(100.0)


def test_enhanced_multiframe_spacing_per_frame() -> None:
    ds = _header()
    shared, measures = Dataset(), Dataset()
    measures.PixelSpacing = [0.5, 0.5]
    shared.PixelMeasuresSequence = [measures]
    ds.SharedFunctionalGroupsSequence = [shared]
    frames = []
    for spacing in (None, [0.25, 0.25]):
        item = Dataset()
        if spacing:
            own = Dataset()
            own.PixelSpacing = spacing
            item.PixelMeasuresSequence = [own]
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = frames
    line = m.Distance((0, 0), (0, 200))
    assert m.measure(line, m.Calibration.from_dataset(ds, 0)).text() == "100.0 mm"
    assert m.measure(line, m.Calibration.from_dataset(ds, 1)).text() == "50.0 mm"


def test_imager_pixel_spacing_is_at_detector_and_not_corrected_by_magnification() -> None:
    ds = _header(Modality="DX", ImagerPixelSpacing=[0.2, 0.2])
    ds.EstimatedRadiographicMagnificationFactor = 1.25
    calibration = m.Calibration.from_dataset(ds)
    result = m.measure(m.Distance((0, 0), (0, 500)), calibration)
    assert result.text() == "100.0 mm (at detector)"
    assert result.calibration == "mm (at detector)"
    assert calibration.magnification == pytest.approx(1.25)


@pytest.mark.parametrize(
    ("pixel_spacing", "calibration_type", "label"),
    [
        ([0.2, 0.2], None, "mm (at detector)"),  # a copy of Imager Pixel Spacing (10.7.1.1)
        ([0.16, 0.16], None, "mm"),  # calibrated by the modality
        ([0.2, 0.2], "GEOMETRY", "mm"),  # says it was corrected for the geometry
    ],
)
def test_pixel_spacing_of_a_projection_radiograph(
    pixel_spacing: list[float], calibration_type: str | None, label: str
) -> None:
    ds = _header(Modality="CR", ImagerPixelSpacing=[0.2, 0.2], PixelSpacing=pixel_spacing)
    if calibration_type:
        ds.PixelSpacingCalibrationType = calibration_type
    calibration = m.Calibration.from_dataset(ds)
    assert calibration.scale.label == label
    assert calibration.scale.row_mm == pytest.approx(pixel_spacing[0])


def test_no_spacing_measures_in_pixels() -> None:
    for ds in (None, _header(Modality="OT"), _header(PixelSpacing=[0, 0.5])):
        calibration = m.Calibration.from_dataset(ds)
        result = m.measure(m.Distance((0, 0), (0, 200)), calibration)
        assert (result.text(), result.calibration) == ("200.0 px", "px")
    roi = m.measure(m.RectROI((0, 0), (10, 20)), m.Calibration())
    assert roi.values[-1] == m.Value("area", 200.0, "px²")


def test_ultrasound_region_calibration_applies_inside_its_region_only() -> None:
    calibration = m.Calibration.from_dataset(_ultrasound())
    left = m.measure(m.Distance((10, 10), (110, 10)), calibration)  # 100 rows in region 1
    assert left.text() == "25.0 mm (ultrasound region)"
    assert m.measure(m.Distance((10, 10), (10, 60)), calibration).text() == (
        "10.0 mm (ultrasound region)"
    )
    right = m.measure(m.Distance((10, 150), (110, 150)), calibration)  # region 2: 0.5 mm/row
    assert right.text() == "50.0 mm (ultrasound region)"
    across = m.measure(m.Distance((10, 110), (10, 160)), calibration)
    assert across.value("length") == pytest.approx(20.0)
    square = m.measure(m.RectROI((10, 110), (20, 120)), calibration)  # 10 x 10 px
    assert square.value("area") == pytest.approx(10 * 0.5 * 10 * 0.4)


@pytest.mark.parametrize(
    "shape",
    [
        m.Distance((10, 50), (10, 150)),  # across both B-mode views
        m.Distance((100, 50), (250, 50)),  # from a view into the Doppler strip
        m.Distance((250, 10), (260, 60)),  # in the Doppler strip (s, cm/s)
        m.Distance((350, 10), (360, 10)),  # below every region
        m.RectROI((150, 50), (250, 60)),
    ],
)
def test_a_shape_outside_one_calibrated_region_is_in_pixels(shape: m.Shape) -> None:
    result = m.measure(shape, m.Calibration.from_dataset(_ultrasound()))
    assert result.calibration == "px"
    assert all(v.unit in ("px", "px²") for v in result.values)


def test_pixel_spacing_wins_over_ultrasound_regions() -> None:
    ds = _ultrasound()
    ds.PixelSpacing = [0.1, 0.1]
    result = m.measure(m.Distance((10, 10), (110, 10)), m.Calibration.from_dataset(ds))
    assert result.text() == "10.0 mm"


# -- angles ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "degrees"),
    [((0, 10), (10, 0), 90.0), ((0, 10), (10, 10), 45.0), ((0, 10), (0, -10), 180.0)],
)
def test_angles(a: m.RowCol, b: m.RowCol, degrees: float) -> None:
    shape = m.Angle(a, (0, 0), b)
    result = m.measure(shape, m.Calibration())
    assert result.value("angle") == pytest.approx(degrees)
    assert result.text() == f"{degrees:.1f}°"


def test_angles_are_measured_in_millimetres() -> None:
    """A right angle in pixels, on pixels twice as tall as wide, is 2 atan(1/2) in the patient."""
    shape = m.Angle((10, -10), (0, 0), (10, 10))
    assert m.measure(shape, m.Calibration()).value("angle") == pytest.approx(90.0)
    calibration = m.Calibration(m.Scale(2.0, 1.0, "mm"))
    assert m.measure(shape, calibration).value("angle") == pytest.approx(53.130102354156)


def test_an_angle_without_an_arm_is_undefined() -> None:
    result = m.measure(m.Angle((3, 3), (3, 3), (10, 0)), m.Calibration())
    assert result.value("angle") is None
    assert result.text() == "n/a"


# -- ROI statistics --------------------------------------------------------------------------------


def _ct_with_block() -> tuple[Dataset, NDArray[np.uint16]]:
    """0 HU everywhere, and rows 20-39, columns 30-59 a checkerboard of 40 and 60 HU."""
    pixels = np.full((64, 96), 1024, dtype=np.uint16)
    rows, cols = np.indices((20, 30))
    pixels[20:40, 30:60] = np.where((rows + cols) % 2 == 0, 1064, 1084)
    return _image(pixels), pixels


def test_rectangle_over_a_known_region_gives_its_mean_sd_min_max_and_area() -> None:
    ds, pixels = _ct_with_block()
    frame = m.FrameValues.from_frame(ds, 0, pixels)
    calibration = m.Calibration.from_dataset(ds)
    for corners in (((19.5, 29.5), (39.5, 59.5)), ((39.5, 59.5), (19.5, 29.5))):
        result = m.measure(m.RectROI(*corners), calibration, frame)
        stats = _stats(result)
        assert stats["mean"] == pytest.approx(50.0)
        # 600 values 10 HU from the mean: the sample SD is 10 * sqrt(600 / 599)
        assert stats["SD"] == pytest.approx(10 * math.sqrt(600 / 599))
        assert (stats["min"], stats["max"], stats["pixels"]) == (40.0, 60.0, 600)
        assert stats["area"] == pytest.approx(600 * 0.25)  # 20 x 30 px of 0.5 mm
        assert {v.quantity: v.unit for v in result.values}["mean"] == "HU"
    assert result.text() == (
        "mean 50.0 HU, SD 10.0 HU, min 40.0 HU, max 60.0 HU, pixels 600, area 150.0 mm²"
    )


def test_rescale_gives_hounsfield_units_through_the_decoder() -> None:
    ds, _ = _ct_with_block()
    frame = m.FrameValues.from_frame(ds, 0, decode_frame(ds, 0))
    assert frame.unit == "HU"
    background = m.roi_stats(m.RectROI((0, 0), (10, 10)), frame)
    assert background.channels[0].mean == 0.0  # stored 1024, intercept -1024
    ds.RescaleSlope, ds.RescaleIntercept = 2, -1000
    frame = m.FrameValues.from_frame(ds, 0, decode_frame(ds, 0))
    assert m.roi_stats(m.RectROI((0, 0), (10, 10)), frame).channels[0].mean == 1048.0


def test_modality_lut_sequence_is_applied() -> None:
    pixels = np.array([[0, 1], [2, 3]], dtype=np.uint16)
    ds = _image(pixels, modality="OT", spacing=None)
    item = Dataset()
    item.LUTDescriptor = [4, 0, 16]
    item.LUTData = [0, 100, 400, 900]
    item.ModalityLUTType = "OD"
    ds.ModalityLUTSequence = [item]
    frame = m.FrameValues.from_frame(ds, 0, pixels)
    stats = m.roi_stats(m.RectROI((0, 0), (1, 1)), frame).channels[0]
    assert (stats.mean, stats.minimum, stats.maximum) == (350.0, 0.0, 900.0)
    assert frame.unit == "optical density"


def _disc(rows: int, cols: int, centre: tuple[int, int], radius: int) -> NDArray[np.uint16]:
    r, c = np.indices((rows, cols))
    inside = (r - centre[0]) ** 2 + (c - centre[1]) ** 2 <= radius**2
    return np.where(inside, 1124, 1024).astype(np.uint16)  # 100 HU inside, 0 outside


def test_ellipse_over_a_known_disc_covers_exactly_its_pixels() -> None:
    """317 pixel centres lie within 10 pixels of a centre (Gauss's circle problem, N(10))."""
    pixels = _disc(64, 64, (32, 30), 10)
    ds = _image(pixels)
    frame = m.FrameValues.from_frame(ds, 0, pixels)
    result = m.measure(m.EllipseROI((22, 20), (42, 40)), m.Calibration.from_dataset(ds), frame)
    stats = _stats(result)
    assert stats["pixels"] == 317
    assert (stats["mean"], stats["SD"], stats["min"], stats["max"]) == (100.0, 0.0, 100.0, 100.0)
    assert stats["area"] == pytest.approx(math.pi * 100 * 0.25)


def test_ellipse_mask_against_a_loop_over_pixel_centres() -> None:
    (r0, c0), (r1, c1) = (3.2, 5.7), (17.9, 40.1)
    shape = m.EllipseROI((r0, c0), (r1, c1))
    centre, half = ((r0 + r1) / 2, (c0 + c1) / 2), ((r1 - r0) / 2, (c1 - c0) / 2)
    expected = {
        (r, c)
        for r in range(30)
        for c in range(50)
        if ((r - centre[0]) / half[0]) ** 2 + ((c - centre[1]) / half[1]) ** 2 <= 1
    }
    mask = m.roi_mask(shape, (30, 50))
    rows, cols = np.nonzero(mask.inside)
    assert set(zip((rows + mask.top).tolist(), (cols + mask.left).tolist(), strict=True)) == (
        expected
    )


def _inside_polygon(point: tuple[float, float], vertices: list[tuple[float, float]]) -> bool:
    """Ray casting to the left, one pixel centre at a time: the slow, obvious oracle."""
    y, x = point
    inside = False
    for (ya, xa), (yb, xb) in zip(vertices, vertices[1:] + vertices[:1], strict=True):
        crosses_row = (ya <= y < yb) or (yb <= y < ya)
        if crosses_row and xa + (y - ya) * (xb - xa) / (yb - ya) < x:
            inside = not inside
    return inside


@pytest.mark.parametrize(
    "vertices",
    [
        [(2.3, 3.1), (2.7, 40.4), (27.2, 12.6)],  # a triangle
        [(1.5, 1.5), (1.5, 30.5), (10.5, 30.5), (10.5, 10.5), (25.5, 10.5), (25.5, 1.5)],  # L
        [(5.2, 5.1), (25.3, 25.7), (5.4, 25.2), (25.1, 5.6)],  # a bow tie (self-crossing)
        [(-10.2, -5.3), (15.7, 20.2), (40.1, -3.3)],  # partly outside the frame
        [(2, 2), (2, 12), (12, 12), (12, 2)],  # pixel centres on its sides
        [(5, 15), (15, 25), (25, 15), (15, 5)],  # and on its vertices
    ],
)
def test_freehand_mask_against_a_loop_over_pixel_centres(
    vertices: list[tuple[float, float]],
) -> None:
    mask = m.roi_mask(m.FreehandROI(tuple(vertices)), (30, 50))
    found = np.zeros((30, 50), dtype=bool)
    h, w = mask.inside.shape
    found[mask.top : mask.top + h, mask.left : mask.left + w] = mask.inside
    expected = np.array([[_inside_polygon((r, c), vertices) for c in range(50)] for r in range(30)])
    assert expected.any()
    assert np.array_equal(found, expected)


def test_freehand_over_a_known_region_gives_its_mean() -> None:
    ds, pixels = _ct_with_block()
    frame = m.FrameValues.from_frame(ds, 0, pixels)
    # the block's outline, clockwise and counter-clockwise, through extra points on its sides
    outline = [(19.5, 29.5), (19.5, 45.0), (19.5, 59.5), (39.5, 59.5), (39.5, 29.5)]
    for vertices in (outline, outline[::-1]):
        stats = _stats(m.measure(m.FreehandROI(tuple(vertices)), m.Calibration(), frame))
        assert (stats["mean"], stats["min"], stats["max"], stats["pixels"]) == (50, 40, 60, 600)
        assert stats["area"] == pytest.approx(600.0)


def test_large_polygons_are_filled_in_chunks_with_the_same_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    theta = np.linspace(0, 2 * np.pi, m.MAX_VERTICES, endpoint=False)
    shape = m.FreehandROI(
        tuple(zip(200 + 150 * np.sin(theta), 210 + 180 * np.cos(theta), strict=True))
    )
    whole = m.roi_mask(shape, (400, 420))
    monkeypatch.setattr(m, "_CROSSINGS_PER_CHUNK", 97)
    chunked = m.roi_mask(shape, (400, 420))
    assert (whole.top, whole.left) == (chunked.top, chunked.left)
    assert np.array_equal(whole.inside, chunked.inside)
    assert whole.count == pytest.approx(math.pi * 150 * 180, rel=0.01)


def test_an_roi_outside_the_frame_or_of_one_pixel() -> None:
    ds, pixels = _ct_with_block()
    frame = m.FrameValues.from_frame(ds, 0, pixels)
    outside = m.roi_stats(m.RectROI((100, 100), (120, 130)), frame)
    assert (outside.count, outside.channels) == (0, ())
    assert m.roi_mask(m.EllipseROI((-20, -20), (-5, -5)), (64, 96)).count == 0
    one = m.measure(m.RectROI((19.6, 29.6), (20.4, 30.4)), m.Calibration(), frame)
    assert (_stats(one)["pixels"], _stats(one)["mean"], _stats(one)["SD"]) == (1, 40.0, None)
    assert "SD n/a" in one.text()


def test_rois_far_beyond_the_frame_cost_only_the_frame() -> None:
    """The largest coordinates allowed: a mask no larger than the frame, no overflow warning."""
    big = m.MAX_COORDINATE
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for shape in (
            m.FreehandROI(((-big, -big), (-big, big), (big, 0))),
            m.EllipseROI((-big, -big), (big, big)),
            m.RectROI((-big, -big), (big, big)),
        ):
            mask = m.roi_mask(shape, (10, 12))
            assert mask.inside.shape == (10, 12) and mask.count == 120


def test_colour_statistics_per_channel() -> None:
    rgb = np.zeros((20, 30, 3), dtype=np.uint8)
    rgb[5:10, 5:15] = (200, 100, 10)
    rgb[5:10, 15:25] = (100, 50, 30)
    ds = _header(PhotometricInterpretation="RGB", SamplesPerPixel=3, Rows=20, Columns=30)
    frame = m.FrameValues.from_frame(ds, 0, rgb)
    stats = _stats(m.measure(m.RectROI((5, 5), (9, 24)), m.Calibration(), frame))
    assert (stats["mean R"], stats["mean G"], stats["mean B"]) == (150.0, 75.0, 20.0)
    assert (stats["min R"], stats["max B"], stats["pixels"]) == (100.0, 30.0, 100)


def test_palette_colour_statistics_are_those_of_its_palette() -> None:
    stored = np.array([[0, 1], [1, 1]], dtype=np.uint8)
    ds = _header(PhotometricInterpretation="PALETTE COLOR", PixelRepresentation=0)
    for colour, data in (("Red", [255, 0]), ("Green", [0, 255]), ("Blue", [0, 51])):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [2, 0, 8])
        setattr(ds, f"{colour}PaletteColorLookupTableData", bytes(data))
    frame = m.FrameValues.from_frame(ds, 0, stored)
    stats = _stats(m.measure(m.RectROI((0, 0), (1, 1)), m.Calibration(), frame))
    assert (stats["mean R"], stats["mean G"], stats["max B"]) == (63.75, 191.25, 51.0)


# -- bidirectional ---------------------------------------------------------------------------------


def test_bidirectional_short_axis_is_perpendicular_in_millimetres() -> None:
    scale = m.Scale(0.5, 0.25, "mm")
    shape = m.bidirectional((10, 10), (50, 90), 8.0, scale=scale)
    long_mm = scale.physical(np.subtract(shape.p1, shape.p0))
    short_mm = scale.physical(np.subtract(shape.q1, shape.q0))
    assert float(np.dot(long_mm, short_mm)) == pytest.approx(0.0, abs=1e-9)
    assert float(np.dot(np.subtract(shape.p1, shape.p0), np.subtract(shape.q1, shape.q0))) != (
        pytest.approx(0.0, abs=1e-3)
    )  # in pixels it is not: the spacing matters
    result = m.measure(shape, m.Calibration(scale))
    assert result.value("short axis") == pytest.approx(8.0)
    assert result.value("long axis") == pytest.approx(math.hypot(40 * 0.5, 80 * 0.25))
    crossing = (np.add(shape.q0, shape.q1)) / 2
    assert crossing == pytest.approx((30.0, 50.0))


def test_dragging_a_bidirectional_keeps_it_perpendicular() -> None:
    scale = m.Scale(0.5, 0.25, "mm")
    shape = m.bidirectional((10, 10), (10, 90), 10.0, scale=scale, at=0.25)
    turned = m.with_handle(shape, 1, (60, 70), scale=scale)
    assert isinstance(turned, m.Bidirectional)
    long_mm = scale.physical(np.subtract(turned.p1, turned.p0))
    short_mm = scale.physical(np.subtract(turned.q1, turned.q0))
    assert float(np.dot(long_mm, short_mm)) == pytest.approx(0.0, abs=1e-9)
    assert m.axes(turned, scale)[1] == pytest.approx(10.0)
    crossing = np.add(turned.q0, turned.q1) / 2
    assert crossing == pytest.approx(np.add(turned.p0, 0.25 * np.subtract(turned.p1, turned.p0)))
    # a short-axis end slides along the perpendicular, never across the long axis
    longer = m.with_handle(shape, 2, (30, 40), scale=scale)
    assert isinstance(longer, m.Bidirectional)
    assert longer.q1 == pytest.approx(shape.q1)
    assert longer.q0 == pytest.approx((30, 30))  # 20 rows (10 mm) below the crossing
    across = m.with_handle(shape, 2, (0, 30), scale=scale)
    assert isinstance(across, m.Bidirectional)
    assert across.q0 == pytest.approx((10, 30))


# -- hit-testing and editing -----------------------------------------------------------------------


def test_hit_on_handles_edges_and_nothing() -> None:
    line = m.Distance((10, 10), (10, 110))
    assert m.hit(line, (11, 12), 3) == m.Hit(0)
    assert m.hit(line, (10, 108), 3) == m.Hit(1)
    assert m.hit(line, (12, 60), 3) == m.Hit(None)
    assert m.hit(line, (14, 60), 3) is None
    assert m.hit(line, (10, 115), 3) is None  # past the end
    rect = m.RectROI((10, 10), (30, 50))
    assert m.hit(rect, (11, 49), 2) == m.Hit(1)  # top-right corner
    assert m.hit(rect, (29, 11), 2) == m.Hit(3)
    assert m.hit(rect, (20, 51), 2) == m.Hit(None)  # right side
    assert m.hit(rect, (20, 30), 2) is None  # inside is not a hit
    ellipse = m.EllipseROI((10, 10), (30, 50))
    assert m.hit(ellipse, (10.5, 30), 1) == m.Hit(None)  # the top of the outline
    assert m.hit(ellipse, (20, 30), 1) is None
    angle = m.Angle((0, 20), (20, 20), (20, 40))
    assert m.hit(angle, (20, 21), 2) == m.Hit(1)
    assert m.hit(angle, (10, 21), 2) == m.Hit(None)
    polygon = m.FreehandROI(((0, 0), (0, 20), (20, 0)))
    assert m.hit(polygon, (10, 0.5), 1) == m.Hit(None)  # the closing side
    assert m.hit(polygon, (10, 11), 1) == m.Hit(None)
    assert m.hit(polygon, (5, 5), 1) is None
    assert m.hit(polygon, (19, 1), 2) == m.Hit(2)


def test_moved_shapes_keep_their_values() -> None:
    calibration = m.Calibration(m.Scale(0.5, 0.25, "mm"))
    shapes: list[m.Shape] = [
        m.Distance((1, 2), (30, 40)),
        m.Angle((0, 10), (0, 0), (10, 10)),
        m.RectROI((1, 2), (11, 22)),
        m.EllipseROI((1, 2), (11, 22)),
        m.FreehandROI(((0, 0), (0, 10), (10, 0))),
        m.bidirectional((0, 0), (20, 20), 5.0),
    ]
    for shape in shapes:
        moved = m.moved(shape, drow=5, dcol=-3)
        assert type(moved) is type(shape)
        assert m.handles(moved)[0] == pytest.approx(np.add(m.handles(shape)[0], (5, -3)))
        before, after = m.measure(shape, calibration), m.measure(moved, calibration)
        assert [v.value for v in after.values] == pytest.approx([v.value for v in before.values])
    with pytest.raises(TypeError):
        m.moved(shapes[0], 5, -3)  # type: ignore[misc]


def test_dragging_a_corner_keeps_the_opposite_one_and_the_handle() -> None:
    rect = m.RectROI((10, 10), (30, 50))
    for handle, point in ((0, (5, 5)), (1, (0, 60)), (2, (40, 70)), (3, (35, 0))):
        dragged = m.with_handle(rect, handle, point)
        assert m.handles(dragged)[handle] == point
        assert m.handles(dragged)[(handle + 2) % 4] == m.handles(rect)[(handle + 2) % 4]
    line = m.with_handle(m.Distance((0, 0), (0, 10)), 1, (0, 20))
    assert line == m.Distance((0, 0), (0, 20))
    polygon = m.with_handle(m.FreehandROI(((0, 0), (0, 10), (10, 0))), 2, (20, 0))
    assert polygon == m.FreehandROI(((0, 0), (0, 10), (20, 0)))
    with pytest.raises(IndexError):
        m.with_handle(rect, 4, (0, 0))


def test_view_points_are_converted_to_pixel_centres() -> None:
    """A pixel's centre taken to the screen and back through the viewport is that pixel."""
    viewport = Viewport(count=1, screen=(800.0, 600.0), image=(96, 64))
    viewport.rotate()
    viewport.flip()
    for pixel in ((0, 0), (63, 95), (20, 37)):
        screen = viewport.image_to_screen(m.to_view(pixel))
        assert viewport.pixel_at(screen) == pixel
        assert m.from_view(viewport.screen_to_image(screen)) == pytest.approx(pixel)


# -- storage form ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape",
    [
        m.Distance((1.25, 2), (30, 40.5)),
        m.Angle((0, 10), (0, 0), (10, 10)),
        m.RectROI((1, 2), (11, 22)),
        m.EllipseROI((1, 2), (11, 22)),
        m.FreehandROI(((0, 0), (0, 10), (10, 0), (5, -3.5))),
        m.bidirectional((0, 0), (20, 20), 5.0),
    ],
)
def test_dict_round_trip_through_json(shape: m.Shape) -> None:
    measurement = m.Measurement(shape, "1.2.840.99.7", 3)
    data = json.loads(json.dumps(m.to_dict(measurement)))
    assert data["version"] == 1 and data["kind"] == shape.kind
    assert m.from_dict(data) == measurement


def _good() -> dict[str, Any]:
    return m.to_dict(m.Measurement(m.Distance((0, 0), (1, 1)), "1.2.3", 1))


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: [d], "mapping"),
        (lambda d: {k: v for k, v in d.items() if k != "points"}, "without points"),
        (lambda d: {**d, "colour": "red"}, "unknown keys colour"),
        (lambda d: {**d, "version": 2}, "version 2"),
        (lambda d: {**d, "version": True}, "version True"),
        (lambda d: {**d, "kind": "circle"}, "unknown kind 'circle'"),
        (lambda d: {**d, "kind": ["distance"]}, "unknown kind"),
        (lambda d: {**d, "sop_instance_uid": 123}, "sop_instance_uid is int"),
        (lambda d: {**d, "sop_instance_uid": "1.2.x"}, "is not a UID"),
        (lambda d: {**d, "sop_instance_uid": "1." * 40 + "1"}, "is not a UID"),
        (lambda d: {**d, "frame_number": 0}, "frame_number 0"),
        (lambda d: {**d, "frame_number": "1"}, "frame_number '1'"),
        (lambda d: {**d, "frame_number": True}, "frame_number True"),
        (lambda d: {**d, "points": "0,0,1,1"}, "points are str"),
        (lambda d: {**d, "points": [[0, 0]]}, "has 2 points, not 1"),
        (lambda d: {**d, "points": [[0, 0], [1]]}, "p1 has 1 coordinates"),
        (lambda d: {**d, "points": [[0, 0], [1, "2"]]}, "p1 holds str"),
        (lambda d: {**d, "points": [[0, 0], [1, float("nan")]]}, "not a finite number"),
        (lambda d: {**d, "points": [[0, 0], [1, True]]}, "p1 holds bool"),
        (lambda d: {**d, "points": [[0, 0], [1, 1e300]]}, "beyond ±1e\\+06"),
        (lambda d: {**d, "kind": "freehand"}, "3 to 4096 vertices, not 2"),
        (
            lambda d: {**d, "kind": "freehand", "points": [[0, i] for i in range(5000)]},
            "not 5000",
        ),
    ],
)
def test_malformed_dicts_are_refused_naming_the_problem(change: Any, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("(", r"\(")):
        m.from_dict(change(_good()))


def test_refusals_do_not_echo_control_characters() -> None:
    with pytest.raises(ValueError) as caught:
        m.from_dict({**_good(), "sop_instance_uid": "1.2\x1b[31m"})
    assert "\x1b" not in str(caught.value)


# -- CSV -------------------------------------------------------------------------------------------


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_csv_has_a_header_and_a_line_per_value() -> None:
    ds, pixels = _ct_with_block()
    pixels[:10, :10] = 24  # -1000 HU: a negative number stays a number
    frame = m.FrameValues.from_frame(ds, 0, pixels)
    calibration = m.Calibration.from_dataset(ds)
    line = m.Measurement(m.Distance((10, 20), (10, 220)), ds.SOPInstanceUID, 1)
    roi = m.Measurement(m.RectROI((-0.5, -0.5), (9.5, 9.5)), ds.SOPInstanceUID, 1)
    rows = [
        m.CsvRow.of(ds, line, m.measure(line.shape, calibration)),
        m.CsvRow.of(ds, roi, m.measure(roi.shape, calibration, frame)),
    ]
    table = _rows(m.measurements_csv(rows))
    assert table[0] == list(m.CSV_HEADER)
    assert table[1] == [
        "PID-42", "1.2.3.4", "1.2.3.4.5", ds.SOPInstanceUID, "1", "distance", "length", "100",
        "mm", "mm",
    ]  # fmt: skip
    by_quantity = {row[6]: row for row in table[2:]}
    assert list(by_quantity) == ["mean", "SD", "min", "max", "pixels", "area"]
    assert by_quantity["mean"][7:9] == ["-1000", "HU"]
    assert by_quantity["SD"][7] == "0"
    assert by_quantity["area"][7:] == ["25", "mm²", "mm"]


def test_csv_cells_from_files_cannot_run_formulas_or_control_a_terminal() -> None:
    result = m.Result("distance", (m.Value("length", -3.5, "=unit"), m.Value("SD", None, "")), "mm")
    row = m.CsvRow(
        "=cmd|' /C calc'!A0",
        "+1.2.3",
        " @SUM(A1)",
        "-2+3",
        2,
        result,
    )
    text = m.measurements_csv([row, m.CsvRow("Smith\x1b[2J\r\n=x", "1", "2", "3", 1, result)])
    assert "\x1b" not in text
    table = _rows(text)
    assert table[1][:4] == ["'=cmd|' /C calc'!A0", "'+1.2.3", "' @SUM(A1)", "'-2+3"]
    assert table[1][7:9] == ["-3.5", "'=unit"]  # our number is left alone, the file's unit not
    assert table[2][6:9] == ["SD", "", ""]  # an undefined SD is an empty cell
    assert table[3][0] == "Smith\\x1b[2J\\r\\n=x"
    assert len(table) == 5
