"""A SIGKILL at any point of an import leaves a store that opens, with no half-written instance
indexed and no indexed instance without its file; importing again completes it.

The importer's test hook (``LIGHTBOX_STORE_CRASH_AT=POINT:N``) kills the importing subprocess at
each point of the import path; a second test kills it from outside after random delays; a third
kills the real ``lightbox import`` at seeded random points, round after round on one store, and
checks that what the killed imports leave behind does not pile up (kill harness: rounds and seed
from ``$LIGHTBOX_KILL_ROUNDS`` / ``$LIGHTBOX_KILL_SEED``, see tests/killing.py).
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import killing
from tests.store.dicomfiles import make_folder
from viewer.store import Store, check, delete_uid, import_paths, list_studies
from viewer.store.check import ORPHAN, PENDING, TMP_LEFT
from viewer.store.importer import CRASH_ENV

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")

SCRIPT = """
import sys
from viewer.store import Store, import_paths, importer
importer.BATCH_FILES = int(sys.argv[2])
with Store.open() as store:
    print("started", flush=True)
    report = import_paths(store, [sys.argv[1]])
print("finished", len(report.imported), flush=True)
"""

FILES = 24  # 2 studies x 3 series x 4 images


def _start(folder: Path, batch: int, crash: str | None) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env.pop(CRASH_ENV, None)
    if crash:
        env[CRASH_ENV] = crash
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(folder), str(batch)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _assert_consistent_after_kill(
    folder: Path, expected_rows: int | None, repair_first: bool
) -> None:
    with Store.open() as store:  # it opens
        found = check(store)
        kinds = {p.problem for p in found.problems}
        # never a row without its file, never a file different from its row
        assert kinds <= {ORPHAN, TMP_LEFT, PENDING}, found.problems
        rows = store.connection().execute("SELECT count(*) FROM instances").fetchone()[0]
        if expected_rows is not None:
            assert rows == expected_rows
        if repair_first:
            repaired = check(store, repair=True)
            assert repaired.ok, repaired.remaining
            assert check(store).ok
        again = import_paths(store, [folder])
        assert not again.rejected and not again.conflicts
        assert len(again.imported) + len(again.already_present) == FILES
        assert sum(s.num_instances for s in list_studies(store)) == FILES
        count = store.connection().execute("SELECT count(*) FROM instances").fetchone()[0]
        assert count == FILES
        final = check(store, repair=True)
        assert {p.problem for p in final.problems} <= {TMP_LEFT}  # only leftovers of the kill
        assert check(store).ok
        assert len([p for p in store.files_dir.rglob("*") if p.is_file()]) == FILES


@pytest.mark.parametrize(
    ("crash", "rows", "repair_first"),
    [
        ("staged:3", 0, False),  # copies in tmp/, nothing renamed
        ("synced:2", 8, True),  # second batch durable in tmp/, not renamed
        ("renamed:1", 0, True),  # first managed file renamed, no row committed
        ("renamed:13", 8, False),  # mid second batch
        ("indexed:2", 8, True),  # renamed and inserted, killed before COMMIT
        ("committed:1", 8, False),
    ],
)
def test_kill_at_each_point(tmp_path: Path, crash: str, rows: int, repair_first: bool) -> None:
    folder = tmp_path / "disc"
    make_folder(folder, studies=2, series=3, instances=4)
    proc = _start(folder, batch=8, crash=crash)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, (out, err)
    assert "finished" not in out
    _assert_consistent_after_kill(folder, rows, repair_first)


def test_kill_after_random_delays(tmp_path: Path) -> None:
    folder = tmp_path / "disc"
    make_folder(folder, studies=2, series=3, instances=4)
    rng = random.Random(20261126)
    for attempt in range(3):
        proc = _start(folder, batch=2, crash=None)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "started"
        time.sleep(rng.uniform(0.0, 0.08))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        _assert_consistent_after_kill(folder, None, repair_first=attempt % 2 == 0)
        with Store.open() as store:  # start the next attempt from an empty store
            for study in list_studies(store):
                delete_uid(store, study.study_instance_uid)
            assert check(store).ok


_SUMMARY = re.compile(r"imported: (\d+).*?already present: (\d+)", re.S)


@pytest.mark.slow
def test_kill_lightbox_import_at_random_points(tmp_path: Path) -> None:
    """``lightbox import FOLDER`` killed at random points, then run again: consistent after
    each kill, complete after each re-run, and no temporary file left once the store was
    opened again (Store.open removes those of dead processes), however many kills."""
    folder = tmp_path / "disc"
    make_folder(folder, studies=3, series=4, instances=10)
    total = 3 * 4 * 10
    rng, chosen = killing.rng(20261209)
    rounds = killing.rounds(3)
    cut = 0
    for round_ in range(rounds):
        proc = killing.spawn(killing.lightbox_args("import", str(folder)))
        delay = rng.uniform(0.2, 1.0)  # start-up about 0.4 s, importing 120 files about 0.8 s
        time.sleep(delay)
        finished = proc.poll() is not None
        killing.kill(proc, whole_group=rng.random() < 0.5)
        with Store.open() as store:
            rows = store.connection().execute("SELECT count(*) FROM instances").fetchone()[0]
            where = killing.where(
                "import", chosen, round_, delay, "finished" if finished else f"{rows} indexed"
            )
            cut += not finished and rows < total
            found = check(store)
            assert {p.problem for p in found.problems} <= {ORPHAN, TMP_LEFT, PENDING}, (
                where,
                found.problems,
            )
        again = killing.run(killing.lightbox_args("import", str(folder)))
        assert again.returncode == 0, (where, again.stdout, again.stderr)
        summary = _SUMMARY.search(again.stdout)
        assert summary is not None, (where, again.stdout)
        assert sum(map(int, summary.groups())) == total, (where, again.stdout)
        with Store.open() as store:
            assert sum(s.num_instances for s in list_studies(store)) == total, where
            stored = [p for p in store.files_dir.rglob("*") if p.is_file()]
            assert len(stored) == total, where
            # nothing of the killed import is left: no orphan (the re-import indexed it under
            # the same name), no temporary file (removed when the store was opened again)
            assert killing.leftovers(store) == [], where
            assert check(store).ok, (where, check(store).problems)
            for study in list_studies(store):  # the next round starts from an empty store
                delete_uid(store, study.study_instance_uid)
            assert check(store).ok, where
    print(f"import kill harness: seed {chosen}, {rounds} rounds, {cut} cut mid-import")
