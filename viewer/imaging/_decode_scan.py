"""A non-recursive walk over a DICOM data set's elements, for files pydicom cannot parse.

pydicom parses sequences recursively, so a file with sequences nested thousands deep raises
RecursionError (and raising the recursion limit only moves the crash into the C stack). This
walker keeps its own stack: it finds the top-level elements whose sequences nest deeper than a
limit so that :mod:`viewer.imaging.decode` can cut them out and let pydicom read the rest.

Encoding rules: PS3.5 7.1 (data elements, explicit and implicit VR), 7.5 (nesting of data sets:
items and delimiters), 7.5.1 (undefined lengths), 10 / A.1-A.2 (transfer syntaxes).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pydicom.datadict import dictionary_VR

from viewer.dicom.elements import (
    ITEM,
    S_TAG,
    S_U32,
    UNDEFINED,
    Codec,
    Malformed,
    element_header,
)
from viewer.dicom.elements import ITEM_DELIM as ITEM_DELIMITER
from viewer.dicom.elements import SEQ_DELIM as SEQUENCE_DELIMITER


@dataclass(frozen=True)
class DeepElement:
    """A top-level element whose content nests deeper than the limit (or cannot be walked)."""

    tag: int
    start: int
    end: int  # exclusive; the end of the buffer when the element's end could not be found
    depth: int


def _is_sequence_tag(tag: int) -> bool:
    try:
        return dictionary_VR(tag) == "SQ"
    except KeyError:
        return False


class _Reader:
    """The walk's view of the buffer: element headers through :mod:`viewer.dicom.elements`."""

    def __init__(self, buf: bytes | memoryview, little: bool) -> None:
        self.buf = buf
        self.end = len(buf)
        self.little = little
        self._codecs = {True: Codec(False, little), False: Codec(True, little)}

    def tag(self, pos: int) -> int:
        group, elem = S_TAG[self.little].unpack_from(self.buf, pos)
        return int(group << 16 | elem)

    def u32(self, pos: int) -> int:
        return int(S_U32[self.little].unpack_from(self.buf, pos)[0])

    def header(self, pos: int, implicit: bool) -> tuple[int, bytes, int, int]:
        """(tag, VR bytes or b"", value length, header size) of the element at ``pos``."""
        try:
            tag, vr, vpos, length = element_header(self.buf, pos, self.end, self._codecs[implicit])
        except Malformed as exc:
            raise ValueError(str(exc)) from exc
        return tag, vr, length, vpos - pos


def find_deep_elements(
    buf: bytes | memoryview, start: int, *, implicit: bool, little: bool, limit: int
) -> list[DeepElement]:
    """Top-level elements from ``start`` whose sequences nest more than ``limit`` deep.

    Depth counts sequences: a sequence directly in the data set is depth 1. An element whose
    structure cannot be walked (a length past the end, a missing delimiter) is reported with
    ``end = len(buf)`` and ``depth = -1``: everything from it on is unreadable anyway.
    """
    reader = _Reader(buf, little)
    found: list[DeepElement] = []
    pos = start
    while pos + 8 <= reader.end:
        top_start = pos
        try:
            tag, vr, length, hsize = reader.header(pos, implicit)
        except ValueError:
            break
        top_tag = tag
        is_sq = (
            vr == b"SQ"
            or (vr in (b"", b"UN") and length == UNDEFINED and tag != 0x7FE00010)
            or (implicit and _is_sequence_tag(tag))
        )
        if not is_sq:
            if length == UNDEFINED:  # encapsulated Pixel Data: items up to a delimiter
                try:
                    pos = _skip_items(reader, pos + hsize)
                except ValueError:
                    found.append(DeepElement(top_tag, top_start, reader.end, -1))
                    break
                continue
            pos += hsize + length
            continue
        try:
            pos, _depth = _walk_sequence(reader, pos, implicit, limit)
        except _TooDeep as exc:
            found.append(DeepElement(top_tag, top_start, exc.end, exc.depth))
            if exc.end >= reader.end:
                break
            pos = exc.end
            continue
        except ValueError:
            found.append(DeepElement(top_tag, top_start, reader.end, -1))
            break
    return found


class _TooDeep(Exception):
    def __init__(self, end: int, depth: int) -> None:
        super().__init__(f"nested {depth} deep")
        self.end = end
        self.depth = depth


def _skip_items(reader: _Reader, pos: int) -> int:
    """Skip the items of encapsulated Pixel Data (PS3.5 A.4) up to and past its delimiter."""
    while True:
        if pos + 8 > reader.end:
            raise ValueError("no sequence delimiter")
        tag = reader.tag(pos)
        length = reader.u32(pos + 4)
        if tag == SEQUENCE_DELIMITER:
            return pos + 8
        if tag != ITEM or length == UNDEFINED:
            raise ValueError("bad item in encapsulated data")
        pos += 8 + length


def _walk_sequence(reader: _Reader, pos: int, implicit: bool, limit: int) -> tuple[int, int]:
    """Walk the sequence element at ``pos`` with an explicit stack; return (end, max depth).

    Raises _TooDeep (with the sequence's end when it can be found by skipping, else the end of
    the data) when the nesting exceeds ``limit``, even if the structure breaks further on;
    ValueError when the structure is broken before that.
    """
    # Each frame: (kind, end or None, implicit) where kind is "seq" or "item".
    stack: list[tuple[str, int | None, bool]] = []
    max_depth = 0
    depth = 0
    too_deep = False

    def open_sequence(at: int, enc_implicit: bool) -> int:
        nonlocal max_depth, too_deep, depth
        _tag, vr, length, hsize = reader.header(at, enc_implicit)
        # PS3.5 6.2.2: UN with undefined length holds implicit VR little endian content.
        inner_implicit = enc_implicit or vr == b"UN"
        end = None if length == UNDEFINED else at + hsize + length
        if end is not None and end > reader.end:
            raise ValueError("sequence length runs past the end of the data")
        stack.append(("seq", end, inner_implicit))
        depth += 1
        max_depth = max(max_depth, depth)
        if depth > limit:
            too_deep = True
        return at + hsize

    pos = open_sequence(pos, implicit)
    try:
        while stack:
            kind, end, enc_implicit = stack[-1]
            if end is not None and pos >= end:
                if pos > end:
                    raise ValueError("content overruns its length")
                if stack.pop()[0] == "seq":
                    depth -= 1
                continue
            if too_deep and end is not None and kind == "seq":
                # Skip the rest of this defined-length sequence without walking into it.
                pos = end
                continue
            tag, vr, length, hsize = reader.header(pos, enc_implicit)
            if kind == "seq":
                if tag == SEQUENCE_DELIMITER and end is None:
                    stack.pop()
                    depth -= 1
                    pos += 8
                    continue
                if tag != ITEM:
                    raise ValueError("expected an item in a sequence")
                item_end = None if length == UNDEFINED else pos + 8 + length
                if item_end is not None and item_end > reader.end:
                    raise ValueError("item length runs past the end of the data")
                stack.append(("item", item_end, enc_implicit))
                pos += 8
                continue
            # inside an item
            if tag == ITEM_DELIMITER and end is None:
                stack.pop()
                pos += 8
                continue
            is_sq = (
                vr == b"SQ"
                or (length == UNDEFINED and vr in (b"", b"UN"))
                or (enc_implicit and _is_sequence_tag(tag))
            )
            if is_sq:
                pos = open_sequence(pos, enc_implicit)
                continue
            if length == UNDEFINED:
                raise ValueError("undefined length on a non-sequence element")
            pos += hsize + length
            if pos > reader.end:
                raise ValueError("element length runs past the end of the data")
    except ValueError:
        if too_deep:  # broken after nesting too deep: the depth is what to report
            raise _TooDeep(reader.end, max_depth) from None
        raise
    if too_deep:
        raise _TooDeep(pos, max_depth)
    return pos, max_depth


def sniff_encapsulated_syntax(first_fragment: bytes) -> str | None:
    """Guess the compressed transfer syntax from the first fragment of a frame.

    Used only when a file's meta information has no Transfer Syntax UID: the codestream itself
    says which codec wrote it (T.81 SOF markers, T.87 SOF55, T.800 SOC/SIZ/COD, T.814 CAP,
    PS3.5 G.3.1 RLE header). Returns None when nothing matches.
    """
    from viewer.imaging import _jpeg

    head = first_fragment
    if head[:2] == b"\xff\xd8":
        info = _jpeg.parse_header(head)
        if info is None:
            return None
        if info.sof_marker == 0xC0:
            return "1.2.840.10008.1.2.4.50"
        if info.sof_marker == 0xC1:
            return "1.2.840.10008.1.2.4.51"
        if info.sof_marker == 0xC3:
            return (
                "1.2.840.10008.1.2.4.70" if info.spectral_start == 1 else "1.2.840.10008.1.2.4.57"
            )
        if info.sof_marker == 0xF7:
            return (
                "1.2.840.10008.1.2.4.80" if info.spectral_start == 0 else "1.2.840.10008.1.2.4.81"
            )
        return None
    if head[:4] == b"\xff\x4f\xff\x51" or head[4:8] == b"jP  ":
        if b"\xff\x50" in head[:512]:  # CAP marker: High-Throughput JPEG 2000
            return "1.2.840.10008.1.2.4.203"
        cod = head.find(b"\xff\x52")
        # COD SPcod byte 9: wavelet transformation, 1 = reversible 5-3 (lossless capable)
        if cod >= 0 and cod + 13 < len(head) and head[cod + 13] == 1:
            return "1.2.840.10008.1.2.4.90"
        return "1.2.840.10008.1.2.4.91"
    if len(head) >= 64:
        count = struct.unpack_from("<I", head, 0)[0]
        first = struct.unpack_from("<I", head, 4)[0]
        if 1 <= count <= 15 and first == 64:
            return "1.2.840.10008.1.2.5"
    return None
