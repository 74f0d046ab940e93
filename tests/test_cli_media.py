"""``lightbox ls|import|store|burn|verify`` (issues 3 and 5, command line): real subprocesses,
each test with its own $LIGHTBOX_HOME, outputs checked against pydicom's own reading."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.data import get_testdata_file

from tests.conftest import copy_pydicom_dicomdir_media

ROOT = Path(__file__).resolve().parent.parent


def lightbox(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "viewer", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def count(data: dict[str, Any]) -> int:
    return sum(
        se["instances"] for p in data["patients"] for st in p["studies"] for se in st["series"]
    )


@pytest.fixture
def media(tmp_path: Path) -> Path:
    """pydicom's DICOMDIR media (3 patients, 31 instances), copied so tests may damage it."""
    return copy_pydicom_dicomdir_media(tmp_path / "media")


def test_ls_json_matches_the_files(media: Path) -> None:
    result = lightbox("ls", str(media), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["problems"] == []
    files = [p for p in media.rglob("*") if p.is_file() and p.name != "DICOMDIR"]
    assert count(data) == len(files)
    ids = {p["patient_id"] for p in data["patients"]}
    expected_ids = {str(pydicom.dcmread(f, stop_before_pixels=True).PatientID) for f in files}
    assert ids == expected_ids
    for patient in data["patients"]:
        for study in patient["studies"]:
            assert study["study_date"] is None or len(study["study_date"]) == 8
            for series in study["series"]:
                assert isinstance(series["series_number"], int | None)


def test_ls_lists_a_missing_file_and_exits_1(media: Path) -> None:
    victim = next(p for p in (media / "77654033").rglob("*") if p.is_file())
    victim.unlink()
    result = lightbox("ls", str(media), "--json")
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert any(victim.name in pr["path"] and "missing" in pr["problem"] for pr in data["problems"])
    text = lightbox("ls", str(media))
    assert text.returncode == 1 and victim.name in text.stdout


def test_ls_says_each_fact_once(media: Path) -> None:
    """A missing file and an unreferenced one are two facts: two lines, though both the
    DICOMDIR reader and the health check find each (they used to print four)."""
    victim = next(p for p in (media / "77654033").rglob("*") if p.is_file())
    victim.unlink()
    extra = media / "98892001" / "EXTRA"
    shutil.copy(get_testdata_file("CT_small.dcm"), extra)
    data = json.loads(lightbox("ls", str(media), "--json", "--check").stdout)
    assert sorted((pr["path"], pr["kind"]) for pr in data["problems"]) == sorted(
        [(str(victim), "missing"), (str(extra), "unreferenced")]
    )
    text = lightbox("ls", str(media), "--check").stdout
    assert "2 problem(s):" in text
    assert text.count(str(victim)) == 1 and text.count(str(extra)) == 1


def test_ls_lists_from_the_dicomdir_alone_and_checks_files_on_request(media: Path) -> None:
    """The listing needs no file but the DICOMDIR (on a CD each open is a seek); a missing
    file is still seen (a directory lookup), a damaged one only with --check."""
    victim = next(p for p in (media / "98892001").rglob("*") if p.is_file())
    victim.write_bytes(b"\0" * 10)  # unreadable now, but present
    quick = lightbox("ls", str(media), "--json")
    assert quick.returncode == 0, quick.stderr
    assert count(json.loads(quick.stdout)) == 31  # as the DICOMDIR says, no file opened
    checked = lightbox("ls", str(media), "--json", "--check")
    assert checked.returncode == 1
    assert any(pr["path"] == str(victim) for pr in json.loads(checked.stdout)["problems"])


def test_ls_of_nothing_exits_3(tmp_path: Path) -> None:
    result = lightbox("ls", str(tmp_path / "nope"))
    assert result.returncode == 3 and "no such file or folder" in result.stderr


def test_import_store_ls_rm_check(media: Path) -> None:
    first = lightbox("import", str(media / "DICOMDIR"))
    assert first.returncode == 0, first.stderr + first.stdout
    assert "imported: 31" in first.stdout
    again = lightbox("import", str(media))
    assert "already present: 31" in again.stdout and "imported: 0" in again.stdout
    listed = json.loads(lightbox("store", "ls", "--json").stdout)
    assert count(listed) == 31 and listed["problems"] == []
    study = listed["patients"][0]["studies"][0]
    removed = lightbox("store", "rm", study["study_instance_uid"])
    assert removed.returncode == 0, removed.stderr
    after = json.loads(lightbox("store", "ls", "--json").stdout)
    assert count(after) == 31 - sum(se["instances"] for se in study["series"])
    checked = lightbox("store", "check")
    assert checked.returncode == 0 and "no problems" in checked.stdout
    unknown = lightbox("store", "rm", "1.2.3.4.5")
    assert unknown.returncode == 3


def test_import_reports_rejected_files(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    good = Path(str(get_testdata_file("CT_small.dcm")))
    shutil.copy(good, folder / "ct.dcm")
    data = good.read_bytes()
    (folder / "cut.dcm").write_bytes(data[: len(data) // 3])
    result = lightbox("import", str(folder))
    assert result.returncode == 1
    assert "imported: 1" in result.stdout and "rejected: 1" in result.stdout
    assert "cut.dcm" in result.stdout


def test_burn_from_a_folder_then_verify_catches_damage(media: Path, tmp_path: Path) -> None:
    out = tmp_path / "disc"
    burned = lightbox("burn", "--from", str(media), "--to", str(out), "--label", "TEST DISC")
    assert burned.returncode == 0, burned.stderr + burned.stdout
    assert (out / "DICOMDIR").is_file() and (out / "README.TXT").is_file()
    assert "TEST DISC" in (out / "README.TXT").read_text()
    ok = lightbox("verify", str(out), "--profile", "cd")
    assert ok.returncode == 0, ok.stdout
    written = json.loads(lightbox("ls", str(out), "--json").stdout)
    assert count(written) == 31
    victim = next(p for p in (out / "DICOM").rglob("*") if p.is_file())
    raw = bytearray(victim.read_bytes())
    raw[-1] ^= 0xFF
    victim.write_bytes(bytes(raw))
    damaged = lightbox("verify", str(out))
    assert damaged.returncode == 1
    assert victim.name in damaged.stdout


def test_burn_needs_a_selection(tmp_path: Path) -> None:
    result = lightbox("burn", "--to", str(tmp_path / "x"))
    assert result.returncode == 2 and "--study" in result.stderr


def test_burn_deidentified_leaves_no_name_id_or_uid(media: Path, tmp_path: Path) -> None:
    files = [p for p in media.rglob("*") if p.is_file() and p.name != "DICOMDIR"]
    originals = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    out = tmp_path / "anon"
    result = lightbox("burn", "--from", str(media), "--to", str(out), "--deidentify")
    assert result.returncode in (0, 1), result.stderr + result.stdout  # 1: warnings listed
    assert (out / "DICOMDIR").is_file()
    blob = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    for ds in originals:
        for value in (ds.PatientID, ds.SOPInstanceUID, ds.StudyInstanceUID):
            assert str(value).encode() not in blob, value
        family = str(ds.PatientName).split("^")[0]
        if len(family) > 3:
            assert family.encode() not in blob, family
    written = next(p for p in (out / "DICOM").rglob("*") if p.is_file())
    assert pydicom.dcmread(written, stop_before_pixels=True).PatientIdentityRemoved == "YES"


def test_deidentify_options_need_deidentify(media: Path, tmp_path: Path) -> None:
    result = lightbox("burn", "--from", str(media), "--to", str(tmp_path / "x"), "--keep-dates")
    assert result.returncode == 2 and "--deidentify" in result.stderr
    both = lightbox(
        "burn",
        "--from",
        str(media),
        "--to",
        str(tmp_path / "y"),
        "--deidentify",
        "--keep-dates",
        "--shift-dates",
        "5",
    )
    assert both.returncode == 2 and "not allowed with" in both.stderr
