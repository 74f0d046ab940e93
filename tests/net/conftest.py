"""Fixtures for the network tests: real peers (Orthanc, DCMTK) on 127.0.0.1, free ports.

Orthanc starts in about 0.1 s, so each test gets its own (no state shared between tests).
Received instances go to :class:`Received`, a stand-in for the store's atomic import: it moves the
spooled file into a folder under its SOP Instance UID (validated) with one rename.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.filereader import read_file_meta_info

from tests.net import peers
from tests.net.rawpeer import ThreadErrors
from viewer.net.nodes import LocalSettings, Node, Timeouts
from viewer.net.scp import STATUS_SUCCESS, StorageScp, valid_uid

FAST = Timeouts(connect=3.0, acse=5.0, dimse=15.0, network=30.0)


class Received:
    """``on_instance`` for tests: atomic move into ``folder/<SOPInstanceUID>.dcm``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.callers: list[str] = []
        self.lock = threading.Lock()
        self.status = STATUS_SUCCESS

    def __call__(self, path: Path, calling_ae: str) -> int:
        uid = str(read_file_meta_info(path).MediaStorageSOPInstanceUID)
        assert valid_uid(uid)
        tmp = self.folder / f".{uid}.part"
        shutil.move(path, tmp)
        tmp.replace(self.folder / f"{uid}.dcm")
        with self.lock:
            self.callers.append(calling_ae)
        return self.status

    def uids(self) -> set[str]:
        return {p.stem for p in self.folder.glob("*.dcm")}

    def is_present(self, uid: str) -> bool:
        return (self.folder / f"{uid}.dcm").exists()


@pytest.fixture
def received(tmp_path: Path) -> Received:
    return Received(tmp_path / "received")


@pytest.fixture
def scp_port() -> int:
    return peers.free_port()


@pytest.fixture
def local(scp_port: int) -> LocalSettings:
    """Our AE as the peers know it (LIGHTBOX at our test SCP port), short timeouts."""
    return LocalSettings(ae_title="LIGHTBOX", scp_port=scp_port, timeouts=FAST)


@pytest.fixture
def study(tmp_path_factory: pytest.TempPathFactory) -> peers.StudyFiles:
    """Two uncompressed CT series and one JPEG baseline series (6 instances)."""
    return peers.make_study(
        tmp_path_factory.mktemp("study"),
        patient_name="DOE^JOHN",
        patient_id="LB001",
        accession="ACC001",
        study_date="20240102",
        description="CHEST CT",
        parts=[
            ("CT_small.dcm", "CT", 3),
            ("CT_small.dcm", "CT", 2),
            ("SC_rgb_jpeg_dcmtk.dcm", "OT", 1),
        ],
    )


@pytest.fixture
def other_study(tmp_path_factory: pytest.TempPathFactory) -> peers.StudyFiles:
    return peers.make_study(
        tmp_path_factory.mktemp("other"),
        patient_name="SMITH^ANNA",
        patient_id="LB002",
        accession="ACC002",
        study_date="20230505",
        description="BRAIN MR",
        parts=[("MR_small.dcm", "MR", 2)],
    )


@pytest.fixture
def orthanc(tmp_path: Path, scp_port: int) -> Iterator[peers.Orthanc]:
    peer = peers.start_orthanc(tmp_path / "orthanc", scp_port)
    yield peer
    peer.stop()


@pytest.fixture
def orthanc_node(orthanc: peers.Orthanc) -> Node:
    return Node("orthanc", orthanc.aet, "127.0.0.1", orthanc.dicom_port)


@pytest.fixture
def dcmqrscp(tmp_path: Path, scp_port: int, study: peers.StudyFiles) -> Iterator[peers.Dcmqrscp]:
    """dcmqrscp holding the two CT series of ``study`` (5 files; it accepts no JPEG by default)."""
    peer = peers.start_dcmqrscp(tmp_path / "dcmqrscp", scp_port)
    result = peers.storescu("STORESCU", peer.aet, peer.port, study.files[:5])
    assert result.returncode == 0, result.stderr
    yield peer
    peer.stop()


@pytest.fixture
def dcmqrscp_node(dcmqrscp: peers.Dcmqrscp) -> Node:
    return Node("dcmqrscp", dcmqrscp.aet, "127.0.0.1", dcmqrscp.port)


@pytest.fixture
def our_scp(local: LocalSettings, received: Received) -> Iterator[StorageScp]:
    scp = StorageScp(local, received)
    scp.start()
    yield scp
    scp.stop()


@pytest.fixture
def thread_errors() -> Iterator[ThreadErrors]:
    """Exceptions that escape any thread during the test (the hostile-peer tests' check that
    nothing a peer sends gets past the SCP's error handling)."""
    errors = ThreadErrors()
    previous = threading.excepthook
    threading.excepthook = errors
    try:
        yield errors
    finally:
        threading.excepthook = previous


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    path = tmp_path / "spool"
    path.mkdir()
    return path


@pytest.fixture
def scp(
    local: LocalSettings, received: Received, spool: Path, thread_errors: ThreadErrors
) -> Iterator[StorageScp]:
    """Our storage SCP spooling into ``spool``; no exception may have escaped a thread."""
    server = StorageScp(local, received, spool)
    server.start()
    yield server
    server.stop()
    assert thread_errors.errors == []
