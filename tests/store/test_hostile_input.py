"""Issue 9, the store side of hostile input: what a sender or a killed process leaves.

- A C-STORE whose data set is garbage, truncated, or lacks what the store needs (a real file of
  a public test set has no Study Instance UID) is answered with a failure status and an error
  comment (0xC000 / 0xA900, PS3.4 B.2.3), never Success, and is neither stored nor quarantined:
  checked on the Receiver itself and end to end (pynetdicom and DCMTK ``storescu`` sending to
  our StorageScp with a Receiver on a real store).
- The quarantine (what was acknowledged and then refused: a conflict) is bounded in size, the
  oldest dropped first and counted (``store check`` / ``store ls`` say so).
- Opening a store removes the ``tmp/*.part`` and ``incoming/.rx-*`` files of dead processes,
  never a live process's file and never a spooled (acknowledged) instance.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage

from tests.net import peers
from tests.net.conftest import FAST
from tests.store.dicomfiles import dataset_part, make_dataset, make_folder, to_bytes, uid, write
from viewer.media.listing import listing_text
from viewer.net.nodes import LocalSettings
from viewer.net.scp import StorageScp
from viewer.store import Receiver, Store, check, import_paths
from viewer.store.commands import check_summary, listing
from viewer.store.importer import CRASH_ENV, spool_dir
from viewer.store.part10 import file_meta_bytes, split_header
from viewer.store.receiver import (
    COMMENT_MAX,
    STATUS_CANNOT_UNDERSTAND,
    STATUS_DOES_NOT_MATCH,
    STATUS_SUCCESS,
)

ROOT = Path(__file__).resolve().parents[2]
#: A real instance from a public test set without Study (and Series) Instance UID: pydicom's
#: JPEG-LS lossless Secondary Capture test file (MANIFEST.tsv; ``hard/multiframe.dcm`` lacks it
#: too, but it is a VL Whole Slide image our SCP does not accept). The store cannot keep it.
NO_STUDY_UID = "pydicom-data/JLSL_08_07_0_1F.dcm"


def _rows(store: Store) -> int:
    return int(store.connection().execute("SELECT count(*) FROM instances").fetchone()[0])


def _hostile(folder: Path) -> dict[str, tuple[Path, int]]:
    """Files a sender may send, with the status each must get."""
    folder.mkdir(parents=True, exist_ok=True)
    good = to_bytes(make_dataset(1, 1, 1))
    start = split_header(good[:4096]).dataset_start
    # sent as MR (what the SCP writes in the File Meta from the request), a CT data set
    other = file_meta_bytes(MRImageStorage, uid(1, 1, 2), ExplicitVRLittleEndian) + dataset_part(
        to_bytes(make_dataset(1, 1, 2))
    )
    no_study = make_dataset(1, 1, 3)
    del no_study.StudyInstanceUID
    files = {
        "truncated": (good[:-40], STATUS_CANNOT_UNDERSTAND),  # the pixel data cut short
        "half": (good[: len(good) // 2], STATUS_CANNOT_UNDERSTAND),
        "garbage": (good[:start] + bytes(range(256)) * 12, STATUS_CANNOT_UNDERSTAND),
        "not dicom": (b"not DICOM at all" * 10, STATUS_CANNOT_UNDERSTAND),
        "other class": (other, STATUS_DOES_NOT_MATCH),
        "no study": (to_bytes(no_study), STATUS_DOES_NOT_MATCH),
    }
    out = {}
    for i, (name, (data, status)) in enumerate(files.items()):
        path = folder / f"{i}.dcm"
        path.write_bytes(data)
        out[name] = (path, status)
    return out


def _as_received(store: Store, source: Path, n: int) -> Path:
    """A copy where the SCP writes a received file (the store's spool, ``.rx-<pid>-`` name)."""
    spool = spool_dir(store)
    spool.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(source, spool / f".rx-{os.getpid()}-{n}.dcm"))


def _store_is_empty(store: Store) -> None:
    assert _rows(store) == 0
    assert not store.quarantine_dir.exists() or not list(store.quarantine_dir.iterdir())
    assert list(spool_dir(store).iterdir()) == []  # nothing spooled, nothing left half-written
    assert check(store).ok


# ----------------------------------------------------------------- 1. refused in the answer


def test_the_receiver_refuses_what_the_store_cannot_keep(tmp_path: Path, shared_data: Path) -> None:
    cases = _hostile(tmp_path / "sent")
    cases["public file without Study Instance UID"] = (
        shared_data / NO_STUDY_UID,
        STATUS_DOES_NOT_MATCH,
    )
    with Store.open(tmp_path / "store") as store:
        with Receiver(store, isolated=False) as receiver:
            for n, (name, (source, expected)) in enumerate(cases.items()):
                received = _as_received(store, source, n)
                answer = receiver(received, "HOSTILE")
                assert isinstance(answer, tuple), (name, answer)  # old code: 0x0000 Success
                status, comment = answer
                assert status == expected, (name, hex(status), comment)
                assert comment and len(comment) <= COMMENT_MAX and comment.isprintable(), name
                assert not received.exists(), name  # removed, not spooled
            assert receiver.wait_idle(30)
        _store_is_empty(store)
        # and what the store can keep still gets Success
        good = write(tmp_path / "good.dcm", make_dataset(2, 1, 1))
        with Receiver(store, isolated=False) as receiver:
            assert receiver(_as_received(store, good, 99), "HOSTILE") == STATUS_SUCCESS
            assert receiver.wait_idle(30)
        assert _rows(store) == 1


def test_the_comment_names_what_was_wrong(tmp_path: Path, shared_data: Path) -> None:
    with Store.open(tmp_path / "store") as store, Receiver(store, isolated=False) as receiver:
        answer = receiver(_as_received(store, shared_data / NO_STUDY_UID, 0), "HOSTILE")
        assert answer == (STATUS_DOES_NOT_MATCH, "no Study Instance UID")
        truncated = _hostile(tmp_path / "sent")["truncated"][0]
        status, comment = receiver(_as_received(store, truncated, 1), "HOSTILE")  # type: ignore[misc]
        assert status == STATUS_CANNOT_UNDERSTAND and "truncated" in comment


@pytest.fixture
def listening(tmp_path: Path) -> Iterator[tuple[Store, LocalSettings]]:
    local = LocalSettings(ae_title="LIGHTBOX", scp_port=peers.free_port(), timeouts=FAST)
    with (
        Store.open(tmp_path / "store") as store,
        Receiver(store, isolated=False) as receiver,
        StorageScp(local, receiver),
    ):
        yield store, local


def test_end_to_end_senders_hear_the_failure(
    listening: tuple[Store, LocalSettings],
    tmp_path: Path,
    shared_data: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pynetdicom sends the damaged data sets as they are (a file path, sent in chunks without
    being decoded); DCMTK storescu sends the real file without Study Instance UID."""
    from pynetdicom import AE, _config

    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)
    store, local = listening
    cases = _hostile(tmp_path / "sent")
    ae = AE("HOSTILE")
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.2", ExplicitVRLittleEndian)  # CT
    ae.add_requested_context(MRImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", local.scp_port, ae_title="LIGHTBOX")
    assert assoc.is_established
    try:
        for name in ("truncated", "half", "garbage", "other class", "no study"):
            path, expected = cases[name]
            rsp = assoc.send_c_store(path)
            assert rsp.Status == expected, (name, rsp)
            assert rsp.get("ErrorComment"), name
    finally:
        assoc.release()

    result = peers.storescu(
        "STORESCU", "LIGHTBOX", local.scp_port, [shared_data / NO_STUDY_UID], "-xt", "-v"
    )
    said = result.stdout + result.stderr
    # the old code: "Received Store Response (Success)"
    assert "Received Store Response (Error: DataSetDoesNotMatchSOPClass)" in said, said
    _store_is_empty(store)


# ----------------------------------------------------------------- 2. quarantine bounded


def test_the_quarantine_is_bounded_oldest_dropped_and_counted(tmp_path: Path) -> None:
    with Store.open(tmp_path / "store", quarantine_limit=10_000) as store:
        kept = []
        for n in range(8):
            refused = tmp_path / f"refused-{n}.dcm"
            refused.write_bytes(bytes([n]) * 3000)
            kept.append(store.quarantine(refused, f"q{n}.dcm", f"test {n}\n"))
            os.utime(kept[-1], (1_000_000 + n, 1_000_000 + n))  # ordered, whatever the clock
        names = sorted(p.name for p in store.quarantine_dir.iterdir() if p.suffix == ".dcm")
        assert names == ["q5.dcm", "q6.dcm", "q7.dcm"]  # the newest fit in 10 000 bytes
        size = sum(p.stat().st_size for p in store.quarantine_dir.glob("q*"))
        assert size <= 10_000
        assert not (store.quarantine_dir / "q0.dcm.txt").exists()  # its note went with it
        assert store.quarantine_dropped()[0] == 5
        report = check(store)
        assert report.ok and report.quarantine_dropped == 5
        assert "5 quarantined file(s) dropped" in check_summary(report)
        data = listing(store)
        assert data["quarantine_dropped"] == 5
        assert "5 quarantined file(s) dropped" in listing_text(data)


def test_conflicts_received_are_quarantined_within_the_limit(tmp_path: Path) -> None:
    """What only the import can refuse (same SOP Instance UID, other content) was acknowledged
    and is kept in quarantine: a sender sending conflicts cannot fill the disc."""
    stored = [write(tmp_path / f"a{i}.dcm", make_dataset(1, 1, i)) for i in range(1, 7)]
    conflicts = [
        write(tmp_path / f"b{i}.dcm", make_dataset(1, 1, i, pixel_seed=100 + i))
        for i in range(1, 7)
    ]
    one = conflicts[0].stat().st_size
    with Store.open(tmp_path / "store") as store:
        assert len(import_paths(store, stored).imported) == 6
        with Receiver(store, isolated=False, quarantine_limit=3 * one + 500) as receiver:
            for n, path in enumerate(conflicts):
                assert receiver(_as_received(store, path, n), "PACS") == STATUS_SUCCESS
                assert receiver.wait_idle(30)
        kept = [p for p in store.quarantine_dir.iterdir() if p.name.endswith(".dcm")]
        assert 1 <= len(kept) <= 3
        assert store.quarantine_dropped()[0] == 6 - len(kept)
        assert check(store).quarantine_dropped == 6 - len(kept)


# ----------------------------------------------------------------- 3. leftovers


def _dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def test_open_removes_the_leftovers_of_dead_processes_only(tmp_path: Path) -> None:
    root = tmp_path / "store"
    Store.open(root).close()
    dead = _dead_pid()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        tmp = root / "tmp"
        incoming = root / "incoming"
        incoming.mkdir()
        left = [tmp / f"{dead}-{n:016x}.part" for n in range(2000)]  # thousands, as reported
        for path in left:
            path.write_bytes(b"half a file")
        rx_dead = incoming / f".rx-{dead}-k2j3h4.dcm"
        rx_dead.write_bytes(b"half an instance")
        keep = [
            tmp / f"{live.pid}-fedcba9876543210.part",  # a live import's copy
            tmp / f"{os.getpid()}-0123456789abcdef.part",  # ours
            incoming / f".rx-{live.pid}-a1b2c3.dcm",  # a live SCP writing
            incoming / "01733300000000000000-0123456789ab.dcm",  # acknowledged, spooled
            incoming / f"{dead}-0123456789ab.dcm",  # spooled, whatever its name looks like
            incoming / ".rx-being-written.dcm",  # no pid: never guessed at
        ]
        for path in keep:
            path.write_bytes(b"keep me")
        with Store.open(root) as store:
            assert not any(p.exists() for p in left), "tmp/ leftovers of a dead import stay"
            assert not rx_dead.exists()
            assert all(p.exists() for p in keep), [p.name for p in keep if not p.exists()]
            assert store.remove_leftovers() == 0
    finally:
        live.kill()
        live.wait()


def test_a_pid_no_process_can_have_is_not_alive(tmp_path: Path) -> None:
    """A name with a number ``kill`` cannot take crashed ``store check`` (OverflowError)."""
    with Store.open(tmp_path / "store") as store:
        odd = store.tmp_dir / "9999999999-0123456789abcdef.part"
        odd.write_bytes(b"x")
        assert [p.path for p in check(store).problems] == [str(odd)]
        assert check(store, repair=True).ok and not odd.exists()


def test_a_reimport_after_killed_imports_leaves_no_part_files(tmp_path: Path) -> None:
    """The issue's case: imports killed while staging leave ``.part`` files; the next
    (successful) import opens the store and nothing is left in tmp/."""
    folder = tmp_path / "disc"
    make_folder(folder, studies=2, series=2, instances=4)
    script = (
        "import sys\n"
        "from viewer.store import Store, import_paths\n"
        "with Store.open() as store:\n"
        "    import_paths(store, [sys.argv[1]])\n"
    )
    for crash in ("staged:5", "synced:1"):
        env = {**os.environ, CRASH_ENV: crash}
        proc = subprocess.run(
            [sys.executable, "-c", script, str(folder)], cwd=ROOT, env=env, capture_output=True
        )
        assert proc.returncode == -signal.SIGKILL, proc.stderr
    with Store.open() as store:
        before = list(store.tmp_dir.iterdir())
    assert before == []  # the first open already removed them (the old code kept them)
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    again = subprocess.run(
        [sys.executable, "-m", "viewer", "import", str(folder)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stderr
    with Store.open() as store:
        assert list(store.tmp_dir.iterdir()) == []
        assert _rows(store) == 16
        assert check(store).ok
