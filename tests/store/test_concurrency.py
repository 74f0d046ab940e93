"""Two processes importing into one store at once: no lost update, no duplicate, first one stays."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.store.dicomfiles import make_dataset, write
from viewer.store import Store, check, import_paths, list_studies
from viewer.store.importer import CRASH_ENV

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys, time
from pathlib import Path
from viewer.store import Store, import_paths, importer
importer.BATCH_FILES = 3
go = Path(sys.argv[2])
with Store.open() as store:
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.005)
    report = import_paths(store, [sys.argv[1]])
print(json.dumps({"imported": report.imported, "present": report.already_present,
                  "conflicts": [p.path for p in report.conflicts],
                  "rejected": [p.path for p in report.rejected]}), flush=True)
"""


def _folder(root: Path, name: str, seed: int, count: int) -> Path:
    for i in range(count):
        ds = make_dataset(1 + i // 40, 1 + i // 10, i, pixel_seed=seed * 1000 + i)
        ds.file_meta.ImplementationVersionName = name  # each "disc" has its own writer
        write(root / name / f"IM{i:04d}", ds)
    return root / name


def _run_both(a: Path, b: Path, go: Path) -> list[dict[str, list[str]]]:
    env = dict(os.environ)
    env.pop(CRASH_ENV, None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT, str(folder), str(go)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for folder in (a, b)
    ]
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if line != "ready":
            proc.wait(timeout=60)
            assert proc.stderr is not None
            raise AssertionError(f"importer did not start: {line!r} {proc.stderr.read()}")
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def _counts(store: Store) -> tuple[int, int, int]:
    conn = store.connection()
    rows = conn.execute("SELECT count(*), count(DISTINCT sop_instance_uid) FROM instances")
    total, distinct = rows.fetchone()
    counted = sum(s.num_instances for s in list_studies(store))
    return total, distinct, counted


def test_two_importers_of_the_same_instances(tmp_path: Path) -> None:
    """Same data sets on two discs (meta rewritten): each instance once, none lost."""
    count = 120
    a = _folder(tmp_path, "A", seed=1, count=count)
    b = _folder(tmp_path, "B", seed=1, count=count)
    ra, rb = _run_both(a, b, tmp_path / "go")
    print("imported by A, B:", len(ra["imported"]), len(rb["imported"]))
    assert not (ra["conflicts"] or rb["conflicts"] or ra["rejected"] or rb["rejected"])
    assert len(ra["imported"]) + len(rb["imported"]) == count
    assert len(ra["imported"]) + len(ra["present"]) == count
    assert len(rb["imported"]) + len(rb["present"]) == count
    names = {Path(p).name for p in ra["imported"]} | {Path(p).name for p in rb["imported"]}
    assert len(names) == count  # no instance imported by both
    with Store.open() as store:
        assert _counts(store) == (count, count, count)
        assert check(store).ok


def test_two_importers_in_conflict_keep_the_first(tmp_path: Path) -> None:
    """Different data sets under the same UIDs: per UID one wins, the other is a conflict."""
    count = 60
    a = _folder(tmp_path, "A", seed=1, count=count)
    b = _folder(tmp_path, "B", seed=2, count=count)
    ra, rb = _run_both(a, b, tmp_path / "go")
    print("imported by A, B:", len(ra["imported"]), len(rb["imported"]))
    assert len(ra["imported"]) + len(rb["imported"]) == count
    assert len(ra["conflicts"]) == count - len(ra["imported"])
    assert len(rb["conflicts"]) == count - len(rb["imported"])
    winners = {Path(p).name: Path(p) for p in ra["imported"] + rb["imported"]}
    with Store.open() as store:
        assert _counts(store) == (count, count, count)
        stored = {
            row[0]: store.managed_path(row[1]).read_bytes()
            for row in store.connection().execute("SELECT sop_instance_uid, path FROM instances")
        }
        for _name, path in winners.items():
            import pydicom

            uid = pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID
            assert stored[uid] == path.read_bytes()  # the file of the import that won
        assert check(store).ok


def test_reads_during_an_import_see_whole_batches(tmp_path: Path) -> None:
    """The browser lists studies while an import runs in another thread: counts only grow, and
    every instance it sees has its file."""
    folder = _folder(tmp_path, "A", seed=1, count=80)
    from viewer.store import importer

    seen: list[int] = []
    with Store.open() as store:
        done = threading.Event()
        old = importer.BATCH_FILES
        importer.BATCH_FILES = 4
        try:
            worker = threading.Thread(target=lambda: (import_paths(store, [folder]), done.set()))
            worker.start()
            while not done.is_set():
                total = sum(s.num_instances for s in list_studies(store))
                seen.append(total)
                rows = store.connection().execute("SELECT path FROM instances").fetchall()
                assert all(store.managed_path(r[0]).exists() for r in rows)
                time.sleep(0.002)
            worker.join()
        finally:
            importer.BATCH_FILES = old
        assert seen == sorted(seen)
        assert sum(s.num_instances for s in list_studies(store)) == 80


def test_received_instances_from_many_threads() -> None:
    """A storage SCP hands instances over from several association threads at once."""
    store_threads = 4
    from tests.store.dicomfiles import to_bytes
    from viewer.store import import_bytes

    payloads = [to_bytes(make_dataset(1, 1 + i % 3, i)) for i in range(24)]
    results: list[list[str]] = [[] for _ in range(store_threads)]
    with Store.open() as store:

        def receive(k: int) -> None:
            for data in payloads[k::2] + payloads[: k + 1]:  # overlapping, some twice
                report = import_bytes(store, data, source=f"assoc{k}")
                results[k].extend(report.imported)
                assert not report.conflicts and not report.rejected

        threads = [threading.Thread(target=receive, args=(k,)) for k in range(store_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(len(r) for r in results) == 24  # each instance imported exactly once
        assert _counts(store) == (24, 24, 24)
        assert check(store).ok
