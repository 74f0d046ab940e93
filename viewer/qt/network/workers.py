"""One network operation = one worker = one association (STYLE.md, threads rules 2 and 3).

A :class:`NetWorker` runs one blocking core function (:func:`viewer.net.echo.echo`,
:func:`viewer.net.find.find`, a retrieve, a send) in its own :class:`QThread`. The function gets
the worker's cancel token and a ``report`` callable for progress; its result, or the error it
raised, comes back through ``finished`` / ``failed``, which Qt queues to the GUI thread. The GUI
thread never holds an association: it only starts workers, cancels them and reads signals.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from viewer.net.diagnose import NetError
from viewer.net.nodes import ConfigError
from viewer.qt.workers import ThreadWorker
from viewer.store import StoreError

log = logging.getLogger(__name__)

#: ``job(cancel, report) -> result``; ``report(anything)`` emits ``progress_changed``.
Job = Callable[[threading.Event, Callable[[object], None]], object]


def describe_error(exc: BaseException) -> str:
    """Words for a failed job: our own errors already say what and where."""
    if isinstance(exc, NetError | ConfigError | StoreError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    return f"{type(exc).__name__}: {exc}"


class NetWorker(ThreadWorker):
    """Runs ``job`` once in its own thread (:class:`viewer.qt.workers.ThreadWorker`: ``start``,
    ``cancel``, ``wait``, ``is_running``, ``cancel_event``).

    Signals (queued to the GUI thread): ``progress_changed(object)``, then exactly one of
    ``finished(object)`` (the job's result) or ``failed(str)`` (why, in words); ``done`` last.
    Cancelling asks the job to stop (C-CANCEL, then abort after its grace period), so that a
    dead peer never keeps the application open.
    """

    progress_changed = Signal(object)
    finished = Signal(object)
    failed = Signal(str)
    done = Signal()

    def __init__(self, job: Job, name: str = "NetWorker") -> None:
        super().__init__(name)
        self._job = job
        self.result: Any = None
        self.error: str | None = None

    @Slot()
    def _run(self) -> None:
        try:
            self.result = self._job(self._cancel, self.progress_changed.emit)
        except Exception as exc:  # the last guard: a failure is words, never a dead thread
            log.debug("network job failed", exc_info=True)
            self.error = describe_error(exc)
        self._hand_back()
        if self.error is None:
            self.finished.emit(self.result)
        else:
            self.failed.emit(self.error)
        self.done.emit()
        self._done()


class WorkerSet(QObject):
    """The workers a dialog started: started, forgotten when done, all joined on close."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._workers: list[NetWorker] = []

    def start(self, worker: NetWorker) -> NetWorker:
        self._workers.append(worker)
        # a bound slot of this GUI-thread object: Qt queues it (a lambda would run in the
        # worker's thread)
        worker.done.connect(self._on_worker_done)
        worker.start()
        return worker

    @Slot()
    def _on_worker_done(self) -> None:
        worker = self.sender()
        if not isinstance(worker, NetWorker):
            return
        worker.wait(cancel=False)
        if worker in self._workers:
            self._workers.remove(worker)
        worker.deleteLater()

    def running(self) -> list[NetWorker]:
        return [w for w in self._workers if w.is_running()]

    def cancel_all(self) -> None:
        for worker in self._workers:
            worker.cancel()

    def wait_all(self) -> None:
        """Cancel every worker and join its thread."""
        for worker in list(self._workers):
            worker.wait()
        self._workers.clear()
