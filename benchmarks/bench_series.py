"""series_load and first_image: a 300-slice 512x512 JPEG lossless CT series opened as the view does.

series_load
    Ours: ``scan`` the folder (headers only) + ``build_stacks`` + :class:`SeriesLoader` until
    every frame is in the shared-memory volume (2 worker processes). Reference: the same scan
    and sort, then a single-threaded loop with the same decoder (``decode.read_file`` +
    ``decode.decode_frame``) into a numpy volume. Target 0.6.
first_image
    Ours: scan + sort + the first frame in view order decoded and rendered to the 8-bit display
    buffer (``FrameRenderer.render`` with the file's window). Reference: our full series_load.
    Target 0.2.

The worker pool is started once before any timing (``get_pool(warm=True)``), as the
application starts it at launch; the timed regions never include process start-up. Files are
in the OS page cache (warm) after the correctness check.
"""

from __future__ import annotations

import threading
from pathlib import Path

import _data
import numpy as np
from common import interleaved, report

from viewer.imaging import decode
from viewer.imaging.display import FrameRenderer
from viewer.imaging.loader import SeriesLoader
from viewer.imaging.pool import get_pool, shutdown_pool
from viewer.imaging.stack import Stack, build_stacks
from viewer.media.scan import scan

SLICES = 300
POOL_NOTE = "pool started once outside the timing"


def open_stack(folder: Path) -> Stack:
    result = scan(folder)
    if result.problems:
        raise RuntimeError(f"scan problems: {result.problems[:3]}")
    (stack,) = build_stacks(result.instances, series=result.series())
    return stack


def load_ours(folder: Path) -> np.ndarray:
    """The view's way: scan, sort, SeriesLoader; returns a copy of the finished volume."""
    stack = open_stack(folder)
    with SeriesLoader(stack, workers=2) as load:
        load.start()
        if not load.wait(300) or load.problems:
            raise RuntimeError(f"load failed: {load.problems}")
        volume = load.volume()
        assert volume is not None
        return volume[-1:].copy()  # touch it, keep nothing mapped


def load_single(folder: Path) -> np.ndarray:
    """Reference: the same scan and sort, then one thread and the same decoder."""
    stack = open_stack(folder)
    first = decode.decode_frame(decode.read_file(stack.frames[0].path).dataset, 0)
    volume = np.empty((len(stack), *first.shape), first.dtype)
    volume[0] = first
    for i, ref in enumerate(stack.frames[1:], start=1):
        volume[i] = decode.decode_frame(decode.read_file(ref.path).dataset, ref.frame_index)
    return volume


class FirstImage:
    """Time to the first displayable image; the rest of the load is cancelled untimed."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.loader: SeriesLoader | None = None

    def run(self) -> np.ndarray:
        stack = open_stack(self.folder)
        shown = threading.Event()
        load = SeriesLoader(stack, workers=2, on_frame=lambda i: shown.set())
        self.loader = load
        load.start(first=0)
        if not shown.wait(60):
            raise RuntimeError("no first image")
        pixels = load.frame(0)
        ds = load.dataset(0)
        assert pixels is not None and ds is not None
        return FrameRenderer(ds, 0, pixels).render()

    def reset(self) -> None:
        if self.loader is not None:
            self.loader.close()
            self.loader = None


def main() -> None:
    try:
        folder = _data.series("JPEGLL", SLICES)
    except _data.MissingTool as exc:
        print(f"bench: series_load skipped: {exc}", flush=True)
        print(f"bench: first_image skipped: {exc}", flush=True)
        return
    get_pool(2, warm=True)
    try:
        # Correctness (and a warm page cache): the loader's volume equals the single thread's.
        reference = load_single(folder)
        stack = open_stack(folder)
        with SeriesLoader(stack) as check:
            check.start()
            check.wait(300)
            volume = check.volume()
            assert volume is not None and np.array_equal(volume, reference)
            del volume
        ours_t, ref_t = interleaved(lambda: load_ours(folder), lambda: load_single(folder), 5)
        report(
            "series_load",
            ours_t,
            ref_t,
            0.6,
            f"{SLICES} x 512x512 JPEG lossless: scan+sort+2 workers vs scan+sort+1 thread; "
            + POOL_NOTE,
        )
        first = FirstImage(folder)
        first_t, full_t = interleaved(first.run, lambda: load_ours(folder), 5, setup=first.reset)
        first.reset()
        report(
            "first_image",
            first_t,
            full_t,
            0.2,
            "scan+sort+first frame decoded and rendered vs the full series_load; " + POOL_NOTE,
        )
    finally:
        shutdown_pool()


if __name__ == "__main__":
    main()
