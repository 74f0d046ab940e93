"""Running the real ``lightbox`` command in a subprocess, as a user does (``python -m viewer``).

Each test already has its own ``$LIGHTBOX_HOME`` (tests/conftest.py), so the command gets its
own store and config; ``home`` points one run elsewhere (a store on a full or read-only disc).
The store's crash hook (``LIGHTBOX_STORE_CRASH_AT``) is never passed on: only the kill tests
set it, for a subprocess of their own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.net import peers
from viewer.store.importer import CRASH_ENV

ROOT = Path(__file__).resolve().parent.parent


def lightbox_args(*args: str) -> list[str]:
    """The command line of ``lightbox ARGS``."""
    return [sys.executable, "-m", "viewer", *args]


def lightbox(
    *args: str, timeout: float = 120, home: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``lightbox ARGS`` to its end (``home``: its $LIGHTBOX_HOME instead of the test's)."""
    env = dict(os.environ)
    env.pop(CRASH_ENV, None)
    if home is not None:
        env["LIGHTBOX_HOME"] = str(home)
    return subprocess.run(
        lightbox_args(*args), capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout
    )


def start_listen(port: int) -> subprocess.Popen[str]:
    """``lightbox listen`` on ``port``, once it accepts connections."""
    proc = subprocess.Popen(
        lightbox_args("listen", "--scp-port", str(port)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        peers.wait_port(port, proc)  # type: ignore[arg-type]
    except BaseException:
        proc.kill()
        proc.communicate(timeout=30)
        raise
    return proc


def stop_listen(proc: subprocess.Popen[str]) -> str:
    """SIGTERM (the command's clean stop), wait for its end; what it wrote on stderr."""
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    return err


def store_json() -> dict:  # type: ignore[type-arg]
    """``lightbox store ls --json``: what the store holds."""
    result = lightbox("store", "ls", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def instance_count(data: dict) -> int:  # type: ignore[type-arg]
    return sum(
        se["instances"] for p in data["patients"] for st in p["studies"] for se in st["series"]
    )
