"""A printable receipt of an import or a hand-over (issue 13): what the disc listed, what was
stored (or committed by the node), per instance its SOP Instance UID and the SHA-256 of its
file, totals, and a prominent INCOMPLETE banner whenever anything listed was not stored (or
not committed).

One self-contained HTML page (inline CSS, print rules for A4, no script, no external
resource); the GUI prints the same page to PDF with Qt. Every value that comes from a file, a
disc or a peer is made safe twice: :func:`viewer.text.escape` (control characters, bidi
overrides) then :func:`html.escape`. The receipt is for the clerk and names the patient; the
log never does (only counts are logged).

No Qt and no store here: the caller hands over plain rows (:class:`ReceiptItem`), made from
a scan's tree (:func:`items_from_patients`) and the importer's report
(:func:`import_receipt`), or from what was sent and committed (:func:`handover_receipt`).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import html
import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from viewer import model
from viewer.config import write_text
from viewer.media import dicomdir, scan
from viewer.text import escape

LOG = logging.getLogger(__name__)

#: Per-instance states. Good ones: the instance is in the store / at the node.
STORED = "stored"
DUPLICATE = "already in the store"
COMMITTED = "committed"
#: Listed by a DICOMweb node (QIDO-RS) after the STOW-RS: DICOMweb has no commitment service.
VERIFIED = "verified"
#: Bad ones: the receipt is INCOMPLETE.
REJECTED = "rejected"
NOT_STORED = "not stored"
FAILED = "failed"
MISSING = "missing"
GOOD_STATES = frozenset({STORED, DUPLICATE, COMMITTED, VERIFIED})

_CHUNK = 1024 * 1024


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes (hex); "" when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
    except OSError:
        return ""
    return digest.hexdigest()


@dataclass(slots=True)
class ReceiptItem:
    """One instance listed (by the disc, or sent): where it is, what happened to it."""

    sop_instance_uid: str
    path: str = ""
    sha256: str = ""
    patient_name: str = ""
    patient_id: str = ""
    study_instance_uid: str = ""
    study_date: str = ""
    study_description: str = ""
    series_instance_uid: str = ""
    modality: str = ""
    series_description: str = ""
    state: str = NOT_STORED
    reason: str = ""

    @property
    def good(self) -> bool:
        return self.state in GOOD_STATES


@dataclass(slots=True)
class Receipt:
    """``kind``: "import" or "hand-over"; ``facts``: header lines (source, node, transaction);
    ``problems``: files refused that the listing did not name (with the reason)."""

    kind: str
    source: str
    items: list[ReceiptItem] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)
    problems: list[model.Problem] = field(default_factory=list)
    cancelled: bool = False
    created_at: str = field(
        default_factory=lambda: _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    )

    @property
    def complete(self) -> bool:
        """Everything listed is stored (committed), nothing was refused, nothing cut short."""
        return (
            bool(self.items)
            and all(i.good for i in self.items)
            and not self.problems
            and not self.cancelled
        )

    def count(self, state: str) -> int:
        return sum(1 for i in self.items if i.state == state)


def items_from_patients(patients: Iterable[model.Patient]) -> list[ReceiptItem]:
    """One row per instance of a scan's (or a DICOMDIR's) patient > study > series tree."""
    out: list[ReceiptItem] = []
    for patient in patients:
        for study in patient.studies:
            for series in study.series:
                for inst in series.instances:
                    out.append(
                        ReceiptItem(
                            sop_instance_uid=inst.sop_instance_uid,
                            path=str(inst.path),
                            patient_name=patient.patient_name,
                            patient_id=patient.patient_id or "",
                            study_instance_uid=study.study_instance_uid,
                            study_date=study.study_date,
                            study_description=study.study_description,
                            series_instance_uid=series.series_instance_uid,
                            modality=series.modality,
                            series_description=series.series_description,
                        )
                    )
    return out


def items_from_dicomdir(directory: dicomdir.DicomdirResult) -> list[ReceiptItem]:
    """One row per instance a DICOMDIR references, present or not: a file it lists that the
    disc lacks (or whose reference was refused) is a row too, :data:`NOT_STORED` with the
    reason, so that the receipt shows what the disc was meant to hold."""
    where: dict[str, tuple[model.Patient, model.Study]] = {}
    series_of: dict[str, model.Series] = {}
    for p in directory.patients:
        for st in p.studies:
            where[st.study_instance_uid] = (p, st)
            for se in st.series:
                series_of[se.series_instance_uid] = se
    out: list[ReceiptItem] = []
    seen: set[int] = set()
    for ref in directory.references:
        if ref.sop_class_uid == dicomdir.DIRECTORY_SOP_CLASS or ref.record_type == "DIRFILE":
            continue
        if ref.instance is not None:
            if id(ref.instance) in seen:
                continue  # referenced twice: listed once
            seen.add(id(ref.instance))
        elif ref.status == "present":
            continue  # a lower directory file, or a record that is no instance
        patient, study = where.get(ref.study_instance_uid, (None, None))
        series = series_of.get(ref.series_instance_uid)
        inst = ref.instance
        item = ReceiptItem(
            sop_instance_uid=inst.sop_instance_uid if inst is not None else ref.sop_instance_uid,
            path=str(inst.path if inst is not None else ref.path or ref.file_id),
            patient_name=patient.patient_name if patient else "",
            patient_id=(patient.patient_id or "") if patient else "",
            study_instance_uid=ref.study_instance_uid,
            study_date=study.study_date if study else "",
            study_description=study.study_description if study else "",
            series_instance_uid=ref.series_instance_uid,
            modality=series.modality if series else "",
            series_description=series.series_description if series else "",
        )
        if inst is None:
            item.reason = (
                "listed by the DICOMDIR, missing from the disc"
                if ref.status == "missing"
                else "listed by the DICOMDIR, its reference refused"
            )
        out.append(item)
    return out


def listed_items(
    path: Path, cancel: threading.Event | None = None
) -> tuple[list[ReceiptItem], str]:
    """What ``path`` lists, and from what: its DICOMDIR's records (missing files included)
    when it has a usable one, else its files' headers (:func:`viewer.media.scan.scan`)."""
    found: Path | None = None
    if path.is_dir():
        found = dicomdir.find_dicomdir(path)
    elif path.is_file() and path.name.upper() == "DICOMDIR":
        found = path
    if found is not None:
        try:
            directory = dicomdir.read_dicomdir(found, cancel=cancel)
        except (dicomdir.DicomdirError, OSError):
            directory = None
        if directory is not None and not directory.all_missing:
            return items_from_dicomdir(directory), f"the DICOMDIR {found}"
    result = scan.scan(path, cancel=cancel, headers=False)
    try:
        how = (
            f"the DICOMDIR {result.listed_from}"
            if result.listed_from
            else "the files' headers (no usable DICOMDIR)"
        )
        return items_from_patients(result.patients), how
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()


class ImportOutcome(Protocol):
    """What :func:`import_receipt` reads of :class:`viewer.store.ImportReport`."""

    imported: list[str]
    already_present: list[str]
    conflicts: list[model.Problem]
    rejected: list[model.Problem]
    cancelled: bool


def _key(path: str) -> str:
    return os.path.normcase(os.path.realpath(path)) if path else ""


def import_receipt(
    source: str,
    listed: Sequence[ReceiptItem],
    report: ImportOutcome,
    *,
    listed_from: str = "",
    in_store: Callable[[str], bool] | None = None,
) -> Receipt:
    """The receipt of an import: ``listed`` (what the disc's DICOMDIR, or a scan, listed), each
    matched by its file to the importer's ``report``; an instance the report does not name is
    in the store when ``in_store(sop_instance_uid)`` says so, else not stored. The SHA-256 of
    each listed file is computed here."""
    imported = {_key(p) for p in report.imported}
    present = {_key(p) for p in report.already_present}
    refused = {_key(p.path): p.problem for p in [*report.conflicts, *report.rejected]}
    items: list[ReceiptItem] = []
    named: set[str] = set()
    for row in listed:
        item = ReceiptItem(**{f: getattr(row, f) for f in ReceiptItem.__slots__})
        key = _key(item.path)
        named.add(key)
        item.sha256 = item.sha256 or file_sha256(item.path)
        if key in imported:
            item.state, item.reason = STORED, ""
        elif key in present:
            item.state, item.reason = DUPLICATE, ""
        elif key in refused:
            item.state, item.reason = REJECTED, refused[key]
        elif in_store is not None and in_store(item.sop_instance_uid):
            item.state, item.reason = DUPLICATE, ""
        else:
            item.state = NOT_STORED
            item.reason = item.reason or (
                "not imported" if item.sha256 else "the file cannot be read"
            )
        items.append(item)
    problems = [
        model.Problem(p.path, p.problem)
        for p in [*report.conflicts, *report.rejected]
        if _key(p.path) not in named
    ]
    facts = [("Source", source)]
    if listed_from:
        facts.append(("Listed from", listed_from))
    receipt = Receipt("import", source, items, facts, problems, bool(report.cancelled))
    LOG.info(
        "import receipt: %d listed, %d stored, %d already in the store, %d not stored%s",
        len(items),
        receipt.count(STORED),
        receipt.count(DUPLICATE),
        sum(1 for i in items if not i.good) + len(problems),
        "" if receipt.complete else " (INCOMPLETE)",
    )
    return receipt


def receipt_of_import(
    paths: Sequence[Path],
    report: ImportOutcome,
    *,
    in_store: Callable[[str], bool] | None = None,
    cancel: threading.Event | None = None,
) -> Receipt:
    """The receipt of importing ``paths``: what each listed (its DICOMDIR's records, else its
    files' headers: :func:`listed_items`) matched with the importer's ``report``. Reads every
    listed file once (SHA-256): call it from a worker."""
    listed: list[ReceiptItem] = []
    sources: list[str] = []
    for path in paths:
        items, how = listed_items(Path(path), cancel)
        listed += items
        sources.append(f"{path}: {how}")
    return import_receipt(
        ", ".join(str(p) for p in paths),
        listed,
        report,
        listed_from="; ".join(sources),
        in_store=in_store,
    )


def handover_receipt(
    node: str,
    sent: Sequence[ReceiptItem],
    states: dict[str, tuple[str, str]],
    *,
    transaction_uid: str = "",
    requested_at: str = "",
    cancelled: bool = False,
) -> Receipt:
    """The receipt of a hand-over: ``sent`` (one row per instance we meant to hand over, its
    file's SHA-256 computed here when not given) with ``states[sop_instance_uid] = (state,
    reason)`` (committed, failed, missing, not stored); an instance without a state is
    missing."""
    items: list[ReceiptItem] = []
    for row in sent:
        item = ReceiptItem(**{f: getattr(row, f) for f in ReceiptItem.__slots__})
        item.sha256 = item.sha256 or file_sha256(item.path)
        item.state, item.reason = states.get(item.sop_instance_uid, (MISSING, "no answer"))
        items.append(item)
    facts = [("Handed over to", node)]
    if transaction_uid:
        facts.append(("Transaction UID", transaction_uid))
    if requested_at:
        facts.append(("Commitment requested", requested_at))
    receipt = Receipt("hand-over", node, items, facts, [], cancelled)
    LOG.info(
        "hand-over receipt: %d sent, %d committed%s",
        len(items),
        receipt.count(COMMITTED),
        "" if receipt.complete else " (INCOMPLETE)",
    )
    return receipt


# -- HTML ----------------------------------------------------------------------------------------


def _h(value: object) -> str:
    """A value from a file, a disc or a peer, safe in HTML text and attributes."""
    return html.escape(escape(str(value)), quote=True)


_CSS = """
body { font-family: "DejaVu Sans", Arial, sans-serif; font-size: 10pt; color: #000;
       margin: 1.5em; }
h1 { font-size: 16pt; margin: 0 0 .3em 0; }
h2 { font-size: 12pt; margin: 1.2em 0 .4em 0; border-bottom: 1px solid #000; }
table { border-collapse: collapse; width: 100%; margin-bottom: .6em; }
th, td { border: 1px solid #777; padding: 2px 4px; text-align: left; vertical-align: top; }
th { background: #eee; }
td.uid, td.sha { font-family: "DejaVu Sans Mono", monospace; font-size: 7.5pt;
                 word-break: break-all; }
td.num { text-align: right; }
.banner { border: 4px solid #b00; color: #b00; font-size: 20pt; font-weight: bold;
          text-align: center; padding: .4em; margin: .6em 0; }
.banner small { display: block; font-size: 10pt; font-weight: normal; }
.complete { border: 2px solid #060; color: #060; font-size: 14pt; font-weight: bold;
            text-align: center; padding: .3em; margin: .6em 0; }
tr.bad td { background: #fdd; }
.facts th { width: 12em; }
.sign { margin-top: 3em; }
@page { size: A4; margin: 12mm; }
@media print {
  body { margin: 0; }
  .banner, tr.bad td, th { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  tr { page-break-inside: avoid; }
  thead { display: table-header-group; }
}
"""


def _table(
    header: Sequence[str], rows: Iterable[tuple[Sequence[str], str]], classes: Sequence[str] = ()
) -> str:
    """``rows``: (escaped cells, row class)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for cells, row_class in rows:
        tds = "".join(
            f'<td class="{classes[i]}">{c}</td>'
            if i < len(classes) and classes[i]
            else f"<td>{c}</td>"
            for i, c in enumerate(cells)
        )
        attr = f' class="{row_class}"' if row_class else ""
        body.append(f"<tr{attr}>{tds}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>\n"


def _counts(items: Sequence[ReceiptItem]) -> str:
    """Per patient, study and series: instances listed and how many are good."""
    groups: dict[tuple[str, str, str, str, str, str], list[ReceiptItem]] = {}
    for item in items:
        key = (
            item.patient_name,
            item.patient_id,
            item.study_instance_uid,
            f"{item.study_date} {item.study_description}".strip(),
            item.series_instance_uid,
            f"{item.modality} {item.series_description}".strip(),
        )
        groups.setdefault(key, []).append(item)
    patients = {(k[0], k[1]) for k in groups}
    studies = {k[2] for k in groups}
    text = (
        f"<p>{len(patients)} patient(s), {len(studies)} study(ies), {len(groups)} series, "
        f"{len(items)} instance(s).</p>\n"
    )
    rows = []
    for key, members in groups.items():
        good = sum(1 for m in members if m.good)
        rows.append(
            (
                [
                    _h(key[0]),
                    _h(key[1]),
                    _h(key[3]),
                    _h(key[2]),
                    _h(key[5]),
                    str(len(members)),
                    str(good),
                ],
                "" if good == len(members) else "bad",
            )
        )
    return text + _table(
        ("Patient", "Patient ID", "Study", "Study Instance UID", "Series", "Listed", "OK"),
        rows,
        ("", "", "", "uid", "", "num", "num"),
    )


def render_html(receipt: Receipt) -> str:
    """The receipt as one self-contained HTML page."""
    title = "Import receipt" if receipt.kind == "import" else "Hand-over receipt"
    good_word = "stored" if receipt.kind == "import" else "committed"
    if receipt.kind != "import" and receipt.count(VERIFIED):
        good_word = "committed or verified" if receipt.count(COMMITTED) else "verified"
    parts = [
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n",
        f"<h1>Lightbox: {html.escape(title)}</h1>\n",
    ]
    bad = sum(1 for i in receipt.items if not i.good) + len(receipt.problems)
    if receipt.complete:
        parts.append(
            f'<div class="complete">COMPLETE: all {len(receipt.items)} instance(s) '
            f"{good_word}</div>\n"
        )
    else:
        why = []
        if bad:
            why.append(f"{bad} item(s) not {good_word}")
        if receipt.cancelled:
            why.append("cancelled before the end")
        if not receipt.items:
            why.append("nothing was listed")
        parts.append(
            '<div class="banner" id="incomplete">INCOMPLETE<br>'
            f"<small>{html.escape('; '.join(why))}</small></div>\n"
        )
    facts = [("Created", receipt.created_at), *receipt.facts]
    parts.append(
        '<table class="facts"><tbody>'
        + "".join(f"<tr><th>{html.escape(k)}</th><td>{_h(v)}</td></tr>" for k, v in facts)
        + "</tbody></table>\n"
    )
    parts.append("<h2>Totals</h2>\n")
    states = (
        [STORED, DUPLICATE, REJECTED, NOT_STORED]
        if receipt.kind == "import"
        else [
            VERIFIED if receipt.count(VERIFIED) and not receipt.count(COMMITTED) else COMMITTED,
            FAILED,
            MISSING,
            NOT_STORED,
        ]
    )
    totals = [("Listed" if receipt.kind == "import" else "Sent", len(receipt.items))]
    totals += [(s.capitalize(), receipt.count(s)) for s in states]
    if receipt.problems:
        totals.append(("Other files refused", len(receipt.problems)))
    parts.append(
        _table(("", "Instances"), (([html.escape(k), str(v)], "") for k, v in totals), ("", "num"))
    )
    listed_title = "What the disc listed" if receipt.kind == "import" else "What was sent"
    parts.append(f"<h2>{html.escape(listed_title)}</h2>\n")
    parts.append(_counts(receipt.items))
    parts.append("<h2>Instances</h2>\n")
    parts.append(
        _table(
            ("#", "SOP Instance UID", "SHA-256 of the file", "State", "Reason"),
            (
                (
                    [
                        str(n),
                        _h(i.sop_instance_uid),
                        _h(i.sha256 or "(file not readable)"),
                        _h(i.state),
                        _h(i.reason),
                    ],
                    "" if i.good else "bad",
                )
                for n, i in enumerate(receipt.items, start=1)
            ),
            ("num", "uid", "sha", "", ""),
        )
    )
    if receipt.problems:
        parts.append("<h2>Other files refused</h2>\n")
        parts.append(
            _table(
                ("File", "Reason"),
                (([_h(p.path), _h(p.problem)], "bad") for p in receipt.problems),
            )
        )
    parts.append(
        '<p class="sign">Checked by: ______________________________ '
        "Signature: ______________________________</p>\n</body>\n</html>\n"
    )
    return "".join(parts)


def write_receipt(receipt: Receipt, target: Path) -> None:
    """Write the HTML page whole (never half a receipt)."""
    write_text(Path(target), render_html(receipt))


def item_from_file(path: str | os.PathLike[str], sop_instance_uid: str = "") -> ReceiptItem:
    """A row for a file about to be sent: its header's patient, study and series, its
    SHA-256 (an unreadable file keeps ``sop_instance_uid`` and no hash)."""
    from viewer.imaging.decode import DecodeError, read_file

    item = ReceiptItem(sop_instance_uid=sop_instance_uid, path=str(path))
    try:
        ds = read_file(path, headers_only=True).dataset
    except DecodeError:
        return item
    item.sha256 = file_sha256(path)
    item.sop_instance_uid = sop_instance_uid or str(ds.get("SOPInstanceUID", ""))
    item.patient_name = str(ds.get("PatientName", "") or "")
    item.patient_id = str(ds.get("PatientID", "") or "")
    item.study_instance_uid = str(ds.get("StudyInstanceUID", "") or "")
    item.study_date = str(ds.get("StudyDate", "") or "")
    item.study_description = str(ds.get("StudyDescription", "") or "")
    item.series_instance_uid = str(ds.get("SeriesInstanceUID", "") or "")
    item.modality = str(ds.get("Modality", "") or "")
    item.series_description = str(ds.get("SeriesDescription", "") or "")
    return item
