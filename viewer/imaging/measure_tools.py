"""Measurements drawn with the mouse: a board of shapes per image, and the tools that edit it.

The tools speak the view's mouse-tool protocol (:class:`viewer.imaging.viewport.Tool`): screen
points in, :class:`~viewer.imaging.viewport.Changed` out. They turn screen points into image
points through the viewport (:meth:`Viewport.screen_to_image`, then
:func:`viewer.imaging.measure.from_view`), so a shape is kept in image coordinates and stays on
the anatomy under zoom, pan, rotation and flips.

- :class:`DrawTool` draws one kind of shape: a drag for a distance, a rectangle, an ellipse or
  a bidirectional (the long axis; the short axis starts across its middle at half its length
  and is adjusted by its handles); a drag then a click for an angle (the first arm, then the
  second); a drag along the outline for a freehand ROI.
- :class:`EditTool` picks the shape under the pointer: a handle drags that handle, an edge
  moves the whole shape, anything else pans (the left button's default).

The :class:`Board` holds the shapes per image, keyed by (SOP Instance UID, frame number from 1),
and which one is selected; the view draws the board's shapes of the frame it shows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from viewer.imaging import measure as m
from viewer.imaging.viewport import Changed, FrameWindows, PanTool, Point, Viewport
from viewer.model import Problem

if TYPE_CHECKING:
    from viewer.imaging.decode import DicomFile

#: An image: (SOP Instance UID, frame number counting from 1).
Key = tuple[str, int]

#: How near (screen pixels) the pointer must be to pick a handle or an edge.
PICK_PIXELS = 6.0

#: A freehand outline takes a vertex only this far (image pixels) from the previous one.
FREEHAND_STEP = 1.0

KINDS = ("distance", "angle", "rectangle", "ellipse", "freehand", "bidirectional")


@dataclass(frozen=True, slots=True)
class Selected:
    key: Key
    index: int


class Board:
    """The shapes placed on images, per image, in the order drawn; one may be selected and one
    may be in the drawing (``preview``, not yet a measurement)."""

    def __init__(self) -> None:
        self._shapes: dict[Key, list[m.Shape]] = {}
        self.selected: Selected | None = None
        self.preview: tuple[Key, m.Shape] | None = None
        self.revision = 0  # grows with every change (views and the store watch it)

    def shapes(self, key: Key | None) -> list[m.Shape]:
        return list(self._shapes.get(key, [])) if key is not None else []

    def keys(self) -> list[Key]:
        return [key for key, shapes in self._shapes.items() if shapes]

    def __iter__(self) -> Iterator[m.Measurement]:
        for (uid, frame), shapes in self._shapes.items():
            for shape in shapes:
                yield m.Measurement(shape, uid, frame)

    def __len__(self) -> int:
        return sum(len(shapes) for shapes in self._shapes.values())

    def _touch(self) -> None:
        self.revision += 1

    def add(self, key: Key, shape: m.Shape) -> int:
        shapes = self._shapes.setdefault(key, [])
        shapes.append(shape)
        self.selected = Selected(key, len(shapes) - 1)
        self._touch()
        return len(shapes) - 1

    def replace(self, key: Key, index: int, shape: m.Shape) -> None:
        self._shapes[key][index] = shape
        self._touch()

    def remove_selected(self) -> bool:
        selected = self.selected
        if selected is None:
            return False
        shapes = self._shapes.get(selected.key, [])
        if not 0 <= selected.index < len(shapes):
            self.selected = None
            return False
        del shapes[selected.index]
        self.selected = None
        self._touch()
        return True

    def clear(self, key: Key | None = None) -> int:
        """Remove the shapes of one image (or of all); returns how many went."""
        if key is None:
            count = len(self)
            self._shapes.clear()
        else:
            count = len(self._shapes.pop(key, []))
        self.selected = None
        self.preview = None
        if count:
            self._touch()
        return count

    def load(self, measurements: list[m.Measurement]) -> None:
        """Put measurements kept elsewhere (the store) on the board."""
        for item in measurements:
            self._shapes.setdefault((item.sop_instance_uid, item.frame_number), []).append(
                item.shape
            )
        self._touch()


def image_point(viewport: Viewport, point: Point) -> m.RowCol:
    return m.from_view(viewport.screen_to_image(point))


def pick(
    board: Board, key: Key | None, viewport: Viewport, point: Point
) -> tuple[int, m.Hit] | None:
    """The topmost shape of the image under a screen point, and where it was touched."""
    if key is None:
        return None
    where = image_point(viewport, point)
    tolerance = PICK_PIXELS / max(viewport.effective_zoom(), 1e-6)
    shapes = board.shapes(key)
    for index in range(len(shapes) - 1, -1, -1):
        touched = m.hit(shapes[index], where, tolerance)
        if touched is not None:
            return index, touched
    return None


class DrawTool:
    """Draws shapes of one kind on the image shown (``key()`` names it; None: nothing shown).

    ``scale()`` gives the frame's calibration, for the short axis of a bidirectional.
    """

    def __init__(
        self,
        kind: str,
        board: Board,
        key: Callable[[], Key | None],
        scale: Callable[[], m.Scale] = lambda: m.PIXELS,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown measurement kind {kind!r}")
        self.kind = kind
        self._board = board
        self._key = key
        self._scale = scale
        self._points: list[m.RowCol] = []
        self._drawing_on: Key | None = None

    @property
    def pending(self) -> bool:
        """An angle waits for its second arm."""
        return self.kind == "angle" and len(self._points) == 2

    def cancel(self) -> Changed:
        had = bool(self._points) or self._board.preview is not None
        self._points = []
        self._drawing_on = None
        self._board.preview = None
        return Changed.ANNOTATIONS if had else Changed.NOTHING

    def press(self, viewport: Viewport, frame: FrameWindows, point: Point) -> Changed:
        key = self._key()
        if key is None:
            return Changed.NOTHING
        p = image_point(viewport, point)
        if self.pending and key == self._drawing_on:
            self._points.append(p)  # the second arm's end
        else:
            self._drawing_on = key
            self._points = [p, p]
        return self._preview()

    def move(self, viewport: Viewport, point: Point) -> Changed:
        if not self._points or self._drawing_on is None:
            return Changed.NOTHING
        p = image_point(viewport, point)
        if self.kind == "freehand":
            last = self._points[-1]
            far = math.hypot(p[0] - last[0], p[1] - last[1]) >= FREEHAND_STEP
            if far and len(self._points) < m.MAX_VERTICES:
                self._points.append(p)
        else:
            self._points[-1] = p
        return self._preview()

    def release(self, viewport: Viewport, point: Point) -> Changed:
        if not self._points or self._drawing_on is None:
            return Changed.NOTHING
        key = self._drawing_on
        if self.kind != "freehand":
            self._points[-1] = image_point(viewport, point)
        if self.kind == "angle" and len(self._points) == 2:
            a, vertex = self._points
            if math.hypot(a[0] - vertex[0], a[1] - vertex[1]) < 1.0:
                return self.cancel()  # a click without a drag draws no arm
            return self._preview()  # the first arm: the next click gives the second
        shape = self._shape(final=True)
        self._points = []
        self._drawing_on = None
        self._board.preview = None
        if shape is not None:
            self._board.add(key, shape)
        return Changed.ANNOTATIONS

    def _preview(self) -> Changed:
        shape = self._shape(final=False)
        key = self._drawing_on
        self._board.preview = (key, shape) if shape is not None and key is not None else None
        return Changed.ANNOTATIONS

    def _shape(self, *, final: bool) -> m.Shape | None:
        points = self._points
        try:
            if self.kind == "freehand":
                if len(points) < 3:
                    return None
                return m.FreehandROI(tuple(points))
            if self.kind == "angle":
                if len(points) == 2:
                    return m.Distance(points[0], points[1]) if not final else None
                return m.Angle(points[0], points[1], points[2])
            p0, p1 = points[0], points[-1]
            if final and math.hypot(p0[0] - p1[0], p0[1] - p1[1]) < 1.0:
                return None  # a click, not a drag
            if self.kind == "bidirectional":
                scale = self._scale()
                long_axis = scale.length(p0, p1)
                return m.bidirectional(p0, p1, long_axis / 2, scale=scale)
            return m.shape_from_points(self.kind, [p0, p1])
        except ValueError:
            return None


class EditTool:
    """Drags a handle, moves a shape by its edge, else pans; selects what it touched."""

    def __init__(
        self,
        board: Board,
        key: Callable[[], Key | None],
        scale: Callable[[], m.Scale] = lambda: m.PIXELS,
    ) -> None:
        self._board = board
        self._key = key
        self._scale = scale
        self._pan = PanTool()
        self._editing: tuple[Key, int, m.Hit, m.Shape, m.RowCol] | None = None
        self._panning = False

    def press(self, viewport: Viewport, frame: FrameWindows, point: Point) -> Changed:
        key = self._key()
        touched = pick(self._board, key, viewport, point)
        if touched is None or key is None:
            had = self._board.selected is not None
            self._board.selected = None
            self._panning = True
            changed = self._pan.press(viewport, frame, point)
            return changed | (Changed.ANNOTATIONS if had else Changed.NOTHING)
        index, where = touched
        shape = self._board.shapes(key)[index]
        self._board.selected = Selected(key, index)
        self._editing = (key, index, where, shape, image_point(viewport, point))
        return Changed.ANNOTATIONS

    def move(self, viewport: Viewport, point: Point) -> Changed:
        if self._panning:
            return self._pan.move(viewport, point)
        if self._editing is None:
            return Changed.NOTHING
        key, index, where, shape, start = self._editing
        p = image_point(viewport, point)
        try:
            if where.handle is None:
                new = m.moved(shape, drow=p[0] - start[0], dcol=p[1] - start[1])
            else:
                new = m.with_handle(shape, where.handle, p, scale=self._scale())
        except ValueError:
            return Changed.NOTHING
        self._board.replace(key, index, new)
        return Changed.ANNOTATIONS

    def release(self, viewport: Viewport, point: Point) -> Changed:
        if self._panning:
            self._panning = False
            return self._pan.release(viewport, point)
        changed = self.move(viewport, point) if self._editing is not None else Changed.NOTHING
        self._editing = None
        return changed


def csv_of(
    measurements: list[m.Measurement], locate: Callable[[str], Path | None]
) -> tuple[str, list[Problem]]:
    """The CSV of ``measurements`` (:func:`viewer.imaging.measure.measurements_csv`), each
    measured on its frame read again from its file (``locate(uid)``: where the instance is);
    blocks (a worker's job). A file that cannot be read is a problem; its rows are left out."""
    from viewer.imaging.decode import DecodeError, decode_frame, read_file

    rows: list[m.CsvRow] = []
    problems: list[Problem] = []
    files: dict[str, DicomFile | DecodeError] = {}
    for item in measurements:
        path = locate(item.sop_instance_uid)
        if path is None:
            problems.append(Problem(item.sop_instance_uid, "no file of this image is open"))
            continue
        read = files.get(str(path))
        if read is None:
            try:
                read = read_file(path)
            except DecodeError as exc:
                read = exc
            files[str(path)] = read
        if isinstance(read, DecodeError):
            problems.append(Problem(str(path), read.reason))
            continue
        ds, index = read.dataset, item.frame_number - 1
        try:
            frame = None
            if item.shape.kind in m.ROI_KINDS:
                frame = m.FrameValues.from_frame(ds, index, decode_frame(ds, index))
            result = m.measure(item.shape, m.Calibration.from_dataset(ds, index), frame)
        except (DecodeError, ValueError) as exc:
            problems.append(Problem(str(path), f"frame {item.frame_number}: {exc}"))
            continue
        rows.append(m.CsvRow.of(ds, item, result))
    return m.measurements_csv(rows), problems
