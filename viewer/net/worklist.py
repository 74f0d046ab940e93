"""Modality Worklist C-FIND SCU (PS3.4 Annex K.6): the hospital's orders for a patient.

Used to reconcile an outside study with the order it belongs to (:mod:`viewer.store.reconcile`,
``lightbox reconcile``): the worklist item gives the hospital's Patient ID (with its issuer),
name, birth date, sex, accession number and requested procedure.

The query uses the Modality Worklist Information Model - FIND (1.2.840.10008.5.1.4.31) with the
matching keys of PS3.4 K.6.1.2.2: patient name (``*``/``?`` wildcards) and ID, accession
number, and inside the Scheduled Procedure Step Sequence the modality, the scheduled station
AE title and the start date (a range, PS3.4 C.2.2.2.5). It runs on one association opened by
:func:`viewer.net.connect.open_association` (our timeouts, TLS, the bounded transport) and
:func:`viewer.net.find.run_find_as` (answers capped, C-CANCEL then A-ABORT on cancel); the
whole query also has a deadline, after which it is cancelled like a user's cancel and reported
as a timeout. Values are kept as the peer sent them (names with ``^``): escape them before
showing them (:func:`viewer.text.escape`).

The worklist is a DIMSE service only: DICOMweb (PS3.18) defines none (its UPS-RS is the Unified
Procedure Step, not the Modality Worklist). A DICOMweb node is refused at once with a
:class:`~viewer.net.nodes.ConfigError` (a usage error, exit 2) instead of a doomed association.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom.presentation import build_context

from viewer.net import contexts, diagnose
from viewer.net.connect import close_association, open_association
from viewer.net.diagnose import NetError
from viewer.net.find import MAX_MATCHES, _pick_model, _text, run_find_as
from viewer.net.nodes import ConfigError, LocalSettings, Node

ModalityWorklistInformationModelFind = contexts.ModalityWorklistInformationModelFind

#: The most worklist items one query keeps (then C-CANCEL): a worklist query should name a
#: patient or a day; a longer answer is not read to its end.
MAX_ITEMS = min(MAX_MATCHES, 1000)

#: Seconds the whole query may take, answers included (each message also has the DIMSE timeout).
DEFAULT_DEADLINE = 60.0

_DATE = re.compile(r"\d{8}")

#: Return keys at the top level of the identifier (PS3.4 Table K.6-1), each with the
#: :class:`WorklistItem` field its answer goes to: the query asks for what an item holds.
_TOP_KEYS = {
    "PatientName": "patient_name",
    "PatientID": "patient_id",
    "IssuerOfPatientID": "issuer_of_patient_id",
    "PatientBirthDate": "birth_date",
    "PatientSex": "sex",
    "AccessionNumber": "accession_number",
    "ReferringPhysicianName": "referring_physician",
    "RequestedProcedureDescription": "requested_procedure_description",
    "RequestedProcedureID": "requested_procedure_id",
    "StudyInstanceUID": "study_instance_uid",
}
#: Return keys inside the Scheduled Procedure Step Sequence (0040,0100), each with its
#: :class:`ScheduledStep` field.
_STEP_KEYS = {
    "Modality": "modality",
    "ScheduledStationAETitle": "station_ae",
    "ScheduledProcedureStepStartDate": "start_date",
    "ScheduledProcedureStepStartTime": "start_time",
    "ScheduledProcedureStepDescription": "description",
    "ScheduledProcedureStepID": "step_id",
    "ScheduledPerformingPhysicianName": "performing_physician",
}


@dataclass(slots=True)
class WorklistQuery:
    """What to look for; empty filters match everything (universal matching)."""

    patient_name: str = ""
    patient_id: str = ""
    accession_number: str = ""
    #: Scheduled Procedure Step Start Date range, YYYYMMDD (either end may be open).
    date_from: str = ""
    date_to: str = ""
    modality: str = ""
    #: Scheduled Station AE Title.
    station_ae: str = ""

    def __post_init__(self) -> None:
        for value in (self.date_from, self.date_to):
            if value and not _DATE.fullmatch(value):
                raise ValueError(f"date {value!r} is not YYYYMMDD")
        for name in ("modality", "station_ae"):
            value = getattr(self, name)
            if len(value) > 16 or "\\" in value:
                raise ValueError(f"{name.replace('_', ' ')} {value!r}: at most 16 characters")

    def date_range(self) -> str:
        a, b = self.date_from, self.date_to
        if a and a == b:
            return a
        return f"{a}-{b}" if (a or b) else ""

    def identifier(self) -> Dataset:
        """The C-FIND identifier: every return key, the filters set (PS3.4 K.6.1.2.2)."""
        ds = Dataset()
        ds.SpecificCharacterSet = "ISO_IR 192"
        for keyword in _TOP_KEYS:
            setattr(ds, keyword, "")
        ds.PatientName = self.patient_name
        ds.PatientID = self.patient_id
        ds.AccessionNumber = self.accession_number
        step = Dataset()
        for keyword in _STEP_KEYS:
            setattr(step, keyword, "")
        step.Modality = self.modality
        step.ScheduledStationAETitle = self.station_ae
        step.ScheduledProcedureStepStartDate = self.date_range()
        ds.ScheduledProcedureStepSequence = [step]
        return ds


@dataclass(frozen=True, slots=True)
class ScheduledStep:
    """One item of the Scheduled Procedure Step Sequence (0040,0100)."""

    modality: str = ""
    station_ae: str = ""
    start_date: str = ""
    start_time: str = ""
    description: str = ""
    step_id: str = ""
    performing_physician: str = ""


@dataclass(frozen=True, slots=True)
class WorklistItem:
    """One worklist answer: the order's patient, request and scheduled steps."""

    patient_id: str = ""
    issuer_of_patient_id: str = ""
    patient_name: str = ""
    birth_date: str = ""
    sex: str = ""
    accession_number: str = ""
    requested_procedure_description: str = ""
    requested_procedure_id: str = ""
    #: The order's Study Instance UID, when the worklist assigns one ("" otherwise).
    study_instance_uid: str = ""
    referring_physician: str = ""
    steps: tuple[ScheduledStep, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["steps"] = [asdict(s) for s in self.steps]
        return data

    def summary(self) -> str:
        """One line (raw values: escape before showing)."""
        step = self.steps[0] if self.steps else ScheduledStep()
        parts = [
            f"{self.patient_id}"
            + (f" ({self.issuer_of_patient_id})" if self.issuer_of_patient_id else ""),
            self.patient_name,
            self.birth_date,
            self.sex,
            f"accession {self.accession_number}" if self.accession_number else "",
            self.requested_procedure_description,
            step.modality,
            step.station_ae,
            " ".join(v for v in (step.start_date, step.start_time) if v),
        ]
        return "  ".join(p for p in parts if p)


def _value(ds: Dataset, keyword: str) -> str:
    try:
        return _text(ds.get(keyword, ""))
    except Exception:  # a value the peer encoded badly is an empty value, not a failure
        return ""


def _values(ds: Dataset, keys: dict[str, str]) -> dict[str, str]:
    """Field name -> value of each of ``keys`` (keyword -> field) in ``ds``."""
    return {field: _value(ds, keyword) for keyword, field in keys.items()}


def item_from_identifier(ds: Dataset) -> WorklistItem:
    """A :class:`WorklistItem` from one C-FIND answer (absent keys are empty)."""
    try:
        seq = ds.get("ScheduledProcedureStepSequence") or []
        steps = tuple(ScheduledStep(**_values(step, _STEP_KEYS)) for step in list(seq)[:16])
    except Exception:
        steps = ()
    return WorklistItem(**_values(ds, _TOP_KEYS), steps=steps)


@dataclass(slots=True)
class WorklistResult:
    items: list[WorklistItem]
    cancelled: bool = False
    #: The query was stopped at this many items (its limit): the worklist had more.
    stopped_at: int = 0

    @property
    def note(self) -> str:
        if not self.stopped_at:
            return ""
        return (
            f"stopped after {self.stopped_at} worklist items: the worklist had more; narrow the "
            "query (patient, accession, date, modality, station)"
        )


def query_worklist(
    node: Node,
    local: LocalSettings,
    query: WorklistQuery,
    *,
    cancel: threading.Event | None = None,
    limit: int | None = None,
    deadline: float | None = DEFAULT_DEADLINE,
) -> WorklistResult:
    """Ask ``node``'s Modality Worklist; blocks; raises :class:`NetError` with a diagnosis.

    ``limit``: the most items kept (None: :data:`MAX_ITEMS`). ``deadline``: seconds for the
    whole query (None: only the per-message timeouts); past it the query is cancelled and a
    :class:`NetError` with code ``timeout`` is raised. A DICOMweb node raises
    :class:`~viewer.net.nodes.ConfigError` before anything is sent.
    """
    if node.is_web:
        raise ConfigError(
            f"{node} is a DICOMweb node: the Modality Worklist is a DIMSE service (C-FIND, "
            "PS3.4 K.6) that DICOMweb does not offer; query the RIS's DIMSE node (AE title, "
            "host and port) instead"
        )
    limit = MAX_ITEMS if limit is None else limit
    if cancel is not None and cancel.is_set():
        return WorklistResult([], cancelled=True)
    model = ModalityWorklistInformationModelFind
    assoc = open_association(node, local, [build_context(model, list(contexts.UNCOMPRESSED))])
    healthy = False
    stop = threading.Event()
    done = threading.Event()
    expired = threading.Event()

    def watch() -> None:
        end = None if deadline is None else time.monotonic() + deadline
        while True:
            if cancel is not None and cancel.is_set():
                stop.set()
                return
            if end is not None and time.monotonic() >= end:
                expired.set()
                stop.set()
                return
            if done.wait(0.02):
                return

    watcher = threading.Thread(target=watch, name="worklist-deadline", daemon=True)
    watcher.start()
    try:
        _pick_model(assoc, (model,))
        items, stopped = run_find_as(
            item_from_identifier, assoc, model, query.identifier(), cancel=stop, limit=limit
        )
        healthy = assoc.is_established
    finally:
        done.set()
        watcher.join(timeout=5)
        close_association(assoc, abort=not healthy)
    if expired.is_set():
        raise NetError(
            diagnose.TIMEOUT,
            f"{node} did not finish answering the worklist query within {deadline:g} s",
        )
    cancelled = stopped and cancel is not None and cancel.is_set()
    stopped_at = len(items) if len(items) >= limit and not cancelled else 0
    return WorklistResult(items, cancelled, stopped_at)
