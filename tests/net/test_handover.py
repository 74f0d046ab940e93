"""viewer.handover: send, then confirm the node holds each instance (issue 13).

Against a real Orthanc: Storage Commitment over DIMSE (the report reaching our SCP), and over
DICOMweb a QIDO-RS check after the STOW-RS (DICOMweb has no commitment service); an instance
the node no longer lists is missing, and the hand-over record says "not handed over".
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.net import peers
from viewer.handover import confirm, hand_over
from viewer.media import receipt as rc
from viewer.net.nodes import LocalSettings, Node
from viewer.net.send import InstanceStatus, SendResult
from viewer.store import Receiver, Store
from viewer.store.index import handed_over, list_handovers

CT = "1.2.840.10008.5.1.4.1.1.2"
WEB = {"DicomWeb": {"Enable": True, "Root": "/dicom-web/"}}


@pytest.fixture
def web(tmp_path: Path, scp_port: int) -> Iterator[peers.Orthanc]:
    peer = peers.start_orthanc(
        tmp_path / "orthanc-web", scp_port, extra=WEB, plugins=("OrthancDicomWeb",)
    )
    yield peer
    peer.stop()


def test_dimse_hand_over_is_committed_and_kept(
    orthanc_node: Node, local: LocalSettings, study: peers.StudyFiles, store: Store
) -> None:
    phases: list[str] = []
    with Receiver(store) as receiver:
        result = hand_over(
            orthanc_node,
            local,
            study.files,
            store,
            on_instance=receiver,
            timeout=30,
            progress=lambda phase, done, total: phases.append(phase),
        )
    assert result.method == "storage commitment" and result.complete, result.summary()
    assert result.summary().startswith("committed: 6, failed: 0, missing: 0")
    assert {state for state, _ in result.states.values()} == {rc.COMMITTED}
    assert phases[0] == "sending" and phases[-1] == "confirming"
    assert handed_over(store, study.study_instance_uid, str(orthanc_node))
    receipt = result.receipt()
    assert receipt.complete and ("Confirmed by", "storage commitment") in receipt.facts


def _web_node(peer: peers.Orthanc) -> Node:
    return Node("web", url=f"http://127.0.0.1:{peer.http_port}/dicom-web")


def test_dicomweb_hand_over_is_verified_by_qido(
    web: peers.Orthanc, local: LocalSettings, study: peers.StudyFiles, store: Store
) -> None:
    node = _web_node(web)
    result = hand_over(node, local, study.files, store, timeout=30)
    assert result.method == "QIDO-RS" and result.commitment is None
    assert result.complete, result.summary()
    assert result.summary().startswith("verified: 6, failed: 0, missing: 0")
    assert handed_over(store, study.study_instance_uid, str(node))
    html = rc.render_html(result.receipt())
    assert "Verified" in html and "COMPLETE: all 6 instance(s) verified" in html


def test_dicomweb_instance_gone_before_the_check_is_missing(
    web: peers.Orthanc, local: LocalSettings, study: peers.StudyFiles, store: Store
) -> None:
    """Stored by the STOW-RS, then deleted on the node: the check does not take "stored" for
    "held"."""
    from viewer.net import dicomweb

    node = _web_node(web)
    sent = dicomweb.send(node, local, study.files[:3])
    assert sent.sent == 3
    gone = study.sop_instance_uids[0]
    [orthanc_id] = web.rest("POST", "/tools/lookup", gone.encode())
    web.rest("DELETE", orthanc_id["Path"])
    result = confirm(node, local, sent, store)
    assert not result.complete
    assert result.states[gone] == (rc.MISSING, "not listed by the node")
    assert [uid for uid, _, _ in result.problems()] == [gone]
    [record] = list_handovers(store, study.study_instance_uid)
    assert not record.handed_over and record.count("verified") == 2
    assert not result.receipt().complete


def test_nothing_stored_asks_nothing_and_is_not_handed_over(
    local: LocalSettings, study: peers.StudyFiles, store: Store
) -> None:
    """Every C-STORE went unanswered (the connection was lost): each instance is "not
    stored", no commitment is requested (nobody listens at the node's port), the record says
    so."""
    node = Node("nobody", "NOBODY", "127.0.0.1", peers.free_port())
    lost = SendResult(
        [
            InstanceStatus(path, uid, CT, message="connection lost")
            for path, uid in zip(study.files[:2], study.sop_instance_uids[:2], strict=True)
        ]
    )
    result = confirm(node, local, lost, store)
    assert result.commitment is None and not result.complete
    assert set(result.states.values()) == {(rc.NOT_STORED, "connection lost")}
    assert not handed_over(store, study.study_instance_uid)
    assert list_handovers(store, study.study_instance_uid)[0].count("not stored") == 2
