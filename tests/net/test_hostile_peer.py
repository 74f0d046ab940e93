"""A hostile peer against our storage SCP, over raw sockets on 127.0.0.1 (issue 9).

pynetdicom and DCMTK never send these bytes, so the peer (tests/net/rawpeer.py) writes the
DICOM upper layer (PS3.8 9.3) by hand: declared lengths far beyond what we advertised, partial
headers that then wait, unknown PDU types, bogus PDV lengths, binary AE titles, command sets
that do not decode, associations dropped in the middle of a data set. Each test talks to our
real ``StorageScp`` and then checks that a real sender (pynetdicom or DCMTK) is still served,
that no exception escaped a thread, and that nothing was left in the spool folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import logging
import random
import re
import signal
import socket
import struct
import subprocess
import threading
import time
import tomllib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pydicom
import pynetdicom
import pytest
from pydicom.data import get_testdata_file
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_messages import DIMSEMessage
from pynetdicom.dul import DULServiceProvider
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.transport import AssociationServer, ThreadedAssociationServer

from tests.cli import ROOT, start_listen
from tests.net import peers, test_tls
from tests.net.conftest import FAST, Received
from tests.net.rawpeer import (
    A_ABORT,
    A_ASSOCIATE_AC,
    A_ASSOCIATE_RJ,
    ABORT,
    CT_STORAGE,
    EXPLICIT_LE,
    IMPLICIT_LE,
    P_DATA_TF,
    ThreadErrors,
    associate,
    associate_rq,
    closed_by_peer,
    connect,
    echo_ok,
    eventually_echo,
    pdata,
    pdv,
    read_pdu,
    status_bytes,
    store_rq,
)
from tests.net.test_tls import Pki
from tests.store.mounts import fill, tmpfs
from viewer.net.echo import echo
from viewer.net.nodes import LocalSettings, Node, Timeouts, Tls
from viewer.net.scp import StorageScp


def _ct() -> pydicom.Dataset:
    return pydicom.dcmread(str(get_testdata_file("CT_small.dcm")))


def _c_store(port: int, ds: pydicom.Dataset) -> pydicom.Dataset:
    """A real C-STORE of ``ds`` by pynetdicom (AE REALSCU): the status the SCP answered."""
    ae = AE("REALSCU")
    ae.add_requested_context(ds.SOPClassUID)
    assoc = ae.associate("127.0.0.1", port, ae_title="LIGHTBOX")
    assert assoc.is_established
    try:
        return assoc.send_c_store(ds)
    finally:
        assoc.release()


def _implicit_bytes(ds: pydicom.Dataset) -> bytes:
    """The data set as a C-STORE carries it on an Implicit VR Little Endian context."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    out = DicomBytesIO()
    out.is_little_endian = True
    out.is_implicit_VR = True
    body = pydicom.Dataset()
    body.update(ds)
    write_dataset(out, body)
    return out.getvalue()


# -- 1. memory: a declared length allocates nothing --------------------------------------------


@pytest.mark.parametrize("declared", [0xFFFFFFFF, 0x20000000], ids=["4GiB", "512MiB"])
def test_a_huge_declared_pdu_allocates_nothing_and_is_aborted(
    scp: StorageScp, local: LocalSettings, declared: int
) -> None:
    """``01 00 FF FF FF FF``: an A-ASSOCIATE-RQ claiming 4 GiB made the listener allocate and
    zero it before reading a byte. Now it is an A-ABORT and a closed connection, the process's
    memory does not move, and a real C-ECHO is served meanwhile."""
    before = status_bytes("VmRSS")
    socks = [connect(local.scp_port) for _ in range(4)]
    try:
        for sock in socks:
            sock.sendall(struct.pack(">BBI", 0x01, 0, declared))
        for sock in socks:
            answer = read_pdu(sock)
            assert answer is not None and answer[0] == A_ABORT, answer
            assert closed_by_peer(sock, 5)
        assert echo_ok(local.scp_port)
        grown = status_bytes("VmRSS") - before
        assert grown < 64 * 1024 * 1024, f"RSS grew by {grown / 2**20:.0f} MiB"
    finally:
        for sock in socks:
            sock.close()


def test_a_pdata_longer_than_we_advertised_is_aborted(
    scp: StorageScp, local: LocalSettings
) -> None:
    sock = associate(local.scp_port)
    with sock:
        sock.sendall(struct.pack(">BBI", P_DATA_TF, 0, scp.max_pdu + 1) + b"\0" * 1024)
        answer = read_pdu(sock)
        assert answer is not None and answer[0] == A_ABORT
        assert closed_by_peer(sock, 5)
    assert echo_ok(local.scp_port)


# -- 2. lockout: deadlines and a cap per address -----------------------------------------------


def test_stalled_peers_cannot_take_every_slot(
    local: LocalSettings, received: Received, spool: Path, thread_errors: ThreadErrors
) -> None:
    """Partial PDU headers that then wait filled all 32 slots for as long as they stayed open.
    Now one address gets ``scp_max_per_host`` of them, the next connection from it is rejected
    at once (A-ASSOCIATE-RJ, local limit exceeded), another address still gets in, and the
    ARTIM timer closes the stalled ones."""
    limited = replace(
        local,
        scp_max_per_host=4,
        scp_max_associations=6,
        timeouts=replace(FAST, acse=1.5),
        scp_idle_timeout=1.5,
    )
    with StorageScp(limited, received, spool):
        stalled = [connect(local.scp_port) for _ in range(4)]
        try:
            for sock in stalled:
                sock.sendall(b"\x01\x00\x00")  # half a PDU header, then nothing
            time.sleep(0.2)
            fifth = connect(local.scp_port)
            with fifth:
                fifth.sendall(associate_rq())
                answer = read_pdu(fifth)
                assert answer is not None and answer[0] == A_ASSOCIATE_RJ, answer
                assert answer[1][1:] == bytes((2, 3, 2))  # transient, provider, local limit
            started = time.monotonic()
            assert echo_ok(local.scp_port, source="127.0.0.2")  # another host gets in
            assert time.monotonic() - started < 3
            for sock in stalled:  # the ARTIM timer (1.5 s here) ends them
                assert closed_by_peer(sock, 5)
        finally:
            for sock in stalled:
                sock.close()
        assert eventually_echo(local.scp_port)  # their slots are free again
    assert thread_errors.errors == []


def test_the_total_cap_holds_across_addresses(
    local: LocalSettings, received: Received, spool: Path, thread_errors: ThreadErrors
) -> None:
    limited = replace(local, scp_max_per_host=2, scp_max_associations=3)
    with StorageScp(limited, received, spool):
        stalled = [connect(local.scp_port, src) for src in ("127.0.0.1", "127.0.0.2", "127.0.0.3")]
        try:
            for sock in stalled:
                sock.sendall(b"\x01")
            time.sleep(0.2)
            assert not echo_ok(local.scp_port, source="127.0.0.4")
        finally:
            for sock in stalled:
                sock.close()
        assert eventually_echo(local.scp_port, source="127.0.0.4")
    assert thread_errors.errors == []


def test_a_silent_association_is_aborted_after_the_idle_timeout(
    local: LocalSettings, received: Received, spool: Path, thread_errors: ThreadErrors
) -> None:
    with StorageScp(replace(local, scp_idle_timeout=1.0), received, spool):
        sock = associate(local.scp_port)
        with sock:
            sock.sendall(b"\x04\x00\x00\x00")  # and a PDU that never completes
            started = time.monotonic()
            assert closed_by_peer(sock, 6)
            assert time.monotonic() - started < 4
    assert thread_errors.errors == []


# -- 3. fuzzed requests while a real sender sends --------------------------------------------


def _fuzz_case(rng: random.Random, port: int) -> None:
    """One fuzzed association request from 127.0.0.3, held open until the SCP closes it (at
    most 15 s), as an attacker would."""
    good = associate_rq()
    choice = rng.randrange(6)
    if choice == 0:  # random bytes
        data = rng.randbytes(rng.randrange(1, 400))
    elif choice == 1:  # a real request with bytes flipped
        raw = bytearray(good)
        for _ in range(rng.randrange(1, 8)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        data = bytes(raw)
    elif choice == 2:  # truncated, then the peer waits
        data = good[: rng.randrange(1, len(good))]
    elif choice == 3:  # a huge declared length
        data = struct.pack(">BBI", rng.randrange(1, 8), 0, rng.randrange(1 << 20, 1 << 32))
    elif choice == 4:  # a header only
        data = good[:6]
    else:  # a valid request, then garbage as P-DATA
        data = good + pdata(pdv(1, rng.randbytes(rng.randrange(0, 200)), True))
    with contextlib.suppress(OSError), connect(port, "127.0.0.3") as sock:
        sock.sendall(data)
        closed_by_peer(sock, 15)


@pytest.mark.slow
def test_fuzzed_requests_do_not_block_real_senders(
    local: LocalSettings,
    received: Received,
    spool: Path,
    study: peers.StudyFiles,
    thread_errors: ThreadErrors,
) -> None:
    """100 fuzzed association requests from one host, 40 at a time, each held open, blocked
    real senders for 30-60 s. Now DCMTK's storescu and pynetdicom, from other addresses, get
    through while they arrive (and a request the fuzzer got right is an association that the
    idle timeout ends)."""
    scp = StorageScp(replace(local, scp_idle_timeout=3.0), received, spool)
    scp.start()
    rng = random.Random(9)
    cases = iter(range(100))
    lock = threading.Lock()

    def fuzz() -> None:
        while True:
            with lock:
                if next(cases, None) is None:
                    return
                seed = rng.random()
            _fuzz_case(random.Random(seed), local.scp_port)

    fuzzers = [threading.Thread(target=fuzz) for _ in range(40)]
    for thread in fuzzers:
        thread.start()
    try:
        time.sleep(3)  # by now most fuzzers hold a connection that stalls
        started = time.monotonic()
        assert echo_ok(local.scp_port, source="127.0.0.2")
        result = peers.storescu("STORESCU", "LIGHTBOX", local.scp_port, study.files[:2])
        assert result.returncode == 0, result.stderr
        assert time.monotonic() - started < 10
    finally:
        for thread in fuzzers:
            thread.join(300)
    try:
        assert eventually_echo(local.scp_port, source="127.0.0.3")
    finally:
        scp.stop()
    assert thread_errors.errors == []


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throw-away CA, a server certificate for 127.0.0.1 and a client one (as test_tls)."""
    folder = tmp_path_factory.mktemp("pki")
    ca = test_tls._ca(folder, "ca")
    server = test_tls._leaf(folder, "server", ca, "IP:127.0.0.1,DNS:localhost")
    client = test_tls._leaf(folder, "client", ca, "DNS:lightbox-client")
    return Pki(ca[0], server[0], server[1], client[0], client[1], ca[0])


def test_a_stalled_tls_handshake_does_not_stop_the_listener(
    pki: Pki, local: LocalSettings, received: Received, spool: Path, thread_errors: ThreadErrors
) -> None:
    """pynetdicom does the TLS handshake in its accepting loop: one connection that never
    sends its ClientHello stopped every other caller. Now the handshake runs in the
    connection's own thread, under the ARTIM timeout."""
    settings = replace(local, tls=Tls(str(pki.ca), str(pki.server_cert), str(pki.server_key)))
    client = Tls(str(pki.ca), str(pki.client_cert), str(pki.client_key))
    with StorageScp(settings, received, spool):
        stalled = [connect(local.scp_port) for _ in range(2)]
        try:
            time.sleep(0.2)
            started = time.monotonic()
            assert echo(Node("self", "LIGHTBOX", "127.0.0.1", local.scp_port, tls=client), local).ok
            assert time.monotonic() - started < 3
        finally:
            for sock in stalled:
                sock.close()
    assert thread_errors.errors == []


# -- 4. SIGTERM with stalled peers ------------------------------------------------------------


def test_sigterm_ends_listen_at_once_with_stalled_peers() -> None:
    """``lightbox listen`` waited for stalled connections on SIGTERM (its DUL threads were not
    daemons and blocked in ``recv``). Now it exits within 2 s, status 0."""
    port = peers.free_port()
    proc = start_listen(port)
    socks: list[socket.socket] = []
    try:
        for _ in range(5):
            sock = connect(port)
            sock.sendall(b"\x01\x00\x00\x00")  # a partial header, then nothing
            socks.append(sock)
        for _ in range(2):  # associated, in the middle of a PDU
            sock = associate(port)
            sock.sendall(b"\x04\x00\x00\x00\x10\x00\x00")
            socks.append(sock)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        try:
            _out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            pytest.fail("lightbox listen did not end within 10 s of SIGTERM")
        took = time.monotonic() - started
    finally:
        for sock in socks:
            sock.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    print(f"SIGTERM took {took:.2f} s")
    assert took < 2.0, f"SIGTERM took {took:.1f} s"
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_stop_closes_live_associations_at_once(
    local: LocalSettings, received: Received, spool: Path
) -> None:
    server = StorageScp(local, received, spool)
    server.start()
    socks = [associate(local.scp_port) for _ in range(3)] + [connect(local.scp_port)]
    try:
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 2
        for sock in socks:
            assert closed_by_peer(sock, 2)
    finally:
        for sock in socks:
            sock.close()


# -- 5. a command set that does not decode ------------------------------------------------------


def test_a_garbage_command_set_is_an_abort_and_one_log_line(
    scp: StorageScp,
    local: LocalSettings,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    thread_errors: ThreadErrors,
) -> None:
    caplog.set_level(logging.INFO, logger="viewer")
    sock = associate(local.scp_port)
    with sock, warnings_ignored():
        sock.sendall(pdata(pdv(1, b"\xff" * 40, True)))
        answer = read_pdu(sock)
        assert answer is not None and answer[0] == A_ABORT, answer
        assert closed_by_peer(sock, 5)
    assert echo_ok(local.scp_port)
    time.sleep(0.2)
    assert thread_errors.errors == []
    lines = [r for r in caplog.records if "RAWPEER@127.0.0.1" in r.getMessage()]
    assert lines and all(r.exc_info is None for r in caplog.records), caplog.text
    assert "Traceback" not in capsys.readouterr().err


@contextlib.contextmanager
def warnings_ignored() -> Iterator[None]:
    """pydicom warns (in our DUL thread) of the command set it cannot read: that is the test."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# -- 6. the rest of the list -----------------------------------------------------------


@pytest.mark.parametrize(
    "first",
    [
        pytest.param(ABORT, id="A-ABORT-before-association"),
        pytest.param(struct.pack(">BBI", 0xFF, 0, 4) + b"\0" * 4, id="type-0xFF"),
        pytest.param(struct.pack(">BBI", 0x00, 0, 0), id="type-0x00"),
        pytest.param(pdata(pdv(1, b"x" * 10, True)), id="P-DATA-before-association"),
        pytest.param(struct.pack(">BBIHH", 0x05, 0, 4, 0, 0), id="A-RELEASE-RQ-first"),
        pytest.param(associate_rq()[:-3], id="request-shorter-than-declared"),
    ],
)
def test_wrong_pdu_types_before_association(
    scp: StorageScp, local: LocalSettings, first: bytes
) -> None:
    sock = connect(local.scp_port)
    with sock:
        sock.sendall(first)
        if first == associate_rq()[:-3]:
            sock.shutdown(socket.SHUT_WR)
        assert closed_by_peer(sock, 5)
    assert echo_ok(local.scp_port)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(struct.pack(">IBB", 5000, 1, 3) + b"\0" * 10, id="pdv-longer-than-pdu"),
        pytest.param(struct.pack(">I", 0), id="pdv-length-zero"),
        pytest.param(struct.pack(">IBB", 1, 1, 3), id="pdv-length-one"),
        pytest.param(struct.pack(">IBB", 7, 1, 3) + b"\0" * 5, id="pdv-length-odd"),
        pytest.param(b"\0\0", id="two-bytes"),
        pytest.param(struct.pack(">IBB", 6, 9, 3) + b"\0" * 4, id="unknown-context"),
    ],
)
def test_bogus_pdv_lengths(
    scp: StorageScp, local: LocalSettings, body: bytes, thread_errors: ThreadErrors
) -> None:
    sock = associate(local.scp_port)
    with sock, warnings_ignored():
        sock.sendall(struct.pack(">BBI", P_DATA_TF, 0, len(body)) + body)
        assert closed_by_peer(sock, 5)
    assert echo_ok(local.scp_port)
    assert thread_errors.errors == []


def test_200_presentation_contexts_are_answered(scp: StorageScp, local: LocalSettings) -> None:
    """PS3.8 9.3.2.2 allows 128 (odd IDs 1-255); 200 must be answered or refused, quickly."""
    contexts = [(((2 * i) + 1) & 0xFF, CT_STORAGE, [IMPLICIT_LE, EXPLICIT_LE]) for i in range(200)]
    sock = connect(local.scp_port)
    with sock:
        started = time.monotonic()
        sock.sendall(associate_rq(contexts=contexts))
        answer = read_pdu(sock)
        assert time.monotonic() - started < 5
        assert answer is None or answer[0] in (A_ASSOCIATE_AC, A_ASSOCIATE_RJ, A_ABORT)
    assert echo_ok(local.scp_port)


@pytest.mark.parametrize(
    ("called", "calling", "reason"),
    [
        (b"LIGHTBOX", b"\x1b[31mEVIL\n", 3),
        (b"LIGHTBOX", b"\xff\xfe\x00BIN", 3),
        (b"LIGHT\x1b]0;X\x07", b"RAWPEER", 7),
    ],
)
def test_binary_ae_titles_are_rejected_and_logged_escaped(
    scp: StorageScp,
    local: LocalSettings,
    caplog: pytest.LogCaptureFixture,
    called: bytes,
    calling: bytes,
    reason: int,
) -> None:
    caplog.set_level(logging.INFO, logger="viewer")
    sock = connect(local.scp_port)
    with sock:
        sock.sendall(associate_rq(called=called, calling=calling))
        answer = read_pdu(sock)
        assert answer is not None and answer[0] == A_ASSOCIATE_RJ, answer
        assert answer[1][1:] == bytes((1, 1, reason))  # permanent, service-user, AE unknown
    assert echo_ok(local.scp_port)
    text = caplog.text
    assert "AE title" in text and "\\x" in text
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\xff]", text), repr(text)


@pytest.mark.parametrize("how", ["abort", "close"])
def test_abort_or_close_in_the_middle_of_a_data_set(
    scp: StorageScp, local: LocalSettings, received: Received, spool: Path, how: str
) -> None:
    ds = _ct()
    data = _implicit_bytes(ds)
    uid = str(ds.SOPInstanceUID).encode()
    sock = associate(local.scp_port, contexts=[(1, CT_STORAGE, [IMPLICIT_LE])])
    with sock:
        sock.sendall(pdata(pdv(1, store_rq(uid), True)))
        sock.sendall(pdata(pdv(1, data[: len(data) // 2], False, last=False)))
        if how == "abort":
            sock.sendall(ABORT)
        else:
            sock.shutdown(socket.SHUT_RDWR)
        time.sleep(0.3)
    assert echo_ok(local.scp_port)
    assert received.uids() == set()
    assert list(spool.iterdir()) == []


def test_an_undecodable_or_empty_data_set_is_refused_with_a_comment(
    scp: StorageScp, local: LocalSettings, received: Received, spool: Path
) -> None:
    """An empty data set is refused before anything is written (0xC000 + Error Comment)."""
    sock = associate(local.scp_port, contexts=[(1, CT_STORAGE, [IMPLICIT_LE])])
    with sock:
        sock.sendall(pdata(pdv(1, store_rq(b"1.2.3.4"), True)))
        sock.sendall(pdata(pdv(1, b"", False)))
        answer = read_pdu(sock)
        assert answer is not None and answer[0] == P_DATA_TF, answer
        rsp = answer[1][6:]
        assert struct.pack("<HHI", 0, 0x0900, 2) + struct.pack("<H", 0xC000) in rsp
        assert b"empty" in rsp
    assert received.uids() == set()
    assert list(spool.iterdir()) == []


# -- disk full while receiving ----------------------------------------------------------------


@pytest.fixture
def full_disc(tmp_path: Path) -> Iterator[Path]:
    """A real, tiny tmpfs (root only: ``mount -t tmpfs``), filled up."""
    with tmpfs(tmp_path / "full", "64k") as folder:
        fill(folder)
        yield folder


def test_disk_full_while_receiving_is_a_clear_failure(
    local: LocalSettings,
    received: Received,
    full_disc: Path,
    caplog: pytest.LogCaptureFixture,
    thread_errors: ThreadErrors,
) -> None:
    caplog.set_level(logging.INFO, logger="viewer")
    ds = _ct()
    with StorageScp(local, received, full_disc):
        status = _c_store(local.scp_port, ds)
    assert status.Status == 0xA700
    assert "No space left" in status.ErrorComment
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "No space left on device" in errors[0].getMessage()
    assert "REALSCU@127.0.0.1" in errors[0].getMessage()
    assert all(r.exc_info is None for r in caplog.records), caplog.text
    assert [p.name for p in full_disc.iterdir()] == ["filler"]
    assert thread_errors.errors == []


# -- 7. failure statuses carry an Error Comment ---------------------------------------------------


@pytest.mark.parametrize("status", [0xC000, 0xA900])
def test_a_failure_status_goes_back_with_its_error_comment(
    local: LocalSettings, spool: Path, tmp_path: Path, status: int
) -> None:
    """``on_instance`` may answer ``(status, comment)``: the sender gets both (PS3.7 C.4), by
    our fast path (plain TCP) as by pynetdicom's."""

    def refuse(path: Path, caller: str) -> tuple[int, str]:
        return status, "the data set does not parse to its end\n\x1b[0m"

    ds = _ct()
    with StorageScp(local, refuse, spool):
        answer = _c_store(local.scp_port, ds)
    assert answer.Status == status
    assert answer.ErrorComment.startswith("the data set does not parse to its end")
    assert "\x1b" not in answer.ErrorComment and "\n" not in answer.ErrorComment
    assert list(spool.iterdir()) == []


def test_a_truncated_data_set_into_the_store_is_refused_with_its_comment(
    local: LocalSettings, tmp_path: Path, thread_errors: ThreadErrors
) -> None:
    """End to end with the application's receiver: a data set cut in the middle of an element
    (the last fragment says it is complete) is answered 0xC000 with an Error Comment, not
    Success, and nothing is left in the spool."""
    from viewer.store import Receiver, Store

    ds = _ct()
    data = _implicit_bytes(ds)
    with Store.open(tmp_path / "store") as store, Receiver(store) as receiver:
        with StorageScp(local, receiver):
            sock = associate(local.scp_port, contexts=[(1, CT_STORAGE, [IMPLICIT_LE])])
            with sock:
                sock.sendall(pdata(pdv(1, store_rq(str(ds.SOPInstanceUID).encode()), True)))
                sock.sendall(pdata(pdv(1, data[: len(data) - 1001], False)))
                answer = read_pdu(sock, timeout=15)
            assert answer is not None and answer[0] == P_DATA_TF, answer
            rsp = answer[1][6:]
            status = rsp[rsp.index(struct.pack("<HHI", 0, 0x0900, 2)) + 8 :][:2]
            assert struct.unpack("<H", status)[0] in (0xC000, 0xA900), rsp
            assert struct.pack("<HH", 0, 0x0902) in rsp, rsp  # the Error Comment
        assert list(receiver.scp_folder.glob(".rx-*")) == []
    assert thread_errors.errors == []


def test_storescu_sees_the_error_comment(
    local: LocalSettings, spool: Path, study: peers.StudyFiles
) -> None:
    def refuse(path: Path, caller: str) -> tuple[int, str]:
        return 0xA900, "Study Instance UID missing"

    with StorageScp(local, refuse, spool):
        result = peers.storescu("STORESCU", "LIGHTBOX", local.scp_port, study.files[:1], "-d")
    assert result.returncode != 0
    assert "Study Instance UID missing" in result.stdout + result.stderr


# -- 8. the pynetdicom code we copied ------------------------------------------------------------

#: sha256 (first 16 hex digits) of ``inspect.getsource`` of the pynetdicom methods that
#: net/guard.py and net/scp.py copy or replace, as read in pynetdicom 3.0.4. A new pynetdicom
#: changes one of them: read the new code, carry the change into net/guard.py or net/scp.py,
#: then record the new hash and widen the pin in pyproject.toml.
COPIED = {
    DULServiceProvider.run_reactor: "e3a10eb3a0931e48",
    DULServiceProvider._read_pdu_data: "19f2d4e38c13c835",
    Association.run_reactor: "ed8bbbe3b3d6ddae",
    Association._run_reactor: "f28838c5559e462a",
    AssociationServer.get_request: "925a4f3a3042f6e4",
    ThreadedAssociationServer.process_request_thread: "9e76e9b9c8a3d8b1",
    pynetdicom.transport.RequestHandler.handle: "034823fb4df3a874",
    # Not copied, but net/guard.py relies on how they carry a data set: _PromptDIMSE spills a
    # long C-STORE data set into `_data_set_file` (written by decode_msg, handed on by
    # message_to_primitive as `_dataset_file`, deleted by StorageServiceClass.SCP after the
    # handler unless handle_store took it).
    DIMSEServiceProvider.receive_primitive: "5f99c86b14a15cef",
    DIMSEMessage.decode_msg: "f51c777e841a76be",
    DIMSEMessage.message_to_primitive: "f8f43d34e43450ef",
    StorageServiceClass.SCP: "63afca7fc6c6e7ee",
}


def _digest(fn: object) -> str:
    return hashlib.sha256(inspect.getsource(fn).encode()).hexdigest()[:16]  # type: ignore[arg-type]


def test_pynetdicom_is_the_version_our_copies_were_checked_against() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = [d for d in pyproject["project"]["dependencies"] if d.startswith("pynetdicom")]
    assert pins == ["pynetdicom>=3.0,<3.1"], pins
    major, minor, *_ = (int(p) for p in re.findall(r"\d+", pynetdicom.__version__))
    assert (major, minor) == (3, 0), pynetdicom.__version__
    changed = [
        f"{fn.__qualname__}: {_digest(fn)}"
        for fn, digest in COPIED.items()
        if _digest(fn) != digest
    ]
    assert changed == [], "pynetdicom's code changed under our copies:\n" + "\n".join(changed)


def test_the_default_limits(tmp_path: Path) -> None:
    defaults = LocalSettings()
    assert (defaults.scp_max_associations, defaults.scp_max_per_host) == (32, 8)
    assert defaults.scp_idle_timeout == 60.0 and Timeouts().acse == 30.0
    unbounded = StorageScp(replace(defaults, max_pdu=0), lambda p, c: 0, tmp_path)
    assert 0 < unbounded.max_pdu <= 16 * 1024 * 1024


def test_the_limits_are_saved_and_read_back(tmp_path: Path) -> None:
    from viewer.net.nodes import NetConfig, load_config, save_config

    local = LocalSettings(scp_max_associations=10, scp_max_per_host=3, scp_idle_timeout=20.0)
    path = save_config(NetConfig(local), tmp_path / "network.json")
    again = load_config(path).local
    assert (again.scp_max_associations, again.scp_max_per_host, again.scp_idle_timeout) == (
        10,
        3,
        20.0,
    )
