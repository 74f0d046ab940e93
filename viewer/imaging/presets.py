"""A reader's own window presets, per modality, kept in ``presets.json`` of the app folder.

CT's eight presets are built in (:data:`viewer.imaging.display.CT_PRESETS`); a radiologist adds
their own for any modality (an MR brain window, a PET SUV range) from *Window > Save window as
preset…*. The file is small JSON: ``{"MR": [{"name": ..., "center": ..., "width": ...,
"function": ...}]}``; an entry that does not make a valid window is skipped, a damaged file is
an empty set (never an error at start-up), and it is written whole (a temporary file, then a
rename).
"""

from __future__ import annotations

import json
from pathlib import Path

from viewer.config import app_home, write_json
from viewer.imaging.display import Window

FILE_NAME = "presets.json"
MAX_PER_MODALITY = 32


def presets_path() -> Path:
    return app_home() / FILE_NAME


def load(path: Path | None = None) -> dict[str, list[Window]]:
    """Modality -> the reader's presets (``explanation`` holds the name)."""
    try:
        raw = json.loads((path or presets_path()).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict):
        return {}
    out: dict[str, list[Window]] = {}
    for modality, entries in raw.items():
        if not isinstance(modality, str) or not isinstance(entries, list):
            continue
        for entry in entries[:MAX_PER_MODALITY]:
            try:
                window = Window(
                    float(entry["center"]),
                    float(entry["width"]),
                    str(entry.get("function", "LINEAR")),
                    str(entry["name"])[:64],
                )
            except (KeyError, TypeError, ValueError, AttributeError):
                continue
            out.setdefault(modality, []).append(window)
    return out


def save_preset(modality: str, name: str, window: Window, path: Path | None = None) -> None:
    """Add (or replace, by name) a preset for ``modality`` and write the file whole."""
    target = path or presets_path()
    presets = load(target)
    named = Window(window.center, window.width, window.function, name.strip()[:64])
    kept = [w for w in presets.get(modality, []) if w.explanation != named.explanation]
    presets[modality] = [*kept, named][-MAX_PER_MODALITY:]
    data = {
        m: [
            {"name": w.explanation, "center": w.center, "width": w.width, "function": w.function}
            for w in windows
        ]
        for m, windows in presets.items()
    }
    write_json(target, data)
