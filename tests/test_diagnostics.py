"""The diagnostic bundle (viewer/diagnostics.py, issue 12): logs, configuration and versions
for a bug report, and nothing of the patients: no DICOM file, no index, no DEBUG line, no name
or ID, passwords redacted, the last folder left out."""

from __future__ import annotations

import json
import logging
import re
import zipfile
from pathlib import Path

import pytest

from tests.cli import lightbox
from tests.conftest import lightbox_home, patient_needles
from tests.store.dicomfiles import make_dataset, write
from viewer import __version__, diagnostics, logs, settings
from viewer.net.nodes import Node, Tls, add_node, config_path
from viewer.store import Store, import_paths
from viewer.store.schema import SCHEMA_VERSION

NAME, PATIENT_ID, BIRTH_DATE = "Doe^Jane", "PID-4711", "19700101"
NEEDLES = patient_needles((NAME, PATIENT_ID, BIRTH_DATE, "Doe_Jane"))


@pytest.fixture()
def used_home(root_logger: logging.Logger, tmp_path: Path) -> Path:
    """An app folder as a reader leaves it: Doe^Jane in the store, a PACS node with a password
    (as a later version might keep one), the last folder named after her, and a log at DEBUG
    (her name and ID in DEBUG records; INFO lines beside them) rotated once."""
    source = tmp_path / "Doe_Jane_PID-4711"
    for n in (1, 2):
        ds = make_dataset(1, 1, n, patient=NAME, patient_id=PATIENT_ID)
        ds.PatientBirthDate = BIRTH_DATE
        write(source / f"IM{n:04d}", ds)
    with Store.open() as store:
        assert len(import_paths(store, [source]).imported) == 2
    add_node(Node("PACS", "ARCHIVE", "pacs.example.org", 104, Tls(key="/etc/lightbox/key.pem")))
    network = json.loads(config_path().read_text())
    network["nodes"]["PACS"]["password"] = "hunter2"
    network["nodes"]["PACS"]["tls_pem"] = "-----BEGIN PRIVATE KEY-----\nMIIE\n"
    config_path().write_text(json.dumps(network))
    settings.update({"last_folder": str(source), "layout": [2, 2]})
    logs.configure()
    logs.set_log_level("DEBUG")
    log = logging.getLogger("viewer.test")
    log.info("first file, to be rotated")
    log.debug("opened %s of %s", source / "IM0001", NAME)
    handler = logs._ours("file")
    assert isinstance(handler, logging.handlers.RotatingFileHandler)
    handler.doRollover()
    log.info("imported %d files", 2)
    try:
        raise ValueError(f"cannot read {source}")
    except ValueError:
        log.debug("details", exc_info=True)  # a traceback in a DEBUG record goes with it
    log.warning("a warning after it")
    return lightbox_home()


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def test_the_bundle_has_logs_configuration_and_versions_and_no_patient(
    used_home: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with Store.open():  # the GUI has the store open meanwhile
        path = diagnostics.write_bundle(out)
    assert path.parent == out and re.fullmatch(r"lightbox-diagnostics-\d{8}-\d{6}\.zip", path.name)
    assert [p.name for p in out.iterdir()] == [path.name]  # no temporary left
    files = members(path)
    assert list(files) == [
        "about.txt",
        "logs/lightbox.log",
        "logs/lightbox.log.1",
        "config/network.json",
        "config/settings.json",
    ]
    # Nothing of the store: no DICOM file, no database, no name, ID or path of the patient.
    for name, data in files.items():
        assert not data.startswith(b"SQLite format 3"), name
        assert data[128:132] != b"DICM" and b"DICM" not in data, name
        text = data.decode("utf-8")
        assert not [n for n in NEEDLES if n in text], (name, text)
    # The logs without their DEBUG records (and the traceback of one), INFO and up kept.
    current = files["logs/lightbox.log"].decode()
    assert "viewer.test: imported 2 files" in current and "a warning after it" in current
    assert "Traceback" not in current and "details" not in current
    assert [logs.record_level(line) for line in current.splitlines()] == ["INFO", "WARNING"]
    assert "first file, to be rotated" in files["logs/lightbox.log.1"].decode()
    # The configuration: secrets redacted, the last folder left out, the rest as it was.
    network = json.loads(files["config/network.json"])
    pacs = network["nodes"]["PACS"]
    assert pacs["password"] == pacs["tls_pem"] == diagnostics.REDACTED
    assert (pacs["ae_title"], pacs["host"], pacs["port"]) == ("ARCHIVE", "pacs.example.org", 104)
    assert pacs["tls"]["key"] == "/etc/lightbox/key.pem"  # a path to the key, not the key
    assert network["local"]["ae_title"] == "LIGHTBOX"
    kept = json.loads(files["config/settings.json"])
    assert kept == {"last_folder": diagnostics.LEFT_OUT, "layout": [2, 2], "log_level": "DEBUG"}
    # about.txt: versions, the store in numbers, the level and what it means.
    about = files["about.txt"].decode()
    for line in (
        f"Lightbox {__version__}",
        "Python 3.",
        "platform: ",
        "  pydicom 3.",
        "  numpy ",
        "  python-gdcm ",
        "  pylibjpeg-openjpeg ",
        "  av ",
        f"schema version: {SCHEMA_VERSION} (this Lightbox: {SCHEMA_VERSION})",
        "patients: 1, studies: 1, series: 1, instances: 2",
        "free space: ",
        "level: DEBUG",
        "debug records may contain patient data",
        "files: lightbox.log, lightbox.log.1",
        "network.json: redacted or left out: nodes.PACS.password, nodes.PACS.tls_pem",
        "settings.json: redacted or left out: last_folder",
    ):
        assert line in about, (line, about)
    assert int(re.search(r"lines left out \(DEBUG records\): (\d+)", about)[1]) >= 3  # type: ignore[index]


def test_at_the_default_level_about_says_so_and_debug_lines_still_stay_out(
    root_logger: logging.Logger, tmp_path: Path
) -> None:
    logs.configure()
    log = logging.getLogger("viewer.test")
    log.info("started")
    log.debug("never shown")
    path = diagnostics.write_bundle(tmp_path / "b.zip")
    assert path == tmp_path / "b.zip"
    files = members(path)
    assert list(files) == ["about.txt", "logs/lightbox.log"]  # no configuration written yet
    about = files["about.txt"].decode()
    assert "level: INFO" in about and "patient data" not in about
    assert "no index yet" in about
    assert "viewer.test: started" in files["logs/lightbox.log"].decode()


def test_scrub_log_leaves_debug_records_out_with_their_lines() -> None:
    text = (
        "    the end of a record in the older file\n"
        "2024-01-02 10:00:00,000 INFO [1 MainThread] a: kept\n"
        "2024-01-02 10:00:00,001 DEBUG [1 MainThread] a: Doe^Jane\n"
        "    Traceback (most recent call last):\n"
        "    ValueError: PID-4711\n"
        "2024-01-02 10:00:00,002 ERROR [1 MainThread] a: kept too\n"
        "    Traceback (most recent call last):\n"
    )
    kept, left_out = diagnostics.scrub_log(text)
    assert kept == (
        "2024-01-02 10:00:00,000 INFO [1 MainThread] a: kept\n"
        "2024-01-02 10:00:00,002 ERROR [1 MainThread] a: kept too\n"
        "    Traceback (most recent call last):\n"
    )
    assert left_out == 4  # the orphan line (its level unknown), the DEBUG record's three


def test_a_damaged_or_huge_configuration_file_is_left_out_with_a_note(
    root_logger: logging.Logger, tmp_path: Path
) -> None:
    (lightbox_home() / "presets.json").write_text("{not json, maybe a name: Doe^Jane")
    (lightbox_home() / "big.json").write_text(json.dumps({"x": "a" * diagnostics.MAX_CONFIG_BYTES}))
    files = members(diagnostics.write_bundle(tmp_path / "b.zip"))
    assert "config/presets.json" not in files and "config/big.json" not in files
    about = files["about.txt"].decode()
    assert "presets.json: left out (not valid JSON)" in about
    assert "big.json: left out (too large to be configuration)" in about
    assert "Doe^Jane" not in about


def test_a_place_that_cannot_be_written_is_an_oserror_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    (tmp_path / "not-a-folder").write_text("")
    with pytest.raises(OSError):
        diagnostics.write_bundle(tmp_path / "not-a-folder" / "b.zip")
    assert [p.name for p in tmp_path.iterdir()] == ["not-a-folder"]


def test_the_cli_writes_the_bundle_and_prints_its_path(tmp_path: Path) -> None:
    assert lightbox("store", "ls").returncode == 0  # a first command: a log to bundle
    done = lightbox("diagnostics", "-o", str(tmp_path / "bundle.zip"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{tmp_path / 'bundle.zip'}\n" and done.stderr == ""
    files = members(tmp_path / "bundle.zip")
    assert "about.txt" in files and "logs/lightbox.log" in files
    assert "store ls ended: exit 0" in files["logs/lightbox.log"].decode()
    # A folder: a dated name in it.
    done = lightbox("diagnostics", "--output", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r".*/lightbox-diagnostics-\d{8}-\d{6}\.zip\n", done.stdout)
    # Cannot be written: one line, exit 3.
    (tmp_path / "not-a-folder").write_text("")
    done = lightbox("diagnostics", "-o", str(tmp_path / "not-a-folder" / "b.zip"))
    assert done.returncode == 3 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("lightbox: cannot write the diagnostic bundle")
