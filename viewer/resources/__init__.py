"""What Lightbox reads at run time, shipped inside the package (a wheel or a bundle carries it):
the application icon, the keyboard and mouse reference, the conformance statement and the
desktop integration files (desktop entry, AppStream metainfo, MIME package, icon sizes, which
:mod:`viewer.desktop` installs). Found with :mod:`importlib.resources`, never by walking up from
the source tree; ``docs/controls.md`` and ``docs/conformance.md`` are links to the files here.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

#: The application's id (reverse DNS, freedesktop.org and AppStream): the names of the desktop
#: entry, the metainfo and the installed icons, and Qt's desktop file name (the Wayland app id).
APP_ID = "io.github.lightbox_dicom.lightbox"

#: Every file the program opens at run time (a test checks an installed wheel has each).
ICON = "icons/lightbox.svg"
CONTROLS = "controls.md"
CONFORMANCE = "conformance.md"
DESKTOP_ENTRY = f"{APP_ID}.desktop"
#: AppStream metainfo and the shared-mime-info package (viewer.desktop installs them).
METAINFO = f"{APP_ID}.metainfo.xml"
MIME_PACKAGE = f"{APP_ID}.mime.xml"
#: The icon rendered at the hicolor theme's sizes (packaging/make_icons.py writes them).
ICON_SIZES = (16, 22, 24, 32, 48, 64, 128, 256)
ICON_PNGS = tuple(f"icons/{n}x{n}/lightbox.png" for n in ICON_SIZES)
RUN_TIME = (ICON, CONTROLS, CONFORMANCE, DESKTOP_ENTRY, METAINFO, MIME_PACKAGE, *ICON_PNGS)


def resource(name: str) -> Traversable:
    """The packaged file ``name`` (a path relative to this package, '/'-separated)."""
    node = files(__name__)
    for part in name.split("/"):
        node = node.joinpath(part)
    return node


def read_text(name: str) -> str:
    """The text of the packaged file ``name`` (UTF-8); OSError when it is missing."""
    return resource(name).read_text(encoding="utf-8")


def path(name: str) -> Path:
    """A file-system path of the packaged file ``name`` (Qt wants paths). Installed packages
    are plain folders (wheel, bundle); from a zipped package the path names no file."""
    return Path(str(resource(name)))
