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
