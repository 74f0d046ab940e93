"""Real small and read-only file systems for the store tests (root only: CI runs as root).

A full disc and a read-only store cannot be faked by permission bits when the tests run as
root (root writes through them): these mount a real tmpfs of a few MiB, or bind-mount a folder
read-only, and always unmount. Where mounting is not permitted the test is skipped outside CI
and fails in CI (:func:`tests.conftest.missing`).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import missing


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False)


def _mount(*args: str) -> None:
    exe = shutil.which("mount")
    if exe is None:
        missing("mount is not installed")
        return
    done = _run(exe, *args)
    if done.returncode != 0:
        missing(f"cannot mount here (run the tests as root): {done.stderr.strip()}")


def _umount(path: Path) -> None:
    done = _run("umount", str(path))
    if done.returncode != 0:  # busy: detach it, never leave it behind
        _run("umount", "-l", str(path))


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "2M") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``path`` (created) for the duration."""
    path.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path))
    try:
        yield path
    finally:
        _umount(path)


@contextlib.contextmanager
def read_only_view(source: Path, path: Path) -> Iterator[Path]:
    """``source`` bind-mounted read-only on ``path``: even root cannot write there."""
    path.mkdir(parents=True, exist_ok=True)
    _mount("--bind", str(source), str(path))
    try:
        done = _run("mount", "-o", "remount,bind,ro", str(path))
        if done.returncode != 0:
            missing(f"cannot remount read-only here: {done.stderr.strip()}")
        yield path
    finally:
        _umount(path)


def fill(folder: Path) -> Path:
    """Fill the file system of ``folder`` with one file until it is full."""
    filler = folder / "filler"
    chunk = b"\0" * 4096
    with open(filler, "wb", buffering=0) as out, contextlib.suppress(OSError):
        while True:
            out.write(chunk)
    return filler
