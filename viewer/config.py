"""Where Lightbox keeps its data: the platform's user data folder, or ``$LIGHTBOX_HOME``."""

from __future__ import annotations

import os
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
