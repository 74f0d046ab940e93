"""C-MOVE and C-GET against Orthanc and DCMTK dcmqrscp; resume, cancel, a dying PACS."""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import pydicom
import pytest

from tests.net import peers
from tests.net.conftest import Received
from viewer.net import diagnose
from viewer.net import retrieve as retrieve_module
from viewer.net.diagnose import NetError
from viewer.net.guard import spool_dir
from viewer.net.nodes import LocalSettings, Node
from viewer.net.retrieve import RetrieveProgress, retrieve
from viewer.net.scp import StorageScp
from viewer.net.transfers import TransferQueue


def assert_complete_files(received: Received) -> None:
    """Every file in the folder parses to the end: nothing half-written is shown."""
    assert not list(received.folder.glob(".*")), "a temporary file was left behind"
    for path in received.folder.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        assert ds.SOPInstanceUID == path.stem
        assert len(ds.PixelData) > 0
    assert not list(spool_dir().iterdir())


@pytest.mark.parametrize("method", ["move", "get"])
def test_retrieve_from_orthanc_counts_match_its_statistics(
    method: str,
    orthanc: peers.Orthanc,
    orthanc_node: Node,
    local: LocalSettings,
    study: peers.StudyFiles,
    received: Received,
) -> None:
    orthanc.upload(study.files)
    stats = orthanc.statistics()
    progress: list[RetrieveProgress] = []
    result = retrieve(
        orthanc_node,
        local,
        study.study_instance_uid,
        method=method,  # type: ignore[arg-type]
        on_instance=received,
        progress=progress.append,
    )
    assert result.ok and result.failed == 0
    assert result.completed == stats["CountInstances"] == len(study.files)
    assert received.uids() == set(study.sop_instance_uids)
    assert progress and progress[-1].completed == len(study.files)
    assert all(p.total == len(study.files) for p in progress)
    assert set(received.callers) == {"ORTHANC"}
    assert_complete_files(received)
    # each instance arrives in the syntax it is stored in (JPEG stays JPEG, also by C-GET)
    for path in study.files:
        sent = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
        got = pydicom.dcmread(received.folder / path.name, stop_before_pixels=True)
        assert got.file_meta.TransferSyntaxUID == sent


@pytest.mark.parametrize("method", ["move", "get"])
def test_retrieve_a_series_from_dcmqrscp(
    method: str,
    dcmqrscp_node: Node,
    local: LocalSettings,
    study: peers.StudyFiles,
    received: Received,
) -> None:
    series_uid, sops = next(iter(study.series.items()))
    result = retrieve(
        dcmqrscp_node,
        local,
        study.study_instance_uid,
        series_uid,
        method=method,  # type: ignore[arg-type]
        on_instance=received,
    )
    assert (result.completed, result.failed) == (len(sops), 0)
    assert received.uids() == set(sops)
    assert_complete_files(received)


def test_resume_skips_what_is_present(
    orthanc: peers.Orthanc,
    orthanc_node: Node,
    local: LocalSettings,
    study: peers.StudyFiles,
    received: Received,
) -> None:
    orthanc.upload(study.files)
    present = set(study.sop_instance_uids[:2])
    result = retrieve(
        orthanc_node,
        local,
        study.study_instance_uid,
        method="get",
        on_instance=received,
        is_present=lambda uid: uid in present,
    )
    assert (result.skipped, result.completed) == (2, len(study.files) - 2)
    assert received.uids() == set(study.sop_instance_uids) - present


def test_unknown_move_destination_is_explained(
    tmp_path: Path, scp_port: int, study: peers.StudyFiles, received: Received
) -> None:
    """Orthanc lets anyone move but does not know LBX2 as a destination."""
    orthanc = peers.start_orthanc(
        tmp_path / "o", scp_port, extra={"DicomAlwaysAllowMove": True, "DicomAlwaysAllowFind": True}
    )
    try:
        orthanc.upload(study.files)
        local = LocalSettings(ae_title="LBX2", scp_port=scp_port)
        node = Node("o", "ORTHANC", "127.0.0.1", orthanc.dicom_port)
        with pytest.raises(NetError) as info:
            retrieve(node, local, study.study_instance_uid, method="move", on_instance=received)
    finally:
        orthanc.stop()
    assert info.value.code == diagnose.MOVE_DESTINATION
    message = info.value.message
    assert "'LBX2'" in message and f"port {scp_port}" in message and "C-GET" in message
    assert received.uids() == set()


def big_study(tmp_path: Path, copies: int = 30) -> peers.StudyFiles:
    return peers.make_study(
        tmp_path / "big",
        patient_name="BIG^STUDY",
        patient_id="LB009",
        accession="ACC009",
        study_date="20240301",
        description="MANY",
        parts=[("CT_small.dcm", "CT", copies)],
    )


@pytest.mark.parametrize("method", ["move", "get"])
def test_cancel_mid_retrieve(
    method: str,
    tmp_path: Path,
    orthanc: peers.Orthanc,
    orthanc_node: Node,
    local: LocalSettings,
    received: Received,
) -> None:
    study = big_study(tmp_path, 40)
    orthanc.upload(study.files)
    cancel = threading.Event()

    def slow(path: Path, calling: str) -> int:
        """50 ms per instance: all 40 would take 2 s, cancel + 1 s grace ends it sooner."""
        status = received(path, calling)
        if len(received.uids()) >= 5:
            cancel.set()
        time.sleep(0.05)
        return status

    result = retrieve(
        orthanc_node,
        replace(local, timeouts=replace(local.timeouts, dimse=5)),
        study.study_instance_uid,
        method=method,  # type: ignore[arg-type]
        on_instance=slow,
        cancel=cancel,
        grace=1.0,
    )
    assert result.cancelled
    got = received.uids()
    assert 5 <= len(got) < len(study.files)
    assert got <= set(study.sop_instance_uids)
    assert_complete_files(received)


@pytest.mark.parametrize("method", ["move", "get"])
def test_pacs_killed_mid_retrieve_then_resume_completes(
    method: str, tmp_path: Path, scp_port: int, local: LocalSettings, received: Received
) -> None:
    study = big_study(tmp_path)
    folder = tmp_path / "pacs"
    orthanc = peers.start_orthanc(folder, scp_port)
    ports = (orthanc.dicom_port, orthanc.http_port)
    node = Node("o", "ORTHANC", "127.0.0.1", orthanc.dicom_port, retrieve_method=method)  # type: ignore[arg-type]
    try:
        orthanc.upload(study.files)
        queue = TransferQueue()
        job = queue.add(node, study.study_instance_uid)

        def killer(path: Path, calling: str) -> int:
            status = received(path, calling)
            if len(received.uids()) == 5:
                os.kill(orthanc.proc.pid, signal.SIGKILL)
            return status

        job = queue.run_job(job, local, on_instance=killer, is_present=received.is_present)
        assert job.state == "failed", job.message
        assert "lost" in job.message or "refused" in job.message
        kept = received.uids()
        assert 5 <= len(kept) < len(study.files)
        assert_complete_files(received)

        orthanc.proc.wait(5)
        orthanc = peers.start_orthanc(folder, scp_port, ports=ports)
        restarted = TransferQueue()  # a new program reading the saved queue
        [again] = restarted.jobs()
        restarted.retry(again)
        [done] = restarted.run_pending(local, on_instance=received, is_present=received.is_present)
        assert done.state == "done", done.message
        assert done.skipped == len(kept)
        assert done.completed == len(study.files) - len(kept)
        assert received.uids() == set(study.sop_instance_uids)
    finally:
        orthanc.stop()


def test_move_uses_an_scp_that_already_answers(
    orthanc: peers.Orthanc,
    orthanc_node: Node,
    local: LocalSettings,
    study: peers.StudyFiles,
    received: Received,
    tmp_path: Path,
) -> None:
    """A second process's retrieve goes through the SCP already running on our port."""
    orthanc.upload(study.files)
    gui = Received(tmp_path / "gui-store")
    with StorageScp(local, gui):
        result = retrieve(
            orthanc_node, local, study.study_instance_uid, method="move", on_instance=received
        )
    assert result.completed == len(study.files)
    assert gui.uids() == set(study.sop_instance_uids)
    assert received.uids() == set()


def test_get_of_a_study_with_many_classes_splits_associations(
    tmp_path: Path,
    orthanc: peers.Orthanc,
    orthanc_node: Node,
    local: LocalSettings,
    received: Received,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """11 SOP classes x (uncompressed + each compressed syntax) exceed 128 contexts."""
    parts = [
        ("CT_small.dcm", "CT"),
        ("MR_small.dcm", "MR"),
        ("rtdose.dcm", "RTDOSE"),
        ("rtplan.dcm", "RTPLAN"),
        ("test-SR.dcm", "SR"),
        ("waveform_ecg.dcm", "ECG"),
        ("examples_palette.dcm", "US"),
        ("liver_1frame.dcm", "SEG"),
        ("reportsi.dcm", "SR"),
        ("JPEG2000.dcm", "OT"),
        ("examples_ybr_color.dcm", "US"),
    ]
    study = peers.make_study(
        tmp_path / "many",
        patient_name="MANY^CLASSES",
        patient_id="LB010",
        accession="ACC010",
        study_date="20240404",
        description="CLASSES",
        parts=[(name, modality, 1) for name, modality in parts],
    )
    orthanc.upload(study.files)
    opened: list[int] = []
    real_open = retrieve_module.open_association

    def counting(*args: object, **kwargs: object) -> object:
        opened.append(len(args[2]))  # type: ignore[arg-type]
        return real_open(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(retrieve_module, "open_association", counting)
    result = retrieve(
        orthanc_node, local, study.study_instance_uid, method="get", on_instance=received
    )
    assert (result.completed, result.failed) == (11, 0)
    assert received.uids() == set(study.sop_instance_uids)
    get_associations = opened[1:]  # the first lists the instances (C-FIND)
    assert len(get_associations) >= 2 and max(get_associations) <= 128
    for path in study.files:
        sent = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
        got = pydicom.dcmread(received.folder / path.name, stop_before_pixels=True)
        if sent.is_compressed:
            assert got.file_meta.TransferSyntaxUID == sent
        else:  # implicit may come as explicit VR little endian: the same data
            assert not got.file_meta.TransferSyntaxUID.is_compressed


def test_move_when_our_port_is_taken_by_something_else(
    orthanc: peers.Orthanc,
    orthanc_node: Node,
    local: LocalSettings,
    study: peers.StudyFiles,
    received: Received,
) -> None:
    import socket

    orthanc.upload(study.files)
    with socket.socket() as squatter:
        squatter.bind(("", local.scp_port))
        squatter.listen(1)
        fast = replace(local, timeouts=replace(local.timeouts, acse=1))
        with pytest.raises(NetError) as info:
            retrieve(
                orthanc_node, fast, study.study_instance_uid, method="move", on_instance=received
            )
    assert f"port {local.scp_port} is taken" in info.value.message
