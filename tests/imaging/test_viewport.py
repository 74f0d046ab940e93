"""The Qt-free view state: geometry, actions and mouse tools, checked by arithmetic alone."""

from __future__ import annotations

import itertools

import pytest

from viewer.imaging import viewport as vp
from viewer.imaging.display import Window
from viewer.imaging.viewport import Changed, Viewport

ORIENTS = [
    ((a, b), (c, d))
    for a, b, c, d in itertools.product((-1, 0, 1), repeat=4)
    if abs(a * d - b * c) == 1 and abs(a) + abs(b) == 1 and abs(c) + abs(d) == 1
]


def view(columns: int = 200, rows: int = 100, screen: tuple[float, float] = (800, 600)) -> Viewport:
    v = Viewport()
    v.show_stack(10)
    v.screen = screen
    v.image = (columns, rows)
    return v


class Frame:
    def __init__(self, window: object, minmax: Window | None) -> None:
        self.window, self.minmax = window, minmax

    def effective_window(self):  # type: ignore[no-untyped-def]
        return self.window

    def minmax_window(self) -> Window | None:
        return self.minmax


def test_eight_orientations_of_rotations_and_flips() -> None:
    assert len(ORIENTS) == 8
    v = view()
    seen = set()
    for turns in range(4):
        for flip in (False, True):
            v.reset_geometry()
            for _ in range(turns):
                v.rotate()
            if flip:
                v.flip()
            seen.add(v.orient)
    assert seen == set(ORIENTS)
    v.reset_geometry()
    for _ in range(4):
        v.rotate(clockwise=False)
    assert v.orient == ((1, 0), (0, 1))


@pytest.mark.parametrize("orient", ORIENTS)
def test_image_and_screen_coordinates_invert_each_other(orient: vp.Orient) -> None:
    v = view()
    v.orient = orient
    v.set_zoom(2.5, (100.0, 50.0))
    v.pan_by(13.0, -7.0)
    for point in ((0.0, 0.0), (199.5, 99.5), (37.25, 80.0)):
        back = v.screen_to_image(v.image_to_screen(point))
        assert back == pytest.approx(point)
    m11, m12, m21, m22, dx, dy = v.affine()
    x, y = 37.25, 80.0
    assert (m11 * x + m21 * y + dx, m12 * x + m22 * y + dy) == pytest.approx(
        v.image_to_screen((x, y))
    )


def test_fit_centres_the_image_and_a_quarter_turn_swaps_its_sides() -> None:
    v = view(columns=200, rows=100, screen=(800, 600))
    assert v.effective_zoom() == 4.0  # 800/200 beats 600/100
    assert v.image_to_screen((0, 0)) == (0.0, 100.0)
    assert v.image_to_screen((200, 100)) == (800.0, 500.0)
    v.rotate()
    assert v.effective_zoom() == 3.0  # now 100 wide, 200 high: 600/200
    # clockwise: the image's top-left corner goes to the top right
    assert v.image_to_screen((0, 0)) == (550.0, 0.0)
    assert v.pixel_at((549.0, 1.0)) == (0, 0)
    assert v.pixel_at((551.0, 1.0)) is None
    assert v.pixel_at((10.0, 10.0)) is None


def test_zoom_keeps_the_point_under_the_anchor() -> None:
    v = view()
    anchor = (123.0, 456.0)
    under = v.screen_to_image(anchor)
    assert v.zoom_by(vp.ZOOM_STEP, anchor) == Changed.GEOMETRY
    assert v.screen_to_image(anchor) == pytest.approx(under)
    assert not v.fit
    v.set_zoom(1e9)
    assert v.effective_zoom() == vp.MAX_ZOOM
    assert v.fit_to_screen() == Changed.GEOMETRY
    assert v.fit and v.pan == (0.0, 0.0) and v.effective_zoom() == 4.0


def test_panning_a_fitted_image_keeps_its_zoom_when_the_screen_changes() -> None:
    v = view()
    v.pan_by(10, 20)
    v.screen = (400, 300)
    assert v.effective_zoom() == 4.0
    assert v.pan == (10.0, 20.0)


def test_position_is_clamped_and_only_a_move_is_a_change() -> None:
    v = view()
    assert v.set_position(99) == Changed.POSITION and v.position == 9
    assert v.step(1) == Changed.NOTHING
    assert v.step(-20) == Changed.POSITION and v.position == 0
    assert v.page_step() == 1
    v.show_stack(300, position=7)
    assert (v.position, v.page_step(), v.next_cine_position()) == (7, 30, 8)
    v.set_position(299)
    assert v.next_cine_position() == 0
    empty = Viewport()
    assert empty.set_position(3) == Changed.NOTHING and empty.pixel_at((0, 0)) is None


def test_a_new_stack_resets_what_belonged_to_the_old_one() -> None:
    v = view()
    v.window, v.inverted = Window(40, 400), True
    v.rotate()
    v.set_zoom(3.0)
    v.set_fps(25)
    v.show_stack(5, position=2)
    assert (v.window, v.inverted, v.orient, v.fit, v.pan) == (
        None,
        False,
        ((1, 0), (0, 1)),
        True,
        (0.0, 0.0),
    )
    assert (v.position, v.fps_chosen, v.image) == (2, False, None)


def test_cine_rate_is_bounded() -> None:
    v = view()
    v.set_fps(1000)
    assert v.fps == vp.MAX_FPS and v.cine_interval_ms() == 8
    v.set_fps(0.01)
    assert v.fps == vp.MIN_FPS and v.cine_interval_ms() == 2000


def test_window_tool_widens_to_the_right_and_raises_the_centre_downwards() -> None:
    v = view()
    tool = vp.WindowTool()
    tool.press(v, Frame(Window(40, 400), Window(-1024, 4096)), (100.0, 100.0))
    assert tool.move(v, (100.0 + 256, 100.0)) == Changed.WINDOW
    assert v.window == Window(40, 800)  # step = width/256 (wider than range/16 = 256)
    tool.move(v, (100.0, 100.0 + 256))
    assert v.window == Window(440, 400)
    tool.move(v, (-10_000.0, 100.0))
    assert v.window is not None and v.window.width == 1.0
    tool.release(v, (0.0, 0.0))
    assert tool.move(v, (0.0, 0.0)) == Changed.NOTHING


def test_window_tool_on_a_narrow_window_moves_at_a_sixteenth_of_the_range() -> None:
    v = view()
    tool = vp.WindowTool()
    tool.press(v, Frame(Window(40, 40), Window(0, 4096)), (0.0, 0.0))
    tool.move(v, (256.0, 0.0))
    assert v.window == Window(40, 40 + 256)


def test_window_tool_starts_a_voi_lut_from_min_max() -> None:
    v = view()
    tool = vp.WindowTool()
    tool.press(v, Frame(object(), Window(100, 200)), (0.0, 0.0))
    tool.move(v, (0.0, 256.0))
    assert v.window == Window(300, 200)
    nothing = vp.WindowTool()
    nothing.press(v, Frame(None, None), (0.0, 0.0))
    assert nothing.move(v, (5.0, 5.0)) == Changed.NOTHING


def test_pan_zoom_and_scroll_tools() -> None:
    v = view()
    pan = vp.PanTool()
    pan.press(v, Frame(None, None), (10.0, 10.0))
    assert pan.move(v, (30.0, 5.0)) == Changed.GEOMETRY
    assert v.pan == (20.0, -5.0) and not v.fit

    v = view()
    zoom = vp.ZoomTool()
    at = (300.0, 200.0)
    under = v.screen_to_image(at)
    zoom.press(v, Frame(None, None), at)
    zoom.move(v, (300.0, 200.0 - 2 * vp.ZoomTool.PIXELS_PER_STEP))
    assert v.effective_zoom() == pytest.approx(4.0 * vp.ZOOM_STEP**2)
    assert v.screen_to_image(at) == pytest.approx(under)
    zoom.move(v, (300.0, 200.0 + 2 * vp.ZoomTool.PIXELS_PER_STEP))
    assert v.effective_zoom() == pytest.approx(4.0 / vp.ZOOM_STEP**2)

    v = view()
    scroll = vp.ScrollTool()
    scroll.press(v, Frame(None, None), (0.0, 0.0))
    assert scroll.move(v, (0.0, 3 * vp.ScrollTool.PIXELS_PER_IMAGE)) == Changed.POSITION
    assert v.position == 3
    assert scroll.move(v, (0.0, -100.0)) == Changed.POSITION and v.position == 0
    scroll.release(v, (0.0, 0.0))
