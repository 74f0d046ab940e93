"""viewer.imaging.sr_write: measurements as a TID 1500 Comprehensive SR, checked by dciodvfy and
DCMTK (dsrdump, dsr2xml), and read back into the same shapes.

The CT frames are built here with known values (a square of 40 HU in -1000 HU air), so the
expected numbers are known in advance, not computed by the code under test.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tests.conftest import require_tool
from viewer import __version__
from viewer.dicom import IMPLEMENTATION_CLASS_UID
from viewer.imaging import measure as m
from viewer.imaging import sr_write
from viewer.imaging.decode import read_file

STUDY = "1.2.826.0.1.3680043.8.498.1"
SERIES = "1.2.826.0.1.3680043.8.498.2"


def _ct(instance: int) -> Dataset:
    """A 64x64 CT slice: stored 24 (-1000 HU) with a 20x20 square of 1064 (40 HU) at 20..39."""
    pixels = np.full((64, 64), 24, dtype=np.uint16)
    pixels[20:40, 20:40] = 1064
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = STUDY
    ds.SeriesInstanceUID = SERIES
    ds.PatientName = "Müller^Anna"
    ds.PatientID = "PID-42"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.StudyDate = "20260101"
    ds.StudyTime = "120000"
    ds.StudyID = "S1"
    ds.AccessionNumber = "ACC1"
    ds.ReferringPhysicianName = ""
    ds.Modality = "CT"
    ds.InstanceNumber = instance
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    ds.PixelSpacing = [0.5, 0.25]
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.PixelData = pixels.tobytes()
    return ds


def _datasets(ds: Dataset) -> list[Dataset]:
    """``ds`` and every item nested in it, depth first in document order."""
    out = [ds]
    for element in ds:
        if element.VR == "SQ":
            for item in element.value:
                out += _datasets(item)
    return out


@pytest.fixture
def images() -> list[Dataset]:
    return [_ct(1), _ct(2)]


def _measurements(images: list[Dataset]) -> list[m.Measurement]:
    a, b = (str(ds.SOPInstanceUID) for ds in images)
    return [
        m.Measurement(m.Distance((10.0, 10.0), (10.0, 50.0)), a),  # 40 columns * 0.25 = 10 mm
        m.Measurement(m.Angle((0.0, 10.0), (10.0, 10.0), (10.0, 30.0)), a),  # 90 degrees
        m.Measurement(m.RectROI((22.0, 22.0), (37.0, 37.0)), b),  # inside the 40 HU square
        m.Measurement(m.EllipseROI((20.25, 21.5), (39.75, 38.0)), b),
        m.Measurement(m.FreehandROI(((5.0, 5.0), (5.0, 15.0), (12.5, 10.0), (8.0, 3.0))), a),
        m.Measurement(
            m.bidirectional((30.0, 5.0), (30.0, 45.0), 4.0, scale=m.Scale(0.5, 0.25, "mm")), b
        ),
        m.Measurement(m.RectROI((50.0, 50.0), (50.0, 50.0)), b),  # one pixel: SD undefined
    ]


def _write(tmp_path: Path, images: list[Dataset], **kwargs: Any) -> sr_write.Written:
    return sr_write.measurements_sr(
        _measurements(images), images, out_path=tmp_path / "sr.dcm", **kwargs
    )


def test_values_are_the_measurements_and_units_are_ucum(
    tmp_path: Path, images: list[Dataset]
) -> None:
    written = _write(tmp_path, images)
    values = sr_write.values_of(written.path)
    quantities = [(v["quantity"], v["unit"]) for v in values]
    assert quantities[:2] == [("length", "mm"), ("angle", "°")]
    assert values[0]["value"] == pytest.approx(10.0)
    assert values[1]["value"] == pytest.approx(90.0)
    rect = values[2:7]
    assert [v["quantity"] for v in rect] == ["mean", "SD", "min", "max", "area"]
    assert [v["unit"] for v in rect] == ["HU", "HU", "HU", "HU", "mm²"]
    assert rect[0]["value"] == pytest.approx(40.0)
    assert rect[1]["value"] == pytest.approx(0.0)
    assert rect[4]["value"] == pytest.approx(15 * 15 * 0.5 * 0.25)
    long_short = [v for v in values if v["quantity"] in ("long axis", "short axis")]
    assert [v["value"] for v in long_short] == pytest.approx([10.0, 4.0])
    # the one-pixel ROI: SD is a NUM without a value
    assert values[-4]["quantity"] == "SD" and values[-4]["value"] is None
    ds = read_file(written.path).dataset
    units = {
        str(code.CodeValue)
        for item in _datasets(ds)
        if "MeasurementUnitsCodeSequence" in item
        for code in item.MeasurementUnitsCodeSequence
    }
    assert units == {"mm", "deg", "[hnsf'U]", "mm2"}


def test_header_joins_the_study(tmp_path: Path, images: list[Dataset]) -> None:
    written = _write(tmp_path, images, complete=False)
    ds = read_file(written.path).dataset
    assert ds.SOPClassUID == sr_write.COMPREHENSIVE_SR
    assert ds.StudyInstanceUID == STUDY
    assert ds.SeriesInstanceUID not in (SERIES, "") and ds.SeriesInstanceUID.startswith("2.25.")
    assert ds.SOPInstanceUID == written.sop_instance_uid
    assert ds.PatientName == "Müller^Anna" and ds.PatientID == "PID-42"
    assert ds.Modality == "SR" and ds.Manufacturer == "Lightbox"
    assert ds.SoftwareVersions == __version__
    assert ds.CompletionFlag == "PARTIAL" and ds.VerificationFlag == "UNVERIFIED"
    assert ds.file_meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    evidence = ds.CurrentRequestedProcedureEvidenceSequence[0]
    refs = [
        r.ReferencedSOPInstanceUID
        for r in evidence.ReferencedSeriesSequence[0].ReferencedSOPSequence
    ]
    assert refs == [images[0].SOPInstanceUID, images[1].SOPInstanceUID]


def test_graphic_data_is_column_row_with_the_corner_at_zero(
    tmp_path: Path, images: list[Dataset]
) -> None:
    """PS3.3 C.18.6.1.2: pixel (row 10, column 50)'s centre is x 50.5, y 10.5."""
    written = _write(tmp_path, images)
    ds = read_file(written.path).dataset
    scoords = [item for item in _datasets(ds) if item.get("ValueType") == "SCOORD"]
    assert [float(v) for v in scoords[0].GraphicData] == [10.5, 10.5, 50.5, 10.5]
    assert scoords[0].GraphicType == "POLYLINE"
    rect = scoords[2]
    assert [float(v) for v in rect.GraphicData] == [
        22.5, 22.5, 37.5, 22.5, 37.5, 37.5, 22.5, 37.5, 22.5, 22.5,
    ]  # fmt: skip
    ellipse = scoords[3]
    assert ellipse.GraphicType == "ELLIPSE"
    # major axis (vertical, 19.5 rows) first, then the minor (16.5 columns)
    assert [float(v) for v in ellipse.GraphicData] == [
        30.25,
        20.75,
        30.25,
        40.25,
        22.0,
        30.5,
        38.5,
        30.5,
    ]


def test_read_back_gives_the_same_shapes(tmp_path: Path, images: list[Dataset]) -> None:
    written = _write(tmp_path, images)
    back = sr_write.read_measurements_sr(written.path)
    original = _measurements(images)
    assert len(back) == len(original)
    for got, want in zip(back, original, strict=True):
        assert got.sop_instance_uid == want.sop_instance_uid
        assert got.frame_number == want.frame_number
        assert got.shape.kind == want.shape.kind
        got_points = np.array(m.points_of(got.shape))
        want_points = np.array(m.points_of(want.shape))
        # Graphic Data is FL: float32 precision on a 64-pixel frame
        np.testing.assert_allclose(got_points, want_points, atol=1e-5)
    # quarter-pixel coordinates survive float32 exactly
    assert back[0] == original[0] and back[2] == original[2] and back[3] == original[3]


def test_refusals(tmp_path: Path, images: list[Dataset]) -> None:
    other = _ct(3)
    other.StudyInstanceUID = "1.2.3.999"
    with pytest.raises(sr_write.SrError, match="one study"):
        sr_write.measurements_sr(
            [
                m.Measurement(m.Distance((0, 0), (1, 1)), str(other.SOPInstanceUID)),
                m.Measurement(m.Distance((0, 0), (1, 1)), str(images[0].SOPInstanceUID)),
            ],
            [*images, other],
            out_path=tmp_path / "x.dcm",
        )
    with pytest.raises(sr_write.SrError, match="no data set"):
        sr_write.measurements_sr(
            [m.Measurement(m.Distance((0, 0), (1, 1)), "1.2.3")],
            images,
            out_path=tmp_path / "x.dcm",
        )
    with pytest.raises(sr_write.SrError, match="no frame 2"):
        sr_write.measurements_sr(
            [m.Measurement(m.Distance((0, 0), (1, 1)), str(images[0].SOPInstanceUID), 2)],
            images,
            out_path=tmp_path / "x.dcm",
        )
    assert not (tmp_path / "x.dcm").exists()
    with pytest.raises(sr_write.SrError, match="not a Comprehensive"):
        path = tmp_path / "ct.dcm"
        images[0].save_as(path, enforce_file_format=True)
        sr_write.read_measurements_sr(path)


def test_given_results_are_written_as_given(tmp_path: Path, images: list[Dataset]) -> None:
    measurement = m.Measurement(m.Distance((0, 0), (0, 4)), str(images[0].SOPInstanceUID))
    result = m.Result("distance", (m.Value("length", 1.2345678901234567, "mm"),), "mm")
    written = sr_write.measurements_sr(
        [measurement], images, out_path=tmp_path / "sr.dcm", results=[result]
    )
    assert sr_write.values_of(written.path) == [
        {"quantity": "length", "value": 1.2345678901234567, "unit": "mm"}
    ]


def test_dciodvfy_finds_no_error(tmp_path: Path, images: list[Dataset]) -> None:
    require_tool("dciodvfy")
    written = _write(tmp_path, images)
    out = subprocess.run(
        ["dciodvfy", str(written.path)], capture_output=True, text=True, errors="replace"
    )
    lines = (out.stdout + out.stderr).splitlines()
    errors = [ln for ln in lines if ln.startswith("Error")]
    assert not errors, "\n".join(lines)
    # it did validate our IOD (dciodvfy names it first); warnings are allowed (today: only
    # "Unrecognized defined term <99LIGHTBOX>" for the private coding scheme)
    assert lines and lines[0].strip() == "ComprehensiveSR", lines[:3]


def test_dcmtk_reads_the_report(tmp_path: Path, images: list[Dataset]) -> None:
    require_tool("dsrdump")
    require_tool("dsr2xml")
    written = _write(tmp_path, images)
    dump = subprocess.run(
        ["dsrdump", str(written.path)], capture_output=True, text=True, errors="replace"
    )
    assert dump.returncode == 0, dump.stderr
    assert "Imaging Measurement Report" in dump.stdout
    assert 'NUM:(,,"Length")="10.0" (mm,UCUM' in dump.stdout
    assert 'NUM:(,,"Angle")="90.0" (deg,UCUM' in dump.stdout
    assert 'NUM:(,,"Mean")="40.0" ([hnsf\'U],UCUM' in dump.stdout
    assert "(POLYLINE,10.5/10.5," in dump.stdout
    xml = subprocess.run(
        ["dsr2xml", str(written.path)], capture_output=True, text=True, errors="replace"
    )
    assert xml.returncode == 0, xml.stderr
    assert "<data>10.5/10.5,50.5/10.5</data>" in xml.stdout
    assert "<value>10.0</value>" in xml.stdout and "<value>28.125</value>" in xml.stdout
    assert xml.stdout.count("<meaning>Measurement Group</meaning>") == 7


def test_a_frame_of_a_multiframe_image(tmp_path: Path) -> None:
    """A measurement on frame 3 references that frame (Referenced Frame Number) and comes
    back on frame 3; the header is enough when the results are given."""
    image = _ct(1)
    del image.PixelData
    image.NumberOfFrames = 4
    image.ImagerPixelSpacing = [0.2, 0.2]
    del image.PixelSpacing
    measurement = m.Measurement(m.Distance((1.0, 1.0), (1.0, 11.0)), str(image.SOPInstanceUID), 3)
    result = m.measure(measurement.shape, m.Calibration.from_dataset(image))
    assert result.calibration == m.AT_DETECTOR
    written = sr_write.measurements_sr(
        [measurement], [image], out_path=tmp_path / "sr.dcm", results=[result]
    )
    assert written.notes == ("distance 1: written in mm, measured mm (at detector)",)
    ds = read_file(written.path).dataset
    frames = [
        int(item.ReferencedFrameNumber) for item in _datasets(ds) if "ReferencedFrameNumber" in item
    ]
    assert frames == [3]
    assert sr_write.read_measurements_sr(written.path) == [measurement]
    assert sr_write.values_of(written.path)[0]["value"] == pytest.approx(2.0)


@pytest.mark.filterwarnings("ignore")
def test_damaged_reports_raise_only_sr_error(tmp_path: Path, images: list[Dataset]) -> None:
    """Random byte changes in a report: read_measurements_sr reads it or raises SrError."""
    written = _write(tmp_path, images)
    data = written.path.read_bytes()
    rng = np.random.default_rng(5)
    target = tmp_path / "mutant.dcm"
    read_ok = 0
    for _ in range(150):
        copy = bytearray(data)
        for at in rng.integers(132, len(copy), size=int(rng.integers(1, 6))):
            copy[int(at)] = int(rng.integers(0, 256))
        target.write_bytes(bytes(copy))
        try:
            sr_write.read_measurements_sr(target)
            read_ok += 1
        except sr_write.SrError:
            pass
    assert read_ok > 0
