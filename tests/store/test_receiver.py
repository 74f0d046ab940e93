"""The receiver (viewer.store.receiver): an acknowledged instance is never lost, is indexed in
batches through the one import path, and nothing half-written is indexed.

The kill tests run a receiver in a subprocess, let it acknowledge instances, kill it inside the
batch import with the importer's test hook (``LIGHTBOX_STORE_CRASH_AT``), and check that a new
receiver on the same store indexes every acknowledged instance.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pydicom
import pytest

import viewer.store.receiver as receiver_module
from tests.store.dicomfiles import make_dataset, make_folder, uid, write
from viewer.store import Receiver, Store, check, has_instance, import_paths, list_studies
from viewer.store.check import ORPHAN, PENDING, TMP_LEFT
from viewer.store.importer import CRASH_ENV, ImportReport, spool_dir
from viewer.store.receiver import (
    STATUS_CANNOT_UNDERSTAND,
    STATUS_OUT_OF_RESOURCES,
    STATUS_SUCCESS,
    status_of,
)

ROOT = Path(__file__).resolve().parents[2]


def _scp_files(folder: Path, source: list[Path]) -> list[Path]:
    """Copies standing for the files the SCP writes (the receiver moves them away)."""
    folder.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy(p, folder / f".rx-{i}.dcm")) for i, p in enumerate(source)]


def _rows(store: Store) -> int:
    return int(store.connection().execute("SELECT count(*) FROM instances").fetchone()[0])


def _spooled(store: Store) -> list[Path]:
    return sorted(spool_dir(store).iterdir())


def test_received_instances_are_indexed_in_batches(tmp_path: Path) -> None:
    files = make_folder(tmp_path / "src", studies=2, series=2, instances=3)
    committed: list[list[str]] = []
    with Store.open(tmp_path / "store") as store:
        receiver = Receiver(store, on_committed=committed.append)
        try:
            incoming = _scp_files(tmp_path / "scp", files)
            for path in incoming:
                assert receiver(path, "MODALITY") == STATUS_SUCCESS
                assert not path.exists()  # moved into the store's spool, durable
            assert receiver.wait_idle(30)
            assert receiver.pending() == 0
        finally:
            assert receiver.close()
        assert _rows(store) == len(files)
        assert sum(s.num_instances for s in list_studies(store)) == len(files)
        assert _spooled(store) == []
        assert check(store).ok
        studies = {u for batch in committed for u in batch}
        assert studies == {uid(1), uid(2)}
        # batched: fewer commits than instances (a sender pausing less than LINGER_S)
        assert len(committed) < len(files)


def test_already_present_conflict_and_unreadable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stored = write(tmp_path / "a.dcm", make_dataset(1, 1, 1, patient="SECRET^NAME"))
    same = write(tmp_path / "b.dcm", make_dataset(1, 1, 1, patient="SECRET^NAME"))
    other = write(tmp_path / "c.dcm", make_dataset(1, 1, 1, patient="SECRET^NAME", pixel_seed=7))
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not DICOM at all" * 10)
    with Store.open(tmp_path / "store") as store:
        assert import_paths(store, [stored]).imported
        (before,) = store.connection().execute("SELECT dataset_sha256 FROM instances").fetchone()
        with Receiver(store) as receiver, caplog.at_level(logging.INFO):
            same_rx, other_rx, junk_rx = _scp_files(tmp_path / "scp", [same, other, junk])
            assert receiver(same_rx, "MODALITY") == STATUS_SUCCESS
            assert receiver(other_rx, "MODALITY") == STATUS_SUCCESS
            # unreadable: refused in the answer (test_hostile_input.py), never acknowledged
            assert status_of(receiver(junk_rx, "MODALITY")) == STATUS_CANNOT_UNDERSTAND
            assert not junk_rx.exists()
            assert receiver.wait_idle(30)
        assert _rows(store) == 1
        (after,) = store.connection().execute("SELECT dataset_sha256 FROM instances").fetchone()
        assert after == before  # the stored instance stays
        assert _spooled(store) == []
        # what was acknowledged and refused is kept, with a note saying why
        notes = sorted(store.quarantine_dir.glob("received-*.txt"))
        kept = sorted(p for p in store.quarantine_dir.glob("received-*") if p.suffix != ".txt")
        assert len(notes) == len(kept) == 1
        text = " ".join(n.read_text() for n in notes)
        assert "conflict" in text and "MODALITY" in text
        assert {p.read_bytes() for p in kept} == {other.read_bytes()}
        assert check(store).ok
    logged = caplog.text
    assert "was not stored" in logged
    assert "SECRET" not in logged and uid(1, 1, 1) not in logged  # no patient data


def test_many_threads_at_once(tmp_path: Path) -> None:
    files = make_folder(tmp_path / "src", studies=4, series=2, instances=4)
    incoming = _scp_files(tmp_path / "scp", files)
    statuses: list[int] = []
    lock = threading.Lock()
    with Store.open(tmp_path / "store") as store, Receiver(store) as receiver:

        def send(paths: list[Path]) -> None:
            for path in paths:
                status = receiver(path, "PACS")
                with lock:
                    statuses.append(status)

        threads = [threading.Thread(target=send, args=(incoming[i::8],)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert statuses == [STATUS_SUCCESS] * len(files)
        assert receiver.wait_idle(30)
        assert _rows(store) == len(files)
        assert _spooled(store) == []
        assert check(store).ok


def test_close_imports_what_is_queued_then_refuses(tmp_path: Path) -> None:
    files = make_folder(tmp_path / "src", studies=1, series=1, instances=5)
    incoming = _scp_files(tmp_path / "scp", files)
    with Store.open(tmp_path / "store") as store:
        receiver = Receiver(store)
        for path in incoming[:4]:
            assert receiver(path, "PACS") == STATUS_SUCCESS
        assert receiver.close()  # no wait_idle: close itself imports the queue
        assert _rows(store) == 4
        assert status_of(receiver(incoming[4], "PACS")) == STATUS_OUT_OF_RESOURCES
        assert incoming[4].exists()  # refused: left to the SCP, which deletes it
        assert receiver.close()  # twice is fine
        assert _spooled(store) == []


def test_a_new_receiver_imports_what_was_left_spooled(tmp_path: Path) -> None:
    files = make_folder(tmp_path / "src", studies=1, series=1, instances=3)
    with Store.open(tmp_path / "store") as store:
        spool = spool_dir(store)
        spool.mkdir()
        for i, path in enumerate(files):
            shutil.copy(path, spool / f"{i:020d}-left.dcm")
        (spool / ".rx-being-written.dcm").write_bytes(b"partial")  # not ours to import
        with Receiver(store) as receiver:
            assert receiver.drain(30)
        assert _rows(store) == 3
        assert [p.name for p in _spooled(store)] == [".rx-being-written.dcm"]


SCRIPT = """
import sys
from pathlib import Path
from viewer.store import Receiver, Store
with Store.open(sys.argv[1]) as store:
    receiver = Receiver(store, isolated=False)  # the import runs (and dies) in this process
    for path in sys.argv[2:]:
        status = receiver(Path(path), "MODALITY")
        print("status", status, path, flush=True)
    receiver.wait_idle(60)
    print("idle", flush=True)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")
@pytest.mark.parametrize("crash", ["staged:2", "synced:1", "renamed:3", "indexed:1", "committed:1"])
def test_kill_after_success_before_commit(tmp_path: Path, crash: str) -> None:
    """Success was answered, the process dies in the batch import: a new receiver on the store
    indexes every acknowledged instance; nothing half-written is indexed meanwhile."""
    files = make_folder(tmp_path / "src", studies=2, series=2, instances=3)
    incoming = _scp_files(tmp_path / "scp", files)
    env = {**os.environ, CRASH_ENV: crash}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "store"), *map(str, incoming)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, (proc.stdout, proc.stderr)
    assert "idle" not in proc.stdout
    acknowledged = [
        Path(line.split()[2])
        for line in proc.stdout.splitlines()
        if line.startswith("status") and int(line.split()[1]) == STATUS_SUCCESS
    ]
    assert acknowledged  # the kill came after at least one success
    with Store.open(tmp_path / "store") as store:
        found = check(store)  # before recovery: never a row without its file
        assert {p.problem for p in found.problems} <= {ORPHAN, TMP_LEFT, PENDING}, found.problems
        with Receiver(store) as receiver:
            assert receiver.drain(30)
        for path in acknowledged:
            sop_uid = _sop_uid(files[incoming.index(path)])
            assert has_instance(store, sop_uid), path
        assert _spooled(store) == []
        repaired = check(store, repair=True)
        assert {p.problem for p in repaired.problems} <= {TMP_LEFT}  # leftovers of the kill
        assert check(store).ok


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")
def test_a_worker_killed_in_the_import_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch import runs in a worker process; when that worker dies in the middle of a
    batch, the batch stays spooled and a new worker imports it."""
    files = make_folder(tmp_path / "src", studies=1, series=2, instances=4)
    monkeypatch.setenv(CRASH_ENV, "renamed:3")  # handed to the worker with the batch
    with Store.open(tmp_path / "store") as store:
        receiver = Receiver(store)
        assert receiver.isolated
        try:
            for path in _scp_files(tmp_path / "scp", files):
                assert receiver(path, "MODALITY") == STATUS_SUCCESS
            deadline = time.monotonic() + 60
            while receiver.worker_failures == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert receiver.worker_failures >= 1
            assert receiver.pending() == len(files)  # put back, nothing dropped
            monkeypatch.delenv(CRASH_ENV)
            assert receiver.drain(60)
        finally:
            assert receiver.close()
        assert _rows(store) == len(files)
        assert _spooled(store) == []
        repaired = check(store, repair=True)  # the killed worker's staged link, at most
        assert {p.problem for p in repaired.problems} <= {TMP_LEFT}
        assert check(store).ok


def _sop_uid(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def test_spooled_import_links_checks_and_leaves_the_spool_file(tmp_path: Path) -> None:
    plain = make_dataset(1, 1, 1)
    exe = make_dataset(1, 1, 2)
    outside = write(tmp_path / "outside.dcm", make_dataset(1, 1, 3))
    with Store.open(tmp_path / "store") as store:
        spool = spool_dir(store)
        a = write(spool / "a.dcm", plain)
        b = write(spool / "b.dcm", exe)
        b.write_bytes(b"MZ" + b.read_bytes()[2:])  # an executable preamble (CVE-2019-11687)
        report = import_paths(store, [a, b, outside], spooled=True)
        assert sorted(report.imported) == [str(a), str(b)]
        assert [p.path for p in report.rejected] == [str(outside)]
        assert report.studies == [uid(1)]
        assert a.exists() and b.exists()  # the receiver deletes them, not the import
        managed = {
            rel: store.root / rel
            for (rel,) in store.connection().execute("SELECT path FROM instances")
        }
        inodes = {p.stat().st_ino for p in managed.values()}
        assert a.stat().st_ino in inodes  # staged by a hard link: not copied again
        assert b.stat().st_ino not in inodes  # its preamble is rewritten: copied
        assert all(p.read_bytes()[:2] == b"\0\0" for p in managed.values())
        assert report.warnings and "CVE-2019-11687" in report.warnings[0].problem
        assert check(store).ok


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux")
def test_the_worker_imports_at_a_lower_priority(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker imports a batch in a thread of lower priority (the sender waiting for our
    answer comes first); the worker's own thread keeps its priority."""
    seen: list[int] = []

    def fake_import(store: Store, paths: list[Path], *, spooled: bool) -> ImportReport:
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return ImportReport(imported=[str(p) for p in paths])

    monkeypatch.setattr(receiver_module, "import_paths", fake_import)
    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    Store.open(tmp_path / "store").close()
    report = receiver_module._import_in_worker(str(tmp_path / "store"), ["a.dcm"], "")
    assert report.imported == ["a.dcm"]
    assert seen == [min(19, before + receiver_module.IMPORT_NICENESS)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before
