"""MPR in the window: a synthetic axial series reformatted into three viewports whose frames
equal the core's reformats, with headers that carry the geometry; a click on one plane moves the
others through that point; a slab is a MIP; an irregular series is corrected with a warning and
a short one refused with the reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest

from tests.qt.conftest import ct_dataset
from viewer.imaging import mpr
from viewer.qt.main_window import MainWindow
from viewer.qt.mpr_view import MprSource

SLICES, ROWS, COLS = 20, 24, 32


def volume_values() -> np.ndarray:
    k, j, i = np.meshgrid(np.arange(SLICES), np.arange(ROWS), np.arange(COLS), indexing="ij")
    return (1024 + 100 * k + 3 * j + i).astype(np.uint16)


def write_series(folder: Path, zs: list[float] | None = None) -> Path:
    folder.mkdir(parents=True)
    values = volume_values()
    zs = zs if zs is not None else [2.0 * k for k in range(SLICES)]
    for k, z in enumerate(zs):
        ds = ct_dataset(ROWS, COLS, z=z, number=k + 1, pixels=values[k])
        ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.10.77.5"
        ds.save_as(folder / f"IM{k:03d}.dcm", enforce_file_format=True)
    return folder


@pytest.fixture
def window(store_window: MainWindow) -> MainWindow:
    store_window.resize(1200, 600)
    return store_window


def open_and_load(qtbot, window: MainWindow, folder: Path) -> None:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(window.opened, timeout=30000):
        window.open_paths([folder])
    source = window.view.source
    assert source is not None
    qtbot.waitUntil(lambda: window.decoded_count == len(source), timeout=30000)


def start_mpr(qtbot, window: MainWindow) -> list[MprSource]:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(window.mpr.shown, timeout=30000):
        window.actions_by_name["mpr"].trigger()
    return window.mpr.sources


def test_three_planes_show_the_core_s_reformats_with_their_geometry(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    open_and_load(qtbot, window, write_series(tmp_path / "ct"))
    sources = start_mpr(qtbot, window)
    assert window.grid.shape == (1, 3)
    assert [s.plane for s in sources] == [mpr.Plane.AXIAL, mpr.Plane.CORONAL, mpr.Plane.SAGITTAL]
    volume = sources[0].volume
    assert volume.values.shape == (SLICES, ROWS, COLS)
    assert np.array_equal(np.sort(volume.values, axis=0), np.sort(volume_values(), axis=0))
    for viewport, source in zip(window.grid.viewports, sources, strict=True):
        view = viewport.view
        qtbot.waitUntil(view.is_displayable, timeout=10000)
        position = view.position
        expected = mpr.reformat(volume, source.plane, position)
        assert np.array_equal(source.frame(position), expected.pixels)
        ds = source.dataset(position)
        assert ds is not None and "SOPInstanceUID" not in ds
        assert [float(v) for v in ds.PixelSpacing] == pytest.approx(expected.pixel_spacing)
        assert [float(v) for v in ds.ImagePositionPatient] == pytest.approx(expected.origin)
        assert view.corner_lines()["top_left"][0] == "Müller, Jürgen"  # whose images they are
        assert viewport.view.measurement_key() is None  # a reformat is no stored image
    coronal = window.grid.viewports[1].view
    assert coronal.edge_letters()["top"] == "H"  # head at the top
    assert window.actions_by_name["reference_lines"].isChecked()
    assert len(coronal.reference_lines) == 2  # where the axial and sagittal planes cut it
    assert len(window.grid.viewports[0].view.reference_lines) == 2  # a crosshair on each


def test_a_click_on_one_plane_moves_the_others_through_the_point(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    open_and_load(qtbot, window, write_series(tmp_path / "ct"))
    sources = start_mpr(qtbot, window)
    axial, coronal, sagittal = window.grid.viewports
    qtbot.waitUntil(axial.view.is_displayable, timeout=10000)
    row, column = 5, 25
    at = axial.view.image_transform().map(QPointF(column + 0.5, row + 0.5))
    QTest.mouseClick(axial.view, Qt.MouseButton.LeftButton, pos=at.toPoint())
    point = mpr.cross_point(sources[0].volume, mpr.Plane.AXIAL, axial.view.position, row, column)
    assert coronal.view.position == point.index(mpr.Plane.CORONAL)
    assert sagittal.view.position == point.index(mpr.Plane.SAGITTAL)
    # the value under the crosshair is the same voxel on every plane
    voxel = sources[0].volume.values[
        tuple(round(v) for v in point.voxel)  # type: ignore[index]
    ]
    for viewport, source in zip((coronal, sagittal), sources[1:], strict=True):
        r, c = point.on(source.plane)
        frame = source.frame(viewport.view.position)
        assert frame is not None and frame[round(r), round(c)] == voxel


def test_a_slab_is_a_mip_and_leaving_mpr_restores_the_layout(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    open_and_load(qtbot, window, write_series(tmp_path / "ct"))
    sources = start_mpr(qtbot, window)
    window.actions_by_name["mpr_slab_5"].trigger()
    coronal_view = window.grid.viewports[1].view
    position = coronal_view.position
    expected = mpr.reformat(sources[1].volume, mpr.Plane.CORONAL, position, thickness=5)
    assert np.array_equal(sources[1].frame(position), expected.pixels)
    assert "5-slice MIP" in coronal_view.corner_lines()["bottom_left"][0]
    window.actions_by_name["mpr_stop"].trigger()
    assert window.grid.shape == (1, 1) and not window.mpr.active


def test_uneven_spacing_is_corrected_with_a_warning_and_a_short_series_refused(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    zs = [2.0 * k for k in range(SLICES)]
    zs[10:] = [z + 4.0 for z in zs[10:]]  # a gap between slices 10 and 11
    open_and_load(qtbot, window, write_series(tmp_path / "gap", zs))
    start_mpr(qtbot, window)
    assert any("between frames 10 and 11" in p.problem for p in window.problems)
    window.actions_by_name["mpr_stop"].trigger()

    short = tmp_path / "short"
    short.mkdir()
    for k in range(2):
        ct_dataset(ROWS, COLS, z=float(k), number=k + 1).save_as(
            short / f"IM{k}.dcm", enforce_file_format=True
        )
    open_and_load(qtbot, window, short)
    window.actions_by_name["mpr"].trigger()
    qtbot.waitUntil(lambda: "No MPR" in window.statusBar().currentMessage(), timeout=10000)
    assert "3" in window.statusBar().currentMessage() and window.grid.shape == (1, 1)
