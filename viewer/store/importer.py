"""Import into the store: one path for media, folders, dropped files and received instances.

Every instance goes the same way (issue 3 section 2):

1. *stage*: copy the bytes into ``tmp/`` of the store while hashing them (SHA-256 of the data set
   after the File Meta, PS3.10 section 7.1, and of the bytes before it), then read the header back
   from the copy (headers only). A file already in the store (same SOP Instance UID, same data
   set) or in conflict with it stops here and its copy is dropped.
2. *sync*: ``fsync`` the staged copies, a batch at a time.
3. *commit*: under the index's write lock, decide again (another process may have imported the
   same instance meanwhile), rename each copy to its managed name, ``fsync`` the directories,
   insert the rows, commit.

Staging runs in a few threads and commits in one more, a batch at a time in order, so copying,
hashing and parsing go on while a batch is synced and committed (measured against ``shutil.copy``
by ``benchmarks/bench_store.py``).

So a row is committed only after its file is durable under its final name, and a file reaches its
final name only when its row is about to be committed. A kill at any point leaves at worst a
``tmp/`` copy or a managed file without a row; :func:`viewer.store.check.check` lists both and its
repair removes or indexes them, and importing again completes the import (the managed name is
the hash of the data set, so the same instance lands on the same name). Managed files are removed
only under the write lock by paths not in the index (deletion, repair), and renames happen only
under that lock, so no import and no deletion can undo each other.

What is kept: the bytes as received, with two exceptions. A preamble that is an executable header
(PE, ELF, Mach-O: CVE-2019-11687) is replaced by zeros and reported as a warning, and a file
without preamble or File Meta (older media) gets a preamble of zeros and a generated File Meta in
front of its unchanged data set bytes (with the transfer syntax the reader inferred), so that
every managed file is a PS3.10 file. The data set bytes, which decide duplicates, are never
changed. A records clerk can compare the data set of a managed file with the original byte for
byte.

Duplicates: same SOP Instance UID and same data set bytes = already present (skipped, whatever the
File Meta says, since media writers and network transfers rewrite it); same UID and different
data set = a conflict: reported, and the instance already in the store stays.

Received instances (:class:`viewer.store.receiver.Receiver`) are already durable files in the
store's own ``incoming/`` folder when they are imported (``import_paths(..., spooled=True)``).
Those are staged by a hard link into ``tmp/`` instead of a copy, and not synced again: the same
checks, the same commit, without writing or syncing the bytes a second time. The spool file
itself is left alone (its owner deletes it once the import committed), so a kill anywhere
before the commit leaves it to be imported again.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import mmap
import os
import secrets
import signal
import sqlite3
import stat
import threading
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from io import BytesIO
from pathlib import Path
from typing import IO, NamedTuple

import pydicom
from pydicom.datadict import tag_for_keyword

from viewer.dicom.describe import describe
from viewer.dicom.describe import text as dataset_text
from viewer.dicom.part10 import PREAMBLE_SIZE
from viewer.imaging.decode import DecodeError, read_buffer
from viewer.media import disc_image
from viewer.media.health import walk_header
from viewer.media.links import walk_files
from viewer.model import Problem
from viewer.store import part10
from viewer.store.index import InstanceRecord, insert_record
from viewer.store.schema import BUSY_TIMEOUT_MS, write_transaction
from viewer.store.store import (
    Store,
    StoreError,
    disc_full_error,
    fsync_dir,
    is_disc_full,
    managed_relpath,
)

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]

#: Media Storage Directory Storage SOP Class (PS3.4 Annex B.5): a DICOMDIR is not an instance.
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
#: (0002,0002) Media Storage SOP Class UID (PS3.10 7.1).
_MEDIA_SOP_CLASS = 0x00020002

#: Staged files per commit, and bytes per commit: a commit is one fsync of the index, so fewer
#: commits are faster, while a smaller batch shows progress sooner and loses less on a kill.
BATCH_FILES = 128
BATCH_BYTES = 128 * 1024 * 1024

_CHUNK = 1024 * 1024

#: Threads that stage files (copy, hash, parse): hashing and I/O release the GIL.
STAGE_THREADS = max(2, min(4, os.cpu_count() or 2))
#: Threads that fsync a batch: parallel fsyncs are committed together by the file system.
SYNC_THREADS = 8
_WINDOW = 2 * STAGE_THREADS

#: Test hook (issue 3 section 2, the kill tests): ``POINT:N`` makes the importer SIGKILL its own
#: process the N-th time it reaches POINT (staged, synced, renamed, indexed, committed).
CRASH_ENV = "LIGHTBOX_STORE_CRASH_AT"


@dataclass(slots=True)
class ImportReport:
    """What an import did, file by file (paths or the source label given)."""

    imported: list[str] = field(default_factory=list)
    already_present: list[str] = field(default_factory=list)
    #: Study Instance UIDs that gained instances, in order (for a live refresh).
    studies: list[str] = field(default_factory=list)
    conflicts: list[Problem] = field(default_factory=list)
    rejected: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)
    """Files met in a folder that are no DICOM instance (README.TXT, web pages, pictures, the
    DICOMDIR): not imported, and nothing wrong. A file named by itself is rejected instead."""
    cancelled: bool = False
    not_processed: int = 0  # files left when cancelled

    @property
    def ok(self) -> bool:
        return not (self.conflicts or self.rejected or self.cancelled)


class _Rejected(Exception):
    """A file not imported, and why; ``not_an_instance``: it is no DICOM instance at all (not
    DICOM, or a DICOMDIR), which a folder walked may hold beside its instances."""

    def __init__(self, reason: str, *, not_an_instance: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.not_an_instance = not_an_instance


class _SourceError(Exception):
    """Reading the source failed (its disc, not the store's): the file is refused, the rest go
    on. Any other OSError while staging is the store's (its disc full: the import stops)."""

    def __init__(self, exc: OSError) -> None:
        super().__init__(str(exc))
        self.reason = exc.strerror or str(exc)


def _read_source(src: IO[bytes], size: int) -> bytes:
    try:
        return src.read(size)
    except OSError as exc:
        raise _SourceError(exc) from exc


@dataclass(slots=True)
class _Staged:
    source: str
    tmp: Path
    record: InstanceRecord
    durable: bool = False  # a hard link to a spooled file already synced: no fsync needed


class _Crasher:
    def __init__(self) -> None:
        spec = os.environ.get(CRASH_ENV, "")
        point, _, count = spec.partition(":")
        self.point = point
        self.left = int(count) if count.isdigit() else 1

    def reached(self, point: str) -> None:
        if point != self.point:
            return
        self.left -= 1
        if self.left <= 0:
            log.warning("test hook %s: killing the process at %s", CRASH_ENV, point)
            os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))


# --- reading the header ------------------------------------------------------------------


def _read_headers(path: Path) -> tuple[pydicom.Dataset, list[str]]:
    """Headers only, through the project's one reader (bad input, deep sequences, huge length
    fields and inferred transfer syntaxes are its business), with its warnings.
    Raises _Rejected with the reason. The file is opened and mapped once for both readers
    (a second open and mapping cost a tenth of an import's time)."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                raise _Rejected("not a DICOM file (empty file)")
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                read = read_buffer(path, buf, headers_only=True)
                # The header reader stops before the pixels; the media walker goes to the end
                # of the file, so a truncated copy (a scratched CD, an interrupted download)
                # is refused, never kept as if it were complete.
                problem = walk_header(buf, size).problem
    except DecodeError as exc:
        raise _Rejected(exc.reason) from exc
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise _Rejected(f"cannot read it ({reason})") from exc
    if problem:
        raise _Rejected(problem)
    return read.dataset, read.warnings


def _uid(text: Callable[[str], str], keyword: str, name: str) -> str:
    uid = text(keyword)
    if not uid:
        raise _Rejected(f"no {name} (not a composite instance the store can keep)")
    if len(uid) > 64:
        raise _Rejected(f"{name} longer than 64 characters (PS3.5 section 9.1)")
    return uid


class _Identity(NamedTuple):
    sop_class: str
    sop_instance: str
    study: str
    series: str


def _identity(ds: pydicom.Dataset) -> _Identity:
    media_class = str(ds.file_meta.get("MediaStorageSOPClassUID", "")).strip()
    return _identity_of(lambda keyword: dataset_text(ds, keyword), media_class)


def _identity_of(text: Callable[[str], str], media_class: str) -> _Identity:
    """What the store needs of every instance (PS3.3 C.12.1, C.7.2.1, C.7.3.1: Type 1), or
    _Rejected saying what is missing: ``text(keyword)`` gives a value of the data set. The one
    rule for import (read by pydicom) and for the storage SCP's answer (:func:`refusal`, read
    by the media walker)."""
    sop_class = text("SOPClassUID") or media_class
    if MEDIA_STORAGE_DIRECTORY in (sop_class, media_class):
        raise _Rejected(
            "a DICOMDIR (media directory), not an instance; the files it lists are imported "
            "on their own",
            not_an_instance=True,
        )
    if not sop_class:
        raise _Rejected("no SOP Class UID (not a composite instance the store can keep)")
    return _Identity(
        sop_class,
        _uid(text, "SOPInstanceUID", "SOP Instance UID"),
        _uid(text, "StudyInstanceUID", "Study Instance UID"),
        _uid(text, "SeriesInstanceUID", "Series Instance UID"),
    )


class Refusal(NamedTuple):
    """Why a file cannot be stored: ``understood`` is False when it does not parse (damaged,
    truncated, not DICOM), True when it parses but lacks what the store needs or contradicts
    what it was sent as."""

    understood: bool
    reason: str


def refusal(path: Path) -> Refusal | None:
    """What the import of ``path`` would refuse it for, found without copying, hashing or
    decoding it: the storage SCP's answer must not be success for what the store will not keep
    (PS3.4 B.2.3). The media walker of the import (:func:`viewer.media.health.walk_header`)
    goes over the data set to its end, jumping over values (pixel data is never read), and
    collects the UIDs; the rules are the import's (:func:`_identity_of`). ``None``: the import
    will take it, unless it conflicts with a stored instance (only the import, under the
    index's lock, can tell) or pydicom's reading of the header fails where the walker did not
    (then the import refuses it and the receiver quarantines it). The full reader is left to
    the import: it costs six times the walk, paid by the sender waiting for each answer.

    For a received file, the File Meta holds what the request said (Affected SOP Class and
    Instance UID): a data set of another SOP Class is refused too."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                return Refusal(False, "not a DICOM file (empty file)")
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                header = walk_header(buf, size)
    except (OSError, ValueError):  # our own spool file: the spooling says what is wrong
        return None
    if header.problem or not header.is_dicom:
        return Refusal(False, header.problem or "not a DICOM file")
    values = header.values

    def text(keyword: str) -> str:
        tag = tag_for_keyword(keyword)
        return values.get(int(tag), "").strip() if tag is not None else ""

    said = values.get(_MEDIA_SOP_CLASS, "").strip()
    try:
        ident = _identity_of(text, said)
    except _Rejected as exc:
        return Refusal(True, exc.reason)
    if said and text("SOPClassUID") and ident.sop_class != said:
        return Refusal(
            True, f"the data set is of SOP Class {ident.sop_class}, it was sent as {said}"
        )
    return None


def _record(ds: pydicom.Dataset, rel: str, size: int, meta_sha: str, ds_sha: str) -> InstanceRecord:
    ident = _identity(ds)
    return describe(ds).into(
        InstanceRecord,
        sop_instance_uid=ident.sop_instance,
        study_instance_uid=ident.study,
        series_instance_uid=ident.series,
        sop_class_uid=ident.sop_class,
        path=rel,
        size=size,
        meta_sha256=meta_sha,
        dataset_sha256=ds_sha,
    )


# --- the one import path -------------------------------------------------------------------


@dataclass(slots=True)
class _Prepared:
    """What a staging thread made of one source: a staged copy, or the reason it was refused."""

    source: str
    staged: _Staged | None = None
    rejected: str | None = None
    not_an_instance: bool = False
    warnings: list[str] = field(default_factory=list)
    size: int = 0


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Importer:
    def __init__(
        self,
        store: Store,
        report: ImportReport,
        syncer: ThreadPoolExecutor | None = None,
        committer: ThreadPoolExecutor | None = None,
        *,
        spooled: bool = False,
        walked: frozenset[str] = frozenset(),
    ) -> None:
        self.store = store
        self.report = report
        self.spooled = spooled
        self.walked = walked  # sources met walking a folder (see ImportReport.skipped)
        self.syncer = syncer
        self.committer = committer
        self.committing: Future[None] | None = None
        self.batch: list[_Staged] = []
        self.batch_bytes = 0
        self.crash = _Crasher()

    def _tmp_path(self) -> Path:
        return self.store.tmp_dir / f"{os.getpid()}-{secrets.token_hex(8)}.part"

    def _copy(
        self, src: IO[bytes], tmp: Path, warnings: list[str]
    ) -> tuple[part10.Header, str, str, int]:
        head = _read_source(src, part10.HEAD_SIZE)
        if not head:  # perhaps an instance lost in copying: never skipped as "no DICOM"
            raise _Rejected("not a DICOM file (empty file)")
        try:
            header = part10.split_header(head)
        except part10.HeaderError as exc:
            raise _Rejected(
                str(exc), not_an_instance=isinstance(exc, part10.NotDicomError)
            ) from exc
        prefix = head[: header.dataset_start]
        if header.executable_preamble:
            prefix = bytes(PREAMBLE_SIZE) + prefix[PREAMBLE_SIZE:]
            warnings.append(
                f"the preamble is a {header.executable_preamble} header (CVE-2019-11687); "
                "the store keeps the file with a preamble of zeros"
            )
        elif header.meta_start == 0:
            prefix = bytes(PREAMBLE_SIZE) + b"DICM" + prefix
        ds_hash = hashlib.sha256()
        size = len(prefix)
        with open(tmp, "xb") as out:
            out.write(prefix)
            chunk = head[header.dataset_start :]
            while chunk:
                ds_hash.update(chunk)
                out.write(chunk)
                size += len(chunk)
                chunk = _read_source(src, _CHUNK)
        return header, hashlib.sha256(prefix).hexdigest(), ds_hash.hexdigest(), size

    def _add_meta(
        self, tmp: Path, ds: pydicom.Dataset, record: InstanceRecord
    ) -> tuple[Path, str, int]:
        """A bare data set gets preamble and File Meta (see the module docstring)."""
        prefix = part10.file_meta_bytes(
            record.sop_class_uid, record.sop_instance_uid, str(ds.file_meta.TransferSyntaxUID)
        )
        new_tmp = self._tmp_path()
        size = len(prefix)
        try:
            with open(tmp, "rb") as src, open(new_tmp, "xb") as out:
                out.write(prefix)
                while chunk := src.read(_CHUNK):
                    out.write(chunk)
                    size += len(chunk)
        except BaseException:
            new_tmp.unlink(missing_ok=True)
            raise
        tmp.unlink()
        return new_tmp, hashlib.sha256(prefix).hexdigest(), size

    def _link(self, source: Path, tmp: Path) -> tuple[part10.Header, str, str, int] | None:
        """Stage a spooled file by a hard link and hash it in place; None (and no link left)
        when it cannot be linked (another file system, no hard links) or its first bytes
        would be rewritten (see the module docstring): then it is copied like any file."""
        try:
            os.link(source, tmp)
        except FileNotFoundError:
            raise
        except OSError:
            return None
        try:
            with open(tmp, "rb") as src:
                head = src.read(part10.HEAD_SIZE)
                try:
                    header = part10.split_header(head)
                except part10.HeaderError as exc:
                    raise _Rejected(str(exc)) from exc
                if header.executable_preamble or not header.has_preamble:
                    tmp.unlink()
                    return None
                prefix = head[: header.dataset_start]
                ds_hash = hashlib.sha256()
                size = len(head)
                chunk = head[header.dataset_start :]
                while chunk:
                    ds_hash.update(chunk)
                    chunk = src.read(_CHUNK)
                    size += len(chunk)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return header, hashlib.sha256(prefix).hexdigest(), ds_hash.hexdigest(), size

    def prepare(self, source: str, opener: Callable[[], IO[bytes]]) -> _Prepared:
        """Copy (or link, for spooled files), hash and read one file (runs in a staging
        thread: touches no shared state)."""
        result = _Prepared(source)
        tmp = self._tmp_path()
        durable = False
        try:
            try:
                linked = self._link(Path(source), tmp) if self.spooled else None
                if linked is not None:
                    header, meta_sha, ds_sha, size = linked
                    durable = True
                else:
                    try:
                        opened = opener()
                    except OSError as exc:
                        raise _SourceError(exc) from exc
                    with opened as src:
                        header, meta_sha, ds_sha, size = self._copy(src, tmp, result.warnings)
            except _SourceError as exc:
                raise _Rejected(f"cannot read it ({exc.reason})") from exc
            ds, read_warnings = _read_headers(tmp)
            result.warnings.extend(read_warnings)
            record = _record(ds, managed_relpath(ds_sha), size, meta_sha, ds_sha)
            if header.meta_start is None:
                tmp, meta_sha, size = self._add_meta(tmp, ds, record)
                record = replace(record, size=size, meta_sha256=meta_sha)
        except _Rejected as exc:
            result.rejected = exc.reason
            result.not_an_instance = exc.not_an_instance
        except OSError as exc:
            if is_disc_full(exc):  # the store's disc: one error for the whole import
                tmp.unlink(missing_ok=True)
                raise disc_full_error(self.store.root, exc) from exc
            result.rejected = f"cannot store it ({exc.strerror or exc})"
        except Exception as exc:  # one bad file never stops the rest
            log.debug("unexpected error while importing a file", exc_info=True)
            result.rejected = f"cannot import it ({type(exc).__name__}: {exc})"
        if result.rejected is not None:
            tmp.unlink(missing_ok=True)
            return result
        result.staged = _Staged(source, tmp, record, durable)
        result.size = size
        return result

    def accept(self, prepared: _Prepared) -> None:
        """Report a prepared file, or queue it for the next commit unless already decided."""
        for warning in prepared.warnings:
            self.report.warnings.append(Problem(prepared.source, warning))
        staged = prepared.staged
        if staged is None:
            refused = Problem(prepared.source, prepared.rejected or "refused")
            if prepared.not_an_instance and prepared.source in self.walked:
                self.report.skipped.append(refused)
            else:
                self.report.rejected.append(refused)
            return
        known = (
            self.store.connection()
            .execute(
                "SELECT dataset_sha256 FROM instances WHERE sop_instance_uid = ?",
                (staged.record.sop_instance_uid,),
            )
            .fetchone()
        )
        if known is not None:
            staged.tmp.unlink()
            self._duplicate(staged.source, staged.record, known[0])
            return
        self.batch.append(staged)
        self.batch_bytes += prepared.size
        self.crash.reached("staged")
        if len(self.batch) >= BATCH_FILES or self.batch_bytes >= BATCH_BYTES:
            self.flush(wait=False)

    def flush(self, *, wait: bool = True) -> None:
        """Hand the staged batch to the committing thread, so that staging goes on while it
        syncs and commits; one batch commits at a time, in order (each decides duplicates
        again under the write lock, so a file staged before an earlier batch committed is
        still judged right)."""
        self.wait_commit()
        batch, self.batch, self.batch_bytes = self.batch, [], 0
        if batch and self.committer is None:
            self.commit(batch)
        elif batch and self.committer is not None:
            self.committing = self.committer.submit(self.commit, batch)
        if wait:
            self.wait_commit()

    def wait_commit(self) -> None:
        if self.committing is not None:
            committing, self.committing = self.committing, None
            committing.result()

    def _duplicate(self, source: str, record: InstanceRecord, known_sha: str) -> None:
        if known_sha == record.dataset_sha256:
            self.report.already_present.append(source)
        else:
            self.report.conflicts.append(
                Problem(
                    source,
                    f"SOP Instance UID {record.sop_instance_uid} is already in the store with "
                    "different content; the stored instance is kept",
                )
            )

    def _each(self, func: Callable[[Path], None], paths: list[Path]) -> None:
        if self.syncer is None or len(paths) == 1:
            for path in paths:
                func(path)
        else:
            list(self.syncer.map(func, paths))

    def commit(self, batch: list[_Staged]) -> None:
        """Sync, rename and index the staged batch (see the module docstring).

        The fsyncs run in parallel threads: the file system then commits them together, which
        measured eight times faster here than one after the other.
        """
        renamed: list[_Staged] = []
        try:
            self._each(_fsync_path, [staged.tmp for staged in batch if not staged.durable])
            self.crash.reached("synced")
            imported: list[str] = []
            studies: dict[str, None] = {}
            full: OSError | None = None
            conn = self.store.connection()
            try:
                with write_transaction(conn):
                    dirs: set[Path] = set()
                    for staged in batch:
                        rec = staged.record
                        known = conn.execute(
                            "SELECT dataset_sha256 FROM instances WHERE sop_instance_uid = ?",
                            (rec.sop_instance_uid,),
                        ).fetchone()
                        if known is not None:
                            staged.tmp.unlink()
                            self._duplicate(staged.source, rec, known[0])
                            continue
                        final = self.store.root / rec.path
                        try:
                            if not final.parent.is_dir():
                                final.parent.mkdir(parents=True, exist_ok=True)
                                dirs.add(final.parent.parent)
                            os.replace(staged.tmp, final)
                        except OSError as exc:
                            if is_disc_full(exc):  # commit what is in place, then stop
                                full = exc
                                break
                            self.report.rejected.append(
                                Problem(staged.source, f"cannot store it ({exc.strerror or exc})")
                            )
                            continue
                        renamed.append(staged)
                        dirs.add(final.parent)
                        self.crash.reached("renamed")
                        insert_record(conn, rec)
                        imported.append(staged.source)
                        studies.setdefault(rec.study_instance_uid)
                    self._each(fsync_dir, sorted(dirs))
                    self.crash.reached("indexed")
            except BaseException:
                self._unrename(renamed)
                raise
            self.report.imported.extend(imported)
            for uid in studies:
                if uid not in self.report.studies:
                    self.report.studies.append(uid)
            self.crash.reached("committed")
            if full is not None:
                raise disc_full_error(self.store.root, full) from full
        finally:
            for staged in batch:
                staged.tmp.unlink(missing_ok=True)

    def _unrename(self, renamed: list[_Staged]) -> None:
        """After a commit failed (the index's disc full, say), move the files renamed for it
        back to ``tmp/`` (to be removed), under the write lock and only where no row names
        them: a managed file without a row would stay behind for ``store check`` otherwise.
        What cannot be moved back is such an orphan, which ``check --repair`` indexes."""
        if not renamed:
            return
        conn = self.store.connection()
        try:
            if conn.in_transaction:  # a failed COMMIT may leave it open
                conn.execute("ROLLBACK")
            with write_transaction(conn):
                for staged in renamed:
                    rel = staged.record.path
                    row = conn.execute("SELECT 1 FROM instances WHERE path = ?", (rel,))
                    if row.fetchone() is None:
                        with contextlib.suppress(OSError):
                            os.replace(self.store.root / rel, staged.tmp)
        except sqlite3.Error:
            log.warning("files of a failed commit stay in %s for store check", self.store.root)


def _walk(path: Path, rejected: list[Problem], store_root: Path) -> Iterator[Path]:
    """Files under ``path`` in directory order (fewer seeks on optical media), never through a
    symbolic link (:func:`viewer.media.links.walk_files`: a link leading out of the folder is
    rejected and not read, so an import never takes in files from elsewhere on this computer;
    no loops); the store's own folder is never walked into."""
    if not path.is_dir():
        yield path
        return

    def on_error(folder: str, exc: OSError) -> None:
        rejected.append(Problem(folder, f"cannot list ({exc.strerror})"))

    store = str(store_root)
    yield from walk_files(
        path,
        rejected,
        sort=False,
        prune=lambda folder: os.path.realpath(folder) == store,
        on_error=on_error,
    )


def _open_regular(path: Path) -> IO[bytes]:
    """Open a regular file; a FIFO or device would block or never end, so it is refused."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _Rejected("not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def _run_unguarded(
    store: Store,
    sources: Iterable[tuple[str, Callable[[], IO[bytes]]]],
    total: int,
    report: ImportReport,
    cancel: threading.Event | None,
    progress: ProgressCallback | None,
    spooled: bool = False,
    walked: frozenset[str] = frozenset(),
) -> ImportReport:
    """Stage in a few threads (copy and hash release the GIL), accept and commit in order here.

    At most ``_WINDOW`` files are in flight; on cancel those are finished and committed, the rest
    are not started.
    """
    done = 0
    if total <= 1:  # one file (a received instance): no threads to start
        importer = _Importer(store, report, spooled=spooled, walked=walked)
        try:
            for source, opener in sources:
                if cancel is not None and cancel.is_set():
                    report.cancelled = True
                    report.not_processed = total
                    break
                importer.accept(importer.prepare(source, opener))
                done += 1
                if progress is not None:
                    progress(done, total)
            importer.flush()
        finally:
            for staged in importer.batch:
                staged.tmp.unlink(missing_ok=True)
        return report
    pending: deque[Future[_Prepared]] = deque()
    with (
        ThreadPoolExecutor(STAGE_THREADS, thread_name_prefix="lightbox-stage") as stager,
        ThreadPoolExecutor(SYNC_THREADS, thread_name_prefix="lightbox-sync") as syncer,
        ThreadPoolExecutor(1, thread_name_prefix="lightbox-commit") as committer,
    ):
        importer = _Importer(store, report, syncer, committer, spooled=spooled, walked=walked)
        todo = iter(sources)
        try:
            while True:
                while len(pending) < _WINDOW and not (cancel is not None and cancel.is_set()):
                    item = next(todo, None)
                    if item is None:
                        break
                    pending.append(stager.submit(importer.prepare, *item))
                if not pending:
                    break
                importer.accept(pending.popleft().result())
                done += 1
                if progress is not None:
                    progress(done, total)
            if done < total:
                report.cancelled = True
                report.not_processed = total - done
            importer.flush()
        finally:  # an error on the way out: drop every copy not committed
            for future in pending:
                try:
                    left = future.result().staged
                except Exception:  # its own copy was dropped where it failed
                    continue
                if left is not None:
                    left.tmp.unlink(missing_ok=True)
            try:
                importer.wait_commit()
            finally:
                for staged in importer.batch:
                    staged.tmp.unlink(missing_ok=True)
                committer.submit(store.release_connection).result()
    return report


def _is_dicomdir(path: Path) -> bool:
    """A Media Storage Directory file (PS3.10 section 8), whatever its name."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            meta = pydicom.filereader.read_file_meta_info(path)
    except Exception:
        return False
    return str(meta.get("MediaStorageSOPClassUID", "")) == MEDIA_STORAGE_DIRECTORY


def _dicomdir_files(path: Path, report: ImportReport, cancel: threading.Event | None) -> list[Path]:
    """The files a DICOMDIR references, read by viewer.media.scan (record by record, paths
    kept inside the media root); what it could not use is listed as rejected."""
    from viewer.media.scan import scan

    result = scan(path, cancel=cancel)
    report.rejected.extend(result.problems)
    return list(dict.fromkeys(Path(i.path) for i in result.instances))


def _run(
    store: Store,
    sources: Iterable[tuple[str, Callable[[], IO[bytes]]]],
    total: int,
    report: ImportReport,
    cancel: threading.Event | None,
    progress: ProgressCallback | None,
    spooled: bool = False,
    walked: frozenset[str] = frozenset(),
) -> ImportReport:
    """:func:`_run_unguarded`, with a failure of the index itself said in words; a full disc
    is one :class:`viewer.store.store.StoreFullError` naming the store's folder, and a
    read-only store refuses at once."""
    store.require_writable()
    try:
        return _run_unguarded(store, sources, total, report, cancel, progress, spooled, walked)
    except OSError as exc:
        if is_disc_full(exc):
            raise disc_full_error(store.root, exc) from exc
        raise
    except sqlite3.OperationalError as exc:
        if is_disc_full(exc):
            raise disc_full_error(store.root, exc) from exc
        if "locked" in str(exc) or "busy" in str(exc):
            raise StoreError(
                f"{store.root}: the store stayed locked by another process for "
                f"{BUSY_TIMEOUT_MS // 1000} s; nothing was lost, import again later"
            ) from exc
        raise StoreError(f"{store.root}: the index failed ({exc})") from exc
    except sqlite3.Error as exc:
        raise StoreError(f"{store.root}: the index failed ({exc})") from exc


def import_paths(
    store: Store,
    paths: Iterable[Path | str],
    *,
    cancel: threading.Event | None = None,
    progress: ProgressCallback | None = None,
    spooled: bool = False,
) -> ImportReport:
    """Import files and folders (recursively): media, a folder, dropped files.

    A DICOMDIR named directly imports the files it references (a disc: ``import
    /media/cdrom/DICOMDIR``); an ISO 9660 image imports as the folder it holds, its files named
    in the image (``disc.iso!/DICOM/IM1``); a DICOMDIR met inside a folder is skipped, since
    the walk finds its files anyway, and so is any other file of a folder that is no DICOM at
    all (README.TXT, INDEX.HTM, pictures): :attr:`ImportReport.skipped`, not an error. A file
    named by itself that is no instance is rejected.

    ``spooled=True`` is for :class:`viewer.store.receiver.Receiver` only: every path must be a
    file in the store's ``incoming/`` folder, already synced to disc and never written again;
    it is staged by a hard link instead of a copy (see the module docstring) and left in place.

    Blocks; call it from a worker. ``cancel`` stops between files, after committing what was
    staged (the store stays consistent); ``progress(done, total)`` follows every file.
    Raises :class:`viewer.store.StoreError` only when the store itself fails: its disc is full
    (:class:`viewer.store.store.StoreFullError`, at the first file that does not fit; what was
    committed before stays), it is read-only, or it stayed locked by another process for
    longer than the busy timeout.
    """
    store.require_writable()
    report = ImportReport()
    if spooled:
        return _import_spooled(store, paths, report, cancel, progress)
    files: list[Path] = []
    walked: set[str] = set()  # met walking a folder: a file there that is no instance is skipped
    store_root = store.root.resolve()
    images = contextlib.ExitStack()  # ISO images unpacked for this import (issue 13)
    labels: dict[Path, str] = {}  # their files as the report names them: disc.iso!/DICOM/IM1
    for item in paths:
        path = Path(item)
        if not path.exists():
            report.rejected.append(Problem(str(path), "no such file or folder"))
            continue
        resolved = path.resolve()
        if resolved == store_root or store_root in resolved.parents:
            report.rejected.append(Problem(str(path), "inside the store itself"))
            continue
        if disc_image.is_disc_image(path):
            found = _disc_image_files(path, images, labels, report, cancel)
            walked.update(labels[f] for f in found)
            files.extend(found)
            continue
        if path.is_file() and _is_dicomdir(path):
            files.extend(_dicomdir_files(path, report, cancel))
            continue
        found = list(_walk(path, report.rejected, store_root))
        if path.is_dir():
            walked.update(str(f) for f in found)
        files.extend(found)

    def opener(path: Path) -> Callable[[], IO[bytes]]:
        return lambda: _open_regular(path)

    sources = ((labels.get(f, str(f)), opener(f)) for f in files)
    with images:
        return _run(store, sources, len(files), report, cancel, progress, walked=frozenset(walked))


def _disc_image_files(
    path: Path,
    images: contextlib.ExitStack,
    labels: dict[Path, str],
    report: ImportReport,
    cancel: threading.Event | None,
) -> list[Path]:
    """The files of an ISO image, unpacked (:mod:`viewer.media.disc_image`; the folder a scan
    holds open is reused) and walked like a folder, each labelled as in the image."""
    try:
        image = images.enter_context(disc_image.open_image(path, cancel=cancel))
    except disc_image.DiscImageError as exc:
        report.rejected.append(Problem(exc.where, exc.reason))
        return []
    report.rejected.extend(image.problems)
    walk_problems: list[Problem] = []
    found = list(walk_files(image.root, walk_problems, sort=False))
    report.rejected.extend(image.relabel(p) for p in walk_problems)
    labels.update((f, image.label(f)) for f in found)
    return found


#: The folder of the store where received instances wait, durable, for their import.
INCOMING = "incoming"


def spool_dir(store: Store) -> Path:
    """``incoming/`` of the store (see :class:`viewer.store.receiver.Receiver`)."""
    return store.root / INCOMING


def _import_spooled(
    store: Store,
    paths: Iterable[Path | str],
    report: ImportReport,
    cancel: threading.Event | None,
    progress: ProgressCallback | None,
) -> ImportReport:
    incoming = spool_dir(store).resolve()
    files: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.resolve().parent != incoming:
            report.rejected.append(Problem(str(path), "not in the store's incoming folder"))
        elif not path.is_file():
            report.rejected.append(Problem(str(path), "no such file"))
        else:
            files.append(path)

    def opener(path: Path) -> Callable[[], IO[bytes]]:
        return lambda: _open_regular(path)

    sources = ((str(f), opener(f)) for f in files)
    return _run(store, sources, len(files), report, cancel, progress, spooled=True)


def reindex_file(store: Store, path: Path) -> ImportReport:
    """Import a file found inside the store's own folder (``check --repair`` on a managed file
    without a row): the same path as any import, without the guard against the store."""
    return _run(store, [(str(path), lambda: _open_regular(path))], 1, ImportReport(), None, None)


def import_bytes(store: Store, data: bytes, *, source: str = "network") -> ImportReport:
    """Import one instance given as the bytes of a DICOM file (for the storage SCP: pynetdicom's
    ``event.encoded_dataset()``, whose File Meta is rewritten and whose data set is as received).
    """
    return _run(store, [(source, lambda: BytesIO(data))], 1, ImportReport(), None, None)


def import_dataset(store: Store, ds: pydicom.Dataset, *, source: str = "network") -> ImportReport:
    """Import one decoded data set (written as a PS3.10 file with a preamble of zeros)."""
    buf = BytesIO()
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        ds.file_meta = meta or pydicom.dataset.FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.preamble = bytes(PREAMBLE_SIZE)
    try:
        pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    except Exception as exc:
        report = ImportReport()
        report.rejected.append(Problem(source, f"cannot encode the data set ({exc})"))
        return report
    return import_bytes(store, buf.getvalue(), source=source)
