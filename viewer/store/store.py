"""Where the store lives on disc and how its parts are reached.

Layout under ``viewer.config.app_home() / "store"`` (``$LIGHTBOX_HOME`` overrides the app home)::

    index.sqlite (+ -wal, -shm)   the index (viewer.store.schema)
    files/ab/<sha256>.dcm         managed files, named by the SHA-256 of their data set
    tmp/<pid>-<random>.part       files being imported (renamed into files/ when durable)
    incoming/                     received instances, durable, waiting for their batch import
                                  (viewer.store.receiver; drained again at the next start)
    quarantine/                   files ``check --repair`` took out, and received instances that
                                  could not be kept (``received-*``), each with a .txt saying why;
                                  bounded in size (:attr:`Store.quarantine_limit`), the oldest
                                  dropped first and counted in ``quarantine/.dropped``

Managed file names are built only from a hash the store computed, never from values read from a
file (UIDs, names), so no file on media can steer where the store writes. The hash is that of
the data set (the bytes after the File Meta): one instance has one name whatever meta a writer
gave it, and two instances never share one (the data set holds the SOP Instance UID). The index
keeps the path relative to the store, so a store folder can be moved as a whole;
:meth:`Store.managed_path` validates every relative path read back from the index before use.

Opening a store removes what killed processes left behind: ``tmp/<pid>-*.part`` copies and
``incoming/.rx-<pid>-*`` files a storage SCP was writing, whose process is gone (never a file of
a live process, never a spooled instance waiting in ``incoming/``: those were acknowledged and
are imported by :class:`viewer.store.Receiver`). A store whose folder cannot be written (a
read-only mount, a disc, a folder of another user) is opened read-only: it can be listed and
read, and everything that would write to it fails with one :class:`StoreError` saying so.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import sqlite3
import threading
import time
from pathlib import Path
from urllib.parse import quote

from viewer.config import app_home
from viewer.store import schema

_MANAGED = re.compile(r"files/([0-9a-f]{2})/([0-9a-f]{64})\.dcm")


class StoreError(Exception):
    """The store cannot do what was asked; the message says why, in words a person can act on."""


class StoreFullError(StoreError):
    """The store's disc (or the user's quota on it) is full: nothing more can be stored until
    space is freed. One error for the whole operation, naming the store's folder."""


#: errno values that mean "the store's disc is full" (a quota counts as full).
DISC_FULL = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})


def is_disc_full(exc: BaseException) -> bool:
    """An OSError for a full disc or quota, or SQLite's "database or disk is full"."""
    if isinstance(exc, OSError):
        return exc.errno in DISC_FULL
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or (
            "database or disk is full" in str(exc)
        )
    return False


def disc_full_error(root: Path, exc: BaseException) -> StoreFullError:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return StoreFullError(
        f"the store's disc is full: {root} ({reason}); what was stored before is kept, "
        "nothing half-written is; free some space and run it again"
    )


#: Default most bytes kept in ``quarantine/`` (files and their notes); beyond it the oldest go.
QUARANTINE_LIMIT = 256 * 1024 * 1024
#: The file in ``quarantine/`` counting what was dropped to keep it within its limit.
DROPPED_NAME = ".dropped"

#: Name prefix of a file the storage SCP is writing into ``incoming/`` (viewer.net.scp).
RECEIVING_PREFIX = ".rx-"
_TMP_NAME = re.compile(r"(\d{1,10})-[0-9a-f]+\.part")
_RECEIVING_NAME = re.compile(r"\.rx-(\d{1,10})-[^/]*")
#: Where directories cannot tell whether the writing process still runs (not POSIX),
#: a temporary file this old is taken as left behind.
TMP_AGE_S = 24 * 3600


def process_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (POSIX). Numbers no process can have (0 would signal
    our own process group, and a huge one overflows ``kill``) are not alive."""
    if not 0 < pid < 2**31:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    except (OSError, OverflowError):
        return False
    return True


def owner_gone(path: Path) -> bool:
    """A temporary named ``<pid>-...`` (or ``.rx-<pid>-...``, a received file being written
    into ``incoming/``) whose process is gone, or, without a pid (or off POSIX), an old one.

    A live pid keeps its files even when the number was reused by another program since:
    removing a file a live import is writing would lose it, a leftover only costs space
    (``store check --repair`` judges by the same rule)."""
    pid_text = path.name.removeprefix(RECEIVING_PREFIX).split("-", 1)[0]
    if os.name == "posix" and pid_text.isdigit() and len(pid_text) <= 10:
        return not process_alive(int(pid_text))
    try:
        return time.time() - path.stat().st_mtime > TMP_AGE_S
    except OSError:
        return False


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


#: The store's folder in the app folder, and its index's file name in the store's folder.
FOLDER_NAME = "store"
INDEX_NAME = "index.sqlite"


def default_root() -> Path:
    """Where the local store lives unless another folder is named: ``app_home()/store``."""
    return app_home() / FOLDER_NAME


class Store:
    """One store folder. Thread-safe: each thread gets its own SQLite connection.

    Open with :meth:`Store.open`; close with :meth:`close` (or use it as a context manager).
    """

    def __init__(self, root: Path, *, quarantine_limit: int = QUARANTINE_LIMIT) -> None:
        self.root = root
        self.db_path = root / INDEX_NAME
        self.files_dir = root / "files"
        self.tmp_dir = root / "tmp"
        self.quarantine_dir = root / "quarantine"
        #: Opened read-only (see the module docstring): nothing may be written.
        self.read_only = False
        #: Most bytes ``quarantine/`` keeps (see :meth:`quarantine`).
        self.quarantine_limit = quarantine_limit
        self._immutable = False
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    @classmethod
    def open(
        cls, root: Path | str | None = None, *, quarantine_limit: int = QUARANTINE_LIMIT
    ) -> Store:
        """Open (creating or migrating it when needed) the store at ``root``, by default
        ``app_home()/store``, and remove what dead processes left in it; a store that cannot be
        written is opened read-only (:attr:`read_only`). Raises :class:`StoreError` when it
        cannot be used."""
        store = cls(
            Path(root) if root is not None else default_root(),
            quarantine_limit=quarantine_limit,
        )
        if store.db_path.is_file() and not _writable(store.root):
            return store._open_read_only()
        try:
            for folder in (store.root, store.files_dir, store.tmp_dir):
                folder.mkdir(parents=True, exist_ok=True)
            store._migrate_when_free()
        except (OSError, sqlite3.Error, schema.SchemaError) as exc:
            store.close()
            if is_disc_full(exc):
                raise disc_full_error(store.root, exc) from exc
            if store.db_path.is_file() and _read_only_error(exc):
                return cls(store.root, quarantine_limit=quarantine_limit)._open_read_only()
            raise StoreError(f"{store.root}: cannot open the store: {exc}") from exc
        store.remove_leftovers()
        return store

    def _open_read_only(self) -> Store:
        """The read-only fallback of :meth:`open`: no folder created, no migration, no cleanup.
        SQLite's ``mode=ro`` still needs the ``-shm`` file of WAL mode; where even that cannot
        be created (a read-only mount after a clean close), the file is opened ``immutable``:
        nobody can change it there either."""
        self.read_only = True
        try:
            conn = self.connection()
            found = schema.user_version(conn)
        except sqlite3.Error:
            self.close()
            self._immutable = True
            try:
                conn = self.connection()
                found = schema.user_version(conn)
            except sqlite3.Error as exc:
                self.close()
                raise StoreError(f"{self.root}: cannot open the store (read-only): {exc}") from exc
        if found != schema.SCHEMA_VERSION:
            self.close()
            raise StoreError(
                f"{self.root}: the store is read-only and its index has schema version {found}, "
                f"this Lightbox needs {schema.SCHEMA_VERSION}; open it once where it can be "
                "written"
            )
        return self

    def require_writable(self) -> None:
        """Raise :class:`StoreError` when the store was opened read-only."""
        if self.read_only:
            raise StoreError(f"the store is read-only: {self.root}")

    def remove_leftovers(self) -> int:
        """Remove ``tmp/<pid>-*.part`` and ``incoming/.rx-<pid>-*`` files whose process is gone
        (see :func:`owner_gone`); spooled instances (``incoming/`` names without the dot) are
        never touched. Returns how many were removed; errors are left to ``store check``."""
        removed = 0
        places = ((self.tmp_dir, _TMP_NAME), (self.root / "incoming", _RECEIVING_NAME))
        for folder, pattern in places:
            try:
                names = [e.name for e in os.scandir(folder) if e.is_file(follow_symlinks=False)]
            except OSError:
                continue
            gone: dict[str, bool] = {}
            for name in names:
                match = pattern.fullmatch(name)
                if match is None:
                    continue
                pid = match.group(1)
                if pid not in gone:
                    gone[pid] = os.name == "posix" and not process_alive(int(pid))
                if not gone[pid]:
                    continue
                with contextlib.suppress(OSError):
                    (folder / name).unlink()
                    removed += 1
        return removed

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
            conn = self._connect_read_only() if self.read_only else schema.connect(self.db_path)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _connect_read_only(self) -> sqlite3.Connection:
        uri = "file:" + quote(str(self.db_path.absolute())) + "?mode=ro"
        if self._immutable:
            uri += "&immutable=1"
        conn = sqlite3.connect(
            uri,
            uri=True,
            timeout=schema.BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
        conn.execute(f"PRAGMA busy_timeout = {schema.BUSY_TIMEOUT_MS}")
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

    # ------------------------------------------------------------------ quarantine
    def quarantine(self, path: Path, name: str, note: str) -> Path:
        """Move ``path`` into ``quarantine/`` as ``name`` with ``name.txt`` holding ``note``,
        then drop the oldest quarantined files beyond :attr:`quarantine_limit` (counted in
        ``quarantine/.dropped``, see :meth:`quarantine_dropped`): a sender or a disc can fill
        the quarantine with refused files, never the store's disc. Raises OSError."""
        self.require_writable()
        folder = self.quarantine_dir
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / name
        note_path = folder / f"{name}.txt"
        note_path.write_text(note, encoding="utf-8")
        try:
            os.replace(path, target)
        except OSError:
            note_path.unlink(missing_ok=True)
            raise
        self._bound_quarantine(keep=target)
        return target

    def _bound_quarantine(self, keep: Path | None = None) -> None:
        folder = self.quarantine_dir
        groups: dict[str, list[tuple[Path, int, float]]] = {}
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return
        for entry in entries:
            if entry.name == DROPPED_NAME or entry.name.startswith(f"{DROPPED_NAME}."):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            key = entry.name.removesuffix(".txt")
            groups.setdefault(key, []).append((Path(entry.path), st.st_size, st.st_mtime))
        total = sum(size for group in groups.values() for _p, size, _t in group)
        if total <= self.quarantine_limit:
            return
        oldest = sorted(groups.items(), key=lambda kv: (max(t for _p, _s, t in kv[1]), kv[0]))
        files = size_dropped = 0
        for key, group in oldest:
            if total <= self.quarantine_limit:
                break
            if keep is not None and key == keep.name:
                continue  # the file just kept: it alone may exceed a tiny limit
            for path, size, _t in group:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                total -= size
                size_dropped += size
            files += 1
        if files:
            self._count_dropped(files, size_dropped)

    def _count_dropped(self, files: int, size: int) -> None:
        """Add to the counter in ``quarantine/.dropped`` ("<files> <bytes>"), replaced whole."""
        counter = self.quarantine_dir / DROPPED_NAME
        lock = self.quarantine_dir / f"{DROPPED_NAME}.lock"
        with open(lock, "a+b") as held:
            if os.name == "posix":
                import fcntl

                fcntl.flock(held.fileno(), fcntl.LOCK_EX)
            before_files, before_size = self.quarantine_dropped()
            tmp = self.quarantine_dir / f"{DROPPED_NAME}.{os.getpid()}.tmp"
            tmp.write_text(f"{before_files + files} {before_size + size}\n", encoding="ascii")
            os.replace(tmp, counter)

    def quarantine_dropped(self) -> tuple[int, int]:
        """Quarantined files dropped so far to keep the quarantine within its limit, and
        their bytes."""
        try:
            text = (self.quarantine_dir / DROPPED_NAME).read_text(encoding="ascii")
            files, size = text.split()
            return int(files), int(size)
        except (OSError, ValueError, UnicodeDecodeError):
            return 0, 0


def _writable(folder: Path) -> bool:
    """Whether this process may create files in ``folder`` (a read-only mount says no even to
    root, whom permission bits do not stop)."""
    return os.access(folder, os.W_OK)


def _read_only_error(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
    if isinstance(exc, sqlite3.Error):
        text = str(exc)
        return "readonly" in text or "read-only" in text or "unable to open" in text
    return False
