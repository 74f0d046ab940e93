"""ISO 9660 images read without mounting (issue 13): real images made by make_iso and pycdlib,
hostile ones patched byte by byte; scan, health report, import and verify on them."""

from __future__ import annotations

import io
import os
import shutil
import stat
import struct
import threading
import time
from pathlib import Path

import pycdlib
import pytest
from pydicom.data import get_testdata_file

from tests.conftest import copy_pydicom_dicomdir_media
from viewer.media import disc_image
from viewer.media.disc_image import DiscImageCancelled, DiscImageError, Limits, open_image
from viewer.media.health import check_media
from viewer.media.iso import make_iso
from viewer.media.listing import tree_to_json
from viewer.media.scan import scan
from viewer.media.verify import verify
from viewer.store import Store, import_paths

CT = Path(str(get_testdata_file("CT_small.dcm")))


def files_of(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def wait_gone(path: Path) -> bool:
    """The last handle's folder is removed beside the caller: give it a moment."""
    deadline = time.monotonic() + 10
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return not path.exists()


def hostile_iso(
    target: Path,
    *,
    rename: dict[bytes, bytes] | None = None,
    past_end: bytes | None = None,
    depth: int = 0,
    rock_ridge: bool = False,
) -> Path:
    """An image holding CT_small.dcm as IM1 and small files AB, CDEF and BIG; ``rename``
    patches recorded identifiers (same length), ``past_end`` makes a member declare 4 GB,
    ``depth`` nests a copy of the CT that many folders deep."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=4, vol_ident="HOSTILE", rock_ridge="1.09" if rock_ridge else None)
    ct = CT.read_bytes()

    def rr(name: str) -> str | None:
        return name if rock_ridge else None

    iso.add_fp(io.BytesIO(ct), len(ct), "/IM1;1", rr_name=rr("IM1"))
    for name, size in (("AB", 10), ("CDEF", 10), ("BIG", 3000)):
        iso.add_fp(io.BytesIO(b"x" * size), size, f"/{name};1", rr_name=rr(name))
    path = ""
    for level in range(depth):
        path += f"/D{level}"
        iso.add_directory(path, rr_name=rr(f"D{level}"))
    if depth:
        iso.add_fp(io.BytesIO(ct), len(ct), f"{path}/DEEP;1", rr_name=rr("DEEP"))
    iso.write(str(target))
    iso.close()
    raw = bytearray(target.read_bytes())
    for old, new in (rename or {}).items():
        assert len(old) == len(new) and raw.count(old) == 1, old
        at = raw.find(old)
        raw[at : at + len(old)] = new
    if past_end is not None:
        record = raw.find(past_end) - 33  # the identifier follows the 33 fixed bytes
        struct.pack_into("<I", raw, record + 10, 0xFFFFFF00)
        struct.pack_into(">I", raw, record + 14, 0xFFFFFF00)
    target.write_bytes(bytes(raw))
    return target


@pytest.fixture(scope="module")
def disc(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """pydicom's DICOMDIR medium (31 instances) as a folder and as an ISO image of it."""
    base = tmp_path_factory.mktemp("disc")
    folder = copy_pydicom_dicomdir_media(base / "folder")
    image = base / "disc.iso"
    make_iso(folder, image, "PYDICOM")
    return folder, image


def test_recognised_by_content_not_by_name(disc: tuple[Path, Path], tmp_path: Path) -> None:
    folder, image = disc
    renamed = tmp_path / "disc.bin"
    shutil.copy(image, renamed)
    assert disc_image.is_disc_image(image) and disc_image.is_disc_image(renamed)
    fake = tmp_path / "fake.iso"
    shutil.copy(CT, fake)
    assert not disc_image.is_disc_image(fake)
    assert not disc_image.is_disc_image(folder) and not disc_image.is_disc_image(tmp_path / "no")
    os.mkfifo(tmp_path / "fifo.iso")
    assert not disc_image.is_disc_image(tmp_path / "fifo.iso")  # never opened: no hang


def test_unpacked_files_and_bytes_equal_the_folder_in_a_private_folder(
    disc: tuple[Path, Path],
) -> None:
    folder, image = disc
    seen: list[tuple[int, int]] = []
    with open_image(image, progress=lambda d, t: seen.append((d, t))) as opened:
        root = opened.root
        assert stat.S_IMODE(root.stat().st_mode) == 0o700
        assert Path(os.path.realpath(root)).parent == Path(
            os.path.realpath(os.environ.get("TMPDIR", "/tmp"))
        )
        assert files_of(root) == files_of(folder)
        assert opened.problems == []
        some = next(p for p in root.rglob("*") if p.is_file() and p.name != "DICOMDIR")
        assert opened.label(some) == f"{image}!/{some.relative_to(root).as_posix()}"
        assert opened.relabel_text(f"{some}: broken") == f"{opened.label(some)}: broken"
        # a second opening while the first is open shares the folder
        with open_image(image) as again:
            assert again.root == root
        assert root.exists()
    assert seen[-1] == (32, 32) and seen[0] == (0, 32)
    assert wait_gone(root)


def test_scan_and_health_of_the_image_equal_the_folders(tmp_path: Path) -> None:
    folder = copy_pydicom_dicomdir_media(tmp_path / "folder")
    missing = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "DICOMDIR")[3]
    missing.unlink()
    image = tmp_path / "disc.iso"
    make_iso(folder, image, "PYDICOM")

    def same(text: str, root: Path) -> str:
        return text.replace(str(root), "ROOT")

    for headers in (False, True):
        from_folder = scan(folder, headers=headers)
        from_image = scan(image, headers=headers)
        try:
            assert len(from_image.discs) == 1
            assert tree_to_json(from_image.patients, []) == tree_to_json(from_folder.patients, [])
            assert [
                (same(p.path, folder), same(p.problem, folder)) for p in from_folder.problems
            ] == [
                (p.path.replace(f"{image}!", "ROOT"), p.problem.replace(f"{image}!", "ROOT"))
                for p in from_image.problems
            ]
            assert any(
                p.path == f"{image}!/{missing.relative_to(folder)}" for p in from_image.problems
            )
            assert all(Path(i.path).is_file() for i in from_image.instances)  # still there
        finally:
            from_image.close()
    folder_health, image_health = check_media(folder), check_media(image)
    assert str(image_health.root) == f"{image}!"
    assert [Path(str(p).replace(f"{image}!", str(folder))) for p in image_health.missing] == [
        folder_health.root / p.relative_to(folder_health.root) for p in folder_health.missing
    ]
    assert len(image_health.present) == len(folder_health.present) == 30
    assert [p.problem for p in image_health.problems] == [p.problem for p in folder_health.problems]


def test_import_of_the_image_names_it_and_never_duplicates(
    disc: tuple[Path, Path], tmp_path: Path
) -> None:
    folder, image = disc
    with Store.open(tmp_path / "store") as store:
        first = import_paths(store, [image])
        assert len(first.imported) == 31 and first.ok, first.rejected
        assert all(s.startswith(f"{image}!/") for s in first.imported)
        assert [p.path for p in first.skipped] == [f"{image}!/DICOMDIR"]
        again = import_paths(store, [image, folder])
        assert not again.imported and len(again.already_present) == 62 and again.ok
        count = store.connection().execute("SELECT COUNT(*) FROM instances").fetchone()[0]
        assert count == 31


def test_hostile_names_depth_and_sizes_are_refused_with_the_member_named(tmp_path: Path) -> None:
    image = hostile_iso(
        tmp_path / "hostile.iso",
        rename={b"AB;1": b"..;1", b"CDEF;1": b"C/EF;1"},
        past_end=b"BIG;1",
        depth=40,
    )
    with open_image(image) as opened:
        said = {p.path: p.problem for p in opened.problems}
        root = opened.root
        assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == [
            "IM1"
        ]
        assert not (root.parent / "IM1").exists()
    assert said[f"{image}!/..;1"] == "name '..' would leave its folder"
    assert said[f"{image}!/C/EF;1"] == "name holds a path separator"
    assert "declared size 4294967040 bytes" in said[f"{image}!/BIG"]
    assert "runs past the end of the image" in said[f"{image}!/BIG"]
    deep = "/".join(f"D{n}" for n in range(33))  # D0..D31 are 32 levels
    assert said[f"{image}!/{deep}"] == "more than 32 folder levels: not read"
    # the scan lists what is good and names every refusal in the image
    result = scan(image)
    try:
        assert len(result.instances) == 1
        assert {p.path for p in result.problems} >= set(said)
    finally:
        result.close()
    # verify reads images with the same reader: the refusals are its errors
    report = verify(image)
    assert not report.ok
    assert any(f.path == "..;1" and f.item == "9" for f in report.findings)


def test_rock_ridge_name_when_the_primary_name_is_unusable(tmp_path: Path) -> None:
    image = hostile_iso(tmp_path / "rr.iso", rename={b"AB;1": b"..;1"}, rock_ridge=True)
    with open_image(image) as opened:
        assert (opened.root / "AB").read_bytes() == b"x" * 10
        assert opened.problems == []


def test_limits_refuse_before_writing(tmp_path: Path) -> None:
    image = hostile_iso(tmp_path / "small.iso")
    before = set(Path(os.environ.get("TMPDIR", "/tmp")).glob("lightbox-disc-*"))
    with pytest.raises(DiscImageError) as too_big:
        open_image(image, limits=Limits(max_bytes=1000))
    assert str(too_big.value).startswith(f"{image}: its files declare")
    assert "not unpacked" in str(too_big.value)
    with pytest.raises(DiscImageError, match=r"more than 2 files: refused"):
        open_image(image, limits=Limits(max_files=2))
    with pytest.raises(DiscImageError, match="not a readable ISO 9660 image"):
        broken = tmp_path / "broken.iso"
        broken.write_bytes(bytes(32768) + b"\x01CD001\x01" + bytes(8000))
        assert disc_image.is_disc_image(broken)
        open_image(broken)
    assert set(Path(os.environ.get("TMPDIR", "/tmp")).glob("lightbox-disc-*")) == before


def test_cancel_stops_and_leaves_nothing(disc: tuple[Path, Path]) -> None:
    _folder, image = disc
    cancel = threading.Event()

    def progress(done: int, total: int) -> None:
        if done == 5:
            cancel.set()

    before = set(Path(os.environ.get("TMPDIR", "/tmp")).glob("lightbox-disc-*"))
    with pytest.raises(DiscImageCancelled):
        open_image(image, cancel=cancel, progress=progress)
    assert set(Path(os.environ.get("TMPDIR", "/tmp")).glob("lightbox-disc-*")) == before
    # cancelled is not remembered: the next opening unpacks
    with open_image(image) as opened:
        assert (opened.root / "DICOMDIR").is_file()


def test_holding_keeps_the_folder_after_the_scan_is_closed(disc: tuple[Path, Path]) -> None:
    _folder, image = disc
    result = scan(image)
    paths = [str(i.path) for i in result.instances]
    held = disc_image.holding(paths)
    assert len(held) == 1
    result.close()
    time.sleep(0.1)
    assert all(Path(p).is_file() for p in paths)
    root = held[0].root
    held[0].close()
    assert wait_gone(root)


def test_two_openers_at_once_share_one_unpacking(disc: tuple[Path, Path]) -> None:
    _folder, image = disc
    handles: list[disc_image.DiscImage] = []
    start = threading.Barrier(2)

    def opener() -> None:
        start.wait()
        handles.append(open_image(image))

    threads = [threading.Thread(target=opener) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(handles) == 2 and handles[0].root == handles[1].root
    root = handles[0].root
    handles[0].close()
    assert (root / "DICOMDIR").is_file()  # the other handle keeps it
    handles[1].close()
    assert wait_gone(root)
