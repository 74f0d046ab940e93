"""``lightbox send --commit [--receipt]`` and ``lightbox store handovers`` against Orthanc
(a real Storage Commitment SCP reporting to our storage SCP's port), in a subprocess."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tests.cli import lightbox
from tests.net import peers


def _node(orthanc: peers.Orthanc) -> str:
    return f"ORTHANC@127.0.0.1:{orthanc.dicom_port}"


def test_send_commit_all_committed(
    orthanc: peers.Orthanc, scp_port: int, study: peers.StudyFiles, tmp_path: Path
) -> None:
    receipt = tmp_path / "handover.html"
    run = lightbox(
        "send",
        _node(orthanc),
        *map(str, study.files),
        "--scp-port",
        str(scp_port),
        "--commit",
        "--commit-timeout",
        "30",
        "--receipt",
        str(receipt),
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "committed: 6, failed: 0, missing: 0, not stored: 0" in run.stdout
    html = receipt.read_text()
    assert "COMPLETE" in html and 'id="incomplete"' not in html
    for path in study.files:
        assert hashlib.sha256(path.read_bytes()).hexdigest() in html
    assert "DOE^JOHN" in html  # the receipt is for the clerk
    assert "DOE^JOHN" not in run.stderr
    listed = lightbox("store", "handovers", "--json")
    assert listed.returncode == 0, listed.stderr
    handovers = json.loads(listed.stdout)
    assert len(handovers) == 1
    assert handovers[0]["study_instance_uid"] == study.study_instance_uid
    assert handovers[0]["handed_over"] is True
    assert {i["state"] for i in handovers[0]["instances"]} == {"committed"}
    text = lightbox("store", "handovers")
    assert "HANDED OVER" in text.stdout


def test_send_commit_without_a_report_lists_what_is_missing(
    orthanc: peers.Orthanc, study: peers.StudyFiles, tmp_path: Path
) -> None:
    """Orthanc reports to LIGHTBOX at the fixture's port; this run's SCP listens elsewhere."""
    receipt = tmp_path / "handover.html"
    run = lightbox(
        "send",
        _node(orthanc),
        *map(str, study.files[:2]),
        "--scp-port",
        str(peers.free_port()),
        "--commit",
        "--commit-timeout",
        "3",
        "--receipt",
        str(receipt),
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "committed: 0, failed: 0, missing: 2" in run.stdout
    assert "no report in time" in run.stdout
    for uid in study.sop_instance_uids[:2]:
        assert f"missing: {uid} (no report in time)" in run.stdout
    assert 'id="incomplete"' in receipt.read_text()
    listed = json.loads(lightbox("store", "handovers", "--json").stdout)
    assert listed[0]["handed_over"] is False


def test_send_commit_to_an_unreachable_node_exits_3(study: peers.StudyFiles) -> None:
    run = lightbox(
        "send",
        f"NOBODY@127.0.0.1:{peers.free_port()}",
        str(study.files[0]),
        "--commit",
    )
    assert run.returncode == 3, run.stdout + run.stderr
    assert "Traceback" not in run.stderr


def test_receipt_needs_commit(study: peers.StudyFiles, tmp_path: Path) -> None:
    run = lightbox("send", "X@127.0.0.1:1", str(study.files[0]), "--receipt", str(tmp_path / "r"))
    assert run.returncode == 2 and "--commit" in run.stderr


def test_send_commit_to_a_dicomweb_node_checks_with_qido(
    scp_port: int, study: peers.StudyFiles, tmp_path: Path
) -> None:
    """DICOMweb has no commitment service: ``--commit`` there is a QIDO-RS check of each
    instance after the STOW-RS, said so in the output and on the receipt."""
    web = peers.start_orthanc(
        tmp_path / "orthanc-web",
        scp_port,
        extra={"DicomWeb": {"Enable": True, "Root": "/dicom-web/"}},
        plugins=("OrthancDicomWeb",),
    )
    try:
        url = f"http://127.0.0.1:{web.http_port}/dicom-web"
        assert lightbox("nodes", "add", "web", url).returncode == 0
        receipt = tmp_path / "web.html"
        run = lightbox("send", "web", *map(str, study.files), "--commit", "--receipt", str(receipt))
    finally:
        web.stop()
    assert run.returncode == 0, run.stdout + run.stderr
    assert "a QIDO-RS check of 6 instance(s)" in run.stderr
    assert "verified: 6, failed: 0, missing: 0, not stored: 0" in run.stdout
    html = receipt.read_text()
    assert "COMPLETE" in html and "QIDO-RS" in html
    [handover] = json.loads(lightbox("store", "handovers", "--json").stdout)
    assert handover["handed_over"] is True
    assert {i["state"] for i in handover["instances"]} == {"verified"}
