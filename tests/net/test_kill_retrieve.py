"""Kill harness, retrieve: SIGKILL ``lightbox get`` (C-GET, and C-MOVE into its own SCP) from a
real Orthanc at seeded random delays.

After each kill the store opens and checks consistent (never a row without its file), every
instance the peer counted as a completed sub-operation before the kill (PS3.4 C.4.2.1.4: our
SCP answered Success) is in the store once a receiver drained the spool, and running the same
``lightbox get`` again completes with every instance of the study present once.
Rounds: ``$LIGHTBOX_KILL_ROUNDS`` (see tests/killing.py).
"""

from __future__ import annotations

import re
import signal
import time

import pytest

from tests import killing
from tests.net import peers
from viewer.config import app_home
from viewer.store import Receiver, Store, check, delete_uid, has_instance
from viewer.store.check import ORPHAN, PENDING, TMP_LEFT
from viewer.store.importer import INCOMING, spool_dir

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals"),
]

INSTANCES = (24, 24)  # two CT series of CT_small.dcm copies (about 40 KB each)
_PROGRESS = re.compile(r"^completed (\d+), failed (\d+), warning (\d+), remaining (\d+) of (\d+)")
_SUMMARY = re.compile(r"completed: (\d+), failed: (\d+), warning: (\d+), already present: (\d+)")


@pytest.fixture
def big_study(tmp_path_factory: pytest.TempPathFactory) -> peers.StudyFiles:
    return peers.make_study(
        tmp_path_factory.mktemp("kill-study"),
        patient_name="KILL^RETRIEVE",
        patient_id="KR001",
        accession="KR1",
        study_date="20240303",
        description="KILL HARNESS",
        parts=[("CT_small.dcm", "CT", n) for n in INSTANCES],
    )


def completed_before_kill(stderr: str) -> int:
    """The highest count of completed sub-operations ``lightbox get`` printed (from the peer's
    pending C-GET/C-MOVE responses, each completed one answered Success by our SCP)."""
    counts = [int(m.group(1)) for line in stderr.splitlines() if (m := _PROGRESS.match(line))]
    return max(counts, default=0)


def _present(store: Store, uids: list[str]) -> list[str]:
    return [u for u in uids if has_instance(store, u)]


@pytest.mark.parametrize("method", ["get", "move"])
def test_kill_get_then_resume(
    method: str, orthanc: peers.Orthanc, big_study: peers.StudyFiles, scp_port: int
) -> None:
    orthanc.upload(big_study.files)
    uids = big_study.sop_instance_uids
    node = f"ORTHANC@127.0.0.1:{orthanc.dicom_port}"
    args = ["get", node, "--study", big_study.study_instance_uid, "--method", method]
    if method == "move":
        args += ["--scp-port", str(scp_port)]
    rng, chosen = killing.rng(20261205 if method == "get" else 20261206)
    total_rounds = killing.rounds(2)
    mid = 0
    for round_ in range(total_rounds):
        with Store.open() as store:  # each round starts from an empty store
            if _present(store, uids):
                delete_uid(store, big_study.study_instance_uid)
            assert not _present(store, uids)
        proc = killing.spawn(killing.lightbox_args(*args))
        # Start-up (imports, C-FIND) takes about 0.5-1 s here, the transfer about as long:
        # mostly timed from the first instance arriving in the store's spool, sometimes from
        # the start (which also kills before the transfer or after the import).
        anchored = rng.random() < 0.7
        if anchored:
            killing.wait_for_first(app_home() / "store" / INCOMING, proc)
            delay = rng.uniform(0.0, 1.0)
        else:
            delay = rng.uniform(0.3, 2.5)
        whole_group = rng.random() < 0.5
        time.sleep(delay)
        finished = proc.poll() is not None
        _out, err = killing.kill(proc, whole_group)
        done = completed_before_kill(err)
        where = killing.where(
            f"retrieve ({method})",
            chosen,
            round_,
            delay,
            ("after the first instance arrived, " if anchored else "")
            + f"{done} completed before the kill"
            + (" (it had already finished)" if finished else ""),
        )
        with Store.open() as store:
            found = check(store)
            assert {p.problem for p in found.problems} <= {ORPHAN, TMP_LEFT, PENDING}, (
                where,
                found.problems,
            )
            with Receiver(store) as receiver:
                assert receiver.drain(60), where
            present = _present(store, uids)
            assert len(present) >= done, (where, f"only {len(present)} stored")
            mid += 0 < len(present) < len(uids)
            after = check(store, repair=True)
            assert {p.problem for p in after.problems} <= {TMP_LEFT}, (where, after.problems)
            assert check(store).ok, where
        # The same command again completes the study: nothing fetched twice, nothing missing.
        again = killing.run(killing.lightbox_args(*args))
        assert again.returncode == 0, (where, again.stdout, again.stderr)
        assert "Traceback" not in again.stderr, where
        summary = _SUMMARY.search(again.stdout)
        assert summary is not None, (where, again.stdout)
        completed, failed, _warning, present_before = map(int, summary.groups())
        assert failed == 0 and completed + present_before == len(uids), (where, again.stdout)
        with Store.open() as store:
            assert _present(store, uids) == uids, where
            rows = store.connection().execute("SELECT count(*) FROM instances").fetchone()[0]
            assert rows == len(uids), where
            stored = [p for p in store.files_dir.rglob("*") if p.is_file()]
            assert len(stored) == len(uids), where
            assert check(store).ok, (where, check(store).problems)
            assert not list(spool_dir(store).glob("*.dcm")), (where, "left in the spool")
        print(where)
    print(
        f"retrieve ({method}) kill harness: seed {chosen}, {total_rounds} rounds, {mid} mid-study"
    )
