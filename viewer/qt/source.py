"""Where the view gets its frames: a stack being decoded in the background, seen from the GUI.

:class:`FrameSource` is what :class:`viewer.qt.image_view.ImageView` reads. It never blocks: a
frame that is not decoded yet is ``None`` and the view says "loading"; ``frame_ready`` tells
the view when to look again. :class:`LoaderSource` wraps
:class:`viewer.imaging.loader.SeriesLoader`, whose callbacks run in the loader's own thread:
they only emit signals, which Qt queues to the GUI thread (STYLE.md, threads rule 3).
"""

from __future__ import annotations

import logging
import threading

import numpy as np
from pydicom.dataset import Dataset
from PySide6.QtCore import QObject, Signal

from viewer.imaging.stack import Stack
from viewer.media import disc_image
from viewer.text import plural

log = logging.getLogger(__name__)


class FrameSource(QObject):
    """A sequence of frames, each with its dataset and its frame number inside the file."""

    frame_ready = Signal(int)
    problem_found = Signal(int, str)

    def __len__(self) -> int:
        raise NotImplementedError

    def frame(self, position: int) -> np.ndarray | None:
        """The decoded stored values, or None while they are still being decoded."""
        raise NotImplementedError

    def dataset(self, position: int) -> Dataset | None:
        raise NotImplementedError

    def has_frame(self, position: int) -> bool:
        """Whether :meth:`frame` has the frame now (a source that computes frames on demand,
        a reformat, says so without computing them)."""
        return self.frame(position) is not None

    def frame_index(self, position: int) -> int:
        """The frame number inside its file, from 0 (for a multi-frame file's stack)."""
        return 0

    def problem(self, position: int) -> str | None:
        """Why this frame cannot be shown, once that is known."""
        return None

    def label(self) -> str:
        return ""

    def path(self, position: int) -> str:
        """The file that holds the frame, for messages."""
        return f"image {position + 1}"

    def close(self) -> None:
        """Stop background work; the source emits nothing afterwards."""


class LoaderSource(FrameSource):
    """A :class:`Stack` decoded by a :class:`SeriesLoader` (worker processes, shared memory)."""

    def __init__(self, stack: Stack, *, first: int = 0, workers: int = 2) -> None:
        super().__init__()
        from viewer.imaging.loader import SeriesLoader  # imported late: it may start processes

        self._stack = stack
        # A series of an ISO image is read from the image's unpacked folder: the source keeps
        # it (viewer.media.disc_image) until closed, whatever the browser opens meanwhile.
        self._discs = disc_image.holding(dict.fromkeys(str(f.path) for f in stack.frames))
        self._problems: dict[int, str] = {}
        self._headers: dict[str, Dataset | None] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._loader = SeriesLoader(
            stack,
            workers=workers,
            on_frame=self._on_loader_frame,
            on_problem=self._on_loader_problem,
        )
        self._loader.start(first=first)

    def __len__(self) -> int:
        return len(self._stack.frames)

    def frame(self, position: int) -> np.ndarray | None:
        return self._loader.frame(position)

    def dataset(self, position: int) -> Dataset | None:
        """The header once the loader thread has read it (the GUI thread reads no file)."""
        with self._lock:
            return self._headers.get(self.path(position))

    def frame_index(self, position: int) -> int:
        return self._stack.frames[position].frame_index

    def problem(self, position: int) -> str | None:
        with self._lock:
            return self._problems.get(position)

    def label(self) -> str:
        return stack_label(self._stack)

    def path(self, position: int) -> str:
        return str(self._stack.frames[position].path)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._loader.cancel()
        self._loader.close()
        for disc in self._discs:
            disc.close()

    def _remember(self, position: int, message: str) -> bool:
        with self._lock:
            if self._closed or self._problems.get(position) == message:
                return False
            self._problems[position] = message
            return True

    # Loader thread -> queued signals.
    def _read_header(self, position: int) -> None:
        """Read (and keep) the frame's header here, in the loader thread, not in the GUI's."""
        path = self.path(position)
        with self._lock:
            if path in self._headers:
                return
        try:
            header = self._loader.dataset(position)
        except Exception:  # the frame's problem is reported by the loader
            header = None
        with self._lock:
            self._headers[path] = header

    def _on_loader_frame(self, position: int) -> None:
        with self._lock:
            if self._closed:
                return
        self._read_header(position)
        self.frame_ready.emit(position)

    def _on_loader_problem(self, position: int, message: str) -> None:
        self._read_header(position)
        if self._remember(position, message):
            self.problem_found.emit(position, message)


def stack_label(stack: Stack) -> str:
    """A stack in one line (problems, tooltips): number, modality, description, image count."""
    parts = []
    if stack.series_number is not None:
        parts.append(f"Se {stack.series_number}:")
    if stack.modality:
        parts.append(stack.modality)
    if stack.series_description:
        parts.append(stack.series_description)
    parts.append(f"({_count(stack)})")
    return " ".join(parts)


def stack_caption(stack: Stack) -> str:
    """A stack under its thumbnail: "Se 3 CT", the description, "120 images" on three lines."""
    number = f"Se {stack.series_number}" if stack.series_number is not None else ""
    first = " ".join(part for part in (number, stack.modality) if part)
    lines = (first, stack.series_description, _count(stack))
    return "\n".join(line for line in lines if line)


def _count(stack: Stack) -> str:
    count = len(stack.frames)
    kind = "frame" if len({f.path for f in stack.frames}) == 1 and count > 1 else "image"
    return plural(count, kind)
