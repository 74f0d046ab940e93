"""``check`` and ``check(repair=True)``; deleting studies and series."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.store.dicomfiles import make_dataset, make_folder, uid, write
from viewer.store import (
    Store,
    StoreError,
    check,
    delete_uid,
    import_paths,
    list_series,
    list_studies,
    series_instances,
)
from viewer.store.check import MISSING, ORPHAN, PENDING, TMP_LEFT
from viewer.store.importer import spool_dir


@pytest.fixture
def filled(store: Store, tmp_path: Path) -> Store:
    make_folder(tmp_path / "disc", studies=2, series=2, instances=3)
    assert len(import_paths(store, [tmp_path / "disc"]).imported) == 12
    return store


def _rows(store: Store) -> int:
    return int(store.connection().execute("SELECT count(*) FROM instances").fetchone()[0])


def test_clean_store(filled: Store) -> None:
    report = check(filled)
    assert report.ok and report.problems == [] and (report.instances, report.files) == (12, 12)


def test_row_without_file(filled: Store) -> None:
    victim = series_instances(filled, uid(1, 1))[0].path
    victim.unlink()
    report = check(filled)
    assert [(p.path, p.problem) for p in report.problems] == [(str(victim), MISSING)]
    assert not report.ok
    repaired = check(filled, repair=True)
    assert repaired.ok and [p.path for p in repaired.repaired] == [str(victim)]
    assert _rows(filled) == 11
    assert list_series(filled, uid(1))[0].num_instances == 2
    assert check(filled).ok


def test_hash_and_size_mismatch_are_reported_not_repaired(filled: Store) -> None:
    same_size, longer = series_instances(filled, uid(2, 2))[:2]
    data = bytearray(same_size.path.read_bytes())
    data[-1] ^= 0xFF
    same_size.path.write_bytes(bytes(data))
    with open(longer.path, "ab") as f:
        f.write(b"\0\0")
    report = check(filled, repair=True)
    problems = {p.path: p.problem for p in report.remaining}
    assert "SHA-256 differs" in problems[str(same_size.path)]
    assert "the index says" in problems[str(longer.path)]
    assert report.repaired == [] and _rows(filled) == 12
    quick = check(filled, verify_hashes=False)  # sizes only
    assert [p.path for p in quick.problems] == [str(longer.path)]


def test_orphan_file_is_indexed_by_repair(filled: Store) -> None:
    inst = series_instances(filled, uid(1, 2))[1]
    conn = filled.connection()
    conn.execute("DELETE FROM instances WHERE sop_instance_uid = ?", (inst.sop_instance_uid,))
    report = check(filled)
    assert [(p.path, p.problem) for p in report.problems] == [(str(inst.path), ORPHAN)]
    repaired = check(filled, repair=True)
    assert repaired.ok and repaired.repaired[0].problem == "indexed"
    assert _rows(filled) == 12 and inst.path.exists()
    assert check(filled).ok


def test_orphan_copy_of_a_stored_instance_is_removed(filled: Store, tmp_path: Path) -> None:
    inst = series_instances(filled, uid(1, 1))[0]
    ds = make_dataset(1, 1, 1, patient="PATIENT^1", patient_id="P1")
    ds.file_meta.ImplementationVersionName = "REWRITTEN"  # same data set, other bytes
    copy = write(tmp_path / "copy.dcm", ds)
    stray = filled.files_dir / "00" / ("0" * 64 + ".dcm")
    stray.parent.mkdir(exist_ok=True)
    stray.write_bytes(copy.read_bytes())
    repaired = check(filled, repair=True)
    assert [(p.path, p.problem) for p in repaired.repaired] == [
        (str(stray), "removed (already in the store)")
    ]
    assert not stray.exists() and inst.path.exists() and check(filled).ok


def test_unreadable_or_conflicting_orphans_go_to_quarantine(filled: Store, tmp_path: Path) -> None:
    junk = filled.files_dir / "ab" / ("ab" + "1" * 62 + ".dcm")
    junk.parent.mkdir(exist_ok=True)
    junk.write_bytes(b"not dicom at all")
    other = write(tmp_path / "other.dcm", make_dataset(1, 1, 1, pixel_seed=99))
    clash = filled.files_dir / "cd" / ("cd" + "2" * 62 + ".dcm")
    clash.parent.mkdir(exist_ok=True)
    clash.write_bytes(other.read_bytes())
    repaired = check(filled, repair=True)
    assert repaired.ok
    actions = {p.path: p.problem for p in repaired.repaired}
    assert actions[str(junk)].startswith("moved to quarantine: not a DICOM file")
    assert "different content" in actions[str(clash)]
    assert not junk.exists() and not clash.exists()
    notes = sorted(p.read_text() for p in filled.quarantine_dir.glob("*.txt"))
    assert len(notes) == 2 and len(list(filled.quarantine_dir.glob("*.dcm"))) == 2
    assert _rows(filled) == 12 and check(filled).ok


def test_temporary_files_of_dead_processes(filled: Store) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    left = filled.tmp_dir / f"{dead.stdout.strip()}-0123456789abcdef.part"
    left.write_bytes(b"half a file")
    ours = filled.tmp_dir / f"{os.getpid()}-fedcba9876543210.part"  # a live import's
    ours.write_bytes(b"in progress")
    # What a storage SCP was writing into incoming/ when it died, and what ours writes now.
    incoming = spool_dir(filled)
    incoming.mkdir(exist_ok=True)
    received = incoming / f".rx-{dead.stdout.strip()}-k2j3h4.dcm"
    received.write_bytes(b"half an instance")
    receiving = incoming / f".rx-{os.getpid()}-a1b2c3.dcm"
    receiving.write_bytes(b"arriving")
    report = check(filled)
    assert sorted((p.path, p.problem) for p in report.problems) == sorted(
        [(str(left), TMP_LEFT), (str(received), TMP_LEFT)]
    )
    assert check(filled, repair=True).ok
    assert not left.exists() and ours.exists()
    assert not received.exists() and receiving.exists()


def test_delete_study_and_series(filled: Store) -> None:
    series_paths = [i.path for i in series_instances(filled, uid(1, 2))]
    result = delete_uid(filled, uid(1, 2))
    assert (result.kind, result.instances, result.files_removed) == ("series", 3, 3)
    assert not any(p.exists() for p in series_paths)
    assert [s.series_instance_uid for s in list_series(filled, uid(1))] == [uid(1, 1)]

    study_paths = [i.path for i in series_instances(filled, uid(2, 1))]
    study_paths += [i.path for i in series_instances(filled, uid(2, 2))]
    result = delete_uid(filled, uid(2))
    assert (result.kind, result.instances, result.files_removed) == ("study", 6, 6)
    assert not any(p.exists() for p in study_paths)
    assert [s.study_instance_uid for s in list_studies(filled)] == [uid(1)]
    patients = filled.connection().execute("SELECT count(*) FROM patients").fetchone()[0]
    assert patients == 1  # PATIENT^2 had only that study

    delete_uid(filled, uid(1, 1))  # the last series takes its study and patient along
    assert list_studies(filled) == []
    assert filled.connection().execute("SELECT count(*) FROM patients").fetchone()[0] == 0
    assert check(filled).ok and check(filled).files == 0

    with pytest.raises(StoreError, match="no study or series"):
        delete_uid(filled, uid(7))


def test_interrupted_delete_is_finished_by_check(filled: Store) -> None:
    from viewer.store.index import delete_instance_rows
    from viewer.store.schema import write_transaction

    paths = [i.path for i in series_instances(filled, uid(1, 1))]
    conn = filled.connection()
    with write_transaction(conn):  # the rows go, then the process "dies" before the unlinks
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT i.id FROM instances i JOIN series s ON s.id = i.series_ref"
                " WHERE s.series_instance_uid = ?",
                (uid(1, 1),),
            )
        ]
        delete_instance_rows(conn, ids)
    assert all(p.exists() for p in paths)
    report = check(filled)
    assert sorted(p.path for p in report.problems) == sorted(str(p) for p in paths)
    assert {p.problem for p in report.problems} == {PENDING}
    assert check(filled, repair=True).ok
    assert not any(p.exists() for p in paths)
    assert check(filled).ok


def test_reimport_after_delete(filled: Store, tmp_path: Path) -> None:
    delete_uid(filled, uid(1))
    again = import_paths(filled, [tmp_path / "disc"])
    assert len(again.imported) == 6 and len(again.already_present) == 6
    assert check(filled).ok
