"""Small synthetic DICOM files for the store tests (deterministic, a few KiB each)."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

ROOT_UID = "1.2.826.0.1.3680043.10.999"


def uid(*parts: object) -> str:
    return ".".join([ROOT_UID, *(str(p) for p in parts)])


def make_dataset(
    study: int = 1,
    series: int = 1,
    instance: int = 1,
    *,
    patient: str = "DOE^JANE",
    patient_id: str = "PID001",
    modality: str = "CT",
    study_date: str = "20240102",
    pixel_seed: int | None = None,
) -> Dataset:
    """A tiny CT image; ``pixel_seed`` changes the pixels (a different data set, same UIDs)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = uid(study, series, instance)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = uid(0)
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = patient
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19600101"
    ds.PatientSex = "F"
    ds.StudyInstanceUID = uid(study)
    ds.StudyDate = study_date
    ds.StudyTime = "101500"
    ds.AccessionNumber = f"ACC{study}"
    ds.StudyDescription = f"Study {study}"
    ds.StudyID = str(study)
    ds.SeriesInstanceUID = uid(study, series)
    ds.SeriesNumber = series
    ds.SeriesDescription = f"Series {series}"
    ds.Modality = modality
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [0.0, 0.0, float(instance)]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    seed = instance if pixel_seed is None else pixel_seed
    ds.PixelData = np.random.default_rng(seed).integers(0, 4096, (8, 8), np.uint16).tobytes()
    return ds


def to_bytes(ds: Dataset) -> bytes:
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def write(path: Path, ds: Dataset) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(to_bytes(ds))
    return path


def bare_implicit(ds: Dataset) -> bytes:
    """The data set alone in Implicit VR Little Endian: no preamble, no File Meta."""
    buf = BytesIO()
    plain = Dataset()
    plain.update(ds)
    plain.save_as(buf, implicit_vr=True, little_endian=True)
    data = buf.getvalue()
    assert data[:2] == b"\x08\x00", "expected to start with group 0008"
    return data


def make_folder(folder: Path, studies: int = 2, series: int = 2, instances: int = 3) -> list[Path]:
    """studies x series x instances files under ``folder`` (nested like a disc)."""
    paths = []
    for st in range(1, studies + 1):
        for se in range(1, series + 1):
            for im in range(1, instances + 1):
                ds = make_dataset(st, se, im, patient=f"PATIENT^{st}", patient_id=f"P{st}")
                paths.append(write(folder / f"S{st}" / f"SE{se}" / f"IM{im}", ds))
    return paths


def dataset_part(data: bytes) -> bytes:
    """The bytes after the File Meta of a Part 10 file (what duplicates are judged on)."""
    from viewer.store.part10 import split_header

    return data[split_header(data[:65536]).dataset_start :]
