"""Media writing (issue 5 §1) checked by real validators: dciodvfy, dcmmkdir, dcentvfy, dcmdump,
pydicom, and read back to the same instances with identical pixel data."""

from __future__ import annotations

import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from tests.conftest import SHARED, require_tool
from viewer import __version__, dicom
from viewer.imaging import decode
from viewer.media import dicomdir_writer as ddw
from viewer.media import plan, writer
from viewer.media.profiles import Medium, get_profile
from viewer.media.verify import verify

TEST_FILES = Path(get_testdata_file("CT_small.dcm")).parent
DATA = SHARED / "data"

# Distinct SOP Instance UIDs, every kind of encoding the profiles treat differently.
PYDICOM_FILES = [
    "CT_small.dcm",  # explicit LE
    "MR_small.dcm",
    "JPEG2000.dcm",  # J2K lossy: decoded in every profile
    "SC_rgb_rle.dcm",  # RLE colour
    "rtplan.dcm",  # implicit VR, RT PLAN record
    "test-SR.dcm",  # SR DOCUMENT record, no Patient ID
    "JPEG-lossy.dcm",  # JPEG extended .4.51: kept for DVD/USB
    "SC_jpeg_no_color_transform.dcm",  # JPEG baseline .4.50, no Modality, no Patient ID
]
SHARED_FILES = [
    "dcm_qa_nih/20180918GE/mr_0004/axial_epi_fmri_interleaved_i_to_s-00001.dcm",
    "dcm_qa_nih/20180918GE/mr_0004/axial_epi_fmri_interleaved_i_to_s-00002.dcm",
    "dwv/gdcm-US-RGB-8-epicard.dcm",  # explicit big endian
    "pydicom-data/JPEG-LL.dcm",  # JPEG lossless SV1 .4.70
    "pydicom-data/emri_small_jpeg_ls_lossless.dcm",  # JPEG-LS multi-frame
    "pydicom-data/liver.dcm",  # SEG multi-frame
]
JPEG_KEPT = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.70"}


def selection() -> list[Path]:
    if not DATA.is_dir():
        pytest.skip(f"{DATA} is absent")
    return [TEST_FILES / n for n in PYDICOM_FILES] + [DATA / n for n in SHARED_FILES]


def _read(path: Path) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path)


def _dicom_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "DICOM").rglob("*") if p.is_file())


def run_validators(root: Path, profile: str, tmp: Path) -> None:
    """The MEDIA.md validators; dcmmkdir runs on a copy (check mode still deletes DICOMDIR)."""
    require_tool("dciodvfy")
    require_tool("dcmmkdir")
    require_tool("dcentvfy")
    out = subprocess.run(
        ["dciodvfy", "DICOMDIR"], cwd=root, capture_output=True, text=True, errors="replace"
    )
    errors = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.startswith("Error")]
    assert not errors, errors
    copy = tmp / f"dcmmkdir-{profile}"
    shutil.copytree(root, copy)
    option = get_profile(profile).dcmmkdir_option
    out = subprocess.run(
        ["dcmmkdir", "-w", "-nb", "+r", option, "DICOM"],
        cwd=copy,
        capture_output=True,
        text=True,
        errors="replace",
    )
    bad = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.startswith(("E:", "F:"))]
    assert not bad, bad
    listing = tmp / f"list-{profile}"
    listing.write_text("\n".join(str(p) for p in _dicom_files(root)) + "\n")
    out = subprocess.run(
        ["dcentvfy", "-f", str(listing)], capture_output=True, text=True, errors="replace"
    )
    assert out.returncode == 0, out.stdout + out.stderr
    require_tool("dcmdump")
    for path in [root / "DICOMDIR", *_dicom_files(root)]:
        out = subprocess.run(
            ["dcmdump", "-q", str(path)], capture_output=True, text=True, errors="replace"
        )
        assert out.returncode == 0 and "E:" not in out.stderr, (path, out.stderr)


@pytest.fixture(scope="module", params=["cd", "dvd-jpeg", "usb-jpeg"])
def written(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    files = selection()
    root = tmp_path_factory.mktemp(f"media-{request.param}") / "OUT"
    report = writer.write_media(files, root, profile=request.param, label="DICOM PLUS WEB TEST")
    return request.param, root, report, files


def test_validators_accept_the_media(written, tmp_path: Path) -> None:
    profile, root, report, _files = written
    assert report.ok, report.summary()
    run_validators(root, profile, tmp_path)


def test_every_file_written_with_zero_preamble_and_our_file_meta(written) -> None:
    profile, root, report, files = written
    assert len(report.discs) == 1
    assert len(report.discs[0].files) == len(files), report.summary()
    allowed = get_profile(profile).transfer_syntaxes
    for path in _dicom_files(root):
        raw = path.read_bytes()
        assert raw[:128] == b"\x00" * 128 and raw[128:132] == b"DICM"
        ds = _read(path)
        meta = ds.file_meta
        assert meta.ImplementationClassUID == dicom.IMPLEMENTATION_CLASS_UID
        assert meta.ImplementationVersionName == f"LIGHTBOX_{__version__}"
        assert meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert meta.MediaStorageSOPClassUID == ds.SOPClassUID
        assert meta.TransferSyntaxUID in allowed
        parts = path.relative_to(root).parts
        assert parts[0] == "DICOM" and len(parts) <= 8
        assert all(ddw.FILE_ID_COMPONENT.match(p) for p in parts)


def test_read_back_same_instances_and_identical_pixels(written) -> None:
    profile, root, _report, files = written
    sources = {}
    for path in files:
        ds = _read(path)
        sources[ds.SOPInstanceUID] = ds
    dicomdir = _read(root / "DICOMDIR")
    seen = set()
    for record in dicomdir.DirectoryRecordSequence:
        if "ReferencedFileID" not in record:
            continue
        out = _read(root.joinpath(*record.ReferencedFileID))
        uid = out.SOPInstanceUID
        seen.add(uid)
        src = sources[uid]
        if "PixelData" not in src:
            continue
        src_ts = src.file_meta.TransferSyntaxUID
        if src_ts in JPEG_KEPT and profile != "cd":
            assert out.file_meta.TransferSyntaxUID == src_ts
            assert out.PixelData == src.PixelData
        else:
            want = decode.decode_all(decode.read_file(path_of(src)).dataset)
            got = decode.decode_all(
                decode.read_file(root.joinpath(*record.ReferencedFileID)).dataset
            )
            assert got.shape == want.shape and np.array_equal(got, want), path_of(src)
    assert seen == set(sources)
    # Lightbox's own media reader finds the same instances through the DICOMDIR.
    from viewer.media.scan import scan

    scanned = scan(root / "DICOMDIR")
    assert not scanned.problems, scanned.problems
    assert {i.sop_instance_uid for i in scanned.instances} == set(sources)


def path_of(ds: pydicom.Dataset) -> str:
    return str(getattr(ds, "filename", ""))


def test_type1_policy_changes_are_reported(written) -> None:
    profile, root, report, _files = written
    by_attr = {(c.source.rsplit("/", 1)[-1], c.attribute): c for c in report.changes}
    sr = by_attr[("test-SR.dcm", "PatientID")]
    assert sr.new.startswith("NOID") and sr.old == ""
    assert by_attr[("SC_jpeg_no_color_transform.dcm", "Modality")].new == "OT"
    # The written files carry the fills, so that files and records agree.
    dicomdir = _read(root / "DICOMDIR")
    ids = [
        r.PatientID for r in dicomdir.DirectoryRecordSequence if r.DirectoryRecordType == "PATIENT"
    ]
    assert sr.new in ids and all(ids)
    if profile == "cd":
        decoded = {
            c.source.rsplit("/", 1)[-1]
            for c in report.changes
            if c.attribute == "TransferSyntaxUID"
        }
        assert {"JPEG2000.dcm", "SC_rgb_rle.dcm", "rtplan.dcm", "JPEG-lossy.dcm"} <= decoded


def test_record_types_and_readme_and_web(written) -> None:
    profile, root, _report, _files = written
    dicomdir = _read(root / "DICOMDIR")
    types = {r.DirectoryRecordType for r in dicomdir.DirectoryRecordSequence}
    assert {"PATIENT", "STUDY", "SERIES", "IMAGE", "SR DOCUMENT", "RT PLAN"} <= types
    readme = (root / "README.TXT").read_text(encoding="utf-8")
    assert "Disc 1 of 1" in readme and f"Lightbox {__version__}" in readme
    assert "DICOM PLUS WEB TEST" in readme and "INDEX.HTM" in readme
    assert get_profile(profile).name in readme
    label_free = [dicomdir.FileSetID, *(p.name for p in root.rglob("*"))]
    assert not any("PLUS" in text for text in label_free)
    index = (root / "INDEX.HTM").read_text(encoding="utf-8")
    pages = [index, *(p.read_text(encoding="utf-8") for p in (root / "IHE_PDI").glob("*.HTM"))]
    for page in pages:
        assert "<script" not in page.lower() and "http:" not in page and "https:" not in page
    assert list((root / "IHE_PDI").glob("*.JPG")), "no previews"
    assert not [p for p in root.iterdir() if p.name.upper().startswith("AUTORUN")]


def test_split_into_discs_without_splitting_a_study(tmp_path: Path) -> None:
    files = [DATA / n for n in SHARED_FILES[:2]] + [
        TEST_FILES / "CT_small.dcm",
        TEST_FILES / "MR_small.dcm",
    ]
    sizes = [s.size for disc in writer.plan_media(files, medium="usb").discs for s in disc]
    assert len(sizes) == 3
    small = Medium("tiny", "tiny test disc", writer._DEFAULT_RESERVE + max(sizes))
    report = writer.write_media(files, tmp_path / "OUT", medium=small, web=False)
    assert report.ok, report.summary()
    assert len(report.discs) >= 2
    assert [d.root.name for d in report.discs] == [
        f"OUT_{n}" for n in range(1, len(report.discs) + 1)
    ]
    studies: dict[str, int] = {}
    for disc in report.discs:
        readme = (disc.root / "README.TXT").read_text(encoding="utf-8")
        assert f"Disc {disc.index} of {len(report.discs)}" in readme
        for study_uid in {s for p in disc.tree.values() for s in p}:
            assert study_uid not in studies, "a study was split across discs"
            studies[study_uid] = disc.index
        assert verify(disc.root).ok


def test_study_larger_than_the_medium_is_refused_naming_the_medium(tmp_path: Path) -> None:
    files = [DATA / n for n in SHARED_FILES[:2]]
    small = Medium("tiny", "tiny test disc", writer._DEFAULT_RESERVE + 10_000)
    with pytest.raises(plan.MediaError, match=r"larger than a tiny test disc: it needs a CD-R"):
        writer.write_media(files, tmp_path / "OUT", medium=small)
    assert not (tmp_path / "OUT").exists()


def test_bad_inputs_are_listed_not_raised(tmp_path: Path) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom at all" * 20)
    truncated = tmp_path / "trunc.dcm"
    truncated.write_bytes((TEST_FILES / "CT_small.dcm").read_bytes()[:400])
    files = [TEST_FILES / "CT_small.dcm", junk, truncated, TEST_FILES / "CT_small.dcm"]
    report = writer.write_media(files, tmp_path / "OUT", web=False)
    assert len(report.discs[0].files) == 1
    text = "\n".join(report.skipped)
    assert "junk.dcm" in text and "trunc.dcm" in text and "same SOP Instance UID" in text
    assert report.ok


def test_undecodable_file_is_refused_for_the_cd_profile(tmp_path: Path) -> None:
    hard = DATA / "hard" / "NM1_JPLY"
    if not hard.exists():
        pytest.skip("hard case absent")
    report = writer.write_media([hard, TEST_FILES / "CT_small.dcm"], tmp_path / "CD", web=False)
    written_sources = {f.source for f in report.discs[0].files}
    if str(hard) not in written_sources:
        assert any("NM1_JPLY" in s and "refused" in s for s in report.skipped), report.skipped
    # DVD-JPEG keeps .4.51 as it is: nothing to decode.
    dvd = writer.write_media([hard], tmp_path / "DVD", profile="dvd-jpeg", web=False)
    assert [f.source for f in dvd.discs[0].files] == [str(hard)] and dvd.ok


def test_target_holding_media_is_refused(tmp_path: Path) -> None:
    (tmp_path / "OUT").mkdir()
    (tmp_path / "OUT" / "DICOMDIR").write_bytes(b"")
    with pytest.raises(plan.MediaError, match="already holds DICOMDIR"):
        writer.write_media([TEST_FILES / "CT_small.dcm"], tmp_path / "OUT")


def test_one_implementation_uid_for_media_files_dicomdir_and_network(tmp_path: Path) -> None:
    from viewer.net.connect import make_ae
    from viewer.net.nodes import LocalSettings

    writer.write_media([TEST_FILES / "CT_small.dcm"], tmp_path / "OUT")
    dicomdir = pydicom.dcmread(tmp_path / "OUT" / "DICOMDIR")
    assert dicomdir.file_meta.ImplementationClassUID == dicom.IMPLEMENTATION_CLASS_UID
    assert dicomdir.file_meta.ImplementationVersionName == dicom.IMPLEMENTATION_VERSION_NAME
    ae = make_ae(LocalSettings())
    assert ae.implementation_class_uid == dicom.IMPLEMENTATION_CLASS_UID
    assert ae.implementation_version_name == dicom.IMPLEMENTATION_VERSION_NAME
    root = Path(__file__).resolve().parents[2] / "viewer"
    defined = [p for p in root.rglob("*.py") if dicom.IMPLEMENTATION_CLASS_UID in p.read_text()]
    assert defined == [root / "dicom" / "__init__.py"]


def test_cancel_stops_and_progress_counts(tmp_path: Path) -> None:
    import threading

    files = [TEST_FILES / n for n in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm")]
    seen: list[tuple[int, int]] = []
    writer.write_media(files, tmp_path / "A", web=False, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(plan.Cancelled, match="incomplete"):
        writer.write_media(files, tmp_path / "B", web=False, cancel=cancel)


def test_absent_patient_name_is_added_empty(tmp_path: Path) -> None:
    ds = _read(TEST_FILES / "CT_small.dcm")
    del ds.PatientName
    ds.PatientID = ""
    source = tmp_path / "noname.dcm"
    ds.save_as(source)
    report = writer.write_media([source], tmp_path / "OUT", web=False)
    assert report.ok, report.summary()
    changed = {c.attribute: c for c in report.changes}
    assert changed["PatientName"].new == "" and changed["PatientID"].new == "NOID0001"
    out = _read(tmp_path.joinpath("OUT", *report.discs[0].files[0].file_id))
    assert "PatientName" in out and out.PatientID == "NOID0001"
    assert out.PixelData == ds.PixelData


@pytest.mark.parametrize(
    "name",
    [
        "SC_rgb_expb_16bit.dcm",
        "SC_rgb_expb_32bit.dcm",
        "OBXXXX1A_expb.dcm",  # palette LUT data (OW) swapped too
        "emri_small_big_endian.dcm",
        "liver_expb.dcm",  # 1-bit segmentation
        "gdcm-US-ALOKA-16_big.dcm",  # segmented palette
    ],
)
def test_big_endian_sources_keep_their_values(name: str, tmp_path: Path) -> None:
    source = DATA / "pydicom-data" / name
    if not source.exists():
        pytest.skip(f"{source} absent")
    report = writer.write_media([source], tmp_path / "OUT", web=False)
    assert report.ok, report.summary()
    out = _read(tmp_path.joinpath("OUT", *report.discs[0].files[0].file_id))
    src = _read(source)
    assert out.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.array_equal(out.pixel_array, src.pixel_array)
    for key in ("RedPaletteColorLookupTableData", "SegmentedRedPaletteColorLookupTableData"):
        if key in src:
            assert np.array_equal(
                np.frombuffer(out[key].value, "<u2"), np.frombuffer(src[key].value, ">u2")
            )


def test_files_without_file_meta_are_re_encoded(tmp_path: Path) -> None:
    sources = [TEST_FILES / "rtstruct.dcm", DATA / "pydicom-data" / "OT-PAL-8-face.dcm"]
    sources = [s for s in sources if s.exists()]
    report = writer.write_media(sources, tmp_path / "OUT", web=False)
    assert report.ok and not report.skipped, report.summary()
    for written_file in report.discs[0].files:
        out = _read(tmp_path.joinpath("OUT", *written_file.file_id))
        assert out.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    reencoded = [c for c in report.changes if c.attribute == "TransferSyntaxUID"]
    assert len(reencoded) == len(sources)
    assert all(c.old == pydicom.uid.ImplicitVRLittleEndian for c in reencoded)
    types = {
        r.DirectoryRecordType for r in _read(tmp_path / "OUT" / "DICOMDIR").DirectoryRecordSequence
    }
    assert "RT STRUCTURE SET" in types


def test_fileset_id_is_checked_and_numbered_within_16_characters(tmp_path: Path) -> None:
    with pytest.raises(plan.MediaError, match="File-set ID"):
        writer.write_media([TEST_FILES / "CT_small.dcm"], tmp_path / "A", fileset_id="Jane Doe")
    files = [TEST_FILES / "CT_small.dcm", TEST_FILES / "MR_small.dcm"]
    sizes = [s.size for d in writer.plan_media(files, medium="usb").discs for s in d]
    tiny = Medium("tiny", "tiny", writer._DEFAULT_RESERVE + max(sizes))
    report = writer.write_media(
        files, tmp_path / "B", medium=tiny, fileset_id="ABCDEFGHIJKLMNOP", web=False
    )
    assert [d.fileset_id for d in report.discs] == ["ABCDEFGHIJKLMN_1", "ABCDEFGHIJKLMN_2"]


def test_executable_preamble_is_replaced_and_reported(tmp_path: Path) -> None:
    data = bytearray((TEST_FILES / "CT_small.dcm").read_bytes())
    data[:4] = b"MZ\x90\x00"
    source = tmp_path / "polyglot.dcm"
    source.write_bytes(bytes(data))
    report = writer.write_media([source], tmp_path / "OUT", web=False)
    assert report.ok, report.summary()
    change = next(c for c in report.changes if c.attribute == "preamble")
    assert "CVE-2019-11687" in change.old
    out = tmp_path.joinpath("OUT", *report.discs[0].files[0].file_id).read_bytes()
    assert out[:128] == b"\x00" * 128
