"""Bad input: every case gives a DecodeError naming the file, or a warning; never a crash.

Each test builds its bad file itself in tmp_path from a bundled good one.
"""

from __future__ import annotations

import struct
import time
import tracemalloc
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate

from viewer.imaging.decode import DecodeError, decode_frame, read_file


def _bundled(name: str) -> Path:
    path = get_testdata_file(name)
    assert path is not None
    return Path(path)


def _bytes_of(name: str) -> bytes:
    return _bundled(name).read_bytes()


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _decode_or_error(path: Path) -> str:
    """'ok', or the DecodeError's reason; any other exception fails the test."""
    try:
        dicom = read_file(path)
        decode_frame(dicom.dataset, 0)
    except DecodeError as exc:
        assert exc.path == str(path)
        assert str(exc).startswith(f"{path}: ")
        return exc.reason
    return "ok"


# -- not DICOM, empty, missing ----------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"", b"hello, this is a text file\n" * 20, b"\x89PNG\r\n\x1a\n" + bytes(200), bytes(300)],
    ids=["empty", "text", "png", "zeros"],
)
def test_not_dicom(tmp_path: Path, content: bytes) -> None:
    path = _write(tmp_path, "thing.dcm", content)
    with pytest.raises(DecodeError, match="not a DICOM file") as info:
        read_file(path)
    assert info.value.path == str(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match="no such file"):
        read_file(tmp_path / "absent.dcm")
    with pytest.raises(DecodeError, match="not a regular file"):
        read_file(tmp_path)


# -- truncation, missing pixels, unknown syntax, corrupt streams ------------------------------


@pytest.mark.parametrize("keep", [140, 400, 1000, 20000])
def test_truncated(tmp_path: Path, keep: int) -> None:
    path = _write(tmp_path, "cut.dcm", _bytes_of("CT_small.dcm")[:keep])
    reason = _decode_or_error(path)
    assert reason != "ok"
    assert any(word in reason for word in ("truncated", "no Pixel Data", "cannot parse", "missing"))


def test_no_pixel_data(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_bundled("CT_small.dcm"))
    del ds.PixelData
    path = tmp_path / "nopixels.dcm"
    ds.save_as(path)
    assert read_file(path, headers_only=True).dataset.Rows == 128
    with pytest.raises(DecodeError, match="no Pixel Data"):
        decode_frame(read_file(path).dataset, 0)


def test_unknown_transfer_syntax(tmp_path: Path) -> None:
    data = _bytes_of("CT_small.dcm")
    old = b"1.2.840.10008.1.2.1\x00"
    assert old in data[:400]
    path = _write(tmp_path, "unknown_ts.dcm", data.replace(old, b"1.2.3.4.5.6.7.8.9.0\x00", 1))
    dicom = read_file(path)
    with pytest.raises(DecodeError, match=r"unsupported transfer syntax 1\.2\.3\.4\.5\.6"):
        decode_frame(dicom.dataset, 0)


@pytest.mark.parametrize(
    ("source", "garbage"),
    [
        ("SC_rgb_dcmtk_+eb+cy+s2.dcm", b"\xff\xd8\xff\xc0" + bytes(range(256)) * 4),
        ("JPEG2000.dcm", b"\xff\x4f\xff\x51" + bytes(range(256)) * 4),
        ("MR_small_jpeg_ls_lossless.dcm", b"\xff\xd8\xff\xf7\x00\x0b" + bytes(500)),
        ("MR_small_RLE.dcm", struct.pack("<16I", 2, 64, 99999, *([0] * 13)) + bytes(100)),
        ("JPGExtended.dcm", b"\xff\xd8" + bytes(64)),
    ],
    ids=["jpeg", "j2k", "jpegls", "rle", "jpeg12"],
)
def test_corrupt_compressed_stream(tmp_path: Path, source: str, garbage: bytes) -> None:
    ds = pydicom.dcmread(_bundled(source))
    ds.PixelData = encapsulate([garbage])
    ds.NumberOfFrames = 1
    path = tmp_path / "corrupt.dcm"
    ds.save_as(path)
    with pytest.raises(DecodeError, match="frame 1") as info:
        decode_frame(read_file(path).dataset, 0)
    assert info.value.path == str(path)


def test_frame_index_out_of_range() -> None:
    ds = read_file(_bundled("CT_small.dcm")).dataset
    with pytest.raises(DecodeError, match="frame 2 does not exist"):
        decode_frame(ds, 1)


# -- CVE-2019-11687: executable preamble ------------------------------------------------------


@pytest.mark.parametrize(
    ("magic", "what"),
    [(b"MZ\x90\x00", "PE"), (b"\x7fELF\x02\x01", "ELF"), (b"\xcf\xfa\xed\xfe", "Mach-O")],
)
def test_executable_preamble_is_flagged_and_file_still_reads(
    tmp_path: Path, magic: bytes, what: str
) -> None:
    data = bytearray(_bytes_of("CT_small.dcm"))
    assert data[128:132] == b"DICM"
    data[: len(magic)] = magic
    path = _write(tmp_path, "polyglot.dcm", bytes(data))
    dicom = read_file(path)
    assert any("CVE-2019-11687" in w and what in w for w in dicom.warnings), dicom.warnings
    assert decode_frame(dicom.dataset, 0).shape == (128, 128)


def test_plain_preamble_is_not_flagged() -> None:
    assert not any("CVE" in w for w in read_file(_bundled("CT_small.dcm")).warnings)


# -- absurd lengths ---------------------------------------------------------------------------


def _peak_mib(func: object) -> float:
    tracemalloc.start()
    try:
        func()  # type: ignore[operator]
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def test_absurd_pixel_data_length_is_not_allocated(tmp_path: Path) -> None:
    data = bytearray(_bytes_of("CT_small.dcm"))
    at = data.rfind(b"\xe0\x7f\x10\x00OW")
    assert at > 0
    data[at + 8 : at + 12] = struct.pack("<I", 0xFFFFFFF0)
    path = _write(tmp_path, "absurd.dcm", bytes(data))
    result: list[object] = []
    peak = _peak_mib(lambda: result.append(read_file(path)))
    assert peak < 64, f"reading allocated {peak:.0f} MiB"
    dicom = result[0]
    assert isinstance(dicom, type(read_file(_bundled("CT_small.dcm"))))
    assert any("4294967280" in w and "(7FE0,0010)" in w for w in dicom.warnings)


def test_absurd_length_before_pixel_data(tmp_path: Path) -> None:
    """An OB element claiming 0xFFFFFFF0 bytes swallows the rest: no pixels, clear reason."""
    ds = pydicom.dcmread(_bundled("CT_small.dcm"))
    ds.add_new(0x00091010, "OB", b"\x00" * 8)
    ds.add_new(0x00090010, "LO", "LIGHTBOX TEST")
    buf = BytesIO()
    ds.save_as(buf)
    data = bytearray(buf.getvalue())
    at = data.find(b"\x09\x00\x10\x10OB")
    data[at + 8 : at + 12] = struct.pack("<I", 0xFFFFFFF0)
    path = _write(tmp_path, "absurd_ob.dcm", bytes(data))
    peak = _peak_mib(lambda: _decode_or_error(path))
    assert peak < 64
    assert read_file(path).warnings
    assert "no Pixel Data" in _decode_or_error(path)


# -- sequences nested thousands deep ----------------------------------------------------------


def _nested(depth: int, *, defined: bool) -> bytes:
    """(0040,A730) Content Sequence nested ``depth`` deep, explicit VR little endian."""
    body = b""
    for _ in range(depth):
        if defined:
            item = b"\xfe\xff\x00\xe0" + struct.pack("<I", len(body)) + body
            body = b"\x40\x00\x30\xa7SQ\x00\x00" + struct.pack("<I", len(item)) + item
        else:
            item = b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + body + b"\xfe\xff\x0d\xe0" + bytes(4)
            body = (
                b"\x40\x00\x30\xa7SQ\x00\x00\xff\xff\xff\xff"
                + item
                + b"\xfe\xff\xdd\xe0"
                + bytes(4)
            )
    return body


@pytest.mark.parametrize("depth", [3000, 20000])
@pytest.mark.parametrize("defined", [False, True], ids=["undefined", "defined"])
def test_deeply_nested_sequences(tmp_path: Path, depth: int, defined: bool) -> None:
    data = _bytes_of("CT_small.dcm")
    at = data.rfind(b"\xe0\x7f\x10\x00OW")
    nested = _nested(depth, defined=defined)
    path = _write(tmp_path, "deep.dcm", data[:at] + nested + data[at:])
    start = time.perf_counter()
    dicom = read_file(path)
    assert time.perf_counter() - start < 10
    assert any("(0040,A730)" in w and "nest" in w for w in dicom.warnings), dicom.warnings
    assert "ContentSequence" not in dicom.dataset
    expected = decode_frame(read_file(_bundled("CT_small.dcm")).dataset, 0)
    np.testing.assert_array_equal(decode_frame(dicom.dataset, 0), expected)


def test_moderate_nesting_is_read_normally(tmp_path: Path) -> None:
    data = _bytes_of("CT_small.dcm")
    at = data.rfind(b"\xe0\x7f\x10\x00OW")
    path = _write(tmp_path, "nested.dcm", data[:at] + _nested(20, defined=False) + data[at:])
    dicom = read_file(path)
    assert "ContentSequence" in dicom.dataset
    assert not dicom.warnings
