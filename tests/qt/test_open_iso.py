"""The GUI opens an ISO 9660 image as it opens a disc (issue 13): unpacked on a worker, listed
from its DICOMDIR, its first series shown, checked, imported; the unpacked folder stays while
the medium or a series of it is open."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from tests.conftest import copy_pydicom_dicomdir_media
from viewer.media import disc_image
from viewer.media.iso import make_iso
from viewer.qt.main_window import MainWindow
from viewer.store import list_studies


@pytest.fixture
def image(tmp_path: Path) -> Path:
    folder = copy_pydicom_dicomdir_media(tmp_path / "folder")
    target = tmp_path / "disc.iso"
    make_iso(folder, target, "PYDICOM")
    return target


@pytest.fixture
def window(store_window: MainWindow) -> MainWindow:
    return store_window


def test_an_iso_opens_shows_checks_and_imports_like_a_disc(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, image: Path, monkeypatch
) -> None:
    browser = window.browser
    unpacking: list[str] = []
    real_unpack = disc_image._unpack

    def unpack(*args, **kwargs):  # type: ignore[no-untyped-def]  # the real one, watched
        unpacking.append(threading.current_thread().name)
        return real_unpack(*args, **kwargs)

    monkeypatch.setattr(disc_image, "_unpack", unpack)
    with qtbot.waitSignal(window.opened, timeout=60000):
        window.open_paths([image])
    qtbot.waitUntil(window.view.is_displayable, timeout=30000)
    media = browser.media
    assert media is not None and len(media.discs) == 1
    root = media.discs[0].root
    assert len(media.instances) == 31 and root.is_dir()
    assert all(root in Path(i.path).parents for i in media.instances)
    assert browser.source_combo.itemText(1) == f"Medium: {image}"
    # the health report names the image, found in the background once the files were read
    qtbot.waitUntil(lambda: browser._health_report is not None, timeout=60000)
    assert browser.health_button.isEnabled()
    report = browser._health_report
    assert report is not None
    assert str(report.root) == f"{image}!" and len(report.present) == 31
    # import from the opened image: every instance once
    assert not browser.receipt_button.isEnabled()  # nothing imported yet: no receipt
    with qtbot.waitSignal(browser.import_finished, timeout=60000) as finished:
        qtbot.mouseClick(browser.import_button, Qt.MouseButton.LeftButton)
    imported = finished.args[0]
    assert len(imported.imported) == 31 and not imported.rejected
    assert all(s.startswith(f"{image}!/") for s in imported.imported)
    assert browser._store is not None
    stored = [r.num_instances for r in list_studies(browser._store)]
    assert sum(stored, 0) == 31
    # the receipt of that import: every instance the DICOMDIR listed, stored, with its SHA-256
    assert browser.receipt_button.isEnabled()
    qtbot.mouseClick(browser.receipt_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: browser.receipt_dialog is not None, timeout=60000)
    html = browser.receipt_dialog.html  # type: ignore[union-attr]
    assert "COMPLETE: all 31 instance(s) stored" in html, browser.status_label.text()
    assert browser.status_label.text() == "Import receipt: complete"
    browser.receipt_dialog.close()  # type: ignore[union-attr]
    # listed, read, checked and imported from one unpacking, done on a worker
    assert len(unpacking) == 1 and unpacking[0] != threading.main_thread().name
    # the series shown keeps its files when the browser lets the image go (LoaderSource)
    media.close()
    qtbot.wait(300)
    assert root.is_dir() and window.view.is_displayable()
