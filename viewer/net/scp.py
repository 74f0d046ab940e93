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

The SCP also takes Storage Commitment reports (N-EVENT-REPORT, PS3.4 J.3.3) from a node we
asked to commit instances, on an association that node opens in the SCP role: they go to the
registry of pending transactions (:data:`viewer.net.commit.PENDING`), only from the node the
request went to; a report for a transaction nobody waits for is answered with success and
logged.

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

The bounded reading itself (PDU sizes, deadlines, spilled data sets) is :mod:`viewer.net.guard`,
shared with the associations we open. pynetdicom's server loops are copied here (the server's
``get_request`` and ``process_request_thread``), its association loops in
:mod:`viewer.net.guard`: pyproject.toml pins pynetdicom to the 3.0 series they were read from,
and tests/net/test_hostile_peer.py checks the pin and the source of those methods.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.transport import RequestHandler, ThreadedAssociationServer

from viewer.net import commit, contexts, fastpath, tls
from viewer.net.connect import make_ae, set_nodelay
from viewer.net.echo import echo
from viewer.net.guard import (
    MAX_PDU_CEILING,
    MAX_REQUEST_PDU,
    REJECT_LIMIT,
    Limits,
    PromptAssociation,
    PromptDIMSE,
    PromptDUL,
    PromptSocket,
    Spill,
    Spills,
    file_meta_bytes,
    peer_name,
    peer_text,
    spool_dir,
)
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
    if isinstance(spill, Spill):
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
        LOG.error("%s: the import of a received instance failed: %s", peer, peer_text(str(exc)))
        LOG.debug("on_instance failed", exc_info=True)
        return _answer(STATUS_PROCESSING_FAILURE, "the import of the instance failed")
    finally:
        path.unlink(missing_ok=True)
    return _answer(status, comment)


def _on_conn_open(event: Any) -> None:
    set_nodelay(event.assoc.dul.socket)


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
        assoc.__class__ = PromptAssociation
        # Thread.__init__ bound pynetdicom's loops as the targets; the threads are not started.
        assoc._target = assoc.run_reactor  # type: ignore[attr-defined]
        assoc.dul.__class__ = PromptDUL
        assoc.dul._target = assoc.dul.run_reactor  # type: ignore[attr-defined]
        # A DUL thread blocked on a peer must never keep the process from exiting.
        assoc.dul.daemon = True
        assoc.dimse.__class__ = PromptDIMSE
        cast(PromptDIMSE, assoc.dimse)._lightbox_spills = Spills(self.server.spill_folder)
        sock = assoc.dul.socket
        assert sock is not None
        sock.__class__ = PromptSocket
        limits = self.server.limits
        cast(PromptDUL, assoc.dul)._lightbox_limits = limits
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
    limits = Limits(DEFAULT_MAX_PDU, 30.0, 60.0)
    max_total = 32
    max_per_host = 8
    #: Where C-STORE data sets longer than SPILL_AT are written as they arrive (the folder
    #: the store's receiver takes files from; None: :func:`spool_dir`).
    spill_folder: Path | None = None

    def configure(
        self, limits: Limits, max_total: int, max_per_host: int, spill_folder: Path | None = None
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
            peer_text(host),
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
                    request.sendall(REJECT_LIMIT)
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
            LOG.warning("%s: connection failed: %s", peer_text(host), peer_text(str(exc))[:200])
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
        cast(PromptAssociation, assoc)._lightbox_release = lambda: self._release(host, assoc)
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
        cast(PromptAssociation, assoc)._lightbox_closing = True
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

    def __init__(
        self,
        local: LocalSettings,
        on_instance: OnInstance,
        folder: Path | None = None,
        commitments: commit.PendingCommitments | None = None,
    ):
        self.local = local
        #: Where storage commitment reports go (default: the application's
        #: :data:`viewer.net.commit.PENDING`, where :func:`~viewer.net.commit.request_commitment`
        #: waits).
        self.commitments = commitments if commitments is not None else commit.PENDING
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
        # Storage commitment reports (PS3.4 J.3.3) from a node we asked, on an association it
        # opens: it proposes the SCP role, we take the report as the SCU (viewer.net.commit).
        ae.add_supported_context(
            contexts.StorageCommitmentPushModel,
            list(contexts.UNCOMPRESSED),
            scu_role=False,
            scp_role=True,
        )
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
                    (evt.EVT_N_EVENT_REPORT, commit.handle_report, [self.commitments, "scp"]),
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
                    Limits(self.max_pdu, artim, float(self.local.scp_idle_timeout)),
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
                _RUNNING.add(self.port)
            return ScpHandle(self.port, True, self.server)

    def stop(self) -> None:
        """Stop listening and close every association at once (within about a second, however
        many peers are stalled on their connections)."""
        with self._lock:
            server, self.server = self.server, None
        if server is not None:
            _RUNNING.discard(int(server.server_address[1]))
            _shutdown(server)

    def __enter__(self) -> StorageScp:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


#: The ports this process's storage SCPs listen on: a commitment report reaching one of them
#: reaches this process's :data:`viewer.net.commit.PENDING`.
_RUNNING: set[int] = set()


def running_ports() -> frozenset[int]:
    """The ports of the storage SCPs running in this process."""
    return frozenset(_RUNNING)


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

    Returns the handle and, when we started it, the :class:`StorageScp` to stop on exit. This
    process's own SCP on the port is used without asking it over the network first.
    """
    if local.scp_port in running_ports() or scp_answers(local):
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
