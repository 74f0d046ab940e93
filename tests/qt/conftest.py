"""Helpers for the Qt tests: frames made here from numpy arrays, and a source that delivers them.

The view is tested against :class:`ArraySource`, whose frames the test decides when to
"decode", so that the loading state and the arrival of a frame are both exercised without
timing. The real loader is exercised through the main window in test_main_window.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from viewer.qt.source import FrameSource

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def ct_dataset(
    rows: int = 64,
    cols: int = 48,
    *,
    z: float = 0.0,
    number: int = 1,
    series_uid: str | None = None,
    pixels: np.ndarray | None = None,
) -> Dataset:
    """A CT slice (axial, LPS) with the attributes the corners, letters and scale bar read."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = "1.2.3.4"
    ds.SeriesInstanceUID = series_uid or "1.2.3.4.5"
    ds.Modality = "CT"
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Müller^Jürgen"
    ds.PatientID = "PID-42"
    ds.PatientBirthDate = "19600229"
    ds.PatientSex = "M"
    ds.StudyDate = "20240131"
    ds.StudyDescription = "CT THORAX"
    ds.SeriesNumber = 3
    ds.SeriesDescription = "Lung 1.0"
    ds.InstanceNumber = number
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [0, 0, z]
    ds.SliceLocation = z
    ds.SliceThickness = 2.5
    ds.PixelSpacing = [0.5, 0.5]
    if pixels is None:
        pixels = ramp(rows, cols, number)
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    return ds


def ramp(rows: int, cols: int, number: int = 0) -> np.ndarray:
    """Stored values 0..4000 across the columns plus a number-dependent offset per frame."""
    base = np.linspace(0, 4000, cols, dtype=np.float64)[None, :].repeat(rows, axis=0)
    base[: rows // 4, : cols // 4] = 1024 + 10 * number  # a marker block, HU 10*number
    return base.astype(np.uint16)


class ArraySource(FrameSource):
    """Frames from arrays; a frame counts as decoded once :meth:`deliver` says so."""

    def __init__(
        self,
        datasets: list[Dataset],
        arrays: list[np.ndarray],
        *,
        loaded: bool = True,
        headers_late: bool = False,
    ):
        """``headers_late``: no header before the frame, as :class:`LoaderSource` behaves."""
        super().__init__()
        self._headers_late = headers_late
        self._datasets = datasets
        self._arrays = arrays
        self._ready = set(range(len(arrays))) if loaded else set()
        self._problems: dict[int, str] = {}
        self.closed = False

    def __len__(self) -> int:
        return len(self._arrays)

    def frame(self, position: int) -> np.ndarray | None:
        return self._arrays[position] if position in self._ready else None

    def dataset(self, position: int) -> Dataset | None:
        if self._headers_late and position not in self._ready:
            return None
        return self._datasets[position]

    def problem(self, position: int) -> str | None:
        return self._problems.get(position)

    def label(self) -> str:
        return "test series"

    def deliver(self, position: int, *, from_thread: bool = False) -> None:
        """Mark a frame decoded and signal it, optionally from another thread like the loader."""
        self._ready.add(position)
        if from_thread:
            thread = threading.Thread(target=self.frame_ready.emit, args=(position,))
            thread.start()
            thread.join()
        else:
            self.frame_ready.emit(position)

    def fail(self, position: int, message: str) -> None:
        self._problems[position] = message
        self.problem_found.emit(position, message)

    def close(self) -> None:
        self.closed = True


def ct_series(
    count: int = 5, rows: int = 64, cols: int = 48
) -> tuple[list[Dataset], list[np.ndarray]]:
    datasets = [ct_dataset(rows, cols, z=2.5 * i, number=i + 1) for i in range(count)]
    arrays = [ramp(rows, cols, i + 1) for i in range(count)]
    return datasets, arrays


@pytest.fixture(autouse=True)
def _no_dangling_threads() -> Iterator[None]:
    """A test that leaves a thread of its own running fails (napari's conftest does the same).

    The decoder process pool is shared by the whole application on purpose; its management
    threads (concurrent.futures, multiprocessing) are not a test's leftovers.
    """
    before = set(threading.enumerate())
    yield
    left = [
        t
        for t in threading.enumerate()
        if t not in before
        and t.is_alive()
        and not isinstance(t, threading._DummyThread)  # a Qt thread that ran Python once
        and not type(t).__module__.startswith(("concurrent.futures", "multiprocessing"))
        and t.name != "QueueFeederThread"
    ]
    assert not left, f"threads left running: {[t.name for t in left]}"


@pytest.fixture
def view(qtbot) -> Iterator:  # type: ignore[no-untyped-def]
    """A shown 400x300 ImageView on a 5-slice CT series, every frame decoded."""
    from viewer.qt.image_view import ImageView

    widget = ImageView()
    qtbot.addWidget(widget)
    widget.resize(400, 300)
    datasets, arrays = ct_series()
    source = ArraySource(datasets, arrays)
    widget.set_source(source)
    widget.show()
    qtbot.waitExposed(widget)
    yield widget
    widget.set_source(None)


def write_series(folder: Path, count: int = 4, rows: int = 32, cols: int = 32) -> list[Path]:
    """A CT series as Part 10 files, shuffled instance numbers on disk, for the opening tests."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        ds = ct_dataset(rows, cols, z=-5.0 * i, number=count - i)
        path = folder / f"slice{i:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


@pytest.fixture
def store_window(qtbot, tmp_path: Path) -> Iterator:  # type: ignore[no-untyped-def]
    """A shown main window on a store of its own (``tmp_path/store``), no removable volumes;
    closed after the test, with no series loader left running."""
    from viewer.qt.main_window import MainWindow
    from viewer.store import Store

    store = Store.open(tmp_path / "store")
    main = MainWindow(store=store, volume_source=list)
    qtbot.addWidget(main)
    main.resize(1200, 800)
    main.show()
    qtbot.waitExposed(main)
    yield main
    main.close()
    store.close()
    assert not any(t.name == "SeriesLoader" and t.is_alive() for t in threading.enumerate())
