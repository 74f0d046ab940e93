"""Rows of the index: adding an instance, the study list and its filters, the tree, deletion.

The study list is what the browser shows (issue 3 section 3): patient name, ID, birth date,
study date, description, modalities, accession, number of series and images. Its filters follow
C-FIND matching (PS3.4 C.2.2.2): a name or ID with ``*`` (any run of characters) and ``?`` (one
character) is wildcard-matched against the whole value, without wildcards it must equal the whole
value; unlike C-FIND, matching ignores case (a person typing ``smith*`` means SMITH^JOHN as well),
using Python's ``casefold`` kept in a column so that non-ASCII names fold too. Dates are a range
of ``YYYYMMDD`` (PS3.4 C.2.2.2.5), either end open; modality matches any series of the study
(Modalities in Study, PS3.4 C.6.2.1.2).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from viewer import model
from viewer.store.schema import write_transaction
from viewer.store.store import Store, StoreError


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    """Everything the index keeps about one instance (what the importer read from its header)."""

    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    path: str  # relative to the store root, see viewer.store.store.managed_relpath
    size: int
    meta_sha256: str  # of the bytes before the data set: preamble, DICM, File Meta
    dataset_sha256: str  # of the data set: the duplicate key, and the managed file's name
    sop_class_uid: str = ""
    transfer_syntax_uid: str = ""
    patient_id: str | None = None
    patient_name: str = ""
    birth_date: str = ""
    sex: str = ""
    study_date: str = ""
    study_time: str = ""
    accession_number: str = ""
    study_id: str = ""
    study_description: str = ""
    modality: str = ""
    series_number: int | None = None
    series_description: str = ""
    series_date: str = ""
    series_time: str = ""
    body_part_examined: str = ""
    instance_number: int | None = None
    number_of_frames: int = 1
    rows: int = 0
    columns: int = 0
    image_position: tuple[float, float, float] | None = None
    image_orientation: tuple[float, float, float, float, float, float] | None = None
    acquisition_time: str = ""


@dataclass(frozen=True, slots=True)
class StudyFilter:
    """The browser's filter; empty fields do not filter."""

    patient_name: str = ""
    patient_id: str = ""
    date_from: str = ""  # YYYYMMDD, inclusive
    date_to: str = ""  # YYYYMMDD, inclusive
    modality: str = ""


@dataclass(frozen=True, slots=True)
class StudyRow:
    study_instance_uid: str
    patient_name: str
    patient_id: str | None
    birth_date: str
    sex: str
    study_date: str
    study_time: str
    study_description: str
    accession_number: str
    modalities: tuple[str, ...]
    num_series: int
    num_instances: int


@dataclass(frozen=True, slots=True)
class SeriesRow:
    series_instance_uid: str
    study_instance_uid: str
    modality: str
    series_number: int | None
    series_description: str
    num_instances: int


def _now() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _numbers(values: tuple[float, ...] | None) -> str:
    return "" if values is None else "\\".join(repr(float(v)) for v in values)


def _parse_numbers(text: str, count: int) -> tuple[float, ...] | None:
    if not text:
        return None
    try:
        values = tuple(float(v) for v in text.split("\\"))
    except ValueError:
        return None
    return values if len(values) == count else None


def _patient_key(rec: InstanceRecord) -> str:
    """Patients are told apart by ID, name and birth date together: two hospitals may give the
    same ID to different people, and the same person keeps one row per spelling."""
    return "\x1f".join((rec.patient_id or "", rec.patient_name, rec.birth_date))


def _fill_empty(conn: sqlite3.Connection, table: str, row_id: int, values: dict[str, str]) -> None:
    """Keep the first value of each column, but fill one that was empty from a later file."""
    sets = ", ".join(f"{col} = CASE WHEN {col} = '' THEN ? ELSE {col} END" for col in values)
    conn.execute(f"UPDATE {table} SET {sets} WHERE id = ?", (*values.values(), row_id))


def insert_record(conn: sqlite3.Connection, rec: InstanceRecord) -> None:
    """Add one instance and, when new, its patient, study and series rows.

    Call inside a write transaction (:func:`viewer.store.schema.write_transaction`); the caller
    has checked that the SOP Instance UID is not yet indexed. A study keeps the patient of its
    first instance.
    """
    row = conn.execute(
        "SELECT id FROM studies WHERE study_instance_uid = ?", (rec.study_instance_uid,)
    ).fetchone()
    if row is None:
        key = _patient_key(rec)
        prow = conn.execute("SELECT id FROM patients WHERE patient_key = ?", (key,)).fetchone()
        if prow is None:
            patient_ref = conn.execute(
                "INSERT INTO patients (patient_key, patient_id, patient_id_fold, patient_name,"
                " patient_name_fold, birth_date, sex) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    rec.patient_id,
                    (rec.patient_id or "").casefold(),
                    rec.patient_name,
                    rec.patient_name.casefold(),
                    rec.birth_date,
                    rec.sex,
                ),
            ).lastrowid
        else:
            patient_ref = prow[0]
            _fill_empty(conn, "patients", patient_ref, {"sex": rec.sex})
        study_ref = conn.execute(
            "INSERT INTO studies (patient_ref, study_instance_uid, study_date, study_time,"
            " accession_number, study_id, study_description) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                patient_ref,
                rec.study_instance_uid,
                rec.study_date,
                rec.study_time,
                rec.accession_number,
                rec.study_id,
                rec.study_description,
            ),
        ).lastrowid
    else:
        study_ref = row[0]
        _fill_empty(
            conn,
            "studies",
            study_ref,
            {
                "study_date": rec.study_date,
                "study_time": rec.study_time,
                "accession_number": rec.accession_number,
                "study_description": rec.study_description,
            },
        )
    row = conn.execute(
        "SELECT id, study_ref FROM series WHERE series_instance_uid = ?",
        (rec.series_instance_uid,),
    ).fetchone()
    if row is None:
        series_ref = conn.execute(
            "INSERT INTO series (study_ref, series_instance_uid, modality, series_number,"
            " series_description, series_date, series_time, body_part_examined)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                study_ref,
                rec.series_instance_uid,
                rec.modality,
                rec.series_number,
                rec.series_description,
                rec.series_date,
                rec.series_time,
                rec.body_part_examined,
            ),
        ).lastrowid
    else:
        series_ref = row[0]
    conn.execute(
        "INSERT INTO instances (series_ref, sop_instance_uid, sop_class_uid, instance_number,"
        " transfer_syntax_uid, number_of_frames, rows, columns, image_position,"
        " image_orientation, acquisition_time, path, size, meta_sha256, dataset_sha256,"
        " imported_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            series_ref,
            rec.sop_instance_uid,
            rec.sop_class_uid,
            rec.instance_number,
            rec.transfer_syntax_uid,
            rec.number_of_frames,
            rec.rows,
            rec.columns,
            _numbers(rec.image_position),
            _numbers(rec.image_orientation),
            rec.acquisition_time,
            rec.path,
            rec.size,
            rec.meta_sha256,
            rec.dataset_sha256,
            _now(),
        ),
    )
    conn.execute("DELETE FROM pending_deletes WHERE path = ?", (rec.path,))


def add_records(store: Store, records: Iterable[InstanceRecord]) -> int:
    """Index rows without importing files (for tools and benchmarks); skips known UIDs.

    The rows name files that must already be in place: :func:`viewer.store.check.check` reports
    any that are not.
    """
    store.require_writable()
    conn = store.connection()
    added = 0
    with write_transaction(conn):
        for rec in records:
            known = conn.execute(
                "SELECT 1 FROM instances WHERE sop_instance_uid = ?", (rec.sop_instance_uid,)
            ).fetchone()
            if known is None:
                insert_record(conn, rec)
                added += 1
    return added


# --- the study list ------------------------------------------------------------------------


_DATE = re.compile(r"\d{8}")


def wildcard_to_glob(pattern: str) -> str:
    """A C-FIND wildcard pattern (PS3.4 C.2.2.2.4) as a case-folded SQLite GLOB pattern.

    ``*`` and ``?`` mean the same in both; GLOB's own ``[`` is made literal as ``[[]``.
    """
    return "".join("[[]" if ch == "[" else ch for ch in pattern.casefold())


def _check_date(value: str, what: str) -> None:
    if value and not _DATE.fullmatch(value):
        raise ValueError(f"{what} must be YYYYMMDD, not {value!r}")


def list_studies(store: Store, where: StudyFilter | None = None) -> list[StudyRow]:
    """The study list, newest study first, filtered as the module docstring says.

    Raises ValueError for a date that is not YYYYMMDD.
    """
    where = where or StudyFilter()
    clauses: list[str] = []
    params: list[object] = []
    if where.patient_name:
        clauses.append("p.patient_name_fold GLOB ?")
        params.append(wildcard_to_glob(where.patient_name))
    if where.patient_id:
        clauses.append("p.patient_id_fold GLOB ?")
        params.append(wildcard_to_glob(where.patient_id))
    _check_date(where.date_from, "the first date")
    _check_date(where.date_to, "the last date")
    if where.date_from:
        clauses.append("st.study_date >= ?")
        params.append(where.date_from)
    if where.date_to:
        clauses.append("st.study_date <> '' AND st.study_date <= ?")
        params.append(where.date_to)
    if where.modality:
        clauses.append("st.id IN (SELECT study_ref FROM series WHERE upper(modality) = upper(?))")
        params.append(where.modality.strip())
    sql = (
        "SELECT st.study_instance_uid, p.patient_name, p.patient_id, p.birth_date, p.sex,"
        " st.study_date, st.study_time, st.study_description, st.accession_number,"
        " group_concat(DISTINCT se.modality), count(se.id), coalesce(sum(se.num_instances), 0)"
        " FROM studies st JOIN patients p ON p.id = st.patient_ref"
        " LEFT JOIN series se ON se.study_ref = st.id"
        + (" WHERE " + " AND ".join(clauses) if clauses else "")
        + " GROUP BY st.id ORDER BY st.study_date DESC, st.study_time DESC, p.patient_name"
    )
    rows = store.connection().execute(sql, params).fetchall()
    return [
        StudyRow(
            study_instance_uid=r[0],
            patient_name=r[1],
            patient_id=r[2],
            birth_date=r[3],
            sex=r[4],
            study_date=r[5],
            study_time=r[6],
            study_description=r[7],
            accession_number=r[8],
            modalities=tuple(sorted({m for m in (r[9] or "").split(",") if m})),
            num_series=r[10],
            num_instances=r[11],
        )
        for r in rows
    ]


def list_series(store: Store, study_instance_uid: str) -> list[SeriesRow]:
    """The series of one study, by series number (absent numbers last)."""
    rows = (
        store.connection()
        .execute(
            "SELECT se.series_instance_uid, st.study_instance_uid, se.modality, se.series_number,"
            " se.series_description, se.num_instances FROM series se"
            " JOIN studies st ON st.id = se.study_ref WHERE st.study_instance_uid = ?"
            " ORDER BY se.series_number IS NULL, se.series_number, se.series_instance_uid",
            (study_instance_uid,),
        )
        .fetchall()
    )
    return [SeriesRow(*r) for r in rows]


_INSTANCE_COLUMNS = (
    "i.path, i.sop_instance_uid, i.sop_class_uid, st.study_instance_uid,"
    " se.series_instance_uid, i.transfer_syntax_uid, i.instance_number, i.number_of_frames,"
    " i.rows, i.columns, i.image_position, i.image_orientation, i.acquisition_time"
)


def _instance(store: Store, r: tuple[object, ...]) -> model.Instance:
    return model.Instance(
        path=store.managed_path(str(r[0])),
        sop_instance_uid=str(r[1]),
        sop_class_uid=str(r[2]),
        study_instance_uid=str(r[3]),
        series_instance_uid=str(r[4]),
        transfer_syntax_uid=str(r[5]),
        instance_number=r[6] if isinstance(r[6], int) else None,
        number_of_frames=int(r[7]),  # type: ignore[call-overload]
        rows=int(r[8]),  # type: ignore[call-overload]
        columns=int(r[9]),  # type: ignore[call-overload]
        image_position=_parse_numbers(str(r[10]), 3),  # type: ignore[arg-type]
        image_orientation=_parse_numbers(str(r[11]), 6),  # type: ignore[arg-type]
        acquisition_time=str(r[12]),
    )


def series_instances(store: Store, series_instance_uid: str) -> list[model.Instance]:
    """The instances of one series, by instance number, with their managed paths and geometry
    (enough for :func:`viewer.imaging.stack.build_stacks` without reading a file)."""
    rows = (
        store.connection()
        .execute(
            f"SELECT {_INSTANCE_COLUMNS} FROM instances i JOIN series se ON se.id = i.series_ref"
            " JOIN studies st ON st.id = se.study_ref WHERE se.series_instance_uid = ?"
            " ORDER BY i.instance_number IS NULL, i.instance_number, i.sop_instance_uid",
            (series_instance_uid,),
        )
        .fetchall()
    )
    return [_instance(store, r) for r in rows]


def instance_paths(store: Store, series_instance_uid: str) -> list[Path]:
    """The managed files of one series, by instance number."""
    return [i.path for i in series_instances(store, series_instance_uid)]


def store_tree(store: Store) -> list[model.Patient]:
    """Everything in the store as model objects (for ``lightbox store ls --json``), read in one
    read transaction so that a concurrent import cannot tear it."""
    conn = store.connection()
    conn.execute("BEGIN")
    try:
        patients_rows = conn.execute(
            "SELECT id, patient_id, patient_name, birth_date, sex FROM patients"
            " ORDER BY patient_name, patient_id, id"
        ).fetchall()
        study_rows = conn.execute(
            "SELECT id, patient_ref, study_instance_uid, study_date, study_time,"
            " study_description, accession_number FROM studies"
            " ORDER BY study_date, study_time, study_instance_uid"
        ).fetchall()
        series_rows = conn.execute(
            "SELECT id, study_ref, series_instance_uid, modality, series_number,"
            " series_description FROM series"
            " ORDER BY series_number IS NULL, series_number, series_instance_uid"
        ).fetchall()
        instance_rows = conn.execute(
            f"SELECT se.id, {_INSTANCE_COLUMNS} FROM instances i"
            " JOIN series se ON se.id = i.series_ref JOIN studies st ON st.id = se.study_ref"
            " ORDER BY i.instance_number IS NULL, i.instance_number, i.sop_instance_uid"
        ).fetchall()
    finally:
        conn.execute("COMMIT")
    patients: dict[int, model.Patient] = {}
    for pid, patient_id, name, birth, sex in patients_rows:
        patients[pid] = model.Patient(patient_id, name, birth, sex)
    studies: dict[int, model.Study] = {}
    for sid, pref, uid, date, time, desc, accession in study_rows:
        studies[sid] = model.Study(uid, date, time, desc, accession)
        patients[pref].studies.append(studies[sid])
    series: dict[int, model.Series] = {}
    for seid, sref, uid, modality, number, desc in series_rows:
        series[seid] = model.Series(uid, modality, number, desc)
        studies[sref].series.append(series[seid])
    for row in instance_rows:
        series[row[0]].instances.append(_instance(store, row[1:]))
    return list(patients.values())


# --- deletion ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeleteResult:
    kind: str  # "study" or "series"
    instances: int
    files_removed: int


def _drop_empty_parents(conn: sqlite3.Connection) -> None:
    conn.execute(
        "DELETE FROM series WHERE NOT EXISTS "
        "(SELECT 1 FROM instances WHERE instances.series_ref = series.id)"
    )
    conn.execute(
        "DELETE FROM studies WHERE NOT EXISTS "
        "(SELECT 1 FROM series WHERE series.study_ref = studies.id)"
    )
    conn.execute(
        "DELETE FROM patients WHERE NOT EXISTS "
        "(SELECT 1 FROM studies WHERE studies.patient_ref = patients.id)"
    )


def delete_instance_rows(conn: sqlite3.Connection, instance_ids: list[int]) -> list[str]:
    """Delete instance rows (and parents left empty) and journal their files for removal.

    Call inside a write transaction; returns the relative paths journalled. The files go in
    :func:`remove_pending_files`, after the commit: a kill in between leaves the journal, which
    the next delete or check finishes.
    """
    paths: list[str] = []
    for start in range(0, len(instance_ids), 500):
        chunk = instance_ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(f"SELECT path FROM instances WHERE id IN ({marks})", chunk)
        paths.extend(r[0] for r in rows)
        conn.execute(f"DELETE FROM instances WHERE id IN ({marks})", chunk)
    conn.executemany(
        "INSERT OR IGNORE INTO pending_deletes (path) VALUES (?)", [(p,) for p in paths]
    )
    _drop_empty_parents(conn)
    return paths


def remove_pending_files(store: Store) -> int:
    """Remove the files journalled by deletions; returns how many were removed.

    Runs under the write lock and skips a path an import has indexed again meanwhile (the
    importer renames into place only under the same lock), so it never removes a live file.
    """
    store.require_writable()
    conn = store.connection()
    removed = 0
    while True:
        with write_transaction(conn):
            rows = conn.execute("SELECT path FROM pending_deletes LIMIT 500").fetchall()
            for (rel,) in rows:
                live = conn.execute("SELECT 1 FROM instances WHERE path = ?", (rel,)).fetchone()
                if live is None and _unlink(store, rel):
                    removed += 1
            conn.executemany("DELETE FROM pending_deletes WHERE path = ?", rows)
        if len(rows) < 500:
            return removed


def _unlink(store: Store, rel: str) -> bool:
    try:
        path = store.managed_path(rel)
    except StoreError:
        return False
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def delete_uid(store: Store, uid: str) -> DeleteResult:
    """Delete a study or a series (rows and files) by its UID.

    Raises :class:`StoreError` when the store has neither a study nor a series with this UID,
    or when it is read-only.
    """
    store.require_writable()
    conn = store.connection()
    with write_transaction(conn):
        kind = "study"
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT i.id FROM instances i JOIN series se ON se.id = i.series_ref"
                " JOIN studies st ON st.id = se.study_ref WHERE st.study_instance_uid = ?",
                (uid,),
            )
        ]
        found = conn.execute(
            "SELECT 1 FROM studies WHERE study_instance_uid = ?", (uid,)
        ).fetchone()
        if found is None:
            kind = "series"
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT i.id FROM instances i JOIN series se ON se.id = i.series_ref"
                    " WHERE se.series_instance_uid = ?",
                    (uid,),
                )
            ]
            found = conn.execute(
                "SELECT 1 FROM series WHERE series_instance_uid = ?", (uid,)
            ).fetchone()
        if found is None:
            raise StoreError(f"{uid}: no study or series with this UID in the store")
        delete_instance_rows(conn, ids)
    removed = remove_pending_files(store)
    return DeleteResult(kind, len(ids), removed)


def has_instance(store: Store, sop_instance_uid: str) -> bool:
    """Is this SOP instance indexed? (Retrieve skips what is already present: issue 4 resume.)"""
    row = (
        store.connection()
        .execute("SELECT 1 FROM instances WHERE sop_instance_uid = ? LIMIT 1", (sop_instance_uid,))
        .fetchone()
    )
    return row is not None


def study_instance_paths(store: Store, study_instance_uid: str) -> list[Path]:
    """The managed files of one study, series by series (for send and burn)."""
    return [
        path
        for row in list_series(store, study_instance_uid)
        for path in instance_paths(store, row.series_instance_uid)
    ]


# --- hand-overs (issue 13) -------------------------------------------------------------------

#: The states of an instance in a hand-over: committed by the node (or verified: listed by a
#: DICOMweb node after the STOW-RS); failed (the node's Failure
#: Reason); missing (no report about it by the deadline); not stored (the C-STORE failed, so it
#: was never in the request).
HANDOVER_STATES = ("committed", "verified", "failed", "missing", "not stored")
#: The states that mean the node holds the instance: committed (Storage Commitment) or verified
#: (a DICOMweb node listed it after the STOW-RS: DICOMweb has no commitment service).
HELD_STATES = ("committed", "verified")


@dataclass(slots=True)
class HandoverInstance:
    sop_instance_uid: str
    sop_class_uid: str = ""
    state: str = "missing"
    reason: str = ""


@dataclass(slots=True)
class Handover:
    """One attempt to hand a study over to a node (Storage Commitment, PS3.4 Annex J)."""

    study_instance_uid: str
    node: str
    transaction_uid: str
    requested_at: str
    reported_at: str = ""
    instances: list[HandoverInstance] | None = None
    id: int = 0

    @property
    def handed_over(self) -> bool:
        """Every instance of the study that was sent is committed (or verified)."""
        items = self.instances or []
        return bool(items) and all(i.state in HELD_STATES for i in items)

    def count(self, state: str) -> int:
        return sum(1 for i in self.instances or [] if i.state == state)


def record_handover(store: Store, handover: Handover) -> int:
    """Keep one hand-over attempt and its instances; returns its row id. A second record of the
    same (transaction, study) replaces the first (a report that came late)."""
    store.require_writable()
    for item in handover.instances or []:
        if item.state not in HANDOVER_STATES:
            raise ValueError(f"unknown hand-over state {item.state!r}")
    conn = store.connection()
    with write_transaction(conn):
        conn.execute(
            "DELETE FROM handovers WHERE transaction_uid = ? AND study_instance_uid = ?",
            (handover.transaction_uid, handover.study_instance_uid),
        )
        cur = conn.execute(
            "INSERT INTO handovers (study_instance_uid, node, transaction_uid, requested_at,"
            " reported_at) VALUES (?, ?, ?, ?, ?)",
            (
                handover.study_instance_uid,
                handover.node,
                handover.transaction_uid,
                handover.requested_at,
                handover.reported_at,
            ),
        )
        row_id = int(cur.lastrowid or 0)
        conn.executemany(
            "INSERT OR REPLACE INTO handover_instances (handover_ref, sop_instance_uid,"
            " sop_class_uid, state, reason) VALUES (?, ?, ?, ?, ?)",
            [
                (row_id, i.sop_instance_uid, i.sop_class_uid, i.state, i.reason)
                for i in handover.instances or []
            ],
        )
    handover.id = row_id
    return row_id


def list_handovers(store: Store, study_instance_uid: str | None = None) -> list[Handover]:
    """Hand-over attempts, oldest first (of one study when given), with their instances."""
    conn = store.connection()
    sql = (
        "SELECT id, study_instance_uid, node, transaction_uid, requested_at, reported_at"
        " FROM handovers"
    )
    args: tuple[str, ...] = ()
    if study_instance_uid is not None:
        sql += " WHERE study_instance_uid = ?"
        args = (study_instance_uid,)
    out: list[Handover] = []
    for row_id, study, node, transaction, requested, reported in conn.execute(
        sql + " ORDER BY requested_at, id", args
    ).fetchall():
        items = [
            HandoverInstance(str(uid), str(cls), str(state), str(reason))
            for uid, cls, state, reason in conn.execute(
                "SELECT sop_instance_uid, sop_class_uid, state, reason FROM handover_instances"
                " WHERE handover_ref = ? ORDER BY rowid",
                (row_id,),
            )
        ]
        out.append(
            Handover(
                str(study),
                str(node),
                str(transaction),
                str(requested),
                str(reported),
                items,
                int(row_id),
            )
        )
    return out


def handed_over(store: Store, study_instance_uid: str, node: str | None = None) -> bool:
    """Has an attempt (to ``node``, when given) handed the whole study over?"""
    return any(
        h.handed_over and (node is None or h.node == node)
        for h in list_handovers(store, study_instance_uid)
    )
