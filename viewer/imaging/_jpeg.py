"""Just enough JPEG marker parsing to repair what real-world encoders get wrong.

ITU-T T.81 (ISO/IEC 10918-1) B.2: a JPEG stream is a sequence of marker segments
(``FF xx`` followed by a big-endian 16-bit length that counts itself) up to the first Start
of Scan (SOS), after which entropy-coded data follows. DICOM carries these streams in
encapsulated Pixel Data (PS3.5 A.4.1). This module reads the frame header (SOF) and the
first scan header (SOS) and rewrites the two fields that non-conformant encoders are known
to get wrong; it never touches entropy-coded data and never decodes pixels itself.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# T.81 Table B.1: SOF markers. C4 (DHT), C8 (JPG) and CC (DAC) share the range but are not SOFs.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Sequential DCT processes (baseline, extended Huffman, extended arithmetic): for these the scan
# header must say Ss=0, Se=63, Ah=Al=0 (T.81 B.2.3, Table B.3).
_SEQUENTIAL_DCT = frozenset({0xC0, 0xC1, 0xC9})
_SOF_JPEG_LS = 0xF7


@dataclass(frozen=True)
class JpegHeader:
    """The parts of a JPEG (or JPEG-LS) frame header that decide how to decode it."""

    sof_marker: int  # 0xC0 baseline, 0xC1 extended, 0xC3 lossless, 0xF7 JPEG-LS, ...
    precision: int  # bits per sample (P)
    rows: int  # number of lines (Y)
    columns: int  # samples per line (X)
    components: int  # Nf
    sos_offset: int  # offset of the first SOS marker (the FF byte)
    spectral_start: int  # Ss (predictor for lossless, NEAR for JPEG-LS)
    spectral_end: int  # Se
    approximation: int  # Ah << 4 | Al

    @property
    def is_sequential_dct(self) -> bool:
        return self.sof_marker in _SEQUENTIAL_DCT

    @property
    def scan_header_conformant(self) -> bool:
        """False for a sequential-DCT stream whose first scan is not Ss=0, Se=63, Ah=Al=0."""
        if not self.is_sequential_dct:
            return True
        return (self.spectral_start, self.spectral_end, self.approximation) == (0, 63, 0)


def parse_header(data: bytes | bytearray | memoryview) -> JpegHeader | None:
    """Return the SOF and first SOS of a JPEG/JPEG-LS stream, or None if it is not one.

    Walks marker segments from SOI; stops at the first SOS. Tolerates fill bytes (``FF FF``)
    and standalone markers (RSTn, TEM) as T.81 B.1.1.2 allows. Never reads past ``data``.
    """
    buf = bytes(data[:65536]) if len(data) > 65536 else bytes(data)
    if len(buf) < 4 or buf[0] != 0xFF or buf[1] != 0xD8:
        return None
    pos = 2
    sof: tuple[int, int, int, int, int] | None = None
    end = len(buf)
    while pos + 4 <= end:
        if buf[pos] != 0xFF:
            return None
        marker = buf[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # standalone markers have no length
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", buf, pos + 2)
        if length < 2 or pos + 2 + length > end:
            return None
        if marker in _SOF_MARKERS or marker == _SOF_JPEG_LS:
            if length < 8:
                return None
            precision, rows, columns, ncomp = struct.unpack_from(">BHHB", buf, pos + 4)
            sof = (marker, precision, rows, columns, ncomp)
        elif marker == 0xDA:
            if sof is None or length < 6:
                return None
            ns = buf[pos + 4]
            params = pos + 5 + 2 * ns
            if params + 3 > pos + 2 + length:
                return None
            return JpegHeader(
                sof_marker=sof[0],
                precision=sof[1],
                rows=sof[2],
                columns=sof[3],
                components=sof[4],
                sos_offset=pos,
                spectral_start=buf[params],
                spectral_end=buf[params + 1],
                approximation=buf[params + 2],
            )
        pos += 2 + length
    return None


def fix_scan_header(data: bytes | bytearray, header: JpegHeader) -> bytes:
    """Return ``data`` with every sequential-DCT SOS rewritten to Ss=0, Se=63, Ah=Al=0.

    Some 1990s encoders (the NEMA WG04 MR1_JPLY / NM1_JPLY images among them) wrote Ss=Se=0 in
    the scan header of a sequential stream. For sequential DCT these fields carry no
    information (T.81 B.2.3: "shall be set to zero / 63"), so a decoder that ignores them
    (IJG, and hence DCMTK, with a warning) decodes the same stream we get after the rewrite.
    Later scans of a non-interleaved stream are found by searching for ``FF DA``: byte
    stuffing (T.81 B.1.1.5) means entropy-coded data never contains that pair.
    """
    out = bytearray(data)
    pos = header.sos_offset
    while pos >= 0:
        if pos + 5 > len(out):
            break
        (length,) = struct.unpack_from(">H", out, pos + 2)
        ns = out[pos + 4]
        params = pos + 5 + 2 * ns
        if params + 3 <= len(out) and params + 3 <= pos + 2 + length:
            out[params] = 0
            out[params + 1] = 63
            out[params + 2] = 0
        pos = out.find(b"\xff\xda", pos + 2 + length)
    return bytes(out)


def parse_j2k_size(data: bytes | bytearray | memoryview) -> tuple[int, int, int] | None:
    """(rows, columns, components) from a JPEG 2000 codestream's SIZ segment, or None.

    T.800 A.5.1: SOC (FF4F) is followed at once by SIZ (FF51) with Lsiz = 38 + 3 * Csiz. A JP2
    file (T.800 I.5) wraps the codestream in boxes: its SOC is searched for in the first bytes.
    Used to refuse garbage before a decoder sees it (python-gdcm aborts the process on some).
    """
    buf = bytes(data[:8192])
    start = 0 if buf[:2] == b"\xff\x4f" else buf.find(b"\xff\x4f\xff\x51")
    if start < 0 or len(buf) < start + 42 or buf[start + 2 : start + 4] != b"\xff\x51":
        return None
    lsiz, _rsiz, xsiz, ysiz, xo, yo, xt, yt, _xto, _yto, csiz = struct.unpack_from(
        ">HHIIIIIIIIH", buf, start + 4
    )
    if not 1 <= csiz <= 16384 or lsiz != 38 + 3 * csiz:
        return None
    if xsiz <= xo or ysiz <= yo or xt == 0 or yt == 0:
        return None
    return ysiz - yo, xsiz - xo, csiz
