"""Where the store lives on disc and how its parts are reached.

Layout under ``viewer.config.app_home() / "store"`` (``$LIGHTBOX_HOME`` overrides the app home)::

    index.sqlite (+ -wal, -shm)   the index (viewer.store.schema)
    files/ab/<sha256>.dcm         managed files, named by the SHA-256 of their data set
    tmp/<pid>-<random>.part       files being imported (renamed into files/ when durable)
    incoming/                     received instances, durable, waiting for their batch import
                                  (viewer.store.receiver; drained again at the next start)
    quarantine/                   files ``check --repair`` took out, and received instances that
                                  could not be kept (``received-*``), each with a .txt saying why

Managed file names are built only from a hash the store computed, never from values read from a
file (UIDs, names), so no file on media can steer where the store writes. The hash is that of
the data set (the bytes after the File Meta): one instance has one name whatever meta a writer
gave it, and two instances never share one (the data set holds the SOP Instance UID). The index
keeps the path relative to the store, so a store folder can be moved as a whole;
:meth:`Store.managed_path` validates every relative path read back from the index before use.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import threading
import time
from pathlib import Path

from viewer.config import app_home
from viewer.store import schema

_MANAGED = re.compile(r"files/([0-9a-f]{2})/([0-9a-f]{64})\.dcm")


class StoreError(Exception):
    """The store cannot do what was asked; the message says why, in words a person can act on."""


def managed_relpath(sha256: str) -> str:
    """The relative path of the managed file whose data set has this SHA-256 (hex)."""
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
    return f"files/{sha256[:2]}/{sha256}.dcm"


def is_managed_relpath(rel: str) -> bool:
    match = _MANAGED.fullmatch(rel)
    return match is not None and match.group(1) == match.group(2)[:2]


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in ``path`` durable (a no-op where directories cannot be
    opened, such as Windows, whose NTFS journals metadata itself)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class Store:
    """One store folder. Thread-safe: each thread gets its own SQLite connection.

    Open with :meth:`Store.open`; close with :meth:`close` (or use it as a context manager).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.db_path = root / "index.sqlite"
        self.files_dir = root / "files"
        self.tmp_dir = root / "tmp"
        self.quarantine_dir = root / "quarantine"
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    @classmethod
    def open(cls, root: Path | str | None = None) -> Store:
        """Open (creating or migrating it when needed) the store at ``root``, by default
        ``app_home()/store``. Raises :class:`StoreError` when it cannot be used."""
        store = cls(Path(root) if root is not None else app_home() / "store")
        try:
            for folder in (store.root, store.files_dir, store.tmp_dir):
                folder.mkdir(parents=True, exist_ok=True)
            store._migrate_when_free()
        except (OSError, sqlite3.Error, schema.SchemaError) as exc:
            store.close()
            raise StoreError(f"{store.root}: cannot open the store: {exc}") from exc
        return store

    def _migrate_when_free(self, patience: float = 30.0) -> None:
        """Open and migrate, waiting while another process or thread holds the database.

        SQLite answers "database is locked" at once, without its busy handler, in a few cases
        (switching a new file to WAL, a read lock upgraded to a write lock while another
        connection writes): two processes opening a store together must not fail for that.
        """
        deadline = time.monotonic() + patience
        delay = 0.01
        while True:
            try:
                schema.migrate(self.connection())
                return
            except sqlite3.OperationalError as exc:
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy or time.monotonic() > deadline:
                    raise
                self.release_connection()
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def connection(self) -> sqlite3.Connection:
        """This thread's connection to the index."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = schema.connect(self.db_path)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def release_connection(self) -> None:
        """Close this thread's connection (a worker thread that is about to end)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            return
        self._local.conn = None
        with self._lock:
            self._connections = [c for c in self._connections if c is not conn]
        with contextlib.suppress(sqlite3.Error):
            conn.close()

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def managed_path(self, rel: str) -> Path:
        """The absolute path of a managed file named in the index; refuses anything else."""
        if not is_managed_relpath(rel):
            raise StoreError(f"{self.db_path}: the index names an invalid file path {rel!r}")
        return self.root / rel
