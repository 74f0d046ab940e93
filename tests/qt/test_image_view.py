"""ImageView driven by real mouse, wheel and key events (QTest), on frames made here."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from tests.qt.conftest import ArraySource, ct_dataset, ct_series, ramp
from viewer.imaging.display import CT_PRESETS, FrameRenderer, Window
from viewer.qt.image_view import ImageView, qimage_from_array


def wheel(widget: ImageView, at: QPoint, steps: int, modifiers=Qt.KeyboardModifier.NoModifier):  # type: ignore[no-untyped-def]
    """One wheel event of ``steps`` notches (positive: away from the user)."""
    event = QWheelEvent(
        QPointF(at),
        QPointF(widget.mapToGlobal(at)),
        QPoint(0, 0),
        QPoint(0, 120 * steps),
        Qt.MouseButton.NoButton,
        modifiers,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(widget, event)


def drag(widget: ImageView, button: Qt.MouseButton, start: QPoint, end: QPoint) -> None:
    QTest.mousePress(widget, button, Qt.KeyboardModifier.NoModifier, start)
    QTest.mouseMove(widget, end)
    QTest.mouseRelease(widget, button, Qt.KeyboardModifier.NoModifier, end)


def test_screen_shows_the_renderers_buffer_without_copy(view: ImageView) -> None:
    buffer = view.display_buffer()
    image = view.display_image()
    assert buffer is not None and image is not None
    assert buffer.flags.c_contiguous and buffer.dtype == np.uint8
    shared = np.frombuffer(image.constBits(), np.uint8)
    assert shared.ctypes.data == buffer.ctypes.data  # the QImage reads the array's memory
    source = view.source
    assert source is not None
    expected = FrameRenderer(source.dataset(0), 0, source.frame(0)).render(None)
    np.testing.assert_array_equal(buffer, expected)
    assert image.pixelColor(0, 0).red() == int(expected[0, 0])


def test_qimage_from_array_refuses_what_it_cannot_share() -> None:
    with pytest.raises(ValueError, match="C-contiguous"):
        qimage_from_array(np.zeros((4, 4), np.uint8)[:, ::2])
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[1, 2] = (10, 20, 30)
    image = qimage_from_array(rgb)
    assert (image.pixelColor(2, 1).red(), image.pixelColor(2, 1).blue()) == (10, 30)


def test_right_drag_changes_width_horizontally_and_centre_vertically(view: ImageView) -> None:
    assert view.effective_window() == Window(40, 400)
    centre = QPoint(200, 150)
    drag(view, Qt.MouseButton.RightButton, centre, centre + QPoint(64, 0))
    after_x = view.effective_window()
    assert isinstance(after_x, Window)
    assert after_x.width > 400 and after_x.center == pytest.approx(40)
    drag(view, Qt.MouseButton.RightButton, centre, centre + QPoint(0, -64))
    after_y = view.effective_window()
    assert isinstance(after_y, Window)
    assert after_y.center < 40 and after_y.width == pytest.approx(after_x.width)
    # Narrowing never goes below a width of 1 (PS3.3 C.11.2.1.2.1).
    drag(view, Qt.MouseButton.RightButton, centre, QPoint(0, 150))
    drag(view, Qt.MouseButton.RightButton, QPoint(399, 150), QPoint(0, 150))
    narrow = view.effective_window()
    assert isinstance(narrow, Window) and narrow.width == 1
    # The screen follows: the buffer is the renderer's output for the new window.
    source = view.source
    assert source is not None
    expected = FrameRenderer(source.dataset(0), 0, source.frame(0)).render(narrow)
    np.testing.assert_array_equal(view.display_buffer(), expected)


def test_preset_keys_auto_default_and_invert(view: ImageView) -> None:
    presets = list(CT_PRESETS.values())
    for number, key in enumerate(getattr(Qt.Key, f"Key_{n}") for n in range(1, 9)):
        QTest.keyClick(view, key)
        assert view.effective_window() == presets[number]
    assert view.effective_window() == Window(400, 1800, explanation="Bone")
    QTest.keyClick(view, Qt.Key.Key_A)
    auto = view.effective_window()
    assert isinstance(auto, Window)
    # Stored 0..4000 with intercept -1024: modality values -1024..2976.
    assert auto.center - auto.width / 2 == pytest.approx(-1024, abs=1)
    assert auto.center + auto.width / 2 == pytest.approx(2976, abs=1)
    QTest.keyClick(view, Qt.Key.Key_0)
    assert view.effective_window() == Window(40, 400)
    before = view.display_buffer()
    assert before is not None
    before = before.copy()
    QTest.keyClick(view, Qt.Key.Key_I)
    assert view.inverted
    inverted = view.display_buffer()
    assert inverted is not None
    assert np.abs(inverted.astype(int) - (255 - before.astype(int))).max() <= 1
    source = view.source
    assert source is not None
    renderer = FrameRenderer(source.dataset(0), 0, source.frame(0))
    np.testing.assert_array_equal(inverted, renderer.render(None, invert=True))
    assert "INV" in view.corner_lines()["bottom_right"][0]


def test_wheel_arrows_page_home_end_scroll_the_stack(qtbot, view: ImageView) -> None:  # type: ignore[no-untyped-def]
    centre = QPoint(200, 150)
    with qtbot.waitSignal(view.position_changed) as blocker:
        wheel(view, centre, -1)  # towards the user: next image
    assert blocker.args == [1]
    wheel(view, centre, -2)
    assert view.position == 3
    wheel(view, centre, 1)
    assert view.position == 2
    QTest.keyClick(view, Qt.Key.Key_Down)
    assert view.position == 3
    QTest.keyClick(view, Qt.Key.Key_Up)
    QTest.keyClick(view, Qt.Key.Key_Left)
    assert view.position == 1
    QTest.keyClick(view, Qt.Key.Key_End)
    assert view.position == 4
    QTest.keyClick(view, Qt.Key.Key_Down)  # stays at the end
    assert view.position == 4
    QTest.keyClick(view, Qt.Key.Key_Home)
    assert view.position == 0
    # The marker block holds 10 HU times the instance number: the screen shows that frame.
    QTest.keyClick(view, Qt.Key.Key_Right)
    assert view.corner_lines()["bottom_left"][1] == "Im: 2/5"


def test_page_keys_jump_a_tenth(qtbot) -> None:  # type: ignore[no-untyped-def]
    widget = ImageView()
    qtbot.addWidget(widget)
    datasets = [ct_dataset(8, 8, z=i, number=i + 1) for i in range(50)]
    arrays = [ramp(8, 8, i) for i in range(50)]
    widget.set_source(ArraySource(datasets, arrays))
    QTest.keyClick(widget, Qt.Key.Key_PageDown)
    assert widget.position == 5
    QTest.keyClick(widget, Qt.Key.Key_PageDown)
    QTest.keyClick(widget, Qt.Key.Key_PageUp)
    assert widget.position == 5
    widget.set_source(None)


def test_ctrl_wheel_zooms_about_the_cursor(view: ImageView) -> None:
    fit = view.zoom
    cursor = QPoint(150, 100)
    under = view.image_transform().inverted()[0].map(QPointF(cursor))
    wheel(view, cursor, 2, Qt.KeyboardModifier.ControlModifier)
    assert view.zoom == pytest.approx(fit * 1.25**2)
    still = view.image_transform().map(under)
    assert (still.x(), still.y()) == pytest.approx((cursor.x(), cursor.y()), abs=1e-6)
    assert view.corner_lines()["bottom_right"][-1] == f"Zoom: {view.zoom * 100:.0f}%"


def test_middle_drag_pans_fit_and_actual_pixels(view: ImageView) -> None:
    before = view.image_transform().map(QPointF(0, 0))
    drag(view, Qt.MouseButton.MiddleButton, QPoint(200, 150), QPoint(230, 110))
    after = view.image_transform().map(QPointF(0, 0))
    assert (after.x() - before.x(), after.y() - before.y()) == pytest.approx((30, -40))
    QTest.keyClick(view, Qt.Key.Key_N)
    assert view.zoom == 1.0
    QTest.keyClick(view, Qt.Key.Key_F)
    # 48 x 64 image in a 400 x 300 view: height limits, 300 / 64.
    assert view.zoom == pytest.approx(300 / 64)
    origin = view.image_transform().map(QPointF(0, 0))
    assert origin.y() == pytest.approx(0) and origin.x() == pytest.approx(200 - 24 * 300 / 64)


def modified_drag(
    widget: ImageView, modifiers: Qt.KeyboardModifier, start: QPoint, end: QPoint
) -> None:
    QTest.mousePress(widget, Qt.MouseButton.LeftButton, modifiers, start)
    QTest.mouseMove(widget, end)
    QTest.mouseRelease(widget, Qt.MouseButton.LeftButton, modifiers, end)


def test_shift_drag_zooms_about_the_press_and_ctrl_drag_scrolls(view: ImageView) -> None:
    fit = view.zoom
    press = QPoint(150, 100)
    under = view.image_transform().inverted()[0].map(QPointF(press))
    modified_drag(view, Qt.KeyboardModifier.ShiftModifier, press, press - QPoint(0, 80))
    assert view.zoom == pytest.approx(fit * 1.25**2)  # up: in, one step per 40 pixels
    still = view.image_transform().map(under)
    assert (still.x(), still.y()) == pytest.approx((press.x(), press.y()), abs=1e-6)
    assert view.position == 0
    modified_drag(view, Qt.KeyboardModifier.ControlModifier, press, press + QPoint(0, 24))
    assert view.position == 3  # down: the next images, one per 8 pixels
    assert "Im: 4/5" in view.corner_lines()["bottom_left"]
    modified_drag(view, Qt.KeyboardModifier.ControlModifier, press, press - QPoint(0, 200))
    assert view.position == 0
    assert view.zoom == pytest.approx(fit * 1.25**2)  # scrolling left the zoom alone


def test_rotate_and_flip_turn_the_orientation_letters(view: ImageView) -> None:
    assert view.edge_letters() == {"right": "L", "left": "R", "bottom": "P", "top": "A"}
    QTest.keyClick(view, Qt.Key.Key_R)  # clockwise: anterior comes to the right
    assert view.edge_letters() == {"right": "A", "left": "P", "bottom": "L", "top": "R"}
    # 64 rows now run across the screen: the fit zoom follows the turned image.
    assert view.zoom == pytest.approx(min(400 / 64, 300 / 48))
    QTest.keyClick(view, Qt.Key.Key_R, Qt.KeyboardModifier.ShiftModifier)
    assert view.edge_letters()["right"] == "L"
    QTest.keyClick(view, Qt.Key.Key_H)
    assert view.edge_letters() == {"right": "R", "left": "L", "bottom": "P", "top": "A"}
    QTest.keyClick(view, Qt.Key.Key_V)
    assert view.edge_letters() == {"right": "R", "left": "L", "bottom": "A", "top": "P"}
    # The drawn image really is flipped: the top-left marker block is now bottom-right.
    transform = view.image_transform()
    corner = transform.map(QPointF(1, 1))
    assert corner.x() > 200 and corner.y() > 150


def test_scale_bar_in_mm_follows_zoom_and_detector_spacing(view: ImageView) -> None:
    length_px, length_mm, label = view.scale_bar() or (0, 0, "")
    # 0.5 mm pixels at 300/64 screen pixels per pixel.
    assert length_px == pytest.approx(length_mm / (0.5 / (300 / 64)))
    assert length_px <= 0.25 * view.width() and label == f"{length_mm:g} mm"
    QTest.keyClick(view, Qt.Key.Key_N)
    length_px, length_mm, _ = view.scale_bar() or (0, 0, "")
    assert length_px == pytest.approx(length_mm / 0.5)


def test_imager_pixel_spacing_is_labelled(qtbot) -> None:  # type: ignore[no-untyped-def]
    widget = ImageView()
    qtbot.addWidget(widget)
    ds = ct_dataset(16, 16)
    del ds.PixelSpacing
    ds.ImagerPixelSpacing = [0.2, 0.2]
    widget.set_source(ArraySource([ds], [ramp(16, 16)]))
    widget.resize(300, 300)
    bar = widget.scale_bar()
    assert bar is not None and bar[2].endswith("(at detector)")
    del ds.ImagerPixelSpacing
    assert widget.scale_bar() is None  # no spacing, no bar: never a guessed one
    widget.set_source(None)


def test_pixel_value_under_the_cursor_in_hu(qtbot, view: ImageView) -> None:  # type: ignore[no-untyped-def]
    transform = view.image_transform()
    inside_marker = transform.map(QPointF(3.5, 3.5)).toPoint()  # marker block: 10 HU on image 1
    with qtbot.waitSignal(view.pixel_probed) as blocker:
        QTest.mouseMove(view, inside_marker)
    assert blocker.args == ["x 3, y 3: 10 HU"]
    with qtbot.waitSignal(view.pixel_probed) as blocker:
        QTest.mouseMove(view, QPoint(2, 2))  # black margin beside the image
    assert blocker.args == [""]


def test_the_readout_follows_the_frame_under_a_still_mouse(qtbot, view: ImageView) -> None:  # type: ignore[no-untyped-def]
    """Scrolling by keys or wheel, or another series, never leaves the old frame's value."""
    inside_marker = view.image_transform().map(QPointF(3.5, 3.5)).toPoint()
    with qtbot.waitSignal(view.pixel_probed) as blocker:
        QTest.mouseMove(view, inside_marker)
    assert blocker.args == ["x 3, y 3: 10 HU"]
    with qtbot.waitSignal(view.pixel_probed) as blocker:
        QTest.keyClick(view, Qt.Key.Key_Down)  # the mouse does not move
    assert blocker.args == ["x 3, y 3: 20 HU"]
    with qtbot.waitSignal(view.pixel_probed) as blocker:
        wheel(view, inside_marker, -2)
    assert blocker.args == ["x 3, y 3: 40 HU"]
    rgb = ct_dataset(64, 48)
    rgb.PhotometricInterpretation, rgb.SamplesPerPixel = "RGB", 3
    rgb.Modality = "OT"
    pixels = np.zeros((64, 48, 3), np.uint8)
    pixels[..., 0] = 200
    with qtbot.waitSignal(view.pixel_probed) as blocker:
        view.set_source(ArraySource([rgb], [pixels]))  # another series: no HU left over
    assert blocker.args == ["x 3, y 3: (200, 0, 0)"]
    with qtbot.waitSignal(view.pixel_probed) as blocker:
        QApplication.sendEvent(view, QEvent(QEvent.Type.Leave))
    assert blocker.args == [""]


def test_units_are_spelled_out() -> None:
    from viewer.imaging.display import units_label

    assert units_label("HU") == "HU"
    assert units_label("US") == ""  # unspecified, not ultrasound
    assert units_label("OD") == "optical density"
    pet = ct_dataset(4, 4)
    pet.Modality, pet.Units = "PT", "BQML"
    assert units_label("", pet) == "Bq/ml"
    assert units_label("mystery") == "mystery"


def test_lossy_marker_and_corners(qtbot) -> None:  # type: ignore[no-untyped-def]
    widget = ImageView()
    qtbot.addWidget(widget)
    ds = ct_dataset(16, 16)
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionRatio = "8"
    widget.set_source(ArraySource([ds], [ramp(16, 16)]))
    lines = widget.corner_lines()
    assert lines["top_right"] == ["2024-01-31", "CT THORAX", "LOSSY 8:1"]
    assert lines["top_left"][0] == "Müller, Jürgen"
    assert lines["bottom_right"][0] == "W: 400 L: 40"
    widget.set_source(None)


def test_cine_plays_at_the_files_rate_and_is_adjustable(qtbot) -> None:  # type: ignore[no-untyped-def]
    widget = ImageView()
    qtbot.addWidget(widget)
    datasets, arrays = ct_series(4, 8, 8)
    for ds in datasets:
        ds.FrameTime = 20.0  # 50 fps
    source = ArraySource(datasets, arrays, loaded=False)
    widget.set_source(source)
    assert widget.fps == pytest.approx(50)  # from the header, before any pixels
    for position in range(4):
        source.deliver(position)
    with qtbot.waitSignal(widget.cine_changed) as started:
        QTest.keyClick(widget, Qt.Key.Key_Space)
    assert started.args == [True]
    for expected in (1, 2, 3, 0):  # wraps round
        with qtbot.waitSignal(widget.position_changed, timeout=2000) as moved:
            pass
        assert moved.args == [expected]
    QTest.keyClick(widget, Qt.Key.Key_Plus)
    assert widget.fps == pytest.approx(62.5)
    QTest.keyClick(widget, Qt.Key.Key_Minus)
    QTest.keyClick(widget, Qt.Key.Key_Minus)
    assert widget.fps == pytest.approx(40)
    assert widget.corner_lines()["bottom_right"][-1] == "Cine 40 fps"
    with qtbot.waitSignal(widget.cine_changed) as stopped:
        QTest.keyClick(widget, Qt.Key.Key_Space)
    assert stopped.args == [False] and not widget.is_playing()
    widget.set_source(None)


def test_overlay_toggle(qtbot) -> None:  # type: ignore[no-untyped-def]
    """A 60xx overlay (PS3.3 C.9.2) is burnt in white; O hides and shows it."""
    widget = ImageView()
    qtbot.addWidget(widget)
    ds = ct_dataset(8, 8, pixels=np.full((8, 8), 1024, np.uint16))  # 0 HU everywhere
    mask = np.zeros((8, 8), bool)
    mask[2, 1:7] = True
    ds.add_new(0x60000010, "US", 8)
    ds.add_new(0x60000011, "US", 8)
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60003000, "OW", np.packbits(mask.ravel(), bitorder="little").tobytes())
    widget.set_source(ArraySource([ds], [np.full((8, 8), 1024, np.uint16)]))
    shown = widget.display_buffer()
    assert shown is not None
    assert (shown[mask] == 255).all() and (shown[~mask] < 255).all()
    QTest.keyClick(widget, Qt.Key.Key_O)
    hidden = widget.display_buffer()
    assert hidden is not None and (hidden < 255).all()
    QTest.keyClick(widget, Qt.Key.Key_O)
    assert widget.overlays_visible
    widget.set_source(None)


def test_frame_not_decoded_shows_loading_then_the_image(qtbot) -> None:  # type: ignore[no-untyped-def]
    widget = ImageView()
    qtbot.addWidget(widget)
    widget.resize(200, 200)
    datasets, arrays = ct_series(3, 16, 16)
    source = ArraySource(datasets, arrays, loaded=False)
    widget.set_source(source)
    widget.show()
    qtbot.waitExposed(widget)
    assert widget.display_buffer() is None and not widget.is_displayable()
    loading = widget.grab().toImage()
    assert loading.pixelColor(100, 30).red() == 0  # nothing drawn but text
    # The loader calls back from its own thread; the signal is queued to the GUI thread.
    with qtbot.waitSignal(widget.image_shown, timeout=2000) as shown:
        source.deliver(0, from_thread=True)
    assert shown.args == [0]
    QTest.keyClick(widget, Qt.Key.Key_Down)
    assert widget.display_buffer() is None  # frame 2 still loading, the view does not block
    source.fail(1, "slice001.dcm: truncated Pixel Data")
    assert source.problem(1) == "slice001.dcm: truncated Pixel Data"
    widget.grab()  # paints the problem instead of an image, without raising
    widget.set_source(None)


def test_large_frame_is_reduced_by_the_renderer(qtbot) -> None:  # type: ignore[no-untyped-def]
    """A 2048 x 1536 frame in a 400 x 300 view: the renderer makes what the view shows."""
    widget = ImageView()
    qtbot.addWidget(widget)
    widget.resize(400, 300)
    ds = ct_dataset(1536, 2048)
    widget.set_source(ArraySource([ds], [ramp(1536, 2048)]))
    buffer = widget.display_buffer()
    assert buffer is not None and buffer.shape == (300, 400)
    QTest.keyClick(widget, Qt.Key.Key_N)  # 1:1: the full frame
    full = widget.display_buffer()
    assert full is not None and full.shape == (1536, 2048)
    widget.set_source(None)


def test_patient_data_is_not_logged(qtbot, caplog, view: ImageView) -> None:  # type: ignore[no-untyped-def]
    with caplog.at_level(logging.DEBUG):
        QTest.mouseMove(view, QPoint(200, 150))
        QTest.keyClick(view, Qt.Key.Key_Down)
        view.grab()
        view.corner_lines()
    assert "Müller" not in caplog.text and "PID-42" not in caplog.text


def test_cine_rate_learnt_when_the_first_header_arrives(qtbot) -> None:  # type: ignore[no-untyped-def]
    widget = ImageView()
    qtbot.addWidget(widget)
    datasets, arrays = ct_series(3, 8, 8)
    for ds in datasets:
        ds.CineRate = 24
    source = ArraySource(datasets, arrays, loaded=False, headers_late=True)
    widget.set_source(source)
    assert widget.fps == 10  # nothing read yet: the default
    source.deliver(0, from_thread=True)
    qtbot.waitUntil(lambda: widget.fps == 24)
    widget.set_source(None)


def test_the_corners_name_the_header_now_shown_at_a_position(qtbot) -> None:  # type: ignore[no-untyped-def]
    """The corners' file text is kept per frame, but only for the very header it was read from:
    a header that comes late, or another one at the same position, is what the corners say."""
    datasets, arrays = ct_series(3)
    for ds in datasets:
        ds.PatientName = "First^Patient"
    source = ArraySource(datasets, arrays, loaded=False, headers_late=True)
    view = ImageView()
    qtbot.addWidget(view)
    view.set_source(source)
    view.grab()
    assert view.corner_lines()["top_left"] == []  # no header yet: no name
    source.deliver(0)
    view.grab()
    assert view.corner_lines()["top_left"][0] == "First, Patient"
    other = ct_dataset(64, 48, number=1)
    other.PatientName, other.PatientID = "Second^Patient", "P2"
    datasets[0] = other  # the same position, the same frame index: another header
    view.update()
    view.grab()
    assert view.corner_lines()["top_left"][:2] == ["Second, Patient", "ID: P2"]
