"""A raw DICOM upper-layer peer for the hostile-peer tests (issue 9): PDUs written by hand.

pynetdicom and DCMTK never send malformed or oversized PDUs, so the tests that play a hostile
peer (test_hostile_peer, test_large_dataset) or a hostile PACS (test_hostile_pacs) build the
bytes of PS3.8 9.3 here: A-ASSOCIATE-RQ, P-DATA-TF with its PDVs, command sets (PS3.7 6.3.1,
E.1), A-ABORT; and read what comes back with a deadline. Also the measures they share: memory
(tracemalloc, /proc) and exceptions that escaped a thread.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from pynetdicom import AE

MiB = 1024 * 1024

APP_CONTEXT = b"1.2.840.10008.3.1.1.1"
VERIFICATION = b"1.2.840.10008.1.1"
CT_STORAGE = b"1.2.840.10008.5.1.4.1.1.2"
IMPLICIT_LE = b"1.2.840.10008.1.2"
EXPLICIT_LE = b"1.2.840.10008.1.2.1"

A_ASSOCIATE_AC, A_ASSOCIATE_RJ, P_DATA_TF, A_ABORT = 0x02, 0x03, 0x04, 0x07


def item(kind: int, body: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(body)) + body


def associate_rq(
    called: bytes = b"LIGHTBOX",
    calling: bytes = b"RAWPEER",
    contexts: list[tuple[int, bytes, list[bytes]]] | None = None,
    max_pdu: int = 16384,
) -> bytes:
    """A-ASSOCIATE-RQ PDU (PS3.8 9.3.2): application context, presentation contexts, user
    information with the maximum length (D.1) and an implementation class UID (PS3.7 D.3.3.2)."""
    contexts = contexts if contexts is not None else [(1, VERIFICATION, [IMPLICIT_LE])]
    items = item(0x10, APP_CONTEXT)
    for cid, abstract, syntaxes in contexts:
        sub = item(0x30, abstract) + b"".join(item(0x40, ts) for ts in syntaxes)
        items += item(0x20, struct.pack(">BBBB", cid, 0, 0, 0) + sub)
    user = item(0x51, struct.pack(">I", max_pdu)) + item(0x52, b"1.2.826.0.1.3680043.9.9")
    items += item(0x50, user)
    body = (
        struct.pack(">HH", 1, 0)
        + called[:16].ljust(16, b" ")
        + calling[:16].ljust(16, b" ")
        + b"\0" * 32
        + items
    )
    return struct.pack(">BBI", 0x01, 0, len(body)) + body


def pdv(context_id: int, payload: bytes, command: bool, last: bool = True) -> bytes:
    header = (0x01 if command else 0x00) | (0x02 if last else 0x00)
    return struct.pack(">IBB", len(payload) + 2, context_id, header) + payload


def pdata(*pdvs: bytes) -> bytes:
    body = b"".join(pdvs)
    return struct.pack(">BBI", P_DATA_TF, 0, len(body)) + body


def element(group: int, elem: int, value: bytes) -> bytes:
    if len(value) % 2:
        value += b"\0"
    return struct.pack("<HHI", group, elem, len(value)) + value


def command(*elements: bytes) -> bytes:
    """A command set, Implicit VR Little Endian, with its group length (PS3.7 6.3.1, E.1)."""
    body = b"".join(elements)
    return element(0, 0, struct.pack("<I", len(body))) + body


def store_rq(sop_instance: bytes, msg_id: int = 1) -> bytes:
    """C-STORE-RQ command set (PS3.7 9.3.1.1) for a CT image."""
    return command(
        element(0, 0x0002, CT_STORAGE),
        element(0, 0x0100, struct.pack("<H", 0x0001)),
        element(0, 0x0110, struct.pack("<H", msg_id)),
        element(0, 0x0700, struct.pack("<H", 0)),
        element(0, 0x0800, struct.pack("<H", 0x0000)),
        element(0, 0x1000, sop_instance),
    )


ABORT = struct.pack(">BBIBBBB", A_ABORT, 0, 4, 0, 0, 0, 0)


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_pdu(sock: socket.socket, timeout: float = 5.0) -> tuple[int, bytes] | None:
    """The next PDU, or None when the connection was closed (or reset) first."""
    sock.settimeout(timeout)
    try:
        head = _read(sock, 6)
        if head is None:
            return None
        kind, _, length = struct.unpack(">BBI", head)
        body = _read(sock, length)
    except ConnectionResetError:
        return None
    return None if body is None else (kind, body)


def _read(sock: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        part = sock.recv(n - len(data))
        if not part:
            return None
        data += part
    return data


def closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """Whether the SCP closes the connection within ``timeout`` (whatever PDU it sends first)."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return False


def associate(port: int, **kwargs: object) -> socket.socket:
    sock = connect(port)
    sock.sendall(associate_rq(**kwargs))  # type: ignore[arg-type]
    answer = read_pdu(sock)
    assert answer is not None and answer[0] == A_ASSOCIATE_AC, answer
    return sock


def echo_ok(port: int, source: str = "127.0.0.1", calling: str = "REALSCU") -> bool:
    """A real C-ECHO by pynetdicom (PS3.7 9.1.5), from ``source``."""
    ae = AE(calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 5
    ae.add_requested_context(VERIFICATION.decode())
    assoc = ae.associate("127.0.0.1", port, ae_title="LIGHTBOX", bind_address=(source, 0))
    if not assoc.is_established:
        return False
    try:
        status = assoc.send_c_echo()
        return bool(status) and status.Status == 0x0000
    finally:
        assoc.release()


def eventually_echo(port: int, source: str = "127.0.0.1", within: float = 5.0) -> bool:
    """A C-ECHO succeeds within ``within`` s: slots of connections just closed come back when
    their association threads have ended, a moment after the peer saw the close."""
    deadline = time.monotonic() + within
    while not echo_ok(port, source):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def status_bytes(field: str, pid: int | str = "self") -> int:
    """A memory figure of ``/proc/PID/status`` (``VmRSS``, ``VmHWM``: the peak), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


class Peak:
    """The most memory tracemalloc saw allocated (by any thread) inside the ``with``."""

    def __init__(self) -> None:
        self.bytes = 0

    def __enter__(self) -> Peak:
        tracemalloc.start()
        tracemalloc.reset_peak()
        return self

    def __exit__(self, *exc: object) -> None:
        _, self.bytes = tracemalloc.get_traced_memory()
        tracemalloc.stop()


def wait_for(check: Callable[[], object], within: float = 10.0) -> bool:
    """Whether ``check()`` comes true within ``within`` s (polled every 50 ms)."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


class ThreadErrors:
    """Exceptions that escaped any thread while the test ran (``threading.excepthook``)."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def __call__(self, args: threading.ExceptHookArgs) -> None:
        self.errors.append(f"{args.thread}: {args.exc_type.__name__}: {args.exc_value}")
