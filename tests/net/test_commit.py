"""Storage Commitment Push Model as SCU (viewer.net.commit) against Orthanc 1.10, a real
Storage Commitment SCP: it answers the N-ACTION and sends the N-EVENT-REPORT on a new
association to LIGHTBOX as its DicomModalities say (our storage SCP's port)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import CTImageStorage, generate_uid
from pynetdicom import AE, evt

from tests.net import peers
from tests.net.conftest import Received
from viewer.net import commit
from viewer.net.diagnose import NetError
from viewer.net.nodes import LocalSettings, Node
from viewer.net.scp import StorageScp
from viewer.net.send import send


@pytest.fixture
def pairs(
    orthanc: peers.Orthanc, orthanc_node: Node, local: LocalSettings, study: peers.StudyFiles
) -> list[tuple[str, str]]:
    """The study sent to Orthanc: (SOP Class UID, SOP Instance UID) of each instance."""
    result = send(orthanc_node, local, study.files)
    assert result.sent == len(study.files), [i.message for i in result.failed]
    return [(i.sop_class_uid, i.sop_instance_uid) for i in result.instances]


def test_orthanc_commits_a_sent_study(
    pairs: list[tuple[str, str]],
    orthanc_node: Node,
    local: LocalSettings,
    our_scp: StorageScp,
    study: peers.StudyFiles,
) -> None:
    started = time.monotonic()
    result = commit.request_commitment(orthanc_node, local, pairs, timeout=30)
    assert result.ok, [(i.sop_instance_uid, i.state) for i in result.items]
    assert len(result.committed) == len(study.files) == 6
    assert {i.sop_instance_uid for i in result.items} == set(study.sop_instance_uids)
    assert result.reported_via == "scp"  # Orthanc reports on a new association
    assert result.transaction_uid and result.transaction_uid not in commit.PENDING
    assert time.monotonic() - started < 25


def test_an_instance_orthanc_does_not_have_is_listed_as_failed(
    pairs: list[tuple[str, str]], orthanc_node: Node, local: LocalSettings, our_scp: StorageScp
) -> None:
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
    pairs: list[tuple[str, str]], orthanc_node: Node, local: LocalSettings
) -> None:
    """No SCP of ours on the port Orthanc reports to: the report never comes."""
    started = time.monotonic()
    result = commit.request_commitment(
        orthanc_node, local, pairs, timeout=3, same_association_wait=0.5
    )
    took = time.monotonic() - started
    assert 2.5 < took < 8
    assert not result.ok and not result.cancelled
    assert len(result.missing) == 6 and result.reported_via == ""


def test_cancel_stops_the_wait(
    pairs: list[tuple[str, str]], orthanc_node: Node, local: LocalSettings
) -> None:
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


def _report(
    transaction: str,
    committed: list[tuple[str, str]],
    failed: list[tuple[str, str]] | None = None,
) -> Dataset:
    """Event Information (PS3.4 Table J.3-2): ``committed`` in the Referenced SOP Sequence,
    ``failed`` (if given) in the Failed SOP Sequence with Failure Reason 0x0110."""
    ds = Dataset()
    ds.TransactionUID = transaction

    def items(pairs: list[tuple[str, str]], reason: int | None = None) -> DicomSequence:
        refs = []
        for cls, inst in pairs:
            ref = Dataset()
            ref.ReferencedSOPClassUID = cls
            ref.ReferencedSOPInstanceUID = inst
            if reason is not None:
                ref.FailureReason = reason
            refs.append(ref)
        return DicomSequence(refs)

    ds.ReferencedSOPSequence = items(committed)
    if failed is not None:
        ds.FailedSOPSequence = items(failed, commit.STATUS_PROCESSING_FAILURE)
    return ds


def _ct(n: int) -> list[tuple[str, str]]:
    return [(str(CTImageStorage), generate_uid()) for _ in range(n)]


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


@dataclass
class _Waiting:
    """Our storage SCP with its own registry, waiting for one transaction's report from the
    node PACS (127.0.0.1) about ``pairs``."""

    port: int
    registry: commit.PendingCommitments
    transaction: str
    pairs: list[tuple[str, str]]
    pending: commit._Pending

    def result(self) -> commit.CommitResult:
        """What :func:`commit.request_commitment` would make of the report that came."""
        items = [commit.CommitItem(c, i) for c, i in self.pairs]
        result = commit.CommitResult("pacs", self.transaction, "", items)
        if self.pending.report is not None:
            result.apply(self.pending.report)
        return result


@pytest.fixture
def waiting(local: LocalSettings, received: Received) -> Iterator[_Waiting]:
    registry = commit.PendingCommitments()
    scp = StorageScp(local, received, commitments=registry)
    scp.start()
    try:
        node = Node("pacs", "PACS", "127.0.0.1", 104)
        transaction, pairs = generate_uid(), _ct(2)
        pending = registry.expect(transaction, node, (inst for _, inst in pairs))
        yield _Waiting(scp.port, registry, transaction, pairs, pending)
    finally:
        scp.stop()


def test_our_scp_takes_a_report_only_from_the_node_asked(waiting: _Waiting) -> None:
    report = _report(waiting.transaction, waiting.pairs)
    assert _send_report(waiting.port, "STRANGER", report) == 0
    assert waiting.pending.report is None
    assert _send_report(waiting.port, "PACS", report) == 0
    assert waiting.pending.arrived.wait(5)
    assert waiting.pending.report is not None
    assert waiting.pending.report.committed == waiting.pairs
    assert waiting.pending.report.via == "scp"
    assert waiting.result().ok


def test_a_report_naming_more_instances_than_requested_is_refused(
    waiting: _Waiting, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two instances asked about, three listed (one committed, two failed): Invalid
    Argument, nothing delivered, both of ours still missing."""
    extra = _ct(1)
    too_many = _report(waiting.transaction, waiting.pairs[:1], [*waiting.pairs[1:], *extra])
    with caplog.at_level(logging.WARNING, logger="viewer.net.commit"):
        status = _send_report(waiting.port, "PACS", too_many)
    assert status == commit.STATUS_INVALID_ARGUMENT
    assert waiting.pending.report is None
    assert any("lists 3 instances, more than the 2" in r.getMessage() for r in caplog.records)
    assert len(waiting.result().missing) == 2
    with pytest.raises(ValueError, match="more than the 2"):
        commit.parse_report(too_many, 2, "PACS", "127.0.0.1", limit=2)
    monkeypatch.setattr(commit, "MAX_INSTANCES", 4)  # the general cap, whatever the limit
    with pytest.raises(ValueError, match="more than the 4"):
        commit.parse_report(_report(waiting.transaction, _ct(5)), 1, "PACS", "", limit=10**9)


def test_instances_the_request_did_not_name_are_not_counted(
    waiting: _Waiting, caplog: pytest.LogCaptureFixture
) -> None:
    """One of ours and a stranger reported committed: the stranger is dropped (logged), ours
    is committed, the other of ours stays missing."""
    ours, stranger = waiting.pairs[0], _ct(1)[0]
    with caplog.at_level(logging.WARNING, logger="viewer.net.commit"):
        status = _send_report(waiting.port, "PACS", _report(waiting.transaction, [ours, stranger]))
    assert status == 0 and waiting.pending.arrived.wait(5)
    assert waiting.pending.report is not None
    assert waiting.pending.report.committed == [ours]
    assert any("1 instance(s) the request did not" in r.getMessage() for r in caplog.records)
    result = waiting.result()
    assert [i.sop_instance_uid for i in result.committed] == [ours[1]]
    assert [i.sop_instance_uid for i in result.missing] == [waiting.pairs[1][1]]
    assert len(result.items) == 2 and not result.ok


def test_apply_ignores_what_is_not_ours() -> None:
    """CommitResult.apply on a report parsed as it came (no registry between): a stranger
    committed adds nothing; a failed one of ours stays failed though also listed committed."""
    pairs, stranger = _ct(2), _ct(1)
    info = _report("1.2.3", [*pairs, *stranger], pairs[1:])
    report = commit.parse_report(info, 2, "PACS", "127.0.0.1")
    result = commit.CommitResult("pacs", "1.2.3", "", [commit.CommitItem(*p) for p in pairs])
    result.apply(report)
    assert [i.state for i in result.items] == [commit.COMMITTED, commit.FAILED]
    assert len(result.items) == 2


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


def test_a_report_that_cannot_be_read_is_refused_and_not_delivered(waiting: _Waiting) -> None:
    no_uid = Dataset()
    no_uid.ReferencedSOPSequence = DicomSequence([])
    assert _send_report(waiting.port, "PACS", no_uid) == commit.STATUS_INVALID_ARGUMENT
    wrong_event = _report(waiting.transaction, [])
    assert _send_report(waiting.port, "PACS", wrong_event, event_type=7) == 0x0113
    assert waiting.pending.report is None
    # the association still serves a good one afterwards
    assert _send_report(waiting.port, "PACS", _report(waiting.transaction, [])) == 0
    assert waiting.pending.arrived.wait(5)
