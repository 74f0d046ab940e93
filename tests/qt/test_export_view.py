"""viewer.qt.export_view: the view to PNG/JPEG, the clipboard, PDF pages and sheets, movies."""

from __future__ import annotations

import re
import threading
import zlib
from pathlib import Path

import av
import numpy as np
import pytest
from PySide6.QtGui import QGuiApplication, QImage
from PySide6.QtPrintSupport import QPrinter
from PySide6.QtWidgets import QMainWindow, QMenu

from tests.qt.conftest import ArraySource, ct_dataset, ct_series
from viewer.imaging.display import FrameRenderer, Window
from viewer.imaging.movie import MovieError, MovieReport
from viewer.qt import export_view as ev
from viewer.qt.image_view import ImageView
from viewer.qt.jobs import Job, JobSet

HEADER_PARTS = ["Müller, Jürgen", "ID: PID-42", "2024-01-31", "CT THORAX", "Se: 3 Lung 1.0"]


def rendered(view: ImageView, position: int, *, invert: bool = False) -> np.ndarray:
    """The oracle: the frame through FrameRenderer with its own window."""
    source = view.source
    assert source is not None
    renderer = FrameRenderer(source.dataset(position), 0, source.frame(position))
    return renderer.render(None, invert=invert)


def grey(image: QImage, x: int, y: int) -> int:
    return image.pixelColor(x, y).red()


# -- a small reader of the PDFs Qt writes: pages, images and the text drawn ----------------------


def pdf_objects(data: bytes) -> dict[int, tuple[bytes, bytes | None]]:
    """Object number -> (dictionary, inflated stream or None)."""
    objects: dict[int, tuple[bytes, bytes | None]] = {}
    for match in re.finditer(rb"(\d+) 0 obj(.*?)endobj", data, re.S):
        body = match.group(2)
        stream = None
        found = re.search(rb"stream\r?\n(.*)\r?\nendstream", body, re.S)
        if found:
            stream = found.group(1)
            if b"/FlateDecode" in body[: found.start()]:
                stream = zlib.decompress(stream)
            body = body[: found.start()]
        objects[int(match.group(1))] = (body, stream)
    return objects


def pdf_pages(data: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page(?![s\w])", data))


def pdf_text(data: bytes) -> str:
    """Every glyph drawn, in drawing order, mapped back through the fonts' ToUnicode CMaps."""
    objects = pdf_objects(data)
    fonts: dict[bytes, dict[int, str]] = {}
    for body, _ in objects.values():
        for name, number in re.findall(rb"/(F\d+) (\d+) 0 R", body):
            font = objects.get(int(number))
            cmap_ref = re.search(rb"/ToUnicode (\d+) 0 R", font[0]) if font else None
            if cmap_ref is None:
                continue
            cmap = objects[int(cmap_ref.group(1))][1] or b""
            table: dict[int, str] = {}
            for block in re.findall(rb"beginbfchar(.*?)endbfchar", cmap, re.S):
                for src, dst in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
                    table[int(src, 16)] = bytes.fromhex(dst.decode()).decode("utf-16-be")
            for block in re.findall(rb"beginbfrange(.*?)endbfrange", cmap, re.S):
                for lo, _hi, dst, listed in re.findall(
                    rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*(?:<([0-9A-Fa-f]+)>|\[([^\]]*)\])",
                    block,
                ):
                    if dst:  # <lo> <hi> <first>: consecutive code points
                        for offset in range(int(_hi, 16) - int(lo, 16) + 1):
                            table[int(lo, 16) + offset] = chr(int(dst, 16) + offset)
                    else:  # <lo> <hi> [<one> <each> ...]
                        for offset, item in enumerate(re.findall(rb"<([0-9A-Fa-f]+)>", listed)):
                            table[int(lo, 16) + offset] = bytes.fromhex(item.decode()).decode(
                                "utf-16-be"
                            )
            fonts[name] = table
    text = []
    for _, stream in objects.values():
        if not stream or b" Tf" not in stream:
            continue
        font: dict[int, str] = {}
        for match in re.finditer(rb"/(F\d+) [\d.]+ Tf|<([0-9A-Fa-f]+)> Tj", stream):
            if match.group(1):
                font = fonts.get(match.group(1), {})
            else:
                hexes = match.group(2).decode()
                for i in range(0, len(hexes), 4):
                    text.append(font.get(int(hexes[i : i + 4], 16), "?"))
    return "".join(text)


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


# -- images -------------------------------------------------------------------------------------


def test_without_annotations_the_frame_at_its_own_size(view: ImageView, tmp_path: Path) -> None:
    expected = rendered(view, 0)  # 64 rows x 48 columns, window 40/400
    image = ev.view_image(view, annotations=False)
    assert (image.width(), image.height()) == (48, 64)
    for row, column in ((2, 2), (40, 0), (40, 12), (63, 47)):
        assert grey(image, column, row) == expected[row, column]
    png = ev.save_view(view, tmp_path / "view.png", annotations=False)
    back = QImage(str(png))
    assert (back.width(), back.height()) == (48, 64)
    assert [grey(back, c, r) for r, c in ((2, 2), (40, 12))] == [expected[2, 2], expected[40, 12]]
    jpeg = ev.save_view(view, tmp_path / "view.JPG", annotations=False)
    assert jpeg.read_bytes()[:3] == b"\xff\xd8\xff"
    back = QImage(str(jpeg))
    assert (back.width(), back.height()) == (48, 64)
    assert abs(grey(back, 30, 40) - int(expected[40, 30])) <= 4  # quality 95
    assert sorted(p.name for p in tmp_path.iterdir()) == ["view.JPG", "view.png"]
    reference = tmp_path / "reference"
    reference.touch()
    assert png.stat().st_mode & 0o777 == reference.stat().st_mode & 0o777


def test_the_views_window_invert_and_rotation_are_kept(view: ImageView) -> None:
    view.set_window(Window(1000, 100))
    view.set_inverted(True)
    view.rotate(clockwise=True)
    source = view.source
    assert source is not None
    renderer = FrameRenderer(source.dataset(0), 0, source.frame(0))
    expected = np.rot90(renderer.render(Window(1000, 100), invert=True), k=-1)
    image = ev.view_image(view, annotations=False)
    assert (image.width(), image.height()) == (64, 48)  # a quarter turn
    array = np.array(
        [[grey(image, x, y) for x in range(image.width())] for y in range(image.height())]
    )
    np.testing.assert_array_equal(array, expected)
    view.flip(horizontal=True)
    flipped = ev.view_image(view, annotations=False)
    assert grey(flipped, 0, 5) == expected[5, -1]


def test_with_annotations_the_widget_as_painted(view: ImageView, tmp_path: Path) -> None:
    image = ev.view_image(view, annotations=True)
    ratio = view.devicePixelRatioF()
    assert (image.width(), image.height()) == (round(400 * ratio), round(300 * ratio))
    # The image fills the height, centred: the middle of the widget is the ramp's white part,
    # and the black band left of the image carries the corner text.
    assert grey(image, image.width() // 2, image.height() // 2) == 255
    band = [grey(image, x, y) for x in range(0, 80) for y in range(0, 50)]
    assert max(band) >= 200 and min(band) == 0
    plain = ev.save_view(view, tmp_path / "a.png", annotations=True)
    assert QImage(str(plain)).size() == image.size()


def test_copy_puts_the_image_on_the_clipboard(view: ImageView) -> None:
    clipboard = QGuiApplication.clipboard()
    clipboard.clear()
    ev.copy_view(view, annotations=False)
    back = clipboard.image()
    assert (back.width(), back.height()) == (48, 64)
    assert grey(back, 12, 40) == rendered(view, 0)[40, 12]
    ev.copy_view(view, annotations=True)
    assert clipboard.image().width() == round(400 * view.devicePixelRatioF())


def test_refusals(view: ImageView, tmp_path: Path, qtbot) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ev.ExportError, match=r"png or \.jpg"):
        ev.save_view(view, tmp_path / "view.bmp", annotations=False)
    with pytest.raises(ev.ExportError, match="cannot write here"):
        ev.save_view(view, tmp_path / "absent" / "view.png", annotations=False)
    datasets, arrays = ct_series(2)
    view.set_source(ArraySource(datasets, arrays, loaded=False))
    with pytest.raises(ev.ExportError, match="still loading"):
        ev.view_image(view, annotations=False)
    assert list(tmp_path.iterdir()) == []


# -- printing -----------------------------------------------------------------------------------


def test_print_view_to_pdf_has_one_page_the_header_and_the_image(
    view: ImageView, tmp_path: Path
) -> None:
    out = tmp_path / "view.pdf"
    ev.print_view(view, out)
    data = out.read_bytes()
    assert data.startswith(b"%PDF")
    assert pdf_pages(data) == 1
    text = squeeze(pdf_text(data))
    for part in HEADER_PARTS:
        assert squeeze(part) in text
    assert len(re.findall(rb"/Subtype\s*/Image", data)) == 1


def test_header_is_escaped(tmp_path: Path) -> None:
    ds = ct_dataset()
    ds.PatientName = "Evil\x1b[2J^Name"
    header = ev.header_text(ds)
    assert "\x1b" not in header and "\\x1b[2J" in header
    assert ev.header_text(None) == ""


def test_print_to_a_qprinter_pdf_with_a_given_header(view: ImageView, tmp_path: Path) -> None:
    printer = QPrinter(QPrinter.PrinterMode.HighResolution)
    printer.setOutputFormat(QPrinter.OutputFormat.PdfFormat)
    printer.setOutputFileName(str(tmp_path / "printer.pdf"))
    ev.print_view(view, printer, header="Given header 123", annotations=False)
    data = (tmp_path / "printer.pdf").read_bytes()
    assert data.startswith(b"%PDF") and pdf_pages(data) == 1
    assert "Givenheader123" in squeeze(pdf_text(data))


@pytest.mark.parametrize(("per_page", "pages"), [(2, 3), (4, 2), (12, 1)])
def test_print_series_is_a_contact_sheet(
    view: ImageView, tmp_path: Path, per_page: int, pages: int
) -> None:
    out = tmp_path / "sheet.pdf"
    source = view.source
    assert source is not None
    seen: list[tuple[int, int]] = []
    count = ev.print_series(
        source,
        out,
        header=ev.view_header(view),
        per_page=per_page,
        progress=lambda done, total: seen.append((done, total)),
    )
    data = out.read_bytes()
    assert count == pages and pdf_pages(data) == pages
    assert len(re.findall(rb"/Subtype\s*/Image", data)) == 5  # every frame once
    assert seen[-1] == (5, 5)
    text = squeeze(pdf_text(data))
    assert text.count(squeeze(HEADER_PARTS[0])) == pages  # the header on every page
    assert all(f"{n}/5" in text for n in range(1, 6))  # every frame numbered


def test_print_series_on_a_worker_waits_for_the_loader_and_cancels(
    qtbot,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    datasets, arrays = ct_series(3)
    source = ArraySource(datasets, arrays, loaded=False)
    out = tmp_path / "late.pdf"
    job = Job(
        "sheet",
        lambda cancel, progress: ev.print_series(
            source, out, header="late", cancel=cancel, progress=progress
        ),
    )
    with qtbot.waitSignal(job.progress_changed, timeout=10000) as first:
        job.start()
        source.deliver(0, from_thread=True)
    assert first.args == [1, 3]
    with qtbot.waitSignal(job.finished, timeout=10000) as finished:
        source.deliver(1)
        source.deliver(2)
    assert finished.args == [1]
    assert job.wait(5)
    assert pdf_pages(out.read_bytes()) == 1
    # cancelled while waiting for a frame that never comes: no PDF left
    never = ArraySource(datasets, arrays, loaded=False)
    cancelled = tmp_path / "cancelled.pdf"
    job = Job(
        "sheet", lambda cancel, _: ev.print_series(never, cancelled, header="x", cancel=cancel)
    )
    with qtbot.waitSignal(job.finished, timeout=10000) as finished:
        job.start()
        job.cancel()
    assert finished.args == [0] and job.wait(5)
    assert not cancelled.exists()


# -- movies -------------------------------------------------------------------------------------


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="gray") for f in container.decode(video=0)]


def test_export_movie_runs_on_a_job_with_the_views_look(
    view: ImageView, tmp_path: Path, qtbot
) -> None:  # type: ignore[no-untyped-def]
    view.set_inverted(True)
    jobs = JobSet()
    progress: list[tuple[int, int]] = []
    out = tmp_path / "series.gif"
    # started only once the wait is connected: a five-frame movie can end before that
    job = ev.export_movie(
        view, out, jobs=jobs, progress=lambda d, t: progress.append((d, t)), start=False
    )
    with qtbot.waitSignal(job.done, timeout=20000):
        jobs.start(job)
    assert job.error is None, job.error
    report = job.result
    assert isinstance(report, MovieReport) and report.frames == 5 and not report.cancelled
    assert report.fps == pytest.approx(view.fps)
    frames = decoded(out)
    assert len(frames) == 5
    for position, frame in enumerate(frames):  # GIF keeps grey exactly: the inverted render
        np.testing.assert_array_equal(frame, rendered(view, position, invert=True))
    qtbot.waitUntil(lambda: not jobs.jobs())
    assert progress[-1] == (5, 5)
    mp4 = tmp_path / "series.mp4"
    job = ev.export_movie(view, mp4, start=False)
    with qtbot.waitSignal(job.done, timeout=20000):
        job.start()
    assert job.wait(5) and job.result.frames == 5
    with av.open(str(mp4)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == 10  # the view's rate: no cine rate in these files
        assert stream.codec_context.name in {"h264", "mpeg4"}
    assert len(decoded(mp4)) == 5


def test_export_movie_cancel_leaves_no_file(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    view = ImageView()
    qtbot.addWidget(view)
    datasets, arrays = ct_series(4)
    source = ArraySource(datasets, arrays, loaded=False)
    view.set_source(source)
    source.deliver(0)
    cancel = threading.Event()
    out = tmp_path / "cut.mp4"
    job = ev.export_movie(view, out, cancel=cancel)
    qtbot.waitUntil(lambda: any(p.suffix == ".part" for p in tmp_path.iterdir()), timeout=10000)
    with qtbot.waitSignal(job.done, timeout=10000):
        cancel.set()
    assert job.wait(5) and job.result.cancelled
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(MovieError, match=r"mp4 or \.gif"):
        ev.export_movie(view, tmp_path / "x.avi")
    view.set_source(None)


# -- the menu ------------------------------------------------------------------------------------


class FakeWindow(QMainWindow):
    """What add_export_actions needs of the main window: view, jobs, actions_by_name."""

    def __init__(self, view: ImageView) -> None:
        super().__init__()
        self.view = view
        self.jobs = JobSet(self)
        self.actions_by_name: dict[str, object] = {}


def test_menu_actions(view: ImageView, tmp_path: Path, qtbot, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    window = FakeWindow(view)
    qtbot.addWidget(window)
    menu = QMenu("Export", window)
    ev.add_export_actions(window, menu)
    names = [a.objectName() for a in menu.actions()]
    assert names == [
        "export_save_view",
        "export_copy_view",
        "export_save_movie",
        "export_print_view",
        "export_print_series",
        "export_annotations",
    ]
    assert set(names) <= set(window.actions_by_name)
    asked: list[str] = []

    def answer(name: str):  # type: ignore[no-untyped-def]
        def ask(parent, title, suggestion, filters):  # type: ignore[no-untyped-def]
            asked.append(suggestion)
            return str(tmp_path / name)

        return ask

    actions = window.actions_by_name
    window.actions_by_name["export_annotations"].setChecked(False)  # type: ignore[attr-defined]
    monkeypatch.setattr(ev, "ask_save_path", answer("v.png"))
    actions["export_save_view"].trigger()  # type: ignore[attr-defined]
    assert QImage(str(tmp_path / "v.png")).width() == 48
    assert asked == ["PID-42_se3_im1.png"]
    assert "Saved" in window.statusBar().currentMessage()
    actions["export_copy_view"].trigger()  # type: ignore[attr-defined]
    assert QGuiApplication.clipboard().image().width() == 48

    def printer_to(name: str):  # type: ignore[no-untyped-def]
        def ask(parent, title):  # type: ignore[no-untyped-def]
            printer = QPrinter()
            printer.setOutputFormat(QPrinter.OutputFormat.PdfFormat)
            printer.setOutputFileName(str(tmp_path / name))
            return printer

        return ask

    monkeypatch.setattr(ev, "ask_printer", printer_to("view.pdf"))
    actions["export_print_view"].trigger()  # type: ignore[attr-defined]
    assert pdf_pages((tmp_path / "view.pdf").read_bytes()) == 1
    monkeypatch.setattr(ev, "ask_printer", printer_to("series.pdf"))
    actions["export_print_series"].trigger()  # type: ignore[attr-defined]
    qtbot.waitUntil(lambda: not window.jobs.jobs(), timeout=20000)
    assert window.statusBar().currentMessage() == "Series printed: 1 page(s)"
    assert pdf_pages((tmp_path / "series.pdf").read_bytes()) == 1
    monkeypatch.setattr(ev, "ask_save_path", answer("m.gif"))
    actions["export_save_movie"].trigger()  # type: ignore[attr-defined]
    qtbot.waitUntil(lambda: not window.jobs.jobs(), timeout=20000)
    assert len(decoded(tmp_path / "m.gif")) == 5
    assert window.statusBar().currentMessage().startswith("Saved")
    monkeypatch.setattr(ev, "ask_save_path", lambda *args: "")  # cancelled dialog: nothing
    actions["export_save_view"].trigger()  # type: ignore[attr-defined]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "m.gif",
        "series.pdf",
        "v.png",
        "view.pdf",
    ]


def test_export_movie_from_the_real_loader(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A series opened as the window opens it (SeriesLoader in the process pool): the job
    waits for the frames the loader is still decoding, in stack order."""
    from tests.qt.conftest import write_series
    from viewer.imaging.stack import build_stacks
    from viewer.media.scan import scan
    from viewer.qt.source import LoaderSource

    write_series(tmp_path / "ct", count=6)
    stack = build_stacks(scan(tmp_path / "ct").instances)[0]
    source = LoaderSource(stack)
    view = ImageView()
    qtbot.addWidget(view)
    try:
        view.set_source(source)
        out = tmp_path / "loaded.gif"
        job = ev.export_movie(view, out, start=False)
        with qtbot.waitSignal(job.done, timeout=60000):
            job.start()
        assert job.wait(5) and job.error is None, job.error
        assert job.result.frames == 6 and not job.result.skipped
        frames = decoded(out)
        for position, frame in enumerate(frames):
            np.testing.assert_array_equal(frame, rendered(view, position))
        # the files were written in the reverse of the stack's order: the movie follows the stack
        numbers = [int(source.dataset(p).InstanceNumber) for p in range(6)]
        assert numbers == [ref.instance.instance_number for ref in stack.frames]
    finally:
        view.set_source(None)
        source.close()
