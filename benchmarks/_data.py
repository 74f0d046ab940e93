"""Synthetic CT series for the decode and series benchmarks, made once and cached.

A 512x512 signed 16-bit CT (Rescale Intercept -1024, as scanners write it) of a torso-like
phantom: air, a body outline with a fat rim, soft tissue with smooth low-frequency texture,
organs, lungs in the upper slices, a spine and ribs, and about 10 HU of noise. Smooth texture
plus modest noise gives the 3:1 lossless compression ratios of real CT, so codec times are
realistic. The series is written uncompressed (explicit VR little endian) by pydicom and
transcoded with DCMTK (``dcmcjpeg +e1`` JPEG lossless SV1, ``dcmcjpls +el`` JPEG-LS lossless)
or pydicom (``compress(JPEG2000Lossless)`` with pylibjpeg-openjpeg; DCMTK has no free J2K
codec). Everything lands in ``benchmarks/.cache/ct512`` with a marker per variant, so a second
run costs nothing.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
from common import cache_dir
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, generate_uid

#: Bump when the data changes, so that stale caches are rebuilt.
VERSION = "1"
ROOT_UID = "1.2.826.0.1.3680043.8.498."
SIZE = 512
#: Slices in the uncompressed source series; variants take the first ``count`` of them.
SLICES = 300

VARIANTS = {
    "EVRLE": ("uncompressed explicit VR little endian", None),
    "JPEGLL": ("JPEG lossless SV1 (dcmcjpeg +e1)", ["dcmcjpeg", "+e1"]),
    "JLS": ("JPEG-LS lossless (dcmcjpls +el)", ["dcmcjpls", "+el"]),
    "J2K": ("JPEG 2000 lossless (pydicom + pylibjpeg-openjpeg)", None),
}


class MissingTool(RuntimeError):
    pass


def _uid(*parts: object) -> str:
    return str(generate_uid(prefix=ROOT_UID, entropy_srcs=[str(p) for p in parts]))


def phantom_slice(k: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """Stored values (HU + 1024) of slice ``k`` of ``count``, pelvis (0) to chest (1)."""
    t = k / max(count - 1, 1)
    n = SIZE
    y, x = np.mgrid[0:n, 0:n].astype(np.float32)
    cx, cy = n / 2.0, n / 2.0 + 12.0
    hu = np.full((n, n), -1000.0, np.float32)
    rx = 195.0 + 18.0 * np.cos(np.pi * t)
    ry = 135.0 + 8.0 * np.sin(2.0 * np.pi * t)
    r = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2
    body = r < 1.0
    hu[body] = -95.0
    inner = r < 0.82
    texture = 22.0 * np.sin(x / 27.0 + 2.0 * t) * np.cos(y / 35.0 - t) + 12.0 * np.sin(
        (x - y) / 51.0 + 4.0 * t
    )
    hu[inner] = 45.0 + texture[inner]
    if t < 0.55:
        liver = ((x - cx + 65.0) / 85.0) ** 2 + ((y - cy + 5.0) / 65.0) ** 2 < 1.0
        hu[liver & inner] = 62.0 + 0.4 * texture[liver & inner]
        for side in (-1.0, 1.0):
            kidney = ((x - cx - side * 88.0) / 28.0) ** 2 + ((y - cy - 48.0) / 42.0) ** 2 < 1.0
            hu[kidney] = 145.0
    if t > 0.45:
        size = 55.0 + 65.0 * min(1.0, (t - 0.45) / 0.3)
        for side in (-1.0, 1.0):
            lung = ((x - cx - side * 92.0) / (0.9 * size)) ** 2 + ((y - cy + 4.0) / size) ** 2 < 1.0
            sel = lung & inner
            hu[sel] = -840.0 + 25.0 * np.sin(x[sel] / 8.0) * np.cos(y[sel] / 10.0)
        rib_band = np.abs(r - 0.74) < 0.028
        angle = np.arctan2(y - cy, x - cx)
        hu[rib_band & (np.sin(9.0 * angle + 5.0 * t) > 0.35)] = 720.0
    aorta = (x - cx - 18.0) ** 2 + (y - cy - 38.0) ** 2 < 13.0**2
    hu[aorta] = 240.0
    spine = (x - cx) ** 2 + (y - cy - 88.0) ** 2
    hu[spine < 27.0**2] = 1050.0
    hu[spine < 22.0**2] = 310.0
    # Partial-volume blur on the edges (a 3x3 box), then CT noise.
    padded = np.pad(hu, 1, mode="edge")
    blurred = sum(padded[dy : dy + n, dx : dx + n] for dy in range(3) for dx in range(3)) / 9.0
    sigma = np.where(body, 10.0, 3.0).astype(np.float32)
    noisy = blurred + rng.standard_normal((n, n), dtype=np.float32) * sigma
    return np.clip(np.rint(noisy + 1024.0), -1024, 4000).astype(np.int16)


def _dataset(k: int, count: int, pixels: np.ndarray) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"  # CT Image Storage
    ds.file_meta.MediaStorageSOPInstanceUID = _uid("bench-ct", k)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = _uid("bench-study")
    ds.SeriesInstanceUID = _uid("bench-series")
    ds.FrameOfReferenceUID = _uid("bench-for")
    ds.PatientName, ds.PatientID = "BENCH^SYNTHETIC", "BENCH0001"
    ds.PatientBirthDate, ds.PatientSex = "", "O"
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20240101", "120000", "1", ""
    ds.ReferringPhysicianName = ""
    ds.Modality, ds.SeriesNumber, ds.SeriesDescription = "CT", 2, "Synthetic CT 512"
    ds.InstanceNumber = k + 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    z = -150.0 + k
    ds.ImagePositionPatient = [-179.2, -179.2, z]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SliceLocation, ds.SliceThickness = z, 1.0
    ds.PixelSpacing = [0.7, 0.7]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows = ds.Columns = SIZE
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ds.PixelData = pixels.tobytes()
    ds["PixelData"].VR = "OW"
    return ds


def _name(k: int) -> str:
    return f"IM{k + 1:06d}"


def _done(folder: Path, count: int) -> bool:
    marker = folder / ".complete"
    return marker.is_file() and marker.read_text() == f"{VERSION} {count}"


def _mark(folder: Path, count: int) -> None:
    (folder / ".complete").write_text(f"{VERSION} {count}")


def _fresh(folder: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def _evrle() -> Path:
    count = SLICES
    folder = cache_dir("ct512") / "EVRLE"
    if _done(folder, count):
        return folder
    _fresh(folder)
    rng = np.random.default_rng(2024)
    for k in range(count):
        _dataset(k, count, phantom_slice(k, count, rng)).save_as(
            folder / _name(k), enforce_file_format=True
        )
    _mark(folder, count)
    return folder


def _dcmtk(tool: list[str], src: Path, dst: Path) -> None:
    subprocess.run([*tool, str(src), str(dst)], check=True, capture_output=True)


def _j2k(src: Path, dst: Path) -> None:
    ds = pydicom.dcmread(src)
    ds.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg")
    ds.save_as(dst, enforce_file_format=True)


def series(variant: str, count: int) -> Path:
    """The folder holding ``count`` slices of the phantom in ``variant`` (see VARIANTS)."""
    if not 0 < count <= SLICES:
        raise ValueError(f"count must be 1..{SLICES}")
    source = _evrle()
    if variant == "EVRLE" and count == SLICES:
        return source
    folder = cache_dir("ct512") / f"{variant}-{count}"
    if _done(folder, count):
        return folder
    tool = VARIANTS[variant][1]
    if tool is not None and shutil.which(tool[0]) is None:
        raise MissingTool(f"{tool[0]} (DCMTK) is not installed: make bench installs it")
    _fresh(folder)
    names = [_name(k) for k in range(count)]
    with cf.ThreadPoolExecutor(os.cpu_count() or 2) as threads:
        if variant == "EVRLE":
            for n in names:
                shutil.copy(source / n, folder / n)
        elif tool is not None:
            jobs = [threads.submit(_dcmtk, tool, source / n, folder / n) for n in names]
            for job in jobs:
                job.result()
    if variant == "J2K":
        with cf.ProcessPoolExecutor(os.cpu_count() or 2) as procs:
            list(procs.map(_j2k, [source / n for n in names], [folder / n for n in names]))
    _mark(folder, count)
    return folder


def files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith("IM"))
