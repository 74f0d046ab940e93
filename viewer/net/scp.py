"""The application-wide storage SCP (Storage Service Class as SCP, PS3.4 B.2.2) and C-ECHO SCP.

One per port and per machine: :func:`ensure_scp` first asks whether our AE already answers
C-ECHO on our port (the GUI's SCP, say) and only starts its own when nobody does, so that
``lightbox get --method move`` run beside the GUI receives through the GUI's SCP.

Every received instance is written once as a DICOM file (PS3.10: preamble, ``DICM``, File Meta
Information, then the data set exactly as received) into a spool folder and handed to
``on_instance(path, calling_ae) -> status``. The network layer knows nothing of the store: the
application connects that callback to the store's atomic import. The callback owns the file
(moves it away); whatever is left is deleted. The returned status goes back to the sender as the
C-STORE response status (PS3.4 B.2.3: 0x0000 success, 0xA7xx out of resources, 0xA9xx data
set does not match SOP Class, 0xCxxx cannot understand), with its Error Comment (0000,0902) when
``on_instance`` answers ``(status, comment)``.

Every peer is untrusted (issue 9). What the listener accepts, and the knobs
(:class:`~viewer.net.nodes.LocalSettings`):

- PDUs no longer than the maximum we advertise (``max_pdu``, 256 KiB by default, never more than
  :data:`MAX_PDU_CEILING`); an association request of at most :data:`MAX_REQUEST_PDU`. A longer
  one is an A-ABORT, before anything near its declared length is allocated.
- A deadline on every read: the association request within the ARTIM timeout
  (``timeouts.acse``, 30 s), then silence or a PDU taking longer than ``scp_idle_timeout`` (60 s)
  ends the association.
- At most ``scp_max_associations`` (32) connections at once, ``scp_max_per_host`` (8) of them
  from one IP address, counted from the TCP connection; the next gets an A-ASSOCIATE-RJ "local
  limit exceeded". TLS handshakes run in the connection's own thread.
- Called AE title ours; calling AE titles from ``accepted_callers`` when it is not empty; AE
  titles that are not VR AE (control or non-ASCII bytes) are rejected and logged escaped.
- Bind address ``bind_address`` (empty: every interface).
- :meth:`StorageScp.stop` closes every connection at once: a stalled peer never delays it.
- Memory held per association, whatever the peer sends: a C-STORE data set is kept in memory
  up to :data:`SPILL_AT` (8 MiB) and from there written to the spool folder as it arrives
  (the file the receiver then takes over by a rename); any other message with a data set that
  long, a command set longer than :data:`MAX_COMMAND_SET`, or more than :data:`MAX_QUEUED`
  requests sent without waiting for their answers (PS3.7 D.3.3.3: no asynchronous operations
  are negotiated) is an A-ABORT. So one association holds at most three data sets of
  :data:`SPILL_AT` (arriving, queued, being served) and a PDU: about 25 MiB, 800 MiB for the
  default 32 associations. An association that ends in the middle of a data set leaves no
  file behind.

pynetdicom's private loops are copied here (``_PromptDUL.run_reactor``,
``_PromptAssociation.run_reactor``/``_run_reactor``, the server's ``get_request`` and
``process_request_thread``): pyproject.toml pins pynetdicom to the 3.0 series they were read
from, and tests/net/test_hostile_peer.py checks the pin and the source of those methods.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
import select
import socket
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

from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_messages import C_STORE_RQ, DIMSEMessage
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu_primitives import A_ASSOCIATE
from pynetdicom.transport import AssociationSocket, RequestHandler, ThreadedAssociationServer

from viewer import dicom
from viewer.config import app_home
from viewer.net import contexts, fastpath, tls
from viewer.net.connect import make_ae, set_nodelay
from viewer.net.echo import echo
from viewer.net.nodes import DEFAULT_MAX_PDU, LocalSettings, Node

LOG = logging.getLogger(__name__)

#: A C-STORE status (PS3.4 B.2.3), or a status and its Error Comment (PS3.7 C.4).
StoreResult = int | tuple[int, str]
#: ``on_instance(path_of_a_part10_file, calling_ae_title) -> status or (status, comment)``.
OnInstance = Callable[[Path, str], StoreResult]

STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_CANNOT_UNDERSTAND = 0xC000
STATUS_PROCESSING_FAILURE = 0x0110

_UID = re.compile(r"[0-9]+(\.[0-9]+)*")


def valid_uid(value: str) -> bool:
    """PS3.5 9.1: digits and dots, at most 64 characters; such a value is safe in a file name."""
    return 0 < len(value) <= 64 and _UID.fullmatch(value) is not None


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


def write_received(event: Any, folder: Path, source_ae: str = "", *, sync: bool = False) -> Path:
    """Write the request's data set as a PS3.10 file in ``folder`` without decoding it, named
    ``.rx-<pid>-<random>.dcm`` (hidden, and the writer's process id tells a file being written
    from one left by a killed process); ``sync``: ``fsync`` it before closing."""
    req = event.request
    head = file_meta_bytes(
        str(req.AffectedSOPClassUID),
        str(req.AffectedSOPInstanceUID),
        str(event.context.transfer_syntax),
        source_ae,
    )
    fd, name = tempfile.mkstemp(prefix=f".rx-{os.getpid()}-", suffix=".dcm", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(head)
            fh.write(req.DataSet.getbuffer())
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


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


class _Refused(Exception):
    """What a peer sent (or what receiving it needs) that ends the association with an
    A-ABORT: the message is the log line's reason, ``level`` its logging level."""

    def __init__(self, reason: str, level: int = logging.WARNING) -> None:
        super().__init__(reason)
        self.level = level


class _Spill:
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
    def file(self) -> _Spill:
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


class _Spills:
    """The spilled data sets of one association that nobody has taken over yet: whatever is
    left when a request has been served, or when the association ends (aborted, closed, in
    the middle of a data set or with requests still queued), is deleted."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._open: set[_Spill] = set()
        self.closed = False

    def open(self, head: bytes) -> _Spill:
        with self._lock:
            if self.closed:
                raise _Refused("a data set arrived after the association ended")
            spill = _Spill(self.folder or spool_dir(), head)
            self._open.add(spill)
            return spill

    def take(self, spill: _Spill) -> bool:
        """The caller owns the file now (False: the association ended and it is gone)."""
        with self._lock:
            if spill not in self._open:
                return False
            self._open.discard(spill)
            return True

    def discard(self, spill: object) -> None:
        if isinstance(spill, _Spill) and self.take(spill):
            spill.discard()

    def close(self) -> None:
        with self._lock:
            self.closed = True
            left, self._open = self._open, set()
        for spill in left:
            spill.discard()


def _escape(value: str | bytes) -> str:
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
        return f"{_escape(title)}@{address}" if title else address
    requestor = assoc.requestor
    try:
        address = f"{requestor.address}:{requestor.port}"
    except (AttributeError, TypeError, ValueError):
        address = "?"
    primitive = requestor.primitive
    title = str(getattr(primitive, "calling_ae_title", "") or "").strip() if primitive else ""
    return f"{_escape(title)}@{address}" if title else address


def _status_of(result: StoreResult) -> tuple[int, str]:
    if isinstance(result, tuple):
        status, comment = result
        return int(status), str(comment or "")
    return int(result), ""


def _answer(status: int, comment: str = "") -> int | Dataset:
    """The C-STORE response's status, with an Error Comment (0000,0902) when there is one
    (PS3.7 C.4): a failure says what was wrong."""
    if not comment or status == STATUS_SUCCESS:
        return status
    ds = Dataset()
    ds.Status = status
    ds.ErrorComment = fastpath.error_comment(comment)
    return ds


def handle_store(
    event: Any, on_instance: OnInstance, folder: Path, sync: bool = False
) -> int | Dataset:
    """EVT_C_STORE: validate, spool, hand over; never raises into pynetdicom.

    ``on_instance`` answers a status or ``(status, error comment)``; a failure we find here
    (invalid UIDs, an empty data set, a spool folder that cannot take the file) is answered with
    its Error Comment and one log line naming the peer, never a traceback at the default level.
    """
    peer = peer_name(event.assoc)
    req = event.request
    spill = getattr(req, "_dataset_file", None)
    if isinstance(spill, _Spill):
        # A data set longer than SPILL_AT, written to `folder` as it arrived: ours now (and
        # not pynetdicom's, which would delete it after this handler).
        spills = getattr(event.assoc.dimse, "_lightbox_spills", None)
        req._dataset_file = None
        if spills is None or not spills.take(spill):
            return _answer(STATUS_OUT_OF_RESOURCES, "the association ended")
    else:
        spill = None
    sop_instance = str(req.AffectedSOPInstanceUID or "")
    if not valid_uid(sop_instance) or not valid_uid(str(req.AffectedSOPClassUID or "")):
        if spill is not None:
            spill.discard()
        LOG.warning("%s: refused an instance with an invalid SOP Class or Instance UID", peer)
        return _answer(STATUS_CANNOT_UNDERSTAND, "invalid Affected SOP Class or Instance UID")
    if spill is None:
        data = req.DataSet
        if data is None or len(data.getbuffer()) < 8:  # not even one element (PS3.5 7.1)
            LOG.warning("%s: refused instance %s: its data set is empty", peer, sop_instance)
            return _answer(STATUS_CANNOT_UNDERSTAND, "the data set is empty")
    caller = str(event.assoc.remote["ae_title"]).strip()
    try:
        if spill is None:
            path = write_received(event, folder, caller, sync=sync)
        else:
            try:
                path = spill.finish(sync)
            except BaseException:
                spill.discard()
                raise
    except OSError as exc:
        reason = exc.strerror or str(exc)
        LOG.error("%s: cannot write a received instance to %s: %s", peer, folder, reason)
        LOG.debug("write_received failed", exc_info=True)
        return _answer(STATUS_OUT_OF_RESOURCES, f"cannot write the instance: {reason}")
    try:
        status, comment = _status_of(on_instance(path, caller))
    except Exception as exc:
        LOG.error("%s: the import of a received instance failed: %s", peer, _escape(str(exc)))
        LOG.debug("on_instance failed", exc_info=True)
        return _answer(STATUS_PROCESSING_FAILURE, "the import of the instance failed")
    finally:
        path.unlink(missing_ok=True)
    return _answer(status, comment)


def _on_conn_open(event: Any) -> None:
    set_nodelay(event.assoc.dul.socket)


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
_REJECT_LIMIT = bytes((0x03, 0, 0, 0, 0, 4, 0, 2, 3, 2))
_AE_OK = re.compile(rb"[ -\[\]-~]{16}")  # VR AE: printable ASCII, no backslash (PS3.5 6.2)


@dataclass(frozen=True, slots=True)
class _Limits:
    """What one SCP association may do: the largest PDU we advertised, the ARTIM timeout for
    the association request (PS3.8 9.1.5) and the idle/read timeout once associated."""

    max_pdu: int
    artim: float
    idle: float


class _PromptSocket(AssociationSocket):
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


class _PromptAssociation(Association):
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
    :data:`SPILL_AT` goes on in a file of the spool folder (:class:`_Spill`, taken over by
    :func:`handle_store`); any other data set that long, and more than :data:`MAX_QUEUED`
    requests waiting to be served, are an A-ABORT. Runs in the DUL thread (PS3.8 DT-2); an
    exception ends the association (:meth:`_PromptDUL._fail`).
    """

    _lightbox_spills: _Spills | None = None

    def receive_primitive(self, primitive: Any) -> None:
        message = self.message
        command = message.encoded_command_set.tell() if message is not None else 0
        for _context_id, data in primitive.presentation_data_value_list:
            if data and data[0] & 1:
                command += len(data) - 1
        if command > MAX_COMMAND_SET:
            raise _Refused(f"a command set longer than {MAX_COMMAND_SET} bytes")
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
            raise _Refused(
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
            raise _Refused(f"a {what} data set longer than {SPILL_AT} bytes")
        spills = self._lightbox_spills
        if spills is None:
            raise _Refused(f"a data set longer than {SPILL_AT} bytes and nowhere to put it")
        cs = message.command_set
        context = self.assoc._accepted_cx.get(cast(int, message.context_id))
        if context is None or not context.transfer_syntax:
            raise _Refused("a data set on a presentation context that was not accepted")
        head = file_meta_bytes(
            _escape(str(cs.get("AffectedSOPClassUID", "") or "")),
            _escape(str(cs.get("AffectedSOPInstanceUID", "") or "")),
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


class _PromptDIMSE(_BoundedDIMSE):
    """Answers a C-STORE straight on the socket from the association's thread
    (:func:`viewer.net.fastpath.send_store_response`); anything else goes pynetdicom's way.
    What it accepts is bounded as in :class:`_BoundedDIMSE`."""

    def send_msg(self, primitive: Any, context_id: int) -> None:
        if isinstance(primitive, C_STORE) and fastpath.send_store_response(
            self.assoc, context_id, primitive
        ):
            return
        super().send_msg(primitive, context_id)


class _PromptDUL(DULServiceProvider):
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

    _lightbox_limits = _Limits(DEFAULT_MAX_PDU, 30.0, 60.0)
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
        sock = cast(_PromptSocket, self.socket)
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
                self._refuse(f"called AE title '{_escape(bytes(buf[10:26]))}'", _REJECT_CALLED)
                return
            if not _AE_OK.fullmatch(bytes(buf[26:42])):
                self._refuse(f"calling AE title '{_escape(bytes(buf[26:42]))}'", _REJECT_CALLING)
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
        if isinstance(exc, _Refused):
            LOG.log(exc.level, "%s: %s: aborting the association", peer_name(self.assoc), exc)
        elif spills is not None and spills.closed:  # a data set written while it ended
            LOG.debug("%s: ended in the middle of a data set", peer_name(self.assoc))
        else:
            LOG.warning(
                "%s: cannot handle what it sent (%s): aborting the association",
                peer_name(self.assoc),
                _escape(f"{type(exc).__name__}: {exc}")[:200],
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


class _PromptRequestHandler(RequestHandler):
    server: _GuardedServer
    adopted = False

    def handle(self) -> None:
        """pynetdicom's, with the association registered with our server first (its slot,
        closed by :meth:`StorageScp.stop`)."""
        assoc = self._create_association()
        evt.trigger(assoc, evt.EVT_CONN_OPEN, {"address": self.client_address})
        self.server.adopt(assoc, str(self.client_address[0]))
        self.adopted = True
        assoc.start()

    def _create_association(self) -> Association:
        assoc = super()._create_association()
        assoc.__class__ = _PromptAssociation
        # Thread.__init__ bound pynetdicom's loops as the targets; the threads are not started.
        assoc._target = assoc.run_reactor  # type: ignore[attr-defined]
        assoc.dul.__class__ = _PromptDUL
        assoc.dul._target = assoc.dul.run_reactor  # type: ignore[attr-defined]
        # A DUL thread blocked on a peer must never keep the process from exiting.
        assoc.dul.daemon = True
        assoc.dimse.__class__ = _PromptDIMSE
        cast(_PromptDIMSE, assoc.dimse)._lightbox_spills = _Spills(self.server.spill_folder)
        sock = assoc.dul.socket
        assert sock is not None
        sock.__class__ = _PromptSocket
        limits = self.server.limits
        cast(_PromptDUL, assoc.dul)._lightbox_limits = limits
        raw = sock.socket
        if raw is not None:
            # Each recv waits at most this long (the deadlines of _read_pdu_data bound a PDU),
            # and so does each send to a peer that does not read.
            raw.settimeout(min(limits.artim, limits.idle))
        # The DUL loop's longest idle wait (pynetdicom's own knob, `_run_loop_delay`): how soon
        # it sends what pynetdicom queued (C-ECHO answers, release).
        assoc.dul._run_loop_delay = 0.0005
        return assoc


class _GuardedServer(ThreadedAssociationServer):
    """pynetdicom's threaded server with our limits (issue 9): at most ``max_total``
    connections at once and ``max_per_host`` from one address, counted from the TCP
    connection (a peer still sending its request holds a slot); one over the limit gets an
    A-ASSOCIATE-RJ "local limit exceeded" (PS3.8 9.3.4) and is closed. TLS handshakes happen
    in the connection's thread under the ARTIM timeout, never in the accepting loop."""

    daemon_threads = True
    limits = _Limits(DEFAULT_MAX_PDU, 30.0, 60.0)
    max_total = 32
    max_per_host = 8
    #: Where C-STORE data sets longer than SPILL_AT are written as they arrive (the folder
    #: the store's receiver takes files from; None: :func:`spool_dir`).
    spill_folder: Path | None = None

    def configure(
        self, limits: _Limits, max_total: int, max_per_host: int, spill_folder: Path | None = None
    ) -> None:
        self.limits = limits
        self.spill_folder = spill_folder
        self.max_total = max_total
        self.max_per_host = max_per_host
        self._guard = threading.Lock()
        self._hosts: dict[str, int] = {}
        self._live: dict[Association, str] = {}
        self._turning_away = threading.BoundedSemaphore(8)
        self._closed = False
        self._refusals: dict[str, tuple[float, int]] = {}  # host: (last logged, since then)

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        assert self.socket is not None
        client, address = self.socket.accept()
        if self.ssl_context:
            client = self.ssl_context.wrap_socket(
                client, server_side=True, do_handshake_on_connect=False
            )
        return client, address

    def process_request(self, request: Any, client_address: Any) -> None:
        host = str(client_address[0])
        with self._guard:
            total = sum(self._hosts.values())
            from_host = self._hosts.get(host, 0)
            full = total >= self.max_total or from_host >= self.max_per_host
            if not full:
                self._hosts[host] = from_host + 1
        if full:
            self._log_refusal(host, total, from_host)
            self._turn_away(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:  # no thread: give the slot back
            self._release(host)
            self.shutdown_request(request)

    def _log_refusal(self, host: str, total: int, from_host: int) -> None:
        """One line per address and per 10 s at most (a flood must not flood the log)."""
        now = time.monotonic()
        last, since = self._refusals.get(host, (0.0, 0))
        if now - last < 10.0:
            self._refusals[host] = (last, since + 1)
            return
        self._refusals[host] = (now, 0)
        more = f"; {since} more refused since the last report" if since else ""
        LOG.warning(
            "refused a connection from %s: %d associations open, %d from that address "
            "(limits %d and %d per address)%s",
            _escape(host),
            total,
            from_host,
            self.max_total,
            self.max_per_host,
            more,
        )

    def _turn_away(self, request: Any) -> None:
        """A-ASSOCIATE-RJ, local limit exceeded, from a short-lived thread (the peer's request
        is read and dropped first, so that closing does not reset the connection before the
        peer reads the rejection); only so many at once, the others are just closed."""
        if isinstance(request, ssl.SSLSocket) or not self._turning_away.acquire(blocking=False):
            self.shutdown_request(request)
            return

        def run() -> None:
            try:
                request.settimeout(2.0)
                with contextlib.suppress(OSError):
                    request.sendall(_REJECT_LIMIT)
                    request.shutdown(socket.SHUT_WR)
                    deadline = time.monotonic() + 2.0
                    drained = 0
                    while drained < MAX_REQUEST_PDU and time.monotonic() < deadline:
                        chunk = request.recv(65536)
                        if not chunk:
                            break
                        drained += len(chunk)
            finally:
                with contextlib.suppress(OSError):
                    request.close()
                self._turning_away.release()

        threading.Thread(target=run, name="lightbox-scp-refuse", daemon=True).start()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        host = str(client_address[0])
        adopted = False
        try:
            if isinstance(request, ssl.SSLSocket):
                request.settimeout(self.limits.artim)
                request.do_handshake()
            handler = cast(Any, self.RequestHandlerClass)(request, client_address, self)
            adopted = bool(getattr(handler, "adopted", False))
        except Exception as exc:  # TLS handshake failed or timed out, socket gone
            LOG.warning("%s: connection failed: %s", _escape(host), _escape(str(exc))[:200])
            LOG.debug("connection failed", exc_info=True)
        finally:
            if not adopted:
                self._release(host)
                self.shutdown_request(request)

    def adopt(self, assoc: Association, host: str) -> None:
        """The association owns the slot now: given back when its thread ends."""
        with self._guard:
            self._live[assoc] = host
            closed = self._closed
        cast(_PromptAssociation, assoc)._lightbox_release = lambda: self._release(host, assoc)
        if closed:  # its TLS handshake ended after stop(): close it at once too
            self._close(assoc)

    def _release(self, host: str, assoc: Association | None = None) -> None:
        with self._guard:
            if assoc is not None and self._live.pop(assoc, None) is None:
                return  # given back already
            left = self._hosts.get(host, 0) - 1
            if left > 0:
                self._hosts[host] = left
            else:
                self._hosts.pop(host, None)

    def open_connections(self) -> int:
        with self._guard:
            return sum(self._hosts.values())

    @staticmethod
    def _close(assoc: Association) -> None:
        cast(_PromptAssociation, assoc)._lightbox_closing = True
        sock = assoc.dul.socket
        raw = sock.socket if sock is not None else None
        if raw is not None:
            with contextlib.suppress(OSError, ValueError):
                raw.shutdown(socket.SHUT_RDWR)

    def close_all(self, wait: float = 1.0) -> None:
        """Close every association's connection (the peers see it closed, our threads end
        at once) and wait at most ``wait`` seconds for their threads: a stalled peer never
        delays a shutdown. A thread still storing an instance is left to finish (daemon)."""
        with self._guard:
            self._closed = True
            live = list(self._live)
        for assoc in live:
            self._close(assoc)
        deadline = time.monotonic() + wait
        for assoc in live:
            assoc.join(max(0.0, deadline - time.monotonic()))


def _shutdown(server: ThreadedAssociationServer) -> None:
    """Stop accepting, close the listening socket, then every live association."""
    server.shutdown()
    if isinstance(server, _GuardedServer):
        server.close_all()


@dataclass
class ScpHandle:
    """A running storage SCP: ours (``owned``) or another process's answering our AE title."""

    port: int
    owned: bool
    server: ThreadedAssociationServer | None = None

    def stop(self) -> None:
        if self.server is not None:
            _shutdown(self.server)
            self.server = None


class StorageScp:
    """Our storage + verification SCP on ``local.bind_address:local.scp_port``.

    Accepts associations addressed to our AE title (PS3.8 7.1.1.4) from any caller, or only
    from ``local.accepted_callers`` when that list is not empty; TLS when ``local.tls`` has a
    certificate (PS3.15 B.9).
    """

    def __init__(self, local: LocalSettings, on_instance: OnInstance, folder: Path | None = None):
        self.local = local
        self.on_instance = on_instance
        # An on_instance may say where it wants the files (``scp_folder``: its own spool, so
        # that taking one over is a rename in one folder) and ask for them synced before it
        # gets them (``scp_sync``), as viewer.store.Receiver does.
        self.folder = folder or getattr(on_instance, "scp_folder", None) or spool_dir()
        self.sync = bool(getattr(on_instance, "scp_sync", False))
        self.folder.mkdir(parents=True, exist_ok=True)
        self.server: ThreadedAssociationServer | None = None
        self._lock = threading.Lock()

    def _ae(self) -> AE:
        ae = make_ae(self.local)
        ae.require_called_aet = True
        ae.require_calling_aet = list(self.local.accepted_callers)
        ae.maximum_associations = self.local.scp_max_associations
        ae.maximum_pdu_size = self.max_pdu
        # Silent for this long: aborted (the association's idle timer, PS3.8 9.1.5 ARTIM-like).
        ae.network_timeout = self.local.scp_idle_timeout
        ae.add_supported_context(contexts.VERIFICATION, list(contexts.UNCOMPRESSED))
        for sop_class in contexts.STORAGE_SOP_CLASSES:
            ae.add_supported_context(sop_class, list(contexts.SCP_TRANSFER_SYNTAXES))
        return ae

    @property
    def max_pdu(self) -> int:
        """The largest PDU we advertise (PS3.8 D.1) and accept: never unbounded."""
        wanted = self.local.max_pdu
        return wanted if 0 < wanted <= MAX_PDU_CEILING else MAX_PDU_CEILING

    @property
    def port(self) -> int:
        if self.server is None:
            return self.local.scp_port
        return int(self.server.server_address[1])

    def start(self) -> ScpHandle:
        """Listen (non-blocking, PEERS.md); raises OSError when the port is taken."""
        with self._lock:
            if self.server is None:
                ctx = tls.server_context(self.local.tls) if self.local.tls.cert else None
                handlers: list[Any] = [
                    (evt.EVT_CONN_OPEN, _on_conn_open),
                    (evt.EVT_C_STORE, handle_store, [self.on_instance, self.folder, self.sync]),
                ]
                ae = self._ae()
                server = ae.make_server(
                    (self.local.bind_address, self.local.scp_port),
                    evt_handlers=handlers,
                    ssl_context=ctx,
                    server_class=_GuardedServer,
                    request_handler=_PromptRequestHandler,
                )
                assert isinstance(server, _GuardedServer)
                artim = float(self.local.timeouts.acse)
                server.configure(
                    _Limits(self.max_pdu, artim, float(self.local.scp_idle_timeout)),
                    self.local.scp_max_associations,
                    self.local.scp_max_per_host,
                    self.folder,
                )
                # What AE.start_server(block=False) does, with our request handler.
                thread = threading.Thread(
                    target=server.serve_forever,
                    args=(0.1,),  # how soon stop() is noticed (socketserver polls)
                    name="lightbox-storage-scp",
                    daemon=True,
                )
                thread.start()
                ae._servers.append(server)
                self.server = server
            return ScpHandle(self.port, True, self.server)

    def stop(self) -> None:
        """Stop listening and close every association at once (within about a second, however
        many peers are stalled on their connections)."""
        with self._lock:
            server, self.server = self.server, None
        if server is not None:
            _shutdown(server)

    def __enter__(self) -> StorageScp:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def scp_answers(local: LocalSettings, host: str = "") -> bool:
    """Does our AE title answer C-ECHO on our port (another Lightbox process's SCP)?"""
    target = host or local.bind_address or "127.0.0.1"
    if target in ("0.0.0.0", "::"):
        target = "127.0.0.1"
    node = Node("self", local.ae_title, target, local.scp_port, tls=local.tls)
    t = local.timeouts
    quick = type(t)(connect=min(t.connect, 2.0), acse=min(t.acse, 3.0), dimse=5.0, network=10.0)
    probe = LocalSettings(ae_title=local.ae_title, scp_port=local.scp_port, timeouts=quick)
    return echo(node, probe).ok


def ensure_scp(
    local: LocalSettings, on_instance: OnInstance, folder: Path | None = None
) -> tuple[ScpHandle, StorageScp | None]:
    """Use the SCP already answering for our AE on our port, else start ours.

    Returns the handle and, when we started it, the :class:`StorageScp` to stop on exit.
    """
    if scp_answers(local):
        return ScpHandle(local.scp_port, False), None
    scp = StorageScp(local, on_instance, folder)
    return scp.start(), scp


def serve_until(
    local: LocalSettings, on_instance: OnInstance, stop: threading.Event, folder: Path | None = None
) -> None:
    """Run the storage SCP until ``stop`` is set (``lightbox listen``: set it on SIGINT/SIGTERM).

    Raises OSError when the port is taken (say so: another SCP, perhaps the GUI's, is there).
    """
    with StorageScp(local, on_instance, folder):
        stop.wait()


# -- the same bounds for the associations we open (SCU: echo, find, move, get, send) --------


def bounded_pdu(wanted: int) -> int:
    """The largest PDU we advertise (PS3.8 D.1) and accept: ``wanted``, or
    :data:`MAX_PDU_CEILING` when that is 0 ("no limit") or more: never unbounded."""
    return wanted if 0 < wanted <= MAX_PDU_CEILING else MAX_PDU_CEILING


class _RequestorSocket(_PromptSocket):
    """The bounded reader of :class:`_PromptSocket` for an association we opened. The socket
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
    deleted once answered (the SCP's reactor does the same, :class:`_PromptAssociation`)."""

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
    limits: _Limits,
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
    dul.__class__ = _PromptDUL
    dul._target = dul.run_reactor  # type: ignore[attr-defined]
    dul.daemon = True  # a DUL thread blocked on a peer never keeps the process alive
    guarded = cast(_PromptDUL, dul)
    guarded._lightbox_limits = limits
    guarded._lightbox_answer_kind = 0x02
    assoc.dimse.__class__ = _RequestorDIMSE
    dimse = cast(_RequestorDIMSE, assoc.dimse)
    dimse._lightbox_spills = _Spills(spill_folder) if spill_folder is not None else None
    sock = _RequestorSocket(assoc, address=address)
    sock.tls_args = tls_args
    return sock


def release_requestor(assoc: Association) -> None:
    """The association is over: a spilled data set nobody took over is deleted."""
    spills = getattr(assoc.dimse, "_lightbox_spills", None)
    if spills is not None:
        spills.close()
