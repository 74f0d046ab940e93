"""Layouts: several viewports, one active (what keys and menus act on), a series dragged from
the strip into any of them, one maximised by a double click; a new study fills them."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from tests.qt.conftest import ct_dataset
from viewer.imaging.annotations import IDENTITY
from viewer.imaging.viewport import ROTATE_CW
from viewer.qt.main_window import MainWindow
from viewer.qt.strip import BROWSER_SERIES_MIME, SERIES_MIME, series_row
from viewer.qt.viewports import Viewport

SERIES = ("Lung", "Bone", "Soft", "Angio", "Late")


def write_study(root: Path, name: str = "Müller^Jürgen", pid: str = "PID-42") -> Path:
    """One study of five CT series, three slices each; series k has pixels 100 * (k + 1)."""
    for k, description in enumerate(SERIES):
        folder = root / f"se{k}"
        folder.mkdir(parents=True)
        for i in range(3):
            pixels = ct_dataset(16, 16).pixel_array * 0 + 100 * (k + 1)
            ds = ct_dataset(16, 16, z=float(i), number=i + 1, pixels=pixels)
            ds.StudyInstanceUID = f"1.2.826.0.1.3680043.10.77.{pid.replace('-', '')[-2:]}"
            ds.SeriesInstanceUID = f"{ds.StudyInstanceUID}.{k}"
            ds.SeriesNumber, ds.SeriesDescription = k + 1, description
            ds.PatientName, ds.PatientID = name, pid
            ds.save_as(folder / f"IM{i}.dcm", enforce_file_format=True)
    return root


@pytest.fixture
def window(store_window: MainWindow) -> MainWindow:
    store_window.resize(1200, 900)
    return store_window


def shown(qtbot, viewport: Viewport) -> str:  # type: ignore[no-untyped-def]
    """The series description a viewport shows ("" when empty), once its image is there."""
    if viewport.stack is None:
        return ""
    qtbot.waitUntil(viewport.view.is_displayable, timeout=30000)
    return viewport.stack.series_description


def descriptions(qtbot, window: MainWindow) -> list[str]:  # type: ignore[no-untyped-def]
    return [shown(qtbot, v) for v in window.grid.viewports]


def open_study(qtbot, window: MainWindow, root: Path) -> None:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(window.opened, timeout=30000):
        window.open_paths([root])


def click(viewport: Viewport) -> None:
    QTest.mouseClick(viewport.view, Qt.MouseButton.LeftButton, pos=viewport.view.rect().center())


def test_a_layout_fills_with_the_study_s_series_and_menus_act_on_the_active_one(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    open_study(qtbot, window, write_study(tmp_path / "study"))
    assert descriptions(qtbot, window) == ["Lung"]
    window.actions_by_name["layout_2x2"].trigger()
    assert window.grid.shape == (2, 2) and len(window.grid.viewports) == 4
    # the first stays, the new ones get the next series of the study
    assert descriptions(qtbot, window) == ["Lung", "Bone", "Soft", "Angio"]
    first, second, third, _fourth = window.grid.viewports
    assert window.view is first.view and first.active
    assert "#f39c12" in first.styleSheet() and "#f39c12" not in second.styleSheet()

    click(third)
    assert window.grid.active is third and window.view is third.view
    assert third.active and not first.active
    assert window.series_list.currentRow() == 2  # the strip follows the active viewport
    window.actions_by_name["invert"].trigger()
    assert third.view.inverted and not first.view.inverted and not second.view.inverted
    QTest.keyClick(third.view, Qt.Key.Key_R)  # a key acts on the viewport it was typed in
    assert third.view.orient == ROTATE_CW and first.view.orient == IDENTITY
    window.actions_by_name["rotate_left"].trigger()
    assert third.view.orient == IDENTITY

    # a click in the strip shows that series in the active viewport only
    window.series_list.setCurrentRow(4)
    assert descriptions(qtbot, window) == ["Lung", "Bone", "Late", "Angio"]
    assert "Late" in window.windowTitle() or "5" in window.windowTitle()


def test_a_series_dragged_from_the_strip_lands_in_the_viewport_it_is_dropped_on(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    open_study(qtbot, window, write_study(tmp_path / "study"))
    window.set_layout(1, 2)
    _left, right = window.grid.viewports
    assert descriptions(qtbot, window) == ["Lung", "Bone"]
    strip = window.series_list
    mime = strip.mimeData([strip.item(3)])
    assert mime.hasFormat(SERIES_MIME) and series_row(mime) == 3
    at = right.rect().center()
    args = (Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier(0))
    enter = QDragEnterEvent(at, *args)
    QApplication.sendEvent(right, enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(at), *args)
    QApplication.sendEvent(right, drop)
    assert drop.isAccepted()
    assert descriptions(qtbot, window) == ["Lung", "Angio"]
    assert window.grid.active is right and strip.currentRow() == 3
    # files dropped on a viewport go on to the window, which opens them
    files = QMimeData()
    files.setUrls([QUrl.fromLocalFile(str(tmp_path / "study"))])
    enter = QDragEnterEvent(at, Qt.DropAction.CopyAction, files, *args[2:])
    QApplication.sendEvent(right, enter)
    assert enter.isAccepted()
    # a series dragged from the browser's strip (its rows are the browser's series)
    browser_strip = window.browser.series_strip
    assert browser_strip.dragEnabled() and strip.dragEnabled()
    mime = browser_strip.mimeData([browser_strip.item(2)])
    assert mime.hasFormat(BROWSER_SERIES_MIME) and not mime.hasFormat(SERIES_MIME)
    left = window.grid.viewports[0]
    at = left.rect().center()
    args = (Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier(0))
    QApplication.sendEvent(left, QDragEnterEvent(at, *args))
    drop = QDropEvent(QPointF(at), *args)
    QApplication.sendEvent(left, drop)
    assert drop.isAccepted()
    assert descriptions(qtbot, window) == ["Soft", "Angio"]
    assert window.grid.active is left


def test_a_double_click_maximises_one_viewport_and_another_brings_all_back(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    open_study(qtbot, window, write_study(tmp_path / "study"))
    window.set_layout(2, 2)
    viewports = window.grid.viewports
    descriptions(qtbot, window)
    target = viewports[1]
    QTest.mouseDClick(target.view, Qt.MouseButton.LeftButton, pos=target.view.rect().center())
    assert window.grid.maximised is target and window.grid.active is target
    assert [v.isVisible() for v in viewports] == [False, True, False, False]
    qtbot.waitUntil(lambda: target.view.width() > window.grid.width() * 0.9)
    QTest.mouseDClick(target.view, Qt.MouseButton.LeftButton, pos=target.view.rect().center())
    assert window.grid.maximised is None and all(v.isVisible() for v in viewports)


def test_a_new_patient_empties_the_other_viewports_and_a_smaller_layout_lets_go(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    open_study(qtbot, window, write_study(tmp_path / "a"))
    window.set_layout(3, 3)
    assert descriptions(qtbot, window) == [*SERIES, "", "", "", ""]
    click(window.grid.viewports[4])
    other = write_study(tmp_path / "b", name="Smith^Anna", pid="X-7")
    for folder in sorted(other.glob("se*"))[2:]:  # two series only
        for file in folder.iterdir():
            file.unlink()
        folder.rmdir()
    open_study(qtbot, window, other)
    # the new study fills from the first viewport; nothing of the other patient stays beside
    assert descriptions(qtbot, window) == ["Lung", "Bone", "", "", "", "", "", "", ""]
    assert window.grid.active is window.grid.viewports[0]
    for viewport in window.grid.viewports[:2]:
        assert viewport.view.corner_lines()["top_left"][0] == "Smith, Anna"
    gone = window.grid.viewports[1].source
    window.set_layout(1, 1)
    assert len(window.grid.viewports) == 1 and window.grid.viewports[0].stack is not None
    assert gone is not None
    qtbot.waitUntil(lambda: gone._closed, timeout=10000)  # closed on a worker


def test_custom_layout_and_the_menu_says_which_is_on(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, tmp_path: Path, monkeypatch
) -> None:
    open_study(qtbot, window, write_study(tmp_path / "study"))
    monkeypatch.setattr(window, "ask_layout", lambda rows, columns: (1, 3))
    window.actions_by_name["layout_custom"].trigger()
    assert window.grid.shape == (1, 3)
    assert descriptions(qtbot, window) == ["Lung", "Bone", "Soft"]
    monkeypatch.setattr(window, "ask_layout", lambda rows, columns: (9, 9))
    window.actions_by_name["layout_custom"].trigger()
    assert window.grid.shape == (4, 4)  # at most 4 × 4
    monkeypatch.setattr(window, "ask_layout", lambda rows, columns: (0, 0))  # cancelled
    window.actions_by_name["layout_custom"].trigger()
    assert window.grid.shape == (4, 4)
    window.set_layout(2, 2)
    menu = window.findChild(type(window.menuBar().actions()[0].menu()), "layout_menu")
    assert menu is not None
    menu.aboutToShow.emit()
    checked = [name for name, a in window.actions_by_name.items() if name.startswith("layout_")]
    assert [n for n in checked if window.actions_by_name[n].isChecked()] == ["layout_2x2"]


def test_a_series_of_another_patient_dragged_from_the_browser_is_refused(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    root = tmp_path / "disc"
    write_study(root / "a")
    write_study(root / "b", name="Smith^Anna", pid="X-7")
    open_study(qtbot, window, root)
    shown = descriptions(qtbot, window)
    browser = window.browser
    other = next(i for i, r in enumerate(browser.studies()) if r[0] == "Smith, Anna")
    if browser.table.selectionModel().currentIndex().row() == other:
        other = 1 - other  # the one not shown is the other patient's
    browser.table.selectRow(other)
    strip = browser.series_strip
    mime = strip.mimeData([strip.item(0)])
    viewport = window.grid.viewports[0]
    at = viewport.rect().center()
    args = (Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier(0))
    QApplication.sendEvent(viewport, QDragEnterEvent(at, *args))
    QApplication.sendEvent(viewport, QDropEvent(QPointF(at), *args))
    assert "Not shown:" in window.statusBar().currentMessage()
    assert descriptions(qtbot, window) == shown
