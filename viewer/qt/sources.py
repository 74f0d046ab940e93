"""What the study browser lists: a :class:`StudySource` (the local store, an opened medium; a
remote archive later) gives study rows for a filter and the series of a study, so that the
browser has no branch per kind of source. Qt-free.
"""

from __future__ import annotations

import re
from typing import Protocol

from viewer import model
from viewer.media.scan import ScanResult
from viewer.store import (
    Store,
    StudyFilter,
    StudyRow,
    list_series,
    list_studies,
    series_instances,
)


class StudySource(Protocol):
    """Where the browser's studies come from."""

    label: str

    def studies(self, where: StudyFilter) -> list[tuple[StudyRow, object]]:
        """The studies passing ``where``, each with the key :meth:`series_of` takes."""
        ...

    def series_of(self, key: object) -> list[model.Series]:
        """The series of one study, with their instances (paths to read)."""
        ...


class StoreStudies:
    """The local store: rows from its index (raises StoreError or ValueError on a bad filter)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.label = "Local store"

    def studies(self, where: StudyFilter) -> list[tuple[StudyRow, object]]:
        return [(r, r.study_instance_uid) for r in list_studies(self.store, where)]

    def series_of(self, key: object) -> list[model.Series]:
        if not isinstance(key, str):
            return []
        return [
            model.Series(
                series_instance_uid=row.series_instance_uid,
                modality=row.modality,
                series_number=row.series_number,
                series_description=row.series_description,
                instances=series_instances(self.store, row.series_instance_uid),
            )
            for row in list_series(self.store, key)
        ]


class MediaStudies:
    """An opened medium (a disc, a folder, files, an ISO image): rows from what its scan found.

    For an ISO image the scan's result holds the image's unpacked folder
    (:attr:`viewer.media.scan.ScanResult.discs`): it stays while this source (or a series shown
    from it) is open; :meth:`close` lets go of it."""

    def __init__(self, result: ScanResult, label: str) -> None:
        self.result = result
        self.label = label
        self.rows = media_studies(result)

    def close(self) -> None:
        self.result.close()

    def studies(self, where: StudyFilter) -> list[tuple[StudyRow, object]]:
        return [(r, k) for k, (r, _study) in enumerate(self.rows) if study_matches(r, where)]

    def series_of(self, key: object) -> list[model.Series]:
        if isinstance(key, int) and 0 <= key < len(self.rows):
            return list(self.rows[key][1].series)
        return []


def name_pattern(text: str) -> str:
    """What the user typed as a matching pattern: a text without ``*`` or ``?`` matches names
    that start with it (typing "mull" finds "Müller^..." only if it starts so); wildcards are
    kept as typed (PS3.4 C.2.2.2.4)."""
    text = text.strip()
    if not text:
        return ""
    return text if ("*" in text or "?" in text) else text + "*"


def wildcard_regex(pattern: str) -> re.Pattern[str]:
    """``*`` any run, ``?`` one character, everything else literal; case-insensitive."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.IGNORECASE | re.DOTALL)


def study_matches(row: StudyRow, where: StudyFilter) -> bool:
    """The store's filter (:func:`viewer.store.list_studies`) applied to a scanned study."""
    if where.patient_name and not wildcard_regex(where.patient_name).fullmatch(
        row.patient_name.casefold()
    ):
        return False
    if where.patient_id and not wildcard_regex(where.patient_id).fullmatch(
        (row.patient_id or "").casefold()
    ):
        return False
    if where.date_from and not row.study_date >= where.date_from:
        return False
    if where.date_to and not (row.study_date and row.study_date <= where.date_to):
        return False
    modality = where.modality.strip().upper()
    return not modality or modality in {m.upper() for m in row.modalities}


def media_studies(result: ScanResult) -> list[tuple[StudyRow, model.Study]]:
    """Study-list rows for what a scan found (the same shape as the store's rows)."""
    rows: list[tuple[StudyRow, model.Study]] = []
    for patient in result.patients:
        for study in patient.studies:
            row = StudyRow(
                study_instance_uid=study.study_instance_uid,
                patient_name=patient.patient_name,
                patient_id=patient.patient_id,
                birth_date=patient.birth_date,
                sex=patient.sex,
                study_date=study.study_date,
                study_time=study.study_time,
                study_description=study.study_description,
                accession_number=study.accession_number,
                modalities=tuple(sorted({s.modality for s in study.series if s.modality})),
                num_series=len(study.series),
                num_instances=sum(len(s.instances) for s in study.series),
            )
            rows.append((row, study))
    return rows
