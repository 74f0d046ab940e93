"""Memory bounded by what we choose, never by what a peer sends (issue 9): pynetdicom assembles
a whole DIMSE message in memory, so a peer sending a multi-GB data set on each of our 32
association slots exhausted our memory. A C-STORE data set longer than ``SPILL_AT`` now goes on
in a file of the spool folder as it arrives; anything else that long, a command set that never
ends, and requests sent without waiting for the answers are an A-ABORT.

Real peers: DCMTK's storescu sends a synthetic 200 MiB instance (no patient data) written to
tmp_path; the hostile cases use the raw peer of tests/net/rawpeer.py. Memory is what
``tracemalloc`` saw allocated in this process while the SCP received (the sender is another
process, or a socket writing slices of one buffer allocated before the measure starts).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from tests.cli import instance_count, start_listen, stop_listen, store_json
from tests.net import peers
from tests.net.conftest import Received
from tests.net.rawpeer import (
    A_ABORT,
    ABORT,
    CT_STORAGE,
    EXPLICIT_LE,
    VERIFICATION,
    MiB,
    Peak,
    ThreadErrors,
    associate,
    closed_by_peer,
    command,
    echo_ok,
    element,
    pdata,
    pdv,
    read_pdu,
    status_bytes,
    store_rq,
    wait_for,
)
from tests.store.mounts import tmpfs
from viewer.net.guard import MAX_COMMAND_SET, SPILL_AT
from viewer.net.nodes import LocalSettings
from viewer.net.scp import StorageScp

#: The synthetic instance's pixel data: far beyond SPILL_AT.
LARGE = 200 * MiB
#: What the SCP may allocate while receiving it: SPILL_AT, a PDU or two, bookkeeping.
BOUND = SPILL_AT + 16 * MiB


def write_large_instance(path: Path, pixel_bytes: int = LARGE) -> pydicom.Dataset:
    """A synthetic CT instance (Explicit VR Little Endian) whose pixel data are written in
    1 MiB slices, never held whole; its UIDs are fresh, its patient a test name."""
    rows, cols = 512, 512
    frames = pixel_bytes // (rows * cols * 2)
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = UID(CT_STORAGE.decode())
    ds.SOPClassUID = CT_STORAGE.decode()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "TEST^LARGE"
    ds.PatientID = "LB-LARGE"
    ds.Modality = "CT"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.NumberOfFrames = frames
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    ds.save_as(path, enforce_file_format=True)
    length = frames * rows * cols * 2
    pattern = hashlib.sha256(b"lightbox").digest() * (MiB // 32)  # 1 MiB, not all zeros
    with open(path, "ab") as fh:
        fh.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, length))
        for start in range(0, length, MiB):
            fh.write(pattern[: min(MiB, length - start)])
    return ds


def dataset_digest(path: Path) -> str:
    """sha256 of a PS3.10 file's data set: what follows its File Meta Information."""
    with open(path, "rb") as fh:
        head = fh.read(132 + 12)
        assert head[128:132] == b"DICM", path
        (group_length,) = struct.unpack("<I", head[140:144])
        fh.seek(132 + 12 + group_length)
        digest = hashlib.sha256()
        while chunk := fh.read(4 * MiB):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def large_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pydicom.Dataset]:
    path = tmp_path_factory.mktemp("large") / "large.dcm"
    return path, write_large_instance(path)


def rx_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(".rx-*"))


# -- a real sender, a real 200 MiB instance ---------------------------------------------------


@pytest.mark.slow
def test_a_large_instance_is_received_intact_without_holding_it_in_memory(
    scp: StorageScp,
    local: LocalSettings,
    received: Received,
    spool: Path,
    large_file: tuple[Path, pydicom.Dataset],
) -> None:
    """Before: the SCP held the whole 200 MiB data set (pynetdicom's BytesIO, tracemalloc
    peak above 200 MiB). Now it holds at most SPILL_AT, and the instance arrives intact."""
    path, ds = large_file
    with Peak() as peak:
        result = peers.storescu("STORESCU", "LIGHTBOX", local.scp_port, [path])
    assert result.returncode == 0, result.stdout + result.stderr
    print(
        f"SCP peak while receiving {path.stat().st_size / MiB:.0f} MiB: {peak.bytes / MiB:.1f} MiB"
    )
    assert peak.bytes < BOUND, f"{peak.bytes / MiB:.0f} MiB allocated"
    uid = str(ds.SOPInstanceUID)
    assert received.uids() == {uid}
    assert dataset_digest(received.folder / f"{uid}.dcm") == dataset_digest(path)
    stored = pydicom.dcmread(received.folder / f"{uid}.dcm", stop_before_pixels=True)
    assert stored.file_meta.MediaStorageSOPInstanceUID == uid
    assert stored.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert stored.file_meta.SourceApplicationEntityTitle == "STORESCU"
    assert list(spool.iterdir()) == []


@pytest.mark.slow
def test_a_large_instance_refused_by_the_receiver_leaves_nothing(
    local: LocalSettings, spool: Path, large_file: tuple[Path, pydicom.Dataset]
) -> None:
    """The spilled file is handed to ``on_instance`` as the small ones are; refused, it is
    deleted and the refusal goes back to the sender."""
    seen: list[int] = []

    def refuse(p: Path, caller: str) -> tuple[int, str]:
        seen.append(p.stat().st_size)
        assert p.parent == spool and p.name.startswith(".rx-")
        return 0xA900, "refused for the test"

    path, _ = large_file
    with StorageScp(local, refuse, spool):
        result = peers.storescu("STORESCU", "LIGHTBOX", local.scp_port, [path], "-d")
    assert len(seen) == 1 and seen[0] > LARGE
    assert "refused for the test" in result.stdout + result.stderr
    assert list(spool.iterdir()) == []


@pytest.mark.slow
def test_a_large_instance_into_the_store(
    local: LocalSettings, tmp_path: Path, large_file: tuple[Path, pydicom.Dataset]
) -> None:
    """End to end with the application's receiver: it takes the spilled file over (a rename
    in its own spool) and the store holds the instance, data set intact."""
    from viewer.store import Receiver, Store
    from viewer.store.index import instance_paths

    path, ds = large_file
    with Store.open(tmp_path / "store") as store, Receiver(store) as receiver:
        with StorageScp(local, receiver):
            result = peers.storescu("STORESCU", "LIGHTBOX", local.scp_port, [path])
        assert result.returncode == 0, result.stdout + result.stderr
        assert receiver.wait_idle(60)
        files = instance_paths(store, str(ds.SeriesInstanceUID))
        assert len(files) == 1
        assert dataset_digest(files[0]) == dataset_digest(path)
        assert rx_files(receiver.scp_folder) == []


@pytest.fixture
def small_disc(tmp_path: Path) -> Iterator[Path]:
    """A real 24 MiB tmpfs (root only: ``mount -t tmpfs``): room for SPILL_AT, not for more."""
    with tmpfs(tmp_path / "small", "24m") as folder:
        yield folder


@pytest.mark.slow
def test_disk_full_in_the_middle_of_a_large_instance_is_a_clear_failure(
    local: LocalSettings,
    received: Received,
    small_disc: Path,
    large_file: tuple[Path, pydicom.Dataset],
    caplog: pytest.LogCaptureFixture,
    thread_errors: ThreadErrors,
) -> None:
    """The spool fills up while a spilled data set arrives: the rest is read and dropped,
    the sender gets 0xA700 with the reason, one error line names the folder, no file is
    left, and the association goes on (the next instance is answered)."""
    caplog.set_level(logging.INFO, logger="viewer")
    path, _ = large_file
    small = Path(str(get_testdata_file("CT_small.dcm")))
    with StorageScp(local, received, small_disc):
        result = peers.storescu("STORESCU", "LIGHTBOX", local.scp_port, [path, small], "-d", "-nh")
    out = result.stdout + result.stderr
    assert "0xa700" in out.lower() and "No space left" in out, out[-2000:]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and str(small_disc) in errors[0], errors
    assert "No space left on device" in errors[0] and "STORESCU@127.0.0.1" in errors[0]
    assert all(r.exc_info is None for r in caplog.records), caplog.text
    assert list(small_disc.iterdir()) == []
    assert received.uids() == {str(pydicom.dcmread(small).SOPInstanceUID)}
    assert thread_errors.errors == []


# -- hostile peers ------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["abort", "close"])
def test_ending_in_the_middle_of_a_large_data_set_leaves_nothing(
    scp: StorageScp, local: LocalSettings, received: Received, spool: Path, how: str
) -> None:
    """A raw peer sends 96 MiB of a data set and never its end, then aborts or closes:
    before, all of it was held in memory; now at most SPILL_AT, and the file it went on in is
    deleted when the association ends."""
    chunk = bytes(range(256)) * 512  # 128 KiB, within the 256 KiB PDU we advertise
    sent = 96 * MiB
    sock = associate(local.scp_port, contexts=[(1, CT_STORAGE, [EXPLICIT_LE])])
    with sock, Peak() as peak:
        sock.sendall(pdata(pdv(1, store_rq(b"1.2.826.0.1.3680043.9.9.77"), True)))
        for _ in range(sent // len(chunk)):
            sock.sendall(pdata(pdv(1, chunk, False, last=False)))
        assert wait_for(lambda: rx_files(spool)), "the data set was not spilled"
        if how == "abort":
            sock.sendall(ABORT)
        else:
            sock.shutdown(socket.SHUT_RDWR)
        assert wait_for(lambda: not list(spool.iterdir())), list(spool.iterdir())
    assert peak.bytes < BOUND, f"{peak.bytes / MiB:.0f} MiB allocated"
    assert echo_ok(local.scp_port)
    assert received.uids() == set()
    assert list(spool.iterdir()) == []


def test_stop_in_the_middle_of_a_large_data_set_leaves_nothing(
    local: LocalSettings, received: Received, spool: Path
) -> None:
    server = StorageScp(local, received, spool)
    server.start()
    chunk = b"\x5a" * (128 * 1024)
    sock = associate(local.scp_port, contexts=[(1, CT_STORAGE, [EXPLICIT_LE])])
    with sock:
        sock.sendall(pdata(pdv(1, store_rq(b"1.2.826.0.1.3680043.9.9.78"), True)))
        for _ in range((SPILL_AT + 4 * MiB) // len(chunk)):
            sock.sendall(pdata(pdv(1, chunk, False, last=False)))
        assert wait_for(lambda: rx_files(spool)), "the data set was not spilled"
        server.stop()
        assert wait_for(lambda: not list(spool.iterdir()), 5), list(spool.iterdir())


def test_a_command_set_that_never_ends_is_aborted(
    scp: StorageScp,
    local: LocalSettings,
    caplog: pytest.LogCaptureFixture,
    thread_errors: ThreadErrors,
) -> None:
    """Before: every fragment was kept (no answer, the memory growing for as long as the peer
    sends). Now beyond MAX_COMMAND_SET: A-ABORT and one log line naming the peer."""
    caplog.set_level(logging.INFO, logger="viewer")
    fragment = b"\0" * (32 * 1024)
    sock = associate(local.scp_port)
    with sock:
        for _ in range(MAX_COMMAND_SET // len(fragment) + 1):
            sock.sendall(pdata(pdv(1, fragment, True, last=False)))
        answer = read_pdu(sock)
        assert answer is not None and answer[0] == A_ABORT, answer
        assert closed_by_peer(sock, 5)
    assert echo_ok(local.scp_port)
    lines = [r.getMessage() for r in caplog.records if "RAWPEER@127.0.0.1" in r.getMessage()]
    assert any("command set longer than" in line for line in lines), lines
    assert all(r.exc_info is None for r in caplog.records)
    assert thread_errors.errors == []


ECHO_WITH_DATA = command(
    element(0, 0x0002, VERIFICATION),
    element(0, 0x0100, struct.pack("<H", 0x0030)),  # C-ECHO-RQ (PS3.7 9.3.5)
    element(0, 0x0110, struct.pack("<H", 1)),
    element(0, 0x0800, struct.pack("<H", 0x0000)),  # ... "with a data set"
)


@pytest.mark.parametrize(
    ("context", "first"),
    [
        pytest.param(1, b"", id="no-command-set"),
        pytest.param(1, ECHO_WITH_DATA, id="C-ECHO-RQ-with-a-data-set"),
        pytest.param(3, store_rq(b"1.2.3.4"), id="C-STORE-on-an-unaccepted-context"),
    ],
)
def test_a_long_data_set_that_is_no_store_is_aborted(
    scp: StorageScp, local: LocalSettings, spool: Path, context: int, first: bytes
) -> None:
    """Only a C-STORE's data set may be long; before, any was held whole in memory."""
    chunk = b"\0" * (128 * 1024)
    contexts = [
        (1, VERIFICATION, [EXPLICIT_LE]),
        (3, b"1.2.840.10008.5.1.4.1.1.999", [EXPLICIT_LE]),
    ]
    sock = associate(local.scp_port, contexts=contexts)
    aborted = False
    with sock, Peak() as peak:
        if first:
            sock.sendall(pdata(pdv(context, first, True)))
        try:
            for _ in range(2 * SPILL_AT // len(chunk)):
                sock.sendall(pdata(pdv(context, chunk, False, last=False)))
        except OSError:
            aborted = True  # closed by the SCP while we were sending: what we want
        if not aborted:
            answer = read_pdu(sock)
            assert answer is not None and answer[0] == A_ABORT, answer
    assert peak.bytes < BOUND, f"{peak.bytes / MiB:.0f} MiB allocated"
    assert echo_ok(local.scp_port)
    assert list(spool.iterdir()) == []


def test_requests_sent_without_waiting_for_answers_are_aborted(
    local: LocalSettings, received: Received, spool: Path, thread_errors: ThreadErrors
) -> None:
    """Each request waiting to be served holds its data set (up to SPILL_AT); a peer that
    does not wait for the answers (no asynchronous operations negotiated, PS3.7 D.3.3.3) could
    queue any number of them. Before: all were queued; now the third waiting is an A-ABORT."""
    release = threading.Event()

    def slow(path: Path, caller: str) -> int:
        release.wait(10)
        return received(path, caller)

    data = b"\x08\x00\x16\x00UI\x1a\x001.2.840.10008.5.1.4.1.1.2\0"  # one element
    with StorageScp(local, slow, spool):
        sock = associate(local.scp_port, contexts=[(1, CT_STORAGE, [EXPLICIT_LE])])
        with sock:
            cut_off = False  # the abort may close the socket before all five are written
            try:
                for n in range(1, 6):
                    uid = f"1.2.826.0.1.3680043.9.9.{n}".encode()
                    try:
                        sock.sendall(pdata(pdv(1, store_rq(uid, n), True)))
                        sock.sendall(pdata(pdv(1, data, False)))
                    except (BrokenPipeError, ConnectionResetError):
                        cut_off = True
                        break
                try:
                    answer = read_pdu(sock)
                except ConnectionResetError:
                    answer = None
            finally:
                release.set()
            aborted = answer is not None and answer[0] == A_ABORT
            assert aborted or (cut_off and answer is None), answer
        assert wait_for(lambda: not rx_files(spool), 5)
    assert thread_errors.errors == []


def test_a_long_data_set_with_an_invalid_uid_is_refused_and_deleted(
    scp: StorageScp, local: LocalSettings, received: Received, spool: Path
) -> None:
    """The spilled file carries the request's UIDs escaped; the request is still refused
    (0xC000 with its comment) as a small one is, and the file deleted."""
    chunk = b"\0" * (128 * 1024)
    sock = associate(local.scp_port, contexts=[(1, CT_STORAGE, [EXPLICIT_LE])])
    with sock:
        sock.sendall(pdata(pdv(1, store_rq(b"1.2.3.\x1b[31m"), True)))
        for _ in range(SPILL_AT // len(chunk) + 8):
            sock.sendall(pdata(pdv(1, chunk, False, last=False)))
        sock.sendall(pdata(pdv(1, chunk, False)))
        answer = read_pdu(sock, timeout=10)
        assert answer is not None and answer[0] == 0x04, answer  # P-DATA-TF: the C-STORE-RSP
        rsp = answer[1][6:]
        assert struct.pack("<HHI", 0, 0x0900, 2) + struct.pack("<H", 0xC000) in rsp, rsp
        assert b"invalid Affected SOP" in rsp
    assert received.uids() == set()
    assert list(spool.iterdir()) == []


@pytest.mark.slow
def test_lightbox_listen_receives_a_large_instance_in_bounded_memory(
    large_file: tuple[Path, pydicom.Dataset],
) -> None:
    """The application as a user runs it: ``lightbox listen`` (its own $LIGHTBOX_HOME). Its
    peak resident memory grows by a few MiB for a 200 MiB instance (before: by more than 200
    MiB, the whole data set), and the store holds the instance, data set intact."""
    home = Path(os.environ["LIGHTBOX_HOME"])
    path, _ = large_file
    port = peers.free_port()
    proc = start_listen(port)
    try:
        before = status_bytes("VmHWM", proc.pid)
        pushed = peers.storescu("STORESCU", "LIGHTBOX", port, [path])
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        grown = status_bytes("VmHWM", proc.pid) - before
    finally:
        err = stop_listen(proc)
    print(f"lightbox listen: peak resident memory grew by {grown / MiB:.0f} MiB")
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert grown < BOUND + 16 * MiB, f"grew by {grown / MiB:.0f} MiB"
    assert instance_count(store_json()) == 1
    stored = [p for p in home.rglob("*") if p.is_file() and p.stat().st_size > LARGE]
    assert len(stored) == 1, stored
    assert dataset_digest(stored[0]) == dataset_digest(path)
