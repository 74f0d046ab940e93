"""Media writing benchmarks (issue 5 "Speed").

- ``dicomdir_write_3000`` / ``dicomdir_write_10000``: the DICOMDIR for files already laid out
  under DICOM/, reading their headers (no store metadata), vs ``dcmmkdir +r`` over the same files.
- ``burn_1000``: a STD-GEN-CD folder (files, DICOMDIR, README) for 1,000 uncompressed files vs
  a plain copy of them plus ``dcmmkdir``. Read-back verification and web previews are reported
  apart (``burn_1000_verify``, ``burn_1000_web``, no target).

Synthetic files (deterministic, small CT-like headers) are cached in benchmarks/.cache/burn.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from common import cache_dir, interleaved, report
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from viewer.media import dicomdir_writer, writer
from viewer.media.verify import verify_written

ROOT_UID = "1.2.826.0.1.3680043.10.1467"  # a fixed root for the synthetic data only


def _template(rows: int) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20240102"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "101500"
    ds.AccessionNumber = "A1"
    ds.Modality = "CT"
    ds.Manufacturer = "Synthetic"
    ds.InstitutionName = "Bench"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "Bench study"
    ds.SeriesDescription = "Bench series"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.SliceThickness = "1.0"
    ds.KVP = "120"
    ds.StudyID = "1"
    ds.PatientPosition = "HFS"
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.FrameOfReferenceUID = f"{ROOT_UID}.9"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = rows
    ds.PixelSpacing = [0.5, 0.5]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    pixels = (np.arange(rows * rows, dtype=np.uint16) % 4096).reshape(rows, rows)
    ds.PixelData = pixels.tobytes()
    return ds


def _make(ds: Dataset, n: int, per_series: int, patients: int) -> Dataset:
    patient = n % patients
    series = n // per_series
    ds.PatientName = f"Bench^Patient{patient}"
    ds.PatientID = f"BENCH{patient:04d}"
    ds.StudyInstanceUID = f"{ROOT_UID}.1.{patient}"
    ds.SeriesInstanceUID = f"{ROOT_UID}.2.{series}"
    ds.SeriesNumber = series + 1
    ds.InstanceNumber = n % per_series + 1
    ds.ImagePositionPatient = [0, 0, n % per_series]
    ds.SOPInstanceUID = f"{ROOT_UID}.3.{n}"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def laid_out(count: int) -> Path:
    """``count`` small files under DICOM/ (file IDs as a PDI writer would give them)."""
    root = cache_dir(f"burn/laidout_{count}")
    stamp = root / ".complete"
    if stamp.exists():
        return root
    shutil.rmtree(root / "DICOM", ignore_errors=True)
    ds = _template(64)
    for n in range(count):
        _make(ds, n, 100, 10)
        path = root / "DICOM" / f"S{n // 100:07d}" / f"I{n:07d}"
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True)
    stamp.touch()
    return root


def sources(count: int) -> list[Path]:
    """``count`` uncompressed 256x256 files in one flat folder (as a store would hand them)."""
    root = cache_dir(f"burn/sources_{count}")
    stamp = root / ".complete"
    files = [root / f"img{n:05d}.dcm" for n in range(count)]
    if stamp.exists():
        return files
    ds = _template(256)
    for n, path in enumerate(files):
        _make(ds, n, 100, 4)
        ds.save_as(path, enforce_file_format=True)
    stamp.touch()
    return files


def bench_dicomdir(count: int) -> None:
    root = laid_out(count)
    dcmmkdir = shutil.which("dcmmkdir")
    if dcmmkdir is None:
        print(f"bench: dicomdir_write_{count} skipped (dcmmkdir not installed)", flush=True)
        return

    def ours() -> None:
        result = dicomdir_writer.build_dicomdir(root, fileset_id="BENCH")
        assert result.files == count and not result.problems, result.problems[:3]

    def reference() -> None:
        subprocess.run(
            [dcmmkdir, "-q", "+r", "-nb", "+F", "BENCH", "DICOM"],
            cwd=root,
            check=True,
            stdout=subprocess.DEVNULL,
        )

    ours_s, ref_s = interleaved(ours, reference, reps=5)
    report(f"dicomdir_write_{count}", ours_s, ref_s, 1.5)


def bench_burn(count: int) -> None:
    files = sources(count)
    dcmmkdir = shutil.which("dcmmkdir")
    if dcmmkdir is None:
        print("bench: burn_1000 skipped (dcmmkdir not installed)", flush=True)
        return
    work = cache_dir("burn/work")
    ours_dir, ref_dir = work / "OURS", work / "REF"

    def clean() -> None:
        shutil.rmtree(ours_dir, ignore_errors=True)
        shutil.rmtree(ref_dir, ignore_errors=True)

    def ours() -> None:
        writer.write_media(files, ours_dir, profile="cd", web=False, verify=False)

    def reference() -> None:
        target = ref_dir / "DICOM"
        target.mkdir(parents=True)
        for n, path in enumerate(files):
            shutil.copyfile(path, target / f"I{n:07d}")
        subprocess.run(
            [dcmmkdir, "-q", "+r", "-nb", "DICOM"],
            cwd=ref_dir,
            check=True,
            stdout=subprocess.DEVNULL,
        )

    ours_s, ref_s = interleaved(ours, reference, reps=5, setup=clean)
    report(f"burn_{count}", ours_s, ref_s, 1.5, note="files + DICOMDIR + README, no web/verify")

    # Read-back verification and web previews, each against the plain copy.
    clean()
    result = writer.write_media(files, ours_dir, profile="cd", web=False, verify=False)
    start = time.perf_counter()
    check = verify_written(ours_dir, result.discs[0], "cd")
    verify_s = time.perf_counter() - start
    assert check.ok, check.summary()
    report(f"burn_{count}_verify", verify_s, ref_s, None, note="read-back vs copy + dcmmkdir")
    clean()
    with_web = writer.write_media(files, ours_dir, profile="cd", web=True, verify=False)
    web_s = with_web.timings.get("web", 0.0)
    report(f"burn_{count}_web", web_s, ref_s, None, note="web pages + previews vs copy + dcmmkdir")
    clean()


def main() -> None:
    bench_dicomdir(3000)
    bench_dicomdir(10000)
    bench_burn(1000)


if __name__ == "__main__":
    main()
