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
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pynetdicom.association import Association
from pynetdicom.presentation import build_context

from viewer.net import contexts, diagnose
from viewer.net.connect import CancelWatch, close_association, open_association
from viewer.net.diagnose import NetError
from viewer.net.nodes import LocalSettings, Node

LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")

RETURN_KEYS: dict[str, tuple[str, ...]] = {
    "PATIENT": ("PatientName", "PatientID", "PatientBirthDate", "PatientSex"),
    "STUDY": (
        "StudyInstanceUID",
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "StudyID",
        "StudyDescription",
        "ReferringPhysicianName",
        "ModalitiesInStudy",
        "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
    ),
    "SERIES": (
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "Modality",
        "SeriesNumber",
        "SeriesDescription",
        "SeriesDate",
        "SeriesTime",
        "BodyPartExamined",
        "NumberOfSeriesRelatedInstances",
    ),
    "IMAGE": (
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "SOPInstanceUID",
        "SOPClassUID",
        "InstanceNumber",
    ),
}

_DATE = re.compile(r"\d{8}")
Progress = Callable[[int], None]
_T = TypeVar("_T")


@dataclass(slots=True)
class FindQuery:
    """What to look for; empty filters match everything (universal matching, PS3.4 C.2.2.2.3)."""

    level: str = "STUDY"
    patient_name: str = ""
    patient_id: str = ""
    accession_number: str = ""
    study_date_from: str = ""
    study_date_to: str = ""
    modality: str = ""
    study_description: str = ""
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    #: Any further keys by keyword (``-k KEYWORD=VALUE``): a filter, or an empty return key.
    keys: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.level = self.level.upper()
        if self.level not in LEVELS:
            raise ValueError(f"query level must be one of {', '.join(LEVELS)}, not {self.level!r}")
        for value in (self.study_date_from, self.study_date_to):
            if value and not _DATE.fullmatch(value):
                raise ValueError(f"study date {value!r} is not YYYYMMDD")
        for keyword in self.keys:
            if tag_for_keyword(keyword) is None:
                raise ValueError(f"{keyword!r} is not a DICOM keyword")
        if self.level in ("SERIES", "IMAGE") and not self.study_instance_uid:
            raise ValueError(f"a {self.level.lower()} level query needs a StudyInstanceUID")
        if self.level == "IMAGE" and not self.series_instance_uid:
            raise ValueError("an image level query needs a SeriesInstanceUID")

    @classmethod
    def from_keys(cls, level: str, keys: Mapping[str, str]) -> FindQuery:
        """From ``KEYWORD=VALUE`` pairs as the command line gives them."""
        rest = dict(keys)
        uid_study = rest.pop("StudyInstanceUID", "")
        uid_series = rest.pop("SeriesInstanceUID", "")
        return cls(
            level=level, study_instance_uid=uid_study, series_instance_uid=uid_series, keys=rest
        )

    def study_date(self) -> str:
        """PS3.4 C.2.2.2.5 range matching: ``A-B``, ``A-``, ``-B``, or one date."""
        a, b = self.study_date_from, self.study_date_to
        if a and b and a == b:
            return a
        return f"{a}-{b}" if (a or b) else ""

    def identifier(self, level: str | None = None) -> Dataset:
        level = level or self.level
        ds = Dataset()
        ds.QueryRetrieveLevel = level
        for keyword in RETURN_KEYS[level]:
            setattr(ds, keyword, "" if dictionary_VR(keyword) != "SQ" else [])
        filters = {
            "PatientName": self.patient_name,
            "PatientID": self.patient_id,
        }
        if level != "PATIENT":
            filters |= {
                "AccessionNumber": self.accession_number,
                "StudyDate": self.study_date(),
                "StudyDescription": self.study_description,
                "StudyInstanceUID": self.study_instance_uid,
            }
            if level == "STUDY":
                filters["ModalitiesInStudy"] = self.modality
            else:
                filters["Modality"] = self.modality
        if level == "IMAGE":
            filters["SeriesInstanceUID"] = self.series_instance_uid
        if level in ("SERIES", "IMAGE"):
            # Hierarchical query (C.4.1.2.1): above the query level only unique keys are allowed.
            for keyword in ("PatientName", "AccessionNumber", "StudyDate", "StudyDescription"):
                filters.pop(keyword, None)
                if keyword in ds:
                    del ds[keyword]
        if level == "IMAGE":
            filters.pop("Modality", None)
        for keyword, value in {**filters, **self.keys}.items():
            if value or keyword not in ds:
                setattr(ds, keyword, value)
        return ds


#: The most matches one query keeps when the caller sets no limit: a PACS that sends pending
#: matches without end must not grow our memory without bound (issue 9). At that many the
#: query is cancelled (C-CANCEL, PS3.7 9.1.2.1.4; an A-ABORT if the peer goes on).
MAX_MATCHES = 10_000


@dataclass(slots=True)
class FindResult:
    matches: list[dict[str, str]]
    cancelled: bool = False
    #: Study Root or Patient Root C-FIND SOP Class used.
    model: str = ""
    #: The query was stopped at this many matches (its limit, :data:`MAX_MATCHES` by
    #: default): the peer had more. 0: the answer is complete.
    stopped_at: int = 0

    @property
    def note(self) -> str:
        """What to tell the user when the answer is incomplete (empty otherwise)."""
        if not self.stopped_at:
            return ""
        return (
            f"stopped after {self.stopped_at} matches: the peer had more; narrow the query "
            "(patient, date, modality)"
        )


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

    ``models``: the query models to propose, preferred first (Study Root, then Patient Root).
    ``limit``: the most matches kept (None: :data:`MAX_MATCHES`); ``stopped_at`` of the
    result says when the query was stopped there.
    """
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
