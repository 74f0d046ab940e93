"""A file, a folder or a DICOMDIR -> the instances it holds and the problems met on the way.

Only headers are read (no pixel data), so that a series can be sorted and its first image shown
before anything is decoded (issue 2 section 3). Files are recognised by content, not by name:
a Part 10 file has ``DICM`` after its 128-byte preamble (PS3.10 section 7.1), and files without
preamble or meta (as older media hold them) are recognised by a plausible first data element
(PS3.5 section 7.1). Anything else is skipped silently; something that looks like DICOM and
fails to read is listed as a problem, and the rest still loads.

A DICOMDIR (PS3.10 section 8, PS3.3 F.3), named directly or found in the folder given, is read
by :func:`viewer.media.dicomdir.read_dicomdir`: record by record (one bad record never stops the
rest), Philips ``DIRFILE`` lower directories followed, File IDs resolved inside the media root
only (``..``, absolute IDs and links leading out are refused), names matched ignoring case, ``;1``
and an extension. Its problems (missing files, refused paths, broken records) are the scan's.
The referenced files' headers are then read, in record order, for what a record does not carry
(geometry to sort a series). A folder holding a DICOMDIR also lists the DICOM files no record
references, each named as a problem, so that nothing on the disc stays hidden. A directory that
cannot be read at all, or whose referenced files are all missing, is replaced by a scan of the
folder, and the problems say so.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from viewer import model
from viewer.media import dicomdir as dicomdir_reader
from viewer.media import disc_image, links

if TYPE_CHECKING:  # the readers load pydicom; a listing from a DICOMDIR alone needs neither
    import pydicom

    from viewer.dicom.describe import Description
    from viewer.media.disc_image import DiscImage

log = logging.getLogger(__name__)

#: Media Storage Directory Storage SOP Class (PS3.4 Annex B.5): the DICOMDIR itself.
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"

#: Groups a DICOM data set without preamble may start with (little or big endian).
_FIRST_GROUPS = {0x0002, 0x0004, 0x0008}

ProgressCallback = Callable[[int, int], None]

#: Folders with at least this many files are read by the worker processes.
PARALLEL_MIN_FILES = 64
#: Files per worker task when scanning in parallel.
SCAN_CHUNK = 16


@dataclass(slots=True)
class ScanResult:
    """What a scan found: every instance, the problems, and the patient > study > series tree."""

    instances: list[model.Instance] = field(default_factory=list)
    problems: list[model.Problem] = field(default_factory=list)
    patients: list[model.Patient] = field(default_factory=list)
    #: The DICOMDIR the whole result was listed from, no referenced file read (``headers=False``)
    listed_from: Path | None = None
    #: Disc images this result's files were unpacked from (:mod:`viewer.media.disc_image`):
    #: their folders stay until :meth:`close` (and no other handle keeps them) or the exit.
    discs: list[DiscImage] = field(default_factory=list)

    def close(self) -> None:
        """Let go of the unpacked disc images (their files go when no one else holds them)."""
        for disc in self.discs:
            disc.close()

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
    return _head_looks_like_dicom(head)


def _head_looks_like_dicom(head: bytes) -> bool:
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
    from viewer.imaging import decode

    dicom_file = decode.read_file(path, headers_only=True)
    return dicom_file.dataset, dicom_file.warnings


def instance_from_dataset(ds: pydicom.Dataset, path: Path) -> model.Instance:
    """The :class:`model.Instance` a header describes (:func:`viewer.dicom.describe.describe`)."""
    from viewer.dicom.describe import describe

    return instance_of(describe(ds), path)


def instance_of(d: Description, path: Path) -> model.Instance:
    return d.into(model.Instance, path=Path(path))


class _Tree:
    """Builds Patient > Study > Series > Instance (PS3.3 Annex A) from headers as they come."""

    def __init__(self) -> None:
        self.patients: dict[tuple[str | None, str], model.Patient] = {}
        self.studies: dict[str, model.Study] = {}
        self.series: dict[str, model.Series] = {}

    def add(self, d: Description, instance: model.Instance) -> None:
        patient = self.patients.get((d.patient_id, d.patient_name))
        if patient is None:
            patient = model.Patient(
                patient_id=d.patient_id,
                patient_name=d.patient_name,
                birth_date=d.birth_date,
                sex=d.sex,
            )
            self.patients[(d.patient_id, d.patient_name)] = patient
        study = self.studies.get(instance.study_instance_uid)
        if study is None:
            study = model.Study(
                study_instance_uid=instance.study_instance_uid,
                study_date=d.study_date,
                study_time=d.study_time,
                study_description=d.study_description,
                accession_number=d.accession_number,
            )
            self.studies[instance.study_instance_uid] = study
            patient.studies.append(study)
        # Files without a Series Instance UID are each a series of their own (as in stacks).
        series_key = instance.series_instance_uid or f"no-series:{instance.path}"
        series = self.series.get(series_key)
        if series is None:
            series = model.Series(
                series_instance_uid=instance.series_instance_uid,
                modality=d.modality,
                series_number=d.series_number,
                series_description=d.series_description,
            )
            self.series[series_key] = series
            study.series.append(series)
        series.instances.append(instance)


def _walk(root: Path, problems: list[model.Problem]) -> Iterator[Path]:
    """Files under ``root`` in a stable order: each folder's names sorted, files before folders.

    Never through a symbolic link (:mod:`viewer.media.links`): a link leaving the media is a
    problem and is not read; one staying inside points at a file read where it lives. A folder
    that cannot be listed is a problem.
    """
    return links.walk_files(root, problems, sort=True)


def _is_dicomdir_header(ds: pydicom.Dataset) -> bool:
    meta = getattr(ds, "file_meta", None)
    sop_class = str(meta.get("MediaStorageSOPClassUID", "")) if meta is not None else ""
    return sop_class == MEDIA_STORAGE_DIRECTORY or "DirectoryRecordSequence" in ds


#: What reading one file gave: an instance and its description, a problem, or nothing
#: (not DICOM, or a DICOMDIR met while walking a folder).
_Outcome = tuple["model.Instance | None", "Description | None", "model.Problem | None"]


def _read_record(path: Path, *, quiet_non_dicom: bool) -> tuple[_Outcome, pydicom.Dataset | None]:
    """Read one header; the dataset is returned only when it is a DICOMDIR."""
    if quiet_non_dicom:
        try:
            with open(path, "rb") as f:
                head = f.read(132)
        except OSError as exc:
            return (None, None, model.Problem(str(path), f"cannot read: {exc.strerror}")), None
        if not _head_looks_like_dicom(head):
            return (None, None, None), None
    from viewer.dicom.describe import describe
    from viewer.imaging import decode

    try:
        ds, warnings = _read_header(path)
    except decode.DecodeError as exc:
        return (None, None, model.Problem(str(path), exc.reason)), None
    except Exception as exc:  # a reader bug must not stop the scan
        return (None, None, model.Problem(str(path), f"cannot read: {exc}")), None
    for warning in warnings:
        log.debug("%s: %s", path, warning)
    if _is_dicomdir_header(ds):
        return (None, None, None), ds
    description = describe(ds)
    instance = instance_of(description, path)
    if not instance.sop_instance_uid and (instance.rows <= 0 or instance.columns <= 0):
        # Old ACR-NEMA images and some test files lack UIDs and are still shown; a data set
        # with neither a SOP Instance UID nor an image is not something to list.
        problem = "no SOP Instance UID and no image: not a DICOM instance"
        return (None, None, model.Problem(str(path), problem)), None
    return (instance, description, None), None


def _read_chunk(paths: Sequence[str], quiet_non_dicom: bool) -> list[_Outcome]:
    """Worker-process task: several headers read in a row (see :func:`_outcomes`)."""
    return [_read_record(Path(p), quiet_non_dicom=quiet_non_dicom)[0] for p in paths]


def _apply(outcome: _Outcome, result: ScanResult, tree: _Tree) -> None:
    instance, description, problem = outcome
    if problem is not None:
        result.problems.append(problem)
    if instance is not None and description is not None:
        result.instances.append(instance)
        tree.add(description, instance)


def _outcomes(
    files: Sequence[Path], quiet: bool, cancel: threading.Event | None
) -> Iterator[list[_Outcome]]:
    """Headers of ``files`` in order, a batch at a time.

    Reading a header costs about 0.4 ms of CPU, so a large folder is read by the decoder
    worker processes (both cores; see :mod:`viewer.imaging.loader`), a chunk per task, and
    the results are put back in directory order. Small folders, and any failure to get the
    workers, read here.
    """
    if len(files) >= PARALLEL_MIN_FILES:
        try:
            from viewer.imaging.pool import get_pool

            pool = get_pool()
            chunks = [files[k : k + SCAN_CHUNK] for k in range(0, len(files), SCAN_CHUNK)]
            futures = [pool.submit(_read_chunk, [str(p) for p in c], quiet) for c in chunks]
        except Exception as exc:
            log.debug("scanning in one thread: %s", exc)
        else:
            for index, future in enumerate(futures):
                while True:
                    if cancel is not None and cancel.is_set():
                        for pending in futures[index:]:
                            pending.cancel()
                        return
                    try:
                        batch = future.result(timeout=0.1)
                    except concurrent.futures.TimeoutError:
                        continue
                    except Exception as exc:  # a broken pool: read the rest here
                        log.debug("scan workers failed (%s); reading here", exc)
                        for pending in futures[index + 1 :]:
                            pending.cancel()
                        yield from _outcomes_here(
                            [p for c in chunks[index:] for p in c], quiet, cancel
                        )
                        return
                    break
                yield batch
            return
    yield from _outcomes_here(files, quiet, cancel)


def _outcomes_here(
    files: Sequence[Path], quiet: bool, cancel: threading.Event | None
) -> Iterator[list[_Outcome]]:
    for path in files:
        if cancel is not None and cancel.is_set():
            return
        yield [_read_record(path, quiet_non_dicom=quiet)[0]]


def _read_dicomdir(
    path: Path,
    result: ScanResult,
    cancel: threading.Event | None,
    *,
    listing: bool = False,
) -> list[Path] | None:
    """The present files a DICOMDIR references, in record order, its problems added to
    ``result``; None (with a problem saying why) when the folder must be scanned instead.
    With ``listing``, ``result`` also gets the DICOMDIR's own tree and instances (no file read)."""
    try:
        directory = dicomdir_reader.read_dicomdir(path, cancel=cancel)
    except dicomdir_reader.DicomdirError as exc:
        result.problems.append(model.Problem(str(exc.path), exc.reason))
        result.problems.append(
            model.Problem(str(exc.path), "the DICOMDIR cannot be used: the folder was scanned")
        )
        return None
    except OSError as exc:
        result.problems.append(model.Problem(str(path), f"cannot read: {exc.strerror or exc}"))
        result.problems.append(
            model.Problem(str(path), "the DICOMDIR cannot be used: the folder was scanned")
        )
        return None
    if directory.all_missing and not directory.cancelled:
        # The reader advises a scan; say instead that it was done.
        result.problems.extend(
            p for p in directory.problems if not p.problem.endswith("scan the folder instead")
        )
        result.problems.append(
            model.Problem(
                str(directory.path),
                "no file the DICOMDIR references is present: the folder was scanned instead",
            )
        )
        return None
    result.problems.extend(directory.problems)
    if listing:
        result.instances.extend(directory.instances)
        result.patients = list(directory.patients)
    files: list[Path] = []
    seen: set[Path] = set()
    for reference in directory.references:
        if reference.status == "present" and reference.instance is not None:
            file = reference.path
            if file is not None and file not in seen:
                seen.add(file)
                files.append(file)
    return files


def _unreferenced(root: Path, referenced: set[Path], problems: list[model.Problem]) -> list[Path]:
    """Files under ``root`` that no record references (read quietly: non-DICOM is skipped).

    A record may name a link inside the media: the walk meets its target under its own name, so
    paths are compared as real paths (the walk never passes a link: a walked file's real path
    is the root's real path joined with its relative path, no lookup needed)."""
    known = {os.path.normcase(os.path.realpath(p)) for p in referenced}
    root_real = os.path.realpath(root)
    return [
        f
        for f in _walk(root, problems)
        if os.path.normcase(os.path.join(root_real, os.path.relpath(f, root))) not in known
    ]


def scan(
    path: str | os.PathLike[str],
    *,
    cancel: threading.Event | None = None,
    progress: ProgressCallback | None = None,
    headers: bool = True,
    problems_found: Callable[[list[model.Problem]], None] | None = None,
) -> ScanResult:
    """Instances and problems under ``path`` (a file, a folder walked recursively, a DICOMDIR
    or a folder holding one; see the module docstring).

    ``headers=False`` lists media with a usable DICOMDIR from the DICOMDIR alone: its records
    give the tree, and no referenced file is opened (on a CD each open is a seek; 3,000 of them
    took seconds), nor is the folder walked for unreferenced files. The per-file checks
    (presence was stat'ed; UID agreement, preambles, unreferenced files) are
    :func:`viewer.media.health.check_media`'s. Without a usable DICOMDIR the files are read.

    Blocks; call it from a worker. ``cancel`` stops between files (the result then holds what
    was read so far); ``progress(done, total)`` is called after each file, and
    ``problems_found(new)`` with the problems found since it was last called (the result still
    holds them all).
    """
    root = Path(path)
    if disc_image.is_disc_image(root):
        return _scan_disc_image(
            root, cancel=cancel, progress=progress, headers=headers, problems_found=problems_found
        )
    result = ScanResult()
    tree = _Tree()
    # Files read with non-DICOM skipped quietly, then files a DICOMDIR references (loud).
    quiet_files: list[Path] = []
    loud_files: list[Path] = []
    unreferenced_note = False
    if root.is_dir():
        found = dicomdir_reader.find_dicomdir(root)
        referenced = (
            _read_dicomdir(found, result, cancel, listing=not headers)
            if found is not None
            else None
        )
        if referenced is not None and not headers:
            if progress is not None:
                progress(len(referenced), len(referenced))
            result.listed_from = found
            return result
        if referenced is None:
            quiet_files = list(_walk(root, result.problems))
        else:
            loud_files = referenced
            quiet_files = _unreferenced(root, set(referenced), result.problems)
            unreferenced_note = True
    elif root.is_file():
        # PS3.10 8.6: the file named DICOMDIR is the directory whatever its bytes say.
        is_directory = dicomdir_reader._norm(
            root.name
        ) == "DICOMDIR" or dicomdir_reader._looks_like_directory(root)
        if not is_directory:  # a header read only when the first bytes say it is no DICOMDIR
            outcome, header = _read_record(root, quiet_non_dicom=False)
            is_directory = header is not None
        if not is_directory:
            _apply(outcome, result, tree)
            if not result.instances and not result.problems:
                result.problems.append(model.Problem(str(root), "not a DICOM file"))
            result.patients = list(tree.patients.values())
            if progress is not None:
                progress(1, 1)
            return result
        referenced = _read_dicomdir(root, result, cancel, listing=not headers)
        if referenced is not None and not headers:
            if progress is not None:
                progress(len(referenced), len(referenced))
            result.listed_from = root
            return result
        if referenced is None:
            quiet_files = [
                f for f in _walk(root.parent, result.problems) if f.resolve() != root.resolve()
            ]
        else:
            loud_files = referenced
    else:
        result.problems.append(model.Problem(str(root), "no such file or folder"))
        return result

    total = len(loud_files) + len(quiet_files)
    done = 0
    sent = 0

    def send() -> None:
        nonlocal sent
        if problems_found is not None and len(result.problems) > sent:
            problems_found(list(dict.fromkeys(result.problems[sent:])))
            sent = len(result.problems)

    for files, quiet in ((loud_files, False), (quiet_files, True)):
        before = len(result.instances)
        for batch in _outcomes(files, quiet, cancel):
            for outcome in batch:
                _apply(outcome, result, tree)
            done += len(batch)
            if progress is not None:
                progress(done, total)
            send()
        if quiet and unreferenced_note:
            result.problems.extend(
                model.Problem(
                    str(i.path), "not referenced by the DICOMDIR", model.Kind.UNREFERENCED
                )
                for i in result.instances[before:]
            )
            send()
    # A link leaving the media is named by the DICOMDIR's reader and met again by the walk:
    # each problem is listed once.
    result.problems = list(dict.fromkeys(result.problems))
    result.patients = list(tree.patients.values())
    return result


def _scan_disc_image(
    image_path: Path,
    *,
    cancel: threading.Event | None,
    progress: ProgressCallback | None,
    headers: bool,
    problems_found: Callable[[list[model.Problem]], None] | None,
) -> ScanResult:
    """An ISO 9660 image: unpacked (:func:`viewer.media.disc_image.open_image`, or the folder
    an open handle holds), then scanned as the folder it holds. Problems name the image
    (``disc.iso!/DICOM/IM1``); instances keep the unpacked paths, which the result holds."""
    try:
        image = disc_image.open_image(image_path, cancel=cancel, progress=progress)
    except disc_image.DiscImageError as exc:
        return ScanResult(problems=[model.Problem(exc.where, exc.reason)])
    relay = None
    if problems_found is not None:
        found = problems_found

        def relay(new: list[model.Problem]) -> None:
            found([image.relabel(p) for p in new])

        if image.problems:
            found(image.problems)
    try:
        result = scan(
            image.root, cancel=cancel, progress=progress, headers=headers, problems_found=relay
        )
    except BaseException:
        image.close()
        raise
    result.problems = [*image.problems, *(image.relabel(p) for p in result.problems)]
    if result.listed_from is not None:
        result.listed_from = Path(image.label(result.listed_from))
    result.discs.append(image)
    return result
