"""Corner text, orientation letters, scale bar and cine rate, from datasets made here."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from tests.qt.conftest import ct_dataset
from viewer.imaging import annotations as notes


def test_corner_text_decodes_names_and_formats_dates() -> None:
    ds = ct_dataset()
    corners = notes.corner_text(ds, 0, 2, 40)
    assert corners.top_left == ["Müller, Jürgen", "ID: PID-42", "DOB: 1960-02-29  Sex: M"]
    assert corners.top_right == ["2024-01-31", "CT THORAX"]
    assert corners.bottom_left == ["Se: 3 Lung 1.0", "Im: 3/40", "Loc: 0.0 mm  Thick: 2.5 mm"]


def test_corner_text_japanese_name_through_character_set() -> None:
    """PS3.5 H.3.1: an ISO 2022 IR 87 name, written as bytes, is read back and shown as text."""
    import io

    from pydicom import dcmread

    ds = ct_dataset()
    ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
    ds.PatientName = (
        b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B"
    )
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    buffer.seek(0)
    name = notes.corner_text(dcmread(buffer), 0, 0, 1).top_left[0]
    assert name == "Yamada, Tarou (山田 太郎)"


def test_slice_location_from_position_when_absent() -> None:
    ds = ct_dataset(z=-12.5)
    del ds.SliceLocation
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]  # coronal: the normal is (0, 1, 0)
    ds.ImagePositionPatient = [0, 30, 0]
    assert notes.slice_location(ds, 0) == pytest.approx(30.0)


def test_enhanced_functional_groups_give_spacing_and_orientation() -> None:
    ds = Dataset()
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [0.7, 0.8]
    measures.SliceThickness = 3
    shared.PixelMeasuresSequence = [measures]
    ds.SharedFunctionalGroupsSequence = [shared]
    frames = []
    for z in (0.0, 4.0):
        item = Dataset()
        plane = Dataset()
        plane.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]  # sagittal
        item.PlaneOrientationSequence = [plane]
        position = Dataset()
        position.ImagePositionPatient = [z, 0, 0]
        item.PlanePositionSequence = [position]
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = frames
    spacing = notes.pixel_spacing(ds, 1)
    assert spacing == notes.Spacing(0.7, 0.8, detector=False)
    letters = notes.edge_letters(notes.image_axes(ds, 1))
    assert letters == {"right": "P", "left": "A", "bottom": "F", "top": "H"}
    assert notes.slice_location(ds, 1) == pytest.approx(-4.0)  # normal (-1, 0, 0)


@pytest.mark.parametrize(
    ("vector", "letters"),
    [
        ((1, 0, 0), "L"),
        ((-1, 0, 0), "R"),
        ((0, 1, 0), "P"),
        ((0, -1, 0), "A"),
        ((0, 0, 1), "H"),
        ((0, 0, -1), "F"),
        ((0.8, -0.6, 0), "LA"),
        ((0.99, 0.1, 0), "L"),  # a slight tilt stays one letter
    ],
)
def test_direction_letters(vector: tuple[float, float, float], letters: str) -> None:
    assert notes.direction_letters(vector) == letters


def test_patient_orientation_letters_for_projection_images() -> None:
    ds = Dataset()
    ds.PatientOrientation = ["A", "F"]
    assert notes.edge_letters(notes.image_axes(ds, 0)) == {
        "right": "A",
        "left": "P",
        "bottom": "F",
        "top": "H",
    }


def test_imager_pixel_spacing_is_marked_as_detector() -> None:
    ds = Dataset()
    ds.ImagerPixelSpacing = [0.15, 0.1]
    spacing = notes.pixel_spacing(ds, 0)
    assert spacing == notes.Spacing(0.15, 0.1, detector=True)
    # Screen horizontal is the column direction unless a quarter turn swaps the axes.
    assert notes.screen_mm_per_pixel(spacing, notes.IDENTITY, 2.0) == pytest.approx(0.05)
    assert notes.screen_mm_per_pixel(spacing, ((0, -1), (1, 0)), 2.0) == pytest.approx(0.075)


@pytest.mark.parametrize(
    ("limit", "length"), [(0.9, 0.5), (7.3, 5), (19.9, 10), (20, 20), (450, 200), (999, 500)]
)
def test_nice_length(limit: float, length: float) -> None:
    assert notes.nice_length(limit) == pytest.approx(length)


def test_cine_rate_sources_in_order() -> None:
    ds = Dataset()
    assert notes.cine_rate(ds) == notes.DEFAULT_FPS
    ds.RecommendedDisplayFrameRate = 25
    assert notes.cine_rate(ds) == 25
    ds.FrameTime = 40.0  # ms
    assert notes.cine_rate(ds) == pytest.approx(25.0)
    ds.FrameTime = 100.0
    assert notes.cine_rate(ds) == pytest.approx(10.0)
    ds.CineRate = 30
    assert notes.cine_rate(ds) == 30
    ds.CineRate = 0  # nonsense falls through to the next source
    assert notes.cine_rate(ds) == pytest.approx(10.0)


def test_lossy_marker_from_attribute_and_transfer_syntax() -> None:
    ds = ct_dataset()
    assert not notes.is_lossy(ds)
    ds.LossyImageCompression = "01"
    assert notes.is_lossy(ds)
    ds.LossyImageCompression = "00"
    assert not notes.is_lossy(ds)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.50"
    assert notes.is_lossy(ds)


@pytest.mark.parametrize(
    ("value", "shown"),
    [("20240131", "2024-01-31"), ("1997.06.09", "1997-06-09"), ("", ""), ("2024", "2024")],
)
def test_dates_in_the_corners(value: str, shown: str) -> None:
    ds = ct_dataset()
    ds.StudyDate = value
    corners = notes.corner_text(ds, 0, 0, 1)
    assert (shown in corners.top_right) == bool(shown)


def test_ultrasound_region_calibration() -> None:
    ds = Dataset()
    doppler = Dataset()
    doppler.PhysicalUnitsXDirection, doppler.PhysicalUnitsYDirection = 4, 7  # s, cm/s
    doppler.PhysicalDeltaX, doppler.PhysicalDeltaY = 0.01, 0.5
    tissue = Dataset()
    tissue.PhysicalUnitsXDirection, tissue.PhysicalUnitsYDirection = 3, 3  # cm
    tissue.PhysicalDeltaX, tissue.PhysicalDeltaY = 0.02, 0.025
    ds.SequenceOfUltrasoundRegions = [doppler, tissue]
    spacing = notes.pixel_spacing(ds, 0)
    assert spacing is not None and not spacing.detector
    assert (spacing.row_mm, spacing.column_mm) == pytest.approx((0.25, 0.2))
    assert spacing.note == "ultrasound region"


@pytest.mark.parametrize(
    ("value", "shown"),
    [(238.184, "238"), (99.0918, "99"), (-600.0, "-600"), (2.75, "2.75"), (5.5, "5.5"), (0.0, "0")],
)
def test_window_values_are_rounded_as_a_reader_reads_them(value: float, shown: str) -> None:
    assert notes.window_value(value) == shown
