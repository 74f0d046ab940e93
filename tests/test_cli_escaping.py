"""Terminal injection (issue 9): file names and DICOM values from a disc never reach the terminal
raw. ``ls``, ``import``, ``store ls``, ``verify``, ``render``, ``burn`` (and the log lines of
``-v``) show them escaped by :func:`viewer.text.escape`, one line per problem; ``ls --json`` is
the same JSON with DEL, C1 and bidi controls written as ``\\uNNNN``; the media writer's
README.TXT and HTML pages carry no control character either.

Real files with hostile names on disc, the real command line in a subprocess, bytes checked as
the terminal would get them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset

from tests.store.dicomfiles import make_dataset, to_bytes, write

ROOT = Path(__file__).resolve().parent.parent

EVIL_NAME = "evil\x1b]0;pwned\x07\nfake.dcm"
EVIL_SHOWN = "evil\\x1b]0;pwned\\x07\\nfake.dcm"
BAD_NAME = "bad\x1b[31m\rname.dcm"
BAD_SHOWN = "bad\\x1b[31m\\rname.dcm"
PATIENT = "\x1b[2JEVIL\x07^<i>NAME"
STUDY_DESCRIPTION = "desc\u202eevil\u2028line"
SERIES_DESCRIPTION = "ser\x9b31mies\r\nfake: line"
UNDECODABLE = os.fsdecode(b"latin1-\xff.dcm")
BARE_NAME = "bare\x1b[5m.dcm"
BARE_SHOWN = "bare\\x1b[5m.dcm"

#: What must never reach a terminal from a disc: ESC, BEL, CR, NUL, DEL, CSI (C1, in UTF-8),
#: the bidi override and the line separator (in UTF-8), an undecodable byte as it was.
RAW = [b"\x1b", b"\x07", b"\r", b"\x00", b"\x7f", b"\xc2\x9b", "\u202e".encode(),
       "\u2028".encode(), b"\xff"]  # fmt: skip

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="control characters in names")


def lightbox(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "viewer", *map(str, args)],
        capture_output=True,
        cwd=ROOT,
        timeout=120,
    )


def assert_clean(result: subprocess.CompletedProcess[bytes]) -> str:
    """No raw control character on stdout or stderr, both valid UTF-8; stdout as text."""
    for stream in (result.stdout, result.stderr):
        for raw in RAW:
            assert raw not in stream, (raw, stream.decode("utf-8", "replace"))
        stream.decode("utf-8")  # strict
    assert b"Traceback" not in result.stderr, result.stderr.decode()
    return result.stdout.decode("utf-8")


@pytest.fixture
def evil(tmp_path: Path) -> Path:
    folder = tmp_path / "disc"
    ds = make_dataset(1, 1, 1, patient=PATIENT, patient_id="ID\x1b]0;x\x07")
    ds.StudyDescription = STUDY_DESCRIPTION
    ds.SeriesDescription = SERIES_DESCRIPTION
    write(folder / EVIL_NAME, ds)
    # DICOM by its first bytes, broken File Meta: a problem naming the file
    (folder / BAD_NAME).write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\x00garbage")
    # a name that is not UTF-8 (PEP 383 surrogates in Python), truncated DICOM
    (folder / UNDECODABLE).write_bytes(to_bytes(make_dataset(2, 1, 1))[:300])
    # a bare data set (no File Meta): the reader logs, with -v, that it inferred the encoding
    bare = make_dataset(3, 1, 1)
    del bare.file_meta
    stream = DicomBytesIO()
    stream.is_little_endian, stream.is_implicit_VR = True, True
    write_dataset(stream, bare)
    (folder / BARE_NAME).write_bytes(stream.getvalue())
    return folder


def problem_lines(text: str, folder: Path) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(f"  {folder}/")]


def test_ls_shows_names_and_values_escaped(evil: Path) -> None:
    result = lightbox("ls", evil, "--check")
    text = assert_clean(result)
    assert "\\x1b[2JEVIL\\x07, <i>NAME  [ID\\x1b]0;x\\x07]" in text
    assert "desc\\u202eevil\\u2028line" in text
    assert "ser\\x9b31mies\\r\\nfake: line" in text
    lines = problem_lines(text, evil)
    assert lines, text
    assert any(BAD_SHOWN in line for line in lines)
    assert any("latin1-\\udcff.dcm" in line for line in lines)
    # one line per problem: the count announced is the count of lines
    announced = next(line for line in text.splitlines() if line.endswith("problem(s):"))
    assert int(announced.split()[0]) == len(
        [ln for ln in text.splitlines() if ln.startswith("  /")]
    )


def test_ls_json_is_the_same_data_printed_safely(evil: Path) -> None:
    result = lightbox("ls", evil, "--json", "--check")
    data = json.loads(assert_clean(result))
    # the value itself, once parsed
    (patient,) = [p for p in data["patients"] if p["patient_name"] == PATIENT]
    study = patient["studies"][0]
    assert study["study_description"] == STUDY_DESCRIPTION
    assert study["series"][0]["series_description"] == SERIES_DESCRIPTION
    paths = {p["path"] for p in data["problems"]}
    assert str(evil / BAD_NAME) in paths and str(evil / UNDECODABLE) in paths


def test_import_store_ls_and_verbose_logging(evil: Path) -> None:
    result = lightbox("-v", "import", evil)
    text = assert_clean(result)
    assert result.returncode == 1
    lines = problem_lines(text, evil)
    assert any(BAD_SHOWN in line for line in lines), text
    assert any("latin1-\\udcff.dcm" in line for line in lines), text
    listing = assert_clean(lightbox("store", "ls"))
    assert "\\x1b[2JEVIL\\x07, <i>NAME" in listing and "desc\\u202eevil\\u2028line" in listing
    assert_clean(lightbox("store", "check"))


def test_log_lines_naming_files_are_escaped(evil: Path) -> None:
    """The CLI's logging set-up escapes records (viewer.text.EscapingFormatter): the reader's
    debug line about the bare data set names the file."""
    result = lightbox("-v", "ls", evil)
    assert_clean(result)
    logged = [ln for ln in result.stderr.decode().splitlines() if "bare" in ln]
    assert logged and all(ln.startswith(f"lightbox: DEBUG: {evil}/{BARE_SHOWN}: ") for ln in logged)


def test_verify_names_files_escaped(evil: Path) -> None:
    text = assert_clean(lightbox("verify", evil))
    assert f"] {EVIL_SHOWN}: " in text and f"] {BAD_SHOWN}: " in text


def test_render_messages_escaped(evil: Path, tmp_path: Path) -> None:
    out = tmp_path / "png"
    result = lightbox("-v", "render", evil / EVIL_NAME, evil / BAD_NAME, "-o", out)
    assert_clean(result)
    assert result.returncode == 1
    assert f"{evil}/{BAD_SHOWN}: " in result.stderr.decode().splitlines()[-1]
    assert (out / "evil\x1b]0;pwned\x07\nfake.png").is_file()  # the image itself is made


def test_burn_from_escapes_and_writes_no_control_characters(evil: Path, tmp_path: Path) -> None:
    out = tmp_path / "burnt"
    result = lightbox("burn", "--from", evil, "--to", out)
    assert_clean(result)
    assert f"lightbox: {evil}/{BAD_SHOWN}: " in result.stderr.decode()
    readme = (out / "README.TXT").read_bytes()
    pages = [(out / "INDEX.HTM").read_bytes(), *(p.read_bytes() for p in out.glob("IHE_PDI/*.HTM"))]
    for document in (readme, *pages):
        for raw in RAW:
            if raw != b"\r":  # README.TXT has CRLF line ends
                assert raw not in document
    assert b"Patient: \\x1b[2JEVIL\\x07, <i>NAME (ID ID\\x1b]0;x\\x07)\r\n" in readme
    assert b"desc\\u202eevil\\u2028line" in readme
    # in HTML, markup from a value is text (html.escape) and control characters are escapes
    assert b"\\x1b[2JEVIL\\x07, &lt;i&gt;NAME" in pages[0] and b"<i>" not in pages[0]
