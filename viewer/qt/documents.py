"""The objects of a disc that are no images: Structured Reports, Encapsulated PDF, waveforms.

:class:`ObjectViewer` reads one file on a worker (:class:`viewer.qt.jobs.Job` running
:func:`load_object`) and shows what it is:

- an SR document (or Key Object Selection) as a tree of content items, concept and value
  (:mod:`viewer.imaging.sr`), with *Copy as text* for the indented plain-text report;
- a waveform (12-lead ECG, any Waveform Sequence: :mod:`viewer.imaging.waveform`) drawn by
  :class:`WaveformView`, the leads stacked over a calibrated grid (1 mm small and 5 mm large
  squares; 25 mm/s and 10 mm/mV unless changed), each lead labelled, the time axis in seconds;
  the paper speed is the horizontal zoom (Ctrl+wheel), and the strip scrolls;
- an Encapsulated PDF (PS3.3 A.45, C.24.2): the Encapsulated Document (0042,0011) up to its
  Encapsulated Document Length, which must start ``%PDF-``, shown inside the dialog by Qt's PDF
  module (:class:`QPdfView`, pages one under the other, fitted to the width or zoomed)
  straight from memory; *Open in the system viewer* (to print it, say) writes a private
  temporary copy first (folder 0700, file 0600, never the file's own name, removed when
  Lightbox exits) and hands that to :meth:`QDesktopServices.openUrl`.

Every text from the file was escaped by the core; labels are plain text, never markup.
"""

from __future__ import annotations

import atexit
import math
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QBuffer, QIODevice, QPointF, QRectF, Qt, QUrl, Signal
from PySide6.QtGui import (
    QColor,
    QDesktopServices,
    QFont,
    QGuiApplication,
    QPainter,
    QPaintEvent,
    QPen,
    QPolygonF,
    QWheelEvent,
)
from PySide6.QtPdf import QPdfDocument
from PySide6.QtPdfWidgets import QPdfView
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.imaging.decode import DecodeError, read_file
from viewer.imaging.sr import ContentItem, Report, item_value_lines, report_from_dataset
from viewer.imaging.waveform import MultiplexGroup, Waveform, waveform_from_dataset
from viewer.qt.jobs import Job, JobDialog
from viewer.text import escape, person_name, plural

ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
#: Paper speeds (mm/s) and gains (mm/mV) offered; the first defaults are the ECG's own.
SPEEDS = (12.5, 25.0, 50.0, 100.0)
GAINS = (5.0, 10.0, 20.0)
DEFAULT_SPEED = 25.0
DEFAULT_GAIN = 10.0
#: A lane per channel, this tall (mm), under a time axis this tall, after a margin this wide
#: (the calibration pulse: 1 mV for 0.2 s).
LANE_MM = 30.0
TOP_MM = 7.0
LEFT_MM = 12.0
#: The widest a strip gets (pixels; Qt's limit is 16,777,215).
MAX_WIDTH = 4_000_000


@dataclass(frozen=True, slots=True)
class PdfDocument:
    """An Encapsulated PDF: the document's bytes and its header (escaped)."""

    data: bytes
    title: str
    patient_name: str
    patient_id: str


@dataclass(frozen=True, slots=True)
class Unsupported:
    """An object this viewer does not show (a presentation state...): what it is."""

    what: str
    patient_name: str


LoadedObject = Report | Waveform | PdfDocument | Unsupported

#: The PDF zoom box: label, QPdfView zoom mode, factor (for the custom mode).
_PDF_ZOOMS = (
    ("Fit width", QPdfView.ZoomMode.FitToWidth, 1.0),
    ("Whole page", QPdfView.ZoomMode.FitInView, 1.0),
    ("50 %", QPdfView.ZoomMode.Custom, 0.5),
    ("100 %", QPdfView.ZoomMode.Custom, 1.0),
    ("150 %", QPdfView.ZoomMode.Custom, 1.5),
    ("200 %", QPdfView.ZoomMode.Custom, 2.0),
)

#: Why Qt's PDF module refused a document.
_PDF_ERRORS = {
    QPdfDocument.Error.InvalidFileFormat: "the PDF is damaged (not a readable PDF file)",
    QPdfDocument.Error.IncorrectPassword: "the PDF is encrypted with a password",
    QPdfDocument.Error.UnsupportedSecurityScheme: "the PDF uses a security scheme Qt cannot open",
    QPdfDocument.Error.DataNotYetAvailable: "the PDF is incomplete",
}


def pdf_bytes(ds: Any, *, path: str = "") -> bytes:
    """The PDF of an Encapsulated PDF data set: the Encapsulated Document (0042,0011), cut to
    Encapsulated Document Length (0042,0015) when that is shorter (the value is padded to an
    even length), refused unless it starts with ``%PDF-``."""
    data = ds.get("EncapsulatedDocument")
    if not isinstance(data, bytes | bytearray):
        raise DecodeError(path, "no Encapsulated Document (0042,0011)")
    length = len(data)
    declared = ds.get("EncapsulatedDocumentLength")
    if isinstance(declared, int) and 0 <= declared < length:
        length = declared
    document = bytes(data[:length])
    if not document.startswith(b"%PDF-"):
        raise DecodeError(path, "the Encapsulated Document is no PDF (it does not start %PDF-)")
    return document


_temporary_folders: list[Path] = []


def _remove_temporary_folders() -> None:
    for folder in _temporary_folders:
        shutil.rmtree(folder, ignore_errors=True)


atexit.register(_remove_temporary_folders)


def write_private_pdf(document: bytes) -> Path:
    """``document`` in a new private temporary folder (0700; the file 0600, created, never
    followed), removed when Lightbox exits: the system's viewer may read it until then."""
    folder = Path(tempfile.mkdtemp(prefix="lightbox-pdf-"))
    _temporary_folders.append(folder)
    target = folder / "document.pdf"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(target, flags, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(document)
    return target


def load_object(path: str | os.PathLike[str]) -> LoadedObject:
    """Read ``path`` and make what its viewer shows (a worker's job: never the GUI thread)."""
    dicom = read_file(path)
    ds = dicom.dataset
    name = escape(person_name(ds.get("PatientName", "")))
    uid = str(ds.get("SOPClassUID", ""))
    if "WaveformSequence" in ds:
        return waveform_from_dataset(ds, path=str(path), warnings=dicom.warnings)
    if uid == ENCAPSULATED_PDF or "EncapsulatedDocument" in ds:
        mime = str(ds.get("MIMETypeOfEncapsulatedDocument", "application/pdf")).strip()
        if mime != "application/pdf":
            return Unsupported(f"an encapsulated {escape(mime)} document", name)
        document = pdf_bytes(ds, path=str(path))
        return PdfDocument(
            document,
            escape(str(ds.get("DocumentTitle", "")).strip()),
            name,
            escape(str(ds.get("PatientID", "")).strip()),
        )
    if ds.get("ValueType") == "CONTAINER" or "ContentSequence" in ds:
        return report_from_dataset(ds, path=str(path), warnings=dicom.warnings)
    if uid.startswith("1.2.840.10008.5.1.4.1.1.11."):
        return Unsupported("a presentation state (applied with its images, not shown alone)", name)
    return Unsupported(f"an object of SOP Class {escape(uid) or '(none)'}", name)


class ObjectViewer(JobDialog):
    """Non-modal: the report, waveform or PDF at ``path``; ``loaded`` once shown."""

    loaded = Signal(object)
    #: The file could not be read or shown: the reason, escaped.
    failed = Signal(str)
    #: A PDF was handed to the system's viewer: the temporary copy's path.
    pdf_opened = Signal(str)

    def __init__(self, path: Path | str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("object_viewer")
        self.setModal(False)
        self.path = Path(path)
        self.loaded_object: LoadedObject | None = None
        self.tree: QTreeWidget | None = None
        self.waveform_view: WaveformView | None = None
        self.pdf_file: Path | None = None  # the private copy for the system's viewer
        self.pdf_document: QPdfDocument | None = None
        self.pdf_view: QPdfView | None = None
        self.zoom_box: QComboBox | None = None
        self.speed_box: QComboBox | None = None
        self.gain_box: QComboBox | None = None
        self.group_box: QComboBox | None = None
        self.setWindowTitle(f"{escape(self.path.name)} — reading…")

        self.header = QLabel("Reading the file…")
        self.header.setObjectName("object_header")
        self.header.setTextFormat(Qt.TextFormat.PlainText)
        self.header.setWordWrap(True)
        self.header.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.body = QVBoxLayout()
        self.buttons = QHBoxLayout()
        self.buttons.addStretch(1)
        close_button = QPushButton("Close")
        close_button.clicked.connect(self.close)
        self.buttons.addWidget(close_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.header)
        layout.addLayout(self.body, 1)
        layout.addLayout(self.buttons)
        self.resize(1000, 700)

        target = self.path

        def work(_cancel: threading.Event, _progress: Callable[..., None]) -> LoadedObject:
            return load_object(target)

        job = Job("ReadDocument", work)  # never the file's name: it names the thread in logs
        job.finished.connect(self._on_job_finished)
        job.failed.connect(self._on_job_failed)
        self.jobs.start(job)

    # -- loading ---------------------------------------------------------------------------------

    def _on_job_finished(self, result: object) -> None:
        if isinstance(result, Report):
            self._show_report(result)
        elif isinstance(result, Waveform):
            self._show_waveform(result)
        elif isinstance(result, PdfDocument):
            self._show_pdf(result)
        elif isinstance(result, Unsupported):
            self._title("not shown", result.patient_name)
            self.header.setText(
                f"{escape(self.path.name)} is {result.what}: Lightbox does not show it here."
            )
        else:
            return
        self.loaded_object = result
        self.loaded.emit(result)

    def _on_job_failed(self, error: object) -> None:
        reason = escape(error.reason if isinstance(error, DecodeError) else f"{error}")
        self._title("cannot be read", "")
        self.header.setText(f"{escape(self.path)} cannot be shown: {reason}")
        self.failed.emit(reason)

    def _title(self, document: str, patient: str) -> None:
        self.setWindowTitle(f"{document} — {patient or 'no patient name'}")

    # -- structured reports ----------------------------------------------------------------------

    def _show_report(self, report: Report) -> None:
        self._title(report.title or report.kind, report.patient_name)
        header = report.header_lines()
        header.extend(f"Note: {n}" for n in report.notes[:5])
        if len(report.notes) > 5:
            header.append(f"… {len(report.notes) - 5} more notes (in Copy as text)")
        self.header.setText("\n".join(header))
        tree = QTreeWidget()
        tree.setObjectName("report_tree")
        tree.setColumnCount(2)
        tree.setHeaderLabels(["Concept", "Value"])
        tree.setAlternatingRowColors(True)
        tree.setWordWrap(True)
        tree.header().setStretchLastSection(True)
        root = _report_item(report.root, root=True)
        pending: list[tuple[ContentItem, QTreeWidgetItem]] = [(report.root, root)]
        while pending:
            source, target = pending.pop()
            for child in source.children:
                item = _report_item(child)
                target.addChild(item)
                pending.append((child, item))
        tree.addTopLevelItem(root)
        tree.expandAll()
        tree.setColumnWidth(0, 380)
        self.tree = tree
        self.body.addWidget(tree)
        copy = QPushButton("Copy as text")
        copy.setObjectName("report_copy")
        copy.setToolTip("The whole report as indented plain text, on the clipboard")
        copy.clicked.connect(self.copy_report)
        self.buttons.insertWidget(0, copy)

    def copy_report(self) -> None:
        if isinstance(self.loaded_object, Report):
            QGuiApplication.clipboard().setText(self.loaded_object.text())

    # -- waveforms -------------------------------------------------------------------------------

    def _show_waveform(self, waveform: Waveform) -> None:
        kind = "ECG" if waveform.is_ecg else "Waveform"
        self._title(f"{kind} {waveform.acquired}".strip(), waveform.patient_name)
        patient = waveform.patient_name or "(no name)"
        if waveform.patient_id:
            patient += f" (ID {waveform.patient_id})"
        lines = [f"Patient: {patient}", f"{kind}, acquired {waveform.acquired or '(not stated)'}"]
        lines.extend(f"Note: {w}" for w in waveform.warnings[:5])
        self.header.setText("\n".join(lines))
        view = WaveformView()
        self.waveform_view = view
        groups = QComboBox()
        groups.setObjectName("waveform_group")
        for group in waveform.groups:
            groups.addItem(
                f"{group.label or 'Group'}: {len(group.channels)} channels, "
                f"{group.duration:g} s at {group.sampling_frequency:g} Hz"
            )
        speed = QComboBox()
        speed.setObjectName("waveform_speed")
        for value in SPEEDS:
            speed.addItem(f"{value:g} mm/s", value)
        speed.setCurrentIndex(SPEEDS.index(DEFAULT_SPEED))
        gain = QComboBox()
        gain.setObjectName("waveform_gain")
        for value in GAINS:
            gain.addItem(f"{value:g} mm/mV", value)
        gain.setCurrentIndex(GAINS.index(DEFAULT_GAIN))
        scale = QLabel()
        scale.setObjectName("waveform_scale")
        scale.setTextFormat(Qt.TextFormat.PlainText)

        def update_scale() -> None:
            group = view.group
            if group is not None and group.is_voltage:
                scale.setText(
                    f"small squares 1 mm = {1 / view.speed:g} s, {1 / view.gain:g} mV; "
                    f"large 5 mm = {5 / view.speed:g} s, {5 / view.gain:g} mV"
                )
            else:
                scale.setText("each channel scaled to its lane (no voltage units)")

        def on_group(index: int) -> None:
            view.set_group(waveform.groups[index])
            update_scale()

        def on_speed(index: int) -> None:
            view.set_speed(SPEEDS[index])
            update_scale()

        def on_gain(index: int) -> None:
            view.set_gain(GAINS[index])
            update_scale()

        def on_view_speed(value: float) -> None:
            if value in SPEEDS:
                speed.setCurrentIndex(SPEEDS.index(value))

        groups.currentIndexChanged.connect(on_group)
        speed.currentIndexChanged.connect(on_speed)
        gain.currentIndexChanged.connect(on_gain)
        view.speed_changed.connect(on_view_speed)
        self.speed_box, self.gain_box, self.group_box = speed, gain, groups
        controls = QHBoxLayout()
        controls.addWidget(groups)
        controls.addWidget(speed)
        controls.addWidget(gain)
        controls.addWidget(scale, 1)
        scroll = QScrollArea()
        scroll.setObjectName("waveform_scroll")
        scroll.setWidget(view)
        scroll.setWidgetResizable(False)
        scroll.horizontalScrollBar().valueChanged.connect(lambda _v: view.update())
        scroll.verticalScrollBar().valueChanged.connect(lambda _v: view.update())
        view.set_group(waveform.groups[0])
        update_scale()
        self.body.addLayout(controls)
        self.body.addWidget(scroll, 1)

    # -- PDF -------------------------------------------------------------------------------------

    def _show_pdf(self, pdf: PdfDocument) -> None:
        self._title(pdf.title or "PDF document", pdf.patient_name)
        patient = pdf.patient_name or "(no name)"
        if pdf.patient_id:
            patient += f" (ID {pdf.patient_id})"
        # The document is read from memory: nothing of it is written to disc to show it.
        self._pdf_buffer = QBuffer(self)
        self._pdf_buffer.setData(pdf.data)
        self._pdf_buffer.open(QIODevice.OpenModeFlag.ReadOnly)
        document = QPdfDocument(self)
        document.load(self._pdf_buffer)
        if document.status() != QPdfDocument.Status.Ready:
            reason = _PDF_ERRORS.get(document.error(), "Qt's PDF module cannot read it")
            self.header.setText(
                f"Patient: {patient}\n{escape(self.path)} cannot be shown: {reason}"
            )
            self.failed.emit(reason)
            return
        self.pdf_document = document
        pages = document.pageCount()
        self.header.setText(
            f"Patient: {patient}\nPDF: {pdf.title or '(no title)'}, "
            f"{plural(pages, 'page')}, {len(pdf.data)} bytes"
        )
        view = QPdfView(self)
        view.setObjectName("pdf_view")
        view.setDocument(document)
        view.setPageMode(QPdfView.PageMode.MultiPage)
        view.setZoomMode(QPdfView.ZoomMode.FitToWidth)
        view.setPageSpacing(12)
        self.pdf_view = view
        self.zoom_box = QComboBox()
        self.zoom_box.setObjectName("pdf_zoom")
        for label, _mode, _factor in _PDF_ZOOMS:
            self.zoom_box.addItem(label)
        self.zoom_box.currentIndexChanged.connect(self._on_pdf_zoom)
        controls = QHBoxLayout()
        controls.addWidget(QLabel("Zoom:"))
        controls.addWidget(self.zoom_box)
        controls.addStretch(1)
        self.body.addLayout(controls)
        self.body.addWidget(view, 1)
        external = QPushButton("Open in the system viewer")
        external.setObjectName("pdf_open")
        external.setToolTip(
            "Writes a private temporary copy (removed when Lightbox exits) for your PDF viewer"
        )
        external.clicked.connect(self.open_pdf_externally)
        self.buttons.insertWidget(0, external)

    def _on_pdf_zoom(self, index: int) -> None:
        if self.pdf_view is None or not 0 <= index < len(_PDF_ZOOMS):
            return
        _label, mode, factor = _PDF_ZOOMS[index]
        self.pdf_view.setZoomMode(mode)
        if mode == QPdfView.ZoomMode.Custom:
            self.pdf_view.setZoomFactor(factor)

    def open_pdf_externally(self) -> None:
        """The PDF in the system's viewer, from a private temporary copy written once."""
        if not isinstance(self.loaded_object, PdfDocument):
            return
        if self.pdf_file is None:
            self.pdf_file = write_private_pdf(self.loaded_object.data)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.pdf_file)))
        self.pdf_opened.emit(str(self.pdf_file))

    # -- closing ---------------------------------------------------------------------------------


def _report_item(item: ContentItem, *, root: bool = False) -> QTreeWidgetItem:
    concept = item.concept or f"({(item.value_type or 'by reference').lower()})"
    if not root and item.relationship and item.relationship != "CONTAINS":
        concept = f"[{item.relationship.lower()}] {concept}"
    value = "\n".join(item_value_lines(item)).strip("\n")
    if item.note:
        value = f"{value} ({item.note})" if value else f"({item.note})"
    row = QTreeWidgetItem([concept, value])
    top_left = Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft
    row.setTextAlignment(0, top_left)
    row.setTextAlignment(1, top_left)
    row.setToolTip(0, f"{item.relationship or 'document'} {item.value_type}".strip())
    row.setToolTip(1, value)
    if item.value_type == "CONTAINER":
        bold = QFont(row.font(0))
        bold.setBold(True)
        row.setFont(0, bold)
    return row


def _value_range(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    return (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)


class WaveformView(QWidget):
    """One multiplex group's channels stacked, one lane each, over a calibrated grid.

    Voltage channels are drawn at ``gain`` mm/mV and ``speed`` mm/s on the ECG grid (1 mm
    small squares, 5 mm large ones); other channels are scaled to fill their lane, on a grid of
    seconds. The widget is as wide as the recording at that speed: it lives in a scroll area,
    and draws the lead labels at the left of what is visible.
    """

    speed_changed = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("waveform_view")
        self.group: MultiplexGroup | None = None
        #: Each channel's (lowest, highest) value: a channel without voltage fills its lane.
        self._ranges: list[tuple[float, float]] = []
        self.speed = DEFAULT_SPEED
        self.gain = DEFAULT_GAIN
        self.setAutoFillBackground(False)

    @property
    def px_per_mm(self) -> float:
        return max(1.0, self.logicalDpiX() / 25.4)

    def set_group(self, group: MultiplexGroup) -> None:
        self.group = group
        self._ranges = [_value_range(c.samples) for c in group.channels]
        self._resize()

    def set_speed(self, speed: float) -> None:
        if speed != self.speed:
            self.speed = speed
            self._resize()
            self.speed_changed.emit(speed)

    def set_gain(self, gain: float) -> None:
        self.gain = gain
        self.update()

    def _resize(self) -> None:
        group = self.group
        mm = self.px_per_mm
        lanes = len(group.channels) if group is not None else 0
        duration = group.duration if group is not None else 0.0
        width = min(MAX_WIDTH, math.ceil((LEFT_MM + duration * self.speed + 10) * mm))
        height = math.ceil((TOP_MM + lanes * LANE_MM + 3) * mm)
        self.setFixedSize(max(width, 100), max(height, 100))
        self.update()

    def x_of(self, seconds: float) -> float:
        """The x of a time (seconds from the group's start)."""
        return (LEFT_MM + seconds * self.speed) * self.px_per_mm

    def lane_baseline(self, lane: int) -> float:
        return (TOP_MM + (lane + 0.5) * LANE_MM) * self.px_per_mm

    def wheelEvent(self, event: QWheelEvent) -> None:
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            step = 1 if event.angleDelta().y() > 0 else -1
            index = SPEEDS.index(self.speed) if self.speed in SPEEDS else 1
            self.set_speed(SPEEDS[max(0, min(len(SPEEDS) - 1, index + step))])
            event.accept()
            return
        super().wheelEvent(event)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        try:
            rect = QRectF(event.rect())
            # the part the scroll area shows: the labels stay at its left edge
            viewport = self.parentWidget()
            left = float(max(0, -self.x()))
            visible = QRectF(
                left, 0.0, float(viewport.width() if viewport else self.width()), self.height()
            )
            painter.fillRect(rect, QColor(255, 252, 250))
            group = self.group
            if group is None:
                return
            self._paint_grid(painter, rect, group)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            for lane, _channel in enumerate(group.channels):
                self._paint_channel(painter, rect, group, lane)
            self._paint_labels(painter, visible, group)
        finally:
            painter.end()

    def _paint_grid(self, painter: QPainter, rect: QRectF, group: MultiplexGroup) -> None:
        mm = self.px_per_mm
        top = TOP_MM * mm
        bottom = (TOP_MM + len(group.channels) * LANE_MM) * mm
        x0 = LEFT_MM * mm
        right = self.x_of(group.duration)
        small = QPen(QColor(245, 190, 190), 0)
        large = QPen(QColor(220, 110, 110), 0)
        step_mm = 1.0 if group.is_voltage else self.speed  # no voltage: a line per second
        first = max(0, math.floor((rect.left() - x0) / (step_mm * mm)))
        last = math.ceil((min(rect.right(), right) - x0) / (step_mm * mm))
        for k in range(first, last + 1):
            x = x0 + k * step_mm * mm
            major = not group.is_voltage or k % 5 == 0
            painter.setPen(large if major else small)
            painter.drawLine(QPointF(x, top), QPointF(x, bottom))
        if group.is_voltage:
            rows = round((bottom - top) / mm)
            for k in range(rows + 1):
                y = top + k * mm
                if y < rect.top() - 1 or y > rect.bottom() + 1:
                    continue
                painter.setPen(large if k % 5 == 0 else small)
                painter.drawLine(
                    QPointF(max(x0, rect.left()), y), QPointF(min(right, rect.right()), y)
                )
        # the time axis, in seconds, above the lanes
        painter.setPen(QColor(90, 40, 40))
        font = QFont(painter.font())
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.85))
        painter.setFont(font)
        every = 1 if self.speed * mm >= 40 else 5
        first_s = max(0, math.floor((rect.left() - x0) / (self.speed * mm)) - 1)
        last_s = math.ceil((rect.right() - x0) / (self.speed * mm))
        for second in range(first_s, min(last_s, math.ceil(group.duration)) + 1):
            if second % every:
                continue
            x = self.x_of(second)
            painter.drawLine(QPointF(x, top - 1.5 * mm), QPointF(x, top))
            painter.drawText(QPointF(x + 2, top - 2 * mm), f"{second} s")

    def _paint_channel(
        self, painter: QPainter, rect: QRectF, group: MultiplexGroup, lane: int
    ) -> None:
        mm = self.px_per_mm
        channel = group.channels[lane]
        baseline = self.lane_baseline(lane)
        values = channel.in_millivolts()
        if values is not None:
            scale = -self.gain * mm  # pixels per mV, up
            offset = 0.0
        else:
            values = channel.samples
            low, high = self._ranges[lane]
            span = high - low if high > low else 1.0
            scale = -(LANE_MM * 0.6 * mm) / span  # clear of the label
            offset = (low + high) / 2
        if group.is_voltage:  # the calibration pulse: 1 mV for 0.2 s
            pulse_x = 2 * mm
            pulse_w = 0.2 * self.speed * mm
            pulse_h = self.gain * mm
            painter.setPen(QPen(QColor(0, 0, 0), 1.2))
            painter.drawPolyline(
                QPolygonF(
                    [
                        QPointF(pulse_x - mm, baseline),
                        QPointF(pulse_x, baseline),
                        QPointF(pulse_x, baseline - pulse_h),
                        QPointF(pulse_x + pulse_w, baseline - pulse_h),
                        QPointF(pulse_x + pulse_w, baseline),
                        QPointF(pulse_x + pulse_w + mm, baseline),
                    ]
                )
            )
        px_per_sample = self.speed * mm / group.sampling_frequency
        x0 = LEFT_MM * mm
        start = max(0, math.floor((rect.left() - x0) / px_per_sample) - 1)
        stop = min(len(values), math.ceil((rect.right() - x0) / px_per_sample) + 2)
        if stop - start < 2:
            return
        segment = values[start:stop]
        xs = x0 + np.arange(start, stop, dtype=np.float64) * px_per_sample
        if px_per_sample < 0.5:  # several samples per pixel: each column's min and max
            per = max(1, int(1 / px_per_sample))
            usable = (len(segment) // per) * per
            if usable >= 2 * per:
                blocks = segment[:usable].reshape(-1, per)
                with np.errstate(all="ignore"):
                    lows, highs = np.nanmin(blocks, axis=1), np.nanmax(blocks, axis=1)
                segment = np.column_stack([lows, highs]).ravel()
                xs = np.repeat(xs[:usable:per], 2)
        ys = baseline + (segment - offset) * scale
        painter.setPen(QPen(QColor(10, 10, 10), 1.1))
        finite = np.isfinite(ys)
        # one polyline per run of samples (padding values are gaps)
        edges = np.flatnonzero(np.diff(np.concatenate(([0], finite.view(np.int8), [0]))))
        for begin, end in zip(edges[::2], edges[1::2], strict=True):
            if end - begin >= 2:
                points = [
                    QPointF(float(x), float(y))
                    for x, y in zip(xs[begin:end], ys[begin:end], strict=True)
                ]
                painter.drawPolyline(QPolygonF(points))

    def _paint_labels(self, painter: QPainter, visible: QRectF, group: MultiplexGroup) -> None:
        mm = self.px_per_mm
        font = QFont(painter.font())
        font.setBold(True)
        painter.setFont(font)
        metrics = painter.fontMetrics()
        for lane, channel in enumerate(group.channels):
            label = channel.label
            if channel.millivolt_scale is None and channel.units:
                label += f" ({channel.units})"
            y = (TOP_MM + lane * LANE_MM) * mm + metrics.ascent() + 2
            x = visible.left() + (2 * mm if visible.left() > 0 else LEFT_MM * mm * 1.1)
            box = QRectF(
                x - 2,
                y - metrics.ascent() - 1,
                metrics.horizontalAdvance(label) + 4,
                metrics.height() + 2,
            )
            painter.fillRect(box, QColor(255, 255, 255, 210))
            painter.setPen(QColor(20, 20, 120))
            painter.drawText(QPointF(x, y), label)
