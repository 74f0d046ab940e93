"""Reconciling a stored outside study with the hospital's identity (issue 13): the plan, the
copies (PS3.3 C.12.1 Original Attributes Sequence, Other Patient IDs Sequence), new UIDs, and
the originals untouched byte for byte."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from tests.conftest import require_tool
from tests.net import peers
from viewer.store import Store, StoreError, import_paths, study_instance_paths
from viewer.store.reconcile import Identity, plan, write

HOSPITAL = Identity(
    patient_id="LB010",
    issuer_of_patient_id="HOSP",
    patient_name="DOE^JOHN^Q",
    birth_date="19600101",
    sex="M",
    accession_number="A100",
    study_description="CT CHEST (REFERRAL)",
)


@pytest.fixture
def outside(tmp_path: Path) -> peers.StudyFiles:
    """An outside study: two CT series, the last instance referencing the first."""
    study = peers.make_study(
        tmp_path / "outside",
        patient_name="DOE^JOHN",
        patient_id="LB001",
        accession="ACC001",
        study_date="20240102",
        description="CHEST CT",
        parts=[("CT_small.dcm", "CT", 2), ("CT_small.dcm", "CT", 1)],
    )
    last = study.files[-1]
    ds = pydicom.dcmread(last)
    ref = Dataset()
    ref.ReferencedSOPClassUID = ds.SOPClassUID
    ref.ReferencedSOPInstanceUID = study.sop_instance_uids[0]
    outside_ref = Dataset()
    outside_ref.ReferencedSOPClassUID = ds.SOPClassUID
    outside_ref.ReferencedSOPInstanceUID = "1.2.3.4.5.6.7"
    ds.ReferencedImageSequence = [ref]
    ds.SourceImageSequence = [outside_ref]
    ds.InstitutionName = "OTHER HOSPITAL"
    ds.save_as(last, enforce_file_format=True)
    return study


@pytest.fixture
def stored(store: Store, outside: peers.StudyFiles) -> Store:
    report = import_paths(store, outside.files)
    assert len(report.imported) == len(outside.files)
    return store


def _digests(paths: list[Path]) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def test_plan_maps_old_to_new(stored: Store, outside: peers.StudyFiles) -> None:
    rec = plan(stored, outside.study_instance_uid, HOSPITAL)
    changes = {c.keyword: (c.old, c.new) for c in rec.changes}
    assert changes["PatientID"] == (["LB001"], "LB010")
    assert changes["PatientName"] == (["DOE^JOHN"], "DOE^JOHN^Q")
    assert changes["AccessionNumber"] == (["ACC001"], "A100")
    assert changes["IssuerOfPatientID"] == ([""], "HOSP")
    assert changes["StudyDescription"] == (["CHEST CT"], "CT CHEST (REFERRAL)")
    assert rec.instances == 3
    assert rec.other_ids == [("LB001", "")]
    assert not rec.uid_map and not rec.problems
    data = rec.to_dict()
    assert data["changes"][0] == {
        "attribute": "PatientID",
        "old": ["LB001"],
        "new": "LB010",
        "changes": True,
    }


def test_plan_of_unknown_study(store: Store) -> None:
    with pytest.raises(StoreError, match="not in the local store"):
        plan(store, "1.2.3", HOSPITAL)


def test_identity_is_checked() -> None:
    with pytest.raises(ValueError, match="Patient ID"):
        Identity(patient_id=" ")
    with pytest.raises(ValueError, match="YYYYMMDD"):
        Identity(patient_id="X", birth_date="1.1.1960")
    with pytest.raises(ValueError, match="sex"):
        Identity(patient_id="X", sex="Q")


def test_copies_are_coerced_with_history(
    stored: Store, outside: peers.StudyFiles, tmp_path: Path
) -> None:
    originals = study_instance_paths(stored, outside.study_instance_uid)
    before = _digests(originals)
    rec = plan(stored, outside.study_instance_uid, HOSPITAL)
    report = write(stored, rec, tmp_path / "staging")
    assert report.ok, report.problems
    assert len(report.written) == 3
    assert _digests(originals) == before  # the store's files untouched
    assert not list((tmp_path / "staging").rglob(".*"))  # no temporary file left
    for path in report.written:
        ds = pydicom.dcmread(path)
        original = pydicom.dcmread(originals[report.written.index(path)])
        assert ds.PatientID == "LB010"
        assert ds.IssuerOfPatientID == "HOSP"
        assert ds.PatientName == "DOE^JOHN^Q"
        assert ds.AccessionNumber == "A100"
        assert ds.SOPInstanceUID == original.SOPInstanceUID  # no new UIDs asked for
        assert ds.PixelData == original.PixelData
        assert ds.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
        # CT_small's own two other IDs kept, the outside ID added after them
        *kept, other = ds.OtherPatientIDsSequence
        assert [i.PatientID for i in kept] == ["ABCD1234", "1234ABCD"]
        assert other.PatientID == "LB001"
        assert other.TypeOfPatientID == "TEXT"
        (event,) = ds.OriginalAttributesSequence
        assert event.ReasonForTheAttributeModification == "COERCE"
        assert event.ModifyingSystem.startswith("Lightbox")
        assert re.fullmatch(r"\d{14}\.\d{6}\+0000", event.AttributeModificationDateTime)
        (previous,) = event.ModifiedAttributesSequence
        assert previous.PatientID == "LB001"
        assert previous.PatientName == "DOE^JOHN"
        assert previous.AccessionNumber == "ACC001"
        assert previous.StudyDescription == "CHEST CT"
        assert "IssuerOfPatientID" not in previous  # it was absent: added, not replaced
        assert [i.PatientID for i in previous.OtherPatientIDsSequence] == ["ABCD1234", "1234ABCD"]
    last = pydicom.dcmread(report.written[-1])
    assert last.OriginalAttributesSequence[0].SourceOfPreviousValues == "OTHER HOSPITAL"


def test_second_reconciliation_adds_an_event(
    stored: Store, outside: peers.StudyFiles, tmp_path: Path
) -> None:
    """A copy reconciled again (imported, then corrected) keeps both events, one item each."""
    first = write(stored, plan(stored, outside.study_instance_uid, HOSPITAL), tmp_path / "one")
    with Store.open(tmp_path / "store2") as second_store:
        import_paths(second_store, first.written)
        fixed = Identity(patient_id="LB010", issuer_of_patient_id="HOSP", birth_date="19600229")
        rec = plan(second_store, outside.study_instance_uid, fixed, reason="CORRECT")
        assert [c.keyword for c in rec.changes if c.changes] == ["PatientBirthDate"]
        assert rec.other_ids == []
        report = write(second_store, rec, tmp_path / "two")
    ds = pydicom.dcmread(report.written[0])
    assert [e.ReasonForTheAttributeModification for e in ds.OriginalAttributesSequence] == [
        "COERCE",
        "CORRECT",
    ]
    assert [i.PatientID for i in ds.OtherPatientIDsSequence] == ["ABCD1234", "1234ABCD", "LB001"]
    assert ds.PatientBirthDate == "19600229"


def test_new_uids_are_consistent(stored: Store, outside: peers.StudyFiles, tmp_path: Path) -> None:
    order_uid = "2.25.123456789"
    target = Identity(patient_id="LB010", study_instance_uid=order_uid)
    rec = plan(stored, outside.study_instance_uid, target, new_uids=True)
    assert rec.new_study_instance_uid == order_uid
    report = write(stored, rec, tmp_path / "staging")
    assert report.ok
    copies = [pydicom.dcmread(p) for p in report.written]
    assert {ds.StudyInstanceUID for ds in copies} == {order_uid}
    old_series = set(outside.series)
    new_series = {ds.SeriesInstanceUID for ds in copies}
    assert len(new_series) == 2 and not new_series & old_series
    old_sops = set(outside.sop_instance_uids)
    for ds in copies:
        assert ds.SOPInstanceUID not in old_sops
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        previous = ds.OriginalAttributesSequence[0].ModifiedAttributesSequence[0]
        assert rec.uid_map[previous.SOPInstanceUID] == ds.SOPInstanceUID
    referencing = copies[-1]
    (ref,) = referencing.ReferencedImageSequence
    assert ref.ReferencedSOPInstanceUID == copies[0].SOPInstanceUID
    assert referencing.SourceImageSequence[0].ReferencedSOPInstanceUID == "1.2.3.4.5.6.7"
    previous = referencing.OriginalAttributesSequence[0].ModifiedAttributesSequence[0]
    assert previous.StudyInstanceUID == outside.study_instance_uid


def test_non_ascii_name_switches_to_utf8(
    stored: Store, outside: peers.StudyFiles, tmp_path: Path
) -> None:
    target = Identity(patient_id="LB010", patient_name="Müller^Jürgen")
    report = write(stored, plan(stored, outside.study_instance_uid, target), tmp_path / "s")
    ds = pydicom.dcmread(report.written[0])
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert str(ds.PatientName) == "Müller^Jürgen"


def test_staging_folder_must_be_empty(
    stored: Store, outside: peers.StudyFiles, tmp_path: Path
) -> None:
    folder = tmp_path / "busy"
    folder.mkdir()
    (folder / "x").write_text("x")
    with pytest.raises(StoreError, match="empty"):
        write(stored, plan(stored, outside.study_instance_uid, HOSPITAL), folder)


def _iod_errors(path: Path) -> list[str]:
    out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, errors="replace")
    lines = (out.stdout + out.stderr).splitlines()
    return sorted(re.sub(r"[0-9]+(\.[0-9]+)+", "UID", x) for x in lines if x.startswith("Error"))


def test_copies_add_no_iod_error(stored: Store, outside: peers.StudyFiles, tmp_path: Path) -> None:
    """dciodvfy finds in each copy no error it did not find in its original."""
    require_tool("dciodvfy")
    originals = study_instance_paths(stored, outside.study_instance_uid)
    rec = plan(stored, outside.study_instance_uid, HOSPITAL, new_uids=True)
    report = write(stored, rec, tmp_path / "staging")
    for original, copy in zip(originals, report.written, strict=True):
        assert set(_iod_errors(copy)) <= set(_iod_errors(original)), copy
