"""The transfer queue survives a restart (no peer needed; the resume with a real PACS is in
test_retrieve.py)."""

from __future__ import annotations

from pathlib import Path

from viewer.net.nodes import Node, Tls
from viewer.net.transfers import TransferQueue


def test_jobs_persist_and_interrupted_ones_resume() -> None:
    queue = TransferQueue()
    node = Node("pacs", "ORTHANC", "::1", 4242, Tls("/ca.pem"), "get")
    first = queue.add(node, "1.2.3", "1.2.3.4")
    second = queue.add(node, "1.2.5", method="move")
    first.state = "running"  # the program dies in the middle of this one
    queue.update(first)
    second.state = "done"
    queue.update(second)

    again = TransferQueue()
    jobs = {j.id: j for j in again.jobs()}
    assert set(jobs) == {first.id, second.id}
    assert jobs[first.id].state == "queued" and "interrupted" in jobs[first.id].message
    assert jobs[first.id].node == node and jobs[first.id].method == "get"
    assert jobs[first.id].series_instance_uid == "1.2.3.4"
    assert jobs[second.id].state == "done" and jobs[second.id].method == "move"
    assert [j.id for j in again.pending()] == [first.id]
    again.remove_finished()
    assert [j.id for j in TransferQueue().jobs()] == [first.id]


def test_a_broken_queue_file_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "transfers.json"
    path.write_text("{broken")
    queue = TransferQueue(path)
    assert queue.jobs() == []
    assert "unreadable transfer queue" in queue.problem
    assert path.with_suffix(".broken.json").read_text() == "{broken"
