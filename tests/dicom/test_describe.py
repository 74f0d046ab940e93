"""One description of a data set for scan, import and the browser (viewer.dicom.describe)."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence

from viewer.dicom.describe import describe, integer, text
from viewer.media.scan import scan
from viewer.store import Store, import_paths, series_instances


def enhanced_mr(path: Path) -> Path:
    """An enhanced multi-frame header whose orientation is only in the shared groups."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4.5"
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"
    ds.SOPInstanceUID = "1.2.3.4.5"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3", "1.2.3.4"
    ds.PatientName, ds.PatientID = "Doe^Jane", "ENH1"
    ds.Modality, ds.SeriesNumber, ds.NumberOfFrames = "MR", "7", "3"
    ds.Rows, ds.Columns = 4, 4
    plane = Dataset()
    plane.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    shared = Dataset()
    shared.PlaneOrientationSequence = Sequence([plane])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PixelRepresentation = 1, "MONOCHROME2", 0
    ds.PixelData = bytes(48)
    ds.save_as(path, enforce_file_format=True)
    return path


def test_fields_of_a_ct() -> None:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    d = describe(ds)
    assert (d.patient_name, d.patient_id, d.modality) == ("CompressedSamples^CT1", "1CT1", "CT")
    assert (d.rows, d.columns, d.number_of_frames) == (128, 128, 1)
    assert d.image_position == (-158.135803, -179.035797, -75.699997)
    assert d.image_orientation == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    assert d.transfer_syntax_uid == ds.file_meta.TransferSyntaxUID


def _element(group: int, element: int, vr: bytes, value: bytes) -> bytes:
    return struct.pack("<HH", group, element) + vr + struct.pack("<H", len(value)) + value


def test_malformed_values_are_none_and_never_raise() -> None:
    raw = b"".join(
        (
            _element(0x0008, 0x0060, b"CS", b"MR"),
            _element(0x0020, 0x0013, b"IS", b"1A"),  # Instance Number
            _element(0x0020, 0x0032, b"DS", b"1\\nan\\3 "),  # Image Position: NaN
            _element(0x0028, 0x0008, b"IS", b"2.0 "),  # Number of Frames
        )
    )
    ds = pydicom.dcmread(io.BytesIO(raw), force=True)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    d = describe(ds)
    assert d.instance_number is None and d.number_of_frames == 2
    assert d.image_position is None and d.modality == "MR"
    assert integer(ds, "Rows") is None and text(ds, "PatientName") == ""
    assert d.patient_id is None and d.sop_instance_uid == ""


def test_uids_fall_back_to_the_file_meta(tmp_path: Path) -> None:
    ds = pydicom.dcmread(enhanced_mr(tmp_path / "enh.dcm"))
    del ds.SOPInstanceUID
    assert describe(ds).sop_instance_uid == "1.2.3.4.5"


def test_scan_and_import_describe_a_disc_alike(tmp_path: Path, store: Store) -> None:
    """The same fields before and after import: the enhanced header's orientation in the
    shared functional groups used to reach the scan, not the store's index."""
    enhanced_mr(tmp_path / "enh.dcm")
    scanned = scan(tmp_path)
    (instance,) = scanned.instances
    assert instance.image_orientation == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    assert import_paths(store, [tmp_path]).ok
    (stored,) = series_instances(store, "1.2.3.4")
    for field in (
        "sop_instance_uid",
        "number_of_frames",
        "rows",
        "columns",
        "image_orientation",
        "image_position",
    ):
        assert getattr(stored, field) == getattr(instance, field), field
    (patient,) = scanned.patients
    assert patient.patient_name == "Doe^Jane" and patient.patient_id == "ENH1"
