"""``lightbox echo|find|get|send|listen|nodes`` against real peers (issue 4 section 3).

Each test runs the real command in a subprocess with its own $LIGHTBOX_HOME (so its own
store and config), and checks what the peer or the store says happened.
"""

from __future__ import annotations

import json

from tests.cli import instance_count, lightbox, start_listen, stop_listen, store_json
from tests.net import peers


def test_nodes_add_ls_rm() -> None:
    assert (
        lightbox(
            "nodes", "add", "pacs", "ORTHANC", "127.0.0.1", "4242", "--method", "get"
        ).returncode
        == 0
    )
    listed = lightbox("nodes", "ls")
    assert "pacs: ORTHANC@127.0.0.1:4242 (get)" in listed.stdout
    assert lightbox("nodes", "rm", "pacs").returncode == 0
    assert "pacs:" not in lightbox("nodes", "ls").stdout
    gone = lightbox("nodes", "rm", "pacs")
    assert gone.returncode == 3 and "no node named 'pacs'" in gone.stderr
    bad = lightbox("nodes", "add", "x", "WAY_TOO_LONG_AE_TITLE", "h", "1")
    assert bad.returncode == 2 and "AE title" in bad.stderr and "Traceback" not in bad.stderr


def test_echo_ok_and_refused(orthanc: peers.Orthanc, scp_port: int) -> None:
    ok = lightbox("echo", f"ORTHANC@127.0.0.1:{orthanc.dicom_port}")
    assert ok.returncode == 0, ok.stderr
    assert "C-ECHO OK" in ok.stdout
    port = peers.free_port()
    refused = lightbox("echo", f"ORTHANC@127.0.0.1:{port}")
    assert refused.returncode == 3
    assert "refused" in refused.stderr and "Traceback" not in refused.stderr
    usage = lightbox("echo", "not-a-node")
    assert usage.returncode == 2 and "unknown node 'not-a-node'" in usage.stderr
    # the node is checked before the files: a usage error, not "could not" for a missing path
    usage = lightbox("send", "not-a-node", "no-such-file.dcm")
    assert usage.returncode == 2 and "unknown node 'not-a-node'" in usage.stderr


def test_find_json(
    orthanc: peers.Orthanc, study: peers.StudyFiles, other_study: peers.StudyFiles
) -> None:
    orthanc.upload(study.files + other_study.files)
    node = f"ORTHANC@127.0.0.1:{orthanc.dicom_port}"
    result = lightbox("find", node, "-k", "PatientID=LB001", "--json")
    assert result.returncode == 0, result.stderr
    matches = json.loads(result.stdout)
    assert [m["StudyInstanceUID"] for m in matches] == [study.study_instance_uid]
    assert matches[0]["PatientName"] == "DOE^JOHN"
    assert matches[0]["NumberOfStudyRelatedInstances"] == "6"
    series = lightbox(
        "find",
        node,
        "--level",
        "series",
        "-k",
        f"StudyInstanceUID={study.study_instance_uid}",
        "--json",
    )
    assert sorted(m["SeriesInstanceUID"] for m in json.loads(series.stdout)) == sorted(study.series)
    none = lightbox("find", node, "-k", "PatientID=NOBODY", "--json")
    assert none.returncode == 0 and json.loads(none.stdout) == []
    bad = lightbox("find", node, "--level", "series", "--json")
    assert bad.returncode == 2 and "StudyInstanceUID" in bad.stderr


def test_get_into_the_store_then_resume(orthanc: peers.Orthanc, study: peers.StudyFiles) -> None:
    orthanc.upload(study.files)
    node = f"ORTHANC@127.0.0.1:{orthanc.dicom_port}"
    first = lightbox("get", node, "--study", study.study_instance_uid, "--method", "get")
    assert first.returncode == 0, first.stderr
    assert "completed: 6, failed: 0, warning: 0, already present: 0" in first.stdout
    data = store_json()
    assert instance_count(data) == 6
    assert data["patients"][0]["patient_id"] == "LB001"
    again = lightbox("get", node, "--study", study.study_instance_uid, "--method", "get")
    assert "completed: 0, failed: 0, warning: 0, already present: 6" in again.stdout


def test_move_into_our_scp(orthanc: peers.Orthanc, study: peers.StudyFiles, scp_port: int) -> None:
    """C-MOVE to LIGHTBOX: the command starts its own SCP on the port Orthanc knows."""
    orthanc.upload(study.files)
    node = f"ORTHANC@127.0.0.1:{orthanc.dicom_port}"
    series_uid = next(iter(study.series))
    result = lightbox(
        "get",
        node,
        "--study",
        study.study_instance_uid,
        "--series",
        series_uid,
        "--method",
        "move",
        "--scp-port",
        str(scp_port),
    )
    assert result.returncode == 0, result.stderr
    assert f"completed: {len(study.series[series_uid])}," in result.stdout
    assert instance_count(store_json()) == len(study.series[series_uid])


def test_send_files_and_a_stored_study(orthanc: peers.Orthanc, study: peers.StudyFiles) -> None:
    node = f"ORTHANC@127.0.0.1:{orthanc.dicom_port}"
    sent = lightbox("send", node, *map(str, study.files[:2]))
    assert sent.returncode == 0, sent.stderr
    assert "sent: 2" in sent.stdout
    assert orthanc.statistics()["CountInstances"] == 2
    assert lightbox("import", str(study.files[0].parent)).returncode == 0
    whole = lightbox("send", node, "--study", study.study_instance_uid)
    assert whole.returncode == 0, whole.stderr
    assert orthanc.statistics()["CountInstances"] == 6
    unknown = lightbox("send", node, "--study", "1.2.3.4")
    assert unknown.returncode == 3 and "not in the local store" in unknown.stderr


def test_listen_receives_into_the_store(study: peers.StudyFiles) -> None:
    port = peers.free_port()
    proc = start_listen(port)
    try:
        # storescu proposes uncompressed syntaxes only: push the five uncompressed CT images
        plain = [p for p in study.files if b"1.2.840.10008.1.2.4" not in p.read_bytes()[:400]]
        assert len(plain) == 5
        pushed = peers.storescu("STORESCU", "LIGHTBOX", port, plain)
        assert pushed.returncode == 0, pushed.stderr
    finally:
        err = stop_listen(proc)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert instance_count(store_json()) == 5
