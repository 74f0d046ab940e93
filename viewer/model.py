"""Patient / Study / Series / Instance records shared by every part of Lightbox.

These are plain data: what the media reader, the store, the network and the view say about
DICOM objects (PS3.3 Annex A composite information model: patient > study > series > instance).
No behaviour here depends on Qt or on where an object came from.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from viewer.text import escape


class Kind(enum.StrEnum):
    """What sort of fact a problem states, so that one fact found by two readers (the DICOMDIR
    reader and the health check both find a missing file) is one line."""

    MISSING = "missing"
    """A file the DICOMDIR references is not on the media."""
    UNREFERENCED = "unreferenced"
    """A DICOM file on the media that the DICOMDIR does not reference."""
    OTHER = "other"
    """Anything else: told apart by its words."""


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with one file, record or peer, said in words a person can act on.

    ``path`` and ``problem`` hold the text as it is (a name from a disc, a value from a file);
    ``str()`` is the one line to show: both escaped by :func:`viewer.text.escape`, so that a
    control character from a disc never reaches a terminal and a newline in a name cannot make
    two lines of one problem. ``kind`` says which fact it is (:func:`merge_problems`).
    """

    path: str
    problem: str
    kind: Kind = Kind.OTHER

    def __str__(self) -> str:
        return f"{escape(self.path)}: {escape(self.problem)}"

    @property
    def key(self) -> tuple[str, str]:
        """Two problems with one key state one fact."""
        return (self.path, self.kind if self.kind is not Kind.OTHER else self.problem)


def merge_problems(*lists: Iterable[Problem]) -> list[Problem]:
    """The problems of several readers, each fact once (the first reader's words), in order."""
    seen: set[tuple[str, str]] = set()
    merged = []
    for problems in lists:
        for problem in problems:
            if problem.key not in seen:
                seen.add(problem.key)
                merged.append(problem)
    return merged


@dataclass(slots=True)
class Instance:
    """One composite SOP instance (a DICOM file) as far as its header tells.

    Geometry (PS3.3 C.7.6.2) is kept so that a series can be sorted along its slice normal.
    """

    path: Path
    sop_instance_uid: str
    sop_class_uid: str = ""
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    transfer_syntax_uid: str = ""
    instance_number: int | None = None
    number_of_frames: int = 1
    rows: int = 0
    columns: int = 0
    image_position: tuple[float, float, float] | None = None
    image_orientation: tuple[float, float, float, float, float, float] | None = None
    acquisition_time: str = ""


@dataclass(slots=True)
class Series:
    series_instance_uid: str
    modality: str = ""
    series_number: int | None = None
    series_description: str = ""
    instances: list[Instance] = field(default_factory=list)


@dataclass(slots=True)
class Study:
    study_instance_uid: str
    study_date: str = ""
    study_time: str = ""
    study_description: str = ""
    accession_number: str = ""
    series: list[Series] = field(default_factory=list)


@dataclass(slots=True)
class Patient:
    """A patient as the files name them; ``patient_id`` is None when the files give none."""

    patient_id: str | None
    patient_name: str = ""
    birth_date: str = ""
    sex: str = ""
    studies: list[Study] = field(default_factory=list)
