"""Every reader that finds where a file's data set starts finds the same place.

The store (duplicates are the bytes after the meta), the DICOMDIR writer (record keys), the
media verifier (strict meta check) and the image reader's recovery path each used to walk the
File Meta with a walker of their own; they now use :mod:`viewer.dicom.elements`. These files
are the ones on which separate walkers disagreed: a meta element of a long VR the old tables
lacked, a meta written in implicit VR (old media), a group length that lies.
"""

from __future__ import annotations

import struct

import pytest

from viewer.dicom import elements
from viewer.media import dicomdir_writer as ddw
from viewer.media import verify
from viewer.store.part10 import split_header

CT = "1.2.840.10008.5.1.4.1.1.2"
UID = "1.2.3.4.5.6.7.8.9"
EXPLICIT_LE = "1.2.840.10008.1.2.1"


def _explicit(group: int, element: int, vr: bytes, value: bytes) -> bytes:
    if len(value) % 2:
        value += b"\0"
    if vr in (b"OB", b"UV", b"OV", b"UN", b"UT"):
        return struct.pack("<HH2sHI", group, element, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", group, element, vr, len(value)) + value


def _implicit(group: int, element: int, value: bytes) -> bytes:
    if len(value) % 2:
        value += b"\0"
    return struct.pack("<HHI", group, element, len(value)) + value


def _dataset() -> bytes:
    return b"".join(
        _explicit(g, e, vr, v)
        for g, e, vr, v in (
            (0x0008, 0x0016, b"UI", CT.encode()),
            (0x0008, 0x0018, b"UI", UID.encode()),
            (0x0008, 0x0060, b"CS", b"CT"),
            (0x0010, 0x0020, b"LO", b"ID1"),
            (0x0020, 0x000D, b"UI", b"1.2.3.1"),
            (0x0020, 0x000E, b"UI", b"1.2.3.2"),
            (0x0020, 0x0013, b"IS", b"1"),
        )
    )


def _meta(extra: bytes, *, lie: int = 0) -> bytes:
    body = (
        _explicit(0x0002, 0x0001, b"OB", b"\x00\x01")
        + _explicit(0x0002, 0x0002, b"UI", CT.encode())
        + _explicit(0x0002, 0x0003, b"UI", UID.encode())
        + _explicit(0x0002, 0x0010, b"UI", EXPLICIT_LE.encode())
        + _explicit(0x0002, 0x0012, b"UI", b"1.2.3")
        + extra
    )
    return _explicit(0x0002, 0x0000, b"UL", struct.pack("<I", len(body) + lie)) + body


def _implicit_meta() -> bytes:
    body = (
        _implicit(0x0002, 0x0001, b"\x00\x01")
        + _implicit(0x0002, 0x0002, CT.encode())
        + _implicit(0x0002, 0x0003, UID.encode())
        + _implicit(0x0002, 0x0010, EXPLICIT_LE.encode())
        + _implicit(0x0002, 0x0012, b"1.2.3")
    )
    return _implicit(0x0002, 0x0000, struct.pack("<I", len(body))) + body


FILES = {
    "plain": _meta(b""),
    # a 6-byte value with a 4-byte length: read with a 2-byte length it points elsewhere
    "long VR the old tables lacked": _meta(_explicit(0x0002, 0x0200, b"UV", b"\x01" * 16)),
    "group length that lies": _meta(b"", lie=40),
    "implicit VR meta": _implicit_meta(),
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_every_reader_finds_the_same_data_set_start(name: str) -> None:
    meta = FILES[name]
    data = bytes(128) + b"DICM" + meta + _dataset()
    expected = 132 + len(meta)

    assert elements.parse_meta(data, len(data))[0] == expected
    assert split_header(data).dataset_start == expected
    header = ddw.parse_header(data, "F")
    assert header.body_offset == expected
    assert header.text(ddw.SOP_INSTANCE_UID) == UID
    report = verify.VerifyReport("F", "folder", "GENERAL")
    checked = verify._check_part10(data, "F", report)
    assert checked is not None
    assert checked[1] == expected or name == "implicit VR meta"  # that one stops at once
    problems = [f.message for f in report.errors]
    if name == "plain" or name.startswith("long VR"):
        assert problems == []
    elif name == "group length that lies":
        assert problems == ["File Meta group length (0002,0000) does not match the group"]
    else:
        assert problems == ["File Meta is not Explicit VR Little Endian"]


def test_a_truncated_meta_is_refused_alike() -> None:
    meta = _meta(_explicit(0x0002, 0x0200, b"UV", b"\x01" * 16))
    data = bytes(128) + b"DICM" + meta[:-6]
    with pytest.raises(elements.Malformed):
        elements.parse_meta(data, len(data))
    with pytest.raises(ValueError, match="truncated"):
        split_header(data)
    with pytest.raises(ddw.HeaderError):
        ddw.parse_header(data, "F")
    report = verify.VerifyReport("F", "folder", "GENERAL")
    verify._check_part10(data, "F", report)
    assert [f.message for f in report.errors] == ["File Meta element runs past the end of the file"]
