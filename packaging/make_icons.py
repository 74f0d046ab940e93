#!/usr/bin/env python3
"""Render the application icon's PNG sizes from its SVG (Qt's SVG renderer, offscreen).

    .venv/bin/python packaging/make_icons.py          # writes viewer/resources/icons/NxN/*.png
    .venv/bin/python packaging/make_icons.py --check  # exit 1 when a PNG is not a fresh render

The PNGs are committed (a desktop without an SVG loader, and the icon caches, want them);
run this after every change of ``viewer/resources/icons/lightbox.svg``. ``tests/test_desktop.py``
runs ``--check``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QGuiApplication, QImage, QPainter  # noqa: E402
from PySide6.QtSvg import QSvgRenderer  # noqa: E402

from viewer import resources  # noqa: E402

RESOURCES = ROOT / "viewer" / "resources"
#: The largest difference of one channel of one pixel still called the same render: another
#: Qt version may round an anti-aliased edge differently, a changed drawing differs by far more.
TOLERANCE = 8


def render(svg: Path, size: int) -> QImage:
    """``svg`` drawn into a transparent ``size`` x ``size`` ARGB32 image."""
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"make_icons: {svg} is not a valid SVG")
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter)
    painter.end()
    return image


def pixels(image: QImage) -> np.ndarray:
    """The image as a (height, width, 4) uint8 array of premultiplied ARGB (so that the colour of
    an almost transparent pixel counts as little as it shows)."""
    image = image.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)
    height, width = image.height(), image.width()
    data = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.sizeInBytes())
    rows = data.reshape(height, image.bytesPerLine())[:, : width * 4]
    return rows.reshape(height, width, 4).copy()  # not a view into the converted image


def difference(a: QImage, b: QImage) -> int:
    """The largest difference of one channel of one pixel (256 when the sizes differ)."""
    if a.size() != b.size():
        return 256
    return int(np.abs(pixels(a).astype(np.int16) - pixels(b).astype(np.int16)).max())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="compare instead of writing; exit 1 on a difference"
    )
    args = parser.parse_args(argv)
    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    svg = RESOURCES / resources.ICON
    stale = []
    for size, name in zip(resources.ICON_SIZES, resources.ICON_PNGS, strict=True):
        target = RESOURCES / name
        image = render(svg, size)
        if args.check:
            committed = QImage(str(target))
            diff = 256 if committed.isNull() else difference(image, committed)
            if diff > TOLERANCE:
                stale.append(f"{target.relative_to(ROOT)} (differs by {diff})")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if not image.save(str(target), "PNG"):
            raise SystemExit(f"make_icons: cannot write {target}")
        print(f"wrote {target.relative_to(ROOT)}")
    if stale:
        print("make_icons: not fresh renders of the SVG (run packaging/make_icons.py):")
        for line in stale:
            print(f"  {line}")
        return 1
    if args.check:
        print(f"make_icons: {len(resources.ICON_SIZES)} PNGs match {resources.ICON}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
