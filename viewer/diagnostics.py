"""The diagnostic bundle: one zip a user can send with a bug report (*Help > Save diagnostic
bundle*, ``lightbox diagnostics``), holding what a developer asks for first and no patient data.

In the zip:

- ``about.txt``: Lightbox's version, Python and the platform, the versions of the libraries that
  read, decode, show and send images, the log level, the local store's schema version and how
  much it holds (counts only, never a name), and the free space on the store's disc.
- ``logs/``: the log files (:mod:`viewer.logs`), the rotated ones too, without their DEBUG
  records: the default level (INFO) logs no patient identifier, DEBUG may (a file's path, a
  value pydicom complains about), so DEBUG lines are never bundled, whatever the level now.
- ``config/``: the app folder's configuration files (``settings.json``, ``network.json``,
  ``presets.json``...), with passwords, tokens and private keys redacted and what may name a
  patient (the last folder opened) left out.

Never in it: the store's index or any DICOM file, nor anything else from the store.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import re
import shutil
import sqlite3
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

from viewer import __version__, logs
from viewer.config import app_home

#: The distributions whose versions about.txt lists (the decoders are what most bugs hinge on).
LIBRARIES = (
    "PySide6-Essentials",
    "PySide6-Addons",
    "pydicom",
    "pynetdicom",
    "numpy",
    "python-gdcm",
    "pylibjpeg",
    "pylibjpeg-libjpeg",
    "pylibjpeg-openjpeg",
    "pylibjpeg-rle",
    "av",
    "Pillow",
    "pycdlib",
    "platformdirs",
)
#: ... and the module to ask for ``__version__`` where no package metadata is (a frozen build).
_MODULES = {"PySide6-Essentials": "PySide6", "python-gdcm": "gdcm", "Pillow": "PIL"}
#: A configuration file larger than this is not configuration: left out.
MAX_CONFIG_BYTES = 1 << 20
#: Keys whose values are secrets (redacted) or may name a patient (left out).
_SECRET_KEY = re.compile(r"pass|secret|token|credential|private", re.IGNORECASE)
_PATIENT_KEY = re.compile(r"folder|recent|history|patient", re.IGNORECASE)
REDACTED = "<redacted>"
LEFT_OUT = "<left out: it may name a patient>"


def default_name(now: datetime.datetime | None = None) -> str:
    """The bundle's file name: ``lightbox-diagnostics-YYYYMMDD-HHMMSS.zip`` (local time)."""
    stamp = (now or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S")
    return f"lightbox-diagnostics-{stamp}.zip"


def write_bundle(target: Path) -> Path:
    """Write the bundle to ``target`` (a file, or a folder to put :func:`default_name` in) and
    return its path. It is written whole or not at all (a temporary file, then a rename).
    OSError when it cannot be written; nothing else of the app folder can make it fail."""
    target = Path(target)
    if target.is_dir():
        target = target / default_name()
    home = _app_home()
    members: list[tuple[str, bytes]] = []
    log_notes: list[str] = []
    level = logs.log_level()
    kept_files = []
    dropped = 0
    for path in logs.log_files():
        try:
            text, left_out = scrub_log(path.read_text(encoding="utf-8", errors="replace"))
        except OSError as exc:
            log_notes.append(f"  {path.name}: cannot be read ({exc.strerror or exc})")
            continue
        dropped += left_out
        kept_files.append(path.name)
        members.append((f"logs/{path.name}", text.encode("utf-8")))
    config_notes: list[str] = []
    for path in _config_files(home):
        data, note = _redacted_config(path)
        if data is not None:
            members.append((f"config/{path.name}", data))
        if note:
            config_notes.append(f"  {path.name}: {note}")
    about = about_text(
        home=home,
        level=level,
        log_files=kept_files,
        debug_lines_left_out=dropped,
        notes=log_notes + config_notes,
    )
    members.insert(0, ("about.txt", about.encode("utf-8")))
    _write_zip(target, members)
    return target


def scrub_log(text: str) -> tuple[str, int]:
    """The log ``text`` without its DEBUG records (a record's continuation lines go with it;
    lines before the first record, whose level is unknown, go too). Returns the text kept and
    how many lines were left out."""
    kept: list[str] = []
    left_out = 0
    level: str | None = None
    for line in text.splitlines(keepends=True):
        level = logs.record_level(line) or level
        if level is None or level == "DEBUG":
            left_out += 1
        else:
            kept.append(line)
    return "".join(kept), left_out


def about_text(
    *,
    home: Path | None = None,
    level: str | None = None,
    log_files: list[str] | None = None,
    debug_lines_left_out: int = 0,
    notes: list[str] | None = None,
) -> str:
    """about.txt: versions, platform, log level, the store in numbers, free space."""
    home = home if home is not None else _app_home()
    level = level or logs.log_level()
    lines = [
        "Lightbox diagnostic bundle",
        f"written: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        "",
        f"Lightbox {__version__}",
        f"Python {platform.python_version()} ({platform.python_implementation()}) "
        f"{'frozen' if getattr(sys, 'frozen', False) else sys.executable}",
        f"platform: {platform.platform()} ({platform.machine()})",
        f"app folder: {home}",
        "",
        "libraries:",
    ]
    lines += [f"  {name} {_version(name)}" for name in LIBRARIES]
    qt = _qt_runtime()
    if qt:
        lines.append(f"  Qt (running) {qt}")
    lines += ["", "local store:"]
    from viewer.store.store import FOLDER_NAME

    lines += [f"  {line}" for line in store_summary(home / FOLDER_NAME)]
    lines += ["", "logs:", f"  level: {level}"]
    if level == "DEBUG":
        lines.append(
            "  The log level is DEBUG: debug records may contain patient data (names, IDs, "
            "file paths); they are left out of this bundle."
        )
    lines.append(f"  files: {', '.join(log_files) if log_files else 'none'}")
    lines.append(f"  lines left out (DEBUG records): {debug_lines_left_out}")
    if notes:
        lines += ["", "notes:", *notes]
    return "\n".join(lines) + "\n"


def store_summary(root: Path) -> list[str]:
    """The store in numbers: schema version, how many patients, studies, series, instances;
    free space on its disc. Read-only (the index is opened ``mode=ro``: nothing is migrated or
    cleaned, a store another process uses is not disturbed); never a name, never a UID."""
    from viewer.store.schema import SCHEMA_VERSION
    from viewer.store.store import INDEX_NAME

    lines = [f"folder: {root}"]
    db = root / INDEX_NAME
    if not db.is_file():
        lines.append("no index yet (nothing was imported)")
    else:
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(f"file:{quote(str(db))}?mode=ro", uri=True, timeout=5)
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            lines.append(f"schema version: {version} (this Lightbox: {SCHEMA_VERSION})")
            counts = []
            for table in ("patients", "studies", "series", "instances"):
                count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                counts.append(f"{table}: {count}")
            lines.append(", ".join(counts))
        except sqlite3.Error as exc:
            lines.append(f"the index cannot be read: {exc}")
        finally:
            if conn is not None:
                conn.close()
    where = root if root.exists() else root.parent
    try:
        usage = shutil.disk_usage(where)
        lines.append(f"free space: {_size(usage.free)} of {_size(usage.total)}")
    except OSError as exc:
        lines.append(f"free space: unknown ({exc.strerror or exc})")
    return lines


# -- helpers -----------------------------------------------------------------------------------


def _app_home() -> Path:
    try:
        return app_home()
    except OSError:  # cannot be created: report on the folder it would be
        override = os.environ.get("LIGHTBOX_HOME")
        return Path(override) if override else Path.home()


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        module = sys.modules.get(_MODULES.get(distribution, distribution))  # never imported here
        version = getattr(module, "__version__", None)
        return str(version) if version else "not installed"


def _qt_runtime() -> str:
    """The Qt library's version when this process runs Qt already (the GUI); Qt is never
    imported here."""
    core = sys.modules.get("PySide6.QtCore")
    try:
        return str(core.qVersion()) if core is not None else ""
    except Exception:
        return ""


def _size(count: int) -> str:
    value = float(count)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} bytes"


def _config_files(home: Path) -> list[Path]:
    """The configuration: the JSON files directly in the app folder (README, Configuration)."""
    try:
        return sorted(p for p in home.glob("*.json") if p.is_file())
    except OSError:
        return []


def _redacted_config(path: Path) -> tuple[bytes | None, str]:
    """The file as it may leave the computer, and a note when something was changed or it was
    left out (damaged or too large: what it holds is not known, so it stays)."""
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            return None, "left out (too large to be configuration)"
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    except ValueError:
        return None, "left out (not valid JSON)"
    changed: list[str] = []
    clean = _redact(data, changed, "")
    text = json.dumps(clean, indent=1, ensure_ascii=False) + "\n"
    note = f"redacted or left out: {', '.join(changed)}" if changed else ""
    return text.encode("utf-8"), note


def _redact(value: Any, changed: list[str], where: str) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            name = f"{where}.{key}" if where else str(key)
            if _SECRET_KEY.search(str(key)) and item not in ("", None):
                out[key] = REDACTED
                changed.append(name)
            elif _PATIENT_KEY.search(str(key)) and item not in ("", None, [], {}):
                out[key] = LEFT_OUT
                changed.append(name)
            else:
                out[key] = _redact(item, changed, name)
        return out
    if isinstance(value, list):
        return [_redact(item, changed, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, str) and "PRIVATE KEY" in value:
        changed.append(where)
        return REDACTED
    return value


def _write_zip(target: Path, members: list[tuple[str, bytes]]) -> None:
    fd, partial = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in members:
                zf.writestr(name, data)
        os.replace(partial, target)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(partial).unlink()
        raise
