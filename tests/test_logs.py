"""The log (viewer/logs.py, issue 12): rotating files in the app folder at the reader's level,
stderr as the CLI always had it, nothing raised where nothing can be written, every line
escaped, and no patient identifier at the default level, through the CLI and in process."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.cli import lightbox
from tests.conftest import lightbox_home, patient_data_in_logs, patient_needles, suite_log_files
from tests.store.dicomfiles import make_dataset, write
from viewer import logs

ROOT = Path(__file__).resolve().parent.parent

#: The named patient of these tests; tests/conftest.py's session scan looks for them too.
NAME, PATIENT_ID, BIRTH_DATE = "Doe^Jane", "PID-4711", "19700101"


def run_python(code: str, *, env_home: Path) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter: a process with no handler yet, as `lightbox` starts."""
    env = dict(os.environ, LIGHTBOX_HOME=str(env_home))
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60
    )


def file_handler() -> logging.Handler:
    handler = logs._ours("file")
    assert handler is not None
    return handler


def file_records(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


# -- the file, its level and its rotation --------------------------------------------------------


def test_the_file_is_in_the_app_folder_with_time_level_process_and_thread(
    root_logger: logging.Logger,
) -> None:
    path = logs.configure()
    assert path == lightbox_home() / "logs" / "lightbox.log"
    logging.getLogger("viewer.test").info("imported %d files", 3)
    logging.getLogger("viewer.test").debug("not at the default level")
    lines = file_records(path)
    assert len(lines) == 1, lines
    assert lines[0].endswith(f"INFO [{os.getpid()} MainThread] viewer.test: imported 3 files")
    assert logs.record_level(lines[0]) == "INFO"
    assert logs.log_files() == [path]


def test_the_level_is_a_setting_kept_in_settings_json(root_logger: logging.Logger) -> None:
    assert logs.log_level() == "INFO"  # nothing set
    path = logs.configure()
    assert path is not None
    assert logs.set_log_level("debug") == "DEBUG"  # applies at once
    logging.getLogger("viewer.test").debug("now at debug")
    assert json.loads((lightbox_home() / "settings.json").read_text()) == {"log_level": "DEBUG"}
    assert logs.log_level() == "DEBUG"
    assert any(line.endswith("viewer.test: now at debug") for line in file_records(path))
    with pytest.raises(ValueError, match="not a log level"):
        logs.set_log_level("chatty")
    # The next process starts at the level kept; a damaged value is the default.
    logs.shutdown()
    assert logs.configure() == path and file_handler().level == logging.DEBUG
    (lightbox_home() / "settings.json").write_text(json.dumps({"log_level": 42}))
    assert logs.log_level() == "INFO"
    assert logs.configure(level="ERROR") == path  # an explicit level wins over the setting
    assert file_handler().level == logging.ERROR


def test_the_file_rotates_and_keeps_five_older_files(
    root_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logs, "MAX_BYTES", 2000)
    path = logs.configure()
    assert path is not None
    for n in range(400):
        logging.getLogger("viewer.test").info("line %04d of the rotation test", n)
    files = logs.log_files()
    assert [p.name for p in files] == ["lightbox.log"] + [f"lightbox.log.{n}" for n in range(1, 6)]
    assert all(p.stat().st_size <= 2000 for p in files)
    assert not (path.parent / "lightbox.log.6").exists()
    assert "line 0399" in path.read_text()  # the newest is in the current file


def test_configure_twice_adds_no_second_handler(
    root_logger: logging.Logger, tmp_path: Path
) -> None:
    before = len(root_logger.handlers)  # pytest's own: no stderr handler of ours beside them
    first = logs.configure()
    assert logs.configure(verbose=True) == first
    assert len(root_logger.handlers) == before + 1
    # Another folder replaces the file handler (the old file is closed), still one.
    other = logs.configure(folder=tmp_path / "elsewhere")
    assert other == tmp_path / "elsewhere" / "lightbox.log"
    ours = [h for h in root_logger.handlers if getattr(h, logs._MARK, None)]
    assert len(ours) == 1 and len(root_logger.handlers) == before + 1
    logs.shutdown()
    assert len(root_logger.handlers) == before


def test_every_line_is_escaped_and_a_traceback_is_indented(
    root_logger: logging.Logger,
) -> None:
    path = logs.configure()
    assert path is not None
    log = logging.getLogger("viewer.test")
    thread = threading.Thread(
        target=lambda: log.warning("name %s", "Evil\x1b[2J\nforged line\u202e"),
        name="read IM\x1b]0;x\x07",
    )
    thread.start()
    thread.join()
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        log.exception("failed")
    lines = file_records(path)
    assert "\x1b" not in path.read_text() and "\u202e" not in path.read_text()
    assert lines[0].endswith(
        f"WARNING [{os.getpid()} read IM\\x1b]0;x\\x07] viewer.test: "
        "name Evil\\x1b[2J\\nforged line\\u202e"
    )
    assert logs.record_level(lines[1]) == "ERROR" and lines[1].endswith("failed")
    assert lines[2:] and all(line.startswith("    ") for line in lines[2:])
    assert [logs.record_level(line) for line in lines[2:]] == [None] * len(lines[2:])


def test_a_home_that_cannot_be_written_leaves_stderr_and_raises_nothing(tmp_path: Path) -> None:
    (tmp_path / "not-a-folder").write_text("")  # chmod is no test: root writes anyway
    code = (
        "import logging; from viewer import logs\n"
        "print(logs.configure())\n"
        "logging.getLogger('viewer.test').warning('still on stderr')\n"
        "print(logs.log_files(), logs.log_level())\n"
    )
    result = run_python(code, env_home=tmp_path / "not-a-folder" / "home")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "None\n[] INFO\n"
    assert result.stderr == "lightbox: WARNING: still on stderr\n"
    # The app folder exists but its logs/ cannot be made.
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "logs").write_text("")
    result = run_python(code, env_home=tmp_path / "home")
    assert (result.returncode, result.stdout) == (0, "None\n[] INFO\n"), result.stderr
    assert result.stderr == "lightbox: WARNING: still on stderr\n"


def test_a_file_that_fails_to_write_is_silent(
    root_logger: logging.Logger, capfd: pytest.CaptureFixture[str]
) -> None:
    """A full disc: the record is lost, the user's terminal sees no logging traceback."""
    logs.configure()
    handler = file_handler()

    class Full:
        def write(self, text: str) -> int:
            raise OSError(28, "No space left on device")

        def flush(self) -> None:
            raise OSError(28, "No space left on device")

    handler.stream = Full()  # type: ignore[attr-defined]
    logging.getLogger("viewer.test").warning("lost")
    assert handler.failures == 1  # type: ignore[attr-defined]
    handler.stream = None  # type: ignore[attr-defined]
    err = capfd.readouterr().err
    assert "Logging error" not in err and "Traceback" not in err


def test_stderr_is_as_before_warning_or_debug_with_verbose(tmp_path: Path) -> None:
    """The CLI's stderr: ``lightbox: LEVEL: message``, WARNING (DEBUG with -v); pydicom's
    records (they quote values) only with -v, as before; the file takes INFO all the same, and
    the records meant for it alone (a command's start and end)."""
    code = (
        "import logging, sys; from viewer import logs\n"
        "logs.configure(verbose=sys.argv[1] == 'v')\n"
        "log = logging.getLogger('viewer.test')\n"
        "log.debug('d'); log.info('i'); log.warning('w\\x1b')\n"
        "logging.getLogger('pydicom').warning('Invalid value Doe^Jane')\n"
        "logging.getLogger(logs.FILE_ONLY).warning('for the file alone')\n"
    )
    quiet = subprocess.run(
        [sys.executable, "-c", code, "q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, LIGHTBOX_HOME=str(tmp_path / "q")),
        timeout=60,
    )
    assert quiet.returncode == 0 and quiet.stderr == "lightbox: WARNING: w\\x1b\n", quiet.stderr
    loud = subprocess.run(
        [sys.executable, "-c", code, "v"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, LIGHTBOX_HOME=str(tmp_path / "v")),
        timeout=60,
    )
    assert loud.returncode == 0, loud.stderr
    for line in ("lightbox: DEBUG: d", "lightbox: INFO: i", "lightbox: WARNING: w\\x1b"):
        assert line in loud.stderr.splitlines()
    assert "lightbox: WARNING: Invalid value Doe^Jane" in loud.stderr
    assert "for the file alone" not in loud.stderr
    for folder in ("q", "v"):  # the file: INFO and up, never the library's record
        text = (tmp_path / folder / "logs" / "lightbox.log").read_text()
        assert "viewer.test: i" in text and "viewer.test: w" in text
        assert "lightbox.session: for the file alone" in text
        assert "viewer.test: d" not in text and "Doe^Jane" not in text


# -- no patient identifiers at the default level ---------------------------------------------


def named_patient_folder(parent: Path) -> Path:
    """Three CT slices of Doe^Jane in a folder named after her (as some USB exports are), the
    third with its pixel data cut short: a frame that cannot be loaded, whose path gets logged."""
    folder = parent / "Doe_Jane_PID-4711" / "CT"
    for n in (1, 2, 3):
        ds = make_dataset(1, 1, n, patient=NAME, patient_id=PATIENT_ID)
        ds.PatientBirthDate = BIRTH_DATE
        write(folder / f"IM{n:04d}", ds)
    damaged = folder / "IM0003"
    damaged.write_bytes(damaged.read_bytes()[:-60])
    return folder.parent


def needles() -> list[str]:
    return patient_needles((NAME, PATIENT_ID, BIRTH_DATE, "Doe_Jane"))


def test_the_cli_logs_no_patient_data_at_the_default_level(tmp_path: Path) -> None:
    source = named_patient_folder(tmp_path)
    for args in (
        ("import", str(source)),
        ("ls", str(source)),
        ("-v", "ls", str(source)),
        ("store", "ls"),
        ("render", str(source / "CT" / "IM0001"), "-o", str(tmp_path / "one.png")),
        ("render", str(source / "CT" / "IM0003"), "-o", str(tmp_path / "bad.png")),
        ("dump", str(source / "CT" / "IM0001")),
    ):
        done = lightbox(*args)
        assert done.returncode in (0, 1, 3), (args, done.stderr)  # the damaged file: 3
    assert "Doe, Jane  [PID-4711]" in lightbox("store", "ls").stdout  # the work saw her
    files = logs.log_files(lightbox_home() / "logs")
    assert files, "the commands wrote no log"
    text = "".join(p.read_text(encoding="utf-8") for p in files)
    for line in ("import started (Lightbox ", "import ended: exit 1", "render ended: exit 3"):
        assert line in text, text
    assert text.count("ls started") == 4 and "store ls ended: exit 0" in text  # 2 ls, 2 store ls
    assert patient_data_in_logs(files, needles()) == []
    assert not [n for n in needles() if n in text]  # not even in a DEBUG record


def test_the_in_process_api_logs_no_patient_data_at_the_default_level(
    root_logger: logging.Logger, tmp_path: Path
) -> None:
    from viewer.imaging.loader import SeriesLoader
    from viewer.imaging.stack import build_stacks
    from viewer.media.scan import scan
    from viewer.store import Store, import_paths

    source = named_patient_folder(tmp_path)
    path = logs.configure()
    assert path is not None

    def load() -> dict[int, str]:
        stack = next(s for s in build_stacks(scan(source).instances) if len(s.frames) == 3)
        with SeriesLoader(stack) as loader:
            loader.start()
            assert loader.wait(60)
            return dict(loader.problems)

    with Store.open() as store:
        report = import_paths(store, [source])
    assert report.imported
    problems = load()
    assert list(problems) == [2] and PATIENT_ID in problems[2]  # the message names the file
    text = path.read_text(encoding="utf-8")
    assert "INFO" in text and "frame 3 of a series not loaded" in text, text
    assert patient_data_in_logs([path], needles()) == []
    assert not [n for n in needles() if n in text]
    # At DEBUG, the reader's choice, the reason is logged with the file's path: the scan would
    # see it if it were at INFO (the test can fail), and leaves DEBUG records alone.
    logs.set_log_level("DEBUG")
    load()
    text = path.read_text(encoding="utf-8")
    assert PATIENT_ID in text
    debug = [line for line in text.splitlines() if PATIENT_ID in line]
    assert debug and all(logs.record_level(line) == "DEBUG" for line in debug)
    assert patient_data_in_logs([path], needles()) == []
    forged = tmp_path / "forged.log"
    forged.write_text(debug[0].replace(" DEBUG ", " INFO ", 1) + "\n", encoding="utf-8")
    assert patient_data_in_logs([forged], needles()) != []


def test_the_session_scan_finds_the_suites_log_files_and_a_name_in_them(tmp_path: Path) -> None:
    """tests/conftest.py's end-of-session scan, on a made-up session folder (removed again:
    the real scan at the session's end would find its planted name)."""
    try:
        planted_session(tmp_path)
    finally:
        shutil.rmtree(tmp_path)


def planted_session(tmp_path: Path) -> None:
    for where in ("lightbox-home3/logs", "test_x0/home/logs", "session-logs0"):
        (tmp_path / where).mkdir(parents=True)
    (tmp_path / "lightbox-home3/logs/lightbox.log").write_text(
        "2024-01-02 10:00:00,000 INFO [1 MainThread] viewer: opened 3 files\n"
    )
    (tmp_path / "test_x0/home/logs/lightbox.log.2").write_text(
        "2024-01-02 10:00:00,000 DEBUG [1 MainThread] viewer: /media/Doe^Jane/IM1\n"
        "2024-01-02 10:00:00,000 WARNING [1 MainThread] viewer: bad file\n"
        "    Traceback: 'CompressedSamples, CT1'\n"
    )
    (tmp_path / "session-logs0/lightbox.log").write_text("")
    files = suite_log_files(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in files] == [
        "lightbox-home3/logs/lightbox.log",
        "session-logs0/lightbox.log",
        "test_x0/home/logs/lightbox.log.2",
    ]
    hits = patient_data_in_logs(files, patient_needles())
    assert hits == [f"{files[2]}:3: 'CompressedSamples, CT1'"]
