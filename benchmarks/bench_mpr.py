"""mpr_512: one multiplanar reformat of a 512x512x300 CT volume (issue 11, "Reading tools").

Ours: :func:`viewer.imaging.mpr.reformat` of a coronal plane, one slice thick, of a 300-slice
stack of 512x512 int16 frames (geometry from 300 synthetic headers through
:meth:`VolumeGeometry.from_datasets`, the path a series takes), flipped head-up as it is shown.
Reference: numpy's own copy of the same plane, ``np.ascontiguousarray(vol[:, j, :])``. Each run
takes the next plane of a walk through the volume (ours and the reference on different planes,
so neither reads what the other just brought into the cache), as scrolling does; medians of
301 interleaved single runs.

Target 2: a one-thick reformat is the same strided copy as the reference (the flip is a
negative stride) plus about 10 microseconds of bookkeeping (checks, the result's origin and
cosines) against a copy of 300 KB that takes about 50. Measured here against the same
reference, a float32 conversion costs 3x, float64 8x and a loop over the rows 19x, so 2 catches
them with room for noise; a fancy-index gather of the same rows (1.2x) would pass.
The note also reports the sagittal plane against its numpy copy, and 10-slice MIPs (no
reference: a coronal slab is a reduction along a middle axis; a sagittal one reduces the last,
short axis, numpy's slow case).

Data: deterministic synthetic values from a seeded numpy generator, made in about a second, so
nothing is cached.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from common import interleaved, report
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from viewer.imaging.mpr import Volume, VolumeGeometry, reformat

SLICES, ROWS, COLS = 300, 512, 512
REPS = 301
TARGET = 2


def _headers() -> list[Dataset]:
    """An axial CT stack, feet to head: 0.7 mm pixels, 1.25 mm slices."""
    headers = []
    for k in range(SLICES):
        ds = Dataset()
        ds.Modality = "CT"
        ds.Rows, ds.Columns = ROWS, COLS
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-179.3, -200.0, -400.0 + 1.25 * k]
        ds.PixelSpacing = [0.7, 0.7]
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        headers.append(ds)
    return headers


def _values() -> NDArray[np.int16]:
    rng = np.random.default_rng(300)
    return rng.integers(0, 4096, (SLICES, ROWS, COLS), dtype=np.int16)


def _median_ms(func: Callable[[], object], reps: int = 21) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def bench_mpr_512() -> None:
    values = _values()
    volume = Volume(values, VolumeGeometry.from_datasets(_headers()))
    state = {"ours": 0, "reference": 0}

    def plane(who: str, size: int, offset: int) -> int:
        state[who] += 1
        return (37 * state[who] + offset) % size

    def ours() -> None:
        reformat(volume, "coronal", plane("ours", ROWS, 0))

    def reference() -> None:
        np.ascontiguousarray(values[:, plane("reference", ROWS, ROWS // 2), :])

    for _ in range(10):  # warm-up
        ours()
        reference()
    t_ours, t_ref = interleaved(ours, reference, reps=REPS)

    def sagittal() -> None:
        reformat(volume, "sagittal", plane("ours", COLS, 0))

    def sagittal_reference() -> None:
        np.ascontiguousarray(values[:, :, plane("reference", COLS, COLS // 2)])

    s_ours, s_ref = interleaved(sagittal, sagittal_reference, reps=51)
    coronal_mip = _median_ms(lambda: reformat(volume, "coronal", 256, thickness=10))
    sagittal_mip = _median_ms(lambda: reformat(volume, "sagittal", 256, thickness=10))
    note = (
        f"medians of {REPS} interleaved single coronal reformats; sagittal "
        f"{s_ours * 1e3:.2f} ms vs {s_ref * 1e3:.2f} ms (ratio {s_ours / s_ref:.2f}); "
        f"10-slice MIP coronal {coronal_mip:.2f} ms, sagittal {sagittal_mip:.1f} ms"
    )
    report("mpr_512", t_ours, t_ref, TARGET, note=note)


if __name__ == "__main__":
    bench_mpr_512()
