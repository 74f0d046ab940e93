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
