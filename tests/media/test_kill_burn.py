"""Kill harness, burn: SIGKILL ``lightbox burn`` to a folder and to an ISO image at seeded
random delays.

What a killed burn leaves must never look complete when it is not: a folder has its DICOMDIR
(what a viewer opens first, PS3.10 8.6 / PS3.3 F.2) only once every other file is written,
an image exists under its final name only once written whole; ``lightbox verify`` on what is
left fails (exit 1 or 3) with a message rather than passing; and the same ``lightbox burn``
run again completes, verifies, and leaves nothing of the killed run behind.
Rounds: ``$LIGHTBOX_KILL_ROUNDS`` (see tests/killing.py).
"""

from __future__ import annotations

import re
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests import killing
from tests.conftest import require_tool
from tests.store.dicomfiles import make_folder
from viewer.media import iso, plan, writer
from viewer.media.verify import verify

POSIX = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")

INSTANCES = 2 * 3 * 10
#: DICOMDIR records of the whole media: 2 patients, 2 studies, 6 series, the instances.
RECORDS = 2 + 2 + 6 + INSTANCES


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "source"
    make_folder(folder, studies=2, series=3, instances=10)
    return folder


def _assert_complete(target: Path, where: str) -> None:
    verified = killing.run(killing.lightbox_args("verify", str(target), "--profile", "cd"))
    assert verified.returncode == 0, (where, verified.stdout, verified.stderr)
    records = re.search(r"(\d+) directory records", verified.stdout)
    assert records is not None, (where, verified.stdout)
    assert int(records.group(1)) == RECORDS, (where, verified.stdout)


def _assert_fails_verify(target: Path, where: str) -> None:
    verified = killing.run(killing.lightbox_args("verify", str(target), "--profile", "cd"))
    assert verified.returncode in (1, 3), (where, verified.returncode, verified.stdout)
    assert "Traceback" not in verified.stdout + verified.stderr, where
    assert (verified.stdout + verified.stderr).strip(), where  # says why


def _leftovers(parent: Path, target: Path) -> list[Path]:
    """What a killed burn may leave beside (or inside) the target besides the media."""
    beside = [p for p in parent.iterdir() if p.name.startswith(".")]
    inside = [p for p in target.iterdir() if p.name.startswith(".")] if target.is_dir() else []
    return beside + inside


def _wait_for_writing(proc: subprocess.Popen[str], parent: Path) -> None:
    deadline = time.monotonic() + 30
    while proc.poll() is None and not any(parent.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.002)


@pytest.mark.slow
@POSIX
@pytest.mark.parametrize("kind", ["folder", "iso"])
def test_kill_burn_then_run_again(kind: str, source: Path, tmp_path: Path) -> None:
    rng, chosen = killing.rng(20261207 if kind == "folder" else 20261208)
    total_rounds = killing.rounds(3)
    incomplete = 0
    for round_ in range(total_rounds):
        parent = tmp_path / f"out{round_}"
        parent.mkdir()
        target = parent / ("DISC" if kind == "folder" else "disc.iso")
        option = "--to" if kind == "folder" else "--iso"
        args = killing.lightbox_args("burn", "--from", str(source), option, str(target))
        proc = killing.spawn(args)
        # Start-up (imports, reading the sources) takes about 0.4 s here and the writing (60
        # small files, then the read-back) about 0.15 s: most kills are timed from the moment
        # the target (or the ISO's staging folder beside it) appears, some from the start.
        if rng.random() < 0.8:
            _wait_for_writing(proc, parent)
            delay = rng.uniform(0.0, 0.2)
        else:
            delay = rng.uniform(0.0, 0.8)
        time.sleep(delay)
        finished = proc.poll() is not None
        killing.kill(proc, whole_group=rng.random() < 0.5)
        where = killing.where(
            f"burn ({kind})", chosen, round_, delay, "finished" if finished else "killed"
        )
        if finished:
            assert proc.returncode == 0, where
            _assert_complete(target, where)
        elif kind == "folder" and (target / "DICOMDIR").exists():
            # DICOMDIR is written last: its presence means every file is there
            _assert_complete(target, where)
        elif kind == "iso" and target.exists():
            _assert_complete(target, where)  # an image under its final name is whole
            # killed before removing its staging folder, maybe: the next burn beside it does
            again = killing.run(args)
            assert again.returncode == 0, (where, again.stdout, again.stderr)
            _assert_complete(target, where)
        else:
            incomplete += 1
            if target.exists():
                _assert_fails_verify(target, where)
            else:
                gone = killing.run(killing.lightbox_args("verify", str(target)))
                assert gone.returncode == 3, (where, gone.stdout, gone.stderr)
            again = killing.run(args)
            assert again.returncode == 0, (where, again.stdout, again.stderr)
            _assert_complete(target, where)
        assert not _leftovers(parent, target), (where, _leftovers(parent, target))
        print(where)
    print(f"burn ({kind}) kill harness: seed {chosen}, {total_rounds} rounds, {incomplete} cut")


# --- the rules the harness relies on, deterministically -----------------------------------


def test_a_cancelled_burn_is_incomplete_then_written_again(source: Path, tmp_path: Path) -> None:
    """Stopped after 5 files: no DICOMDIR, verify fails; the next burn to the folder clears
    what the stopped one wrote (and only that) and completes."""
    files = sorted(p for p in source.rglob("*") if p.is_file())
    target = tmp_path / "DISC"
    target.mkdir()
    (target / "mine.txt").write_text("the user's own file")
    cancel = threading.Event()

    def progress(done: int, _total: int) -> None:
        if done == 5:
            cancel.set()

    with pytest.raises(plan.Cancelled, match="incomplete"):
        writer.write_media(files, target, progress=progress, cancel=cancel)
    assert not (target / "DICOMDIR").exists()
    assert (target / writer.INCOMPLETE).is_file()
    assert not verify(target).ok
    report = writer.write_media(files, target)
    # complete: only the user's own file is not part of the media
    [result] = report.verification
    assert {f.path for f in result.errors} == {"mine.txt"}, report.summary()
    assert (target / "DICOMDIR").is_file() and len(report.discs[0].files) == INSTANCES
    assert not (target / writer.INCOMPLETE).exists()
    assert (target / "mine.txt").read_text() == "the user's own file"
    assert sorted(p.name for p in target.iterdir() if p.name.startswith(".")) == []


def test_a_folder_without_the_marker_is_never_cleared(source: Path, tmp_path: Path) -> None:
    """A folder holding someone's DICOM/ or README.TXT (no marker of ours) is refused, as
    before: clearing is only for what an interrupted burn marked as its own."""
    target = tmp_path / "USB"
    (target / "DICOM").mkdir(parents=True)
    (target / "DICOM" / "IM1").write_bytes(b"theirs")
    with pytest.raises(plan.MediaError, match="already holds DICOM"):
        writer.write_media([next(p for p in source.rglob("*") if p.is_file())], target)
    assert (target / "DICOM" / "IM1").read_bytes() == b"theirs"


@POSIX
def test_a_burn_in_progress_is_not_cleared(source: Path, tmp_path: Path) -> None:
    """The marker of a live process (another burn to the same folder) is respected."""
    target = tmp_path / "DISC"
    target.mkdir()
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        (target / writer.INCOMPLETE).write_text(f"{sleeper.pid}\n")
        (target / "DICOM").mkdir()
        with pytest.raises(plan.MediaError, match=f"being written by process {sleeper.pid}"):
            writer.write_media([next(p for p in source.rglob("*") if p.is_file())], target)
        assert (target / "DICOM").is_dir()
    finally:
        sleeper.kill()
        sleeper.wait()


@POSIX
def test_what_a_killed_iso_burn_left_is_removed_next_time(source: Path, tmp_path: Path) -> None:
    """Staging folders and partial images of dead processes go; those of live ones stay."""
    sleeper = subprocess.Popen(["sleep", "30"])
    dead = subprocess.Popen(["true"])
    dead.wait()
    try:
        staging_dead = tmp_path / f".lightbox-burn-{dead.pid}-abc"
        (staging_dead / "MEDIA").mkdir(parents=True)
        partial_dead = tmp_path / f".lightbox-iso-{dead.pid}-disc.iso.partial"
        partial_dead.write_bytes(b"half")
        staging_live = tmp_path / f".lightbox-burn-{sleeper.pid}-xyz"
        staging_live.mkdir()
        files = sorted(p for p in source.rglob("*") if p.is_file())
        report = iso.write_iso(files, tmp_path / "disc.iso")
        assert report.ok, report.summary()
        left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
        assert left == [staging_live.name]
    finally:
        sleeper.kill()
        sleeper.wait()


@POSIX
def test_a_killed_disc_burn_leaves_no_image_in_the_temporary_folder(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``burn --device`` stages its images (patient data) in the temporary folder: what a
    killed one left there is removed by the next burn."""
    require_tool("xorriso")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    dead = subprocess.Popen(["true"])
    dead.wait()
    left = scratch / f".lightbox-burn-{dead.pid}-abc"
    (left / "DISC.iso").mkdir(parents=True)
    files = sorted(p for p in source.rglob("*") if p.is_file())
    report = iso.burn(files, f"stdio:{tmp_path / 'disc.img'}", web=False)
    assert report.ok, report.summary()
    assert list(scratch.iterdir()) == []
