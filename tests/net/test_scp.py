"""Our storage SCP receiving from DCMTK storescu; allow-list; one SCP per port."""

from __future__ import annotations

import threading
import time
import warnings
from dataclasses import replace
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pynetdicom import AE

from tests.net import peers
from tests.net.conftest import Received
from viewer.net.guard import spool_dir
from viewer.net.nodes import LocalSettings
from viewer.net.scp import StorageScp, ensure_scp, scp_answers, serve_until


def test_receive_from_storescu(
    our_scp: StorageScp, local: LocalSettings, study: peers.StudyFiles, received: Received
) -> None:
    # -xy: propose JPEG baseline besides the uncompressed syntaxes (JPEG stays JPEG)
    result = peers.storescu("STORESCU", "LIGHTBOX", local.scp_port, study.files, "-xy")
    assert result.returncode == 0, result.stderr
    assert received.uids() == set(study.sop_instance_uids)
    assert set(received.callers) == {"STORESCU"}
    for path in study.files:
        sent = pydicom.dcmread(path)
        got = pydicom.dcmread(received.folder / path.name)
        assert got.file_meta.TransferSyntaxUID == sent.file_meta.TransferSyntaxUID
        assert got.PixelData == sent.PixelData
        assert got.PatientName == sent.PatientName
    assert not list(spool_dir().iterdir())


def test_called_ae_must_be_ours(
    our_scp: StorageScp, local: LocalSettings, study: peers.StudyFiles, received: Received
) -> None:
    result = peers.storescu("STORESCU", "SOMEONE", local.scp_port, study.files[:1])
    assert result.returncode != 0
    assert received.uids() == set()


def test_allow_list_restricts_callers(
    local: LocalSettings, study: peers.StudyFiles, received: Received
) -> None:
    with StorageScp(replace(local, accepted_callers=("CT1",)), received):
        refused = peers.storescu("STORESCU", "LIGHTBOX", local.scp_port, study.files[:1])
        accepted = peers.storescu("CT1", "LIGHTBOX", local.scp_port, study.files[:1])
    assert refused.returncode != 0
    assert accepted.returncode == 0, accepted.stderr
    assert received.callers == ["CT1"]


def test_the_import_status_goes_back_to_the_sender(
    our_scp: StorageScp, local: LocalSettings, study: peers.StudyFiles, received: Received
) -> None:
    received.status = 0xA700  # the store is full
    result = peers.storescu("STORESCU", "LIGHTBOX", local.scp_port, study.files[:1], "-v")
    assert result.returncode != 0
    assert "Refused: OutOfResources" in result.stdout + result.stderr, result.stderr


# pynetdicom decodes the command set (with the bad UID) in its own thread: pydicom warns there.
@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_a_uid_unfit_for_a_path_is_refused(
    our_scp: StorageScp, local: LocalSettings, received: Received, tmp_path: Path
) -> None:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    with warnings.catch_warnings():  # pydicom may warn of the invalid UI value: that is the point
        warnings.simplefilter("ignore")
        ds.SOPInstanceUID = "1.2.3/../../etc"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        bad = tmp_path / "bad.dcm"
        ds.save_as(bad)
    result = peers.storescu("STORESCU", "LIGHTBOX", local.scp_port, [bad], "-v")
    assert "Error: CannotUnderstand" in result.stdout + result.stderr, result.stderr
    assert received.uids() == set()
    assert not list(spool_dir().iterdir())


def test_one_scp_per_port(local: LocalSettings, received: Received, tmp_path: Path) -> None:
    assert not scp_answers(local)
    handle, scp = ensure_scp(local, received)
    try:
        assert handle.owned and scp is not None
        assert scp_answers(local)
        second, none = ensure_scp(local, Received(tmp_path / "second"))
        assert not second.owned and none is None and second.port == local.scp_port
    finally:
        assert scp is not None
        scp.stop()
    assert not scp_answers(local)


def test_an_scp_of_another_process_on_our_port_is_used_not_replaced(
    local: LocalSettings, received: Received, tmp_path: Path
) -> None:
    """Another process (here DCMTK's storescp as our AE title, as a ``lightbox listen`` or the
    GUI would be) already answers on our port: asked over the network, used, nothing started."""
    other = peers.start_storescp(tmp_path, aet=local.ae_title, port=local.scp_port)
    try:
        handle, scp = ensure_scp(local, received)
        assert not handle.owned and scp is None and handle.port == local.scp_port
    finally:
        other.stop()


def test_serve_until_stops_when_told(
    local: LocalSettings, received: Received, study: peers.StudyFiles
) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=serve_until, args=(local, received, stop))
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while not scp_answers(local) and time.monotonic() < deadline:
            time.sleep(0.05)
        result = peers.storescu("STORESCU", "LIGHTBOX", local.scp_port, study.files[:2])
        assert result.returncode == 0, result.stderr
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert len(received.uids()) == 2
    assert not scp_answers(local)


def test_a_sender_gone_before_our_answer_leaves_the_scp_serving(
    local: LocalSettings, received: Received, study: peers.StudyFiles, tmp_path: Path
) -> None:
    """The sender aborts while we store its instance: answering it must not raise in our
    threads, and the next sender is served."""
    entered, gone = threading.Event(), threading.Event()
    errors: list[BaseException] = []
    previous_hook = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        errors.append(args.exc_value or RuntimeError("thread died"))

    def slow(path: Path, caller: str) -> int:
        entered.set()
        gone.wait(10)
        return received(path, caller)

    threading.excepthook = hook
    try:
        with StorageScp(local, slow, tmp_path / "spool"):
            ae = AE("GONE")
            ae.add_requested_context(pydicom.dcmread(study.files[0]).SOPClassUID)
            assoc = ae.associate("127.0.0.1", local.scp_port, ae_title=local.ae_title)
            assert assoc.is_established
            sender = threading.Thread(target=assoc.send_c_store, args=(study.files[0],))
            sender.start()
            assert entered.wait(10)
            assoc.abort()
            gone.set()
            sender.join(10)
            time.sleep(0.3)  # let our association's threads answer and end
            result = peers.storescu("STORESCU", "LIGHTBOX", local.scp_port, study.files[1:2])
            assert result.returncode == 0, result.stderr
    finally:
        threading.excepthook = previous_hook
    assert errors == []
    assert pydicom.dcmread(study.files[1]).SOPInstanceUID in received.uids()
