"""scan(): files, folders and DICOMDIRs -> instances, problems and the patient tree."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataelem import RawDataElement
from pydicom.tag import BaseTag
from pydicom.uid import generate_uid

from viewer import model
from viewer.media.scan import instance_from_dataset, looks_like_dicom, scan

TEST_FILES = Path(str(get_testdata_file("CT_small.dcm"))).parent


def write_ct(path: Path, *, series: str, number: int, z: float, study: str = "1.2.3.4") -> str:
    ds = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.InstanceNumber = number
    ds.ImagePositionPatient = [0.0, 0.0, z]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return str(ds.SOPInstanceUID)


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "media"
    write_ct(root / "b" / "IMG2.JPG", series="1.2.3.4.5", number=2, z=5.0)
    write_ct(root / "a" / "one", series="1.2.3.4.5", number=1, z=0.0)
    write_ct(root / "a" / "deep" / "x.dcm", series="1.2.3.4.6", number=1, z=0.0)
    shutil.copy(TEST_FILES / "ExplVR_LitEndNoMeta.dcm", root / "nometa")  # no preamble, no meta
    (root / "notes.txt").write_text("not an image\n" * 20)
    (root / "empty").write_bytes(b"")
    (root / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    # Looks like DICOM (preamble + DICM), then garbage: a problem, not a crash.
    (root / "broken.dcm").write_bytes(
        bytes(128) + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff" + bytes(7)
    )
    return root


def test_folder_finds_every_instance_skips_non_dicom_lists_corrupt(folder: Path) -> None:
    result = scan(folder)
    found = sorted(i.path.relative_to(folder).as_posix() for i in result.instances)
    assert found == ["a/deep/x.dcm", "a/one", "b/IMG2.JPG", "nometa"]
    assert [Path(p.path).name for p in result.problems] == ["broken.dcm"]
    assert "broken.dcm" in str(result.problems[0])


def test_folder_order_is_stable_and_files_come_before_subfolders(folder: Path) -> None:
    first = [i.path for i in scan(folder).instances]
    assert first == [i.path for i in scan(folder).instances]
    assert [p.relative_to(folder).as_posix() for p in first] == [
        "nometa",
        "a/one",
        "a/deep/x.dcm",
        "b/IMG2.JPG",
    ]


def test_patient_tree_groups_study_series_instances(folder: Path) -> None:
    result = scan(folder)
    series = {s.series_instance_uid: s for s in result.series()}
    assert len(series["1.2.3.4.5"].instances) == 2
    assert len(series["1.2.3.4.6"].instances) == 1
    ct = series["1.2.3.4.5"]
    assert ct.modality == "CT"
    patients = {p.patient_name: p for p in result.patients}
    ct_patient = patients["CompressedSamples^CT1"]
    assert ct_patient.patient_id == "1CT1"
    (study,) = [s for s in ct_patient.studies if s.study_instance_uid == "1.2.3.4"]
    assert {s.series_instance_uid for s in study.series} == {"1.2.3.4.5", "1.2.3.4.6"}
    total = sum(len(s.instances) for p in result.patients for st in p.studies for s in st.series)
    assert total == len(result.instances)


def test_instance_from_dataset_reads_geometry_and_numbers() -> None:
    path = TEST_FILES / "CT_small.dcm"
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    inst = instance_from_dataset(ds, path)
    assert inst.sop_instance_uid == ds.SOPInstanceUID
    assert inst.series_instance_uid == ds.SeriesInstanceUID
    assert inst.transfer_syntax_uid == ds.file_meta.TransferSyntaxUID
    assert inst.instance_number == int(ds.InstanceNumber)
    assert (inst.rows, inst.columns, inst.number_of_frames) == (128, 128, 1)
    assert inst.image_position == tuple(float(v) for v in ds.ImagePositionPatient)
    assert inst.image_orientation == tuple(float(v) for v in ds.ImageOrientationPatient)


def test_instance_from_dataset_survives_bad_values() -> None:
    ds = pydicom.Dataset()
    ds.SOPInstanceUID = "1.2.3"
    # Raw elements as a reader keeps them: the values only fail when converted.
    for tag, vr, value in (
        (0x00200013, "IS", b"1A"),
        (0x00280008, "IS", b"x "),
        (0x00200032, "DS", b"1\\2 "),
    ):
        ds[tag] = RawDataElement(BaseTag(tag), vr, len(value), value, 0, False, True)
    inst = instance_from_dataset(ds, Path("/x"))
    assert inst.instance_number is None
    assert inst.number_of_frames == 1
    assert inst.image_position is None


def test_multiframe_counts_frames() -> None:
    result = scan(TEST_FILES / "examples_ybr_color.dcm")
    (inst,) = result.instances
    assert inst.number_of_frames == 30
    assert not result.problems


def test_single_file_and_missing_path() -> None:
    assert len(scan(TEST_FILES / "MR_small.dcm").instances) == 1
    missing = scan(TEST_FILES / "does-not-exist.dcm")
    assert not missing.instances and "no such file" in missing.problems[0].problem


def test_a_file_named_directly_that_is_not_dicom_is_a_problem(tmp_path: Path) -> None:
    text = tmp_path / "hello.txt"
    text.write_text("hello")
    result = scan(text)
    assert not result.instances
    assert len(result.problems) == 1 and result.problems[0].path == str(text)


def test_cancel_and_progress(folder: Path) -> None:
    calls: list[tuple[int, int]] = []
    result = scan(folder, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (len(calls), len(calls)) and len(calls) == 8
    assert [c[0] for c in calls] == list(range(1, 9))
    assert len(result.instances) == 4

    stop = threading.Event()

    def progress(done: int, total: int) -> None:
        if done == 2:
            stop.set()

    partial = scan(folder, cancel=stop, progress=progress)
    assert len(partial.instances) <= 2


def test_looks_like_dicom(tmp_path: Path) -> None:
    assert looks_like_dicom(TEST_FILES / "CT_small.dcm")
    assert looks_like_dicom(TEST_FILES / "ExplVR_LitEndNoMeta.dcm")
    assert looks_like_dicom(TEST_FILES / "no_meta_group_length.dcm")
    other = tmp_path / "x"
    other.write_bytes(b"GIF89a" + bytes(300))
    assert not looks_like_dicom(other)


# ---- DICOMDIR ------------------------------------------------------------------------------


@pytest.fixture()
def fileset(tmp_path: Path) -> Path:
    """pydicom's TINY_ALPHA file-set, copied so that it can be damaged."""
    root = tmp_path / "TINY"
    shutil.copytree(TEST_FILES / "dicomdirtests" / "TINY_ALPHA", root)
    return root


def referenced(root: Path) -> list[list[str]]:
    ds = pydicom.dcmread(root / "DICOMDIR")
    ids = []
    for record in ds.DirectoryRecordSequence:
        if "ReferencedFileID" in record:
            value = record.ReferencedFileID
            ids.append([value] if isinstance(value, str) else list(value))
    return ids


def test_dicomdir_reads_every_referenced_instance(fileset: Path) -> None:
    ids = referenced(fileset)
    result = scan(fileset / "DICOMDIR")
    assert not result.problems
    assert len(result.instances) == len(ids) > 5
    assert {i.path for i in result.instances} == {fileset.joinpath(*parts) for parts in ids}


def test_dicomdir_matches_names_case_insensitively_and_lists_missing(fileset: Path) -> None:
    ids = referenced(fileset)
    # Lower-case one referenced file's name, as a copy from another system might.
    renamed = fileset.joinpath(*ids[0])
    renamed.rename(renamed.with_name(renamed.name.lower()))
    gone = fileset.joinpath(*ids[1])
    gone.unlink()
    result = scan(fileset / "DICOMDIR")
    assert len(result.instances) == len(ids) - 1
    assert renamed.with_name(renamed.name.lower()) in {i.path for i in result.instances}
    missing = [p for p in result.problems if "missing" in p.problem]
    assert [p.path for p in missing] == [str(gone)]
    assert "\\".join(ids[1]) not in missing[0].problem  # named by its path on disc
    (fuzzy,) = [p for p in result.problems if p not in missing]
    assert "case" in fuzzy.problem and renamed.name.lower() in fuzzy.problem


def test_dicomdir_refuses_references_leaving_the_root(fileset: Path) -> None:
    secret = fileset.parent / "SECRET"
    write_ct(secret, series="9.9", number=1, z=0.0)
    ds = pydicom.dcmread(fileset / "DICOMDIR")
    records = [r for r in ds.DirectoryRecordSequence if "ReferencedFileID" in r]
    records[0].ReferencedFileID = ["..", "SECRET"]
    (fileset / "LINK").symlink_to(secret)
    records[1].ReferencedFileID = "LINK"
    ds.save_as(fileset / "DICOMDIR")
    result = scan(fileset / "DICOMDIR")
    assert secret not in {i.path.resolve() for i in result.instances}
    (refused,) = [p for p in result.problems if p.problem.endswith("refused")]
    assert "DICOMDIR" in refused.path and "SECRET" in refused.problem
    # The link is named once, by its path, as the walk of a folder names it.
    link = model.Problem(
        str(fileset / "LINK"), "symbolic link leading outside the media: not followed"
    )
    assert [p for p in result.problems if "LINK" in p.path + p.problem] == [link]
    assert len(result.instances) == len(referenced(fileset)) - 2


def test_folder_walk_does_not_list_the_dicomdir_as_an_instance(fileset: Path) -> None:
    result = scan(fileset)
    assert not result.problems
    assert len(result.instances) == len(referenced(fileset))


def test_real_orphan_dicomdir_lists_its_44_missing_files(shared_data: Path) -> None:
    result = scan(shared_data / "dwv" / "orphan_dicomdir" / "DICOMDIR")
    assert not result.instances
    assert len(result.problems) == 45
    assert all(
        isinstance(p, model.Problem) and "missing" in p.problem for p in result.problems[:44]
    )
    assert result.problems[44].problem.endswith("the folder was scanned instead")


def test_real_dwv_dicomdir_with_odd_name_and_meta(shared_data: Path) -> None:
    result = scan(shared_data / "dwv" / "bbmri_media" / "bbmri.dcmdir")
    assert len(result.instances) == 4
    # Its malformed records are listed, and every instance still loads.
    assert any("offsets are wrong" in p.problem for p in result.problems)
    assert all(p.path.endswith("bbmri.dcmdir") for p in result.problems)


@pytest.fixture()
def big_folder(tmp_path: Path) -> Path:
    root = tmp_path / "big"
    for k in range(80):
        write_ct(root / f"s{k // 30}" / f"IM{k:03d}", series=f"1.2.3.{k % 3}", number=k, z=k)
    (root / "s1" / "IM040").write_bytes(bytes(128) + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff")
    (root / "s2" / "readme.txt").write_text("hello")
    return root


def test_a_large_folder_read_by_the_workers_equals_a_serial_read(
    big_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from viewer.media import scan as scan_module

    assert len(list(big_folder.rglob("*"))) - 3 >= scan_module.PARALLEL_MIN_FILES
    calls: list[tuple[int, int]] = []
    parallel = scan(big_folder, progress=lambda d, t: calls.append((d, t)))
    monkeypatch.setattr(scan_module, "PARALLEL_MIN_FILES", 10**9)
    serial = scan(big_folder)
    assert [i.path for i in parallel.instances] == [i.path for i in serial.instances]
    assert parallel.instances == serial.instances
    assert parallel.problems == serial.problems
    assert [p.path for p in parallel.problems] == [str(big_folder / "s1" / "IM040")]
    assert len(parallel.instances) == 79
    assert calls[-1] == (81, 81)
    assert len(calls) < 81  # progress comes a chunk at a time
    assert sorted(s.series_instance_uid for s in parallel.series()) == [
        "1.2.3.0",
        "1.2.3.1",
        "1.2.3.2",
    ]


def test_cancel_stops_a_parallel_scan(big_folder: Path) -> None:
    stop = threading.Event()
    stop.set()
    assert scan(big_folder, cancel=stop).instances == []


def test_a_dangling_link_is_a_problem_a_link_loop_is_not_followed(folder: Path) -> None:
    (folder / "gone.dcm").symlink_to(folder / "nowhere.dcm")
    (folder / "a" / "loop").symlink_to(folder, target_is_directory=True)
    result = scan(folder)
    assert len(result.instances) == 4
    problems = {Path(p.path).name: p.problem for p in result.problems}
    assert set(problems) == {"broken.dcm", "gone.dcm"}
    assert problems["gone.dcm"] == "symbolic link to nothing: not followed"


def test_images_without_uids_are_kept_each_as_its_own_stack(tmp_path: Path) -> None:
    from viewer.imaging.stack import build_stacks

    for name in ("one", "two"):
        ds = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
        del ds.SOPInstanceUID, ds.SeriesInstanceUID
        del ds.file_meta.MediaStorageSOPInstanceUID
        ds.save_as(tmp_path / name)
    ds = pydicom.dcmread(TEST_FILES / "CT_small.dcm", stop_before_pixels=True)
    del ds.SOPInstanceUID, ds.file_meta.MediaStorageSOPInstanceUID, ds.Rows, ds.Columns
    ds.save_as(tmp_path / "nothing")
    result = scan(tmp_path)
    assert sorted(i.path.name for i in result.instances) == ["one", "two"]
    assert [Path(p.path).name for p in result.problems] == ["nothing"]
    stacks = build_stacks(result.instances, series=result.series())
    assert sorted(s.frames[0].path.name for s in stacks) == ["one", "two"]
    assert len(result.series()) == 2


def test_real_file_without_transfer_syntax_or_uids_is_found(shared_data: Path) -> None:
    result = scan(shared_data / "hard" / "GH340.dcm")
    assert len(result.instances) == 1 and not result.problems


def test_a_folder_holding_a_dicomdir_reads_it_and_lists_unreferenced_files(
    fileset: Path,
) -> None:
    extra = fileset / "EXTRA"
    write_ct(extra, series="7.7", number=1, z=0.0)
    result = scan(fileset)
    assert len(result.instances) == len(referenced(fileset)) + 1
    assert [p.path for p in result.problems] == [str(extra)]
    assert result.problems[0].problem == "not referenced by the DICOMDIR"


def test_unreadable_dicomdir_falls_back_to_a_folder_scan(fileset: Path) -> None:
    directory = fileset / "DICOMDIR"
    count = len(referenced(fileset))
    directory.write_bytes(bytes(128) + b"DICM" + b"\x02\x00\x00\x00UL\x04\x00" + b"\xff" * 8)
    result = scan(directory)
    assert len(result.instances) == count
    assert result.problems[-1].path == str(directory)
    assert "the folder was scanned" in result.problems[-1].problem
    assert len(result.problems) == 2  # why it is unreadable, and what was done instead


def test_a_dicomdir_whose_files_are_all_missing_falls_back_to_the_files_present(
    fileset: Path,
) -> None:
    for parts in referenced(fileset):
        fileset.joinpath(*parts).unlink()
    kept = fileset / "OTHER" / "IM1"
    write_ct(kept, series="8.8", number=1, z=0.0)
    result = scan(fileset / "DICOMDIR")
    assert [i.path for i in result.instances] == [kept]
    assert sum("but missing" in p.problem for p in result.problems) == len(referenced(fileset))
    assert result.problems[-1].problem.endswith("the folder was scanned instead")
