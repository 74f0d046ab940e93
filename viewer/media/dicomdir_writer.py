"""One-pass DICOMDIR writer: the Basic Directory IOD built in linear time.

PS3.3 Annex F (Basic Directory IOD, Directory Record keys in F.5), PS3.10 section 8 (DICOM File
Service, file IDs) and PS3.5 section 7.1.2 (Explicit VR Little Endian encoding).

pydicom's ``FileSet.add`` re-walks the whole record tree for every file (42 s for 3,000 files
here); DCMTK's ``dcmmkdir`` needs under a second. This module reads only the header bytes it
needs from each file (a small Explicit VR Little Endian walker that copies key values as raw
bytes, so text is never decoded and re-encoded), groups the files into PATIENT > STUDY > SERIES >
leaf records with dictionaries, encodes each record once with placeholder offsets and then patches
the offsets in place: every step is linear in the number of files.
"""

from __future__ import annotations

import io
import itertools
import os
import re
import struct
import uuid
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from viewer import dicom
from viewer.dicom import elements
from viewer.dicom.part10 import LONG_VRS, PREAMBLE_SIZE, executable_header
from viewer.media.profiles import EXPLICIT_VR_LE

BASIC_DIRECTORY_SOP_CLASS = "1.2.840.10008.1.3.10"

FILE_ID_COMPONENT = re.compile(r"^[A-Z0-9_]{1,8}$")
"""PS3.10 8.2 / PS3.12 F.3.2.2: the component characters allowed on general-purpose media."""
FILESET_ID = re.compile(r"^[A-Z0-9_ ]{0,16}$")

# Tags (group << 16 | element).
SPECIFIC_CHARACTER_SET = 0x00080005
SOP_CLASS_UID = 0x00080016
SOP_INSTANCE_UID = 0x00080018
STUDY_DATE = 0x00080020
CONTENT_DATE = 0x00080023
STUDY_TIME = 0x00080030
CONTENT_TIME = 0x00080033
ACCESSION_NUMBER = 0x00080050
MODALITY = 0x00080060
STUDY_DESCRIPTION = 0x00081030
SERIES_DESCRIPTION = 0x0008103E
REFERENCED_SERIES_SEQUENCE = 0x00081115
PATIENT_NAME = 0x00100010
PATIENT_ID = 0x00100020
PATIENT_BIRTH_DATE = 0x00100030
PATIENT_SEX = 0x00100040
STUDY_INSTANCE_UID = 0x0020000D
SERIES_INSTANCE_UID = 0x0020000E
STUDY_ID = 0x00200010
SERIES_NUMBER = 0x00200011
INSTANCE_NUMBER = 0x00200013
IMAGE_TYPE = 0x00080008
NUMBER_OF_FRAMES = 0x00280008
ROWS = 0x00280010
COLUMNS = 0x00280011
DATA_POINT_ROWS = 0x00289001
DATA_POINT_COLUMNS = 0x00289002
VERIFICATION_DATETIME = 0x0040A030
VERIFYING_OBSERVER_SEQUENCE = 0x0040A073
CONCEPT_NAME_CODE_SEQUENCE = 0x0040A043
COMPLETION_FLAG = 0x0040A491
VERIFICATION_FLAG = 0x0040A493
HL7_INSTANCE_IDENTIFIER = 0x0040E001
DOCUMENT_TITLE = 0x00420010
MIME_TYPE = 0x00420012
CONTENT_LABEL = 0x00700080
CONTENT_DESCRIPTION = 0x00700081
PRESENTATION_CREATION_DATE = 0x00700082
PRESENTATION_CREATION_TIME = 0x00700083
CONTENT_CREATOR_NAME = 0x00700084
DOSE_SUMMATION_TYPE = 0x3004000A
STRUCTURE_SET_LABEL = 0x30060002
STRUCTURE_SET_DATE = 0x30060008
STRUCTURE_SET_TIME = 0x30060009
RT_PLAN_LABEL = 0x300A0002
RT_PLAN_DATE = 0x300A0006
RT_PLAN_TIME = 0x300A0007
TREATMENT_DATE = 0x30080250
TREATMENT_TIME = 0x30080251
PIXEL_DATA = 0x7FE00010

KEYWORDS: dict[int, str] = {
    PATIENT_ID: "PatientID",
    PATIENT_NAME: "PatientName",
    STUDY_DATE: "StudyDate",
    STUDY_TIME: "StudyTime",
    STUDY_ID: "StudyID",
    STUDY_INSTANCE_UID: "StudyInstanceUID",
    MODALITY: "Modality",
    SERIES_INSTANCE_UID: "SeriesInstanceUID",
    SERIES_NUMBER: "SeriesNumber",
    INSTANCE_NUMBER: "InstanceNumber",
    SOP_INSTANCE_UID: "SOPInstanceUID",
    SOP_CLASS_UID: "SOPClassUID",
}

Key = tuple[int, str, str]
"""(tag, VR, type) of one Directory Record key: type "1", "2", or "3" (also used for 1C: copied
when the file has it)."""

# PS3.3 F.5: the keys of each record type. Type 1 must be present with a value, type 2 present
# (possibly empty), type 3 / 1C copied when the file has them.
PATIENT_KEYS: tuple[Key, ...] = (
    (PATIENT_NAME, "PN", "2"),
    (PATIENT_ID, "LO", "1"),
    (PATIENT_BIRTH_DATE, "DA", "3"),
    (PATIENT_SEX, "CS", "3"),
)
STUDY_KEYS: tuple[Key, ...] = (
    (STUDY_DATE, "DA", "1"),
    (STUDY_TIME, "TM", "1"),
    (ACCESSION_NUMBER, "SH", "2"),
    (STUDY_DESCRIPTION, "LO", "2"),
    (STUDY_INSTANCE_UID, "UI", "1"),
    (STUDY_ID, "SH", "1"),
)
SERIES_KEYS: tuple[Key, ...] = (
    (MODALITY, "CS", "1"),
    (SERIES_DESCRIPTION, "LO", "3"),
    (SERIES_INSTANCE_UID, "UI", "1"),
    (SERIES_NUMBER, "IS", "1"),
)
_CONTENT_KEYS: tuple[Key, ...] = (
    (CONTENT_DATE, "DA", "1"),
    (CONTENT_TIME, "TM", "1"),
    (INSTANCE_NUMBER, "IS", "1"),
    (CONTENT_LABEL, "CS", "1"),
    (CONTENT_DESCRIPTION, "LO", "2"),
    (CONTENT_CREATOR_NAME, "PN", "2"),
)
LEAF_KEYS: dict[str, tuple[Key, ...]] = {
    "IMAGE": ((INSTANCE_NUMBER, "IS", "1"),),
    "SR DOCUMENT": (
        (CONTENT_DATE, "DA", "1"),
        (CONTENT_TIME, "TM", "1"),
        (INSTANCE_NUMBER, "IS", "1"),
        (VERIFICATION_DATETIME, "DT", "3"),
        (CONCEPT_NAME_CODE_SEQUENCE, "SQ", "1"),
        (COMPLETION_FLAG, "CS", "1"),
        (VERIFICATION_FLAG, "CS", "1"),
    ),
    "KEY OBJECT DOC": (
        (CONTENT_DATE, "DA", "1"),
        (CONTENT_TIME, "TM", "1"),
        (INSTANCE_NUMBER, "IS", "1"),
        (CONCEPT_NAME_CODE_SEQUENCE, "SQ", "1"),
    ),
    "PRESENTATION": (
        (REFERENCED_SERIES_SEQUENCE, "SQ", "3"),
        (INSTANCE_NUMBER, "IS", "1"),
        (CONTENT_LABEL, "CS", "1"),
        (CONTENT_DESCRIPTION, "LO", "2"),
        (PRESENTATION_CREATION_DATE, "DA", "1"),
        (PRESENTATION_CREATION_TIME, "TM", "1"),
        (CONTENT_CREATOR_NAME, "PN", "2"),
    ),
    "ENCAP DOC": (
        (CONTENT_DATE, "DA", "2"),
        (CONTENT_TIME, "TM", "2"),
        (INSTANCE_NUMBER, "IS", "1"),
        (CONCEPT_NAME_CODE_SEQUENCE, "SQ", "2"),
        (HL7_INSTANCE_IDENTIFIER, "ST", "3"),
        (DOCUMENT_TITLE, "ST", "2"),
        (MIME_TYPE, "LO", "1"),
    ),
    "WAVEFORM": (
        (CONTENT_DATE, "DA", "1"),
        (CONTENT_TIME, "TM", "1"),
        (INSTANCE_NUMBER, "IS", "1"),
    ),
    "RAW DATA": (
        (CONTENT_DATE, "DA", "1"),
        (CONTENT_TIME, "TM", "1"),
        (INSTANCE_NUMBER, "IS", "1"),
    ),
    "REGISTRATION": _CONTENT_KEYS,
    "FIDUCIAL": _CONTENT_KEYS,
    "RT DOSE": ((INSTANCE_NUMBER, "IS", "1"), (DOSE_SUMMATION_TYPE, "CS", "1")),
    "RT STRUCTURE SET": (
        (INSTANCE_NUMBER, "IS", "1"),
        (STRUCTURE_SET_LABEL, "SH", "1"),
        (STRUCTURE_SET_DATE, "DA", "2"),
        (STRUCTURE_SET_TIME, "TM", "2"),
    ),
    "RT PLAN": (
        (INSTANCE_NUMBER, "IS", "1"),
        (RT_PLAN_LABEL, "SH", "1"),
        (RT_PLAN_DATE, "DA", "2"),
        (RT_PLAN_TIME, "TM", "2"),
    ),
    "RT TREAT RECORD": (
        (INSTANCE_NUMBER, "IS", "1"),
        (TREATMENT_DATE, "DA", "2"),
        (TREATMENT_TIME, "TM", "2"),
    ),
    "SPECTROSCOPY": (
        (IMAGE_TYPE, "CS", "1"),
        (CONTENT_DATE, "DA", "1"),
        (CONTENT_TIME, "TM", "1"),
        (INSTANCE_NUMBER, "IS", "1"),
        (NUMBER_OF_FRAMES, "IS", "1"),
        (ROWS, "US", "1"),
        (COLUMNS, "US", "1"),
        (DATA_POINT_ROWS, "UL", "1"),
        (DATA_POINT_COLUMNS, "UL", "1"),
    ),
}

_STORAGE = "1.2.840.10008.5.1.4.1.1."
_RECORD_BY_PREFIX: tuple[tuple[str, str], ...] = (
    (_STORAGE + "88.59", "KEY OBJECT DOC"),
    (_STORAGE + "88.", "SR DOCUMENT"),
    (_STORAGE + "11.", "PRESENTATION"),
    (_STORAGE + "104.", "ENCAP DOC"),
    (_STORAGE + "9.", "WAVEFORM"),
    (_STORAGE + "66.1", "REGISTRATION"),
    (_STORAGE + "66.2", "FIDUCIAL"),
    (_STORAGE + "66.3", "REGISTRATION"),
    (_STORAGE + "481.2", "RT DOSE"),
    (_STORAGE + "481.3", "RT STRUCTURE SET"),
    (_STORAGE + "481.5", "RT PLAN"),
    (_STORAGE + "481.8", "RT PLAN"),
    (_STORAGE + "481.4", "RT TREAT RECORD"),
    (_STORAGE + "481.6", "RT TREAT RECORD"),
    (_STORAGE + "481.7", "RT TREAT RECORD"),
    (_STORAGE + "481.9", "RT TREAT RECORD"),
    (_STORAGE + "4.2", "SPECTROSCOPY"),
)


def record_type_for(sop_class_uid: str) -> str:
    """The leaf Directory Record Type for a SOP Class (PS3.3 F.4, Table F.4-1); IMAGE otherwise."""
    for prefix, record_type in _RECORD_BY_PREFIX:
        if sop_class_uid == prefix.rstrip(".") or (
            prefix.endswith(".") and sop_class_uid.startswith(prefix)
        ):
            return record_type
    if sop_class_uid == _STORAGE + "66":
        return "RAW DATA"
    return "IMAGE"


def leaf_keys(sop_class_uid: str) -> tuple[Key, ...]:
    return LEAF_KEYS[record_type_for(sop_class_uid)]


def type1_keys(sop_class_uid: str) -> list[int]:
    """Every type 1 key the four records of one file need (the fill policy works from this)."""
    keys = (*PATIENT_KEYS, *STUDY_KEYS, *SERIES_KEYS, *leaf_keys(sop_class_uid))
    return [tag for tag, _vr, kind in keys if kind == "1"]


WANTED: frozenset[int] = frozenset(
    {SPECIFIC_CHARACTER_SET, SOP_CLASS_UID, SOP_INSTANCE_UID, VERIFYING_OBSERVER_SEQUENCE}
    | {tag for tag, _vr, _t in (*PATIENT_KEYS, *STUDY_KEYS, *SERIES_KEYS)}
    | {tag for keys in LEAF_KEYS.values() for tag, _vr, _t in keys}
)
_STOP = max(WANTED) + 1
_STOP_BY_CLASS: dict[str, int] = {
    record_type: max(
        tag for keys in (PATIENT_KEYS, STUDY_KEYS, SERIES_KEYS, leaf) for tag, _v, _t in keys
    )
    + 1
    for record_type, leaf in LEAF_KEYS.items()
}


class HeaderError(Exception):
    """A file whose header cannot be read for the DICOMDIR: ``str(e)`` names the file."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class MissingKeyError(HeaderError):
    """A file lacking a type 1 Directory Record key (PS3.3 F.5)."""


@dataclass(slots=True)
class Header:
    """What the DICOMDIR needs from one file, values as the raw bytes the file holds."""

    path: str
    transfer_syntax_uid: str
    media_sop_class_uid: str
    media_sop_instance_uid: str
    elements: dict[int, tuple[str, bytes]] = field(default_factory=dict)
    """tag -> (VR, raw value) for the tags in :data:`WANTED` the dataset holds."""
    body_offset: int = 0
    """Byte offset of the dataset (after the File Meta) in the file."""
    meta: dict[int, bytes] = field(default_factory=dict)
    """Raw File Meta values (group 0002)."""
    preamble: str = ""
    """"" for 128 zero bytes, else what it holds ("executable header", "non-zero bytes")."""

    def text(self, tag: int) -> str:
        """A value as ASCII text with padding removed (UIDs, IDs, dates: never patient text)."""
        item = self.elements.get(tag)
        if item is None:
            return ""
        return item[1].rstrip(b"\x00 ").decode("latin-1").strip()

    def has(self, tag: int) -> bool:
        item = self.elements.get(tag)
        return item is not None and item[1].strip(b"\x00 ") != b""


def _tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


class _NeedMore(Exception):
    """The buffer ended inside the header: read more of the file."""


def _walk_top(buf: bytes, pos: int, out: dict[int, tuple[str, bytes]], complete: bool) -> None:
    """Copy the wanted top-level values; stop after the last key the file's record type needs
    (PS3.3 F.5), so that an image's header is read only up to Instance Number.

    Elements are read with the one walker (:mod:`viewer.dicom.elements`); a buffer that ends
    before the keys do is :class:`_NeedMore` unless it is the whole file (``complete``).
    """
    end = len(buf)
    stop = _STOP
    while True:
        if pos + 8 > end:
            if complete and pos == end:
                return
            if complete:
                raise ValueError("dataset ends inside an element header")
            raise _NeedMore
        group, elem = elements.S_TAG[True].unpack_from(buf, pos)
        if (group << 16 | elem) >= stop:
            return
        tag, vr, start, length = elements.element_header(buf, pos, end, elements.EXPLICIT_LE_CODEC)
        if not vr:
            raise ValueError(f"{_tag_text(tag)} has no explicit VR")
        if length == elements.UNDEFINED:
            if tag == PIXEL_DATA:
                return
            after = elements.skip_undefined(buf, start, end, elements.EXPLICIT_LE_CODEC, vr)
            value_end = after - 8
        else:
            value_end = after = start + length
            if after > end:
                if complete:
                    raise ValueError(
                        f"value of ({tag >> 16:04X},{tag & 0xFFFF:04X}) runs past the end"
                    )
                raise _NeedMore
        if tag in WANTED:
            value = bytes(buf[start:value_end])
            out[tag] = (vr.decode("ascii", "replace"), value)
            if tag == SOP_CLASS_UID:
                stop = _STOP_BY_CLASS.get(
                    record_type_for(value.rstrip(b"\x00 ").decode("ascii", "replace")), _STOP
                )
        pos = after


def _parse_meta(buf: bytes, path: str, complete: bool) -> tuple[dict[int, bytes], int]:
    """File Meta (PS3.10 7.1) after the preamble and DICM, read by the one walker."""
    if len(buf) < 132 or buf[128:132] != b"DICM":
        raise HeaderError(path, "no DICM prefix after the 128-byte preamble")
    try:
        pos, meta = elements.parse_meta(buf, len(buf))
    except elements.Malformed as exc:
        if not complete:
            raise _NeedMore from None
        raise HeaderError(path, f"File Meta Information is broken ({exc})") from None
    return meta, pos


def _clean(value: bytes) -> str:
    return value.rstrip(b"\x00 ").decode("latin-1").strip()


def parse_header(buf: bytes, path: str, complete: bool = True) -> Header:
    """Header of a Part 10 file whose dataset is Explicit VR Little Endian (raises
    :class:`_NeedMore` when ``buf`` is a prefix too short, :class:`HeaderError` otherwise)."""
    try:
        return _parse_header(buf, path, complete)
    except _NeedMore:
        if not complete:
            raise
        raise HeaderError(path, "file ends inside the header") from None


def _parse_header(buf: bytes, path: str, complete: bool) -> Header:
    meta, pos = _parse_meta(buf, path, complete)
    ts = _clean(meta.get(0x00020010, b""))
    if not ts:
        raise HeaderError(path, "File Meta has no Transfer Syntax UID")
    if ts in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"):
        raise HeaderError(path, f"dataset is not Explicit VR Little Endian ({ts})")
    header = Header(
        path,
        ts,
        _clean(meta.get(0x00020002, b"")),
        _clean(meta.get(0x00020003, b"")),
        body_offset=pos,
        meta=meta,
    )
    if any(buf[:128]):
        executable = bool(executable_header(bytes(buf[:PREAMBLE_SIZE])))
        header.preamble = "executable header (CVE-2019-11687)" if executable else "non-zero bytes"
    try:
        _walk_top(buf, pos, header.elements, complete)
    except elements.Malformed as exc:
        if not complete:
            raise _NeedMore from None  # the buffer may end where the file goes on
        raise HeaderError(path, f"malformed dataset: {exc}") from None
    except (ValueError, struct.error) as exc:
        raise HeaderError(path, f"malformed dataset: {exc}") from None
    return header


def _header_via_pydicom(path: str) -> Header:
    """Fallback for other encodings: pydicom reads the header, we re-encode it as Explicit VR
    Little Endian in memory and walk that, so that every caller sees the same raw values."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _header_via_pydicom_quietly(path)


def _header_via_pydicom_quietly(path: str) -> Header:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        meta = ds.file_meta
        ts = str(meta.get("TransferSyntaxUID", "") or "")
        if not ts:
            implicit, little = ds.original_encoding
            ts = (
                "1.2.840.10008.1.2"
                if implicit
                else (EXPLICIT_VR_LE if little else "1.2.840.10008.1.2.2")
            )
        if "SOPClassUID" not in ds:
            raise HeaderError(path, "not a DICOM file (no SOP Class UID)")
        for elem in ds.iterall():
            _ = elem.value
        ds.file_meta = pydicom.dataset.FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = UID(EXPLICIT_VR_LE)
        ds.preamble = b"\x00" * 128
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, ds, implicit_vr=False, little_endian=True, force_encoding=True)
    except HeaderError:
        raise
    except (InvalidDicomError, OSError, ValueError, TypeError, KeyError, RecursionError) as exc:
        raise HeaderError(path, f"cannot read the header: {exc}") from None
    data = buffer.getvalue()
    parsed = parse_header(data, path)
    parsed.transfer_syntax_uid = ts
    parsed.media_sop_class_uid = str(meta.get("MediaStorageSOPClassUID", "") or "")
    parsed.media_sop_instance_uid = str(meta.get("MediaStorageSOPInstanceUID", "") or "")
    parsed.body_offset = -1
    return parsed


def read_header(path: str | os.PathLike[str], first_read: int = 16384) -> Header:
    """The DICOMDIR-relevant header of one file, reading as little of it as possible."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            buf = fh.read(first_read)
            while True:
                try:
                    return parse_header(buf, name, len(buf) >= size)
                except _NeedMore:
                    more = fh.read(max(len(buf), 65536))
                    if not more:
                        raise HeaderError(name, "file ends inside the header") from None
                    buf += more
    except HeaderError as exc:
        # Other encodings, no File Meta, or a File Meta that names the wrong transfer syntax:
        # pydicom works out what the dataset really is.
        if exc.reason.startswith(("malformed", "no DICM", "dataset is not", "File Meta")):
            return _header_via_pydicom(name)
        if "no Transfer Syntax" in exc.reason:
            return _header_via_pydicom(name)
        raise
    except OSError as exc:
        raise HeaderError(name, f"cannot read: {exc.strerror or exc}") from None


# --- encoding ------------------------------------------------------------------------------


def _element(tag: int, vr: str, value: bytes) -> bytes:
    """One Explicit VR Little Endian data element (PS3.5 7.1.2), value padded to even length."""
    if len(value) % 2:
        value += b"\x00" if vr in ("UI", "OB", "UN") else b" "
    vr_bytes = vr.encode("ascii")
    if vr_bytes in LONG_VRS:
        return struct.pack("<HH2sHI", tag >> 16, tag & 0xFFFF, vr_bytes, 0, len(value)) + value
    if len(value) > 0xFFFF:
        value = value[:0xFFFE]
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr_bytes, len(value)) + value


_TEXT_VRS = frozenset({"PN", "LO", "SH", "ST", "LT", "UT", "UC"})


@dataclass(slots=True)
class _Record:
    record_type: str
    keys: list[tuple[int, str, bytes]]
    children: list[_Record] = field(default_factory=list)
    index: dict[str, _Record] = field(default_factory=dict)
    reference: tuple[Sequence[str], str, str, str] | None = None

    def encode(self) -> tuple[bytes, int, int]:
        """Item bytes with zero offsets, and where the two offsets sit inside them."""
        parts = [
            _element(0x00041400, "UL", b"\x00\x00\x00\x00"),
            _element(0x00041410, "US", b"\xff\xff"),
            _element(0x00041420, "UL", b"\x00\x00\x00\x00"),
            _element(0x00041430, "CS", self.record_type.encode("ascii")),
        ]
        if self.reference is not None:
            file_id, sop_class, sop_instance, ts = self.reference
            parts.append(_element(0x00041500, "CS", "\\".join(file_id).encode("ascii")))
            parts.append(_element(0x00041510, "UI", sop_class.encode("ascii")))
            parts.append(_element(0x00041511, "UI", sop_instance.encode("ascii")))
            parts.append(_element(0x00041512, "UI", ts.encode("ascii")))
        parts.extend(_element(tag, vr, value) for tag, vr, value in sorted(self.keys))
        body = b"".join(parts)
        item = struct.pack("<HHI", 0xFFFE, 0xE000, len(body)) + body
        # 8 (item header) + 8 (element header) = the Offset of the Next Directory Record value;
        # + 12 (that element) + 10 (In-use Flag) + 8 = the lower-level offset value.
        return item, 16, 38


def _record_keys(
    header: Header, keys: Iterable[Key], record_type: str
) -> list[tuple[int, str, bytes]]:
    """The record's keys from the file; raises :class:`MissingKeyError` for a missing type 1."""
    out: list[tuple[int, str, bytes]] = []
    needs_charset = False
    for tag, vr, kind in keys:
        item = header.elements.get(tag)
        if item is None or (kind == "1" and not item[1].strip(b"\x00 ")):
            if kind == "1":
                name = KEYWORDS.get(tag, f"({tag >> 16:04X},{tag & 0xFFFF:04X})")
                raise MissingKeyError(
                    header.path,
                    f"{name} is empty or missing (type 1 key of the {record_type} record)",
                )
            if kind == "2":
                out.append((tag, vr, b""))
            continue
        file_vr, value = item
        use_vr = file_vr if file_vr not in ("UN", "") else vr
        if use_vr in _TEXT_VRS and any(b >= 0x80 or b == 0x1B for b in value):
            needs_charset = True
        out.append((tag, use_vr, value))
    if needs_charset and SPECIFIC_CHARACTER_SET in header.elements:
        out.append((SPECIFIC_CHARACTER_SET, "CS", header.elements[SPECIFIC_CHARACTER_SET][1]))
    return out


def _sequence_values(value: bytes, wanted: int) -> list[bytes]:
    """Values of ``wanted`` in the items of an Explicit VR LE sequence value (one level)."""
    codec = elements.EXPLICIT_LE_CODEC
    found: list[bytes] = []
    pos, end = 0, len(value)
    while pos + 8 <= end:
        tag, _vr, pos, length = elements.element_header(value, pos, end, codec)
        if tag != elements.ITEM:
            break
        item_end = end if length == elements.UNDEFINED else min(pos + length, end)
        while pos + 8 <= item_end:
            tag, vr, start, size = elements.element_header(value, pos, item_end, codec)
            if tag == elements.ITEM_DELIM:
                pos = start
                break
            if size == elements.UNDEFINED:
                after = elements.skip_undefined(value, start, item_end, codec, vr)
            else:
                after = start + size
            if tag == wanted:
                found.append(bytes(value[start:after]))
            pos = after
        if length != elements.UNDEFINED:
            pos = item_end
    return found


def _add_verification_datetime(header: Header) -> None:
    """SR DOCUMENT key Verification DateTime (PS3.3 F.5, 1C: required when VERIFIED) is the
    latest (0040,A030) of the Verifying Observer Sequence."""
    if VERIFICATION_DATETIME in header.elements or header.text(VERIFICATION_FLAG) != "VERIFIED":
        return
    item = header.elements.get(VERIFYING_OBSERVER_SEQUENCE)
    if item is None:
        return
    try:
        values = _sequence_values(item[1], VERIFICATION_DATETIME)
    except (ValueError, struct.error, elements.Malformed):
        return
    values = [v for v in values if v.strip(b"\x00 ")]
    if values:
        header.elements[VERIFICATION_DATETIME] = ("DT", max(values))


def _key(header: Header, tag: int) -> str:
    return header.text(tag)


class DicomdirBuilder:
    """Collects files into the record tree in one pass; :meth:`encode` writes it (PS3.3 F.3).

    ``add`` costs a few dictionary look-ups per file; ``encode`` visits each record once.
    """

    def __init__(
        self,
        fileset_id: str = "",
        *,
        implementation_class_uid: str | None = None,
        implementation_version_name: str | None = None,
    ) -> None:
        if not FILESET_ID.match(fileset_id):
            raise ValueError(f"File-set ID {fileset_id!r} is not up to 16 of A-Z, 0-9, _")
        implementation_class_uid = implementation_class_uid or dicom.IMPLEMENTATION_CLASS_UID
        implementation_version_name = (
            implementation_version_name or dicom.IMPLEMENTATION_VERSION_NAME
        )
        self.fileset_id = fileset_id
        self.implementation_class_uid = implementation_class_uid
        self.implementation_version_name = implementation_version_name
        self._patients: dict[str, _Record] = {}
        self._roots: list[_Record] = []
        self._sop_instances: set[str] = set()
        self.count = 0

    def add(self, header: Header, file_id: Sequence[str]) -> None:
        """Add one file whose File ID (components relative to the file-set root) is ``file_id``.

        Raises :class:`MissingKeyError` for a missing type 1 key and :class:`HeaderError` for a bad
        file ID or a SOP Instance UID already in the file-set; the tree is unchanged then.
        """
        if not 1 <= len(file_id) <= 8 or not all(FILE_ID_COMPONENT.match(c) for c in file_id):
            raise HeaderError(header.path, f"file ID {'/'.join(file_id)!r} breaks PS3.10 8.2")
        sop_instance = header.text(SOP_INSTANCE_UID) or header.media_sop_instance_uid
        sop_class = header.text(SOP_CLASS_UID) or header.media_sop_class_uid
        if not sop_instance or not sop_class:
            raise HeaderError(header.path, "no SOP Class or SOP Instance UID")
        if sop_instance in self._sop_instances:
            raise HeaderError(
                header.path, f"SOP Instance UID {sop_instance} is already on the media"
            )
        record_type = record_type_for(sop_class)
        if record_type == "SR DOCUMENT":
            _add_verification_datetime(header)
        leaf = _Record(
            record_type,
            _record_keys(header, LEAF_KEYS[record_type], record_type),
            reference=(tuple(file_id), sop_class, sop_instance, header.transfer_syntax_uid),
        )
        patient_id = _key(header, PATIENT_ID)
        patient = self._patients.get(patient_id)
        study_uid = _key(header, STUDY_INSTANCE_UID)
        series_uid = _key(header, SERIES_INSTANCE_UID)
        study = patient.index.get(study_uid) if patient else None
        series = study.index.get(series_uid) if study else None
        new_patient = new_study = new_series = None
        if patient is None:
            patient = new_patient = _Record(
                "PATIENT", _record_keys(header, PATIENT_KEYS, "PATIENT")
            )
        if study is None:
            study = new_study = _Record("STUDY", _record_keys(header, STUDY_KEYS, "STUDY"))
        if series is None:
            series = new_series = _Record("SERIES", _record_keys(header, SERIES_KEYS, "SERIES"))
        # Everything validated: link.
        if new_patient is not None:
            self._patients[patient_id] = new_patient
            self._roots.append(new_patient)
        if new_study is not None:
            patient.index[study_uid] = new_study
            patient.children.append(new_study)
        if new_series is not None:
            study.index[series_uid] = new_series
            study.children.append(new_series)
        series.children.append(leaf)
        self._sop_instances.add(sop_instance)
        self.count += 1

    def tree(self) -> dict[str, dict[str, dict[str, list[str]]]]:
        """patient ID -> study UID -> series UID -> SOP Instance UIDs (for verification)."""
        out: dict[str, dict[str, dict[str, list[str]]]] = {}
        for pid, patient in self._patients.items():
            studies = out.setdefault(pid, {})
            for study_uid, study in patient.index.items():
                series_map = studies.setdefault(study_uid, {})
                for series_uid, series in study.index.items():
                    series_map[series_uid] = [
                        leaf.reference[2] for leaf in series.children if leaf.reference
                    ]
        return out

    def _meta(self) -> bytes:
        """File Meta Information of the DICOMDIR (PS3.10 7.1)."""
        instance_uid = f"2.25.{uuid.uuid4().int}"
        elements = b"".join(
            [
                _element(0x00020001, "OB", b"\x00\x01"),
                _element(0x00020002, "UI", BASIC_DIRECTORY_SOP_CLASS.encode()),
                _element(0x00020003, "UI", instance_uid.encode()),
                _element(0x00020010, "UI", EXPLICIT_VR_LE.encode()),
                _element(0x00020012, "UI", self.implementation_class_uid.encode()),
                _element(0x00020013, "SH", self.implementation_version_name.encode()),
            ]
        )
        return (
            b"\x00" * 128
            + b"DICM"
            + _element(0x00020000, "UL", struct.pack("<I", len(elements)))
            + elements
        )

    def encode(self) -> bytes:
        """The whole DICOMDIR file: offsets count from byte 0, preamble included (PS3.3 F.3.2.1)."""
        order: list[tuple[_Record, bytes, int, int]] = []

        def visit(records: list[_Record]) -> None:
            for record in records:
                item, next_at, lower_at = record.encode()
                order.append((record, item, next_at, lower_at))
                visit(record.children)

        visit(self._roots)
        head = self._meta()
        fileset = _element(0x00041130, "CS", self.fileset_id.encode("ascii"))
        # (0004,1200) UL + (0004,1202) UL + (0004,1212) US + (0004,1220) SQ header.
        seq_start = len(head) + len(fileset) + 12 + 12 + 10 + 12
        offsets: dict[int, int] = {}
        position = seq_start
        for record, item, _n, _l in order:
            offsets[id(record)] = position
            position += len(item)
        items = bytearray()
        for record, item, _next_at, lower_at in order:
            buf = bytearray(item)
            if record.children:
                struct.pack_into("<I", buf, lower_at, offsets[id(record.children[0])])
            items += buf
        # Sibling links: each record points to the next child of the same parent.
        for siblings in self._sibling_lists():
            for this, following in itertools.pairwise(siblings):
                at = offsets[id(this)] - seq_start + 16
                struct.pack_into("<I", items, at, offsets[id(following)])
        first = offsets[id(self._roots[0])] if self._roots else 0
        last = offsets[id(self._roots[-1])] if self._roots else 0
        dataset = b"".join(
            [
                fileset,
                _element(0x00041200, "UL", struct.pack("<I", first)),
                _element(0x00041202, "UL", struct.pack("<I", last)),
                _element(0x00041212, "US", b"\x00\x00"),
                struct.pack("<HH2sHI", 0x0004, 0x1220, b"SQ", 0, len(items)),
            ]
        )
        return head + dataset + bytes(items)

    def _sibling_lists(self) -> Iterable[list[_Record]]:
        yield self._roots
        stack = list(self._roots)
        while stack:
            record = stack.pop()
            if record.children:
                yield record.children
                stack.extend(record.children)

    def write(self, path: str | os.PathLike[str]) -> bytes:
        data = self.encode()
        with open(path, "wb") as fh:
            fh.write(data)
        return data


def iter_files(directory: Path, root: Path) -> list[tuple[Path, tuple[str, ...]]]:
    """Every regular file under ``directory`` (directory order, recursive) with its file ID
    relative to the file-set ``root``."""
    out: list[tuple[Path, tuple[str, ...]]] = []
    base = len(root.parts)

    def walk(directory: Path) -> None:
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    walk(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    path = Path(entry.path)
                    out.append((path, path.parts[base:]))

    walk(directory)
    return out


@dataclass(slots=True)
class BuildResult:
    data: bytes
    files: int
    problems: list[str]


def build_dicomdir(
    root: str | os.PathLike[str],
    *,
    fileset_id: str = "",
    subdir: str = "DICOM",
    write: bool = True,
) -> BuildResult:
    """DICOMDIR for the files already laid out under ``root/subdir``, read as ``dcmmkdir +r``
    does (headers only); files that cannot be referenced are listed as problems, not written."""
    root_path = Path(root)
    builder = DicomdirBuilder(fileset_id)
    problems: list[str] = []
    for path, file_id in iter_files(root_path / subdir, root_path):
        try:
            builder.add(read_header(path), file_id)
        except HeaderError as exc:
            problems.append(str(exc))
    data = builder.encode()
    if write:
        (root_path / "DICOMDIR").write_bytes(data)
    return BuildResult(data, builder.count, problems)
