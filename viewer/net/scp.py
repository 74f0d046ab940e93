"""The application-wide storage SCP (Storage Service Class as SCP, PS3.4 B.2.2) and C-ECHO SCP.

One per port and per machine: :func:`ensure_scp` first asks whether our AE already answers
C-ECHO on our port (the GUI's SCP, say) and only starts its own when nobody does, so that
``lightbox get --method move`` run beside the GUI receives through the GUI's SCP.

Every received instance is written once as a DICOM file (PS3.10: preamble, ``DICM``, File Meta
Information, then the data set exactly as received) into a spool folder and handed to
``on_instance(path, calling_ae) -> status``. The network layer knows nothing of the store: the
application connects that callback to the store's atomic import. The callback owns the file
(moves it away); whatever is left is deleted. The returned status goes back to the sender as the
C-STORE response status (PS3.4 B.2.3: 0x0000 success, 0xA7xx out of resources, 0xCxxx cannot
understand).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
import select
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import A_ABORT_RQ
from pynetdicom.transport import AssociationSocket, RequestHandler, ThreadedAssociationServer

from viewer.config import app_home
from viewer.net import contexts, fastpath, tls
from viewer.net.connect import make_ae, set_nodelay
from viewer.net.echo import echo
from viewer.net.nodes import LocalSettings, Node

LOG = logging.getLogger(__name__)

#: ``on_instance(path_of_a_part10_file, calling_ae_title) -> C-STORE status``.
OnInstance = Callable[[Path, str], int]

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
            _meta_element(0x0012, b"UI", contexts.IMPLEMENTATION_CLASS_UID.encode("ascii")),
            _meta_element(0x0013, b"SH", contexts.IMPLEMENTATION_VERSION_NAME.encode("ascii")),
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


def handle_store(event: Any, on_instance: OnInstance, folder: Path, sync: bool = False) -> int:
    """EVT_C_STORE: validate, spool, hand over; never raises into pynetdicom."""
    sop_instance = str(event.request.AffectedSOPInstanceUID or "")
    if not valid_uid(sop_instance) or not valid_uid(str(event.request.AffectedSOPClassUID or "")):
        LOG.warning(
            "refused an instance with an invalid UID from %s", event.assoc.remote["ae_title"]
        )
        return STATUS_CANNOT_UNDERSTAND
    caller = str(event.assoc.remote["ae_title"]).strip()
    try:
        path = write_received(event, folder, caller, sync=sync)
    except OSError:
        LOG.exception("cannot write a received instance to %s", folder)
        return STATUS_OUT_OF_RESOURCES
    try:
        return int(on_instance(path, caller))
    except Exception:
        LOG.exception("the import of a received instance failed")
        return STATUS_PROCESSING_FAILURE
    finally:
        path.unlink(missing_ok=True)


def _on_conn_open(event: Any) -> None:
    set_nodelay(event.assoc.dul.socket)


class _PromptSocket(AssociationSocket):
    """Reads a PDU with ``recv_into`` a buffer of its size instead of 4 KiB ``recv`` calls
    (a 256 KiB P-DATA PDU took 64 calls and as many copies)."""

    def recv(self, nr_bytes: int) -> bytearray:
        sock = self.socket
        assert sock is not None
        buf = bytearray(nr_bytes)
        view = memoryview(buf)
        got = 0
        while got < nr_bytes:
            n = sock.recv_into(view[got:], nr_bytes - got)
            if not n:  # connection closed: return what we have, as pynetdicom does
                del view
                return buf[:got]
            got += n
        return buf


class _PromptAssociation(Association):
    """pynetdicom's acceptor reactor polls its DIMSE queue every millisecond (``time.sleep``);
    this one waits on the queue, so a C-STORE is served as soon as it is decoded. The release,
    abort, DUL-alive and network-timeout checks are pynetdicom's (``_run_reactor``)."""

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
                self._serve_request(msg, cast(int, context_id))
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
                LOG.info("network timeout: aborting the association")
                self.abort()
                self.kill()
                return


class _PromptDIMSE(DIMSEServiceProvider):
    """Answers a C-STORE straight on the socket from the association's thread
    (:func:`viewer.net.fastpath.send_store_response`); anything else goes pynetdicom's way."""

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
    that ``select`` cannot see) keep the plain sleep."""

    def _idle(self) -> None:
        sock = getattr(self.socket, "socket", None)
        if sock is None or not fastpath.usable(self.assoc):
            time.sleep(self._run_loop_delay)
            return
        # Closed meanwhile: the loop's own check reports it.
        with contextlib.suppress(OSError, ValueError):
            select.select([sock], [], [], self._run_loop_delay)

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
            except Exception:
                LOG.exception("DUL error: aborting the association")
                abort_pdu = A_ABORT_RQ()
                abort_pdu.source = 0x02
                abort_pdu.reason_diagnostic = 0x00
                if self.socket is not None:
                    self.socket.send(abort_pdu.encode())
                self.assoc.is_aborted = True
                self.assoc.is_established = False
                self.assoc._kill = True
                self._kill_thread = True
                return
            try:
                event = self.event_queue.get(block=False)
            except queue.Empty:
                sleep = True
                continue
            self.state_machine.do_action(event)
            sleep = False


class _PromptRequestHandler(RequestHandler):
    def _create_association(self) -> Association:
        assoc = super()._create_association()
        assoc.__class__ = _PromptAssociation
        assoc.dul.__class__ = _PromptDUL
        # Thread.__init__ bound pynetdicom's loop as the target; the thread is not started yet.
        assoc.dul._target = assoc.dul.run_reactor  # type: ignore[attr-defined]
        assoc.dimse.__class__ = _PromptDIMSE
        assoc.dul.socket.__class__ = _PromptSocket
        # The DUL loop's longest idle wait (pynetdicom's own knob, `_run_loop_delay`): how soon
        # it sends what pynetdicom queued (C-ECHO answers, release).
        assoc.dul._run_loop_delay = 0.0005
        return assoc


@dataclass
class ScpHandle:
    """A running storage SCP: ours (``owned``) or another process's answering our AE title."""

    port: int
    owned: bool
    server: ThreadedAssociationServer | None = None

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
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
        ae.maximum_associations = 32
        ae.add_supported_context(contexts.VERIFICATION, list(contexts.UNCOMPRESSED))
        for sop_class in contexts.STORAGE_SOP_CLASSES:
            ae.add_supported_context(sop_class, list(contexts.SCP_TRANSFER_SYNTAXES))
        return ae

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
                    server_class=ThreadedAssociationServer,
                    request_handler=_PromptRequestHandler,
                )
                # What AE.start_server(block=False) does, with our request handler.
                thread = threading.Thread(
                    target=server.serve_forever, name="lightbox-storage-scp", daemon=True
                )
                thread.start()
                ae._servers.append(server)
                self.server = server
            return ScpHandle(self.port, True, self.server)

    def stop(self) -> None:
        with self._lock:
            if self.server is not None:
                self.server.shutdown()
                self.server = None

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
