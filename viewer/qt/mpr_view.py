"""MPR in the reading window: a series' volume shown as axial, coronal and sagittal viewports.

:class:`MprSource` is one plane of a :class:`viewer.imaging.mpr.Volume` seen as a
:class:`~viewer.qt.source.FrameSource`: each position is reformatted when the view asks for it
(one strided copy, a few milliseconds for 512 × 512 × 300) and comes with a header carrying the
reformat's geometry (Image Position and Orientation, Pixel Spacing, the slab's thickness) and the
patient and study of the series, so the view's corners, orientation letters, scale bar, window
presets, readout and reference lines work unchanged. A reformat is no stored image: it has no SOP
Instance UID, so nothing measured on it is kept.

:class:`MprController` builds the volume from a loaded series on a worker, shows the three
planes in a 1 × 3 layout with reference lines on (where the other two planes cut each one),
moves the other planes to a point clicked on one (crosshair navigation), and sets the thick
slab (MIP) of all three.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from PySide6.QtCore import QObject, Signal

from viewer.imaging import mpr
from viewer.qt.jobs import Job, JobSet
from viewer.qt.source import FrameSource
from viewer.qt.viewports import Viewport, ViewportGrid

#: Attributes a reformat's header copies from the series (whose images these are, how to show).
_COPIED = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyDescription",
    "AccessionNumber",
    "Modality",
    "SeriesNumber",
    "SpecificCharacterSet",
    "WindowCenter",
    "WindowWidth",
    "WindowCenterWidthExplanation",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
)

_PLANE_NAMES = {
    mpr.Plane.AXIAL: "Axial",
    mpr.Plane.CORONAL: "Coronal",
    mpr.Plane.SAGITTAL: "Sagittal",
}


class MprSource(FrameSource):
    """One plane of a volume; ``set_slab`` changes the slab of every position."""

    def __init__(
        self, volume: mpr.Volume, plane: mpr.Plane, template: Dataset, path: str, for_uid: str
    ) -> None:
        super().__init__()
        self.volume = volume
        self.plane = plane
        self._axes = volume.geometry.axes(plane)
        self._template = template
        self._path = path
        self._for_uid = for_uid
        self.thickness = 1
        self._cache: OrderedDict[int, mpr.Reformat] = OrderedDict()
        self._headers: dict[int, Dataset] = {}

    def __len__(self) -> int:
        return self._axes.count

    def has_frame(self, position: int) -> bool:
        return 0 <= position < len(self)

    def reformat(self, position: int) -> mpr.Reformat:
        cached = self._cache.get(position)
        if cached is not None:
            self._cache.move_to_end(position)
            return cached
        made = mpr.reformat(self.volume, self.plane, position, thickness=self.thickness)
        self._cache[position] = made
        while len(self._cache) > 8:
            self._cache.popitem(last=False)
        return made

    def frame(self, position: int) -> np.ndarray | None:
        if not 0 <= position < len(self):
            return None
        pixels = self.reformat(position).pixels
        return pixels

    def dataset(self, position: int) -> Dataset | None:
        if not 0 <= position < len(self):
            return None
        header = self._headers.get(position)
        if header is None:
            header = self._header(position)
            self._headers[position] = header
        return header

    def _header(self, position: int) -> Dataset:
        cut = self.reformat(position)
        ds = Dataset()
        for keyword in _COPIED:
            element = self._template.data_element(keyword) if keyword in self._template else None
            if element is not None:
                setattr(ds, keyword, element.value)
        slab = f", {self.thickness}-slice MIP" if self.thickness > 1 else ""
        ds.SeriesDescription = f"{_PLANE_NAMES[self.plane]} MPR{slab}"
        ds.InstanceNumber = position + 1
        ds.Rows, ds.Columns = cut.pixels.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = cut.pixels.dtype.itemsize * 8
        if "BitsStored" not in ds or int(ds.BitsStored) > ds.BitsAllocated:
            ds.BitsStored = ds.BitsAllocated
            ds.HighBit = ds.BitsAllocated - 1
        ds.PixelRepresentation = 1 if np.issubdtype(cut.pixels.dtype, np.signedinteger) else 0
        ds.RescaleSlope = _ds_number(self.volume.slope)
        ds.RescaleIntercept = _ds_number(self.volume.intercept)
        ds.ImagePositionPatient = [_ds_number(v) for v in cut.origin]
        ds.ImageOrientationPatient = [
            _ds_number(v) for v in (*cut.row_cosines, *cut.column_cosines)
        ]
        ds.PixelSpacing = [_ds_number(v) for v in cut.pixel_spacing]
        ds.SliceThickness = _ds_number(cut.slab_mm)
        ds.FrameOfReferenceUID = self._for_uid
        return ds

    def set_slab(self, thickness: int) -> None:
        self.thickness = max(1, thickness)
        self._cache.clear()
        self._headers.clear()

    def label(self) -> str:
        return f"{_PLANE_NAMES[self.plane]} MPR"

    def path(self, position: int) -> str:
        return self._path


def _ds_number(value: float) -> str:
    """A DS value (at most 16 characters, PS3.5 6.2)."""
    text = f"{value:.10g}"
    return text if len(text) <= 16 else f"{value:.6e}"


class MprController(QObject):
    """Builds volumes and shows them; ``failed(str)`` says why a series makes no volume,
    ``shown(list[str])`` gives the warnings of the volume shown (a tilt, uneven spacing)."""

    failed = Signal(str)
    shown = Signal(list)
    stopped = Signal()

    def __init__(self, grid: ViewportGrid, jobs: JobSet, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._grid = grid
        self._jobs = jobs
        self._job: Job | None = None
        self.sources: list[MprSource] = []
        self._before: tuple[int, int] | None = None
        self._clicks: dict[int, Callable[..., None]] = {}

    @property
    def active(self) -> bool:
        return bool(self.sources)

    def start(self, viewport: Viewport) -> None:
        """Reformat the series the viewport shows, once every frame of it is decoded."""
        source = viewport.source
        if source is None or len(source) == 0 or isinstance(source, MprSource):
            self.failed.emit("MPR needs a series shown in the active viewport")
            return
        if viewport.decoded_count < len(source):
            self.failed.emit(
                f"MPR when the series is loaded ({viewport.decoded_count}/{len(source)} images)"
            )
            return
        datasets = [source.dataset(p) for p in range(len(source))]
        frames = [source.frame(p) for p in range(len(source))]
        if any(d is None for d in datasets) or any(f is None for f in frames):
            self.failed.emit("MPR needs every image of the series (some could not be read)")
            return
        indices = [source.frame_index(p) for p in range(len(source))]
        template = datasets[0]
        path = source.path(0)

        def work(_cancel: threading.Event, _progress: Callable[..., None]) -> mpr.Volume:
            return mpr.Volume.from_frames(datasets, frames, indices)  # type: ignore[arg-type]

        job = Job("MprVolume", work)
        job.finished.connect(lambda volume: self._show(volume, template, path))
        job.failed.connect(lambda exc: self.failed.emit(f"No MPR of this series: {exc}"))
        self._job = job
        self._jobs.start(job)

    def _show(self, volume: object, template: Any, path: str) -> None:
        assert isinstance(volume, mpr.Volume)
        for_uid = str(template.get("FrameOfReferenceUID", "") or "") or generate_uid()
        self._before = self._before or self._grid.shape
        self._grid.set_shape(1, 3)
        self.sources = []
        for viewport, plane in zip(
            self._grid.viewports,
            (mpr.Plane.AXIAL, mpr.Plane.CORONAL, mpr.Plane.SAGITTAL),
            strict=True,
        ):
            source = MprSource(volume, plane, template, path, for_uid)
            self.sources.append(source)
            viewport.stack = None
            viewport.set_source(source)
            viewport.view.set_position(len(source) // 2)
            self._watch(viewport)
        self._grid.set_active(self._grid.viewports[0])
        self.shown.emit(list(volume.geometry.warnings))

    def _watch(self, viewport: Viewport) -> None:
        key = id(viewport)
        if key in self._clicks:
            return
        handler = lambda row, column, v=viewport: self.cross_at(v, row, column)  # noqa: E731
        self._clicks[key] = handler
        viewport.image_clicked.connect(handler)

    def cross_at(self, viewport: Viewport, row: float, column: float) -> None:
        """A point clicked on one plane: the other planes move through it."""
        source = viewport.source
        if not isinstance(source, MprSource):
            return
        point = mpr.cross_point(source.volume, source.plane, viewport.view.position, row, column)
        for other in self._grid.viewports:
            theirs = other.source
            if other is viewport or not isinstance(theirs, MprSource):
                continue
            if theirs.volume is source.volume:
                other.view.set_position(point.index(theirs.plane))

    def set_slab(self, thickness: int) -> None:
        """A thick slab (maximum intensity over ``thickness`` positions) on every plane."""
        for viewport in self._grid.viewports:
            source = viewport.source
            if isinstance(source, MprSource):
                position = viewport.view.position
                source.set_slab(thickness)
                viewport.view.set_source(source, position)

    def stop(self) -> None:
        """Leave MPR: the planes go, the layout before comes back (empty)."""
        for viewport in self._grid.viewports:
            if isinstance(viewport.source, MprSource):
                viewport.set_source(None)
        self.sources = []
        self.stopped.emit()
        if self._before is not None:
            self._grid.set_shape(*self._before)
            self._before = None
