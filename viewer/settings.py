"""The reader's settings, kept in ``settings.json`` of the app folder (:func:`app_home`).

What a workstation should remember between sessions without being asked: the window's size and
place, the last folder opened, the layout of the viewports, whether the welcome was seen, the
log level. Window presets have their own file (:mod:`viewer.imaging.presets`), the network
nodes theirs (:mod:`viewer.net.nodes`).

The file is small JSON, one object; a damaged or unreadable file is an empty set of settings
(never an error at start-up); every change rewrites it whole (a temporary file, then a rename),
so a crash leaves the old settings or the new, never half of either. No patient data is kept
here: the last folder is a path the reader chose, never a file name from a disc.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from viewer.config import app_home, write_json

FILE_NAME = "settings.json"
#: A settings file larger than this is not ours to read (it holds a handful of values).
MAX_BYTES = 1 << 20


def settings_path() -> Path:
    return app_home() / FILE_NAME


def load(path: Path | None = None) -> dict[str, Any]:
    """Every setting (empty when the file is missing, too large or damaged)."""
    target = path or settings_path()
    try:
        if target.stat().st_size > MAX_BYTES:
            return {}
        raw = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def get(key: str, default: Any = None, *, path: Path | None = None) -> Any:
    return load(path).get(key, default)


def update(values: dict[str, Any], *, path: Path | None = None) -> None:
    """Set ``values`` (a value None removes its key) and write the file whole. OSError when it
    cannot be written (a read-only home): the caller decides whether that matters."""
    target = path or settings_path()
    settings = load(target)
    for key, value in values.items():
        if value is None:
            settings.pop(key, None)
        else:
            settings[key] = value
    write_json(target, settings)
