"""Reconcile an outside study with the hospital's identity (an order of the worklist, or typed in).

An outside study (a patient's CD, a referral) carries the other hospital's Patient ID, and often
its own accession number. Before it goes to our PACS its patient attributes are coerced to the
hospital's (IHE Import Reconciliation Workflow): :func:`plan` reads the stored instances' headers
and builds a :class:`Reconciliation`, the mapping old -> new per attribute that is shown to the
user before anything is written or sent; :func:`write` then writes reconciled COPIES into a
staging folder. The stored originals are never touched.

Each copy carries, per PS3.3 C.12.1 (SOP Common Module):

- the coerced attributes (Patient's Name, Patient ID, Issuer of Patient ID, Birth Date, Sex,
  Accession Number, Study Description: each only when the target gives a value);
- the outside Patient ID (with its issuer) kept in Other Patient IDs Sequence (0010,1002),
  Type of Patient ID ``TEXT``;
- one new item of Original Attributes Sequence (0400,0561) for this modification event:
  Attribute Modification DateTime, Modifying System, Source of Previous Values, Reason for the
  Attribute Modification (``COERCE``, or ``CORRECT``) and Modified Attributes Sequence with
  the previous values of every attribute changed;
- optionally (``new_uids``) new Study, Series and SOP Instance UIDs, consistent across the study
  (the study takes the order's Study Instance UID when it has one); the File Meta's Media Storage
  SOP Instance UID follows, and every UID of the study referenced inside the data set (Referenced
  SOP Instance UID in any sequence, a presentation state's or SR's references) is remapped.

One file is read and written at a time; values larger than a small threshold (pixel data) are
read from the original when the copy is written and copied as they are: never decoded, never
re-encoded, in the file's own transfer syntax. Each copy is written to a temporary name, synced
and renamed: a copy in the staging folder is complete or absent. The staging folder holds only
the copies (``S<series>/I<instance>.dcm``), so it can be handed to ``lightbox send``.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, generate_uid

from viewer import __version__
from viewer.store.index import list_series, series_instances
from viewer.store.store import Store, StoreError, fsync_dir

REASONS = ("COERCE", "CORRECT")

#: Identity attributes a reconciliation may change, in the order they are shown.
ATTRIBUTES = (
    "PatientID",
    "IssuerOfPatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyDescription",
)
UID_ATTRIBUTES = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")

#: Values longer than this are read from the original only while the copy is written.
_DEFER = 64 * 1024

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the study belongs to in this hospital (a worklist item, or typed in). Empty fields
    are left as the study has them; ``patient_id`` is required."""

    patient_id: str
    issuer_of_patient_id: str = ""
    patient_name: str = ""
    birth_date: str = ""
    sex: str = ""
    accession_number: str = ""
    study_description: str = ""
    #: The order's Study Instance UID: used for the copies when new UIDs are asked for.
    study_instance_uid: str = ""

    def __post_init__(self) -> None:
        if not self.patient_id.strip():
            raise ValueError("the target identity needs a Patient ID")
        if self.sex and self.sex not in ("M", "F", "O"):
            raise ValueError(f"sex {self.sex!r}: M, F or O")
        if self.birth_date and not (len(self.birth_date) == 8 and self.birth_date.isdigit()):
            raise ValueError(f"birth date {self.birth_date!r} is not YYYYMMDD")
        for value in (self.patient_id, self.issuer_of_patient_id, self.accession_number):
            if len(value) > 64 or "\\" in value:
                raise ValueError(f"{value!r}: at most 64 characters, no backslash")

    def values(self) -> dict[str, str]:
        """Attribute keyword -> new value, for the attributes this identity sets."""
        values = {
            "PatientID": self.patient_id,
            "IssuerOfPatientID": self.issuer_of_patient_id,
            "PatientName": self.patient_name,
            "PatientBirthDate": self.birth_date,
            "PatientSex": self.sex,
            "AccessionNumber": self.accession_number,
            "StudyDescription": self.study_description,
        }
        return {k: v for k, v in values.items() if v}


@dataclass(slots=True)
class Change:
    """One attribute: the values the study has (several when its instances disagree) -> new."""

    keyword: str
    old: list[str]
    new: str

    @property
    def changes(self) -> bool:
        return self.old != [self.new]


@dataclass(slots=True)
class Reconciliation:
    """The plan: shown to the user before anything is written (see :func:`plan`)."""

    study_instance_uid: str
    target: Identity
    changes: list[Change]
    instances: int
    reason: str = "COERCE"
    new_uids: bool = False
    #: Old UID -> new UID (study, series, instances) when ``new_uids``.
    uid_map: dict[str, str] = field(default_factory=dict)
    #: The outside Patient IDs (with issuer) kept in Other Patient IDs Sequence.
    other_ids: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def new_study_instance_uid(self) -> str:
        return self.uid_map.get(self.study_instance_uid, self.study_instance_uid)

    def to_dict(self) -> dict[str, Any]:
        return {
            "study_instance_uid": self.study_instance_uid,
            "new_study_instance_uid": self.new_study_instance_uid,
            "instances": self.instances,
            "reason": self.reason,
            "changes": [
                {"attribute": c.keyword, "old": c.old, "new": c.new, "changes": c.changes}
                for c in self.changes
            ],
            "other_patient_ids": [{"id": i, "issuer": s} for i, s in self.other_ids],
            "new_uids": self.new_uids,
            "problems": list(self.problems),
        }


@dataclass(slots=True)
class WriteReport:
    folder: Path
    written: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems and not self.cancelled


def _str(ds: Dataset, keyword: str) -> str:
    try:
        value = ds.get(keyword, "")
    except Exception:
        return ""
    return "" if value is None else str(value).strip()


def _instances(store: Store, study_instance_uid: str) -> list[tuple[int, int, Any]]:
    """(series index, instance index, model.Instance) of every instance of the study."""
    out = []
    for s, row in enumerate(list_series(store, study_instance_uid), start=1):
        for i, inst in enumerate(series_instances(store, row.series_instance_uid), start=1):
            out.append((s, i, inst))
    return out


def plan(
    store: Store,
    study_instance_uid: str,
    target: Identity,
    *,
    new_uids: bool = False,
    reason: str = "COERCE",
) -> Reconciliation:
    """The mapping old -> new for a stored study; reads each instance's header once (nothing
    written). Raises :class:`StoreError` when the study is not in the store."""
    if reason not in REASONS:
        raise ValueError(f"reason {reason!r}: one of {', '.join(REASONS)}")
    instances = _instances(store, study_instance_uid)
    if not instances:
        raise StoreError(f"{study_instance_uid}: not in the local store")
    wanted = target.values()
    seen: dict[str, list[str]] = {k: [] for k in wanted}
    other_ids: list[tuple[str, str]] = []
    problems: list[str] = []
    for _s, _i, inst in instances:
        try:
            ds = pydicom.dcmread(inst.path, stop_before_pixels=True)
        except Exception as exc:
            problems.append(f"{inst.path}: cannot be read: {exc}")
            continue
        for keyword in wanted:
            value = _str(ds, keyword)
            if value not in seen[keyword]:
                seen[keyword].append(value)
        pair = (_str(ds, "PatientID"), _str(ds, "IssuerOfPatientID"))
        if pair[0] and pair[0] != target.patient_id and pair not in other_ids:
            other_ids.append(pair)
    changes = [Change(k, seen[k], wanted[k]) for k in ATTRIBUTES if k in wanted]
    uid_map: dict[str, str] = {}
    if new_uids:
        uid_map[study_instance_uid] = target.study_instance_uid or generate_uid(prefix=None)
        for _s, _i, inst in instances:
            if inst.series_instance_uid not in uid_map:
                uid_map[inst.series_instance_uid] = generate_uid(prefix=None)
            uid_map[inst.sop_instance_uid] = generate_uid(prefix=None)
    return Reconciliation(
        study_instance_uid,
        target,
        changes,
        len(instances),
        reason,
        new_uids,
        uid_map,
        other_ids,
        problems,
    )


def _remap_uids(ds: Dataset, uid_map: dict[str, str], depth: int = 0) -> None:
    """Every UI value of the study in ``ds`` and its sequences -> its new UID (not inside
    Original Attributes Sequence: those are the previous values)."""
    if depth > 64:
        return
    for elem in ds:
        if elem.VR == "SQ":
            if elem.keyword == "OriginalAttributesSequence":
                continue
            for item in elem.value or []:
                _remap_uids(item, uid_map, depth + 1)
        elif elem.VR == "UI" and elem.value:
            values = elem.value if isinstance(elem.value, list | tuple) else [elem.value]
            if any(str(v) in uid_map for v in values):
                new = [uid_map.get(str(v), str(v)) for v in values]
                elem.value = new if len(new) > 1 else new[0]


def _modification_time() -> str:
    now = datetime.datetime.now(datetime.UTC)
    return now.strftime("%Y%m%d%H%M%S.%f") + "+0000"


def reconcile_dataset(ds: Dataset, rec: Reconciliation, *, when: str | None = None) -> None:
    """Coerce one data set in memory as the plan says (see the module docstring)."""
    target = rec.target
    wanted = target.values()
    modified = Dataset()
    non_ascii = any(not v.isascii() for v in wanted.values())
    if non_ascii and _str(ds, "SpecificCharacterSet").upper() not in ("ISO_IR 192",):
        ds.decode()  # every text value to str with the old character set, then re-encoded
        if "SpecificCharacterSet" in ds:
            modified.SpecificCharacterSet = ds.SpecificCharacterSet
        ds.SpecificCharacterSet = "ISO_IR 192"
    old_id, old_issuer = _str(ds, "PatientID"), _str(ds, "IssuerOfPatientID")
    for keyword, value in wanted.items():
        if _str(ds, keyword) == value:
            continue
        if keyword in ds:
            modified[keyword] = DataElement(ds[keyword].tag, ds[keyword].VR, ds[keyword].value)
        setattr(ds, keyword, value)
    if old_id and old_id != target.patient_id:
        items = list(ds.get("OtherPatientIDsSequence") or [])
        present = any(
            _str(i, "PatientID") == old_id and _str(i, "IssuerOfPatientID") == old_issuer
            for i in items
        )
        if not present:
            if items:
                modified.OtherPatientIDsSequence = Sequence([_copy(i) for i in items])
            other = Dataset()
            other.PatientID = old_id
            if old_issuer:
                other.IssuerOfPatientID = old_issuer
            other.TypeOfPatientID = "TEXT"
            ds.OtherPatientIDsSequence = Sequence([*items, other])
    if rec.uid_map:
        for keyword in UID_ATTRIBUTES:
            old = _str(ds, keyword)
            if old in rec.uid_map:
                modified[keyword] = DataElement(ds[keyword].tag, "UI", old)
        _remap_uids(ds, rec.uid_map)
        sop = _str(ds, "SOPInstanceUID")
        if hasattr(ds, "file_meta") and "MediaStorageSOPInstanceUID" in ds.file_meta:
            ds.file_meta.MediaStorageSOPInstanceUID = UID(sop)
    if len(modified) == 0:
        return
    event = Dataset()
    event.AttributeModificationDateTime = when or _modification_time()
    event.ModifyingSystem = f"Lightbox {__version__}"[:64]
    event.SourceOfPreviousValues = _str(ds, "InstitutionName")[:64]
    event.ReasonForTheAttributeModification = rec.reason
    event.ModifiedAttributesSequence = Sequence([modified])
    history = list(ds.get("OriginalAttributesSequence") or [])
    ds.OriginalAttributesSequence = Sequence([*history, event])


def _copy(item: Dataset) -> Dataset:
    out = Dataset()
    for elem in item:
        out.add(DataElement(elem.tag, elem.VR, elem.value))
    return out


@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        yield tmp
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        tmp.replace(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write(
    store: Store,
    rec: Reconciliation,
    folder: Path,
    *,
    cancel: threading.Event | None = None,
    progress: Progress | None = None,
) -> WriteReport:
    """Write the reconciled copies of the plan's study into ``folder`` (created; it must be
    empty or absent: a staging folder holds one reconciliation). One file at a time; the store
    is only read."""
    report = WriteReport(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise StoreError(f"{folder}: the staging folder must be empty or absent")
    folder.mkdir(parents=True, exist_ok=True)
    instances = _instances(store, rec.study_instance_uid)
    when = _modification_time()  # one event: one time for the whole study
    for done, (s, i, inst) in enumerate(instances):
        if cancel is not None and cancel.is_set():
            report.cancelled = True
            break
        sub = folder / f"S{s:03d}"
        sub.mkdir(exist_ok=True)
        target = sub / f"I{i:05d}.dcm"
        try:
            ds = pydicom.dcmread(inst.path, defer_size=_DEFER)
            reconcile_dataset(ds, rec, when=when)
            with _atomic(target) as tmp:
                ds.save_as(tmp, enforce_file_format=True)
        except Exception as exc:
            report.problems.append(f"{inst.path}: not reconciled: {exc}")
            continue
        report.written.append(target)
        if progress is not None:
            progress(done + 1, len(instances))
    for sub in {p.parent for p in report.written}:
        fsync_dir(sub)
    fsync_dir(folder)
    return report
