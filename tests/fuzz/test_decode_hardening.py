"""What the decoders promise on hostile frames, case by case (the fuzzer found most of these).

Every decoder is given only frames whose structure was checked (PS3.5 G for RLE, the codestream
headers against the Image Pixel module for JPEG, JPEG-LS and JPEG 2000); a native decoder's
panic and what the libraries print become one ``path: problem`` (DecodeError), never a
traceback or stderr output; memory is bounded by the data held, not by declared sizes.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from viewer.imaging.decode import DecodeError, decode_frame, read_buffer, read_file

REGRESSIONS = Path(__file__).resolve().parent / "corpus" / "regressions"


def _pixel_fragment(data: bytes) -> int:
    """Offset of the first frame's fragment value (after the Basic Offset Table item)."""
    at = data.rfind(b"\xe0\x7f\x10\x00")
    pos = at + 12  # (7FE0,0010) OB 0000 FFFFFFFF
    (bot,) = struct.unpack_from("<I", data, pos + 4)
    return pos + 8 + bot + 8


def _rle(name: str, word: int, value: int) -> bytes:
    data = bytearray(Path(get_testdata_file(name)).read_bytes())
    struct.pack_into("<I", data, _pixel_fragment(bytes(data)) + 4 * word, value)
    return bytes(data)


def _decode(data: bytes, tmp_path: Path) -> str:
    path = tmp_path / "hostile.dcm"
    path.write_bytes(data)
    with pytest.raises(DecodeError) as caught:
        decode_frame(read_file(path).dataset, 0)
    assert caught.value.path == str(path)
    return caught.value.reason


@pytest.mark.parametrize(
    ("word", "value", "expected"),
    [
        (0, 16, "declares 16 segments (1 to 15)"),
        (0, 0, "declares 0 segments"),
        (0, 2, "declares 2 segments, the image needs 3"),
        (1, 63, "segment 1 starts at 63, not 64"),
        (2, 40, "segment 2 offset 40 is not after segment 1's 64"),
        (3, 0xFFFFFFF0, "segment 3 offset 4294967280 is past the end"),
        (3, 280, "segment 2 holds 16 bytes, too few for 100x100 pixels"),
    ],
)
def test_rle_header_is_checked_against_the_image(
    word: int, value: int, expected: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """PS3.5 G.3.1 / G.5: segment count, ascending offsets inside the frame, sizes."""
    reason = _decode(_rle("SC_rgb_rle.dcm", word, value), tmp_path)
    assert expected in reason
    assert capfd.readouterr().err == ""


def test_the_rle_panic_of_the_issue_is_a_decode_error(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """pylibjpeg-rle panicked ("index out of bounds", a BaseException, and Rust's message on
    stderr) on a 32-bit RLE frame whose segment decodes past the frame."""
    data = (REGRESSIONS / "rle-panic-segment-overrun.dcm").read_bytes()
    path = tmp_path / "panic.dcm"
    path.write_bytes(data)
    ds = read_file(path).dataset
    try:
        decode_frame(ds, 0)
    except DecodeError as exc:
        assert exc.path == str(path)
    assert "panicked" not in capfd.readouterr().err


def test_rle_frames_decode_as_before(tmp_path: Path) -> None:
    """The checked path decodes the real RLE files exactly as pydicom does."""
    import numpy as np
    import pydicom

    for name in ("MR_small_RLE.dcm", "SC_rgb_rle.dcm", "SC_rgb_rle_16bit.dcm",
                 "SC_rgb_rle_32bit.dcm", "rtdose_rle_1frame.dcm"):  # fmt: skip
        path = get_testdata_file(name)
        ours = decode_frame(read_file(path).dataset, 0)
        theirs = pydicom.dcmread(path).pixel_array
        assert np.array_equal(ours, theirs), name


def test_gdcm_stderr_becomes_part_of_the_message(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """gdcm's bundled OpenJPEG printed "Error with SIZ marker: illegal tile offset"; now the
    main header is read (safely) before gdcm sees the stream."""
    reason = _decode((REGRESSIONS / "j2k-gdcm-stderr-tile-offset.dcm").read_bytes(), tmp_path)
    assert "corrupt JPEG 2000" in reason
    assert capfd.readouterr().err == ""


def test_pydicom_messages_become_the_files_warnings(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "odd.dcm"
    path.write_bytes((REGRESSIONS / "pydicom-warning-stderr.dcm").read_bytes())
    result = read_file(path)
    assert any("implicit VR" in w for w in result.warnings), result.warnings
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("jpeg-declares-30000x30000.dcm", "declare a 30000x30000 image"),
        ("j2k-declares-40000x40000.dcm", "declare a 40000x40000 image"),
        ("jpegls-gdcm-abort-size-mismatch.dcm", "codestream is 45x10, the data set says 256x10"),
        ("j2k-gdcm-abort-rgb-one-sample.dcm", "RGB needs 3 sample(s) per pixel"),
        (
            "jpegls-labelled-jpeg-lossless-gdcm-abort.dcm",
            "a JPEG-LS codestream where JPEG Lossless",
        ),
        ("j2k-bad-main-header-gdcm-abort.dcm", "failed to read the header"),
    ],
)
def test_codestreams_that_disagree_with_the_data_set_are_refused(
    name: str, expected: str, tmp_path: Path
) -> None:
    """Before any decoder allocates from a declared size or gdcm aborts the process."""
    assert expected in _decode((REGRESSIONS / name).read_bytes(), tmp_path)


def test_values_pydicom_cannot_convert_are_bytes_not_exceptions() -> None:
    """A VR that is no VR, an odd-length US, IS 1e309: readable as bytes, never raising."""
    for name in ("unknown-vr.dcm", "wrong-length-us.dcm", "infinite-ds-overflow.dcm",
                 "sequence-of-strings.dcm", "sequence-tag-with-wrong-length-uv.dcm",
                 "ambiguous-vr-odd-length.dcm"):  # fmt: skip
        data = (REGRESSIONS / name).read_bytes()
        try:
            ds = read_buffer(name, data).dataset
        except DecodeError:
            continue
        for tag in list(ds.keys()):
            _ = ds[tag].value
