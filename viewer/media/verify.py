"""``lightbox verify``: check written media against the rules of ../shared/MEDIA.md items 1-9.

PS3.10 7.1 (File Meta), 8.2 (file IDs), PS3.3 Annex F (DICOMDIR: records, keys, offsets),
PS3.11 Annex D/J (profiles' transfer syntaxes), PS3.12 F.3.2 / ISO 9660 (Level 1 names, Volume
ID = File-set ID), IHE RAD TF-3 4.47 (README.TXT, no autorun).

None of the usual validators opens the referenced files to compare them with their records: this
module does, reading every file of a folder or an ISO image. Writing media calls
:func:`verify_written`, which also compares every file's SHA-256 with what was meant to be written
and the DICOMDIR's patient/study/series/instance tree with the selection.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pydicom
from pydicom.uid import UID

from viewer.dicom import elements
from viewer.dicom.part10 import executable_header
from viewer.media import dicomdir_writer as ddw
from viewer.media.links import LEAVES_MEDIA, resolve_within
from viewer.media.profiles import (
    EXPLICIT_VR_LE,
    IMPLICIT_VR_LE,
    PROFILES,
    Profile,
    get_medium,
    get_profile,
)
from viewer.text import escape

if TYPE_CHECKING:
    from viewer.media.plan import DiscResult

MANIFEST = "SHA256.TXT"
"""Checksums of every other file on the media (``sha256sum -c`` format): written with the media
so that ``lightbox verify`` later notices a flipped byte anywhere, pixel data included."""

_LEVEL1_FILE = re.compile(r"^[A-Z0-9_]{1,8}(\.[A-Z0-9_]{0,3})?(;1)?$")
_LEVEL1_DIR = re.compile(r"^[A-Z0-9_]{1,8}$")
_NON_DICOM_ROOT = {"DICOMDIR", "README.TXT", "INDEX.HTM", MANIFEST}


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: which MEDIA.md item (or ``readme``, ``autorun``, ``sha256``, ``tree``)."""

    item: str
    path: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"[{self.severity} {self.item}] {escape(self.path)}: {escape(self.message)}"


@dataclass(slots=True)
class VerifyReport:
    path: str
    kind: str
    profile: str | None
    findings: list[Finding] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    fits: list[str] = field(default_factory=list)
    """Profiles whose transfer syntaxes the content fits, most widely readable first."""
    files_read: int = 0
    records: int = 0

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def error(self, item: str, path: str, message: str) -> None:
        self.findings.append(Finding(item, path, message))

    def warn(self, item: str, path: str, message: str) -> None:
        self.findings.append(Finding(item, path, message, "warning"))

    def summary(self) -> str:
        head = (
            f"{self.kind} {escape(self.path)}: {'OK' if self.ok else 'PROBLEMS'}; "
            f"{self.files_read} files read, {self.records} directory records; "
            f"profile {self.profile or 'not given'}; content fits: "
            f"{', '.join(self.fits) or 'no general-purpose profile'}"
        )
        lines = [head, *(f"  checked: {c}" for c in self.checked)]
        lines += [f"  {f}" for f in self.findings]
        return "\n".join(lines)


# --- media access --------------------------------------------------------------------------


class _Media:
    """Files of a folder or an ISO image, by ``/``-separated path relative to the root."""

    kind = "folder"
    volume_id: str | None = None

    def paths(self) -> dict[str, str]:
        """Normalised relative path -> name as recorded (for the naming checks)."""
        raise NotImplementedError

    def read(self, rel: str) -> bytes:
        raise NotImplementedError

    def scan(self, rel: str) -> tuple[bytes, str, int]:
        """(the first :data:`PREFIX` bytes, SHA-256 of the whole file, whether the prefix is the
        file's size): a 2 GB multi-frame file is hashed in chunks, never held in memory."""
        sink = _HashSink()
        self._copy_to(rel, sink)
        return bytes(sink.prefix), sink.sha.hexdigest(), sink.size

    def _copy_to(self, rel: str, sink: _HashSink) -> None:
        raise NotImplementedError

    def directories(self) -> list[str]:
        raise NotImplementedError

    def close(self) -> None:
        pass


PREFIX = 4 * 1024 * 1024


class _HashSink:
    """A write-only file object that hashes what it gets and keeps its beginning."""

    def __init__(self) -> None:
        self.sha = hashlib.sha256()
        self.prefix = bytearray()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        if len(self.prefix) < PREFIX:
            self.prefix += data[: PREFIX - len(self.prefix)]
        self.size += len(data)
        return len(data)


def _link_message(path: str, root: Path) -> str:
    if resolve_within(path, root) is None:
        return LEAVES_MEDIA
    return "symbolic link on the media: not followed"


class _Folder(_Media):
    def __init__(self, root: Path, report: VerifyReport) -> None:
        self.root = root
        self._paths: dict[str, str] = {}
        self._dirs: list[str] = []
        # Media we wrote hold no symbolic link (ISO 9660 has none): each is an error, and none
        # is followed; one leading out is said as every reader says it (viewer.media.links).
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            rel_dir = os.path.relpath(dirpath, root)
            rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/")
            for name in list(dirnames):
                full = os.path.join(dirpath, name)
                rel = f"{rel_dir}/{name}" if rel_dir else name
                if os.path.islink(full):
                    report.error("2", rel, _link_message(full, root))
                    dirnames.remove(name)
                else:
                    self._dirs.append(rel)
            for name in filenames:
                full = os.path.join(dirpath, name)
                rel = f"{rel_dir}/{name}" if rel_dir else name
                if os.path.islink(full):
                    report.error("2", rel, _link_message(full, root))
                    continue
                self._paths[rel] = name

    def paths(self) -> dict[str, str]:
        return self._paths

    def directories(self) -> list[str]:
        return self._dirs

    def read(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()

    def _copy_to(self, rel: str, sink: _HashSink) -> None:
        with open(self.root / rel, "rb") as fh:
            while chunk := fh.read(1 << 20):
                sink.write(chunk)


class _Iso(_Media):
    """An ISO 9660 image, listed and streamed by :class:`viewer.media.disc_image.DiscReader`
    (the reader every command opens images with): names refused there are errors here."""

    kind = "ISO image"

    def __init__(self, path: Path, report: VerifyReport | None = None) -> None:
        from viewer.media.disc_image import DiscReader

        self._reader = DiscReader(path)
        self.volume_id = self._reader.volume_id
        self._paths = {rel: m.recorded for rel, m in self._reader.members.items()}
        if report is not None:
            for rel, reason in self._reader.problems:
                report.error("9", rel, reason)

    def paths(self) -> dict[str, str]:
        return self._paths

    def directories(self) -> list[str]:
        return self._reader.directories

    def read(self, rel: str) -> bytes:
        return self._reader.read(rel)

    def _copy_to(self, rel: str, sink: _HashSink) -> None:
        self._reader.copy_to(rel, sink)

    def close(self) -> None:
        self._reader.close()


def _open(path: Path, report: VerifyReport) -> _Media:
    if path.is_dir():
        return _Folder(path, report)
    return _Iso(path, report)


# --- Part 10 checks ------------------------------------------------------------------------


@dataclass(slots=True)
class _FileInfo:
    rel: str
    meta: dict[int, bytes]
    header: ddw.Header | None
    sha256: str


def _uid(value: bytes) -> str:
    return value.rstrip(b"\x00 ").decode("ascii", "replace")


def _check_part10(
    data: bytes, rel: str, report: VerifyReport
) -> tuple[dict[int, bytes], int] | None:
    """MEDIA.md item 1: preamble, DICM, File Meta in Explicit VR LE with a right group length.

    Returns the File Meta values and where the data set starts, or None when the file is not a
    Part 10 file. The elements are read with the one walker (:mod:`viewer.dicom.elements`),
    which reads a header without a VR as implicit: that is what this check reports."""
    if len(data) < 132 or data[128:132] != b"DICM":
        return None
    preamble = data[:128]
    if any(preamble):
        if executable_header(preamble):
            report.error("1", rel, "preamble holds an executable header (CVE-2019-11687)")
        else:
            report.error("1", rel, "preamble is not 128 zero bytes")
    meta: dict[int, bytes] = {}
    pos = 132
    end = len(data)
    group_length_end = None
    while pos + 8 <= end and elements.S_U16[True].unpack_from(data, pos)[0] == 0x0002:
        try:
            tag, vr, start, length = elements.element_header(
                data, pos, end, elements.EXPLICIT_LE_CODEC
            )
        except elements.Malformed:
            report.error("1", rel, "File Meta element runs past the end of the file")
            return meta, pos
        if not vr:
            report.error("1", rel, "File Meta is not Explicit VR Little Endian")
            return meta, pos
        if length == elements.UNDEFINED or start + length > end:
            report.error("1", rel, "File Meta element runs past the end of the file")
            return meta, pos
        meta[tag] = data[start : start + length]
        if tag == 0x00020000 and length == 4:
            group_length_end = start + 4 + elements.S_U32[True].unpack_from(data, start)[0]
        pos = start + length
    if group_length_end is None:
        report.error("1", rel, "File Meta has no group length (0002,0000)")
    elif group_length_end != pos:
        report.error("1", rel, "File Meta group length (0002,0000) does not match the group")
    for tag, name in (
        (0x00020001, "File Meta Information Version"),
        (0x00020002, "Media Storage SOP Class UID"),
        (0x00020003, "Media Storage SOP Instance UID"),
        (0x00020010, "Transfer Syntax UID"),
        (0x00020012, "Implementation Class UID"),
    ):
        if not meta.get(tag, b"").strip(b"\x00 "):
            report.error("1", rel, f"File Meta lacks {name}")
    return meta, pos


def _dataset_encoding_ok(data: bytes, body: int, ts: str) -> bool:
    """Does the first dataset element look like the transfer syntax the File Meta names?"""
    if body + 8 > len(data):
        return True
    vr = data[body + 4 : body + 6]
    looks_explicit = vr.isalpha() and vr.isupper()
    group_le = struct.unpack_from("<H", data, body)[0]
    if ts == IMPLICIT_VR_LE:
        return not looks_explicit and group_le < 0x7FE1
    if ts == "1.2.840.10008.1.2.2":
        return looks_explicit and struct.unpack_from(">H", data, body)[0] < 0x7FE1
    if ts == "1.2.840.10008.1.2.1.99":
        return True
    return looks_explicit and group_le < 0x7FE1


def _file_header(data: bytes, rel: str, meta: dict[int, bytes], whole: bool) -> ddw.Header:
    """The keys of a DICOM file whatever its encoding (our walker, else pydicom); ``data`` may
    be only the beginning of the file (``whole`` False): the keys come before the pixels."""
    try:
        return ddw.parse_header(data, rel, whole)
    except ddw.HeaderError:
        pass
    except ddw._NeedMore:
        raise ddw.HeaderError(rel, "header larger than 4 MB: not checked") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
            for elem in ds.iterall():
                _ = elem.value
            ds.file_meta = pydicom.dataset.FileMetaDataset()
            ds.file_meta.TransferSyntaxUID = UID(EXPLICIT_VR_LE)
            ds.preamble = b"\x00" * 128
            buffer = io.BytesIO()
            pydicom.dcmwrite(buffer, ds, implicit_vr=False, little_endian=True, force_encoding=True)
        except Exception as exc:
            raise ddw.HeaderError(rel, f"dataset does not parse: {exc}") from None
    header = ddw.parse_header(buffer.getvalue(), rel)
    header.transfer_syntax_uid = _uid(meta.get(0x00020010, b""))
    return header


# --- the DICOMDIR --------------------------------------------------------------------------


def _dicomdir(data: bytes, report: VerifyReport) -> Any:
    """Item 3: DICOMDIR is a Basic Directory in Explicit VR Little Endian, read by pydicom."""
    part10 = _check_part10(data, "DICOMDIR", report)
    if part10 is None:
        report.error("3", "DICOMDIR", "not a DICOM Part 10 file")
        return None
    meta, body = part10
    if _uid(meta.get(0x00020002, b"")) != ddw.BASIC_DIRECTORY_SOP_CLASS:
        report.error("3", "DICOMDIR", "Media Storage SOP Class is not Basic Directory")
    ts = _uid(meta.get(0x00020010, b""))
    if ts != EXPLICIT_VR_LE:
        report.error("3", "DICOMDIR", f"transfer syntax {ts} is not Explicit VR Little Endian")
    if not _dataset_encoding_ok(data, body, EXPLICIT_VR_LE):
        report.error("3", "DICOMDIR", "dataset is not encoded as Explicit VR Little Endian")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pydicom.dcmread(io.BytesIO(data))
        except Exception as exc:
            report.error("3", "DICOMDIR", f"cannot be read: {exc}")
            return None


_CHILD_TYPES = {"PATIENT": {"STUDY"}, "STUDY": {"SERIES"}}


def _walk_records(ds: Any, report: VerifyReport) -> list[tuple[Any, list[Any]]]:
    """Items 4 and 6: follow the offsets (not the sequence order) from the root; check each
    offset lands on a record, the hierarchy and the type 1 / type 2 keys. Returns every leaf
    record with its ancestors [patient, study, series]."""
    records = list(ds.get("DirectoryRecordSequence", []))
    report.records = len(records)
    by_offset = {int(r.seq_item_tell): r for r in records}
    if int(ds.get("FileSetConsistencyFlag", 0) or 0) != 0:
        report.error("6", "DICOMDIR", "File-set Consistency Flag is not 0000H")
    leaves: list[tuple[Any, list[Any]]] = []
    visited: set[int] = set()

    def chain(offset: int, where: str) -> Iterator[Any]:
        while offset:
            record = by_offset.get(offset)
            if record is None:
                report.error("6", "DICOMDIR", f"{where}: offset {offset} is not a record")
                return
            if offset in visited:
                report.error("6", "DICOMDIR", f"{where}: offset {offset} loops")
                return
            visited.add(offset)
            yield record
            offset = int(record.get("OffsetOfTheNextDirectoryRecord", 0) or 0)

    def visit(record: Any, parents: list[Any]) -> None:
        rtype = str(record.get("DirectoryRecordType", "")).strip()
        if int(record.get("RecordInUseFlag", 0xFFFF) or 0) == 0:
            report.warn("4", "DICOMDIR", f"inactive {rtype} record")
            return
        expected = {0: "PATIENT", 1: "STUDY", 2: "SERIES"}.get(len(parents))
        keys: tuple[ddw.Key, ...]
        if expected is not None and rtype != expected:
            report.error("4", "DICOMDIR", f"{rtype} record where a {expected} record belongs")
            return
        if expected is None and rtype not in ddw.LEAF_KEYS:
            report.warn("4", "DICOMDIR", f"{rtype} record under a SERIES: keys not checked")
            keys = ()
        else:
            keys = {
                "PATIENT": ddw.PATIENT_KEYS,
                "STUDY": ddw.STUDY_KEYS,
                "SERIES": ddw.SERIES_KEYS,
            }.get(rtype, ddw.LEAF_KEYS.get(rtype, ()))
        for tag, _vr, kind in keys:
            if kind == "1" and (tag not in record or record[tag].value in (None, "", [])):
                name = ddw.KEYWORDS.get(tag) or pydicom.datadict.keyword_for_tag(tag)
                report.error("4", "DICOMDIR", f"{rtype} record lacks type 1 key {name}")
            elif kind == "2" and tag not in record:
                name = ddw.KEYWORDS.get(tag) or pydicom.datadict.keyword_for_tag(tag)
                report.error("4", "DICOMDIR", f"{rtype} record lacks type 2 key {name}")
        lower = int(record.get("OffsetOfReferencedLowerLevelDirectoryEntity", 0) or 0)
        if expected is None:
            leaves.append((record, parents))
            if lower:
                report.warn("4", "DICOMDIR", f"{rtype} record has lower-level records")
            return
        if not lower:
            report.error("4", "DICOMDIR", f"{rtype} record has no lower-level records")
        for child in chain(lower, f"{rtype} lower-level offset"):
            visit(child, [*parents, record])

    root = int(ds.get("OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity", 0) or 0)
    last = int(ds.get("OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity", 0) or 0)
    roots = list(chain(root, "root offset"))
    if roots and int(roots[-1].seq_item_tell) != last:
        report.error("6", "DICOMDIR", "offset of the last root record does not point to it")
    for record in roots:
        visit(record, [])
    unreached = len(by_offset) - len(visited)
    if unreached:
        report.error("6", "DICOMDIR", f"{unreached} record(s) not reachable through the offsets")
    return leaves


# --- the whole media -----------------------------------------------------------------------


def verify(
    path: str | os.PathLike[str],
    profile: str | Profile | None = None,
    *,
    expected: dict[str, str] | None = None,
) -> VerifyReport:
    """Verify a folder or an ISO image; ``expected`` (relative path -> SHA-256) adds the
    comparison with what was meant to be written. Never raises for bad media: it reports."""
    media_path = Path(path)
    prof = get_profile(profile) if profile is not None else None
    kind = "folder" if media_path.is_dir() else "ISO image"
    report = VerifyReport(str(media_path), kind, prof.name if prof else None)
    if not media_path.exists():
        report.error("3", str(media_path), "does not exist")
        return report
    try:
        media = _open(media_path, report)
    except Exception as exc:
        report.error("9", str(media_path), f"cannot be opened as a folder or ISO 9660 image: {exc}")
        return report
    try:
        _verify(media, prof, expected, report)
    finally:
        media.close()
    return report


def _verify(
    media: _Media, prof: Profile | None, expected: dict[str, str] | None, report: VerifyReport
) -> None:
    paths = media.paths()
    # README / autorun (IHE PDI, MEDIA.md item 10).
    report.checked.append("README.TXT present, no autorun file")
    if "README.TXT" not in paths:
        report.error("readme", "README.TXT", "missing from the root")
    for rel in paths:
        if "/" not in rel and rel.upper().startswith("AUTORUN"):
            report.error("autorun", rel, "autorun file on the media")
    # Names and depth (items 2 and 9).
    report.checked.append("ISO 9660 Level 1 names, at most 8 directory levels")
    for rel in media.directories():
        parts = rel.split("/")
        if len(parts) > 7:
            report.error("9", rel, "more than 8 directory levels")
        if not _LEVEL1_DIR.match(parts[-1]):
            report.error("9", rel, "directory name is not ISO 9660 Level 1")
    for rel, recorded in paths.items():
        if not _LEVEL1_FILE.match(recorded):
            report.error("9", rel, "file name is not ISO 9660 Level 1")
    # Read every file once: hash, Part 10 check.
    report.checked.append("every file read; File Meta of every DICOM file (item 1)")
    infos: dict[str, _FileInfo] = {}
    hashes: dict[str, str] = {}
    dicomdir_data: bytes | None = None
    total_size = 0
    for rel in sorted(paths):
        try:
            data, digest, size = media.scan(rel)
            whole = size == len(data)
            total_size += size
            if rel == "DICOMDIR" and not whole:
                data = media.read(rel)
        except Exception as exc:
            report.error("11", rel, f"cannot be read: {exc}")
            continue
        report.files_read += 1
        hashes[rel] = digest
        if rel == "DICOMDIR":
            dicomdir_data = data
            continue
        in_dicom_folder = rel.startswith("DICOM/")
        if rel in _NON_DICOM_ROOT or rel.startswith("IHE_PDI/"):
            continue
        part10 = _check_part10(data, rel, report)
        if part10 is None:
            if in_dicom_folder:
                report.error("10", rel, "non-DICOM file inside the DICOM folder")
            continue
        meta, body = part10
        header: ddw.Header | None = None
        ts = _uid(meta.get(0x00020010, b""))
        if not _dataset_encoding_ok(data, body, ts):
            report.error("1", rel, f"dataset is not encoded in its Transfer Syntax {ts}")
        try:
            header = _file_header(data, rel, meta, whole)
        except ddw.HeaderError as exc:
            report.error("1", rel, exc.reason)
        if header is not None:
            for meta_tag, tag, name in (
                (0x00020002, ddw.SOP_CLASS_UID, "SOP Class UID"),
                (0x00020003, ddw.SOP_INSTANCE_UID, "SOP Instance UID"),
            ):
                if _uid(meta.get(meta_tag, b"")) != header.text(tag):
                    report.error("1", rel, f"File Meta and dataset disagree on the {name}")
        infos[rel] = _FileInfo(rel, meta, header, hashes[rel])
    # Checksums: the manifest on the media, and what the writer meant.
    _check_manifest(media, paths, hashes, report)
    if expected is not None:
        report.checked.append("SHA-256 of every file equals what was meant to be written")
        for rel, digest in expected.items():
            if rel not in hashes:
                report.error("sha256", rel, "missing (it was written)")
            elif hashes[rel] != digest:
                report.error("sha256", rel, "content differs from what was written")
        for rel in hashes:
            if rel not in expected and rel != MANIFEST:
                report.error("sha256", rel, "on the media but never written")
    # Profiles (item 7).
    syntaxes = {_uid(i.meta.get(0x00020010, b"")) for i in infos.values()}
    report.fits = [p.name for p in PROFILES if syntaxes <= p.transfer_syntaxes]
    report.checked.append(
        "transfer syntaxes fit " + (prof.name if prof else "the most permissive profile")
    )
    if prof is not None:
        medium = get_medium(None, prof)
        if medium.capacity is not None and total_size > medium.capacity:
            report.error("7", "media", f"{total_size / 1e6:.0f} MB do not fit a {medium.label}")
    allowed = prof.transfer_syntaxes if prof else PROFILES[-1].transfer_syntaxes
    for info in infos.values():
        ts = _uid(info.meta.get(0x00020010, b""))
        if ts not in allowed:
            report.error(
                "7",
                info.rel,
                f"transfer syntax {ts} not allowed by "
                f"{prof.name if prof else 'any general-purpose profile'}",
            )
    # DICOMDIR (items 3-6, 8).
    report.checked.append("DICOMDIR: Basic Directory, records, keys, offsets, references")
    if dicomdir_data is None:
        report.error("3", "DICOMDIR", "missing from the root")
        for rel in infos:
            report.error("5", rel, "DICOM file not referenced (no DICOMDIR)")
        return
    ds = _dicomdir(dicomdir_data, report)
    if ds is None:
        return
    fileset_id = str(ds.get("FileSetID", "") or "")
    if not ddw.FILESET_ID.match(fileset_id):
        report.error("8", "DICOMDIR", f"File-set ID '{fileset_id}' is not up to 16 of A-Z0-9_")
    if media.kind == "ISO image":
        report.checked.append("ISO Volume ID equals the File-set ID")
        if (media.volume_id or "") != fileset_id:
            report.error(
                "8",
                "volume",
                f"Volume ID '{media.volume_id}' is not the File-set ID '{fileset_id}'",
            )
    leaves = _walk_records(ds, report)
    referenced: set[str] = set()
    upper_paths = {rel.upper(): rel for rel in paths}
    for record, parents in leaves:
        _check_leaf(record, parents, infos, paths, upper_paths, referenced, report)
    for rel in infos:
        if rel not in referenced:
            report.error("5", rel, "DICOM file not referenced by the DICOMDIR")
        elif not rel.startswith("DICOM/"):
            report.warn("2", rel, "DICOM file outside the DICOM folder")


def _check_leaf(
    record: Any,
    parents: list[Any],
    infos: dict[str, _FileInfo],
    paths: dict[str, str],
    upper_paths: dict[str, str],
    referenced: set[str],
    report: VerifyReport,
) -> None:
    """Item 5: the record's reference names an existing file whose meta and keys match."""
    rtype = str(record.get("DirectoryRecordType", "")).strip()
    file_id = record.get("ReferencedFileID")
    if file_id is None:
        report.error("5", "DICOMDIR", f"{rtype} record without Referenced File ID")
        return
    parts = [
        str(p)
        for p in (
            file_id
            if isinstance(file_id, list | tuple)
            or (hasattr(file_id, "__iter__") and not isinstance(file_id, str))
            else [file_id]
        )
    ]
    rel = "/".join(parts)
    if len(parts) > 8 or not all(ddw.FILE_ID_COMPONENT.match(p) for p in parts):
        report.error("2", rel, "file ID breaks PS3.10 8.2 (at most 8 components of A-Z0-9_)")
    if rel not in paths:
        other = upper_paths.get(rel.upper())
        hint = f" (found as '{other}': wrong case)" if other else ""
        report.error("5", rel, f"referenced by a {rtype} record but missing{hint}")
        return
    referenced.add(rel)
    info = infos.get(rel)
    if info is None:
        report.error("5", rel, f"referenced by a {rtype} record but not a DICOM file")
        return
    for key, meta_tag, name in (
        ("ReferencedSOPClassUIDInFile", 0x00020002, "SOP Class UID"),
        ("ReferencedSOPInstanceUIDInFile", 0x00020003, "SOP Instance UID"),
        ("ReferencedTransferSyntaxUIDInFile", 0x00020010, "Transfer Syntax UID"),
    ):
        value = str(record.get(key, "") or "")
        if not value:
            report.error("5", rel, f"record lacks Referenced {name} in File")
        elif value != _uid(info.meta.get(meta_tag, b"")):
            report.error("5", rel, f"record's {name} differs from the file's")
    header = info.header
    if header is None or len(parents) != 3:
        return
    patient, study, series = parents
    for level, tag, keyword in (
        (patient, ddw.PATIENT_ID, "PatientID"),
        (study, ddw.STUDY_INSTANCE_UID, "StudyInstanceUID"),
        (series, ddw.SERIES_INSTANCE_UID, "SeriesInstanceUID"),
    ):
        if str(level.get(keyword, "") or "").strip() != header.text(tag):
            report.error(
                "5", rel, f"file's {keyword} differs from its {level.DirectoryRecordType} record"
            )


def _check_manifest(
    media: _Media, paths: dict[str, str], hashes: dict[str, str], report: VerifyReport
) -> None:
    if MANIFEST not in paths:
        report.warn("sha256", MANIFEST, "no checksum manifest: only structure was checked")
        return
    report.checked.append(f"SHA-256 of every file listed in {MANIFEST}")
    text = media.read(MANIFEST).decode("ascii", "replace")
    listed: set[str] = set()
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        digest, _, rel = line.partition("  ")
        rel = rel.strip()
        listed.add(rel)
        if rel not in hashes:
            report.error("sha256", rel, f"listed in {MANIFEST} but missing")
        elif hashes[rel] != digest.lower():
            report.error("sha256", rel, f"content differs from its {MANIFEST} checksum")
    for rel in hashes:
        if rel != MANIFEST and rel not in listed:
            report.error("sha256", rel, f"not listed in {MANIFEST}")


def manifest_text(expected: dict[str, str]) -> str:
    """``sha256sum`` format, so that anyone can check the media with standard tools."""
    return "".join(f"{digest}  {rel}\n" for rel, digest in sorted(expected.items()))


def verify_written(
    path: str | os.PathLike[str], disc: DiscResult, profile: Profile | str | None
) -> VerifyReport:
    """Read back what :func:`viewer.media.writer.write_media` wrote: every file's SHA-256,
    the MEDIA.md checks, and the DICOMDIR's tree compared with the selection."""
    report = verify(path, profile, expected=disc.expected())
    report.checked.append("patient/study/series/instance tree of the DICOMDIR equals the selection")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = _read_any(Path(path), "DICOMDIR")
            ds = pydicom.dcmread(io.BytesIO(data))
        tree = tree_from_dicomdir(ds)
    except Exception as exc:
        report.error("tree", "DICOMDIR", f"cannot rebuild the tree: {exc}")
        return report
    if tree != _normalise(disc.tree):
        report.error(
            "tree", "DICOMDIR", "patient/study/series/instance tree differs from the selection"
        )
    return report


def _read_any(path: Path, rel: str) -> bytes:
    if path.is_dir():
        return (path / rel).read_bytes()
    iso = _Iso(path)
    try:
        return iso.read(rel)
    finally:
        iso.close()


def _normalise(tree: dict[str, dict[str, dict[str, list[str]]]]) -> dict[str, Any]:
    return {
        p: {s: {r: sorted(i) for r, i in series.items()} for s, series in studies.items()}
        for p, studies in tree.items()
    }


def tree_from_dicomdir(ds: Any) -> dict[str, Any]:
    """patient ID -> study UID -> series UID -> sorted SOP Instance UIDs, following offsets."""
    report = VerifyReport("", "", None)
    out: dict[str, dict[str, dict[str, list[str]]]] = {}
    for record, parents in _walk_records(ds, report):
        if len(parents) != 3:
            continue
        patient, study, series = parents
        out.setdefault(str(patient.get("PatientID", "")).strip(), {}).setdefault(
            str(study.get("StudyInstanceUID", "")), {}
        ).setdefault(str(series.get("SeriesInstanceUID", "")), []).append(
            str(record.get("ReferencedSOPInstanceUIDInFile", ""))
        )
    return _normalise(out)
