"""Help: the keyboard and mouse reference (F1), the conformance statement and About.

Each document opens in a scrolling, resizable window no taller than the screen allows (the
keyboard help used to be a message box 1504 pixels tall that could not scroll).
"""

from __future__ import annotations

import platform

import numpy
import pydicom
import pynetdicom
import PySide6
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from viewer import __version__, resources

CONTROLS_DOC = resources.CONTROLS
CONFORMANCE_DOC = resources.CONFORMANCE

#: Third-party parts whose licences matter to someone redistributing Lightbox.
LICENCES = (
    ("Qt for Python (PySide6)", "LGPL-3.0"),
    ("pydicom", "MIT"),
    ("pynetdicom", "MIT"),
    ("NumPy", "BSD-3-Clause"),
    ("python-gdcm (GDCM)", "BSD-3-Clause"),
    ("pylibjpeg, -openjpeg, -rle", "MIT"),
    ("pylibjpeg-libjpeg (libjpeg)", "GPL-3.0: the reason Lightbox is GPL-3.0-or-later"),
    ("pycdlib", "LGPL-2.1"),
    ("platformdirs", "MIT"),
)


class DocumentDialog(QDialog):
    """A packaged Markdown document (:mod:`viewer.resources`) in a scrolling viewer, at most
    85 % of the screen's height."""

    def __init__(self, title: str, document: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setObjectName("document_dialog")
        self.browser = QTextBrowser(self)
        self.browser.setObjectName("document_text")
        self.browser.setOpenExternalLinks(True)
        try:
            self.browser.setMarkdown(resources.read_text(document))
        except OSError as exc:  # a broken installation: say which file is missing
            self.browser.setPlainText(f"{resources.resource(document)} cannot be read: {exc}")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.browser)
        layout.addWidget(buttons)
        self.resize(*_fitting_size(self, 820, 720))


def _fitting_size(widget: QWidget, width: int, height: int) -> tuple[int, int]:
    screen = widget.screen() if widget.screen() is not None else None
    if screen is None:
        return width, height
    room = screen.availableGeometry()
    return min(width, int(room.width() * 0.9)), min(height, int(room.height() * 0.85))


def about_text() -> str:
    """What About says: the version, what it runs on, and the licences."""
    rows = "".join(f"<tr><td>{name}</td><td>{licence}</td></tr>" for name, licence in LICENCES)
    return (
        f"<h2>Lightbox {__version__}</h2>"
        "<p>A DICOM workstation for the desktop: review patients' discs, keep and burn them, "
        "query and retrieve from a PACS.</p>"
        "<p>Licence: GPL-3.0-or-later. Not a medical device: not for primary diagnosis.</p>"
        f"<p>Python {platform.python_version()}, Qt for Python {PySide6.__version__}, "
        f"pydicom {pydicom.__version__}, pynetdicom {pynetdicom.__version__}, "
        f"NumPy {numpy.__version__}</p>"
        f"<table>{rows}</table>"
    )


class AboutDialog(QDialog):
    """Version, platform, licences, and the conformance statement a PACS administrator asks
    for."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About Lightbox")
        self.setObjectName("about_dialog")
        self.label = QLabel(about_text(), self)
        self.label.setObjectName("about_text")
        self.label.setTextFormat(Qt.TextFormat.RichText)
        self.label.setWordWrap(True)
        self.conformance_button = QPushButton("DICOM Conformance Statement…", self)
        self.conformance_button.setObjectName("conformance_button")
        self.conformance_button.clicked.connect(self.show_conformance)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.label)
        layout.addWidget(self.conformance_button)
        layout.addWidget(buttons)
        self.conformance: DocumentDialog | None = None

    def show_conformance(self) -> None:
        self.conformance = DocumentDialog(
            "DICOM Conformance Statement", CONFORMANCE_DOC, self.parentWidget()
        )
        self.conformance.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.conformance.open()
