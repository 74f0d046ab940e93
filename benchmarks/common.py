"""Shared harness for ``make bench`` (conventions in DEVELOPERS.md).

Each benchmark makes its own deterministic synthetic data, cached under ``benchmarks/.cache``
(git-ignored), measures a reference in the same run, takes medians of at least 5 interleaved
runs and prints ``bench: NAME ratio=X target=T ok|short`` where X = our time / reference time.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache"


def cache_dir(name: str) -> Path:
    path = CACHE / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def interleaved(
    ours: Callable[[], object],
    reference: Callable[[], object],
    reps: int = 5,
    setup: Callable[[], object] | None = None,
) -> tuple[float, float]:
    """Median wall-clock seconds of ``ours`` and ``reference``, run alternately ``reps`` times."""
    ours_times: list[float] = []
    ref_times: list[float] = []
    for rep in range(max(reps, 5)):
        order = [(ours, ours_times), (reference, ref_times)]
        if rep % 2:
            order.reverse()
        for func, times in order:
            if setup is not None:
                setup()
            start = time.perf_counter()
            func()
            times.append(time.perf_counter() - start)
    return statistics.median(ours_times), statistics.median(ref_times)


def report(name: str, ours: float, reference: float, target: float | None, note: str = "") -> None:
    """Print the one line ``make bench`` promises; ``target=None`` reports without a target."""
    ratio = ours / reference if reference > 0 else float("inf")
    verdict = "reported" if target is None else ("ok" if ratio <= target else "short")
    target_text = "none" if target is None else f"{target:g}"
    extra = f"  # ours {ours * 1e3:.2f} ms, reference {reference * 1e3:.2f} ms"
    if note:
        extra += f"; {note}"
    print(f"bench: {name} ratio={ratio:.2f} target={target_text} {verdict}{extra}", flush=True)
