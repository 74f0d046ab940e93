"""What the DIMSE and DICOMweb services share: the query and its answer (C-FIND, QIDO-RS),
a retrieve's progress and result (C-MOVE/C-GET, WADO-RS).

:mod:`viewer.net.find` and :mod:`viewer.net.retrieve` re-export these names; both dispatch to
:mod:`viewer.net.dicomweb` for a DICOMweb node, which imports its types from here (no cycle).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset

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


IsPresent = Callable[[str], bool]


@dataclass(slots=True)
class RetrieveProgress:
    """Counts so far; ``total`` is the number of instances to fetch (from C-FIND), 0 if unknown."""

    completed: int = 0
    failed: int = 0
    warning: int = 0
    remaining: int = 0
    total: int = 0
    skipped: int = 0


@dataclass(slots=True)
class RetrieveResult:
    completed: int = 0
    failed: int = 0
    warning: int = 0
    #: Already present, not fetched again.
    skipped: int = 0
    cancelled: bool = False
    #: Failed SOP Instance UIDs the peer named (PS3.4 C.4.2.1.4.2), when it did.
    failed_uids: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.cancelled and self.failed == 0
