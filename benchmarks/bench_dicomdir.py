"""``dicomdir_read_3000``: a DICOMDIR of 3,000 IMAGE records read into the core model.

Ours: :func:`viewer.media.dicomdir.read_dicomdir` (every record parsed, the tree built, each
referenced file checked on disc). Reference: ``dcmdump`` of the same DICOMDIR (a subprocess,
output discarded). The media is made once, deterministically: 3,000 small Explicit VR Little
Endian files (10 patients x 3 studies x 5 series x 20 images) indexed by DCMTK ``dcmmkdir``
(a real writer's DICOMDIR), cached in ``benchmarks/.cache/dicomdir_3000``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from common import cache_dir, interleaved, report
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from viewer.media.dicomdir import read_dicomdir  # noqa: E402

NAME = "dicomdir_read_3000"
PATIENTS, STUDIES, SERIES, IMAGES = 10, 3, 5, 20
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def _uid(*parts: int) -> str:
    return generate_uid(entropy_srcs=["lightbox-bench", *map(str, parts)])


def _write_file(path: Path, p: int, st: int, se: int, im: int) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT_IMAGE
    meta.MediaStorageSOPInstanceUID = _uid(p, st, se, im)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CT_IMAGE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = f"BENCH^PATIENT{p:02d}"
    ds.PatientID = f"BENCH{p:03d}"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = _uid(p, st)
    ds.StudyDate = "20240102"
    ds.StudyTime = "120000"
    ds.StudyID = str(st + 1)
    ds.AccessionNumber = f"A{p:02d}{st}"
    ds.StudyDescription = "BENCH STUDY"
    ds.ReferringPhysicianName = ""
    ds.Modality = "CT"
    ds.SeriesInstanceUID = _uid(p, st, se)
    ds.SeriesNumber = se + 1
    ds.InstanceNumber = im + 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = 8
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.ImagePositionPatient = [0, 0, float(im)]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [1, 1]
    ds.PixelData = np.full((8, 8), im, dtype="<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)


def make_media() -> Path:
    """The cached media folder with DICOMDIR (built once; rebuilt if incomplete)."""
    media = cache_dir("dicomdir_3000")
    dicomdir = media / "DICOMDIR"
    if dicomdir.is_file():
        return dicomdir
    if shutil.which("dcmmkdir") is None:
        raise SystemExit("bench: dicomdir_read_3000 skipped: dcmmkdir (DCMTK) is not installed")
    shutil.rmtree(media / "DICOM", ignore_errors=True)
    for p in range(PATIENTS):
        for st in range(STUDIES):
            for se in range(SERIES):
                folder = media / "DICOM" / f"P{p:02d}" / f"S{st}" / f"SE{se}"
                folder.mkdir(parents=True, exist_ok=True)
                for im in range(IMAGES):
                    _write_file(folder / f"IM{im:04d}", p, st, se, im)
    subprocess.run(
        ["dcmmkdir", "-q", "+r", "-Pgp", "+id", str(media), "+D", str(dicomdir), "DICOM"],
        check=True,
        cwd=media,
    )
    return dicomdir


def main() -> None:
    dicomdir = make_media()
    if shutil.which("dcmdump") is None:
        raise SystemExit("bench: dicomdir_read_3000 skipped: dcmdump (DCMTK) is not installed")
    result = read_dicomdir(dicomdir)
    expected = PATIENTS * STUDIES * SERIES * IMAGES
    if len(result.instances) != expected or result.problems:
        raise SystemExit(
            f"bench: {NAME} failed: {len(result.instances)} of {expected} instances, "
            f"{len(result.problems)} problems"
        )

    def ours() -> None:
        read_dicomdir(dicomdir)

    def reference() -> None:
        subprocess.run(["dcmdump", str(dicomdir)], stdout=subprocess.DEVNULL, check=True)

    ours_s, ref_s = interleaved(ours, reference, reps=7)
    report(NAME, ours_s, ref_s, 2.0, note=f"{expected} IMAGE records")


if __name__ == "__main__":
    main()
