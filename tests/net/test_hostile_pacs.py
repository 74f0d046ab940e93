"""A PACS is a peer too, and untrusted (issue 9): the associations we open as SCU (echo, find,
move, get, send) get the storage SCP's bounds.

- C-GET: a C-STORE sub-operation's data set longer than ``SPILL_AT`` goes to a file in the
  receiver's folder as it arrives (before: held whole in memory); an abort in the middle of it
  leaves no file.
- A PDU longer than the maximum we advertised is an A-ABORT before its declared length is read.
- Every read has a deadline: a PACS that accepts and then goes silent, or trickles a byte now
  and then, is cut off within the configured timeouts (``lightbox echo``/``find`` exit 3
  naming the peer).
- C-FIND keeps at most ``MAX_MATCHES`` matches of a PACS that sends them without end, says so,
  sends C-CANCEL and aborts when the PACS goes on.

Real Orthanc and DCMTK peers are well behaved, so the PACS here is a raw socket in a thread
(the PDU encoders of tests/net/rawpeer.py): it answers our A-ASSOCIATE-RQ with an
A-ASSOCIATE-AC accepting what the scenario needs, then misbehaves. Memory is what tracemalloc
saw allocated in this process (the fake PACS sends slices of one buffer allocated first).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import generate_uid

from tests.cli import lightbox
from tests.net import peers
from tests.net.rawpeer import (
    ABORT,
    APP_CONTEXT,
    CT_STORAGE,
    EXPLICIT_LE,
    IMPLICIT_LE,
    P_DATA_TF,
    MiB,
    Peak,
    command,
    element,
    item,
    pdata,
    pdv,
    read_pdu,
    store_rq,
)
from viewer.net import contexts
from viewer.net.diagnose import NetError
from viewer.net.echo import echo
from viewer.net.find import MAX_MATCHES
from viewer.net.guard import SPILL_AT
from viewer.net.nodes import LocalSettings, Node, Timeouts
from viewer.net.retrieve import retrieve

LARGE = 200 * MiB
#: What receiving the large instance may allocate: the data set up to SPILL_AT (its buffer
#: doubling), a few PDUs, the decoding around them. The whole data set is 200 MiB.
BOUND = SPILL_AT + 24 * MiB
GET_STUDY = contexts.StudyRootQueryRetrieveInformationModelGet.encode()
FIND_STUDY = b"1.2.840.10008.5.1.4.1.2.2.1"
A_RELEASE_RQ, A_RELEASE_RP = 0x05, 0x06
RELEASE_RP = struct.pack(">BBI", A_RELEASE_RP, 0, 4) + b"\0" * 4
TIMEOUTS = Timeouts(connect=3.0, acse=5.0, dimse=15.0, network=15.0)


# -- the fake PACS --------------------------------------------------------------------------


def parse_rq(body: bytes) -> tuple[list[tuple[int, bytes, list[bytes]]], int]:
    """An A-ASSOCIATE-RQ's presentation contexts (id, abstract syntax, transfer syntaxes) and
    the maximum PDU length the requestor advertised (PS3.8 9.3.2, D.1)."""
    found: list[tuple[int, bytes, list[bytes]]] = []
    max_pdu = 0
    pos = 68
    while pos + 4 <= len(body):
        kind, _, length = struct.unpack(">BBH", body[pos : pos + 4])
        value = body[pos + 4 : pos + 4 + length]
        pos += 4 + length
        if kind == 0x20:
            abstract, syntaxes, sub = b"", [], 4
            while sub + 4 <= len(value):
                skind, _, slen = struct.unpack(">BBH", value[sub : sub + 4])
                uid = value[sub + 4 : sub + 4 + slen].rstrip(b"\0")
                if skind == 0x30:
                    abstract = uid
                elif skind == 0x40:
                    syntaxes.append(uid)
                sub += 4 + slen
            found.append((value[0], abstract, syntaxes))
        elif kind == 0x50:
            sub = 0
            while sub + 4 <= len(value):
                skind, _, slen = struct.unpack(">BBH", value[sub : sub + 4])
                if skind == 0x51:
                    max_pdu = struct.unpack(">I", value[sub + 4 : sub + 8])[0]
                sub += 4 + slen
    return found, max_pdu


def associate_ac(
    rq_body: bytes, accept: dict[bytes, bytes], scp_roles: tuple[bytes, ...] = ()
) -> tuple[bytes, dict[bytes, int]]:
    """An A-ASSOCIATE-AC (PS3.8 9.3.3) accepting the first context of each abstract syntax in
    ``accept`` with the transfer syntax given there (the others refused: abstract syntax not
    supported), with the SCP role for ``scp_roles`` (PS3.7 D.3.3.4); and the accepted
    context ids by abstract syntax."""
    contexts_rq, _ = parse_rq(rq_body)
    items = item(0x10, APP_CONTEXT)
    ids: dict[bytes, int] = {}
    for cid, abstract, syntaxes in contexts_rq:
        ts = accept.get(abstract)
        if ts is not None and abstract not in ids and ts in syntaxes:
            ids[abstract] = cid
            items += item(0x21, struct.pack(">BBBB", cid, 0, 0, 0) + item(0x40, ts))
        else:
            items += item(0x21, struct.pack(">BBBB", cid, 0, 3, 0) + item(0x40, IMPLICIT_LE))
    user = item(0x51, struct.pack(">I", 16384)) + item(0x52, b"1.2.826.0.1.3680043.9.9")
    for uid in scp_roles:
        user += item(0x54, struct.pack(">H", len(uid)) + uid + b"\x00\x01")
    items += item(0x50, user)
    body = rq_body[:68] + items
    return struct.pack(">BBI", 0x02, 0, len(body)) + body, ids


def parse_command(data: bytes) -> dict[int, bytes]:
    """A command set (Implicit VR Little Endian, PS3.7 6.3.1): element number -> value."""
    out: dict[int, bytes] = {}
    pos = 0
    while pos + 8 <= len(data):
        _group, elem, length = struct.unpack("<HHI", data[pos : pos + 8])
        out[elem] = data[pos + 8 : pos + 8 + length]
        pos += 8 + length
    return out


def read_message(sock: socket.socket, timeout: float = 10.0) -> tuple[int, dict[int, bytes]]:
    """The next DIMSE message we sent: (PDU type, command) for P-DATA, (type, {}) else."""
    cmd = b""
    data_expected = False
    while True:
        pdu = read_pdu(sock, timeout)
        if pdu is None:
            return 0, {}
        kind, body = pdu
        if kind != P_DATA_TF:
            return kind, {}
        pos = 0
        done = False
        while pos + 6 <= len(body):
            length, _cid, header = struct.unpack(">IBB", body[pos : pos + 6])
            payload = body[pos + 6 : pos + 4 + length]
            pos += 4 + length
            if header & 1:
                cmd += payload
                if header & 2:
                    fields = parse_command(cmd)
                    dataset_type = struct.unpack("<H", fields.get(0x0800, b"\x01\x01"))[0]
                    data_expected = dataset_type != 0x0101
                    done = not data_expected
            elif header & 2:
                done = True
        if done:
            return kind, parse_command(cmd)


def us(value: int) -> bytes:
    return struct.pack("<H", value)


def response(
    affected: bytes, field: int, msg_id: int, status: int, *more: bytes, data: bool = False
) -> bytes:
    """A DIMSE response command set (PS3.7 9.3): Affected SOP Class, Command Field, Message ID
    Being Responded To, Command Data Set Type (``data``: an identifier follows), Status, and
    ``more`` elements after them."""
    return command(
        element(0, 0x0002, affected),
        element(0, 0x0100, us(field)),
        element(0, 0x0120, us(msg_id)),
        element(0, 0x0800, us(0x0000 if data else 0x0101)),
        element(0, 0x0900, us(status)),
        *more,
    )


def send_pdata(sock: socket.socket, cid: int, payload: bytes, is_command: bool) -> None:
    sock.sendall(pdata(pdv(cid, payload, is_command)))


def send_dataset(
    sock: socket.socket, cid: int, data: memoryview, max_pdu: int, stop_at: int | None = None
) -> int:
    """``data`` as PDVs in P-DATA-TF PDUs no longer than ``max_pdu``; stop after ``stop_at``
    bytes when given (the last fragment never sent). Bytes sent."""
    chunk = max_pdu - 6
    end = len(data) if stop_at is None else stop_at
    pos = 0
    while pos < end:
        part = data[pos : min(pos + chunk, end)]
        last = stop_at is None and pos + len(part) == len(data)
        header = struct.pack(">BBIIBB", P_DATA_TF, 0, len(part) + 6, len(part) + 2, cid, 2 * last)
        sock.sendall(header)
        sock.sendall(part)
        pos += len(part)
    return pos


class FakePacs:
    """A listening socket on 127.0.0.1 whose connections, one after the other, are handed to
    ``scenario(conn, rq_body, max_pdu)`` in a thread; what it notes goes in ``seen``."""

    def __init__(self, scenario: Callable[[FakePacs, socket.socket, bytes, int], None]) -> None:
        self.scenario = scenario
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.server.getsockname()[1])
        self.seen: dict[str, Any] = {}
        self.errors: list[BaseException] = []
        self.stop = threading.Event()
        self.connections = 0
        self.thread = threading.Thread(target=self._run, name="fake-pacs", daemon=True)
        self.thread.start()

    @property
    def node(self) -> Node:
        return Node("pacs", "FAKEPACS", "127.0.0.1", self.port)

    def _run(self) -> None:
        self.server.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                try:
                    rq = read_pdu(conn, 10.0)
                    if rq is not None and rq[0] == 0x01:
                        _, max_pdu = parse_rq(rq[1])
                        self.scenario(self, conn, rq[1], max_pdu)
                except (OSError, TimeoutError):
                    pass  # we cut it off: what the scenario noted says how far it got
                except BaseException as exc:  # an error in the scenario fails the test
                    self.errors.append(exc)

    def close(self) -> None:
        self.stop.set()
        self.server.close()
        self.thread.join(10)
        assert self.errors == []


@contextlib.contextmanager
def fake_pacs(
    scenario: Callable[[FakePacs, socket.socket, bytes, int], None],
) -> Iterator[FakePacs]:
    pacs = FakePacs(scenario)
    try:
        yield pacs
    finally:
        pacs.close()


def no_context(conn: socket.socket, rq_body: bytes) -> None:
    """Answer an association accepting nothing (our retrieve then skips its C-FIND listing)."""
    ac, _ = associate_ac(rq_body, {})
    conn.sendall(ac)
    with contextlib.suppress(OSError):
        read_pdu(conn, 5.0)


def finish(conn: socket.socket) -> None:
    """Answer our A-RELEASE-RQ (whatever comes before it is read and dropped)."""
    while True:
        kind, _ = read_message(conn, 10.0)
        if kind == A_RELEASE_RQ:
            conn.sendall(RELEASE_RP)
            return
        if kind in (0, 0x07):
            return


@pytest.fixture
def local() -> LocalSettings:
    return LocalSettings(ae_title="LIGHTBOX", scp_port=peers.free_port(), timeouts=TIMEOUTS)


# -- C-GET: a 200 MiB sub-operation -----------------------------------------------------------


def large_dataset(sop_instance: str) -> bytearray:
    """A CT data set, Explicit VR Little Endian, with 200 MiB of pixel data (no patient data)."""
    ds = Dataset()
    ds.SOPClassUID = CT_STORAGE.decode()
    ds.SOPInstanceUID = sop_instance
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.9.9.1"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.9.9.2"
    ds.Modality = "CT"
    ds.PatientID = "HOSTILE-PACS"
    ds.Rows, ds.Columns, ds.BitsAllocated = 10240, 10240, 16
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, False  # Explicit VR Little Endian
    write_dataset(out, ds)
    head = out.getvalue()
    data = bytearray(head + struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, LARGE))
    data += bytes(range(256)) * (LARGE // 256)
    return data


class Catcher:
    """An ``on_instance`` that wants its files in ``scp_folder`` (as the store's receiver
    does) and notes each data set's size and digest."""

    def __init__(self, folder: Path) -> None:
        self.scp_folder = folder
        self.got: list[tuple[int, str]] = []

    def __call__(self, path: Path, _calling: str) -> int:
        with open(path, "rb") as fh:
            fh.seek(132 + 8)
            meta = struct.unpack("<I", fh.read(4))[0]
            fh.seek(132 + 12 + meta)
            digest = hashlib.sha256()
            size = 0
            while chunk := fh.read(MiB):
                digest.update(chunk)
                size += len(chunk)
        self.got.append((size, digest.hexdigest()))
        return 0x0000


def get_scenario(
    data: bytearray, sop_instance: str, abort_after: int | None, folder: Path
) -> Callable[[FakePacs, socket.socket, bytes, int], None]:
    """First association (the C-FIND listing): nothing accepted. Second: C-GET accepted with
    the SCP role for CT; on the C-GET-RQ, one C-STORE-RQ with ``data`` (or ``abort_after``
    bytes of it, then an A-ABORT once our side has spilled to ``folder``)."""

    def scenario(pacs: FakePacs, conn: socket.socket, rq_body: bytes, max_pdu: int) -> None:
        if pacs.connections == 1:
            no_context(conn, rq_body)
            return
        ac, ids = associate_ac(
            rq_body, {GET_STUDY: IMPLICIT_LE, CT_STORAGE: EXPLICIT_LE}, (CT_STORAGE,)
        )
        conn.sendall(ac)
        pacs.seen["max_pdu"] = max_pdu
        kind, cmd = read_message(conn)
        assert kind == P_DATA_TF and struct.unpack("<H", cmd[0x0100])[0] == 0x0010, cmd
        get_id = struct.unpack("<H", cmd[0x0110])[0]
        send_pdata(conn, ids[CT_STORAGE], store_rq(sop_instance.encode(), 7), True)
        view = memoryview(data)
        if abort_after is not None:
            pacs.seen["sent"] = send_dataset(conn, ids[CT_STORAGE], view, max_pdu, abort_after)
            deadline = time.monotonic() + 10
            while not list(folder.glob(".rx-*")) and time.monotonic() < deadline:
                time.sleep(0.02)
            pacs.seen["spilled"] = [p.name for p in folder.glob(".rx-*")]
            conn.sendall(ABORT)
            return
        pacs.seen["sent"] = send_dataset(conn, ids[CT_STORAGE], view, max_pdu)
        kind, rsp = read_message(conn, 30.0)
        pacs.seen["store_status"] = struct.unpack("<H", rsp.get(0x0900, b"\xff\xff"))[0]
        final = response(
            GET_STUDY,
            0x8010,  # C-GET-RSP
            get_id,
            0x0000,
            element(0, 0x1020, us(0)),
            element(0, 0x1021, us(1)),
            element(0, 0x1022, us(0)),
            element(0, 0x1023, us(0)),
        )
        send_pdata(conn, ids[GET_STUDY], final, True)
        finish(conn)

    return scenario


@pytest.mark.slow
def test_cget_of_a_large_instance_is_spilled_not_held_in_memory(
    tmp_path: Path, local: LocalSettings
) -> None:
    """A 200 MiB C-STORE sub-operation arrives intact through ``on_instance`` while this
    process allocates far less than 200 MiB (before: the whole data set, in memory)."""
    folder = tmp_path / "spool"
    folder.mkdir()
    sop = generate_uid()
    data = large_dataset(sop)
    expected = (len(data), hashlib.sha256(data).hexdigest())
    catcher = Catcher(folder)
    with fake_pacs(get_scenario(data, sop, None, folder)) as pacs:
        with Peak() as peak:
            result = retrieve(
                pacs.node, local, "1.2.826.0.1.3680043.9.9.1", method="get", on_instance=catcher
            )
        seen = pacs.seen
    print(f"C-GET of {LARGE // MiB} MiB: peak allocated {peak.bytes / MiB:.1f} MiB")
    assert seen["sent"] == len(data)
    assert seen["store_status"] == 0x0000
    assert result.completed == 1 and result.ok, result
    assert catcher.got == [expected]
    assert peak.bytes < BOUND, f"{peak.bytes / MiB:.0f} MiB allocated"
    assert list(folder.iterdir()) == []


def test_cget_aborted_in_the_middle_of_a_large_instance_leaves_no_file(
    tmp_path: Path, local: LocalSettings
) -> None:
    """The PACS aborts after 3 x SPILL_AT of a sub-operation's data set: it was going to a
    file in the receiver's folder (before: into memory), and the file is gone; the retrieve
    fails naming the peer, and nothing reached ``on_instance``."""
    folder = tmp_path / "spool"
    folder.mkdir()
    sop = generate_uid()
    data = bytearray(b"\0" * 64) + bytes(3 * SPILL_AT)
    catcher = Catcher(folder)
    with fake_pacs(get_scenario(data, sop, 3 * SPILL_AT, folder)) as pacs:
        start = time.monotonic()
        with pytest.raises(NetError) as failed:
            retrieve(pacs.node, local, "1.2.3", method="get", on_instance=catcher)
        took = time.monotonic() - start
        seen = pacs.seen
    assert seen["spilled"], "the data set was not going to a file in the receiver's folder"
    assert "FAKEPACS@127.0.0.1" in failed.value.message
    assert took < TIMEOUTS.dimse, f"{took:.1f} s: the abort was noticed only by a timeout"
    assert catcher.got == []
    assert list(folder.iterdir()) == []


# -- bounded reads: a PDU longer than we advertised -------------------------------------------


def test_a_pdu_longer_than_we_advertised_is_aborted_before_it_is_read(
    local: LocalSettings,
) -> None:
    """After the A-ASSOCIATE-AC, the PACS answers our C-ECHO with a P-DATA-TF declaring 1 GiB
    and streams 64 MiB: we abort after its 6-byte header (the PACS cannot send more than the
    socket buffers hold) and allocate nothing near it (before: read all it sent, holding it)."""
    junk = bytes(64 * MiB)

    def scenario(pacs: FakePacs, conn: socket.socket, rq_body: bytes, max_pdu: int) -> None:
        ac, _ = associate_ac(rq_body, {contexts.VERIFICATION.encode(): IMPLICIT_LE})
        conn.sendall(ac)
        pacs.seen["max_pdu"] = max_pdu
        read_message(conn)
        conn.sendall(struct.pack(">BBI", P_DATA_TF, 0, 1 << 30))
        sent = 0
        conn.settimeout(5.0)
        try:
            view = memoryview(junk)
            while sent < len(junk):
                sent += conn.send(view[sent : sent + MiB])
        finally:
            pacs.seen["sent"] = sent

    with fake_pacs(scenario) as pacs:
        with Peak() as peak:
            result = echo(pacs.node, local)
        deadline = time.monotonic() + 10
        while "sent" not in pacs.seen and time.monotonic() < deadline:
            time.sleep(0.05)
        seen = pacs.seen
    assert 0 < seen["max_pdu"] <= 16 * MiB, seen
    assert not result.ok and "FAKEPACS@127.0.0.1" in result.message, result
    assert seen["sent"] < 32 * MiB, f"we read {seen['sent'] / MiB:.0f} MiB of it"
    assert peak.bytes < 16 * MiB, f"{peak.bytes / MiB:.0f} MiB allocated"


# -- deadlines: a PACS that goes silent or trickles --------------------------------------------


def write_config(timeouts: dict[str, float]) -> None:
    """Our timeouts as the CLI reads them ($LIGHTBOX_HOME/network.json)."""
    home = Path(os.environ["LIGHTBOX_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    local = {"ae_title": "LIGHTBOX", "scp_port": peers.free_port(), "timeouts": timeouts}
    (home / "network.json").write_text(json.dumps({"local": local, "nodes": {}}))


def stalling(trickle: bool) -> Callable[[FakePacs, socket.socket, bytes, int], None]:
    """Accept (verification and C-FIND), read the request, then say nothing (``trickle``:
    the start of a P-DATA-TF PDU, then one byte every 0.5 s), for at most 25 s."""

    def scenario(pacs: FakePacs, conn: socket.socket, rq_body: bytes, max_pdu: int) -> None:
        accept = {contexts.VERIFICATION.encode(): IMPLICIT_LE, FIND_STUDY: IMPLICIT_LE}
        ac, _ = associate_ac(rq_body, accept)
        conn.sendall(ac)
        read_message(conn)
        if trickle:
            conn.sendall(struct.pack(">BBI", P_DATA_TF, 0, 1000))
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline and not pacs.stop.is_set():
            if trickle:
                conn.sendall(b"\0")
            time.sleep(0.5)

    return scenario


@pytest.mark.slow
@pytest.mark.parametrize("trickle", [False, True], ids=["silent", "trickle"])
@pytest.mark.parametrize("verb", ["echo", "find"])
def test_a_pacs_that_stalls_after_accepting_is_cut_off(verb: str, trickle: bool) -> None:
    """``lightbox echo``/``find`` against a PACS that accepts and then stalls end within the
    configured timeouts (2 s each here), exit 3, with a message naming the peer (before, a
    trickling PACS held them for as long as it trickled)."""
    write_config({"connect": 2.0, "acse": 2.0, "dimse": 2.0, "network": 2.0})
    with fake_pacs(stalling(trickle)) as pacs:
        target = f"FAKEPACS@127.0.0.1:{pacs.port}"
        args = ["echo", target] if verb == "echo" else ["find", target, "-k", "PatientID=X"]
        start = time.monotonic()
        done = lightbox(*args, timeout=40)
        took = time.monotonic() - start
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    assert target in done.stderr, done.stderr
    assert took < 12, f"{took:.1f} s"


# -- C-FIND: matches without end ---------------------------------------------------------------


@pytest.mark.slow
def test_find_stops_after_max_matches_of_an_endless_pacs() -> None:
    """The PACS answers one C-FIND with pending matches without end (for 30 s, to end the old
    code's run) and ignores C-CANCEL: ``lightbox find`` keeps MAX_MATCHES, says it stopped
    there, exits 1; the PACS saw our C-CANCEL and then the connection closed under it
    (before: every match was kept, for as long as the PACS went on)."""
    write_config({"connect": 3.0, "acse": 5.0, "dimse": 15.0, "network": 15.0})
    endless = 30.0

    def scenario(pacs: FakePacs, conn: socket.socket, rq_body: bytes, max_pdu: int) -> None:
        ac, ids = associate_ac(rq_body, {FIND_STUDY: IMPLICIT_LE})
        conn.sendall(ac)
        kind, cmd = read_message(conn)
        assert kind == P_DATA_TF and struct.unpack("<H", cmd[0x0100])[0] == 0x0020, cmd
        msg_id = struct.unpack("<H", cmd[0x0110])[0]
        cid = ids[FIND_STUDY]
        pending = response(FIND_STUDY, 0x8020, msg_id, 0xFF00, data=True)  # C-FIND-RSP
        cancels: list[int] = []
        pacs.seen["cancels"] = cancels

        def listen() -> None:  # what we send meanwhile: C-CANCEL, A-ABORT
            with contextlib.suppress(OSError):
                while True:
                    kind, cmd = read_message(conn, 30.0)
                    if kind == 0:
                        return
                    if kind == P_DATA_TF:
                        cancels.append(struct.unpack("<H", cmd.get(0x0100, b"\0\0"))[0])
                    else:
                        cancels.append(kind << 16)

        threading.Thread(target=listen, daemon=True).start()
        sent = 0
        pacs.seen["cut"] = True
        until = time.monotonic() + endless
        try:
            for n in itertools.count():
                if time.monotonic() > until:
                    break
                ident = element(0x0008, 0x0052, b"STUDY ") + element(
                    0x0020, 0x000D, f"1.2.826.0.1.3680043.9.9.{n}".encode()
                )
                conn.sendall(pdata(pdv(cid, pending, True), pdv(cid, ident, False)))
                sent += 1
            final = response(FIND_STUDY, 0x8020, msg_id, 0x0000)
            pacs.seen["cut"] = False
            send_pdata(conn, cid, final, True)
            finish(conn)
        finally:
            pacs.seen["sent"] = sent

    with fake_pacs(scenario) as pacs:
        done = lightbox("find", f"FAKEPACS@127.0.0.1:{pacs.port}", timeout=120)
        deadline = time.monotonic() + 40
        while "sent" not in pacs.seen and time.monotonic() < deadline:
            time.sleep(0.05)
        seen = pacs.seen
    lines = done.stdout.splitlines()
    assert len(lines) == MAX_MATCHES, f"{len(lines)} matches kept"
    assert done.returncode == 1, done.stderr
    assert f"stopped after {MAX_MATCHES} matches" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert 0x0FFF in seen["cancels"], seen["cancels"]  # C-CANCEL-RQ (PS3.7 9.3.2.3)
    assert seen["cut"], f"the PACS was never stopped ({seen['sent']} matches sent)"
