"""One table of long VRs and one executable-preamble check for every reader and writer."""

from __future__ import annotations

from pathlib import Path

import pytest

from viewer.dicom.part10 import LONG_VRS, SHORT_VRS, executable_header

VIEWER = Path(__file__).resolve().parents[2] / "viewer"


@pytest.mark.parametrize(
    ("preamble", "kind"),
    [
        (b"MZ\x90\x00" + bytes(124), "Windows PE"),
        (b"\x7fELF\x02\x01" + bytes(122), "ELF"),
        (b"\xcf\xfa\xed\xfe" + bytes(124), "Mach-O"),
        (b"\xca\xfe\xba\xbe" + bytes(124), "Mach-O universal"),  # verify.py used to miss it
    ],
)
def test_executable_headers_are_named(preamble: bytes, kind: str) -> None:
    assert kind in executable_header(preamble)


def test_a_plain_preamble_is_no_executable() -> None:
    assert executable_header(bytes(128)) == ""
    assert executable_header(b"ISO_IR 100" + bytes(118)) == ""


def test_long_and_short_vrs_are_disjoint_and_complete() -> None:
    assert not LONG_VRS & SHORT_VRS
    assert len(LONG_VRS | SHORT_VRS) == 34  # PS3.5 Table 6.2-1


def test_no_module_keeps_a_table_of_its_own() -> None:
    owners = sorted(
        p.relative_to(VIEWER).as_posix()
        for p in VIEWER.rglob("*.py")
        if 'b"\\x7fELF"' in (text := p.read_text())
        or 'b"OD", b"OF", b"OL"' in text
        or 'b"OB", b"OW"' in text  # verify.py kept one without OD, OF, OL, OV, SV and UV
    )
    assert owners == ["dicom/part10.py"]
