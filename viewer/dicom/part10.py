"""The byte-level facts of a Part 10 file every reader and writer shares (PS3.5 7.1, PS3.10 7.1):
which explicit VRs carry a 4-byte length, the preamble, and the executable headers a preamble
must not hold (CVE-2019-11687). One table each, so that no two readers disagree.
"""

from __future__ import annotations

PREAMBLE_SIZE = 128
PREFIX = b"DICM"

#: Explicit VRs with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2, Table 7.1-1).
LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)

#: Explicit VRs with a 2-byte length (PS3.5 7.1.2, Table 7.1-2).
SHORT_VRS = frozenset(
    {
        b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT",
        b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
    }
)  # fmt: skip

#: Executable headers a preamble may carry (PS3.10 7.5, CVE-2019-11687), and their names.
EXECUTABLE_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"MZ", "a Windows PE executable header ('MZ')"),
    (b"\x7fELF", "an ELF executable header"),
    (b"\xfe\xed\xfa\xce", "a Mach-O executable header"),
    (b"\xfe\xed\xfa\xcf", "a Mach-O executable header"),
    (b"\xce\xfa\xed\xfe", "a Mach-O executable header"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O executable header"),
    (b"\xca\xfe\xba\xbe", "a Mach-O universal binary header"),
)


def executable_header(preamble: bytes) -> str:
    """What executable header ``preamble`` (a file's first 128 bytes) starts with, or ""."""
    for magic, what in EXECUTABLE_MAGIC:
        if preamble.startswith(magic):
            return what
    return ""
