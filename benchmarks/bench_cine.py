"""decode_us_jpeg: a 100-frame 640x480 YBR_FULL_422 JPEG Baseline cine into RGB frames.

Ours: :func:`viewer.imaging.decode.decode_frames_parallel` (two processes, forkserver/spawn,
frames written into shared memory; the worker pool is started once, as the application keeps
its workers). Reference: DCMTK ``dcmdjpeg`` on the same file (a subprocess, which also writes
the decoded file). Data: deterministic synthetic frames (numpy), written uncompressed with
pydicom, compressed with ``dcmcjpeg +eb`` (baseline, YBR_FULL_422), cached in benchmarks/.cache.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import cache_dir, interleaved, report

FRAMES, ROWS, COLS = 100, 480, 640


def _make_cine(folder: Path) -> Path:
    out = folder / "us_cine_ybr422.dcm"
    if out.exists():
        return out
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    y, x = np.mgrid[0:ROWS, 0:COLS].astype(np.float32)
    frames = np.empty((FRAMES, ROWS, COLS, 3), np.uint8)
    rng = np.random.default_rng(2)
    for i in range(FRAMES):
        phase = i / FRAMES * 2 * np.pi
        fan = ((np.sin(x / 23 + phase) + np.cos(y / 31 - phase)) * 60 + 110).clip(0, 255)
        frames[i, ..., 0] = fan
        frames[i, ..., 1] = (fan * 0.8 + 20 * np.sin(y / 9)).clip(0, 255)
        frames[i, ..., 2] = (255 - fan * 0.6).clip(0, 255)
        frames[i] = np.clip(frames[i] + rng.integers(0, 8, (ROWS, COLS, 1)), 0, 255)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.3.1"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=["lightbox-bench-cine"])
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.Rows, ds.Columns = ROWS, COLS
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = FRAMES
    ds.FrameTime = 33.3
    ds.PixelData = frames.tobytes()
    raw = folder / "us_cine_rgb.dcm"
    pydicom.dcmwrite(raw, ds, enforce_file_format=True)
    subprocess.run(["dcmcjpeg", "+eb", str(raw), str(out)], check=True, capture_output=True)
    raw.unlink()
    return out


def main() -> None:
    if shutil.which("dcmdjpeg") is None or shutil.which("dcmcjpeg") is None:
        print("bench: decode_us_jpeg skipped (DCMTK dcmcjpeg/dcmdjpeg not installed)")
        return
    from viewer.imaging.decode import decode_frames_parallel
    from viewer.imaging.pool import shutdown_pool

    folder = cache_dir("cine")
    path = _make_cine(folder)
    target = folder / "dcmdjpeg_out.dcm"
    try:
        frames = decode_frames_parallel(path, workers=2)  # starts the pool, checks the result
        assert frames.shape == (FRAMES, ROWS, COLS, 3), frames.shape
        ours, ref = interleaved(
            lambda: decode_frames_parallel(path, workers=2),
            lambda: subprocess.run(["dcmdjpeg", str(path), str(target)], check=True),
            reps=5,
        )
    finally:
        shutdown_pool()
        target.unlink(missing_ok=True)
    report("decode_us_jpeg", ours, ref, 1.5, "2 processes, pooled")


if __name__ == "__main__":
    main()
