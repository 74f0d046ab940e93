"""Where Lightbox keeps its data: the platform's user data folder, or ``$LIGHTBOX_HOME``; and
how its small JSON files there are written (whole, never half)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import platformdirs

APP_NAME = "Lightbox"


def app_home() -> Path:
    """The folder for configuration and (later) the local store; created on first use."""
    override = os.environ.get("LIGHTBOX_HOME")
    home = (
        Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    )
    home.mkdir(parents=True, exist_ok=True)
    return home


def write_text(target: Path, text: str) -> None:
    """``text`` (UTF-8) at ``target``, replaced whole: a temporary file beside it, then a rename
    (a crash leaves the old file or the new, never half of either)."""
    fd, partial = tempfile.mkstemp(prefix=f".{target.stem}-", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def write_json(target: Path, data: object) -> None:
    """``data`` as JSON at ``target``, replaced whole (:func:`write_text`)."""
    write_text(target, json.dumps(data, indent=1, ensure_ascii=False))
