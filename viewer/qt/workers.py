"""Long jobs off the GUI thread: opening files, folders and DICOMDIRs.

The core functions block and take a cancel token and a progress callback (STYLE.md, threads
rule 1); here they run in a :class:`QThread` and reach the widgets only through signals, which
Qt queues to the GUI thread (rule 3).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal, Slot

from viewer import model
from viewer.imaging.stack import Stack, build_stacks
from viewer.media.scan import scan

log = logging.getLogger(__name__)


@dataclass
class OpenResult:
    """What opening some paths gave: the stacks to show and the problems met."""

    stacks: list[Stack] = field(default_factory=list)
    problems: list[model.Problem] = field(default_factory=list)
    cancelled: bool = False


def open_paths(paths: list[Path], cancel: threading.Event, progress: object = None) -> OpenResult:
    """Scan every path (file, folder or DICOMDIR) and group what they hold into stacks."""
    instances: list[model.Instance] = []
    series: list[model.Series] = []
    problems: list[model.Problem] = []
    for path in paths:
        if cancel.is_set():
            break
        if not path.exists():
            problems.append(model.Problem(str(path), "no such file or folder"))
            continue
        try:
            result = scan(path, cancel=cancel, progress=progress)  # type: ignore[arg-type]
        except Exception as exc:  # a scan that fails is this path's problem, not a crash
            log.debug("scan failed", exc_info=True)
            problems.append(model.Problem(str(path), f"cannot be read: {exc}"))
            continue
        instances.extend(result.instances)
        series.extend(result.series())
        problems.extend(result.problems)
    if cancel.is_set():
        return OpenResult([], problems, cancelled=True)
    if not instances and not problems:
        problems.extend(model.Problem(str(p), "holds no DICOM images") for p in paths)
    stacks = [s for s in build_stacks(instances, series=series) if s.frames]
    return OpenResult(stacks, problems)


class ThreadWorker(QObject):
    """A job in a :class:`QThread` of its own: ``start``, ``cancel`` (sets the cancel token the
    core function polls), ``wait`` (cancel and join), ``is_running``. Subclasses implement the
    ``_run`` slot, emit their result and call :meth:`_done` last."""

    progress_changed = Signal(int, int)

    def __init__(self, name: str) -> None:
        super().__init__()
        self._cancel = threading.Event()
        self._thread = QThread()
        self._thread.setObjectName(name)
        self.moveToThread(self._thread)
        self._thread.started.connect(self._run)

    def start(self) -> None:
        self._thread.start()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancel_event(self) -> threading.Event:
        """The token the job polls (set by :meth:`cancel`)."""
        return self._cancel

    def wait(self, cancel: bool = True) -> None:
        """Join the thread (closing the window, or a new job replacing this one); cancelling
        first, unless told not to, bounds the wait by how often the job polls its token."""
        if cancel:
            self._cancel.set()
        self._thread.quit()
        self._thread.wait()

    def is_running(self) -> bool:
        return self._thread.isRunning()

    def _on_progress(self, done: int, total: int) -> None:
        self.progress_changed.emit(done, total)

    def _run(self) -> None:
        raise NotImplementedError

    def _hand_back(self) -> None:
        """Move back to the GUI thread (so that it may delete this object) before the result
        signal goes out."""
        app = QCoreApplication.instance()
        if app is not None:
            self.moveToThread(app.thread())

    def _done(self) -> None:
        self._thread.quit()


class OpenWorker(ThreadWorker):
    """Runs :func:`open_paths` in its own thread; ``finished`` carries an :class:`OpenResult`."""

    finished = Signal(object)

    def __init__(self, paths: list[Path]) -> None:
        super().__init__("OpenWorker")
        self._paths = paths

    @Slot()
    def _run(self) -> None:
        try:
            result = open_paths(self._paths, self._cancel, self._on_progress)
        except Exception as exc:  # the last guard: say what failed, never a silent thread death
            log.debug("open failed", exc_info=True)
            names = ", ".join(str(p) for p in self._paths)
            result = OpenResult([], [model.Problem(names, f"cannot be opened: {exc}")])
        self._hand_back()
        self.finished.emit(result)
        self._done()
