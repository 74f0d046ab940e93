"""Measurements drawn with the mouse on synthetic images of known geometry: a distance across a
known 100 mm reads 100.0 mm, an ROI over a known region gives its known mean; shapes belong to
the frame they were drawn on, are moved and deleted, kept in the store and shown again, and
exported as CSV."""

from __future__ import annotations

import csv
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from tests.qt.conftest import ct_dataset
from viewer.imaging import measure
from viewer.qt.image_view import ImageView
from viewer.qt.main_window import MainWindow
from viewer.store import Store
from viewer.store import measurements as measurements_store

SIZE = 256  # pixels, 0.5 mm apart: 128 mm across


def write_phantom(folder: Path) -> list[Path]:
    """Two slices: air (-1000 HU) with a square of water (0 HU, rows and columns 100-149) and,
    on the second, a square of bone (+700 HU)."""
    folder.mkdir(parents=True)
    paths = []
    for i, hu in enumerate((0, 700)):
        pixels = np.full((SIZE, SIZE), -1000 + 1024, np.uint16)
        pixels[100:150, 100:150] = hu + 1024
        ds = ct_dataset(SIZE, SIZE, z=float(i), number=i + 1, pixels=pixels)
        ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.10.99.1"
        path = folder / f"IM{i}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def make_window(qtbot, store: Store) -> MainWindow:  # type: ignore[no-untyped-def]
    main = MainWindow(store=store, volume_source=list)
    qtbot.addWidget(main)
    main.resize(1000, 800)
    main.show()
    qtbot.waitExposed(main)
    return main


@pytest.fixture
def window(qtbot, store: Store) -> Iterator[MainWindow]:  # type: ignore[no-untyped-def]
    main = make_window(qtbot, store)
    yield main
    main.close()
    assert not any(t.name == "SeriesLoader" and t.is_alive() for t in threading.enumerate())


def open_phantom(qtbot, window: MainWindow, folder: Path) -> ImageView:  # type: ignore[no-untyped-def]
    if not folder.exists():
        write_phantom(folder)
    with qtbot.waitSignal(window.opened, timeout=30000):
        window.open_paths([folder])
    view = window.view
    qtbot.waitUntil(lambda: view.is_displayable(), timeout=30000)
    qtbot.waitUntil(lambda: window.decoded_count == 2, timeout=30000)
    view.set_position(0)
    return view


def screen(view: ImageView, row: float, column: float) -> QPointF:
    """Where image point (row, column) (pixel centres at whole numbers) is on the screen."""
    return view.image_transform().map(QPointF(column + 0.5, row + 0.5))


def mouse(view: ImageView, kind: QEvent.Type, at: QPointF) -> None:
    """A mouse event at a fractional position (QTest rounds to whole pixels)."""
    left = Qt.MouseButton.LeftButton
    buttons = Qt.MouseButton.NoButton if kind == QEvent.Type.MouseButtonRelease else left
    event = QMouseEvent(
        kind, at, view.mapToGlobal(at), left, buttons, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(view, event)


def drag(view: ImageView, start: tuple[float, float], end: tuple[float, float]) -> None:
    a, b = screen(view, *start), screen(view, *end)
    mouse(view, QEvent.Type.MouseButtonPress, a)
    for t in (0.25, 0.5, 0.75, 1.0):
        mouse(view, QEvent.Type.MouseMove, a + (b - a) * t)
    mouse(view, QEvent.Type.MouseButtonRelease, b)


def test_a_distance_across_a_known_100_mm_reads_100_mm(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    view = open_phantom(qtbot, window, tmp_path / "ct")
    window.actions_by_name["measure_distance"].trigger()
    assert view.measure_kind == "distance"
    drag(view, (60, 20), (60, 220))  # 200 pixels of 0.5 mm
    ((shape, text),) = view.measurements()
    assert isinstance(shape, measure.Distance)
    assert shape.p0 == pytest.approx((60, 20), abs=1e-6)
    assert shape.p1 == pytest.approx((60, 220), abs=1e-6)
    assert text == "100.0 mm"
    # a diagonal: 3-4-5
    drag(view, (10, 10), (10 + 120, 10 + 160))
    assert view.measurements()[1][1] == "100.0 mm"


def test_an_roi_over_a_known_region_gives_its_known_mean_on_the_frame_shown(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    view = open_phantom(qtbot, window, tmp_path / "ct")
    window.actions_by_name["measure_rectangle"].trigger()
    drag(view, (110, 110), (139, 129))  # inside the water square: 30 rows x 20 columns
    ((shape, text),) = view.measurements()
    assert isinstance(shape, measure.RectROI)
    assert "mean 0.0 HU" in text and "SD 0.0 HU" in text
    assert "pixels 600" in text and "area 137.8 mm²" in text  # 29 x 19 pitches of 0.5 mm
    window.actions_by_name["measure_ellipse"].trigger()
    drag(view, (90, 90), (159, 159))  # over the square's edge: water and air
    text = view.measurements()[1][1]
    assert "min -1000.0 HU" in text and "max 0.0 HU" in text
    view.set_position(1)  # the bone slice: these shapes were drawn on the other image
    assert view.measurements() == []
    window.actions_by_name["measure_rectangle"].trigger()
    drag(view, (110, 110), (139, 129))
    assert "mean 700.0 HU" in view.measurements()[0][1]
    view.set_position(0)
    assert len(view.measurements()) == 2


def test_angle_bidirectional_move_and_delete(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    view = open_phantom(qtbot, window, tmp_path / "ct")
    window.actions_by_name["measure_angle"].trigger()
    drag(view, (50, 150), (50, 50))  # first arm: to the vertex
    assert view.measurements() == []  # waits for the second arm
    drag(view, (150, 50), (150, 50))  # a click at the second arm's end
    ((angle, text),) = view.measurements()
    assert isinstance(angle, measure.Angle) and text == "90.0°"

    window.actions_by_name["measure_bidirectional"].trigger()
    drag(view, (200, 40), (200, 240))
    bidirectional, text = view.measurements()[1]
    assert isinstance(bidirectional, measure.Bidirectional)
    assert text.startswith("long axis 100.0 mm, short axis 50.0 mm")

    window.actions_by_name["measure_none"].trigger()  # Esc: pan and edit
    drag(view, (50, 100), (60, 110))  # grab the first arm in its middle: the angle moves
    moved = view.measurements()[0][0]
    assert isinstance(moved, measure.Angle)
    assert moved.vertex == pytest.approx((60, 60), abs=1e-6)
    assert window.board.selected is not None and window.board.selected.index == 0
    window.actions_by_name["measure_delete"].trigger()
    assert [type(s) for s, _ in view.measurements()] == [measure.Bidirectional]
    # a drag on nothing pans, as before
    pan = view.pan
    drag(view, (10, 200), (30, 230))
    assert view.pan != pan and len(view.measurements()) == 1


#: The store's reader itself, also while a test slows down the window's use of it.
_read_kept = measurements_store.load


def draw_one_kept(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, store: Store, folder: Path
) -> Callable[[], list[measure.Measurement]]:
    """A 100 mm distance drawn on the phantom's first image, waited for in the store; what the
    store keeps for that image, read on demand."""
    view = open_phantom(qtbot, window, folder)
    window.actions_by_name["measure_distance"].trigger()
    drag(view, (60, 20), (60, 220))
    key = view.measurement_key()
    assert key is not None

    def kept() -> list[measure.Measurement]:
        return _read_kept(store, [key[0]])[0]

    qtbot.waitUntil(lambda: len(kept()) == 1, timeout=10000)
    return kept


def test_measurements_are_kept_in_the_store_and_shown_again(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, store: Store, tmp_path: Path
) -> None:
    folder = tmp_path / "ct"
    kept = draw_one_kept(qtbot, window, store, folder)
    assert kept()[0].frame_number == 1
    window.close()

    again = make_window(qtbot, store)
    try:
        view = open_phantom(qtbot, again, folder)
        qtbot.waitUntil(lambda: len(view.measurements()) == 1, timeout=10000)  # read on a worker
        ((shape, text),) = view.measurements()
        assert isinstance(shape, measure.Distance) and text == "100.0 mm"
        again.actions_by_name["measure_clear"].trigger()
        assert view.measurements() == []
        qtbot.waitUntil(lambda: kept() == [], timeout=10000)
    finally:
        again.close()


def test_a_shape_drawn_while_the_kept_ones_are_read_keeps_both(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kept measurements are read on a worker; a shape drawn before they arrive must not be
    saved alone (that would replace the kept ones in the store)."""
    folder = tmp_path / "ct"
    kept = draw_one_kept(qtbot, window, store, folder)
    window.close()
    real_load = measurements_store.load

    gate = threading.Event()

    def slow_load(*args, **kwargs):  # type: ignore[no-untyped-def]
        assert gate.wait(30), "the test never opened the gate"
        return real_load(*args, **kwargs)

    monkeypatch.setattr(measurements_store, "load", slow_load)
    again = make_window(qtbot, store)
    try:
        view = open_phantom(qtbot, again, folder)
        assert view.measurements() == []  # still being read
        again.actions_by_name["measure_distance"].trigger()
        drag(view, (100, 20), (100, 120))
        assert len(view.measurements()) == 1
        qtbot.wait(300)
        assert len(kept()) == 1  # not replaced by the new shape alone
        gate.set()
        qtbot.waitUntil(lambda: len(view.measurements()) == 2, timeout=10000)
        qtbot.waitUntil(lambda: len(kept()) == 2, timeout=10000)
        assert sorted(text for _, text in view.measurements()) == ["100.0 mm", "50.0 mm"]
    finally:
        gate.set()
        again.close()


def test_the_store_gives_back_at_most_a_bounded_number_per_image(store: Store) -> None:
    shapes = [measure.Distance((1.0, 1.0), (1.0, 2.0 + k)) for k in range(5)]
    measurements_store.save_image(store, "1.2.3", 1, shapes)
    monkey_max = measurements_store.MAX_PER_IMAGE
    try:
        measurements_store.MAX_PER_IMAGE = 3
        found, problems = measurements_store.load(store, ["1.2.3"])
    finally:
        measurements_store.MAX_PER_IMAGE = monkey_max
    assert [m.shape for m in found] == shapes[:3]
    assert [p.problem for p in problems] == ["more than 3: the first 3 are shown"]


def test_measurements_export_as_csv(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, tmp_path: Path, monkeypatch
) -> None:
    view = open_phantom(qtbot, window, tmp_path / "ct")
    window.actions_by_name["measure_distance"].trigger()
    drag(view, (60, 20), (60, 220))
    window.actions_by_name["measure_rectangle"].trigger()
    drag(view, (110, 110), (139, 129))
    target = tmp_path / "out.csv"
    monkeypatch.setattr(window, "ask_save_path", lambda suggestion: str(target))
    with qtbot.waitSignal(window.measurements_exported, timeout=30000):
        window.actions_by_name["measure_export"].trigger()
    rows = list(csv.DictReader(target.read_text(encoding="utf-8-sig").splitlines()))
    length = next(r for r in rows if r["Quantity"] == "length")
    assert float(length["Value"]) == pytest.approx(100.0, abs=1e-6)
    assert length["Unit"] == "mm" and length["Patient ID"] == "PID-42"
    mean = next(r for r in rows if r["Quantity"] == "mean")
    assert float(mean["Value"]) == pytest.approx(0.0) and mean["Unit"] == "HU"


def test_the_tag_inspector_opens_on_the_image_shown(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    view = open_phantom(qtbot, window, tmp_path / "ct")
    view.set_position(1)
    dialog = window.show_tag_inspector()
    assert dialog is not None
    qtbot.waitUntil(lambda: dialog.tree.topLevelItemCount() == 2, timeout=30000)
    assert "IM1.dcm" in dialog.windowTitle() and "Müller" in dialog.windowTitle()
    dialog.search_edit.setText("InstanceNumber")
    dialog.apply_filter()
    found = dialog.tree.findItems("InstanceNumber", Qt.MatchFlag.MatchRecursive, 1)
    assert [item.text(4) for item in found if not item.isHidden()] == ["2"]


def test_measurements_export_as_a_dicom_sr_that_reads_back(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, tmp_path: Path, monkeypatch
) -> None:
    from viewer.imaging import sr_write

    view = open_phantom(qtbot, window, tmp_path / "ct")
    window.actions_by_name["measure_distance"].trigger()
    drag(view, (60, 20), (60, 220))
    window.actions_by_name["measure_rectangle"].trigger()
    drag(view, (110, 110), (139, 129))
    target = tmp_path / "sr.dcm"
    monkeypatch.setattr(window, "ask_save_path", lambda suggestion: str(target))
    with qtbot.waitSignal(window.measurements_exported, timeout=30000):
        window.actions_by_name["measure_export_sr"].trigger()
    back = sr_write.read_measurements_sr(target)
    assert sorted(type(m.shape).__name__ for m in back) == ["Distance", "RectROI"]
    values = sr_write.values_of(target)
    assert any(v["unit"] == "mm" and abs(float(v["value"]) - 100.0) < 1e-6 for v in values)
