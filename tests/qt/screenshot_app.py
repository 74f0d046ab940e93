"""Run the real main window on a file and save what it shows (Xvfb test, docs/screenshot.png).

    python -m tests.qt.screenshot_app OUT.png FILE [--root ROOT.png] [--size 1280x860]
                                      [--probe X,Y] [--browser]

It starts the window exactly as ``lightbox open FILE`` does (:func:`viewer.qt.app.application`
and :func:`viewer.qt.app.create_main_window`), waits for the first image to be painted, saves
``QWidget.grab()`` to OUT and, with ``--root``, the X server's whole screen (what the server
holds, read back through ``QScreen.grabWindow(0)`` as ``import -window root`` would) to ROOT,
then quits. Exit code 0 when both were written, 3 on a timeout.
"""

from __future__ import annotations

import argparse
import sys

from PySide6.QtCore import QPointF, QTimer

from viewer.qt.app import application, create_main_window

TIMEOUT_MS = 60_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("output")
    parser.add_argument("file")
    parser.add_argument("--root", help="also save the whole X screen")
    parser.add_argument("--size", default="1280x860")
    parser.add_argument("--probe", help="move the mouse to X,Y in the view (pixel value shown)")
    parser.add_argument(
        "--browser", action="store_true", help="bring the study browser back (Ctrl+B) first"
    )
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))

    app = application()
    window = create_main_window([args.file])
    window.resize(width, height)
    window.move(0, 0)
    outcome = {"code": 3}

    def on_shown(position: int) -> None:
        if args.browser and not window.browser_dock.isVisible():
            window.browser_dock.show()
            QTimer.singleShot(500, lambda: on_shown(position))  # thumbnails and layout
            return
        if args.probe:
            x, y = (int(v) for v in args.probe.split(","))
            window.view.probe(QPointF(x, y))  # X warps no pointer that is already there
        app.processEvents()  # let the status bar lay out the pixel value
        if not window.grab().save(args.output):
            print(f"cannot write {args.output}", file=sys.stderr)
            app.exit(3)
            return
        if args.root:
            app.processEvents()
            screen = app.primaryScreen()
            if screen is None or not screen.grabWindow(0).save(args.root):
                print(f"cannot capture the screen to {args.root}", file=sys.stderr)
                app.exit(3)
                return
        outcome["code"] = 0
        window.close()
        app.quit()

    window.view.image_shown.connect(on_shown)

    def on_timeout() -> None:
        print("no image was shown in time", file=sys.stderr)
        window.close()
        app.exit(3)

    timer = QTimer(app)
    timer.setSingleShot(True)
    timer.timeout.connect(on_timeout)
    timer.start(TIMEOUT_MS)
    app.exec()
    window.shutdown()
    return outcome["code"]


if __name__ == "__main__":
    sys.exit(main())
