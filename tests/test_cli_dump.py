"""``lightbox dump FILE [--search TEXT] [--json]``: the real command line in a subprocess, its
exit codes (0 done, 1 done with problems, 2 usage, 3 not readable) and escaped output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

ROOT = Path(__file__).resolve().parent.parent


def bundled(name: str) -> Path:
    path = get_testdata_file(name)
    assert path is not None, name
    return Path(path)


def lightbox(*args: str | Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "viewer", *map(str, args)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=ROOT,
        timeout=120,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_dump_prints_every_element_and_exits_0() -> None:
    result = lightbox("dump", bundled("CT_small.dcm"))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == "# File Meta Information"
    assert "(0002,0010) UI TransferSyntaxUID [1.2.840.10008.1.2.1]" in lines
    assert "(0010,0010) PN PatientName [CompressedSamples^CT1]" in lines
    assert "(0009,1001) LO Private tag (GEMS_IDEN_01) [GE_GENESIS_FF]" in lines
    assert lines.index("# File Meta Information") < lines.index("# Data Set")


def test_dump_lists_fragments_with_their_offsets() -> None:
    path = bundled("SC_rgb_rle_2frame.dcm")
    data = path.read_bytes()
    result = lightbox("dump", path)
    assert result.returncode == 0, result.stderr
    fragments = [line for line in result.stdout.splitlines() if "Fragment " in line]
    assert len(fragments) == 2
    offset = int(fragments[0].split(" at byte ")[1].split(",")[0])
    assert data[offset - 8 : offset - 4] == b"\xfe\xff\x00\xe0"


def test_search_keeps_matches_and_their_sequences() -> None:
    result = lightbox("dump", bundled("JPEG2000.dcm"), "--search", "codevalue")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "# Data Set",
        "(0008,2112) SQ SourceImageSequence (1 item, undefined length)",
        "  (FFFE,E000) Item 1 (3 elements)",
        "    (0040,A170) SQ PurposeOfReferenceCodeSequence (1 item, undefined length)",
        "      (FFFE,E000) Item 1 (3 elements)",
        "        (0008,0100) SH CodeValue [121320]",
        "(0008,9215) SQ DerivationCodeSequence (1 item, undefined length)",
        "  (FFFE,E000) Item 1 (3 elements)",
        "    (0008,0100) SH CodeValue [113040]",
    ]
    by_tag = lightbox("dump", bundled("CT_small.dcm"), "--search", "00280010")
    assert by_tag.stdout.splitlines() == ["# Data Set", "(0028,0010) US Rows [128]"]


def test_json_parses_and_has_the_documented_keys() -> None:
    result = lightbox("dump", bundled("JPEG2000.dcm"), "--json", "--search", "PixelData")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["transfer_syntax"] == "1.2.840.10008.1.2.4.91"
    assert document["warnings"] == []
    (pixels,) = document["elements"]
    assert pixels["tag"] == "(7FE0,0010)"
    assert pixels["keyword"] == "PixelData"
    assert pixels["length"] is None
    assert [f["kind"] for f in pixels["fragments"]] == ["offset table", "fragment"]
    whole = json.loads(lightbox("dump", bundled("CT_small.dcm"), "--json").stdout)
    assert whole["elements"][0]["tag"] == "(0002,0000)" and whole["elements"][0]["meta"]


def test_values_with_control_characters_are_printed_escaped(tmp_path: Path) -> None:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3"
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Evil\x1b]0;pwned\x07^Name"
    ds.StudyDescription = "line\nforged\u202e"
    path = tmp_path / "evil\x1b[31m.dcm"
    ds.save_as(path, enforce_file_format=True)
    result = lightbox("dump", path)
    for stream in (result.stdout, result.stderr):
        assert "\x1b" not in stream and "\x07" not in stream and "\u202e" not in stream
    assert "(0010,0010) PN PatientName [Evil\\x1b]0;pwned\\x07^Name]" in result.stdout
    assert "(0008,1030) LO StudyDescription [line\\nforged\\u202e]" in result.stdout
    as_json = lightbox("dump", path, "--json")
    assert "\x1b" not in as_json.stdout and "\u202e" not in as_json.stdout
    document = json.loads(as_json.stdout)
    name = next(e for e in document["elements"] if e["keyword"] == "PatientName")
    assert name["value"] == "Evil\\x1b]0;pwned\\x07^Name"


def test_a_truncated_file_is_dumped_with_its_problems_and_exits_1(tmp_path: Path) -> None:
    data = bundled("JPEG2000.dcm").read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[:3000])
    result = lightbox("dump", path)
    assert result.returncode == 1, result.stderr
    assert "(0010,0010) PN PatientName [CompressedSamples^NM1]" in result.stdout
    problems = result.stderr.splitlines()
    assert problems and all(line.startswith(f"lightbox: {path}: ") for line in problems)
    assert "truncated" in result.stderr


def test_a_pixel_fragment_overrunning_the_file_still_shows_the_header(tmp_path: Path) -> None:
    """The whole data set does not parse ("seek out of range" in the RLE fragments); the header
    is shown up to Pixel Data, the reason named, exit 1 (once exit 3 with nothing shown)."""
    data = bundled("SC_rgb_rle.dcm").read_bytes()
    path = tmp_path / "overrun.dcm"
    path.write_bytes(data[:-300])
    result = lightbox("dump", path)
    assert result.returncode == 1, result.stderr
    assert "(0028,0107) US LargestImagePixelValue [255]" in result.stdout
    assert "(7FE0,0010)" not in result.stdout
    assert result.stderr == (
        f"lightbox: {path}: the data set cannot be read past its header (cannot parse the data "
        "set: seek out of range): Pixel Data and what follows it are not shown\n"
    )


def test_a_file_that_is_no_dicom_exits_3(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("no DICOM here\n" * 20)
    result = lightbox("dump", path)
    assert result.returncode == 3
    assert result.stdout == ""
    assert (
        result.stderr
        == f"lightbox: {path}: not a DICOM file (no DICM prefix and no DICOM data set)\n"
    )
    missing = lightbox("dump", tmp_path / "missing.dcm")
    assert missing.returncode == 3
    assert "no such file" in missing.stderr


def test_usage_errors_exit_2() -> None:
    assert lightbox("dump").returncode == 2
    result = lightbox("dump", bundled("CT_small.dcm"), "--search")
    assert result.returncode == 2
    assert "--search" in result.stderr
