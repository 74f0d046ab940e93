"""viewer.media.dicomdir: every bad DICOMDIR gives listed problems and every valid instance loads.

Oracles: pydicom's FileSet on the well-formed pydicom DICOMDIR (patient/study/series/instance
of every record), pydicom's own decoding of its charset test files, and media these tests build
byte by byte (so that offsets, cycles, File IDs and lengths can be made exactly as wrong as
real discs make them).
"""

from __future__ import annotations

import os
import shutil
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_charset_files, get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.fileset import FileSet
from pydicom.uid import ExplicitVRLittleEndian

from viewer.media.dicomdir import (
    DIRECTORY_SOP_CLASS,
    DicomdirError,
    DicomdirResult,
    read_dicomdir,
    split_file_id,
)

CT = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
PYDICOM_DIRS = Path(get_testdata_file("DICOMDIR")).parent  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------
# Builders: DICOM files and DICOMDIRs, byte by byte (Explicit VR Little Endian, PS3.5 7.1.2).

_LONG = {"OB", "OW", "SQ", "UN", "UT"}


def element(tag: int, vr: str, value: bytes) -> bytes:
    if len(value) % 2:
        value += b"\0" if vr in ("UI", "OB") else b" "
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr.encode()
    if vr in _LONG:
        return head + b"\0\0" + struct.pack("<I", len(value)) + value
    return head + struct.pack("<H", len(value)) + value


def ul(value: int) -> bytes:
    return struct.pack("<I", value)


@dataclass
class Rec:
    """A directory record to build; ``keys`` are (tag, VR, raw value) elements."""

    type: str
    keys: list[tuple[int, str, bytes]] = field(default_factory=list)
    children: list[Rec] = field(default_factory=list)
    file_id: str | None = None
    in_use: int = 0xFFFF
    raw_tail: bytes = b""  # extra bytes appended inside the item (nested sequences...)


def patient(pid: str, name: str = "TEST^PATIENT", *children: Rec) -> Rec:
    keys = [(0x00100010, "PN", name.encode()), (0x00100020, "LO", pid.encode())]
    return Rec("PATIENT", keys, list(children))


def study(uid: str, *children: Rec, desc: str = "") -> Rec:
    keys = [
        (0x00080020, "DA", b"20240102"),
        (0x00080030, "TM", b"120000"),
        (0x00081030, "LO", desc.encode()),
        (0x0020000D, "UI", uid.encode()),
        (0x00200010, "SH", b"1"),
    ]
    return Rec("STUDY", keys, list(children))


def series(uid: str, *children: Rec, number: int = 1) -> Rec:
    keys = [
        (0x00080060, "CS", b"CT"),
        (0x0020000E, "UI", uid.encode()),
        (0x00200011, "IS", str(number).encode()),
    ]
    return Rec("SERIES", keys, list(children))


def image(file_id: str, sop_uid: str, number: int = 1, rtype: str = "IMAGE") -> Rec:
    keys = [
        (0x00041510, "UI", CT.encode()),
        (0x00041511, "UI", sop_uid.encode()),
        (0x00041512, "UI", EXPLICIT_LE.encode()),
        (0x00200013, "IS", str(number).encode()),
    ]
    return Rec(rtype, keys, file_id=file_id)


Tweak = Callable[[list[int]], dict[int, dict[str, int]]]


def build_dicomdir(
    path: Path,
    roots: list[Rec],
    *,
    tweak: Tweak | None = None,
    root_offset: int | None = None,
    top: list[tuple[int, str, bytes]] = (),  # type: ignore[assignment]
    truncate: int | None = None,
) -> list[int]:
    """Write a DICOMDIR of ``roots``; returns every record's offset in depth-first order.

    ``tweak(offsets)`` may override the next/lower offsets of records (by index) to make
    them wrong; ``root_offset`` overrides (0004,1200) (0 drops it).
    """
    flat: list[Rec] = []

    def flatten(recs: list[Rec]) -> None:
        for rec in recs:
            flat.append(rec)
            flatten(rec.children)

    flatten(roots)

    def content(rec: Rec, nxt: int, lower: int) -> bytes:
        out = element(0x00041400, "UL", ul(nxt))
        out += element(0x00041410, "US", struct.pack("<H", rec.in_use))
        out += element(0x00041420, "UL", ul(lower))
        out += element(0x00041430, "CS", rec.type.encode())
        if rec.file_id is not None:
            out += element(0x00041500, "CS", rec.file_id.encode("latin-1"))
        for tag, vr, value in sorted(rec.keys):
            out += element(tag, vr, value)
        return out + rec.raw_tail

    meta_body = (
        element(0x00020001, "OB", b"\0\1")
        + element(0x00020002, "UI", DIRECTORY_SOP_CLASS.encode())
        + element(0x00020003, "UI", b"1.2.3.4.5")
        + element(0x00020010, "UI", EXPLICIT_LE.encode())
    )
    meta = element(0x00020000, "UL", ul(len(meta_body))) + meta_body
    head = b"\0" * 128 + b"DICM" + meta

    def top_elements(first: int) -> bytes:
        out = element(0x00041130, "CS", b"TESTSET")
        if first:
            out += element(0x00041200, "UL", ul(first))
        out += element(0x00041202, "UL", ul(0))
        out += element(0x00041212, "US", b"\0\0")
        for tag, vr, value in top:
            out += element(tag, vr, value)
        return out

    sizes = [len(content(rec, 0, 0)) + 8 for rec in flat]
    has_first = root_offset != 0 and bool(flat)
    start = len(head) + len(top_elements(1 if has_first else 0)) + 12
    offsets = []
    pos = start
    for size in sizes:
        offsets.append(pos)
        pos += size
    index = {id(rec): i for i, rec in enumerate(flat)}
    links: dict[int, dict[str, int]] = {}

    def link(recs: list[Rec]) -> None:
        for i, rec in enumerate(recs):
            nxt = offsets[index[id(recs[i + 1])]] if i + 1 < len(recs) else 0
            lower = offsets[index[id(rec.children[0])]] if rec.children else 0
            links[index[id(rec)]] = {"next": nxt, "lower": lower}
            link(rec.children)

    link(roots)
    if tweak is not None:
        for i, change in tweak(offsets).items():
            links[i].update(change)
    items = b"".join(
        struct.pack("<HHI", 0xFFFE, 0xE000, sizes[i] - 8)
        + content(rec, links[i]["next"], links[i]["lower"])
        for i, rec in enumerate(flat)
    )
    first = offsets[0] if flat else 0
    if root_offset is not None:
        first = root_offset
    data = head + top_elements(first if has_first else 0)
    data += struct.pack("<HH", 0x0004, 0x1220) + b"SQ\0\0" + struct.pack("<I", len(items)) + items
    if truncate is not None:
        data = data[:truncate]
    path.write_bytes(data)
    return offsets


def write_instance(
    path: Path,
    sop_uid: str,
    study_uid: str = "1.2.3.1",
    series_uid: str = "1.2.3.1.1",
    *,
    preamble: bytes | None = None,
) -> Path:
    """A small CT file with a proper File Meta (PS3.10 7.1)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CT
    ds.SOPInstanceUID = sop_uid
    ds.PatientName = "TEST^PATIENT"
    ds.PatientID = "P1"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = "CT"
    ds.InstanceNumber = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = 4
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = np.arange(16, dtype="<u2").tobytes()
    if preamble is not None:
        ds.preamble = preamble.ljust(128, b"\0")[:128]
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def simple_media(root: Path, file_ids: list[str], *, on_disc: list[str] | None = None) -> list[Rec]:
    """One patient/study/series with an IMAGE per File ID; files written at ``on_disc`` names."""
    names = on_disc if on_disc is not None else [f.replace("\\", "/") for f in file_ids]
    for i, name in enumerate(names):
        if name:
            write_instance(root / name, f"1.2.3.1.1.{i + 1}")
    images = [image(fid, f"1.2.3.1.1.{i + 1}", i + 1) for i, fid in enumerate(file_ids)]
    return [patient("P1", "TEST^PATIENT", study("1.2.3.1", series("1.2.3.1.1", *images)))]


def uids(result: DicomdirResult) -> list[str]:
    return sorted(i.sop_instance_uid for i in result.instances)


def problems_text(result: DicomdirResult) -> str:
    return "\n".join(str(p) for p in result.problems)


def read_with_timeout(path: Path, seconds: float = 20.0) -> DicomdirResult:
    """Read in a thread: a loop in the reader fails the test instead of hanging the suite."""
    box: list[DicomdirResult] = []
    thread = threading.Thread(target=lambda: box.append(read_dicomdir(path)), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"reading {path} did not finish in {seconds} s (a loop?)"
    return box[0]


# ------------------------------------------------------------------------------------------
# pydicom's dicomdirtests variants.


@pytest.fixture(scope="module")
def pydicom_media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of pydicom's dicomdirtests folder (DICOMDIR variants and their 31 files)."""
    target = tmp_path_factory.mktemp("pydicom-media") / "media"
    shutil.copytree(PYDICOM_DIRS, target)
    return target


def fileset_oracle(dicomdir: Path) -> dict[str, tuple[str, str, str, Path]]:
    """SOP Instance UID -> (patient ID, study UID, series UID, path) as pydicom's FileSet says."""
    fs = FileSet(pydicom.dcmread(dicomdir))
    return {
        inst.SOPInstanceUID: (
            inst.PatientID,
            inst.StudyInstanceUID,
            inst.SeriesInstanceUID,
            Path(inst.path).resolve(),
        )
        for inst in fs
    }


def tree_of(result: DicomdirResult) -> dict[str, tuple[str | None, str, str, Path]]:
    out = {}
    for pat in result.patients:
        for st in pat.studies:
            for se in st.series:
                for inst in se.instances:
                    out[inst.sop_instance_uid] = (
                        pat.patient_id,
                        st.study_instance_uid,
                        se.series_instance_uid,
                        inst.path.resolve(),
                    )
    return out


@pytest.mark.parametrize(
    "name", ["DICOMDIR", "DICOMDIR-implicit", "DICOMDIR-bigEnd", "DICOMDIR-reordered"]
)
def test_pydicom_variants_give_the_fileset_tree(pydicom_media: Path, name: str) -> None:
    oracle = fileset_oracle(pydicom_media / "DICOMDIR")
    result = read_dicomdir(pydicom_media / name)
    assert len(oracle) == 31
    assert tree_of(result) == oracle
    assert len(result.instances) == 31
    assert not result.all_missing
    assert all(i.path.is_file() for i in result.instances)
    assert result.problems == []
    names = {p.patient_id: p.patient_name for p in result.patients}
    assert names == {"77654033": "Doe^Archibald", "98890234": "Doe^Peter"}


def test_pydicom_instances_carry_record_keys(pydicom_media: Path) -> None:
    result = read_dicomdir(pydicom_media / "DICOMDIR")
    ds = pydicom.dcmread(pydicom_media / "DICOMDIR")
    by_uid = {r.ReferencedSOPInstanceUIDInFile: r for r in ds.DirectoryRecordSequence
              if "ReferencedSOPInstanceUIDInFile" in r}  # fmt: skip
    for inst in result.instances:
        rec = by_uid[inst.sop_instance_uid]
        assert inst.sop_class_uid == rec.ReferencedSOPClassUIDInFile
        assert inst.transfer_syntax_uid == rec.ReferencedTransferSyntaxUIDInFile
        assert inst.instance_number == rec.InstanceNumber
    series = {s.series_instance_uid: s for p in result.patients for st in p.studies
              for s in st.series}  # fmt: skip
    assert series["1.3.6.1.4.1.5962.1.1.0.0.0.1196533885.18148.0.118"].series_number == 700
    assert {s.modality for s in series.values()} == {"CR", "CT", "MR"}


def test_pydicom_nooffset_keeps_the_cut_last_record(pydicom_media: Path) -> None:
    # Its last record declares 248 bytes where 224 remain: DCMTK keeps it, so do we.
    result = read_dicomdir(pydicom_media / "DICOMDIR-nooffset")
    assert tree_of(result) == fileset_oracle(pydicom_media / "DICOMDIR")
    assert "record at offset 10860 is damaged" in problems_text(result)


def test_pydicom_nopatient_goes_under_an_unknown_patient(pydicom_media: Path) -> None:
    result = read_dicomdir(pydicom_media / "DICOMDIR-nopatient")
    oracle = fileset_oracle(pydicom_media / "DICOMDIR")
    assert [p.patient_id for p in result.patients] == [None]
    assert {uid: v[1:] for uid, v in tree_of(result).items()} == {
        uid: v[1:] for uid, v in oracle.items()
    }
    text = problems_text(result)
    assert "unknown type 'UNKNOWN'" in text
    assert "root offset (0004,1200) is wrong" in text
    assert "without a PATIENT record" in text


def test_pydicom_empty_dicomdir_says_scan(pydicom_media: Path) -> None:
    result = read_dicomdir(pydicom_media / "DICOMDIR-empty.dcm")
    assert result.instances == [] and result.patients == []
    assert result.all_missing
    assert "references no file" in problems_text(result)


# ------------------------------------------------------------------------------------------
# Shared real media.


def test_bbmri_dcmdir_named_directly(shared_data: Path) -> None:
    path = shared_data / "dwv" / "bbmri_media" / "bbmri.dcmdir"
    result = read_dicomdir(path)
    names = sorted(i.path.name for i in result.instances)
    assert names == [f"bbmri-{n}.dcm" for n in (53323131, 53323275, 53323419, 53323563)]
    assert all(i.path.is_file() for i in result.instances)
    assert [p.patient_id for p in result.patients] == [None]
    text = problems_text(result)
    assert "no Offset of the First Directory Record of the Root" in text
    assert "lack the Referenced SOP Instance UID" in text
    assert "4 File IDs do not conform to PS3.10 8.2" in text
    (study_,) = result.patients[0].studies
    assert study_.study_instance_uid == "1.2.840.4656.23.4568745"
    assert [s.series_number for s in study_.series] == [1]


def test_orphan_dicomdir_all_missing(shared_data: Path) -> None:
    result = read_dicomdir(shared_data / "dwv" / "orphan_dicomdir")
    assert result.all_missing
    assert result.instances == []
    assert len(result.missing) == 44
    missing = [p for p in result.problems if "but missing" in p.problem]
    assert len(missing) == 44
    assert "none of the 44 files" in problems_text(result)


# ------------------------------------------------------------------------------------------
# Media built here: each bad input gives a listed problem and the good records still load.


def test_dotdot_file_id_refused_others_load(tmp_path: Path) -> None:
    root = tmp_path / "media"
    outside = write_instance(tmp_path / "X", "9.9.9")
    recs = simple_media(
        root, ["DICOM\\IM1", "..\\..\\X", "DICOM\\IM3"], on_disc=["DICOM/IM1", "", "DICOM/IM3"]
    )
    build_dicomdir(root / "DICOMDIR", recs)
    result = read_dicomdir(root / "DICOMDIR")
    assert uids(result) == ["1.2.3.1.1.1", "1.2.3.1.1.3"]
    assert all(outside != i.path for i in result.instances)
    assert "'..\\\\..\\\\X' climbs out of the media root" in problems_text(result)
    assert [r.status for r in result.references] == ["present", "refused", "present"]


@pytest.mark.parametrize("file_id", ["\\ETC\\PASSWD", "/etc/passwd", "C:\\X", "DICOM\\\\IM1"])
def test_absolute_file_id_refused(tmp_path: Path, file_id: str) -> None:
    root = tmp_path / "media"
    recs = simple_media(root, ["DICOM\\IM1", file_id], on_disc=["DICOM/IM1", ""])
    build_dicomdir(root / "DICOMDIR", recs)
    result = read_dicomdir(root / "DICOMDIR")
    assert uids(result) == ["1.2.3.1.1.1"]
    assert "refused" in problems_text(result)
    assert result.references[1].status == "refused" and result.references[1].path is None


def test_symlink_leaving_the_root_refused(tmp_path: Path) -> None:
    root = tmp_path / "media"
    secret = write_instance(tmp_path / "outside" / "SECRET", "9.9.9")
    recs = simple_media(root, ["DICOM\\IM1", "DICOM\\LINK", "LINKDIR\\SECRET"],
                        on_disc=["DICOM/IM1", "", ""])  # fmt: skip
    os.symlink(secret, root / "DICOM" / "LINK")
    os.symlink(secret.parent, root / "LINKDIR")
    build_dicomdir(root / "DICOMDIR", recs)
    result = read_dicomdir(root / "DICOMDIR")
    assert uids(result) == ["1.2.3.1.1.1"]
    assert [r.status for r in result.references] == ["present", "refused", "refused"]
    # Each named by the link's own path, as every walk of the media names it (one line each).
    assert sorted(p.path for p in result.problems) == [
        str(root / "DICOM" / "LINK"),
        str(root / "LINKDIR"),
    ]
    assert {p.problem for p in result.problems} == {
        "symbolic link leading outside the media: not followed"
    }


def test_symlink_inside_the_root_followed(tmp_path: Path) -> None:
    root = tmp_path / "media"
    recs = simple_media(root, ["DICOM\\IM1", "DICOM\\ALIAS"], on_disc=["DICOM/IM1", "DICOM/REAL"])
    os.symlink(root / "DICOM" / "REAL", root / "DICOM" / "ALIAS")
    build_dicomdir(root / "DICOMDIR", recs)
    result = read_dicomdir(root / "DICOMDIR")
    assert uids(result) == ["1.2.3.1.1.1", "1.2.3.1.1.2"]


def test_lower_case_version_suffix_and_extension_on_disc(tmp_path: Path) -> None:
    root = tmp_path / "media"
    file_ids = ["DICOM\\ST1\\IM1", "DICOM\\ST1\\IM2;1", "DICOM\\ST1\\IM3", "DICOM\\ST1\\IM4.DCM"]
    on_disc = ["dicom/st1/im1", "dicom/st1/IM2", "dicom/st1/IM3.;1", "dicom/st1/im4"]
    recs = simple_media(root, file_ids, on_disc=on_disc)
    build_dicomdir(root / "dicomdir", recs)
    result = read_dicomdir(root)  # the folder: its lower-case dicomdir is found
    assert uids(result) == [f"1.2.3.1.1.{i}" for i in (1, 2, 3, 4)]
    assert sorted(str(i.path.relative_to(root)) for i in result.instances) == sorted(on_disc)
    assert "4 File IDs match a file only when case, ';1' or an extension is ignored" in (
        problems_text(result)
    )


def test_exact_names_give_no_problem(tmp_path: Path) -> None:
    root = tmp_path / "media"
    build_dicomdir(root / "DICOMDIR", simple_media(root, ["DICOM\\IM1", "DICOM\\IM2"]))
    result = read_dicomdir(root / "DICOMDIR")
    assert uids(result) == ["1.2.3.1.1.1", "1.2.3.1.1.2"]
    assert result.problems == []


def test_missing_files_listed_others_load(tmp_path: Path) -> None:
    root = tmp_path / "media"
    recs = simple_media(root, ["DICOM\\IM1", "DICOM\\IM2", "NOFOLDER\\IM3"],
                        on_disc=["DICOM/IM1", "", ""])  # fmt: skip
    build_dicomdir(root / "DICOMDIR", recs)
    result = read_dicomdir(root / "DICOMDIR")
    assert uids(result) == ["1.2.3.1.1.1"]
    assert not result.all_missing
    assert sorted(result.missing) == [root / "DICOM" / "IM2", root / "NOFOLDER" / "IM3"]
    assert len([p for p in result.problems if "but missing" in p.problem]) == 2


def test_cycle_in_next_offsets_does_not_loop(tmp_path: Path) -> None:
    root = tmp_path / "media"
    recs = simple_media(root, [f"DICOM\\IM{i}" for i in range(1, 5)])
    # Records: 0 PATIENT, 1 STUDY, 2 SERIES, 3..6 IMAGE. The last image points back to the first.
    build_dicomdir(root / "DICOMDIR", recs, tweak=lambda off: {6: {"next": off[3]}})
    result = read_with_timeout(root / "DICOMDIR")
    assert uids(result) == [f"1.2.3.1.1.{i}" for i in range(1, 5)]
    assert "a cycle in the record offsets" in problems_text(result)
    assert "records read in sequence order" in problems_text(result)


def test_cycle_in_lower_offsets_does_not_loop(tmp_path: Path) -> None:
    root = tmp_path / "media"
    recs = simple_media(root, ["DICOM\\IM1", "DICOM\\IM2"])
    # The series' lower level is the patient: patient > study > series > patient > ...
    build_dicomdir(root / "DICOMDIR", recs, tweak=lambda off: {2: {"lower": off[0]}})
    result = read_with_timeout(root / "DICOMDIR")
    assert uids(result) == ["1.2.3.1.1.1", "1.2.3.1.1.2"]
    assert "cycle" in problems_text(result)


def test_offsets_pointing_nowhere_fall_back_to_order(tmp_path: Path) -> None:
    root = tmp_path / "media"
    recs = simple_media(root, ["DICOM\\IM1", "DICOM\\IM2", "DICOM\\IM3"])
    build_dicomdir(root / "DICOMDIR", recs, tweak=lambda off: {3: {"next": 999_999}})
    result = read_dicomdir(root / "DICOMDIR")
    assert uids(result) == ["1.2.3.1.1.1", "1.2.3.1.1.2", "1.2.3.1.1.3"]
    (pat,) = result.patients
    assert pat.patient_id == "P1"
    assert [len(se.instances) for st in pat.studies for se in st.series] == [3]
    assert "offset 999999 points to no directory record" in problems_text(result)


def test_missing_root_offset_read_in_order(tmp_path: Path) -> None:
    root = tmp_path / "media"
    build_dicomdir(root / "DICOMDIR", simple_media(root, ["DICOM\\IM1"]), root_offset=0)
    result = read_dicomdir(root / "DICOMDIR")
    assert uids(result) == ["1.2.3.1.1.1"]
    assert result.patients[0].patient_id == "P1"
    assert "no Offset of the First Directory Record" in problems_text(result)


def test_inactive_records_skipped_with_their_lower_levels(tmp_path: Path) -> None:
    root = tmp_path / "media"
    for i in (1, 2, 3):
        write_instance(root / "DICOM" / f"IM{i}", f"1.2.3.1.1.{i}")
    dead_series = series("1.2.3.1.2", image("DICOM\\IM2", "1.2.3.1.1.2"))
    dead_series.in_use = 0
    dead_image = image("DICOM\\IM3", "1.2.3.1.1.3")
    dead_image.in_use = 0
    recs = [
        patient(
            "P1",
            "A^B",
            study(
                "1.2.3.1",
                series("1.2.3.1.1", image("DICOM\\IM1", "1.2.3.1.1.1"), dead_image),
                dead_series,
            ),
        )
    ]
    build_dicomdir(root / "DICOMDIR", recs)
    result = read_dicomdir(root / "DICOMDIR")
    assert uids(result) == ["1.2.3.1.1.1"]
    assert "2 inactive records (Record In-use Flag 0000H)" in problems_text(result)


def test_unknown_and_private_record_types_are_transparent(tmp_path: Path) -> None:
    root = tmp_path / "media"
    for i in (1, 2, 3):
        write_instance(root / "DICOM" / f"IM{i}", f"1.2.3.1.1.{i}")
    private = Rec("PRIVATE", [(0x00041432, "UI", b"1.2.99")], [image("DICOM\\IM2", "1.2.3.1.1.2")])
    vendor = Rec("VENDORX", [], [image("DICOM\\IM3", "1.2.3.1.1.3", rtype="SR DOCUMENT")])
    recs = [
        patient(
            "P1",
            "A^B",
            study(
                "1.2.3.1", series("1.2.3.1.1", image("DICOM\\IM1", "1.2.3.1.1.1"), private, vendor)
            ),
        )
    ]
    build_dicomdir(root / "DICOMDIR", recs)
    result = read_dicomdir(root / "DICOMDIR")
    assert uids(result) == ["1.2.3.1.1.1", "1.2.3.1.1.2", "1.2.3.1.1.3"]
    (se,) = result.patients[0].studies[0].series
    assert len(se.instances) == 3
    assert "1 records of unknown type 'VENDORX'" in problems_text(result)
    assert "PRIVATE" not in problems_text(result)


def test_records_without_patient_or_series(tmp_path: Path) -> None:
    root = tmp_path / "media"
    write_instance(root / "IM1", "1.1")
    write_instance(root / "IM2", "1.2")
    recs = [study("1.2.3.1", image("IM1", "1.1")), image("IM2", "1.2")]
    build_dicomdir(root / "DICOMDIR", recs)
    result = read_dicomdir(root / "DICOMDIR")
    assert uids(result) == ["1.1", "1.2"]
    (pat,) = result.patients
    assert pat.patient_id is None
    assert sorted(st.study_instance_uid for st in pat.studies) == ["", "1.2.3.1"]
    assert "without a PATIENT record" in problems_text(result)


def test_dirfile_per_study(tmp_path: Path) -> None:
    """Philips style: the STUDY record references DICOM/ST1/DIRFILE holding series and images."""
    root = tmp_path / "media"
    for i in (1, 2, 3):
        write_instance(root / "DICOM" / "ST1" / f"IM{i}", f"1.2.3.1.1.{i}")
    lower = [
        series("1.2.3.1.1", *(image(f"DICOM\\ST1\\IM{i}", f"1.2.3.1.1.{i}", i) for i in (1, 2, 3)))
    ]
    build_dicomdir(root / "DICOM" / "ST1" / "DIRFILE", lower)
    st = study("1.2.3.1", desc="HEAD")
    st.file_id = "DICOM\\ST1\\DIRFILE"
    st.keys.append((0x00041510, "UI", DIRECTORY_SOP_CLASS.encode()))
    build_dicomdir(root / "DICOMDIR", [patient("P1", "A^B", st)])
    result = read_dicomdir(root / "DICOMDIR")
    assert uids(result) == ["1.2.3.1.1.1", "1.2.3.1.1.2", "1.2.3.1.1.3"]
    (pat,) = result.patients
    assert pat.patient_id == "P1"
    (study_,) = pat.studies
    assert study_.study_description == "HEAD"
    assert all(i.study_instance_uid == "1.2.3.1" for i in result.instances)
    assert result.directory_files == [root / "DICOMDIR", root / "DICOM" / "ST1" / "DIRFILE"]
    assert result.problems == []


def test_dirfile_referencing_itself_does_not_loop(tmp_path: Path) -> None:
    root = tmp_path / "media"
    write_instance(root / "DICOM" / "IM1", "1.1")
    loop = Rec(
        "SERIES", [(0x00041510, "UI", DIRECTORY_SOP_CLASS.encode())], file_id="DICOM\\DIRFILE"
    )
    build_dicomdir(root / "DICOM" / "DIRFILE", [loop, image("DICOM\\IM1", "1.1")])
    st = study("1.2.3.1")
    st.file_id = "DICOM\\DIRFILE"
    build_dicomdir(root / "DICOMDIR", [patient("P1", "A^B", st)])
    result = read_with_timeout(root / "DICOMDIR")
    assert uids(result) == ["1.1"]
    assert "a loop, ignored" in problems_text(result)


def test_one_broken_record_does_not_stop_the_rest(tmp_path: Path) -> None:
    root = tmp_path / "media"
    recs = simple_media(root, [f"DICOM\\IM{i}" for i in range(1, 6)])
    offsets = build_dicomdir(root / "DICOMDIR", recs)
    data = bytearray((root / "DICOMDIR").read_bytes())
    # Inside the 2nd image record: give (0004,1500) a length that runs past its item.
    pos = data.index(b"\x04\x00\x00\x15CS", offsets[4])
    data[pos + 6 : pos + 8] = struct.pack("<H", 0x7FF0)
    (root / "DICOMDIR").write_bytes(bytes(data))
    result = read_dicomdir(root / "DICOMDIR")
    assert uids(result) == ["1.2.3.1.1.1", "1.2.3.1.1.3", "1.2.3.1.1.4", "1.2.3.1.1.5"]
    assert f"record at offset {offsets[4]}" in problems_text(result)


def test_huge_length_in_a_record_is_not_allocated(tmp_path: Path) -> None:
    root = tmp_path / "media"
    recs = simple_media(root, ["DICOM\\IM1", "DICOM\\IM2"])
    recs[0].children[0].children[0].children[1].raw_tail = element(0x00091010, "UN", b"")[
        :8
    ] + struct.pack("<I", 0xFFFFFFF0)
    offsets = build_dicomdir(root / "DICOMDIR", recs)
    result = read_dicomdir(root / "DICOMDIR")
    assert uids(result) == ["1.2.3.1.1.1", "1.2.3.1.1.2"]
    assert f"record at offset {offsets[4]} is damaged" in problems_text(result)


@pytest.mark.parametrize("depth", [3000, 20000])
def test_deeply_nested_sequence_in_a_record(tmp_path: Path, depth: int) -> None:
    root = tmp_path / "media"
    recs = simple_media(root, ["DICOM\\IM1", "DICOM\\IM2"])
    sq_open = struct.pack("<HH", 0x0040, 0xA730) + b"SQ\0\0" + struct.pack("<I", 0xFFFFFFFF)
    item_open = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    close = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    recs[0].children[0].children[0].children[0].raw_tail = (
        sq_open + item_open
    ) * depth + close * depth
    build_dicomdir(root / "DICOMDIR", recs)
    result = read_dicomdir(root / "DICOMDIR")
    assert uids(result) == ["1.2.3.1.1.1", "1.2.3.1.1.2"]
    assert result.problems == []


def test_truncated_dicomdir_keeps_the_records_before_the_cut(tmp_path: Path) -> None:
    root = tmp_path / "media"
    recs = simple_media(root, [f"DICOM\\IM{i}" for i in range(1, 6)])
    offsets = build_dicomdir(root / "DICOMDIR", recs)
    build_dicomdir(root / "DICOMDIR", recs, truncate=offsets[6] + 20)
    result = read_dicomdir(root / "DICOMDIR")
    assert uids(result) == [f"1.2.3.1.1.{i}" for i in range(1, 4)]
    assert "runs past the end of the file" in problems_text(result)


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "no Directory Record Sequence"),
        (b"hello, this is a README and not DICOM at all" * 4, "no Directory Record Sequence"),
    ],
)
def test_not_a_dicomdir_raises_a_clear_error(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "DICOMDIR"
    path.write_bytes(content)
    with pytest.raises(DicomdirError) as info:
        read_dicomdir(path)
    assert str(info.value).startswith(str(path))
    assert reason in str(info.value)


def test_an_image_file_is_not_a_dicomdir(tmp_path: Path) -> None:
    path = write_instance(tmp_path / "IM1", "1.1")
    with pytest.raises(DicomdirError, match="not a DICOMDIR"):
        read_dicomdir(path)


def test_folder_without_dicomdir_raises(tmp_path: Path) -> None:
    with pytest.raises(DicomdirError, match="holds no DICOMDIR"):
        read_dicomdir(tmp_path)


def test_progress_and_cancel(tmp_path: Path) -> None:
    root = tmp_path / "media"
    root.mkdir()
    recs = simple_media(root, [f"DICOM\\IM{i}" for i in range(1, 601)], on_disc=[""] * 600)
    build_dicomdir(root / "DICOMDIR", recs)
    calls: list[tuple[int, int]] = []
    result = read_dicomdir(root / "DICOMDIR", progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (603, 603)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert not result.cancelled and len(result.references) == 600
    cancel = threading.Event()
    cancel.set()
    result = read_dicomdir(root / "DICOMDIR", cancel=cancel)
    assert result.cancelled
    assert len(result.references) < 600
    assert "cancelled" in problems_text(result)


def test_split_file_id() -> None:
    assert split_file_id("DICOM\\ST1\\IM1 ") == (["DICOM", "ST1", "IM1"], "")
    assert split_file_id("DICOM\\IM1;1") == (["DICOM", "IM1"], "")
    assert split_file_id("DICOM/IM1")[0] == ["DICOM", "IM1"]
    for bad in ("", "\\A", "A\\..\\B", ".\\A", "C:\\A", "A\\\\B", "A\x00B"):
        assert split_file_id(bad)[0] == [], bad


# ------------------------------------------------------------------------------------------
# Character sets: pydicom's charset test files are the oracle.


def _raw_charset(ds: Dataset) -> bytes:
    elem = ds.get_item(0x00080005)
    if elem is None:
        return b""
    value = elem.value
    if isinstance(value, bytes):
        return value
    return "\\".join([value] if isinstance(value, str) else list(value)).encode()


def _name_and_charset(path: str) -> tuple[bytes, bytes, str] | None:
    """Raw Patient's Name, the raw charset in force for it, and pydicom's decoding of it."""
    ds = pydicom.dcmread(path)
    raw_charset = _raw_charset(ds)
    if 0x00100010 in ds:
        raw = ds.get_item(0x00100010).value
        return raw, raw_charset, str(ds.PatientName)
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                if 0x00100010 in item:
                    raw = item.get_item(0x00100010).value
                    cs = _raw_charset(item) or raw_charset
                    return raw, cs, str(item.PatientName)
    return None


CHARSET_FILES = sorted(Path(p).name for p in get_charset_files("chr*.dcm"))


@pytest.mark.parametrize("name", CHARSET_FILES)
def test_charsets_in_records(tmp_path: Path, name: str) -> None:
    found = _name_and_charset(str(next(Path(p) for p in get_charset_files(name))))
    if found is None:
        pytest.fail(f"{name} holds no Patient's Name")
    raw, raw_charset, expected = found
    assert expected and expected != "None"
    root = tmp_path / "media"
    write_instance(root / "IM1", "1.1")
    pat = Rec("PATIENT", [(0x00100010, "PN", raw), (0x00100020, "LO", b"ID1")],
              [study("1.2.3.1", series("1.2.3.1.1", image("IM1", "1.1")))])  # fmt: skip
    if raw_charset:
        pat.keys.append((0x00080005, "CS", raw_charset))
    build_dicomdir(root / "DICOMDIR", [pat])
    result = read_dicomdir(root / "DICOMDIR")
    assert [p.patient_name for p in result.patients] == [expected]
    # The same, with the charset only at the top level of the DICOMDIR.
    pat.keys = [k for k in pat.keys if k[0] != 0x00080005]
    build_dicomdir(
        root / "DICOMDIR", [pat], top=[(0x00080005, "CS", raw_charset)] if raw_charset else []
    )
    assert [p.patient_name for p in read_dicomdir(root / "DICOMDIR").patients] == [expected]


def test_child_record_inherits_the_patient_charset(tmp_path: Path) -> None:
    root = tmp_path / "media"
    write_instance(root / "IM1", "1.1")
    text = "Kopf Übersicht 头部"
    st = study("1.2.3.1", series("1.2.3.1.1", image("IM1", "1.1")))
    st.keys = [k for k in st.keys if k[0] != 0x00081030] + [
        (0x00081030, "LO", text.encode("gb18030"))
    ]
    pat = Rec(
        "PATIENT",
        [
            (0x00080005, "CS", b"GB18030"),
            (0x00100010, "PN", "王^小东".encode("gb18030")),
            (0x00100020, "LO", b"ID"),
        ],
        [st],
    )
    build_dicomdir(root / "DICOMDIR", [pat])
    result = read_dicomdir(root / "DICOMDIR")
    assert result.patients[0].patient_name == "王^小东"
    assert result.patients[0].studies[0].study_description == text


def test_unknown_charset_is_reported_and_text_still_shown(tmp_path: Path) -> None:
    root = tmp_path / "media"
    write_instance(root / "IM1", "1.1")
    pat = Rec(
        "PATIENT",
        [
            (0x00080005, "CS", b"ISO_IR 999"),
            (0x00100010, "PN", "Jérôme".encode("latin-1")),
            (0x00100020, "LO", b"ID"),
        ],
        [study("1.2.3.1", series("1.2.3.1.1", image("IM1", "1.1")))],
    )
    build_dicomdir(root / "DICOMDIR", [pat])
    result = read_dicomdir(root / "DICOMDIR")
    assert uids(result) == ["1.1"]
    assert result.patients[0].patient_name.startswith("J")
    assert "1 text values do not decode cleanly" in problems_text(result)


def test_fuzzed_dicomdirs_never_raise_anything_else(pydicom_media: Path) -> None:
    """Random damage to real DICOMDIRs: a result or a DicomdirError, never another exception."""
    import random

    rng = random.Random(20240611)
    sources = [(pydicom_media / n).read_bytes() for n in ("DICOMDIR", "DICOMDIR-bigEnd",
                                                          "DICOMDIR-implicit")]  # fmt: skip
    target = pydicom_media / "FUZZ"
    for _ in range(300):
        data = bytearray(rng.choice(sources))
        for _ in range(rng.randint(1, 12)):
            i = rng.randrange(len(data))
            roll = rng.random()
            if roll < 0.6:
                data[i] = rng.randrange(256)
            elif roll < 0.9:
                data[i : i + 4] = rng.choice(
                    [b"\xff\xff\xff\xff", b"\xfe\xff\x00\xe0", b"\0\0\0\0"]
                )
            else:
                del data[max(i, 200) :]
        target.write_bytes(bytes(data))
        try:
            result = read_dicomdir(target)
        except DicomdirError as exc:
            assert str(exc).startswith(str(target))
        else:
            assert all(i.path.is_file() for i in result.instances)
    target.unlink()


def test_resynchronising_over_many_broken_records_stays_linear(tmp_path: Path) -> None:
    """Each record opens a sequence and an item of undefined length that nothing closes, so
    every candidate item the reader tries after a broken record walks to the end of the
    sequence. Found by ``make fuzz`` (a 40 KB DICOMDIR took seconds); at 3,000 records the
    reader without a bound on that walking did not finish in minutes. Now it gives up
    resynchronising once it has walked a multiple of the sequence, and says so."""
    record = (
        struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
        + element(0x00041430, "CS", b"IMAGE")
        + struct.pack("<HH", 0x0008, 0x1115)
        + b"SQ\0\0"
        + struct.pack("<I", 0xFFFFFFFF)
        + struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    )
    items = record * 3000
    meta_body = (
        element(0x00020001, "OB", b"\0\1")
        + element(0x00020002, "UI", DIRECTORY_SOP_CLASS.encode())
        + element(0x00020003, "UI", b"1.2.3.4.5")
        + element(0x00020010, "UI", EXPLICIT_LE.encode())
    )
    data = b"\0" * 128 + b"DICM" + element(0x00020000, "UL", ul(len(meta_body))) + meta_body
    data += element(0x00041130, "CS", b"TESTSET") + element(0x00041200, "UL", ul(0))
    data += struct.pack("<HH", 0x0004, 0x1220) + b"SQ\0\0" + struct.pack("<I", len(items)) + items
    path = tmp_path / "DICOMDIR"
    path.write_bytes(data)
    result = read_with_timeout(path, 60.0)
    assert not uids(result)
    assert "too many damaged records" in problems_text(result)
