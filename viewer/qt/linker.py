"""Linked viewports: scroll together by slice position, window and zoom alike, reference lines.

The :class:`Linker` watches every viewport of a :class:`~viewer.qt.viewports.ViewportGrid`.
With scrolling linked, the viewport the reader scrolls leads: every other one shows its slice
nearest to the leader's (:func:`viewer.imaging.linking.nearest_frame`) when both series share a
Frame of Reference, or when the reader linked the two once with an offset (*Link here*: "these
two slices show the same place", kept for that pair of series). Window linking copies the
window between viewports of the same modality (a CT window means nothing on an MR); zoom
linking copies zoom and pan. Reference lines show on each viewport where the active one's
slice cuts it (same Frame of Reference, planes far from parallel).

Geometry comes from the frames' headers, read by the loaders (the GUI thread reads no file);
a frame whose header is not read yet is linked once it is.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal

from viewer.imaging import linking
from viewer.qt.viewports import Viewport, ViewportGrid


class Linker(QObject):
    """Links the viewports of ``grid``; each kind of link is off until switched on.

    ``linked(str)`` says what *Link here* did, in words for the status bar.
    """

    linked = Signal(str)

    def __init__(self, grid: ViewportGrid, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._grid = grid
        self.scroll = False
        self.window = False
        self.zoom = False
        self.reference_lines = False
        self.every_plane = False  # reference lines of every viewport, not the active's only
        self._offsets: dict[tuple[str, str], float] = {}
        self._busy = False
        # Geometry read once: per stack (its frames' positions and normal), per header (plane).
        self._stack_geometry: dict[int, tuple[object, list[linking.Vector | None], Any]] = {}
        self._planes: dict[tuple[int, int], tuple[object, linking.Plane | None]] = {}
        for viewport in grid.viewports:
            self._watch(viewport)
        grid.viewport_added.connect(self._watch)
        grid.active_changed.connect(lambda _viewport: self.refresh_reference_lines())

    # ----------------------------------------------------------------- switches
    def set_scroll(self, on: bool) -> None:
        self.scroll = on
        if on:
            self._follow(self._grid.active)

    def set_window(self, on: bool) -> None:
        self.window = on
        if on:
            self._copy_window(self._grid.active)

    def set_zoom(self, on: bool) -> None:
        self.zoom = on
        if on:
            self._copy_geometry(self._grid.active)

    def set_reference_lines(self, on: bool) -> None:
        self.reference_lines = on
        self.refresh_reference_lines()

    # ----------------------------------------------------------------- geometry of a viewport
    def _plane(self, viewport: Viewport, position: int | None = None) -> linking.Plane | None:
        source = viewport.source
        if source is None or len(source) == 0:
            return None
        at = viewport.view.position if position is None else position
        ds, index = source.dataset(at), source.frame_index(at)
        if ds is None:
            return None
        cached = self._planes.get((id(ds), index))
        if cached is not None and cached[0] is ds:
            return cached[1]
        plane = linking.plane_of(ds, index)
        if len(self._planes) > 4096:
            self._planes.clear()
        self._planes[(id(ds), index)] = (ds, plane)
        return plane

    def _stack_geometry_of(
        self, stack: Any
    ) -> tuple[list[linking.Vector | None], linking.Vector | None]:
        cached = self._stack_geometry.get(id(stack))
        if cached is None or cached[0] is not stack:
            if len(self._stack_geometry) > 64:
                self._stack_geometry.clear()
            cached = (stack, linking.stack_positions(stack), linking.stack_normal(stack))
            self._stack_geometry[id(stack)] = cached
        return cached[1], cached[2]

    @staticmethod
    def _series(viewport: Viewport) -> str:
        return viewport.stack.series_instance_uid if viewport.stack is not None else ""

    def _positions(self, viewport: Viewport) -> list[linking.Vector | None]:
        """Each frame's position: the headers the scan read, else the loaded data sets."""
        stack = viewport.stack
        if stack is None:
            return []
        positions, _normal = self._stack_geometry_of(stack)
        if any(p is not None for p in positions):
            return positions
        planes = [self._plane(viewport, p) for p in range(len(stack.frames))]
        return [plane.origin if plane is not None else None for plane in planes]

    def _normal(self, viewport: Viewport) -> linking.Vector | None:
        if viewport.stack is not None:
            _positions, normal = self._stack_geometry_of(viewport.stack)
            if normal is not None:
                return normal
        plane = self._plane(viewport)
        return plane.normal if plane is not None else None

    def _offset(self, leader: Viewport, other: Viewport) -> float | None:
        """The offset linking two viewports: 0 in one Frame of Reference, the one the reader
        set for the pair of series, or None (not linked)."""
        pair = (self._series(leader), self._series(other))
        if pair in self._offsets:
            return self._offsets[pair]
        mine, theirs = self._plane(leader), self._plane(other)
        if mine is None or theirs is None:
            return None
        same = mine.frame_of_reference and mine.frame_of_reference == theirs.frame_of_reference
        return 0.0 if same else None

    # ----------------------------------------------------------------- linking
    def link_here(self) -> int:
        """The active viewport's slice and each other viewport's slice show the same place:
        kept as an offset for each pair of series. Returns how many were linked."""
        leader = self._grid.active
        plane = self._plane(leader)
        count = 0
        if plane is not None:
            for other in self._grid.viewports:
                normal = self._normal(other)
                theirs = self._plane(other)
                if other is leader or normal is None or theirs is None:
                    continue
                offset = linking.slice_offset(plane, theirs.origin, normal)
                self._offsets[(self._series(leader), self._series(other))] = offset
                back = linking.slice_offset(theirs, plane.origin, self._normal(leader) or normal)
                self._offsets[(self._series(other), self._series(leader))] = back
                count += 1
        self.linked.emit(
            f"{count} viewport(s) linked to the active one at these slices"
            if count
            else "Nothing to link: the active viewport's slice has no position yet"
        )
        if count:
            self.scroll = True
        return count

    def _watch(self, viewport: Viewport) -> None:
        view = viewport.view
        view.position_changed.connect(lambda _p, v=viewport: self._on_position_changed(v))
        view.window_changed.connect(lambda v=viewport: self._on_window_changed(v))
        view.view_changed.connect(lambda v=viewport: self._on_view_changed(v))
        viewport.frame_ready.connect(lambda _p, v=viewport: self._on_frame_ready(v))

    def _on_position_changed(self, viewport: Viewport) -> None:
        if self._busy:
            return
        if self.scroll and viewport is self._grid.active:
            self._follow(viewport)
        self.refresh_reference_lines()

    def _on_frame_ready(self, viewport: Viewport) -> None:
        """A loader read a header: a link that waited for its geometry can be made now."""
        if self._busy:
            return
        if self.scroll:
            self._follow(self._grid.active)
        self.refresh_reference_lines()

    def _follow(self, leader: Viewport) -> None:
        plane = self._plane(leader)
        if plane is None:
            return
        self._busy = True
        try:
            for other in self._grid.viewports:
                if other is leader or other.source is None:
                    continue
                offset = self._offset(leader, other)
                normal = self._normal(other)
                if offset is None or normal is None:
                    continue
                index = linking.nearest_frame(
                    self._positions(other), normal, plane.centre, offset_mm=offset
                )
                if index is not None and index != other.view.position:
                    other.view.set_position(index)
        finally:
            self._busy = False
        self.refresh_reference_lines()

    def _on_window_changed(self, viewport: Viewport) -> None:
        if self.window and not self._busy and viewport is self._grid.active:
            self._copy_window(viewport)

    def _copy_window(self, leader: Viewport) -> None:
        modality = _modality(leader)
        window = leader.view.effective_window()
        if window is None or not modality:
            return
        self._busy = True
        try:
            for other in self._grid.viewports:
                if (
                    other is not leader
                    and other.source is not None
                    and _modality(other) == modality
                ):
                    other.view.set_window(window)
                    other.view.set_inverted(leader.view.inverted)
        finally:
            self._busy = False

    def _on_view_changed(self, viewport: Viewport) -> None:
        if self.zoom and not self._busy and viewport is self._grid.active:
            self._copy_geometry(viewport)

    def _copy_geometry(self, leader: Viewport) -> None:
        self._busy = True
        try:
            for other in self._grid.viewports:
                if other is not leader and other.source is not None:
                    other.view.match_geometry(leader.view)
        finally:
            self._busy = False

    # ----------------------------------------------------------------- reference lines
    def refresh_reference_lines(self) -> None:
        """Each viewport shows where the active one's slice cuts it (or nothing); with
        ``every_plane`` (MPR: a crosshair), where every other viewport's slice cuts it."""
        active = self._grid.active
        viewports = self._grid.viewports
        leaders = viewports if self.every_plane else [active]
        planes = {id(v): self._plane(v) for v in leaders} if self.reference_lines else {}
        for viewport in viewports:
            lines = []
            theirs = self._plane(viewport) if planes else None
            for leader in leaders:
                plane = planes.get(id(leader))
                if plane is None or theirs is None or leader is viewport:
                    continue
                if (
                    plane.frame_of_reference
                    and theirs.frame_of_reference == plane.frame_of_reference
                ):
                    line = linking.reference_line(plane, theirs)
                    if line is not None:
                        lines.append(line)
            viewport.view.set_reference_lines(lines)


def _modality(viewport: Viewport) -> str:
    return viewport.stack.modality if viewport.stack is not None else ""
