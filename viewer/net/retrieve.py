"""Retrieve a study or series by C-MOVE into our storage SCP or by C-GET (PS3.4 C.4.2, C.4.3).

Before retrieving, the instances are listed with C-FIND at image level, so that what is already
present (``is_present(sop_instance_uid)``) is skipped and an interrupted retrieve resumes where
it stopped: a series still wholly missing is retrieved at SERIES level, a partly present one at
IMAGE level with the list of missing SOP Instance UIDs (PS3.4 C.4.2.2.1 'list of UIDs').

Progress comes from the Number of Remaining/Completed/Failed/Warning Sub-operations of the
pending responses (PS3.4 C.4.2.1.4). Cancel sends C-CANCEL, then aborts after a grace period;
every instance received before that was already handed to ``on_instance`` (the store's atomic
import), so nothing half-written is left behind.

C-GET needs no inbound port: the storage SOP classes are proposed with the SCP role (PS3.7
D.3.3.4) and the C-STORE sub-operations arrive on the same association. At most 128 presentation
contexts fit one association (PS3.8 9.3.2.2), so when the study's classes are known the series
are split over as many associations as needed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext, build_context, build_role

from viewer.net import contexts, diagnose
from viewer.net.common import IsPresent as IsPresent
from viewer.net.common import RetrieveProgress as RetrieveProgress
from viewer.net.common import RetrieveResult as RetrieveResult
from viewer.net.connect import CancelWatch, close_association, open_association
from viewer.net.diagnose import NetError
from viewer.net.find import MAX_MATCHES, FindQuery, _next_msg_id, _pick_model, _text, run_find
from viewer.net.guard import spool_dir
from viewer.net.nodes import LocalSettings, Node
from viewer.net.scp import OnInstance, StoreResult, ensure_scp, handle_store

UID_BATCH = 200


Progress = Callable[[RetrieveProgress], None]


@dataclass(slots=True)
class _Series:
    series_instance_uid: str
    missing: list[str]
    present: int
    sop_classes: set[str]
    #: False: the peer listed more instances than a query keeps (find.MAX_MATCHES): the
    #: series is retrieved whole, at SERIES level, as if nothing of it were present.
    complete: bool = True


def list_instances(
    assoc: Association, study_uid: str, series_uid: str | None, cancel: threading.Event | None
) -> list[_Series] | None:
    """Image-level C-FIND per series; ``None`` when the peer offers no C-FIND."""
    try:
        model = _pick_model(assoc, contexts.FIND_MODELS)
    except NetError:
        return None
    if series_uid:
        series_uids = [series_uid]
    else:
        found, _ = run_find(
            assoc,
            model,
            FindQuery("SERIES", study_instance_uid=study_uid).identifier(),
            cancel=cancel,
        )
        series_uids = [s["SeriesInstanceUID"] for s in found if s.get("SeriesInstanceUID")]
    out: list[_Series] = []
    for uid in series_uids:
        query = FindQuery("IMAGE", study_instance_uid=study_uid, series_instance_uid=uid)
        found, cancelled = run_find(assoc, model, query.identifier(), cancel=cancel)
        if cancelled:
            return out
        sops = [f["SOPInstanceUID"] for f in found if f.get("SOPInstanceUID")]
        classes = {f["SOPClassUID"] for f in found if f.get("SOPClassUID")}
        complete = len(found) < MAX_MATCHES
        out.append(_Series(uid, sops, 0, classes if complete else set(), complete))
    return out


def _requests(
    study_uid: str, series_uid: str | None, plan: list[_Series] | None
) -> Iterator[tuple[Dataset, set[str]]]:
    """Identifiers to retrieve, each with the SOP classes it brings (empty: unknown)."""
    if plan is None:
        ds = Dataset()
        ds.QueryRetrieveLevel = "SERIES" if series_uid else "STUDY"
        ds.StudyInstanceUID = study_uid
        if series_uid:
            ds.SeriesInstanceUID = series_uid
        yield ds, set()
        return
    for series in plan:
        if not series.missing:
            continue
        if series.present == 0:
            ds = Dataset()
            ds.QueryRetrieveLevel = "SERIES"
            ds.StudyInstanceUID = study_uid
            ds.SeriesInstanceUID = series.series_instance_uid
            yield ds, series.sop_classes
            continue
        for start in range(0, len(series.missing), UID_BATCH):
            ds = Dataset()
            ds.QueryRetrieveLevel = "IMAGE"
            ds.StudyInstanceUID = study_uid
            ds.SeriesInstanceUID = series.series_instance_uid
            ds.SOPInstanceUID = series.missing[start : start + UID_BATCH]
            yield ds, series.sop_classes


def _status_code(status: Any) -> int:
    return int(getattr(status, "Status", -1)) if status else -1


class _Counter:
    """Adds the sub-operation counts of consecutive requests into one progress."""

    def __init__(self, progress: Progress | None, total: int, skipped: int) -> None:
        self.progress = progress
        self.done = RetrieveProgress(total=total, skipped=skipped)
        self.current = RetrieveProgress()
        self.failed_uids: list[str] = []

    def update(self, status: Dataset) -> None:
        for name in ("completed", "failed", "warning", "remaining"):
            keyword = f"NumberOf{name.capitalize()}Suboperations"
            value = status.get(keyword)
            if value is not None:
                setattr(self.current, name, int(value))
        if self.progress is not None:
            self.progress(self.snapshot())

    def snapshot(self) -> RetrieveProgress:
        d, c = self.done, self.current
        return RetrieveProgress(
            d.completed + c.completed,
            d.failed + c.failed,
            d.warning + c.warning,
            c.remaining,
            d.total,
            d.skipped,
        )

    def finish_request(self, ident: Dataset | None) -> None:
        if ident is not None and "FailedSOPInstanceUIDList" in ident:
            value = _text(ident.FailedSOPInstanceUIDList)
            self.failed_uids += [u for u in value.split("\\") if u]
        self.done = self.snapshot()
        self.done.remaining = 0
        self.current = RetrieveProgress()


def _explain_failure(
    code: int, status: Dataset, node: Node, local: LocalSettings, move: bool, completed: int
) -> NetError:
    """Words for a failed C-MOVE/C-GET (PS3.4 C.4.2.1.5, C.4.3.1.4)."""
    comment = _text(status.get("ErrorComment", "")) if status else ""
    said = f" (the PACS said: {comment})" if comment else ""
    host = local.bind_address or "this computer's address"
    configure = (
        f"On the PACS, add a DICOM node (modality) with AE title {local.ae_title!r}, host "
        f"{host} and port {local.scp_port}; or retrieve with C-GET, which needs no inbound "
        "connection."
    )
    if move and code == 0xA801:
        return NetError(
            diagnose.MOVE_DESTINATION,
            f"{node} refused the move: it does not know the move destination "
            f"{local.ae_title!r}. {configure}{said}",
        )
    if code in (0xA701, 0xA702):
        return NetError(diagnose.FAILED, f"{node} is out of resources (status 0x{code:04X}){said}")
    if move and completed == 0:
        # Orthanc answers an unknown destination with a bare 0xC000 (PEERS.md).
        return NetError(
            diagnose.MOVE_DESTINATION,
            f"{node} refused the move with status 0x{code:04X} before sending anything: most "
            f"often the PACS does not know our AE title {local.ae_title!r} as a move "
            f"destination, or cannot connect back to it. {configure}{said}",
        )
    return NetError(diagnose.FAILED, f"{node} refused the retrieve with status 0x{code:04X}{said}")


def _iterate(
    responses: Iterator[tuple[Dataset, Dataset | None]],
    counter: _Counter,
    watch: CancelWatch,
    node: Node,
    local: LocalSettings,
    move: bool,
) -> bool:
    """Consume one C-MOVE/C-GET's responses; True when cancelled."""
    for status, ident in responses:
        code = _status_code(status)
        if code in (0xFF00, 0xFF01):
            counter.update(status)
            continue
        if code == -1:
            counter.finish_request(None)
            if watch.cancelled:
                return True
            raise NetError(
                diagnose.ABORTED,
                f"the connection to {node} was lost during the retrieve (peer stopped, DIMSE "
                "timeout or network failure); the instances received before that are kept: "
                "retrieve again to fetch the rest (those present are skipped)",
            )
        counter.update(status)
        counter.finish_request(ident)
        if code == 0xFE00:
            return True
        if code in (0x0000, 0xB000):
            return False
        raise _explain_failure(code, status, node, local, move, counter.done.completed)
    return watch.cancelled


def retrieve(
    node: Node,
    local: LocalSettings,
    study_uid: str,
    series_uid: str | None = None,
    *,
    method: Literal["move", "get"] | None = None,
    on_instance: OnInstance,
    is_present: IsPresent | None = None,
    cancel: threading.Event | None = None,
    progress: Progress | None = None,
    grace: float = 3.0,
) -> RetrieveResult:
    """Fetch a study (or one series) from ``node``; blocks; raises :class:`NetError`.
    A DICOMweb node is retrieved with WADO-RS (:func:`viewer.net.dicomweb.retrieve`)."""
    if node.is_web:
        from viewer.net import dicomweb

        return dicomweb.retrieve(
            node,
            local,
            study_uid,
            series_uid,
            on_instance=on_instance,
            is_present=is_present,
            cancel=cancel,
            progress=progress,
        )
    method = method or node.retrieve_method
    plan, skipped = _plan(node, local, study_uid, series_uid, is_present, cancel)
    total = sum(len(s.missing) for s in plan) if plan is not None else 0
    result = RetrieveResult(skipped=skipped)
    if cancel is not None and cancel.is_set():
        result.cancelled = True
        return result
    if plan is not None and total == 0:
        return result
    counter = _Counter(progress, total, skipped)
    requests = list(_requests(study_uid, series_uid, plan))
    if method == "move":
        cancelled = _move(node, local, requests, counter, on_instance, cancel, grace)
    else:
        cancelled = _get(node, local, requests, counter, on_instance, cancel, grace)
    done = counter.done
    result.completed, result.failed, result.warning = done.completed, done.failed, done.warning
    result.failed_uids = counter.failed_uids
    result.cancelled = cancelled
    return result


def _plan(
    node: Node,
    local: LocalSettings,
    study_uid: str,
    series_uid: str | None,
    is_present: IsPresent | None,
    cancel: threading.Event | None,
) -> tuple[list[_Series] | None, int]:
    requested = [build_context(m, list(contexts.UNCOMPRESSED)) for m in contexts.FIND_MODELS]
    try:
        assoc = open_association(node, local, requested)
    except NetError as exc:
        if exc.code != diagnose.NO_CONTEXT:
            raise
        return None, 0
    healthy = False
    try:
        plan = list_instances(assoc, study_uid, series_uid, cancel)
        healthy = True
    except NetError:
        plan = None  # a peer that cannot list images: retrieve everything, skip nothing
    finally:
        close_association(assoc, abort=not healthy)
    skipped = 0
    if plan is not None and is_present is not None:
        for series in plan:
            if not series.complete:
                continue  # listed in part: retrieved whole (present stays 0)
            before = len(series.missing)
            series.missing = [u for u in series.missing if not is_present(u)]
            series.present = before - len(series.missing)
            skipped += series.present
    return plan, skipped


def _move(
    node: Node,
    local: LocalSettings,
    requests: list[tuple[Dataset, set[str]]],
    counter: _Counter,
    on_instance: OnInstance,
    cancel: threading.Event | None,
    grace: float,
) -> bool:
    try:
        _handle, own = ensure_scp(local, on_instance)
    except OSError as exc:
        raise NetError(
            diagnose.FAILED,
            f"cannot receive the move: port {local.scp_port} is taken by a program that does "
            f"not answer as {local.ae_title!r} ({exc.strerror or exc}); free the port, choose "
            "another SCP port (and tell the PACS), or retrieve with C-GET",
        ) from exc
    try:
        requested = [build_context(m, list(contexts.UNCOMPRESSED)) for m in contexts.MOVE_MODELS]
        assoc = open_association(node, local, requested)
        healthy = False
        try:
            model = _pick_model(assoc, contexts.MOVE_MODELS)
            for ident, _classes in requests:
                msg_id = _next_msg_id()
                with CancelWatch(assoc, cancel, msg_id, model, grace) as watch:
                    responses = assoc.send_c_move(ident, local.ae_title, model, msg_id=msg_id)
                    if _iterate(responses, counter, watch, node, local, True):
                        healthy = not watch.aborted  # C-CANCEL honoured: release politely
                        return True
            healthy = True
            return False
        finally:
            close_association(assoc, abort=not healthy)
    finally:
        if own is not None:
            own.stop()


_COMPRESSED = [ts for ts in contexts.SCP_TRANSFER_SYNTAXES if ts not in contexts.UNCOMPRESSED]
#: Contexts per storage class when each compressed syntax gets its own (see _get_contexts).
PER_CLASS = 1 + len(_COMPRESSED)
_ROOM = contexts.MAX_CONTEXTS - len(contexts.GET_MODELS)


def _get_contexts(classes: set[str]) -> tuple[list[PresentationContext], list[Any]]:
    """Contexts for a C-GET association (PS3.4 C.4.3.1; SCP role, PS3.7 D.3.3.4).

    The peer picks one transfer syntax per context and must send each instance in an accepted
    one, converting it when none matches. Orthanc, offered one context per class listing every
    syntax, picked Explicit VR Little Endian and decompressed every JPEG. So when the classes are
    known and few, each compressed syntax gets its own context and instances arrive as stored;
    otherwise (classes unknown, or too many) one context per class lists them all.
    """
    requested = [build_context(m, list(contexts.UNCOMPRESSED)) for m in contexts.GET_MODELS]
    if classes and len(classes) * PER_CLASS <= _ROOM:
        storage = sorted(classes)
        for c in storage:
            requested.append(build_context(c, list(contexts.UNCOMPRESSED)))
            requested += [build_context(c, [ts]) for ts in _COMPRESSED]
    else:
        storage = sorted(classes) if classes else list(contexts.GET_STORAGE_SOP_CLASSES)
        requested += [build_context(c, list(contexts.SCP_TRANSFER_SYNTAXES)) for c in storage]
    roles = [build_role(c, scp_role=True) for c in storage]
    return requested, roles


def split_for_get(
    requests: list[tuple[Dataset, set[str]]],
) -> list[tuple[set[str], list[Dataset]]]:
    """Group requests so each association proposes at most 128 contexts (PS3.8 9.3.2.2):
    series are merged while their classes fit with a context per compressed syntax; a series
    with more classes than that goes alone with one context per class."""
    groups: list[tuple[set[str], list[Dataset]]] = []
    for ident, classes in requests:
        if not classes:
            groups.append((set(), [ident]))
            continue
        for group_classes, idents in groups:
            if group_classes and len(group_classes | classes) * PER_CLASS <= _ROOM:
                group_classes |= classes
                idents.append(ident)
                break
        else:
            if len(classes) > _ROOM:
                raise NetError(
                    diagnose.FAILED,
                    f"one series holds {len(classes)} SOP classes: more than one association "
                    "can carry for C-GET; use C-MOVE",
                )
            groups.append((set(classes), [ident]))
    return groups


def _get(
    node: Node,
    local: LocalSettings,
    requests: list[tuple[Dataset, set[str]]],
    counter: _Counter,
    on_instance: OnInstance,
    cancel: threading.Event | None,
    grace: float,
) -> bool:
    # Where on_instance wants the files, synced or not (as viewer.net.scp.StorageScp does).
    folder = getattr(on_instance, "scp_folder", None) or spool_dir()
    sync = bool(getattr(on_instance, "scp_sync", False))

    def deliver(path: Path, _calling: str) -> StoreResult:
        return on_instance(path, node.ae_title)

    handlers = [(evt.EVT_C_STORE, handle_store, [deliver, folder, sync])]
    for classes, idents in split_for_get(requests):
        requested, roles = _get_contexts(classes)
        # A sub-operation's data set longer than SPILL_AT is written to `folder` as it
        # arrives (handle_store takes the file over), never held whole in memory.
        assoc = open_association(
            node, local, requested, roles=roles, evt_handlers=handlers, spill_folder=folder
        )
        healthy = False
        try:
            model = _pick_model(assoc, contexts.GET_MODELS)
            for ident in idents:
                msg_id = _next_msg_id()
                with CancelWatch(assoc, cancel, msg_id, model, grace) as watch:
                    responses = assoc.send_c_get(ident, model, msg_id=msg_id)
                    if _iterate(responses, counter, watch, node, local, False):
                        healthy = not watch.aborted
                        return True
            healthy = True
        finally:
            close_association(assoc, abort=not healthy)
    return False
