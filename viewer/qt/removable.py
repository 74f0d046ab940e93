"""Mounted removable media (CD, DVD, USB stick) the browser offers to open.

Qt's :class:`QStorageInfo` lists every mounted volume without saying which are removable, so a
volume counts as removable media by where it is mounted:

* Linux (tested here): under ``/media``, ``/run/media`` or ``/mnt``, where udisks and
  administrators mount discs and sticks.
* Windows (untested here): every drive letter except the system drive (``C:\\`` as a rule).
* macOS (untested here): under ``/Volumes``, except the start-up volume mounted at ``/``.

The volume source is a parameter so that the filter is tested with fakes: no test here can
mount a disc.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from PySide6.QtCore import QStorageInfo

#: What the browser's list says about platforms nobody could test here.
UNTESTED_NOTE = (
    "Removable media are volumes mounted under /media, /run/media or /mnt (Linux), drive "
    "letters other than the system drive (Windows) or /Volumes (macOS). Only Linux is tested."
)

_DRIVE = re.compile(r"^[A-Za-z]:[\\/]?$")


class StorageLike(Protocol):
    """The part of :class:`QStorageInfo` used here (fakes in tests implement just this)."""

    def rootPath(self) -> str: ...

    def displayName(self) -> str: ...

    def isValid(self) -> bool: ...

    def isReady(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Volume:
    """A mounted medium: what the list shows and the folder to open."""

    name: str
    root: Path

    @property
    def label(self) -> str:
        return (
            f"{self.name} ({self.root})"
            if self.name and self.name != str(self.root)
            else str(self.root)
        )


def is_removable_root(root: str, platform: str | None = None) -> bool:
    """Whether a mount point is where removable media are mounted on ``platform``."""
    platform = platform or sys.platform
    if platform.startswith("win"):
        if not _DRIVE.match(root):
            return False
        system = os.environ.get("SYSTEMDRIVE", "C:").rstrip("\\/").upper()
        return root[:2].upper() != system
    if platform == "darwin":
        return root.startswith("/Volumes/") and root.rstrip("/") != "/Volumes"
    for prefix in ("/media/", "/run/media/", "/mnt/"):
        if root.startswith(prefix) and len(root.rstrip("/")) > len(prefix) - 1:
            return True
    return False


def system_volumes() -> list[StorageLike]:
    """Qt's list of mounted volumes (the default source)."""
    return list(QStorageInfo.mountedVolumes())


def removable_volumes(
    source: Callable[[], Iterable[StorageLike]] = system_volumes, platform: str | None = None
) -> list[Volume]:
    """The mounted, ready volumes that count as removable media, by mount point."""
    volumes: list[Volume] = []
    for info in source():
        root = info.rootPath()
        if not info.isValid() or not info.isReady() or not is_removable_root(root, platform):
            continue
        volumes.append(Volume(info.displayName() or root, Path(root)))
    return sorted(volumes, key=lambda v: str(v.root))
