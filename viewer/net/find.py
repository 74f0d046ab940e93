"""C-FIND SCU: Study Root (or Patient Root) Query/Retrieve Information Model, PS3.4 C.4.1.

A query is built from plain filters (patient name with ``*``/``?`` wildcards, PS3.4 C.2.2.2.4;
patient ID; accession; study date range, C.2.2.2.5; modality; study description) and the
return keys a study browser needs (C.6.2.1: Modalities in Study, Number of Study Related
Series/Instances). Results are dictionaries keyed by DICOM keyword with the values as the peer
sent them (names keep ``^``, several values joined by ``\\``), trailing spaces and NUL padding
removed (DCMTK's dcmqrscp pads UIDs with NUL).

Cancel (PS3.7 9.1.2.1.4, C-CANCEL) sends C-CANCEL and aborts the association when the peer does
not stop within a grace period.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pynetdicom.association import Association
from pynetdicom.presentation import build_context

from viewer.net import contexts, diagnose
from viewer.net.common import LEVELS as LEVELS
from viewer.net.common import MAX_MATCHES as MAX_MATCHES
from viewer.net.common import RETURN_KEYS as RETURN_KEYS
from viewer.net.common import FindQuery as FindQuery
from viewer.net.common import FindResult as FindResult
from viewer.net.connect import CancelWatch, close_association, open_association
from viewer.net.diagnose import NetError
from viewer.net.nodes import LocalSettings, Node

Progress = Callable[[int], None]
_T = TypeVar("_T")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(_text(v) for v in value)
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return str(value).replace("\0", "").strip()


def identifier_to_dict(ds: Dataset) -> dict[str, str]:
    """Keyword -> value as the peer sent it (NUL padding and spaces stripped)."""
    out: dict[str, str] = {}
    for elem in ds:
        keyword = elem.keyword or keyword_for_tag(elem.tag)
        if not keyword or elem.VR == "SQ" or keyword == "SpecificCharacterSet":
            continue
        out[keyword] = _text(elem.value)
    return out


_msg_ids = itertools.count(1)


def _next_msg_id() -> int:
    return next(_msg_ids) % 65535 + 1


def _pick_model(assoc: Association, models: tuple[str, ...]) -> str:
    accepted = {str(cx.abstract_syntax) for cx in assoc.accepted_contexts}
    for model in models:
        if model in accepted:
            return model
    raise NetError(diagnose.NO_CONTEXT, "the peer accepts no query model")


def run_find(
    assoc: Association,
    model: str,
    identifier: Dataset,
    *,
    cancel: threading.Event | None = None,
    progress: Progress | None = None,
    limit: int | None = None,
    grace: float = 3.0,
) -> tuple[list[dict[str, str]], bool]:
    """One C-FIND on an open association; (matches, cancelled): :func:`run_find_as` with
    :func:`identifier_to_dict`."""
    return run_find_as(
        identifier_to_dict,
        assoc,
        model,
        identifier,
        cancel=cancel,
        progress=progress,
        limit=limit,
        grace=grace,
    )


def run_find_as(
    convert: Callable[[Dataset], _T],
    assoc: Association,
    model: str,
    identifier: Dataset,
    *,
    cancel: threading.Event | None = None,
    progress: Progress | None = None,
    limit: int | None = None,
    grace: float = 3.0,
) -> tuple[list[_T], bool]:
    """One C-FIND on an open association; (matches, cancelled), each match ``convert(identifier)``
    (a worklist keeps its sequences, :mod:`viewer.net.worklist`).

    At most ``limit`` matches (None: :data:`MAX_MATCHES`) are kept: at that many the query is
    cancelled, and whatever the peer still sends is dropped unread until it stops (or is
    aborted after ``grace`` seconds). ``len(matches) == limit`` tells the caller it stopped.
    """
    if cancel is not None and cancel.is_set():
        return [], True
    limit = MAX_MATCHES if limit is None else limit
    matches: list[_T] = []
    msg_id = _next_msg_id()
    local_cancel = threading.Event()
    with CancelWatch(assoc, [cancel, local_cancel], msg_id, model, grace) as watch:
        for status, ident in assoc.send_c_find(identifier, model, msg_id=msg_id):
            code = int(getattr(status, "Status", -1)) if status else -1
            if code in (0xFF00, 0xFF01):
                if local_cancel.is_set():
                    continue  # past the limit: dropped until the peer stops or is aborted
                if ident is not None:
                    matches.append(convert(ident))
                if progress is not None:
                    progress(len(matches))
                if len(matches) >= limit:
                    local_cancel.set()
                continue
            if code == 0x0000 or code == 0xFE00:
                break
            if code == -1:
                if watch.cancelled:
                    break
                peer = f"{assoc.acceptor.ae_title}@{assoc.acceptor.address}:{assoc.acceptor.port}"
                raise NetError(
                    diagnose.TIMEOUT,
                    f"{peer} stopped answering the query (DIMSE timeout, network timeout or "
                    "connection lost)",
                )
            comment = _text(getattr(status, "ErrorComment", ""))
            raise NetError(
                diagnose.FAILED,
                f"the peer refused the query with status 0x{code:04X}"
                + (f": {comment}" if comment else ""),
            )
    return matches, watch.cancelled and cancel is not None and cancel.is_set()


def find(
    node: Node,
    local: LocalSettings,
    query: FindQuery,
    *,
    cancel: threading.Event | None = None,
    progress: Progress | None = None,
    limit: int | None = None,
    models: tuple[str, ...] = contexts.FIND_MODELS,
) -> FindResult:
    """Query ``node``; blocks; raises :class:`NetError` with a diagnosis on failure.
    A DICOMweb node is searched with QIDO-RS (:func:`viewer.net.dicomweb.find`).

    ``models``: the query models to propose, preferred first (Study Root, then Patient Root).
    ``limit``: the most matches kept (None: :data:`MAX_MATCHES`); ``stopped_at`` of the
    result says when the query was stopped there.
    """
    if node.is_web:  # QIDO-RS: the same query, the same result
        from viewer.net import dicomweb

        return dicomweb.find(node, local, query, cancel=cancel, progress=progress, limit=limit)
    limit = MAX_MATCHES if limit is None else limit
    requested = [build_context(m, list(contexts.UNCOMPRESSED)) for m in models]
    assoc = open_association(node, local, requested)
    healthy = False
    try:
        model = _pick_model(assoc, models)
        if (
            model == contexts.PatientRootQueryRetrieveInformationModelFind
            and query.level != "PATIENT"
        ):
            matches, cancelled = _patient_root(assoc, model, query, cancel, progress, limit)
        else:
            matches, cancelled = run_find(
                assoc, model, query.identifier(), cancel=cancel, progress=progress, limit=limit
            )
        healthy = assoc.is_established
        stopped_at = len(matches) if len(matches) >= limit and not cancelled else 0
        return FindResult(matches, cancelled, model, stopped_at)
    finally:
        close_association(assoc, abort=not healthy)


def _patient_root(
    assoc: Association,
    model: str,
    query: FindQuery,
    cancel: threading.Event | None,
    progress: Progress | None,
    limit: int | None,
) -> tuple[list[dict[str, str]], bool]:
    """Patient Root is strictly hierarchical (PS3.4 C.4.1.2.1): below PATIENT level the query
    must name the Patient ID, so find the patients first, then ask per patient."""
    if query.patient_id:
        ids = [query.patient_id]
    else:
        patients, cancelled = run_find(assoc, model, query.identifier("PATIENT"), cancel=cancel)
        if cancelled:
            return [], True
        ids = sorted({p.get("PatientID", "") for p in patients})
    matches: list[dict[str, str]] = []
    for patient_id in ids:
        ident = query.identifier()
        ident.PatientID = patient_id
        remaining = None if limit is None else limit - len(matches)
        found, cancelled = run_find(assoc, model, ident, cancel=cancel, limit=remaining)
        matches += found
        if progress is not None:
            progress(len(matches))
        if cancelled or (limit is not None and len(matches) >= limit):
            return matches, cancelled
    return matches, False
