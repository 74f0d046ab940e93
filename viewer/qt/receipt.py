"""A receipt on screen: the HTML that :mod:`viewer.media.receipt` writes after an import or a
hand-over, shown read-only, saved as HTML or as PDF, or printed.

The PDF is the same HTML laid out by Qt (``QTextDocument`` on a ``QPdfWriter``, A4 portrait), so
the command line's HTML receipt and the GUI's PDF say the same thing. Nothing in the receipt is
fetched: a receipt holds no link to load and no script to run (its values were escaped when it
was written).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from PySide6.QtCore import QMarginsF
from PySide6.QtGui import QPageLayout, QPageSize, QPdfWriter, QTextDocument
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QLabel,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from viewer.config import write_text

log = logging.getLogger(__name__)


def write_pdf(html: str, path: Path) -> None:
    """Lay ``html`` out on A4 pages and write it to ``path`` as PDF (whole or not at all)."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    document = QTextDocument()
    document.setHtml(html)
    writer = QPdfWriter(str(partial))
    writer.setTitle("Lightbox receipt")
    writer.setCreator("Lightbox")
    writer.setPageLayout(
        QPageLayout(
            QPageSize(QPageSize.PageSizeId.A4),
            QPageLayout.Orientation.Portrait,
            QMarginsF(15, 15, 15, 15),
            QPageLayout.Unit.Millimeter,
        )
    )
    try:
        document.print_(writer)
        del writer  # the file is finished when the writer goes
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


class ReceiptDialog(QDialog):
    """The receipt, with Save HTML…, Save PDF… and Close."""

    def __init__(self, html: str, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("receipt_dialog")
        self.setWindowTitle(f"Receipt — {title}")
        self.resize(760, 640)
        self.html = html
        self.browser = QTextBrowser()
        self.browser.setObjectName("receipt_view")
        self.browser.setOpenLinks(False)
        self.browser.setOpenExternalLinks(False)
        self.browser.setHtml(html)
        self.saved_label = QLabel()
        self.saved_label.setObjectName("saved_label")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        self.save_html_button = QPushButton("Save HTML…")
        self.save_html_button.setObjectName("save_html")
        self.save_html_button.clicked.connect(lambda: self.save("html"))
        self.save_pdf_button = QPushButton("Save PDF…")
        self.save_pdf_button.setObjectName("save_pdf")
        self.save_pdf_button.clicked.connect(lambda: self.save("pdf"))
        for button in (self.save_html_button, self.save_pdf_button):
            buttons.addButton(button, QDialogButtonBox.ButtonRole.ActionRole)
        layout = QVBoxLayout(self)
        layout.addWidget(self.browser, 1)
        layout.addWidget(self.saved_label)
        layout.addWidget(buttons)

    def save(self, kind: str, path: Path | None = None) -> Path | None:
        """Save as ``kind`` ("html" or "pdf"); asks where unless ``path`` is given."""
        if path is None:
            chosen, _ = QFileDialog.getSaveFileName(
                self,
                f"Save receipt as {kind.upper()}",
                f"receipt.{kind}",
                f"{kind.upper()} (*.{kind})",
            )
            if not chosen:
                return None
            path = Path(chosen)
        try:
            if kind == "pdf":
                write_pdf(self.html, path)
            else:
                write_text(path, self.html)
        except OSError as exc:
            self.saved_label.setText(f"Not saved: {path}: {exc.strerror or exc}")
            return None
        self.saved_label.setText(f"Saved {path}")
        log.info("receipt saved as %s", kind)
        return path
