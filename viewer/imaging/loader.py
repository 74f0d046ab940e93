"""SeriesLoader: a stack's first image at once, the rest decoded by worker processes.

Why processes: the decoders (python-gdcm, pylibjpeg) hold the GIL, so a thread pool gave
0.8-1.0x on this 2-core machine, while worker processes writing into one shared-memory volume
gave 1.9-2.0x (issue 2 section 3; /work/shared/anchors FIGURES.md section 3). Returning pickled
arrays instead lost most of that gain, so frames go straight into a
``multiprocessing.shared_memory`` volume of shape ``(frames, rows, cols[, 3])`` when they share
the first frame's shape and dtype; a frame that does not is sent back as its own array.

The workers are the application's one process pool (:mod:`viewer.imaging.pool`: forkserver or
spawn, never fork; started once; no PySide6 in them).

The shared segment starts with a small header whose first byte is a cancel flag that the
workers check before each frame, so that :meth:`SeriesLoader.cancel` stops within one frame's
decoding time per worker.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import threading
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

from viewer.imaging import decode
from viewer.imaging.pool import discard_pool, get_pool
from viewer.imaging.stack import FrameRef, Stack

log = logging.getLogger(__name__)

#: Bytes before the volume in the shared segment; byte 0 is the cancel flag.
HEADER_BYTES = 64
#: Frames per worker task: large enough to amortise a task's IPC, small enough to cancel fast
#: and to deliver frames near the one on screen first.
MAX_CHUNK = 4
#: Tasks in flight per worker: enough that no worker waits for the loader thread to refill.
WINDOW_PER_WORKER = 4
FrameCallback = Callable[[int], None]
ProblemCallback = Callable[[int, str], None]

# --------------------------------------------------------------------------------------------
# Reading and decoding (shared by the loader thread and the workers)


class _FrameError(Exception):
    """A frame that cannot be shown, with the file and the reason in words."""


def _read_full(path: Path) -> pydicom.Dataset:
    """A whole file, pixel data included, through the shared robust reader."""
    try:
        return decode.read_file(path).dataset
    except decode.DecodeError as exc:
        raise _FrameError(str(exc)) from exc


def _read_header(path: Path) -> pydicom.Dataset:
    """Headers only (no pixel data), through the shared robust reader."""
    try:
        return decode.read_file(path, headers_only=True).dataset
    except decode.DecodeError as exc:
        raise _FrameError(str(exc)) from exc


def _decode(ds: pydicom.Dataset, index: int, path: Path) -> np.ndarray:
    """One frame as ``decode.decode_frame`` gives it, C-contiguous for the shared volume."""
    try:
        return np.ascontiguousarray(decode.decode_frame(ds, index))
    except decode.DecodeError as exc:
        message = str(exc)
        if str(path) not in message:
            message = f"{path}: {exc.reason}"
        raise _FrameError(message) from exc


class _FileCache:
    """The last file read, so that a multi-frame file is read once per process, not per frame.

    Keyed on path, size and modification time, so that a rewritten file is read again.
    """

    def __init__(self) -> None:
        self.key: tuple[Path, int, int] | None = None
        self.dataset: pydicom.Dataset | None = None

    def decode(self, path: Path, index: int) -> np.ndarray:
        try:
            stat = path.stat()
        except OSError as exc:
            raise _FrameError(f"{path}: cannot open: {exc.strerror or exc}") from exc
        key = (path, stat.st_size, stat.st_mtime_ns)
        if self.key != key or self.dataset is None:
            self.key, self.dataset = None, None
            self.dataset = _read_full(path)
            self.key = key
        return _decode(self.dataset, index, path)

    def clear(self) -> None:
        self.key, self.dataset = None, None


# --------------------------------------------------------------------------------------------
# Worker side


_WORKER_CACHE = _FileCache()


def _fits(volume: np.ndarray | None, pixels: np.ndarray) -> bool:
    return volume is not None and pixels.shape == volume.shape[1:] and pixels.dtype == volume.dtype


Job = tuple[int, str, int]  # (slot in the stack, path, frame index in the file)
Outcome = tuple[int, str, Any]  # (slot, "ok" | "array" | "problem" | "cancelled", payload)


def _decode_chunk(
    segment: str, shape: tuple[int, ...] | None, dtype: str | None, jobs: Sequence[Job]
) -> list[Outcome]:
    """Decode ``jobs`` into the shared volume (or return arrays that do not fit it)."""
    try:
        shm = shared_memory.SharedMemory(name=segment)
    except (FileNotFoundError, OSError):
        return [(slot, "cancelled", None) for slot, _, _ in jobs]
    outcomes: list[Outcome] = []
    try:
        flag = np.ndarray((1,), np.uint8, buffer=shm.buf)
        volume = (
            np.ndarray(shape, np.dtype(dtype), buffer=shm.buf, offset=HEADER_BYTES)
            if shape is not None and dtype is not None
            else None
        )
        for slot, path, index in jobs:
            if flag[0]:
                outcomes.append((slot, "cancelled", None))
                continue
            try:
                pixels = _WORKER_CACHE.decode(Path(path), index)
            except _FrameError as exc:
                outcomes.append((slot, "problem", str(exc)))
                continue
            except Exception as exc:  # a decoder bug must not take the chunk down
                message = f"{path}: cannot decode frame {index + 1}: {exc}"
                outcomes.append((slot, "problem", message))
                continue
            if _fits(volume, pixels):
                assert volume is not None
                volume[slot] = pixels
                outcomes.append((slot, "ok", None))
            else:
                outcomes.append((slot, "array", pixels))
        del flag, volume
    finally:
        shm.close()
    return outcomes


# --------------------------------------------------------------------------------------------
# The loader


def _unmap(shm: shared_memory.SharedMemory) -> None:
    with contextlib.suppress(BufferError, OSError):
        shm.close()


def _set_flag(shm: shared_memory.SharedMemory, value: int) -> None:
    np.ndarray((1,), np.uint8, buffer=shm.buf)[0] = value


def view_order(count: int, first: int) -> list[int]:
    """``first``, then outward from it, so that the frames next to the one shown come first."""
    first = min(max(first, 0), max(count - 1, 0))
    return sorted(range(count), key=lambda i: (abs(i - first), i < first, i))


class SeriesLoader:
    """Decode a stack's frames: the first shown at once, the rest in the background.

    Callbacks (``on_frame(i)``, ``on_problem(i, message)``, ``on_finished()``) run in the
    loader's own thread; a Qt caller forwards them through queued signals. ``frame(i)`` returns
    a read-only view of the shared volume, valid until :meth:`close`.
    """

    def __init__(
        self,
        stack: Stack,
        *,
        workers: int = 2,
        on_frame: FrameCallback | None = None,
        on_problem: ProblemCallback | None = None,
        on_finished: Callable[[], None] | None = None,
    ) -> None:
        self.stack = stack
        self.frames: list[FrameRef] = list(stack.frames)
        self.workers = workers
        self._on_frame = on_frame
        self._on_problem = on_problem
        self._on_finished = on_finished
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._finished = threading.Event()
        self._thread: threading.Thread | None = None
        self._shm: shared_memory.SharedMemory | None = None
        self._volume: np.ndarray | None = None
        self._done = np.zeros(len(self.frames), dtype=bool)
        self._arrays: dict[int, np.ndarray] = {}
        self._headers: dict[Path, pydicom.Dataset] = {}
        self.problems: dict[int, str] = {}
        self._closed = False

    # -- public API ---------------------------------------------------------------------------

    def start(self, first: int = 0) -> None:
        """Begin loading; frame ``first`` (in view order) is decoded before any other."""
        if self._thread is not None:
            raise RuntimeError("SeriesLoader.start() called twice")
        if not self.frames:
            self._finish()
            return
        self._thread = threading.Thread(
            target=self._run, args=(first,), name="SeriesLoader", daemon=True
        )
        self._thread.start()

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def decoded_count(self) -> int:
        with self._lock:
            return int(self._done.sum())

    def frame(self, i: int) -> np.ndarray | None:
        """Frame ``i``'s decoded pixels (see ``decode.decode_frame``), None until decoded."""
        with self._lock:
            if not 0 <= i < len(self.frames) or not self._done[i]:
                return None
            array = self._arrays.get(i)
            if array is None and self._volume is not None:
                array = self._volume[i]
            if array is None:
                return None
            view = array.view()
            view.flags.writeable = False
            return view

    def volume(self) -> np.ndarray | None:
        """The whole ``(frames, rows, cols[, 3])`` volume (frames not yet decoded are zeros)."""
        with self._lock:
            if self._volume is None:
                return None
            view = self._volume.view()
            view.flags.writeable = False
            return view

    def dataset(self, i: int) -> pydicom.Dataset | None:
        """The header (no pixel data) of frame ``i``'s file, read once per file and kept.

        None when the file cannot be read (its problem is reported by the loader).
        """
        path = self.frames[i].path
        with self._lock:
            cached = self._headers.get(path)
        if cached is not None:
            return cached
        try:
            ds = _read_header(path)
        except _FrameError:
            return None
        with self._lock:
            self._headers[path] = ds
        return ds

    def wait(self, timeout: float | None = None) -> bool:
        """True once every frame is decoded or has failed (or the load was cancelled)."""
        return self._finished.wait(timeout)

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    def cancel(self) -> None:
        """Stop decoding soon: queued work is dropped, running workers stop at the next frame."""
        self._cancel.set()
        with self._lock:
            if self._shm is not None:
                _set_flag(self._shm, 1)

    def close(self) -> None:
        """Cancel, wait for the loader thread and release the shared memory."""
        self.cancel()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            self._closed = True
            shm, self._shm = self._shm, None
            volume_owned = self._volume is not None
            self._volume = None
            self._arrays.clear()
        if shm is not None:
            # The name goes now (nothing left in /dev/shm). The mapping goes when the volume
            # array does, i.e. once no caller holds a frame view (numpy does not pin the
            # buffer: unmapping under a live view would crash). See _allocate.
            with contextlib.suppress(FileNotFoundError):
                shm.unlink()
            if not volume_owned:
                _unmap(shm)

    def __enter__(self) -> SeriesLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- loader thread -----------------------------------------------------------------------

    def _emit_frame(self, i: int) -> None:
        if self._on_frame is not None:
            try:
                self._on_frame(i)
            except Exception:
                log.exception("on_frame callback failed")

    def _emit_problem(self, i: int, message: str) -> None:
        with self._lock:
            self.problems[i] = message
        log.info("frame %d of a series not loaded (the reason at debug level)", i + 1)
        log.debug("frame %d: %s", i + 1, message)  # names the file: it may name the patient
        if self._on_problem is not None:
            try:
                self._on_problem(i, message)
            except Exception:
                log.exception("on_problem callback failed")

    def _finish(self) -> None:
        self._finished.set()
        if self._on_finished is not None:
            try:
                self._on_finished()
            except Exception:
                log.exception("on_finished callback failed")

    def _store_array(self, i: int, pixels: np.ndarray) -> None:
        with self._lock:
            volume = self._volume
            if _fits(volume, pixels):
                assert volume is not None
                volume[i] = pixels
            else:
                self._arrays[i] = pixels
            self._done[i] = True
        self._emit_frame(i)

    def _allocate(self, sample: np.ndarray) -> None:
        """The shared segment: header + volume shaped like ``sample``; header only if too big."""
        nbytes = len(self.frames) * sample.nbytes
        try:
            shm = shared_memory.SharedMemory(create=True, size=HEADER_BYTES + nbytes)
            with_volume = True
        except OSError:
            shm = shared_memory.SharedMemory(create=True, size=HEADER_BYTES)
            with_volume = False
        with self._lock:
            self._shm = shm
            _set_flag(shm, 1 if self._cancel.is_set() else 0)
            if with_volume:
                self._volume = np.ndarray(
                    (len(self.frames), *sample.shape),
                    sample.dtype,
                    buffer=shm.buf,
                    offset=HEADER_BYTES,
                )
                # Every frame view has the volume as its base: unmap when the last one goes.
                weakref.finalize(self._volume, _unmap, shm)

    def _run(self, first: int) -> None:
        try:
            self._load(first)
        except Exception as exc:  # never let the thread die silently
            log.exception("series loader failed")
            for i in range(len(self.frames)):
                if not self._done[i] and i not in self.problems:
                    self._emit_problem(i, f"loading stopped: {exc}")
        finally:
            self._finish()

    def _load(self, first: int) -> None:
        order = view_order(len(self.frames), first)
        cache = _FileCache()
        remaining = list(order)
        sample: np.ndarray | None = None
        while remaining and sample is None and not self._cancel.is_set():
            i = remaining.pop(0)
            ref = self.frames[i]
            try:
                sample = cache.decode(ref.path, ref.frame_index)
            except _FrameError as exc:
                self._emit_problem(i, str(exc))
                continue
            except Exception as exc:
                message = f"{ref.path}: cannot decode frame {ref.frame_index + 1}: {exc}"
                self._emit_problem(i, message)
                continue
            self._allocate(sample)
            self._store_array(i, sample)
        cache.clear()
        if not remaining or self._cancel.is_set() or sample is None:
            return
        self._load_in_pool(remaining)

    def _load_locally(self, slots: Sequence[int]) -> None:
        """The fallback when no worker process can be had: decode here, one frame at a time."""
        cache = _FileCache()
        for i in slots:
            if self._cancel.is_set():
                return
            ref = self.frames[i]
            try:
                pixels = cache.decode(ref.path, ref.frame_index)
            except Exception as exc:
                self._emit_problem(i, str(exc))
                continue
            self._store_array(i, pixels)

    def _chunks(self, slots: Sequence[int]) -> list[list[Job]]:
        size = max(1, min(MAX_CHUNK, len(slots) // (4 * max(self.workers, 1))))
        jobs = [(i, str(self.frames[i].path), self.frames[i].frame_index) for i in slots]
        # A multi-frame file's frames go together so that a worker reads the file once per chunk.
        return [jobs[k : k + size] for k in range(0, len(jobs), size)]

    def _submit(self, pool: cf.ProcessPoolExecutor, chunk: list[Job]) -> cf.Future[list[Outcome]]:
        assert self._shm is not None
        volume = self._volume
        shape = tuple(volume.shape) if volume is not None else None
        dtype = volume.dtype.str if volume is not None else None
        args = (self._shm.name, shape, dtype, chunk)
        try:
            return pool.submit(_decode_chunk, *args)
        except (BrokenProcessPool, RuntimeError):  # broken or shut down under us: once more
            discard_pool(pool)
            return get_pool(self.workers).submit(_decode_chunk, *args)

    def _load_in_pool(self, slots: Sequence[int]) -> None:
        """Feed the pool a window of chunks at a time, in view order, and collect the results.

        A bounded window keeps cancellation quick and limits what a worker crash takes down:
        when a worker dies (a decoder crashing on some file), every task of that pool fails;
        the frames of the failed tasks are then retried one at a time, alone in a fresh pool,
        so the frame that crashes again is known exactly and reported, and the rest loads.
        """
        queue = deque(self._chunks(slots))
        suspects: deque[Job] = deque()
        in_flight: dict[cf.Future[list[Outcome]], tuple[list[Job], Any, bool]] = {}
        window = WINDOW_PER_WORKER * max(self.workers, 1)
        try:
            pool = get_pool(self.workers)
        except Exception as exc:  # no processes to be had: still show the series
            log.warning("no decoder processes (%s); decoding in one thread", exc)
            self._load_locally(slots)
            return
        while True:
            if self._cancel.is_set():
                # Queued tasks are dropped; running ones stop at their next frame and their
                # results are not awaited: a worker still mapping the segment after close()
                # unlinks it only delays the release of that memory until its task returns.
                for future in in_flight:
                    future.cancel()
                return
            if suspects:
                if not in_flight:
                    job = suspects.popleft()
                    in_flight[self._submit(pool, [job])] = ([job], pool, True)
            else:
                while queue and len(in_flight) < window:
                    chunk = queue.popleft()
                    in_flight[self._submit(pool, chunk)] = (chunk, pool, False)
            if not in_flight:
                if queue or suspects:
                    continue
                return
            finished, _ = cf.wait(list(in_flight), timeout=0.05, return_when=cf.FIRST_COMPLETED)
            # A future cancelled by the executor itself (shutdown with cancel_futures) never
            # counts as done for cf.wait: look for those too.
            finished |= {f for f in in_flight if f.cancelled()}
            for future in finished:
                chunk, used, isolated = in_flight.pop(future)
                if future.cancelled():
                    if self._cancel.is_set():
                        continue
                    if isolated:  # the pool was shut down under us: do it again
                        suspects.extend(chunk)
                    else:
                        queue.append(chunk)
                    continue
                try:
                    outcomes = future.result()
                except BrokenProcessPool:
                    discard_pool(used)
                    pool = get_pool(self.workers)
                    if isolated:
                        for slot, path, index in chunk:
                            self._emit_problem(
                                slot, f"{path}: the decoder crashed on frame {index + 1}"
                            )
                    else:
                        suspects.extend(chunk)
                    continue
                except Exception as exc:
                    for slot, path, _ in chunk:
                        self._emit_problem(slot, f"{path}: {exc}")
                    continue
                self._apply(outcomes)

    def _apply(self, outcomes: list[Outcome]) -> None:
        for slot, status, payload in outcomes:
            if status == "ok":
                with self._lock:
                    self._done[slot] = True
                self._emit_frame(slot)
            elif status == "array":
                self._store_array(slot, payload)
            elif status == "problem":
                self._emit_problem(slot, str(payload))
