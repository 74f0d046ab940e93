"""The kill harness's common part: real subprocesses, real SIGKILL at seeded random delays.

Each kill test runs a real ``lightbox`` command (or the store's own code in a subprocess) in a
new session, kills it with SIGKILL after a delay drawn from a seeded :class:`random.Random`, and
then checks what it left. How many rounds, and the seed, come from the environment so that a
long hunt and a failure's replay are one command each::

    LIGHTBOX_KILL_ROUNDS=50 LIGHTBOX_KILL_SEED=7 .venv/bin/python -m pytest -m slow \
        tests/store/test_kill.py tests/store/test_kill_receive.py \
        tests/net/test_kill_retrieve.py tests/media/test_kill_burn.py

Every assertion message of a kill test names the seed and the round (:func:`where`).

Two ways to die are alternated (:func:`kill`): the command's own process alone (a crash: what
it started, such as the store's import worker, lives on until it notices), and its whole
process group at once (the machine's OOM killer or a power cut as far as the files can tell).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from tests.cli import ROOT
from tests.cli import lightbox_args as lightbox_args  # the kill tests' spelling
from viewer.store import Store
from viewer.store.importer import spool_dir
from viewer.store.store import RECEIVING_PREFIX

ROUNDS_ENV = "LIGHTBOX_KILL_ROUNDS"
SEED_ENV = "LIGHTBOX_KILL_SEED"


def rounds(default: int) -> int:
    """Rounds per test: ``$LIGHTBOX_KILL_ROUNDS`` when set, else the test's (small) default."""
    value = os.environ.get(ROUNDS_ENV, "")
    return max(1, int(value)) if value.strip().isdigit() else default


def seed(default: int) -> int:
    value = os.environ.get(SEED_ENV, "")
    return int(value) if value.strip().lstrip("-").isdigit() else default


def rng(default_seed: int) -> tuple[random.Random, int]:
    chosen = seed(default_seed)
    return random.Random(chosen), chosen


def where(test: str, chosen_seed: int, round_: int, delay: float, extra: str = "") -> str:
    """What an assertion message says so that the failure can be replayed."""
    text = (
        f"{test}: seed {chosen_seed} round {round_} (killed after {delay:.3f} s; replay with "
        f"{SEED_ENV}={chosen_seed} {ROUNDS_ENV}={round_ + 1})"
    )
    return f"{text}: {extra}" if extra else text


def spawn(
    args: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    stdout: int | None = subprocess.PIPE,
    stderr: int | None = subprocess.PIPE,
) -> subprocess.Popen[str]:
    """``args`` in a new session (its own process group, so that what it starts can be found
    and killed by the group id we got, and nothing else)."""
    return subprocess.Popen(
        list(args),
        cwd=ROOT,
        env=env if env is not None else dict(os.environ),
        stdout=stdout,
        stderr=stderr,
        text=True,
        start_new_session=True,
    )


def kill(proc: subprocess.Popen[str], whole_group: bool) -> tuple[str, str]:
    """SIGKILL the process (``whole_group``: its process group, everything it started), then
    wait until nothing of the group is left (a pool worker orphaned by the kill ends when it
    sees its parent gone; after 30 s it is killed too). Returns what it printed."""
    pgid = proc.pid  # start_new_session: the group id is the leader's pid
    with contextlib.suppress(ProcessLookupError):
        if whole_group:
            os.killpg(pgid, signal.SIGKILL)
        else:
            os.kill(proc.pid, signal.SIGKILL)
    out = err = ""
    with contextlib.suppress(subprocess.TimeoutExpired):
        out, err = proc.communicate(timeout=30)
    wait_group_gone(pgid)
    if proc.returncode is None:
        proc.wait(30)
    return out or "", err or ""


def run(args: Sequence[str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """A command to its end (the re-run after a kill)."""
    return subprocess.run(
        list(args), capture_output=True, text=True, cwd=ROOT, timeout=timeout, check=False
    )


def wait_group_gone(pgid: int, patience: float = 30.0) -> None:
    deadline = time.monotonic() + patience
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        except PermissionError:  # pragma: no cover - a reused group id of another user
            return
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            deadline = time.monotonic() + patience
        time.sleep(0.02)


def stop(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[str, str]:
    """SIGTERM (the command's own clean stop) and wait; SIGKILL the group if it hangs."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill(proc, whole_group=True)
        raise AssertionError(f"{proc.args!r} did not stop within {timeout} s of SIGTERM") from None
    wait_group_gone(proc.pid)
    return out, err


def wait_for_first(spool: Path, proc: subprocess.Popen[str]) -> None:
    """Until an instance arrived in the store's spool ``spool`` (a kill timed from there lands
    in the middle of a transfer), or ``proc`` ended, or 30 s passed."""
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if any(spool.iterdir()):
                return
        except FileNotFoundError:
            pass
        time.sleep(0.001)


def leftovers(store: Store) -> list[Path]:
    """Temporary files of imports and half-received files: what killed processes leave."""
    found = list(store.tmp_dir.iterdir()) if store.tmp_dir.is_dir() else []
    spool = spool_dir(store)
    if spool.is_dir():
        found += [p for p in spool.iterdir() if p.name.startswith(RECEIVING_PREFIX)]
    return found
