"""A file, a folder or a DICOMDIR -> the instances it holds and the problems met on the way.

Only headers are read (no pixel data), so that a series can be sorted and its first image shown
before anything is decoded (issue 2 section 3). Files are recognised by content, not by name:
a Part 10 file has ``DICM`` after its 128-byte preamble (PS3.10 section 7.1), and files without
preamble or meta (as older media hold them) are recognised by a plausible first data element
(PS3.5 section 7.1). Anything else is skipped silently; something that looks like DICOM and
fails to read is listed as a problem, and the rest still loads.

A DICOMDIR (PS3.10 section 8, PS3.3 F.3) is read through its Directory Record Sequence; each
Referenced File ID (PS3.10 section 8.2: at most 8 components, relative to the file-set root) is
resolved inside the root, matching names case-insensitively as media written on other systems
need, and a reference that would leave the root is refused.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom

from viewer import model
from viewer.imaging import decode

log = logging.getLogger(__name__)

#: Media Storage Directory Storage SOP Class (PS3.4 Annex B.5): the DICOMDIR itself.
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"

#: Groups a DICOM data set without preamble may start with (little or big endian).
_FIRST_GROUPS = {0x0002, 0x0004, 0x0008}

ProgressCallback = Callable[[int, int], None]


@dataclass(slots=True)
class ScanResult:
    """What a scan found: every instance, the problems, and the patient > study > series tree."""

    instances: list[model.Instance] = field(default_factory=list)
    problems: list[model.Problem] = field(default_factory=list)
    patients: list[model.Patient] = field(default_factory=list)

    def series(self) -> list[model.Series]:
        """Every series in the tree, for :func:`viewer.imaging.stack.build_stacks`."""
        return [s for p in self.patients for st in p.studies for s in st.series]


def looks_like_dicom(path: Path) -> bool:
    """True when the first bytes are those of a DICOM file (PS3.10 7.1) or bare data set."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    if len(head) < 8:
        return False
    little = int.from_bytes(head[0:2], "little")
    big = int.from_bytes(head[0:2], "big")
    if little not in _FIRST_GROUPS and big not in _FIRST_GROUPS:
        return False
    vr = head[4:6]
    if vr.isalpha() and vr.isupper():
        return True  # explicit VR
    length = int.from_bytes(head[4:8], "little" if little in _FIRST_GROUPS else "big")
    return length < 1 << 16  # implicit VR: a first element of sane length


def _read_header(path: Path) -> tuple[pydicom.Dataset, list[str]]:
    """Headers only, through the shared robust reader; raises ``decode.DecodeError``."""
    dicom_file = decode.read_file(path, headers_only=True)
    return dicom_file.dataset, dicom_file.warnings


def _get(ds: pydicom.Dataset, keyword: str) -> Any:
    """An element's value, None if absent or if its value cannot be converted (bad IS, DS)."""
    try:
        return ds.get(keyword)
    except Exception:
        return None


def _text(ds: pydicom.Dataset, keyword: str) -> str:
    value = _get(ds, keyword)
    if value is None:
        return ""
    if isinstance(value, pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _int(value: Any) -> int | None:
    if isinstance(value, pydicom.multival.MultiValue):
        value = value[0] if len(value) else None
    if value is None or value == "":
        return None
    try:
        return int(float(str(value).strip()))
    except (TypeError, ValueError, OverflowError):
        return None


def _floats(value: Any, count: int) -> tuple[float, ...] | None:
    if value is None:
        return None
    items = list(value) if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else []
    if len(items) != count:
        return None
    try:
        numbers = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        return None
    if not all(n == n and abs(n) != float("inf") for n in numbers):
        return None
    return numbers


def _geometry(ds: pydicom.Dataset) -> tuple[Any, Any]:
    """Image Position/Orientation (PS3.3 C.7.6.2), or from the shared functional groups of an
    enhanced multi-frame object (PS3.3 C.7.6.16.2.3) when the top level has none."""
    position = _get(ds, "ImagePositionPatient")
    orientation = _get(ds, "ImageOrientationPatient")
    if orientation is None:
        shared = _get(ds, "SharedFunctionalGroupsSequence")
        try:
            if shared:
                plane = shared[0].get("PlaneOrientationSequence")
                if plane:
                    orientation = plane[0].get("ImageOrientationPatient")
        except (AttributeError, IndexError, TypeError):
            orientation = None
    return position, orientation


def instance_from_dataset(ds: pydicom.Dataset, path: Path) -> model.Instance:
    """The :class:`model.Instance` a header describes (tags in PS3.3 C.7.6.1, C.7.6.2, C.7.6.3)."""
    meta = getattr(ds, "file_meta", None)
    meta_get = meta.get if meta is not None else (lambda _k, d=None: d)
    position, orientation = _geometry(ds)
    frames = _int(_get(ds, "NumberOfFrames"))
    return model.Instance(
        path=Path(path),
        sop_instance_uid=(
            _text(ds, "SOPInstanceUID") or str(meta_get("MediaStorageSOPInstanceUID", ""))
        ),
        sop_class_uid=_text(ds, "SOPClassUID") or str(meta_get("MediaStorageSOPClassUID", "")),
        study_instance_uid=_text(ds, "StudyInstanceUID"),
        series_instance_uid=_text(ds, "SeriesInstanceUID"),
        transfer_syntax_uid=str(meta_get("TransferSyntaxUID", "") or ""),
        instance_number=_int(_get(ds, "InstanceNumber")),
        number_of_frames=max(frames, 1) if frames is not None else 1,
        rows=_int(_get(ds, "Rows")) or 0,
        columns=_int(_get(ds, "Columns")) or 0,
        image_position=_floats(position, 3),  # type: ignore[arg-type]
        image_orientation=_floats(orientation, 6),  # type: ignore[arg-type]
        acquisition_time=_text(ds, "AcquisitionTime"),
    )


class _Tree:
    """Builds Patient > Study > Series > Instance (PS3.3 Annex A) from headers as they come."""

    def __init__(self) -> None:
        self.patients: dict[tuple[str | None, str], model.Patient] = {}
        self.studies: dict[str, model.Study] = {}
        self.series: dict[str, model.Series] = {}

    def add(self, ds: pydicom.Dataset, instance: model.Instance) -> None:
        patient_id = _text(ds, "PatientID") or None
        name = _text(ds, "PatientName")
        patient = self.patients.get((patient_id, name))
        if patient is None:
            patient = model.Patient(
                patient_id=patient_id,
                patient_name=name,
                birth_date=_text(ds, "PatientBirthDate"),
                sex=_text(ds, "PatientSex"),
            )
            self.patients[(patient_id, name)] = patient
        study = self.studies.get(instance.study_instance_uid)
        if study is None:
            study = model.Study(
                study_instance_uid=instance.study_instance_uid,
                study_date=_text(ds, "StudyDate"),
                study_time=_text(ds, "StudyTime"),
                study_description=_text(ds, "StudyDescription"),
                accession_number=_text(ds, "AccessionNumber"),
            )
            self.studies[instance.study_instance_uid] = study
            patient.studies.append(study)
        series = self.series.get(instance.series_instance_uid)
        if series is None:
            series = model.Series(
                series_instance_uid=instance.series_instance_uid,
                modality=_text(ds, "Modality"),
                series_number=_int(_get(ds, "SeriesNumber")),
                series_description=_text(ds, "SeriesDescription"),
            )
            self.series[instance.series_instance_uid] = series
            study.series.append(series)
        series.instances.append(instance)


def _walk(root: Path) -> Iterator[Path]:
    """Files under ``root`` in a stable order: each folder's names sorted, files before folders."""
    for folder, dirs, files in os.walk(root, onerror=None, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            yield Path(folder) / name


def _is_dicomdir_header(ds: pydicom.Dataset) -> bool:
    meta = getattr(ds, "file_meta", None)
    sop_class = str(meta.get("MediaStorageSOPClassUID", "")) if meta is not None else ""
    return sop_class == MEDIA_STORAGE_DIRECTORY or "DirectoryRecordSequence" in ds


def _find_entry(folder: Path, name: str, listings: dict[Path, dict[str, str]]) -> Path | None:
    """``name`` inside ``folder``: exact, then case-insensitive, then with ISO 9660 ';1'."""
    if folder not in listings:
        try:
            entries = os.listdir(folder)
        except OSError:
            entries = []
        table: dict[str, str] = {}
        for entry in sorted(entries):
            table.setdefault(entry, entry)
            table.setdefault(entry.casefold(), entry)
            stripped = entry.split(";", 1)[0].rstrip(".")
            table.setdefault(stripped.casefold(), entry)
        listings[folder] = table
    table = listings[folder]
    hit = table.get(name) or table.get(name.casefold())
    return folder / hit if hit is not None else None


def resolve_file_id(
    root: Path, components: Iterable[str], listings: dict[Path, dict[str, str]]
) -> Path | None:
    """A Referenced File ID resolved inside ``root`` (PS3.10 8.2), or None if absent or unsafe."""
    parts = [str(c).strip() for c in components]
    if not parts or any(
        not p or p in (".", "..") or "/" in p or "\\" in p or "\0" in p or ":" in p for p in parts
    ):
        return None
    current = root
    for part in parts:
        found = _find_entry(current, part, listings)
        if found is None:
            return None
        current = found
    try:
        real = current.resolve()
        real.relative_to(root.resolve())
    except (OSError, ValueError):
        return None
    return current


def _dicomdir_references(
    dicomdir: Path, ds: pydicom.Dataset, problems: list[model.Problem]
) -> list[Path]:
    root = dicomdir.parent
    listings: dict[Path, dict[str, str]] = {}
    paths: list[Path] = []
    seen: set[Path] = set()
    for record in ds.get("DirectoryRecordSequence", []) or []:
        file_id = record.get("ReferencedFileID")
        if file_id is None:
            continue
        components = [file_id] if isinstance(file_id, str) else list(file_id)
        shown = "\\".join(str(c) for c in components)
        path = resolve_file_id(root, components, listings)
        if path is None:
            leaves = any(str(c).strip() in ("..", ".") or "/" in str(c) for c in components)
            reason = "refers outside the file-set" if leaves else "is missing"
            problems.append(model.Problem(str(dicomdir), f"referenced file {shown} {reason}"))
            continue
        if path not in seen:
            seen.add(path)
            paths.append(path)
    return paths


def _read_one(
    path: Path,
    result: ScanResult,
    tree: _Tree,
    *,
    quiet_non_dicom: bool,
    allow_dicomdir: bool,
) -> pydicom.Dataset | None:
    """Read one header into ``result``; return it if it is a DICOMDIR to follow."""
    if quiet_non_dicom and not looks_like_dicom(path):
        return None
    try:
        ds, warnings = _read_header(path)
    except decode.DecodeError as exc:
        result.problems.append(model.Problem(str(path), exc.reason))
        return None
    except Exception as exc:  # a reader bug must not stop the scan
        result.problems.append(model.Problem(str(path), f"cannot read: {exc}"))
        return None
    for warning in warnings:
        log.debug("%s: %s", path, warning)
    if _is_dicomdir_header(ds):
        return ds if allow_dicomdir else None
    instance = instance_from_dataset(ds, path)
    if not instance.sop_instance_uid:
        problem = "no SOP Instance UID: not a DICOM instance"
        result.problems.append(model.Problem(str(path), problem))
        return None
    result.instances.append(instance)
    tree.add(ds, instance)
    return None


def scan(
    path: str | os.PathLike[str],
    *,
    cancel: threading.Event | None = None,
    progress: ProgressCallback | None = None,
) -> ScanResult:
    """Instances and problems under ``path`` (a file, a folder walked recursively, or a DICOMDIR).

    Blocks; call it from a worker. ``cancel`` stops between files (the result then holds what
    was read so far); ``progress(done, total)`` is called after each file.
    """
    root = Path(path)
    result = ScanResult()
    tree = _Tree()
    if root.is_dir():
        files = list(_walk(root))
        quiet = True
    elif root.is_file():
        dicomdir = _read_one(root, result, tree, quiet_non_dicom=False, allow_dicomdir=True)
        if dicomdir is None:
            if not result.instances and not result.problems:
                result.problems.append(model.Problem(str(root), "not a DICOM file"))
            result.patients = list(tree.patients.values())
            if progress is not None:
                progress(1, 1)
            return result
        files = _dicomdir_references(root, dicomdir, result.problems)
        quiet = False
    else:
        result.problems.append(model.Problem(str(root), "no such file or folder"))
        return result

    total = len(files)
    for done, file_path in enumerate(files, start=1):
        if cancel is not None and cancel.is_set():
            break
        _read_one(file_path, result, tree, quiet_non_dicom=quiet, allow_dicomdir=False)
        if progress is not None:
            progress(done, total)
    result.patients = list(tree.patients.values())
    return result
