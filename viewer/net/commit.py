"""Storage Commitment Push Model as SCU (PS3.4 Annex J): ask a node to take responsibility for
instances we sent, and hear its answer.

The request is an N-ACTION (Action Type ID 1, PS3.4 J.3.2) on the well-known SOP Instance
1.2.840.10008.1.20.1.1 with a new Transaction UID and the Referenced SOP Sequence (class and
instance UID of each instance). The answer is an N-EVENT-REPORT (J.3.3: Event Type ID 1, all
committed; 2, failures, with the Failed SOP Sequence and a Failure Reason per instance), which
the node sends either on the same association, while it is open (we propose the SCP role for
it, PS3.7 D.3.3.4), or on a new association to our AE, i.e. our storage SCP
(:mod:`viewer.net.scp` hands such reports to :data:`PENDING`).

:data:`PENDING` is a thread-safe registry of the transactions waiting for their report, keyed
by Transaction UID; a report is taken only from the node the request went to (its AE title and
address), and a report for a transaction we do not know is answered with success (the node has
nothing to retry) and logged. A report is read only as far as the request went: one listing
more instances than the transaction asked about is refused (Invalid Argument, logged) and
leaves them missing, and the instances it names that the request did not are dropped (logged),
never counted as committed. :func:`request_commitment` waits for the report until a deadline
and returns, per instance, committed, failed (with the reason) or missing (no answer in time).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import generate_uid
from pynetdicom import evt
from pynetdicom.presentation import build_context, build_role

from viewer.net import contexts, diagnose
from viewer.net.connect import close_association, open_association
from viewer.net.diagnose import NetError
from viewer.net.guard import peer_name, peer_text
from viewer.net.nodes import LocalSettings, Node

LOG = logging.getLogger(__name__)

#: PS3.4 J.3: the Storage Commitment Push Model SOP Class and its well-known SOP Instance.
STORAGE_COMMITMENT = contexts.StorageCommitmentPushModel
STORAGE_COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"
#: PS3.4 J.3.2.1: Request Storage Commitment.
ACTION_REQUEST = 1
#: PS3.4 J.3.3.1: Storage Commitment Request Successful / Complete - Failures Exist.
EVENT_ALL_COMMITTED = 1
EVENT_FAILURES = 2

COMMITTED = "committed"
FAILED = "failed"
MISSING = "missing"

#: PS3.4 Table J.3-2 (Failure Reason) and the N-EVENT-REPORT statuses we answer.
FAILURE_REASONS = {
    0x0110: "processing failure",
    0x0112: "no such object instance",
    0x0119: "class-instance conflict",
    0x0122: "referenced SOP Class not supported",
    0x0131: "duplicate transaction UID",
    0x0213: "resource limitation",
}
STATUS_SUCCESS = 0x0000
STATUS_PROCESSING_FAILURE = 0x0110
STATUS_NO_SUCH_EVENT_TYPE = 0x0113
STATUS_INVALID_ARGUMENT = 0x0115
STATUS_NO_SUCH_INSTANCE = 0x0112
#: N-ACTION statuses that are not failures (PS3.7 Table 10.1-4: success and the warnings).
N_ACTION_OK = frozenset({0x0000, 0x0001, 0x0107, 0x0116})
#: No more instances per request than this (a report is held in memory; so is the request).
MAX_INSTANCES = 100_000


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def reason_text(reason: int | None) -> str:
    if reason is None:
        return ""
    return f"0x{reason:04X} {FAILURE_REASONS.get(reason, 'failure')}"


@dataclass(slots=True)
class CommitItem:
    """One instance of a request: ``state`` is :data:`COMMITTED`, :data:`FAILED` (``reason``:
    the Failure Reason, PS3.4 J.3.3) or :data:`MISSING` (no answer about it by the deadline)."""

    sop_class_uid: str
    sop_instance_uid: str
    state: str = MISSING
    reason: int | None = None

    @property
    def reason_text(self) -> str:
        return reason_text(self.reason)


@dataclass(slots=True)
class CommitReport:
    """An N-EVENT-REPORT as received: who sent it and what it lists (UIDs only)."""

    transaction_uid: str
    event_type: int
    calling_ae: str
    address: str
    committed: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str, int]] = field(default_factory=list)
    #: "association" (on the request's association) or "scp" (on our storage SCP).
    via: str = ""


@dataclass(slots=True)
class CommitResult:
    node: str
    transaction_uid: str
    requested_at: str
    items: list[CommitItem] = field(default_factory=list)
    cancelled: bool = False
    #: How the report came: "association", "scp", or "" (none by the deadline).
    reported_via: str = ""
    reported_at: str = ""

    def _of(self, state: str) -> list[CommitItem]:
        return [i for i in self.items if i.state == state]

    @property
    def committed(self) -> list[CommitItem]:
        return self._of(COMMITTED)

    @property
    def failed(self) -> list[CommitItem]:
        return self._of(FAILED)

    @property
    def missing(self) -> list[CommitItem]:
        return self._of(MISSING)

    @property
    def ok(self) -> bool:
        """Every instance committed (and there was at least one)."""
        return bool(self.items) and all(i.state == COMMITTED for i in self.items)

    def apply(self, report: CommitReport) -> None:
        """Set each item's state from ``report``; instances it does not list stay missing, and
        what it lists that is not one of ours changes nothing."""
        committed = {inst: cls for cls, inst in report.committed}
        failed = {inst: (cls, reason) for cls, inst, reason in report.failed}
        for item in self.items:
            if item.sop_instance_uid in failed:
                item.state, item.reason = FAILED, failed[item.sop_instance_uid][1]
            elif item.sop_instance_uid in committed:
                if committed[item.sop_instance_uid] not in ("", item.sop_class_uid):
                    item.state, item.reason = FAILED, 0x0119
                else:
                    item.state, item.reason = COMMITTED, None
        self.reported_via = report.via
        self.reported_at = _now()


# -- the registry of pending transactions ------------------------------------------------------


def _addresses(host: str) -> set[str]:
    """The IP addresses of ``host`` (empty when it does not resolve: then only the AE title
    identifies the node)."""
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except (OSError, UnicodeError):
        return set()


class _Pending:
    def __init__(self, transaction_uid: str, node: Node, requested: Iterable[str]) -> None:
        self.transaction_uid = transaction_uid
        #: The SOP Instance UIDs the request named: all a report may speak of.
        self.requested = frozenset(requested)
        self.ae_title = node.ae_title.strip()
        self.addresses = _addresses(node.host)
        self.node = str(node)
        self.report: CommitReport | None = None
        self.arrived = threading.Event()


class PendingCommitments:
    """Transactions waiting for their N-EVENT-REPORT, keyed by Transaction UID; thread-safe
    (reports arrive on the SCP's association threads, requests wait in workers)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}

    def expect(self, transaction_uid: str, node: Node, requested: Iterable[str]) -> _Pending:
        """Wait for ``transaction_uid``'s report from ``node`` about the SOP Instance UIDs
        ``requested``."""
        pending = _Pending(transaction_uid, node, requested)
        with self._lock:
            self._pending[transaction_uid] = pending
        return pending

    def forget(self, transaction_uid: str) -> None:
        with self._lock:
            self._pending.pop(transaction_uid, None)

    def __contains__(self, transaction_uid: object) -> bool:
        with self._lock:
            return transaction_uid in self._pending

    def limit(self, transaction_uid: str) -> int:
        """How many instances a report for ``transaction_uid`` may list: as many as its
        request named (:data:`MAX_INSTANCES` for a transaction we are not waiting for, whose
        report is only logged)."""
        with self._lock:
            pending = self._pending.get(transaction_uid)
        return MAX_INSTANCES if pending is None else len(pending.requested)

    def deliver(self, report: CommitReport) -> bool:
        """Hand ``report`` to its waiting transaction; False (and one log line) when there is
        none, or when it came from another node than the request went to."""
        with self._lock:
            pending = self._pending.get(report.transaction_uid)
        who = f"{peer_text(report.calling_ae)}@{peer_text(report.address)}"
        if pending is None:
            LOG.warning(
                "%s: a storage commitment report for transaction %s, which we are not "
                "waiting for: ignored",
                who,
                peer_text(report.transaction_uid),
            )
            return False
        if report.calling_ae.strip() != pending.ae_title or (
            report.via != "association"
            and pending.addresses
            and report.address not in pending.addresses
        ):
            LOG.warning(
                "%s: a storage commitment report for transaction %s, which was requested "
                "from %s: ignored",
                who,
                peer_text(report.transaction_uid),
                peer_text(pending.node),
            )
            return False
        _drop_unrequested(report, pending.requested, who)
        with self._lock:
            if pending.report is not None:
                return True  # a second report for the same transaction: the first stands
            pending.report = report
        pending.arrived.set()
        return True


def _drop_unrequested(report: CommitReport, requested: frozenset[str], who: str) -> None:
    """Keep in ``report`` only the instances the request named (one log line for the rest)."""
    committed = [pair for pair in report.committed if pair[1] in requested]
    failed = [row for row in report.failed if row[1] in requested]
    dropped = len(report.committed) - len(committed) + len(report.failed) - len(failed)
    if dropped:
        LOG.warning(
            "%s: the storage commitment report for transaction %s names %d instance(s) the "
            "request did not: ignored",
            who,
            peer_text(report.transaction_uid),
            dropped,
        )
        report.committed, report.failed = committed, failed


#: The application's registry: :class:`viewer.net.scp.StorageScp` delivers reports here.
PENDING = PendingCommitments()


# -- reading and answering an N-EVENT-REPORT ---------------------------------------------------


def _uid(value: Any) -> str:
    text = str(value or "").strip().rstrip("\0")
    return text if 0 < len(text) <= 64 else ""


def parse_report(
    info: Dataset,
    event_type: int,
    calling_ae: str,
    address: str,
    *,
    limit: int = MAX_INSTANCES,
) -> CommitReport:
    """The Event Information of a Storage Commitment N-EVENT-REPORT (PS3.4 Table J.3-2).

    Raises ValueError when it has no Transaction UID or its Referenced SOP Sequence and Failed
    SOP Sequence together list more than ``limit`` items (the request named no more; the
    SCP's data-set limit alone would let through millions)."""
    transaction = _uid(info.get("TransactionUID", ""))
    if not transaction:
        raise ValueError("no Transaction UID")
    report = CommitReport(transaction, event_type, calling_ae, address)
    committed = info.get("ReferencedSOPSequence") or []
    failed = info.get("FailedSOPSequence") or []
    listed = len(committed) + len(failed)
    if listed > min(limit, MAX_INSTANCES):
        raise ValueError(
            f"it lists {listed} instances, more than the {min(limit, MAX_INSTANCES)} "
            "the request named"
        )
    for item in committed:
        inst = _uid(item.get("ReferencedSOPInstanceUID", ""))
        if inst:
            report.committed.append((_uid(item.get("ReferencedSOPClassUID", "")), inst))
    for item in failed:
        inst = _uid(item.get("ReferencedSOPInstanceUID", ""))
        if inst:
            reason = item.get("FailureReason", STATUS_PROCESSING_FAILURE)
            try:
                code = int(reason)
            except (TypeError, ValueError):
                code = STATUS_PROCESSING_FAILURE
            report.failed.append((_uid(item.get("ReferencedSOPClassUID", "")), inst, code))
    return report


def handle_report(
    event: Any, registry: PendingCommitments | None = None, via: str = "scp"
) -> tuple[int, Dataset | None]:
    """EVT_N_EVENT_REPORT for Storage Commitment (our SCP, or the request's association):
    hand the report to ``registry`` (default :data:`PENDING`); never raises into pynetdicom.
    A report for a transaction we are not waiting for is answered with success and logged."""
    registry = PENDING if registry is None else registry
    assoc = event.assoc
    req = event.request
    peer = peer_name(assoc)
    if str(req.AffectedSOPClassUID or "") != STORAGE_COMMITMENT:
        LOG.warning("%s: an N-EVENT-REPORT for another SOP class: refused", peer)
        return 0x0118, None  # no such SOP class
    if str(req.AffectedSOPInstanceUID or "") != STORAGE_COMMITMENT_INSTANCE:
        LOG.warning("%s: a storage commitment report for another SOP instance: refused", peer)
        return STATUS_NO_SUCH_INSTANCE, None
    event_type = int(req.EventTypeID or 0)
    if event_type not in (EVENT_ALL_COMMITTED, EVENT_FAILURES):
        LOG.warning("%s: a storage commitment report of event type %d: refused", peer, event_type)
        return STATUS_NO_SUCH_EVENT_TYPE, None
    try:
        info = event.event_information
        if assoc.is_requestor:
            calling, address = str(assoc.acceptor.ae_title), str(assoc.acceptor.address)
        else:
            calling, address = str(assoc.requestor.ae_title), str(assoc.requestor.address)
        limit = registry.limit(_uid(info.get("TransactionUID", "")))
        report = parse_report(info, event_type, calling.strip(), address, limit=limit)
    except Exception as exc:
        LOG.warning(
            "%s: a storage commitment report that cannot be read (%s): refused",
            peer,
            peer_text(str(exc))[:200],
        )
        LOG.debug("storage commitment report", exc_info=True)
        return STATUS_INVALID_ARGUMENT, None
    report.via = via
    LOG.info(
        "%s: storage commitment report for transaction %s: %d committed, %d failed",
        peer,
        report.transaction_uid,
        len(report.committed),
        len(report.failed),
    )
    registry.deliver(report)
    return STATUS_SUCCESS, None


# -- the request -------------------------------------------------------------------------------


def action_information(transaction_uid: str, items: Iterable[CommitItem]) -> Dataset:
    """PS3.4 Table J.3-1: Transaction UID and the Referenced SOP Sequence."""
    ds = Dataset()
    ds.TransactionUID = transaction_uid
    refs = []
    for item in items:
        ref = Dataset()
        ref.ReferencedSOPClassUID = item.sop_class_uid
        ref.ReferencedSOPInstanceUID = item.sop_instance_uid
        refs.append(ref)
    ds.ReferencedSOPSequence = DicomSequence(refs)
    return ds


def request_commitment(
    node: Node,
    local: LocalSettings,
    instances: Sequence[tuple[str, str]],
    *,
    timeout: float = 60.0,
    cancel: threading.Event | None = None,
    registry: PendingCommitments | None = None,
    same_association_wait: float = 5.0,
) -> CommitResult:
    """Ask ``node`` to commit ``instances`` ((SOP Class UID, SOP Instance UID) pairs) and wait
    for its report until ``timeout`` seconds from now.

    The report is taken on the request's association for at most ``same_association_wait``
    seconds (then we release it, PS3.4 J.3.3.1: the node sends it on a new association) and on
    our storage SCP, which must be running for that (:func:`viewer.net.scp.ensure_scp`) and
    deliver to the same ``registry`` (default :data:`PENDING`). ``cancel`` stops the wait
    (``cancelled`` in the result; the instances not reported stay missing).

    Raises :class:`NetError` when no association could be opened, the node does not take
    storage commitment, or it refused the request (an N-ACTION failure status or no answer).
    """
    registry = PENDING if registry is None else registry
    if len(instances) > MAX_INSTANCES:
        raise ValueError(f"{len(instances)} instances: at most {MAX_INSTANCES} per request")
    deadline = time.monotonic() + max(0.0, timeout)
    transaction = generate_uid()
    result = CommitResult(str(node), transaction, _now(), [CommitItem(c, i) for c, i in instances])
    if not result.items:
        return result
    pending = registry.expect(transaction, node, (i.sop_instance_uid for i in result.items))
    try:
        _send_request(
            node, local, result, pending, registry, deadline, cancel, same_association_wait
        )
        while pending.report is None and time.monotonic() < deadline:
            if cancel is not None and cancel.is_set():
                result.cancelled = True
                break
            pending.arrived.wait(min(0.1, max(0.0, deadline - time.monotonic())))
        if pending.report is not None:
            result.apply(pending.report)
    finally:
        registry.forget(transaction)
    return result


def _send_request(
    node: Node,
    local: LocalSettings,
    result: CommitResult,
    pending: _Pending,
    registry: PendingCommitments,
    deadline: float,
    cancel: threading.Event | None,
    same_association_wait: float,
) -> None:
    """N-ACTION on a new association; keep it open a short while for a report on it."""
    requested = [build_context(STORAGE_COMMITMENT, list(contexts.UNCOMPRESSED))]
    roles = [build_role(STORAGE_COMMITMENT, scu_role=True, scp_role=True)]
    handlers = [(evt.EVT_N_EVENT_REPORT, handle_report, [registry, "association"])]
    assoc = open_association(node, local, requested, roles=roles, evt_handlers=handlers)
    healthy = False
    try:
        if not any(str(cx.abstract_syntax) == STORAGE_COMMITMENT for cx in assoc.accepted_contexts):
            raise NetError(
                diagnose.NO_CONTEXT, f"{node} does not accept Storage Commitment Push Model"
            )
        info = action_information(result.transaction_uid, result.items)
        try:
            status, _reply = assoc.send_n_action(
                info, ACTION_REQUEST, STORAGE_COMMITMENT, STORAGE_COMMITMENT_INSTANCE
            )
        except (RuntimeError, AttributeError, ValueError) as exc:
            raise NetError(
                diagnose.FAILED, f"{node}: the storage commitment request failed ({exc})"
            ) from exc
        code = getattr(status, "Status", None)
        if code is None:
            raise NetError(
                diagnose.TIMEOUT,
                f"{node} did not answer the storage commitment request (connection lost or "
                "DIMSE timeout)",
            )
        if int(code) not in N_ACTION_OK:
            comment = peer_text(str(status.get("ErrorComment", "") or "")).strip()
            raise NetError(
                diagnose.REJECTED,
                f"{node} refused the storage commitment request: status 0x{int(code):04X}"
                + (f" {comment}" if comment else ""),
            )
        LOG.info(
            "%s: storage commitment of %d instance(s) requested, transaction %s",
            peer_name(assoc),
            len(result.items),
            result.transaction_uid,
        )
        wait_until = min(deadline, time.monotonic() + max(0.0, same_association_wait))
        while (
            pending.report is None
            and assoc.is_established
            and time.monotonic() < wait_until
            and not (cancel is not None and cancel.is_set())
        ):
            pending.arrived.wait(0.05)
        healthy = True
    finally:
        with contextlib.suppress(Exception):
            close_association(assoc, abort=not healthy)
