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

from viewer.media.listing import dropped_lines, tree_to_json
from viewer.store.check import MISSING, CheckReport, check
from viewer.store.importer import ImportReport
from viewer.store.index import DeleteResult, store_tree
from viewer.store.store import Store
from viewer.text import escape


def listing(store: Store, *, verify_hashes: bool = False) -> dict[str, Any]:
    """``lightbox store ls --json``: the store's tree and what :func:`check` reports (by default
    without reading every file: sizes are compared, hashes are not)."""
    report = check(store, verify_hashes=verify_hashes)
    missing = frozenset(p.path for p in report.problems if p.problem == MISSING)
    data = tree_to_json(store_tree(store), report.problems, unreadable=missing)
    if report.quarantine_dropped:  # only then: the shape stays that of ``ls --json``
        data["quarantine_dropped"] = report.quarantine_dropped
    return data


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
    lines.extend(dropped_lines(report.quarantine_dropped))
    return "\n".join(lines)


def delete_summary(uid: str, result: DeleteResult) -> str:
    """What ``lightbox store rm UID`` prints."""
    return (
        f"deleted {result.kind} {escape(uid)}: {result.instances} instance(s), "
        f"{result.files_removed} file(s) removed"
    )
