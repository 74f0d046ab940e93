"""The main window end to end: opening by menu, drag-and-drop and command line, real files,
the real scanner, stack builder and loader; problems named in the panel and on stderr."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMessageBox

from tests.qt.conftest import ct_dataset, write_series
from viewer.qt import browser
from viewer.qt.main_window import MainWindow
from viewer.store import Store, check, import_paths, list_studies


@pytest.fixture
def window(qtbot) -> Iterator[MainWindow]:  # type: ignore[no-untyped-def]
    main = MainWindow()
    qtbot.addWidget(main)
    main.resize(900, 700)
    main.show()
    qtbot.waitExposed(main)
    yield main
    main.close()
    assert not any(t.name == "SeriesLoader" and t.is_alive() for t in threading.enumerate())


def wait_for_image(qtbot, main: MainWindow) -> None:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: main.view.is_displayable(), timeout=30000)


def test_open_file_by_menu_scans_off_the_gui_thread(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, tmp_path: Path, monkeypatch
) -> None:
    paths = write_series(tmp_path / "ct", count=3)
    threads: list[threading.Thread] = []
    real_scan = browser.scan

    def spying_scan(*args, **kwargs):  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread())
        return real_scan(*args, **kwargs)

    monkeypatch.setattr(browser, "scan", spying_scan)
    monkeypatch.setattr(window, "ask_files", lambda: [str(p) for p in paths])
    with qtbot.waitSignal(window.opened, timeout=30000) as opened:
        window.actions_by_name["open_file"].trigger()
    assert opened.args == [1]
    assert threads and all(t is not threading.main_thread() for t in threads)
    wait_for_image(qtbot, window)
    assert window.series_list.count() == 1
    assert window.series_list.item(0).text() == "Se 3 CT\nLung 1.0\n3 images"
    assert window.view.count() == 3
    # three files of one series opened together: one study row, not one per file
    assert [row[-1] for row in window.browser.studies()] == ["3"]
    qtbot.waitUntil(lambda: window.decoded_count == 3, timeout=30000)
    assert window.statusBar().currentMessage() == "3 images decoded"
    # Sorted along the slice normal (z ascending), not by file name or instance number.
    assert window.view.corner_lines()["bottom_left"][2].startswith("Loc: -10.0 mm")


def test_open_folder_by_menu_gives_one_stack_per_series(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, tmp_path: Path, monkeypatch
) -> None:
    write_series(tmp_path / "a", count=3)
    second = tmp_path / "b"
    second.mkdir()
    for i in range(2):
        ds = ct_dataset(16, 16, z=float(i), number=i + 1, series_uid="1.2.3.4.6")
        ds.SeriesNumber = 4
        ds.SeriesDescription = "Bone"
        ds.save_as(second / f"{i}.dcm", enforce_file_format=True)
    monkeypatch.setattr(window, "ask_folder", lambda: str(tmp_path))
    with qtbot.waitSignal(window.opened, timeout=30000) as opened:
        window.actions_by_name["open_folder"].trigger()
    assert opened.args == [2]
    labels = [window.series_list.item(i).text() for i in range(window.series_list.count())]
    assert labels == ["Se 3 CT\nLung 1.0\n3 images", "Se 4 CT\nBone\n2 images"]
    wait_for_image(qtbot, window)
    window.series_list.setCurrentRow(1)
    wait_for_image(qtbot, window)
    assert window.view.count() == 2
    assert window.view.corner_lines()["bottom_left"][0] == "Se: 4 Bone"


def test_drop_files_and_folders_on_the_window(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    write_series(tmp_path / "dropped", count=2)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tmp_path / "dropped"))])
    enter = QDragEnterEvent(
        QPoint(300, 300),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(
        QPointF(300, 300),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    with qtbot.waitSignal(window.opened, timeout=30000) as opened:
        QApplication.sendEvent(window, drop)
    assert opened.args == [1]
    wait_for_image(qtbot, window)
    # Text is not a file: refused.
    text = QMimeData()
    text.setText("not a path")
    refused = QDragEnterEvent(
        QPoint(300, 300),
        Qt.DropAction.CopyAction,
        text,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(window, refused)
    assert not refused.isAccepted()


def test_problems_are_listed_and_the_rest_loads(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, tmp_path: Path, capfd
) -> None:
    folder = tmp_path / "mixed"
    paths = write_series(folder, count=3)
    whole = paths[0].read_bytes()
    truncated = folder / "truncated.dcm"
    truncated.write_bytes(whole[: len(whole) // 2])  # header intact, Pixel Data cut short
    broken = folder / "broken.dcm"
    broken.write_bytes(whole[:200])  # "DICM" and then nothing readable
    with qtbot.waitSignal(window.opened, timeout=30000):
        window.open_paths([folder])
    wait_for_image(qtbot, window)

    def texts() -> list[str]:
        return [window.problems_list.item(i).text() for i in range(window.problems_list.count())]

    # broken.dcm fails the scan; truncated.dcm fails when the loader decodes it.
    qtbot.waitUntil(lambda: any("truncated.dcm" in t for t in texts()), timeout=30000)
    assert any("broken.dcm" in t for t in texts()), texts()
    # a count opens the panel on demand; it does not pop up over the image
    assert not window.problems_dock.isVisible()
    assert window.problems_button.isVisible()
    assert window.problems_button.text() == f"⚠ {len(texts())} problems"
    QTest.mouseClick(window.problems_button, Qt.MouseButton.LeftButton)
    assert window.problems_dock.isVisible()
    err = capfd.readouterr().err
    assert "broken.dcm" in err and "Müller" not in err
    # The good slices display whatever the bad files did.
    assert window.view.count() == 4
    # another medium: the earlier disc's problems go
    with qtbot.waitSignal(window.opened, timeout=30000):
        window.open_paths([write_series(tmp_path / "healthy", count=2)[0].parent])
    assert texts() == [] and not window.problems_button.isVisible()


def test_missing_path_is_a_problem_not_a_crash(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, tmp_path: Path, capfd
) -> None:
    with qtbot.waitSignal(window.opened, timeout=30000) as opened:
        window.open_paths([tmp_path / "nowhere"])
    assert opened.args == [0]
    assert window.problems_list.item(0).text() == f"{tmp_path / 'nowhere'}: no such file or folder"
    assert "nowhere: no such file or folder" in capfd.readouterr().err


def test_one_fact_from_two_readers_is_one_line(window: MainWindow) -> None:
    from viewer.model import Kind, Problem

    missing = "/media/DICOM/IMG1"
    window.report_problems(
        [Problem(missing, "referenced by DICOMDIR record 1 but missing", Kind.MISSING)]
    )
    window.report_problems(
        [
            Problem(missing, "referenced by the DICOMDIR but missing", Kind.MISSING),
            Problem("/media/DICOM/X", "not a DICOM file"),
            Problem("/media/DICOM/X", "not a DICOM file"),
        ]
    )
    lines = [window.problems_list.item(i).text() for i in range(window.problems_list.count())]
    assert lines == [
        f"{missing}: referenced by DICOMDIR record 1 but missing",
        "/media/DICOM/X: not a DICOM file",
    ]


def test_demo_study_when_no_path(qtbot) -> None:  # type: ignore[no-untyped-def]
    from viewer.media.demo import demo_paths
    from viewer.qt.app import create_main_window

    if not demo_paths():
        pytest.skip("pydicom's bundled files are absent")
    main = create_main_window([])
    qtbot.addWidget(main)
    with qtbot.waitSignal(main.opened, timeout=30000) as opened:
        pass
    assert opened.args[0] >= 3
    wait_for_image(qtbot, main)
    assert main.view.edge_letters()  # the demo CT has its orientation
    # Shown, never imported: the store stays empty and the browser offers nothing to import.
    assert main.browser.store is not None and not list_studies(main.browser.store)
    assert not main.browser.showing_media and main.browser.studies() == []
    assert not main.browser.import_button.isEnabled()
    # Labelled as the demo wherever the patient is named, and the welcome says so.
    assert main.whose_label.text().startswith("DEMO: sample images that ship with pydicom")
    assert main.whose_label.isVisible() and main.showing_demo
    assert main.windowTitle().startswith("Lightbox — DEMO — ")
    assert main.welcome is not None and main.welcome.isVisible()  # the first start
    assert "The images on screen are a demo" in main.welcome.text.text()
    main.close()
    with Store.open() as store:
        assert not list_studies(store) and check(store).ok and check(store).instances == 0


def test_the_welcome_comes_by_itself_once_then_when_asked(qtbot) -> None:  # type: ignore[no-untyped-def]
    from viewer import settings
    from viewer.config import app_home
    from viewer.qt.app import create_main_window

    first = create_main_window([])
    qtbot.addWidget(first)
    welcome = first.welcome
    assert welcome is not None and welcome.isVisible() and not welcome.isModal()
    text = welcome.text.text()
    for job in ("Read a patient's disc", "Query a PACS", "Burn a disc"):
        assert job in text
    assert str(app_home()) in text and str(first.browser.store.root) in text
    assert not welcome.show_at_start.isChecked()
    first.close()
    second = create_main_window([])
    qtbot.addWidget(second)
    assert second.welcome is None  # not again by itself
    second.actions_by_name["welcome"].trigger()  # Help > Welcome
    assert second.welcome is not None and second.welcome.isVisible()
    second.welcome.show_at_start.setChecked(True)  # the reader wants it at every start
    assert settings.get("welcome_at_start") is True
    second.close()
    third = create_main_window([])
    qtbot.addWidget(third)
    assert third.welcome is not None and third.welcome.isVisible()
    third.close()


def test_size_layout_and_last_folder_are_remembered(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from viewer.qt.app import create_main_window

    (tmp_path / "discs" / "cd1").mkdir(parents=True)
    first = create_main_window([])
    qtbot.addWidget(first)
    first.resize(760, 560)  # within the offscreen screen (800 x 600): restoring clamps to it
    first.set_layout(1, 2)
    first.browser_dock.hide()
    first.last_folder = str(tmp_path / "discs")
    left = first.size()
    first.close()
    second = create_main_window([])
    qtbot.addWidget(second)
    assert second.size() == left
    assert second.grid.shape == (1, 2)
    assert second.last_folder == str(tmp_path / "discs")
    assert not second.browser_dock.isVisible()  # the docks as they were left
    second.close()
    kept = json.loads((Path(os.environ["LIGHTBOX_HOME"]) / "settings.json").read_text())
    assert kept["layout"] == [1, 2] and kept["last_folder"] == str(tmp_path / "discs")


def test_damaged_settings_start_with_the_defaults(qtbot) -> None:  # type: ignore[no-untyped-def]
    from viewer.qt.app import create_main_window

    (Path(os.environ["LIGHTBOX_HOME"]) / "settings.json").write_text(
        '{"window_geometry": "%%%", "layout": [99, -1], "last_folder": 7}'
    )
    main = create_main_window([])
    qtbot.addWidget(main)
    assert main.grid.shape == (1, 1) and main.last_folder == ""
    assert (main.width(), main.height()) == (1280, 900)
    main.close()


def test_no_path_on_a_store_with_studies_shows_the_store_not_the_demo(  # type: ignore[no-untyped-def]
    qtbot, tmp_path: Path
) -> None:
    from viewer.qt.app import create_main_window

    with Store.open() as store:
        report = import_paths(store, write_series(tmp_path / "kept", count=2))
        assert len(report.imported) == 2
    main = create_main_window([])
    qtbot.addWidget(main)
    assert main._worker is None  # no demo being opened
    assert [row[0] for row in main.browser.studies()] == ["Müller, Jürgen"]
    assert main.browser.series_strip.count() == 1
    main.close()


def test_a_path_opens_in_the_browser_and_shows_its_first_series(  # type: ignore[no-untyped-def]
    qtbot, tmp_path: Path
) -> None:
    from viewer.qt.app import create_main_window

    write_series(tmp_path / "disc" / "a", count=3)
    main = create_main_window([str(tmp_path / "disc")])
    qtbot.addWidget(main)
    with qtbot.waitSignal(main.opened, timeout=30000) as opened:
        pass
    assert opened.args == [1]
    wait_for_image(qtbot, main)
    assert main.browser.showing_media and main.browser.media_paths == [tmp_path / "disc"]
    assert main.welcome is None  # nothing covers what the reader asked to open
    assert main.browser.studies()[0][:2] == ["Müller, Jürgen", "PID-42"]
    assert main.series_list.currentRow() == 0 and main.view.count() == 3
    with Store.open() as store:
        assert not list_studies(store)  # opening is not importing
    main.close()


def test_command_line_opens_the_gui_on_a_path(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``lightbox open FILE`` reaches run_gui, which shows the image; closing returns 0."""
    from viewer import cli

    path = write_series(tmp_path / "cli", count=1)[0]
    shown: list[int] = []

    def close_when_shown() -> None:
        mains = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)]
        if not mains:
            QTimer.singleShot(20, close_when_shown)
            return
        main = mains[-1]

        def on_shown(position: int) -> None:
            shown.append(position)
            main.close()

        main.view.image_shown.connect(on_shown)

    QTimer.singleShot(0, close_when_shown)
    assert cli.main(["open", str(path)]) == 0
    assert shown == [0]
    for widget in QApplication.topLevelWidgets():
        if isinstance(widget, MainWindow):
            widget.deleteLater()


def test_closing_while_opening_leaves_no_thread(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "many"
    write_series(folder, count=30, rows=8, cols=8)
    main = MainWindow()
    qtbot.addWidget(main)
    main.open_paths([folder])
    main.close()  # cancels and joins the scan
    assert main._worker is None and not main.browser.busy()
    assert not any(t.name == "SeriesLoader" and t.is_alive() for t in threading.enumerate())


def test_shared_hard_file_message_or_image(qtbot, window: MainWindow, shared_data: Path) -> None:  # type: ignore[no-untyped-def]
    """A file from the shared hard cases: it shows, or the view says exactly why."""
    hard = sorted((shared_data / "hard").glob("*"))
    files = [p for p in hard if p.is_file()][:1]
    if not files:
        pytest.skip("no hard cases in the shared data")
    target = window.view
    with qtbot.waitSignal(window.opened, timeout=30000):
        window.open_paths([files[0]])
    qtbot.waitUntil(
        lambda: target.is_displayable() or window.problems_list.count() > 0, timeout=60000
    )


def test_window_menu_presets_file_windows_and_invert(window: MainWindow) -> None:
    from tests.qt.conftest import ArraySource, ramp
    from viewer.imaging.display import CT_PRESETS, Window

    ds = ct_dataset(16, 16)
    ds.WindowCenter, ds.WindowWidth = [40, 300], [400, 1500]
    ds.WindowCenterWidthExplanation = ["SOFT TISSUE", "BONE"]
    source = ArraySource([ds], [ramp(16, 16)])
    window.view.set_source(source)
    window.actions_by_name["preset_lung"].trigger()
    assert window.view.effective_window() == CT_PRESETS["lung"]
    assert window.actions_by_name["preset_lung"].text() == "CT lung -600/1500 HU\t4"
    menu = window.file_windows_menu
    menu.aboutToShow.emit()
    labels = [a.text() for a in menu.actions()]
    assert labels == ["SOFT TISSUE (40/400)", "BONE (300/1500)"]
    menu.actions()[1].trigger()
    assert window.view.effective_window() == Window(300, 1500, explanation="BONE")
    window.actions_by_name["window_default"].trigger()
    assert window.view.effective_window() == Window(40, 400, explanation="SOFT TISSUE")
    window.actions_by_name["invert"].trigger()
    assert window.view.inverted
    window.view.toggle_invert()  # by key: the menu's tick follows
    assert not window.actions_by_name["invert"].isChecked()
    window.actions_by_name["rotate_right"].trigger()
    assert window.view.edge_letters()["right"] == "A"
    window.actions_by_name["overlays"].trigger()
    assert not window.view.overlays_visible
    window.view.set_source(None)


def test_presets_follow_the_modality(window: MainWindow) -> None:
    """Keys 1-8 are CT's windows on a CT only; on an MR they pick the file's windows, and the
    CT presets in the menu are disabled (they were applied to MR in HU)."""
    from PySide6.QtTest import QTest

    from tests.qt.conftest import ArraySource, ramp
    from viewer.imaging.display import CT_PRESETS, Window

    mr = ct_dataset(16, 16)
    mr.Modality = "MR"
    del mr.RescaleIntercept, mr.RescaleSlope
    mr.WindowCenter, mr.WindowWidth = [99.0918, 500], [238.184, 1000]
    window.view.set_source(ArraySource([mr], [ramp(16, 16)]))
    QTest.keyClick(window.view, Qt.Key.Key_2)
    assert window.view.effective_window() == Window(500, 1000)
    QTest.keyClick(window.view, Qt.Key.Key_4)  # no fourth window in the file: nothing happens
    assert window.view.effective_window() == Window(500, 1000)
    QTest.keyClick(window.view, Qt.Key.Key_1)
    assert "W: 238 L: 99" in window.view.corner_lines()["bottom_right"][0]
    window.menuBar().actions()[1].menu().aboutToShow.emit()
    assert not window.actions_by_name["preset_lung"].isEnabled()
    window.file_windows_menu.aboutToShow.emit()
    assert window.file_windows_menu.actions()[0].text().endswith("\t1")

    ct = ct_dataset(16, 16)
    window.view.set_source(ArraySource([ct], [ramp(16, 16)]))
    QTest.keyClick(window.view, Qt.Key.Key_4)
    assert window.view.effective_window() == CT_PRESETS["lung"]
    window.menuBar().actions()[1].menu().aboutToShow.emit()
    assert window.actions_by_name["preset_lung"].isEnabled()
    window.view.set_source(None)


def test_f1_help_scrolls_and_fits_the_screen(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    QTest.keyClick(window, Qt.Key.Key_F1)
    qtbot.waitUntil(lambda: window.help_dialog.isVisible(), timeout=5000)
    dialog = window.help_dialog
    text = dialog.browser.toPlainText()
    assert "Window/level" in text and "Shift" in text
    screen = window.screen().availableGeometry()
    assert dialog.height() <= screen.height()  # the message box was 1504 px tall
    dialog.resize(600, 300)
    qtbot.waitUntil(lambda: dialog.browser.verticalScrollBar().maximum() > 0, timeout=5000)
    dialog.close()


def test_about_names_version_licences_and_the_conformance_statement(
    qtbot, window: MainWindow
) -> None:  # type: ignore[no-untyped-def]
    from viewer import __version__

    window.actions_by_name["about"].trigger()
    about = window.about_dialog
    qtbot.waitUntil(about.isVisible, timeout=5000)
    text = about.label.text()
    assert f"Lightbox {__version__}" in text and "GPL-3.0-or-later" in text
    assert "pylibjpeg-libjpeg" in text and "pydicom" in text
    about.conformance_button.click()
    assert about.conformance is not None
    qtbot.waitUntil(about.conformance.isVisible, timeout=5000)
    assert "Conformance Statement" in about.conformance.browser.toPlainText()
    about.conformance.close()
    about.close()
    window.actions_by_name["conformance"].trigger()
    assert "Implementation Class UID" in window.help_dialog.browser.toPlainText()
    window.help_dialog.close()


def test_decoding_progress_ends_with_frames_decoded_early_or_failed(
    qtbot, window: MainWindow
) -> None:  # type: ignore[no-untyped-def]
    """'Decoding… 187/188' never finished: frames delivered before the window connected to
    the source were not counted, nor were frames that failed."""
    from tests.qt.conftest import ArraySource, ct_series

    datasets, arrays = ct_series(4)
    source = ArraySource(datasets, arrays, loaded=False)
    source.deliver(0)  # before the window listens, as a fast loader does
    window._show_source(source)
    assert window.decoded_count == 1
    source.deliver(1, from_thread=True)
    source.deliver(2, from_thread=True)
    qtbot.waitUntil(lambda: window.decoded_count == 3, timeout=5000)
    assert window.statusBar().currentMessage() == "Decoding… 3/4"
    source.fail(3, "frame 4: cannot decode it")
    qtbot.waitUntil(lambda: "cannot be shown" in window.statusBar().currentMessage(), timeout=5000)
    assert window.statusBar().currentMessage().startswith("3 of 4 images decoded; 1 cannot")
    window._show_source(None)


def test_a_window_saved_as_a_preset_is_offered_for_the_modality(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.qt.conftest import ArraySource, ramp
    from viewer.imaging.display import Window

    mr = ct_dataset(16, 16)
    mr.Modality = "MR"
    main = MainWindow()
    qtbot.addWidget(main)
    main.view.set_source(ArraySource([mr], [ramp(16, 16)]))
    main.view.set_window(Window(350, 700))
    main.ask_preset_name = lambda suggestion: "Brain T2"  # type: ignore[method-assign]
    main.actions_by_name["save_preset"].trigger()
    main.view.set_source(None)
    main.close()

    again = MainWindow()  # another session: the preset is still there
    qtbot.addWidget(again)
    again.view.set_source(ArraySource([mr], [ramp(16, 16)]))
    again.user_presets_menu.aboutToShow.emit()
    (action,) = again.user_presets_menu.actions()
    assert action.text() == "Brain T2 350/700"
    action.trigger()
    assert again.view.effective_window() == Window(350, 700, explanation="Brain T2")
    ct = ct_dataset(16, 16)
    again.view.set_source(ArraySource([ct], [ramp(16, 16)]))
    again.user_presets_menu.aboutToShow.emit()
    assert [a.text() for a in again.user_presets_menu.actions()] == ["(none saved for CT)"]
    again.view.set_source(None)
    again.close()


def test_a_frame_the_pipeline_refuses_is_reported(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    from tests.qt.conftest import ArraySource, ramp

    good = ct_dataset(16, 16)
    bad = ct_dataset(16, 16, number=2)
    source = ArraySource([good, bad], [ramp(16, 16), ramp(16, 16)[0]])  # a 1-D "frame"
    window.view.set_source(source)
    QTest.keyClick(window.view, Qt.Key.Key_Down)
    with qtbot.waitSignal(window.problems_reported) as reported:
        window.view.grab()
    assert "cannot display" in reported.args[0][0].problem
    assert window.view.problem() == reported.args[0][0].problem
    assert window.problems_list.count() == 1
    QTest.keyClick(window.view, Qt.Key.Key_Up)  # the good frame still shows
    assert window.view.display_buffer() is not None
    window.view.set_source(None)


def test_switching_series_quickly_never_waits_and_leaves_nothing(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    write_series(tmp_path / "a", count=6)
    second = tmp_path / "b"
    second.mkdir()
    for i in range(6):
        ds = ct_dataset(32, 32, z=float(i), number=i + 1, series_uid="1.2.3.4.7")
        ds.SeriesNumber = 5
        ds.save_as(second / f"{i}.dcm", enforce_file_format=True)
    with qtbot.waitSignal(window.opened, timeout=30000):
        window.open_paths([tmp_path])
    for row in (1, 0, 1, 0, 1):  # faster than the loader can finish
        window.series_list.setCurrentRow(row)
    wait_for_image(qtbot, window)
    assert window.view.corner_lines()["bottom_left"][0] == "Se: 5 Lung 1.0"
    window.close()  # joins the background closes
    assert not any(t.name == "SourceClose" and t.is_alive() for t in threading.enumerate())


def test_help_saves_a_diagnostic_bundle_and_sets_the_log_level(  # type: ignore[no-untyped-def]
    qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zipfile

    from viewer import logs

    main = MainWindow(store=Store.open(tmp_path / "store"), volume_source=list)
    qtbot.addWidget(main)
    try:
        menu = main.log_level_menu
        menu.aboutToShow.emit()
        assert main.actions_by_name["log_level_info"].isChecked()  # the default
        main.actions_by_name["log_level_debug"].trigger()
        assert logs.log_level() == "DEBUG"
        assert "debug logs may record patient names" in main.statusBar().currentMessage()
        main.actions_by_name["log_level_warning"].trigger()
        menu.aboutToShow.emit()
        assert main.actions_by_name["log_level_warning"].isChecked()
        assert not main.actions_by_name["log_level_debug"].isChecked()

        target = tmp_path / "bundle.zip"
        job = main.save_diagnostic_bundle(target)
        assert job is not None
        qtbot.waitUntil(lambda: "Diagnostic bundle written" in main.statusBar().currentMessage())
        names = zipfile.ZipFile(target).namelist()
        assert "about.txt" in names
        assert not any(n.endswith((".dcm", ".sqlite", ".db")) for n in names)

        told: list[str] = []
        monkeypatch.setattr(QMessageBox, "warning", lambda _parent, _title, text: told.append(text))
        (tmp_path / "a-file").write_text("")
        job = main.save_diagnostic_bundle(tmp_path / "a-file" / "bundle.zip")
        assert job is not None
        qtbot.waitUntil(lambda: bool(told), timeout=10000)
        assert told[0].startswith(f"{tmp_path / 'a-file' / 'bundle.zip'} cannot be written: ")
    finally:
        main.close()
