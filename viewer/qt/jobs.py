"""The one way the GUI runs long work: a :class:`Job` on a thread of its own, a :class:`JobSet`
per owner (STYLE.md, threads rules 1-3).

The work is a blocking core function, ``work(cancel, progress)``: it polls the
:class:`threading.Event` ``cancel`` and calls ``progress(done, total)`` (counts:
``progress_changed``) or ``progress(anything)`` (a network operation's report: ``reported``).
Its result comes back through ``finished``, or the exception it raised through ``failed`` (words
for the user come from the owner; a job never dies silently); ``done`` is the last signal. Every
signal is emitted from the job's thread and queued by Qt to receivers living in the GUI thread.

The thread is a daemon :class:`threading.Thread`, not a ``QThread``: work stuck on a hung mount
or a dead peer is abandoned at exit (joined with a deadline), where Qt aborts the process when a
``QThread`` is destroyed while it runs.

A :class:`JobSet` keeps the jobs one window or dialog started: it forgets each when done, says
whether any still runs, cancels them all, and joins them on close; a :class:`JobDialog` is a
dialog that owns one and joins it however it is closed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QDialog, QWidget

log = logging.getLogger(__name__)

#: ``work(cancel, progress) -> result``
Work = Callable[[threading.Event, Callable[..., None]], Any]


class Job(QObject):
    """``work`` once, on a daemon thread named ``name``."""

    progress_changed = Signal(int, int)
    reported = Signal(object)
    finished = Signal(object)
    failed = Signal(object)
    done = Signal()

    def __init__(self, name: str, work: Work) -> None:
        super().__init__()
        self.name = name
        self._work = work
        self.cancel_event = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def cancel(self) -> None:
        self.cancel_event.set()

    def is_running(self) -> bool:
        return self._thread.is_alive()

    def wait(self, timeout: float | None = None, *, cancel: bool = True) -> bool:
        """Join the thread (cancelling first unless told not to); True when it has ended."""
        if cancel:
            self.cancel_event.set()
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _progress(self, *args: Any) -> None:
        if len(args) == 2 and all(isinstance(a, int) for a in args):
            self.progress_changed.emit(args[0], args[1])
        else:
            self.reported.emit(args[0] if len(args) == 1 else args)

    def _run(self) -> None:
        try:
            self.result = self._work(self.cancel_event, self._progress)
        except Exception as exc:  # the last guard: a failure is a signal, never a dead thread
            log.debug("job %s failed", self.name, exc_info=True)
            self.error = exc
        if self.error is None:
            self.finished.emit(self.result)
        else:
            self.failed.emit(self.error)
        self.done.emit()


class JobSet(QObject):
    """The jobs one owner started."""

    #: A job of the set has sent its last signal and been forgotten.
    job_ended = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._jobs: list[Job] = []

    def start(self, job: Job) -> Job:
        self._jobs.append(job)
        # a bound slot of this GUI-thread object: Qt queues it to the GUI thread
        job.done.connect(self._on_done)
        job.start()
        return job

    @Slot()
    def _on_done(self) -> None:
        job = self.sender()
        if isinstance(job, Job):
            self.forget(job)

    def forget(self, job: Job) -> None:
        if job in self._jobs:
            self._jobs.remove(job)
            job.wait(cancel=False, timeout=1.0)
            self.job_ended.emit(job)

    def jobs(self) -> list[Job]:
        return list(self._jobs)

    def running(self) -> list[Job]:
        return [j for j in self._jobs if j.is_running()]

    def busy(self) -> bool:
        return any(j.is_running() for j in self._jobs)

    def cancel_all(self) -> None:
        for job in self._jobs:
            job.cancel()

    def wait_all(self, timeout: float = 10.0) -> list[Job]:
        """Cancel every job and join it, each within ``timeout`` seconds; the jobs still
        running after that (stuck on a hung mount or peer: daemon threads, abandoned at exit)."""
        self.cancel_all()
        stuck = [job for job in list(self._jobs) if not job.wait(timeout)]
        for job in stuck:
            log.warning("%s did not stop within %.0f s: left behind", job.name, timeout)
        self._jobs.clear()
        return stuck


class JobDialog(QDialog):
    """A dialog whose reading runs in :attr:`jobs`: closed by its button, Escape or the window
    manager, it cancels and joins them with a deadline (a large file on a slow disc)."""

    #: How long closing waits for the dialog's jobs.
    JOIN_SECONDS = 5.0

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.jobs = JobSet(self)

    def shutdown(self) -> None:
        """Stop the dialog's work and join its jobs, with a deadline."""
        self.jobs.wait_all(timeout=self.JOIN_SECONDS)

    def done(self, result: int) -> None:
        self.shutdown()
        super().done(result)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)
