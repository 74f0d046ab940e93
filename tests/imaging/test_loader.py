"""SeriesLoader: frames decoded by worker processes into shared memory equal a plain decode."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import JPEG2000Lossless, RLELossless, generate_uid

from viewer import model
from viewer.imaging import pool as pool_module
from viewer.imaging.loader import SeriesLoader, view_order
from viewer.imaging.pool import get_pool, shutdown_pool
from viewer.imaging.stack import FrameRef, Stack, build_stacks
from viewer.media.scan import scan

ROOT = Path(__file__).resolve().parents[2]
TEST_FILES = Path(str(get_testdata_file("CT_small.dcm"))).parent


def reference_decode(path: Path, index: int) -> np.ndarray:
    """The single-threaded oracle: the same file decoded here, in this process, frame by frame."""
    from pydicom.pixels.utils import pixel_array

    return pixel_array(pydicom.dcmread(path), index=index)


def write_slice(path: Path, pixels: np.ndarray, *, number: int, rle: bool = False) -> None:
    ds = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.77"
    ds.InstanceNumber = number
    ds.ImagePositionPatient = [0.0, 0.0, float(number)]
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.PixelData = pixels.astype(np.int16).tobytes()
    if rle:
        ds.compress(RLELossless)
    ds.save_as(path, enforce_file_format=True)


def stack_of(paths: list[Path]) -> Stack:
    frames = []
    for k, path in enumerate(paths):
        inst = model.Instance(path=path, sop_instance_uid=f"1.2.3.{k}", rows=64, columns=64)
        frames.append(FrameRef(path, 0, inst))
    return Stack(key="test", series_instance_uid="1.2.3", frames=frames)


@pytest.fixture()
def series(tmp_path: Path) -> tuple[list[Path], list[np.ndarray]]:
    rng = np.random.default_rng(5)
    paths, arrays = [], []
    for k in range(12):
        pixels = rng.integers(-1024, 3000, (64, 64)).astype(np.int16)
        path = tmp_path / f"IM{k:03d}"
        write_slice(path, pixels, number=k + 1, rle=k % 2 == 1)
        paths.append(path)
        arrays.append(pixels)
    return paths, arrays


@pytest.fixture(autouse=True)
def _no_segment_left(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every segment this process creates during the test is unlinked by its end."""
    created: list[str] = []
    original = shared_memory.SharedMemory.__init__

    def recording_init(self: shared_memory.SharedMemory, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        if kwargs.get("create"):
            created.append(self.name)

    monkeypatch.setattr(shared_memory.SharedMemory, "__init__", recording_init)
    yield
    if os.path.isdir("/dev/shm"):
        leaked = [name for name in created if os.path.exists(f"/dev/shm/{name.lstrip('/')}")]
        assert not leaked, f"shared memory left behind: {leaked}"


class Recorder:
    def __init__(self) -> None:
        self.frames: list[int] = []
        self.problems: dict[int, str] = {}
        self.threads: set[str] = set()

    def on_frame(self, i: int) -> None:
        self.threads.add(threading.current_thread().name)
        self.frames.append(i)

    def on_problem(self, i: int, message: str) -> None:
        self.problems[i] = message


def test_frames_equal_the_written_pixels_and_a_single_threaded_decode(
    series: tuple[list[Path], list[np.ndarray]],
) -> None:
    paths, arrays = series
    rec = Recorder()
    with SeriesLoader(stack_of(paths), on_frame=rec.on_frame, on_problem=rec.on_problem) as load:
        assert load.frame(0) is None
        load.start()
        assert load.wait(30)
        assert not rec.problems
        assert sorted(rec.frames) == list(range(12))
        assert rec.frames[0] == 0
        assert rec.threads == {"SeriesLoader"}
        for k, path in enumerate(paths):
            got = load.frame(k)
            assert got is not None and not got.flags.writeable
            np.testing.assert_array_equal(got, arrays[k])
            np.testing.assert_array_equal(got, reference_decode(path, 0))
        volume = load.volume()
        assert volume is not None and volume.shape == (12, 64, 64)
        assert load.dataset(3).InstanceNumber == 4  # type: ignore[union-attr]


def test_start_first_decodes_that_frame_first_then_its_neighbours(
    series: tuple[list[Path], list[np.ndarray]],
) -> None:
    paths, _ = series
    rec = Recorder()
    with SeriesLoader(stack_of(paths), on_frame=rec.on_frame) as load:
        load.start(first=7)
        assert load.wait(30)
    assert rec.frames[0] == 7
    assert view_order(12, 7)[:5] == [7, 8, 6, 9, 5]
    assert sorted(view_order(5, 99)) == list(range(5))


def test_a_corrupt_file_in_the_middle_is_a_problem_and_the_rest_loads(
    series: tuple[list[Path], list[np.ndarray]], tmp_path: Path
) -> None:
    paths, arrays = series
    bad = tmp_path / "IM006"
    raw = bad.read_bytes()
    bad.write_bytes(raw[: len(raw) - 3000])  # pixel data cut short; headers intact
    rec = Recorder()
    with SeriesLoader(stack_of(paths), on_frame=rec.on_frame, on_problem=rec.on_problem) as load:
        load.start()
        assert load.wait(30)
        assert set(rec.problems) == {6}
        assert "IM006" in rec.problems[6]
        assert load.frame(6) is None
        for k in set(range(12)) - {6}:
            np.testing.assert_array_equal(load.frame(k), arrays[k])


def test_a_first_frame_that_fails_moves_on_to_the_next(
    series: tuple[list[Path], list[np.ndarray]], tmp_path: Path
) -> None:
    paths, arrays = series
    (tmp_path / "IM000").write_bytes(b"not dicom at all")
    rec = Recorder()
    with SeriesLoader(stack_of(paths), on_frame=rec.on_frame, on_problem=rec.on_problem) as load:
        load.start()
        assert load.wait(30)
        assert set(rec.problems) == {0}
        assert rec.frames[0] == 1
        np.testing.assert_array_equal(load.frame(11), arrays[11])


def test_frames_of_another_shape_come_back_as_their_own_arrays(
    series: tuple[list[Path], list[np.ndarray]], tmp_path: Path
) -> None:
    paths, arrays = series
    small = np.arange(32 * 48, dtype=np.int16).reshape(32, 48)
    write_slice(tmp_path / "IM004", small, number=5)
    with SeriesLoader(stack_of(paths)) as load:
        load.start()
        assert load.wait(30)
        np.testing.assert_array_equal(load.frame(4), small)
        np.testing.assert_array_equal(load.frame(5), arrays[5])


def test_multiframe_colour_cine_equals_a_single_threaded_decode() -> None:
    path = TEST_FILES / "examples_ybr_color.dcm"
    result = scan(path)
    (stack,) = build_stacks(result.instances, series=result.series())
    assert len(stack) == 30
    with SeriesLoader(stack) as load:
        load.start(first=10)
        assert load.wait(60)
        assert not load.problems
        ds = pydicom.dcmread(path)
        from pydicom.pixels.utils import pixel_array

        for k in (0, 10, 29):
            np.testing.assert_array_equal(load.frame(k), pixel_array(ds, index=k))
        assert load.frame(0).shape == (240, 320, 3)  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def slow_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 512x512 JPEG 2000 file: each decode takes several ms, so 300 of them take seconds."""
    path = tmp_path_factory.mktemp("slow") / "J2K"
    yy, xx = np.mgrid[0:512, 0:512]
    rng = np.random.default_rng(1)
    pixels = (np.sin(xx / 9.0) * np.cos(yy / 13.0) * 800 + rng.normal(0, 20, (512, 512))).astype(
        np.int16
    )
    write_slice(path, pixels, number=1)
    ds = pydicom.dcmread(path)
    ds.compress(JPEG2000Lossless)
    ds.save_as(path, enforce_file_format=True)
    return path


def test_cancel_stops_promptly(slow_file: Path) -> None:
    get_pool(2, warm=True)
    stack = stack_of([slow_file] * 300)
    first = threading.Event()
    with SeriesLoader(stack, on_frame=lambda i: first.set()) as load:
        load.start()
        assert first.wait(30)
        time.sleep(0.05)  # let the workers get going
        started = time.perf_counter()
        load.cancel()
        assert load.wait(5)
        elapsed = time.perf_counter() - started
        assert elapsed < 0.5, f"cancel took {elapsed:.2f} s"
        assert load.decoded_count < 300


def test_close_without_start_and_twice_is_harmless(
    series: tuple[list[Path], list[np.ndarray]],
) -> None:
    load = SeriesLoader(stack_of(series[0]))
    load.close()
    load.close()
    empty = SeriesLoader(Stack(key="e", series_instance_uid="e"))
    empty.start()
    assert empty.wait(1)
    empty.close()


def test_a_view_held_after_close_stays_valid_and_the_name_is_gone(
    series: tuple[list[Path], list[np.ndarray]],
) -> None:
    paths, arrays = series
    load = SeriesLoader(stack_of(paths))
    load.start()
    assert load.wait(30)
    held = load.frame(2)
    load.close()
    assert held is not None
    np.testing.assert_array_equal(held, arrays[2])  # still mapped while held
    del held


def test_workers_do_not_import_qt_and_do_not_outlive_shutdown() -> None:
    pytest.importorskip("PySide6.QtCore")  # the parent has Qt loaded, as the application does
    shutdown_pool()
    pool = get_pool(2, warm=True)
    probes = [pool.submit(pool_module._worker_probe) for _ in range(8)]
    results = [f.result(timeout=60) for f in probes]
    pids = {pid for pid, _ in results}
    assert all(loaded == [] for _, loaded in results)
    assert os.getpid() not in pids
    shutdown_pool()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids)


def test_the_pool_is_not_forked() -> None:
    pool = get_pool(2)
    method = pool._mp_context.get_start_method()  # type: ignore[attr-defined]
    assert method in ("forkserver", "spawn")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "State:\tZ" not in f.read()
    except FileNotFoundError:
        return False


def test_workers_exit_when_the_application_is_killed() -> None:
    """A crashed application must not leave decoder processes behind."""
    script = (
        "import os, signal\n"
        "from viewer.imaging import pool as shared\n"
        "pool = shared.get_pool(2, warm=True)\n"
        "pids = {pool.submit(shared._worker_probe).result()[0] for _ in range(6)}\n"
        "print(' '.join(map(str, pids)), flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    pids = [int(p) for p in done.stdout.split()]
    assert pids, done.stderr
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in pids)


def test_a_worker_killed_mid_load_does_not_stop_the_series(slow_file: Path) -> None:
    """A crashed decoder process breaks the pool; the loader retries in a fresh one."""
    shutdown_pool()
    pool = get_pool(2, warm=True)
    pids = {pool.submit(pool_module._worker_probe).result(timeout=60)[0] for _ in range(6)}
    stack = stack_of([slow_file] * 40)
    rec = Recorder()
    started = threading.Event()

    def on_frame(i: int) -> None:
        rec.on_frame(i)
        if len(rec.frames) == 5:
            started.set()

    with SeriesLoader(stack, on_frame=on_frame, on_problem=rec.on_problem) as load:
        load.start()
        assert started.wait(60)
        os.kill(next(iter(pids)), signal.SIGKILL)
        assert load.wait(60)
        assert pool_module._POOL is not pool, "the kill must have broken the pool"
        assert rec.problems == {}
        assert load.decoded_count == 40
        expected = reference_decode(slow_file, 0)
        for i in (0, 20, 39):
            np.testing.assert_array_equal(load.frame(i), expected)
    shutdown_pool()


def test_a_pool_shut_down_mid_load_is_replaced_and_the_load_completes(slow_file: Path) -> None:
    get_pool(2, warm=True)
    stack = stack_of([slow_file] * 40)
    started = threading.Event()
    rec = Recorder()

    def on_frame(i: int) -> None:
        rec.on_frame(i)
        if len(rec.frames) == 3:
            started.set()

    with SeriesLoader(stack, on_frame=on_frame, on_problem=rec.on_problem) as load:
        load.start()
        assert started.wait(60)
        shutdown_pool()  # cancels what this loader had queued
        assert load.wait(60)
        assert rec.problems == {}
        assert load.decoded_count == 40
        assert sorted(rec.frames) == list(range(40))


def test_get_pool_keeps_the_existing_pool_whatever_the_count() -> None:
    pool = get_pool(2)
    assert get_pool(3) is pool
    assert get_pool() is pool


def test_one_owner_of_the_process_pool(shared_data: Path) -> None:
    """Loaders, large scans, the receiver and parallel multi-frame decoding share one pool
    (decode.py used to start a second one of its own)."""
    import re

    from viewer.imaging.decode import decode_frames_parallel

    shutdown_pool()
    decode_frames_parallel(shared_data / "hard" / "multiframe.dcm", workers=2)
    assert pool_module._POOL is not None  # the parallel decode started the shared pool
    assert get_pool() is pool_module._POOL
    root = ROOT / "viewer"
    owners = [
        p.relative_to(root).as_posix()
        for p in root.rglob("*.py")
        if re.search(r"ProcessPoolExecutor\(", p.read_text())
    ]
    assert owners == ["imaging/pool.py"]
