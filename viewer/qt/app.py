"""Starting the GUI: ``lightbox``, ``lightbox PATH`` and ``lightbox open PATH`` end here."""

from __future__ import annotations

import logging
import os
import signal
import sys

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from viewer import __version__, resources, settings
from viewer.qt.main_window import MainWindow

log = logging.getLogger(__name__)


class _Probe(QObject):
    fired = Signal(int)


def emit_loses_references() -> bool:
    """True when this PySide6 drops a reference to ``True`` on every ``Signal.emit``.

    PySide6 6.12.0 does (measured here: one per emit, also per ``disconnect``); on Python 3.11,
    where ``True`` is not immortal, the interpreter then aborts with "bool_dealloc" after a few
    thousand signals, that is after a minute of moving the mouse over an image. 6.11.3 does not.
    """
    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(16):
        probe.fired.emit(0)
    lost = before - sys.getrefcount(True)
    probe.deleteLater()
    return lost >= 16


def application() -> QApplication:
    """The QApplication (created once), named so that settings and the desktop file match."""
    app = QApplication.instance()
    if app is None:
        app = QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("Lightbox")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName(resources.APP_ID)  # the desktop entry and, on Wayland, the app id
    icon = resources.path(resources.ICON)
    if icon.is_file():
        app.setWindowIcon(QIcon(str(icon)))
    if emit_loses_references():
        import PySide6

        print(
            f"lightbox: warning: PySide6 {PySide6.__version__} loses a reference on every "
            "signal and Python will abort after a while; install PySide6-Essentials 6.11.3 "
            "(pip install 'PySide6-Essentials<6.12')",
            file=sys.stderr,
        )
    return app


def store_is_empty(window: MainWindow) -> bool:
    """True when the local store holds no study (or cannot be opened): then the demo shows."""
    store = window.browser.store
    if store is None:
        return True
    from viewer.store import StoreError, list_studies

    try:
        return not list_studies(store)
    except StoreError:
        return True


def create_main_window(paths: list[str]) -> MainWindow:
    """A shown main window: ``paths`` opened in the browser with their first series shown;
    without paths the browser on the local store, and on an empty store the demo study in the
    view (shown, never imported: issue 3 section 2)."""
    window = MainWindow(start_services=True)
    window.resize(1280, 900)
    window.restore_settings()
    window.show()
    first_start = settings.get("welcome_at_start") is None
    if paths:
        # Opened on a file or a disc (from the file manager, say): that is what the reader
        # asked to see, so no welcome covers it; it waits for a start without paths.
        window.open_paths(paths)
        return window
    if store_is_empty(window):
        show_demo(window)
    if first_start or settings.get("welcome_at_start") is True:
        if first_start:  # once by itself; its box brings it back at every start
            try:
                settings.update({"welcome_at_start": False})
            except OSError as exc:
                log.warning("settings not saved: %s", exc)
        window.show_welcome()
    return window


def show_demo(window: MainWindow) -> None:
    """The demo study in the view, labelled as the demo, never in the browser."""
    try:
        from viewer.media.demo import demo_paths

        targets = [str(p) for p in demo_paths()]
    except Exception as exc:  # the demo study missing is a message, the window still opens
        from viewer import model

        window.report_problems([model.Problem("demo study", f"cannot be found: {exc}")])
        targets = []
    if targets:
        window.view_paths(targets, demo=True)


#: ``lightbox``'s exit code when it could not do anything (DEVELOPERS.md).
EXIT_FAILED = 3


def display_problem() -> str | None:
    """Why no window can be shown here, before Qt aborts the process for the same reason."""
    if os.environ.get("QT_QPA_PLATFORM") or not sys.platform.startswith("linux"):
        return None
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        return "there is no graphical display (neither DISPLAY nor WAYLAND_DISPLAY is set)"
    return None


def run_gui(paths: list[str], *, quit_when_shown: float | None = None) -> int:
    """Open the main window and run until it is closed; the exit code of the event loop.

    Ctrl+C and SIGTERM close the window as its Quit does, so that the loader's worker
    processes and shared memory are released rather than left behind. ``quit_when_shown``
    (seconds; a smoke test): close the window once the first image has been painted, exit 0;
    exit :data:`EXIT_FAILED` when none is painted within that time.
    """
    problem = display_problem()
    if problem is not None:
        print(
            f"lightbox: cannot open the viewer: {problem}; "
            "the subcommands (lightbox render ...) work without one",
            file=sys.stderr,
        )
        return EXIT_FAILED
    app = application()
    window = create_main_window(paths)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda *_: window.close())
    # Python runs signal handlers only between bytecodes: wake it while Qt waits for events.
    heartbeat = QTimer(app)
    heartbeat.timeout.connect(lambda: None)
    heartbeat.start(200)
    shown: list[int] = []
    if quit_when_shown is not None:

        def on_shown(position: int) -> None:
            shown.append(position)
            print(f"lightbox: shown: image {position + 1}; window: {window.windowTitle()}")
            window.close()

        window.view.image_shown.connect(on_shown)
        QTimer.singleShot(round(quit_when_shown * 1000), window.close)
    try:
        code = app.exec()
    finally:
        heartbeat.stop()
        heartbeat.deleteLater()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        window.shutdown()
    if quit_when_shown is not None and not shown:
        print("lightbox: no image was shown within the deadline", file=sys.stderr)
        return EXIT_FAILED
    return int(code)
