"""Bounds on both sides of every association (issue 9): what the storage SCP accepts and what
the associations we open read, whatever the peer sends.

pynetdicom reads a PDU into a buffer of the length the peer declares and has no deadline on a
read inside an association. The classes here replace its socket, DUL, DIMSE and association
loops for both roles: a PDU's buffer grows only as its bytes arrive, up to the maximum we
advertised (an A-ASSOCIATE-RQ/AC up to :data:`MAX_REQUEST_PDU`); every read has a deadline
(:class:`Limits`: ARTIM before the association, the idle timeout after); a command set is at most
:data:`MAX_COMMAND_SET`; a C-STORE data set longer than :data:`SPILL_AT` is written to a file as
it arrives (:class:`Spills`). :mod:`viewer.net.scp` installs them on the associations it
accepts, :func:`guard_requestor` on those we request (:mod:`viewer.net.connect`).

pynetdicom's private loops are copied here (``PromptDUL.run_reactor``,
``PromptAssociation.run_reactor``/``_run_reactor``): pyproject.toml pins pynetdicom to the 3.0
series they were read from, and tests/net/test_hostile_peer.py checks the pin and the source of
those methods.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
import select
import ssl
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, cast

from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_messages import C_STORE_RQ, DIMSEMessage
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu_primitives import A_ASSOCIATE
from pynetdicom.transport import AssociationSocket

from viewer import dicom
from viewer.config import app_home
from viewer.net import fastpath
from viewer.net.nodes import DEFAULT_MAX_PDU

LOG = logging.getLogger(__name__)


def spool_dir() -> Path:
    path = app_home() / "incoming"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _meta_element(element: int, vr: bytes, value: bytes) -> bytes:
    if len(value) % 2:
        value += b"\0" if vr == b"UI" else b" "  # PS3.5 6.2: UI pads with NUL, text with space
    if vr == b"OB":
        return struct.pack("<HH2sHI", 0x0002, element, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", 0x0002, element, vr, len(value)) + value


def file_meta_bytes(
    sop_class: str, sop_instance: str, transfer_syntax: str, source_ae: str = ""
) -> bytes:
    """Preamble, ``DICM`` and the File Meta Information group (PS3.10 7.1), Explicit VR Little
    Endian; encoded by hand because pydicom's general writer cost a third of the receive time."""
    body = b"".join(
        (
            _meta_element(0x0001, b"OB", b"\x00\x01"),
            _meta_element(0x0002, b"UI", sop_class.encode("ascii")),
            _meta_element(0x0003, b"UI", sop_instance.encode("ascii")),
            _meta_element(0x0010, b"UI", transfer_syntax.encode("ascii")),
            _meta_element(0x0012, b"UI", dicom.IMPLEMENTATION_CLASS_UID.encode("ascii")),
            _meta_element(0x0013, b"SH", dicom.IMPLEMENTATION_VERSION_NAME.encode("ascii")),
            _meta_element(0x0016, b"AE", source_ae.encode("ascii", "replace"))
            if source_ae
            else b"",
        )
    )
    group_length = _meta_element(0x0000, b"UL", struct.pack("<I", len(body)))
    return b"\0" * 128 + b"DICM" + group_length + body


#: A C-STORE data set longer than this is not kept in memory: from here on it is written to
#: the spool folder as its fragments arrive (a peer sending a multi-GB data set on every
#: association slot must not exhaust our memory). Below it nothing changes: the data set is
#: written once, after its last fragment (:func:`write_received`). Typical CT and MR
#: instances are far below it (0.1-0.5 MB); radiographs and multi-frame ones spill, which
#: costs nothing more: their file is written once either way.
SPILL_AT = 8 * 1024 * 1024
#: The longest command set we assemble (PS3.7 6.3.1, E.1): a C-STORE-RQ's is about 200 bytes;
#: a command that never ends is an A-ABORT.
MAX_COMMAND_SET = 64 * 1024
#: Requests received and not answered yet, besides the one being served. A peer waits for
#: each answer unless asynchronous operations were negotiated (PS3.7 D.3.3.3), which we never
#: accept; one more is tolerated, the next is an A-ABORT (each may hold :data:`SPILL_AT`).
MAX_QUEUED = 1


class Refused(Exception):
    """What a peer sent (or what receiving it needs) that ends the association with an
    A-ABORT: the message is the log line's reason, ``level`` its logging level."""

    def __init__(self, reason: str, level: int = logging.WARNING) -> None:
        super().__init__(reason)
        self.level = level


class Spill:
    """A C-STORE data set being written to the spool folder as it arrives: a PS3.10 file
    (preamble, File Meta Information, then the data set exactly as received), hidden under
    the ``.rx-<pid>-`` name of :func:`write_received`. pynetdicom's ``decode_msg`` writes the
    later fragments through ``write`` and ``file.flush`` (the interface of the temporary file
    of its own ``STORE_RECV_CHUNKED_DATASET``, which is global, writes to the system's temp
    folder and would apply to C-GET too).

    A write that fails (disc full) deletes the file and drops the rest of the data set as it
    comes: the request is then answered 0xA700 with the reason (:func:`handle_store`), as for
    a small instance, instead of ending the association."""

    def __init__(self, folder: Path, head: bytes) -> None:
        self.error: OSError | None = None
        self.path: Path | None = None
        self.name = ""
        self._fh: Any = None
        try:
            fd, name = tempfile.mkstemp(prefix=f".rx-{os.getpid()}-", suffix=".dcm", dir=folder)
        except OSError as exc:
            self.error = exc
            return
        self.path, self.name = Path(name), name
        try:
            self._fh = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            self.discard()
            raise
        self.write(head)

    @property
    def file(self) -> Spill:
        return self  # decode_msg calls `file.flush()` after each fragment

    def flush(self) -> None:
        """Nothing: the fragments are written as they come (a PDU is far beyond the buffer),
        and :meth:`finish` flushes the rest."""

    def write(self, data: bytes | memoryview) -> int:
        if self.error is None:
            try:
                self._fh.write(data)
            except OSError as exc:
                self.error = exc
                self.discard()
        return len(data)

    def finish(self, sync: bool) -> Path:
        """The whole file, flushed (and ``fsync``-ed when ``sync``), closed; raises the
        OSError that a write met."""
        if self.error is not None or self.path is None:
            raise self.error or OSError("no file")
        self._fh.flush()
        if sync:
            os.fsync(self._fh.fileno())
        self._fh.close()
        return self.path

    def close(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError, ValueError):
                self._fh.close()

    def discard(self) -> None:
        self.close()
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)


class Spills:
    """The spilled data sets of one association that nobody has taken over yet: whatever is
    left when a request has been served, or when the association ends (aborted, closed, in
    the middle of a data set or with requests still queued), is deleted."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._open: set[Spill] = set()
        self.closed = False

    def open(self, head: bytes) -> Spill:
        with self._lock:
            if self.closed:
                raise Refused("a data set arrived after the association ended")
            spill = Spill(self.folder or spool_dir(), head)
            self._open.add(spill)
            return spill

    def take(self, spill: Spill) -> bool:
        """The caller owns the file now (False: the association ended and it is gone)."""
        with self._lock:
            if spill not in self._open:
                return False
            self._open.discard(spill)
            return True

    def discard(self, spill: object) -> None:
        if isinstance(spill, Spill) and self.take(spill):
            spill.discard()

    def close(self) -> None:
        with self._lock:
            self.closed = True
            left, self._open = self._open, set()
        for spill in left:
            spill.discard()


def peer_text(value: str | bytes) -> str:
    """A peer's name or value for a log line: printable ASCII kept, anything else as ``\\xNN``
    (so an escape sequence or a newline sent by a peer never reaches a terminal or splits a
    log line)."""
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    return "".join(
        ch if " " <= ch <= "~" and ch != "\\" else f"\\x{ord(ch):02x}" if ord(ch) < 256 else "?"
        for ch in text
    )


def peer_name(assoc: Any) -> str:
    """``AE@address:port`` of the peer of an association (what a log line names): the
    requestor of an SCP association, the acceptor (the PACS) of one we opened."""
    if getattr(assoc, "is_requestor", False):
        acceptor = assoc.acceptor
        try:
            address = f"{acceptor.address}:{acceptor.port}"
        except (AttributeError, TypeError, ValueError):
            address = "?"
        title = str(getattr(acceptor, "ae_title", "") or "").strip()
        return f"{peer_text(title)}@{address}" if title else address
    requestor = assoc.requestor
    try:
        address = f"{requestor.address}:{requestor.port}"
    except (AttributeError, TypeError, ValueError):
        address = "?"
    primitive = requestor.primitive
    title = str(getattr(primitive, "calling_ae_title", "") or "").strip() if primitive else ""
    return f"{peer_text(title)}@{address}" if title else address


#: The largest PDU our SCP advertises when ``LocalSettings.max_pdu`` is 0 ("no limit", PS3.8
#: D.1): we hold a whole PDU in memory, so we never advertise an unbounded one.
MAX_PDU_CEILING = 16 * 1024 * 1024
#: The largest A-ASSOCIATE-RQ we read (PS3.8 9.3.2): 128 presentation contexts with a dozen
#: transfer syntaxes each stay well under it; a request is small.
MAX_REQUEST_PDU = 256 * 1024
#: A PDU's buffer starts at this and doubles as its bytes arrive: a declared length alone
#: allocates nothing near it.
_FIRST_CHUNK = 64 * 1024
_PDU_HEADER = struct.Struct(">BBI")
_PDU_TYPES = frozenset(range(0x01, 0x08))  # PS3.8 Table 9-11
#: A-ABORT, source "DICOM UL service-provider" (2), reason "invalid-PDU-parameter value" (6)
#: or "unrecognized-PDU" (1) (PS3.8 9.3.8).
_ABORT_INVALID = bytes((0x07, 0, 0, 0, 0, 4, 0, 0, 2, 6))
_ABORT_UNRECOGNIZED = bytes((0x07, 0, 0, 0, 0, 4, 0, 0, 2, 1))
#: A-ASSOCIATE-RJ (PS3.8 9.3.4): permanent, service-user, calling (3) / called (7) AE title
#: not recognized; transient, service-provider (presentation), local limit exceeded (2).
_REJECT_CALLING = bytes((0x03, 0, 0, 0, 0, 4, 0, 1, 1, 3))
_REJECT_CALLED = bytes((0x03, 0, 0, 0, 0, 4, 0, 1, 1, 7))
REJECT_LIMIT = bytes((0x03, 0, 0, 0, 0, 4, 0, 2, 3, 2))
_AE_OK = re.compile(rb"[ -\[\]-~]{16}")  # VR AE: printable ASCII, no backslash (PS3.5 6.2)


@dataclass(frozen=True, slots=True)
class Limits:
    """What one SCP association may do: the largest PDU we advertised, the ARTIM timeout for
    the association request (PS3.8 9.1.5) and the idle/read timeout once associated."""

    max_pdu: int
    artim: float
    idle: float


class PromptSocket(AssociationSocket):
    """Reads a PDU with ``recv_into`` its buffer (a 256 KiB P-DATA PDU took 64 4 KiB ``recv``
    calls and as many copies), bounded by a deadline, the buffer growing with the data that
    actually arrive."""

    #: Wait with ``select`` before each ``recv`` (:class:`_RequestorSocket`) instead of
    #: relying on the socket's own timeout.
    _lightbox_select = False

    def read_into(self, buf: bytearray, total: int, deadline: float) -> bool:
        """Fill ``buf`` up to ``total`` bytes; False when the peer closed first; TimeoutError
        when ``deadline`` (``time.monotonic``) passes. The socket's own timeout bounds each
        ``recv`` so the whole read ends at most one socket timeout after the deadline; with
        ``_lightbox_select`` each ``recv`` waits first for data within what is left of it."""
        sock = self.socket
        if sock is None:
            return False
        wait = self._lightbox_select
        got = len(buf)
        while got < total:
            if got == len(buf):
                buf.extend(bytes(min(max(got, _FIRST_CHUNK), total - got)))
            if wait and not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([sock], [], [], left)[0]:
                    raise TimeoutError
            with memoryview(buf) as view:
                n = sock.recv_into(view[got:], len(buf) - got)
            if not n:
                del buf[got:]
                return False
            got += n
            if got < total and time.monotonic() > deadline:
                raise TimeoutError
        return True


class PromptAssociation(Association):
    """pynetdicom's acceptor reactor polls its DIMSE queue every millisecond (``time.sleep``);
    this one waits on the queue, so a C-STORE is served as soon as it is decoded. The release,
    abort, DUL-alive and network-timeout checks are pynetdicom's (``_run_reactor``).

    The wait for the association request (``run_reactor``, acceptor path) also ends as soon as
    the connection is gone, so a peer that sent garbage does not keep its slot for the ACSE
    timeout; the slot is given back when the thread ends, whatever happens.
    """

    _lightbox_release: Callable[[], None] | None = None
    _lightbox_closing = False

    def run_reactor(self) -> None:
        try:
            self._run_acceptor()
        finally:
            # A data set spilled to the spool and never handed over (the association ended
            # in the middle of it, or with a request still queued) is deleted.
            spills = getattr(self.dimse, "_lightbox_spills", None)
            if spills is not None:
                spills.close()
            if self._lightbox_release is not None:
                self._lightbox_release()

    def _connection_gone(self) -> bool:
        sock = self.dul.socket
        return self._lightbox_closing or sock is None or sock.socket is None

    def _wait_request(self) -> A_ASSOCIATE | None:
        deadline = time.monotonic() + float(self.acse_timeout or 30.0)
        while time.monotonic() < deadline:
            primitive = self.dul.receive_pdu(wait=True, timeout=0.05)
            if isinstance(primitive, A_ASSOCIATE):
                return primitive
            if primitive is not None or self._connection_gone() or not self.dul.is_alive():
                return None
        return None

    def _close_connection(self) -> None:
        sock = self.dul.socket
        if self._server is not None and sock is not None and sock.socket is not None:
            self._server.shutdown_request(sock.socket)

    def _run_acceptor(self) -> None:
        # pynetdicom's Association.run_reactor, acceptor path.
        if not self._started_dul:
            self.dul.start()
            self._started_dul = True
            self._dul_ready.wait()
        primitive = self._wait_request()
        if primitive is None:
            self.kill()
            self._close_connection()
            return
        self.requestor.primitive = primitive
        evt.trigger(self, evt.EVT_REQUESTED, {})
        if not self.is_aborted and not self.is_rejected:
            self.acse.negotiate_association()
        if self.is_established:
            self._run_reactor()
        self._close_connection()

    def _run_reactor(self) -> None:
        self._is_paused = False
        while not self._kill:
            self._is_paused = True
            self._reactor_checkpoint.wait()
            self._is_paused = False
            try:
                context_id, msg = self.dimse.msg_queue.get(timeout=0.001)
            except queue.Empty:
                context_id, msg = None, None
            if msg:
                try:
                    self._serve_request(msg, cast(int, context_id))
                finally:
                    # Served: a spilled data set its handler did not take is deleted now.
                    spills = getattr(self.dimse, "_lightbox_spills", None)
                    if spills is not None:
                        spills.discard(getattr(msg, "_dataset_file", None))
            if self.is_established and self.acse.is_release_requested():
                self.acse.send_release(is_response=True)
                self.is_released = True
                self.is_established = False
                evt.trigger(self, evt.EVT_RELEASED, {})
                self.kill()
                return
            if self.acse.is_aborted():
                self.dul.receive_pdu(wait=False)
                self.is_aborted = True
                self.is_established = False
                evt.trigger(self, evt.EVT_ABORTED, {})
                self.kill()
                return
            if not self.dul.is_alive():
                self.kill()
                return
            if self.dul.idle_timer_expired():
                LOG.info(
                    "%s: silent for %g s: aborting the association",
                    peer_name(self),
                    self.network_timeout or 0,
                )
                self.abort()
                self.kill()
                return


class _BoundedDIMSE(DIMSEServiceProvider):
    """Bounds what a peer can make us hold (issue 9): pynetdicom assembles a message's command
    set and data set in memory with no limit (``DIMSEMessage.decode_msg``). Here a command set
    longer than :data:`MAX_COMMAND_SET` is an A-ABORT; a C-STORE-RQ data set longer than
    :data:`SPILL_AT` goes on in a file of the spool folder (:class:`Spill`, taken over by
    :func:`handle_store`); any other data set that long, and more than :data:`MAX_QUEUED`
    requests waiting to be served, are an A-ABORT. Runs in the DUL thread (PS3.8 DT-2); an
    exception ends the association (:meth:`PromptDUL._fail`).
    """

    _lightbox_spills: Spills | None = None

    def receive_primitive(self, primitive: Any) -> None:
        message = self.message
        command = message.encoded_command_set.tell() if message is not None else 0
        for _context_id, data in primitive.presentation_data_value_list:
            if data and data[0] & 1:
                command += len(data) - 1
        if command > MAX_COMMAND_SET:
            raise Refused(f"a command set longer than {MAX_COMMAND_SET} bytes")
        super().receive_primitive(primitive)
        message = self.message
        if message is None:  # a whole message was queued
            self._queued()
            return
        buffer = message.data_set
        if (
            message._data_set_file is None
            and isinstance(buffer, BytesIO)
            and buffer.tell() > SPILL_AT
        ):
            self._spill(message, buffer)

    def _queued(self) -> None:
        if self.msg_queue.qsize() > MAX_QUEUED:
            raise Refused(
                "requests sent without waiting for the answers (no asynchronous "
                "operations were negotiated)"
            )

    def _spill(self, message: DIMSEMessage, buffer: BytesIO) -> None:
        """Go on writing this C-STORE-RQ's data set to a file (pynetdicom's ``decode_msg``
        writes the later fragments to ``message._data_set_file``)."""
        if not isinstance(message, C_STORE_RQ):
            what = type(message).__name__.replace("_", "-")
            if what == "DIMSEMessage":
                what = "command-less"
            raise Refused(f"a {what} data set longer than {SPILL_AT} bytes")
        spills = self._lightbox_spills
        if spills is None:
            raise Refused(f"a data set longer than {SPILL_AT} bytes and nowhere to put it")
        cs = message.command_set
        context = self.assoc._accepted_cx.get(cast(int, message.context_id))
        if context is None or not context.transfer_syntax:
            raise Refused("a data set on a presentation context that was not accepted")
        head = file_meta_bytes(
            peer_text(str(cs.get("AffectedSOPClassUID", "") or "")),
            peer_text(str(cs.get("AffectedSOPInstanceUID", "") or "")),
            str(context.transfer_syntax[0]),
            str(self.assoc.remote["ae_title"]).strip(),
        )
        spill = spills.open(head)  # a failure to write is answered with the C-STORE-RSP
        spill.write(buffer.getbuffer())
        message._data_set_file = spill  # type: ignore[assignment]
        message._data_set_path = spill.path
        message.data_set = BytesIO()
        LOG.debug(
            "%s: a data set of more than %d bytes goes on in %s",
            peer_name(self.assoc),
            SPILL_AT,
            spill.path,
        )


class PromptDIMSE(_BoundedDIMSE):
    """Answers a C-STORE straight on the socket from the association's thread
    (:func:`viewer.net.fastpath.send_store_response`); anything else goes pynetdicom's way.
    What it accepts is bounded as in :class:`_BoundedDIMSE`."""

    def send_msg(self, primitive: Any, context_id: int) -> None:
        if isinstance(primitive, C_STORE) and fastpath.send_store_response(
            self.assoc, context_id, primitive
        ):
            return
        super().send_msg(primitive, context_id)


class PromptDUL(DULServiceProvider):
    """pynetdicom's DUL loop sleeps ``_run_loop_delay`` whenever it found nothing to do, so
    the next request waited out the sleep (about half a millisecond with the timer slack).
    This loop waits on its socket instead, for at most that delay, and reads as soon as data
    come; the loop is otherwise pynetdicom's (``run_reactor``). TLS sockets (buffered data
    that ``select`` cannot see) keep the plain sleep.

    Every peer is untrusted (issue 9): a PDU is read against a deadline (the ARTIM timeout
    before the association, the idle timeout after) and only up to the size we advertised
    (an association request: :data:`MAX_REQUEST_PDU`); a longer, unknown or undecodable PDU,
    an AE title that is not one (PS3.5 VR AE), or anything that fails while the state machine
    handles it, ends the association with an A-ABORT (or A-ASSOCIATE-RJ) and one log line
    naming the peer, never a traceback (``-v``/DEBUG logging shows it).
    """

    _lightbox_limits = Limits(DEFAULT_MAX_PDU, 30.0, 60.0)
    #: The association PDU read up to MAX_REQUEST_PDU: the A-ASSOCIATE-RQ (0x01) for the SCP,
    #: the A-ASSOCIATE-AC (0x02) for an association we requested.
    _lightbox_answer_kind = 0x01

    def _idle(self) -> None:
        sock = getattr(self.socket, "socket", None)
        if sock is None or not fastpath.usable(self.assoc):
            time.sleep(self._run_loop_delay)
            return
        # Closed meanwhile: the loop's own check reports it.
        with contextlib.suppress(OSError, ValueError):
            select.select([sock], [], [], self._run_loop_delay)

    def _drop(self, answer: bytes = b"") -> None:
        """Send ``answer`` (an A-ABORT or A-ASSOCIATE-RJ PDU) and close the connection: the
        state machine gets 'transport connection closed' (Evt17) and goes idle (Sta1)."""
        sock = self.socket
        if sock is None:
            return
        if answer and sock.socket is not None:
            with contextlib.suppress(OSError, ValueError):
                sock.socket.sendall(answer)
        sock.close()
        if sock.socket is not None:  # close() only reports a connected socket
            sock.socket = None
            self.event_queue.put("Evt17")
        if self.assoc.is_requestor:
            # Whoever waits for our peer's next message (pynetdicom's send_c_* in the
            # caller's thread) hears at once that none will come, not after the DIMSE
            # timeout: (None, None) is what its get_msg answers then.
            self.assoc.dimse.msg_queue.put((None, None))

    def _refuse(self, why: str, answer: bytes = _ABORT_INVALID) -> None:
        what = "rejecting" if answer[0] == 0x03 else "aborting"
        LOG.warning("%s: %s: %s the association", peer_name(self.assoc), why, what)
        self._drop(answer)

    def _read_pdu_data(self) -> None:
        sock = cast(PromptSocket, self.socket)
        limits = self._lightbox_limits
        # Sta1 too: the loop may read the request before it handled the connection (Evt5).
        state = self.state_machine.current_state
        requesting = state in ("Sta1", "Sta2")
        # Sta5: an association we requested, waiting for its answer (the ACSE timeout).
        waiting = requesting or state == "Sta5"
        deadline = time.monotonic() + (limits.artim if waiting else limits.idle)
        buf = bytearray()
        try:
            if not sock.read_into(buf, 6, deadline):
                self._drop()
                return
            kind, _, length = _PDU_HEADER.unpack(buf)
            if kind not in _PDU_TYPES:
                self._refuse(f"unknown PDU type 0x{kind:02X}", _ABORT_UNRECOGNIZED)
                return
            # The association request (or, for one we requested, its answer) is not bound
            # by the maximum length; every other PDU is (PS3.8 D.1).
            limit = MAX_REQUEST_PDU if kind == self._lightbox_answer_kind else limits.max_pdu
            if length > limit:
                self._refuse(f"a PDU of {length} bytes, more than the {limit} we accept")
                return
            if not sock.read_into(buf, 6 + length, deadline):
                LOG.info("%s: closed the connection in the middle of a PDU", peer_name(self.assoc))
                self._drop()
                return
        except TimeoutError:
            self._refuse("no complete PDU within the time allowed", _ABORT_INVALID)
            return
        except OSError:
            self._drop()
            return
        if kind == 0x01 and requesting:
            if not _AE_OK.fullmatch(bytes(buf[10:26])):
                self._refuse(f"called AE title '{peer_text(bytes(buf[10:26]))}'", _REJECT_CALLED)
                return
            if not _AE_OK.fullmatch(bytes(buf[26:42])):
                self._refuse(f"calling AE title '{peer_text(bytes(buf[26:42]))}'", _REJECT_CALLING)
                return
        try:
            pdu, event = self._decode_pdu(buf)
        except Exception as exc:
            LOG.debug("undecodable PDU", exc_info=True)
            self._refuse(f"a PDU that does not decode ({type(exc).__name__})")
            return
        self.event_queue.put(event)
        self._recv_pdu.put(pdu)

    def _fail(self, exc: BaseException) -> None:
        """An exception in the loop (a command set that does not decode, say): abort without
        going through the state machine, which may be in any state by now."""
        spills = getattr(self.assoc.dimse, "_lightbox_spills", None)
        if isinstance(exc, Refused):
            LOG.log(exc.level, "%s: %s: aborting the association", peer_name(self.assoc), exc)
        elif spills is not None and spills.closed:  # a data set written while it ended
            LOG.debug("%s: ended in the middle of a data set", peer_name(self.assoc))
        else:
            LOG.warning(
                "%s: cannot handle what it sent (%s): aborting the association",
                peer_name(self.assoc),
                peer_text(f"{type(exc).__name__}: {exc}")[:200],
            )
        LOG.debug("DUL error", exc_info=exc)
        self._drop(_ABORT_INVALID)
        self.assoc.is_aborted = True
        self.assoc.is_established = False
        self.assoc._kill = True
        self._kill_thread = True

    def run_reactor(self) -> None:
        self._idle_timer.start()
        sleep = False
        while True:
            if not self.assoc._dul_ready.is_set():
                self.assoc._dul_ready.set()
                sleep = True
            if sleep:
                self._idle()
            if self._kill_thread:
                break
            if self.artim_timer.expired:
                self.event_queue.put("Evt18")
            try:
                if self._process_recv_primitive():
                    pass
                elif self._is_transport_event():
                    self._idle_timer.restart()
            except Exception as exc:
                self._fail(exc)
                return
            try:
                event = self.event_queue.get(block=False)
            except queue.Empty:
                sleep = True
                continue
            try:
                self.state_machine.do_action(event)
            except Exception as exc:
                self._fail(exc)
                return
            sleep = False


# -- the same bounds for the associations we open (SCU: echo, find, move, get, send) --------


def bounded_pdu(wanted: int) -> int:
    """The largest PDU we advertise (PS3.8 D.1) and accept: ``wanted``, or
    :data:`MAX_PDU_CEILING` when that is 0 ("no limit") or more: never unbounded."""
    return wanted if 0 < wanted <= MAX_PDU_CEILING else MAX_PDU_CEILING


class _RequestorSocket(PromptSocket):
    """The bounded reader of :class:`PromptSocket` for an association we opened. The socket
    itself stays blocking (a socket timeout would also bound each ``sendall``, the whole of a
    large C-STORE sent by :mod:`viewer.net.fastpath`): every ``recv`` waits first, with
    ``select``, for data within what is left of the PDU's deadline."""

    _lightbox_select = True


#: Responses (C-FIND matches, C-GET sub-operations) decoded and not yet taken by the caller:
#: past this many the DUL thread stops reading until the caller catches up, so a PACS
#: sending faster than we handle its messages waits on TCP instead of filling our memory.
MAX_QUEUED_RESPONSES = 64


class _RequestorDIMSE(_BoundedDIMSE):
    """:class:`_BoundedDIMSE` for an association we opened: a C-STORE-RQ (a C-GET
    sub-operation) data set longer than :data:`SPILL_AT` goes on in a file of the folder the
    receiver takes files from (none given: an A-ABORT, as for any other data set that long);
    a PACS may send many responses to one request, so a full queue holds the peer back
    instead of aborting."""

    def _queued(self) -> None:
        assoc = self.assoc
        while (
            self.msg_queue.qsize() > MAX_QUEUED_RESPONSES
            and not assoc._kill
            and not assoc.dul._kill_thread
        ):
            time.sleep(0.001)


class _ReactorCheckpoint(threading.Event):
    """pynetdicom's reactor pause, made a handshake. A ``send_*`` clears the checkpoint and
    spins until ``_is_paused``; the reactor sets ``_is_paused``, waits on the checkpoint, and
    clears ``_is_paused`` once past it. ``Event.wait`` returns True to a thread woken by
    ``set()`` even if the checkpoint was cleared again before that thread ran: resumed then
    paused in quick succession (:func:`viewer.net.send._send_batch` resumes the reactor
    before each ``send_c_store``, which pauses it), the reactor, not yet run, still read as
    paused; the request went out; then the reactor ran and took the response off the queue,
    the sender waiting out the DIMSE timeout (seen on a loaded machine). Here the reactor
    leaves its wait only while the checkpoint is still set, and marks itself running under
    the checkpoint's lock, so a ``clear()`` either keeps it waiting or is followed by a spin
    that sees it running and waits for it to pause again. Relies on pynetdicom's
    ``Association._run_reactor`` (its source is pinned by tests/net/test_hostile_peer.py).
    """

    def __init__(self, assoc: Association) -> None:
        super().__init__()
        self._lightbox_assoc = assoc
        self.set()

    def wait(self, timeout: float | None = None) -> bool:
        assoc = self._lightbox_assoc
        if threading.current_thread() is not assoc or timeout is not None:
            return super().wait(timeout)
        cond = self._cond  # type: ignore[attr-defined]
        with cond:
            while not self._flag:  # type: ignore[attr-defined]
                cond.wait()
            assoc._is_paused = False
        return True


class _RequestorAssociation(Association):
    """A C-STORE sub-operation (C-GET) whose spilled data set the handler did not take over is
    deleted once answered (the SCP's reactor does the same, :class:`PromptAssociation`)."""

    def _c_store_scp(self, req: C_STORE) -> None:
        try:
            super()._c_store_scp(req)
        finally:
            spills = getattr(self.dimse, "_lightbox_spills", None)
            if spills is not None:
                spills.discard(getattr(req, "_dataset_file", None))


def guard_requestor(
    assoc: Association,
    address: Any,
    tls_args: Any,
    limits: Limits,
    spill_folder: Path | None,
) -> AssociationSocket:
    """Give an association we are about to request (its threads not started yet) the SCP's
    bounds: PDUs read only up to ``limits.max_pdu`` (the A-ASSOCIATE-AC up to
    :data:`MAX_REQUEST_PDU`), each within the ACSE timeout before the answer and
    ``limits.idle`` after; command sets up to :data:`MAX_COMMAND_SET`; C-STORE data sets
    longer than :data:`SPILL_AT` written to ``spill_folder`` as they arrive (None: refused).
    Returns the socket for ``AE._create_socket``; call :func:`release_requestor` when done.
    """
    assoc.__class__ = _RequestorAssociation
    assoc._reactor_checkpoint = _ReactorCheckpoint(assoc)
    dul = assoc.dul
    dul.__class__ = PromptDUL
    dul._target = dul.run_reactor  # type: ignore[attr-defined]
    dul.daemon = True  # a DUL thread blocked on a peer never keeps the process alive
    guarded = cast(PromptDUL, dul)
    guarded._lightbox_limits = limits
    guarded._lightbox_answer_kind = 0x02
    assoc.dimse.__class__ = _RequestorDIMSE
    dimse = cast(_RequestorDIMSE, assoc.dimse)
    dimse._lightbox_spills = Spills(spill_folder) if spill_folder is not None else None
    sock = _RequestorSocket(assoc, address=address)
    sock.tls_args = tls_args
    return sock


def release_requestor(assoc: Association) -> None:
    """The association is over: a spilled data set nobody took over is deleted."""
    spills = getattr(assoc.dimse, "_lightbox_spills", None)
    if spills is not None:
        spills.close()
