"""Export what a view shows: an image file, the clipboard, a movie, a printed page or sheet.

The main window calls these functions (``add_export_actions`` puts them in a menu). Every image
comes from the view's own pipeline: with annotations, the widget as painted (``grab``);
without, the frame rendered by :class:`viewer.imaging.display.FrameRenderer` at its native size
with the view's window, invert, overlays, rotation and flips (:func:`frame_buffer`), which is
also what a movie (:func:`export_movie`, through :func:`viewer.imaging.movie.write_movie`) and a
contact sheet (:func:`print_series`) are made of.

Long work (a movie, a series to print) runs as a :class:`viewer.qt.jobs.Job`: the frames are
taken from the view's :class:`~viewer.qt.source.FrameSource` as its loader decodes them, never
decoded again, never waited for on the GUI thread. Printing paints with a QPainter on a
QPrinter (a printer chosen in the print dialog, or its PDF output) or a QPdfWriter; Qt allows
painting on a printer in a worker thread.

Paths and printers are asked for through small module-level functions (:func:`ask_save_path`,
:func:`ask_printer`) that tests replace.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QMarginsF, QObject, QPointF, QRectF, QSizeF, Qt
from PySide6.QtGui import (
    QAction,
    QFont,
    QFontMetricsF,
    QGuiApplication,
    QImage,
    QPagedPaintDevice,
    QPageLayout,
    QPageSize,
    QPainter,
    QPdfWriter,
)
from PySide6.QtPrintSupport import QPrintDialog, QPrinter
from PySide6.QtWidgets import QFileDialog, QMenu, QProgressDialog, QWidget

from viewer import __version__
from viewer.imaging import annotations as notes
from viewer.imaging.display import FrameRenderer, Voi
from viewer.imaging.movie import MovieError, MovieReport, movie_format, temp_beside, write_movie
from viewer.imaging.overlay import draw_overlays, overlay_masks
from viewer.qt.image_view import ImageView, qimage_from_array
from viewer.qt.jobs import Job, JobSet
from viewer.qt.source import FrameSource
from viewer.text import escape

log = logging.getLogger(__name__)

JPEG_QUALITY = 95
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
#: How long a movie or a sheet waits for the loader to decode one frame before leaving it out.
FRAME_WAIT_SECONDS = 60.0
#: Printing resolution of a PDF written here (dots per inch).
PDF_DPI = 300

Progress = Callable[[int, int], None]


class ExportError(Exception):
    """An export that cannot be done; ``str(e)`` says why, for the status bar."""


# -- the pixels -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Look:
    """How a view draws its frames: what a movie or a sheet of its series keeps."""

    window: Voi | None = None
    inverted: bool = False
    overlays: bool = True
    orient: notes.Orient = notes.IDENTITY

    @classmethod
    def of(cls, view: ImageView) -> Look:
        return cls(view.viewport.window, view.inverted, view.overlays_visible, view.orient)


def orient_array(image: np.ndarray, orient: notes.Orient) -> np.ndarray:
    """``image`` (rows = y, columns = x) turned as the screen shows it: screen (x', y') =
    ``orient`` @ (x, y), a signed permutation (:mod:`viewer.imaging.viewport`)."""
    (a, b), (c, d) = orient
    if a == 0:  # a quarter turn: screen x follows image y and screen y follows image x
        image = image.swapaxes(0, 1)
        flip_rows, flip_columns = c < 0, b < 0
    else:
        flip_rows, flip_columns = d < 0, a < 0
    if flip_rows:
        image = image[::-1]
    if flip_columns:
        image = image[:, ::-1]
    return np.ascontiguousarray(image)


def frame_buffer(
    source: FrameSource,
    position: int,
    look: Look = Look(),
) -> np.ndarray | None:
    """Frame ``position`` as the view draws it, at native size (None while not decoded):
    the window (None: the frame's own), invert, overlays, rotation and flips of ``look``."""
    pixels = source.frame(position)
    ds = source.dataset(position)
    if pixels is None or ds is None:
        return None
    frame_index = source.frame_index(position)
    image = FrameRenderer(ds, frame_index, pixels).render(look.window, invert=look.inverted)
    if look.overlays:
        try:
            masks = list(overlay_masks(ds, frame_index))
        except Exception as exc:  # as the view: the image without the overlay
            log.debug("overlay of frame %d left out: %s", position + 1, exc)
            masks = []
        if masks:
            image = draw_overlays(np.array(image, copy=True), masks)
    return orient_array(np.ascontiguousarray(image, dtype=np.uint8), look.orient)


def view_image(view: ImageView, *, annotations: bool) -> QImage:
    """What the view shows: the widget as painted (corners, letters, scale bar, measurements)
    with ``annotations``; without, the frame alone at its own size (:func:`frame_buffer`)."""
    if annotations:
        return view.grab().toImage()
    source = view.source
    if source is None or view.count() == 0:
        raise ExportError("no image is shown")
    buffer = frame_buffer(source, view.position, Look.of(view))
    if buffer is None:
        problem = view.problem()
        raise ExportError(problem or f"image {view.position + 1} is still loading")
    return qimage_from_array(buffer).copy()  # the copy owns its bytes


def image_format(path: Path | str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in IMAGE_FORMATS:
        raise ExportError(f"{Path(path).name}: an image is .png or .jpg, not {suffix or 'none'}")
    return IMAGE_FORMATS[suffix]


def save_image(image: QImage, path: Path | str) -> Path:
    """``image`` as PNG or JPEG (quality 95) by the suffix, written under a temporary name and
    renamed, so a failure leaves no half-written file."""
    target = Path(path)
    fmt = image_format(target)
    try:
        temp_name = str(temp_beside(target))
    except OSError as exc:
        raise ExportError(f"{target}: cannot write here: {exc.strerror or exc}") from None
    try:
        quality = JPEG_QUALITY if fmt == "JPEG" else -1
        # PySide6 takes the format as str at run time, whatever its stub says
        if not image.save(temp_name, fmt, quality):  # type: ignore[call-overload]
            raise ExportError(f"{target}: the image could not be written")
        os.replace(temp_name, target)
    except OSError as exc:
        raise ExportError(f"{target}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
    return target


def save_view(view: ImageView, path: Path | str, *, annotations: bool) -> Path:
    """The view as a PNG or JPEG file (by the suffix; JPEG at quality 95)."""
    return save_image(view_image(view, annotations=annotations), path)


def copy_view(view: ImageView, *, annotations: bool) -> QImage:
    """The view on the clipboard, as an image."""
    image = view_image(view, annotations=annotations)
    QGuiApplication.clipboard().setImage(image)
    return image


# -- the patient header ---------------------------------------------------------------------------


def header_text(ds: Any) -> str:
    """One line naming the patient, ID, study date and description, and the series (as the
    view's corners say them), escaped: names from a disc never reach the page raw."""
    if ds is None:
        return ""
    corners = notes.corner_text(ds, 0, 0, 1)
    parts = [*corners.top_left[:2], *corners.top_right[:2], *corners.bottom_left[:1]]
    return escape("  ·  ".join(p for p in parts if p))


def view_header(view: ImageView) -> str:
    source = view.source
    if source is None or view.count() == 0:
        return ""
    return header_text(source.dataset(view.position))


# -- printing --------------------------------------------------------------------------------------


def pdf_writer(path: Path | str, *, title: str = "") -> QPdfWriter:
    """An A4 portrait PDF at :data:`PDF_DPI` with 12 mm margins."""
    writer = QPdfWriter(str(path))
    writer.setResolution(PDF_DPI)
    writer.setPageLayout(
        QPageLayout(
            QPageSize(QPageSize.PageSizeId.A4),
            QPageLayout.Orientation.Portrait,
            QMarginsF(12, 12, 12, 12),
            QPageLayout.Unit.Millimeter,
        )
    )
    writer.setCreator(f"Lightbox {__version__}")
    writer.setTitle(title)
    return writer


def _device(target: QPagedPaintDevice | Path | str, title: str) -> QPagedPaintDevice:
    if isinstance(target, QPagedPaintDevice):
        return target
    path = Path(target)
    if path.suffix.lower() != ".pdf":
        raise ExportError(f"{path.name}: printing to a file writes a .pdf")
    if not (path.parent if str(path.parent) else Path(".")).is_dir():
        raise ExportError(f"{path}: the folder {path.parent} does not exist")
    return pdf_writer(path, title=title)


def _page_rect(painter: QPainter) -> QRectF:
    """The printable area in device pixels (the painter's window: inside the margins)."""
    return QRectF(painter.viewport())


def _draw_header(painter: QPainter, page: QRectF, header: str, note: str) -> float:
    """The header line (bold, elided to the width) and a small note under it; the y where
    the page's content may start."""
    font = QFont("Sans Serif")
    font.setPointSizeF(10)
    font.setBold(True)
    painter.setFont(font)
    metrics = QFontMetricsF(font, painter.device())
    line = metrics.elidedText(header, Qt.TextElideMode.ElideRight, page.width())
    painter.setPen(Qt.GlobalColor.black)
    y = page.top() + metrics.ascent()
    painter.drawText(QPointF(page.left(), y), line)
    small = QFont(font)
    small.setBold(False)
    small.setPointSizeF(7)
    painter.setFont(small)
    small_metrics = QFontMetricsF(small, painter.device())
    y += metrics.descent() + small_metrics.ascent() + small_metrics.leading()
    painter.drawText(QPointF(page.left(), y), note)
    y += small_metrics.descent() + small_metrics.lineSpacing() * 0.5
    painter.drawLine(QPointF(page.left(), y), QPointF(page.right(), y))
    return y + small_metrics.lineSpacing() * 0.5


def _fit(image_size: QSizeF, box: QRectF) -> QRectF:
    if image_size.width() <= 0 or image_size.height() <= 0:
        return QRectF(box)
    scale = min(box.width() / image_size.width(), box.height() / image_size.height())
    width, height = image_size.width() * scale, image_size.height() * scale
    return QRectF(
        box.left() + (box.width() - width) / 2,
        box.top() + (box.height() - height) / 2,
        width,
        height,
    )


def _printed_note() -> str:
    return f"Lightbox {__version__} · printed {dt.datetime.now():%Y-%m-%d %H:%M}"


def print_image(image: QImage, target: QPagedPaintDevice | Path | str, *, header: str) -> None:
    """One page: ``header`` on top and ``image`` scaled to fit the rest, aspect kept."""
    device = _device(target, header)
    painter = QPainter()
    if not painter.begin(device):
        raise ExportError("the printer or PDF file cannot be written")
    try:
        page = _page_rect(painter)
        top = _draw_header(painter, page, header, _printed_note())
        box = QRectF(page.left(), top, page.width(), page.bottom() - top)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        painter.drawImage(_fit(QSizeF(image.size()), box), image)
    finally:
        painter.end()


def print_view(
    view: ImageView,
    printer_or_pdf_path: QPagedPaintDevice | Path | str,
    *,
    header: str | None = None,
    annotations: bool = True,
) -> None:
    """The view on one page under a header naming the patient, ID, study and series (by
    default taken from the image shown, escaped)."""
    image = view_image(view, annotations=annotations)
    print_image(image, printer_or_pdf_path, header=view_header(view) if header is None else header)


def series_frames(
    source: FrameSource,
    look: Look = Look(),
    *,
    cancel: threading.Event | None = None,
    wait_seconds: float = FRAME_WAIT_SECONDS,
    skipped: list[str] | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """(position, display buffer) for each frame of ``source`` in stack order, rendered as
    :func:`frame_buffer` renders it. A frame not decoded yet is waited for (the loader fills
    the source in the background); one with a problem, or not decoded within
    ``wait_seconds``, is left out and named in ``skipped``."""
    cancel = cancel or threading.Event()
    for position in range(len(source)):
        waited = 0.0
        while True:
            if cancel.is_set():
                return
            problem = source.problem(position)
            if problem:
                if skipped is not None:
                    skipped.append(problem)
                buffer = None
                break
            try:
                buffer = frame_buffer(source, position, look)
            except Exception as exc:  # a frame the pipeline refuses: left out, with why
                if skipped is not None:
                    skipped.append(f"{source.path(position)}: cannot display: {exc}")
                buffer = None
                break
            if buffer is not None or waited >= wait_seconds:
                if buffer is None and skipped is not None:
                    skipped.append(f"{source.path(position)}: not decoded in time")
                break
            cancel.wait(0.05)
            waited += 0.05
        if buffer is not None:
            yield position, buffer


def _grid(per_page: int, page: QRectF) -> tuple[int, int]:
    columns = max(1, round(math.sqrt(per_page * page.width() / max(1.0, page.height()))))
    columns = min(columns, per_page)
    return columns, math.ceil(per_page / columns)


def print_series(
    source: FrameSource,
    path: QPagedPaintDevice | Path | str,
    *,
    header: str,
    per_page: int = 12,
    look: Look = Look(),
    cancel: threading.Event | None = None,
    progress: Progress | None = None,
    wait_seconds: float = FRAME_WAIT_SECONDS,
) -> int:
    """A contact sheet of the series: ``per_page`` frames a page in a grid, each rendered as
    the view renders it (``look``: its window, invert, overlays, orientation) and numbered,
    under the patient header; returns the number of pages (0 when cancelled: a PDF file is
    then removed)."""
    if per_page < 1:
        raise ExportError("at least one image a page")
    device = _device(path, header)
    painter = QPainter()
    if not painter.begin(device):
        raise ExportError("the printer or PDF file cannot be written")
    cancel = cancel or threading.Event()
    skipped: list[str] = []
    count = len(source)
    pages = 0
    try:
        page = _page_rect(painter)
        columns, rows = _grid(per_page, page)
        total_pages = max(1, math.ceil(count / per_page))
        note = _printed_note()
        caption_font = QFont("Sans Serif")
        caption_font.setPointSizeF(7)
        caption_metrics = QFontMetricsF(caption_font, painter.device())
        cell = 0
        top = 0.0
        cell_w = cell_h = 0.0
        for done, (position, buffer) in enumerate(
            series_frames(
                source,
                look,
                cancel=cancel,
                wait_seconds=wait_seconds,
                skipped=skipped,
            ),
            start=1,
        ):
            if cell == 0:
                if pages:
                    device.newPage()
                pages += 1
                top = _draw_header(painter, page, header, f"{note} · page {pages}/{total_pages}")
                cell_w = page.width() / columns
                cell_h = (page.bottom() - top) / rows
            row, column = divmod(cell, columns)
            box = QRectF(page.left() + column * cell_w, top + row * cell_h, cell_w, cell_h)
            inner = box.adjusted(4, 4, -4, -4 - caption_metrics.lineSpacing())
            image = qimage_from_array(buffer)
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            painter.drawImage(_fit(QSizeF(image.size()), inner), image)
            del image
            painter.setFont(caption_font)
            painter.drawText(
                QRectF(box.left(), inner.bottom(), box.width(), caption_metrics.lineSpacing()),
                int(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop),
                f"{position + 1}/{count}",
            )
            cell = (cell + 1) % per_page
            if progress is not None:
                progress(done, count)
        if pages == 0 and not cancel.is_set():
            raise ExportError("no image of the series could be rendered" + _first(skipped))
    finally:
        painter.end()
    if cancel.is_set():
        if not isinstance(path, QPagedPaintDevice):
            with contextlib.suppress(OSError):
                Path(path).unlink()
        return 0
    if skipped:  # the reasons name files (a disc's folders may bear the patient's name)
        log.warning("%d image(s) left out of the sheet (the reasons at debug level)", len(skipped))
    for reason in skipped:
        log.debug("left out of the sheet: %s", reason)
    return pages


def _first(skipped: list[str]) -> str:
    return f": {skipped[0]}" if skipped else ""


# -- the movie ---------------------------------------------------------------------------------


def export_movie(
    view: ImageView,
    path: Path | str,
    *,
    cancel: threading.Event | None = None,
    progress: Progress | None = None,
    jobs: JobSet | None = None,
    wait_seconds: float = FRAME_WAIT_SECONDS,
    start: bool = True,
) -> Job:
    """Start writing the view's series as a movie (MP4 or GIF by the suffix) at the view's cine
    rate, each frame as the view renders it (window, invert, overlays, rotation and flips).

    The state is taken now, on the GUI thread; the frames are rendered and encoded by a
    :class:`Job` (started in ``jobs`` when given), whose ``finished`` carries the
    :class:`~viewer.imaging.movie.MovieReport` and ``failed`` the error. ``cancel`` (else the
    job's own) stops it, leaving no file; ``progress(done, total)`` is called on the GUI
    thread. ``start=False`` returns the job unstarted, for the caller to connect to it first
    (a short movie may end before a later connection is made)."""
    movie_format(path)  # refuse a wrong suffix before anything starts
    source = view.source
    if source is None or view.count() == 0:
        raise ExportError("no series is shown")
    look = Look.of(view)
    fps = view.fps
    target = Path(path)

    def work(job_cancel: threading.Event, report: Callable[..., None]) -> MovieReport:
        skipped: list[str] = []
        frames = (
            buffer
            for _, buffer in series_frames(
                source, cancel=job_cancel, wait_seconds=wait_seconds, skipped=skipped, look=look
            )
        )
        result = write_movie(
            frames, target, fps, cancel=job_cancel, progress=report, total=len(source)
        )
        result.skipped = skipped
        return result

    job = Job("movie export", work)
    if cancel is not None:
        job.cancel_event = cancel
    if progress is not None:
        job.progress_changed.connect(progress)
    if not start:
        return job
    if jobs is not None:
        jobs.start(job)
    else:
        job.start()
    return job


# -- the menu ---------------------------------------------------------------------------------


def ask_save_path(parent: QWidget | None, title: str, suggestion: str, filters: str) -> str:
    """A path chosen in a save dialog ("" when cancelled). Tests replace this function."""
    path, _ = QFileDialog.getSaveFileName(parent, title, suggestion, filters)
    return path


def ask_printer(parent: QWidget | None, title: str) -> QPrinter | None:
    """A printer (or its PDF output) chosen in the print dialog; None when cancelled."""
    printer = QPrinter(QPrinter.PrinterMode.HighResolution)
    dialog = QPrintDialog(printer, parent)
    dialog.setWindowTitle(title)
    if dialog.exec() != QPrintDialog.DialogCode.Accepted:
        return None
    return printer


def ask_annotations(parent: QWidget | None) -> bool:
    """Whether an exported image carries the view's text; the menu's own check box decides."""
    return True


def suggested_name(view: ImageView, suffix: str) -> str:
    """``<patient ID>_<series number>_<image>.suffix``, only safe file-name characters."""
    source = view.source
    ds = source.dataset(view.position) if source is not None and view.count() else None
    parts = []
    if ds is not None:
        parts = [str(ds.get("PatientID", "") or ""), f"se{ds.get('SeriesNumber', '') or ''}"]
    if suffix in {".png", ".jpg"}:
        parts.append(f"im{view.position + 1}")
    stem = "_".join(p for p in parts if p) or "lightbox"
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in stem).strip("._")
    return f"{stem or 'lightbox'}{suffix}"


class ExportActions(QObject):
    """The export actions of one window, acting on its active view (``window.view``)."""

    def __init__(self, window: QWidget, menu: QMenu) -> None:
        super().__init__(window)
        self.setObjectName("export_actions")
        self.window = window
        self.jobs: JobSet = getattr(window, "jobs", None) or JobSet(self)
        self.annotations = QAction("Export with annotations", window)
        self.annotations.setObjectName("export_annotations")
        self.annotations.setCheckable(True)
        self.annotations.setChecked(True)
        self.actions: dict[str, QAction] = {}
        for name, text, slot in (
            ("export_save_view", "Save view as image…", self.save_view),
            ("export_copy_view", "Copy view", self.copy_view),
            ("export_save_movie", "Save series as movie…", self.save_movie),
            ("export_print_view", "Print view…", self.print_view),
            ("export_print_series", "Print series…", self.print_series),
        ):
            action = QAction(text, window)
            action.setObjectName(name)
            action.triggered.connect(slot)
            self.actions[name] = action
            menu.addAction(action)
        menu.addAction(self.annotations)
        registry = getattr(window, "actions_by_name", None)
        if isinstance(registry, dict):
            registry.update(self.actions)
            registry["export_annotations"] = self.annotations
        self.movie_progress: QProgressDialog | None = None

    def view(self) -> ImageView | None:
        view = getattr(self.window, "view", None)
        return view if isinstance(view, ImageView) else None

    def tell(self, text: str) -> None:
        status = getattr(self.window, "statusBar", None)
        if callable(status):
            status().showMessage(text, 10000)

    def _with_view(self) -> ImageView | None:
        view = self.view()
        if view is None or view.count() == 0:
            self.tell("Nothing to export: no image is shown")
            return None
        return view

    def save_view(self) -> None:
        view = self._with_view()
        if view is None:
            return
        path = ask_save_path(
            self.window,
            "Save view as image",
            suggested_name(view, ".png"),
            "PNG image (*.png);;JPEG image (*.jpg *.jpeg)",
        )
        if not path:
            return
        try:
            written = save_view(view, path, annotations=self.annotations.isChecked())
        except ExportError as exc:
            self.tell(f"Not saved: {escape(exc)}")
            return
        self.tell(f"Saved {escape(written)}")

    def copy_view(self) -> None:
        view = self._with_view()
        if view is None:
            return
        try:
            copy_view(view, annotations=self.annotations.isChecked())
        except ExportError as exc:
            self.tell(f"Not copied: {escape(exc)}")
            return
        self.tell("View copied to the clipboard")

    def print_view(self) -> None:
        view = self._with_view()
        if view is None:
            return
        printer = ask_printer(self.window, "Print view")
        if printer is None:
            return
        try:
            print_view(view, printer, annotations=self.annotations.isChecked())
        except ExportError as exc:
            self.tell(f"Not printed: {escape(exc)}")
            return
        self.tell("View printed")

    def print_series(self) -> None:
        view = self._with_view()
        source = view.source if view is not None else None
        if view is None or source is None:
            return
        printer = ask_printer(self.window, "Print series")
        if printer is None:
            return
        header = view_header(view)
        look = Look.of(view)

        def work(cancel: threading.Event, progress: Callable[..., None]) -> int:
            return print_series(
                source, printer, header=header, cancel=cancel, progress=progress, look=look
            )

        job = Job("print series", work)
        job.finished.connect(lambda pages: self.tell(f"Series printed: {pages} page(s)"))
        job.failed.connect(lambda exc: self.tell(f"Not printed: {escape(exc)}"))
        self.jobs.start(job)
        self.tell("Printing the series…")

    def save_movie(self) -> None:
        view = self._with_view()
        if view is None:
            return
        path = ask_save_path(
            self.window,
            "Save series as movie",
            suggested_name(view, ".mp4"),
            "MP4 video (*.mp4);;Animated GIF (*.gif)",
        )
        if not path:
            return
        try:
            job = export_movie(view, path, start=False)
        except (ExportError, MovieError) as exc:
            self.tell(f"No movie: {escape(exc)}")
            return
        dialog = QProgressDialog("Writing the movie…", "Cancel", 0, view.count(), self.window)
        dialog.setObjectName("export_movie_progress")
        dialog.setWindowTitle("Save series as movie")
        dialog.setMinimumDuration(800)
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        dialog.canceled.connect(job.cancel)
        job.progress_changed.connect(lambda done, total: dialog.setValue(done))
        job.finished.connect(lambda report: self._on_movie_finished(report))
        job.failed.connect(lambda exc: self.tell(f"No movie: {escape(exc)}"))
        job.done.connect(dialog.deleteLater)
        job.done.connect(dialog.close)
        self.movie_progress = dialog
        self.jobs.start(job)

    def _on_movie_finished(self, report: MovieReport) -> None:
        if report.cancelled:
            self.tell("Movie cancelled: nothing written")
            return
        left = f", {len(report.skipped)} image(s) left out" if report.skipped else ""
        self.tell(
            f"Saved {escape(report.path)}: {report.frames} frames at {report.fps:g} fps "
            f"({report.codec}){left}"
        )


def add_export_actions(window: QWidget, menu: QMenu) -> ExportActions:
    """Add "Save view as image…", "Copy view", "Save series as movie…", "Print view…",
    "Print series…" and the "Export with annotations" switch to ``menu``; they act on
    ``window.view`` and run long work in ``window.jobs`` (when the window has them)."""
    return ExportActions(window, menu)
