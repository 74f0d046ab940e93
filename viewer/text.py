"""Names and values from discs and peers, made safe to show on a terminal, in a log or in JSON.

Every file name on a disc and every DICOM value is untrusted: an ESC (``\\x1b``) starts a
terminal escape sequence (retitle the window, move the cursor, rewrite what was printed), a CR or
LF forges a line, a C1 control such as U+009B is a CSI for many terminals, and the bidirectional
overrides (U+202A-U+202E, U+2066-U+2069) reorder what a line appears to say ("Trojan Source",
CVE-2021-42574). :func:`escape` turns each such character into a visible escape, as Python
writes it: ``\\n``, ``\\r``, ``\\t``, ``\\xNN`` (below U+0100), ``\\uNNNN``, ``\\UNNNNNNNN``; a
backslash becomes ``\\\\`` so that what is printed reads back unambiguously (a name holding the
four characters ``\\x1b`` is shown ``\\\\x1b``). Printable text of every script is left alone,
spaces of every kind included, and so are ZWNJ/ZWJ (U+200C/U+200D), which Persian and Indic
names need.

A file name that is not valid UTF-8 reaches Python as lone surrogates (PEP 383); printing those
would raise ``UnicodeEncodeError``. They are escaped too (``\\udcNN``, NN the original byte).

:class:`EscapingFormatter` applies the same to log records (message, traceback, stack), so a
name logged anywhere in the core cannot break a log line either. Qt-free; used by the CLI and the
core's ``__str__`` methods.
"""

from __future__ import annotations

import logging
import re
import unicodedata

#: ASCII characters that are not shown as they are: C0 controls, DEL, and the backslash.
_ASCII_UNSAFE = re.compile(r"[\x00-\x1f\x7f\\]")
#: Named escapes, as Python's repr writes them.
_NAMED = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: Format characters kept: zero-width non-joiner and joiner (Persian, Indic scripts, emoji).
_KEPT_FORMAT = frozenset("\u200c\u200d")
#: Unicode categories never shown as they are: controls (C0, C1), format characters (bidi
#: overrides, zero-width space, BOM...), surrogates, private use, unassigned, line and
#: paragraph separators (U+2028, U+2029: a line break for some terminals and JSON readers).
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _escape_char(ch: str) -> str:
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _unsafe(ch: str) -> bool:
    if ch < "\x80":
        return ch < " " or ch == "\x7f" or ch == "\\"
    return unicodedata.category(ch) in _UNSAFE_CATEGORIES and ch not in _KEPT_FORMAT


def escape(text: object) -> str:
    """``str(text)`` with every control or invisible formatting character, and the backslash,
    written as a visible escape (see the module docstring): safe for one line of a terminal."""
    value = text if isinstance(text, str) else str(text)
    if value.isascii():
        if _ASCII_UNSAFE.search(value) is None:
            return value
        return _ASCII_UNSAFE.sub(lambda m: _escape_char(m.group()), value)
    return "".join(_escape_char(ch) if _unsafe(ch) else ch for ch in value)


def is_safe(text: str) -> bool:
    """Whether ``text`` is shown as it is by :func:`escape` (no character would be escaped)."""
    return escape(text) == text


def _json_char(ch: str) -> str:
    code = ord(ch)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # a UTF-16 surrogate pair, as JSON spells characters beyond the BMP
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def json_safe(document: str) -> str:
    """A JSON text (from ``json.dumps(..., ensure_ascii=False)``) with the characters that
    ``json.dumps`` leaves raw but a terminal would act on (DEL, C1, bidi overrides, U+2028/
    U+2029, lone surrogates...) written as ``\\uNNNN`` escapes: the same JSON value, safe to
    print. Only string contents can hold such characters, so the result stays valid JSON."""
    if document.isascii():
        return document.replace("\x7f", "\\u007f")
    return "".join(
        _json_char(ch) if (ch == "\x7f" or (ch >= "\x80" and _unsafe(ch))) else ch
        for ch in document
    )


def escape_lines(text: str) -> str:
    """Each line of ``text`` escaped on its own, the line breaks kept (tracebacks, stacks)."""
    return "\n".join(escape(line) for line in text.split("\n"))


class EscapingFormatter(logging.Formatter):
    """A :class:`logging.Formatter` whose output holds no control character from a record:
    the message (with its arguments) is escaped as one line, a traceback or stack line by line.
    Installed by the CLI's logging set-up, which the GUI shares."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        saved = record.message
        record.message = escape(saved)
        try:
            return super().formatMessage(record)
        finally:
            record.message = saved

    def formatException(self, ei: object) -> str:
        return escape_lines(super().formatException(ei))  # type: ignore[arg-type]

    def formatStack(self, stack_info: str) -> str:
        return escape_lines(super().formatStack(stack_info))


# -- names, dates and times as people read them: one formatter for every screen and page --------


def person_name(value: object) -> str:
    """A Person Name (PS3.5 6.2.1) as every list, corner, page and dialog shows it:
    ``Family, Prefix Given Middle, Suffix``, the ideographic form after it in parentheses.

    ``value`` is the PN's text (``family^given^middle^prefix^suffix``, ``=`` before the
    ideographic and phonetic groups) or a pydicom ``PersonName``. Components are trimmed; a name
    with only a given name (``^John``) is ``John`` everywhere; the suffix is kept (a father and
    son differ by it). Not escaped: callers escape for a terminal or HTML as usual."""
    if value is None:
        return ""
    groups = str(value).split("=")
    text = _alphabetic_name(groups[0])
    ideographic = groups[1].replace("^", " ").strip() if len(groups) > 1 else ""
    ideographic = " ".join(ideographic.split())
    if ideographic:
        return f"{text} ({ideographic})" if text else ideographic
    return text


def _alphabetic_name(group: str) -> str:
    parts = [p.strip() for p in group.split("^")] + [""] * 5
    family, given, middle, prefix, suffix = parts[:5]
    forenames = " ".join(p for p in (prefix, given, middle) if p)
    text = f"{family}, {forenames}" if family and forenames else family or forenames
    return f"{text}, {suffix}" if suffix and text else text or suffix


def show_date(value: object) -> str:
    """A Date (DA, PS3.5 6.2: ``YYYYMMDD``, or ACR-NEMA's ``YYYY.MM.DD``) as ``YYYY-MM-DD``;
    empty as empty; anything else as it is."""
    text = str(value or "").strip()
    digits = text.replace(".", "") if len(text) == 10 and text[4::3] == ".." else text
    if len(digits) == 8 and digits.isdigit():
        return f"{digits[:4]}-{digits[4:6]}-{digits[6:]}"
    return text


def show_time(value: object) -> str:
    """A Time (TM, PS3.5 6.2: ``HH``, ``HHMM``, ``HHMMSS[.F...]``, or ACR-NEMA's
    ``HH:MM:SS``) as ``HH:MM`` or ``HH:MM:SS`` (fractions dropped); anything else as it is."""
    text = str(value or "").strip()
    digits = text.split(".")[0].replace(":", "")
    if not digits.isdigit() or len(digits) not in (2, 4, 6):
        return text
    parts = [digits[i : i + 2] for i in range(0, len(digits), 2)]
    if len(parts) == 1:
        parts.append("00")
    return ":".join(parts)


def plural(count: int, word: str, words: str | None = None) -> str:
    """``1 image``, ``2 images``, ``1 study``, ``3 studies`` (``words``: an irregular plural)."""
    return f"{count} {word if count == 1 else (words or word + 's')}"
