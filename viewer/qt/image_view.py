"""The image view: one stack, one frame at a time, with the reading tools a radiologist expects.

Pixels reach the screen through :class:`viewer.imaging.display.FrameRenderer`, the same pipeline
``lightbox render`` writes to PNG, so what the screen shows is what the renderer makes. The uint8
buffer is wrapped as a :class:`QImage` without a copy and kept alive beside it (STYLE.md,
"Imaging"). The view never decodes: it asks its :class:`FrameSource` and shows "loading" for a
frame that is not there yet.

Geometry: the image (``columns`` x ``rows`` pixels) is centred on the widget centre plus ``pan``,
scaled by ``zoom`` (screen pixels per image pixel) and turned by ``orient``, a signed permutation
built from the user's rotations and flips in screen space.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
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
    QResizeEvent,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from viewer.imaging.display import CT_PRESETS, FrameRenderer, Voi, Window
from viewer.imaging.overlay import draw_overlays, overlay_masks
from viewer.qt import annotations as notes
from viewer.qt.source import FrameSource

log = logging.getLogger(__name__)

ZOOM_STEP = 1.25
MIN_ZOOM = 1 / 64
MAX_ZOOM = 64.0
MIN_FPS = 0.5
MAX_FPS = 120.0
#: Below this zoom (or below 1 for images over this many pixels) the view asks the renderer for
#: an anti-aliased reduction of what it shows instead of letting Qt decimate the full frame.
SCALED_ZOOM = 0.5
LARGE_PIXELS = 1024 * 1024
RENDERER_CACHE = 4
#: ...and no more pixels than this in all (a renderer keeps float32 copies of its frame).
RENDERER_PIXEL_BUDGET = 32 * 1024 * 1024

_ROTATE_CW: notes.Orient = ((0, -1), (1, 0))
_ROTATE_CCW: notes.Orient = ((0, 1), (-1, 0))
_FLIP_H: notes.Orient = ((-1, 0), (0, 1))
_FLIP_V: notes.Orient = ((1, 0), (0, -1))


def _compose(first: notes.Orient, then: notes.Orient) -> notes.Orient:
    """``then @ first``: apply ``first`` to image directions, then ``then`` on the screen."""
    (a, b), (c, d) = then
    (e, f), (g, h) = first
    return ((a * e + b * g, a * f + b * h), (c * e + d * g, c * f + d * h))


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


@dataclass
class _Drag:
    button: Qt.MouseButton
    start: QPointF
    window: Window | None
    step: float
    pan: QPointF


class ImageView(QWidget):
    """Shows one frame of a :class:`FrameSource`; keys and mouse as in docs/controls.md."""

    position_changed = Signal(int)
    window_changed = Signal()
    view_changed = Signal()
    image_shown = Signal(int)
    pixel_probed = Signal(str)
    cine_changed = Signal(bool)
    frame_failed = Signal(int, str)  # a decoded frame the display pipeline refused

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("image_view")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(200, 200)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self._source: FrameSource | None = None
        self._position = 0
        self._window: Voi | None = None  # None: each frame's default window
        self._invert = False
        self._overlays = True
        self._zoom = 1.0
        self._fit = True
        self._pan = QPointF(0.0, 0.0)
        self._orient: notes.Orient = notes.IDENTITY
        self._renderers: OrderedDict[int, FrameRenderer] = OrderedDict()
        self._masks: dict[int, list[np.ndarray]] = {}
        self._failed: dict[int, str] = {}
        self._buffer_key: tuple[Any, ...] | None = None
        self._buffer: np.ndarray | None = None
        self._qimage: QImage | None = None
        self._last_shown: int | None = None
        self._drag: _Drag | None = None
        self._wheel_rest = 0
        self._fps = notes.DEFAULT_FPS
        self._fps_known = False  # the file's rate, once a header has been read
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
        self._drop_buffer()
        self._last_shown = None
        self._window = None
        self._invert = False
        self._orient = notes.IDENTITY
        self._fit = True
        self._pan = QPointF(0.0, 0.0)
        self._position = 0
        if source is not None:
            source.frame_ready.connect(
                self._on_source_frame_ready, Qt.ConnectionType.QueuedConnection
            )
            source.problem_found.connect(
                self._on_source_problem_found, Qt.ConnectionType.QueuedConnection
            )
            self._position = max(0, min(position, len(source) - 1))
        self._fps_known = False
        self._learn_fps(self._position)
        self.position_changed.emit(self._position)
        self.window_changed.emit()
        self.view_changed.emit()
        self.update()

    @property
    def source(self) -> FrameSource | None:
        return self._source

    def count(self) -> int:
        return len(self._source) if self._source is not None else 0

    @property
    def position(self) -> int:
        return self._position

    def set_position(self, position: int) -> None:
        count = self.count()
        if count == 0:
            return
        position = max(0, min(position, count - 1))
        if position == self._position:
            return
        self._position = position
        self.position_changed.emit(position)
        self.update()

    def step(self, delta: int) -> None:
        self.set_position(self._position + delta)

    def page_step(self) -> int:
        """Page Up/Down move a tenth of the stack (at least one image)."""
        return max(1, round(self.count() / 10))

    def _dataset(self, position: int | None = None) -> Any:
        if self._source is None or self.count() == 0:
            return None
        return self._source.dataset(self._position if position is None else position)

    def _renderer(self, position: int | None = None) -> FrameRenderer | None:
        """The renderer of a decoded frame (cached), or None while it is being decoded."""
        position = self._position if position is None else position
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
        if self._fps_known:
            return
        ds = self._dataset(position) if self.count() else None
        self._fps = notes.cine_rate(ds)
        self._fps_known = ds is not None
        if self._cine.isActive():
            self._cine.setInterval(max(1, round(1000 / self._fps)))

    def problem(self, position: int | None = None) -> str | None:
        """Why a frame cannot be shown: the loader's reason or the display pipeline's."""
        position = self._position if position is None else position
        if self._source is None or not 0 <= position < self.count():
            return None
        return self._source.problem(position) or self._failed.get(position)

    def _on_source_frame_ready(self, position: int) -> None:
        if not self._from_current_source(position):
            return  # queued before the source was replaced
        self._learn_fps(position)
        if position == self._position:
            self._drop_buffer()
            if self._window is None:
                self.window_changed.emit()
            self.update()

    def _from_current_source(self, position: int) -> bool:
        sender = self.sender()
        return (sender is None or sender is self._source) and 0 <= position < self.count()

    def _on_source_problem_found(self, position: int, message: str) -> None:
        if not self._from_current_source(position):
            return
        if position == self._position:
            self.update()

    # ----------------------------------------------------------------- window / level
    def effective_window(self) -> Voi | None:
        if self._window is not None:
            return self._window
        renderer = self._renderer()
        return renderer.default_window if renderer is not None else None

    def set_window(self, window: Voi | None) -> None:
        """An explicit window (or VOI LUT) for every frame; None returns to each frame's own."""
        self._window = window
        self.window_changed.emit()
        self.update()

    def apply_preset(self, number: int) -> None:
        """CT preset 1-8 (centre/width in HU, PS3.3 C.11.2.1.2 applied to modality values)."""
        presets = list(CT_PRESETS.values())
        if 1 <= number <= len(presets):
            self.set_window(presets[number - 1])

    def auto_window(self) -> None:
        """Min-max of the frame's modality values."""
        renderer = self._renderer()
        if renderer is not None:
            self.set_window(renderer.minmax_window())

    def file_windows(self) -> list[Voi]:
        renderer = self._renderer()
        return list(renderer.file_windows) if renderer is not None else []

    @property
    def inverted(self) -> bool:
        return self._invert

    def set_inverted(self, inverted: bool) -> None:
        self._invert = inverted
        self.window_changed.emit()
        self.update()

    def toggle_invert(self) -> None:
        self.set_inverted(not self._invert)

    @property
    def overlays_visible(self) -> bool:
        return self._overlays

    def set_overlays_visible(self, visible: bool) -> None:
        self._overlays = visible
        self.view_changed.emit()
        self.update()

    # ----------------------------------------------------------------- geometry
    @property
    def zoom(self) -> float:
        return self._effective_zoom()

    @property
    def orient(self) -> notes.Orient:
        return self._orient

    @property
    def pan(self) -> QPointF:
        return QPointF(self._pan)

    def _image_size(self) -> tuple[int, int] | None:
        """(columns, rows) of the current frame, from the decoded array or the header."""
        if self._source is None or self.count() == 0:
            return None
        pixels = self._source.frame(self._position)
        if pixels is not None and pixels.ndim >= 2:
            return int(pixels.shape[1]), int(pixels.shape[0])
        ds = self._dataset()
        if ds is not None and ds.get("Columns") and ds.get("Rows"):
            return int(ds.Columns), int(ds.Rows)
        return None

    def _fit_zoom(self) -> float:
        size = self._image_size()
        if size is None:
            return 1.0
        width, height = size
        if self._orient[0][0] == 0:  # a quarter turn swaps the displayed width and height
            width, height = height, width
        return max(MIN_ZOOM, min(self.width() / width, self.height() / height))

    def _effective_zoom(self) -> float:
        return self._fit_zoom() if self._fit else self._zoom

    def image_transform(self) -> QTransform:
        """Image coordinates (x = column, y = row, pixel centres at +0.5) to widget coordinates."""
        size = self._image_size() or (1, 1)
        zoom = self._effective_zoom()
        (a, b), (c, d) = self._orient
        centre = QPointF(self.width() / 2, self.height() / 2) + self._pan
        return (
            QTransform.fromTranslate(-size[0] / 2, -size[1] / 2)
            * QTransform.fromScale(zoom, zoom)
            * QTransform(a, c, b, d, 0.0, 0.0)
            * QTransform.fromTranslate(centre.x(), centre.y())
        )

    def fit(self) -> None:
        self._fit = True
        self._pan = QPointF(0.0, 0.0)
        self._geometry_changed()

    def actual_pixels(self) -> None:
        """One image pixel per screen pixel, about the widget centre."""
        self.set_zoom(1.0)

    def set_zoom(self, zoom: float, anchor: QPointF | None = None) -> None:
        """Zoom so that the image point under ``anchor`` (widget coordinates) stays put."""
        old = self._effective_zoom()
        zoom = max(MIN_ZOOM, min(MAX_ZOOM, zoom))
        if anchor is None:
            anchor = QPointF(self.width() / 2, self.height() / 2)
        centre = QPointF(self.width() / 2, self.height() / 2) + self._pan
        offset = anchor - centre
        self._pan = anchor - offset * (zoom / old) - QPointF(self.width() / 2, self.height() / 2)
        self._zoom = zoom
        self._fit = False
        self._geometry_changed()

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        self.set_zoom(self._effective_zoom() * factor, anchor)

    def pan_by(self, delta: QPointF) -> None:
        if self._fit:
            self._zoom = self._fit_zoom()
            self._fit = False
        self._pan += delta
        self._geometry_changed()

    def rotate(self, clockwise: bool = True) -> None:
        self._orient = _compose(self._orient, _ROTATE_CW if clockwise else _ROTATE_CCW)
        self._pan = QPointF(0.0, 0.0)
        self._geometry_changed()

    def flip(self, horizontal: bool = True) -> None:
        self._orient = _compose(self._orient, _FLIP_H if horizontal else _FLIP_V)
        self._geometry_changed()

    def reset_view(self) -> None:
        self._orient = notes.IDENTITY
        self.fit()

    def _geometry_changed(self) -> None:
        self.view_changed.emit()
        self.update()

    def image_point(self, widget_point: QPointF) -> tuple[int, int] | None:
        """(row, column) of the image pixel under a widget point, or None outside the image."""
        size = self._image_size()
        if size is None:
            return None
        inverse, ok = self.image_transform().inverted()
        if not ok:
            return None
        point = inverse.map(widget_point)
        column, row = math.floor(point.x()), math.floor(point.y())
        if 0 <= column < size[0] and 0 <= row < size[1]:
            return row, column
        return None

    # ----------------------------------------------------------------- cine
    @property
    def fps(self) -> float:
        return self._fps

    def set_fps(self, fps: float) -> None:
        self._fps = max(MIN_FPS, min(MAX_FPS, fps))
        self._fps_known = True  # the user's choice stands
        if self._cine.isActive():
            self._cine.setInterval(max(1, round(1000 / self._fps)))
        self.view_changed.emit()
        self.update()

    def is_playing(self) -> bool:
        return self._cine.isActive()

    def play(self) -> None:
        if self.count() < 2:
            return
        self._cine.start(max(1, round(1000 / self._fps)))
        self.cine_changed.emit(True)
        self.update()

    def stop_cine(self) -> None:
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
        following = (self._position + 1) % count
        if self._source.frame(following) is None and self._source.problem(following) is None:
            return  # wait for the decoder rather than flash "loading"
        self._position = following
        self.position_changed.emit(following)
        self.update()

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
        zoom = self._effective_zoom()
        size = self._image_size() or (1, 1)
        masks = self._overlay_masks() if self._overlays else []
        scaled: tuple[int, int] | None = None
        if not masks and (zoom <= SCALED_ZOOM or (zoom < 1 and size[0] * size[1] > LARGE_PIXELS)):
            device = zoom * self.devicePixelRatioF()  # what the screen's pixels can show
            scaled = (max(1, round(size[0] * device)), max(1, round(size[1] * device)))
        key = (self._position, id(renderer), window, self._invert, len(masks), scaled)
        if key == self._buffer_key and self._buffer is not None:
            return self._buffer
        if scaled is not None:
            buffer = renderer.render_scaled(window, invert=self._invert, size=scaled)
        else:
            buffer = renderer.render(window, invert=self._invert)
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
        if self._position not in self._masks:
            ds = self._dataset()
            masks: list[np.ndarray] = []
            if ds is not None and self._source is not None:
                try:
                    masks = list(overlay_masks(ds, self._source.frame_index(self._position)))
                except Exception as exc:
                    log.warning("overlay of frame %d not shown: %s", self._position + 1, exc)
            self._masks[self._position] = masks
        return self._masks[self._position]

    # ----------------------------------------------------------------- painting
    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        try:
            painter.fillRect(self.rect(), Qt.GlobalColor.black)
            painter.setFont(self._font)
            if self._source is None or self.count() == 0:
                self._draw_centred(painter, "Open a file or folder (Ctrl+O), or drop it here")
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
                    abs(self._effective_zoom() - 1) > 1e-6 or image.width() != size[0],
                )
                painter.drawImage(QRectF(0, 0, size[0], size[1]), image)
                painter.restore()
            elif self.problem():
                self._draw_centred(painter, str(self.problem()), error=True)
            else:
                self._draw_centred(painter, f"Loading image {self._position + 1}/{self.count()}…")
            try:
                self._draw_annotations(painter, decoded=image is not None)
            except Exception:  # odd header values must not stop the image being drawn
                log.debug("annotations failed", exc_info=True)
        finally:
            painter.end()
        if image is not None and self._last_shown != self._position:
            self._last_shown = self._position
            # After the paint, so that a slot may close or repaint the window.
            shown = self._position
            QTimer.singleShot(0, self, lambda: self.image_shown.emit(shown))

    def _draw_text(
        self, painter: QPainter, x: float, y: float, text: str, colour: QColor | None = None
    ) -> None:
        """Text with a dark outline, legible on white bone and black air alike."""
        painter.setPen(QColor(0, 0, 0))
        for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            painter.drawText(QPointF(x + dx, y + dy), text)
        painter.setPen(colour or QColor(240, 240, 240))
        painter.drawText(QPointF(x, y), text)

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
        ds = self._dataset()
        frame_index = self._source.frame_index(self._position) if self._source else 0
        corners = notes.corner_text(ds, frame_index, self._position, self.count())
        bottom_right = []
        renderer = self._renderer()
        window = self.effective_window()
        if renderer is not None and not renderer.is_colour and window is not None:
            if isinstance(window, Window):
                wl = f"W: {window.width:.6g} L: {window.center:.6g}"
                if window.explanation:
                    wl += f" ({window.explanation})"
            else:
                wl = f"VOI LUT: {window.label}"
            bottom_right.append(wl + ("  INV" if self._invert else ""))
        elif self._invert:
            bottom_right.append("INV")
        bottom_right.append(f"Zoom: {self._effective_zoom() * 100:.0f}%")
        if self.is_playing():
            bottom_right.append(f"Cine {self._fps:.3g} fps")
        top_right = list(corners.top_right)
        if notes.is_lossy(ds):
            ratio = ds.get("LossyImageCompressionRatio") if ds is not None else None
            top_right.append("LOSSY" + (f" {ratio}:1" if ratio else ""))
        return {
            "top_left": corners.top_left,
            "top_right": top_right,
            "bottom_left": corners.bottom_left,
            "bottom_right": bottom_right,
        }

    def edge_letters(self) -> dict[str, str]:
        """Orientation letters for the screen's edges, after the user's rotations and flips."""
        frame_index = self._source.frame_index(self._position) if self._source else 0
        return notes.edge_letters(notes.image_axes(self._dataset(), frame_index), self._orient)

    def scale_bar(self) -> tuple[float, float, str] | None:
        """(length in screen pixels, length in mm, label) of the horizontal scale bar."""
        frame_index = self._source.frame_index(self._position) if self._source else 0
        spacing = notes.pixel_spacing(self._dataset(), frame_index)
        if spacing is None:
            return None
        mm_per_pixel = notes.screen_mm_per_pixel(spacing, self._orient, self._effective_zoom())
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
        self.view_changed.emit()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        button = event.button()
        if button in (
            Qt.MouseButton.RightButton,
            Qt.MouseButton.MiddleButton,
            Qt.MouseButton.LeftButton,
        ):
            renderer = self._renderer()
            window = self.effective_window()
            if not isinstance(window, Window) and renderer is not None:
                window = renderer.minmax_window()  # dragging from a VOI LUT starts at min-max
            step = 1.0
            if isinstance(window, Window):
                span = window.width
                if renderer is not None:
                    span = max(span, renderer.minmax_window().width / 16)
                step = max(span, 1.0) / 256
            else:
                window = None
            self._drag = _Drag(button, event.position(), window, step, QPointF(self._pan))
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        drag = self._drag
        if drag is not None:
            delta = event.position() - drag.start
            if drag.button == Qt.MouseButton.RightButton:
                if drag.window is not None:
                    # Right: wider window; down: higher centre (a darker image).
                    self.set_window(
                        Window(
                            drag.window.center + delta.y() * drag.step,
                            max(1.0, drag.window.width + delta.x() * drag.step),
                            drag.window.function,
                        )
                    )
            else:
                if self._fit:
                    self._zoom = self._fit_zoom()
                    self._fit = False
                self._pan = drag.pan + delta
                self._geometry_changed()
            event.accept()
            return
        self.probe(event.position())

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._drag is not None and event.button() == self._drag.button:
            self._drag = None
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def probe(self, point: QPointF) -> None:
        """The modality value under the cursor (HU for CT) for the status bar."""
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
                self.zoom_by(ZOOM_STEP ** (delta / 120), event.position())
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
            K.Key_O: lambda: self.set_overlays_visible(not self._overlays),
            K.Key_Space: self.toggle_cine,
            K.Key_Plus: lambda: self.set_fps(self._fps * 1.25),
            K.Key_Equal: lambda: self.set_fps(self._fps * 1.25),
            K.Key_Minus: lambda: self.set_fps(self._fps / 1.25),
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


def format_value(value: Any, units: str) -> str:
    """A modality value for the status bar: ``-1000 HU``, ``(12, 40, 200)`` for colour."""
    suffix = f" {units}" if units else ""
    if isinstance(value, (tuple, list, np.ndarray)):
        return "(" + ", ".join(f"{float(v):.6g}" for v in value) + ")"
    try:
        return f"{float(value):.6g}{suffix}"
    except (TypeError, ValueError):
        return str(value)
