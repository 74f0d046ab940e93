"""The desktop entry and the icon that the packaging installs."""

from __future__ import annotations

import configparser

from PySide6.QtGui import QIcon

from tests.conftest import ROOT


def test_desktop_entry_launches_lightbox_with_files() -> None:
    """freedesktop.org Desktop Entry Specification 1.5: required keys, %F for several files."""
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # type: ignore[assignment,method-assign]
    entry.read(ROOT / "resources" / "lightbox.desktop", encoding="utf-8")
    desktop = entry["Desktop Entry"]
    assert desktop["Type"] == "Application" and desktop["Name"] == "Lightbox"
    assert desktop["Exec"].split() == ["lightbox", "%F"]
    assert desktop["Icon"] == "lightbox"
    assert "application/dicom" in desktop["MimeType"].split(";")
    assert desktop["Categories"].endswith(";")


def test_icon_renders(qapp) -> None:  # type: ignore[no-untyped-def]
    icon = QIcon(str(ROOT / "resources" / "icons" / "lightbox.svg"))
    image = icon.pixmap(64, 64).toImage()
    assert not image.isNull() and image.width() == 64
    colours = {image.pixelColor(x, y).name() for x in range(0, 64, 4) for y in range(0, 64, 4)}
    assert len(colours) > 5  # drawn, not a blank square
