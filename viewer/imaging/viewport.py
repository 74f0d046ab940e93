"""What a reader sees of one stack, without Qt: the view state, its geometry, and mouse tools.

A :class:`Viewport` holds everything that decides the picture besides the pixels: the frame
shown, the window (None: each frame's own), invert, overlays, zoom (or fit), pan, the user's
rotations and flips, the cine rate and whether it plays. Its transforms between image and screen
coordinates are plain arithmetic, so measurements, linked scrolling, layouts and presentation
states can be built and tested on it alone; the Qt widget (:class:`viewer.qt.image_view.ImageView`)
paints what it says and forwards input to it.

Geometry: the image (``columns`` x ``rows`` pixels; x = column, y = row, pixel centres at +0.5)
is centred on the screen centre plus ``pan``, scaled by the zoom (screen pixels per image pixel)
and turned by ``orient``, a signed permutation built from the rotations and flips in screen
space.

A :class:`Tool` is one mouse interaction (press, moves, release) acting on a viewport; each
``move`` answers what it changed (:class:`Changed`) so the widget repaints and tells others.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Protocol

from viewer.imaging.annotations import DEFAULT_FPS, IDENTITY, Orient
from viewer.imaging.display import Voi, Window

Point = tuple[float, float]

ZOOM_STEP = 1.25
MIN_ZOOM = 1 / 64
MAX_ZOOM = 64.0
MIN_FPS = 0.5
MAX_FPS = 120.0

ROTATE_CW: Orient = ((0, -1), (1, 0))
ROTATE_CCW: Orient = ((0, 1), (-1, 0))
FLIP_H: Orient = ((-1, 0), (0, 1))
FLIP_V: Orient = ((1, 0), (0, -1))


def compose(first: Orient, then: Orient) -> Orient:
    """``then @ first``: apply ``first`` to image directions, then ``then`` on the screen."""
    (a, b), (c, d) = then
    (e, f), (g, h) = first
    return ((a * e + b * g, a * f + b * h), (c * e + d * g, c * f + d * h))


class Changed(enum.Flag):
    """What an action changed, for the widget to repaint and signal."""

    NOTHING = 0
    POSITION = enum.auto()
    WINDOW = enum.auto()
    GEOMETRY = enum.auto()
    ANNOTATIONS = enum.auto()  # measurements drawn on the image


@dataclass
class Viewport:
    """The view state of one stack of ``count`` images on a screen of ``screen`` pixels."""

    count: int = 0
    position: int = 0
    window: Voi | None = None
    """An explicit window (or VOI LUT) for every frame; None: each frame's own."""
    inverted: bool = False
    overlays: bool = True
    fit: bool = True
    """Zoom follows the screen so that the whole image shows; False: ``zoom`` holds."""
    zoom: float = 1.0
    pan: Point = (0.0, 0.0)
    orient: Orient = IDENTITY
    fps: float = DEFAULT_FPS
    fps_chosen: bool = False
    """The user set the rate (else the file's is taken as soon as a header is known)."""
    playing: bool = False
    screen: Point = (1.0, 1.0)
    image: tuple[int, int] | None = None
    """(columns, rows) of the frame shown, once known."""

    # -- the stack -------------------------------------------------------------------------
    def show_stack(self, count: int, position: int = 0) -> None:
        """A new stack: everything back to the defaults, at ``position``."""
        self.count = max(0, count)
        self.position = max(0, min(position, self.count - 1)) if self.count else 0
        self.window = None
        self.inverted = False
        self.orient = IDENTITY
        self.fit = True
        self.pan = (0.0, 0.0)
        self.playing = False
        self.fps = DEFAULT_FPS
        self.fps_chosen = False
        self.image = None

    def set_position(self, position: int) -> Changed:
        if self.count == 0:
            return Changed.NOTHING
        position = max(0, min(position, self.count - 1))
        if position == self.position:
            return Changed.NOTHING
        self.position = position
        return Changed.POSITION

    def step(self, delta: int) -> Changed:
        return self.set_position(self.position + delta)

    def page_step(self) -> int:
        """Page Up/Down move a tenth of the stack (at least one image)."""
        return max(1, round(self.count / 10))

    def next_cine_position(self) -> int:
        return (self.position + 1) % self.count if self.count else 0

    def set_fps(self, fps: float, *, chosen: bool = True) -> None:
        self.fps = max(MIN_FPS, min(MAX_FPS, fps))
        self.fps_chosen = self.fps_chosen or chosen

    def cine_interval_ms(self) -> int:
        return max(1, round(1000 / self.fps))

    # -- geometry --------------------------------------------------------------------------
    def fit_zoom(self) -> float:
        if self.image is None:
            return 1.0
        width, height = self.image
        if self.orient[0][0] == 0:  # a quarter turn swaps the displayed width and height
            width, height = height, width
        return max(MIN_ZOOM, min(self.screen[0] / width, self.screen[1] / height))

    def effective_zoom(self) -> float:
        return self.fit_zoom() if self.fit else self.zoom

    def _centre(self) -> Point:
        return (self.screen[0] / 2 + self.pan[0], self.screen[1] / 2 + self.pan[1])

    def image_to_screen(self, point: Point) -> Point:
        """Image coordinates (x = column, y = row, pixel centres at +0.5) to screen ones."""
        columns, rows = self.image or (1, 1)
        zoom = self.effective_zoom()
        (a, b), (c, d) = self.orient
        x, y = (point[0] - columns / 2) * zoom, (point[1] - rows / 2) * zoom
        cx, cy = self._centre()
        return (a * x + b * y + cx, c * x + d * y + cy)

    def screen_to_image(self, point: Point) -> Point:
        columns, rows = self.image or (1, 1)
        zoom = self.effective_zoom()
        (a, b), (c, d) = self.orient
        cx, cy = self._centre()
        sx, sy = point[0] - cx, point[1] - cy
        # orient is a signed permutation: its inverse is its transpose
        x, y = (a * sx + c * sy) / zoom, (b * sx + d * sy) / zoom
        return (x + columns / 2, y + rows / 2)

    def pixel_at(self, point: Point) -> tuple[int, int] | None:
        """(row, column) of the image pixel under a screen point, or None outside the image."""
        if self.image is None:
            return None
        x, y = self.screen_to_image(point)
        column, row = math.floor(x), math.floor(y)
        if 0 <= column < self.image[0] and 0 <= row < self.image[1]:
            return row, column
        return None

    def affine(self) -> tuple[float, float, float, float, float, float]:
        """(m11, m12, m21, m22, dx, dy) of image -> screen, as QTransform takes them:
        ``x' = m11 x + m21 y + dx``, ``y' = m12 x + m22 y + dy``."""
        columns, rows = self.image or (1, 1)
        zoom = self.effective_zoom()
        (a, b), (c, d) = self.orient
        cx, cy = self._centre()
        dx = cx - zoom * (a * columns / 2 + b * rows / 2)
        dy = cy - zoom * (c * columns / 2 + d * rows / 2)
        return (a * zoom, c * zoom, b * zoom, d * zoom, dx, dy)

    def fit_to_screen(self) -> Changed:
        self.fit = True
        self.pan = (0.0, 0.0)
        return Changed.GEOMETRY

    def set_zoom(self, zoom: float, anchor: Point | None = None) -> Changed:
        """Zoom so that the image point under ``anchor`` (screen coordinates) stays put."""
        old = self.effective_zoom()
        zoom = max(MIN_ZOOM, min(MAX_ZOOM, zoom))
        half = (self.screen[0] / 2, self.screen[1] / 2)
        if anchor is None:
            anchor = half
        cx, cy = self._centre()
        ox, oy = anchor[0] - cx, anchor[1] - cy
        ratio = zoom / old
        self.pan = (anchor[0] - ox * ratio - half[0], anchor[1] - oy * ratio - half[1])
        self.zoom = zoom
        self.fit = False
        return Changed.GEOMETRY

    def zoom_by(self, factor: float, anchor: Point | None = None) -> Changed:
        return self.set_zoom(self.effective_zoom() * factor, anchor)

    def set_pan(self, pan: Point) -> Changed:
        """Pan to ``pan``; a fitted image keeps its zoom from now on."""
        if self.fit:
            self.zoom = self.fit_zoom()
            self.fit = False
        self.pan = (float(pan[0]), float(pan[1]))
        return Changed.GEOMETRY

    def pan_by(self, dx: float, dy: float) -> Changed:
        return self.set_pan((self.pan[0] + dx, self.pan[1] + dy))

    def rotate(self, clockwise: bool = True) -> Changed:
        self.orient = compose(self.orient, ROTATE_CW if clockwise else ROTATE_CCW)
        self.pan = (0.0, 0.0)
        return Changed.GEOMETRY

    def flip(self, horizontal: bool = True) -> Changed:
        self.orient = compose(self.orient, FLIP_H if horizontal else FLIP_V)
        return Changed.GEOMETRY

    def reset_geometry(self) -> Changed:
        self.orient = IDENTITY
        return self.fit_to_screen()


# -- mouse tools -----------------------------------------------------------------------------


class FrameWindows(Protocol):
    """What a tool may ask of the frame shown (the widget answers from its renderer)."""

    def effective_window(self) -> Voi | None: ...

    def minmax_window(self) -> Window | None: ...


class Tool(Protocol):
    """One mouse interaction on a viewport: press, any number of moves, release."""

    def press(self, viewport: Viewport, frame: FrameWindows, point: Point) -> Changed: ...

    def move(self, viewport: Viewport, point: Point) -> Changed: ...

    def release(self, viewport: Viewport, point: Point) -> Changed: ...


class WindowTool:
    """Drag to window: right widens, down raises the centre (a darker image). The step follows
    the window's width (at least a sixteenth of the frame's range), so a narrow brain window and
    a wide lung window both move at a usable pace; a VOI LUT starts from min-max."""

    def __init__(self) -> None:
        self._start: Point | None = None
        self._window: Window | None = None
        self._step = 1.0

    def press(self, viewport: Viewport, frame: FrameWindows, point: Point) -> Changed:
        window = frame.effective_window()
        minmax = frame.minmax_window()
        if not isinstance(window, Window):
            window = minmax
        self._start, self._window, self._step = point, window, 1.0
        if window is not None:
            span = window.width
            if minmax is not None:
                span = max(span, minmax.width / 16)
            self._step = max(span, 1.0) / 256
        return Changed.NOTHING

    def move(self, viewport: Viewport, point: Point) -> Changed:
        if self._start is None or self._window is None:
            return Changed.NOTHING
        dx, dy = point[0] - self._start[0], point[1] - self._start[1]
        viewport.window = Window(
            self._window.center + dy * self._step,
            max(1.0, self._window.width + dx * self._step),
            self._window.function,
        )
        return Changed.WINDOW

    def release(self, viewport: Viewport, point: Point) -> Changed:
        self._start = self._window = None
        return Changed.NOTHING


class PanTool:
    """Drag to move the image."""

    def __init__(self) -> None:
        self._start: Point | None = None
        self._pan: Point = (0.0, 0.0)

    def press(self, viewport: Viewport, frame: FrameWindows, point: Point) -> Changed:
        self._start, self._pan = point, viewport.pan
        return Changed.NOTHING

    def move(self, viewport: Viewport, point: Point) -> Changed:
        if self._start is None:
            return Changed.NOTHING
        return viewport.set_pan(
            (self._pan[0] + point[0] - self._start[0], self._pan[1] + point[1] - self._start[1])
        )

    def release(self, viewport: Viewport, point: Point) -> Changed:
        self._start = None
        return Changed.NOTHING


class ZoomTool:
    """Drag up to zoom in, down to zoom out, about the point pressed (one step per 40 pixels)."""

    PIXELS_PER_STEP = 40.0

    def __init__(self) -> None:
        self._start: Point | None = None
        self._zoom = 1.0

    def press(self, viewport: Viewport, frame: FrameWindows, point: Point) -> Changed:
        self._start, self._zoom = point, viewport.effective_zoom()
        return Changed.NOTHING

    def move(self, viewport: Viewport, point: Point) -> Changed:
        if self._start is None:
            return Changed.NOTHING
        steps = (self._start[1] - point[1]) / self.PIXELS_PER_STEP
        return viewport.set_zoom(self._zoom * ZOOM_STEP**steps, self._start)

    def release(self, viewport: Viewport, point: Point) -> Changed:
        self._start = None
        return Changed.NOTHING


class ScrollTool:
    """Drag down for the next images, up for the previous ones (one image per 8 pixels)."""

    PIXELS_PER_IMAGE = 8.0

    def __init__(self) -> None:
        self._start: Point | None = None
        self._position = 0

    def press(self, viewport: Viewport, frame: FrameWindows, point: Point) -> Changed:
        self._start, self._position = point, viewport.position
        return Changed.NOTHING

    def move(self, viewport: Viewport, point: Point) -> Changed:
        if self._start is None:
            return Changed.NOTHING
        images = int((point[1] - self._start[1]) / self.PIXELS_PER_IMAGE)
        return viewport.set_position(self._position + images)

    def release(self, viewport: Viewport, point: Point) -> Changed:
        self._start = None
        return Changed.NOTHING
