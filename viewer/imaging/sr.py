"""Structured Reports as readable text: the content tree of an SR document (PS3.3 C.17.3).

An SR document (Basic, Enhanced, Comprehensive, Comprehensive 3D, Key Object Selection and the
other templates' classes: every SOP Class under 1.2.840.10008.5.1.4.1.1.88) is a tree of content
items. Each item has a relationship type to its parent (CONTAINS, HAS OBS CONTEXT, INFERRED
FROM...; PS3.3 C.17.3.2.4), a value type (PS3.3 C.17.3.2.1: TEXT, CODE, NUM, DATE, TIME,
DATETIME, PNAME, UIDREF, IMAGE, COMPOSITE, WAVEFORM, SCOORD, SCOORD3D, TCOORD, CONTAINER), a
concept name (a coded entry: its Code Meaning is shown) and a value. The document itself is the
root item: a CONTAINER whose concept name is the document's title.

The file is untrusted: it is read with :func:`viewer.imaging.decode.read_file` (which already
drops sequences nested more than 64 deep), the tree is walked without recursion, cut at
:data:`MAX_DEPTH` levels and :data:`MAX_ITEMS` items with a note saying so, every value that
cannot be read becomes a note on its item, and every text is escaped
(:func:`viewer.text.escape`; a text value keeps its line breaks, each line escaped). No Qt.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset

from viewer.imaging.decode import DecodeError, read_file
from viewer.imaging.items import first as _first_item
from viewer.imaging.items import items as _sequence_items
from viewer.text import escape, person_name, plural, show_date, show_time

#: Content items nested deeper than this are not shown (the root is level 0).
MAX_DEPTH = 64
#: At most this many content items are shown; the rest is cut with a note.
MAX_ITEMS = 20_000
#: A text value longer than this is cut (characters).
MAX_TEXT = 100_000

SR_ROOT = "1.2.840.10008.5.1.4.1.1.88."
KEY_OBJECT_SELECTION = "1.2.840.10008.5.1.4.1.1.88.59"

#: Document kinds by SOP Class UID (PS3.6 Annex A), for the header.
SR_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.88.11": "Basic Text SR",
    "1.2.840.10008.5.1.4.1.1.88.22": "Enhanced SR",
    "1.2.840.10008.5.1.4.1.1.88.33": "Comprehensive SR",
    "1.2.840.10008.5.1.4.1.1.88.34": "Comprehensive 3D SR",
    "1.2.840.10008.5.1.4.1.1.88.35": "Extensible SR",
    "1.2.840.10008.5.1.4.1.1.88.40": "Procedure Log",
    "1.2.840.10008.5.1.4.1.1.88.50": "Mammography CAD SR",
    "1.2.840.10008.5.1.4.1.1.88.59": "Key Object Selection",
    "1.2.840.10008.5.1.4.1.1.88.65": "Chest CAD SR",
    "1.2.840.10008.5.1.4.1.1.88.67": "X-Ray Radiation Dose SR",
    "1.2.840.10008.5.1.4.1.1.88.68": "Radiopharmaceutical Radiation Dose SR",
    "1.2.840.10008.5.1.4.1.1.88.69": "Colon CAD SR",
    "1.2.840.10008.5.1.4.1.1.88.70": "Implantation Plan SR",
    "1.2.840.10008.5.1.4.1.1.88.71": "Acquisition Context SR",
    "1.2.840.10008.5.1.4.1.1.88.72": "Simplified Adult Echo SR",
    "1.2.840.10008.5.1.4.1.1.88.73": "Patient Radiation Dose SR",
    "1.2.840.10008.5.1.4.1.1.88.74": "Planned Imaging Agent Administration SR",
    "1.2.840.10008.5.1.4.1.1.88.75": "Performed Imaging Agent Administration SR",
    "1.2.840.10008.5.1.4.1.1.88.76": "Enhanced X-Ray Radiation Dose SR",
}


class ReportError(DecodeError):
    """A file that is no SR document (no content tree), and why."""


@dataclass(frozen=True, slots=True)
class Reference:
    """An IMAGE, COMPOSITE or WAVEFORM item's object (PS3.3 C.17.3.2.1, Table C.18.3-1)."""

    sop_class_uid: str
    sop_instance_uid: str
    frames: tuple[int, ...] = ()


@dataclass(slots=True)
class ContentItem:
    """One content item; every string escaped. ``value`` may hold line breaks (a TEXT value's
    own, each line escaped); ``note`` says what could not be read or was cut here."""

    relationship: str
    value_type: str
    concept: str
    value: str = ""
    reference: Reference | None = None
    note: str = ""
    children: list[ContentItem] = field(default_factory=list)

    def walk(self) -> Iterator[tuple[int, ContentItem]]:
        """(depth, item) for this item and everything under it, in document order."""
        stack: list[tuple[int, ContentItem]] = [(0, self)]
        while stack:
            depth, item = stack.pop()
            yield depth, item
            stack.extend((depth + 1, c) for c in reversed(item.children))


@dataclass(slots=True)
class Report:
    """An SR document: its header (escaped) and its content tree."""

    path: str
    kind: str
    title: str
    patient_name: str
    patient_id: str
    study_date: str
    study_description: str
    completion_flag: str
    verification_flag: str
    content_date: str
    root: ContentItem
    item_count: int
    #: What was cut or could not be read, and the reader's warnings, one line each (escaped).
    notes: list[str] = field(default_factory=list)

    def header_lines(self) -> list[str]:
        patient = self.patient_name or "(no name)"
        if self.patient_id:
            patient += f" (ID {self.patient_id})"
        study = " ".join(p for p in (self.study_date, self.study_description) if p)
        flags = [
            f"completion: {self.completion_flag or 'not stated'}",
            f"verification: {self.verification_flag or 'not stated'}",
        ]
        return [
            f"Patient: {patient}",
            f"Study: {study or '(not stated)'}",
            f"Document: {self.title or '(no title)'} ({self.kind})",
            f"Status: {'; '.join(flags)}",
            f"Date: {self.content_date or '(not stated)'}",
        ]

    def text(self) -> str:
        """The whole report as plain text: the header, the notes, then one line per item
        indented two spaces per level (a TEXT value's further lines under its first)."""
        lines = self.header_lines()
        lines.extend(f"Note: {n}" for n in self.notes)
        lines.append("")
        for depth, item in self.root.walk():
            indent = "  " * depth
            lines.append(indent + item_line(item, root=depth == 0))
            first, *rest = item_value_lines(item)
            del first
            lines.extend(f"{indent}    {line}" for line in rest)
            if item.note:
                lines.append(f"{indent}    ({item.note})")
        return "\n".join(lines) + "\n"


def item_value_lines(item: ContentItem) -> list[str]:
    return item.value.split("\n") if item.value else [""]


def item_line(item: ContentItem, *, root: bool = False) -> str:
    """One item on one line: ``[relationship] Concept: value`` (the relationship only when it
    is not CONTAINS, the value's first line only)."""
    concept = item.concept or f"({item.value_type or 'by reference'})"
    first = item_value_lines(item)[0]
    text = f"{concept}: {first}" if first else concept
    if not root and item.relationship and item.relationship != "CONTAINS":
        text = f"[{item.relationship.lower()}] {text}"
    return text


def read_report(path: str | os.PathLike[str]) -> Report:
    """The SR document at ``path``; raises :class:`DecodeError` (or :class:`ReportError`)."""
    dicom = read_file(path)
    return report_from_dataset(dicom.dataset, path=str(path), warnings=dicom.warnings)


def report_from_dataset(
    ds: Dataset, *, path: str = "", warnings: list[str] | None = None
) -> Report:
    """The content tree of ``ds`` (an SR document's data set), cut at :data:`MAX_DEPTH` levels
    and :data:`MAX_ITEMS` items with notes."""
    notes = [escape(w) for w in warnings or []]
    value_type = _text(ds, "ValueType")
    if value_type != "CONTAINER" and "ContentSequence" not in ds:
        if not any("(0040,A730)" in w for w in warnings or []):
            raise ReportError(path, "not a structured report (no content tree)")
        value_type = value_type or "CONTAINER"
    uid = _text(ds, "SOPClassUID")
    kind = SR_CLASSES.get(uid, "Structured Report" if uid.startswith(SR_ROOT) else "unknown")
    root = ContentItem("", value_type or "CONTAINER", _concept(ds))
    count = 1
    cut_depth = False
    cut_count = 0
    # (source data set, the item made from it, its depth)
    pending: list[tuple[Dataset, ContentItem, int]] = [(ds, root, 0)]
    while pending:
        source, target, depth = pending.pop()
        children = _sequence_items(source, "ContentSequence")
        if not children:
            continue
        if depth >= MAX_DEPTH:
            cut_depth = True
            target.note = _join(
                target.note, f"{plural(len(children), 'item')} below not shown: too deep"
            )
            continue
        made: list[tuple[Dataset, ContentItem]] = []
        for child in children:
            if count >= MAX_ITEMS:
                cut_count += 1
                continue
            count += 1
            item = _content_item(child)
            target.children.append(item)
            made.append((child, item))
        pending.extend((child, item, depth + 1) for child, item in reversed(made))
    if cut_depth:
        notes.append(f"content nested more than {MAX_DEPTH} levels deep is not shown")
    if cut_count:
        notes.append(f"only the first {MAX_ITEMS} content items are shown ({cut_count} more)")
    return Report(
        path=escape(path),
        kind=kind,
        title=root.concept,
        patient_name=escape(person_name(ds.get("PatientName", ""))),
        patient_id=_text(ds, "PatientID"),
        study_date=escape(show_date(_raw(ds, "StudyDate"))),
        study_description=_text(ds, "StudyDescription"),
        completion_flag=_text(ds, "CompletionFlag"),
        verification_flag=_text(ds, "VerificationFlag"),
        content_date=_date_time(_raw(ds, "ContentDate"), _raw(ds, "ContentTime")),
        root=root,
        item_count=count,
        notes=notes,
    )


def _content_item(ds: Dataset) -> ContentItem:
    """One item of a Content Sequence, its value rendered by value type (PS3.3 C.17.3.2.1)."""
    item = ContentItem(_text(ds, "RelationshipType"), _text(ds, "ValueType"), _concept(ds))
    try:
        _fill_value(ds, item)
    except Exception as exc:  # a hostile value (a DS that is no number...): said, not raised
        item.note = _join(item.note, f"value unreadable: {escape(type(exc).__name__)}")
    return item


def _fill_value(ds: Dataset, item: ContentItem) -> None:
    kind = item.value_type
    if not kind:
        numbers = _values(ds, "ReferencedContentItemIdentifier")
        if numbers:
            item.value = "see item " + ".".join(escape(n) for n in numbers[:MAX_DEPTH])
        return
    if kind == "TEXT":
        item.value = _multiline(_raw(ds, "TextValue"))
    elif kind == "CODE":
        code = _first_item(ds, "ConceptCodeSequence")
        item.value = _code_meaning(code) if code is not None else ""
    elif kind == "NUM":
        item.value = _numeric(ds)
    elif kind == "DATE":
        item.value = escape(show_date(_raw(ds, "Date")))
    elif kind == "TIME":
        item.value = escape(show_time(_raw(ds, "Time")))
    elif kind == "DATETIME":
        stamp = _raw(ds, "DateTime")
        item.value = _date_time(stamp[:8], stamp[8:14]) + escape(stamp[14:])
    elif kind == "PNAME":
        item.value = escape(person_name(ds.get("PersonName", "")))
    elif kind == "UIDREF":
        item.value = _text(ds, "UID")
    elif kind in ("IMAGE", "COMPOSITE", "WAVEFORM"):
        _fill_reference(ds, item)
    elif kind in ("SCOORD", "SCOORD3D"):
        points = len(_values(ds, "GraphicData")) // (3 if kind == "SCOORD3D" else 2)
        graphic = _text(ds, "GraphicType") or "graphic"
        item.value = f"{graphic}, {points} point{'s' if points != 1 else ''}"
        if kind == "SCOORD3D" and "ReferencedFrameOfReferenceUID" in ds:
            item.value += f" in frame of reference {_text(ds, 'ReferencedFrameOfReferenceUID')}"
    elif kind == "TCOORD":
        item.value = _text(ds, "TemporalRangeType")
    elif kind != "CONTAINER":
        item.note = f"value type {kind} not shown"


def _fill_reference(ds: Dataset, item: ContentItem) -> None:
    ref = _first_item(ds, "ReferencedSOPSequence")
    if ref is None:
        item.note = _join(item.note, "no referenced object")
        return
    frames = tuple(int(f) for f in _values(ref, "ReferencedFrameNumber")[:1000])
    reference = Reference(
        _text(ref, "ReferencedSOPClassUID"), _text(ref, "ReferencedSOPInstanceUID"), frames
    )
    item.reference = reference
    what = {"IMAGE": "image", "COMPOSITE": "object", "WAVEFORM": "waveform"}[item.value_type]
    item.value = f"{what} {reference.sop_instance_uid or '(no UID)'}"
    if frames:
        shown = ", ".join(str(f) for f in frames[:20])
        more = f" … ({len(frames)} frames)" if len(frames) > 20 else ""
        item.value += f", frame{'s' if len(frames) > 1 else ''} {shown}{more}"


def _numeric(ds: Dataset) -> str:
    measured = _first_item(ds, "MeasuredValueSequence")
    if measured is None:
        qualifier = _first_item(ds, "NumericValueQualifierCodeSequence")
        return f"({_code_meaning(qualifier)})" if qualifier is not None else "(no value)"
    number = escape(_raw(measured, "NumericValue"))
    units = _first_item(measured, "MeasurementUnitsCodeSequence")
    meaning = _code_meaning(units) if units is not None else ""
    if meaning in ("no units", "unity", "1"):
        meaning = ""
    return f"{number} {meaning}".strip()


def _concept(ds: Dataset) -> str:
    code = _first_item(ds, "ConceptNameCodeSequence")
    return _code_meaning(code) if code is not None else ""


def _code_meaning(code: Dataset) -> str:
    meaning = _text(code, "CodeMeaning")
    if meaning:
        return meaning
    value = _text(code, "CodeValue") or _text(code, "LongCodeValue") or _text(code, "URNCodeValue")
    scheme = _text(code, "CodingSchemeDesignator")
    return f"({value}, {scheme})" if value or scheme else ""


def _values(ds: Dataset, keyword: str) -> list[Any]:
    """A value's values as a list (pydicom gives one value bare, several as a MultiValue)."""
    try:
        value: Any = ds.get(keyword)
    except Exception:
        return []
    if value is None or value == "":
        return []
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        return [value]
    return list(value)


def _raw(ds: Dataset, keyword: str) -> str:
    """A value as text ('' when absent or unreadable), not escaped."""
    try:
        value: Any = ds.get(keyword)
    except Exception:
        return ""
    if value is None:
        return ""
    if not isinstance(value, str | bytes) and hasattr(value, "__iter__"):
        value = "\\".join(str(v) for v in value)
    return str(value)[:MAX_TEXT].strip()


def _text(ds: Dataset, keyword: str) -> str:
    return escape(_raw(ds, keyword))


def _multiline(text: str) -> str:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(escape(line.rstrip()) for line in lines).strip("\n")


def _date_time(date: str, time: str) -> str:
    return escape(" ".join(p for p in (show_date(date), show_time(time)) if p))


def _join(a: str, b: str) -> str:
    return f"{a}; {b}" if a else b
