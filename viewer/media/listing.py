"""What ``lightbox ls`` and ``lightbox store ls`` print: a Patient > Study > Series tree as JSON
(``--json``) and as text. Pure formatting: importing it reads no file and loads no pydicom, so a
listing from a DICOMDIR alone starts fast."""

from __future__ import annotations

from typing import Any

from viewer import model
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


def dropped_lines(count: int) -> list[str]:
    """The line saying the quarantine's size limit dropped files (viewer.store.Store.quarantine)."""
    if not count:
        return []
    return [f"{count} quarantined file(s) dropped (the oldest, to keep the quarantine small)"]


def listing_text(data: dict[str, Any]) -> str:
    """A readable tree of an ``ls --json`` object (:func:`tree_to_json`, or the store's
    :func:`viewer.store.commands.listing`) and its problems.

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
    lines.extend(dropped_lines(int(data.get("quarantine_dropped") or 0)))
    if data["problems"]:
        lines.append(f"{len(data['problems'])} problem(s):")
        lines.extend(f"  {model.Problem(pr['path'], pr['problem'])}" for pr in data["problems"])
    return "\n".join(lines)
