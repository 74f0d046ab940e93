"""Write IHE PDI media (a DICOM File-set) from a list of DICOM files.

PS3.10 ch. 7-8 (file format, File Meta, file IDs), PS3.11 Annex D/J (STD-GEN-CD, -DVD-JPEG,
-USB-JPEG), PS3.12 Annex F/P (CD-R, DVD), PS3.3 Annex F (DICOMDIR), IHE RAD TF-1 ch. 15 and
TF-3 4.47 (Portable Data for Imaging: README.TXT, INDEX.HTM, IHE_PDI/).

The input is a list of file paths (the store hands its managed files in later). Every file gets a
preamble of 128 zero bytes (CVE-2019-11687: pydicom writes back a preamble it read) and a File
Meta regenerated with our implementation identity. When the profile allows the file's transfer
syntax and no key is missing, the dataset bytes are copied verbatim after the new File Meta;
otherwise pydicom re-encodes it (decoding pixels when the profile demands it). Each change to a
dataset is listed in :attr:`WriteReport.changes`.

Policy for files lacking a type 1 DICOMDIR key (PS3.3 F.5), applied to the file and its record:

- no SOP Class, SOP Instance, Study Instance or Series Instance UID: the file is refused;
- Patient ID empty: ``NOID`` + a number, one per distinct Patient's Name + Birth Date among such
  files, never equal to a Patient ID already in the selection;
- Study Date / Study Time empty: the study's Content Date / Time when a file has them, else the
  date of writing / ``000000``;
- Study ID empty: ``LB`` + the study's number in the selection;
- Modality empty: ``OT``; Series Number empty: one more than the highest in the study;
- Instance Number empty: one more than the highest in the series;
- Patient's Name absent (type 2): added, empty;
- any other type 1 key of a leaf record (an SR's Completion Flag...): the file is refused.

A SOP Instance UID met twice is written once; the later file is listed as skipped.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import os
import re
import shutil
import struct
import tempfile
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID

from viewer import __version__, dicom
from viewer.media import dicomdir_writer as ddw
from viewer.media.plan import (
    Cancelled,
    Change,
    DiscResult,
    MediaError,
    Plan,
    PlannedSeries,
    PlannedStudy,
    SourceFile,
    WrittenFile,
    contents_lines,
)
from viewer.media.profiles import (
    EXPLICIT_VR_BE,
    EXPLICIT_VR_LE,
    IMPLICIT_VR_LE,
    Action,
    Medium,
    Profile,
    get_medium,
    get_profile,
    smallest_medium_for,
)
from viewer.text import escape, plural

if TYPE_CHECKING:
    from viewer.media.deidentify import Deidentifier

LOSSLESS_TRANSFER_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2.5",  # RLE
        "1.2.840.10008.1.2.4.57",
        "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
        "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless only
        "1.2.840.10008.1.2.4.201",  # HTJ2K lossless
        "1.2.840.10008.1.2.4.202",  # HTJ2K lossless RPCL
    }
)

ProgressCallback = Callable[[int, int], None]

_DEFAULT_RESERVE = 4 * 1024 * 1024
"""Room kept on each disc for README, web pages, DICOMDIR slack and ISO 9660 structures."""


@dataclass(slots=True)
class WriteReport:
    profile: str
    medium: str
    discs: list[DiscResult]
    changes: list[Change]
    skipped: list[str]
    timings: dict[str, float] = field(default_factory=dict)
    verification: list[Any] = field(default_factory=list)
    deidentification: str = ""
    """The de-identification profile and options applied (empty: none)."""
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(getattr(v, "ok", False) for v in self.verification)

    def summary(self) -> str:
        lines = [
            f"profile {self.profile}, medium {self.medium}, {len(self.discs)} disc(s)",
            *(
                f"disc {d.index} of {d.count}: {escape(d.root)} (File-set ID {d.fileset_id}), "
                f"{len(d.files)} files"
                for d in self.discs
            ),
            f"{len(self.changes)} change(s) to datasets beyond the File Meta",
            *(f"  {c}" for c in self.changes),
            f"{len(self.skipped)} file(s) not written",
            *(f"  {escape(s)}" for s in self.skipped),
        ]
        if self.deidentification:
            lines.append(f"de-identified: {self.deidentification}")
        lines += [f"warning: {escape(w)}" for w in self.warnings]
        for result in self.verification:
            lines.append(str(result.summary()) if hasattr(result, "summary") else str(result))
        return "\n".join(lines)


# --- planning ------------------------------------------------------------------------------


def _estimate(path: Path, header: ddw.Header, action: Action) -> int:
    """Bytes the file will take on the media: its size, or its decoded size when decoding."""
    size = path.stat().st_size
    if action is not Action.DECODE:
        return size
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(
                path,
                stop_before_pixels=True,
                specific_tags=[
                    "Rows",
                    "Columns",
                    "NumberOfFrames",
                    "SamplesPerPixel",
                    "BitsAllocated",
                ],
            )
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        bits = int(ds.get("BitsAllocated", 16) or 16)
        pixels = int(ds.Rows) * int(ds.Columns) * frames * int(ds.get("SamplesPerPixel", 1) or 1)
        return size + pixels * max(1, (bits + 7) // 8)
    except Exception:
        return size * 4


def plan_media(
    paths: Sequence[str | os.PathLike[str]],
    *,
    profile: str | Profile | None = None,
    medium: str | Medium | None = None,
    today: _dt.date | None = None,
) -> Plan:
    """Read every header, apply the type 1 key policy, group and split into discs.

    Raises :class:`MediaError` when one study is larger than the medium, naming the medium that
    would hold it. Unreadable files and files the policy refuses are listed in ``skipped``.
    """
    prof = get_profile(profile)
    med = get_medium(medium, prof)
    today = today or _dt.date.today()
    changes: list[Change] = []
    skipped: list[str] = []
    seen: dict[str, Path] = {}
    sources: list[SourceFile] = []
    for raw in paths:
        path = Path(raw)
        try:
            header = ddw.read_header(path)
        except ddw.HeaderError as exc:
            skipped.append(str(exc))
            continue
        missing_uid = [
            ddw.KEYWORDS[t]
            for t in (
                ddw.SOP_CLASS_UID,
                ddw.SOP_INSTANCE_UID,
                ddw.STUDY_INSTANCE_UID,
                ddw.SERIES_INSTANCE_UID,
            )
            if not header.has(t)
        ]
        if missing_uid:
            skipped.append(f"{path}: refused: no {', '.join(missing_uid)}")
            continue
        sop = header.text(ddw.SOP_INSTANCE_UID)
        if sop in seen:
            skipped.append(f"{path}: skipped: same SOP Instance UID as {seen[sop]}")
            continue
        record_type = ddw.record_type_for(header.text(ddw.SOP_CLASS_UID))
        unfillable = [
            ddw.KEYWORDS.get(tag, f"({tag >> 16:04X},{tag & 0xFFFF:04X})")
            for tag, _vr, kind in ddw.LEAF_KEYS[record_type]
            if kind == "1" and tag != ddw.INSTANCE_NUMBER and not header.has(tag)
        ]
        if unfillable:
            skipped.append(
                f"{path}: refused: type 1 key(s) of its {record_type} record missing: "
                f"{', '.join(unfillable)}"
            )
            continue
        seen[sop] = path
        action = prof.action(header.transfer_syntax_uid)
        source = SourceFile(path, header, action, _estimate(path, header, action))
        if header.preamble:
            changes.append(
                Change(
                    str(path),
                    "preamble",
                    header.preamble,
                    "128 zero bytes",
                    "never copied on (CVE-2019-11687)",
                )
            )
        if ddw.PATIENT_NAME not in header.elements:
            # Type 2 in the Patient Module and the PATIENT record: present, even if empty.
            source.fills[ddw.PATIENT_NAME] = ""
        sources.append(source)

    # Group (patient key = Patient ID, or the NOID policy) -> study -> series.
    existing_ids = {s.header.text(ddw.PATIENT_ID) for s in sources} - {""}
    noid: dict[tuple[bytes, bytes], str] = {}
    counter = 0
    studies: dict[str, PlannedStudy] = {}
    for source in sources:
        header = source.header
        pid = header.text(ddw.PATIENT_ID)
        if not pid:
            person = (
                header.elements.get(ddw.PATIENT_NAME, ("", b""))[1],
                header.elements.get(ddw.PATIENT_BIRTH_DATE, ("", b""))[1],
            )
            if person not in noid:
                while True:
                    counter += 1
                    candidate = f"NOID{counter:04d}"
                    if candidate not in existing_ids:
                        break
                noid[person] = candidate
            pid = noid[person]
            source.fills[ddw.PATIENT_ID] = pid
        study_uid = header.text(ddw.STUDY_INSTANCE_UID)
        study = studies.get(study_uid)
        if study is None:
            study = studies[study_uid] = PlannedStudy(study_uid, pid)
        series_uid = header.text(ddw.SERIES_INSTANCE_UID)
        study.series.setdefault(series_uid, PlannedSeries(series_uid)).files.append(source)

    for number, study in enumerate(studies.values(), start=1):
        _fill_study(study, number, today)
    for source in sources:
        for tag, value in source.fills.items():
            old = source.header.text(tag)
            why = "type 2 key absent" if tag == ddw.PATIENT_NAME else "type 1 key empty or missing"
            changes.append(
                Change(
                    str(source.path),
                    ddw.KEYWORDS[tag],
                    old,
                    value,
                    f"DICOMDIR {why} (PS3.3 F.5): see the writer's policy",
                )
            )

    # Keep a patient's studies together, in the order given.
    by_patient: dict[str, list[PlannedStudy]] = {}
    for study in studies.values():
        by_patient.setdefault(study.patient_key, []).append(study)
    ordered = [s for group in by_patient.values() for s in group]
    discs = _split(ordered, med)
    return Plan(prof, med, discs, changes, skipped)


def _ints(values: list[str]) -> list[int]:
    out = []
    for value in values:
        try:
            out.append(int(value))
        except ValueError:
            continue
    return out


_DA = re.compile(r"^\d{8}$")
_TM = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")


def _normalise_date_time(study: PlannedStudy) -> None:
    """Study Date / Time in the retired ACR-NEMA forms (``1997.04.24``, ``12:30:00``) are
    rewritten as DA / TM (PS3.5 6.2); other invalid values count as missing."""
    for f in study.files:
        for tag, pattern, sep in ((ddw.STUDY_DATE, _DA, "."), (ddw.STUDY_TIME, _TM, ":")):
            value = f.header.text(tag)
            if value and not pattern.match(value):
                fixed = value.replace(sep, "")
                if pattern.match(fixed):
                    f.fills[tag] = fixed
                else:
                    f.header.elements.pop(tag, None)


def _fill_study(study: PlannedStudy, number: int, today: _dt.date) -> None:
    """Apply the type 1 key policy (module docstring) to one study, consistently per level."""
    _normalise_date_time(study)
    files = study.files
    fills: dict[int, str] = {}
    if not all(f.header.has(ddw.STUDY_DATE) for f in files):
        known = [f.header.text(ddw.STUDY_DATE) for f in files if f.header.has(ddw.STUDY_DATE)]
        content = [f.header.text(ddw.CONTENT_DATE) for f in files if f.header.has(ddw.CONTENT_DATE)]
        fills[ddw.STUDY_DATE] = (known or content or [today.strftime("%Y%m%d")])[0]
    if not all(f.header.has(ddw.STUDY_TIME) for f in files):
        known = [f.header.text(ddw.STUDY_TIME) for f in files if f.header.has(ddw.STUDY_TIME)]
        content = [f.header.text(ddw.CONTENT_TIME) for f in files if f.header.has(ddw.CONTENT_TIME)]
        fills[ddw.STUDY_TIME] = (known or content or ["000000"])[0]
    if not all(f.header.has(ddw.STUDY_ID) for f in files):
        known = [f.header.text(ddw.STUDY_ID) for f in files if f.header.has(ddw.STUDY_ID)]
        fills[ddw.STUDY_ID] = (known or [f"LB{number:04d}"])[0]
    for tag, value in fills.items():
        for f in files:
            if not f.header.has(tag):
                f.fills[tag] = value
    numbers = _ints(
        [f.header.text(ddw.SERIES_NUMBER) for f in files if f.header.has(ddw.SERIES_NUMBER)]
    )
    next_series = max(numbers, default=0) + 1
    for series in study.series.values():
        sfiles = series.files
        if not all(f.header.has(ddw.MODALITY) for f in sfiles):
            known = [f.header.text(ddw.MODALITY) for f in sfiles if f.header.has(ddw.MODALITY)]
            for f in sfiles:
                if not f.header.has(ddw.MODALITY):
                    f.fills[ddw.MODALITY] = (known or ["OT"])[0]
        if not all(f.header.has(ddw.SERIES_NUMBER) for f in sfiles):
            known = [
                f.header.text(ddw.SERIES_NUMBER) for f in sfiles if f.header.has(ddw.SERIES_NUMBER)
            ]
            value = known[0] if known else str(next_series)
            if not known:
                next_series += 1
            for f in sfiles:
                if not f.header.has(ddw.SERIES_NUMBER):
                    f.fills[ddw.SERIES_NUMBER] = value
        instance_numbers = _ints(
            [
                f.header.text(ddw.INSTANCE_NUMBER)
                for f in sfiles
                if f.header.has(ddw.INSTANCE_NUMBER)
            ]
        )
        next_instance = max(instance_numbers, default=0) + 1
        for f in sfiles:
            if not f.header.has(ddw.INSTANCE_NUMBER):
                f.fills[ddw.INSTANCE_NUMBER] = str(next_instance)
                next_instance += 1


def _split(studies: list[PlannedStudy], medium: Medium) -> list[list[PlannedStudy]]:
    """Fill discs in order, never splitting a study (IHE PDI: each disc a complete file-set)."""
    if medium.capacity is None:
        return [studies] if studies else []
    room = medium.capacity - _DEFAULT_RESERVE
    discs: list[list[PlannedStudy]] = []
    used = 0
    for study in studies:
        size = study.size
        if size > room:
            holder = smallest_medium_for(size + _DEFAULT_RESERVE)
            where = (
                f"it needs a {holder.label}"
                if holder is not None
                else "no disc holds it: write it to a USB stick or folder (profile usb-jpeg)"
            )
            raise MediaError(
                f"one study ({len(study.files)} files, {size / 1e6:.0f} MB) is larger than a "
                f"{medium.label}: {where}"
            )
        if not discs or used + size > room:
            discs.append([])
            used = 0
        discs[-1].append(study)
        used += size
    return discs


# --- writing -------------------------------------------------------------------------------


def _meta_bytes(sop_class: str, sop_instance: str, ts: str) -> bytes:
    """Preamble, DICM and a File Meta regenerated with our identity (PS3.10 7.1)."""
    elements = b"".join(
        [
            ddw._element(0x00020001, "OB", b"\x00\x01"),
            ddw._element(0x00020002, "UI", sop_class.encode("ascii")),
            ddw._element(0x00020003, "UI", sop_instance.encode("ascii")),
            ddw._element(0x00020010, "UI", ts.encode("ascii")),
            ddw._element(0x00020012, "UI", dicom.IMPLEMENTATION_CLASS_UID.encode("ascii")),
            ddw._element(0x00020013, "SH", dicom.IMPLEMENTATION_VERSION_NAME.encode("ascii")),
        ]
    )
    group_length = ddw._element(0x00020000, "UL", struct.pack("<I", len(elements)))
    return b"\x00" * 128 + b"DICM" + group_length + elements


_SWAP_WIDTH = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


def _to_little_endian(ds: Dataset) -> None:
    """Explicit VR Big Endian (retired) -> Little Endian: numbers are parsed values already;
    words in OW/OF/OL/OD/OV byte strings and native Pixel Data are swapped (PS3.5 7.3)."""
    for elem in ds.iterall():
        value = elem.value
        width = _SWAP_WIDTH.get(elem.VR)
        if elem.tag == 0x7FE00010:
            bits = int(ds.get("BitsAllocated", 8) or 8)
            width = 2 if elem.VR == "OW" and bits <= 16 else (bits // 8 if bits > 16 else None)
        if width and isinstance(value, bytes) and len(value) % width == 0:
            elem.value = np.frombuffer(value, dtype=f">u{width}").astype(f"<u{width}").tobytes()


def _decompress(ds: Dataset, as_rgb: bool) -> None:
    """Decode Pixel Data to native (PS3.5 8.2): pydicom's plugins first; for monochrome files
    they cannot read (12-bit JPEG extended with odd scan headers...) Lightbox's own decoder."""
    import logging

    pixel_logger = logging.getLogger("pydicom")
    level = pixel_logger.level
    pixel_logger.setLevel(logging.CRITICAL)
    try:
        ds.decompress(as_rgb=as_rgb, generate_instance_uid=False)
        return
    except Exception:
        photometric = str(ds.get("PhotometricInterpretation", "")).strip()
        if int(ds.get("SamplesPerPixel", 1) or 1) != 1 or not photometric.startswith("MONO"):
            raise
    finally:
        pixel_logger.setLevel(level)
    from viewer.imaging import decode

    pixels = decode.decode_all(ds)
    bits = 8 if pixels.dtype.itemsize == 1 else 16
    if pixels.dtype.itemsize > 2:
        raise ValueError(f"decoded {pixels.dtype} samples")
    ds.BitsAllocated = bits
    ds.PixelData = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("<")).tobytes()
    ds["PixelData"].VR = "OB" if bits == 8 else "OW"
    ds["PixelData"].is_undefined_length = False
    ds.file_meta.TransferSyntaxUID = UID(EXPLICIT_VR_LE)


def _inferred_transfer_syntax(ds: Dataset) -> str:
    """For a file without File Meta (ACR-NEMA style): the encoding pydicom found."""
    implicit, little = ds.original_encoding
    if implicit:
        return IMPLICIT_VR_LE
    return EXPLICIT_VR_LE if little else EXPLICIT_VR_BE


def _transcode(source: SourceFile, profile: Profile) -> tuple[bytes, list[Change]]:
    """Full path: pydicom reads the file, the profile's decoding and the key fills are applied,
    and the dataset is written as Explicit VR Little Endian (or kept in its allowed syntax)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _transcode_quietly(source, profile)


def _transcode_quietly(source: SourceFile, profile: Profile) -> tuple[bytes, list[Change]]:
    changes: list[Change] = []
    name = str(source.path)
    ds = pydicom.dcmread(source.path, force=True)
    ts = str(ds.file_meta.get("TransferSyntaxUID", "") or source.header.transfer_syntax_uid)
    if not ts:
        ts = _inferred_transfer_syntax(ds)
    target_ts = ts
    # Every value parsed now, in the encoding it was read with (the File Meta may lie).
    for elem in ds.iterall():
        _ = elem.value
    action = source.action
    if action is Action.DECODE and "PixelData" not in ds:
        action = Action.REENCODE
    if action is Action.DECODE:
        lossy = ts not in LOSSLESS_TRANSFER_SYNTAXES
        before = {
            k: str(ds.get(k, "")) for k in ("PhotometricInterpretation", "PlanarConfiguration")
        }
        try:
            _decompress(ds, lossy)
        except Exception as exc:
            raise MediaError(
                f"{name}: refused: cannot decode {ts} for {profile.name} ({exc})"
            ) from None
        target_ts = EXPLICIT_VR_LE
        changes.append(
            Change(
                name,
                "TransferSyntaxUID",
                ts,
                target_ts,
                f"decoded: {profile.name} does not allow {ts}",
            )
        )
        for key, old in before.items():
            new = str(ds.get(key, ""))
            if new != old:
                changes.append(Change(name, key, old, new, "describes the decoded pixels"))
        if lossy and str(ds.get("LossyImageCompression", "")) != "01":
            old = str(ds.get("LossyImageCompression", ""))
            ds.LossyImageCompression = "01"
            changes.append(
                Change(
                    name,
                    "LossyImageCompression",
                    old,
                    "01",
                    "the source was lossy-compressed (PS3.3 C.7.6.1.1.5)",
                )
            )
    elif action is Action.REENCODE:
        if ds.original_encoding[1] is False or ts == EXPLICIT_VR_BE:
            _to_little_endian(ds)
        target_ts = EXPLICIT_VR_LE
        changes.append(
            Change(
                name,
                "TransferSyntaxUID",
                ts,
                target_ts,
                f"re-encoded for {profile.name} (pixel values unchanged)",
            )
        )
    for tag, value in source.fills.items():
        setattr(ds, ddw.KEYWORDS[tag], value)
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = UID(target_ts)
    meta.ImplementationClassUID = UID(dicom.IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = dicom.IMPLEMENTATION_VERSION_NAME
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, implicit_vr=False, little_endian=True, force_encoding=True)
    data = buffer.getvalue()
    # Regenerate the File Meta bytes ourselves: the same for every file, whoever parsed it.
    body_header = ddw.parse_header(data, name)
    sop_class = body_header.text(ddw.SOP_CLASS_UID)
    sop_instance = body_header.text(ddw.SOP_INSTANCE_UID)
    return _meta_bytes(sop_class, sop_instance, target_ts) + data[
        body_header.body_offset :
    ], changes


def _layout(disc: list[PlannedStudy]) -> None:
    """File IDs DICOM/PATnnnnn/STUnnnnn/SERnnnnn/IMGnnnnn: no patient data (PS3.10 8.2)."""
    patients: dict[str, int] = {}
    study_no: dict[str, int] = {}
    for study in disc:
        p = patients.setdefault(study.patient_key, len(patients) + 1)
        study_no[study.patient_key] = study_no.get(study.patient_key, 0) + 1
        s = study_no[study.patient_key]
        for r, series in enumerate(study.series.values(), start=1):
            for i, source in enumerate(series.files, start=1):
                source.file_id = (
                    "DICOM",
                    f"PAT{p:05d}",
                    f"STU{s:05d}",
                    f"SER{r:05d}",
                    f"IMG{i:05d}",
                )


#: In the root of a file-set being written, from before its first file until the very end: the
#: writer's process id. Its presence says "incomplete" (a killed or failed burn), and lets the
#: next burn to the same folder remove what that one wrote (:func:`_clear_interrupted`).
INCOMPLETE = ".LIGHTBOX-INCOMPLETE"
#: The DICOMDIR as written, until it replaces :data:`INCOMPLETE`; see :func:`_finish`.
_DICOMDIR_PART = ".LIGHTBOX-DICOMDIR.part"
#: Everything a burn writes in a file-set's root (its verification manifest: SHA256.TXT), in
#: the order to remove them after an interruption: the marker last (a kill meanwhile leaves it).
WRITTEN_NAMES = (
    "DICOM",
    "IHE_PDI",
    "INDEX.HTM",
    "README.TXT",
    "SHA256.TXT",
    "DICOMDIR",
    _DICOMDIR_PART,
    INCOMPLETE,
)


def _marker_owner(marker: Path) -> int | None:
    """The live process writing the file-set that ``marker`` belongs to, if there is one."""
    try:
        text = marker.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    if os.name != "posix" or not text.isdigit():
        return None  # no way to tell (or a DICOMDIR about to be renamed): taken as left over
    pid = int(text)
    if pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except OSError:  # PermissionError: it exists, another user's
        return pid
    return pid


def _clear_interrupted(root: Path) -> None:
    """Remove what an interrupted burn (killed, failed, cancelled) wrote in ``root``: only the
    names a burn writes, only when its :data:`INCOMPLETE` marker is there and its process is
    gone; the marker goes last, so that a kill meanwhile leaves it to be cleared next time."""
    marker = root / INCOMPLETE
    if not marker.is_file():
        return
    owner = _marker_owner(marker)
    if owner is not None:
        raise MediaError(f"{root}: being written by process {owner}; choose another folder")
    try:
        for name in WRITTEN_NAMES:
            path = root / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
    except OSError as exc:
        raise MediaError(
            f"{root}: holds an interrupted burn that cannot be removed ({exc.strerror or exc})"
        ) from exc


def _finish(root: Path) -> None:
    """Make a written file-set complete by one rename: its DICOMDIR takes the place of the
    :data:`INCOMPLETE` marker. A kill before it leaves no DICOMDIR (nothing that a viewer would
    open as media, and ``verify`` fails); a kill between the two renames leaves the marker."""
    os.replace(root / _DICOMDIR_PART, root / INCOMPLETE)
    os.replace(root / INCOMPLETE, root / "DICOMDIR")


def _check_target(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    _clear_interrupted(root)
    clashes = [
        n
        for n in ("DICOMDIR", "DICOM", "README.TXT", "INDEX.HTM", "IHE_PDI")
        if (root / n).exists()
    ]
    if clashes:
        raise MediaError(f"{root}: already holds {', '.join(clashes)}; choose an empty folder")


def default_fileset_id(now: _dt.datetime | None = None) -> str:
    """``LB`` + the writing time: identifies the burn, never the patient (MEDIA.md item 8)."""
    now = now or _dt.datetime.now()
    return "LB" + now.strftime("%y%m%d%H%M")


def disc_roots(target: Path, count: int) -> list[Path]:
    """``OUT`` for one disc; ``OUT_1``, ``OUT_2``... beside it for several."""
    if count <= 1:
        return [target]
    return [target.with_name(f"{target.name}_{n}") for n in range(1, count + 1)]


def write_media(
    paths: Sequence[str | os.PathLike[str]],
    target: str | os.PathLike[str],
    *,
    profile: str | Profile | None = None,
    medium: str | Medium | None = None,
    label: str = "",
    made_by: str = "",
    fileset_id: str | None = None,
    web: bool = True,
    verify: bool = True,
    plan: Plan | None = None,
    cancel: threading.Event | None = None,
    progress: ProgressCallback | None = None,
    deidentify: Deidentifier | None = None,
) -> WriteReport:
    """Write the files as one or more complete file-sets under ``target`` (``target_N`` when
    split), with DICOMDIR, README.TXT and (``web``) INDEX.HTM + IHE_PDI/, then read them back.

    ``label`` is the text for the printed label and the README; it never reaches the File-set
    ID, the volume ID or a file ID. Raises :class:`MediaError`; bad input files are reported.

    ``deidentify`` (PS3.15 Annex E, :mod:`viewer.media.deidentify`): every file is first
    de-identified into a temporary folder and the media are built from those copies alone, so
    that no original value reaches a file, the DICOMDIR, README.TXT or the web pages; a ``plan``
    made from the originals gives only its profile and medium (the plan is redone).
    """
    if deidentify is not None:
        return _write_deidentified(
            paths,
            target,
            deidentify,
            profile=plan.profile if plan is not None else profile,
            medium=plan.medium if plan is not None else medium,
            label=label,
            made_by=made_by,
            fileset_id=fileset_id,
            web=web,
            verify=verify,
            cancel=cancel,
            progress=progress,
        )
    return _write(
        paths,
        target,
        profile=profile,
        medium=medium,
        label=label,
        made_by=made_by,
        fileset_id=fileset_id,
        web=web,
        verify=verify,
        plan=plan,
        cancel=cancel,
        progress=progress,
    )


def _write_deidentified(
    paths: Sequence[str | os.PathLike[str]],
    target: str | os.PathLike[str],
    deidentifier: Deidentifier,
    *,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
    **options: Any,
) -> WriteReport:
    from dataclasses import replace

    from viewer.media.deidentify import deidentify_files

    count = len(paths)

    def first_half(done: int, total: int) -> None:
        if progress is not None:
            progress(done, 2 * total)

    def second_half(done: int, total: int) -> None:
        if progress is not None:
            progress(count + done, count + total)

    with tempfile.TemporaryDirectory(prefix="lightbox-deid-") as scratch:
        copies = deidentify_files(paths, scratch, deidentifier, cancel=cancel, progress=first_half)
        if not copies.files:
            raise MediaError("nothing to write: " + ("; ".join(copies.skipped) or "no files"))
        report = _write(
            list(copies.files),
            target,
            cancel=cancel,
            progress=second_half,
            deidentified=deidentifier.options.describe(),
            **options,
        )

    def original(text: str) -> str:
        for copy, source in copies.files.items():
            text = text.replace(copy, source)
        return text

    report.changes = [replace(c, source=original(c.source)) for c in report.changes]
    report.skipped = copies.skipped + [original(s) for s in report.skipped]
    for disc in report.discs:
        for written in disc.files:
            written.source = original(written.source)
    report.deidentification = deidentifier.options.describe()
    report.warnings.extend(copies.warnings)
    return report


def _write(
    paths: Sequence[str | os.PathLike[str]],
    target: str | os.PathLike[str],
    *,
    profile: str | Profile | None = None,
    medium: str | Medium | None = None,
    label: str = "",
    made_by: str = "",
    fileset_id: str | None = None,
    web: bool = True,
    verify: bool = True,
    plan: Plan | None = None,
    cancel: threading.Event | None = None,
    progress: ProgressCallback | None = None,
    deidentified: str = "",
) -> WriteReport:
    timings: dict[str, float] = {}
    clock = _Clock(timings)
    plan = plan or plan_media(paths, profile=profile, medium=medium)
    clock.lap("plan")
    base_id = fileset_id if fileset_id is not None else default_fileset_id()
    count = len(plan.discs)
    if count == 0:
        raise MediaError("nothing to write: " + ("; ".join(plan.skipped) or "no files given"))
    if not ddw.FILESET_ID.match(base_id) or not base_id.strip():
        raise MediaError(
            f"File-set ID {base_id!r} must be 1 to 16 of A-Z, 0-9 and _ (it is also the volume "
            "ID: no patient data)"
        )
    roots = disc_roots(Path(target), count)
    for root in roots:
        _check_target(root)
    for root in roots:  # incomplete until _finish, at the very end
        (root / INCOMPLETE).write_text(f"{os.getpid()}\n", encoding="ascii")
    total = sum(len(s.files) for disc in plan.discs for s in disc)
    done = 0
    changes = list(plan.changes)
    skipped = list(plan.skipped)
    results: list[DiscResult] = []
    for index, (root, disc) in enumerate(zip(roots, plan.discs, strict=True), start=1):
        suffix = "" if count == 1 else f"_{index}"
        fsid = base_id[: 16 - len(suffix)] + suffix
        _layout(disc)
        builder = ddw.DicomdirBuilder(fsid)
        written: list[WrittenFile] = []
        made_dirs: set[Path] = set()
        for study in disc:
            for series in study.series.values():
                for source in series.files:
                    if cancel is not None and cancel.is_set():
                        raise Cancelled(
                            f"cancelled: {root} is incomplete (delete it, or burn to it again)"
                        )
                    try:
                        result = _write_one(source, root, plan.profile, builder, made_dirs, changes)
                    except (MediaError, ddw.HeaderError) as exc:
                        skipped.append(str(exc))
                        result = None
                    except Exception as exc:  # bad input: a message, never a traceback
                        skipped.append(f"{source.path}: refused: cannot be re-encoded ({exc})")
                        result = None
                    if result is not None:
                        written.append(result)
                    done += 1
                    if progress is not None:
                        progress(done, total)
        clock.lap("files")
        dicomdir = builder.write(root / _DICOMDIR_PART)  # DICOMDIR at the end (_finish)
        extra = {"DICOMDIR": hashlib.sha256(dicomdir).hexdigest()}
        clock.lap("dicomdir")
        result_disc = DiscResult(index, count, root, fsid, written, builder.tree())
        if web:
            from viewer.media import web as web_pages

            extra.update(web_pages.write_web(root, disc, result_disc))
            clock.lap("web")
        text = readme_text(
            plan,
            disc,
            result_disc,
            label=label,
            made_by=made_by,
            web=web,
            deidentified=deidentified,
        )
        data = text.encode("utf-8")
        (root / "README.TXT").write_bytes(data)
        extra["README.TXT"] = hashlib.sha256(data).hexdigest()
        result_disc.extra_sha256 = extra
        from viewer.media.verify import MANIFEST, manifest_text

        (root / MANIFEST).write_text(manifest_text(result_disc.expected()), encoding="ascii")
        results.append(result_disc)
        clock.lap("readme")
    for root in roots:
        _finish(root)
    report = WriteReport(
        plan.profile.name,
        plan.medium.name,
        results,
        changes,
        skipped,
        timings,
        deidentification=deidentified,
    )
    if verify:
        from viewer.media.verify import verify_written

        for disc_result in results:
            report.verification.append(verify_written(disc_result.root, disc_result, plan.profile))
        clock.lap("verify")
    return report


def _write_one(
    source: SourceFile,
    root: Path,
    profile: Profile,
    builder: ddw.DicomdirBuilder,
    made_dirs: set[Path],
    changes: list[Change],
) -> WrittenFile:
    header = source.header
    if source.action is Action.KEEP and not source.fills and header.body_offset > 0:
        with open(source.path, "rb") as fh:
            fh.seek(header.body_offset)
            body = fh.read()
        data = (
            _meta_bytes(
                header.text(ddw.SOP_CLASS_UID),
                header.text(ddw.SOP_INSTANCE_UID),
                header.transfer_syntax_uid,
            )
            + body
        )
        record_header = header
    else:
        data, new_changes = _transcode(source, profile)
        changes.extend(new_changes)
        record_header = ddw.parse_header(data, str(source.path))
    record_header = ddw.Header(
        str(source.path),
        record_header.transfer_syntax_uid,
        record_header.text(ddw.SOP_CLASS_UID),
        record_header.text(ddw.SOP_INSTANCE_UID),
        record_header.elements,
    )
    builder.add(record_header, source.file_id)
    path = root.joinpath(*source.file_id)
    parent = path.parent
    if parent not in made_dirs:
        parent.mkdir(parents=True, exist_ok=True)
        made_dirs.add(parent)
    with open(path, "wb") as fh:
        fh.write(data)
    return WrittenFile(
        str(source.path),
        source.file_id,
        hashlib.sha256(data).hexdigest(),
        len(data),
        record_header.media_sop_instance_uid,
    )


class _Clock:
    def __init__(self, timings: dict[str, float]) -> None:
        import time

        self._time = time.perf_counter
        self._last = self._time()
        self._timings = timings

    def lap(self, name: str) -> None:
        now = self._time()
        self._timings[name] = self._timings.get(name, 0.0) + now - self._last
        self._last = now


def remove_tree(root: Path) -> None:
    """Delete a partly written file-set (after a cancel)."""
    shutil.rmtree(root, ignore_errors=True)


def readme_text(
    plan: Plan,
    disc: list[PlannedStudy],
    result: DiscResult,
    *,
    label: str = "",
    made_by: str = "",
    web: bool = True,
    now: _dt.datetime | None = None,
    deidentified: str = "",
) -> str:
    """README.TXT (IHE RAD TF-3 4.47.4.1.2.2): who made the media, with what application, when,
    what is on it and how to read it. CRLF line ends for any text editor."""
    now = now or _dt.datetime.now().astimezone()
    files = len(result.files)
    series = sum(len(s.series) for s in disc)
    lines = [
        "DICOM MEDIA - IHE PORTABLE DATA FOR IMAGING (PDI)",
        "",
    ]
    if label:
        lines += [f"Label: {label}", ""]
    lines += [
        f"Disc {result.index} of {result.count}",
        f"Made by: {made_by or 'not stated'}",
        f"Application: Lightbox {__version__} "
        f"(Implementation Class UID {dicom.IMPLEMENTATION_CLASS_UID})",
        f"Written: {now.strftime('%Y-%m-%d %H:%M %Z').strip()}",
        f"Media profile: {plan.profile.name} (DICOM PS3.11), File-set ID {result.fileset_id}",
        "",
        f"Contents: {plural(len(disc), 'study', 'studies')}, {series} series, "
        f"{plural(files, 'DICOM file')}",
    ]
    # Values from the files, escaped: `cat README.TXT` must not run a terminal escape sequence,
    # and a CR/LF in a name must not forge lines (viewer.text.escape).
    for line in contents_lines(disc):
        lines += ["", escape(line)] if line.startswith("Patient: ") else [escape(line)]
    lines += [
        "",
        "HOW TO VIEW",
        "- With a DICOM viewer: open this disc (or its DICOMDIR file) in any DICOM viewer;",
        "  the images are in the DICOM folder, indexed by DICOMDIR.",
    ]
    if web:
        lines.append(
            "- Without a viewer: open INDEX.HTM in a web browser to see the study list and"
        )
        lines.append("  preview pictures (previews are not for diagnosis).")
    lines += [
        "- Nothing on this media runs by itself: there is no autorun and no program on it.",
        "- SHA256.TXT holds a checksum of every file: `sha256sum -c SHA256.TXT` checks the copy.",
        "",
        "The DICOM files are as the sending system held them, except where the media",
        "profile required decoding compressed pixel data (decoding loses nothing; lossy",
        "images were never re-compressed).",
        "",
    ]
    if deidentified:
        lines[-4:-1] = [
            "DE-IDENTIFIED for research or teaching (DICOM PS3.15 Annex E):",
            f"  {deidentified}.",
            "Names, IDs, UIDs and, unless retained, dates were replaced or removed; the",
            "pixels were not changed and may still show identifying text.",
        ]
    return "\r\n".join(lines)
