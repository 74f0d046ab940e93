"""Kill harness, receive: SIGKILL ``lightbox listen`` while DCMTK ``storescu`` pushes a study.

PS3.4 B.2.3: a Storage SCP answers Success only for an instance it has stored. So whatever
``storescu -v`` saw acknowledged ("Received Store Response (Success)") before the kill must be
in the store once a new receiver has drained the spool (``incoming/``), the store must check
clean (no row without its file, no file without its row), and sending the whole study again
must complete with every instance stored once.

Real processes only: the CLI's ``lightbox listen`` (its SCP writes into the store's spool and
its Receiver imports in a worker process), DCMTK's storescu, SIGKILL at seeded random delays.
Rounds: ``$LIGHTBOX_KILL_ROUNDS`` (see tests/killing.py).
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests import killing
from tests.conftest import require_tool
from tests.net import peers
from tests.store.dicomfiles import make_dataset, uid, write
from viewer.config import app_home
from viewer.store import Receiver, Store, check, has_instance
from viewer.store.check import ORPHAN, PENDING, TMP_LEFT
from viewer.store.importer import INCOMING, spool_dir

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals"),
]

SERIES = 3
PER_SERIES = 20  # 60 small instances: storescu sends them in about 0.2 s on loopback
#: Kill delays after storescu starts: from before the association to after the last import.
MAX_DELAY_S = 0.45


def _study(folder: Path, study: int) -> dict[Path, str]:
    """A study of SERIES x PER_SERIES tiny CT images: path -> SOP Instance UID."""
    files: dict[Path, str] = {}
    for se in range(1, SERIES + 1):
        for im in range(1, PER_SERIES + 1):
            ds = make_dataset(study, se, im, patient=f"KILL^{study}", patient_id=f"K{study}")
            files[write(folder / f"SE{se}" / f"IM{im:03d}", ds)] = uid(study, se, im)
    return files


def acknowledged(storescu_log: str) -> list[Path]:
    """The files storescu -v was told Success for (a Warning or failure does not count)."""
    done: list[Path] = []
    current: Path | None = None
    for line in storescu_log.splitlines():
        if line.startswith("I: Sending file: "):
            current = Path(line.removeprefix("I: Sending file: ").strip())
        elif line.strip() == "I: Received Store Response (Success)" and current is not None:
            done.append(current)
            current = None
    return done


def _listen(port: int) -> subprocess.Popen[str]:
    proc = killing.spawn(killing.lightbox_args("listen", "--scp-port", str(port)))
    peers.wait_port(port, proc)  # type: ignore[arg-type]
    return proc


def _storescu(port: int, files: list[Path]) -> subprocess.Popen[str]:
    exe = require_tool("storescu")
    return subprocess.Popen(
        [exe, "-v", "-aet", "STORESCU", "-aec", "LIGHTBOX", "127.0.0.1", str(port)]
        + [str(p) for p in files],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=peers.DCMTK_ENV,
    )


def _study_rows(store: Store, study: int) -> tuple[int, int]:
    row = (
        store.connection()
        .execute(
            "SELECT count(*), count(DISTINCT sop_instance_uid) FROM instances "
            "WHERE sop_instance_uid LIKE ?",
            (uid(study) + ".%",),
        )
        .fetchone()
    )
    return int(row[0]), int(row[1])


def test_kill_listen_while_storescu_sends(tmp_path: Path) -> None:
    require_tool("storescu")
    rng, chosen = killing.rng(20261204)
    total_rounds = killing.rounds(3)
    killed_with_acks = 0
    for round_ in range(total_rounds):
        study = 100 + round_  # a new study each round, one store across all rounds
        files = _study(tmp_path / f"study{study}", study)
        paths = list(files)
        port = peers.free_port()
        listen = _listen(port)
        spool = app_home() / "store" / INCOMING
        sender = _storescu(port, paths)
        # Mostly timed from the first instance arriving in the spool (storescu sends the 60 in
        # about 0.1-0.2 s, the last batch is imported some 0.1 s later), sometimes from the
        # start (which also kills before the association or after everything was imported).
        anchored = rng.random() < 0.75
        if anchored:
            killing.wait_for_first(spool, sender)
            delay = rng.uniform(0.0, 0.25)
        else:
            delay = rng.uniform(0.0, MAX_DELAY_S)
        whole_group = rng.random() < 0.5
        time.sleep(delay)
        killing.kill(listen, whole_group)
        log, _ = sender.communicate(timeout=60)
        acked = acknowledged(log)
        where = killing.where(
            "receive",
            chosen,
            round_,
            delay,
            ("after the first instance arrived, " if anchored else "")
            + f"{len(acked)} of {len(paths)} acknowledged, "
            f"{'group' if whole_group else 'leader'} killed",
        )
        killed_with_acks += 0 < len(acked) < len(paths)
        print(where)

        with Store.open() as store:
            # Before any recovery: never a row without its file or with other bytes.
            found = check(store)
            kinds = {p.problem for p in found.problems}
            assert kinds <= {ORPHAN, TMP_LEFT, PENDING}, (where, found.problems)
            # A new receiver drains what the dead one had acknowledged but not indexed.
            with Receiver(store) as receiver:
                assert receiver.drain(60), where
            lost = [p for p in acked if not has_instance(store, files[p])]
            assert not lost, (where, "acknowledged but not stored", lost)
            after = check(store, repair=True)
            # Only temporary files of the killed processes may be left for repair; no orphan
            # file (its row would have been committed by the drain) and no missing file.
            assert {p.problem for p in after.problems} <= {TMP_LEFT}, (where, after.problems)
            assert check(store).ok, where
            rows, distinct = _study_rows(store, study)
            assert rows == distinct >= len(acked), (where, rows, distinct)

        # The sender tries again: everything arrives, nothing twice.
        listen = _listen(port)
        try:
            again = peers.storescu("STORESCU", "LIGHTBOX", port, paths)
            assert again.returncode == 0, (where, again.stdout, again.stderr)
        finally:
            _out, err = killing.stop(listen)
        assert listen.returncode == 0, (where, err)
        assert "Traceback" not in err, (where, err)
        with Store.open() as store:
            assert _study_rows(store, study) == (len(paths), len(paths)), where
            assert all(has_instance(store, u) for u in files.values()), where
            assert check(store).ok, (where, check(store).problems)
            assert not list(spool_dir(store).glob("*.dcm")), (where, "left in the spool")
            # what the killed receiver was writing (.rx-*) and importing (tmp/) is gone
            assert killing.leftovers(store) == [], where
            rows = store.connection().execute("SELECT count(*) FROM instances").fetchone()[0]
            stored = [p for p in store.files_dir.rglob("*") if p.is_file()]
            assert len(stored) == rows == (round_ + 1) * len(paths), where
    print(
        f"receive kill harness: seed {chosen}, {total_rounds} rounds, "
        f"{killed_with_acks} killed mid-study"
    )
