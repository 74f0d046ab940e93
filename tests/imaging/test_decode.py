"""Decoding every transfer syntax, checked against independent oracles.

Oracles, strongest first:
- DCMTK: ``dcmdjpeg`` / ``dcmdjpls`` / ``dcmdrle`` write the decoded pixels uncompressed; we read
  those bytes back with plain numpy (no pydicom decoding involved).
- The same image stored uncompressed in the test set (693_UNCR vs 693_J2KR, liver vs liver_rle,
  dcm_qa_ts/1.dcm vs its RLE/JPEG/JPEG-LS/J2K copies): raw bytes read with numpy.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from tests.conftest import require_tool
from viewer.imaging import decode
from viewer.imaging.decode import (
    DecodeError,
    decode_all,
    decode_frame,
    decode_frames_parallel,
    frame_count,
    plugin_status,
    read_file,
)
from viewer.imaging.pool import shutdown_pool


def _bundled(name: str) -> Path:
    path = get_testdata_file(name)
    assert path is not None, name
    return Path(path)


def _raw_native(path: Path) -> np.ndarray:
    """Pixels of an uncompressed little-endian file read with numpy only (no pydicom decoding)."""
    ds = pydicom.dcmread(path, force=True)
    assert not ds.file_meta.TransferSyntaxUID.is_compressed
    bits = ds.BitsAllocated
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    spp = int(ds.get("SamplesPerPixel", 1))
    if bits == 1:
        flat = np.unpackbits(np.frombuffer(ds.PixelData, np.uint8), bitorder="little")
        arr = flat[: frames * ds.Rows * ds.Columns].reshape(frames, ds.Rows, ds.Columns)
        return arr
    kind = "i" if ds.PixelRepresentation == 1 else "u"
    order = "<" if ds.file_meta.TransferSyntaxUID != pydicom.uid.ExplicitVRBigEndian else ">"
    dtype = np.dtype(f"{order}{kind}{bits // 8}")
    count = frames * ds.Rows * ds.Columns * spp
    arr = np.frombuffer(ds.PixelData, dtype, count=count)
    shape: tuple[int, ...] = (frames, ds.Rows, ds.Columns) + ((spp,) if spp > 1 else ())
    if spp > 1 and ds.get("PlanarConfiguration", 0) == 1:
        arr = arr.reshape(frames, spp, ds.Rows, ds.Columns).transpose(0, 2, 3, 1)
        return np.ascontiguousarray(arr).astype(dtype.newbyteorder("="))
    return arr.reshape(shape).astype(dtype.newbyteorder("="))


def _dcmtk_decoded(tool: str, src: Path, tmp_path: Path) -> np.ndarray:
    exe = require_tool(tool)
    out = tmp_path / f"{src.name}.{tool}.dcm"
    subprocess.run([exe, str(src), str(out)], check=True, capture_output=True, timeout=120)
    return _raw_native(out)


# -- reference table: file, transfer syntax, frames, one frame's shape and dtype, oracle -------
# oracle: ("dcmtk", tool, max abs diff) or ("same", uncompressed twin) or ("values", {...}).
SHARED_TABLE: list[tuple[str, str, int, tuple[int, ...], str, tuple[object, ...]]] = [
    ("dcm_qa_ts/1.dcm", "1.2.840.10008.1.2.1", 1, (384, 384), "uint16", ("self",)),
    ("dcm_qa_ts/2.dcm", "1.2.840.10008.1.2", 1, (384, 384), "uint16", ("same", "dcm_qa_ts/1.dcm")),
    ("dcm_qa_ts/3.dcm", "1.2.840.10008.1.2.2", 1, (384, 384), "uint16", ("self",)),
    ("dcm_qa_ts/4.dcm", "1.2.840.10008.1.2.5", 1, (384, 384), "uint16", ("dcmtk", "dcmdrle", 0)),
    (
        "dcm_qa_ts/5.dcm",
        "1.2.840.10008.1.2.4.70",
        1,
        (384, 384),
        "uint16",
        ("dcmtk", "dcmdjpeg", 0),
    ),
    (
        "dcm_qa_ts/7.dcm",
        "1.2.840.10008.1.2.4.80",
        1,
        (384, 384),
        "uint16",
        ("dcmtk", "dcmdjpls", 0),
    ),
    (
        "dcm_qa_ts/9.dcm",
        "1.2.840.10008.1.2.4.90",
        1,
        (384, 384),
        "uint16",
        ("same", "dcm_qa_ts/1.dcm"),
    ),
    (
        "pydicom-data/693_J2KR.dcm",
        "1.2.840.10008.1.2.4.90",
        1,
        (512, 512),
        "int16",
        ("same", "pydicom-data/693_UNCR.dcm"),
    ),
    (
        "pydicom-data/MR2_J2KR.dcm",
        "1.2.840.10008.1.2.4.90",
        1,
        (1024, 1024),
        "uint16",
        ("same", "pydicom-data/MR2_UNCR.dcm"),
    ),
    (
        "pydicom-data/MR2_J2KI.dcm",
        "1.2.840.10008.1.2.4.91",
        1,
        (1024, 1024),
        "uint16",
        ("close", "pydicom-data/MR2_UNCI.dcm", 0.99),
    ),
    (
        "pydicom-data/US1_J2KR.dcm",
        "1.2.840.10008.1.2.4.90",
        1,
        (480, 640, 3),
        "uint8",
        ("same", "pydicom-data/US1_UNCR.dcm"),
    ),
    (
        "pydicom-data/US1_J2KI.dcm",
        "1.2.840.10008.1.2.4.91",
        1,
        (480, 640, 3),
        "uint8",
        ("close", "pydicom-data/US1_UNCI.dcm", 0.99),
    ),
    (
        "pydicom-data/HTJ2KLossless_08_RGB.dcm",
        "1.2.840.10008.1.2.4.201",
        1,
        (480, 640, 3),
        "uint8",
        ("values",),
    ),
    (
        "pydicom-data/HTJ2K_08_RGB.dcm",
        "1.2.840.10008.1.2.4.203",
        1,
        (480, 640, 3),
        "uint8",
        ("values",),
    ),
    (
        "pydicom-data/JPEG-LL.dcm",
        "1.2.840.10008.1.2.4.70",
        1,
        (1024, 256),
        "int16",
        ("dcmtk", "dcmdjpeg", 0),
    ),
    (
        "pydicom-data/JLSL_RGB_ILV1.dcm",
        "1.2.840.10008.1.2.4.80",
        1,
        (256, 256, 3),
        "uint8",
        ("dcmtk", "dcmdjpls", 0),
    ),
    (
        "pydicom-data/JLSN_RGB_ILV0.dcm",
        "1.2.840.10008.1.2.4.81",
        1,
        (256, 256, 3),
        "uint8",
        ("dcmtk", "dcmdjpls", 0),
    ),
    (
        "pydicom-data/emri_small_RLE.dcm",
        "1.2.840.10008.1.2.5",
        10,
        (64, 64),
        "uint16",
        ("same", "pydicom-data/emri_small.dcm"),
    ),
    (
        "pydicom-data/emri_small_big_endian.dcm",
        "1.2.840.10008.1.2.2",
        10,
        (64, 64),
        "uint16",
        ("same", "pydicom-data/emri_small.dcm"),
    ),
    (
        "pydicom-data/emri_small_jpeg_ls_lossless.dcm",
        "1.2.840.10008.1.2.4.80",
        10,
        (64, 64),
        "uint16",
        ("same", "pydicom-data/emri_small.dcm"),
    ),
    (
        "pydicom-data/emri_small_jpeg_2k_lossless.dcm",
        "1.2.840.10008.1.2.4.90",
        10,
        (64, 64),
        "uint16",
        ("same", "pydicom-data/emri_small.dcm"),
    ),
    (
        "pydicom-data/liver_j2k.dcm",
        "1.2.840.10008.1.2.4.90",
        3,
        (512, 512),
        "uint8",
        ("same", "pydicom-data/liver.dcm"),
    ),
    (
        "pydicom-data/OBXXXX1A_rle_2frame.dcm",
        "1.2.840.10008.1.2.5",
        2,
        (600, 800),
        "uint8",
        ("same", "pydicom-data/OBXXXX1A_2frame.dcm"),
    ),
    (
        "pydicom-data/SC_rgb_expb_16bit_2frame.dcm",
        "1.2.840.10008.1.2.2",
        2,
        (100, 100, 3),
        "uint16",
        ("self",),
    ),
    (
        "pydicom-data/parametric_map_float.dcm",
        "1.2.840.10008.1.2.1",
        1,
        (128, 128),
        "float32",
        ("values",),
    ),
    (
        "dwv/leadtools-8BitsJpegLossyGrayScale.dcm",
        "1.2.840.10008.1.2.4.50",
        1,
        (535, 800),
        "uint8",
        ("dcmtk", "dcmdjpeg", 1),
    ),
    (
        "dwv/leadtools-flowers-16-mono2-rle.dcm",
        "1.2.840.10008.1.2.5",
        1,
        (535, 800),
        "uint16",
        ("dcmtk", "dcmdrle", 0),
    ),
    ("dwv/gdcm-US-RGB-8-epicard.dcm", "1.2.840.10008.1.2.2", 1, (480, 640, 3), "uint8", ("self",)),
    ("dwv/osirix-toutatix-100.dcm", "1.2.840.10008.1.2.4.91", 1, (512, 512), "uint16", ("values",)),
]

BUNDLED_TABLE: list[tuple[str, str, int, tuple[int, ...], str, tuple[object, ...]]] = [
    ("CT_small.dcm", "1.2.840.10008.1.2.1", 1, (128, 128), "int16", ("self",)),
    ("MR_small_implicit.dcm", "1.2.840.10008.1.2", 1, (64, 64), "int16", ("self",)),
    ("MR_small_bigendian.dcm", "1.2.840.10008.1.2.2", 1, (64, 64), "int16", ("self",)),
    ("image_dfl.dcm", "1.2.840.10008.1.2.1.99", 1, (512, 512), "uint8", ("values",)),
    ("MR_small_RLE.dcm", "1.2.840.10008.1.2.5", 1, (64, 64), "int16", ("bundled", "MR_small.dcm")),
    (
        "MR_small_jp2klossless.dcm",
        "1.2.840.10008.1.2.4.90",
        1,
        (64, 64),
        "int16",
        ("bundled", "MR_small.dcm"),
    ),
    (
        "MR_small_jpeg_ls_lossless.dcm",
        "1.2.840.10008.1.2.4.80",
        1,
        (64, 64),
        "int16",
        ("bundled", "MR_small.dcm"),
    ),
    (
        "JPEGLSNearLossless_16.dcm",
        "1.2.840.10008.1.2.4.81",
        1,
        (50, 10),
        "uint16",
        ("dcmtk", "dcmdjpls", 0),
    ),
    (
        "JPGExtended.dcm",
        "1.2.840.10008.1.2.4.51",
        1,
        (1024, 256),
        "uint16",
        ("dcmtk", "dcmdjpeg", 2),
    ),
    (
        "JPEG-lossy.dcm",
        "1.2.840.10008.1.2.4.51",
        1,
        (1024, 256),
        "uint16",
        ("dcmtk", "dcmdjpeg", 2),
    ),
    (
        "SC_rgb_dcmtk_+eb+cy+s2.dcm",
        "1.2.840.10008.1.2.4.50",
        1,
        (100, 100, 3),
        "uint8",
        ("dcmtk", "dcmdjpeg", 2),
    ),
    (
        "SC_rgb_dcmtk_+eb+cy+np.dcm",
        "1.2.840.10008.1.2.4.50",
        1,
        (100, 100, 3),
        "uint8",
        ("dcmtk", "dcmdjpeg", 2),
    ),
    (
        "examples_ybr_color.dcm",
        "1.2.840.10008.1.2.4.50",
        30,
        (240, 320, 3),
        "uint8",
        ("dcmtk", "dcmdjpeg", 2),
    ),
    (
        "SC_rgb_jpeg_gdcm.dcm",
        "1.2.840.10008.1.2.4.70",
        1,
        (100, 100, 3),
        "uint8",
        ("dcmtk", "dcmdjpeg", 0),
    ),
    (
        "SC_rgb_rle_2frame.dcm",
        "1.2.840.10008.1.2.5",
        2,
        (100, 100, 3),
        "uint8",
        ("dcmtk", "dcmdrle", 0),
    ),
    ("rtdose_rle.dcm", "1.2.840.10008.1.2.5", 15, (10, 10), "uint32", ("dcmtk", "dcmdrle", 0)),
]


def _check(
    path: Path,
    ts: str,
    frames: int,
    shape: tuple[int, ...],
    dtype: str,
    oracle: tuple[object, ...],
    twin_root: Path,
    tmp_path: Path,
) -> None:
    dicom = read_file(path)
    ds = dicom.dataset
    assert ds.file_meta.TransferSyntaxUID == ts
    assert frame_count(ds) == frames
    ours = decode_all(ds)
    assert ours.shape == (frames, *shape)
    assert ours.dtype == np.dtype(dtype)
    assert ours.dtype.byteorder in "=|"
    kind = oracle[0]
    if kind == "self":
        np.testing.assert_array_equal(ours, _raw_native(path))
    elif kind == "same":
        np.testing.assert_array_equal(ours, _raw_native(twin_root / str(oracle[1])))
    elif kind == "bundled":
        np.testing.assert_array_equal(ours, _raw_native(_bundled(str(oracle[1]))))
    elif kind == "close":  # lossy coding of the same image: strongly correlated, not equal
        twin = _raw_native(twin_root / str(oracle[1])).astype(np.float64)
        corr = np.corrcoef(ours.astype(np.float64).ravel(), twin.ravel())[0, 1]
        assert corr > float(oracle[2]), corr
    elif kind == "dcmtk":
        ref = _dcmtk_decoded(str(oracle[1]), path, tmp_path)
        assert ref.shape == ours.shape
        diff = np.abs(ours.astype(np.int64) - ref.astype(np.int64))
        assert int(diff.max()) <= int(oracle[2]), int(diff.max())
    else:  # "values": decoded range must be sane and the frame must not be constant
        assert np.isfinite(ours.astype(np.float64)).all()
        assert ours.std() > 0
    # one frame at a time gives the same as all at once
    np.testing.assert_array_equal(decode_frame(ds, frames - 1), ours[-1])


@pytest.mark.parametrize(
    ("name", "ts", "frames", "shape", "dtype", "oracle"),
    SHARED_TABLE,
    ids=[row[0] for row in SHARED_TABLE],
)
def test_shared_reference_table(
    shared_data: Path,
    tmp_path: Path,
    name: str,
    ts: str,
    frames: int,
    shape: tuple[int, ...],
    dtype: str,
    oracle: tuple[object, ...],
) -> None:
    _check(shared_data / name, ts, frames, shape, dtype, oracle, shared_data, tmp_path)


@pytest.mark.parametrize(
    ("name", "ts", "frames", "shape", "dtype", "oracle"),
    BUNDLED_TABLE,
    ids=[row[0] for row in BUNDLED_TABLE],
)
def test_bundled_reference_table(
    tmp_path: Path,
    name: str,
    ts: str,
    frames: int,
    shape: tuple[int, ...],
    dtype: str,
    oracle: tuple[object, ...],
) -> None:
    path = _bundled(name)
    _check(path, ts, frames, shape, dtype, oracle, path.parent, tmp_path)


# -- hard cases -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["MR1_JPLY", "NM1_JPLY"])
def test_jpeg_extended_nonconformant_scan_header_matches_dcmdjpeg(
    shared_data: Path, tmp_path: Path, name: str
) -> None:
    path = shared_data / "hard" / name
    ds = read_file(path).dataset
    ours = decode_frame(ds, 0)
    ref = _dcmtk_decoded("dcmdjpeg", path, tmp_path)[0]
    assert ours.shape == ref.shape
    diff = np.abs(ours.astype(np.int64) - ref.astype(np.int64))
    # IJG (DCMTK) and libjpeg (pylibjpeg) use different IDCTs: lossy tolerance of 2 of 4096
    assert int(diff.max()) <= 2
    assert float(diff.mean()) < 0.1


def test_multiframe_edge_tiles_match_dcmdjpeg(shared_data: Path, tmp_path: Path) -> None:
    """Edge tiles are coded smaller than Rows x Columns: dcmdjpeg stores their samples
    contiguously from the frame start; we place them top-left. Same samples either way."""
    path = shared_data / "hard" / "multiframe.dcm"
    ds = read_file(path).dataset
    ours = decode_all(ds)
    assert ours.shape == (140, 240, 240, 3)
    ref = _dcmtk_decoded("dcmdjpeg", path, tmp_path)
    small = 0
    for index in range(140):
        frame = decode._encoded_frame(ds, index, 140)
        header = decode._jpeg.parse_header(frame)
        assert header is not None
        h, w = header.rows, header.columns
        tile = ours[index, :h, :w]
        expected = ref[index].reshape(-1)[: h * w * 3].reshape(h, w, 3)
        assert int(np.abs(tile.astype(int) - expected.astype(int)).max()) <= 1, index
        if (h, w) != (240, 240):
            small += 1
            assert not ours[index, h:, :].any() and not ours[index, :, w:].any()
    assert small == 23


def test_missing_transfer_syntax_acr_nema_packed_12_bit(shared_data: Path, tmp_path: Path) -> None:
    path = shared_data / "hard" / "GH340.dcm"
    dicom = read_file(path)
    assert dicom.dataset.file_meta.TransferSyntaxUID == pydicom.uid.ImplicitVRLittleEndian
    assert any("Transfer Syntax" in w for w in dicom.warnings)
    ours = decode_frame(dicom.dataset, 0)
    assert ours.shape == (256, 256) and ours.dtype == np.uint16
    # DCMTK with +Ma (accept ACR-NEMA) and no VOI writes a 16-bit PGM that is a monotone
    # function of the stored values: each of our values must map to one of DCMTK's.
    exe = require_tool("dcm2pnm")
    out = tmp_path / "gh340.pgm"
    subprocess.run(
        [exe, "+Ma", "+Wn", "+on2", str(path), str(out)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    from PIL import Image

    ref = np.asarray(Image.open(out)).astype(np.int64)
    values = np.unique(ours)
    assert len(values) > 100
    mapped = [np.unique(ref[ours == v]) for v in values]
    assert all(len(m) == 1 for m in mapped)
    levels = np.array([m[0] for m in mapped])
    assert (np.diff(levels) >= 0).all() and levels[-1] > levels[0]


def test_missing_transfer_syntax_palette(shared_data: Path) -> None:
    path = shared_data / "pydicom-data" / "OT-PAL-8-face.dcm"
    dicom = read_file(path)
    assert dicom.dataset.file_meta.TransferSyntaxUID == pydicom.uid.ImplicitVRLittleEndian
    ours = decode_frame(dicom.dataset, 0)
    raw = np.frombuffer(dicom.dataset.PixelData, np.uint8).reshape(480, 640)
    np.testing.assert_array_equal(ours, raw)


@pytest.mark.parametrize(
    ("name", "twin"),
    [
        ("liver_rle.dcm", "liver.dcm"),
        ("liver_nonbyte_aligned_rle.dcm", "liver_nonbyte_aligned.dcm"),
        ("liver_deflate.dcm", "liver.dcm"),
        ("liver_nonbyte_aligned_deflate.dcm", "liver_nonbyte_aligned.dcm"),
    ],
)
def test_one_bit_rle_and_deflated_frames(shared_data: Path, name: str, twin: str) -> None:
    ours = decode_all(read_file(shared_data / "pydicom-data" / name).dataset)
    np.testing.assert_array_equal(ours, _raw_native(shared_data / "pydicom-data" / twin))


def test_inferred_compressed_syntax_from_codestream(tmp_path: Path) -> None:
    """A JPEG Baseline file whose meta lost its Transfer Syntax UID still decodes."""
    src = _bundled("SC_rgb_dcmtk_+eb+cy+s2.dcm")
    ds = pydicom.dcmread(src)
    expected = decode_frame(read_file(src).dataset, 0)
    del ds.file_meta.TransferSyntaxUID
    out = tmp_path / "no_ts.dcm"
    ds.save_as(out, implicit_vr=False, little_endian=True, enforce_file_format=False)
    dicom = read_file(out)
    assert dicom.dataset.file_meta.TransferSyntaxUID == pydicom.uid.JPEGBaseline8Bit
    assert any("codestream" in w for w in dicom.warnings)
    np.testing.assert_array_equal(decode_frame(dicom.dataset, 0), expected)


# -- plugins, per-frame access, parallel ------------------------------------------------------


def test_plugin_order_is_applied() -> None:
    status = plugin_status()
    assert status[pydicom.uid.RLELossless][0] == "pylibjpeg"
    assert status[pydicom.uid.JPEG2000Lossless][0] == "gdcm"
    assert status[pydicom.uid.JPEGLSLossless][0] == "gdcm"
    assert status[pydicom.uid.JPEGBaseline8Bit][0] == "pillow"
    from pydicom.pixels.decoders.base import get_decoder

    # configure() reorders pydicom's own decoders too (pydicom tries them in insertion order)
    assert next(iter(get_decoder(pydicom.uid.RLELossless)._available)) == "pylibjpeg"
    assert next(iter(get_decoder(pydicom.uid.JPEGLosslessSV1)._available)) == "gdcm"


def test_decode_frame_decodes_only_that_frame(
    shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = read_file(shared_data / "hard" / "multiframe.dcm").dataset
    calls: list[int] = []
    real = decode._encoded_frame

    def counting(ds_: pydicom.Dataset, index: int, count: int) -> bytes:
        calls.append(index)
        return real(ds_, index, count)

    monkeypatch.setattr(decode, "_encoded_frame", counting)
    frame = decode_frame(ds, 77)
    assert calls == [77]
    assert frame.shape == (240, 240, 3)


def test_decode_frames_parallel_equals_serial(shared_data: Path) -> None:
    path = shared_data / "hard" / "multiframe.dcm"
    try:
        parallel = decode_frames_parallel(path, workers=2)
    finally:
        shutdown_pool()
    np.testing.assert_array_equal(parallel, decode_all(read_file(path).dataset))


def test_decode_error_names_file_and_reason(tmp_path: Path) -> None:
    err = DecodeError(tmp_path / "x.dcm", "broken")
    assert str(err) == f"{tmp_path / 'x.dcm'}: broken"
    assert err.reason == "broken" and err.path == str(tmp_path / "x.dcm")
