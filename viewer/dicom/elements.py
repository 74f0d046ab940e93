"""The one byte-level walker of DICOM data sets (PS3.5 7.1, PS3.10 7.1), for untrusted files.

It reads element headers in any of the three uncompressed encodings, skips values without
copying them (an undefined length is walked to its delimiter with an explicit stack, so nesting
costs memory, not the Python stack), collects the values of the tags it is asked for, and never
allocates a length a file declares. Every reader that does not need pydicom's whole data set
walks with it: the DICOMDIR reader (records), the media health check and the import's and
storage service's header check (:func:`viewer.media.health.walk_header`).
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass

from viewer.dicom.part10 import LONG_VRS, SHORT_VRS

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_BE = "1.2.840.10008.1.2.2"

UNDEFINED = 0xFFFFFFFF
ITEM = 0xFFFEE000
ITEM_DELIM = 0xFFFEE00D
SEQ_DELIM = 0xFFFEE0DD


class Malformed(Exception):
    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"at byte {offset}: {reason}")
        self.offset = offset
        self.values: dict[int, bytes] = {}


@dataclass(slots=True, frozen=True)
class Codec:
    """How the data set is encoded (PS3.5 7.1): VR explicit or implicit, byte order."""

    explicit: bool
    little: bool

    @property
    def name(self) -> str:
        vr = "Explicit" if self.explicit else "Implicit"
        return f"{vr} VR {'Little' if self.little else 'Big'} Endian"


EXPLICIT_LE_CODEC = Codec(True, True)
IMPLICIT_LE_CODEC = Codec(False, True)
S_TAG = {True: struct.Struct("<HH"), False: struct.Struct(">HH")}
S_U32 = {True: struct.Struct("<I"), False: struct.Struct(">I")}
S_U16 = {True: struct.Struct("<H"), False: struct.Struct(">H")}
S_EXPLICIT = {True: struct.Struct("<HH2sH"), False: struct.Struct(">HH2sH")}
S_IMPLICIT = {True: struct.Struct("<HHI"), False: struct.Struct(">HHI")}

Buffer = bytes | mmap.mmap


def element_header(
    buf: Buffer | memoryview, pos: int, end: int, codec: Codec
) -> tuple[int, bytes, int, int]:
    """(tag, vr, value position, value length) of the element at ``pos`` (PS3.5 7.1.1-7.1.3).

    In explicit VR, bytes that are no VR are read as an implicit header: writers that switch
    encodings in the middle of a file exist, and DCMTK reads them the same way.
    """
    if pos + 8 > end:
        raise Malformed(pos, "element header runs past the end")
    little = codec.little
    if codec.explicit:
        group, elem, vr, short = S_EXPLICIT[little].unpack_from(buf, pos)
        tag = (group << 16) | elem
        if group == 0xFFFE:
            return tag, b"", pos + 8, S_U32[little].unpack_from(buf, pos + 4)[0]
        if vr in SHORT_VRS:
            return tag, vr, pos + 8, short
        if vr in LONG_VRS:
            if pos + 12 > end:
                raise Malformed(pos, "element header runs past the end")
            return tag, vr, pos + 12, S_U32[little].unpack_from(buf, pos + 8)[0]
    group, elem, length = S_IMPLICIT[little].unpack_from(buf, pos)
    return (group << 16) | elem, b"", pos + 8, length


def skip_undefined(buf: Buffer, pos: int, end: int, codec: Codec, vr: bytes) -> int:
    """Position after the Sequence Delimitation Item closing an undefined-length value.

    Iterative (an explicit stack), so sequences nested thousands deep cost memory, not the
    Python stack. The content of an undefined-length UN is Implicit VR Little Endian (PS3.5
    6.2.2); SQ and encapsulated pixel data are items either way (PS3.5 7.5, A.4).
    """
    inner = IMPLICIT_LE_CODEC if vr == b"UN" else codec
    stack: list[tuple[bool, Codec]] = [(True, inner)]  # (is a sequence, codec inside)
    while stack:
        in_seq, cur = stack[-1]
        if pos + 8 > end:
            raise Malformed(pos, "undefined-length value has no delimiter before the end")
        group, elem = S_TAG[cur.little].unpack_from(buf, pos)
        if group == 0xFFFE:
            length = S_U32[cur.little].unpack_from(buf, pos + 4)[0]
            pos += 8
            if elem == 0xE0DD:
                while stack and not stack[-1][0]:  # an item left open: be liberal, close it
                    stack.pop()
                if stack:
                    stack.pop()
            elif elem == 0xE00D:
                if not in_seq:
                    stack.pop()
            elif elem == 0xE000:
                if length == UNDEFINED:
                    stack.append((False, cur))
                else:
                    pos += length
                    if pos > end:
                        raise Malformed(pos, "item runs past the end")
            continue
        if in_seq:
            raise Malformed(pos, f"({group:04X},{elem:04X}) where a sequence item was expected")
        _tag, evr, vpos, length = element_header(buf, pos, end, cur)
        if length == UNDEFINED:
            stack.append((True, IMPLICIT_LE_CODEC if evr == b"UN" else cur))
            pos = vpos
        else:
            pos = vpos + length
            if pos > end:
                raise Malformed(
                    vpos,
                    f"element ({_tag >> 16:04X},{_tag & 0xFFFF:04X}) "
                    f"declares {length} bytes past the end",
                )
    return pos


def read_elements(
    buf: Buffer, pos: int, end: int, codec: Codec, wanted: frozenset[int], *, in_item: bool
) -> tuple[dict[int, bytes], int]:
    """Values of the ``wanted`` tags among the elements from ``pos``, and where they stop.

    Stops at ``end`` or, ``in_item``, at an Item Delimitation Item. Unwanted values are
    skipped without being copied; no declared length is ever allocated.
    """
    values: dict[int, bytes] = {}
    try:
        return _read_elements(buf, pos, end, codec, wanted, in_item, values)
    except Malformed as exc:
        exc.values = values
        raise


def _read_elements(
    buf: Buffer,
    pos: int,
    end: int,
    codec: Codec,
    wanted: frozenset[int],
    in_item: bool,
    values: dict[int, bytes],
) -> tuple[dict[int, bytes], int]:
    little = codec.little
    s_explicit = S_EXPLICIT[little]
    s_implicit = S_IMPLICIT[little]
    s_u32 = S_U32[little]
    explicit = codec.explicit
    while pos < end:
        if pos + 8 > end:
            raise Malformed(pos, "element header runs past the end")
        if explicit:
            group, elem, vr, length = s_explicit.unpack_from(buf, pos)
            if group == 0xFFFE:
                length = s_u32.unpack_from(buf, pos + 4)[0]
                vpos = pos + 8
            elif vr in SHORT_VRS:
                vpos = pos + 8
            elif vr in LONG_VRS:
                if pos + 12 > end:
                    raise Malformed(pos, "element header runs past the end")
                length = s_u32.unpack_from(buf, pos + 8)[0]
                vpos = pos + 12
            else:
                group, elem, length = s_implicit.unpack_from(buf, pos)
                vr = b""
                vpos = pos + 8
        else:
            group, elem, length = s_implicit.unpack_from(buf, pos)
            vr = b""
            vpos = pos + 8
        tag = (group << 16) | elem
        if group == 0xFFFE:
            if tag == ITEM_DELIM and in_item:
                return values, vpos
            raise Malformed(pos, f"unexpected delimiter ({group:04X},{elem:04X})")
        if length == UNDEFINED:
            pos = skip_undefined(buf, vpos, end, codec, vr)
            continue
        pos = vpos + length
        if pos > end:
            raise Malformed(
                vpos, f"element ({group:04X},{elem:04X}) declares {length} bytes past the end"
            )
        if tag in wanted:
            values[tag] = bytes(buf[vpos:pos])
    if in_item:
        raise Malformed(pos, "item has no Item Delimitation Item before the end")
    return values, pos


def sniff_codec(buf: Buffer, pos: int, end: int, declared: Codec) -> Codec:
    """The encoding the data set really uses: the meta's unless its first element disagrees."""
    if pos + 8 > end:
        return declared
    candidates = [declared] + [
        c for c in (Codec(True, True), Codec(False, True), Codec(True, False)) if c != declared
    ]
    for codec in candidates:
        group, _elem = S_TAG[codec.little].unpack_from(buf, pos)
        if not 0x0002 <= group <= 0x0028:
            continue
        vr = bytes(buf[pos + 4 : pos + 6])
        looks_explicit = vr in SHORT_VRS or vr in LONG_VRS
        if codec.explicit == looks_explicit:
            return codec
    return declared


def parse_meta(buf: Buffer, end: int) -> tuple[int, dict[int, bytes]]:
    """Where the data set starts and the File Meta elements (PS3.10 7.1), preamble or not.

    The meta is Explicit VR Little Endian and is read element by element for as long as the
    group is 0002 (its group length is often wrong on real media). Raises Malformed.
    """
    pos = 0
    if end >= 132 and buf[128:132] == b"DICM":
        pos = 132
    elif buf[:4] == b"DICM":
        pos = 4
    meta: dict[int, bytes] = {}
    while pos + 8 <= end and S_U16[True].unpack_from(buf, pos)[0] == 0x0002:
        tag, _vr, vpos, length = element_header(buf, pos, end, EXPLICIT_LE_CODEC)
        if length == UNDEFINED or vpos + length > end:
            raise Malformed(pos, f"element ({tag >> 16:04X},{tag & 0xFFFF:04X}) is broken")
        meta[tag] = bytes(buf[vpos : vpos + length])
        pos = vpos + length
    return pos, meta


def codec_for(transfer_syntax: str) -> Codec:
    """The encoding a transfer syntax names (PS3.5 10): explicit LE unless implicit or BE."""
    return Codec(transfer_syntax != IMPLICIT_LE, transfer_syntax != EXPLICIT_BE)
