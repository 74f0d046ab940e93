"""Received instances: durable at once, indexed in batches (issue 4, "Receive").

A C-STORE SCP must not answer success before it has stored the instance (PS3.4 B.2.3), and a
sender such as DCMTK ``storescu`` sends one instance at a time and waits for each answer. Running
a whole store import per instance (stage copy, sync, rename, directory sync, index commit) in
that window made receiving five times slower than DCMTK's own ``storescp``.

So receiving is split in two:

1. :meth:`Receiver.__call__` (the storage SCP's ``on_instance``, in the network thread) first
   checks the file the way the import will (:func:`viewer.store.importer.refusal`: the data set
   parses to its end, and carries the SOP Class, SOP Instance, Study and Series Instance UIDs
   the store needs, headers only). What the store would refuse is answered with a failure and
   an error comment (0xC000 "cannot understand" for a data set that does not parse, 0xA900
   "does not match SOP Class" for one that lacks what its class requires or is of another
   class, PS3.4 B.2.3) and deleted: the sender knows it was not stored. It then makes the
   spooled file durable (``fsync`` it, rename it into ``incoming/`` of the store, ``fsync``
   that folder) and queues it; only then does the sender get success. From then on the instance
   cannot be lost: whatever happens next, ``incoming/`` is imported again at the next start.
2. A background thread imports whatever is queued, a batch at a time, through the one import
   path (:func:`viewer.store.import_paths` with ``spooled=True``: the same checks, the bytes
   staged by a hard link rather than copied and synced again) and deletes each spool file once
   its import committed (or found it already present).

The batch import runs in a worker process of the application's pool
(:func:`viewer.imaging.pool.get_pool`), not in this process: its Python work (reading
headers, indexing) held the GIL against the network threads, which must answer each C-STORE
at once, and against the GUI. Receiving 300 CT slices from ``storescu`` until indexed took
15-20% less time that way (``make bench``: ``cstore_receive``). A worker that dies
(killed, out of memory) loses nothing: its batch stays spooled and is imported again by a new
worker after ``RETRY_S``. ``Receiver(store, isolated=False)`` imports in this process's
thread instead (where no worker process can start).

Nothing is shown before its row is committed, and a row is committed only for a file durable
under its managed name (see :mod:`viewer.store.importer`), so nothing half-written is ever
indexed. A kill between the answer and the commit leaves the spool file; :meth:`Receiver.drain`
(and every new :class:`Receiver`, in the background) imports it, and importing twice is
harmless (the second time it is "already present").

What the store refuses after the sender was told success (a conflict with a stored instance of
the same SOP Instance UID, which only the import under the index's lock can tell) is not
deleted: it is moved to the store's ``quarantine/`` with a note saying why, and logged without
patient data. The quarantine is bounded (:attr:`viewer.store.Store.quarantine_limit`, 256 MiB
by default): the oldest files go first, counted, so a sender cannot fill the disc with it.

The answer is a status, or a ``(status, error comment)`` pair for a failure (the SCP puts the
comment in the C-STORE response's Error Comment, an LO of at most 64 characters, PS3.7 C.4.2.1).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from viewer.imaging import pool as shared_pool
from viewer.store.importer import CRASH_ENV, ImportReport, import_paths, refusal, spool_dir
from viewer.store.store import Store, StoreError, fsync_dir, is_disc_full

log = logging.getLogger(__name__)

#: C-STORE statuses (PS3.4 B.2.3); the same values as viewer.net.scp, which the store must not
#: import (the network layer knows nothing of the store, and the reverse).
STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_DOES_NOT_MATCH = 0xA900
STATUS_CANNOT_UNDERSTAND = 0xC000

#: An answer to a C-STORE: a status, or a failure status with its error comment.
Answer = int | tuple[int, str]

#: Most characters of an Error Comment (0000,0902), an LO (PS3.5 section 6.2, PS3.7 C.4.2.1).
COMMENT_MAX = 64


def status_of(answer: Answer) -> int:
    """The status of an answer of :meth:`Receiver.__call__` (with or without a comment)."""
    return answer[0] if isinstance(answer, tuple) else answer


def _comment(text: str) -> str:
    """An Error Comment: one line of default-repertoire text, at most 64 characters."""
    flat = "".join(c if " " <= c <= "~" else "?" for c in text).replace("\\", "/")
    if len(flat) > COMMENT_MAX:  # the words before an explanation in brackets, or cut
        head = flat.split(" (", 1)[0]
        flat = head if len(head) <= COMMENT_MAX else flat[: COMMENT_MAX - 3] + "..."
    return flat


#: Most files per import: one commit each; a batch also ends with whatever is queued. Small
#: enough that the last batch after a sender finished is short (the import runs beside the
#: receiving, in a worker), and that a study arriving shows up in steps.
BATCH_FILES = 32
#: The importer waits until the senders pause this long before importing a batch that is
#: not full (fewer commits while a sender is busy), but no longer than MAX_WAIT_S in all, so
#: that a live refresh comes within a blink.
LINGER_S = 0.02
MAX_WAIT_S = 1.0
#: How long to wait before importing again after the index failed (locked, disc full).
RETRY_S = 2.0

OnCommitted = Callable[[list[str]], None]


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Receiver:
    """The storage SCP's ``on_instance`` (``viewer.net.scp.OnInstance``) for one store.

    ``on_committed(study_uids)`` is called from the importer thread after each batch that added
    instances, with the Study Instance UIDs that grew (the GUI queues it to its thread). Files
    left in ``incoming/`` by an earlier run are imported in the background from the start.
    Call :meth:`close` when done: it imports what is queued (what it has no time for stays
    spooled for the next start).
    """

    def __init__(
        self,
        store: Store,
        *,
        on_committed: OnCommitted | None = None,
        isolated: bool = True,
        quarantine_limit: int | None = None,
    ) -> None:
        store.require_writable()
        if quarantine_limit is not None:
            store.quarantine_limit = quarantine_limit
        self.store = store
        self.isolated = isolated
        self.spool = spool_dir(store)
        self.spool.mkdir(parents=True, exist_ok=True)
        self.on_committed = on_committed
        self._cond = threading.Condition()
        self._queue: list[Path] = []
        self._known: set[Path] = set()  # queued or being imported
        self._callers: dict[Path, str] = {}
        self._busy = False
        self._closing = False
        self._abort = False
        self._retry_at = 0.0
        #: Batches whose worker process died (they were put back and retried).
        self.worker_failures = 0
        self._queue_leftovers()
        self._thread = threading.Thread(target=self._run, name="lightbox-receiver", daemon=True)
        self._thread.start()

    # --------------------------------------------------------------- the network side
    def __call__(self, path: Path, calling_ae: str = "") -> Answer:
        """Check ``path`` (a PS3.10 file just written by the SCP), make it durable in the
        spool, queue it, and answer the C-STORE: success; 0xC000 or 0xA900 with a comment for
        a data set the store would refuse (the file is deleted, see the module docstring); out
        of resources (0xA700) with a comment when it cannot be made durable (disc full) or the
        receiver is closed. Safe from many threads."""
        caller = calling_ae or "a caller"
        if self._closing:
            log.warning("refused an instance from %s: the receiver is closing", caller)
            return STATUS_OUT_OF_RESOURCES, "the receiver is shutting down"
        path = Path(path)
        refused = refusal(path)
        if refused is not None:
            path.unlink(missing_ok=True)
            status = STATUS_DOES_NOT_MATCH if refused.understood else STATUS_CANNOT_UNDERSTAND
            log.warning(
                "refused an instance from %s (status 0x%04X): %s", caller, status, refused.reason
            )
            return status, _comment(refused.reason)
        try:
            target = self._spool(path)
        except OSError as exc:
            log.warning(
                "cannot keep an instance received from %s in %s: %s",
                caller,
                self.spool,
                exc.strerror or exc,
            )
            path.unlink(missing_ok=True)
            if is_disc_full(exc):
                return STATUS_OUT_OF_RESOURCES, "the receiver's disc is full"
            return STATUS_OUT_OF_RESOURCES, _comment(f"cannot store it: {exc.strerror or exc}")
        with self._cond:
            self._callers[target] = calling_ae
            self._enqueue([target])
        return STATUS_SUCCESS

    @property
    def scp_folder(self) -> Path:
        """Where the storage SCP writes the files it hands over (``viewer.net.scp``): the
        spool itself, under hidden ``.rx-`` names, so that taking a file over is a rename."""
        return self.spool

    #: Ask the SCP to ``fsync`` each file as it writes it (the sync below is then cheap).
    scp_sync = True

    def _spool(self, path: Path) -> Path:
        """fsync the file, move it into ``incoming/`` under a name of ours, fsync the folder
        (the rename must be durable too); another file system gets a synced copy instead."""
        target = self.spool / f"{time.time_ns():020d}-{secrets.token_hex(6)}.dcm"
        try:
            _fsync_file(path)  # nothing to write when the SCP synced it (scp_sync)
            os.replace(path, target)
        except OSError:
            if not path.is_file():
                raise
            tmp = self.store.tmp_dir / f"{os.getpid()}-{secrets.token_hex(8)}.part"
            try:
                shutil.copyfile(path, tmp)
                _fsync_file(tmp)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
        fsync_dir(self.spool)
        return target

    # --------------------------------------------------------------- queue and control
    def _enqueue(self, paths: Iterable[Path]) -> int:
        """Queue paths not queued yet (caller holds the condition)."""
        added = 0
        for path in paths:
            if path not in self._known:
                self._known.add(path)
                self._queue.append(path)
                added += 1
        if added:
            self._cond.notify_all()
        return added

    def _leftovers(self) -> list[Path]:
        try:
            return sorted(
                p
                for p in self.spool.iterdir()
                if p.suffix == ".dcm" and not p.name.startswith(".") and p.is_file()
            )
        except OSError:
            return []

    def _queue_leftovers(self) -> int:
        leftovers = self._leftovers()
        with self._cond:
            added = self._enqueue(leftovers)
        if added:
            log.info("%d received instance(s) left in %s: importing them", added, self.spool)
        return added

    def pending(self) -> int:
        """Instances received (durable) and not imported yet."""
        with self._cond:
            return len(self._known)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until everything queued is imported (or found unimportable); False on
        timeout (while the index fails, the files stay spooled and are retried every
        ``RETRY_S``) or when the receiver was closed with files left."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._known and not self._abort and self._thread.is_alive():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left if left is not None else 1.0)
            return not self._known

    def drain(self, timeout: float | None = None) -> bool:
        """Import every file in ``incoming/`` (left by a killed process, or received by
        another Lightbox process on this store) and wait for it; see :meth:`wait_idle`."""
        self._queue_leftovers()
        with self._cond:
            self._retry_at = 0.0
            self._cond.notify_all()
        return self.wait_idle(timeout)

    def close(self, timeout: float | None = 30.0) -> bool:
        """Refuse new instances, import what is queued (up to ``timeout``), stop the thread.
        Returns True when nothing is left spooled by this receiver. Safe to call twice."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():
            with self._cond:
                self._abort = True  # stop after the batch in hand; the rest stays spooled
                self._cond.notify_all()
            self._thread.join()
        with self._cond:
            left = len(self._known)
        if left:
            log.warning(
                "%d received instance(s) not imported yet stay in %s for the next start",
                left,
                self.spool,
            )
        return left == 0

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --------------------------------------------------------------- the importer thread
    def _next_batch(self) -> list[Path] | None:
        """The next batch, or None when the thread should end."""
        with self._cond:
            while True:
                if self._abort:
                    return None
                now = time.monotonic()
                if self._queue and (now >= self._retry_at or self._closing):
                    break
                if self._closing and not self._queue:
                    return None
                wait = self._retry_at - now if self._queue else None
                self._cond.wait(wait)
            # A sender is probably still sending: gather what it sends for one commit, until
            # it pauses for LINGER_S, the batch is full, or the oldest has waited MAX_WAIT_S.
            until = time.monotonic() + MAX_WAIT_S
            while not self._closing and not self._abort and len(self._queue) < BATCH_FILES:
                seen = len(self._queue)
                left = min(LINGER_S, until - time.monotonic())
                if left <= 0:
                    break
                self._cond.wait(left)
                if len(self._queue) == seen:
                    break
            batch, self._queue = self._queue[:BATCH_FILES], self._queue[BATCH_FILES:]
            self._busy = True
            return batch

    def _run(self) -> None:
        try:
            while (batch := self._next_batch()) is not None:
                try:
                    self._import(batch)
                finally:
                    with self._cond:
                        self._busy = False
                        self._cond.notify_all()
        finally:
            self.store.release_connection()
            with self._cond:
                self._cond.notify_all()

    def _import_batch(self, batch: list[Path]) -> ImportReport:
        if not self.isolated:
            return import_paths(self.store, batch, spooled=True)
        try:
            pool = shared_pool.get_pool()
        except (OSError, RuntimeError, ValueError) as exc:
            log.warning("no worker process (%s): received instances are imported here", exc)
            self.isolated = False
            return import_paths(self.store, batch, spooled=True)
        crash = os.environ.get(CRASH_ENV, "")  # the kill tests' hook travels with the batch
        future = pool.submit(_import_in_worker, str(self.store.root), list(map(str, batch)), crash)
        try:
            return future.result()
        except BrokenProcessPool:
            shared_pool.discard_pool(pool)
            raise

    def _put_back(self, batch: list[Path]) -> None:
        """Keep a batch that could not be imported queued (it stays spooled), for a retry after
        ``RETRY_S``; when closing, leave it spooled for the next start."""
        with self._cond:
            self._queue[:0] = batch
            self._retry_at = time.monotonic() + RETRY_S
            self._abort = self._abort or self._closing

    def _import(self, batch: list[Path]) -> None:
        try:
            report = self._import_batch(batch)
        except BrokenProcessPool:
            self.worker_failures += 1
            log.warning(
                "the worker importing %d received instance(s) died; they stay in %s and are "
                "retried",
                len(batch),
                self.spool,
            )
            self._put_back(batch)
            return
        except StoreError as exc:
            log.warning("%s; %d received instance(s) stay spooled and are retried", exc, len(batch))
            self._put_back(batch)
            return
        except Exception:  # never let the thread die with durable files queued
            log.exception("importing received instances failed; they stay in %s", self.spool)
            self._put_back(batch)
            return
        self._settle(batch, report)
        if report.studies and self.on_committed is not None:
            try:
                self.on_committed(list(report.studies))
            except Exception:
                log.exception("the on_committed callback failed")

    def _settle(self, batch: list[Path], report: ImportReport) -> None:
        """Delete what is in the store now; quarantine what the store refused."""
        for source in (*report.imported, *report.already_present):
            Path(source).unlink(missing_ok=True)
        refused = [(p.path, "conflict", p.problem) for p in report.conflicts]
        refused += [(p.path, "refused", p.problem) for p in report.rejected]
        for source, kind, reason in refused:
            self._quarantine(Path(source), kind, reason)
        with self._cond:
            for path in batch:
                self._known.discard(path)
                self._callers.pop(path, None)

    def _quarantine(self, path: Path, kind: str, reason: str) -> None:
        if not path.exists():  # imported meanwhile by another process on this store
            return
        caller = self._callers.get(path, "") or "a caller"
        folder = self.store.quarantine_dir
        try:
            target = self.store.quarantine(
                path, f"received-{path.name}", f"received from {caller}; {kind}: {reason}\n"
            )
        except (OSError, StoreError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            log.warning("cannot move %s to %s: %s", path, folder, reason)
            return
        if kind == "conflict":  # the message names the SOP Instance UID: not in the log
            reason = "same SOP Instance UID as a stored instance, different content"
        log.warning(
            "an instance received from %s was not stored (%s); kept as %s", caller, reason, target
        )


# ------------------------------------------------------------------- in the worker process
_WORKER_STORE: Store | None = None

#: Niceness added to the threads importing a received batch in the worker (Linux, where niceness is
#: per thread; threads inherit it from the one that starts them). The sender waiting for our
#: answer and the GUI come first: what is imported here is already durable in the spool.
#: Measured with ``cstore_receive``: about 100 ms less for 300 slices on 2 cores.
IMPORT_NICENESS = 10


def _import_in_worker(root: str, paths: list[str], crash: str) -> ImportReport:
    """One batch, in a pool worker (see the module docstring), in a thread of lower priority;
    the store stays open there for the next batch."""
    outcome: list[ImportReport | BaseException] = []

    def run() -> None:
        if sys.platform.startswith("linux"):
            with contextlib.suppress(OSError):
                me = threading.get_native_id()
                nice = os.getpriority(os.PRIO_PROCESS, me)
                os.setpriority(os.PRIO_PROCESS, me, min(19, nice + IMPORT_NICENESS))
        try:
            outcome.append(_import_here(root, paths, crash))
        except BaseException as exc:  # handed to the pool, which sends it to the receiver
            outcome.append(exc)
        finally:
            if _WORKER_STORE is not None:
                _WORKER_STORE.release_connection()

    thread = threading.Thread(target=run, name="lightbox-receive-import")
    thread.start()
    thread.join()
    [result] = outcome
    if isinstance(result, BaseException):
        raise result
    return result


def _import_here(root: str, paths: list[str], crash: str) -> ImportReport:
    global _WORKER_STORE
    if not Path(root).is_dir():  # closed and removed meanwhile: never create it again here
        raise StoreError(f"{root}: the store is gone")
    if _WORKER_STORE is None or _WORKER_STORE.root != Path(root):
        if _WORKER_STORE is not None:
            _WORKER_STORE.close()
            _WORKER_STORE = None
        _WORKER_STORE = Store.open(root)
    if crash:
        os.environ[CRASH_ENV] = crash
    else:
        os.environ.pop(CRASH_ENV, None)
    return import_paths(_WORKER_STORE, [Path(p) for p in paths], spooled=True)
