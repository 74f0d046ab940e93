"""Issue 13's "done when", the whole way through the real ``lightbox`` command and a real Orthanc:
an outside patient's disc image is imported, reconciled against the hospital's worklist entry,
sent to the PACS with a confirmation (Storage Commitment over DIMSE; over DICOMweb, which has
none, a QIDO-RS check after the STOW-RS), and the study is found in the PACS under the
hospital's Patient ID with the outside values kept in it, while the store's original is unchanged.

One Orthanc per run is the hospital: its ModalityWorklists plugin is the RIS (asked over DIMSE
either way) and its storage, reached by C-STORE or through its DICOMweb plugin, is the PACS.
"""

from __future__ import annotations

import hashlib
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.filebase import DicomBytesIO

from tests.cli import lightbox
from tests.conftest import lightbox_home
from tests.net import peers
from tests.net.test_worklist import ORDERS, write_worklist

#: The outside hospital's identity on the disc, and the hospital's order for the same patient
#: (test_worklist.ORDERS: LB010, DOE^JOHN, issuer HOSP, accession A100, a CT).
OUTSIDE_ID, OUTSIDE_ACCESSION = "LB001", "ACC001"
HOSPITAL_ID, HOSPITAL_ACCESSION = "LB010", "A100"


@pytest.fixture
def hospital(tmp_path: Path, scp_port: int) -> Iterator[peers.Orthanc]:
    """The hospital's RIS (worklist over DIMSE) and PACS (DIMSE and DICOMweb) in one Orthanc;
    it knows our AE as LIGHTBOX at ``scp_port``, where the commitment report goes."""
    worklists = write_worklist(tmp_path / "worklists", "wl", ORDERS)
    peer = peers.start_orthanc(
        tmp_path / "hospital",
        scp_port,
        extra={
            "Worklists": {"Enable": True, "Database": str(worklists)},
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        },
        plugins=("ModalityWorklists", "OrthancDicomWeb"),
    )
    yield peer
    peer.stop()


@pytest.fixture
def disc(tmp_path: Path) -> tuple[Path, peers.StudyFiles]:
    """The outside patient's CD as an ISO image, burned by ``lightbox burn --iso`` in a home of
    its own (this test's store stays empty until the import)."""
    study = peers.make_study(
        tmp_path / "outside",
        patient_name="DOE^JOHN",
        patient_id=OUTSIDE_ID,
        accession=OUTSIDE_ACCESSION,
        study_date="20240102",
        description="CHEST CT",
        parts=[("CT_small.dcm", "CT", 2), ("MR_small.dcm", "MR", 1)],
    )
    image = tmp_path / "outside-cd.iso"
    burned = lightbox(
        "burn", "--from", str(tmp_path / "outside"), "--iso", str(image), home=tmp_path / "burner"
    )
    assert burned.returncode == 0, burned.stderr
    return image, study


def _store_files() -> dict[str, str]:
    """The local store's managed files: relative path -> SHA-256 of the bytes."""
    root = lightbox_home() / "store" / "files"
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.dcm"))
    }


def _instance_file(peer: peers.Orthanc, orthanc_id: str) -> pydicom.Dataset:
    """The instance as the PACS keeps it (Orthanc's REST ``/instances/{id}/file``)."""
    url = f"http://127.0.0.1:{peer.http_port}/instances/{orthanc_id}/file"
    with urllib.request.urlopen(url, timeout=20) as rsp:
        return pydicom.dcmread(DicomBytesIO(rsp.read()))


def _orthanc_find(peer: peers.Orthanc, query: dict[str, str]) -> list[dict[str, Any]]:
    """Instances of the PACS matching ``query`` (Orthanc's REST ``/tools/find``, expanded)."""
    body = {"Level": "Instance", "Query": query, "Expand": True}
    return list(peer.rest("POST", "/tools/find", json.dumps(body).encode()))


@pytest.mark.parametrize("transport", ["dimse", "dicomweb"])
def test_outside_disc_reconciled_handed_over_and_found_under_the_hospital_id(
    transport: str,
    hospital: peers.Orthanc,
    disc: tuple[Path, peers.StudyFiles],
    scp_port: int,
    tmp_path: Path,
) -> None:
    image, outside = disc
    ris = f"ORTHANC@127.0.0.1:{hospital.dicom_port}"

    imported = lightbox("import", str(image))
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert "imported: 3" in imported.stdout
    originals = _store_files()
    assert len(originals) == 3

    staging = tmp_path / "staging"
    reconciled = lightbox(
        "reconcile",
        outside.study_instance_uid,
        "--worklist",
        ris,
        "--name",
        "DOE^JOHN",
        "--modality",
        "CT",
        "--choose",
        "1",
        "--yes",
        "--out",
        str(staging),
        "--json",
    )
    assert reconciled.returncode == 0, reconciled.stderr
    mapping = json.loads(reconciled.stdout)
    assert mapping["worklist_item"]["patient_id"] == HOSPITAL_ID
    assert mapping["written"] == 3 and mapping["problems"] == []

    receipt = tmp_path / "receipt.html"
    if transport == "dimse":
        node, extra, confirmed = ris, ["--scp-port", str(scp_port)], "committed"
    else:
        url = f"http://127.0.0.1:{hospital.http_port}/dicom-web"
        added = lightbox("nodes", "add", "web", url)
        assert added.returncode == 0, added.stderr
        node, extra, confirmed = "web", [], "verified"
    sent = lightbox(
        "send",
        node,
        str(staging),
        *extra,
        "--commit",
        "--commit-timeout",
        "30",
        "--receipt",
        str(receipt),
    )
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert f"{confirmed}: 3, failed: 0, missing: 0, not stored: 0" in sent.stdout
    html = receipt.read_text()
    assert "COMPLETE" in html and 'id="incomplete"' not in html
    if transport == "dicomweb":  # no Storage Commitment in DICOMweb: said, not pretended
        assert "a QIDO-RS check of 3 instance(s)" in sent.stderr
        assert "QIDO-RS" in html

    # the PACS has the study under the hospital's ID only; asked as a user asks, then by REST
    found = lightbox(
        "find", node, "-k", f"PatientID={HOSPITAL_ID}", "-k", "AccessionNumber=", "--json"
    )
    assert found.returncode == 0, found.stderr
    (study,) = json.loads(found.stdout)
    assert study["StudyInstanceUID"] == outside.study_instance_uid
    assert study["AccessionNumber"] == HOSPITAL_ACCESSION
    assert not _orthanc_find(hospital, {"PatientID": OUTSIDE_ID})
    instances = _orthanc_find(hospital, {"PatientID": HOSPITAL_ID})
    assert sorted(i["MainDicomTags"]["SOPInstanceUID"] for i in instances) == sorted(
        outside.sop_instance_uids
    )
    for instance in instances:
        ds = _instance_file(hospital, instance["ID"])
        assert ds.PatientID == HOSPITAL_ID and ds.IssuerOfPatientID == "HOSP"
        assert ds.AccessionNumber == HOSPITAL_ACCESSION
        assert [o.PatientID for o in ds.OtherPatientIDsSequence][-1] == OUTSIDE_ID
        (event,) = ds.OriginalAttributesSequence
        assert event.ReasonForTheAttributeModification == "COERCE"
        (previous,) = event.ModifiedAttributesSequence
        assert previous.PatientID == OUTSIDE_ID
        assert previous.AccessionNumber == OUTSIDE_ACCESSION

    [handover] = json.loads(lightbox("store", "handovers", "--json").stdout)
    assert handover["study_instance_uid"] == outside.study_instance_uid
    assert handover["handed_over"] is True
    assert {i["state"] for i in handover["instances"]} == {confirmed}

    # the store's original is the outside study, byte for byte
    assert _store_files() == originals
    listed = json.loads(lightbox("store", "ls", "--json").stdout)
    assert [p["patient_id"] for p in listed["patients"]] == [OUTSIDE_ID]
