"""wl_512 and wl_large: window/level updates to the display buffer (issue 2, "Speed").

wl_512
    Ours: :meth:`FrameRenderer.render` of a 512x512 16-bit CT frame (Bits Stored 12, rescale
    intercept -1024) with a new window each call, to the 8-bit display buffer. Reference:
    ``np.copyto`` of the same frame. Each run is one update (one copy), timed alone: a
    median of 301 interleaved runs is not moved by the scheduler handing the core to another
    process now and then, which a batch of updates timed together would count; target 10.
wl_large
    Ours: one W/L update of a 4096x3328 16-bit mammogram fitted into a 1280x1024 view, all the
    way to a QImage wrapping the uint8 buffer without a copy. The resampled level of the frame
    (area averaging, built once per frame and view size) is excluded from the update and
    reported in the note. Reference: one ``np.copyto`` of the full frame; target 2.

Data: deterministic synthetic frames made with numpy (a seeded generator), nothing downloaded.
"""

from __future__ import annotations

import time

import numpy as np
from common import interleaved, report
from numpy.typing import NDArray

from viewer.imaging.display import FrameRenderer, Window

REPS_512 = 301


def _dataset(pixels: NDArray[np.uint16], modality: str, intercept: float) -> object:
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.Modality = modality
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept = 1, intercept
    return ds


def _ct_frame() -> NDArray[np.uint16]:
    """A body-like phantom: air, soft tissue, bone ring, lungs, noise; stored = HU + 1024."""
    rng = np.random.default_rng(512)
    y, x = np.mgrid[-256:256, -256:256].astype(np.float32)
    hu = np.full((512, 512), -1000.0, np.float32)
    body = (x / 220) ** 2 + (y / 170) ** 2 < 1
    hu[body] = 40
    hu[((x - 90) / 60) ** 2 + (y / 90) ** 2 < 1] = -800
    hu[((x + 90) / 60) ** 2 + (y / 90) ** 2 < 1] = -800
    ring = np.abs(np.hypot(x, y + 40) - 40) < 8
    hu[ring] = 900
    hu += rng.normal(0, 12, hu.shape).astype(np.float32)
    return np.clip(hu + 1024, 0, 4095).astype(np.uint16)


def _mammogram() -> NDArray[np.uint16]:
    """4096 rows x 3328 columns: a breast-shaped smooth gradient with texture and noise."""
    rng = np.random.default_rng(4096)
    rows, cols = 4096, 3328
    y = np.linspace(-1, 1, rows, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, cols, dtype=np.float32)[None, :]
    r = np.sqrt((x / 0.85) ** 2 + y**2)
    tissue = np.clip(1 - r, 0, 1) ** 0.5
    texture = rng.normal(0, 1, (rows // 16, cols // 16)).astype(np.float32)
    texture = np.kron(texture, np.ones((16, 16), np.float32))
    frame = 300 + tissue * (2800 + 250 * texture)
    frame += rng.normal(0, 20, (rows, cols)).astype(np.float32)
    return np.clip(frame, 0, 4095).astype(np.uint16)


def bench_wl_512() -> None:
    frame = _ct_frame()
    renderer = FrameRenderer(_dataset(frame, "CT", -1024), 0, frame)  # type: ignore[arg-type]
    copy_target = np.empty_like(frame)
    windows = [Window(40 + i % 200, 400 + 3 * (i % 200)) for i in range(REPS_512)]
    display = np.empty(frame.shape, np.uint8)  # the view's display buffer, kept between updates
    state = {"i": 0}

    def ours() -> None:
        state["i"] += 1
        renderer.render(windows[state["i"] % len(windows)], out=display)

    def reference() -> None:
        np.copyto(copy_target, frame)

    for _ in range(20):  # warm-up: first touch of the buffers
        ours()
        reference()
    t_ours, t_ref = interleaved(ours, reference, reps=REPS_512)
    report("wl_512", t_ours, t_ref, 10, note=f"medians of {REPS_512} interleaved single updates")


def bench_wl_large() -> None:
    from PySide6.QtGui import QImage

    frame = _mammogram()
    renderer = FrameRenderer(_dataset(frame, "MG", 0), 0, frame)  # type: ignore[arg-type]
    view = (1280, 1024)
    start = time.perf_counter()
    renderer.render_scaled(Window(2000, 3000), size=view)  # builds the level once
    level_time = time.perf_counter() - start
    copy_target = np.empty_like(frame)
    images: list[QImage] = []
    state = {"i": 0}

    def ours() -> None:
        state["i"] += 1
        buf = renderer.render_scaled(Window(2000 + state["i"], 3000), size=view)
        rows, cols = buf.shape
        image = QImage(buf.data, cols, rows, buf.strides[0], QImage.Format.Format_Grayscale8)
        image.ndarray = buf  # type: ignore[attr-defined]  # keep the buffer alive with the image
        images[:] = [image]

    def reference() -> None:
        np.copyto(copy_target, frame)

    t_ours, t_ref = interleaved(ours, reference, reps=11)
    shape = images[0].width(), images[0].height()
    note = f"QImage {shape[0]}x{shape[1]}; level built once per frame in {level_time * 1e3:.0f} ms"
    report("wl_large", t_ours, t_ref, 2, note=note)


if __name__ == "__main__":
    bench_wl_512()
    bench_wl_large()
