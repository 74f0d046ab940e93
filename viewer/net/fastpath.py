"""C-STORE of a file's bytes written straight to the association socket, and its answer.

Why: pynetdicom hands every P-DATA-TF PDU (16 KiB with DCMTK peers) through a queue to its DUL
thread, which takes one PDU per loop while contending for the GIL with the sending thread;
300 CT slices (158 MB, ~10,000 PDUs) took 2 s against 0.4 s for DCMTK's storescu. Here the
C-STORE-RQ command set and the data set (the file's bytes after its File Meta Information, never
decoded) are cut into PDVs of the peer's maximum length and sent with one ``sendall`` per file
(PS3.8 9.3.5 P-DATA-TF structure, Annex E message control header; PS3.7 6.3.1 command set in
Implicit VR Little Endian, 9.3.1.1 C-STORE-RQ fields).

Only the sending side is bypassed: association set-up, the response (read by pynetdicom's DUL
thread and decoded by its DIMSE layer), release and abort stay pynetdicom's. Sending P-DATA does
not change the DUL state (PS3.8 Table 9-10: DT-1 keeps Sta6), and nothing else is queued for the
DUL while a C-STORE waits for its answer, so the two writers never interleave. TLS sockets take
pynetdicom's own path (an OpenSSL connection must not be written and read from two threads).

The receiving side uses the same shortcut for its answers (:func:`send_store_response`): a
C-STORE-RSP went through pydicom's data set writer and then waited for the DUL thread's next
loop (it sleeps when idle), about a millisecond per instance while the sender waits.
"""

from __future__ import annotations

import ssl
import struct
import time
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

_TAG = struct.Struct("<HHI")
_PDV = struct.Struct(">BBIIBB")  # PDU type, reserved, PDU length, item length, context, header


def _element(element: int, value: bytes, pad: bytes = b"\0") -> bytes:
    if len(value) % 2:
        value += pad  # UI values are padded with NUL, text (LO) with a space (PS3.5 6.2, 9.1)
    return _TAG.pack(0x0000, element, len(value)) + value


def error_comment(text: str) -> str:
    """An Error Comment (0000,0902) value: VR LO, at most 64 characters (PS3.5 6.2, PS3.7
    C.4), printable ASCII only (it names what was wrong; it may quote a peer's value)."""
    cleaned = "".join(ch if " " <= ch <= "~" and ch != "\\" else "?" for ch in text)
    return cleaned.strip()[:64]


def command_set(sop_class: str, sop_instance: str, msg_id: int, priority: int = 0) -> bytes:
    """C-STORE-RQ command set (PS3.7 Table 9.3-1), Implicit VR Little Endian (PS3.7 6.3.1)."""
    body = b"".join(
        (
            _element(0x0002, sop_class.encode("ascii")),
            _element(0x0100, struct.pack("<H", 0x0001)),
            _element(0x0110, struct.pack("<H", msg_id)),
            _element(0x0700, struct.pack("<H", priority)),
            _element(0x0800, struct.pack("<H", 0x0000)),  # a data set follows
            _element(0x1000, sop_instance.encode("ascii")),
        )
    )
    return _element(0x0000, struct.pack("<I", len(body))) + body


def store_response_set(
    sop_class: str, sop_instance: str, msg_id: int, status: int, comment: str = ""
) -> bytes:
    """C-STORE-RSP command set (PS3.7 Table 9.3-2), Implicit VR Little Endian: no data set;
    ``comment``: the Error Comment (0000,0902) of a failure (PS3.7 C.4)."""
    text = error_comment(comment).encode("ascii")
    body = b"".join(
        (
            _element(0x0002, sop_class.encode("ascii")),
            _element(0x0100, struct.pack("<H", 0x8001)),
            _element(0x0120, struct.pack("<H", msg_id)),
            _element(0x0800, struct.pack("<H", 0x0101)),  # no data set
            _element(0x0900, struct.pack("<H", status)),
            _element(0x0902, text, b" ") if text else b"",
            _element(0x1000, sop_instance.encode("ascii")),
        )
    )
    return _element(0x0000, struct.pack("<I", len(body))) + body


def pdus(context_id: int, payload: bytes | memoryview, is_command: bool, max_pdu: int) -> bytes:
    """P-DATA-TF PDUs of one PDV each, no longer than the peer's maximum (PS3.8 9.3.5, E.2)."""
    room = (max_pdu - 6) if max_pdu > 12 else 1 << 20
    view = memoryview(payload)
    parts: list[bytes | memoryview] = []
    total = len(view)
    start = 0
    while True:
        chunk = view[start : start + room]
        start += len(chunk)
        last = start >= total
        header = (0x01 if is_command else 0x00) | (0x02 if last else 0x00)
        parts.append(_PDV.pack(0x04, 0, len(chunk) + 6, len(chunk) + 2, context_id, header))
        parts.append(chunk)
        if last:
            return b"".join(parts)


def pause_reactor(assoc: Any) -> None:
    """Keep pynetdicom's association reactor from taking our responses off the DIMSE queue.

    pynetdicom's own pause (clear the checkpoint, spin until ``_is_paused``) has a window: the
    reactor may have just passed its checkpoint with ``_is_paused`` still True, then be
    descheduled (GIL) and take the next response with ``get_msg(block=False)``, leaving the
    sender waiting out the DIMSE timeout. Seen here on the first of 300 stores. So pause once
    per association while nothing is outstanding, let the reactor finish the iteration it may be
    in (it sleeps 1 ms per loop), and keep it paused until :func:`resume_reactor`.
    """
    if not assoc._reactor_checkpoint.is_set():
        return
    assoc._reactor_checkpoint.clear()
    time.sleep(0.01)
    while not assoc._is_paused and assoc.is_established:
        time.sleep(0.0005)


def resume_reactor(assoc: Any) -> None:
    assoc._reactor_checkpoint.set()


def usable(assoc: Any) -> bool:
    sock = getattr(assoc.dul.socket, "socket", None)
    return sock is not None and not isinstance(sock, ssl.SSLSocket)


def store_file(
    assoc: Any,
    context_id: int,
    path: Path,
    offset: int,
    sop_class: str,
    sop_instance: str,
    msg_id: int,
) -> Dataset:
    """Send one C-STORE-RQ whose data set is ``path`` from ``offset``; the response status as
    pynetdicom's ``send_c_store`` returns it (an empty Dataset when none came)."""
    max_pdu = int(assoc.acceptor.maximum_length or 0)
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read()
    command = command_set(sop_class, sop_instance, msg_id)
    stream = pdus(context_id, command, True, max_pdu) + pdus(context_id, data, False, max_pdu)
    pause_reactor(assoc)
    try:
        assoc.dul.socket.socket.sendall(stream)
        _, rsp = assoc.dimse.get_msg(block=True)
    except OSError:
        rsp = None
    if rsp is None:
        resume_reactor(assoc)
        assoc._handle_no_response()
        return Dataset()
    status: Dataset = assoc._check_received_status(rsp)
    return status


def send_store_response(assoc: Any, context_id: int, rsp: Any) -> bool:
    """Write a C-STORE-RSP primitive to the socket at once; False (nothing sent) when it is
    not a plain one this path encodes (TLS socket, offending elements): the caller then sends
    it pynetdicom's way. An Error Comment goes with it (PS3.7 C.4)."""
    if (
        not usable(assoc)
        or rsp.MessageIDBeingRespondedTo is None
        or rsp.OffendingElement
        or rsp.Status is None
        or not rsp.AffectedSOPClassUID
        or not rsp.AffectedSOPInstanceUID
    ):
        return False
    command = store_response_set(
        str(rsp.AffectedSOPClassUID),
        str(rsp.AffectedSOPInstanceUID),
        int(rsp.MessageIDBeingRespondedTo),
        int(rsp.Status),
        str(rsp.ErrorComment or ""),
    )
    max_pdu = int(assoc.dimse.maximum_pdu_size or 0)
    # pynetdicom's socket wrapper: a connection gone meanwhile becomes its "transport closed"
    # event (Evt17) for the DUL thread, exactly as when the DUL itself sends.
    assoc.dul.socket.send(pdus(context_id, command, True, max_pdu))
    return True
