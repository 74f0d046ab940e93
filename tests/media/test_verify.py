"""``lightbox verify``: good media pass; damaged copies are caught and the problem is named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from viewer.media import writer
from viewer.media.verify import MANIFEST, verify

TEST_FILES = Path(get_testdata_file("CT_small.dcm")).parent
FILES = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "SC_jpeg_no_color_transform.dcm"]


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("verify") / "GOOD"
    report = writer.write_media(
        [TEST_FILES / n for n in FILES], root, profile="dvd-jpeg", web=False
    )
    assert report.ok, report.summary()
    return root


def _copy(good: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "COPY"
    shutil.copytree(good, copy)
    return copy


def _first_image(root: Path) -> Path:
    return sorted(p for p in (root / "DICOM").rglob("*") if p.is_file())[0]


def _items(report) -> set[str]:
    return {f.item for f in report.errors}


def test_good_media_pass_and_fits_are_reported(good: Path) -> None:
    report = verify(good)
    assert report.ok, report.summary()
    # The JPEG baseline file was kept: DVD/USB-JPEG fit, STD-GEN-CD does not.
    assert report.fits == ["STD-GEN-DVD-JPEG", "STD-GEN-USB-JPEG"]
    assert verify(good, "dvd-jpeg").ok
    strict = verify(good, "cd")
    assert _items(strict) == {"7"} and "1.2.840.10008.1.2.4.50" in strict.summary()


def test_flipped_byte_is_caught(good: Path, tmp_path: Path) -> None:
    copy = _copy(good, tmp_path)
    victim = _first_image(copy)
    data = bytearray(victim.read_bytes())
    data[-10] ^= 0xFF  # in the pixel data: nothing structural changes
    victim.write_bytes(bytes(data))
    report = verify(copy)
    assert not report.ok
    assert [f.path for f in report.errors] == [victim.relative_to(copy).as_posix()]
    assert "checksum" in report.errors[0].message


def test_deleted_file_is_caught(good: Path, tmp_path: Path) -> None:
    copy = _copy(good, tmp_path)
    victim = _first_image(copy)
    victim.unlink()
    report = verify(copy)
    rel = victim.relative_to(copy).as_posix()
    assert any(f.item == "5" and f.path == rel and "missing" in f.message for f in report.errors)


def test_renamed_file_is_caught(good: Path, tmp_path: Path) -> None:
    copy = _copy(good, tmp_path)
    victim = _first_image(copy)
    renamed = victim.with_name("IMG99999")
    victim.rename(renamed)
    report = verify(copy)
    messages = {(f.path, f.item) for f in report.errors}
    assert (victim.relative_to(copy).as_posix(), "5") in messages
    assert (renamed.relative_to(copy).as_posix(), "5") in messages  # not referenced


def test_lower_case_copy_is_named(good: Path, tmp_path: Path) -> None:
    copy = _copy(good, tmp_path)
    victim = _first_image(copy)
    victim.rename(victim.with_name(victim.name.lower()))
    report = verify(copy)
    assert any("wrong case" in f.message for f in report.errors)
    assert "9" in _items(report)  # not a Level 1 name either


def test_autorun_readme_preamble_and_stray_files(good: Path, tmp_path: Path) -> None:
    copy = _copy(good, tmp_path)
    (copy / "AUTORUN.INF").write_text("[autorun]\nopen=viewer.exe\n")
    (copy / "README.TXT").unlink()
    victim = _first_image(copy)
    data = bytearray(victim.read_bytes())
    data[0:2] = b"MZ"
    victim.write_bytes(bytes(data))
    (copy / "DICOM" / "NOTES").write_text("not dicom")
    report = verify(copy)
    items = _items(report)
    assert {"autorun", "readme", "1", "10"} <= items
    assert any("CVE-2019-11687" in f.message for f in report.errors)


def test_implicit_or_broken_dicomdir_is_caught(good: Path, tmp_path: Path) -> None:
    copy = _copy(good, tmp_path)
    implicit = TEST_FILES / "dicomdirtests" / "DICOMDIR-implicit"
    shutil.copy(implicit, copy / "DICOMDIR")
    report = verify(copy)
    assert "3" in _items(report)
    (copy / "DICOMDIR").write_bytes(b"\x00" * 200)
    report = verify(copy)
    assert "3" in _items(report) and not report.ok


def test_dicomdir_offsets_are_checked(good: Path, tmp_path: Path) -> None:
    copy = _copy(good, tmp_path)
    data = bytearray((copy / "DICOMDIR").read_bytes())
    at = data.find(b"\x04\x00\x00\x12UL")  # (0004,1200) first root record offset
    data[at + 8 : at + 12] = (12345).to_bytes(4, "little")
    (copy / "DICOMDIR").write_bytes(bytes(data))
    (copy / MANIFEST).unlink()
    report = verify(copy)
    assert "6" in _items(report)


def test_missing_media_and_junk_are_reported_not_raised(tmp_path: Path) -> None:
    assert not verify(tmp_path / "nothing").ok
    junk = tmp_path / "junk.iso"
    junk.write_bytes(b"junk" * 100)
    report = verify(junk)
    assert not report.ok and "cannot be opened" in report.summary()


def test_large_files_are_hashed_in_chunks(good: Path, tmp_path: Path, monkeypatch) -> None:
    """Only a prefix of each file is held; a flipped byte past it is still caught."""
    import viewer.media.verify as verify_module

    monkeypatch.setattr(verify_module, "PREFIX", 4096)
    assert verify(good).ok
    copy = _copy(good, tmp_path)
    victim = max(
        (p for p in (copy / "DICOM").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size
    )
    assert victim.stat().st_size > 8192
    data = bytearray(victim.read_bytes())
    data[-5] ^= 0x01
    victim.write_bytes(bytes(data))
    assert [f.path for f in verify(copy).errors] == [victim.relative_to(copy).as_posix()]


def test_media_of_other_writers_are_reported_not_raised(tmp_path: Path) -> None:
    """pydicom's real DICOMDIR media: no README, no manifest, odd names: findings, no raise."""
    folder = TEST_FILES / "dicomdirtests"
    report = verify(folder)
    assert not report.ok and "readme" in _items(report) and report.records > 0
    copy = tmp_path / "BIGEND"
    shutil.copytree(folder, copy)
    shutil.copy(folder / "DICOMDIR-bigEnd", copy / "DICOMDIR")
    report = verify(copy)
    assert any(f.item == "3" and "Explicit VR Little Endian" in f.message for f in report.errors)


def test_profile_medium_size_is_checked(good: Path, monkeypatch) -> None:
    from viewer.media import profiles

    tiny = profiles.Medium("dvd", "tiny DVD", 1000)
    monkeypatch.setitem(profiles.MEDIA, "dvd", tiny)
    report = verify(good, "dvd-jpeg")
    assert any("do not fit a tiny DVD" in f.message for f in report.errors)
