"""The image view: one stack, one frame at a time, with the reading tools a radiologist expects.

Pixels reach the screen through :class:`viewer.imaging.display.FrameRenderer`, the same pipeline
``lightbox render`` writes to PNG, so what the screen shows is what the renderer makes. The uint8
buffer is wrapped as a :class:`QImage` without a copy and kept alive beside it (STYLE.md,
"Imaging"). The view never decodes: it asks its :class:`FrameSource` and shows "loading" for a
frame that is not there yet.

The view state (frame, window, zoom, pan, rotation, flips, cine, invert) and its geometry are a
Qt-free :class:`viewer.imaging.viewport.Viewport`; mouse drags are its tools
(:mod:`viewer.imaging.viewport`) and keys and menus call the same methods; the corner text is
:func:`viewer.imaging.annotations.view_corners`. This widget paints, keeps the renderers and the
display buffer, and forwards input.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from typing import Any

import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetricsF,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QPolygonF,
    QResizeEvent,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from viewer.imaging import annotations as notes
from viewer.imaging import measure
from viewer.imaging import measure_tools as mt
from viewer.imaging import presentation as pstate
from viewer.imaging import viewport as vp
from viewer.imaging.annotations import format_value
from viewer.imaging.display import CT_PRESETS, FrameRenderer, Voi, Window
from viewer.imaging.overlay import draw_overlays, overlay_masks
from viewer.qt.source import FrameSource

log = logging.getLogger(__name__)

#: Pixels of outline around a text drawn over the image.
_OUTLINE = 2

#: A line in image coordinates: (row, column) at each end.
Segment = tuple[tuple[float, float], tuple[float, float]]

#: Below this zoom (or below 1 for images over this many pixels) the view asks the renderer for
#: an anti-aliased reduction of what it shows instead of letting Qt decimate the full frame.
SCALED_ZOOM = 0.5
LARGE_PIXELS = 1024 * 1024
RENDERER_CACHE = 4
#: Frames whose corner text is kept (a few strings each).
CORNER_TEXT_CACHE = 256
#: ...and no more pixels than this in all (a renderer keeps float32 copies of its frame).
RENDERER_PIXEL_BUDGET = 32 * 1024 * 1024


def qimage_from_array(array: np.ndarray) -> QImage:
    """Wrap a C-contiguous uint8 (H, W) or (H, W, 3) array as a QImage, sharing its memory.

    The caller keeps ``array`` alive as long as the image (the QImage does not own the bytes).
    """
    if array.dtype != np.uint8 or not array.flags.c_contiguous:
        raise ValueError("the display buffer must be C-contiguous uint8")
    height, width = array.shape[:2]
    if array.ndim == 2:
        fmt = QImage.Format.Format_Grayscale8
    elif array.ndim == 3 and array.shape[2] == 3:
        fmt = QImage.Format.Format_RGB888
    else:
        raise ValueError(f"cannot show an array of shape {array.shape}")
    return QImage(array.data, width, height, array.strides[0], fmt)


class ImageView(QWidget):
    """Shows one frame of a :class:`FrameSource`; keys and mouse as in docs/controls.md."""

    position_changed = Signal(int)
    window_changed = Signal()
    view_changed = Signal()
    image_shown = Signal(int)
    pixel_probed = Signal(str)
    cine_changed = Signal(bool)
    frame_failed = Signal(int, str)  # a decoded frame the display pipeline refused
    measurements_changed = Signal()  # a shape drawn, moved, selected or removed here

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("image_view")
        #: What an empty view says (a viewport of a layout invites a series from the strip).
        self.empty_text = "Open a file or folder (Ctrl+O), or drop it here"
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(200, 200)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self._source: FrameSource | None = None
        self.viewport = vp.Viewport()
        self._tools: dict[Qt.MouseButton, vp.Tool] = {}
        self._tool: tuple[Qt.MouseButton, vp.Tool] | None = None
        self._renderers: OrderedDict[int, FrameRenderer] = OrderedDict()
        self._masks: dict[int, list[np.ndarray]] = {}
        self._failed: dict[int, str] = {}
        self._buffer_key: tuple[Any, ...] | None = None
        self._buffer: np.ndarray | None = None
        self._qimage: QImage | None = None
        self._last_shown: int | None = None
        self._wheel_rest = 0
        self._hover: QPointF | None = None  # the mouse over the view, for the readout
        self._reference_lines: list[Segment] = []
        self._text_images: OrderedDict[tuple[Any, ...], tuple[QImage, float]] = OrderedDict()
        self._presentation: pstate.PresentationState | None = None
        self._presented: pstate.ImagePresentation | None = None  # what was applied last
        self.key_images: set[tuple[str, int]] = set()  # (SOP Instance UID, frame from 1)
        self.board: mt.Board | None = None  # the window's measurements (shared by viewports)
        self._measure_kind: str | None = None
        self._draw_tool: mt.DrawTool | None = None
        self._results: OrderedDict[tuple[Any, ...], str] = OrderedDict()
        # the file's part of the corners per (position, frame, count), with the data set it was
        # read from: used only while the view still shows that very data set
        self._corner_text: OrderedDict[tuple[int, int, int], tuple[Any, notes.Corners]] = (
            OrderedDict()
        )
        self._cine = QTimer(self)
        self._cine.setTimerType(Qt.TimerType.PreciseTimer)
        self._cine.timeout.connect(self._on_cine_timeout)
        self._font = QFont(self.font())
        self._font.setPointSizeF(max(9.0, self._font.pointSizeF()))

    # ----------------------------------------------------------------- the source
    def set_source(self, source: FrameSource | None, position: int = 0) -> None:
        """Show ``source`` from ``position``; the view does not own it (the caller closes it)."""
        self.stop_cine()
        if self._source is not None:
            self._source.frame_ready.disconnect(self._on_source_frame_ready)
            self._source.problem_found.disconnect(self._on_source_problem_found)
        self._source = source
        self._renderers.clear()
        self._masks.clear()
        self._failed.clear()
        self._results.clear()
        self._corner_text.clear()
        if self._draw_tool is not None:
            self._draw_tool.cancel()
        self._drop_buffer()
        self._last_shown = None
        if source is not None:
            source.frame_ready.connect(
                self._on_source_frame_ready, Qt.ConnectionType.QueuedConnection
            )
            source.problem_found.connect(
                self._on_source_problem_found, Qt.ConnectionType.QueuedConnection
            )
        self.viewport.show_stack(len(source) if source is not None else 0, position)
        self._sync_geometry()
        self._learn_fps(self.viewport.position)
        self.position_changed.emit(self.viewport.position)
        self.window_changed.emit()
        self.view_changed.emit()
        self._reprobe()
        self.update()

    @property
    def source(self) -> FrameSource | None:
        return self._source

    def count(self) -> int:
        return len(self._source) if self._source is not None else 0

    @property
    def position(self) -> int:
        return self.viewport.position

    def set_position(self, position: int) -> None:
        self._changed(self.viewport.set_position(position))

    def step(self, delta: int) -> None:
        self._changed(self.viewport.step(delta))

    def page_step(self) -> int:
        return self.viewport.page_step()

    def _changed(self, changed: vp.Changed) -> None:
        """Repaint and tell the others what a viewport action changed."""
        if changed & vp.Changed.POSITION:
            self._sync_geometry()
            self._follow_presentation()
            self.position_changed.emit(self.viewport.position)
            self._reprobe()
        if changed & vp.Changed.WINDOW:
            self.window_changed.emit()
        if changed & vp.Changed.GEOMETRY:
            self.view_changed.emit()
        if changed & vp.Changed.ANNOTATIONS:
            self.measurements_changed.emit()
        if changed:
            self.update()

    def _sync_geometry(self) -> None:
        """The viewport learns the screen's and the current frame's size."""
        self.viewport.screen = (float(self.width()), float(self.height()))
        self.viewport.image = self._image_size()

    def _dataset(self, position: int | None = None) -> Any:
        if self._source is None or self.count() == 0:
            return None
        return self._source.dataset(self.viewport.position if position is None else position)

    def _renderer(self, position: int | None = None) -> FrameRenderer | None:
        """The renderer of a decoded frame (cached), or None while it is being decoded."""
        position = self.viewport.position if position is None else position
        if self._source is None or self.count() == 0:
            return None
        renderer = self._renderers.get(position)
        if renderer is not None:
            self._renderers.move_to_end(position)
            return renderer
        if position in self._failed:
            return None
        pixels = self._source.frame(position)
        dataset = self._source.dataset(position)
        if pixels is None or dataset is None:
            return None
        try:
            renderer = FrameRenderer(dataset, self._source.frame_index(position), pixels)
        except Exception as exc:  # a frame the pipeline refuses is a message, not a crash
            message = f"{self._source.path(position)}: cannot display: {exc}"
            self._failed[position] = message
            QTimer.singleShot(0, self, lambda: self.frame_failed.emit(position, message))
            return None
        self._renderers[position] = renderer
        while len(self._renderers) > 1 and (
            len(self._renderers) > RENDERER_CACHE
            or sum(r.shape[0] * r.shape[1] for r in self._renderers.values())
            > RENDERER_PIXEL_BUDGET
        ):
            old, _ = self._renderers.popitem(last=False)
            self._masks.pop(old, None)
        return renderer

    def is_displayable(self, position: int | None = None) -> bool:
        return self._renderer(position) is not None

    def _learn_fps(self, position: int) -> None:
        """The file's cine rate, as soon as a header of the stack is known."""
        view = self.viewport
        if view.fps_chosen:
            return
        ds = self._dataset(position) if self.count() else None
        view.set_fps(notes.cine_rate(ds), chosen=False)
        view.fps_chosen = ds is not None
        if self._cine.isActive():
            self._cine.setInterval(view.cine_interval_ms())

    def problem(self, position: int | None = None) -> str | None:
        """Why a frame cannot be shown: the loader's reason or the display pipeline's."""
        position = self.viewport.position if position is None else position
        if self._source is None or not 0 <= position < self.count():
            return None
        return self._source.problem(position) or self._failed.get(position)

    def _on_source_frame_ready(self, position: int) -> None:
        if not self._from_current_source(position):
            return  # queued before the source was replaced
        self._learn_fps(position)
        if position == self.viewport.position:
            self._drop_buffer()
            self._sync_geometry()
            self._follow_presentation()  # its header has come: the GSPS can apply now
            self._reprobe()
            if self.viewport.window is None:
                self.window_changed.emit()
            self.update()

    def _from_current_source(self, position: int) -> bool:
        sender = self.sender()
        return (sender is None or sender is self._source) and 0 <= position < self.count()

    def _on_source_problem_found(self, position: int, message: str) -> None:
        if not self._from_current_source(position):
            return
        if position == self.viewport.position:
            self.update()

    # ----------------------------------------------------------------- window / level
    def effective_window(self) -> Voi | None:
        if self.viewport.window is not None:
            return self.viewport.window
        renderer = self._renderer()
        return renderer.default_window if renderer is not None else None

    def minmax_window(self) -> Window | None:
        renderer = self._renderer()
        return renderer.minmax_window() if renderer is not None else None

    def set_window(self, window: Voi | None) -> None:
        """An explicit window (or VOI LUT) for every frame; None returns to each frame's own."""
        self.viewport.window = window
        self._changed(vp.Changed.WINDOW)

    def presets(self) -> list[Voi]:
        """What keys 1-8 give for the frame shown: CT's eight windows (centre/width in HU) on a
        CT, and on anything else the file's own windows, in file order (a CT preset in HU
        means nothing on an MR or a radiograph)."""
        ds = self._dataset()
        if ds is not None and str(ds.get("Modality", "") or "") == "CT":
            return list(CT_PRESETS.values())
        return self.file_windows()

    def apply_preset(self, number: int) -> None:
        """Preset ``number`` (1-8) of :meth:`presets`; nothing when there is none."""
        presets = self.presets()
        if 1 <= number <= len(presets):
            self.set_window(presets[number - 1])

    def auto_window(self) -> None:
        """Min-max of the frame's modality values."""
        window = self.minmax_window()
        if window is not None:
            self.set_window(window)

    def file_windows(self) -> list[Voi]:
        renderer = self._renderer()
        return list(renderer.file_windows) if renderer is not None else []

    @property
    def inverted(self) -> bool:
        return self.viewport.inverted

    def set_inverted(self, inverted: bool) -> None:
        self.viewport.inverted = inverted
        self._changed(vp.Changed.WINDOW)

    def toggle_invert(self) -> None:
        self.set_inverted(not self.viewport.inverted)

    @property
    def overlays_visible(self) -> bool:
        return self.viewport.overlays

    def set_overlays_visible(self, visible: bool) -> None:
        self.viewport.overlays = visible
        self._changed(vp.Changed.GEOMETRY)

    # ----------------------------------------------------------------- geometry
    @property
    def zoom(self) -> float:
        self._sync_geometry()
        return self.viewport.effective_zoom()

    @property
    def orient(self) -> notes.Orient:
        return self.viewport.orient

    @property
    def pan(self) -> QPointF:
        return QPointF(*self.viewport.pan)

    def _image_size(self) -> tuple[int, int] | None:
        """(columns, rows) of the current frame, from the decoded array or the header."""
        if self._source is None or self.count() == 0:
            return None
        pixels = self._source.frame(self.viewport.position)
        if pixels is not None and pixels.ndim >= 2:
            return int(pixels.shape[1]), int(pixels.shape[0])
        ds = self._dataset()
        if ds is not None and ds.get("Columns") and ds.get("Rows"):
            return int(ds.Columns), int(ds.Rows)
        return None

    def image_transform(self) -> QTransform:
        """Image coordinates (x = column, y = row, pixel centres at +0.5) to widget coordinates."""
        self._sync_geometry()
        return QTransform(*self.viewport.affine())

    def fit(self) -> None:
        self._changed(self.viewport.fit_to_screen())

    def actual_pixels(self) -> None:
        """One image pixel per screen pixel, about the widget centre."""
        self.set_zoom(1.0)

    def set_zoom(self, zoom: float, anchor: QPointF | None = None) -> None:
        """Zoom so that the image point under ``anchor`` (widget coordinates) stays put."""
        self._sync_geometry()
        at = (anchor.x(), anchor.y()) if anchor is not None else None
        self._changed(self.viewport.set_zoom(zoom, at))

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        self._sync_geometry()
        self.set_zoom(self.viewport.effective_zoom() * factor, anchor)

    def pan_by(self, delta: QPointF) -> None:
        self._sync_geometry()
        self._changed(self.viewport.pan_by(delta.x(), delta.y()))

    def rotate(self, clockwise: bool = True) -> None:
        self._changed(self.viewport.rotate(clockwise))

    def flip(self, horizontal: bool = True) -> None:
        self._changed(self.viewport.flip(horizontal))

    def reset_view(self) -> None:
        self._changed(self.viewport.reset_geometry())

    def image_point(self, widget_point: QPointF) -> tuple[int, int] | None:
        """(row, column) of the image pixel under a widget point, or None outside the image."""
        self._sync_geometry()
        return self.viewport.pixel_at((widget_point.x(), widget_point.y()))

    # ----------------------------------------------------------------- cine
    @property
    def fps(self) -> float:
        return self.viewport.fps

    def set_fps(self, fps: float) -> None:
        self.viewport.set_fps(fps)  # the user's choice stands
        if self._cine.isActive():
            self._cine.setInterval(self.viewport.cine_interval_ms())
        self._changed(vp.Changed.GEOMETRY)

    def is_playing(self) -> bool:
        return self._cine.isActive()

    def play(self) -> None:
        if self.count() < 2:
            return
        self._cine.start(self.viewport.cine_interval_ms())
        self.viewport.playing = True
        self.cine_changed.emit(True)
        self.update()

    def stop_cine(self) -> None:
        self.viewport.playing = False
        if self._cine.isActive():
            self._cine.stop()
            self.cine_changed.emit(False)
            self.update()

    def toggle_cine(self) -> None:
        if self.is_playing():
            self.stop_cine()
        else:
            self.play()

    def _on_cine_timeout(self) -> None:
        count = self.count()
        if count < 2 or self._source is None:
            self.stop_cine()
            return
        following = self.viewport.next_cine_position()
        if self._source.frame(following) is None and self._source.problem(following) is None:
            return  # wait for the decoder rather than flash "loading"
        self.set_position(following)

    # ----------------------------------------------------------------- the display buffer
    def _drop_buffer(self) -> None:
        self._buffer_key = None
        self._qimage = None
        self._buffer = None

    def display_buffer(self) -> np.ndarray | None:
        """The uint8 array the screen shows for the current frame (None while loading)."""
        renderer = self._renderer()
        if renderer is None:
            return None
        window = self.effective_window()
        zoom = self.zoom
        size = self._image_size() or (1, 1)
        inverted = self.viewport.inverted
        masks = self._overlay_masks() if self.viewport.overlays else []
        scaled: tuple[int, int] | None = None
        if not masks and (zoom <= SCALED_ZOOM or (zoom < 1 and size[0] * size[1] > LARGE_PIXELS)):
            device = zoom * self.devicePixelRatioF()  # what the screen's pixels can show
            scaled = (max(1, round(size[0] * device)), max(1, round(size[1] * device)))
        key = (self.viewport.position, id(renderer), window, inverted, len(masks), scaled)
        if key == self._buffer_key and self._buffer is not None:
            return self._buffer
        if scaled is not None:
            buffer = renderer.render_scaled(window, invert=inverted, size=scaled)
        else:
            buffer = renderer.render(window, invert=inverted)
            if masks:  # drawn in place: never into the renderer's own colour buffer
                buffer = draw_overlays(buffer.copy(), masks)
        buffer = np.ascontiguousarray(buffer, dtype=np.uint8)
        self._buffer = buffer
        self._qimage = qimage_from_array(buffer)
        self._buffer_key = key
        return buffer

    def display_image(self) -> QImage | None:
        """The QImage painted, sharing memory with :meth:`display_buffer`."""
        self.display_buffer()
        return self._qimage

    def _overlay_masks(self) -> list[np.ndarray]:
        if self.viewport.position not in self._masks:
            ds = self._dataset()
            masks: list[np.ndarray] = []
            if ds is not None and self._source is not None:
                try:
                    masks = list(
                        overlay_masks(ds, self._source.frame_index(self.viewport.position))
                    )
                except Exception as exc:
                    log.warning(
                        "overlay of frame %d not shown: %s", self.viewport.position + 1, exc
                    )
            self._masks[self.viewport.position] = masks
        return self._masks[self.viewport.position]

    # ----------------------------------------------------------------- painting
    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        try:
            painter.fillRect(self.rect(), Qt.GlobalColor.black)
            painter.setFont(self._font)
            if self._source is None or self.count() == 0:
                self._draw_centred(painter, self.empty_text)
                return
            image = None
            try:
                image = self.display_image()
            except Exception as exc:  # never let a frame take the window down
                log.debug("display failed", exc_info=True)
                self._draw_centred(painter, f"Cannot display this image: {exc}", error=True)
            if image is not None:
                size = self._image_size() or (image.width(), image.height())
                painter.save()
                painter.setTransform(self.image_transform())
                painter.setRenderHint(
                    QPainter.RenderHint.SmoothPixmapTransform,
                    abs(self.zoom - 1) > 1e-6 or image.width() != size[0],
                )
                painter.drawImage(QRectF(0, 0, size[0], size[1]), image)
                self._draw_reference_lines(painter)
                painter.restore()
                self._draw_presentation(painter)
                self._draw_measurements(painter)
            elif self.problem():
                self._draw_centred(painter, str(self.problem()), error=True)
            else:
                self._draw_centred(
                    painter, f"Loading image {self.viewport.position + 1}/{self.count()}…"
                )
            try:
                self._draw_annotations(painter, decoded=image is not None)
            except Exception:  # odd header values must not stop the image being drawn
                log.debug("annotations failed", exc_info=True)
        finally:
            painter.end()
        if image is not None and self._last_shown != self.viewport.position:
            self._last_shown = self.viewport.position
            # After the paint, so that a slot may close or repaint the window.
            shown = self.viewport.position
            QTimer.singleShot(0, self, lambda: self.image_shown.emit(shown))

    # ----------------------------------------------------------------- measurements
    @property
    def measure_kind(self) -> str | None:
        return self._measure_kind

    def set_measure_kind(self, kind: str | None) -> None:
        """What the left button draws (:data:`viewer.imaging.measure_tools.KINDS`); None:
        it moves measurements and pans."""
        if self._draw_tool is not None:
            self._changed(self._draw_tool.cancel())
        self._measure_kind = kind
        self._draw_tool = (
            mt.DrawTool(kind, self.board, self.measurement_key, self.measurement_scale)
            if kind is not None and self.board is not None
            else None
        )
        self.setCursor(Qt.CursorShape.CrossCursor if kind else Qt.CursorShape.ArrowCursor)

    def measurement_key(self) -> mt.Key | None:
        """The image shown, as the board keys it: (SOP Instance UID, frame number from 1)."""
        ds = self._dataset()
        uid = str(ds.get("SOPInstanceUID", "") or "") if ds is not None else ""
        if not uid or self._source is None:
            return None
        return (uid, self._source.frame_index(self.viewport.position) + 1)

    def measurement_scale(self) -> measure.Scale:
        """The calibration of the frame shown, for lengths while drawing."""
        ds = self._dataset()
        if ds is None or self._source is None:
            return measure.PIXELS
        calibration = measure.Calibration.from_dataset(
            ds, self._source.frame_index(self.viewport.position)
        )
        return calibration.scale

    def measurements(self) -> list[tuple[measure.Shape, str]]:
        """The shapes on the frame shown with what each measures (as drawn beside it)."""
        board = self.board
        key = self.measurement_key()
        if board is None or key is None:
            return []
        return [(shape, self._result_text(shape)) for shape in board.shapes(key)]

    def _result_text(self, shape: measure.Shape) -> str:
        position = self.viewport.position
        cache_key = (position, shape)
        text = self._results.get(cache_key)
        if text is not None:
            return text
        ds = self._dataset()
        pixels = self._source.frame(position) if self._source is not None else None
        frame_index = self._source.frame_index(position) if self._source is not None else 0
        try:
            calibration = measure.Calibration.from_dataset(ds, frame_index)
            values = (
                measure.FrameValues.from_frame(ds, frame_index, pixels)
                if pixels is not None and ds is not None and shape.kind in measure.ROI_KINDS
                else None
            )
            text = measure.measure(shape, calibration, values).text()
        except Exception as exc:  # odd geometry or values: say so beside the shape
            log.debug("measurement failed", exc_info=True)
            text = f"cannot measure: {exc}"
        self._results[cache_key] = text
        while len(self._results) > 256:
            self._results.popitem(last=False)
        return text

    def _draw_measurements(self, painter: QPainter) -> None:
        """The board's shapes of this frame (and the one being drawn), under the image
        transform; their values beside them in screen coordinates."""
        board = self.board
        key = self.measurement_key()
        if board is None or key is None:
            return
        shapes = list(enumerate(board.shapes(key)))
        preview = board.preview
        drawing = preview[1] if preview is not None and preview[0] == key else None
        if not shapes and drawing is None:
            return
        transform = self.image_transform()
        selected = board.selected
        painter.save()
        painter.setTransform(transform)
        for index, shape in shapes:
            chosen = selected is not None and selected.key == key and selected.index == index
            _paint_shape(painter, shape, QColor(255, 170, 40) if chosen else QColor(90, 200, 255))
            if chosen:
                _paint_handles(painter, shape, transform)
        if drawing is not None:
            _paint_shape(painter, drawing, QColor(255, 255, 120))
        painter.restore()
        metrics = QFontMetricsF(painter.font())
        for _index, shape in shapes:
            # an ROI's values one per line, beside the shape's right-most handle, kept inside
            # the view (on the left of the shape when there is no room on its right)
            lines = self._result_text(shape).split(", ")
            width = max(metrics.horizontalAdvance(line) for line in lines) + 2 * _OUTLINE
            height = metrics.lineSpacing() * len(lines)
            points = [transform.map(QPointF(c + 0.5, r + 0.5)) for r, c in measure.handles(shape)]
            right = max(p.x() for p in points)
            left = min(p.x() for p in points)
            top = min(p.y() for p in points)
            x = right + 8 if right + 8 + width <= self.width() else left - 8 - width
            x = min(max(x, 4.0), max(4.0, self.width() - width - 4))
            y = min(max(top, 4.0), max(4.0, self.height() - height - 4)) + metrics.ascent()
            for number, line in enumerate(lines):
                self._draw_text(painter, x, y + number * metrics.lineSpacing(), line)

    # ----------------------------------------------------------------- presentation states
    @property
    def presentation(self) -> pstate.PresentationState | None:
        return self._presentation

    def set_presentation(self, gsps: pstate.PresentationState | None) -> None:
        """Apply a Grayscale Softcopy Presentation State to the images it references (PS3.4
        N.2): its window (or VOI LUT) and Presentation LUT Shape, rotation and flip, displayed
        area and annotations; None takes it off (the file's own window, the view reset)."""
        self._presentation = gsps
        self._presented = None
        if gsps is None:
            self.viewport.window = None
            self.viewport.inverted = False
            self._changed(self.viewport.reset_geometry() | vp.Changed.WINDOW)
            return
        self.apply_presentation()

    def image_presentation(self) -> pstate.ImagePresentation | None:
        """What the presentation state asks for the frame shown (None: it does not apply)."""
        key = self.measurement_key()
        if self._presentation is None or key is None:
            return None
        return pstate.for_image(self._presentation, key[0], key[1])

    def _follow_presentation(self) -> None:
        """Another frame: the presentation state's settings for it, when they differ from the
        ones applied (scrolling within one presentation keeps the reader's zoom and pan)."""
        if self._presentation is None:
            return
        shown = self.image_presentation()
        if shown is not None and shown != self._presented:
            self.apply_presentation()

    def apply_presentation(self) -> None:
        """Window, inversion, rotation, flip and displayed area of the frame shown."""
        shown = self.image_presentation()
        if shown is None:
            return
        self._presented = shown
        self._sync_geometry()
        changed = self.viewport.reset_geometry() | vp.Changed.WINDOW
        if shown.voi is not None:
            self.viewport.window = shown.voi
        self.viewport.inverted = shown.inverted
        for _ in range((shown.rotation // 90) % 4):
            changed |= self.viewport.rotate(True)
        if shown.horizontal_flip:
            changed |= self.viewport.flip(True)
        area = shown.displayed_area
        if area is not None and self.viewport.image is not None:
            (r0, r1), (c0, c1) = area.rows, area.columns
            corners = [
                self.viewport.image_to_screen((c + 0.5, r + 0.5))
                for r, c in ((r0, c0), (r1 + 1, c1 + 1))
            ]
            zoom = self.viewport.effective_zoom()
            width = abs(corners[1][0] - corners[0][0]) / zoom
            height = abs(corners[1][1] - corners[0][1]) / zoom
            screen_w, screen_h = self.viewport.screen
            if area.size_mode == "MAGNIFY" and area.magnification:
                wanted = float(area.magnification)
            else:  # SCALE TO FIT (TRUE SIZE needs the screen's pixel pitch: fitted too)
                wanted = min(screen_w / max(width, 1.0), screen_h / max(height, 1.0))
            changed |= self.viewport.set_zoom(wanted)
            centre = self.viewport.image_to_screen(((c0 + c1 + 1) / 2, (r0 + r1 + 1) / 2))
            pan = self.viewport.pan
            changed |= self.viewport.set_pan(
                (pan[0] + screen_w / 2 - centre[0], pan[1] + screen_h / 2 - centre[1])
            )
        self._changed(changed)

    def _draw_presentation(self, painter: QPainter) -> None:
        """The presentation state's graphic and text annotations of the frame shown: PIXEL
        units on the image, DISPLAY units across the displayed area (the image when none)."""
        shown = self.image_presentation()
        if shown is None or not shown.annotations:
            return
        transform = self.image_transform()
        size = self._image_size() or (1, 1)
        area = shown.displayed_area
        (r0, r1), (c0, c1) = (
            (area.rows, area.columns) if area else ((0, size[1] - 1), (0, size[0] - 1))
        )
        colours = {layer.name: _layer_colour(layer) for layer in shown.layers}

        def image_point(units: str, point: tuple[float, float]) -> QPointF:
            row, column = point
            if units == "DISPLAY":  # fractions of the displayed area, (0, 0) its top left
                row = r0 - 0.5 + row * (r1 - r0 + 1)
                column = c0 - 0.5 + column * (c1 - c0 + 1)
            return transform.map(QPointF(column + 0.5, row + 0.5))

        for annotation in shown.annotations:
            colour = colours.get(annotation.layer, QColor(255, 220, 60))
            for pen_colour, width in ((QColor(0, 0, 0), 3.0), (colour, 1.5)):
                painter.setPen(QPen(pen_colour, width))
                painter.setBrush(Qt.BrushStyle.NoBrush)
                for graphic in annotation.graphics:
                    points = [image_point(graphic.units, p) for p in graphic.points]
                    _paint_graphic(painter, graphic.graphic_type, points, graphic.closed)
            for text in annotation.texts:
                where = text.anchor if text.anchor is not None else text.box_top_left
                units = text.anchor_units if text.anchor is not None else text.box_units
                if where is None:
                    continue
                at = image_point(units, where)
                for number, line in enumerate(text.text.splitlines() or [""]):
                    self._draw_text(painter, at.x() + 4, at.y() + 14 + 16 * number, line, colour)

    # ----------------------------------------------------------------- reference lines
    @property
    def reference_lines(self) -> list[Segment]:
        return list(self._reference_lines)

    def set_reference_lines(self, lines: list[Segment]) -> None:
        """Where other viewports' slices cut this image: (row, column) ends, pixel centres at
        whole numbers (:func:`viewer.imaging.linking.reference_line`)."""
        if lines != self._reference_lines:
            self._reference_lines = list(lines)
            self.update()

    def _draw_reference_lines(self, painter: QPainter) -> None:
        """Drawn under the image transform (x = column + 0.5, y = row + 0.5), a cosmetic pen."""
        for colour, width in ((QColor(0, 0, 0), 3.0), (QColor(120, 220, 120), 1.5)):
            pen = QPen(colour, width)
            pen.setCosmetic(True)
            painter.setPen(pen)
            for (r0, c0), (r1, c1) in self._reference_lines:
                painter.drawLine(QPointF(c0 + 0.5, r0 + 0.5), QPointF(c1 + 0.5, r1 + 0.5))

    def match_geometry(self, other: ImageView) -> None:
        """Zoom and pan as ``other`` has them (linked viewports)."""
        state, mine = other.viewport, self.viewport
        if (mine.fit, mine.zoom, mine.pan) != (state.fit, state.zoom, state.pan):
            mine.fit, mine.zoom, mine.pan = state.fit, state.zoom, state.pan
            self._changed(vp.Changed.GEOMETRY)

    def _draw_text(
        self, painter: QPainter, x: float, y: float, text: str, colour: QColor | None = None
    ) -> None:
        """Text with a dark outline, legible on white bone and black air alike; each text is
        drawn once into a small image and kept (corners repeat from frame to frame: drawing
        the outline's five passes every paint cost more than the image)."""
        colour = colour or QColor(240, 240, 240)
        font = painter.font()
        key = (text, colour.rgba(), font.key(), self.devicePixelRatioF())
        cached = self._text_images.get(key)
        if cached is None:
            metrics = QFontMetricsF(font)
            ratio = self.devicePixelRatioF()
            width = metrics.horizontalAdvance(text) + 2 * _OUTLINE
            height = metrics.height() + 2 * _OUTLINE
            image = QImage(
                max(1, math.ceil(width * ratio)),
                max(1, math.ceil(height * ratio)),
                QImage.Format.Format_ARGB32_Premultiplied,
            )
            image.setDevicePixelRatio(ratio)
            image.fill(Qt.GlobalColor.transparent)
            baseline = _OUTLINE + metrics.ascent()
            text_painter = QPainter(image)
            text_painter.setFont(font)
            text_painter.setPen(QColor(0, 0, 0))
            for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                text_painter.drawText(QPointF(_OUTLINE + dx, baseline + dy), text)
            text_painter.setPen(colour)
            text_painter.drawText(QPointF(_OUTLINE, baseline), text)
            text_painter.end()
            cached = (image, baseline)
            self._text_images[key] = cached
            while len(self._text_images) > 512:
                self._text_images.popitem(last=False)
        else:
            self._text_images.move_to_end(key)
        image, baseline = cached
        painter.drawImage(QPointF(x - _OUTLINE, y - baseline), image)

    def _draw_centred(self, painter: QPainter, text: str, *, error: bool = False) -> None:
        """A message across the middle of the view, wrapped to its width."""
        box = QRectF(20, self.height() / 2 - 60, max(40, self.width() - 40), 120)
        flags = int(Qt.AlignmentFlag.AlignCenter) | int(Qt.TextFlag.TextWordWrap)
        painter.setPen(QColor(0, 0, 0))
        for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            painter.drawText(box.translated(dx, dy), flags, text)
        painter.setPen(QColor(255, 140, 90) if error else QColor(240, 240, 240))
        painter.drawText(box, flags, text)

    def _draw_block(self, painter: QPainter, lines: list[str], corner: str) -> None:
        metrics = QFontMetricsF(painter.font())
        margin = 6.0
        step = metrics.lineSpacing()
        top = corner.startswith("top")
        for n, line in enumerate(lines):
            if top:
                y = margin + metrics.ascent() + n * step
            else:
                y = self.height() - margin - metrics.descent() - (len(lines) - 1 - n) * step
            if corner.endswith("left"):
                x = margin
            else:
                x = self.width() - margin - metrics.horizontalAdvance(line)
            self._draw_text(painter, x, y, line)

    def corner_lines(self) -> dict[str, list[str]]:
        """The four corners as drawn: patient, study, series/image, window/zoom."""
        renderer = self._renderer()
        ds = self._dataset()
        frame_index = self._source.frame_index(self.viewport.position) if self._source else 0
        corners = notes.view_corners(
            ds,
            frame_index,
            self.viewport.position,
            self.count(),
            file_text=self._file_corners(ds, frame_index),
            window=self.effective_window(),
            colour=renderer is None or renderer.is_colour,
            inverted=self.viewport.inverted,
            zoom=self.zoom,
            cine_fps=self.viewport.fps if self.is_playing() else None,
        )
        key = self.measurement_key() if (self.key_images or self._presentation) else None
        if key is not None and key in self.key_images:
            block = corners.setdefault("top_right", [])
            lossy = bool(block) and block[-1].startswith("LOSSY")
            block.insert(len(block) - 1 if lossy else len(block), "KEY IMAGE")
        shown = self.image_presentation() if key is not None else None
        # named only once applied (its header may come a moment before the frame that applies it)
        if shown is not None and self._presentation is not None and shown == self._presented:
            label = self._presentation.label or "presentation state"
            corners.setdefault("bottom_right", []).append(f"GSPS: {label}")
        return corners

    def _file_corners(self, ds: Any, frame_index: int) -> notes.Corners:
        """:func:`~viewer.imaging.annotations.corner_text` of the frame shown, read from its
        header once (a scroll back, a window drag or a cine loop repaints the same frames)."""
        key = (self.viewport.position, frame_index, self.count())
        cached = self._corner_text.get(key)
        if cached is not None and cached[0] is ds:
            self._corner_text.move_to_end(key)
            return cached[1]
        text = notes.corner_text(ds, frame_index, self.viewport.position, self.count())
        self._corner_text[key] = (ds, text)
        while len(self._corner_text) > CORNER_TEXT_CACHE:
            self._corner_text.popitem(last=False)
        return text

    def edge_letters(self) -> dict[str, str]:
        """Orientation letters for the screen's edges, after the user's rotations and flips."""
        frame_index = self._source.frame_index(self.viewport.position) if self._source else 0
        return notes.edge_letters(
            notes.image_axes(self._dataset(), frame_index), self.viewport.orient
        )

    def scale_bar(self) -> tuple[float, float, str] | None:
        """(length in screen pixels, length in mm, label) of the horizontal scale bar."""
        frame_index = self._source.frame_index(self.viewport.position) if self._source else 0
        spacing = notes.pixel_spacing(self._dataset(), frame_index)
        if spacing is None:
            return None
        mm_per_pixel = notes.screen_mm_per_pixel(spacing, self.viewport.orient, self.zoom)
        length_mm = notes.nice_length(0.25 * self.width() * mm_per_pixel)
        if length_mm <= 0:
            return None
        label = f"{length_mm:g} mm"
        if spacing.detector:
            label += " (at detector)"
        elif spacing.note:
            label += f" ({spacing.note})"
        return length_mm / mm_per_pixel, length_mm, label

    def _draw_annotations(self, painter: QPainter, *, decoded: bool) -> None:
        lines = self.corner_lines()
        for corner, block in lines.items():
            if corner == "top_right" and block and block[-1].startswith("LOSSY"):
                self._draw_block(painter, block[:-1], corner)
                self._draw_lossy(painter, block[-1], len(block) - 1)
            else:
                self._draw_block(painter, block, corner)
        metrics = QFontMetricsF(painter.font())
        letters = self.edge_letters()
        big = QFont(painter.font())
        big.setBold(True)
        painter.setFont(big)
        bold = QFontMetricsF(big)
        w, h = self.width(), self.height()
        positions = {
            "left": lambda t: (6.0, h / 2 + bold.ascent() / 2),
            "right": lambda t: (w - 6.0 - bold.horizontalAdvance(t), h / 2 + bold.ascent() / 2),
            "top": lambda t: ((w - bold.horizontalAdvance(t)) / 2, 6.0 + bold.ascent()),
            "bottom": lambda t: ((w - bold.horizontalAdvance(t)) / 2, h - 6.0 - bold.descent()),
        }
        for edge, text in letters.items():
            if text:
                x, y = positions[edge](text)
                self._draw_text(painter, x, y, text, QColor(255, 230, 120))
        painter.setFont(self._font)
        bar = self.scale_bar() if decoded else None
        if bar is not None:
            length, _, label = bar
            y = h - 10.0 - bold.lineSpacing() - 4
            x0 = (w - length) / 2
            for pen in (QPen(QColor(0, 0, 0), 4), QPen(QColor(240, 240, 240), 2)):
                painter.setPen(pen)
                painter.drawLine(QPointF(x0, y), QPointF(x0 + length, y))
                for x in (x0, x0 + length / 2, x0 + length):
                    tick = 8 if x != x0 + length / 2 else 5
                    painter.drawLine(QPointF(x, y), QPointF(x, y - tick))
            label_x = (w - metrics.horizontalAdvance(label)) / 2
            self._draw_text(painter, label_x, y - 10 - metrics.descent(), label)

    def _draw_lossy(self, painter: QPainter, text: str, line: int) -> None:
        font = QFont(painter.font())
        font.setBold(True)
        painter.setFont(font)
        metrics = QFontMetricsF(font)
        y = 6.0 + metrics.ascent() + line * metrics.lineSpacing()
        x = self.width() - 6.0 - metrics.horizontalAdvance(text)
        self._draw_text(painter, x, y, text, QColor(255, 80, 80))
        painter.setFont(self._font)

    # ----------------------------------------------------------------- input
    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._sync_geometry()
        self.view_changed.emit()

    def tool_for(self, button: Qt.MouseButton, modifiers: Qt.KeyboardModifier) -> vp.Tool | None:
        """The mouse tool a drag starts (docs/controls.md): right windows; left draws the
        measurement chosen, else moves a measurement under it, else pans; middle pans;
        Shift+left zooms; Ctrl+left scrolls through the stack."""
        if button == Qt.MouseButton.RightButton:
            return vp.WindowTool()
        if button == Qt.MouseButton.LeftButton:
            if modifiers & Qt.KeyboardModifier.ShiftModifier:
                return vp.ZoomTool()
            if modifiers & Qt.KeyboardModifier.ControlModifier:
                return vp.ScrollTool()
            if self.board is not None and self._draw_tool is not None:
                return self._draw_tool
            if self.board is not None:
                return mt.EditTool(self.board, self.measurement_key, self.measurement_scale)
            return vp.PanTool()
        if button == Qt.MouseButton.MiddleButton:
            return vp.PanTool()
        return None

    def _point(self, event: QMouseEvent) -> vp.Point:
        position = event.position()
        return (position.x(), position.y())

    def mousePressEvent(self, event: QMouseEvent) -> None:
        tool = self.tool_for(event.button(), event.modifiers())
        if tool is None:
            super().mousePressEvent(event)
            return
        self._sync_geometry()
        self._tool = (event.button(), tool)
        self._changed(tool.press(self.viewport, self, self._point(event)))
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._tool is not None:
            self._sync_geometry()
            self._changed(self._tool[1].move(self.viewport, self._point(event)))
            event.accept()
            return
        self.probe(event.position())

    def _reprobe(self) -> None:
        """The frame under the mouse changed: its value, or nothing while it is not decoded."""
        if self._hover is not None:
            self.probe(self._hover)

    def leaveEvent(self, event: QEvent) -> None:
        self._hover = None
        self.pixel_probed.emit("")
        super().leaveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._tool is not None and event.button() == self._tool[0]:
            _, tool = self._tool
            self._tool = None
            self._changed(tool.release(self.viewport, self._point(event)))
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def probe(self, point: QPointF) -> None:
        """The modality value under the cursor (HU for CT) for the status bar: always the
        frame shown's, so it is taken again whenever the frame, the series or the medium
        changes under a still mouse (:meth:`_reprobe`)."""
        self._hover = QPointF(point)
        renderer = self._renderer()
        where = self.image_point(point)
        if renderer is None or where is None:
            self.pixel_probed.emit("")
            return
        row, column = where
        try:
            value = renderer.modality_value(row, column)
        except Exception as exc:
            self.pixel_probed.emit(f"x {column}, y {row}: {exc}")
            return
        self.pixel_probed.emit(f"x {column}, y {row}: {format_value(value, renderer.units)}")

    def wheelEvent(self, event: QWheelEvent) -> None:
        delta = event.angleDelta().y()
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            if delta:
                self.zoom_by(vp.ZOOM_STEP ** (delta / 120), event.position())
            event.accept()
            return
        self._wheel_rest += delta
        steps = int(self._wheel_rest / 120)
        if steps:
            self._wheel_rest -= steps * 120
            self.step(-steps)  # wheel towards the user: the next image
        event.accept()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        shift = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        control = bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier)
        K = Qt.Key
        if control:
            super().keyPressEvent(event)
            return
        actions: dict[int, Any] = {
            K.Key_Up: lambda: self.step(-1),
            K.Key_Left: lambda: self.step(-1),
            K.Key_Down: lambda: self.step(1),
            K.Key_Right: lambda: self.step(1),
            K.Key_PageUp: lambda: self.step(-self.page_step()),
            K.Key_PageDown: lambda: self.step(self.page_step()),
            K.Key_Home: lambda: self.set_position(0),
            K.Key_End: lambda: self.set_position(self.count() - 1),
            K.Key_0: lambda: self.set_window(None),
            K.Key_A: self.auto_window,
            K.Key_I: self.toggle_invert,
            K.Key_F: self.fit,
            K.Key_N: self.actual_pixels,
            K.Key_R: lambda: self.rotate(clockwise=not shift),
            K.Key_H: lambda: self.flip(horizontal=True),
            K.Key_V: lambda: self.flip(horizontal=False),
            K.Key_O: lambda: self.set_overlays_visible(not self.viewport.overlays),
            K.Key_Space: self.toggle_cine,
            K.Key_Plus: lambda: self.set_fps(self.viewport.fps * 1.25),
            K.Key_Equal: lambda: self.set_fps(self.viewport.fps * 1.25),
            K.Key_Minus: lambda: self.set_fps(self.viewport.fps / 1.25),
        }
        for number, preset_key in enumerate(
            (K.Key_1, K.Key_2, K.Key_3, K.Key_4, K.Key_5, K.Key_6, K.Key_7, K.Key_8), start=1
        ):
            actions[preset_key] = lambda n=number: self.apply_preset(n)
        action = actions.get(key)
        if action is None:
            super().keyPressEvent(event)
            return
        action()
        event.accept()


def _paint_shape(painter: QPainter, shape: measure.Shape, colour: QColor) -> None:
    """One shape in image coordinates (x = column + 0.5, y = row + 0.5), a cosmetic pen with
    a dark edge so it shows on bone and on air."""

    def at(p: tuple[float, float]) -> QPointF:
        return QPointF(p[1] + 0.5, p[0] + 0.5)

    for pen_colour, width in ((QColor(0, 0, 0), 3.0), (colour, 1.5)):
        pen = QPen(pen_colour, width)
        pen.setCosmetic(True)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        if isinstance(shape, measure.Distance):
            painter.drawLine(at(shape.p0), at(shape.p1))
        elif isinstance(shape, measure.Angle):
            painter.drawLine(at(shape.a), at(shape.vertex))
            painter.drawLine(at(shape.vertex), at(shape.b))
        elif isinstance(shape, measure.Bidirectional):
            painter.drawLine(at(shape.p0), at(shape.p1))
            painter.drawLine(at(shape.q0), at(shape.q1))
        elif isinstance(shape, measure.RectROI | measure.EllipseROI):
            top, bottom = sorted((shape.p0[0], shape.p1[0]))
            left, right = sorted((shape.p0[1], shape.p1[1]))
            rect = QRectF(left + 0.5, top + 0.5, right - left, bottom - top)
            if isinstance(shape, measure.RectROI):
                painter.drawRect(rect)
            else:
                painter.drawEllipse(rect)
        elif isinstance(shape, measure.FreehandROI):
            painter.drawPolygon(QPolygonF([at(v) for v in shape.vertices]))


def _paint_handles(painter: QPainter, shape: measure.Shape, transform: QTransform) -> None:
    """Small squares on the handles of the selected shape, a constant size on screen."""
    painter.save()
    painter.resetTransform()
    painter.setPen(QPen(QColor(0, 0, 0), 1))
    painter.setBrush(QColor(255, 170, 40))
    for row, column in measure.handles(shape):
        p = transform.map(QPointF(column + 0.5, row + 0.5))
        painter.drawRect(QRectF(p.x() - 3, p.y() - 3, 6, 6))
    painter.restore()


def _layer_colour(layer: pstate.GraphicLayer) -> QColor:
    """A layer's recommended colour: its grey value (PS3.3 C.10.7.1.1), else yellow (CIELab is
    approximated by its lightness: annotations stay legible, the hue is not promised)."""
    if layer.grey is not None:
        grey = max(0, min(255, layer.grey >> 8))
        return QColor(grey, grey, grey)
    if layer.cielab is not None:
        lightness = max(0, min(255, layer.cielab[0] >> 8))
        return QColor(255, 220, max(60, lightness // 2))
    return QColor(255, 220, 60)


def _paint_graphic(painter: QPainter, kind: str, points: list[QPointF], closed: bool) -> None:
    """One graphic object in screen points (PS3.3 C.10.5.1.2)."""
    if not points:
        return
    if kind == "POINT":
        for p in points:
            painter.drawLine(p + QPointF(-4, 0), p + QPointF(4, 0))
            painter.drawLine(p + QPointF(0, -4), p + QPointF(0, 4))
    elif kind == "CIRCLE" and len(points) >= 2:
        centre, edge = points[0], points[1]
        radius = math.hypot(edge.x() - centre.x(), edge.y() - centre.y())
        painter.drawEllipse(centre, radius, radius)
    elif kind == "ELLIPSE" and len(points) >= 4:
        # major axis end points, then minor axis end points
        (a, b, c, d) = points[:4]
        centre = (a + b) / 2
        major = math.hypot(b.x() - a.x(), b.y() - a.y()) / 2
        minor = math.hypot(d.x() - c.x(), d.y() - c.y()) / 2
        angle = math.degrees(math.atan2(b.y() - a.y(), b.x() - a.x()))
        painter.save()
        painter.translate(centre)
        painter.rotate(angle)
        painter.drawEllipse(QPointF(0, 0), major, minor)
        painter.restore()
    elif closed:
        painter.drawPolygon(QPolygonF(points))
    else:
        painter.drawPolyline(QPolygonF(points))
