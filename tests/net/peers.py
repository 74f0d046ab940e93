"""Real DICOM peers on 127.0.0.1 for the network tests (recipes in ../shared/PEERS.md).

Each peer is started from its template in ``../shared/peers`` on free ports with a temporary
folder, waited for until it answers, and stopped by the process id we started.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from tests.conftest import SHARED, missing, require_tool

PEERS = SHARED / "peers"
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{proc.args!r} did not listen on {port} within {timeout} s")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _template(name: str) -> str:
    path = PEERS / name
    if not path.is_file():
        missing(f"{path} is absent (the peer templates sit beside the repository)")
    return path.read_text()


@dataclass
class Orthanc:
    proc: subprocess.Popen[bytes]
    dicom_port: int
    http_port: int
    folder: Path
    aet: str = "ORTHANC"

    def rest(self, method: str, path: str, body: bytes | None = None) -> Any:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}{path}", data=body, method=method
        )
        with urllib.request.urlopen(req, timeout=20) as rsp:
            data = rsp.read()
        if not data:
            return None
        try:
            return json.loads(data)
        except ValueError:  # metadata answers are plain text
            return data.decode()

    def statistics(self) -> dict[str, Any]:
        return dict(self.rest("GET", "/statistics"))

    def upload(self, paths: list[Path]) -> None:
        for path in paths:
            self.rest("POST", "/instances", path.read_bytes())

    def reset(self) -> None:
        for pid in self.rest("GET", "/patients"):
            self.rest("DELETE", f"/patients/{pid}")

    def stop(self) -> None:
        """SIGKILL: a graceful stop takes 3 s and the folder is thrown away anyway."""
        stop(self.proc, signal.SIGKILL)


#: Where Debian's orthanc and orthanc-dicomweb packages put their plugins.
ORTHANC_PLUGINS = Path("/usr/share/orthanc/plugins")


def orthanc_plugin(name: str) -> str:
    """The shared library of an Orthanc plugin (``lib{name}.so``); missing: skip, in CI fail."""
    path = ORTHANC_PLUGINS / f"lib{name}.so"
    if not path.is_file():
        missing(f"the Orthanc plugin {path} is not installed (Debian orthanc / orthanc-dicomweb)")
    return str(path)


def start_orthanc(
    folder: Path,
    lightbox_port: int,
    extra: dict[str, Any] | None = None,
    ports: tuple[int, int] | None = None,
    plugins: tuple[str, ...] = (),
) -> Orthanc:
    """``Orthanc config.json`` with the template filled: free ports, our SCP port as LIGHTBOX.

    ``plugins`` names Debian's Orthanc plugins to load (``ModalityWorklists``, ``OrthancDicomWeb``),
    each configured by ``extra``. Restarting with the same ``folder`` and ``ports`` keeps what it
    stored.
    """
    exe = require_tool("Orthanc")
    text = _template("orthanc.json")
    storage = folder / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    dicom_port, http_port = ports or (free_port(), free_port())
    text = text.replace("@STORAGE@", str(storage))
    text = text.replace("14242", str(dicom_port)).replace("18042", str(http_port))
    text = text.replace('"Port" : 11112', f'"Port" : {lightbox_port}')
    if plugins:
        libraries = [orthanc_plugin(name) for name in plugins]
        text = text.replace('"Plugins" : [ ]', f'"Plugins" : {json.dumps(libraries)}')
    if extra:
        # the template has comments (Orthanc accepts them); add keys before the last brace
        tail = text.rindex("}")
        text = text[:tail] + "".join(f',\n  "{k}" : {json.dumps(v)}' for k, v in extra.items())
        text += "\n}\n"
    config = folder / "orthanc.json"
    config.write_text(text)
    with (folder / "orthanc.log").open("ab") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            [exe, str(config)], stdout=log, stderr=subprocess.STDOUT, cwd=folder
        )
    peer = Orthanc(proc, dicom_port, http_port, folder)
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"Orthanc exited: {(folder / 'orthanc.log').read_text()[-2000:]}")
        try:
            peer.rest("GET", "/system")
            break
        except OSError:
            if time.monotonic() > deadline:
                stop(proc)
                raise RuntimeError("Orthanc did not answer GET /system within 30 s") from None
            time.sleep(0.1)
    wait_port(dicom_port, proc)
    return peer


@dataclass
class Dcmqrscp:
    proc: subprocess.Popen[bytes]
    port: int
    db: Path
    aet: str = "DCMQRSCP"

    def stop(self) -> None:
        stop(self.proc)


def start_dcmqrscp(folder: Path, lightbox_port: int) -> Dcmqrscp:
    exe = require_tool("dcmqrscp")
    db = folder / "db"
    db.mkdir(parents=True, exist_ok=True)
    port = free_port()
    text = _template("dcmqrscp.cfg").replace("@DB@", str(db))
    text = text.replace("NetworkTCPPort  = 11120", f"NetworkTCPPort  = {port}")
    text = text.replace("(LIGHTBOX, localhost, 11112)", f"(LIGHTBOX, localhost, {lightbox_port})")
    config = folder / "dcmqrscp.cfg"
    config.write_text(text)
    with (folder / "dcmqrscp.log").open("wb") as log:
        proc = subprocess.Popen(
            [exe, "-c", str(config), str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=DCMTK_ENV,
        )
    wait_port(port, proc)
    return Dcmqrscp(proc, port, db)


def storescu(
    aet: str, called: str, port: int, files: list[Path], *extra: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """DCMTK storescu pushing ``files`` (Nagle off, PEERS.md)."""
    exe = require_tool("storescu")
    args = [exe, "-aet", aet, "-aec", called, *extra, "127.0.0.1", str(port)]
    args += [str(p) for p in files]
    return subprocess.run(
        args, capture_output=True, text=True, env=DCMTK_ENV, timeout=timeout, check=False
    )


@dataclass
class Storescp:
    proc: subprocess.Popen[bytes]
    port: int
    folder: Path
    aet: str = "PEER"

    def files(self) -> list[Path]:
        return sorted(p for p in self.folder.iterdir() if p.is_file())

    def stop(self) -> None:
        stop(self.proc)


def start_storescp(
    folder: Path, *extra: str, aet: str = "PEER", port: int | None = None
) -> Storescp:
    exe = require_tool("storescp")
    out = folder / "received"
    out.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    proc = subprocess.Popen(
        [exe, "-aet", aet, *extra, "-od", str(out), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=DCMTK_ENV,
    )
    wait_port(port, proc)
    return Storescp(proc, port, out, aet)


# --- test studies made from pydicom's bundled files, with our own UIDs --------------------------


@dataclass
class StudyFiles:
    study_instance_uid: str
    patient_name: str
    patient_id: str
    files: list[Path] = field(default_factory=list)
    series: dict[str, list[str]] = field(default_factory=dict)  # series UID -> SOP instance UIDs

    @property
    def sop_instance_uids(self) -> list[str]:
        return [uid for uids in self.series.values() for uid in uids]


def make_study(
    folder: Path,
    *,
    patient_name: str,
    patient_id: str,
    accession: str,
    study_date: str,
    description: str,
    parts: list[tuple[str, str, int]],
) -> StudyFiles:
    """A study from bundled files: ``parts`` is (bundled file, modality, copies) per series."""
    folder.mkdir(parents=True, exist_ok=True)
    study = StudyFiles(generate_uid(), patient_name, patient_id)
    for series_number, (name, modality, copies) in enumerate(parts, start=1):
        series_uid = generate_uid()
        study.series[series_uid] = []
        source = get_testdata_file(name)
        assert source is not None, name
        for number in range(1, copies + 1):
            ds = pydicom.dcmread(source)
            sop_uid = generate_uid()
            ds.PatientName = patient_name
            ds.PatientID = patient_id
            ds.AccessionNumber = accession
            ds.StudyDate = study_date
            ds.StudyDescription = description
            ds.StudyInstanceUID = study.study_instance_uid
            ds.SeriesInstanceUID = series_uid
            ds.SeriesNumber = series_number
            ds.InstanceNumber = number
            ds.Modality = modality
            ds.SOPInstanceUID = sop_uid
            ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
            path = folder / f"{sop_uid}.dcm"
            ds.save_as(path, enforce_file_format=True)
            study.files.append(path)
            study.series[series_uid].append(sop_uid)
    return study
