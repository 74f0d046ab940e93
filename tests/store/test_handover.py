"""Hand-overs with storage commitment kept in the store (schema version 4, issue 13)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from viewer.store import Store, schema
from viewer.store.index import (
    Handover,
    HandoverInstance,
    handed_over,
    list_handovers,
    record_handover,
)

STUDY = "1.2.826.0.1.3680043.10.999.1"
CT = "1.2.840.10008.5.1.4.1.1.2"


def _attempt(transaction: str, states: list[str], node: str = "PACS@127.0.0.1:104") -> Handover:
    return Handover(
        STUDY,
        node,
        transaction,
        f"2026-12-05T10:00:0{len(transaction) % 10}Z",
        "",
        [
            HandoverInstance(
                f"{STUDY}.{n}",
                CT,
                state,
                "0x0112 no such object instance" if state == "failed" else "",
            )
            for n, state in enumerate(states, start=1)
        ],
    )


def test_handed_over_only_when_every_instance_sent_is_committed(store: Store) -> None:
    assert not handed_over(store, STUDY)
    record_handover(store, _attempt("2.25.1", ["committed", "failed", "missing"]))
    assert not handed_over(store, STUDY)
    record_handover(store, _attempt("2.25.22", ["committed", "committed", "not stored"]))
    assert not handed_over(store, STUDY)
    record_handover(store, _attempt("2.25.333", ["committed", "committed", "committed"]))
    assert handed_over(store, STUDY)
    assert handed_over(store, STUDY, node="PACS@127.0.0.1:104")
    assert not handed_over(store, STUDY, node="OTHER@10.0.0.1:104")
    attempts = list_handovers(store, STUDY)
    assert [h.transaction_uid for h in attempts] == ["2.25.1", "2.25.22", "2.25.333"]
    first = attempts[0]
    assert [i.state for i in first.instances or []] == ["committed", "failed", "missing"]
    assert (first.instances or [])[1].reason == "0x0112 no such object instance"
    assert first.count("committed") == 1 and not first.handed_over
    assert list_handovers(store, "1.2.3") == []


def test_nothing_sent_is_not_handed_over(store: Store) -> None:
    record_handover(store, _attempt("2.25.4", []))
    assert not handed_over(store, STUDY)


def test_a_late_report_replaces_the_attempt(store: Store) -> None:
    record_handover(store, _attempt("2.25.5", ["missing", "missing"]))
    record_handover(store, _attempt("2.25.5", ["committed", "committed"]))
    attempts = list_handovers(store)
    assert len(attempts) == 1 and attempts[0].handed_over


def test_unknown_state_refused(store: Store) -> None:
    with pytest.raises(ValueError):
        record_handover(store, _attempt("2.25.6", ["lost"]))


def test_kept_across_opening_and_migrated_from_version_3(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with Store.open(root):
        pass
    conn = sqlite3.connect(root / "index.sqlite", isolation_level=None)
    conn.execute("DROP TABLE handover_instances")
    conn.execute("DROP TABLE handovers")
    conn.execute("PRAGMA user_version = 3")
    conn.close()
    with Store.open(root) as store:
        assert schema.user_version(store.connection()) == schema.SCHEMA_VERSION >= 4
        record_handover(store, _attempt("2.25.7", ["committed"]))
    with Store.open(root) as store:
        assert handed_over(store, STUDY)
