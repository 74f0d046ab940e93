"""Schema versions: a new store, migration from version 1, a newer store refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.store.dicomfiles import make_folder
from viewer.store import Store, StoreError, check, delete_uid, import_paths, list_studies, schema


def test_new_store_has_the_current_version(store: Store) -> None:
    conn = store.connection()
    assert schema.user_version(conn) == schema.SCHEMA_VERSION == len(schema.MIGRATIONS)
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == schema.BUSY_TIMEOUT_MS
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def _version_1_store(root: Path, disc: Path) -> None:
    """A store as Lightbox with schema version 1 left it: version 1 tables, rows, files."""
    with Store.open(root) as current:
        import_paths(current, [disc])
        rows = (
            current.connection()
            .execute(
                "SELECT i.sop_instance_uid, i.path, i.size, i.meta_sha256, i.dataset_sha256,"
                " i.series_ref, s.series_instance_uid FROM instances i"
                " JOIN series s ON s.id = i.series_ref"
            )
            .fetchall()
        )
        dump = list(current.connection().iterdump())
    (root / "index.sqlite").unlink()
    for extra in ("index.sqlite-wal", "index.sqlite-shm"):
        (root / extra).unlink(missing_ok=True)
    conn = sqlite3.connect(root / "index.sqlite", isolation_level=None)
    schema.migrate(conn, target=1)
    assert schema.user_version(conn) == 1
    columns = {r[1] for r in conn.execute("PRAGMA table_info(series)")}
    assert "num_instances" not in columns
    for statement in dump:  # copy the data rows (version 2 columns dropped)
        if statement.startswith('INSERT INTO "') and "pending_deletes" not in statement:
            table = statement.split('"')[1]
            values = statement[statement.index("VALUES") :]
            if table == "series":  # version 1 has no num_instances: drop the last value
                values = values[: values.rindex(",")] + ");"
            conn.execute(f"INSERT INTO {table} {values}")
    conn.close()
    assert len(rows) == 6


def test_migration_from_version_1(tmp_path: Path) -> None:
    make_folder(tmp_path / "disc", studies=2, series=1, instances=3)
    root = tmp_path / "old"
    _version_1_store(root, tmp_path / "disc")
    with Store.open(root) as store:
        assert schema.user_version(store.connection()) == schema.SCHEMA_VERSION
        studies = list_studies(store)
        assert sorted(s.num_instances for s in studies) == [3, 3]  # counted by the migration
        assert check(store).ok
        again = import_paths(store, [tmp_path / "disc"])
        assert len(again.already_present) == 6
        delete_uid(store, studies[0].study_instance_uid)  # triggers and journal work
        assert [s.num_instances for s in list_studies(store)] == [3]
        assert check(store).ok


def test_two_openers_migrate_once(tmp_path: Path) -> None:
    root = tmp_path / "s"
    root.mkdir()
    conn = sqlite3.connect(root / "index.sqlite", isolation_level=None)
    schema.migrate(conn, target=1)
    conn.close()
    first, second = schema.connect(root / "index.sqlite"), schema.connect(root / "index.sqlite")
    assert schema.migrate(first) == 1
    assert schema.migrate(second) == schema.SCHEMA_VERSION  # already done: nothing re-run
    first.close()
    second.close()


def test_newer_store_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "future"
    with Store.open(root) as store:
        store.connection().execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer than this Lightbox"):
        Store.open(root)


def test_damaged_index_is_a_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "broken"
    root.mkdir()
    (root / "index.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open the store"):
        Store.open(root)
