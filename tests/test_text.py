"""viewer.text: the one escaping function for names and values shown on a terminal, in a log,
in JSON (issue 9: terminal injection from discs and peers)."""

from __future__ import annotations

import io
import json
import logging
import os

import pytest

from viewer import text
from viewer.model import Problem
from viewer.text import EscapingFormatter, escape, json_safe


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain name.dcm", "plain name.dcm"),
        ("a\x1b]0;pwned\x07b", "a\\x1b]0;pwned\\x07b"),
        ("line\nbreak\rcr\ttab", "line\\nbreak\\rcr\\ttab"),
        ("nul\x00del\x7f", "nul\\x00del\\x7f"),
        ("c1 csi\x9b31m nel\x85", "c1 csi\\x9b31m nel\\x85"),
        ("bidi\u202eevil\u2066x\u2069", "bidi\\u202eevil\\u2066x\\u2069"),
        ("ls\u2028ps\u2029", "ls\\u2028ps\\u2029"),
        ("zero\u200bwidth\ufeffbom", "zero\\u200bwidth\\ufeffbom"),
        ("back\\slash", "back\\\\slash"),
        ("literal \\x1b text", "literal \\\\x1b text"),  # never mistaken for an escape
        ("tag\U000e0041", "tag\\U000e0041"),
        (os.fsdecode(b"latin1-\xff.dcm"), "latin1-\\udcff.dcm"),  # undecodable file name
        # every script stays readable, with its spaces and joiners
        ("山田^太郎\u3000やまだ", "山田^太郎\u3000やまだ"),
        ("Διονυσιος Ωμέγα", "Διονυσιος Ωμέγα"),
        ("می\u200cخواهم", "می\u200cخواهم"),
        ("no\u00a0break", "no\u00a0break"),
        ("👩\u200d⚕️", "👩\u200d⚕️"),
    ],
)
def test_escape(raw: str, shown: str) -> None:
    assert escape(raw) == shown
    assert "\n" not in escape(raw) and "\x1b" not in escape(raw)
    escape(raw).encode("utf-8")  # printable whatever stdout's error handler is


def test_escape_is_unambiguous() -> None:
    """Two different texts never look the same once escaped (the backslash is escaped too)."""
    texts = ["\x1b", "\\x1b", "\\\x1b", "\n", "\\n", "\\\\n", "\u202e", "\\u202e"]
    assert len({escape(t) for t in texts}) == len(texts)


def test_problem_str_is_one_escaped_line() -> None:
    problem = Problem("/media/evil\n/media/fake.dcm", "bad value '\x1b[2J'\nforged: line")
    assert str(problem) == "/media/evil\\n/media/fake.dcm: bad value '\\x1b[2J'\\nforged: line"
    assert problem.path == "/media/evil\n/media/fake.dcm"  # the data keeps the real name


def test_json_safe_is_the_same_json_and_prints_safely() -> None:
    data = {
        "name": "\x1b[2J\x9b\u202e\u2028\x7f" + os.fsdecode(b"\xff") + "\U000e0041 山田",
        "q": 'quote " and \\',
    }
    text = json_safe(json.dumps(data, ensure_ascii=False))
    assert json.loads(text) == data
    for raw in ("\x1b", "\x9b", "\u202e", "\u2028", "\x7f", "\U000e0041"):
        assert raw not in text
    assert "山田" in text  # readable text stays as it is
    text.encode("utf-8")


def test_formatter_escapes_messages_tracebacks_and_stacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(EscapingFormatter("lightbox: %(levelname)s: %(message)s"))
    logger = logging.getLogger("tests.text.formatter")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("%s: cannot read", "evil\x1b]0;x\x07\nfake.dcm")
        try:
            raise ValueError("value \x1b[2J\u202e")
        except ValueError:
            logger.error("failed on %s", "a\rb", exc_info=True, stack_info=True)
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    lines = out.splitlines()
    assert lines[0] == "lightbox: WARNING: evil\\x1b]0;x\\x07\\nfake.dcm: cannot read"
    assert lines[1] == "lightbox: ERROR: failed on a\\rb"
    assert "ValueError: value \\x1b[2J\\u202e" in lines
    for raw in ("\x1b", "\x07", "\r", "\u202e"):
        assert raw not in out


# -- names, dates and times: one formatter for every screen --------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("DOE^JOHN", "DOE, JOHN"),
        ("^John", "John"),  # the browser and the query dialog used to differ ("John", ", John")
        ("DOE", "DOE"),
        (" DOE ^ JOHN ", "DOE, JOHN"),
        ("Smith^Anna^Maria^Dr", "Smith, Dr Anna Maria"),
        ("DOE^JOHN^^^JR", "DOE, JOHN, JR"),  # a father and son differ by the suffix
        ("Yamada^Tarou=山田^太郎=やまだ^たろう", "Yamada, Tarou (山田 太郎)"),
        ("=山田^太郎", "山田 太郎"),
        ("Rubo DEMO", "Rubo DEMO"),
        ("", ""),
        (None, ""),
    ],
)
def test_person_name(value: object, shown: str) -> None:
    assert text.person_name(value) == shown


def test_person_name_of_a_pydicom_value() -> None:
    from pydicom.valuerep import PersonName

    assert text.person_name(PersonName("Yamada^Tarou=山田^太郎")) == "Yamada, Tarou (山田 太郎)"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("20240131", "2024-01-31"),
        ("1993.04.30", "1993-04-30"),  # ACR-NEMA dates, as some PACS still answer
        (" 20240131 ", "2024-01-31"),
        ("2024", "2024"),
        ("", ""),
        (None, ""),
    ],
)
def test_show_date(value: object, shown: str) -> None:
    assert text.show_date(value) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("101530.123456", "10:15:30"),
        ("1015", "10:15"),
        ("10", "10:00"),
        ("10:15:30", "10:15:30"),
        ("noon", "noon"),
        ("", ""),
    ],
)
def test_show_time(value: object, shown: str) -> None:
    assert text.show_time(value) == shown


def test_one_formatter_for_names_and_dates() -> None:
    """No module keeps a formatter of its own (the browser, the query dialog, the corners and
    the media pages each had one, and they disagreed)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "viewer"
    own = re.compile(r"^def (person_name|show_date|show_time|format_name|format_date)\(", re.M)
    defined = [
        p.relative_to(root).as_posix() for p in root.rglob("*.py") if own.search(p.read_text())
    ]
    assert defined == ["text.py"]


def test_plural() -> None:
    assert text.plural(1, "image") == "1 image"
    assert text.plural(0, "image") == "0 images"
    assert text.plural(1, "study", "studies") == "1 study"
    assert text.plural(4, "study", "studies") == "4 studies"
