"""The receipt on screen: shown without running or fetching anything, saved as HTML and PDF."""

from __future__ import annotations

from pathlib import Path

from viewer.qt.receipt import ReceiptDialog, write_pdf

HTML = (
    "<html><body><h1>Import receipt</h1><p class='banner'>INCOMPLETE: 1 of 3 not stored</p>"
    "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p><table><tr><td>1.2.3</td>"
    "<td>9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08</td></tr></table>"
    "</body></html>"
)


def test_pdf_is_written_whole(qapp, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "receipt.pdf"
    write_pdf(HTML, target)
    data = target.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    assert [p.name for p in tmp_path.iterdir()] == ["receipt.pdf"]  # no partial left


def test_dialog_shows_the_receipt_as_text_and_saves_both(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dialog = ReceiptDialog(HTML, "disc of 5 Dec", None)
    qtbot.addWidget(dialog)
    dialog.show()
    text = dialog.browser.toPlainText()
    assert "INCOMPLETE: 1 of 3 not stored" in text
    assert "<script>alert(1)</script>" in text  # shown as text, never run
    assert dialog.save("html", tmp_path / "r.html") == tmp_path / "r.html"
    assert (tmp_path / "r.html").read_text() == HTML
    assert dialog.save("pdf", tmp_path / "r.pdf") == tmp_path / "r.pdf"
    assert (tmp_path / "r.pdf").read_bytes().startswith(b"%PDF-")
    assert dialog.saved_label.text() == f"Saved {tmp_path / 'r.pdf'}"


def test_an_unwritable_place_is_said_not_raised(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dialog = ReceiptDialog(HTML, "disc", None)
    qtbot.addWidget(dialog)
    assert dialog.save("html", tmp_path / "missing" / "r.html") is None
    assert dialog.saved_label.text().startswith("Not saved: ")
