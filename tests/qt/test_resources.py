"""The application icon, read from the package (viewer.resources) as the GUI reads it."""

from __future__ import annotations

from PySide6.QtGui import QIcon

from viewer import resources


def test_icon_renders(qapp) -> None:  # type: ignore[no-untyped-def]
    icon = QIcon(str(resources.path(resources.ICON)))
    image = icon.pixmap(64, 64).toImage()
    assert not image.isNull() and image.width() == 64
    colours = {image.pixelColor(x, y).name() for x in range(0, 64, 4) for y in range(0, 64, 4)}
    assert len(colours) > 5  # drawn, not a blank square
