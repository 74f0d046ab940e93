"""Issue 9: the store's disc full, and a store that cannot be written, on real file systems.

- ``lightbox import`` into a store on a full disc (a 2 MiB tmpfs): one line naming the store's
  folder, exit 3, stopping at the first file that does not fit, no traceback; the store stays
  consistent (``store check`` clean) and keeps what was committed before.
- A received instance that cannot be kept for a full disc: the Receiver answers 0xA700 with a
  comment (and a sender hears "out of resources"), never Success.
- A store on a read-only mount (``mount --bind -o ro``: root ignores permission bits) opens
  read-only: ``store ls`` and the browser's ``list_studies`` work; every write is refused with
  "the store is read-only: FOLDER", exit 3.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from tests.cli import lightbox
from tests.store.dicomfiles import make_dataset, make_folder, uid, write
from tests.store.mounts import fill, read_only_view, tmpfs
from viewer.store import Receiver, Store, StoreError, check, import_paths, list_studies
from viewer.store.commands import listing
from viewer.store.importer import spool_dir
from viewer.store.receiver import STATUS_OUT_OF_RESOURCES

pytestmark = pytest.mark.skipif(os.name != "posix", reason="mounts are POSIX")


def _big_folder(folder: Path, count: int) -> list[Path]:
    """``count`` CT images of 128 KiB each (256 x 256 x 16 bit)."""
    paths = []
    for n in range(1, count + 1):
        ds = make_dataset(1, 1, n)
        ds.Rows = ds.Columns = 256
        ds.PixelData = np.random.default_rng(n).integers(0, 4096, (256, 256), np.uint16).tobytes()
        paths.append(write(folder / f"IM{n:03d}", ds))
    return paths


def _rows(store: Store) -> int:
    return int(store.connection().execute("SELECT count(*) FROM instances").fetchone()[0])


# ----------------------------------------------------------------- 4. disc full


def test_import_into_a_full_disc_is_one_error_naming_the_store(tmp_path: Path) -> None:
    source = tmp_path / "disc"
    files = _big_folder(source, 30)  # 3.8 MiB into 2 MiB
    with tmpfs(tmp_path / "home", "2M") as home:
        store_root = home / "store"
        done = lightbox("import", str(source), home=home)
        assert done.returncode == 3, (done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert lines == [
            f"lightbox: the store's disc is full: {store_root} (No space left on device); what "
            "was stored before is kept, nothing half-written is; free some space and run it "
            "again"
        ], done.stderr  # the old code: "IMnnn: cannot read it (No space left ...)", exit 1
        assert "cannot read it" not in done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        # Nothing half-written left: no copy in tmp/, every file has its row and the reverse.
        assert list((store_root / "tmp").iterdir()) == []
        copy = shutil.copytree(store_root, tmp_path / "copy")  # checked where there is room
        with Store.open(copy) as store:
            report = check(store)
            assert report.ok, report.problems
            kept = _rows(store)
            assert kept < len(files)  # a batch commits whole, or not at all
        # Once there is room again, importing again completes it.
        shutil.rmtree(tmp_path / "copy")
        again = lightbox("import", str(source), home=home)
        assert again.returncode == 3  # still full: the same one line, at once
        assert len(again.stderr.strip().splitlines()) == 1


def test_the_index_full_is_the_same_error(tmp_path: Path) -> None:
    """The disc fills after every file was staged, before the index commits: the commit
    fails, the files renamed for it go back (no managed file without its row), one error."""
    source = tmp_path / "disc"
    files = make_folder(source, studies=4, series=4, instances=4)
    with tmpfs(tmp_path / "home", "2M") as home, Store.open(home / "store") as store:
        filled: list[Path] = []

        def progress(done: int, total: int) -> None:
            if done == total:  # all staged, the batch not committed yet
                filled.append(fill(home))

        with pytest.raises(StoreError, match="the store's disc is full") as raised:
            import_paths(store, files, progress=progress)
        assert filled and str(home / "store") in str(raised.value)
        assert isinstance(raised.value.__cause__, sqlite3.Error)  # the index, not a copy
        filled[0].unlink()
        assert list(store.tmp_dir.iterdir()) == []
        assert not [p for p in store.files_dir.rglob("*") if p.is_file()]
        report = check(store)
        assert report.ok, report.problems
        again = import_paths(store, files)
        assert not again.rejected and len(again.imported) == 64
        assert check(store).ok


def test_a_full_disc_while_receiving_is_out_of_resources(tmp_path: Path) -> None:
    """The received file cannot be moved into the store (another file system: it is copied)
    and the copy does not fit: 0xA700 with a comment, no copy left, the store consistent."""
    sent = write(tmp_path / "sent" / "im.dcm", make_dataset(1, 1, 1))
    with (
        tmpfs(tmp_path / "home", "1M") as home,
        Store.open(home / "store") as store,
        Receiver(store, isolated=False) as receiver,
    ):
        fill(home)
        arriving = Path(shutil.copy(sent, tmp_path / ".rx-elsewhere.dcm"))
        answer = receiver(arriving, "MODALITY")
        assert answer == (STATUS_OUT_OF_RESOURCES, "the receiver's disc is full"), answer
        assert not arriving.exists()
        assert list(store.tmp_dir.iterdir()) == []
        assert list(spool_dir(store).iterdir()) == []
        assert receiver.wait_idle(10)
        assert _rows(store) == 0


# ----------------------------------------------------------------- 5. read-only


@pytest.fixture
def read_only_home(tmp_path: Path) -> tuple[Path, list[Path]]:
    """A store with 4 instances, written, then seen through a read-only mount as
    ``home/store``."""
    written = tmp_path / "written"
    files = make_folder(tmp_path / "disc", studies=1, series=2, instances=2)
    with Store.open(written / "store") as store:
        assert len(import_paths(store, files).imported) == 4
    assert not (written / "store" / "index.sqlite-wal").exists()  # closed cleanly
    return tmp_path / "home", files


def test_a_read_only_store_can_be_listed(
    read_only_home: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    home, files = read_only_home
    with read_only_view(tmp_path / "written" / "store", home / "store") as root:
        with pytest.raises(OSError):
            (root / "probe").write_bytes(b"")  # really read-only, even for root
        # The browser's path: open, list.
        with Store.open(root) as store:
            assert store.read_only
            studies = list_studies(store)
            assert [s.study_instance_uid for s in studies] == [uid(1)]
            assert sum(s.num_instances for s in studies) == 4
            data = listing(store)
            assert not data["problems"], data["problems"]
            assert check(store).ok
            for write_op in (
                lambda: import_paths(store, files),
                lambda: check(store, repair=True),
                lambda: Receiver(store),
            ):
                with pytest.raises(StoreError, match=f"the store is read-only: {root}"):
                    write_op()
        # The CLI.
        ls = lightbox("store", "ls", home=home)
        assert ls.returncode == 0, ls.stderr  # the old code: exit 3, "cannot open the store"
        assert "PATIENT, 1  [P1]" in ls.stdout and "4 instances" not in ls.stderr
        assert lightbox("store", "check", home=home).returncode == 0
        for args in (
            ("import", str(files[0])),
            ("store", "rm", uid(1)),
            ("store", "check", "--repair"),
        ):
            done = lightbox(*args, home=home)
            assert done.returncode == 3, (args, done.stdout, done.stderr)
            assert done.stderr.strip() == f"lightbox: the store is read-only: {root}", done.stderr
            assert "Traceback" not in done.stderr
