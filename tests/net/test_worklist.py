"""Modality Worklist C-FIND SCU (PS3.4 K.6, issue 13) against real worklist SCPs: Orthanc with
its ModalityWorklists plugin, and DCMTK's wlmscpfs; a pynetdicom SCP that answers slowly for the
deadline and cancel."""

from __future__ import annotations

import dataclasses
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, evt
from pynetdicom.sop_class import ModalityWorklistInformationFind  # type: ignore[attr-defined]

from tests.cli import lightbox
from tests.conftest import require_tool
from tests.net import peers
from viewer.net import diagnose, worklist
from viewer.net.diagnose import NetError
from viewer.net.nodes import ConfigError, LocalSettings, Node, add_node
from viewer.net.worklist import (
    ModalityWorklistInformationModelFind,
    ScheduledStep,
    WorklistItem,
    WorklistQuery,
    item_from_identifier,
    query_worklist,
)

#: (patient ID, name, accession, modality, station, date, order's study UID)
Order = tuple[str, str, str, str, str, str, str]
ORDERS: list[Order] = [
    ("LB010", "DOE^JOHN", "A100", "CT", "CT1", "20261205", "2.25.100"),
    ("LB009", "SMITH^ANNA", "A200", "MR", "MR1", "20261206", "2.25.200"),
    ("LB003", "DOE^JANE", "A300", "CT", "CT2", "20261207", ""),
]


def order(
    patient_id: str,
    name: str,
    accession: str,
    modality: str,
    station: str,
    date: str,
    study_uid: str,
) -> Dataset:
    """A worklist entry as a RIS would hold it (PS3.4 Table K.6-1's return keys filled)."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = name
    ds.PatientID = patient_id
    ds.IssuerOfPatientID = "HOSP"
    ds.PatientBirthDate = "19600101"
    ds.PatientSex = "M"
    ds.AccessionNumber = accession
    ds.ReferringPhysicianName = "REFERRER^RITA"
    ds.RequestedProcedureDescription = f"{modality} EXAM"
    ds.RequestedProcedureID = f"RP-{accession}"
    if study_uid:
        ds.StudyInstanceUID = study_uid
    step = Dataset()
    step.Modality = modality
    step.ScheduledStationAETitle = station
    step.ScheduledProcedureStepStartDate = date
    step.ScheduledProcedureStepStartTime = "093000"
    step.ScheduledProcedureStepDescription = f"{modality} EXAM"
    step.ScheduledProcedureStepID = f"SPS-{accession}"
    step.ScheduledPerformingPhysicianName = ""
    ds.ScheduledProcedureStepSequence = [step]
    return ds


def write_worklist(folder: Path, suffix: str, orders: list[Order] = ORDERS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for number, values in enumerate(orders, start=1):
        ds = order(*values)
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = UID(ModalityWorklistInformationModelFind)
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(folder / f"order{number}.{suffix}", enforce_file_format=True)
    return folder


def start_orthanc_worklist(folder: Path, scp_port: int, worklists: Path) -> peers.Orthanc:
    return peers.start_orthanc(
        folder,
        scp_port,
        extra={"Worklists": {"Enable": True, "Database": str(worklists)}},
        plugins=("ModalityWorklists",),
    )


@pytest.fixture
def orthanc_wl(tmp_path: Path, scp_port: int) -> Iterator[peers.Orthanc]:
    worklists = write_worklist(tmp_path / "worklists", "wl")
    peer = start_orthanc_worklist(tmp_path / "orthanc-wl", scp_port, worklists)
    yield peer
    peer.stop()


@pytest.fixture
def orthanc_wl_node(orthanc_wl: peers.Orthanc) -> Node:
    return Node("ris", orthanc_wl.aet, "127.0.0.1", orthanc_wl.dicom_port)


def test_orthanc_worklist_by_patient(orthanc_wl_node: Node, local: LocalSettings) -> None:
    result = query_worklist(orthanc_wl_node, local, WorklistQuery(patient_id="LB010"))
    assert not result.cancelled and not result.stopped_at
    (item,) = result.items
    assert item.patient_id == "LB010"
    assert item.issuer_of_patient_id == "HOSP"
    assert item.patient_name == "DOE^JOHN"
    assert item.birth_date == "19600101"
    assert item.sex == "M"
    assert item.accession_number == "A100"
    assert item.requested_procedure_description == "CT EXAM"
    assert item.requested_procedure_id == "RP-A100"
    assert item.study_instance_uid == "2.25.100"
    (step,) = item.steps
    assert (step.modality, step.station_ae, step.start_date) == ("CT", "CT1", "20261205")
    assert step.step_id == "SPS-A100"
    assert "DOE^JOHN" in item.summary() and "accession A100" in item.summary()


def test_orthanc_worklist_filters(orthanc_wl_node: Node, local: LocalSettings) -> None:
    def ids(query: WorklistQuery) -> list[str]:
        found = query_worklist(orthanc_wl_node, local, query).items
        return sorted(i.patient_id for i in found)

    assert ids(WorklistQuery()) == ["LB003", "LB009", "LB010"]
    assert ids(WorklistQuery(modality="CT")) == ["LB003", "LB010"]
    assert ids(WorklistQuery(station_ae="MR1")) == ["LB009"]
    assert ids(WorklistQuery(patient_name="DOE*")) == ["LB003", "LB010"]
    assert ids(WorklistQuery(accession_number="A300")) == ["LB003"]
    assert ids(WorklistQuery(date_from="20261206", date_to="20261207")) == ["LB003", "LB009"]
    assert ids(WorklistQuery(date_from="20261207")) == ["LB003"]
    assert ids(WorklistQuery(patient_id="NOBODY")) == []


def test_answers_are_capped(orthanc_wl_node: Node, local: LocalSettings) -> None:
    result = query_worklist(orthanc_wl_node, local, WorklistQuery(), limit=2)
    assert len(result.items) == 2 and result.stopped_at == 2
    assert "narrow the query" in result.note


def test_cancel_before_the_answer(orthanc_wl_node: Node, local: LocalSettings) -> None:
    cancel = threading.Event()
    cancel.set()
    result = query_worklist(orthanc_wl_node, local, WorklistQuery(), cancel=cancel)
    assert result.cancelled and result.items == []


def test_a_pacs_without_worklist_says_so(orthanc_node: Node, local: LocalSettings) -> None:
    with pytest.raises(NetError) as caught:
        query_worklist(orthanc_node, local, WorklistQuery())
    assert caught.value.code == diagnose.NO_CONTEXT


def test_unreachable(local: LocalSettings) -> None:
    node = Node("gone", "RIS", "127.0.0.1", peers.free_port())
    with pytest.raises(NetError) as caught:
        query_worklist(node, local, WorklistQuery())
    assert caught.value.code == diagnose.REFUSED


def test_a_dicomweb_node_is_refused_before_anything_is_sent(local: LocalSettings) -> None:
    """Nothing listens at the URL: had the query tried, it would say "connection refused"."""
    url = f"http://127.0.0.1:{peers.free_port()}/dicom-web"
    with pytest.raises(ConfigError) as caught:
        query_worklist(Node("ris-web", url=url), local, WorklistQuery(patient_id="LB010"))
    message = str(caught.value)
    assert f"{url} is a DICOMweb node" in message
    assert "the Modality Worklist is a DIMSE service" in message and "refused" not in message
    add_node(Node("ris-web", url=url))
    for command in (
        ("worklist", "ris-web"),
        ("reconcile", "1.2.3", "--worklist", "ris-web", "--patient-id", "LB010"),
    ):
        cli = lightbox(*command)
        assert cli.returncode == 2, (command, cli.stderr)  # a usage error
        assert "is a DICOMweb node" in cli.stderr and "Traceback" not in cli.stderr


def test_query_is_checked() -> None:
    with pytest.raises(ValueError, match="YYYYMMDD"):
        WorklistQuery(date_from="2026-12-05")
    with pytest.raises(ValueError, match="16"):
        WorklistQuery(station_ae="X" * 17)


# -- DCMTK wlmscpfs: <dir>/<called AE>/*.wl and a lockfile ---------------------------------------
# (DCMTK 3.6.7 reads only files named *.wl: *.wlf files are not found.)


@pytest.fixture
def wlmscpfs(tmp_path: Path) -> Iterator[Node]:
    exe = require_tool("wlmscpfs")
    data = tmp_path / "wlmscpfs"
    write_worklist(data / "WLMSCP", "wl")
    (data / "WLMSCP" / "lockfile").touch()
    port = peers.free_port()
    proc = subprocess.Popen(
        [exe, "-dfr", "-csk", "-dfp", str(data), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=peers.DCMTK_ENV,
    )
    peers.wait_port(port, proc)
    yield Node("wlm", "WLMSCP", "127.0.0.1", port)
    peers.stop(proc)


def test_wlmscpfs_worklist(wlmscpfs: Node, local: LocalSettings) -> None:
    (item,) = query_worklist(wlmscpfs, local, WorklistQuery(accession_number="A200")).items
    assert (item.patient_id, item.patient_name, item.issuer_of_patient_id) == (
        "LB009",
        "SMITH^ANNA",
        "HOSP",
    )
    assert item.steps[0].modality == "MR" and item.steps[0].station_ae == "MR1"
    found = query_worklist(wlmscpfs, local, WorklistQuery(modality="CT")).items
    assert sorted(i.accession_number for i in found) == ["A100", "A300"]
    assert next(i for i in found if i.accession_number == "A300").study_instance_uid == ""


def test_wlmscpfs_unknown_called_ae(wlmscpfs: Node, local: LocalSettings) -> None:
    other = Node("wlm", "NOSUCHAE", wlmscpfs.host, wlmscpfs.port)
    with pytest.raises(NetError) as caught:
        query_worklist(other, local, WorklistQuery())
    # wlmscpfs sends A-ASSOCIATE-RJ and closes at once; on a loaded machine the close can come
    # as a TCP reset that drops the unread rejection (Linux discards queued data on RST), and
    # all we can then say is that it closed without answering, which names our AE title too.
    assert caught.value.code in (diagnose.CALLED_AE, diagnose.ABORTED), caught.value.message
    if caught.value.code == diagnose.CALLED_AE:
        assert "NOSUCHAE" in caught.value.message
    else:
        assert "AE title" in caught.value.message


# -- a worklist that answers slowly: the deadline and cancel ------------------------------------


@pytest.fixture
def slow_worklist() -> Iterator[Node]:
    """A pynetdicom worklist SCP sending one match every 0.5 s, without end."""
    stopped = threading.Event()

    def handle(event: evt.Event) -> Iterator[tuple[int, Dataset | None]]:
        for _ in range(1000):
            if event.is_cancelled or stopped.is_set():
                yield 0xFE00, None
                return
            time.sleep(0.5)
            yield 0xFF00, order(*ORDERS[0])

    ae = AE(ae_title="SLOWRIS")
    ae.add_supported_context(ModalityWorklistInformationFind)
    port = peers.free_port()
    server = ae.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_FIND, handle)]
    )
    assert server is not None
    yield Node("slow", "SLOWRIS", "127.0.0.1", port)
    stopped.set()
    server.shutdown()


def test_deadline(slow_worklist: Node, local: LocalSettings) -> None:
    started = time.monotonic()
    with pytest.raises(NetError) as caught:
        query_worklist(slow_worklist, local, WorklistQuery(), deadline=1.2)
    assert caught.value.code == diagnose.TIMEOUT
    assert "within 1.2 s" in caught.value.message
    assert time.monotonic() - started < 6


def test_cancel_while_answering(slow_worklist: Node, local: LocalSettings) -> None:
    cancel = threading.Event()
    threading.Timer(1.2, cancel.set).start()
    started = time.monotonic()
    result = query_worklist(slow_worklist, local, WorklistQuery(), cancel=cancel)
    assert result.cancelled
    assert 1 <= len(result.items) <= 4
    assert time.monotonic() - started < 6


def test_item_from_a_bare_answer() -> None:
    """A peer that leaves keys out: empty values, never an error."""
    ds = Dataset()
    ds.PatientID = "LB010\0"
    item = item_from_identifier(ds)
    assert item.patient_id == "LB010" and item.steps == () and item.patient_name == ""


def test_every_return_key_has_its_field() -> None:
    """The keyword -> field tables that build the query and read the answers name each field
    of an item and of a step once (a misspelt field would lose every step silently)."""
    item_fields = {f.name for f in dataclasses.fields(WorklistItem)} - {"steps"}
    assert sorted(worklist._TOP_KEYS.values()) == sorted(item_fields)
    step_fields = {f.name for f in dataclasses.fields(ScheduledStep)}
    assert sorted(worklist._STEP_KEYS.values()) == sorted(step_fields)
    full = order(*ORDERS[0])
    item = item_from_identifier(full)
    assert item.referring_physician == "REFERRER^RITA" and item.study_instance_uid == "2.25.100"
    assert item.steps[0].step_id == "SPS-A100" and item.steps[0].start_time == "093000"
