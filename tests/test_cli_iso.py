"""``lightbox ls|import`` on ISO 9660 images (issue 13): real subprocesses, real images from
``lightbox burn --iso``, hostile images patched byte by byte (tests/media/test_disc_image.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.filebase import DicomBytesIO

from tests.cli import lightbox
from tests.media.test_disc_image import files_of, hostile_iso
from viewer.media.disc_image import open_image

SOURCES = [Path(str(get_testdata_file(n))) for n in ("CT_small.dcm", "MR_small.dcm")]


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same studies burned as a folder and as an ISO image (two runs of ``burn``)."""
    base = tmp_path_factory.mktemp("twins")
    source = base / "source"
    source.mkdir()
    for path in SOURCES:
        (source / path.name).write_bytes(path.read_bytes())
    folder, image = base / "FOLDER", base / "disc.iso"
    for target in (["--to", str(folder)], ["--iso", str(image)]):
        done = lightbox("burn", "--from", str(source), *target, home=base / "home")
        assert done.returncode == 0, done.stderr
    return folder, image


def test_ls_json_of_a_burned_image_equals_its_folder_twin(twins: tuple[Path, Path]) -> None:
    folder, image = twins
    for extra in ([], ["--check"]):
        of_folder = lightbox("ls", "--json", *extra, str(folder))
        of_image = lightbox("ls", "--json", *extra, str(image))
        assert of_folder.returncode == of_image.returncode == 0, of_image.stderr
        assert of_image.stdout.replace(f"{image}!", "ROOT") == of_folder.stdout.replace(
            str(folder), "ROOT"
        )
        assert json.loads(of_image.stdout)["patients"]


def test_the_image_holds_the_folders_files_byte_for_byte(twins: tuple[Path, Path]) -> None:
    """Two runs of burn differ only where a burn must: the DICOMDIR's own SOP Instance UID
    (new for every file-set) and so its line in SHA256.TXT; the File-set ID is per minute."""
    folder, image = twins
    expected = files_of(folder)
    with open_image(image) as opened:
        got = files_of(opened.root)
    assert sorted(got) == sorted(expected)
    ours = pydicom.dcmread(folder / "DICOMDIR")
    theirs = pydicom.dcmread(DicomBytesIO(got["DICOMDIR"]))
    same_minute = ours.FileSetID.encode()
    for name in expected:
        if name not in ("DICOMDIR", "SHA256.TXT"):
            data = got[name].replace(theirs.FileSetID.encode(), same_minute)
            assert data == expected[name], name
    listed = [line.split("  ")[1] for line in expected["SHA256.TXT"].decode().splitlines()]
    assert listed == [line.split("  ")[1] for line in got["SHA256.TXT"].decode().splitlines()]
    # The DICOMDIR's own UID is new per burn and its length (padded to even) shifts every
    # record by the same number of bytes: the offsets must agree once that shift is taken off.
    first = "OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity"
    shift = theirs[first].value - ours[first].value
    for ds in (ours, theirs):
        del ds.file_meta.MediaStorageSOPInstanceUID
        ds.FileSetID = "SAME"
    offsets = (0x00041400, 0x00041420)
    for mine, other in zip(
        ours.DirectoryRecordSequence, theirs.DirectoryRecordSequence, strict=True
    ):
        for tag in offsets:
            if mine[tag].value:
                assert other[tag].value == mine[tag].value + shift
            other[tag].value = mine[tag].value
    assert ours.DirectoryRecordSequence == theirs.DirectoryRecordSequence


def test_import_of_an_image_then_of_its_twin_is_already_present(
    twins: tuple[Path, Path], tmp_path: Path
) -> None:
    folder, image = twins
    first = lightbox("import", str(image), home=tmp_path / "home")
    assert first.returncode == 0, first.stderr
    assert "imported: 2" in first.stdout
    again = lightbox("import", str(folder), str(image), home=tmp_path / "home")
    assert again.returncode == 0, again.stderr
    assert "imported: 0" in again.stdout and "already present: 4" in again.stdout


def test_a_damaged_image_is_listed_with_its_problems_named_in_it(tmp_path: Path) -> None:
    image = hostile_iso(
        tmp_path / "hostile.iso",
        rename={b"AB;1": b"..;1", b"CDEF;1": b"C/EF;1"},
        past_end=b"BIG;1",
        depth=40,
    )
    listed = lightbox("ls", "--json", str(image))
    assert listed.returncode == 1, listed.stderr
    assert "Traceback" not in listed.stderr
    data = json.loads(listed.stdout)
    assert (
        sum(se["instances"] for p in data["patients"] for st in p["studies"] for se in st["series"])
        == 1
    )
    said = {p["path"]: p["problem"] for p in data["problems"]}
    assert said[f"{image}!/..;1"] == "name '..' would leave its folder"
    assert said[f"{image}!/C/EF;1"] == "name holds a path separator"
    assert "runs past the end of the image" in said[f"{image}!/BIG"]
    assert any("more than 32 folder levels" in p for p in said.values())
    text = lightbox("ls", str(image))
    assert text.returncode == 1 and f"{image}!/C/EF;1: name holds a path separator" in text.stdout
    imported = lightbox("import", str(image), home=tmp_path / "home")
    assert imported.returncode == 1 and "Traceback" not in imported.stderr
    assert "imported: 1" in imported.stdout
    assert f"{image}!/..;1" in imported.stdout


def test_an_unreadable_image_is_refused_with_exit_3(tmp_path: Path) -> None:
    broken = tmp_path / "broken.iso"
    broken.write_bytes(bytes(32768) + b"\x01CD001\x01" + bytes(8000))
    for command in (["ls"], ["ls", "--json"], ["import"]):
        done = lightbox(*command, str(broken), home=tmp_path / "home")
        assert done.returncode == 3, (command, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        assert done.stderr.startswith(f"lightbox: {broken}: not a readable ISO 9660 image")


def test_ctrl_c_while_an_image_is_unpacked_imports_nothing_and_exits_1(
    twins: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real SIGINT to this process as the first file of the image is copied (the command's
    own handler turns it into a cancel): done with a problem said, not "could not do it"."""
    import os
    import signal

    from viewer import cli
    from viewer.store import Store, list_studies

    _folder, image = twins
    sent: list[int] = []

    def ctrl_c(self: object, done: int, total: int) -> None:
        if not sent:
            sent.append(done)
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(cli._Progress, "__call__", ctrl_c)
    code = cli.main(["import", str(image)])
    assert code == 1 and sent
    assert "cancelled: nothing was imported" in capsys.readouterr().err
    with Store.open() as store:
        assert list_studies(store) == []
