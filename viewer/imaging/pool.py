"""The one process pool of the application: frame decoding (:mod:`viewer.imaging.loader`,
:func:`viewer.imaging.decode.decode_frames_parallel`), large media scans and received instances'
imports (:mod:`viewer.store.receiver`) share it, so its start-up (about 30 ms and more per
worker) is paid once and the machine's cores are never asked for twice as many processes.

Workers are started with ``forkserver`` (or ``spawn`` where that is missing), never ``fork``: a
forked copy of a process running Qt inherits its threads' locks half-held. They import numpy,
pydicom and :mod:`viewer.imaging.decode` (preloaded by the fork server), never PySide6, and die
with the application (a lifeline pipe), even when it is killed.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import multiprocessing
import os
import sys
import threading
from multiprocessing.connection import Connection

#: glibc ``mallopt`` parameters (malloc.h) and the values the workers use; see _tune_malloc.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
WORKER_MMAP_THRESHOLD = 16 << 20
WORKER_TRIM_THRESHOLD = 64 << 20


def _worker_init(lifeline: Connection) -> None:
    """Per worker: attach to segments without registering them, and die with the application.

    The loader process creates and unlinks every segment; a worker that registered its
    attachment could leave the tracker believing a segment leaked (Python 3.11 behaviour).
    A pool worker whose application was killed (a crash, SIGKILL) would otherwise wait on its
    task queue for ever, since every worker holds that queue's write end; so each worker
    holds the read end of a pipe whose only write end is the application's, and exits when
    that pipe reports end-of-file.
    """
    from multiprocessing import resource_tracker

    original = resource_tracker.register

    def register(name: str, rtype: str) -> None:
        if rtype != "shared_memory":
            original(name, rtype)

    resource_tracker.register = register  # type: ignore[assignment]
    _tune_malloc()
    threading.Thread(target=_watch_owner, args=(lifeline,), name="lifeline", daemon=True).start()


def _tune_malloc() -> None:
    """Keep a worker's frame-sized buffers in its heap instead of a fresh mapping each time.

    Decoding one 512x512 frame allocates several half-megabyte buffers (the file, gdcm's
    output string, its bytes copy, the array). glibc serves each from a new ``mmap`` and
    returns it with ``munmap``, so every frame pays about 600 page faults: measured here,
    a third of a worker's time went to the kernel (0.27 s of system time per 150 frames) and
    with these thresholds nearly none (1.05 s instead of 1.6 s for 300 frames in one thread).
    Only the workers are tuned: they are ours and short of nothing but CPU; a worker keeps at
    most ``WORKER_TRIM_THRESHOLD`` of freed heap. No-op where there is no glibc ``mallopt``.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):  # no mallopt (macOS, Windows)
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    mallopt(_M_MMAP_THRESHOLD, WORKER_MMAP_THRESHOLD)
    mallopt(_M_TRIM_THRESHOLD, WORKER_TRIM_THRESHOLD)


def _watch_owner(lifeline: Connection) -> None:
    try:
        while True:
            lifeline.recv_bytes()
    except (EOFError, OSError):
        os._exit(0)


def _worker_probe() -> tuple[int, list[str]]:
    """The worker's pid and any Qt module it has imported (tests and warm-up)."""
    qt = ("PySide6", "shiboken6")
    loaded = sorted(m for m in list(sys.modules) if m.split(".")[0] in qt)
    return os.getpid(), loaded


_POOL: cf.ProcessPoolExecutor | None = None
_POOL_WORKERS = 0
_POOL_LOCK = threading.Lock()
#: The pipe whose end-of-file tells the workers that the application is gone.
_LIFELINES: list[Connection] = []


def _context() -> multiprocessing.context.BaseContext:
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        # Workers fork from a server that has already imported the decoders (cheap start).
        ctx.set_forkserver_preload(["viewer.imaging.loader"])
        return ctx
    return multiprocessing.get_context("spawn")


def default_workers() -> int:
    """One worker per core (the issue's target machine has 2), at least 1, at most 8."""
    return min(8, max(1, os.cpu_count() or 1))


def get_pool(workers: int | None = None, *, warm: bool = False) -> cf.ProcessPoolExecutor:
    """The process pool every loader (and large scans) share; created on first use with
    ``workers`` processes (default: one per core, at most 8), replaced only if broken.

    A later call with another ``workers`` gets the existing pool: replacing a pool would
    cancel the work other loaders have queued in it. ``warm`` starts every worker now (so
    that the application's start-up or a benchmark pays for it, not the first series).
    """
    global _POOL, _POOL_WORKERS
    with _POOL_LOCK:
        if _POOL is None:
            count = max(1, workers if workers is not None else default_workers())
            ctx = _context()
            lifeline_reader, lifeline_writer = ctx.Pipe(duplex=False)
            _LIFELINES[:] = [lifeline_reader, lifeline_writer]
            _POOL = cf.ProcessPoolExecutor(
                max_workers=count,
                mp_context=ctx,
                initializer=_worker_init,
                initargs=(lifeline_reader,),
            )
            _POOL_WORKERS = count
        pool, count = _POOL, _POOL_WORKERS
    if warm:
        for future in [pool.submit(_worker_probe) for _ in range(count)]:
            future.result(timeout=120)
    return pool


def discard_pool(pool: cf.ProcessPoolExecutor) -> None:
    """Forget a broken pool so that the next :func:`get_pool` starts a fresh one."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is pool:
            _POOL = None
    pool.shutdown(wait=False, cancel_futures=True)


def shutdown_pool() -> None:
    """Stop the shared pool's workers (at exit, and in tests that count processes)."""
    global _POOL
    with _POOL_LOCK:
        pool, _POOL = _POOL, None
        lifelines = list(_LIFELINES)
        _LIFELINES.clear()
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)
    for connection in lifelines:
        connection.close()


atexit.register(shutdown_pool)
