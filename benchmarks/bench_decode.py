"""decode_jpegll, decode_jpegls, decode_j2k: 50 separate 512x512 CT files decoded into arrays.

Ours: :class:`viewer.imaging.loader.SeriesLoader` over the 50 files as one stack (first frame in
the loader thread, the rest in the shared worker pool writing into shared memory, both cores),
until every frame is decoded. Reference: a single-threaded python-gdcm ``ImageReader`` loop over
the same files, each buffer turned into a numpy array (the fastest in-process decoder measured
here). Target: ours / reference <= 1.25 (issue 2, Speed). The pool is started once, outside the
timed region; the stack is built from a header scan done once, also outside.
"""

from __future__ import annotations

from pathlib import Path

import _data
import numpy as np
from common import interleaved, report

from viewer.imaging.loader import SeriesLoader
from viewer.imaging.pool import get_pool, shutdown_pool
from viewer.imaging.stack import build_stacks
from viewer.media.scan import scan

COUNT = 50
CASES = {"decode_jpegll": "JPEGLL", "decode_jpegls": "JLS", "decode_j2k": "J2K"}


def gdcm_loop(paths: list[Path]) -> list[np.ndarray]:
    """The reference: python-gdcm's ImageReader, one file after another, in this thread."""
    import gdcm

    out = []
    for path in paths:
        reader = gdcm.ImageReader()
        reader.SetFileName(str(path))
        if not reader.Read():
            raise RuntimeError(f"gdcm cannot read {path}")
        image = reader.GetImage()
        raw = image.GetBuffer().encode("utf-8", "surrogateescape")
        rows, cols = image.GetDimension(1), image.GetDimension(0)
        out.append(np.frombuffer(raw, np.int16).reshape(rows, cols))
    return out


def main() -> None:
    get_pool(2, warm=True)
    try:
        for name, variant in CASES.items():
            try:
                folder = _data.series(variant, COUNT)
            except _data.MissingTool as exc:
                print(f"bench: {name} skipped: {exc}", flush=True)
                continue
            paths = _data.files(folder)
            result = scan(folder)
            (stack,) = build_stacks(result.instances, series=result.series())
            assert len(stack) == COUNT

            def ours(stack=stack) -> None:  # type: ignore[no-untyped-def]
                with SeriesLoader(stack, workers=2) as load:
                    load.start()
                    if not load.wait(120) or load.problems:
                        raise RuntimeError(f"load failed: {load.problems}")

            # Correctness first: the loader's volume equals the reference decode, bit for bit.
            with SeriesLoader(stack, workers=2) as check:
                check.start()
                check.wait(120)
                volume = check.volume()
                assert volume is not None
                expected = gdcm_loop([ref.path for ref in stack.frames])
                assert all(np.array_equal(volume[i], expected[i]) for i in range(COUNT))
                del volume
            ours_t, ref_t = interleaved(ours, lambda paths=paths: gdcm_loop(paths), reps=5)
            report(
                name,
                ours_t,
                ref_t,
                1.25,
                f"{COUNT} files {variant}, 2 worker processes (pool started outside the timing)"
                " vs single-threaded python-gdcm ImageReader",
            )
    finally:
        shutdown_pool()


if __name__ == "__main__":
    main()
