"""Where Lightbox's log goes: stderr for the person at the terminal, and rotating files in the
app folder for whoever has to find out later what happened (``<app home>/logs/lightbox.log``).

Every process (the GUI, each headless command) calls :func:`configure` once, from the CLI's
``main``. Two handlers on the root logger:

- **stderr**, as the CLI always had it: ``lightbox: LEVEL: message`` at WARNING (DEBUG with
  ``-v``); the records of :data:`FILE_ONLY` (a command's start and end) are not shown there.
  Like :func:`logging.basicConfig`, it is not added where the root logger already has someone
  else's handlers (an application embedding Lightbox, pytest).
- **the file**, ``logs/lightbox.log`` rotated at :data:`MAX_BYTES` into :data:`BACKUP_COUNT`
  older files (``lightbox.log.1`` the newest of them), UTF-8, each record on one line with its
  time, level, process id and thread: several processes may write the same file (the GUI and a
  ``lightbox`` command in a terminal), the id tells them apart. Its level is the reader's
  setting ``log_level`` in ``settings.json`` (:func:`log_level`, :func:`set_log_level`),
  ``INFO`` by default.

**No patient data at the default level.** Names, IDs, birth dates and accession numbers, and file
paths from discs (a USB stick may name its folders after the patient), are logged only at DEBUG;
the records of the DICOM libraries (pydicom's warnings quote element values) are debug material
on both handlers, whatever their logger's level. ``tests/test_logs.py`` imports named patients
at the default level and looks for them in the files; a session fixture of the suite scans
every log file the suite wrote.

Both handlers escape what a record says (:class:`viewer.text.EscapingFormatter`): a name from a
disc cannot forge a line or send a terminal escape. In the file a traceback's lines are
indented, so a line that does not start with a time belongs to the record above it, and
:func:`record_level` can tell every line's level (the diagnostic bundle leaves DEBUG lines out).

A log that cannot be written (a read-only app folder, a full disc) is no error: the file handler
is left out or falls silent, stderr still works, nothing raises and nothing extra is printed.
"""

from __future__ import annotations

import logging
import logging.handlers
import re
import sys
from pathlib import Path
from typing import TextIO

from viewer import settings
from viewer.config import app_home
from viewer.text import EscapingFormatter, escape

FOLDER_NAME = "logs"
FILE_NAME = "lightbox.log"
#: Size at which the file is rotated, and how many older files are kept: at most 6 MB of log.
MAX_BYTES = 1 << 20
BACKUP_COUNT = 5
#: The setting in settings.json (viewer.settings) that holds the file's level.
SETTING = "log_level"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DEFAULT_LEVEL = "INFO"

STDERR_FORMAT = "lightbox: %(levelname)s: %(message)s"
FILE_FORMAT = "%(asctime)s %(levelname)s [%(process)d %(threadName)s] %(name)s: %(message)s"
#: The start of a record's first line in the file: its time and level (see FILE_FORMAT).
_RECORD_START = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) "
)
#: Loggers of the DICOM libraries: their records may quote element values (a patient's name in
#: a validation warning) or whole data sets (pynetdicom at DEBUG), so they count as DEBUG.
_LIBRARIES = ("pydicom", "pynetdicom", "py")  # py.warnings: Python warnings (captured below)
#: A logger for the file alone: what a process did (its command, its start and end) is history
#: for the file, not news for the terminal, whose output stays as it was (``-v`` included).
FILE_ONLY = "lightbox.session"
#: Which of the root logger's handlers are ours (the attribute's value says which).
_MARK = "_lightbox_handler"


def _level_name(name: object) -> str | None:
    text = str(name).strip().upper()
    if text == "WARN":
        text = "WARNING"
    return text if text in LEVELS else None


def log_level() -> str:
    """The file's level as the reader set it (``settings.json``, key ``log_level``); the
    default ``INFO`` when it is unset, not a level, or the settings cannot be read."""
    try:
        value = settings.get(SETTING)
    except OSError:  # no app folder at all (a home that cannot be created)
        return DEFAULT_LEVEL
    return _level_name(value) or DEFAULT_LEVEL


def set_log_level(name: str) -> str:
    """Remember ``name`` (DEBUG, INFO, WARNING or ERROR, any case) as the file's level and use
    it at once in this process. Returns the level's name. ValueError for another name; OSError
    when settings.json cannot be written (the level still applies until the process ends)."""
    level = _level_name(name)
    if level is None:
        raise ValueError(f"{name!r} is not a log level (choose from {', '.join(LEVELS)})")
    handler = _ours("file")
    if handler is not None:
        handler.setLevel(level)
        _set_root_level()
    settings.update({SETTING: level})
    return level


def log_folder() -> Path:
    """Where the log files are: the folder of the file this process writes, else the app
    folder's ``logs`` (which may not exist yet)."""
    handler = _ours("file")
    if isinstance(handler, logging.FileHandler):
        return Path(handler.baseFilename).parent
    return app_home() / FOLDER_NAME


def log_files(folder: Path | None = None) -> list[Path]:
    """The log files that exist, the current one first, then the rotated ones newest first
    (``lightbox.log``, ``lightbox.log.1``, ...). Empty when there is no log (yet)."""
    try:
        where = folder if folder is not None else log_folder()
        candidates = [where / FILE_NAME] + [
            where / f"{FILE_NAME}.{n}" for n in range(1, BACKUP_COUNT + 1)
        ]
        return [path for path in candidates if path.is_file()]
    except OSError:
        return []


def record_level(line: str) -> str | None:
    """The level of a line of the log file that starts a record (``"INFO"``...), None for a
    line that continues the record above it (a traceback) or is not ours."""
    match = _RECORD_START.match(line)
    return match.group(1) if match else None


# -- the handlers ------------------------------------------------------------------------------


class _LibraryFilter(logging.Filter):
    """Records of the DICOM libraries pass only a handler at DEBUG (see :data:`_LIBRARIES`);
    on stderr, the file's own records (:data:`FILE_ONLY`) never do."""

    def __init__(self, handler: logging.Handler, *, stderr: bool = False) -> None:
        super().__init__()
        self.handler = handler
        self.stderr = stderr

    def filter(self, record: logging.LogRecord) -> bool:
        if self.stderr and (record.name == FILE_ONLY or record.name.startswith(FILE_ONLY + ".")):
            return False
        if record.name.split(".", 1)[0] not in _LIBRARIES:
            return True
        return self.handler.level <= logging.DEBUG


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler writing to whatever ``sys.stderr`` is when a record comes, not what it
    was at start-up (a test's captured stream, a GUI that replaced it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:  # StreamHandler.__init__ assigns it
        pass


class _FileFormatter(EscapingFormatter):
    """The escaping formatter with the thread's name escaped too (a worker thread may be named
    after a file), and every line after a record's first indented (see :func:`record_level`)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        saved = record.threadName
        record.threadName = escape(saved)
        try:
            return super().formatMessage(record)
        finally:
            record.threadName = saved

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\n", "\n    ")


class _QuietRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating file that never complains: a full disc or a rotation another process is
    doing at the same time costs that record, not a traceback on the user's terminal."""

    failures = 0

    def handleError(self, record: logging.LogRecord) -> None:
        self.failures += 1


def _ours(kind: str) -> logging.Handler | None:
    return next((h for h in logging.getLogger().handlers if getattr(h, _MARK, None) == kind), None)


def _set_root_level() -> None:
    """The root logger passes what the most talkative of our handlers wants."""
    levels = [h.level for h in logging.getLogger().handlers if getattr(h, _MARK, None)]
    if levels:
        logging.getLogger().setLevel(min(levels))


def _open_file(folder: Path, level: str) -> logging.Handler | None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handler = _QuietRotatingFileHandler(
            folder / FILE_NAME, maxBytes=MAX_BYTES, backupCount=BACKUP_COUNT, encoding="utf-8"
        )
    except OSError:
        return None
    handler.setFormatter(_FileFormatter(FILE_FORMAT))
    handler.setLevel(level)
    handler.addFilter(_LibraryFilter(handler))
    setattr(handler, _MARK, "file")
    return handler


def configure(
    verbose: bool = False,
    level: str | None = None,
    *,
    folder: Path | None = None,
    stderr: bool = True,
) -> Path | None:
    """Set up the root logger for this process (see the module docstring); idempotent: a
    second call adjusts the handlers of the first, it never adds a second pair.

    ``verbose``: stderr at DEBUG instead of WARNING. ``level``: the file's level instead of the
    setting (a name of :data:`LEVELS`). ``folder``: the log folder instead of the app folder's
    ``logs`` (the test suite's own). ``stderr``: False for no stderr handler (the test process,
    whose output pytest captures). Returns the log file, or None when none can be written."""
    root = logging.getLogger()
    # The libraries' warnings.warn() calls (pydicom on a name's character set, say) become
    # records of "py.warnings", debug material like the libraries' own records, instead of
    # Python's raw "file:line: UserWarning" lines on the terminal.
    logging.captureWarnings(True)
    if stderr:
        handler = _ours("stderr")
        foreign = [h for h in root.handlers if not getattr(h, _MARK, None)]
        if handler is None and not foreign:
            handler = _StderrHandler()
            handler.setFormatter(EscapingFormatter(STDERR_FORMAT))
            handler.addFilter(_LibraryFilter(handler, stderr=True))
            setattr(handler, _MARK, "stderr")
            root.addHandler(handler)
        if handler is not None:
            handler.setLevel(logging.DEBUG if verbose else logging.WARNING)

    file_level = (_level_name(level) if level is not None else None) or log_level()
    try:
        where = folder if folder is not None else app_home() / FOLDER_NAME
    except OSError:  # the app folder cannot be created
        where = None
    current = _ours("file")
    path: Path | None = None
    if (
        isinstance(current, logging.FileHandler)
        and where is not None
        and Path(current.baseFilename) == (where / FILE_NAME).absolute()
    ):
        current.setLevel(file_level)
        path = Path(current.baseFilename)
    else:
        if current is not None:
            root.removeHandler(current)
            current.close()
        opened = _open_file(where, file_level) if where is not None else None
        if isinstance(opened, logging.FileHandler):
            root.addHandler(opened)
            path = Path(opened.baseFilename)
    _set_root_level()
    return path


def shutdown() -> None:
    """Take our handlers off the root logger and close the file (the test suite's end; a
    process that ends needs no call: logging flushes at exit)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _MARK, None)]:
        root.removeHandler(handler)
        handler.close()
