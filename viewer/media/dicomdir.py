"""Read a DICOMDIR (or any Basic Directory file) record by record, liberally and safely.

Why not pydicom's ``FileSet``: it raises on the first record whose Referenced File ID leaves the
root, looks every file up by its exact path (no ``;1``, no lower case) and took 14x ``dcmdump``
on 3,000 records. This module walks the bytes itself:

* PS3.10 7.1: optional 128-byte preamble and ``DICM``; File Meta (group 0002) in Explicit VR
  Little Endian; the data set in the transfer syntax the meta names (Implicit VR Little Endian
  and Explicit VR Big Endian are read too, and the encoding is sniffed when the meta is wrong).
* PS3.3 F.3: the Directory Record Sequence (0004,1220). Every record is parsed on its own: a
  record whose lengths are broken is reported and the walk goes on with the next one.
* PS3.3 F.3.2.1: the hierarchy comes from the offsets (0004,1200) root, (0004,1400) next and
  (0004,1420) lower level, counted from byte 0 of the file. Offsets are followed with cycle
  detection; when they are wrong (pointing at no record, looping, or leaving records out) the
  hierarchy is rebuilt from sequence order and record types instead, and that is reported.
* PS3.3 F.5: PATIENT > STUDY > SERIES > leaf records; inactive records (Record In-use Flag
  0000H) are skipped with their lower levels; unknown and private types are transparent; records
  without a PATIENT parent go under a patient whose ``patient_id`` is None.
* Records that reference another Basic Directory file (Philips ``DIRFILE`` per study/series)
  contribute that file's root records as their lower level.
* PS3.10 8.2 / PS3.12: File IDs are resolved inside the media root only: ``..``, absolute IDs
  and symbolic links leading out are refused; names are matched ignoring case, an ISO 9660
  version suffix (``;1``) and an extension when the exact name is absent (each directory is
  listed once, which is also the existence check).

Nothing is executed and no referenced file is opened except a candidate directory file. Text is
decoded with the record's Specific Character Set (0008,0005) (else an ancestor's, else the
directory's), with pydicom's decoders for anything beyond ASCII.
"""

from __future__ import annotations

import os
import re
import struct
import threading
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from viewer.dicom.elements import (
    ITEM,
    S_TAG,
    S_U16,
    S_U32,
    SEQ_DELIM,
    UNDEFINED,
    Buffer,
    Codec,
    Malformed,
    codec_for,
    element_header,
    parse_meta,
    read_elements,
    skip_undefined,
    sniff_codec,
)
from viewer.media.links import LEAVES_MEDIA, resolve_within
from viewer.model import Instance, Kind, Patient, Problem, Series, Study

DIRECTORY_SOP_CLASS = "1.2.840.10008.1.3.10"
_DEFLATED = "1.2.840.10008.1.2.1.99"

_RECORD_SEQ = 0x00041220
_MAX_DIRECTORY_BYTES = 1 << 30  # a DICOMDIR of 1 GiB would index millions of files: refuse more
_MAX_DIRFILE_DEPTH = 8
_CHECK_EVERY = 256  # records between cancel checks / progress calls


# Record attributes this reader uses (PS3.3 F.3-3 and F.5). Values are kept as raw bytes.
T_NEXT = 0x00041400
T_IN_USE = 0x00041410
T_LOWER = 0x00041420
T_TYPE = 0x00041430
T_PRIVATE_UID = 0x00041432
T_FILE_ID = 0x00041500
T_REF_CLASS = 0x00041510
T_REF_INSTANCE = 0x00041511
T_REF_TS = 0x00041512
T_CHARSET = 0x00080005
T_SOP_CLASS = 0x00080016
T_SOP_INSTANCE = 0x00080018
T_STUDY_DATE = 0x00080020
T_STUDY_TIME = 0x00080030
T_ACQ_TIME = 0x00080032
T_ACCESSION = 0x00080050
T_MODALITY = 0x00080060
T_STUDY_DESC = 0x00081030
T_SERIES_DESC = 0x0008103E
T_PATIENT_NAME = 0x00100010
T_PATIENT_ID = 0x00100020
T_BIRTH_DATE = 0x00100030
T_SEX = 0x00100040
T_STUDY_UID = 0x0020000D
T_SERIES_UID = 0x0020000E
T_SERIES_NUMBER = 0x00200011
T_INSTANCE_NUMBER = 0x00200013
T_POSITION = 0x00200032
T_ORIENTATION = 0x00200037
T_FRAMES = 0x00280008
T_ROWS = 0x00280010
T_COLUMNS = 0x00280011

RECORD_TAGS = frozenset(
    {
        T_NEXT, T_IN_USE, T_LOWER, T_TYPE, T_PRIVATE_UID, T_FILE_ID, T_REF_CLASS, T_REF_INSTANCE,
        T_REF_TS, T_CHARSET, T_SOP_CLASS, T_SOP_INSTANCE, T_STUDY_DATE, T_STUDY_TIME, T_ACQ_TIME,
        T_ACCESSION, T_MODALITY, T_STUDY_DESC, T_SERIES_DESC, T_PATIENT_NAME, T_PATIENT_ID,
        T_BIRTH_DATE, T_SEX, T_STUDY_UID, T_SERIES_UID, T_SERIES_NUMBER, T_INSTANCE_NUMBER,
        T_POSITION, T_ORIENTATION, T_FRAMES, T_ROWS, T_COLUMNS,
    }
)  # fmt: skip
_T_ROOT_FIRST = 0x00041200
_T_FILE_SET_ID = 0x00041130
_TOP_TAGS = frozenset({_T_ROOT_FIRST, _T_FILE_SET_ID, T_CHARSET, T_SOP_CLASS})

# PS3.3 F.5: record types and where they sit. Anything else is unknown (reported, transparent).
_LEVEL_PATIENT, _LEVEL_STUDY, _LEVEL_SERIES, _LEVEL_LEAF = 0, 1, 2, 3
_KNOWN_TYPES: dict[str, int] = {
    "PATIENT": _LEVEL_PATIENT,
    "STUDY": _LEVEL_STUDY,
    "HL7 STRUC DOC": _LEVEL_STUDY,
    "SERIES": _LEVEL_SERIES,
    "PRIVATE": _LEVEL_LEAF,
    **{
        name: _LEVEL_LEAF
        for name in (
            "IMAGE", "RT DOSE", "RT STRUCTURE SET", "RT PLAN", "RT TREAT RECORD", "PRESENTATION",
            "WAVEFORM", "SR DOCUMENT", "KEY OBJECT DOC", "SPECTROSCOPY", "RAW DATA",
            "REGISTRATION", "FIDUCIAL", "HANGING PROTOCOL", "ENCAP DOC", "VALUE MAP",
            "STEREOMETRIC", "PALETTE", "IMPLANT", "IMPLANT ASSY", "IMPLANT GROUP", "PLAN",
            "MEASUREMENT", "SURFACE", "SURFACE SCAN", "TRACT", "ASSESSMENT", "RADIOTHERAPY",
            "ANNOTATION", "INVENTORY", "TOPIC", "VISIT", "RESULTS", "INTERPRETATION",
            "STUDY COMPONENT", "STORED PRINT", "MRDR", "CURVE", "OVERLAY", "MODALITY LUT",
            "VOI LUT", "FILM SESSION", "FILM BOX", "IMAGE BOX", "DIRFILE",
        )
    },
}  # fmt: skip

_VERSION_SUFFIX = re.compile(r";\d*$")
_CONFORMANT_ID = re.compile(r"[A-Z0-9_]{1,8}(\\[A-Z0-9_]{1,8}){0,7}")  # PS3.10 8.2, 8.5

Progress = Callable[[int, int], None]
Status = Literal["present", "missing", "refused"]


class DicomdirError(Exception):
    """The file cannot be read as a directory at all; ``str(e) == f"{path}: {reason}"``."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


@dataclass(slots=True)
class Reference:
    """One record's Referenced File ID (0004,1500) and what became of it on the media."""

    file_id: str
    directory_file: Path
    record_offset: int
    record_type: str
    status: Status
    path: Path | None
    """The file found (present), the path it should have had (missing), None (refused)."""
    sop_instance_uid: str = ""
    sop_class_uid: str = ""
    transfer_syntax_uid: str = ""
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    instance: Instance | None = None


@dataclass(slots=True)
class DicomdirResult:
    """What a DICOMDIR says is on the media and what is wrong with it.

    ``instances`` holds the instances whose files are present (paths resolved on the media),
    ``patients`` the same instances in the Patient > Study > Series tree (studies and series
    whose files are missing stay, without instances). ``all_missing`` is true when no referenced
    file is present (also when the directory references none): the caller should scan the tree.
    """

    path: Path
    root: Path
    file_set_id: str = ""
    patients: list[Patient] = field(default_factory=list)
    instances: list[Instance] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    directory_files: list[Path] = field(default_factory=list)
    all_missing: bool = False
    cancelled: bool = False

    @property
    def missing(self) -> list[Path]:
        return [r.path for r in self.references if r.status == "missing" and r.path is not None]


# --------------------------------------------------------------------------------------------
# Byte level: elements, items, records.


@dataclass(slots=True)
class _Record:
    offset: int
    values: dict[int, bytes]
    little: bool
    end: int
    children: list[_Record] = field(default_factory=list)
    damage: str = ""
    #: How far reading the record went (past ``end`` when a damaged value was walked over).
    reached: int = 0

    def uint(self, tag: int) -> int:
        raw = self.values.get(tag)
        if raw is None:
            return 0
        if len(raw) >= 4:
            return int(S_U32[self.little].unpack_from(raw, 0)[0])
        if len(raw) >= 2:
            return int(S_U16[self.little].unpack_from(raw, 0)[0])
        return 0

    def text(self, tag: int) -> str:
        raw = self.values.get(tag)
        if not raw:
            return ""
        return raw.decode("ascii", "replace").strip(" \x00")

    @property
    def record_type(self) -> str:
        return self.text(T_TYPE).upper()


def _parse_record(buf: Buffer, pos: int, end: int, codec: Codec) -> _Record:
    """The directory record whose Item tag is at ``pos`` (PS3.3 F.3.2.2); raises Malformed.

    A record whose item length runs past the end, or whose last element is cut, keeps the
    elements read before the damage (DCMTK does the same) with ``damage`` saying what broke;
    ``end`` is then -1 when the record's end cannot be known.
    """
    if pos < 0 or pos + 8 > end:
        raise Malformed(pos, "no record here (outside the sequence)")
    tag, _vr, vpos, length = element_header(buf, pos, end, codec)
    if tag != ITEM:
        raise Malformed(pos, f"no Item tag here (found ({tag >> 16:04X},{tag & 0xFFFF:04X}))")
    damage = ""
    if length == UNDEFINED:
        limit, in_item = end, True
    elif vpos + length > end:
        limit, in_item = end, False
        damage = f"declares {length} bytes, {end - vpos} are left"
    else:
        limit, in_item = vpos + length, False
    reached = -1
    try:
        values, after = read_elements(buf, vpos, limit, codec, RECORD_TAGS, in_item=in_item)
    except Malformed as exc:
        if T_TYPE not in exc.values:
            raise
        values = exc.values
        after = -1 if in_item else limit
        damage = damage or str(exc)
        reached = exc.offset
    rec = _Record(pos, values, codec.little, after)
    rec.damage = damage
    rec.reached = max(reached, after)
    return rec


# --------------------------------------------------------------------------------------------
# One directory file: header, records, hierarchy.


@dataclass(slots=True)
class _DirectoryFile:
    path: Path
    records: list[_Record]
    roots: list[_Record]
    file_set_id: str
    charset: bytes | None
    problems: list[Problem]


def _open_buffer(path: Path) -> tuple[Buffer, int]:
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > _MAX_DIRECTORY_BYTES:
            raise DicomdirError(path, f"{size} bytes is too large for a directory file")
        return fh.read(), size


def _read_directory_file(path: Path, cancel: threading.Event | None) -> _DirectoryFile:
    """Parse one Basic Directory file into records and their hierarchy (PS3.3 F.3)."""
    try:
        buf, end = _open_buffer(path)
    except OSError as exc:
        raise DicomdirError(path, f"cannot read: {exc.strerror or exc}") from None
    problems: list[Problem] = []
    where = str(path)

    def note(text: str) -> None:
        problems.append(Problem(where, text))

    try:
        pos, meta = parse_meta(buf, end)
    except Malformed as exc:
        raise DicomdirError(path, f"File Meta Information is broken {exc}") from None
    ts = meta.get(0x00020010, b"").decode("ascii", "replace").strip(" \x00")
    meta_class = meta.get(0x00020002, b"").decode("ascii", "replace").strip(" \x00")
    if ts == _DEFLATED:
        try:
            buf = buf[:pos] + zlib.decompressobj(-zlib.MAX_WBITS).decompress(
                buf[pos:], _MAX_DIRECTORY_BYTES
            )
        except zlib.error as exc:
            raise DicomdirError(path, f"deflated data set cannot be inflated: {exc}") from None
        end = len(buf)
        note("deflated DICOMDIR: offsets refer to the deflated bytes, records read in order")
    declared = codec_for(ts)
    codec = sniff_codec(buf, pos, end, declared)
    if codec != declared:
        note(
            f"transfer syntax {ts or '(none)'} is not what the data set uses: read as {codec.name}"
        )
    if meta_class and meta_class != DIRECTORY_SOP_CLASS:
        note(f"Media Storage SOP Class {meta_class} is not Media Storage Directory Storage")

    # Top level: find the Directory Record Sequence and the few attributes needed.
    top: dict[int, bytes] = {}
    seq_start = seq_end = -1
    seq_undefined = False
    while pos < end:
        try:
            tag, vr, vpos, length = element_header(buf, pos, end, codec)
        except Malformed as exc:
            note(f"data set is broken {exc}; the rest is ignored")
            break
        if tag == _RECORD_SEQ:
            seq_start = vpos
            if length == UNDEFINED:
                seq_undefined = True
                seq_end = end
                break
            seq_end = min(vpos + length, end)
            if vpos + length > end:
                note("Directory Record Sequence runs past the end of the file (truncated?)")
            pos = seq_end
            continue
        if length == UNDEFINED:
            try:
                pos = skip_undefined(buf, vpos, end, codec, vr)
            except Malformed as exc:
                note(f"data set is broken {exc}; the rest is ignored")
                break
            continue
        if vpos + length > end:
            note(f"element ({tag >> 16:04X},{tag & 0xFFFF:04X}) runs past the end of the file")
            break
        if tag in _TOP_TAGS:
            top[tag] = bytes(buf[vpos : vpos + length])
        pos = vpos + length
    if seq_start < 0:
        raise DicomdirError(path, "no Directory Record Sequence (0004,1220): not a DICOMDIR")

    def top_uint(tag: int) -> int:
        raw = top.get(tag, b"")
        return int(S_U32[codec.little].unpack_from(raw, 0)[0]) if len(raw) >= 4 else 0

    # Every record in sequence order, each on its own.
    records: list[_Record] = []
    by_offset: dict[int, _Record] = {}
    budget = _ScanBudget(seq_end - seq_start)
    pos = seq_start
    while pos < seq_end:
        if cancel is not None and len(records) % _CHECK_EVERY == 0 and cancel.is_set():
            break
        if pos + 8 > seq_end:
            note(f"{seq_end - pos} stray bytes at the end of the Directory Record Sequence")
            break
        group, elem = S_TAG[codec.little].unpack_from(buf, pos)
        if (group << 16) | elem == SEQ_DELIM:
            break
        try:
            rec = _parse_record(buf, pos, seq_end, codec)
        except Malformed as exc:
            note(f"record at offset {pos} is broken {exc}")
            nxt = _resync(buf, pos + 8, seq_end, codec, budget)
            if nxt < 0:
                if not seq_undefined:
                    note("records after it could not be found")
                break
            pos = nxt
            continue
        records.append(rec)
        by_offset[rec.offset] = rec
        if rec.damage:
            note(f"record at offset {pos} is damaged ({rec.damage}): what could be read is kept")
        if rec.end < 0:
            if not budget.spend(rec.reached - pos):
                note(
                    "too many damaged records: the rest of the Directory Record Sequence is "
                    "not read"
                )
                break
            pos = _resync(buf, pos + 8, seq_end, codec, budget)
            if pos < 0:
                break
            continue
        pos = rec.end

    def record_at(offset: int) -> _Record | None:
        rec = by_offset.get(offset)
        if rec is None and 0 < offset < end:
            try:
                rec = _parse_record(buf, offset, end, codec)
            except Malformed:
                return None
            by_offset[offset] = rec
        return rec

    roots = _hierarchy(
        records, top_uint(_T_ROOT_FIRST), record_at, deflated=ts == _DEFLATED, note=note
    )
    file_set_id = top.get(_T_FILE_SET_ID, b"").decode("ascii", "replace").strip(" \x00")
    return _DirectoryFile(path, records, roots, file_set_id, top.get(T_CHARSET), problems)


class _ScanBudget:
    """Bytes that damaged records and resynchronising after them may walk over, for one
    directory file.

    Each candidate item is parsed on its own, and a record holding an undefined-length value
    without its delimiter walks to the end of the sequence: over a long run of such records that
    is quadratic (a 40 KB DICOMDIR from the fuzzer took seconds, 100 KB took minutes). A
    multiple of the sequence's length keeps the work linear; past it the rest is given up, and
    the problems say so.
    """

    __slots__ = ("left",)

    def __init__(self, length: int) -> None:
        self.left = 2 * length + (256 << 10)

    def spend(self, walked: int) -> bool:
        self.left -= max(walked, 8)
        return self.left > 0


def _resync(buf: Buffer, start: int, end: int, codec: Codec, budget: _ScanBudget) -> int:
    """Offset of the next item that parses as a record after a broken one, or -1 (none, or
    the ``budget`` for walking damaged candidates is spent)."""
    needle = struct.pack("<HH" if codec.little else ">HH", 0xFFFE, 0xE000)
    pos = start
    while True:
        pos = buf.find(needle, pos, end)
        if pos < 0:
            return -1
        try:
            rec = _parse_record(buf, pos, end, codec)
        except Malformed as exc:
            if not budget.spend(exc.offset - pos):
                return -1
            pos += 4
            continue
        if rec.damage and not budget.spend(rec.reached - pos):
            return -1
        if T_TYPE in rec.values:
            return pos
        pos += 4


def _hierarchy(
    records: list[_Record],
    first: int,
    record_at: Callable[[int], _Record | None],
    *,
    deflated: bool,
    note: Callable[[str], None],
) -> list[_Record]:
    """Root records with their lower levels: by offsets when they hold up, else by order.

    PS3.3 F.3.2.1: (0004,1200) names the first root record, (0004,1400) the next record at the
    same level, (0004,1420) the first record one level down; 0 ends a chain. Three tries, the
    first that reaches every record without a broken or repeated offset wins:
    1. the chains from (0004,1200);
    2. the chains from the records no other record points to (the root offset alone is wrong,
       as in pydicom's DICOMDIR-nopatient);
    3. sequence order and record types (what writers produce in practice).
    Whatever is not the first try is reported with its reason.
    """
    if deflated:
        return _hierarchy_by_order(records)
    first_trouble = _walk_offsets(records, [first] if first else [], record_at)
    if first_trouble is None:
        return _roots_of(records, [first] if first else [], record_at)
    targets: set[int] = set()
    for rec in records:
        targets.update(x for x in (rec.uint(T_NEXT), rec.uint(T_LOWER)) if x)
    heads = [rec.offset for rec in records if rec.offset not in targets]
    if first and heads and _walk_offsets(records, heads, record_at) is None:
        note(
            f"root offset (0004,1200) is wrong ({first_trouble}): the hierarchy is rebuilt from "
            "the records' own offsets"
        )
        return _roots_of(records, heads, record_at)
    if not first and records:
        first_trouble = "no Offset of the First Directory Record of the Root (0004,1200)"
    note(f"record offsets are wrong ({first_trouble}): records read in sequence order")
    return _hierarchy_by_order(records)


def _walk_offsets(
    records: list[_Record], heads: list[int], record_at: Callable[[int], _Record | None]
) -> str | None:
    """Follow next/lower offsets from ``heads``; the first trouble met, or None when clean.

    Each record may be reached once: a second visit is a cycle (or a shared lower level) and
    ends the walk, so a loop in the offsets cannot loop here.
    """
    visited: set[int] = set()
    pending = list(reversed(heads))
    while pending:
        offset = pending.pop()
        chain: list[_Record] = []
        while offset:
            if offset in visited:
                return f"offset {offset} is reached twice (a cycle in the record offsets)"
            rec = record_at(offset)
            if rec is None:
                return f"offset {offset} points to no directory record"
            visited.add(offset)
            chain.append(rec)
            offset = rec.uint(T_NEXT)
        for rec in chain:
            lower = rec.uint(T_LOWER)
            if lower:
                pending.append(lower)
    left_out = sum(1 for rec in records if rec.offset not in visited)
    if left_out:
        return f"{left_out} records are not reached from the root by offsets"
    return None


def _roots_of(
    records: list[_Record], heads: list[int], record_at: Callable[[int], _Record | None]
) -> list[_Record]:
    """The tree a clean :func:`_walk_offsets` found, as root records with children."""
    roots: list[_Record] = []
    todo: list[tuple[int, list[_Record]]] = [(head, roots) for head in reversed(heads)]
    while todo:
        offset, into = todo.pop()
        while offset:
            rec = record_at(offset)
            assert rec is not None  # the walk checked every offset
            into.append(rec)
            rec.children = []
            lower = rec.uint(T_LOWER)
            if lower:
                todo.append((lower, rec.children))
            offset = rec.uint(T_NEXT)
    return roots


def _hierarchy_by_order(records: list[_Record]) -> list[_Record]:
    """PS3.3 F.5 levels applied to records in sequence order (depth-first, as writers write)."""
    roots: list[_Record] = []
    stack: list[tuple[int, _Record]] = []
    for rec in records:
        rec.children = []
    for rec in records:
        level = _KNOWN_TYPES.get(rec.record_type, _LEVEL_LEAF)
        while stack and stack[-1][0] >= level:
            stack.pop()
        (stack[-1][1].children if stack else roots).append(rec)
        if level < _LEVEL_LEAF:
            stack.append((level, rec))
    return roots


# --------------------------------------------------------------------------------------------
# File IDs on the media (PS3.10 8.2, PS3.12 Annex F): safe, forgiving resolution.


def _norm(name: str) -> str:
    """A name as ISO 9660 and DOS media mangle it: upper case, no ``;1``, no trailing dot."""
    return _VERSION_SUFFIX.sub("", name).rstrip(".").upper()


def _stem(key: str) -> str:
    dot = key.rfind(".")
    return key[:dot] if dot > 0 else key


@dataclass(slots=True)
class _Listing:
    entries: dict[str, os.DirEntry[str]]
    folded: dict[str, str]
    stems: dict[str, str]


class _Resolver:
    """Finds File IDs under one media root; lists each directory once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root_real = os.path.realpath(root)
        self.root_text = str(root)
        self.listings: dict[tuple[str, ...], _Listing | None] = {}
        self.folders: dict[tuple[str, ...], tuple[Status, tuple[str, ...], bool, str]] = {}
        self.fuzzy: list[tuple[str, str]] = []
        self.unreadable_dirs: list[Problem] = []

    def _listing(self, parts: tuple[str, ...]) -> _Listing | None:
        if parts in self.listings:
            return self.listings[parts]
        listing: _Listing | None = None
        directory = os.path.join(self.root, *parts)
        try:
            with os.scandir(directory) as it:
                entries = {entry.name: entry for entry in it}
        except OSError as exc:
            if not isinstance(exc, FileNotFoundError | NotADirectoryError):
                self.unreadable_dirs.append(
                    Problem(directory, f"folder cannot be listed: {exc.strerror or exc}")
                )
        else:
            folded: dict[str, str] = {}
            stems: dict[str, str] = {}
            for name in sorted(entries):
                key = _norm(name)
                folded.setdefault(key, name)
                stems.setdefault(_stem(key), name)
            listing = _Listing(entries, folded, stems)
        self.listings[parts] = listing
        return listing

    def _step(
        self, parts: tuple[str, ...], component: str, last: bool
    ) -> tuple[Status, str, bool, str]:
        """One component looked up in the folder ``parts``: (status, name or path, fuzzy, why)."""
        listing = self._listing(parts)
        name = None
        fuzzy = False
        if listing is not None:
            if component in listing.entries:
                name = component
            else:
                key = _norm(component)
                name = (
                    listing.folded.get(key)
                    or listing.stems.get(key)
                    or (listing.folded.get(_stem(key)) if last else None)
                    or (listing.stems.get(_stem(key)) if last else None)
                )
                fuzzy = name is not None
        if name is None or listing is None:
            return "missing", os.path.join(self.root, *parts, component), False, ""
        entry = listing.entries[name]
        try:
            if entry.is_symlink():
                link = os.path.join(self.root, *parts, name)
                if resolve_within(link, self.root_real) is None:
                    return "refused", link, False, LEAVES_MEDIA
            ok = entry.is_file() if last else entry.is_dir()
        except (OSError, ValueError):
            ok = False
        if not ok:
            return "missing", os.path.join(self.root, *parts, name), False, ""
        return "present", name, fuzzy, ""

    def _folder(self, components: tuple[str, ...]) -> tuple[Status, tuple[str, ...], bool, str]:
        """The folder named by leading File ID components, resolved once per distinct prefix."""
        cached = self.folders.get(components)
        if cached is not None:
            return cached
        if not components:
            result: tuple[Status, tuple[str, ...], bool, str] = ("present", (), False, "")
        else:
            status, parts, fuzzy, why = self._folder(components[:-1])
            if status == "present":
                status, found, step_fuzzy, why = self._step(parts, components[-1], False)
                if status == "present":
                    parts, fuzzy = (*parts, found), fuzzy or step_fuzzy
                else:
                    parts = (found,)
            elif status == "missing":
                parts = (os.path.join(parts[0], components[-1]),)
            result = (status, parts, fuzzy, why)
        self.folders[components] = result
        return result

    def resolve(self, components: list[str]) -> tuple[Status, Path | None, str]:
        """(status, path, reason) for validated components of a File ID; a File ID refused
        because it passes a link leading out of the media gives that link's path."""
        status, parts, fuzzy, why = self._folder(tuple(components[:-1]))
        if status == "refused":
            return status, Path(parts[0]), why
        if status == "missing":
            return status, Path(parts[0], *components[len(components) - 1 :]), why
        status, found, step_fuzzy, why = self._step(parts, components[-1], True)
        if status == "refused":
            return status, Path(found), why
        if status == "missing":
            return status, Path(found), why
        if fuzzy or step_fuzzy:
            self.fuzzy.append(("\\".join(components), "/".join((*parts, found))))
        return "present", Path(os.path.join(self.root_text, *parts, found)), ""


def split_file_id(raw: str) -> tuple[list[str], str]:
    """Components of a Referenced File ID (PS3.10 8.2), or ([], why it is refused).

    Backslash separates components (the value is multi-valued CS); a slash is accepted too.
    Refused: empty components (a leading separator makes the ID absolute), ``.``/``..``, drive
    letters and NUL. An ISO 9660 version suffix is dropped from each component.
    """
    text = raw.strip(" \x00")
    if not text:
        return [], "is empty"
    pieces = re.split(r"[\\/]", text)
    components: list[str] = []
    for piece in pieces:
        comp = _VERSION_SUFFIX.sub("", piece.strip(" "))
        if not comp:
            return [], "is an absolute path or has an empty component"
        if comp in (".", ".."):
            return [], "climbs out of the media root ('..' or '.')"
        if ":" in comp or "\x00" in comp:
            return [], "names a drive or contains NUL"
        components.append(comp)
    if len(components) > 32:
        return [], "has more than 32 components"
    return components, ""


# --------------------------------------------------------------------------------------------
# Text (PS3.5 6.1): ASCII fast path, pydicom's decoders for the rest.


def _charset_list(raw: bytes | None) -> list[str] | None:
    if not raw:
        return None
    values = [v.strip(" \x00") for v in raw.decode("ascii", "replace").split("\\")]
    return values if any(values) else None


def decode_text(
    raw: bytes,
    charset: list[str] | None,
    *,
    person_name: bool = False,
    trouble: list[str] | None = None,
) -> str:
    """A text value decoded with the Specific Character Set in force (PS3.5 6.1.2.5).

    ASCII is decoded here; anything else goes to pydicom's decoders, whose warnings (an
    unknown or misspelt character set, bytes the set cannot hold) are appended to ``trouble``
    while pydicom's best effort is kept. Never raises: the value is untrusted media content.
    """
    raw = raw.rstrip(b" \x00")
    if raw.isascii() and b"\x1b" not in raw:
        return raw.decode("ascii")
    from pydicom.charset import convert_encodings, decode_bytes
    from pydicom.valuerep import TEXT_VR_DELIMS, PersonName

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            encodings = convert_encodings(list(charset) if charset else ["ISO_IR 6"])
            if person_name:
                text = str(PersonName(raw, encodings)).rstrip(" ")
            else:
                text = decode_bytes(raw, encodings, TEXT_VR_DELIMS).rstrip(" ")
        except Exception as exc:  # third-party decoder fed untrusted bytes: never let it escape
            caught.append(warnings.WarningMessage(str(exc), UserWarning, "", 0))
            text = raw.decode("latin-1")
    if caught and trouble is not None:
        trouble.append(str(caught[0].message))
    return text


def _int_or_none(text: str) -> int | None:
    try:
        return int(text.split("\\")[0].strip()) if text else None
    except ValueError:
        try:
            return int(float(text.split("\\")[0]))
        except (ValueError, OverflowError):
            return None


def _floats(text: str, count: int) -> tuple[float, ...] | None:
    try:
        values = tuple(float(v) for v in text.split("\\"))
    except ValueError:
        return None
    return values if len(values) == count else None


# --------------------------------------------------------------------------------------------
# The model.


class _Builder:
    """Turns the record trees of every directory file into the Patient > ... > Instance model."""

    def __init__(
        self,
        root: Path,
        result: DicomdirResult,
        cancel: threading.Event | None,
        progress: Progress | None,
    ) -> None:
        self.root = root
        self.result = result
        self.cancel = cancel
        self.progress = progress
        self.resolver = _Resolver(root)
        self.patients: dict[tuple[str | None, str], Patient] = {}
        self.studies: dict[tuple[int, str], Study] = {}
        self.series: dict[tuple[int, str], Series] = {}
        self.by_file: dict[Path, Reference] = {}
        self.done = 0
        self.total = 0
        self.unknown_types: dict[str, int] = {}
        self.inactive = 0
        self.no_uid = 0
        self.odd_ids: list[str] = []
        self.text_trouble: list[str] = []
        self.visited_files: set[str] = set()

    # containers -------------------------------------------------------------------------
    def _patient(self, patient_id: str | None, name: str = "") -> Patient:
        key = (patient_id, name)
        patient = self.patients.get(key)
        if patient is None:
            patient = self.patients[key] = Patient(patient_id, name)
            self.result.patients.append(patient)
        return patient

    def _study(self, patient: Patient, key: str) -> Study:
        study = self.studies.get((id(patient), key))
        if study is None:
            uid = "" if key.startswith("\0") else key
            study = self.studies[(id(patient), key)] = Study(uid)
            patient.studies.append(study)
        return study

    def _series(self, study: Study, key: str) -> Series:
        series = self.series.get((id(study), key))
        if series is None:
            uid = "" if key.startswith("\0") else key
            series = self.series[(id(study), key)] = Series(uid)
            study.series.append(series)
        return series

    # walk ------------------------------------------------------------------------------
    def add_file(self, directory: _DirectoryFile, depth: int = 0) -> None:
        self.visited_files.add(os.path.realpath(directory.path))
        self.result.directory_files.append(directory.path)
        self.result.problems.extend(directory.problems)
        self.total += len(directory.records)
        charset = _charset_list(directory.charset)
        ctx: _Context = (None, None, None, charset)
        self._walk([(rec, ctx, directory, depth) for rec in reversed(directory.roots)])

    def _tick(self) -> bool:
        self.done += 1
        if self.done % _CHECK_EVERY == 0:
            if self.progress is not None:
                self.progress(self.done, max(self.total, self.done))
            if self.cancel is not None and self.cancel.is_set():
                self.result.cancelled = True
        return self.result.cancelled

    def _walk(self, stack: list[tuple[_Record, _Context, _DirectoryFile, int]]) -> None:
        """Depth-first over records, carrying the PATIENT/STUDY/SERIES context down."""
        while stack:
            rec, ctx, directory, depth = stack.pop()
            if self._tick():
                return
            values = rec.values
            in_use = rec.uint(T_IN_USE) if T_IN_USE in values else 0xFFFF
            if in_use == 0:
                self.inactive += 1
                continue
            patient, study, series, charset = ctx
            own = _charset_list(values.get(T_CHARSET))
            if own is not None:
                charset = own
            rtype = rec.record_type
            level = _KNOWN_TYPES.get(rtype)
            if level is None:
                self.unknown_types[rtype or "(none)"] = (
                    self.unknown_types.get(rtype or "(none)", 0) + 1
                )
            if rtype == "PATIENT":
                pid = (
                    decode_text(values[T_PATIENT_ID], charset, trouble=self.text_trouble)
                    if T_PATIENT_ID in values
                    else None
                )
                name = decode_text(
                    values.get(T_PATIENT_NAME, b""),
                    charset,
                    person_name=True,
                    trouble=self.text_trouble,
                )
                patient = self._patient(pid, name)
                if not patient.birth_date:
                    patient.birth_date = rec.text(T_BIRTH_DATE)
                if not patient.sex:
                    patient.sex = rec.text(T_SEX)
                study = series = None
            elif rtype == "STUDY":
                patient = patient or self._patient(None)
                uid = rec.text(T_STUDY_UID) or rec.text(T_REF_INSTANCE)
                study = self._study(patient, uid or f"\0{directory.path}@{rec.offset}")
                study.study_date = study.study_date or rec.text(T_STUDY_DATE)
                study.study_time = study.study_time or rec.text(T_STUDY_TIME)
                study.accession_number = study.accession_number or decode_text(
                    values.get(T_ACCESSION, b""), charset, trouble=self.text_trouble
                )
                study.study_description = study.study_description or decode_text(
                    values.get(T_STUDY_DESC, b""), charset, trouble=self.text_trouble
                )
                series = None
            elif rtype == "SERIES":
                patient = patient or self._patient(None)
                study = study or self._study(patient, f"\0{id(patient)}")
                uid = rec.text(T_SERIES_UID)
                series = self._series(study, uid or f"\0{directory.path}@{rec.offset}")
                series.modality = series.modality or rec.text(T_MODALITY)
                if series.series_number is None:
                    series.series_number = _int_or_none(rec.text(T_SERIES_NUMBER))
                series.series_description = series.series_description or decode_text(
                    values.get(T_SERIES_DESC, b""), charset, trouble=self.text_trouble
                )
            ctx = (patient, study, series, charset)
            lower = [(child, ctx, directory, depth) for child in rec.children]
            if T_FILE_ID in values:
                lower.extend(self._reference(directory, rec, ctx, depth))
            stack.extend(reversed(lower))

    def _reference(
        self, directory: _DirectoryFile, rec: _Record, ctx: _Context, depth: int
    ) -> list[tuple[_Record, _Context, _DirectoryFile, int]]:
        """Resolve the record's file; an instance joins the model, a directory file is read."""
        values = rec.values
        raw_id = values[T_FILE_ID].decode("latin-1")
        where = f"{directory.path} record at offset {rec.offset}"
        file_id = raw_id.strip(" \x00")
        if _CONFORMANT_ID.fullmatch(file_id) is not None:
            components, why = file_id.split("\\"), ""  # conformant: nothing to refuse
        else:
            self.odd_ids.append(file_id)
            components, why = split_file_id(raw_id)
        ref = Reference(
            file_id=file_id,
            directory_file=directory.path,
            record_offset=rec.offset,
            record_type=rec.record_type,
            status="refused",
            path=None,
            sop_instance_uid=rec.text(T_REF_INSTANCE) or rec.text(T_SOP_INSTANCE),
            sop_class_uid=rec.text(T_REF_CLASS) or rec.text(T_SOP_CLASS),
            transfer_syntax_uid=rec.text(T_REF_TS),
        )
        patient, study, series, _charset = ctx
        ref.study_instance_uid = study.study_instance_uid if study else ""
        ref.series_instance_uid = series.series_instance_uid if series else ""
        self.result.references.append(ref)
        if not components:
            self.result.problems.append(
                Problem(where, f"Referenced File ID '{file_id}' {why}: refused")
            )
            return []
        status, path, reason = self.resolver.resolve(components)
        ref.status, ref.path = status, (None if status == "refused" else path)
        if status == "refused":
            # The link itself is the problem, said as every walk of the media says it, so that
            # a listing shows it once (:mod:`viewer.media.links`).
            self.result.problems.append(Problem(str(path), reason))
            return []
        if status == "missing":
            self.result.problems.append(
                Problem(
                    str(path),
                    f"referenced by {where} ({rec.record_type}) but missing",
                    Kind.MISSING,
                )
            )
            return []
        assert path is not None
        level = _KNOWN_TYPES.get(rec.record_type, _LEVEL_LEAF)
        if (
            ref.sop_class_uid == DIRECTORY_SOP_CLASS
            or (level < _LEVEL_LEAF and _looks_like_directory(path))
            or rec.record_type == "DIRFILE"
        ):
            lower = self._lower_directory(path, where, depth)
            if lower is None:
                return []
            return [(child, ctx, lower, depth + 1) for child in lower.roots]
        if level < _LEVEL_LEAF:
            self.result.problems.append(
                Problem(
                    where,
                    f"{rec.record_type} record references '{file_id}', which is no "
                    "directory file: the reference is ignored",
                )
            )
            return []
        if path in self.by_file:
            first = self.by_file[path]
            self.result.problems.append(
                Problem(
                    where,
                    f"references '{file_id}' again (first at offset "
                    f"{first.record_offset} of {first.directory_file.name}): listed once",
                )
            )
            ref.instance = first.instance
            return []
        self.by_file[path] = ref
        if not ref.sop_instance_uid:
            self.no_uid += 1
        patient = patient or self._patient(None)
        study = study or self._study(patient, f"\0{id(patient)}")
        series = series or self._series(study, f"\0{id(study)}")
        instance = Instance(
            path=path,
            sop_instance_uid=ref.sop_instance_uid,
            sop_class_uid=ref.sop_class_uid,
            study_instance_uid=study.study_instance_uid,
            series_instance_uid=series.series_instance_uid,
            transfer_syntax_uid=ref.transfer_syntax_uid,
            instance_number=_int_or_none(rec.text(T_INSTANCE_NUMBER)),
            acquisition_time=rec.text(T_ACQ_TIME),
        )
        if T_FRAMES in values:
            instance.number_of_frames = _int_or_none(rec.text(T_FRAMES)) or 1
        if T_ROWS in values:
            instance.rows = rec.uint(T_ROWS)
            instance.columns = rec.uint(T_COLUMNS)
        if T_POSITION in values:
            position = _floats(rec.text(T_POSITION), 3)
            instance.image_position = position  # type: ignore[assignment]
        if T_ORIENTATION in values:
            orientation = _floats(rec.text(T_ORIENTATION), 6)
            instance.image_orientation = orientation  # type: ignore[assignment]
        ref.instance = instance
        series.instances.append(instance)
        self.result.instances.append(instance)
        return []

    def _lower_directory(self, path: Path, where: str, depth: int) -> _DirectoryFile | None:
        """Root records of a lower-level directory file (Philips DIRFILE), read once each."""
        real = os.path.realpath(path)
        if real in self.visited_files:
            self.result.problems.append(
                Problem(where, f"references directory file {path.name} again: a loop, ignored")
            )
            return None
        if depth >= _MAX_DIRFILE_DEPTH:
            self.result.problems.append(
                Problem(where, f"directory files nested deeper than {_MAX_DIRFILE_DEPTH}: ignored")
            )
            return None
        try:
            lower = _read_directory_file(path, self.cancel)
        except DicomdirError as exc:
            self.result.problems.append(
                Problem(str(exc.path), f"{exc.reason} (referenced by {where})")
            )
            return None
        self.visited_files.add(real)
        self.result.directory_files.append(path)
        self.result.problems.extend(lower.problems)
        self.total += len(lower.records)
        return lower


_Context = tuple[Patient | None, Study | None, Series | None, list[str] | None]


def _looks_like_directory(path: Path) -> bool:
    """Whether a file's first bytes name Media Storage Directory Storage or hold (0004,xxxx)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(1024)
    except OSError:
        return False
    return DIRECTORY_SOP_CLASS.encode() in head or b"\x04\x00\x20\x12" in head


def find_dicomdir(folder: Path) -> Path | None:
    """The DICOMDIR in ``folder`` as media name it (``DICOMDIR``, ``dicomdir``, ``DICOMDIR;1``)."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return None
    for name in names:
        candidate = folder / name
        if _norm(name) == "DICOMDIR" and candidate.is_file():
            if candidate.is_symlink() and resolve_within(candidate, folder) is None:
                continue  # a link leading out of the media is never read (viewer.media.links)
            return candidate
    return None


def read_dicomdir(
    path: Path | str,
    *,
    cancel: threading.Event | None = None,
    progress: Progress | None = None,
) -> DicomdirResult:
    """Read a DICOMDIR (or a directory file of any name, or a folder holding a DICOMDIR).

    The media root is the folder holding the directory file (PS3.10 8.2: File IDs are relative
    to it). Every problem is in ``problems``; raises :class:`DicomdirError` only when the file
    cannot be read as a directory at all (the caller then scans the folder). Cancelling through
    ``cancel`` returns what was read so far with ``cancelled`` set. ``progress(done, total)``
    counts directory records.
    """
    path = Path(path)
    if path.is_dir():
        found = find_dicomdir(path)
        if found is None:
            raise DicomdirError(path, "holds no DICOMDIR")
        path = found
    root = path.parent if str(path.parent) else Path(".")
    root = Path(os.path.abspath(root))
    path = root / path.name
    result = DicomdirResult(path=path, root=root)
    directory = _read_directory_file(path, cancel)
    result.file_set_id = directory.file_set_id
    builder = _Builder(root, result, cancel, progress)
    builder.add_file(directory)
    _summarise(builder, result)
    if progress is not None:
        progress(builder.done, max(builder.total, builder.done))
    return result


def _summarise(builder: _Builder, result: DicomdirResult) -> None:
    """Aggregate problems that would otherwise repeat per record."""
    where = str(result.path)
    problems = result.problems
    problems.extend(builder.resolver.unreadable_dirs)
    if builder.inactive:
        problems.append(
            Problem(
                where,
                f"{builder.inactive} inactive records (Record In-use Flag "
                "0000H) skipped with their lower levels",
            )
        )
    for rtype, count in sorted(builder.unknown_types.items()):
        problems.append(
            Problem(
                where,
                f"{count} records of unknown type '{rtype}': their lower "
                "levels are read as if it were absent",
            )
        )
    if builder.no_uid:
        problems.append(
            Problem(
                where,
                f"{builder.no_uid} records lack the Referenced SOP Instance "
                "UID in File (0004,1511)",
            )
        )
    if builder.text_trouble:
        problems.append(
            Problem(
                where,
                f"{len(builder.text_trouble)} text values do not decode cleanly with their "
                f"Specific Character Set (e.g. {builder.text_trouble[0]}): shown as best possible",
            )
        )
    if builder.odd_ids:
        problems.append(
            Problem(
                where,
                f"{len(builder.odd_ids)} File IDs do not conform to PS3.10 8.2 (up to 8 "
                f"components of A-Z, 0-9, _; e.g. '{builder.odd_ids[0]}'): read anyway",
            )
        )
    if builder.resolver.fuzzy:
        file_id, found = builder.resolver.fuzzy[0]
        problems.append(
            Problem(
                where,
                f"{len(builder.resolver.fuzzy)} File IDs match a file only "
                f"when case, ';1' or an extension is ignored (e.g. '{file_id}' "
                f"-> '{found}')",
            )
        )
    if any(p.studies for p in result.patients if p.patient_id is None):
        problems.append(
            Problem(where, "records without a PATIENT record: shown under an unknown patient")
        )
    if result.cancelled:
        problems.append(Problem(where, "reading was cancelled: the list is incomplete"))
    present = sum(1 for r in result.references if r.status == "present")
    result.all_missing = not result.instances and not any(
        r.status == "present" for r in result.references
    )
    if not result.references:
        problems.append(Problem(where, "the DICOMDIR references no file: scan the folder instead"))
    elif present == 0:
        problems.append(
            Problem(
                where,
                f"none of the {len(result.references)} files the DICOMDIR "
                "references is present: scan the folder instead",
            )
        )
