"""The study browser: filters and sorting on media and on the store, thumbnails and their cache,
opening a series, import with progress and cancel, the health report, removable media."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QPushButton

from tests.conftest import copy_pydicom_dicomdir_media
from tests.qt.conftest import ct_dataset, write_series
from viewer import model
from viewer.config import app_home
from viewer.media import scan as scan_module
from viewer.qt import browser as browser_module
from viewer.qt.browser import BrowserWidget
from viewer.qt.main_window import MainWindow
from viewer.qt.removable import is_removable_root, removable_volumes, system_volumes
from viewer.qt.sources import name_pattern, study_matches
from viewer.store import Store, StudyFilter, StudyRow, check, import_paths, list_studies

#: (patient name, ID, study date, [(modality, series number, description, images)])
STUDIES = [
    ("Müller^Jürgen", "PID-42", "20240131", [("CT", 3, "Lung", 6), ("CT", 4, "Bone", 5)]),
    ("Smith^Anna", "X-7", "20230615", [("MR", 1, "T1", 2)]),
    ("Smythe^Bob", "X-8", "20220101", [("CR", 1, "Chest", 1)]),
]
TOTAL = sum(n for *_, series in STUDIES for *_, n in series)


def write_studies(root: Path) -> Path:
    """Three patients, four series, 14 small images, each series in a folder of its own."""
    for s, (name, pid, date, series_list) in enumerate(STUDIES):
        for k, (modality, number, description, count) in enumerate(series_list):
            folder = root / f"st{s}" / f"se{k}"
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = np.full((16, 16), 100 * (i + 1), dtype=np.uint16)
                pixels[:8, :8] = 3000
                ds = ct_dataset(16, 16, z=float(i), number=i + 1, pixels=pixels)
                ds.StudyInstanceUID = f"1.2.826.0.1.3680043.10.9.{s}"
                ds.SeriesInstanceUID = f"1.2.826.0.1.3680043.10.9.{s}.{k}"
                ds.PatientName, ds.PatientID, ds.StudyDate = name, pid, date
                ds.AccessionNumber = f"ACC{s}"
                ds.Modality, ds.SeriesNumber, ds.SeriesDescription = modality, number, description
                ds.save_as(folder / f"IM{i}.dcm", enforce_file_format=True)
    return root


@pytest.fixture
def media(tmp_path: Path) -> Path:
    return write_studies(tmp_path / "disc")


def make_browser(qtbot, store: Store, **kwargs) -> BrowserWidget:  # type: ignore[no-untyped-def]
    widget = BrowserWidget(store=store, volume_source=kwargs.pop("volume_source", list), **kwargs)
    qtbot.addWidget(widget)
    widget.resize(1100, 600)
    widget.show()
    return widget


@pytest.fixture
def browser(qtbot, store: Store) -> Iterator[BrowserWidget]:  # type: ignore[no-untyped-def]
    widget = make_browser(qtbot, store)
    yield widget
    widget.shutdown()


def open_media(qtbot, widget: BrowserWidget, path: Path) -> None:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(widget.media_opened, timeout=30000):
        widget.open_media([path], show_first=False)


def names(widget: BrowserWidget) -> list[str]:
    return [row[0] for row in widget.studies()]


def type_into(qtbot, edit, text: str) -> None:  # type: ignore[no-untyped-def]
    edit.clear()
    qtbot.keyClicks(edit, text)


# ------------------------------------------------------------------------------ filters, sort
@pytest.mark.parametrize("source", ["media", "store"])
def test_filters_by_name_wildcards_id_date_range_and_modality(  # type: ignore[no-untyped-def]
    qtbot, browser: BrowserWidget, store: Store, media: Path, source: str
) -> None:
    if source == "media":
        open_media(qtbot, browser, media)
        assert browser.showing_media
    else:
        assert not import_paths(store, [media]).rejected
        browser.show_store()
        assert not browser.showing_media
    assert sorted(names(browser)) == ["Müller, Jürgen", "Smith, Anna", "Smythe, Bob"]
    müller = next(r for r in browser.studies() if r[0].startswith("Müller"))
    assert müller == [
        "Müller, Jürgen", "PID-42", "1960-02-29", "2024-01-31", "CT THORAX", "CT", "ACC0", "2",
        "11",
    ]  # fmt: skip

    type_into(qtbot, browser.name_filter, "sm*th*")
    assert sorted(names(browser)) == ["Smith, Anna", "Smythe, Bob"]
    type_into(qtbot, browser.name_filter, "SM?TH^*")
    assert names(browser) == ["Smith, Anna"]
    type_into(qtbot, browser.name_filter, "smy")  # no wildcard: names starting so
    assert names(browser) == ["Smythe, Bob"]
    browser.name_filter.setText("MÜ")  # QTest types ASCII only; case folds beyond it too
    assert names(browser) == ["Müller, Jürgen"]
    browser.name_filter.clear()

    type_into(qtbot, browser.id_filter, "x-8")
    assert names(browser) == ["Smythe, Bob"]
    type_into(qtbot, browser.id_filter, "X-?")
    assert len(names(browser)) == 2
    browser.id_filter.clear()

    qtbot.keyClicks(browser.date_from, "2023")  # incomplete: not applied yet
    assert len(names(browser)) == 3
    qtbot.keyClicks(browser.date_from, "0101")
    assert sorted(names(browser)) == ["Müller, Jürgen", "Smith, Anna"]
    type_into(qtbot, browser.date_to, "20231231")
    assert names(browser) == ["Smith, Anna"]
    browser.date_from.clear()
    assert sorted(names(browser)) == ["Smith, Anna", "Smythe, Bob"]
    browser.date_to.clear()

    browser.modality_filter.setCurrentText("CR")
    assert names(browser) == ["Smythe, Bob"]
    browser.modality_filter.setCurrentText("ct")
    assert names(browser) == ["Müller, Jürgen"]
    browser.modality_filter.setCurrentText("")
    assert len(names(browser)) == 3


def click_header(qtbot, widget: BrowserWidget, column: int) -> None:  # type: ignore[no-untyped-def]
    header = widget.table.horizontalHeader()
    x = header.sectionViewportPosition(column) + header.sectionSize(column) // 2
    QTest.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, 5))


def test_sorting_by_clicking_column_headers(  # type: ignore[no-untyped-def]
    qtbot, browser: BrowserWidget, media: Path
) -> None:
    open_media(qtbot, browser, media)
    # Newest study first by default.
    assert [r[3] for r in browser.studies()] == ["2024-01-31", "2023-06-15", "2022-01-01"]
    images = browser.studies()[0].index("11")
    click_header(qtbot, browser, images)
    first = [r[images] for r in browser.studies()]
    click_header(qtbot, browser, images)
    second = [r[images] for r in browser.studies()]
    assert sorted([first, second]) == [["1", "2", "11"], ["11", "2", "1"]]  # numbers, not text
    click_header(qtbot, browser, 0)
    by_name = names(browser)
    assert by_name in (
        ["Müller, Jürgen", "Smith, Anna", "Smythe, Bob"],
        ["Smythe, Bob", "Smith, Anna", "Müller, Jürgen"],
    )


def test_wildcards_match_like_the_store() -> None:
    row = StudyRow("1", "Smith^Anna", "X-7", "", "", "20230615", "", "", "", ("MR",), 1, 2)
    assert study_matches(row, StudyFilter(patient_name=name_pattern("smi")))
    assert not study_matches(row, StudyFilter(patient_name=name_pattern("mith")))
    assert study_matches(row, StudyFilter(patient_name="*MITH*"))
    assert not study_matches(row, StudyFilter(patient_name="[s]*"))  # brackets are literal
    assert not study_matches(row, StudyFilter(date_to="20230614"))


# ------------------------------------------------------------------------------ thumbnails
def choose_study(widget: BrowserWidget, name: str) -> None:
    row = names(widget).index(name)
    widget.table.selectRow(row)


def test_thumbnails_made_in_background_then_from_the_cache(  # type: ignore[no-untyped-def]
    qtbot, browser: BrowserWidget, store: Store, media: Path
) -> None:
    open_media(qtbot, browser, media)
    choose_study(browser, "Müller, Jürgen")
    assert browser.series_strip.count() == 2
    qtbot.waitUntil(lambda: browser.series_icons_ready() == 2, timeout=30000)
    assert browser.thumbnails.rendered == 2 and browser.thumbnails.from_disk == 0
    cached = sorted((app_home() / "thumbnails").glob("*.png"))
    assert len(cached) == 2
    image = QImage(str(cached[0]))
    assert not image.isNull() and image.width() == 16  # a small image keeps its size
    assert image.pixelColor(2, 2) != image.pixelColor(12, 12)  # the marker block is drawn
    # Back to the same study: from memory, no new work.
    choose_study(browser, "Smith, Anna")
    qtbot.waitUntil(lambda: browser.series_icons_ready() == 1, timeout=30000)
    choose_study(browser, "Müller, Jürgen")
    assert browser.series_icons_ready() == 2
    assert browser.thumbnails.rendered == 3 and browser.thumbnails.from_memory == 2

    # A new session reads them from disk (keyed by SOP Instance UID, so also for the store).
    second = make_browser(qtbot, store)
    try:
        open_media(qtbot, second, media)
        choose_study(second, "Müller, Jürgen")
        qtbot.waitUntil(lambda: second.series_icons_ready() == 2, timeout=30000)
        assert second.thumbnails.from_disk == 2 and second.thumbnails.rendered == 0
    finally:
        second.shutdown()


# ------------------------------------------------------------------------------ main window
@pytest.fixture
def window(qtbot, store: Store) -> Iterator[MainWindow]:  # type: ignore[no-untyped-def]
    main = MainWindow(store=store, volume_source=list)
    qtbot.addWidget(main)
    main.resize(1200, 900)
    main.show()
    qtbot.waitExposed(main)
    yield main
    main.close()


def test_an_opened_disc_gives_the_view_the_window_and_its_series_a_strip_beside_it(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, media: Path
) -> None:
    """At 1200x900 the image once got what the browser and the thumbnails left (43 %)."""
    with qtbot.waitSignal(window.opened, timeout=30000):
        window.open_paths([media])
    qtbot.waitUntil(window.view.is_displayable, timeout=30000)
    qtbot.waitUntil(lambda: not window.browser_dock.isVisible(), timeout=5000)

    def image_area() -> float:
        view, whole = window.view.size(), window.size()
        return view.width() * view.height() / (whole.width() * whole.height())

    # The window lays itself out again once the hidden dock's layout request is handled.
    qtbot.waitUntil(lambda: image_area() >= 0.75, timeout=5000)
    strip = window.series_list
    assert strip.width() <= 150 and strip.isVisible()
    assert strip.count() == len(window.stacks) == 2
    qtbot.waitUntil(lambda: strip.icons_ready() == 2, timeout=30000)  # thumbnails, not grey
    assert window.whose_label.text().startswith(window.browser.selection().title)


def test_double_click_opens_the_series_in_the_view(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, media: Path
) -> None:
    with qtbot.waitSignal(window.opened, timeout=30000) as opened:
        window.open_paths([media])
    assert opened.args == [2]  # the selected (top) study's series, the first shown
    qtbot.waitUntil(window.view.is_displayable, timeout=30000)
    strip = window.browser.series_strip
    choose_study(window.browser, "Müller, Jürgen")
    item = strip.item(1)
    assert item.text().startswith("Se 4 CT\nBone")
    centre = strip.visualItemRect(item).center()
    with qtbot.waitSignal(window.opened, timeout=30000) as opened:
        # A real double click: press, release, then the double-click event.
        QTest.mouseClick(strip.viewport(), Qt.MouseButton.LeftButton, pos=centre)
        QTest.mouseDClick(strip.viewport(), Qt.MouseButton.LeftButton, pos=centre)
    assert opened.args == [2]
    assert window.series_list.currentRow() == 1
    assert window.series_list.currentItem().text() == "Se 4 CT\nBone\n5 images"
    qtbot.waitUntil(window.view.is_displayable, timeout=30000)
    assert window.view.count() == 5


# ------------------------------------------------------------------------------ import
def test_import_with_progress_then_the_store_lists_it_and_again_is_already_present(  # type: ignore[no-untyped-def]
    qtbot, browser: BrowserWidget, store: Store, media: Path
) -> None:
    open_media(qtbot, browser, media)
    assert browser.import_button.isEnabled()
    seen: list[tuple[int, int]] = []
    with qtbot.waitSignal(browser.import_finished, timeout=60000) as finished:
        qtbot.mouseClick(browser.import_button, Qt.MouseButton.LeftButton)
        dialog = browser.progress_dialog
        assert dialog is not None and dialog.isVisible()
        dialog.canceled.connect(lambda: seen.append((-1, -1)))
        browser._import_job.progress_changed.connect(lambda d, t: seen.append((d, t)))  # type: ignore[union-attr]
    report = finished.args[0]
    assert len(report.imported) == TOTAL and not report.rejected and not report.cancelled
    assert browser.progress_dialog is None
    assert seen and seen[-1] == (TOTAL, TOTAL) and (-1, -1) not in seen
    assert not browser.showing_media  # the store, refreshed
    assert sorted(names(browser)) == ["Müller, Jürgen", "Smith, Anna", "Smythe, Bob"]
    assert browser.status_label.text().startswith(f"Import: {TOTAL} imported, 0 already")
    # The store's series open from the store's files.
    choose_study(browser, "Müller, Jürgen")
    assert browser.series_strip.count() == 2
    paths = [i.path for s in browser._series for i in s.instances]
    assert all(store.root in p.parents for p in paths)

    browser.source_combo.setCurrentIndex(1)  # the medium again
    with qtbot.waitSignal(browser.import_finished, timeout=60000) as finished:
        qtbot.mouseClick(browser.import_button, Qt.MouseButton.LeftButton)
    again = finished.args[0]
    assert not again.imported and len(again.already_present) == TOTAL
    assert f"0 imported, {TOTAL} already present" in browser.status_label.text()
    assert len(list_studies(store)) == 3


def test_cancel_import_leaves_the_store_consistent(  # type: ignore[no-untyped-def]
    qtbot, browser: BrowserWidget, store: Store, media: Path, monkeypatch
) -> None:
    reached, go = threading.Event(), threading.Event()
    real = browser_module.import_paths

    def gated(target, paths, *, cancel, progress):  # type: ignore[no-untyped-def]
        def gate(done: int, total: int) -> None:
            progress(done, total)
            if done == 3:
                reached.set()
                go.wait(30)

        return real(target, paths, cancel=cancel, progress=gate)

    monkeypatch.setattr(browser_module, "import_paths", gated)
    open_media(qtbot, browser, media)
    with qtbot.waitSignal(browser.import_finished, timeout=60000) as finished:
        qtbot.mouseClick(browser.import_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(reached.is_set, timeout=30000)
        dialog = browser.progress_dialog
        assert dialog is not None
        (cancel,) = dialog.findChildren(QPushButton)
        qtbot.mouseClick(cancel, Qt.MouseButton.LeftButton)
        go.set()
    report = finished.args[0]
    assert report.cancelled and 3 <= len(report.imported) < TOTAL
    assert report.not_processed == TOTAL - len(report.imported)
    assert "cancelled" in browser.status_label.text()
    assert check(store).ok
    indexed = sum(row.num_instances for row in list_studies(store))
    assert indexed == len(report.imported)
    assert browser.showing_media  # still the medium: it was not all imported


# ------------------------------------------------------------------------------ health
def test_health_dialog_lists_a_missing_file_of_a_dicomdir(  # type: ignore[no-untyped-def]
    qtbot, browser: BrowserWidget, tmp_path: Path
) -> None:
    tiny = Path(str(get_testdata_file("CT_small.dcm"))).parent / "dicomdirtests" / "TINY_ALPHA"
    root = tmp_path / "TINY"
    shutil.copytree(tiny, root)
    gone = sorted(root.glob("PT*/ST*/SE*/IM*"))[1]
    gone.unlink()
    open_media(qtbot, browser, root / "DICOMDIR")
    assert browser.health_button.isEnabled()
    qtbot.mouseClick(browser.health_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: browser.health_dialog is not None and browser.health_dialog.isVisible(),
        timeout=30000,
    )
    dialog = browser.health_dialog
    assert dialog is not None
    assert dialog.section("missing") == [str(gone.relative_to(root))]
    assert "1 missing" in dialog.summary_label.text()
    assert len(dialog.section("present")) == len(dialog.section("referenced")) - 1


def test_a_listed_medium_is_checked_in_the_background(  # type: ignore[no-untyped-def]
    qtbot, browser: BrowserWidget, tmp_path: Path
) -> None:
    """What reading the headers cannot tell (a record that disagrees with its file) reaches the
    problems without Health… being clicked; Health… then shows the report at once."""
    root = _dicomdir_disc(tmp_path)
    victim = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "DICOMDIR")[0]
    ds = pydicom.dcmread(victim)
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.2.1143.999"
    ds.save_as(victim)
    found: list[model.Problem] = []
    browser.problems_found.connect(found.extend)
    with qtbot.waitSignal(browser.health_checked, timeout=60000) as checked:
        browser.open_media([root], show_first=False)
    report = checked.args[0]
    said = [p for p in found if "the DICOMDIR says" in p.problem]
    assert [p.path for p in said] == [str(victim)]
    assert "Series Instance UID" in said[0].problem
    assert "files checked: " in browser.status_label.text()
    assert browser.media is not None and not any(
        "the DICOMDIR says" in p.problem for p in browser.media.problems
    )  # reading the headers did not see it: the background check did
    qtbot.mouseClick(browser.health_button, Qt.MouseButton.LeftButton)
    dialog = browser.health_dialog
    assert dialog is not None and dialog.isVisible()  # at once: no second check
    assert dialog.report is report


# ------------------------------------------------------------------------------ listing first
def _dicomdir_disc(tmp_path: Path) -> Path:
    return copy_pydicom_dicomdir_media(tmp_path / "disc")


@pytest.fixture
def gated_reads(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, list[int]]:
    """Reading file headers waits for the returned event (a slow CD); the list counts reads."""
    gate, reads = threading.Event(), []
    original = scan_module._outcomes

    def gated(files, quiet, cancel):  # type: ignore[no-untyped-def]
        reads.append(len(files))
        gate.wait(60)
        yield from original(files, quiet, cancel)

    monkeypatch.setattr(scan_module, "_outcomes", gated)
    return gate, reads


def test_a_dicomdir_medium_is_listed_before_its_files_are_read(  # type: ignore[no-untyped-def]
    qtbot, browser: BrowserWidget, tmp_path: Path, gated_reads
) -> None:
    gate, reads = gated_reads
    root = _dicomdir_disc(tmp_path)
    read_at_listing: list[int] = []
    browser.media_listed.connect(lambda _n: read_at_listing.append(len(reads)))
    opened: list[list[object]] = []
    browser.media_opened.connect(lambda _result, stacks: opened.append(stacks))
    with qtbot.waitSignal(browser.media_listed, timeout=30000) as listed:
        browser.open_media([root], show_first=True)
    assert listed.args == [6] and len(browser.studies()) == 6
    assert read_at_listing == [0]  # listed without opening one referenced file
    assert (
        browser.reading_files and not opened and "reading the files" in browser.status_label.text()
    )
    # the reader chooses the third study while the files are read: it stays chosen
    browser.table.selectRow(2)
    chosen = browser.studies()[2]
    with qtbot.waitSignal(browser.media_opened, timeout=60000):
        gate.set()
    assert reads and not browser.reading_files
    row = browser.table.selectionModel().currentIndex().row()
    assert browser.studies()[row][:5] == chosen[:5]
    uid = browser.selection()
    study_uids = {f.instance.study_instance_uid for stack in opened[0] for f in stack.frames}  # type: ignore[attr-defined]
    assert len(study_uids) == 1 and len(opened[0]) == browser.series_strip.count()
    assert uid.title.startswith(chosen[0])


def test_a_series_opened_from_the_listing_is_shown_once_its_files_are_read(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, tmp_path: Path, gated_reads
) -> None:
    """Stacks need the files' headers (the DICOMDIR has no positions): a series chosen from
    the listing is shown when they are read, that series and no other."""
    gate, _reads = gated_reads
    with qtbot.waitSignal(window.browser.media_listed, timeout=30000):
        window.open_paths([_dicomdir_disc(tmp_path)])
    counts = [int(row[7]) for row in window.browser.studies()]
    window.browser.table.selectRow(counts.index(3))  # a study with three series
    chosen = window.browser.selection().title
    series_uid = window.browser._series[1].series_instance_uid
    window.browser.open_series(1)  # what a double click on the strip does
    assert "opens when the files have been read" in window.browser.status_label.text()
    with qtbot.waitSignal(window.opened, timeout=60000):
        gate.set()
    assert window.stacks[window.series_list.currentRow()].series_instance_uid == series_uid
    assert window.whose_label.text().startswith(chosen)
    assert window.browser.selection().title == chosen
    assert not window.browser_dock.isVisible()
    qtbot.waitUntil(window.view.is_displayable, timeout=30000)


def test_problems_of_a_disc_stream_in_while_its_files_are_read(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, tmp_path: Path, monkeypatch
) -> None:
    root = _dicomdir_disc(tmp_path)
    gone = sorted(p for p in (root / "98892003").rglob("*") if p.is_file())[-1]
    gone.unlink()
    gate = threading.Event()
    original = scan_module._outcomes

    def slow(files, quiet, cancel):  # type: ignore[no-untyped-def]
        for number, batch in enumerate(original(files, quiet, cancel)):
            yield batch
            if number == 0:
                gate.wait(60)  # a slow CD after its first file

    monkeypatch.setattr(scan_module, "_outcomes", slow)
    window.open_paths([root])

    def missing() -> list[object]:
        return [p for p in window.problems if p.path.endswith(gone.name)]

    qtbot.waitUntil(lambda: bool(missing()), timeout=30000)
    assert window.browser.reading_files and window.problems_button.isVisible()
    gate.set()
    qtbot.waitUntil(lambda: not window.browser.reading_files, timeout=60000)
    assert len(missing()) == 1  # one fact, one line, though the scan's result says it again


# ------------------------------------------------------------------------------ removable media
class FakeStorage:
    def __init__(self, root: str, name: str = "", *, ready: bool = True) -> None:
        self._root, self._name, self._ready = root, name, ready

    def rootPath(self) -> str:
        return self._root

    def displayName(self) -> str:
        return self._name

    def isValid(self) -> bool:
        return True

    def isReady(self) -> bool:
        return self._ready


def test_removable_media_filter_by_mount_point() -> None:
    fakes = [
        FakeStorage("/"),
        FakeStorage("/home"),
        FakeStorage("/media/anna/PATIENT_CD", "PATIENT_CD"),
        FakeStorage("/run/media/anna/USB"),
        FakeStorage("/mnt/disc"),
        FakeStorage("/mnt"),
        FakeStorage("/media/anna/EMPTY_TRAY", ready=False),
        FakeStorage("/mediaextra/x"),
    ]
    roots = [str(v.root) for v in removable_volumes(lambda: fakes, platform="linux")]
    assert roots == ["/media/anna/PATIENT_CD", "/mnt/disc", "/run/media/anna/USB"]
    assert is_removable_root("D:/", "win32") and is_removable_root("E:\\", "win32")
    assert not is_removable_root("C:/", "win32") and not is_removable_root("/media/x", "win32")
    assert is_removable_root("/Volumes/CD", "darwin") and not is_removable_root("/", "darwin")


def test_real_mounted_volumes_are_listed_without_error() -> None:
    assert any(info.rootPath() == "/" for info in system_volumes())
    assert isinstance(removable_volumes(), list)


def test_the_browser_lists_a_volume_and_opens_it(  # type: ignore[no-untyped-def]
    qtbot, store: Store
) -> None:
    volumes = [FakeStorage("/"), FakeStorage("/media/anna/PATIENT_CD", "PATIENT_CD")]
    widget = make_browser(qtbot, store, volume_source=lambda: volumes)
    try:
        combo = widget.volumes_combo
        qtbot.waitUntil(lambda: combo.count() == 2, timeout=10000)
        assert combo.isEnabled() and "removable" in combo.toolTip().lower()
        assert combo.itemText(1) == "PATIENT_CD (/media/anna/PATIENT_CD)"
        volumes.pop()
        with qtbot.waitSignal(widget.volumes_listed, timeout=10000):
            qtbot.mouseClick(widget.refresh_volumes_button, Qt.MouseButton.LeftButton)
        assert not combo.isEnabled() and combo.itemText(0) == "(none mounted)"
        volumes.append(FakeStorage("/media/anna/PATIENT_CD", "PATIENT_CD"))
        with qtbot.waitSignal(widget.volumes_listed, timeout=10000):
            widget.refresh_volumes()
        with qtbot.waitSignal(widget.media_opened, timeout=30000) as opened:
            combo.activated.emit(1)  # what choosing the item does
        result = opened.args[0]
        assert [p.path for p in result.problems] == ["/media/anna/PATIENT_CD"]
        assert widget.media_paths == [Path("/media/anna/PATIENT_CD")]
    finally:
        widget.shutdown()


def test_a_hung_mount_never_freezes_the_browser(  # type: ignore[no-untyped-def]
    qtbot, store: Store
) -> None:
    """Listing the volumes asks every mount for its state, which a dead network mount answers
    after minutes: the list is made on a worker, and shutting down does not wait for it."""
    release = threading.Event()

    def stuck() -> list[FakeStorage]:
        release.wait(30)
        return [FakeStorage("/media/anna/PATIENT_CD", "PATIENT_CD")]

    started = time.monotonic()
    widget = make_browser(qtbot, store, volume_source=stuck)
    try:
        assert time.monotonic() - started < 10
        combo = widget.volumes_combo
        assert not combo.isEnabled() and combo.itemText(0) == "(looking for media…)"
        widget.refresh_volumes()  # one listing at a time: this one waits for the first
        with qtbot.waitSignal(widget.volumes_listed, timeout=10000) as listed:
            release.set()
        assert listed.args == [1] and combo.isEnabled()
        assert combo.itemText(1) == "PATIENT_CD (/media/anna/PATIENT_CD)"
        release.clear()
        widget.refresh_volumes()  # stuck again: the old list stays usable meanwhile
        assert combo.isEnabled() and combo.count() == 2
    finally:
        started = time.monotonic()
        widget.shutdown()
        assert time.monotonic() - started < 5
        release.set()


def test_a_second_disc_s_thumbnails_replace_the_first_s_without_overlap(  # type: ignore[no-untyped-def]
    qtbot, browser: BrowserWidget, media: Path, tmp_path: Path
) -> None:
    """Tiles of the previous disc once overlapped the new ones."""
    browser.resize(900, 500)
    browser.show()
    first = tmp_path / "first"
    write_series(first, count=3)
    open_media(qtbot, browser, first)
    strip = browser.series_strip
    qtbot.waitUntil(lambda: browser.series_icons_ready() == strip.count() == 1, timeout=30000)
    open_media(qtbot, browser, media)  # its first study has two series
    assert names(browser)[0] == "Müller, Jürgen"
    qtbot.waitUntil(lambda: browser.series_icons_ready() == strip.count() == 2, timeout=30000)
    qtbot.wait(50)
    rects = [strip.visualItemRect(strip.item(k)) for k in range(strip.count())]
    assert all(not a.intersects(b) for i, a in enumerate(rects) for b in rects[i + 1 :])
    assert [strip.item(k).text().split("\n")[1] for k in range(2)] == ["Lung", "Bone"]


def test_a_series_without_images_gets_no_thumbnail_and_no_problem(  # type: ignore[no-untyped-def]
    qtbot, browser: BrowserWidget, media: Path
) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    sr = Dataset()
    sr.file_meta = FileMetaDataset()
    sr.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    sr.SOPClassUID = sr.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    sr.SOPInstanceUID = sr.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    sr.StudyInstanceUID = "1.2.826.0.1.3680043.10.9.1"  # Smith's study
    sr.SeriesInstanceUID = generate_uid()
    sr.PatientName, sr.PatientID, sr.Modality, sr.SeriesNumber = "Smith^Anna", "X-7", "SR", 9
    sr.save_as(media / "report.dcm", enforce_file_format=True)
    problems: list[object] = []
    browser.problems_found.connect(problems.append)
    open_media(qtbot, browser, media)
    problems.clear()  # what the scan said (nothing here) is not the thumbnails' business
    choose_study(browser, "Smith, Anna")
    assert browser.series_strip.count() == 2
    qtbot.waitUntil(lambda: browser.series_icons_ready() == 1, timeout=30000)
    assert not problems and not (app_home() / "thumbnails" / f"{sr.SOPInstanceUID}.png").exists()
    assert sorted(key == "" for key in browser.series_strip.thumbnail_keys()) == [False, True]
    # opening the report says what it is, and nothing else is opened in its place
    opened: list[object] = []
    browser.series_opened.connect(lambda stacks, row: opened.append((stacks, row)))
    report_row = browser.series_strip.thumbnail_keys().index("")
    browser.open_series(report_row)
    assert not opened
    assert "SR holds no images (structured report)" in browser.status_label.text()
    browser.open_series(1 - report_row)
    assert len(opened) == 1


def test_keyboard_shortcuts_toggle_the_browser_and_show_the_store(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, media: Path
) -> None:
    with qtbot.waitSignal(window.opened, timeout=30000):
        window.open_paths([media])
    assert window.browser.showing_media
    # the view owns the window once a series shows; the strip says the disc holds more
    assert not window.browser_dock.isVisible()
    assert "studies here: Ctrl+B lists them" in window.whose_label.text()
    window.view.setFocus()
    qtbot.keyClick(window.view, Qt.Key.Key_B, Qt.KeyboardModifier.ControlModifier)
    assert window.browser_dock.isVisible()
    qtbot.keyClick(window.view, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert not window.browser.showing_media and window.browser.studies() == []
    qtbot.keyClick(window.view, Qt.Key.Key_B, Qt.KeyboardModifier.ControlModifier)
    assert not window.browser_dock.isVisible()
    qtbot.keyClick(window.view, Qt.Key.Key_B, Qt.KeyboardModifier.ControlModifier)
    assert window.browser_dock.isVisible()
    assert not window.view.inverted  # Ctrl+I is import, not the view's I (invert)
    with qtbot.waitSignal(window.browser.import_finished, timeout=60000) as finished:
        qtbot.keyClick(window.view, Qt.Key.Key_I, Qt.KeyboardModifier.ControlModifier)
    assert len(finished.args[0].imported) == TOTAL and not window.view.inverted


@pytest.mark.parametrize("source", ["media", "store"])
def test_the_selection_names_the_patient_and_each_instance(  # type: ignore[no-untyped-def]
    qtbot, browser: BrowserWidget, store: Store, media: Path, source: str
) -> None:
    """What Send shows: whose study, and instances by series and number (the store's hashed
    file names before)."""
    if source == "media":
        open_media(qtbot, browser, media)
    else:
        assert not import_paths(store, [media]).rejected
        browser.show_store()
    row = next(i for i, r in enumerate(browser.studies()) if r[0].startswith("Müller"))
    browser.table.selectRow(row)
    chosen = browser.selection()
    assert chosen.title == "Müller, Jürgen (ID PID-42) · 2024-01-31 CT THORAX"
    labels = [label for _, label in chosen.items]
    assert labels[:2] == ["Se 3 CT · Im 1", "Se 3 CT · Im 2"]
    assert labels[-1] == "Se 4 CT · Im 5" and len(labels) == 11
    assert browser.selected_paths() == chosen.paths
    assert all(path.exists() for path in chosen.paths)


def _agree(qtbot, window: MainWindow) -> str:  # type: ignore[no-untyped-def]
    """The selected study's patient is the one the view's corner and the strip's title name."""
    qtbot.waitUntil(window.view.is_displayable, timeout=30000)
    browser = window.browser
    row = browser.table.selectionModel().currentIndex().row()
    selected = str(browser.proxy.index(row, 0).data())
    shown = window.view.corner_lines()["top_left"][0]
    assert shown == selected, (shown, selected)
    assert window.whose_label.text().startswith(f"{selected} (ID "), window.whose_label.text()
    return selected


def _double_click_each_study(qtbot, window: MainWindow, series: dict[str, int]) -> None:  # type: ignore[no-untyped-def]
    browser = window.browser
    for name in [*series, next(iter(series))]:
        row = next(i for i, r in enumerate(browser.studies()) if r[0] == name)
        rect = browser.table.visualRect(browser.proxy.index(row, 0))
        with qtbot.waitSignal(window.opened, timeout=30000) as opened:
            QTest.mouseClick(browser.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
            QTest.mouseDClick(
                browser.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center()
            )
        assert opened.args == [series[name]]  # that study's series only, never another's
        assert window.series_list.count() == series[name]
        assert _agree(qtbot, window) == name
        # a click on another series of the strip keeps the patient
        window.series_list.setCurrentRow(series[name] - 1)
        assert _agree(qtbot, window) == name


def test_browser_series_list_and_view_always_show_the_same_patient(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, media: Path
) -> None:
    """Opening a disc of three patients, then each study by a double click on its row: the
    selected row, every entry of the series list and the view's corner name one patient."""
    with qtbot.waitSignal(window.opened, timeout=30000):
        window.open_paths([media])
    assert _agree(qtbot, window) == "Müller, Jürgen" and window.series_list.count() == 2
    _double_click_each_study(
        qtbot, window, {"Smith, Anna": 1, "Smythe, Bob": 1, "Müller, Jürgen": 2}
    )


def test_several_files_of_several_patients_show_one_patient(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, media: Path
) -> None:
    """Open File with files of three patients (as a drop or the command line give them): the
    view shows the study the browser selects, not the last file read (it showed "Rubo DEMO"
    while "XX" was selected)."""
    files = [sorted(folder.glob("*.dcm"))[0] for folder in sorted(media.glob("st*/se*"))]
    with qtbot.waitSignal(window.opened, timeout=30000):
        window.open_paths(list(reversed(files)))
    first = _agree(qtbot, window)
    assert first == window.browser.studies()[0][0]
    _double_click_each_study(
        qtbot, window, {"Smythe, Bob": 1, "Müller, Jürgen": 2, "Smith, Anna": 1}
    )


def test_the_store_s_studies_show_one_patient(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, store: Store, media: Path
) -> None:
    import_paths(store, [media])
    window.browser.show_store()
    qtbot.waitUntil(lambda: len(window.browser.studies()) == 3, timeout=30000)
    _double_click_each_study(
        qtbot, window, {"Smith, Anna": 1, "Müller, Jürgen": 2, "Smythe, Bob": 1}
    )


def test_a_disc_and_its_import_list_the_same_studies(store: Store, media: Path) -> None:
    """Both sources of the browser, one interface: the same rows and series before and after
    the disc is imported."""
    from viewer.media.scan import scan
    from viewer.qt.sources import MediaStudies, StoreStudies
    from viewer.store import StudyFilter

    disc = MediaStudies(scan(media), "disc")
    assert not import_paths(store, [media]).rejected
    kept = StoreStudies(store)

    def described(source) -> list[tuple]:  # type: ignore[no-untyped-def,type-arg]
        out = []
        for row, key in source.studies(StudyFilter()):
            series = sorted(
                (s.series_number, s.modality, s.series_description, len(s.instances))
                for s in source.series_of(key)
            )
            out.append(
                (row.patient_name, row.patient_id, row.study_date, row.num_instances, series)
            )
        return sorted(out)

    assert described(disc) == described(kept)
    assert len(described(disc)) == 3
    assert described(disc)[0][-1] == [(3, "CT", "Lung", 6), (4, "CT", "Bone", 5)]
