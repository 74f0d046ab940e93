"""``lightbox worklist`` and ``lightbox reconcile`` as a user runs them (issue 13), and the whole
way: an outside study imported, reconciled against the hospital's worklist in Orthanc, the copies
sent to Orthanc and found there under the hospital's Patient ID."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from tests.cli import lightbox
from tests.net import peers
from tests.net.conftest import FAST
from tests.net.test_worklist import start_orthanc_worklist, write_worklist
from viewer.net.nodes import LocalSettings, Node
from viewer.net.send import send


@pytest.fixture
def ris(tmp_path: Path, scp_port: int) -> Iterator[peers.Orthanc]:
    """Orthanc as the hospital's RIS and PACS at once: its worklist holds three orders."""
    worklists = write_worklist(tmp_path / "worklists", "wl")
    peer = start_orthanc_worklist(tmp_path / "ris", scp_port, worklists)
    yield peer
    peer.stop()


@pytest.fixture
def outside(tmp_path: Path) -> peers.StudyFiles:
    """The outside study, on a CD from another hospital: its own Patient ID and accession."""
    return peers.make_study(
        tmp_path / "cd",
        patient_name="DOE^JOHN",
        patient_id="LB001",
        accession="ACC001",
        study_date="20240102",
        description="CHEST CT",
        parts=[("CT_small.dcm", "CT", 2), ("MR_small.dcm", "MR", 1)],
    )


def _import(study: peers.StudyFiles) -> None:
    result = lightbox("import", *(str(p) for p in study.files))
    assert result.returncode == 0, result.stderr


def _node(peer: peers.Orthanc) -> str:
    return f"ORTHANC@127.0.0.1:{peer.dicom_port}"


def test_worklist_lists_items(ris: peers.Orthanc) -> None:
    listed = lightbox("worklist", _node(ris), "--json")
    assert listed.returncode == 0, listed.stderr
    items = json.loads(listed.stdout)
    assert sorted(i["patient_id"] for i in items) == ["LB003", "LB009", "LB010"]
    assert {i["accession_number"]: i["steps"][0]["modality"] for i in items} == {
        "A100": "CT",
        "A200": "MR",
        "A300": "CT",
    }
    text = lightbox("worklist", _node(ris), "--modality", "CT", "--date", "20261205-20261206")
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("1. LB010 (HOSP)  DOE^JOHN")
    assert len(text.stdout.splitlines()) == 1
    bad = lightbox("worklist", _node(ris), "--date", "5.12.2026")
    assert bad.returncode == 2 and "YYYYMMDD" in bad.stderr and "Traceback" not in bad.stderr


def test_reconcile_needs_one_worklist_item(
    ris: peers.Orthanc, outside: peers.StudyFiles, tmp_path: Path
) -> None:
    _import(outside)
    study = outside.study_instance_uid
    several = lightbox("reconcile", study, "--worklist", _node(ris), "--modality", "CT")
    assert several.returncode == 1
    assert "2 worklist items match" in several.stderr and "--choose" in several.stderr
    assert "1. " in several.stderr and "2. " in several.stderr
    picked = lightbox(
        "reconcile", study, "--worklist", _node(ris), "--modality", "CT", "--choose", "2", "--json"
    )
    assert picked.returncode == 0, picked.stderr
    shown = json.loads(picked.stdout)
    assert shown["worklist_item"]["patient_id"] in ("LB003", "LB010")
    assert shown["out"] is None  # without --yes: the mapping only
    assert shown["plan"]["changes"][0]["new"] == shown["worklist_item"]["patient_id"]
    beyond = lightbox("reconcile", study, "--worklist", _node(ris), "--choose", "9")
    assert beyond.returncode == 2 and "listed 3 item(s)" in beyond.stderr
    none = lightbox("reconcile", study, "--worklist", _node(ris), "--patient-id", "NOBODY")
    assert none.returncode == 1 and "no worklist item" in none.stderr
    chosen = lightbox(
        "reconcile",
        study,
        "--worklist",
        _node(ris),
        "--accession",
        "A100",
        "--out",
        str(tmp_path / "staged"),
        "--yes",
        "--json",
    )
    assert chosen.returncode == 0, chosen.stderr
    data = json.loads(chosen.stdout)
    assert data["worklist_item"]["patient_id"] == "LB010"
    assert data["written"] == 3 and data["problems"] == []
    changes = {c["attribute"]: (c["old"], c["new"]) for c in data["plan"]["changes"]}
    assert changes["PatientID"] == (["LB001"], "LB010")
    assert changes["IssuerOfPatientID"] == ([""], "HOSP")
    assert changes["AccessionNumber"] == (["ACC001"], "A100")
    assert changes["StudyDescription"] == (["CHEST CT"], "CT EXAM")
    assert data["plan"]["other_patient_ids"] == [{"id": "LB001", "issuer": ""}]
    assert len(list((tmp_path / "staged").rglob("*.dcm"))) == 3


def test_reconcile_by_hand(outside: peers.StudyFiles, tmp_path: Path) -> None:
    _import(outside)
    study = outside.study_instance_uid
    out = tmp_path / "staged"
    args = ["reconcile", study, "--patient-id", "LB010", "--issuer", "HOSP"]
    args += ["--name", "Evil\x1b[2J^Name", "--birth-date", "19600101", "--sex", "M"]
    shown = lightbox(*args, "--out", str(out))
    assert shown.returncode == 0, shown.stderr
    assert "\x1b" not in shown.stdout
    assert "PatientID: LB001 -> LB010" in shown.stdout
    assert "IssuerOfPatientID: (empty) -> HOSP" in shown.stdout
    assert "OtherPatientIDsSequence: + LB001" in shown.stdout
    assert "nothing written" in shown.stdout and not out.exists()  # --yes writes
    done = lightbox(*args, "--out", str(out), "--yes", "--new-uids")
    assert done.returncode == 0, done.stderr
    assert "3 reconciled copies in" in done.stdout
    copies = [pydicom.dcmread(p) for p in sorted(out.rglob("*.dcm"))]
    assert {str(ds.PatientID) for ds in copies} == {"LB010"}
    assert {str(ds.StudyInstanceUID) for ds in copies} != {study}
    assert len({str(ds.StudyInstanceUID) for ds in copies}) == 1
    again = lightbox(*args, "--out", str(out), "--yes")
    assert again.returncode == 3 and "must be empty" in again.stderr


def test_reconcile_usage_and_failures(outside: peers.StudyFiles) -> None:
    _import(outside)
    study = outside.study_instance_uid
    for args, code, words in [
        ([study], 2, "--worklist NODE"),
        ([study, "--patient-id", "X", "--modality", "CT"], 2, "add --worklist"),
        ([study, "--patient-id", "X", "--birth-date", "1960"], 2, "YYYYMMDD"),
        ([study, "--worklist", "RIS@127.0.0.1:1", "--issuer", "H"], 2, "from the worklist"),
        (["1.2.3.4", "--patient-id", "X"], 3, "not in the local store"),
        ([study, "--worklist", f"RIS@127.0.0.1:{peers.free_port()}"], 3, "refused"),
        ([study, "--worklist", "no-such-node"], 2, "unknown node"),
    ]:
        result = lightbox("reconcile", *args)
        assert result.returncode == code, (args, result.stderr)
        assert words in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_end_to_end_outside_study_into_the_pacs(
    ris: peers.Orthanc, outside: peers.StudyFiles, tmp_path: Path, scp_port: int
) -> None:
    """CD -> store -> worklist order -> reconciled copies -> PACS, under the hospital's ID."""
    _import(outside)
    out = tmp_path / "to-pacs"
    reconciled = lightbox(
        "reconcile",
        outside.study_instance_uid,
        "--worklist",
        _node(ris),
        "--patient-id",
        "LB010",
        "--out",
        str(out),
        "--yes",
    )
    assert reconciled.returncode == 0, reconciled.stderr
    local = LocalSettings(ae_title="LIGHTBOX", scp_port=scp_port, timeouts=FAST)
    pacs = Node("pacs", ris.aet, "127.0.0.1", ris.dicom_port)
    result = send(pacs, local, sorted(out.rglob("*.dcm")))
    assert result.sent == 3 and not result.failed
    found = ris.rest(
        "POST",
        "/tools/find",
        json.dumps({"Level": "Study", "Query": {"PatientID": "LB010"}, "Expand": True}).encode(),
    )
    (study,) = found
    assert study["MainDicomTags"]["AccessionNumber"] == "A100"
    assert study["PatientMainDicomTags"]["PatientName"] == "DOE^JOHN"
    assert not ris.rest(
        "POST",
        "/tools/find",
        json.dumps({"Level": "Patient", "Query": {"PatientID": "LB001"}}).encode(),
    )
    instance = ris.rest("GET", f"/studies/{study['ID']}/instances")[0]["ID"]
    tags = ris.rest("GET", f"/instances/{instance}/tags?simplify")
    others = tags["OtherPatientIDsSequence"]
    assert others[-1]["PatientID"] == "LB001" and others[-1]["TypeOfPatientID"] == "TEXT"
    (event,) = tags["OriginalAttributesSequence"]
    assert event["ReasonForTheAttributeModification"] == "COERCE"
    assert event["ModifiedAttributesSequence"][0]["PatientID"] == "LB001"
    # the stored original is still the outside study
    listed = json.loads(lightbox("store", "ls", "--json").stdout)
    assert [p["patient_id"] for p in listed["patients"]] == ["LB001"]
