"""The byte layout of a DICOM file as the store needs it: where the data set starts.

The store recognises a duplicate by the bytes that follow the File Meta Information (group 0002,
PS3.10 section 7.1), because media writers and network transfers rewrite the meta (Implementation
Class UID, Source Application Entity Title, group length) while the data set is the same. It also
replaces a preamble that is an executable header (PE, ELF, Mach-O: CVE-2019-11687, PS3.10
section 7.5 note) by zeros, and gives files without a File Meta a generated one.

The meta group is walked with the one element walker rather than with pydicom, because the store
must know the exact byte offset of the data set and must never allocate what a length claims.
"""

from __future__ import annotations

from dataclasses import dataclass

import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

from viewer.dicom import elements
from viewer.dicom.part10 import PREAMBLE_SIZE, executable_header

#: How many bytes :func:`split_header` needs at most: a File Meta longer than this is refused.
HEAD_SIZE = 64 * 1024


class HeaderError(ValueError):
    """The first bytes cannot be a DICOM file (a reason, without the path)."""


class NotDicomError(HeaderError):
    """No DICOM at all (a README, a web page, a picture on the same disc), not a damaged file."""


@dataclass(frozen=True, slots=True)
class Header:
    """Where the parts of a file are.

    ``meta_start`` is None when the file has no File Meta (a bare data set, as older media hold);
    ``dataset_start`` is where the data set (the bytes compared for duplicates) begins.
    """

    has_preamble: bool
    meta_start: int | None
    dataset_start: int
    executable_preamble: str | None


def _looks_like_vr(vr: bytes) -> bool:
    return len(vr) == 2 and 65 <= vr[0] <= 90 and 65 <= vr[1] <= 90


def _walk_meta(head: bytes, start: int) -> int:
    """Offset of the first element after group 0002, walking from ``start`` (PS3.10 7.1).

    The one walker (:mod:`viewer.dicom.elements`) reads the meta as Explicit VR Little Endian,
    or implicit where a header has no VR (seen on old media). The group length element is not
    trusted: some writers get it wrong.
    """
    pos = start
    end = len(head)
    while pos + 8 <= end and elements.S_U16[True].unpack_from(head, pos)[0] == 0x0002:
        try:
            _tag, _vr, vpos, length = elements.element_header(
                head, pos, end, elements.EXPLICIT_LE_CODEC
            )
        except elements.Malformed:
            pos = end + 1  # a long VR's header cut short: truncated, said below
            break
        if length == elements.UNDEFINED:
            raise HeaderError("the File Meta Information has an element of undefined length")
        pos = vpos + length
    if pos != end and pos + 8 > end:
        raise HeaderError(
            f"the File Meta Information is truncated or longer than {HEAD_SIZE // 1024} KiB"
        )
    return pos


def split_header(head: bytes) -> Header:
    """Find preamble, meta and data set in the first bytes of a file (at most HEAD_SIZE)."""
    if len(head) >= PREAMBLE_SIZE + 4 and head[PREAMBLE_SIZE : PREAMBLE_SIZE + 4] == b"DICM":
        start = PREAMBLE_SIZE + 4
        return Header(
            has_preamble=True,
            meta_start=start,
            dataset_start=_walk_meta(head, start),
            executable_preamble=executable_header(head[:PREAMBLE_SIZE]) or None,
        )
    if len(head) >= 8 and head[0:2] == b"\x02\x00" and _looks_like_vr(head[4:6]):
        return Header(False, 0, _walk_meta(head, 0), None)
    if not _plausible_bare_dataset(head):
        raise NotDicomError("not a DICOM file (no DICM marker and no data element at the start)")
    return Header(False, None, 0, None)


def _plausible_bare_dataset(head: bytes) -> bool:
    """A data set without preamble or meta (PS3.5 section 7.1) starts with a group 0008
    element (or 0004/0008 in big endian), explicit or implicit VR with a sane length."""
    if len(head) < 8:
        return False
    little = int.from_bytes(head[0:2], "little")
    big = int.from_bytes(head[0:2], "big")
    if little not in (0x0004, 0x0008) and big not in (0x0004, 0x0008):
        return False
    if _looks_like_vr(head[4:6]):
        return True
    if little in (0x0004, 0x0008):
        return int.from_bytes(head[4:8], "little") < 1 << 16
    return int.from_bytes(head[4:8], "big") < 1 << 16


def file_meta_bytes(sop_class_uid: str, sop_instance_uid: str, transfer_syntax_uid: str) -> bytes:
    """Preamble of zeros, ``DICM`` and a File Meta for a data set that came without one.

    PS3.10 section 7.1: (0002,0002)/(0002,0003) copy the SOP Class/Instance UIDs, (0002,0010)
    names the transfer syntax the data set is encoded in, which the reader inferred.
    """
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = pydicom.uid.UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = pydicom.uid.UID(sop_instance_uid)
    meta.TransferSyntaxUID = pydicom.uid.UID(transfer_syntax_uid)
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "LIGHTBOX"
    buf = DicomBytesIO()
    write_file_meta_info(buf, meta, enforce_standard=True)
    return b"\x00" * PREAMBLE_SIZE + b"DICM" + buf.getvalue()
