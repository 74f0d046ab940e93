"""What a burn plans and what it wrote: the data types the writer, verify, web pages and
de-identification share (they sit below ``writer`` so that none of them imports it back), and how
a header's text is shown on the media's pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from viewer.media import dicomdir_writer as ddw
from viewer.media.profiles import Action, Medium, Profile
from viewer.text import escape, person_name, plural, show_date

_PER_FILE_OVERHEAD = 2048 + 600
"""Sector rounding on the disc and the file's DICOMDIR records, per file (an upper bound)."""


class MediaError(Exception):
    """The media cannot be written as asked (too large, target not empty, cancelled...)."""


class Cancelled(MediaError):
    pass


@dataclass(frozen=True, slots=True)
class Change:
    """One change to a dataset beyond the File Meta: which file, which attribute, why."""

    source: str
    attribute: str
    old: str
    new: str
    reason: str

    def __str__(self) -> str:
        # repr() shows the values' control characters as escapes; the source name is escaped.
        return (
            f"{escape(self.source)}: {self.attribute} {self.old!r} -> {self.new!r} ({self.reason})"
        )


@dataclass(slots=True)
class SourceFile:
    """One input file as planned: its header, where it goes and what happens to it."""

    path: Path
    header: ddw.Header
    action: Action
    estimated_size: int
    fills: dict[int, str] = field(default_factory=dict)
    file_id: tuple[str, ...] = ()

    @property
    def sop_instance_uid(self) -> str:
        return self.header.text(ddw.SOP_INSTANCE_UID)


@dataclass(slots=True)
class PlannedSeries:
    series_instance_uid: str
    files: list[SourceFile] = field(default_factory=list)


@dataclass(slots=True)
class PlannedStudy:
    study_instance_uid: str
    patient_key: str
    series: dict[str, PlannedSeries] = field(default_factory=dict)

    @property
    def files(self) -> list[SourceFile]:
        return [f for s in self.series.values() for f in s.files]

    @property
    def size(self) -> int:
        return sum(f.estimated_size + _PER_FILE_OVERHEAD for f in self.files)


@dataclass(slots=True)
class Plan:
    """What will be written: the studies per disc, the changes, the refused files."""

    profile: Profile
    medium: Medium
    discs: list[list[PlannedStudy]]
    changes: list[Change]
    skipped: list[str]

    @property
    def total_size(self) -> int:
        return sum(s.size for disc in self.discs for s in disc)


@dataclass(slots=True)
class WrittenFile:
    source: str
    file_id: tuple[str, ...]
    sha256: str
    size: int
    sop_instance_uid: str


@dataclass(slots=True)
class DiscResult:
    """One complete file-set: its folder, File-set ID and what was written to it."""

    index: int
    count: int
    root: Path
    fileset_id: str
    files: list[WrittenFile]
    tree: dict[str, dict[str, dict[str, list[str]]]]
    """patient ID -> study UID -> series UID -> SOP Instance UIDs, as selected."""
    extra_sha256: dict[str, str] = field(default_factory=dict)
    """DICOMDIR, README.TXT and web files: relative path -> SHA-256 of what was meant."""

    def expected(self) -> dict[str, str]:
        """Relative path (``/`` separated) -> SHA-256, for read-back verification."""
        out = {"/".join(f.file_id): f.sha256 for f in self.files}
        out.update(self.extra_sha256)
        return out


def display_text(header: ddw.Header, tag: int) -> str:
    """A text value decoded with the file's Specific Character Set (PS3.5 6.1), for people."""
    item = header.elements.get(tag)
    if item is None:
        return ""
    charset_item = header.elements.get(ddw.SPECIFIC_CHARACTER_SET)
    charsets = (
        [c.strip() for c in charset_item[1].decode("ascii", "replace").split("\\")]
        if charset_item
        else ["ISO_IR 6"]
    )
    try:
        from pydicom.charset import convert_encodings, decode_bytes

        text = decode_bytes(item[1], convert_encodings(charsets), set())
    except Exception:
        text = item[1].decode("latin-1", "replace")
    return text.rstrip("\x00 ").strip()


def contents_lines(studies: list[PlannedStudy]) -> list[str]:
    """Whose studies these are, as README.TXT and the export wizard say it: ``Patient: NAME
    (ID ...)`` then one ``  Study DATE  MODALITIES  DESCRIPTION  (n series, m files)`` line
    each. Text from the files, not escaped (the caller escapes for its medium)."""
    patients: dict[str, list[PlannedStudy]] = {}
    for study in studies:
        patients.setdefault(study.patient_key, []).append(study)
    lines: list[str] = []
    for group in patients.values():
        first = group[0].files[0]
        name = person_name(display_text(first.header, ddw.PATIENT_NAME)) or "(no name)"
        patient_id = first.fills.get(ddw.PATIENT_ID) or first.header.text(ddw.PATIENT_ID)
        lines.append(f"Patient: {name}" + (f" (ID {patient_id})" if patient_id else ""))
        for study in group:
            header = study.files[0].header
            date = study.files[0].fills.get(ddw.STUDY_DATE) or header.text(ddw.STUDY_DATE)
            modalities = sorted({f.header.text(ddw.MODALITY) or "OT" for f in study.files})
            description = display_text(header, ddw.STUDY_DESCRIPTION) or "(no description)"
            lines.append(
                f"  Study {show_date(date) or '(no date)'}  {'/'.join(modalities)}  "
                f"{description}  ({len(study.series)} series, {plural(len(study.files), 'file')})"
            )
    return lines
