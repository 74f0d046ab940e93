"""scroll_2x2: scrolling four linked 512 x 512 viewports (issue 11, "Reading tools").

Ours: the real main window in a 2 x 2 layout, four series of 40 synthetic 512 x 512 CT frames
(decoded already: an in-memory source), scrolling linked by position; one step is the active
viewport's next image, the other three following through the linker, and all four painted
(``QWidget.repaint`` of the grid: each view's whole paint, image, corners, letters, scale bar,
once per step as the event loop would; repainting the four views one by one painted the
followers twice, their pending updates flushed with the leader's). Reference: rendering
the same four frames to display buffers with the display pipeline alone
(:meth:`FrameRenderer.render`, the work no view can skip). The ratio is the cost of the views,
the linking and Qt's painting over the pixels themselves; target 3. Frames per second of the
four-viewport scroll are printed beside it.

Data: deterministic synthetic frames (numpy, seeded), made in memory in a second; nothing cached.
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np
from common import report

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

FRAMES = 40
SIZE = 512
STEPS = 30


def _datasets_and_frames(series: int) -> tuple[list[object], list[np.ndarray]]:
    from pydicom.dataset import Dataset

    rng = np.random.default_rng(2026 + series)
    y, x = np.mgrid[-256:256, -256:256].astype(np.float32)
    body = ((x / 220) ** 2 + (y / 170) ** 2 < 1).astype(np.float32)
    datasets, frames = [], []
    for k in range(FRAMES):
        hu = -1000 + body * (1040 + 20 * np.sin(k / 5 + x / 40))
        hu += rng.normal(0, 10, hu.shape).astype(np.float32)
        frames.append(np.clip(hu + 1024, 0, 4095).astype(np.uint16))
        ds = Dataset()
        ds.PatientName, ds.PatientID = "Bench^Scroll", "BENCH-1"
        ds.StudyInstanceUID = "1.2.826.0.1.3680043.10.1.1"
        ds.SeriesInstanceUID = f"1.2.826.0.1.3680043.10.1.1.{series}"
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.10.1.1.{series}.{k}"
        ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.10.1.9"
        ds.Modality = "CT"
        ds.Rows = ds.Columns = SIZE
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.WindowCenter, ds.WindowWidth = 40, 400
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-128, -128, 2.0 * k + series * 0.1]
        ds.PixelSpacing = [0.5, 0.5]
        ds.SliceThickness = 2
        ds.InstanceNumber = k + 1
        datasets.append(ds)
    return datasets, frames


def main() -> None:
    from pathlib import Path

    from PySide6.QtWidgets import QApplication

    from viewer import model
    from viewer.imaging.display import FrameRenderer
    from viewer.imaging.stack import FrameRef, Stack
    from viewer.qt.main_window import MainWindow
    from viewer.qt.source import FrameSource
    from viewer.store import Store

    class MemorySource(FrameSource):
        def __init__(self, datasets: list[object], frames: list[np.ndarray]) -> None:
            super().__init__()
            self._datasets, self._frames = datasets, frames

        def __len__(self) -> int:
            return len(self._frames)

        def frame(self, position: int) -> np.ndarray | None:
            return self._frames[position]

        def dataset(self, position: int) -> object:
            return self._datasets[position]

    app = QApplication.instance() or QApplication([])
    import tempfile

    home = tempfile.mkdtemp(prefix="bench-scroll-")
    store = Store.open(Path(home) / "store")
    window = MainWindow(store=store, volume_source=list)
    window.resize(1600, 1200)
    window.show()
    window.set_layout(2, 2)
    series = [_datasets_and_frames(s) for s in range(4)]
    for viewport, (datasets, frames) in zip(window.grid.viewports, series, strict=True):
        instances = [
            model.Instance(
                Path(f"s{id(datasets)}-{k}.dcm"),
                str(ds.SOPInstanceUID),  # type: ignore[attr-defined]
                image_position=tuple(float(v) for v in ds.ImagePositionPatient),  # type: ignore[attr-defined]
                image_orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
            )
            for k, ds in enumerate(datasets)
        ]
        viewport.stack = Stack(
            "bench",
            str(datasets[0].SeriesInstanceUID),  # type: ignore[attr-defined]
            "CT",
            frames=[FrameRef(i.path, 0, i) for i in instances],
        )
        viewport.set_source(MemorySource(datasets, frames))
    app.processEvents()
    window.linker.set_scroll(True)
    leader = window.grid.viewports[0]
    window.grid.set_active(leader)

    def ours() -> None:
        for step in range(STEPS):
            leader.view.set_position((step + 1) % FRAMES)
            window.grid.repaint()  # every viewport painted once, as the event loop would

    renderers_input = [
        [(datasets[k], frames[k]) for datasets, frames in series] for k in range(FRAMES)
    ]

    def reference() -> None:
        for step in range(STEPS):
            for ds, pixels in renderers_input[(step + 1) % FRAMES]:
                FrameRenderer(ds, 0, pixels).render()

    ours()  # warm up: renderers, fonts, buffers
    followed = [v.view.position for v in window.grid.viewports]
    ours_times, ref_times = [], []
    for rep in range(5):
        for func, times in ((ours, ours_times), (reference, ref_times))[:: 1 if rep % 2 else -1]:
            start = time.perf_counter()
            func()
            times.append(time.perf_counter() - start)
    ours_s, ref_s = statistics.median(ours_times), statistics.median(ref_times)
    fps = STEPS / ours_s
    linked = len(set(followed)) == 1
    report(
        "scroll_2x2",
        ours_s / STEPS,
        ref_s / STEPS,
        3,
        f"{fps:.0f} steps/s of four 512x512 viewports; linked: {'yes' if linked else 'NO'}",
    )
    window.close()
    store.close()


if __name__ == "__main__":
    main()
