"""Symbolic links on untrusted media (issue 9): a link leading out of the media is never followed
by ``ls`` (scan + health), ``import``, ``verify`` or ``burn --from``; it is one problem line and
the exit code is 1. Links staying inside follow :mod:`viewer.media.links`: a folder walk never
goes through one (no loops, each file read once), a DICOMDIR record may name one.

Real files, real links, the real command line (``python -m viewer``) in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.media.test_dicomdir import build_dicomdir, simple_media
from tests.store.dicomfiles import make_dataset, write
from viewer.media import links
from viewer.media.scan import scan
from viewer.model import Problem

pytestmark = pytest.mark.skipif(not hasattr(os, "symlink"), reason="symbolic links")

ROOT = Path(__file__).resolve().parents[2]
LEAVES = "symbolic link leading outside the media: not followed"
OUTSIDE_ID = "OUTSIDE9"


def lightbox(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "viewer", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def patient_ids(data: dict[str, Any]) -> set[str]:
    return {p["patient_id"] for p in data["patients"]}


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """Another patient's files elsewhere on this computer (what a hostile disc points at)."""
    folder = tmp_path / "elsewhere"
    write(
        folder / "secret.dcm", make_dataset(9, 1, 1, patient="SECRET^OTHER", patient_id=OUTSIDE_ID)
    )
    write(folder / "dir" / "s2.dcm", make_dataset(9, 2, 1, patient_id=OUTSIDE_ID))
    return folder


@pytest.fixture
def plain(tmp_path: Path, outside: Path) -> Path:
    """A folder (no DICOMDIR): one good file, a link to a file outside, a link to a folder
    outside."""
    media = tmp_path / "media"
    write(media / "good.dcm", make_dataset(1, 1, 1))
    os.symlink(outside / "secret.dcm", media / "link.dcm")
    os.symlink(outside / "dir", media / "linkdir")
    return media


@pytest.fixture
def with_dicomdir(tmp_path: Path, outside: Path) -> Path:
    """A DICOMDIR whose second record's Referenced File ID names a link leading outside."""
    media = tmp_path / "disc"
    recs = simple_media(media, ["DICOM\\IM1", "DICOM\\LINK"], on_disc=["DICOM/IM1", ""])
    os.symlink(outside / "secret.dcm", media / "DICOM" / "LINK")
    build_dicomdir(media / "DICOMDIR", recs)
    return media


def leaves(problems: list[dict[str, str]]) -> list[str]:
    return sorted(p["path"] for p in problems if p["problem"] == LEAVES)


# -- ls ------------------------------------------------------------------------------------------


def test_ls_plain_folder_does_not_list_the_outside_patient(plain: Path) -> None:
    result = lightbox("ls", plain, "--json")
    assert result.returncode == 1, result.stderr
    data = json.loads(result.stdout)
    assert OUTSIDE_ID not in patient_ids(data)
    assert leaves(data["problems"]) == [str(plain / "link.dcm"), str(plain / "linkdir")]
    text = lightbox("ls", plain)
    assert text.returncode == 1
    assert "SECRET" not in text.stdout
    for name in ("link.dcm", "linkdir"):
        lines = [line for line in text.stdout.splitlines() if name in line]
        assert lines == [f"  {plain / name}: {LEAVES}"]  # listed once


@pytest.mark.parametrize("target", ["folder", "DICOMDIR"])
def test_ls_dicomdir_record_naming_a_link_out(with_dicomdir: Path, target: str) -> None:
    path = with_dicomdir if target == "folder" else with_dicomdir / "DICOMDIR"
    result = lightbox("ls", path, "--json")
    assert result.returncode == 1, result.stderr
    data = json.loads(result.stdout)
    assert OUTSIDE_ID not in patient_ids(data)
    link = str(with_dicomdir / "DICOM" / "LINK")
    assert leaves(data["problems"]) == [link]
    # The link is named once, and nothing else about it ("not referenced", a second refusal).
    assert [p for p in data["problems"] if "LINK" in p["path"] + p["problem"]] == [
        {"path": link, "problem": LEAVES, "kind": "other"}
    ]


# -- import --------------------------------------------------------------------------------------


def test_import_plain_folder_does_not_store_the_outside_patient(plain: Path) -> None:
    result = lightbox("import", plain)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "imported: 1" in result.stdout
    for name in ("link.dcm", "linkdir"):
        assert f"  {plain / name}: {LEAVES}" in result.stdout.splitlines()
    listing = json.loads(lightbox("store", "ls", "--json").stdout)
    assert OUTSIDE_ID not in patient_ids(listing)
    assert patient_ids(listing) == {"PID001"}


@pytest.mark.parametrize("target", ["folder", "DICOMDIR"])
def test_import_dicomdir_record_naming_a_link_out(with_dicomdir: Path, target: str) -> None:
    path = with_dicomdir if target == "folder" else with_dicomdir / "DICOMDIR"
    result = lightbox("import", path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"  {with_dicomdir / 'DICOM' / 'LINK'}: {LEAVES}" in result.stdout.splitlines()
    listing = json.loads(lightbox("store", "ls", "--json").stdout)
    assert OUTSIDE_ID not in patient_ids(listing)
    assert patient_ids(listing) == {"P1"}


# -- burn --from and verify ----------------------------------------------------------------------


def test_burn_from_does_not_write_the_outside_patient(plain: Path, tmp_path: Path) -> None:
    out = tmp_path / "burnt"
    result = lightbox("burn", "--from", plain, "--to", out)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"lightbox: {plain / 'link.dcm'}: {LEAVES}" in result.stderr.splitlines()
    written = scan(out)
    assert written.instances, result.stderr
    assert {p.patient_id for p in written.patients} == {"PID001"}


def test_verify_names_a_link_out_and_reads_nothing_through_it(plain: Path) -> None:
    result = lightbox("verify", plain)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert f"  [error 2] link.dcm: {LEAVES}" in lines
    assert f"  [error 2] linkdir: {LEAVES}" in lines
    assert "2 files read" not in result.stdout  # only good.dcm was read
    assert "1 files read" in result.stdout


# -- links staying inside the media ---------------------------------------------------------------


def test_links_inside_the_media_are_not_walked_files_read_once(tmp_path: Path) -> None:
    media = tmp_path / "media"
    write(media / "a" / "one.dcm", make_dataset(1, 1, 1))
    os.symlink(media / "a" / "one.dcm", media / "alias.dcm")  # same file again
    os.symlink(media, media / "a" / "loop")  # a loop
    os.symlink(media / "a", media / "b")  # the same folder again
    os.symlink(media / "nothing.dcm", media / "dangling.dcm")
    result = scan(media)
    assert [i.path for i in result.instances] == [media / "a" / "one.dcm"]
    assert result.problems == [Problem(str(media / "dangling.dcm"), links.DANGLING)]


def test_dicomdir_record_may_name_a_link_inside_the_media(tmp_path: Path) -> None:
    media = tmp_path / "media"
    recs = simple_media(media, ["DICOM\\IM1", "DICOM\\ALIAS"], on_disc=["DICOM/IM1", "DICOM/REAL"])
    os.symlink(media / "DICOM" / "REAL", media / "DICOM" / "ALIAS")
    build_dicomdir(media / "DICOMDIR", recs)
    result = scan(media)
    assert sorted(i.path.name for i in result.instances) == ["ALIAS", "IM1"]
    # REAL is what ALIAS names: not listed again as a file no record references.
    assert result.problems == []


def test_a_dicomdir_that_is_a_link_out_is_not_read(tmp_path: Path, outside: Path) -> None:
    elsewhere = tmp_path / "other-disc"
    recs = simple_media(elsewhere, ["DICOM\\IM1"])
    build_dicomdir(elsewhere / "DICOMDIR", recs)
    media = tmp_path / "media"
    write(media / "good.dcm", make_dataset(1, 1, 1))
    os.symlink(elsewhere / "DICOMDIR", media / "DICOMDIR")
    result = scan(media)
    assert [i.path.name for i in result.instances] == ["good.dcm"]
    assert result.problems == [Problem(str(media / "DICOMDIR"), LEAVES)]


def test_a_fifo_on_the_media_is_a_problem_not_a_hang(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    media = tmp_path / "media"
    write(media / "good.dcm", make_dataset(1, 1, 1))
    os.mkfifo(media / "fifo.dcm")  # opening it to read blocks until someone writes
    result = lightbox("ls", media, "--json")
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert {"path": str(media / "fifo.dcm"), "problem": "not a regular file", "kind": "other"} in (
        data["problems"]
    )
    assert patient_ids(data) == {"PID001"}


def test_resolve_within(tmp_path: Path) -> None:
    media = tmp_path / "media"
    (media / "a").mkdir(parents=True)
    (media / "a" / "f").write_bytes(b"x")
    os.symlink(media / "a" / "f", media / "in")
    os.symlink(tmp_path, media / "up")
    os.symlink("../../media-evil", media / "a" / "sneaky")  # a sibling with the root's prefix
    (tmp_path / "media-evil").mkdir()
    real = os.path.realpath(media / "a" / "f")
    assert links.resolve_within(media / "in", media) == real
    assert links.resolve_within(media / "up", media) is None
    assert links.resolve_within(media / "up" / "media" / "in", media) == real
    assert links.resolve_within(media / "a" / "sneaky", media) is None
    # The root itself may be reached through a link: what counts is where things really are.
    os.symlink(media, tmp_path / "mount")
    assert links.resolve_within(tmp_path / "mount" / "in", tmp_path / "mount") == real
