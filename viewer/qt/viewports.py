"""The viewports of the reading window: a grid of image views, one of them active.

A :class:`Viewport` is one cell: an :class:`~viewer.qt.image_view.ImageView`, the series it
shows and that series' loading (its :class:`~viewer.qt.source.FrameSource`, which frames are
decoded and which failed). The :class:`ViewportGrid` lays them out (1×1, 1×2, 2×1, 2×2, 3×3 or
any rows × columns), keeps one active (a coloured frame says which; keys and menus act on it),
maximises one on a double click and back, and takes a series dragged from the series strip
into any cell.

Nothing here reads a file: a source loads its frames in worker processes, and a source let go
of is closed on a worker (a frame being decoded is not waited for on the GUI thread).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, QPointF, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QMouseEvent
from PySide6.QtWidgets import QFrame, QGridLayout, QVBoxLayout, QWidget

from viewer import model
from viewer.imaging.stack import Stack
from viewer.qt.image_view import ImageView
from viewer.qt.jobs import Job, JobSet
from viewer.qt.source import FrameSource, LoaderSource, stack_label
from viewer.qt.strip import BROWSER_SERIES_MIME, series_row
from viewer.text import plural

#: The layouts offered in the View menu (rows, columns).
LAYOUTS = ((1, 1), (1, 2), (2, 1), (2, 2), (3, 3))
MAX_SIDE = 4  # a custom layout has at most 4 × 4 viewports

_ACTIVE_STYLE = "#viewport { border: 2px solid #f39c12; background: black; }"
_IDLE_STYLE = "#viewport { border: 2px solid #202020; background: black; }"


class Viewport(QFrame):
    """One cell of the grid: a view, its series and that series' loading.

    Signals: ``activated(Viewport)`` on a press in it; ``maximise_toggled(Viewport)`` on a
    double click; ``problem_found(Problem)`` for a frame that cannot be shown;
    ``progress(str, int)`` with a status message and how long to show it (ms, 0: until the
    next); ``series_dropped(Viewport, int)`` when a strip row is dropped on it;
    ``frame_ready(int)`` when a frame of its series (and so its header) is loaded.
    """

    activated = Signal(object)
    maximise_toggled = Signal(object)
    problem_found = Signal(object)
    progress = Signal(str, int)
    series_dropped = Signal(object, int)
    browser_series_dropped = Signal(object, int)  # a row of the browser's strip
    frame_ready = Signal(int)
    stack_shown = Signal(object)  # the Stack now shown (measurements are loaded for it)
    image_clicked = Signal(float, float)  # (row, column) of a left click without a drag

    def __init__(self, jobs: JobSet, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("viewport")
        self.setAcceptDrops(True)
        self._jobs = jobs
        self.view = ImageView(self)
        self.view.installEventFilter(self)
        self.view.frame_failed.connect(self._on_view_frame_failed)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.view)
        self.stack: Stack | None = None
        self.source: FrameSource | None = None
        self.shown_since: float | None = None
        self._decoded: set[int] = set()
        self._failed: set[int] = set()
        self._pressed_at: QPointF | None = None
        self.set_active(False)

    # ----------------------------------------------------------------- state
    def set_active(self, active: bool) -> None:
        self._active = active
        self.setStyleSheet(_ACTIVE_STYLE if active else _IDLE_STYLE)

    @property
    def active(self) -> bool:
        return self._active

    @property
    def decoded_count(self) -> int:
        """Frames of the shown series decoded so far."""
        return len(self._decoded)

    # ----------------------------------------------------------------- showing
    def show_stack(self, stack: Stack | None) -> model.Problem | None:
        """Show ``stack`` (None: nothing): its first image as soon as it is decoded, the rest
        as they come. Returns the problem when the series cannot be loaded at all."""
        source: FrameSource | None = None
        problem = None
        if stack is not None:
            try:
                source = LoaderSource(stack)
            except Exception as exc:  # the view says so; the other viewports go on
                problem = model.Problem(stack_label(stack), f"cannot be loaded: {exc}")
        self.stack = stack if source is not None else None
        self.set_source(source)
        if self.stack is not None:
            self.stack_shown.emit(self.stack)
        return problem

    def set_source(self, source: FrameSource | None) -> None:
        """Show ``source`` and let go of the one shown before (closed on a worker)."""
        old = self.source
        self.source = source
        self._decoded = set()
        self._failed = set()
        if source is not None:
            source.problem_found.connect(
                self._on_source_problem_found, Qt.ConnectionType.QueuedConnection
            )
            source.frame_ready.connect(
                self._on_source_frame_ready, Qt.ConnectionType.QueuedConnection
            )
            # The loader starts with the source: frames it delivered before these connections
            # were made sent their signal to nobody ("Decoding… 187/188" for ever).
            self._decoded = {p for p in range(len(source)) if source.has_frame(p)}
            self._failed = {p for p in range(len(source)) if source.problem(p) is not None}
        else:
            self.stack = None
        self.shown_since = time.perf_counter() if source is not None else None
        self.view.set_source(source)  # the view lets go of the old frames first
        if old is not None:
            old.problem_found.disconnect(self._on_source_problem_found)
            old.frame_ready.disconnect(self._on_source_frame_ready)
            self._jobs.start(Job("SourceClose", lambda _cancel, _progress: old.close()))

    def _on_source_frame_ready(self, position: int) -> None:
        source = self.source
        if self.sender() is not source or source is None:
            return
        self._decoded.add(position)
        self._report_progress(source)
        self.frame_ready.emit(position)

    def _on_source_problem_found(self, position: int, message: str) -> None:
        source = self.source
        if self.sender() is not source or source is None:
            return
        self._failed.add(position)
        self._report_progress(source)
        self.problem_found.emit(model.Problem(source.path(position), message))

    def _report_progress(self, source: FrameSource) -> None:
        """``Decoding… n/N`` until every frame is decoded or has failed, then the outcome."""
        total = len(source)
        failed = self._failed - self._decoded
        if len(self._decoded) + len(failed) < total:
            self.progress.emit(f"Decoding… {len(self._decoded)}/{total}", 0)
        elif failed:
            self.progress.emit(
                f"{len(self._decoded)} of {plural(total, 'image')} decoded; "
                f"{len(failed)} cannot be shown (see Problems)",
                10000,
            )
        else:
            self.progress.emit(f"{plural(total, 'image')} decoded", 3000)

    def _on_view_frame_failed(self, position: int, message: str) -> None:
        source = self.view.source
        path = source.path(position) if source is not None else f"image {position + 1}"
        self.problem_found.emit(model.Problem(path, message))

    # ----------------------------------------------------------------- input
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.view:
            kind = event.type()
            if kind == QEvent.Type.MouseButtonPress:
                self.activated.emit(self)
                plain = (
                    isinstance(event, QMouseEvent)
                    and event.button() == Qt.MouseButton.LeftButton
                    and event.modifiers() == Qt.KeyboardModifier.NoModifier
                )
                self._pressed_at = event.position() if plain else None  # type: ignore[attr-defined]
            elif kind == QEvent.Type.MouseButtonRelease and self._pressed_at is not None:
                if isinstance(event, QMouseEvent):
                    self._on_release(event.position())
                self._pressed_at = None
            elif kind == QEvent.Type.MouseButtonDblClick:
                self.activated.emit(self)
                self.maximise_toggled.emit(self)
                return True
            elif kind == QEvent.Type.FocusIn:
                self.activated.emit(self)
        return False

    def _on_release(self, at: QPointF) -> None:
        """A click (not a drag) at ``at``: where on the image, for crosshair navigation."""
        start = self._pressed_at
        if start is None or (at - start).manhattanLength() > 3:
            return
        view = self.view
        if view.source is None or not view.is_displayable():
            return
        x, y = view.viewport.screen_to_image((at.x(), at.y()))
        self.image_clicked.emit(y - 0.5, x - 0.5)

    @staticmethod
    def _carries_series(event: QDropEvent) -> bool:
        mime = event.mimeData()
        return series_row(mime) is not None or series_row(mime, BROWSER_SERIES_MIME) is not None

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._carries_series(event):
            event.acceptProposedAction()
        else:
            event.ignore()  # files go to the window (it opens them)

    def dragMoveEvent(self, event: QDragEnterEvent) -> None:  # type: ignore[override]
        if self._carries_series(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        mime = event.mimeData()
        row, browser_row = series_row(mime), series_row(mime, BROWSER_SERIES_MIME)
        if row is None and browser_row is None:
            event.ignore()
            return
        event.acceptProposedAction()
        self.activated.emit(self)
        if row is not None:
            self.series_dropped.emit(self, row)
        elif browser_row is not None:
            self.browser_series_dropped.emit(self, browser_row)


class ViewportGrid(QWidget):
    """Viewports in rows × columns, one active, one maximised at a time or none.

    ``viewport_added(Viewport)`` for each viewport made (the window connects its signals);
    ``active_changed(Viewport)`` when another one becomes active.
    """

    viewport_added = Signal(object)
    active_changed = Signal(object)

    def __init__(self, jobs: JobSet, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("viewport_grid")
        self._jobs = jobs
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(0)
        self._viewports: list[Viewport] = []
        self._shape = (0, 0)
        self._active: Viewport | None = None
        self._maximised: Viewport | None = None
        self.set_shape(1, 1)

    @property
    def viewports(self) -> list[Viewport]:
        return list(self._viewports)

    @property
    def shape(self) -> tuple[int, int]:
        return self._shape

    @property
    def active(self) -> Viewport:
        assert self._active is not None
        return self._active

    @property
    def maximised(self) -> Viewport | None:
        return self._maximised

    def set_shape(self, rows: int, columns: int) -> None:
        """Lay the viewports out in ``rows`` × ``columns``. Viewports that stay keep their
        series; those that go let their series go; the active one stays active if it stays."""
        rows = max(1, min(rows, MAX_SIDE))
        columns = max(1, min(columns, MAX_SIDE))
        wanted = rows * columns
        self._restore()
        while len(self._viewports) > wanted:
            gone = self._viewports.pop()
            gone.set_source(None)
            self._grid.removeWidget(gone)
            gone.deleteLater()
            if gone is self._active:
                self._active = None
        while len(self._viewports) < wanted:
            viewport = Viewport(self._jobs, self)
            viewport.activated.connect(self.set_active)
            viewport.maximise_toggled.connect(self.toggle_maximised)
            self._viewports.append(viewport)
            self.viewport_added.emit(viewport)
        self._shape = (rows, columns)
        several = wanted > 1
        for viewport in self._viewports:
            viewport.view.empty_text = (
                "Drag a series here from the strip (or click here, then a series)"
                if several
                else "Open a file or folder (Ctrl+O), or drop it here"
            )
            viewport.view.update()
        self._place()
        self.set_active(self._active or self._viewports[0])

    def set_active(self, viewport: Viewport) -> None:
        if viewport not in self._viewports:
            return
        changed = viewport is not self._active
        for each in self._viewports:
            each.set_active(each is viewport and len(self._viewports) > 1)
        self._active = viewport
        if changed:
            self.active_changed.emit(viewport)

    def toggle_maximised(self, viewport: Viewport) -> None:
        """A double click shows one viewport alone; another double click brings the rest back."""
        if self._maximised is not None:
            self._restore()
            return
        if len(self._viewports) < 2:
            return
        self._maximised = viewport
        self._place()

    def _restore(self) -> None:
        if self._maximised is not None:
            self._maximised = None
            self._place()

    def _place(self) -> None:
        """Put the viewports in their cells, or the maximised one alone in the first."""
        rows, columns = self._shape
        for viewport in self._viewports:
            self._grid.removeWidget(viewport)
        alone = self._maximised
        for index, viewport in enumerate(self._viewports):
            if alone is None:
                self._grid.addWidget(viewport, index // columns, index % columns)
                viewport.show()
            elif viewport is alone:
                self._grid.addWidget(viewport, 0, 0)
                viewport.show()
            else:
                viewport.hide()
        for r in range(MAX_SIDE):
            self._grid.setRowStretch(r, 1 if r < (1 if alone else rows) else 0)
            self._grid.setColumnStretch(r, 1 if r < (1 if alone else columns) else 0)

    def fill(
        self, stacks: list[Stack], first: int, on_problem: Callable[[model.Problem], None]
    ) -> None:
        """Show ``stacks[first]`` in the first viewport (made active) and the following ones in
        the next viewports; viewports left over are emptied (a new study: nothing of the one
        before stays beside it)."""
        for offset, viewport in enumerate(self._viewports):
            index = first + offset
            stack = stacks[index] if 0 <= index < len(stacks) else None
            problem = viewport.show_stack(stack)
            if problem is not None:
                on_problem(problem)
        if self._viewports:
            self.set_active(self._viewports[0])

    def clear(self) -> None:
        for viewport in self._viewports:
            viewport.set_source(None)
