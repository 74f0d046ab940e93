"""De-identification (issue 5 §1, PS3.15 Annex E) checked on written media: no original name,
ID, birth date, date or UID anywhere in the bytes of any file (DICOM files, DICOMDIR, README.TXT,
INDEX.HTM, IHE_PDI/), sequences included; each option keeps exactly what it retains; UIDs are
remapped consistently across files and references; the media still pass the validators."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import subprocess
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from tests.conftest import require_tool
from tests.media.test_writer import run_validators
from viewer.media import plan, writer
from viewer.media.deidentify import (
    TABLE,
    Deidentifier,
    DeidentifyOptions,
    original_values,
)
from viewer.media.verify import verify

TEST_FILES = Path(get_testdata_file("CT_small.dcm")).parent

# Values planted in the test files, by the option of the profile that retains them.
CHARACTERISTICS = {"PatientAge": "043Y", "PatientWeight": "71.25", "PatientSize": "1.685"}
DEVICE = {"StationName": "SECRETSTATION", "DeviceSerialNumber": "SN-998877"}
IDENTITY = {
    "OtherPatientIDs": "OTHERID77",
    "PatientAddress": "12 Rue Secrete",
    "InstitutionName": "Hopital Secret",
    "AccessionNumber": "ACC123456",
    "PatientComments": "lives with SECRETRELATIVE",
}
PRIVATE_VALUE = "PRIVATE-SECRET-VALUE"


def _read(path: Path) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path)


@pytest.fixture
def sources(tmp_path: Path) -> list[Path]:
    """CT_small, a second CT of the same study referencing it (in sequences), MR_small,
    rtplan (references in sequences, implicit VR) and test-SR (names, dates and UIDs in the
    Content Sequence), with birth dates, characteristics, device identity and private data."""
    folder = tmp_path / "src"
    folder.mkdir()
    out: list[Path] = []
    births = {
        "CT_small.dcm": "19610412",
        "MR_small.dcm": "19700103",
        "rtplan.dcm": "19550921",
        "test-SR.dcm": "19881130",
    }
    for name, birth in births.items():
        ds = _read(TEST_FILES / name)
        ds.PatientBirthDate = birth
        if name == "CT_small.dcm":
            for keyword, value in {**CHARACTERISTICS, **DEVICE, **IDENTITY}.items():
                setattr(ds, keyword, value)
            ds.PatientSex = "F"
            block = ds.private_block(0x0009, "LIGHTBOX TEST", create=True)
            block.add_new(0x01, "LO", PRIVATE_VALUE)
        path = folder / name
        ds.save_as(path)
        out.append(path)
        if name == "CT_small.dcm":
            second = _read(path)
            original_sop = second.SOPInstanceUID
            second.SOPInstanceUID = second.SOPInstanceUID + ".2"
            second.InstanceNumber = 2
            ref = Dataset()
            ref.ReferencedSOPClassUID = second.SOPClassUID
            ref.ReferencedSOPInstanceUID = original_sop
            second.ReferencedImageSequence = Sequence([ref])
            derivation = Dataset()
            derivation.ReferencedSOPClassUID = second.SOPClassUID
            derivation.ReferencedSOPInstanceUID = original_sop
            second.SourceImageSequence = Sequence([derivation])
            second_path = folder / "CT_second.dcm"
            second.save_as(second_path)
            out.append(second_path)
    return out


def _media_bytes(root: Path) -> bytes:
    """Every byte of every file of the media: DICOM files, DICOMDIR, README, web pages."""
    names = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert {"DICOMDIR", "README.TXT", "INDEX.HTM"} <= names
    assert any(n.startswith("IHE_PDI/") for n in names)
    return b"\n".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def _encodings(value: str) -> list[bytes]:
    out = {value.encode("utf-8")}
    with contextlib.suppress(UnicodeEncodeError):
        out.add(value.encode("latin-1"))
    return sorted(out)


def _sensitive(paths: list[Path]) -> dict[str, set[str]]:
    """What the originals hold, by kind. Values shorter than 4 characters (Study ID ``1``)
    would match anywhere in pixel data and identify no one: left out. Names are searched whole
    and by component."""
    found = original_values(paths)
    names = set(found["names"])
    for name in list(names):
        names.update(part for part in name.replace("=", "^").split("^"))
    found["names"] = names
    found["identity"] = set(IDENTITY.values()) | {PRIVATE_VALUE}
    found["characteristics"] = set(CHARACTERISTICS.values())
    found["device"] = set(DEVICE.values())
    return {k: {v.strip() for v in vs if len(v.strip()) >= 4} for k, vs in found.items()}


def _present(blob: bytes, values: set[str]) -> set[str]:
    return {v for v in values if any(e in blob for e in _encodings(v))}


def _written(root: Path) -> list[pydicom.Dataset]:
    return [_read(p) for p in sorted((root / "DICOM").rglob("*")) if p.is_file()]


def _codes(ds: pydicom.Dataset) -> list[str]:
    return [item.CodeValue for item in ds.DeidentificationMethodCodeSequence]


def test_basic_profile_leaves_no_original_value_anywhere(sources: list[Path], tmp_path: Path):
    root = tmp_path / "OUT"
    deidentifier = Deidentifier()
    report = writer.write_media(sources, root, label="TEACHING SET", deidentify=deidentifier)
    assert report.ok, report.summary()
    assert not report.skipped
    sensitive = _sensitive(sources)
    assert sensitive["birth_dates"] and sensitive["dates"] and sensitive["uids"]
    assert "Riesmeier" in sensitive["names"]  # a name inside the SR's Content Sequence
    blob = _media_bytes(root)
    for kind, values in sensitive.items():
        assert not _present(blob, values), (kind, _present(blob, values))
    datasets = _written(root)
    assert len(datasets) == len(sources)
    for ds in datasets:
        assert ds.PatientIdentityRemoved == "YES"
        assert _codes(ds) == ["113100"]
        assert ds.LongitudinalTemporalInformationModified == "REMOVED"
        assert ds.PatientID.startswith("ANON") and ds.PatientName == ds.PatientID
        assert ds.StudyDate == "19000101" and ds.PatientBirthDate == ""
        assert "Basic Application Confidentiality Profile" in str(ds.DeidentificationMethod)
        assert not any(elem.tag.is_private for elem in ds.iterall())
        assert "PatientAge" not in ds  # X
        assert ds.get("StationName", "ANONYMIZED") == "ANONYMIZED"  # X/Z/D: a dummy
        assert "OtherPatientIDs" not in ds and "PatientAddress" not in ds
        assert ds.get("InstitutionName", "ANONYMIZED") == "ANONYMIZED"
    sr = next(ds for ds in datasets if ds.Modality == "SR")
    texts = [str(e.value) for e in sr.iterall() if e.keyword == "TextValue"]
    assert texts and all(t == "ANONYMIZED" for t in texts)
    readme = (root / "README.TXT").read_text()
    assert "DE-IDENTIFIED" in readme and "TEACHING SET" in readme
    assert "de-identified: Basic Application Confidentiality Profile" in report.summary()
    run_validators(root, "cd", tmp_path)


def test_one_pseudonym_per_patient_and_uids_remapped_consistently(
    sources: list[Path], tmp_path: Path
):
    root = tmp_path / "OUT"
    deidentifier = Deidentifier()
    writer.write_media(sources, root, deidentify=deidentifier)
    originals = {p.name: _read(p) for p in sources}
    by_new_sop = {ds.SOPInstanceUID: ds for ds in _written(root)}
    uid_map = deidentifier.uid_map
    ct, second = originals["CT_small.dcm"], originals["CT_second.dcm"]
    new_ct = by_new_sop[uid_map[ct.SOPInstanceUID]]
    new_second = by_new_sop[uid_map[second.SOPInstanceUID]]
    assert new_ct.SOPInstanceUID.startswith("2.25.") and new_ct.SOPInstanceUID != ct.SOPInstanceUID
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        assert (
            getattr(new_ct, keyword) == getattr(new_second, keyword) == uid_map[ct[keyword].value]
        )
    # References in sequences follow the instance they point to.
    assert new_second.ReferencedImageSequence[0].ReferencedSOPInstanceUID == new_ct.SOPInstanceUID
    assert new_second.SourceImageSequence[0].ReferencedSOPInstanceUID == new_ct.SOPInstanceUID
    assert new_second.ReferencedImageSequence[0].ReferencedSOPClassUID == ct.SOPClassUID
    assert new_ct.PatientID == new_second.PatientID  # same original patient, same pseudonym
    assert len({ds.PatientID for ds in by_new_sop.values()}) == 4  # four original patients
    # The SR's references inside its sequences point to its new study and series.
    sr_orig = originals["test-SR.dcm"]
    sr = by_new_sop[uid_map[sr_orig.SOPInstanceUID]]
    evidence = sr.PredecessorDocumentsSequence[0]
    assert evidence.StudyInstanceUID == uid_map[str(sr_orig.StudyInstanceUID)]
    # The DICOMDIR indexes the new UIDs only.
    dicomdir = _read(root / "DICOMDIR")
    studies = {
        r.StudyInstanceUID
        for r in dicomdir.DirectoryRecordSequence
        if r.DirectoryRecordType == "STUDY"
    }
    assert studies == {ds.StudyInstanceUID for ds in by_new_sop.values()}
    assert not studies & set(uid_map)
    # The file meta follows the dataset.
    for path in (root / "DICOM").rglob("*"):
        if path.is_file():
            ds = _read(path)
            assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID


OPTION_CASES = {
    "keep_dates": (DeidentifyOptions(keep_dates=True), {"dates"}, "113106", "UNMODIFIED"),
    "shift_dates": (DeidentifyOptions(shift_dates=-400), set(), "113107", "MODIFIED"),
    "keep_characteristics": (
        DeidentifyOptions(keep_characteristics=True),
        {"characteristics"},
        "113108",
        "REMOVED",
    ),
    "keep_device": (DeidentifyOptions(keep_device=True), {"device"}, "113109", "REMOVED"),
    "keep_uids": (DeidentifyOptions(keep_uids=True), {"uids"}, "113110", "REMOVED"),
}


@pytest.mark.parametrize("case", list(OPTION_CASES))
def test_each_option_keeps_exactly_what_it_retains(
    case: str, sources: list[Path], tmp_path: Path
) -> None:
    options, kept, code, temporal = OPTION_CASES[case]
    root = tmp_path / "OUT"
    report = writer.write_media(sources, root, deidentify=Deidentifier(options))
    assert report.ok, report.summary()
    blob = _media_bytes(root)
    sensitive = _sensitive(sources)
    for kind in kept:
        assert _present(blob, sensitive[kind]) == sensitive[kind], kind
    # Kept values blanked before the search for the rest: a retained UID such as
    # 1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322 holds a date that is the UID's own.
    for value in sorted(set().union(*(sensitive[k] for k in kept)), key=len, reverse=True):
        for encoded in _encodings(value):
            blob = blob.replace(encoded, b"")
    for kind, values in sensitive.items():
        if kind not in kept:
            assert not _present(blob, values), (kind, _present(blob, values))
    datasets = _written(root)
    for ds in datasets:
        assert _codes(ds) == ["113100", code]
        assert ds.LongitudinalTemporalInformationModified == temporal
        assert ds.PatientBirthDate == ""  # no option retains the birth date
    ct = next(ds for ds in datasets if ds.Modality == "CT" and ds.InstanceNumber != 2)
    original = _read(sources[0])
    if case == "keep_characteristics":
        assert (ct.PatientAge, ct.PatientSex) == ("043Y", "F")
        assert float(ct.PatientWeight) == 71.25 and float(ct.PatientSize) == 1.685
    else:
        assert "PatientAge" not in ct and ct.PatientSex == ""
    if case == "keep_device":
        assert (ct.StationName, ct.DeviceSerialNumber) == ("SECRETSTATION", "SN-998877")
    if case == "keep_uids":
        assert ct.StudyInstanceUID == original.StudyInstanceUID
        assert ct.SOPInstanceUID == original.SOPInstanceUID
    if case == "keep_dates":
        assert (ct.StudyDate, ct.ContentDate) == (original.StudyDate, original.ContentDate)
        assert ct.StudyTime == original.StudyTime
    if case == "shift_dates":

        def day(value: str) -> dt.date:
            return dt.datetime.strptime(value, "%Y%m%d").date()

        assert day(ct.StudyDate) == day(original.StudyDate) - dt.timedelta(days=400)
        assert day(ct.AcquisitionDate) - day(ct.StudyDate) == day(original.AcquisitionDate) - day(
            original.StudyDate
        )
        sr = next(ds for ds in datasets if ds.Modality == "SR")
        observed = [str(e.value) for e in sr.iterall() if e.keyword == "ObservationDateTime"]
        moved = (dt.date(2001, 2, 13) - dt.timedelta(days=400)).strftime("%Y%m%d")
        assert observed and all(v == moved + "184746" for v in observed)  # 20010213184746
        assert ct.StudyTime == original.StudyTime  # whole days do not move a time


def test_pixels_that_may_carry_identity_are_warned_about(tmp_path: Path) -> None:
    burned = _read(TEST_FILES / "MR_small.dcm")
    burned.BurnedInAnnotation = "YES"
    burned_path = tmp_path / "burned.dcm"
    burned.save_as(burned_path)
    files = [burned_path, TEST_FILES / "SC_rgb_rle.dcm", TEST_FILES / "CT_small.dcm"]
    report = writer.write_media(files, tmp_path / "OUT", deidentify=Deidentifier())
    assert report.ok
    assert any(str(burned_path) in w and "Burned In Annotation" in w for w in report.warnings)
    assert any("SC_rgb_rle.dcm" in w and "secondary capture" in w for w in report.warnings)
    assert not any("CT_small" in w for w in report.warnings)
    assert "warning:" in report.summary()


def test_overlays_curves_private_data_and_group_lengths_are_removed() -> None:
    ds = _read(Path(TEST_FILES / "examples_overlay.dcm"))
    assert any(e.tag.group == 0x6000 for e in ds) and any(e.tag.is_private for e in ds)
    ds.add_new(0x50000010, "US", 1)  # a retired curve
    ds.add_new(0x00080000, "UL", 1234)  # a retired group length, wrong after removals
    Deidentifier().deidentify(ds)
    assert not any(e.tag.group in (0x5000, 0x6000) or e.tag.is_private for e in ds.iterall())
    assert 0x00080000 not in ds


def test_options_that_exclude_each_other_are_refused() -> None:
    with pytest.raises(ValueError, match="keep_dates and shift_dates"):
        DeidentifyOptions(keep_dates=True, shift_dates=10)


def test_the_table_holds_the_standard_keys() -> None:
    """Spot checks against PS3.15 Table E.1-1 as published."""
    assert TABLE[0x00100010].action == "Z"  # Patient's Name
    assert TABLE[0x00100030].action == "Z" and not TABLE[0x00100030].retain  # Birth Date
    assert TABLE[0x00080018].action == "U" and "U" in TABLE[0x00080018].retain
    assert TABLE[0x00080020].action == "Z" and "T" in TABLE[0x00080020].retain
    assert TABLE[0x00081010].action == "D" and "D" in TABLE[0x00081010].retain  # X/Z/D
    assert TABLE[0x00101010].action == "X" and "P" in TABLE[0x00101010].retain
    assert TABLE[0x00081140].action == "U*"
    assert len(TABLE) > 350


def test_unreadable_files_are_listed_with_their_name(tmp_path: Path) -> None:
    bad = tmp_path / "notdicom.dcm"
    bad.write_bytes(b"this is not DICOM at all")
    report = writer.write_media(
        [bad, TEST_FILES / "CT_small.dcm"], tmp_path / "OUT", deidentify=Deidentifier()
    )
    assert report.ok and len(report.discs[0].files) == 1
    assert any(str(bad) in s for s in report.skipped)
    assert verify(tmp_path / "OUT").ok


def test_cancel_while_de_identifying_writes_nothing(tmp_path: Path) -> None:
    import threading

    cancel = threading.Event()
    cancel.set()
    with pytest.raises(plan.Cancelled):
        writer.write_media(
            [TEST_FILES / "CT_small.dcm"],
            tmp_path / "OUT",
            deidentify=Deidentifier(),
            cancel=cancel,
        )
    assert not (tmp_path / "OUT").exists() or not any((tmp_path / "OUT").iterdir())


@pytest.mark.parametrize("target", ["iso", "disc"])
def test_iso_and_disc_targets_carry_the_de_identified_media(
    target: str, sources: list[Path], tmp_path: Path
) -> None:
    """The ``deidentify`` hook passes through write_iso and burn (the disc through xorriso's
    ``stdio:`` pseudo-drive on a file: no real drive here)."""
    require_tool("xorriso")
    from viewer.media import iso

    image = tmp_path / "DEID.iso"
    if target == "iso":
        report = iso.write_iso(sources, image, deidentify=Deidentifier(), fileset_id="DEID")
    else:
        report = iso.burn(sources, f"stdio:{image}", deidentify=Deidentifier(), web=False)
    assert report.ok, report.summary()
    assert report.deidentification
    blob = image.read_bytes()
    sensitive = _sensitive(sources)
    assert b"ANON" in blob and b"DICOMDIR" in blob
    for kind in ("names", "ids", "birth_dates", "dates", "uids", "identity"):
        assert not _present(blob, sensitive[kind]), (kind, _present(blob, sensitive[kind]))


def _iod_errors(root: Path) -> list[str]:
    """dciodvfy's Error lines for every file of the media, UIDs masked (they differ)."""
    errors = []
    for path in sorted((root / "DICOM").rglob("*")):
        out = subprocess.run(
            ["dciodvfy", str(path)], capture_output=True, text=True, errors="replace"
        )
        for line in (out.stdout + out.stderr).splitlines():
            if line.startswith("Error"):
                errors.append(re.sub(r"[0-9]+(\.[0-9]+)+", "UID", line))
    return sorted(errors)


def test_de_identification_adds_no_iod_error(sources: list[Path], tmp_path: Path) -> None:
    """Removing and emptying attributes must not break the IODs: dciodvfy finds in every
    de-identified file no error it did not find in the same file written as it was."""
    require_tool("dciodvfy")
    files = [*sources, TEST_FILES / "SC_rgb_rle.dcm", TEST_FILES / "JPEG2000.dcm"]
    writer.write_media(files, tmp_path / "ORIG")
    baseline = _iod_errors(tmp_path / "ORIG")
    for name, options in {
        "BASIC": DeidentifyOptions(),
        "SHIFT": DeidentifyOptions(shift_dates=-30, keep_device=True),
        "KEEP": DeidentifyOptions(keep_dates=True, keep_characteristics=True, keep_uids=True),
    }.items():
        writer.write_media(files, tmp_path / name, deidentify=Deidentifier(options))
        added = set(_iod_errors(tmp_path / name)) - set(baseline)
        assert not added, (name, added)
