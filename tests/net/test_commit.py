"""Storage Commitment Push Model as SCU (viewer.net.commit) against Orthanc 1.10, a real
Storage Commitment SCP: it answers the N-ACTION and sends the N-EVENT-REPORT on a new
association to LIGHTBOX as its DicomModalities say (our storage SCP's port)."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import CTImageStorage, generate_uid
from pynetdicom import AE, evt

from tests.net import peers
from viewer.net import commit
from viewer.net.diagnose import NetError
from viewer.net.nodes import LocalSettings, Node
from viewer.net.scp import StorageScp
from viewer.net.send import send


def _sent(
    orthanc_node: Node, local: LocalSettings, study: peers.StudyFiles
) -> list[tuple[str, str]]:
    result = send(orthanc_node, local, study.files)
    assert result.sent == len(study.files), [i.message for i in result.failed]
    return [(i.sop_class_uid, i.sop_instance_uid) for i in result.instances]


def test_orthanc_commits_a_sent_study(
    orthanc: peers.Orthanc,
    orthanc_node: Node,
    local: LocalSettings,
    our_scp: StorageScp,
    study: peers.StudyFiles,
) -> None:
    pairs = _sent(orthanc_node, local, study)
    started = time.monotonic()
    result = commit.request_commitment(orthanc_node, local, pairs, timeout=30)
    assert result.ok, [(i.sop_instance_uid, i.state) for i in result.items]
    assert len(result.committed) == len(study.files) == 6
    assert {i.sop_instance_uid for i in result.items} == set(study.sop_instance_uids)
    assert result.reported_via == "scp"  # Orthanc reports on a new association
    assert result.transaction_uid and result.transaction_uid not in commit.PENDING
    assert time.monotonic() - started < 25


def test_an_instance_orthanc_does_not_have_is_listed_as_failed(
    orthanc: peers.Orthanc,
    orthanc_node: Node,
    local: LocalSettings,
    our_scp: StorageScp,
    study: peers.StudyFiles,
) -> None:
    pairs = _sent(orthanc_node, local, study)
    stranger = (str(CTImageStorage), generate_uid())
    result = commit.request_commitment(orthanc_node, local, [*pairs, stranger], timeout=30)
    assert not result.ok
    assert len(result.committed) == 6
    assert [i.sop_instance_uid for i in result.failed] == [stranger[1]]
    failed = result.failed[0]
    assert failed.reason == 0x0112  # no such object instance
    assert "no such object instance" in failed.reason_text
    assert result.missing == []


def test_a_node_that_never_reports_leaves_the_instances_missing(
    orthanc: peers.Orthanc, orthanc_node: Node, local: LocalSettings, study: peers.StudyFiles
) -> None:
    """No SCP of ours on the port Orthanc reports to: the report never comes."""
    pairs = _sent(orthanc_node, local, study)
    started = time.monotonic()
    result = commit.request_commitment(
        orthanc_node, local, pairs, timeout=3, same_association_wait=0.5
    )
    took = time.monotonic() - started
    assert 2.5 < took < 8
    assert not result.ok and not result.cancelled
    assert len(result.missing) == 6 and result.reported_via == ""


def test_cancel_stops_the_wait(
    orthanc: peers.Orthanc, orthanc_node: Node, local: LocalSettings, study: peers.StudyFiles
) -> None:
    pairs = _sent(orthanc_node, local, study)
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    started = time.monotonic()
    result = commit.request_commitment(orthanc_node, local, pairs, timeout=60, cancel=cancel)
    assert time.monotonic() - started < 5
    assert result.cancelled and len(result.missing) == 6


def test_an_unreachable_node_raises(local: LocalSettings) -> None:
    node = Node("nobody", "NOBODY", "127.0.0.1", peers.free_port())
    with pytest.raises(NetError):
        commit.request_commitment(node, local, [(str(CTImageStorage), generate_uid())], timeout=2)


# -- reports arriving at our SCP from a second implementation (pynetdicom as the node) -----------


def _report(transaction: str, committed: list[tuple[str, str]]) -> Dataset:
    ds = Dataset()
    ds.TransactionUID = transaction
    refs = []
    for cls, inst in committed:
        ref = Dataset()
        ref.ReferencedSOPClassUID = cls
        ref.ReferencedSOPInstanceUID = inst
        refs.append(ref)
    ds.ReferencedSOPSequence = DicomSequence(refs)
    return ds


def _send_report(port: int, calling: str, info: Dataset, event_type: int = 1) -> int:
    """A node (pynetdicom, as Orthanc does it) opening an association to our SCP in the SCP
    role for Storage Commitment and sending an N-EVENT-REPORT; returns the status."""
    from pynetdicom.presentation import build_role

    ae = AE(ae_title=calling)
    ae.add_requested_context(commit.STORAGE_COMMITMENT)
    role = build_role(commit.STORAGE_COMMITMENT, scu_role=False, scp_role=True)
    assoc = ae.associate("127.0.0.1", port, ae_title="LIGHTBOX", ext_neg=[role])
    assert assoc.is_established
    try:
        status, _ = assoc.send_n_event_report(
            info, event_type, commit.STORAGE_COMMITMENT, commit.STORAGE_COMMITMENT_INSTANCE
        )
    finally:
        assoc.release()
    return int(status.Status)


def test_our_scp_answers_an_unknown_transaction_politely(
    our_scp: StorageScp, caplog: pytest.LogCaptureFixture
) -> None:
    transaction = generate_uid()
    with caplog.at_level(logging.WARNING, logger="viewer.net.commit"):
        status = _send_report(our_scp.port, "ORTHANC", _report(transaction, []))
    assert status == 0x0000
    assert any(transaction in r.getMessage() for r in caplog.records)


def test_our_scp_takes_a_report_only_from_the_node_asked(
    local: LocalSettings, received: object, tmp_path: object
) -> None:
    registry = commit.PendingCommitments()
    scp = StorageScp(local, received, commitments=registry)  # type: ignore[arg-type]
    scp.start()
    try:
        node = Node("pacs", "PACS", "127.0.0.1", 104)
        transaction = generate_uid()
        pending = registry.expect(transaction, node)
        pair = (str(CTImageStorage), generate_uid())
        assert _send_report(scp.port, "STRANGER", _report(transaction, [pair])) == 0
        assert pending.report is None
        assert _send_report(scp.port, "PACS", _report(transaction, [pair])) == 0
        assert pending.arrived.wait(5)
        assert pending.report is not None
        assert pending.report.committed == [pair] and pending.report.via == "scp"
    finally:
        scp.stop()


def test_a_report_on_the_same_association(local: LocalSettings) -> None:
    """A node (pynetdicom) that answers the N-ACTION and reports on the same association,
    in the SCP role we proposed."""
    port = peers.free_port()
    ae = AE(ae_title="SAMEASSOC")
    ae.add_supported_context(commit.STORAGE_COMMITMENT, scu_role=True, scp_role=True)

    def on_action(event: evt.Event) -> tuple[int, None]:
        info = event.action_information
        assoc = event.assoc
        refs = [
            (r.ReferencedSOPClassUID, r.ReferencedSOPInstanceUID)
            for r in info.ReferencedSOPSequence
        ]

        def report() -> None:
            time.sleep(0.2)  # after the N-ACTION response has gone
            assoc.send_n_event_report(
                _report(info.TransactionUID, refs),
                1,
                commit.STORAGE_COMMITMENT,
                commit.STORAGE_COMMITMENT_INSTANCE,
            )

        threading.Thread(target=report, daemon=True).start()
        return 0x0000, None

    server = ae.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_N_ACTION, on_action)]
    )
    assert server is not None
    try:
        node = Node("same", "SAMEASSOC", "127.0.0.1", port)
        pairs = [(str(CTImageStorage), generate_uid()) for _ in range(3)]
        result = commit.request_commitment(node, local, pairs, timeout=10)
        assert result.ok and result.reported_via == "association"
    finally:
        server.shutdown()


def test_a_report_that_cannot_be_read_is_refused_and_not_delivered(
    local: LocalSettings, received: object
) -> None:
    registry = commit.PendingCommitments()
    scp = StorageScp(local, received, commitments=registry)  # type: ignore[arg-type]
    scp.start()
    try:
        node = Node("pacs", "PACS", "127.0.0.1", 104)
        transaction = generate_uid()
        pending = registry.expect(transaction, node)
        no_uid = Dataset()
        no_uid.ReferencedSOPSequence = DicomSequence([])
        assert _send_report(scp.port, "PACS", no_uid) == commit.STATUS_INVALID_ARGUMENT
        wrong_event = _report(transaction, [])
        assert _send_report(scp.port, "PACS", wrong_event, event_type=7) == 0x0113
        assert pending.report is None
        # the association still serves a good one afterwards
        assert _send_report(scp.port, "PACS", _report(transaction, [])) == 0
        assert pending.arrived.wait(5)
    finally:
        scp.stop()
