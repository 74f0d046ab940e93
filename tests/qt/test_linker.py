"""Comparison: a prior of the same patient beside the current study, series scrolled together
by slice position (one frame of reference, or linked once with an offset), window and zoom
alike, reference lines of the active slice on an orthogonal series."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.qt.conftest import ct_dataset
from viewer.qt.main_window import MainWindow
from viewer.qt.viewports import Viewport
from viewer.store import import_paths

FOR_A = "1.2.826.0.1.3680043.10.88.1"


def write_series(
    folder: Path,
    zs: list[float],
    *,
    series: str,
    study: str = "1.2.826.0.1.3680043.10.88.100",
    frame_of_reference: str = FOR_A,
    coronal: bool = False,
    modality: str = "CT",
    patient: tuple[str, str] = ("Müller^Jürgen", "PID-42"),
    date: str = "20240131",
) -> Path:
    folder.mkdir(parents=True)
    for i, z in enumerate(zs):
        pixels = np.full((32, 32), 1000 + 10 * i, np.uint16)
        ds = ct_dataset(32, 32, z=z, number=i + 1, series_uid=series, pixels=pixels)
        ds.StudyInstanceUID, ds.StudyDate = study, date
        ds.FrameOfReferenceUID = frame_of_reference
        ds.PatientName, ds.PatientID = patient
        ds.Modality = modality
        ds.SeriesNumber = int(series.rsplit(".", 1)[-1])
        ds.SeriesDescription = f"series {ds.SeriesNumber}"
        if coronal:  # a coronal slice at y = z: rows run head to foot
            ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
            ds.ImagePositionPatient = [0, z, 40]
        ds.save_as(folder / f"IM{i:03d}.dcm", enforce_file_format=True)
    return folder


@pytest.fixture
def window(store_window: MainWindow) -> MainWindow:
    store_window.resize(1200, 800)
    return store_window


def open_study(qtbot, window: MainWindow, root: Path, columns: int = 2) -> None:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(window.opened, timeout=30000):
        window.open_paths([root])
    window.set_layout(1, columns)
    for viewport in window.grid.viewports:
        loaded(qtbot, viewport)


def loaded(qtbot, viewport: Viewport) -> None:  # type: ignore[no-untyped-def]
    """Every frame of the viewport's series decoded (so every header read)."""
    source = viewport.source
    assert source is not None
    qtbot.waitUntil(lambda: viewport.decoded_count == len(source), timeout=30000)


def z_of(viewport: Viewport) -> float:
    stack = viewport.stack
    assert stack is not None
    position = stack.frames[viewport.view.position].instance.image_position
    assert position is not None
    return position[2]


def test_one_frame_of_reference_scrolls_together_by_position(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    root = tmp_path / "study"
    write_series(root / "thin", [2.0 * k for k in range(11)], series="1.2.826.0.1.3680043.10.88.1")
    write_series(root / "thick", [5.0 * k for k in range(5)], series="1.2.826.0.1.3680043.10.88.2")
    open_study(qtbot, window, root)
    thin, thick = window.grid.viewports
    assert len(thin.stack.frames) == 11 and len(thick.stack.frames) == 5  # type: ignore[union-attr]
    thin.view.set_position(6)  # not linked yet: the other stays
    assert z_of(thick) == 0.0
    window.actions_by_name["link_scroll"].trigger()
    assert window.linker.scroll
    for position, expected in ((6, 10.0), (8, 15.0), (1, 0.0), (10, 20.0)):
        thin.view.set_position(position)
        assert z_of(thick) == expected, (position, z_of(thin))
    # the viewport scrolled leads: scrolling the other (made active) moves the first
    window.grid.set_active(thick)
    thick.view.set_position(2)
    assert z_of(thin) == 10.0


def test_another_frame_of_reference_is_linked_once_with_an_offset(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    root = tmp_path / "study"
    write_series(root / "now", [2.0 * k for k in range(11)], series="1.2.826.0.1.3680043.10.88.1")
    write_series(
        root / "prior",
        [5.0 * k for k in range(5)],
        series="1.2.826.0.1.3680043.10.88.2",
        frame_of_reference="1.2.826.0.1.3680043.10.88.9",
    )
    open_study(qtbot, window, root)
    now, prior = window.grid.viewports
    window.actions_by_name["link_scroll"].trigger()
    now.view.set_position(5)
    assert z_of(prior) == 0.0  # two frames of reference: positions mean nothing to each other
    now.view.set_position(2)  # z = 4 here shows what z = 15 shows there
    prior.view.set_position(3)
    window.grid.set_active(now)
    window.actions_by_name["link_here"].trigger()
    assert "1 viewport(s) linked" in window.statusBar().currentMessage()
    now.view.set_position(3)  # z = 6: 6 + 11 = 17, nearest 15
    assert z_of(prior) == 15.0
    now.view.set_position(5)  # z = 10: 21, nearest 20
    assert z_of(prior) == 20.0
    now.view.set_position(0)  # z = 0: 11, nearest 10
    assert z_of(prior) == 10.0


def test_window_of_the_same_modality_and_zoom_follow_the_active_viewport(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    root = tmp_path / "study"
    write_series(root / "a", [0.0, 1.0], series="1.2.826.0.1.3680043.10.88.1")
    write_series(root / "b", [0.0, 1.0], series="1.2.826.0.1.3680043.10.88.2")
    write_series(root / "c", [0.0, 1.0], series="1.2.826.0.1.3680043.10.88.3", modality="MR")
    open_study(qtbot, window, root, columns=3)
    a, b, c = window.grid.viewports
    window.actions_by_name["link_window"].trigger()
    window.actions_by_name["link_zoom"].trigger()
    a.view.apply_preset(8)  # CT bone 400/1800
    assert b.view.effective_window() == a.view.effective_window()
    assert c.view.effective_window() != a.view.effective_window()  # an MR keeps its own
    a.view.set_zoom(3.0)
    assert b.view.zoom == pytest.approx(3.0) and c.view.zoom == pytest.approx(3.0)
    window.actions_by_name["link_zoom"].trigger()  # off
    a.view.set_zoom(1.5)
    assert b.view.zoom == pytest.approx(3.0)


def test_reference_lines_of_the_active_axial_slice_on_a_coronal_series(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    root = tmp_path / "study"
    write_series(root / "axial", [10.0, 30.0, 35.0, 38.0], series="1.2.826.0.1.3680043.10.88.1")
    write_series(root / "coronal", [5.0, 8.0], series="1.2.826.0.1.3680043.10.88.2", coronal=True)
    open_study(qtbot, window, root)
    axial, coronal = window.grid.viewports
    assert axial.stack.frames[0].instance.image_orientation[4] == 1  # type: ignore[union-attr]
    assert coronal.view.reference_lines == []
    window.actions_by_name["reference_lines"].trigger()
    axial.view.set_position(2)  # z = 35; the coronal image runs z = 40 down, 0.5 mm a row
    ((r0, c0), (r1, c1)) = coronal.view.reference_lines[0]
    assert r0 == pytest.approx(10) and r1 == pytest.approx(10)
    assert sorted((c0, c1)) == pytest.approx([-0.5, 31.5])  # across the whole image
    axial.view.set_position(3)  # z = 38: row 4
    assert coronal.view.reference_lines[0][0][0] == pytest.approx(4)
    axial.view.set_position(0)  # z = 10: below the coronal image (z 40 to 24.5), no line
    assert coronal.view.reference_lines == []
    assert axial.view.reference_lines == []  # the active viewport shows none of its own
    window.actions_by_name["reference_lines"].trigger()
    assert coronal.view.reference_lines == []


def test_a_prior_of_the_same_patient_is_compared_beside_another_patient_s_is_refused(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    store = window.browser.store
    assert store is not None
    write_series(tmp_path / "now", [0.0, 5.0], series="1.2.826.0.1.3680043.10.88.1")
    write_series(
        tmp_path / "prior",
        [0.0, 5.0],
        series="1.2.826.0.1.3680043.10.88.2",
        study="1.2.826.0.1.3680043.10.88.200",
        date="20210101",
    )
    write_series(
        tmp_path / "other",
        [0.0, 5.0],
        series="1.2.826.0.1.3680043.10.88.3",
        study="1.2.826.0.1.3680043.10.88.300",
        patient=("Smith^Anna", "X-7"),
    )
    import_paths(store, [tmp_path / "now", tmp_path / "prior", tmp_path / "other"])
    browser = window.browser
    browser.show_store()
    qtbot.waitUntil(lambda: len(browser.studies()) == 3, timeout=30000)

    def select(date: str, name: str) -> None:
        row = next(i for i, r in enumerate(browser.studies()) if r[3] == date and r[0] == name)
        browser.table.selectRow(row)

    select("2024-01-31", "Müller, Jürgen")
    with qtbot.waitSignal(window.opened, timeout=30000):
        browser._on_table_double_clicked(browser.table.selectionModel().currentIndex())
    assert len(window.grid.viewports) == 1
    strip_before = window.series_list.count()
    select("2021-01-01", "Müller, Jürgen")
    window.actions_by_name["compare"].trigger()
    assert window.grid.shape == (1, 2)
    now, prior = window.grid.viewports
    qtbot.waitUntil(prior.view.is_displayable, timeout=30000)
    assert prior.stack is not None and prior.stack.series_instance_uid.endswith(".2")
    assert now.stack is not None and now.stack.series_instance_uid.endswith(".1")
    assert window.grid.active is now and window.series_list.count() == strip_before
    assert prior.view.corner_lines()["top_left"][0] == "Müller, Jürgen"

    select("2024-01-31", "Smith, Anna")
    window.actions_by_name["compare"].trigger()
    assert "Not compared: Smith, Anna is not Müller, Jürgen" in window.statusBar().currentMessage()
    assert prior.stack.series_instance_uid.endswith(".2")  # nothing replaced
