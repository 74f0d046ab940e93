"""The media health report: what the DICOMDIR promises against what the media holds.

For a disc (or any folder with or without a DICOMDIR) it lists the files the DICOMDIR
references, which of them are present and which missing, the DICOM files no record references
(series a DICOMDIR-only viewer silently drops), files that cannot be read, preambles that make a
file an executable polyglot (CVE-2019-11687: PS3.10 7.1 lets the 128-byte preamble hold
anything, so a PE/ELF/Mach-O header there makes the file both a DICOM file and a program), and
records whose keys disagree with the file they reference (PS3.3 F.5: the leaf record's
(0004,1510)/(0004,1511)/(0004,1512) must match the file's meta and data set).

Headers are read with the DICOMDIR reader's byte walker: nothing is decoded, no declared length
is allocated, nested sequences are skipped iteratively, and every top-level element is walked
to the end of the file, which is how a truncated file is found. Nothing on the media is run.
"""

from __future__ import annotations

import mmap
import os
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from viewer.dicom.elements import Malformed, codec_for, parse_meta, read_elements, sniff_codec
from viewer.dicom.part10 import executable_header
from viewer.media import disc_image
from viewer.media.dicomdir import (
    DIRECTORY_SOP_CLASS,
    DicomdirError,
    DicomdirResult,
    Progress,
    find_dicomdir,
    read_dicomdir,
)
from viewer.media.links import LEAVES_MEDIA, walk_files
from viewer.model import Kind, Problem

_META_CLASS = 0x00020002
_META_INSTANCE = 0x00020003
_META_TS = 0x00020010
_SOP_CLASS = 0x00080016
_SOP_INSTANCE = 0x00080018
_STUDY_UID = 0x0020000D
_SERIES_UID = 0x0020000E
_HEADER_TAGS = frozenset({_SOP_CLASS, _SOP_INSTANCE, _STUDY_UID, _SERIES_UID})
_DEFLATED = "1.2.840.10008.1.2.1.99"
_INFLATE_LIMIT = 16 << 20


@dataclass(slots=True)
class HealthReport:
    """Each list names files; ``problems`` holds every item that needs a person's attention."""

    root: Path
    dicomdir: Path | None
    referenced: list[Path] = field(default_factory=list)
    present: list[Path] = field(default_factory=list)
    missing: list[Path] = field(default_factory=list)
    refused: list[Problem] = field(default_factory=list)
    unreferenced: list[Path] = field(default_factory=list)
    unreadable: list[Problem] = field(default_factory=list)
    suspicious_preambles: list[Problem] = field(default_factory=list)
    mismatches: list[Problem] = field(default_factory=list)
    other_files: list[Path] = field(default_factory=list)
    """Files that are not DICOM (README, INDEX.HTM, a bundled viewer): listed, not problems."""
    problems: list[Problem] = field(default_factory=list)
    cancelled: bool = False


@dataclass(slots=True)
class _Header:
    is_dicom: bool
    values: dict[int, str]
    problem: str = ""
    executable: str = ""


def _text(raw: bytes) -> str:
    return raw.decode("ascii", "replace").strip(" \x00")


def _executable_preamble(head: bytes) -> str:
    """What executable a preamble holds, or "" (only when ``DICM`` follows it: PS3.10 7.1)."""
    if len(head) < 132 or head[128:132] != b"DICM":
        return ""
    return executable_header(head[:128])


def read_header(path: Path) -> _Header:
    """The UIDs of one file and whether it is DICOM, intact, and free of executable preambles.

    One private entry point so that ``viewer.imaging.decode.read_file(headers_only=True)`` can
    replace the walker later; the walker is kept because it also proves the file is complete.
    """
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                return _Header(False, {}, "empty file")
            buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return _Header(True, {}, f"cannot be read: {reason}")
    try:
        return walk_header(buf, size)
    finally:
        buf.close()


def walk_header(buf: mmap.mmap, end: int) -> _Header:
    """:func:`read_header` on a file already mapped (``end``: its size)."""
    head = bytes(buf[:132])
    executable = _executable_preamble(head)
    has_magic = head[128:132] == b"DICM"
    try:
        pos, meta = parse_meta(buf, end)
    except Malformed as exc:
        return _Header(has_magic, {}, f"File Meta Information is broken {exc}", executable)
    values = {
        tag: _text(raw)
        for tag, raw in meta.items()
        if tag in (_META_CLASS, _META_INSTANCE, _META_TS)
    }
    ts = values.get(_META_TS, "")
    codec = sniff_codec(buf, pos, end, codec_for(ts))
    if not has_magic and not meta and not _looks_like_dataset(buf, pos, end, codec):
        return _Header(False, {}, "not a DICOM file")
    data: bytes | mmap.mmap = buf
    if ts == _DEFLATED:
        try:
            inflated = zlib.decompressobj(-zlib.MAX_WBITS).decompress(buf[pos:], _INFLATE_LIMIT)
        except zlib.error as exc:
            return _Header(True, values, f"deflated data set cannot be inflated: {exc}", executable)
        data, pos, end = inflated, 0, len(inflated)
        codec = codec_for("")
    problem = ""
    try:
        found, _after = read_elements(data, pos, end, codec, _HEADER_TAGS, in_item=False)
    except Malformed as exc:
        found = exc.values
        problem = f"truncated or damaged {exc}"
    if ts == _DEFLATED and problem and len(data) >= _INFLATE_LIMIT:
        problem = ""  # only the first part was inflated: not a sign of damage
    values.update((tag, _text(raw)) for tag, raw in found.items())
    return _Header(True, values, problem, executable)


def _looks_like_dataset(buf: mmap.mmap, pos: int, end: int, codec: object) -> bool:
    """A file without preamble or meta is taken for DICOM when its first element is sane."""
    if pos + 8 > end:
        return False
    group = int.from_bytes(buf[pos : pos + 2], "little")
    group_be = int.from_bytes(buf[pos : pos + 2], "big")
    if not (0x0002 <= group <= 0x0028 or 0x0002 <= group_be <= 0x0028):
        return False
    vr = bytes(buf[pos + 4 : pos + 6])
    if vr.isalpha() and vr.isupper():
        return True
    length = int.from_bytes(buf[pos + 4 : pos + 8], "little")
    return length < end


def _compare(record_says: dict[str, str], header: _Header) -> list[str]:
    """What a referencing record says that its file contradicts (PS3.3 F.5, table F.3-3)."""
    file_says = {
        "SOP Instance UID": header.values.get(_SOP_INSTANCE)
        or header.values.get(_META_INSTANCE, ""),
        "SOP Class UID": header.values.get(_SOP_CLASS) or header.values.get(_META_CLASS, ""),
        "Transfer Syntax UID": header.values.get(_META_TS, ""),
        "Study Instance UID": header.values.get(_STUDY_UID, ""),
        "Series Instance UID": header.values.get(_SERIES_UID, ""),
    }
    out = []
    for key, said in record_says.items():
        actual = file_says[key]
        if said and actual and said != actual:
            out.append(f"{key}: the DICOMDIR says {said}, the file says {actual}")
    return out


def _tree(root: Path, report: HealthReport) -> list[Path]:
    """Every regular file under ``root`` in directory order, never through a symbolic link
    (:mod:`viewer.media.links`): links leaving the root are refused, dangling ones and
    anything that is no regular file are unreadable."""
    found: list[Problem] = []

    def unlistable(folder: str, exc: OSError) -> None:
        report.unreadable.append(Problem(folder, f"folder cannot be listed: {exc.strerror or exc}"))

    files = list(walk_files(root, found, sort=True, on_error=unlistable))
    for problem in found:
        (report.refused if problem.problem == LEAVES_MEDIA else report.unreadable).append(problem)
    return files


def check_media(
    path: Path | str,
    *,
    cancel: threading.Event | None = None,
    progress: Progress | None = None,
    dicomdir: DicomdirResult | None = None,
) -> HealthReport:
    """The health report of the media at ``path`` (a DICOMDIR or other directory file, a
    folder, or an ISO 9660 image: read unpacked, its files named in the image). Pass
    ``dicomdir`` when it was read already. ``progress(done, total)`` counts files; ``cancel``
    stops early with ``cancelled`` set and what was checked so far.
    """
    if disc_image.is_disc_image(path):
        return _check_disc_image(Path(path), cancel=cancel, progress=progress)
    path = Path(os.path.abspath(path))
    root = path if path.is_dir() else path.parent
    directory_path = find_dicomdir(path) if path.is_dir() else path
    report = HealthReport(root=root, dicomdir=directory_path)
    if dicomdir is None and directory_path is not None:
        try:
            dicomdir = read_dicomdir(directory_path, cancel=cancel)
        except DicomdirError as exc:
            report.unreadable.append(Problem(str(exc.path), exc.reason))
    if dicomdir is None:
        report.problems.append(Problem(str(root), "no usable DICOMDIR: every file is unreferenced"))
    else:
        report.problems.extend(p for p in dicomdir.problems if "but missing" not in p.problem)
        report.cancelled = dicomdir.cancelled

    referenced: dict[Path, dict[str, str]] = {}
    refused_records: list[Problem] = []
    directory_files: set[Path] = {directory_path} if directory_path is not None else set()
    if dicomdir is not None:
        directory_files.update(dicomdir.directory_files)
        for ref in dicomdir.references:
            if ref.path is None:
                continue
            report.referenced.append(ref.path)
            if ref.status == "missing":
                report.missing.append(ref.path)
            elif ref.status == "present":
                referenced[ref.path] = {
                    "SOP Instance UID": ref.sop_instance_uid,
                    "SOP Class UID": ref.sop_class_uid,
                    "Transfer Syntax UID": ref.transfer_syntax_uid,
                    "Study Instance UID": ref.study_instance_uid,
                    "Series Instance UID": ref.series_instance_uid,
                }
        for ref in dicomdir.references:
            if ref.status == "refused":
                refused_records.append(
                    Problem(
                        f"{ref.directory_file} record at offset {ref.record_offset}",
                        f"Referenced File ID '{ref.file_id}' refused (outside the media)",
                    )
                )
        report.refused.extend(refused_records)

    real_cache: dict[str, Path] = {}
    done: set[Path] = set()

    def referenced_real() -> dict[str, Path]:
        """Referenced paths by real path (a record may name a link to a file inside the root)."""
        if not real_cache and referenced:
            real_cache.update((os.path.realpath(p), p) for p in referenced)
        return real_cache

    files = _tree(root, report)
    for index, file in enumerate(files):
        if cancel is not None and cancel.is_set():
            report.cancelled = True
            break
        if progress is not None and index % 64 == 0:
            progress(index, len(files))
        if file in directory_files:
            continue
        ref_path: Path | None = file if file in referenced else None
        if ref_path is None and referenced:
            ref_path = referenced_real().get(os.path.realpath(file))
        if ref_path is not None and ref_path in done:
            continue  # the same file reached through a link: checked once
        header = read_header(file)
        record = referenced.get(ref_path) if ref_path is not None else None
        if header.executable:
            report.suspicious_preambles.append(
                Problem(
                    str(file),
                    f"preamble holds {header.executable}: a DICOM/executable "
                    "polyglot (CVE-2019-11687); never run it, never copy it on as is",
                )
            )
        if record is not None:
            assert ref_path is not None
            done.add(ref_path)
            report.present.append(ref_path)
            if not header.is_dicom:
                report.unreadable.append(
                    Problem(str(file), "referenced by the DICOMDIR but not DICOM")
                )
            elif header.problem:
                report.unreadable.append(Problem(str(file), header.problem))
            for text in _compare(record, header):
                report.mismatches.append(Problem(str(file), text))
        elif header.is_dicom and header.values.get(_META_CLASS) == DIRECTORY_SOP_CLASS:
            report.other_files.append(file)  # another directory file (a file-set of its own)
        elif header.is_dicom:
            if header.problem:
                report.unreadable.append(Problem(str(file), header.problem))
            report.unreferenced.append(file)
        else:
            report.other_files.append(file)
    if progress is not None:
        progress(len(files), len(files))

    for missing in report.missing:
        report.problems.append(
            Problem(str(missing), "referenced by the DICOMDIR but missing", Kind.MISSING)
        )
    # Refused File IDs are in the DICOMDIR's problems already (a link leading out under its
    # own path, as the walk names it): each is listed once.
    report.problems.extend(p for p in report.refused if p not in refused_records)
    if dicomdir is not None:
        report.problems.extend(
            Problem(str(f), "DICOM file not referenced by the DICOMDIR", Kind.UNREFERENCED)
            for f in report.unreferenced
        )
    report.problems.extend(report.unreadable)
    report.problems.extend(report.suspicious_preambles)
    report.problems.extend(report.mismatches)
    if report.cancelled:
        report.problems.append(
            Problem(str(root), "the check was cancelled: the report is incomplete")
        )
    report.problems = list(dict.fromkeys(report.problems))
    return report


def _check_disc_image(
    image_path: Path, *, cancel: threading.Event | None, progress: Progress | None
) -> HealthReport:
    """:func:`check_media` of the folder an ISO image unpacks to (shared with the scan that
    unpacked it when one holds it open), every path and message said of the image."""
    try:
        image = disc_image.open_image(image_path, cancel=cancel, progress=progress)
    except disc_image.DiscImageError as exc:
        report = HealthReport(root=image_path, dicomdir=None)
        report.unreadable.append(Problem(exc.where, exc.reason))
        report.problems.append(Problem(exc.where, exc.reason))
        report.cancelled = isinstance(exc, disc_image.DiscImageCancelled)
        return report
    with image:
        inner = check_media(image.root, cancel=cancel, progress=progress)

    def path(p: Path) -> Path:
        return Path(image.label(p))

    def problems(items: list[Problem]) -> list[Problem]:
        return [image.relabel(p) for p in items]

    return HealthReport(
        root=path(inner.root),
        dicomdir=path(inner.dicomdir) if inner.dicomdir is not None else None,
        referenced=[path(p) for p in inner.referenced],
        present=[path(p) for p in inner.present],
        missing=[path(p) for p in inner.missing],
        refused=problems(inner.refused),
        unreferenced=[path(p) for p in inner.unreferenced],
        unreadable=[*image.problems, *problems(inner.unreadable)],
        suspicious_preambles=problems(inner.suspicious_preambles),
        mismatches=problems(inner.mismatches),
        other_files=[path(p) for p in inner.other_files],
        problems=list(dict.fromkeys([*image.problems, *problems(inner.problems)])),
        cancelled=inner.cancelled,
    )
