"""``lightbox store check [--repair]``: find and fix what went wrong between index and files.

What is found (issue 3 section 2): rows whose file is missing, files whose size or SHA-256
differs from the row (the file changed after import), managed files without a row (an import
killed between rename and commit, a file copied in by hand), temporary files of interrupted
imports, deletions whose files were not all removed, and damage to the SQLite file itself.

What ``repair`` does: drop rows whose file is missing; index an orphan file through the importer
(it is a whole, durable file: it was renamed only after its fsync), remove it when the store
already holds that instance, and move it to ``quarantine/`` with a note when it is unreadable or
in conflict; remove temporary files whose process has ended; finish interrupted deletions. A
hash or size mismatch is reported, not repaired: the original bytes are gone, so only the person
knows whether to import the study again from its media or delete it.

Everything that removes or moves a managed file does it under the index's write lock, after
checking that no row names the file (see viewer.store.importer for why that is enough).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from viewer.model import Problem
from viewer.store import part10
from viewer.store.importer import reindex_file, spool_dir
from viewer.store.index import delete_instance_rows, remove_pending_files
from viewer.store.schema import write_transaction
from viewer.store.store import (
    RECEIVING_PREFIX,
    Store,
    StoreError,
    is_managed_relpath,
    owner_gone,
)

MISSING = "in the index, but the file is missing"
ORPHAN = "a file in the store that the index does not list"
TMP_LEFT = "a temporary file left by an interrupted import"
PENDING = "a deleted instance whose file was not yet removed"
#: Kept importable for callers of the old name (viewer.store.store.owner_gone now).
_tmp_abandoned = owner_gone


@dataclass(slots=True)
class CheckReport:
    """``problems``: what was found; ``repaired``: what the repair did about it (path, action);
    ``remaining``: what is still wrong afterwards (all of ``problems`` without repair)."""

    problems: list[Problem] = field(default_factory=list)
    repaired: list[Problem] = field(default_factory=list)
    remaining: list[Problem] = field(default_factory=list)
    instances: int = 0
    files: int = 0
    #: Quarantined files dropped so far to keep the quarantine within its size limit
    #: (:meth:`viewer.store.Store.quarantine`): not a problem, said so the loss is known.
    quarantine_dropped: int = 0

    @property
    def ok(self) -> bool:
        return not self.remaining


def _hashes(path: Path) -> tuple[str, str]:
    """SHA-256 of the bytes before the data set and of the data set, as the importer made them."""
    with open(path, "rb") as f:
        head = f.read(part10.HEAD_SIZE)
        try:
            start = part10.split_header(head).dataset_start
        except part10.HeaderError:
            return "", ""
        digest = hashlib.sha256(head[start:])
        while chunk := f.read(1024 * 1024):
            digest.update(chunk)
    return hashlib.sha256(head[:start]).hexdigest(), digest.hexdigest()


def check(
    store: Store,
    *,
    repair: bool = False,
    verify_hashes: bool = True,
    cancel: threading.Event | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CheckReport:
    """Check the store (and repair it when asked); see the module docstring.

    ``verify_hashes=False`` skips reading every file (sizes are still compared): what
    ``lightbox store ls`` can afford. ``cancel`` stops the hash pass early. A read-only store
    is checked, not repaired (:class:`StoreError` for ``repair=True``).
    """
    if repair:
        store.require_writable()
    report = CheckReport()
    report.quarantine_dropped = store.quarantine_dropped()[0]
    conn = store.connection()
    found = report.problems.append

    damage = [str(r[0]) for r in conn.execute("PRAGMA quick_check").fetchall()]
    if damage != ["ok"]:
        found(Problem(str(store.db_path), "the index is damaged: " + "; ".join(damage[:5])))

    pending = [r[0] for r in conn.execute("SELECT path FROM pending_deletes")]
    for rel in pending:
        found(Problem(str(store.root / rel), PENDING))
    if repair and pending:
        remove_pending_files(store)
        report.repaired.extend(Problem(str(store.root / rel), "removed") for rel in pending)

    rows = conn.execute(
        "SELECT id, path, size, meta_sha256, dataset_sha256 FROM instances"
    ).fetchall()
    report.instances = len(rows)
    indexed = {str(r[1]) for r in rows}
    missing: list[tuple[int, str]] = []
    for done, (row_id, rel, size, meta_sha, ds_sha) in enumerate(rows, 1):
        try:
            path = store.managed_path(rel)
        except StoreError:
            found(Problem(str(store.root / rel), "the index names an invalid file path"))
            missing.append((row_id, rel))
            continue
        try:
            actual = path.stat().st_size
        except FileNotFoundError:
            found(Problem(str(path), MISSING))
            missing.append((row_id, rel))
            continue
        except OSError as exc:
            found(Problem(str(path), f"cannot read it ({exc.strerror})"))
            continue
        if actual != size:
            found(
                Problem(
                    str(path),
                    f"{actual} bytes, the index says {size}: the file changed after import",
                )
            )
        elif verify_hashes and not (cancel is not None and cancel.is_set()):
            try:
                if _hashes(path) != (meta_sha, ds_sha):
                    found(
                        Problem(
                            str(path),
                            "SHA-256 differs from the index: the file changed after import",
                        )
                    )
            except OSError as exc:
                found(Problem(str(path), f"cannot read it ({exc.strerror})"))
        if progress is not None:
            progress(done, len(rows))
    if repair and missing:
        with write_transaction(conn):
            gone = [
                row_id
                for row_id, rel in missing
                if not is_managed_relpath(rel) or not (store.root / rel).exists()
            ]
            delete_instance_rows(conn, gone)
        remove_pending_files(store)
        for _row_id, rel in missing:
            report.repaired.append(Problem(str(store.root / rel), "row removed"))

    _orphans(store, indexed | set(pending), report, repair)
    _temporaries(store, report, repair)

    fixed = {(p.path) for p in report.repaired}
    report.remaining = [p for p in report.problems if p.path not in fixed]
    return report


def _orphans(store: Store, indexed: set[str], report: CheckReport, repair: bool) -> None:
    candidates: list[str] = []
    for folder, _dirs, names in os.walk(store.files_dir):
        for name in names:
            rel = (Path(folder) / name).relative_to(store.root).as_posix()
            report.files += 1
            if rel not in indexed:
                candidates.append(rel)
    if not candidates:
        return
    conn = store.connection()
    # Confirm under the write lock: an import renames and commits inside it, so a file
    # unlisted now is not one an import is about to list. A read-only store has no writer
    # of ours; a read transaction is the most it can take.
    with write_transaction(conn) if not store.read_only else _read_transaction(conn):
        orphans = [
            rel
            for rel in candidates
            if conn.execute(
                "SELECT 1 FROM instances WHERE path = ? UNION ALL"
                " SELECT 1 FROM pending_deletes WHERE path = ?",
                (rel, rel),
            ).fetchone()
            is None
            and (store.root / rel).exists()
        ]
    for rel in orphans:
        report.problems.append(Problem(str(store.root / rel), ORPHAN))
    if not repair:
        return
    for rel in orphans:
        path = store.root / rel
        result = reindex_file(store, path)
        if result.imported and is_managed_relpath(rel) and _indexed(store, rel):
            report.repaired.append(Problem(str(path), "indexed"))
            continue
        if result.imported or result.already_present:
            if _remove_unindexed(store, rel, None):
                report.repaired.append(Problem(str(path), "removed (already in the store)"))
            continue
        reasons = [p.problem for p in (*result.conflicts, *result.rejected)]
        reason = "; ".join(reasons) or "not importable"
        if _remove_unindexed(store, rel, reason):
            report.repaired.append(Problem(str(path), f"moved to quarantine: {reason}"))


@contextlib.contextmanager
def _read_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("ROLLBACK")


def _indexed(store: Store, rel: str) -> bool:
    row = store.connection().execute("SELECT 1 FROM instances WHERE path = ?", (rel,))
    return row.fetchone() is not None


def _remove_unindexed(store: Store, rel: str, quarantine_reason: str | None) -> bool:
    """Remove (or quarantine, with a note) a file no row names; False when a row names it."""
    conn = store.connection()
    path = store.root / rel
    with write_transaction(conn):
        if _indexed(store, rel):
            return False
        try:
            if quarantine_reason is None:
                path.unlink()
            else:
                store.quarantine(
                    path, f"{secrets.token_hex(4)}-{path.name}", f"{rel}: {quarantine_reason}\n"
                )
        except FileNotFoundError:
            return False
    return True


def _temporaries(store: Store, report: CheckReport, repair: bool) -> None:
    entries: list[Path] = []
    with contextlib.suppress(FileNotFoundError):
        entries += store.tmp_dir.iterdir()
    # Received files the storage SCP was writing when its process died (never answered).
    with contextlib.suppress(FileNotFoundError):
        entries += (p for p in spool_dir(store).iterdir() if p.name.startswith(RECEIVING_PREFIX))
    for path in entries:
        if not path.is_file() or not owner_gone(path):
            continue
        report.problems.append(Problem(str(path), TMP_LEFT))
        if repair:
            path.unlink(missing_ok=True)
            report.repaired.append(Problem(str(path), "removed"))
