"""Start-up checks of the GUI's platform."""

from __future__ import annotations

import PySide6

from viewer.qt.app import emit_loses_references


def test_pyside_keeps_references_on_emit(qapp) -> None:  # type: ignore[no-untyped-def]
    """PySide6 6.12.0 drops a reference to True per Signal.emit: Python 3.11 then aborts
    ("bool_dealloc") after a few thousand signals. The project pins a PySide6 without it."""
    assert not emit_loses_references(), (
        f"PySide6 {PySide6.__version__} loses references on emit: install PySide6-Essentials<6.12"
    )


def test_no_display_is_a_message_and_exit_code_3() -> None:
    """Without X or Wayland, Qt would abort the process; lightbox says why and exits 3."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    }
    result = subprocess.run(
        [sys.executable, "-m", "viewer", "open", "nothing.dcm"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3
    assert "no graphical display" in result.stderr and "Traceback" not in result.stderr


def test_quit_when_shown_exits_0_once_the_demo_is_on_screen() -> None:
    """``make smoke`` starts the application this way: an empty store opens the demo study."""
    from tests.cli import lightbox

    result = lightbox("open", "--quit-when-shown", "60", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "lightbox: shown: image 1; window: Lightbox" in result.stdout


def test_quit_when_shown_exits_3_when_no_image_comes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.cli import lightbox

    (tmp_path / "empty").mkdir()
    result = lightbox("open", "--quit-when-shown", "3", str(tmp_path / "empty"), timeout=120)
    assert result.returncode == 3, result.stderr
    assert "no image was shown within the deadline" in result.stderr
    assert "Traceback" not in result.stderr
