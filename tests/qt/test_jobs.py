"""The one job API of the GUI (viewer.qt.jobs): signals in order, in the GUI thread; a JobSet
that forgets finished jobs, cancels and joins, and gives up on a stuck one with a deadline."""

from __future__ import annotations

import threading
from typing import Any

from PySide6.QtCore import QObject, Slot

from viewer.qt.jobs import Job, JobSet


class Receiver(QObject):
    """Slots of a GUI-thread object, as windows and dialogs have them."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, Any, bool]] = []

    def _note(self, what: str, value: Any) -> None:
        self.events.append((what, value, threading.current_thread() is threading.main_thread()))

    @Slot(int, int)
    def on_progress(self, done: int, total: int) -> None:
        self._note("progress", (done, total))

    @Slot(object)
    def on_reported(self, value: object) -> None:
        self._note("reported", value)

    @Slot(object)
    def on_finished(self, result: object) -> None:
        self._note("finished", result)

    @Slot(object)
    def on_failed(self, error: object) -> None:
        self._note("failed", error)

    @Slot()
    def on_done(self) -> None:
        self._note("done", None)


def connect(job: Job, receiver: Receiver) -> None:
    job.progress_changed.connect(receiver.on_progress)
    job.reported.connect(receiver.on_reported)
    job.finished.connect(receiver.on_finished)
    job.failed.connect(receiver.on_failed)
    job.done.connect(receiver.on_done)


def test_signals_arrive_in_order_in_the_gui_thread(qtbot) -> None:  # type: ignore[no-untyped-def]
    receiver = Receiver()
    jobs = JobSet()

    def work(cancel: threading.Event, progress: Any) -> str:
        progress(1, 2)
        progress({"matches": 3})
        progress(2, 2)
        return "result"

    job = Job("Test", work)
    connect(job, receiver)
    with qtbot.waitSignal(jobs.job_ended, timeout=10000):
        jobs.start(job)
    assert [(what, value) for what, value, _ in receiver.events] == [
        ("progress", (1, 2)),
        ("reported", {"matches": 3}),
        ("progress", (2, 2)),
        ("finished", "result"),
        ("done", None),
    ]
    assert all(in_gui for _, _, in_gui in receiver.events)
    assert jobs.jobs() == [] and not jobs.busy() and not job.is_running()


def test_an_exception_is_a_failed_signal_not_a_dead_thread(qtbot) -> None:  # type: ignore[no-untyped-def]
    receiver = Receiver()
    jobs = JobSet()

    def work(cancel: threading.Event, progress: Any) -> None:
        raise OSError(28, "No space left on device")

    job = Job("Failing", work)
    connect(job, receiver)
    with qtbot.waitSignal(jobs.job_ended, timeout=10000):
        jobs.start(job)
    (failed, done) = receiver.events
    assert failed[0] == "failed" and isinstance(failed[1], OSError) and done[0] == "done"
    assert isinstance(job.error, OSError) and job.result is None


def test_wait_all_cancels_joins_and_gives_up_on_a_stuck_job() -> None:
    jobs = JobSet()
    release = threading.Event()
    polled = threading.Event()

    def polite(cancel: threading.Event, progress: Any) -> str:
        polled.set()
        cancel.wait(30)
        return "stopped"

    def stuck(cancel: threading.Event, progress: Any) -> None:
        release.wait(30)  # a hung mount: never looks at the cancel token

    good, bad = Job("Polite", polite), Job("Stuck", stuck)
    jobs.start(good)
    jobs.start(bad)
    assert polled.wait(10) and jobs.busy()
    left = jobs.wait_all(timeout=0.2)
    assert left == [bad] and good.result == "stopped" and good.cancel_event.is_set()
    assert jobs.jobs() == []
    release.set()
    assert bad.wait(timeout=10)
