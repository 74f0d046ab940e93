"""Series thumbnails, made in a worker thread and cached in memory and on disk.

A thumbnail is one image of a series (its middle instance, first frame) decoded and drawn with
the file's default window by the same pipeline as the view (:class:`FrameRenderer`'s
``render_scaled``: area-averaged, so a 512x512 CT stays readable at 96 pixels). Reading and
decoding run in one thread of their own, never on the GUI thread: a slow CD delays the
thumbnails, not the browser. Each is saved as PNG under ``app_home()/thumbnails``, named after
the SOP Instance UID (PS3.3 C.12.1.1.1: unique for every instance, so the same image on a disc and
in the store shares one file), and kept in memory for the session.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from viewer.config import app_home
from viewer.imaging import decode
from viewer.imaging.display import FrameRenderer

log = logging.getLogger(__name__)

THUMBNAIL_SIZE = 96


def thumbnail_folder() -> Path:
    return app_home() / "thumbnails"


def cache_key(sop_instance_uid: str, path: Path) -> str:
    """The UID when there is one (ACR-NEMA files have none: then a hash of the path)."""
    uid = sop_instance_uid.strip()
    if uid and all(c.isdigit() or c == "." for c in uid) and len(uid) <= 64:
        return uid
    return "path-" + hashlib.sha256(str(path).encode("utf-8", "surrogateescape")).hexdigest()[:32]


def render_thumbnail(path: Path, size: int = THUMBNAIL_SIZE) -> QImage:
    """The first frame of ``path`` drawn to fit ``size`` x ``size``; raises DecodeError."""
    dicom_file = decode.read_file(path)
    ds = dicom_file.dataset
    pixels = decode.decode_frame(ds, 0)
    image = FrameRenderer(ds, 0, pixels).render_scaled(None, size=(size, size))
    if image.shape[0] > size or image.shape[1] > size:  # never larger than asked
        step = max(-(-image.shape[0] // size), -(-image.shape[1] // size))
        image = image[::step, ::step]
    return array_to_qimage(np.ascontiguousarray(image))


def array_to_qimage(image: np.ndarray) -> QImage:
    """A copy of a uint8 grey (H, W) or RGB (H, W, 3) array as a QImage (owns its pixels)."""
    height, width = image.shape[:2]
    if image.ndim == 2:
        fmt = QImage.Format.Format_Grayscale8
        stride = image.strides[0]
    else:
        fmt = QImage.Format.Format_RGB888
        stride = image.strides[0]
    return QImage(image.data, width, height, stride, fmt).copy()


@dataclass(frozen=True, slots=True)
class _Request:
    key: str
    path: Path
    generation: int


class ThumbnailWorker(QObject):
    """Makes thumbnails in one worker thread; ``thumbnail_ready(key, QImage)`` on the GUI side.

    :meth:`request` answers at once from memory when it can (returns the image), else queues the
    work; :meth:`clear_pending` drops what is queued (the user chose another study).
    Counters say where images came from, for the tests and the status bar.
    """

    thumbnail_ready = Signal(str, QImage)
    thumbnail_failed = Signal(str, str)  # key, message naming the file

    def __init__(self, folder: Path | None = None, size: int = THUMBNAIL_SIZE) -> None:
        super().__init__()
        self._folder = folder
        self._size = size
        self._memory: dict[str, QImage] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._generation = 0
        self._thread: threading.Thread | None = None
        self.rendered = 0
        self.from_disk = 0
        self.from_memory = 0

    @property
    def folder(self) -> Path:
        if self._folder is None:
            self._folder = thumbnail_folder()
        return self._folder

    def request(self, sop_instance_uid: str, path: Path) -> tuple[str, QImage | None]:
        """The key the image will be signalled under, and the image if it is in memory."""
        key = cache_key(sop_instance_uid, path)
        with self._lock:
            image = self._memory.get(key)
        if image is not None:
            self.from_memory += 1
            return key, image
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ThumbnailWorker", daemon=True)
            self._thread.start()
        self._queue.put(_Request(key, Path(path), self._generation))
        return key, None

    def clear_pending(self) -> None:
        self._generation += 1

    def stop(self) -> None:
        """Drop the queue and join the thread (the window is closing)."""
        self._generation += 1
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        folder_ready = False
        while True:
            item = self._queue.get()
            if item is None:
                return
            if item.generation != self._generation:
                continue
            with self._lock:
                if item.key in self._memory:
                    image: QImage | None = self._memory[item.key]
                    self.thumbnail_ready.emit(item.key, image)
                    continue
            cached = self.folder / f"{item.key}.png"
            image = QImage(str(cached)) if cached.is_file() else None
            if image is not None and not image.isNull():
                self.from_disk += 1
            else:
                try:
                    image = render_thumbnail(item.path, self._size)
                except decode.DecodeError as exc:
                    self.thumbnail_failed.emit(item.key, str(exc))
                    continue
                except Exception as exc:  # a decoder bug is one missing thumbnail, not a crash
                    log.debug("thumbnail failed", exc_info=True)
                    self.thumbnail_failed.emit(item.key, f"{item.path}: {exc}")
                    continue
                self.rendered += 1
                try:
                    if not folder_ready:
                        self.folder.mkdir(parents=True, exist_ok=True)
                        folder_ready = True
                    partial = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
                    if image.save(str(partial), "PNG"):  # type: ignore[call-overload]
                        os.replace(partial, cached)  # whole files only, for other processes
                except Exception as exc:  # no cache is slower, not wrong
                    log.debug("thumbnail not cached: %s", exc)
            with self._lock:
                self._memory[item.key] = image
            self.thumbnail_ready.emit(item.key, image)
