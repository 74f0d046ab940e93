"""ISO images (pycdlib) checked by xorriso, and the disc path on xorriso's stdio: pseudo-drive."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from tests.conftest import require_tool
from viewer.media import iso
from viewer.media.profiles import Medium
from viewer.media.verify import verify

TEST_FILES = Path(get_testdata_file("CT_small.dcm")).parent
FILES = [TEST_FILES / n for n in ("CT_small.dcm", "MR_small.dcm", "SC_rgb_rle.dcm")]
LEVEL1 = re.compile(r"^[A-Z0-9_]{1,8}(\.[A-Z0-9_]{1,3})?$")


def _xorriso(*args: str) -> str:
    out = subprocess.run(["xorriso", *args], capture_output=True, text=True, errors="replace")
    return out.stdout + out.stderr


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, iso.WriteReport]:
    target = tmp_path_factory.mktemp("iso") / "PATIENT.iso"
    report = iso.write_iso(
        FILES, target, label="Jane Doe 2024 DICOM PLUS WEB", fileset_id="LB_TEST_1"
    )
    return target, report


def test_iso_has_level1_names_and_volume_id_is_the_fileset_id(image) -> None:
    require_tool("xorriso")
    target, report = image
    assert report.ok, report.summary()
    assert report.discs[0].root == target and target.is_file()
    # The plain ISO 9660 tree (Rock Ridge and Joliet off): Level 1 names only.
    listing = _xorriso(
        "-rockridge", "off", "-joliet", "off", "-indev", str(target), "-find", "/", "-exec", "lsdl"
    )
    names = re.findall(r"^[d-][rwx-]{9}.*'(/[^']*)'$", listing, re.M)
    assert "/DICOMDIR" in names and "/README.TXT" in names and "/INDEX.HTM" in names
    for name in names:
        parts = [p for p in name.split("/") if p]
        assert len(parts) <= 8
        assert all(LEVEL1.match(p) for p in parts), name
    info = _xorriso("-indev", str(target), "-pvd_info")
    assert re.search(r"Volume Id\s*:\s*LB_TEST_1\s*$", info, re.M), info
    # The label goes to README.TXT only, never to the volume or file IDs.
    assert "Jane" not in info and not any("JANE" in n for n in names)


def test_verify_reads_the_iso(image) -> None:
    target, _report = image
    report = verify(target, "cd")
    assert report.ok, report.summary()
    assert report.kind == "ISO image" and report.files_read > 5


def test_split_selection_gives_numbered_images(tmp_path: Path) -> None:
    from viewer.media import writer

    sizes = [s.size for d in writer.plan_media(FILES, medium="usb").discs for s in d]
    tiny = Medium("tiny", "tiny test disc", writer._DEFAULT_RESERVE + max(sizes))
    report = iso.write_iso(FILES, tmp_path / "OUT.iso", medium=tiny, web=False)
    assert len(report.discs) > 1 and report.ok, report.summary()
    assert [d.root.name for d in report.discs] == [
        f"OUT_{n}.iso" for n in range(1, len(report.discs) + 1)
    ]
    assert not list(tmp_path.glob(".lightbox-burn-*")), "staging folder left behind"


def test_burn_to_stdio_pseudo_drive_and_read_back(tmp_path: Path) -> None:
    require_tool("xorriso")
    device = f"stdio:{tmp_path / 'disc.img'}"
    report = iso.burn(FILES, device, web=False)
    assert report.ok, report.summary()
    assert report.discs[0].root == tmp_path / "disc.img"
    assert verify(tmp_path / "disc.img").ok


def test_burn_failure_is_reported_with_xorriso_words(tmp_path: Path) -> None:
    require_tool("xorriso")
    with pytest.raises(iso.BurnError, match="xorriso failed"):
        iso.burn_image(tmp_path / "absent.iso", f"stdio:{tmp_path / 'x.img'}")


def test_drive_detection_does_not_fail_without_drives() -> None:
    require_tool("xorriso")
    drives = iso.detect_drives()
    assert all(d.device for d in drives)


def test_medium_space_is_checked_before_burning(tmp_path: Path, monkeypatch) -> None:
    require_tool("xorriso")
    device = f"stdio:{tmp_path / 'disc.img'}"
    space = iso.media_space(device)
    assert space is not None and space > 1_000_000
    monkeypatch.setattr(iso, "media_space", lambda _device: 4096)
    with pytest.raises(iso.BurnError, match="the medium has 0 MB free"):
        iso.burn(FILES, device, web=False)
    assert not (tmp_path / "disc.img").exists() or (tmp_path / "disc.img").stat().st_size == 0
