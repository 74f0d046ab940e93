"""Desktop integration on Linux (freedesktop.org): ``lightbox desktop install|uninstall``.

:func:`install` copies the packaged desktop entry, AppStream metainfo, shared-mime-info package
and icons (:mod:`viewer.resources`) into a data folder (``$XDG_DATA_HOME``, by default
``~/.local/share``)::

    applications/<APP_ID>.desktop
    metainfo/<APP_ID>.metainfo.xml
    mime/packages/<APP_ID>.xml
    icons/hicolor/<N>x<N>/apps/<APP_ID>.png, icons/hicolor/scalable/apps/<APP_ID>.svg

then updates the caches with the tools that are present (``update-desktop-database``,
``update-mime-database``, ``gtk-update-icon-cache``; a missing one is a note, not a failure) and,
for the user's own folder, makes Lightbox the default application for DICOM files and DICOM
media with ``xdg-mime``. The desktop entry also lists folders (``inode/directory``), so that a
mounted disc or stick can be opened with Lightbox from the file manager, but Lightbox never
becomes what opens folders: when it would (a desktop that names no default for folders picks
the first application it finds), the previous one is written down as the default.

The entry's ``Exec`` starts ``lightbox`` when ``PATH`` finds this very program, else its
absolute path (a PyInstaller bundle, a virtual environment's ``bin/lightbox``).
:func:`uninstall` removes what :func:`install` wrote. No Qt here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from viewer import resources

APP_ID = resources.APP_ID
DESKTOP_FILE = resources.DESKTOP_ENTRY  # installed under its packaged name
#: The MIME types Lightbox becomes the default for (the second is a medium with a DICOMDIR,
#: defined by the packaged MIME package's treemagic).
DICOM = "application/dicom"
DICOM_MEDIA = "x-content/dicom-media"
DEFAULT_FOR = (DICOM, DICOM_MEDIA)
#: Listed in the desktop entry (Open with), never made Lightbox's.
FOLDER = "inode/directory"
#: The prefix of a system-wide installation (as root).
SYSTEM_PREFIX = Path("/usr/local")
TOOL_TIMEOUT = 120.0

#: Characters that make an argument of Exec need quotes (Desktop Entry Specification, "The Exec
#: key"), and those escaped with a backslash inside the quotes.
_EXEC_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")
_EXEC_ESCAPED = re.compile(r'(["`$\\])')


class DesktopError(Exception):
    """A tool that is present failed (the files are in place; the message says which)."""


def data_home() -> Path:
    """``$XDG_DATA_HOME``, or ``~/.local/share`` when it is unset or not absolute."""
    value = os.environ.get("XDG_DATA_HOME", "")
    return Path(value) if os.path.isabs(value) else Path.home() / ".local" / "share"


def config_home() -> Path:
    """``$XDG_CONFIG_HOME``, or ``~/.config``: where ``mimeapps.list`` keeps the defaults."""
    value = os.environ.get("XDG_CONFIG_HOME", "")
    return Path(value) if os.path.isabs(value) else Path.home() / ".config"


def target_folder(prefix: Path | None = None, *, system: bool = False) -> Path:
    """The data folder written to: ``PREFIX/share``; without a prefix ``/usr/local/share``
    (``system``) or the user's ``$XDG_DATA_HOME``."""
    if prefix is not None:
        return Path(prefix) / "share"
    return SYSTEM_PREFIX / "share" if system else data_home()


def files(data: Path) -> dict[Path, str]:
    """What :func:`install` writes into the data folder ``data``: destination -> packaged
    resource."""
    out = {
        data / "applications" / DESKTOP_FILE: resources.DESKTOP_ENTRY,
        data / "metainfo" / f"{APP_ID}.metainfo.xml": resources.METAINFO,
        data / "mime" / "packages" / f"{APP_ID}.xml": resources.MIME_PACKAGE,
        data / "icons" / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg": resources.ICON,
    }
    for size, name in zip(resources.ICON_SIZES, resources.ICON_PNGS, strict=True):
        out[data / "icons" / "hicolor" / f"{size}x{size}" / "apps" / f"{APP_ID}.png"] = name
    return out


# -- the command in the desktop entry ------------------------------------------------------------


def launcher() -> list[str]:
    """The command that starts this Lightbox: ``["lightbox"]`` when ``PATH`` finds this very
    program; else the absolute path of the bundle (``sys.frozen``), of the ``lightbox`` script
    that runs (or that sits beside this Python, as in a virtual environment), or this Python
    with ``-m viewer``."""
    program: Path | None = None
    if getattr(sys, "frozen", False):
        program = Path(sys.executable).absolute()
    else:
        for candidate in (Path(sys.argv[0]) if sys.argv else None, _beside_python()):
            if candidate is not None and candidate.name == "lightbox" and candidate.is_file():
                program = candidate.absolute()
                break
    if program is None:
        return [str(Path(sys.executable).absolute()), "-m", "viewer"]
    found = shutil.which("lightbox")
    if found is not None and _same_file(Path(found), program):
        return ["lightbox"]
    return [str(program)]


def _beside_python() -> Path:
    # sys.executable is not resolved: a virtual environment's bin/python is a link out of it
    return Path(sys.executable).absolute().parent / "lightbox"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def exec_argument(text: str) -> str:
    """One argument of an Exec value, quoted when the specification asks for it (the value's
    own escaping, :func:`desktop_string`, comes on top)."""
    text = text.replace("%", "%%")
    if not any(c in _EXEC_RESERVED for c in text):
        return text
    return '"' + _EXEC_ESCAPED.sub(r"\\\1", text) + '"'


def desktop_string(text: str) -> str:
    """A value of type string in a desktop entry: backslash, newline, tab escaped."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


def desktop_entry(command: Sequence[str]) -> str:
    """The packaged desktop entry with Exec and TryExec starting ``command`` (the packaged
    entry says ``lightbox``)."""
    text = resources.read_text(resources.DESKTOP_ENTRY)
    if list(command) == ["lightbox"]:
        return text
    program = desktop_string(" ".join(exec_argument(a) for a in command))
    try_exec = desktop_string(command[0])
    lines = []
    for line in text.splitlines():
        if line.startswith("Exec=lightbox"):
            line = "Exec=" + program + line[len("Exec=lightbox") :]
        elif line.startswith("TryExec="):
            line = "TryExec=" + try_exec
        lines.append(line)
    return "\n".join(lines) + "\n"


# -- install and uninstall -------------------------------------------------------------------------


def install(
    prefix: Path | None = None, *, system: bool = False, notes: list[str] | None = None
) -> list[Path]:
    """Copy the desktop files into the data folder (:func:`target_folder`), update the caches,
    and, for the user's own folder (no ``prefix``, not ``system``), make Lightbox the default
    for DICOM files and media. Returns the files written; ``notes`` gets what was skipped or
    kept. Raises OSError when a file cannot be written, DesktopError when a tool fails."""
    notes = [] if notes is None else notes
    data = target_folder(prefix, system=system)
    per_user = prefix is None and not system
    folder_default = _query_default(FOLDER) if per_user else None
    written = []
    entry = desktop_entry(launcher())
    for destination, name in files(data).items():
        destination.parent.mkdir(parents=True, exist_ok=True)
        if name == resources.DESKTOP_ENTRY:
            _write_atomically(destination, entry.encode("utf-8"))
        else:
            _write_atomically(destination, resources.resource(name).read_bytes())
        written.append(destination)
    failures = _update_caches(data, notes, refresh_icon_cache=system)
    if per_user:
        failures += _make_default(folder_default, notes)
    if failures:
        raise DesktopError("; ".join(failures))
    return written


def uninstall(
    prefix: Path | None = None, *, system: bool = False, notes: list[str] | None = None
) -> list[Path]:
    """Remove what :func:`install` wrote into the same folder, update the caches and, for the
    user's own folder, remove Lightbox from the defaults of ``mimeapps.list``. Returns the
    files removed."""
    notes = [] if notes is None else notes
    data = target_folder(prefix, system=system)
    removed = []
    for destination in files(data):
        if destination.is_file() or destination.is_symlink():
            destination.unlink()
            removed.append(destination)
    failures = _update_caches(data, notes, refresh_icon_cache=system)
    if prefix is None and not system:
        for mimeapps in (config_home() / "mimeapps.list", data / "applications" / "mimeapps.list"):
            if forget_defaults(mimeapps, DESKTOP_FILE):
                notes.append(f"{mimeapps}: Lightbox is no longer a default")
    if failures:
        raise DesktopError("; ".join(failures))
    return removed


def _write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    temporary.chmod(mode)
    os.replace(temporary, path)


def _run(command: list[str], notes: list[str]) -> str | None:
    """Run a tool; None when it ran, a note when it is missing, its failure otherwise."""
    program = shutil.which(command[0])
    if program is None:
        notes.append(f"{command[0]} is not installed: skipped")
        return None
    try:
        result = subprocess.run(
            [program, *command[1:]],
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{command[0]}: {exc}"
    if result.returncode != 0:
        said = (result.stderr or result.stdout).strip().splitlines()
        return f"{command[0]} failed (exit {result.returncode}): {said[-1] if said else ''}"
    return None


def _update_caches(data: Path, notes: list[str], *, refresh_icon_cache: bool) -> list[str]:
    failures = []
    for command in (
        ["update-desktop-database", "-q", str(data / "applications")],
        ["update-mime-database", str(data / "mime")],
    ):
        failure = _run(command, notes)
        if failure:
            failures.append(failure)
    hicolor = data / "icons" / "hicolor"
    if hicolor.is_dir():
        # Only a system folder gets a new icon cache (as xdg-icon-resource does): a cache in a
        # user's folder that nobody keeps fresh would hide icons installed there later. Without
        # one, the folder's new time tells the desktops to look again.
        if refresh_icon_cache or (hicolor / "icon-theme.cache").is_file():
            failure = _run(["gtk-update-icon-cache", "-q", "-t", "-f", str(hicolor)], notes)
            if failure:
                failures.append(failure)
        else:
            os.utime(hicolor)
    return failures


def _xdg_mime(args: list[str]) -> subprocess.CompletedProcess[str] | None:
    program = shutil.which("xdg-mime")
    if program is None:
        return None
    try:
        return subprocess.run(
            [program, *args], capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None


def _query_default(mime_type: str) -> str | None:
    """The desktop file ``xdg-mime`` names as the default for ``mime_type`` (None: none, or
    no xdg-mime)."""
    result = _xdg_mime(["query", "default", mime_type])
    if result is None or result.returncode != 0:
        return None
    name = result.stdout.strip().split(";")[0].strip()
    return name or None


def _make_default(folder_default: str | None, notes: list[str]) -> list[str]:
    if shutil.which("xdg-mime") is None:
        notes.append("xdg-mime is not installed: Lightbox is not made the default for DICOM")
        return []
    failures = []
    for mime_type in DEFAULT_FOR:
        result = _xdg_mime(["default", DESKTOP_FILE, mime_type])
        if result is None or result.returncode != 0:
            said = "" if result is None else (result.stderr or result.stdout).strip()
            failures.append(f"xdg-mime default {DESKTOP_FILE} {mime_type} failed {said}".strip())
    if _query_default(FOLDER) == DESKTOP_FILE:
        if folder_default and folder_default != DESKTOP_FILE:
            result = _xdg_mime(["default", folder_default, FOLDER])
            if result is None or result.returncode != 0:
                failures.append(f"xdg-mime could not keep {folder_default} for folders")
            else:
                notes.append(f"{folder_default} stays the default for folders (written down)")
        else:
            notes.append(
                "this desktop names no default application for folders, so it may open them "
                "with Lightbox: set yours with xdg-mime default FILEMANAGER.desktop "
                "inode/directory"
            )
    return failures


def forget_defaults(mimeapps: Path, desktop_file: str) -> bool:
    """Remove ``desktop_file`` from the Default Applications and Added Associations of a
    ``mimeapps.list`` (a key left with nothing goes; the rest of the file is kept as it is).
    True when the file changed."""
    try:
        text = mimeapps.read_text(encoding="utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        return False
    out = []
    section = ""
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1]
        elif section in ("Default Applications", "Added Associations") and "=" in stripped:
            key, _, value = stripped.partition("=")
            apps = [a for a in value.split(";") if a.strip()]
            kept = [a for a in apps if a.strip() != desktop_file]
            if len(kept) != len(apps):
                if not kept:
                    continue
                line = f"{key}={';'.join(kept)};\n"
        out.append(line)
    new = "".join(out)
    if new == text:
        return False
    _write_atomically(mimeapps, new.encode("utf-8"), mimeapps.stat().st_mode & 0o7777)
    return True
