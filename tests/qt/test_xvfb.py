"""The real window on a real X server (Xvfb), not the offscreen platform: it opens a CT and what
reaches the screen is a readable image, not a blank or a crash."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT, require_tool


@pytest.fixture
def xvfb_display() -> Iterator[str]:
    """A private Xvfb on a free display number (Xvfb picks it and reports it with -displayfd)."""
    xvfb = require_tool("Xvfb")
    read_end, write_end = os.pipe()
    process = subprocess.Popen(
        [xvfb, "-displayfd", str(write_end), "-screen", "0", "1280x900x24", "-nolisten", "tcp"],
        pass_fds=(write_end,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    try:
        with os.fdopen(read_end) as pipe:
            number = pipe.readline().strip()  # written once the server accepts connections
        if not number:
            pytest.fail("Xvfb did not start")
        yield f":{number}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


_GRAB = (
    "import sys\n"
    "from PySide6.QtGui import QGuiApplication\n"
    "app = QGuiApplication(sys.argv[:1])\n"
    "sys.exit(0 if app.primaryScreen().grabWindow(0).save(sys.argv[1]) else 1)\n"
)


def grab_screen(env: dict[str, str], path: Path) -> None:
    """The X server's root window to PNG, read back from the server (like ``import -window
    root``, without needing ImageMagick)."""
    subprocess.run([sys.executable, "-c", _GRAB, str(path)], env=env, check=True, timeout=60)


def _ct_file() -> Path:
    shared = ROOT.parent / "shared" / "data" / "dwv" / "dicompyler-ct.0.dcm"
    if shared.is_file():
        return shared
    from pydicom.data import get_testdata_file

    return Path(str(get_testdata_file("CT_small.dcm", download=False)))


@pytest.mark.xvfb
def test_real_window_under_xvfb(xvfb_display: str, tmp_path: Path) -> None:
    shot, root = tmp_path / "window.png", tmp_path / "root.png"
    env = dict(os.environ, DISPLAY=xvfb_display, QT_QPA_PLATFORM="xcb")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.qt.screenshot_app",
            str(shot),
            str(_ct_file()),
            "--root",
            str(root),
            "--size",
            "1100x800",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for png in (shot, root):
        pixels = np.asarray(Image.open(png).convert("L"))
        assert pixels.shape[0] >= 700 and pixels.shape[1] >= 1000
        # A CT in a window: many grey levels, dark air and bright bone or text.
        assert len(np.unique(pixels)) > 100
        assert pixels.min() < 20 and pixels.max() > 230
    # The X screen holds the window where the client drew it: the grabbed window matches it.
    window = np.asarray(Image.open(shot).convert("L")).astype(int)
    screen = np.asarray(Image.open(root).convert("L")).astype(int)
    height, width = window.shape
    top = next(
        (
            y
            for y in range(0, screen.shape[0] - height + 1)
            if np.abs(screen[y : y + height, :width] - window).mean() < 2
        ),
        None,
    )
    assert top is not None, "the window's pixels are not on the X screen"


@pytest.mark.xvfb
def test_lightbox_open_under_xvfb_and_clean_exit_on_sigterm(
    xvfb_display: str, tmp_path: Path
) -> None:
    """``python -m viewer -v open FILE`` on X: the image reaches the screen, SIGTERM quits with
    0 and the loader's processes and shared memory go with it (no leak warnings)."""
    import signal
    import threading

    env = dict(os.environ, DISPLAY=xvfb_display, QT_QPA_PLATFORM="xcb")
    process = subprocess.Popen(
        [sys.executable, "-m", "viewer", "-v", "open", str(_ct_file())],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(120, process.kill)  # never hang the suite
    watchdog.start()
    lines: list[str] = []
    try:
        assert process.stderr is not None
        for line in process.stderr:  # blocks until the application says the image is shown
            lines.append(line)
            if "first image shown" in line:
                break
        assert any("first image shown" in line for line in lines), "".join(lines)
        screen = tmp_path / "screen.png"
        grab_screen(env, screen)
        pixels = np.asarray(Image.open(screen).convert("L"))
        assert len(np.unique(pixels)) > 100 and pixels.max() > 230
        process.send_signal(signal.SIGTERM)
        rest = process.stderr.read()
        assert process.wait(timeout=60) == 0, rest
    finally:
        watchdog.cancel()
        watchdog.join(5)  # a cancelled timer's thread ends a moment later: not a leftover
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "Traceback" not in rest and "leaked" not in rest, rest
    assert "boost" not in "".join(lines) + rest  # the patient's name is never logged
