"""Help > Welcome: what Lightbox is for, in three jobs, and where it keeps things.

Shown by itself on the first start (until *Show at start* is unticked) beside the demo study,
never modal: the reader can look at the images behind it. Every path in it is the real one of
this installation (the app folder of :func:`viewer.config.app_home`, the store's folder).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from viewer.text import escape

#: The three jobs, as (title, what to do). Menu paths are the menus' own words.
JOBS = (
    (
        "Read a patient's disc",
        "Insert the CD, DVD or USB stick: it is listed under Removable media in the browser "
        "(or use File > Open Folder…, Ctrl+Shift+O). Double-click a study to read it; drag "
        "the right mouse button to window, use the wheel to scroll, F1 lists every key.",
    ),
    (
        "Query a PACS",
        "Network > Nodes… adds the archive (AE title, host, port); Network > Query/Retrieve… "
        "finds studies and fetches them into the local store, in the background.",
    ),
    (
        "Burn a disc",
        "Select a study in the browser, then File > Export to CD/DVD/USB… (Ctrl+E): IHE PDI "
        "media with a DICOMDIR and a viewer-free index, optionally de-identified, checked "
        "after writing.",
    ),
)


class WelcomeDialog(QDialog):
    """The welcome: three jobs, the demo explained when it is on screen, where things live."""

    #: Whether the welcome should come again at the next start (the box's state).
    show_at_start_changed = Signal(bool)

    def __init__(
        self,
        *,
        home: Path,
        store: Path | None,
        demo: bool,
        show_at_start: bool,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("welcome_dialog")
        self.setWindowTitle("Welcome to Lightbox")
        self.setModal(False)
        parts = ["<h2>Lightbox: read, keep and send medical images</h2>"]
        if demo:
            parts.append(
                "<p><b>The images on screen are a demo:</b> sample images that ship with "
                "pydicom, of made-up patients. They are not imported; your local store is "
                "empty until you import a disc or retrieve a study.</p>"
            )
        parts.append("<ol>")
        for title, text in JOBS:
            parts.append(f"<li><p><b>{escape(title)}.</b> {escape(text)}</p></li>")
        parts.append("</ol>")
        store_text = escape(str(store)) if store is not None else "(not open)"
        parts.append(
            "<p><b>Where Lightbox keeps things</b><br>"
            f"Settings, network nodes, presets and logs: <tt>{escape(str(home))}</tt><br>"
            f"Local store (imported and received studies): <tt>{store_text}</tt></p>"
            "<p>Help > Keyboard and mouse (F1) lists every control; Help > Welcome shows "
            "this again.</p>"
        )
        self.text = QLabel("".join(parts))
        self.text.setObjectName("welcome_text")
        self.text.setTextFormat(Qt.TextFormat.RichText)
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.show_at_start = QCheckBox("Show this at start")
        self.show_at_start.setObjectName("welcome_show_at_start")
        self.show_at_start.setChecked(show_at_start)
        self.show_at_start.toggled.connect(self.show_at_start_changed)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(self.show_at_start)
        layout.addWidget(buttons)
        self.text.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.text.setFixedWidth(600)
        self.adjustSize()
