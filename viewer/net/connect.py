"""Open one association to a node with our identity, timeouts, TLS and TCP_NODELAY.

Every SCU operation goes through :func:`open_association`, which either returns an established
association or raises :class:`~viewer.net.diagnose.NetError` with a diagnosis. Close it with
:func:`close_association` in a ``finally``: release (PS3.8 7.2) when it is healthy, abort (7.3)
otherwise, so that a dead peer never keeps a worker waiting.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pynetdicom import AE, _config, evt
from pynetdicom.association import Association
from pynetdicom.pdu_primitives import SCP_SCU_RoleSelectionNegotiation
from pynetdicom.presentation import PresentationContext
from pynetdicom.transport import AddressInformation, AssociationSocket

from viewer import dicom
from viewer.net import contexts, diagnose, guard, tls
from viewer.net.diagnose import NetError
from viewer.net.nodes import LocalSettings, Node

LOG = logging.getLogger(__name__)

# pynetdicom logs every failure at ERROR; our diagnosis says it better. Its identifier logging
# would put patient names in the log: never (house rule: no patient data at default level).
if logging.getLogger("pynetdicom").level == logging.NOTSET:
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
_config.LOG_REQUEST_IDENTIFIERS = False
_config.LOG_RESPONSE_IDENTIFIERS = False


def set_nodelay(sock: Any) -> None:
    """Disable Nagle's algorithm: with it, each DIMSE message waits for the previous ACK
    (about 45 ms per image on loopback, PEERS.md)."""
    raw = getattr(sock, "socket", None)
    if raw is None:
        return
    with contextlib.suppress(OSError):
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _GuardedAE(AE):
    """An AE whose requested associations carry the storage SCP's bounds (issue 9: a PACS is
    a peer too, and untrusted): see :func:`viewer.net.guard.guard_requestor`."""

    def __init__(self, ae_title: str, limits: Any, spill_folder: Path | None) -> None:
        super().__init__(ae_title=ae_title)
        self._lightbox_limits = limits
        self._lightbox_spill_folder = spill_folder

    def _create_socket(
        self,
        assoc: Association,
        address: AddressInformation,
        tls_args: tuple[ssl.SSLContext, str] | None,
    ) -> AssociationSocket:
        return guard.guard_requestor(
            assoc, address, tls_args, self._lightbox_limits, self._lightbox_spill_folder
        )


def _on_conn_open(event: evt.Event) -> None:
    set_nodelay(event.assoc.dul.socket)
    event.assoc._lightbox_connected = time.monotonic()  # type: ignore[attr-defined]


def make_ae(local: LocalSettings, ae: AE | None = None) -> AE:
    """An AE with our title, identity (PS3.7 D.3.3.2) and timeouts."""
    ae = ae if ae is not None else AE(ae_title=local.ae_title)
    ae.implementation_class_uid = dicom.IMPLEMENTATION_CLASS_UID
    ae.implementation_version_name = dicom.IMPLEMENTATION_VERSION_NAME
    t = local.timeouts
    ae.connection_timeout = t.connect
    ae.acse_timeout = t.acse
    ae.dimse_timeout = t.dimse
    ae.network_timeout = t.network
    ae.maximum_pdu_size = local.max_pdu
    return ae


def _probe_tls(node: Node, ctx: ssl.SSLContext, timeout: float) -> BaseException | None:
    try:
        with (
            socket.create_connection((node.host, node.port), timeout=timeout) as raw,
            ctx.wrap_socket(raw, server_hostname=node.host),
        ):
            return None
    except (ssl.SSLError, ssl.CertificateError) as exc:
        return exc
    except OSError:
        return None


def open_association(
    node: Node,
    local: LocalSettings,
    requested: Sequence[PresentationContext],
    *,
    roles: Sequence[SCP_SCU_RoleSelectionNegotiation] = (),
    evt_handlers: Sequence[tuple[Any, ...]] = (),
    spill_folder: Path | None = None,
) -> Association:
    """Associate or raise :class:`NetError` saying why not.

    ``requested`` must hold at most :data:`contexts.MAX_CONTEXTS` contexts (PS3.8 9.3.2.2).

    The PACS is untrusted (issue 9), as a peer of our SCP is: we advertise a bounded maximum
    PDU (:func:`viewer.net.guard.bounded_pdu`) and a longer PDU is an A-ABORT before anything
    near its declared length is read; the A-ASSOCIATE-AC must arrive within
    ``timeouts.acse``, every later PDU within ``timeouts.network`` once it started, the next
    DIMSE message within ``timeouts.dimse``; a command set longer than
    :data:`viewer.net.guard.MAX_COMMAND_SET` is an A-ABORT; a C-STORE data set (C-GET
    sub-operation) longer than :data:`viewer.net.guard.SPILL_AT` goes to a file in
    ``spill_folder`` as it arrives (None: an A-ABORT). Close with :func:`close_association`.
    """
    if len(requested) > contexts.MAX_CONTEXTS:
        raise ValueError(f"{len(requested)} presentation contexts: at most 128 per association")
    t = local.timeouts
    max_pdu = guard.bounded_pdu(local.max_pdu)
    limits = guard.Limits(max_pdu, float(t.acse), float(t.network))
    ae = make_ae(local, _GuardedAE(local.ae_title, limits, spill_folder))
    ae.maximum_pdu_size = max_pdu
    for i, cx in enumerate(requested):
        cx.context_id = 2 * i + 1
    ae.requested_contexts = list(requested)
    tls_args = None
    ctx = None
    if node.tls.enabled:
        ctx = tls.client_context(node.tls)
        tls_args = (ctx, node.host)
    handlers: list[Any] = [(evt.EVT_CONN_OPEN, _on_conn_open), *evt_handlers]
    bind = (local.bind_address, 0) if local.bind_address else None
    try:
        assoc = ae.associate(
            node.host,
            node.port,
            ae_title=node.ae_title,
            max_pdu=max_pdu,
            ext_neg=list(roles) or None,
            bind_address=bind,
            tls_args=tls_args,
            evt_handlers=handlers,
        )
    except (OSError, ValueError) as exc:  # unresolvable host, bad bind address
        probe = diagnose.probe_tcp(node.host, node.port, local.timeouts.connect)
        raise NetError(
            *(probe or (diagnose.FAILED, f"cannot associate with {node}: {exc}"))
        ) from exc
    if assoc.is_established:
        return assoc
    guard.release_requestor(assoc)
    raise _diagnose_failure(assoc, node, local, ctx)


def _diagnose_failure(
    assoc: Association, node: Node, local: LocalSettings, ctx: ssl.SSLContext | None
) -> NetError:
    connected_at: float | None = getattr(assoc, "_lightbox_connected", None)
    connected = connected_at is not None
    answer = assoc.acceptor.primitive
    if not connected:
        if ctx is not None:
            exc = _probe_tls(node, ctx, local.timeouts.connect)
            if exc is not None:
                return NetError(*diagnose.tls_failure(exc))
        probe = diagnose.probe_tcp(node.host, node.port, local.timeouts.connect)
        if probe is not None:
            return NetError(*probe)
        return NetError(diagnose.FAILED, f"could not connect to {node} (the connection failed)")
    if assoc.is_rejected and answer is not None:
        return NetError(*diagnose.rejection(answer, local.ae_title, node.ae_title))
    if answer is not None and answer.result == 0x00 and not assoc.accepted_contexts:
        asked = assoc.requestor.requested_contexts
        offered = sorted({contexts.uid_name(str(cx.abstract_syntax)) for cx in asked})
        return NetError(
            diagnose.NO_CONTEXT,
            f"{node} accepted the association but none of the services we asked for "
            f"({', '.join(offered)}) with our transfer syntaxes: no common presentation context",
        )
    waited = time.monotonic() - connected_at if connected_at is not None else 0.0
    if answer is None and (not assoc.is_aborted or waited >= local.timeouts.acse - 0.05):
        return NetError(
            diagnose.TIMEOUT,
            f"{node} accepted the TCP connection but did not answer the association request "
            f"within {local.timeouts.acse:g} s (ACSE timeout): is it a DICOM service?",
        )
    if answer is None:
        return NetError(
            diagnose.ABORTED,
            f"{node} closed the connection without answering the association request: it may "
            f"not accept our AE title {local.ae_title!r} from this address, or it expects TLS",
        )
    return NetError(diagnose.FAILED, f"the association with {node} failed")


def close_association(assoc: Association, *, abort: bool = False) -> None:
    """Release when healthy (PS3.8 7.2), abort otherwise (7.3); never raises, never hangs
    longer than the ACSE timeout."""
    try:
        if assoc.is_established and not abort:
            assoc.release()
        if assoc.is_established or abort:
            assoc.abort()
    except Exception:  # a dying socket must not turn into a traceback in a worker
        LOG.debug("closing association failed", exc_info=True)
    finally:
        guard.release_requestor(assoc)


class CancelWatch:
    """Cancel a running DIMSE operation from a second thread (PS3.7 9.3.2.3 C-CANCEL).

    When any of ``cancel`` is set: send C-CANCEL for ``msg_id``; if the operation has not ended
    after ``grace`` seconds (the peer may keep answering), abort the association: the hard stop.
    The watching thread ends with the ``with`` block.
    """

    def __init__(
        self,
        assoc: Association,
        cancel: threading.Event | Sequence[threading.Event | None] | None,
        msg_id: int,
        query_model: str,
        grace: float = 3.0,
    ) -> None:
        self.assoc = assoc
        events = cancel if isinstance(cancel, Sequence) else [cancel]
        self.events = [e for e in events if e is not None]
        self.msg_id = msg_id
        self.query_model = query_model
        self.grace = grace
        self.done = threading.Event()
        self.cancelled = False
        self.aborted = False
        self._thread: threading.Thread | None = None

    def __enter__(self) -> CancelWatch:
        if self.events:
            self._thread = threading.Thread(target=self._run, name="net-cancel", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        if self._thread is not None:
            self._thread.join(timeout=self.grace + 5)

    def _run(self) -> None:
        while not any(e.is_set() for e in self.events):
            if self.done.wait(0.02):
                return
        if self.done.is_set():
            return
        self.cancelled = True
        try:
            self.assoc.send_c_cancel(self.msg_id, query_model=self.query_model)
        except Exception:
            LOG.debug("C-CANCEL failed", exc_info=True)
        if not self.done.wait(self.grace):
            self.aborted = True
            self.assoc.abort()
