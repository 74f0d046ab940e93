"""DICOM-aware mutations for the fuzz harness (PS3.5 7.1 elements, 7.5 nesting, A.4 fragments).

A mutation starts from a real file and damages it where readers and decoders make decisions:
element lengths (0, odd, one past the end, 0xFFFFFFFF, a 4 GiB claim), VRs, tags turned into
item or delimiter tags, nesting, the encapsulated Pixel Data's Basic Offset Table and fragment
lengths, RLE segment headers (PS3.5 G.3.1), JPEG marker segments (T.81 B.2), JPEG 2000 SIZ
(T.800 A.5.1), the Transfer Syntax UID, and the Image Pixel module's numbers (Rows, Columns,
Bits Allocated, Number of Frames...). Plain byte mutations and splices between two inputs
are mixed in, so the fuzzer also reaches what no DICOM rule suggests.

Everything is driven by a ``random.Random`` so that a run is reproducible from its seed.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

from viewer.dicom.part10 import LONG_VRS

_VRS = (
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL "
    b"UN UR US UT UV"
).split()
_UNDEFINED = 0xFFFFFFFF
_ITEM_TAGS = (b"\xfe\xff\x00\xe0", b"\xfe\xff\x0d\xe0", b"\xfe\xff\xdd\xe0")
_INTERESTING_32 = (
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    63,
    64,
    65,
    127,
    128,
    255,
    256,
    0x7FFF,
    0x8000,
    0xFFFF,
    0x10000,
    0x7FFFFFFF,
    0x80000000,
    0xFFFFFFF0,
    0xFFFFFFFE,
    0xFFFFFFFF,
)
_INTERESTING_16 = (0, 1, 2, 3, 7, 8, 12, 15, 16, 17, 24, 31, 32, 33, 64, 255, 256, 0x7FFF, 0xFFFF)
_TRANSFER_SYNTAXES = (
    b"1.2.840.10008.1.2",
    b"1.2.840.10008.1.2.1",
    b"1.2.840.10008.1.2.2",
    b"1.2.840.10008.1.2.1.99",
    b"1.2.840.10008.1.2.4.50",
    b"1.2.840.10008.1.2.4.51",
    b"1.2.840.10008.1.2.4.57",
    b"1.2.840.10008.1.2.4.70",
    b"1.2.840.10008.1.2.4.80",
    b"1.2.840.10008.1.2.4.81",
    b"1.2.840.10008.1.2.4.90",
    b"1.2.840.10008.1.2.4.91",
    b"1.2.840.10008.1.2.4.201",
    b"1.2.840.10008.1.2.4.203",
    b"1.2.840.10008.1.2.5",
    b"1.2.840.10008.1.2.8.1",
    b"1.2.3.4",
    b"",
)
# Image Pixel module and friends (PS3.3 C.7.6.3, C.7.6.6, C.9.2): (group, element).
_PIXEL_MODULE_TAGS = (
    (0x0028, 0x0002),  # Samples per Pixel
    (0x0028, 0x0004),  # Photometric Interpretation
    (0x0028, 0x0006),  # Planar Configuration
    (0x0028, 0x0008),  # Number of Frames
    (0x0028, 0x0010),  # Rows
    (0x0028, 0x0011),  # Columns
    (0x0028, 0x0100),  # Bits Allocated
    (0x0028, 0x0101),  # Bits Stored
    (0x0028, 0x0102),  # High Bit
    (0x0028, 0x0103),  # Pixel Representation
    (0x0028, 0x1050),  # Window Center
    (0x0028, 0x1051),  # Window Width
    (0x0028, 0x1052),  # Rescale Intercept
    (0x0028, 0x1053),  # Rescale Slope
    (0x0028, 0x1101),  # Red Palette Descriptor
    (0x0028, 0x1201),  # Red Palette Data
    (0x6000, 0x0010),  # Overlay Rows
    (0x6000, 0x0011),  # Overlay Columns
    (0x6000, 0x0100),  # Overlay Bits Allocated
    (0x6000, 0x0102),  # Overlay Bit Position
    (0x6000, 0x3000),  # Overlay Data
    (0x0004, 0x1400),  # Offset of the Next Directory Record
    (0x0004, 0x1420),  # Offset of Referenced Lower-Level Directory Entity
    (0x0004, 0x1200),  # Offset of the First Directory Record of the Root Directory Entity
    (0x0004, 0x1500),  # Referenced File ID
)
_TEXT_VALUES = (
    b"",
    b"0",
    b"-1",
    b"1e309",
    b"nan",
    b"inf",
    b"65536",
    b"2147483648",
    b"99999999999999999999",
    b"1\\2\\3",
    b"MONOCHROME1",
    b"MONOCHROME2",
    b"PALETTE COLOR",
    b"RGB",
    b"YBR_FULL",
    b"YBR_FULL_422",
    b"YBR_RCT",
    b"YBR_ICT",
    b"..\\..\\..\\etc\\passwd",
    b"\x1b[31mRED\x1b[0m",
    b"A\nB",
)


@dataclass(frozen=True)
class Element:
    """One element header found in the bytes (nested ones included)."""

    start: int
    tag: int
    vr_at: int  # -1 for implicit VR and item tags
    length_at: int
    length_size: int  # 2 or 4
    value_at: int
    length: int
    little: bool


def _guess_encoding(data: bytes, start: int) -> tuple[bool, bool]:
    """(explicit VR, little endian) of the data set at ``start``, from its first element."""
    ts = _transfer_syntax(data)
    if ts == b"1.2.840.10008.1.2":
        return False, True
    if ts == b"1.2.840.10008.1.2.2":
        return True, False
    if ts:
        return True, True
    head = data[start : start + 8]
    explicit = head[4:6] in _VRS
    little = len(head) >= 2 and head[1] == 0
    return explicit, little


def _transfer_syntax(data: bytes) -> bytes | None:
    at = data.find(b"\x02\x00\x10\x00UI")
    if at < 0 or at + 8 > len(data):
        return None
    (length,) = struct.unpack_from("<H", data, at + 6)
    return data[at + 8 : at + 8 + length].rstrip(b"\0 ")


def elements(data: bytes, limit: int = 4000) -> list[Element]:
    """Element headers in ``data``, walking into sequences, items and fragments; tolerant."""
    found: list[Element] = []
    pos = 132 if data[128:132] == b"DICM" else 0
    # The File Meta (group 0002) is always explicit VR little endian (PS3.10 7.1).
    explicit_rest, little_rest = _guess_encoding(data, pos)
    end = len(data)
    fragments = False
    while pos + 8 <= end and len(found) < limit:
        group = struct.unpack_from("<H", data, pos)[0]
        in_meta = group == 0x0002
        explicit = True if in_meta else explicit_rest
        little = True if in_meta else little_rest
        order = "<" if little else ">"
        g, e = struct.unpack_from(order + "HH", data, pos)
        tag = g << 16 | e
        if g == 0xFFFE or not explicit:
            (length,) = struct.unpack_from(order + "I", data, pos + 4)
            found.append(Element(pos, tag, -1, pos + 4, 4, pos + 8, length, little))
            if tag == 0x7FE00010 and length == _UNDEFINED:
                fragments = True
            elif tag == 0xFFFEE0DD:
                fragments = False
            if fragments and tag == 0xFFFEE000 and length != _UNDEFINED:
                pos += 8 + length  # a fragment of encapsulated Pixel Data (PS3.5 A.4)
            elif g == 0xFFFE or length == _UNDEFINED:
                pos += 8  # walk into items and sequences
            else:
                pos += 8 + length
            continue
        vr = data[pos + 4 : pos + 6]
        if vr in LONG_VRS:
            if pos + 12 > end:
                break
            (length,) = struct.unpack_from(order + "I", data, pos + 8)
            found.append(Element(pos, tag, pos + 4, pos + 8, 4, pos + 12, length, little))
            fragments = tag == 0x7FE00010 and length == _UNDEFINED
            if length == _UNDEFINED or vr == b"SQ":
                pos += 12
            else:
                pos += 12 + length
        else:
            (length,) = struct.unpack_from(order + "H", data, pos + 6)
            found.append(Element(pos, tag, pos + 4, pos + 6, 2, pos + 8, length, little))
            pos += 8 + length
    return found


def _fragments(data: bytes, els: list[Element]) -> list[Element]:
    """Item elements inside encapsulated Pixel Data (after the (7FE0,0010) of undefined length)."""
    out: list[Element] = []
    inside = False
    for el in els:
        if el.tag == 0x7FE00010 and el.length == _UNDEFINED:
            inside = True
            continue
        if inside and el.tag == 0xFFFEE000:
            out.append(el)
        elif inside:
            inside = False  # the sequence delimiter (or damage) ends the fragments
    return out


def _set_length(data: bytearray, el: Element, value: int) -> None:
    order = "<" if el.little else ">"
    if el.length_size == 2:
        struct.pack_into(order + "H", data, el.length_at, value & 0xFFFF)
    else:
        struct.pack_into(order + "I", data, el.length_at, value & 0xFFFFFFFF)


class Mutator:
    """Damages DICOM files; ``mutate(data)`` returns new bytes (never longer than ``max_size``)."""

    def __init__(self, rng: random.Random, pool: list[bytes] | None = None) -> None:
        self.rng = rng
        self.pool = pool or []
        self.strategies = (
            (self.element_length, 6),
            (self.element_vr, 3),
            (self.element_tag, 2),
            (self.pixel_module_value, 6),
            (self.fragments, 5),
            (self.rle_header, 4),
            (self.jpeg_markers, 4),
            (self.j2k_siz, 2),
            (self.transfer_syntax, 3),
            (self.nesting, 1),
            (self.bytes_, 5),
            (self.truncate, 2),
            (self.splice, 1),
        )
        self.weights = [w for _, w in self.strategies]

    def mutate(self, data: bytes, max_size: int = 1 << 20) -> bytes:
        out = bytearray(data)
        for _ in range(self.rng.choice((1, 1, 1, 2, 2, 3, 5))):
            (strategy,) = self.rng.choices([s for s, _ in self.strategies], self.weights)
            try:
                strategy(out)
            except (struct.error, IndexError, ValueError):
                self.bytes_(out)
        if not out:
            out = bytearray(b"\0")
        return bytes(out[:max_size])

    # -- element structure ---------------------------------------------------------------

    def _pick(self, data: bytearray, wanted: tuple[int, ...] = ()) -> Element | None:
        els = elements(bytes(data))
        if wanted:
            els = [e for e in els if e.tag in wanted] or els
        return self.rng.choice(els) if els else None

    def element_length(self, data: bytearray) -> None:
        el = self._pick(data)
        if el is None:
            return self.bytes_(data)
        rest = len(data) - el.value_at
        choices = [
            0,
            1,
            el.length + 1,
            el.length - 1,
            el.length + 2,
            el.length * 2,
            rest,
            rest + 1,
            rest + 8,
            0xFFFF,
            0xFFFFFFFF,
            0xFFFFFFF0,
            0xFFFFFFFE,
            0x80000000,
            self.rng.randrange(1 << 32),
        ]
        _set_length(data, el, self.rng.choice(choices))
        return None

    def element_vr(self, data: bytearray) -> None:
        els = [e for e in elements(bytes(data)) if e.vr_at >= 0]
        if not els:
            return self.bytes_(data)
        el = self.rng.choice(els)
        data[el.vr_at : el.vr_at + 2] = self.rng.choice(
            [*_VRS, b"XX", b"\0\0", b"  ", b"sq", b"\xff\xff"]
        )
        return None

    def element_tag(self, data: bytearray) -> None:
        el = self._pick(data)
        if el is None:
            return self.bytes_(data)
        order = "<" if el.little else ">"
        roll = self.rng.random()
        if roll < 0.5:
            data[el.start : el.start + 4] = self.rng.choice(_ITEM_TAGS)
        elif roll < 0.7:
            struct.pack_into(order + "HH", data, el.start, 0x7FE0, 0x0010)
        else:
            group, elem = struct.unpack_from(order + "HH", data, el.start)
            struct.pack_into(
                order + "HH", data, el.start, self.rng.choice([group, group ^ 1, 0]), elem ^ 0x10
            )
        return None

    def pixel_module_value(self, data: bytearray) -> None:
        wanted = tuple(g << 16 | e for g, e in _PIXEL_MODULE_TAGS)
        el = self._pick(data, wanted)
        if el is None:
            return self.bytes_(data)
        order = "<" if el.little else ">"
        end = min(el.value_at + el.length, len(data))
        if el.length == 2:
            struct.pack_into(order + "H", data, el.value_at, self.rng.choice(_INTERESTING_16))
        elif el.length == 4 and self.rng.random() < 0.7:
            struct.pack_into(order + "I", data, el.value_at, self.rng.choice(_INTERESTING_32))
        else:
            value = self.rng.choice(_TEXT_VALUES)
            if len(value) % 2:
                value += b" "
            data[el.value_at : end] = value
            _set_length(data, el, len(value))
        return None

    def nesting(self, data: bytearray) -> None:
        """Wrap an element in sequences nested some levels deep (defined or undefined length)."""
        els = [e for e in elements(bytes(data)) if e.vr_at >= 0 and e.tag >> 16 != 2]
        if not els:
            return self.bytes_(data)
        el = self.rng.choice(els)
        depth = self.rng.choice((2, 10, 70, 300))
        head = b"\x08\x00\x15\x11SQ\0\0\xff\xff\xff\xff\xfe\xff\x00\xe0\xff\xff\xff\xff"
        tail = b"\xfe\xff\x0d\xe0\0\0\0\0\xfe\xff\xdd\xe0\0\0\0\0"
        if not el.little:
            return self.bytes_(data)
        data[el.start : el.start] = head * depth
        insert_at = el.start + len(head) * depth
        body_end = insert_at + (el.value_at - el.start) + max(0, min(el.length, 1 << 20))
        body_end = min(body_end, len(data))
        data[body_end:body_end] = tail * (depth - self.rng.choice((0, 0, 1)))
        return None

    # -- Pixel Data -------------------------------------------------------------------------

    def fragments(self, data: bytearray) -> None:
        frags = _fragments(bytes(data), elements(bytes(data)))
        if not frags:
            return self.element_length(data)
        el = self.rng.choice(frags)
        roll = self.rng.random()
        if roll < 0.4:
            _set_length(
                data,
                el,
                self.rng.choice(
                    [
                        0,
                        1,
                        2,
                        4,
                        el.length - 1,
                        el.length + 1,
                        el.length + 8,
                        0xFFFFFFFF,
                        len(data) - el.value_at + 4,
                    ]
                ),
            )
        elif roll < 0.6 and el is frags[0] and el.length >= 4:
            # Basic Offset Table entries (PS3.5 A.4): out of range, descending, unaligned.
            at = el.value_at + 4 * self.rng.randrange(el.length // 4)
            struct.pack_into("<I", data, at, self.rng.choice(_INTERESTING_32))
        elif roll < 0.75:
            del data[el.start : el.value_at + min(el.length, len(data))]  # drop a fragment
        elif roll < 0.9:
            # duplicate a fragment
            chunk = bytes(data[el.start : el.value_at + min(el.length, 1 << 16)])
            data[el.start : el.start] = chunk
        else:
            # remove the sequence delimiter
            at = data.rfind(b"\xfe\xff\xdd\xe0")
            if at >= 0:
                del data[at : at + 8]
        return None

    def _frame_starts(self, data: bytearray) -> list[Element]:
        frags = _fragments(bytes(data), elements(bytes(data)))
        return [f for f in frags[1:] if f.length != _UNDEFINED and f.length >= 4]

    def rle_header(self, data: bytearray) -> None:
        """PS3.5 G.3.1: 16 little-endian 32-bit words, segment count then offsets."""
        frames = self._frame_starts(data)
        if not frames:
            return self.bytes_(data)
        el = self.rng.choice(frames)
        if el.length < 64:
            return self.bytes_(data)
        at = el.value_at
        roll = self.rng.random()
        if roll < 0.3:
            struct.pack_into(
                "<I", data, at, self.rng.choice([0, 1, 2, 3, 4, 8, 15, 16, 255, 0xFFFFFFFF])
            )
        elif roll < 0.8:
            k = self.rng.randrange(1, 16)
            count = struct.unpack_from("<I", data, at)[0]
            offsets = [struct.unpack_from("<I", data, at + 4 * i)[0] for i in range(1, 16)]
            choices = [0, 1, 63, 64, 65, el.length - 1, el.length, el.length + 1, 0xFFFFFFFF]
            if 0 < count <= 15:
                choices += [offsets[0], offsets[min(count, 15) - 1] + 1, offsets[k - 1] - 1]
            struct.pack_into("<I", data, at + 4 * k, self.rng.choice(choices) & 0xFFFFFFFF)
        else:
            # corrupt the run-length stream itself: long replicate runs and literal overruns
            for _ in range(self.rng.randint(1, 20)):
                i = at + 64 + self.rng.randrange(max(1, el.length - 64))
                if i < len(data):
                    data[i] = self.rng.choice([0x7F, 0x80, 0x81, 0xFF, 0x00])
        return None

    def jpeg_markers(self, data: bytearray) -> None:
        """T.81 B.2: marker segments; corrupt their lengths and the SOF/SOS/DHT fields."""
        frames = self._frame_starts(data)
        if not frames:
            return self.bytes_(data)
        el = self.rng.choice(frames)
        start, stop = el.value_at, min(el.value_at + el.length, len(data))
        markers = [
            i
            for i in range(start, min(stop - 3, start + 4096))
            if data[i] == 0xFF and data[i + 1] not in (0x00, 0xFF)
        ]
        if not markers:
            return self.bytes_(data)
        i = self.rng.choice(markers)
        roll = self.rng.random()
        if roll < 0.35 and i + 4 <= stop:
            struct.pack_into(">H", data, i + 2, self.rng.choice(_INTERESTING_16))
        elif roll < 0.65 and i + 10 <= stop:
            # SOF-like fields: precision, rows, columns, components
            field = self.rng.choice((4, 5, 7, 9))
            if field == 4 or field == 9:
                data[i + field] = self.rng.choice([0, 1, 2, 3, 4, 8, 12, 16, 17, 255])
            else:
                struct.pack_into(">H", data, i + field, self.rng.choice(_INTERESTING_16))
        elif roll < 0.8:
            data[i + 1] = self.rng.choice(
                [0xC0, 0xC1, 0xC2, 0xC3, 0xC4, 0xC9, 0xD8, 0xD9, 0xDA, 0xDB, 0xDD, 0xF7, 0xF8]
            )
        else:
            del data[i + self.rng.randrange(2, 64) : stop]  # truncate the codestream
        return None

    def j2k_siz(self, data: bytearray) -> None:
        """T.800 A.5.1: SIZ sizes, tiles, component count and depths."""
        at = data.find(b"\xff\x4f\xff\x51")
        if at < 0:
            return self.jpeg_markers(data)
        field = self.rng.choice((4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 42, 43, 44, 45))
        if at + field + 4 > len(data):
            return self.bytes_(data)
        if field in (4, 40):
            struct.pack_into(">H", data, at + field, self.rng.choice(_INTERESTING_16))
        elif field >= 42:
            data[at + field] = self.rng.choice([0, 1, 7, 15, 31, 37, 0x80 | 15, 255])
        else:
            struct.pack_into(">I", data, at + field, self.rng.choice(_INTERESTING_32))
        return None

    def transfer_syntax(self, data: bytearray) -> None:
        at = data.find(b"\x02\x00\x10\x00UI")
        if at < 0 or at + 8 > len(data):
            return self.bytes_(data)
        (length,) = struct.unpack_from("<H", data, at + 6)
        uid = self.rng.choice(_TRANSFER_SYNTAXES)
        if len(uid) % 2:
            uid += b"\0"
        data[at + 8 : at + 8 + length] = uid
        struct.pack_into("<H", data, at + 6, len(uid))
        # keep (0002,0000) File Meta Information Group Length right most of the time
        gl = data.find(b"\x02\x00\x00\x00UL\x04\x00")
        if gl >= 0 and self.rng.random() < 0.8:
            old = struct.unpack_from("<I", data, gl + 8)[0]
            struct.pack_into("<I", data, gl + 8, (old + len(uid) - length) & 0xFFFFFFFF)
        return None

    # -- plain bytes ------------------------------------------------------------------------

    def bytes_(self, data: bytearray) -> None:
        if not data:
            data.extend(b"\0")
        for _ in range(self.rng.randint(1, 8)):
            i = self.rng.randrange(len(data))
            roll = self.rng.random()
            if roll < 0.35:
                data[i] ^= 1 << self.rng.randrange(8)
            elif roll < 0.55:
                data[i] = self.rng.randrange(256)
            elif roll < 0.75:
                data[i : i + 4] = struct.pack("<I", self.rng.choice(_INTERESTING_32))
            elif roll < 0.85:
                data[i : i + 2] = struct.pack("<H", self.rng.choice(_INTERESTING_16))
            elif roll < 0.95:
                n = self.rng.randint(1, 64)
                del data[i : i + n]
            else:
                n = self.rng.randint(1, 64)
                data[i:i] = data[i : i + n]
            if not data:
                data.extend(b"\0")

    def truncate(self, data: bytearray) -> None:
        if len(data) > 2:
            del data[self.rng.randrange(1, len(data)) :]

    def splice(self, data: bytearray) -> None:
        if not self.pool:
            return self.bytes_(data)
        other = self.rng.choice(self.pool)
        if not other or not data:
            return None
        i = self.rng.randrange(len(data))
        j = self.rng.randrange(len(other))
        data[i:] = other[j : j + self.rng.randint(8, 4096)] + data[i:]
        return None
