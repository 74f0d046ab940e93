"""C-STORE SCU against Orthanc (keeps each file's syntax) and DCMTK storescp (uncompressed only)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pydicom
import pytest

from tests.net import peers
from viewer.net import diagnose
from viewer.net import send as send_module
from viewer.net.connect import open_association
from viewer.net.diagnose import NetError
from viewer.net.nodes import LocalSettings, Node, Timeouts
from viewer.net.send import send

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_LS = "1.2.840.10008.1.2.4.80"


@pytest.fixture
def mixed(tmp_path_factory: pytest.TempPathFactory) -> peers.StudyFiles:
    """Uncompressed CT, JPEG baseline and JPEG-LS lossless in one study."""
    return peers.make_study(
        tmp_path_factory.mktemp("mixed"),
        patient_name="MIX^ED",
        patient_id="LB003",
        accession="ACC003",
        study_date="20240202",
        description="MIXED",
        parts=[
            ("CT_small.dcm", "CT", 3),
            ("SC_rgb_jpeg_dcmtk.dcm", "OT", 2),
            ("MR_small_jpeg_ls_lossless.dcm", "MR", 1),
        ],
    )


def syntax(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)


def test_send_mixed_study_to_orthanc_keeps_each_syntax(
    orthanc: peers.Orthanc, orthanc_node: Node, local: LocalSettings, mixed: peers.StudyFiles
) -> None:
    ticks: list[tuple[int, int]] = []
    result = send(orthanc_node, local, mixed.files, progress=lambda d, t: ticks.append((d, t)))
    assert result.sent == len(mixed.files) and not result.failed
    assert all(i.status == 0 for i in result.instances)
    assert ticks[-1] == (len(mixed.files), len(mixed.files))
    stats = orthanc.statistics()
    assert (stats["CountInstances"], stats["CountStudies"], stats["CountSeries"]) == (6, 1, 3)
    stored = {}
    for ident in orthanc.rest("GET", "/instances"):
        uid = orthanc.rest("GET", f"/instances/{ident}/simplified-tags")["SOPInstanceUID"]
        stored[uid] = orthanc.rest("GET", f"/instances/{ident}/metadata/TransferSyntax")
    expected = {p.stem: syntax(p) for p in mixed.files}
    assert stored == expected
    assert JPEG_BASELINE in stored.values() and JPEG_LS in stored.values()


def test_send_decompresses_for_a_peer_that_accepts_only_uncompressed(
    tmp_path: Path, local: LocalSettings, mixed: peers.StudyFiles
) -> None:
    storescp = peers.start_storescp(tmp_path)  # default: uncompressed syntaxes only
    try:
        result = send(Node("s", "PEER", "127.0.0.1", storescp.port), local, mixed.files)
    finally:
        storescp.stop()
    assert result.sent == len(mixed.files), [i.message for i in result.failed]
    files = storescp.files()
    assert len(files) == len(mixed.files)
    assert {syntax(p) for p in files} <= {"1.2.840.10008.1.2.1", "1.2.840.10008.1.2"}
    got = {str(pydicom.dcmread(p).SOPInstanceUID) for p in files}
    assert got == set(mixed.sop_instance_uids)


def test_failed_instances_are_retried_on_a_new_association(
    tmp_path: Path, local: LocalSettings, mixed: peers.StudyFiles
) -> None:
    """The receiver dies after 2 files and comes back: the rest is sent on the retry."""
    first = peers.start_storescp(tmp_path / "a")
    port = first.port
    second: list[peers.Storescp] = []

    def progress(done: int, total: int) -> None:
        if done == 2 and not second:
            first.stop()
            second.append(peers.start_storescp(tmp_path / "b", port=port))

    try:
        result = send(Node("s", "PEER", "127.0.0.1", port), local, mixed.files, progress=progress)
    finally:
        first.stop()
        for peer in second:
            peer.stop()
    assert second, "the receiver was not restarted"
    assert result.sent == len(mixed.files), [i.message for i in result.failed]
    assert len(first.files()) + len(second[0].files()) >= len(mixed.files)
    assert len(second[0].files()) >= len(mixed.files) - 2


def test_a_response_is_not_taken_by_a_reactor_woken_late(
    tmp_path: Path, mixed: peers.StudyFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first C-STORE sent pynetdicom's way after one sent straight to the socket (a CT,
    then a JPEG storescp takes only decompressed) resumes the association's reactor, which
    pynetdicom's ``send_c_store`` pauses again at once. On a loaded machine the reactor
    thread, woken but not yet run, still reads as paused: the request went out, and when the
    thread ran it took the C-STORE-RSP off the queue, the sender waiting out the DIMSE
    timeout ("no answer ... DIMSE timeout expired"; seen in a full test run under load).
    Here the reactor's thread is held back after each wake-up (a real peer, a real
    association: only the scheduling delay is forced), so the window is always open."""
    storescp = peers.start_storescp(tmp_path)
    local = LocalSettings(timeouts=Timeouts(connect=3, acse=5, dimse=3, network=10))
    opened: list[Any] = []

    def late_reactor(*args: Any, **kwargs: Any) -> Any:
        assoc = open_association(*args, **kwargs)
        checkpoint = assoc._reactor_checkpoint
        wait = checkpoint.wait
        get_msg = assoc.dimse.get_msg

        def held_back(timeout: float | None = None) -> bool:
            woken = wait(timeout)
            if threading.current_thread() is assoc:  # the reactor, descheduled once woken
                time.sleep(0.1)
            return woken

        def slow_sender(block: bool = False) -> Any:
            if block and threading.current_thread() is not assoc:
                time.sleep(0.4)  # the sender, descheduled while the answer arrives
            return get_msg(block)

        checkpoint.wait = held_back  # type: ignore[method-assign]
        assoc.dimse.get_msg = slow_sender  # type: ignore[method-assign]
        opened.append(assoc)
        return assoc

    monkeypatch.setattr(send_module, "open_association", late_reactor)
    files = [mixed.files[0], mixed.files[3]]  # CT (sent as it is), JPEG (decompressed)
    try:
        result = send(Node("s", "PEER", "127.0.0.1", storescp.port), local, files, retries=0)
    finally:
        storescp.stop()
    assert len(opened) == 1  # no retry: both went on the one association
    assert result.sent == 2, [i.message for i in result.failed]


def test_unreadable_files_get_their_own_status(
    orthanc_node: Node,
    orthanc: peers.Orthanc,
    local: LocalSettings,
    tmp_path: Path,
    mixed: peers.StudyFiles,
) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom at all")
    result = send(orthanc_node, local, [junk, mixed.files[0]])
    assert result.sent == 1
    [bad] = result.failed
    assert bad.path == junk and "junk.dcm" in bad.message and not bad.retryable


def test_send_to_nobody_raises_a_diagnosis(local: LocalSettings, mixed: peers.StudyFiles) -> None:
    with pytest.raises(NetError) as info:
        send(Node("n", "X", "127.0.0.1", peers.free_port()), local, mixed.files[:1])
    assert info.value.code == diagnose.REFUSED


def test_a_peer_that_stops_answering_does_not_hang_the_sender(
    tmp_path: Path, mixed: peers.StudyFiles
) -> None:
    """storescp sleeping 10 s inside each store; our DIMSE timeout is 1 s."""
    storescp = peers.start_storescp(tmp_path, "--sleep-during", "10")
    local = LocalSettings(timeouts=Timeouts(connect=2, acse=2, dimse=1, network=5))
    start = time.monotonic()
    try:
        result = send(
            Node("s", "PEER", "127.0.0.1", storescp.port), local, mixed.files[:3], retries=0
        )
    finally:
        storescp.stop()
    assert time.monotonic() - start < 6
    assert result.sent == 0 and len(result.failed) == 3
    assert "DIMSE timeout" in result.failed[0].message
