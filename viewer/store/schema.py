"""The SQLite index of the store: tables, versions, migrations and connection settings.

The index mirrors the composite information model (PS3.3 Annex A.1.2: patient > study > series
> instance) with the attributes the browser lists and filters on (the Study Root query keys of
PS3.4 C.6.2.1 plus what a study list shows) and, per instance, the managed file: its path relative
to the store, size, the SHA-256 of the data set after the File Meta (the duplicate key and the
file's name) and the SHA-256 of the bytes before it (preamble, ``DICM``, File Meta): together
they cover every byte of the file, hashed in one pass at import.

Versions are counted in ``PRAGMA user_version``. :data:`MIGRATIONS` holds one step per version;
a new store runs them all, an older store runs the missing ones, each in one write transaction
that re-reads the version first, so two processes opening an old store at once migrate it once.
A store written by a newer Lightbox (a higher version) is refused rather than damaged.

Several processes share one store (the GUI, ``lightbox import``, the storage SCP): the index runs
in WAL mode (readers never block the writer), every connection waits on a busy timeout instead of
failing, and every write takes the write lock at its start (``BEGIN IMMEDIATE``) so that two
read-then-write transactions cannot both decide on stale reads (no lost update).
``synchronous=FULL`` makes a commit durable before the importer reports a file as imported.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: Milliseconds a connection waits for another process's write lock before giving up.
BUSY_TIMEOUT_MS = 60_000

_V1 = [
    """CREATE TABLE patients (
        id INTEGER PRIMARY KEY,
        patient_key TEXT NOT NULL UNIQUE,
        patient_id TEXT,
        patient_id_fold TEXT NOT NULL DEFAULT '',
        patient_name TEXT NOT NULL DEFAULT '',
        patient_name_fold TEXT NOT NULL DEFAULT '',
        birth_date TEXT NOT NULL DEFAULT '',
        sex TEXT NOT NULL DEFAULT ''
    )""",
    """CREATE TABLE studies (
        id INTEGER PRIMARY KEY,
        patient_ref INTEGER NOT NULL REFERENCES patients(id),
        study_instance_uid TEXT NOT NULL UNIQUE,
        study_date TEXT NOT NULL DEFAULT '',
        study_time TEXT NOT NULL DEFAULT '',
        accession_number TEXT NOT NULL DEFAULT '',
        study_id TEXT NOT NULL DEFAULT '',
        study_description TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX studies_patient ON studies(patient_ref)",
    "CREATE INDEX studies_date ON studies(study_date)",
    """CREATE TABLE series (
        id INTEGER PRIMARY KEY,
        study_ref INTEGER NOT NULL REFERENCES studies(id),
        series_instance_uid TEXT NOT NULL UNIQUE,
        modality TEXT NOT NULL DEFAULT '',
        series_number INTEGER,
        series_description TEXT NOT NULL DEFAULT '',
        series_date TEXT NOT NULL DEFAULT '',
        series_time TEXT NOT NULL DEFAULT '',
        body_part_examined TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX series_study ON series(study_ref)",
    """CREATE TABLE instances (
        id INTEGER PRIMARY KEY,
        series_ref INTEGER NOT NULL REFERENCES series(id),
        sop_instance_uid TEXT NOT NULL UNIQUE,
        sop_class_uid TEXT NOT NULL DEFAULT '',
        instance_number INTEGER,
        transfer_syntax_uid TEXT NOT NULL DEFAULT '',
        number_of_frames INTEGER NOT NULL DEFAULT 1,
        rows INTEGER NOT NULL DEFAULT 0,
        columns INTEGER NOT NULL DEFAULT 0,
        image_position TEXT NOT NULL DEFAULT '',
        image_orientation TEXT NOT NULL DEFAULT '',
        acquisition_time TEXT NOT NULL DEFAULT '',
        path TEXT NOT NULL UNIQUE,
        size INTEGER NOT NULL,
        meta_sha256 TEXT NOT NULL,
        dataset_sha256 TEXT NOT NULL,
        imported_at TEXT NOT NULL
    )""",
    "CREATE INDEX instances_series ON instances(series_ref)",
]

#: Version 2: the number of instances per series kept by triggers (the study list no longer
#: counts instance rows at every query), and the journal of deletions whose files are not yet
#: removed (a delete killed half-way is finished by the next delete or check).
_V2 = [
    "ALTER TABLE series ADD COLUMN num_instances INTEGER NOT NULL DEFAULT 0",
    "UPDATE series SET num_instances = "
    "(SELECT count(*) FROM instances WHERE instances.series_ref = series.id)",
    """CREATE TRIGGER instances_count_insert AFTER INSERT ON instances BEGIN
        UPDATE series SET num_instances = num_instances + 1 WHERE id = NEW.series_ref;
    END""",
    """CREATE TRIGGER instances_count_delete AFTER DELETE ON instances BEGIN
        UPDATE series SET num_instances = num_instances - 1 WHERE id = OLD.series_ref;
    END""",
    "CREATE TABLE pending_deletes (path TEXT PRIMARY KEY)",
]

#: Version 3: measurements drawn on images, kept by SOP Instance UID and frame (also for images
#: of a disc that was not imported: opened again, they show again), in the order drawn.
_V3 = [
    """CREATE TABLE measurements (
        sop_instance_uid TEXT NOT NULL,
        frame_number INTEGER NOT NULL,
        position INTEGER NOT NULL,
        data TEXT NOT NULL,
        saved_at TEXT NOT NULL,
        PRIMARY KEY (sop_instance_uid, frame_number, position)
    )""",
]

#: Version 4: hand-overs (issue 13): each attempt to hand a study over to a node with Storage
#: Commitment (PS3.4 Annex J), its transaction, and the state of each instance sent. A study is
#: handed over by an attempt only when every instance of it that was sent is committed.
_V4 = [
    """CREATE TABLE handovers (
        id INTEGER PRIMARY KEY,
        study_instance_uid TEXT NOT NULL,
        node TEXT NOT NULL,
        transaction_uid TEXT NOT NULL,
        requested_at TEXT NOT NULL,
        reported_at TEXT NOT NULL DEFAULT '',
        UNIQUE (transaction_uid, study_instance_uid)
    )""",
    "CREATE INDEX handovers_study ON handovers(study_instance_uid)",
    """CREATE TABLE handover_instances (
        handover_ref INTEGER NOT NULL REFERENCES handovers(id) ON DELETE CASCADE,
        sop_instance_uid TEXT NOT NULL,
        sop_class_uid TEXT NOT NULL DEFAULT '',
        state TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (handover_ref, sop_instance_uid)
    )""",
]

MIGRATIONS: list[list[str]] = [_V1, _V2, _V3, _V4]
SCHEMA_VERSION = len(MIGRATIONS)


class SchemaError(Exception):
    """The index cannot be used by this version of Lightbox."""


def connect(db_path: Path) -> sqlite3.Connection:
    """A connection with the store's settings (autocommit: transactions are explicit)."""
    conn = sqlite3.connect(
        db_path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        conn.close()
        raise SchemaError(f"{db_path}: the index cannot use WAL mode (journal mode {mode})")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``: the write lock is taken before anything is read."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Bring the index to ``target`` (default: the current version); returns the version found.

    Raises :class:`SchemaError` for an index newer than this Lightbox knows.
    """
    found = user_version(conn)
    if found > SCHEMA_VERSION:
        raise SchemaError(
            f"the store index has schema version {found}, newer than this Lightbox knows "
            f"({SCHEMA_VERSION}); use a newer Lightbox"
        )
    if found >= target:
        return found
    with write_transaction(conn):
        current = user_version(conn)  # another process may have migrated meanwhile
        for version in range(current, target):
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {max(current, target)}")
    return found
