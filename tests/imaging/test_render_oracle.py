"""``lightbox render`` against an independent renderer, file by file (issue 2, "Tests").

For every file in pydicom's bundled test set and ``../shared/data`` our rendering of frame 1
with the default window must equal DCMTK's (``dcm2pnm``; ``dcmj2pnm`` for JPEG, ``dcml2pnm`` for
JPEG-LS) within one grey level on at least 99% of pixels. DCMTK is given the window the file
calls for: ``+Wi 1`` (its first Window Center/Width), ``+Wl 1`` (its first VOI LUT) or ``+Wm``
(min-max). This DCMTK cannot decode JPEG 2000: there the oracle is pydicom's
``apply_modality_lut`` + ``apply_windowing`` on the gdcm-decoded array, scaled to 8 bits by the
C.11.2.1.2 formula. DCMTK runs in a thread pool, all files at once, once per test session.

Files left out of the comparison are listed below with the reason; for those the test checks
that the reason still holds (DCMTK still fails, or ours still does) and that rendering them gives
an image or a clear message, never a crash.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
from numpy.typing import NDArray
from PIL import Image

from tests.conftest import SHARED, missing
from viewer.imaging.render import RenderError, render_file

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
SHARED_DATA = SHARED / "data"

JPEG = {
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
}
JPEG_LS = {"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"}
JPEG_2000 = {
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
}
NOT_DICOM_SUFFIXES = {".txt", ".md", ".tsv", ".json", ".gz", ".icc", ".dump", ".py"}

#: Files DCMTK 3.6.7 cannot render here (the test checks that it still fails).
DCMTK_CANNOT: dict[str, str] = {
    "P/SC_rgb_jpeg.dcm": "dcmj2pnm: premature end of the JPEG stream (pydicom decodes it)",
    "S/pydicom-data/JLSL_08_07_0_1F.dcm": "dcml2pnm refuses 7-bit JPEG-LS (Invalid DICOM image)",
    "S/pydicom-data/SC_rgb_32bit.dcm": "DCMTK does not support 32-bit RGB samples",
    "S/pydicom-data/SC_rgb_32bit_2frame.dcm": "DCMTK does not support 32-bit RGB samples",
    "S/pydicom-data/SC_rgb_expb_32bit.dcm": "DCMTK does not support 32-bit RGB samples",
    "S/pydicom-data/SC_rgb_expb_32bit_2frame.dcm": "DCMTK does not support 32-bit RGB samples",
    "S/pydicom-data/gdcm-US-ALOKA-16.dcm": "DCMTK: segmented palettes not yet supported",
    "S/pydicom-data/gdcm-US-ALOKA-16_big.dcm": "DCMTK: segmented palettes not yet supported",
    "S/pydicom-data/liver_deflate.dcm": "DCMTK 3.6.7 predates Deflated Image Frame Compression",
    "S/pydicom-data/liver_nonbyte_aligned_deflate.dcm": "DCMTK 3.6.7 predates Deflated Image "
    "Frame Compression",
    "S/pydicom-data/liver_rle.dcm": "DCMTK cannot decode RLE of 1-bit pixels",
    "S/pydicom-data/liver_nonbyte_aligned_rle.dcm": "DCMTK cannot decode RLE of 1-bit pixels",
    "S/pydicom-data/parametric_map_float.dcm": "DCMTK does not render Float Pixel Data",
    "S/pydicom-data/parametric_map_double_float.dcm": "DCMTK does not render Double Float "
    "Pixel Data",
}

#: Files DCMTK renders wrongly (checked below against the same image in another encoding).
DCMTK_WRONG: dict[str, tuple[str, str]] = {
    "P/rtdose_expb.dcm": (
        "DCMTK 3.6.7 misreads 32-bit big endian pixel data",
        "P/rtdose.dcm",
    ),
    "P/rtdose_expb_1frame.dcm": (
        "DCMTK 3.6.7 misreads 32-bit big endian pixel data",
        "P/rtdose_1frame.dcm",
    ),
}

#: Files where our decoding (viewer.imaging.decode) cannot give the image yet.
OURS_CANNOT: dict[str, str] = {
    "P/SC_ybr_full_422_uncompressed.dcm": "decode.py: uncompressed YBR_FULL_422 "
    "(2 bytes per pixel) is read as 3 samples per pixel",
    "P/badVR.dcm": "decode.py: Number of Frames '1A' is not a number",
}

#: Files where our decode differs from DCMTK's by more than the tolerance (decode's part).
DECODE_DIFFERS: dict[str, str] = {
    "S/pydicom-data/SC_ybr_full_uncompressed.dcm": "YBR_FULL to RGB: pydicom's conversion "
    "differs from DCMTK's by up to 2 levels on 3% of pixels",
}

#: Broken files nobody can render: both must fail, ours with a message naming the file.
BROKEN: dict[str, str] = {
    "P/MR_truncated.dcm": "Pixel Data is truncated (8130 of 8192 bytes)",
    "P/JPEG2000-embedded-sequence-delimiter.dcm": "a sequence delimiter inside the JPEG 2000 "
    "codestream: neither gdcm nor openjpeg decodes it",
}

#: Extra DCMTK options a file needs (what DCMTK's own documentation says to use).
DCMTK_EXTRA: dict[str, list[str]] = {
    "S/hard/GH340.dcm": ["+Ma"],  # ACR-NEMA without Photometric Interpretation
}


@dataclass(frozen=True)
class Case:
    key: str
    path: Path
    tool: str  # dcm2pnm, dcmj2pnm, dcml2pnm, or "pydicom" for JPEG 2000
    window: tuple[str, ...]
    is_image: bool


def _key(path: Path) -> str:
    if path.is_relative_to(PYDICOM_FILES):
        return "P/" + path.relative_to(PYDICOM_FILES).as_posix()
    return "S/" + path.relative_to(SHARED_DATA).as_posix()


def _has_window(item: pydicom.Dataset) -> bool:
    centre = item.get("WindowCenter")
    return centre is not None and centre != ""


def _frame_voi_item(ds: pydicom.Dataset) -> pydicom.Dataset | None:
    for keyword in ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence"):
        groups = ds.get(keyword)
        if groups and groups[0].get("FrameVOILUTSequence"):
            item: pydicom.Dataset = groups[0].FrameVOILUTSequence[0]
            return item
    return None


def _per_frame_rescale(ds: pydicom.Dataset) -> tuple[float, float] | None:
    """Frame 1's rescale when only the Per-Frame Functional Groups give it."""
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared and shared[0].get("PixelValueTransformationSequence"):
        return None
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if not per_frame or not per_frame[0].get("PixelValueTransformationSequence"):
        return None
    item = per_frame[0].PixelValueTransformationSequence[0]
    return float(item.RescaleSlope), float(item.RescaleIntercept)


def _first(value: object) -> float:
    if isinstance(value, list | tuple | pydicom.multival.MultiValue):
        return float(value[0])
    return float(value)  # type: ignore[arg-type]


def _plan(path: Path) -> Case | None:
    try:
        ds = pydicom.dcmread(path, force=True, defer_size=1024)
    except Exception:
        return None
    key = _key(path)
    meta = getattr(ds, "file_meta", None)
    ts = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if ts in JPEG:
        tool = "dcmj2pnm"
    elif ts in JPEG_LS:
        tool = "dcml2pnm"
    elif ts in JPEG_2000:
        tool = "pydicom"
    else:
        tool = "dcm2pnm"
    pixel_keywords = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
    is_image = bool(ds.get("Rows")) and any(k in ds for k in pixel_keywords)
    frame_voi = _frame_voi_item(ds)
    window: tuple[str, ...]
    if _has_window(ds):
        window = ("+Wi", "1")
    elif frame_voi is not None and _has_window(frame_voi):
        # DCMTK 3.6.7 does not read the Frame VOI LUT functional group: give it the window
        center, width = _first(frame_voi.WindowCenter), _first(frame_voi.WindowWidth)
        per_frame = _per_frame_rescale(ds)
        if per_frame is not None:
            # nor a per-frame Pixel Value Transformation (it reads the shared one): give it
            # the window in stored values, where it has the same effect (C.11.2.1.2.1)
            slope, intercept = per_frame
            center = (center - intercept - 0.5) / slope + 0.5
            width = (width - 1) / slope + 1
        window = ("+Ww", repr(center), repr(width))
    elif ds.get("VOILUTSequence") and ds.VOILUTSequence[0].get("LUTDescriptor"):
        window = ("+Wl", "1")
    else:
        window = ("+Wm",)
    return Case(key, path, tool, window, is_image)


def _all_files() -> list[Path]:
    roots = [PYDICOM_FILES] + ([SHARED_DATA] if SHARED_DATA.is_dir() else [])
    files: list[Path] = []
    for root in roots:
        files += [
            p
            for p in sorted(root.rglob("*"))
            if p.is_file() and p.suffix.lower() not in NOT_DICOM_SUFFIXES
        ]
    return files


CASES: list[Case] = [c for c in map(_plan, _all_files()) if c is not None]


@dataclass
class Reference:
    image: NDArray[np.uint8] | None
    error: str


def _run_dcmtk(case: Case, out_dir: Path, n: int) -> Reference:
    out = out_dir / f"{n}.png"
    cmd = [
        case.tool,
        *DCMTK_EXTRA.get(case.key, []),
        "+F", "1", *case.window, "+on", str(case.path), str(out),
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return Reference(None, f"{case.tool} timed out")
    if proc.returncode != 0 or not out.exists():
        lines = proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"]
        return Reference(None, lines[-1])
    with Image.open(out) as img:
        return Reference(np.asarray(img).copy(), "")


def _pydicom_reference(case: Case) -> Reference:
    """JPEG 2000: gdcm-decoded array, pydicom's modality LUT and windowing, scaled to 8 bits."""
    from pydicom.pixels.processing import apply_modality_lut, apply_windowing

    ds = pydicom.dcmread(case.path, force=True)
    try:
        try:
            arr = pydicom.pixels.pixel_array(case.path, index=0, decoding_plugin="gdcm")
        except Exception:  # HTJ2K: only openjpeg decodes it
            arr = pydicom.pixels.pixel_array(case.path, index=0, decoding_plugin="pylibjpeg")
    except Exception as exc:
        return Reference(None, f"pydicom: {type(exc).__name__}: {exc}")
    if arr.ndim == 3:
        return Reference(arr.astype(np.uint8) if arr.dtype == np.uint8 else (arr >> 8), "")
    values = apply_modality_lut(arr, ds)
    if not _has_window(ds):
        # min-max of the modality values (C.11.2.1.2.1 note 4), computed here independently
        low, high = float(values.min()), float(values.max())
        ds.WindowCenter = (low + high + 1) / 2
        ds.WindowWidth = high - low + 1
    windowed = apply_windowing(values, ds, index=0)
    # apply_windowing's output range is the modality range: scale it to 0..255 (C.11.2.1.2)
    bits = int(ds.BitsStored)
    if ds.PixelRepresentation == 0:
        y_min, y_max = 0.0, 2.0**bits - 1
    else:
        y_min, y_max = -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        y_min = y_min * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        y_max = y_max * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    scaled = (windowed - y_min) / (y_max - y_min) * 255.0
    if ds.PhotometricInterpretation == "MONOCHROME1":
        scaled = 255.0 - scaled
    return Reference(np.floor(scaled + 1e-6).clip(0, 255).astype(np.uint8), "")


@pytest.fixture(scope="session")
def references() -> Iterator[dict[str, Reference]]:
    """DCMTK's rendering of every case, made in parallel once per session."""
    for tool in ("dcm2pnm", "dcmj2pnm", "dcml2pnm"):
        if shutil.which(tool) is None:
            missing(f"{tool} is not installed (DCMTK; make test installs it when run as root)")
    out_dir = Path(tempfile.mkdtemp(prefix="lightbox-oracle-"))
    try:
        dcmtk_cases = [c for c in CASES if c.is_image and c.tool != "pydicom"]
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = pool.map(lambda nc: _run_dcmtk(nc[1], out_dir, nc[0]), enumerate(dcmtk_cases))
            refs = {c.key: r for c, r in zip(dcmtk_cases, results, strict=True)}
        yield refs
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


def _compare(ours: NDArray[np.uint8], ref: NDArray[np.uint8], what: str) -> None:
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} != reference {ref.shape}"
    diff = np.abs(ours.astype(np.int16) - ref.astype(np.int16))
    within = float((diff <= 1).mean())
    assert within >= 0.99, (
        f"{what}: only {within:.2%} of pixels within 1 grey level (max difference {diff.max()})"
    )


def _render_or_message(case: Case) -> NDArray[np.uint8] | None:
    try:
        return render_file(case.path).image
    except RenderError as exc:
        assert str(case.path) in str(exc) and exc.reason, "a failure must name file and reason"
        return None


@pytest.mark.parametrize("case", CASES, ids=[c.key for c in CASES])
def test_render_matches_reference(case: Case, references: dict[str, Reference]) -> None:
    if not case.is_image:
        # not an image (SR, RT plan, DICOMDIR, ...): we must say so, not crash
        with pytest.raises(RenderError):
            render_file(case.path)
        return
    if case.key in OURS_CANNOT:
        assert _render_or_message(case) is None, "now renders: drop it from OURS_CANNOT"
        pytest.skip(OURS_CANNOT[case.key])
    ref = _pydicom_reference(case) if case.tool == "pydicom" else references[case.key]
    if case.key in DCMTK_CANNOT:
        assert ref.image is None, f"DCMTK now renders {case.key}: drop it from DCMTK_CANNOT"
        _render_or_message(case)
        pytest.skip(DCMTK_CANNOT[case.key])
    ours = _render_or_message(case)
    if case.key in BROKEN:
        assert ref.image is None and ours is None, f"{case.key} renders now: drop it from BROKEN"
        pytest.skip(BROKEN[case.key])
    assert ref.image is not None, f"the reference cannot render {case.key}: {ref.error}"
    assert ours is not None, f"DCMTK renders {case.key} but we cannot"
    if case.key in DCMTK_WRONG:
        _reason, twin_key = DCMTK_WRONG[case.key]
        twin = next(c for c in CASES if c.key == twin_key)
        _compare(ours, render_file(twin.path).image, f"{case.key} vs {twin_key}")
        _compare(ours, references[twin_key].image, f"{case.key} vs DCMTK on {twin_key}")  # type: ignore[arg-type]
        with pytest.raises(AssertionError):
            _compare(ours, ref.image, case.key)
        return
    if case.key in DECODE_DIFFERS:
        with pytest.raises(AssertionError):
            _compare(ours, ref.image, case.key)
        pytest.skip(DECODE_DIFFERS[case.key])
    _compare(ours, ref.image, case.key)
