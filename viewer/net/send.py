"""C-STORE SCU: send files to a node (Storage Service Class, PS3.4 B.2.1).

Each file is offered in its own transfer syntax plus Explicit/Implicit VR Little Endian
(PS3.5 10.1), one presentation context per (SOP class, compressed syntax) so that the peer can
accept each independently (PS3.8 9.3.2.2). When the peer accepts the file's own syntax the file's
bytes are sent as they are, never decoded (:mod:`viewer.net.fastpath`; pynetdicom's chunked send
over TLS); when it accepts only the
uncompressed syntaxes a compressed file is decompressed first. Each instance gets its status
(PS3.4 B.2.3); failures are retried once on a fresh association.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID
from pynetdicom import _config
from pynetdicom.association import Association
from pynetdicom.dsutils import split_dataset
from pynetdicom.presentation import PresentationContext, build_context

from viewer.net import contexts, diagnose, fastpath
from viewer.net.connect import close_association, open_association
from viewer.net.diagnose import NetError
from viewer.net.nodes import LocalSettings, Node

Progress = Callable[[int, int], None]

#: PS3.4 Table B.2-1 warnings: coercion of data elements, elements discarded, data set does
#: not match SOP class.
WARNING_STATUSES = {0x0001, 0xB000, 0xB006, 0xB007}


@dataclass(slots=True)
class InstanceStatus:
    path: Path
    sop_instance_uid: str = ""
    sop_class_uid: str = ""
    transfer_syntax_uid: str = ""
    #: C-STORE response status; ``None`` when nothing was answered (not sent, cancelled, lost).
    status: int | None = None
    message: str = ""
    #: Worth another try (a network loss or a peer-side failure), unlike a bad file.
    retryable: bool = True
    #: Where the data set starts, after the File Meta Information.
    offset: int = 0

    @property
    def ok(self) -> bool:
        return self.status is not None and (self.status == 0 or self.status in WARNING_STATUSES)


@dataclass(slots=True)
class SendResult:
    instances: list[InstanceStatus] = field(default_factory=list)
    cancelled: bool = False

    @property
    def sent(self) -> int:
        return sum(1 for i in self.instances if i.ok)

    @property
    def failed(self) -> list[InstanceStatus]:
        return [i for i in self.instances if not i.ok]

    @property
    def warnings(self) -> int:
        return sum(1 for i in self.instances if i.status in WARNING_STATUSES)

    @property
    def stored(self) -> list[tuple[str, str]]:
        """(SOP Class UID, SOP Instance UID) of every instance the peer stored (success or a
        warning status): what a storage commitment request (:mod:`viewer.net.commit`) asks
        the peer to commit."""
        return [(i.sop_class_uid, i.sop_instance_uid) for i in self.instances if i.ok]


def _describe(path: Path) -> InstanceStatus:
    """What to propose for ``path``, from its File Meta Information (PS3.10 7.1) when it has
    one, else from the data set itself (a file without meta is sent decoded)."""
    item = InstanceStatus(path)
    try:
        try:
            meta, item.offset = split_dataset(path)
        except InvalidDicomError:
            meta, item.offset = Dataset(), 0
        item.sop_class_uid = str(meta.get("MediaStorageSOPClassUID", ""))
        item.sop_instance_uid = str(meta.get("MediaStorageSOPInstanceUID", ""))
        item.transfer_syntax_uid = str(meta.get("TransferSyntaxUID", ""))
        if not (item.sop_class_uid and item.sop_instance_uid and item.transfer_syntax_uid):
            item.offset = 0
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            item.sop_class_uid = item.sop_class_uid or str(ds.get("SOPClassUID", ""))
            item.sop_instance_uid = item.sop_instance_uid or str(ds.get("SOPInstanceUID", ""))
            if not item.transfer_syntax_uid:
                item.transfer_syntax_uid = (
                    contexts.UNCOMPRESSED[1] if ds.is_implicit_VR else contexts.UNCOMPRESSED[0]
                )
    except (OSError, InvalidDicomError, ValueError, TypeError, AttributeError) as exc:
        item.message = f"{path}: not a readable DICOM file ({exc})"
        item.retryable = False
        return item
    if not item.sop_class_uid or not item.sop_instance_uid:
        item.message = f"{path}: not a DICOM file (no SOP Class or SOP Instance UID)"
        item.retryable = False
    return item


def _wanted_contexts(items: Sequence[InstanceStatus]) -> list[tuple[str, tuple[str, ...]]]:
    wanted: dict[tuple[str, tuple[str, ...]], None] = {}
    for item in items:
        ts = item.transfer_syntax_uid
        if ts not in contexts.UNCOMPRESSED:
            wanted[(item.sop_class_uid, (ts,))] = None
        wanted[(item.sop_class_uid, contexts.UNCOMPRESSED)] = None
    return list(wanted)


def batches(items: Sequence[InstanceStatus]) -> list[list[InstanceStatus]]:
    """Split so that no association needs more than 128 contexts (PS3.8 9.3.2.2)."""
    out: list[list[InstanceStatus]] = []
    current: list[InstanceStatus] = []
    for item in items:
        if len(_wanted_contexts([*current, item])) > contexts.MAX_CONTEXTS:
            out.append(current)
            current = []
        current.append(item)
    if current:
        out.append(current)
    return out


def _accepted(assoc: Association) -> set[tuple[str, str]]:
    return {(str(cx.abstract_syntax), str(cx.transfer_syntax[0])) for cx in assoc.accepted_contexts}


def _payload(item: InstanceStatus, accepted: set[tuple[str, str]]) -> Path | Dataset | None:
    """The path itself when its own syntax was accepted (sent undecoded), else a data set the
    peer can take (decompressed when it accepts only uncompressed syntaxes)."""
    own = (item.sop_class_uid, item.transfer_syntax_uid)
    plain = [ts for ts in contexts.UNCOMPRESSED if (item.sop_class_uid, ts) in accepted]
    if own in accepted and item.offset:
        return item.path
    if own not in accepted and not plain:
        return None
    ds = pydicom.dcmread(item.path, force=True)
    if "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = UID(item.transfer_syntax_uid)
    if own not in accepted and UID(item.transfer_syntax_uid).is_compressed:
        # A change of transfer syntax keeps the SOP Instance UID (PS3.5 10: same instance)
        ds.decompress(generate_instance_uid=False)
    return ds


def _send_batch(
    node: Node,
    local: LocalSettings,
    items: list[InstanceStatus],
    cancel: threading.Event | None,
    tick: Callable[[], None],
) -> bool:
    """Send one batch on one association; returns False when cancelled."""
    requested: list[PresentationContext] = [
        build_context(sop_class, list(tss)) for sop_class, tss in _wanted_contexts(items)
    ]
    try:
        assoc = open_association(node, local, requested)
    except NetError as exc:
        for item in items:
            item.message = exc.message
        raise
    healthy = False
    try:
        accepted = _accepted(assoc)
        ids = {
            (str(cx.abstract_syntax), str(cx.transfer_syntax[0])): int(cx.context_id or 0)
            for cx in assoc.accepted_contexts
        }
        fast = fastpath.usable(assoc)
        if fast:
            # The DUL thread polls the socket and sleeps 1 ms when idle: per instance that is
            # up to 1 ms before the response is seen. Poll faster while we stream.
            assoc.dul._run_loop_delay = 0.0002
        for index, item in enumerate(items):
            if cancel is not None and cancel.is_set():
                for rest in items[index:]:
                    rest.message = "cancelled"
                return False
            try:
                payload = _payload(item, accepted)
            except Exception as exc:  # pydicom cannot decompress this one
                item.message = f"{item.path}: cannot be decompressed for this peer ({exc})"
                item.retryable = False
                tick()
                continue
            if payload is None:
                item.message = (
                    f"{node} accepts no presentation context for "
                    f"{UID(item.sop_class_uid).name} in {UID(item.transfer_syntax_uid).name} "
                    "or uncompressed"
                )
                item.retryable = False
                tick()
                continue
            msg_id = index % 65535 + 1
            try:
                status: Dataset | None
                if isinstance(payload, Path) and fast and item.offset:
                    status = fastpath.store_file(
                        assoc,
                        ids[(item.sop_class_uid, item.transfer_syntax_uid)],
                        payload,
                        item.offset,
                        item.sop_class_uid,
                        item.sop_instance_uid,
                        msg_id,
                    )
                else:
                    fastpath.resume_reactor(assoc)  # pynetdicom pauses it itself
                    status = assoc.send_c_store(payload, msg_id=msg_id)
            except (RuntimeError, AttributeError):
                # The association ended under us (peer gone); AttributeError: the bounded
                # reader (viewer.net.guard) dropped its socket, closed by the peer, meanwhile.
                status = None
            code = int(getattr(status, "Status", -1)) if status else -1
            if code == -1:
                for rest in items[index:]:
                    rest.message = (
                        f"no answer from {node}: the connection was lost or the DIMSE timeout "
                        "expired"
                    )
                return True
            item.status = code
            if not item.ok and status is not None:
                comment = str(status.get("ErrorComment", "") or "").strip()
                item.message = f"{node} answered 0x{code:04X}" + (f": {comment}" if comment else "")
            else:
                item.message = ""
            tick()
        healthy = True
        return True
    finally:
        fastpath.resume_reactor(assoc)
        close_association(assoc, abort=not healthy)


def send(
    node: Node,
    local: LocalSettings,
    paths: Sequence[Path],
    *,
    cancel: threading.Event | None = None,
    progress: Progress | None = None,
    retries: int = 1,
) -> SendResult:
    """Send ``paths``; per-instance statuses in the result; raises :class:`NetError` only when
    no association could be opened at all."""
    # Stream files whose syntax the peer accepted straight from disk (no decode/encode).
    _config.STORE_SEND_CHUNKED_DATASET = True
    items = [_describe(Path(p)) for p in paths]
    result = SendResult(items)
    total = len(items)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    todo = [i for i in items if i.retryable]
    for i in items:
        if not i.retryable:
            tick()
    last_error: NetError | None = None
    for attempt in range(retries + 1):
        if attempt:
            todo = [i for i in todo if not i.ok and i.retryable]
            done -= len(todo)
        if not todo:
            break
        for batch in batches(todo):
            try:
                if not _send_batch(node, local, batch, cancel, tick):
                    result.cancelled = True
                    return result
            except NetError as exc:
                last_error = exc
                if exc.code in (
                    diagnose.REFUSED,
                    diagnose.UNKNOWN_HOST,
                    diagnose.CALLED_AE,
                    diagnose.CALLING_AE,
                    diagnose.TLS,
                ):
                    break
    if last_error is not None and result.sent == 0 and total:
        raise last_error
    return result
