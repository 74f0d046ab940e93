"""What the store subcommands of ``lightbox`` print (issue 3 section 4), as plain functions.

``viewer/cli.py`` parses the arguments, opens the store and calls these; they return data or
text and never print or exit, so the GUI can show the same words.

- ``lightbox import PATH...``: :func:`viewer.store.import_paths`, then :func:`import_summary`.
- ``lightbox store ls [--json]``: :func:`listing` (the JSON object), :func:`listing_text`.
- ``lightbox store rm UID``: :func:`viewer.store.delete_uid`, then :func:`delete_summary`.
- ``lightbox store check [--repair]``: :func:`viewer.store.check`, then :func:`check_summary`.
"""

from __future__ import annotations

from typing import Any

from viewer import model
from viewer.store.check import MISSING, CheckReport, check
from viewer.store.importer import ImportReport
from viewer.store.index import DeleteResult, store_tree
from viewer.store.store import Store
from viewer.text import escape, person_name, show_date


def _or_none(value: str) -> str | None:
    return value if value else None


def tree_to_json(
    patients: list[model.Patient],
    problems: list[model.Problem],
    *,
    unreadable: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """The ``ls --json`` shape: strings as decoded (names keep ``^``), dates YYYYMMDD,
    ``series_number`` an integer, absent values null; ``instances`` counts the instances whose
    file is present and readable (paths in ``unreadable`` are not counted)."""
    return {
        "patients": [
            {
                "patient_id": p.patient_id,
                "patient_name": _or_none(p.patient_name),
                "studies": [
                    {
                        "study_instance_uid": st.study_instance_uid,
                        "study_date": _or_none(st.study_date),
                        "study_description": _or_none(st.study_description),
                        "series": [
                            {
                                "series_instance_uid": se.series_instance_uid,
                                "modality": _or_none(se.modality),
                                "series_number": se.series_number,
                                "series_description": _or_none(se.series_description),
                                "instances": sum(
                                    str(i.path) not in unreadable for i in se.instances
                                ),
                            }
                            for se in st.series
                        ],
                    }
                    for st in p.studies
                ],
            }
            for p in patients
        ],
        "problems": [
            {"path": pr.path, "problem": pr.problem, "kind": str(pr.kind)} for pr in problems
        ],
    }


def listing(store: Store, *, verify_hashes: bool = False) -> dict[str, Any]:
    """``lightbox store ls --json``: the store's tree and what :func:`check` reports (by default
    without reading every file: sizes are compared, hashes are not)."""
    report = check(store, verify_hashes=verify_hashes)
    missing = frozenset(p.path for p in report.problems if p.problem == MISSING)
    data = tree_to_json(store_tree(store), report.problems, unreadable=missing)
    if report.quarantine_dropped:  # only then: the shape stays that of ``ls --json``
        data["quarantine_dropped"] = report.quarantine_dropped
    return data


def _dropped(count: int) -> list[str]:
    """The line saying the quarantine's size limit dropped files (viewer.store.Store.quarantine)."""
    if not count:
        return []
    return [f"{count} quarantined file(s) dropped (the oldest, to keep the quarantine small)"]


def listing_text(data: dict[str, Any]) -> str:
    """A readable tree of :func:`listing` (or any ``ls --json`` object) and its problems.

    Names and dates are shown as everywhere else (:func:`viewer.text.person_name`,
    :func:`~viewer.text.show_date`); ``--json`` keeps the values as the files hold them. Every
    name and value comes from files: each is escaped (:func:`viewer.text.escape`), so a control
    character cannot reach the terminal and each problem is one line."""
    lines: list[str] = []
    for p in data["patients"]:
        name = escape(person_name(p["patient_name"]) or "(no name)")
        pid = escape(p["patient_id"] or "no ID")
        lines.append(f"{name}  [{pid}]")
        for st in p["studies"]:
            date = escape(show_date(st["study_date"]) or "no date")
            lines.append(f"  {date}  {escape(st['study_description'] or '')}".rstrip())
            lines.append(f"    study {escape(st['study_instance_uid'])}")
            for se in st["series"]:
                number = "-" if se["series_number"] is None else se["series_number"]
                desc = escape(se["series_description"] or "")
                lines.append(
                    f"    #{number} {escape(se['modality'] or '??')} {desc}  ({se['instances']} "
                    f"instance{'s' if se['instances'] != 1 else ''})  "
                    f"{escape(se['series_instance_uid'])}"
                )
    if not data["patients"]:
        lines.append("(empty)")
    lines.extend(_dropped(int(data.get("quarantine_dropped") or 0)))
    if data["problems"]:
        lines.append(f"{len(data['problems'])} problem(s):")
        lines.extend(f"  {model.Problem(pr['path'], pr['problem'])}" for pr in data["problems"])
    return "\n".join(lines)


def import_summary(report: ImportReport) -> str:
    """What ``lightbox import`` prints: the counts, then every conflict, rejection, warning."""
    lines = [
        f"imported: {len(report.imported)}",
        f"already present: {len(report.already_present)}",
        f"conflicts: {len(report.conflicts)}",
        f"rejected: {len(report.rejected)}",
    ]
    if report.skipped:
        lines.append(f"other files (no DICOM instance, not imported): {len(report.skipped)}")
    if report.cancelled:
        lines.append(f"cancelled: {report.not_processed} file(s) not processed")
    for title, items in (
        ("conflicts", report.conflicts),
        ("rejected", report.rejected),
        ("warnings", report.warnings),
    ):
        if items:
            lines.append(f"{title}:")
            lines.extend(f"  {p}" for p in items)
    return "\n".join(lines)


def check_summary(report: CheckReport) -> str:
    """What ``lightbox store check [--repair]`` prints."""
    lines = [f"checked {report.instances} instance(s), {report.files} file(s)"]
    if not report.problems:
        lines.append("no problems")
    else:
        lines.append(f"{len(report.problems)} problem(s):")
        lines.extend(f"  {p}" for p in report.problems)
    if report.repaired:
        lines.append(f"repaired {len(report.repaired)}:")
        lines.extend(f"  {p}" for p in report.repaired)
    if report.repaired or report.remaining != report.problems:
        if report.remaining:
            lines.append(f"{len(report.remaining)} problem(s) remain:")
            lines.extend(f"  {p}" for p in report.remaining)
        else:
            lines.append("no problems remain")
    lines.extend(_dropped(report.quarantine_dropped))
    return "\n".join(lines)


def delete_summary(uid: str, result: DeleteResult) -> str:
    """What ``lightbox store rm UID`` prints."""
    return (
        f"deleted {result.kind} {escape(uid)}: {result.instances} instance(s), "
        f"{result.files_removed} file(s) removed"
    )
