"""Hand a study over to a node and be sure it took it (issue 13): send, then confirm.

"Sent" is not "kept": a PACS may acknowledge a C-STORE and lose the instance later. After
sending, :func:`confirm` asks the node to take responsibility for what it stored:

- a DIMSE node: Storage Commitment Push Model (:mod:`viewer.net.commit`); the report comes on
  the request's association or on our storage SCP (the one already answering for our AE, the
  GUI's for example, or one started here for the wait);
- a DICOMweb node: there is no commitment service in DICOMweb (PS3.18), so each instance is
  looked up with a QIDO-RS search of its study after the STOW-RS; an instance the node lists is
  "verified", one it does not list is missing.

Per instance the outcome is a receipt state (:mod:`viewer.media.receipt`): committed or
verified, failed (with the node's reason), missing (no report in time, cancelled, not listed)
or not stored (the send itself failed). The attempt is kept in the store
(:func:`viewer.store.index.record_handover`, one record per study sent), and a study is handed
over only when every instance sent is committed or verified. :meth:`HandoverResult.receipt` is
the printable receipt.

Used by ``lightbox send --commit`` and by the GUI's Reconcile and hand over dialog; no Qt here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from viewer.media import receipt as rc
from viewer.net import commit
from viewer.net.nodes import LocalSettings, Node
from viewer.net.scp import OnInstance, ensure_scp
from viewer.net.send import SendResult, send
from viewer.store.index import HELD_STATES, Handover, HandoverInstance, record_handover
from viewer.store.store import Store

LOG = logging.getLogger(__name__)

#: progress(phase, done, total); phase is "sending" or "confirming".
Progress = Callable[[str, int, int], None]


@dataclass(slots=True)
class HandoverResult:
    """What was sent and what the node took: ``states[sop_instance_uid] = (state, reason)``,
    one per instance meant to go (``rows``, in the order sent)."""

    node: str
    sent: SendResult
    rows: list[rc.ReceiptItem] = field(default_factory=list)
    states: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: The Storage Commitment transaction (DIMSE nodes), None when nothing was asked.
    commitment: commit.CommitResult | None = None
    #: How the node's holding was confirmed: "storage commitment" or "QIDO-RS".
    method: str = ""
    #: Words about the confirmation for the person (e.g. a report that cannot reach us).
    notes: list[str] = field(default_factory=list)
    #: Why the hand-over record could not be kept in the store ("" when it was).
    not_kept: str = ""

    @property
    def cancelled(self) -> bool:
        return self.sent.cancelled or bool(self.commitment and self.commitment.cancelled)

    def tally(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for state, _ in self.states.values():
            out[state] = out.get(state, 0) + 1
        return out

    @property
    def confirmed(self) -> int:
        return sum(1 for s, _ in self.states.values() if s in HELD_STATES)

    @property
    def complete(self) -> bool:
        """Every instance meant to go was confirmed held by the node."""
        return bool(self.states) and self.confirmed == len(self.states)

    def problems(self) -> list[tuple[str, str, str]]:
        """(SOP Instance UID, state, reason) of every instance not confirmed."""
        return [(uid, s, r) for uid, (s, r) in self.states.items() if s not in HELD_STATES]

    def summary(self) -> str:
        tally = self.tally()
        good = rc.VERIFIED if self.method == "QIDO-RS" else rc.COMMITTED
        return (
            f"{good}: {tally.get(good, 0)}, failed: {tally.get(rc.FAILED, 0)}, "
            f"missing: {tally.get(rc.MISSING, 0)}, not stored: {tally.get(rc.NOT_STORED, 0)}"
            + (", cancelled" if self.cancelled else "")
        )

    def receipt(self) -> rc.Receipt:
        transaction = self.commitment.transaction_uid if self.commitment else ""
        requested = self.commitment.requested_at if self.commitment else ""
        receipt = rc.handover_receipt(
            self.node,
            self.rows,
            self.states,
            transaction_uid=transaction,
            requested_at=requested,
            cancelled=self.cancelled,
        )
        if self.method:
            receipt.facts.append(("Confirmed by", self.method))
        return receipt


def confirm(
    node: Node,
    local: LocalSettings,
    result: SendResult,
    store: Store | None,
    *,
    on_instance: OnInstance | None = None,
    timeout: float = 60.0,
    cancel: threading.Event | None = None,
) -> HandoverResult:
    """Confirm that ``node`` holds what ``result`` says it stored, keep the attempt in
    ``store`` (when given) and return the per-instance outcome.

    ``on_instance`` receives what arrives on a storage SCP started here to hear a commitment
    report (None: only a report on the request's association, or on an SCP already running for
    our AE, reaches us). Raises :class:`viewer.net.diagnose.NetError` when the node refused the
    commitment request or could not be reached for it.
    """
    cancel = cancel or threading.Event()
    for item in result.instances:  # a file that was no DICOM is named by its path
        item.sop_instance_uid = item.sop_instance_uid or str(item.path)
    out = HandoverResult(str(node), result)
    out.states = {
        i.sop_instance_uid: (rc.NOT_STORED, i.message or "not stored")
        for i in result.instances
        if not i.ok
    }
    # each file's header and SHA-256, read once: for the receipt, the record and the web check
    out.rows = [rc.item_from_file(i.path, i.sop_instance_uid) for i in result.instances]
    stored = result.stored
    if stored and not cancel.is_set():
        if node.is_web:
            _verify_web(node, local, result, out, cancel)
        else:
            _commit(node, local, stored, out, on_instance, timeout, cancel)
    for item in result.instances:
        out.states.setdefault(
            item.sop_instance_uid, (rc.MISSING, "cancelled" if cancel.is_set() else "not asked")
        )
    if store is not None:
        out.not_kept = _keep(store, out, result)
    LOG.info("hand-over to %s: %s", node, out.summary())
    return out


def hand_over(
    node: Node,
    local: LocalSettings,
    paths: Sequence[Path],
    store: Store | None,
    *,
    on_instance: OnInstance | None = None,
    timeout: float = 60.0,
    cancel: threading.Event | None = None,
    progress: Progress | None = None,
) -> HandoverResult:
    """Send ``paths`` to ``node`` (C-STORE, or STOW-RS for a DICOMweb node) and
    :func:`confirm` what it stored."""
    cancel = cancel or threading.Event()

    def sending(done: int, total: int) -> None:
        if progress is not None:
            progress("sending", done, total)

    if node.is_web:
        from viewer.net import dicomweb

        result: SendResult = dicomweb.send(node, local, paths, cancel=cancel, progress=sending)
    else:
        result = send(node, local, paths, cancel=cancel, progress=sending)
    if progress is not None:
        progress("confirming", 0, len(result.stored))
    return confirm(
        node, local, result, store, on_instance=on_instance, timeout=timeout, cancel=cancel
    )


def _commit(
    node: Node,
    local: LocalSettings,
    stored: list[tuple[str, str]],
    out: HandoverResult,
    on_instance: OnInstance | None,
    timeout: float,
    cancel: threading.Event,
) -> None:
    out.method = "storage commitment"
    scp = None
    if on_instance is not None:
        handle, scp = ensure_scp(local, on_instance)
        if scp is None and not _in_process(local):
            out.notes.append(
                f"another process answers as {local.ae_title} on port {handle.port}: a report "
                "the node sends there does not reach this one"
            )
    try:
        outcome = commit.request_commitment(node, local, stored, timeout=timeout, cancel=cancel)
    finally:
        if scp is not None:
            scp.stop()
    out.commitment = outcome
    for item in outcome.items:
        reason = {
            commit.FAILED: item.reason_text,
            commit.MISSING: "cancelled" if outcome.cancelled else "no report in time",
        }.get(item.state, "")
        out.states[item.sop_instance_uid] = (item.state, reason)


def _in_process(local: LocalSettings) -> bool:
    """Is the SCP answering for our AE one of this process's (the GUI's)? Its reports reach
    :data:`viewer.net.commit.PENDING` here."""
    from viewer.net.scp import running_ports

    return local.scp_port in running_ports()


def _verify_web(
    node: Node,
    local: LocalSettings,
    result: SendResult,
    out: HandoverResult,
    cancel: threading.Event,
) -> None:
    """QIDO-RS: which of the stored instances does the node list in their studies?"""
    from viewer.net import dicomweb

    out.method = "QIDO-RS"
    ok = {i.sop_instance_uid for i in result.instances if i.ok}
    wanted: dict[str, set[str]] = {}
    for row in out.rows:
        if row.sop_instance_uid in ok:
            wanted.setdefault(row.study_instance_uid, set()).add(row.sop_instance_uid)
    listed: set[str] = set()
    with dicomweb.Client(node, local, cancel) as client:
        for study, uids in wanted.items():
            if cancel.is_set():
                break
            listed |= {sop for _, sop in dicomweb.list_instances(client, study, None)} & uids
    for uids in wanted.values():
        for uid in uids:
            out.states[uid] = (
                (rc.VERIFIED, "")
                if uid in listed
                else (rc.MISSING, "cancelled" if cancel.is_set() else "not listed by the node")
            )


def _keep(store: Store, out: HandoverResult, result: SendResult) -> str:
    """One hand-over record per study sent; the error's words when the store would not keep it
    (read-only, say: the hand-over itself happened)."""
    classes = {i.sop_instance_uid: i.sop_class_uid for i in result.instances}
    by_study: dict[str, list[rc.ReceiptItem]] = {}
    for row in out.rows:
        by_study.setdefault(row.study_instance_uid, []).append(row)
    c = out.commitment
    try:
        for study_uid, rows in by_study.items():
            record_handover(
                store,
                Handover(
                    study_uid,
                    out.node,
                    c.transaction_uid if c else "",
                    c.requested_at if c else "",
                    c.reported_at if c else "",
                    [
                        HandoverInstance(
                            r.sop_instance_uid,
                            classes.get(r.sop_instance_uid, ""),
                            *out.states.get(r.sop_instance_uid, (rc.MISSING, "")),
                        )
                        for r in rows
                    ],
                ),
            )
    except Exception as exc:
        LOG.warning("the hand-over could not be kept in the local store: %s", exc)
        return str(exc)
    return ""
