"""Import: what is kept, duplicates and conflicts, rejected files, cancel, progress, network."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pydicom
import pytest

from tests.store.dicomfiles import (
    bare_implicit,
    dataset_part,
    make_dataset,
    make_folder,
    to_bytes,
    uid,
    write,
)
from viewer.config import app_home
from viewer.store import (
    Store,
    check,
    import_bytes,
    import_dataset,
    import_paths,
    list_series,
    list_studies,
    series_instances,
)
from viewer.store.store import is_managed_relpath


def _managed_files(store: Store) -> list[Path]:
    return sorted(p for p in store.files_dir.rglob("*") if p.is_file())


def test_store_lives_under_app_home(store: Store) -> None:
    assert store.root == app_home() / "store"
    assert str(store.root).startswith(os.environ["LIGHTBOX_HOME"])
    mode = store.connection().execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_import_folder_indexes_and_keeps_bytes(store: Store, tmp_path: Path) -> None:
    sources = make_folder(tmp_path / "disc", studies=2, series=2, instances=3)
    progress: list[tuple[int, int]] = []
    report = import_paths(store, [tmp_path / "disc"], progress=lambda d, t: progress.append((d, t)))
    assert sorted(report.imported) == sorted(str(p) for p in sources)
    assert not (report.rejected or report.conflicts or report.already_present)
    assert progress[-1] == (12, 12) and [d for d, _ in progress] == list(range(1, 13))

    studies = list_studies(store)
    assert [s.study_instance_uid for s in studies] == [uid(1), uid(2)] or len(studies) == 2
    by_uid = {s.study_instance_uid: s for s in studies}
    one = by_uid[uid(1)]
    assert (one.patient_name, one.patient_id, one.birth_date, one.sex) == (
        "PATIENT^1",
        "P1",
        "19600101",
        "F",
    )
    assert (one.study_date, one.study_time, one.accession_number, one.study_description) == (
        "20240102",
        "101500",
        "ACC1",
        "Study 1",
    )
    assert (one.modalities, one.num_series, one.num_instances) == (("CT",), 2, 6)
    series = list_series(store, uid(1))
    assert [(s.series_number, s.num_instances) for s in series] == [(1, 3), (2, 3)]

    instances = series_instances(store, uid(1, 2))
    assert [i.instance_number for i in instances] == [1, 2, 3]
    assert instances[0].image_position == (0.0, 0.0, 1.0)
    assert instances[0].image_orientation == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    assert (instances[0].rows, instances[0].columns) == (8, 8)
    for inst in instances:
        source = tmp_path / "disc" / "S1" / "SE2" / f"IM{inst.instance_number}"
        assert inst.path.read_bytes() == source.read_bytes()  # the bytes as received
        rel = inst.path.relative_to(store.root).as_posix()
        assert is_managed_relpath(rel)  # a hash, never a UID or a name from the file
    assert len(_managed_files(store)) == 12
    assert list((store.root / "tmp").iterdir()) == []
    assert check(store).ok


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_managed_names_never_come_from_file_values(store: Store, tmp_path: Path) -> None:
    ds = make_dataset()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3/../../../evil"
    ds.PatientName = "../../etc/passwd"
    report = import_paths(store, [write(tmp_path / "x.dcm", ds)])
    assert report.imported
    (only,) = _managed_files(store)
    assert re.fullmatch(r"[0-9a-f]{64}\.dcm", only.name)
    assert only.parent.parent == store.files_dir


def test_same_file_again_is_already_present(store: Store, tmp_path: Path) -> None:
    make_folder(tmp_path / "disc", studies=1, series=1, instances=4)
    first = import_paths(store, [tmp_path / "disc"])
    again = import_paths(store, [tmp_path / "disc"])
    assert len(first.imported) == 4
    assert again.imported == [] and len(again.already_present) == 4
    assert len(_managed_files(store)) == 4
    assert list_studies(store)[0].num_instances == 4


def test_same_dataset_with_rewritten_meta_is_already_present(store: Store, tmp_path: Path) -> None:
    ds = make_dataset()
    original = write(tmp_path / "a.dcm", ds)
    ds.file_meta.ImplementationClassUID = "1.2.3.4.5.6"
    ds.file_meta.ImplementationVersionName = "OTHER_WRITER"
    ds.file_meta.SourceApplicationEntityTitle = "MODALITY1"
    rewritten = write(tmp_path / "b.dcm", ds)
    assert original.read_bytes() != rewritten.read_bytes()
    assert dataset_part(original.read_bytes()) == dataset_part(rewritten.read_bytes())

    import_paths(store, [original])
    report = import_paths(store, [rewritten])
    assert report.already_present == [str(rewritten)] and not report.conflicts
    (kept,) = _managed_files(store)
    assert kept.read_bytes() == original.read_bytes()


def test_different_dataset_with_same_uid_is_a_conflict_and_the_first_stays(
    store: Store, tmp_path: Path
) -> None:
    first = write(tmp_path / "first.dcm", make_dataset(pixel_seed=1))
    second = write(tmp_path / "second.dcm", make_dataset(pixel_seed=2))
    import_paths(store, [first])
    report = import_paths(store, [second])
    assert report.imported == [] and report.already_present == []
    (conflict,) = report.conflicts
    assert conflict.path == str(second)
    assert uid(1, 1, 1) in conflict.problem and "different content" in conflict.problem
    (kept,) = _managed_files(store)
    assert kept.read_bytes() == first.read_bytes()
    assert check(store).ok


def test_conflict_inside_one_import(store: Store, tmp_path: Path) -> None:
    a = write(tmp_path / "a" / "1.dcm", make_dataset(pixel_seed=1))
    b = write(tmp_path / "b" / "1.dcm", make_dataset(pixel_seed=2))
    c = write(tmp_path / "c" / "1.dcm", make_dataset(pixel_seed=1))
    report = import_paths(store, [a, b, c])
    assert report.imported == [str(a)]
    assert [p.path for p in report.conflicts] == [str(b)]
    assert report.already_present == [str(c)]


def test_every_rejected_file_is_listed_with_its_reason(store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "disc"
    good = write(folder / "GOOD", make_dataset())
    (folder / "README.TXT").write_text("Patient CD\n")
    (folder / "EMPTY").write_bytes(b"")
    whole = to_bytes(make_dataset(instance=2))
    (folder / "TRUNC").write_bytes(whole[:140])  # DICM and half an element of the meta
    no_uid = make_dataset(instance=3)
    del no_uid.SOPInstanceUID
    write(folder / "NOUID", no_uid)
    no_series = make_dataset(instance=4)
    del no_series.SeriesInstanceUID
    write(folder / "NOSERIES", no_series)
    dicomdir = Path(pydicom.data.__file__).parent / "test_files" / "dicomdirtests" / "DICOMDIR"
    (folder / "DICOMDIR").write_bytes(dicomdir.read_bytes())
    if hasattr(os, "mkfifo"):
        os.mkfifo(folder / "FIFO")  # opening it for reading would block forever

    report = import_paths(store, [folder, tmp_path / "nowhere"])
    assert report.imported == [str(good)]
    reasons = {Path(p.path).name: p.problem for p in report.rejected}
    assert "not a DICOM file" in reasons["EMPTY"]  # perhaps an instance lost in copying
    assert "truncated" in reasons["TRUNC"]
    assert "no SOP Instance UID" in reasons["NOUID"]
    assert "no Series Instance UID" in reasons["NOSERIES"]
    assert reasons["nowhere"] == "no such file or folder"
    if hasattr(os, "mkfifo"):
        assert reasons["FIFO"] == "not a regular file"
    assert len(report.rejected) == 5 + hasattr(os, "mkfifo")
    # A folder's other files are no instance and nothing wrong: listed apart, not rejected.
    skipped = {Path(p.path).name: p.problem for p in report.skipped}
    assert skipped.keys() == {"README.TXT", "DICOMDIR"}
    assert "not a DICOM file" in skipped["README.TXT"] and "DICOMDIR" in skipped["DICOMDIR"]
    assert list(store.tmp_dir.iterdir()) == []
    assert check(store).ok


def test_a_healthy_pdi_disc_imports_without_a_rejection_and_again(
    store: Store, tmp_path: Path
) -> None:
    """Our own media (DICOMDIR, README.TXT, INDEX.HTM, IHE_PDI pictures): every instance
    kept, the rest skipped, ok; once more, already present and still ok (the DICOMDIR used to
    be 'rejected' at every import)."""
    from viewer.media.writer import write_media

    sources = make_folder(tmp_path / "src", studies=1, series=2, instances=2)
    write_media(sources, tmp_path / "disc")
    first = import_paths(store, [tmp_path / "disc"])
    assert first.ok and first.rejected == [] and len(first.imported) == 4
    names = {Path(p.path).name for p in first.skipped}
    assert {"DICOMDIR", "README.TXT", "INDEX.HTM"} <= names
    again = import_paths(store, [tmp_path / "disc"])
    assert again.ok and again.rejected == [] and len(again.already_present) == 4
    assert len(again.skipped) == len(first.skipped)


def test_a_file_named_by_itself_that_is_no_dicom_is_rejected(store: Store, tmp_path: Path) -> None:
    readme = tmp_path / "README.TXT"
    readme.write_text("Patient CD\n")
    report = import_paths(store, [readme])
    assert not report.ok and [p.path for p in report.rejected] == [str(readme)]
    assert report.skipped == []


def test_executable_preamble_is_replaced_by_zeros(store: Store, tmp_path: Path) -> None:
    data = bytearray(to_bytes(make_dataset()))
    data[:128] = b"MZ\x90\x00" + bytes(124)
    path = tmp_path / "polyglot.dcm"
    path.write_bytes(bytes(data))
    report = import_paths(store, [path])
    assert report.imported == [str(path)]
    (warning,) = report.warnings
    assert "CVE-2019-11687" in warning.problem and "PE" in warning.problem
    (kept,) = _managed_files(store)
    stored = kept.read_bytes()
    assert stored[:128] == bytes(128)
    assert stored[128:] == bytes(data[128:])


def test_bare_dataset_gets_a_file_meta_and_keeps_its_bytes(store: Store, tmp_path: Path) -> None:
    ds = make_dataset()
    bare = bare_implicit(ds)
    path = tmp_path / "IM0001"
    path.write_bytes(bare)
    report = import_paths(store, [path])
    assert report.imported == [str(path)], report.rejected
    (kept,) = _managed_files(store)
    stored = kept.read_bytes()
    assert stored[128:132] == b"DICM" and stored[:128] == bytes(128)
    assert dataset_part(stored) == bare
    back = pydicom.dcmread(kept)
    assert back.file_meta.TransferSyntaxUID == pydicom.uid.ImplicitVRLittleEndian
    assert back.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert back.PatientName == "DOE^JANE"
    # the same data set from a proper Part 10 file is the same instance
    again = import_paths(store, [write(tmp_path / "p10.dcm", ds)])
    assert again.conflicts or again.already_present  # explicit VR bytes differ: a conflict
    assert (
        series_instances(store, uid(1, 1))[0].transfer_syntax_uid
        == pydicom.uid.ImplicitVRLittleEndian
    )


def test_cancel_leaves_a_consistent_store_and_a_rerun_completes(
    store: Store, tmp_path: Path
) -> None:
    make_folder(tmp_path / "disc", studies=2, series=2, instances=5)  # 20 files
    cancel = threading.Event()

    def progress(done: int, total: int) -> None:
        if done == 3:
            cancel.set()

    report = import_paths(store, [tmp_path / "disc"], cancel=cancel, progress=progress)
    assert report.cancelled and 0 < report.not_processed < 20
    processed = len(report.imported)
    assert processed + report.not_processed == 20
    assert check(store).ok
    assert sum(s.num_instances for s in list_studies(store)) == processed
    rerun = import_paths(store, [tmp_path / "disc"])
    assert len(rerun.already_present) == processed
    assert len(rerun.imported) == 20 - processed
    assert sum(s.num_instances for s in list_studies(store)) == 20
    assert check(store).ok


def test_network_bytes_and_datasets_take_the_same_path(store: Store, tmp_path: Path) -> None:
    ds = make_dataset()
    on_disc = write(tmp_path / "a.dcm", ds)
    import_paths(store, [on_disc])
    # a network transfer rewrites the meta: the same instance
    ds.file_meta.ImplementationClassUID = "1.2.826.0.1.3680043.9.3811.2.0.2"
    ds.file_meta.SourceApplicationEntityTitle = "PACS"
    net = import_bytes(store, to_bytes(ds), source="PACS")
    assert net.already_present == ["PACS"]

    other = make_dataset(instance=7)
    del other.file_meta  # as a storage SCP may hand it over
    result = import_dataset(store, other, source="SCANNER")
    assert result.imported == ["SCANNER"], result.rejected
    (inst,) = [i for i in series_instances(store, uid(1, 1)) if i.instance_number == 7]
    stored = pydicom.dcmread(inst.path)
    assert stored.preamble == bytes(128)
    assert stored.SOPInstanceUID == uid(1, 1, 7)

    garbage = import_bytes(store, b"\x00" * 10, source="peer")
    assert garbage.rejected and garbage.rejected[0].path == "peer"


def test_character_sets_are_stored_as_text(store: Store) -> None:
    folder = Path(pydicom.data.__file__).parent / "charset_files"
    names = ["chrH31.dcm", "chrGreek.dcm", "chrRuss.dcm", "chrX1.dcm"]
    report = import_paths(store, [folder / n for n in names])
    assert len(report.imported) == 4, report.rejected
    stored = {s.patient_name for s in list_studies(store)}
    for name in names:
        expected = str(pydicom.dcmread(folder / name).PatientName)
        assert expected in stored
    assert "Yamada^Tarou=山田^太郎=やまだ^たろう" in stored
    assert any("Διονυσιος" in n for n in stored)


TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"


def test_real_files_from_pydicom(store: Store) -> None:
    names = [
        "CT_small.dcm",
        "MR_small.dcm",
        "JPEG2000.dcm",
        "rtplan.dcm",
        "ExplVR_BigEnd.dcm",
        "image_dfl.dcm",
        "ExplVR_LitEndNoMeta.dcm",
    ]
    paths = [TEST_FILES / n for n in names]
    report = import_paths(store, paths)
    assert len(report.imported) == len(names), report.rejected
    for path in paths:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        (stored,) = [
            i
            for i in series_instances(store, ds.SeriesInstanceUID)
            if i.sop_instance_uid == ds.SOPInstanceUID
        ]
        if path.name == "ExplVR_LitEndNoMeta.dcm":
            assert dataset_part(stored.path.read_bytes()) == path.read_bytes()
        else:
            assert stored.path.read_bytes() == path.read_bytes()
    # the same MR instance re-encoded in another transfer syntax: a conflict, the first stays
    again = import_paths(store, [TEST_FILES / "MR_small_implicit.dcm"])
    assert len(again.conflicts) == 1 and not again.imported
    assert check(store).ok


def test_two_stores_are_independent(tmp_path: Path) -> None:
    with Store.open(tmp_path / "a") as a, Store.open(tmp_path / "b") as b:
        import_paths(a, [write(tmp_path / "x.dcm", make_dataset())])
        assert len(list_studies(a)) == 1 and list_studies(b) == []


@pytest.mark.parametrize("batch", [1, 3])
def test_small_batches(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    from viewer.store import importer

    monkeypatch.setattr(importer, "BATCH_FILES", batch)
    make_folder(tmp_path / "disc", studies=1, series=2, instances=4)
    report = import_paths(store, [tmp_path / "disc"])
    assert len(report.imported) == 8
    assert check(store).ok


def _explicit(tag: int, vr: bytes, value: bytes) -> bytes:
    head = tag.to_bytes(4, "big")
    head = head[1::-1] + head[:1:-1]  # group, element: each little endian
    if vr in (b"OB", b"SQ", b"UN"):
        return head + vr + b"\0\0" + len(value).to_bytes(4, "little") + value
    return head + vr + len(value).to_bytes(2, "little") + value


def _hostile(tmp_path: Path, name: str, tail: bytes, instance: int) -> Path:
    ds = make_dataset(instance=instance)
    del ds.PixelData  # the hostile element comes last
    for kw in (
        "Rows",
        "Columns",
        "SamplesPerPixel",
        "PhotometricInterpretation",
        "BitsAllocated",
        "BitsStored",
        "HighBit",
        "PixelRepresentation",
    ):
        delattr(ds, kw)
    path = tmp_path / name
    path.write_bytes(to_bytes(ds) + tail)
    return path


def _nested(depth: int) -> bytes:
    seq = (0x0040A730).to_bytes(4, "big")
    seq = seq[1::-1] + seq[:1:-1] + b"SQ\0\0\xff\xff\xff\xff"
    item = b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
    close = b"\xfe\xff\x0d\xe0\0\0\0\0" + b"\xfe\xff\xdd\xe0\0\0\0\0"
    return (seq + item) * depth + close * depth


@pytest.mark.parametrize("depth", [3000, 20000])
def test_hostile_files_are_listed_never_fatal(store: Store, tmp_path: Path, depth: int) -> None:
    deep = _hostile(tmp_path, "DEEP", _nested(depth), 1)
    huge = _hostile(
        tmp_path,
        "HUGE",
        _explicit(0x00291010, b"OB", b"")[:-4] + (0xFFFFFFF0).to_bytes(4, "little") + b"\1" * 64,
        2,
    )
    good = write(tmp_path / "GOOD", make_dataset(instance=3))
    report = import_paths(store, [deep, huge, good])
    assert str(good) in report.imported
    for path in (deep, huge):
        imported = str(path) in report.imported
        rejected = [p.problem for p in report.rejected if p.path == str(path)]
        warned = [p.problem for p in report.warnings if p.path == str(path)]
        # either kept with a warning that says what is wrong with it, or refused with a reason
        assert (imported and warned) or (not imported and rejected and rejected[0]), (
            report.imported,
            report.rejected,
            report.warnings,
        )
    assert check(store).ok
    assert list(store.tmp_dir.iterdir()) == []


def test_hard_cases(store: Store, shared_data: Path) -> None:
    hard = shared_data / "hard"
    report = import_paths(store, [hard])
    assert sorted(Path(p).name for p in report.imported) == ["MR1_JPLY", "NM1_JPLY"]
    reasons = {Path(p.path).name: p.problem for p in report.rejected}
    # an ACR-NEMA style file and a fragment without study: refused, saying what is missing
    assert reasons["GH340.dcm"].startswith("no SOP Class UID")
    assert reasons["multiframe.dcm"].startswith("no Study Instance UID")
    assert check(store).ok


def test_real_scanner_series(store: Store, shared_data: Path) -> None:
    folder = shared_data / "dcm_qa_nih"
    if not folder.is_dir():
        pytest.skip("dcm_qa_nih is not in the shared data")
    files = [p for p in folder.rglob("*") if p.is_file()]
    report = import_paths(store, [folder])
    assert len(report.imported) + len(report.rejected) + len(report.already_present) == len(files)
    dicom = [p for p in report.rejected if "not a DICOM file" not in p.problem]
    assert dicom == []
    assert sum(s.num_instances for s in list_studies(store)) == len(report.imported) >= 150
    assert check(store).ok


def test_a_dicomdir_named_directly_imports_what_it_references(store: Store) -> None:
    from viewer.media.scan import scan

    dicomdir = TEST_FILES / "dicomdirtests" / "DICOMDIR"
    expected = {str(i.path) for i in scan(dicomdir).instances}
    report = import_paths(store, [dicomdir])
    assert set(report.imported) == expected and len(expected) == 31
    assert not report.rejected
    assert sum(s.num_instances for s in list_studies(store)) == 31


def test_the_store_never_imports_itself(store: Store, tmp_path: Path) -> None:
    import_paths(store, [write(tmp_path / "a.dcm", make_dataset())])
    report = import_paths(store, [store.root, store.files_dir])
    assert [p.problem for p in report.rejected] == ["inside the store itself"] * 2
    home = store.root.parent  # app_home holds the store: walking it skips the store
    (home / "extra").mkdir()
    write(home / "extra" / "b.dcm", make_dataset(instance=2))
    report = import_paths(store, [home])
    assert report.imported == [str(home / "extra" / "b.dcm")] and not report.already_present


def test_many_single_imports_do_not_leak_connections(store: Store) -> None:
    for i in range(1, 30):
        assert import_bytes(store, to_bytes(make_dataset(instance=i))).imported
    assert len(store._connections) == 1  # only this thread's


def test_a_store_locked_too_long_is_a_clear_error(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from viewer.store import StoreError, schema

    blocker = sqlite3.connect(store.db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    monkeypatch.setattr(schema, "BUSY_TIMEOUT_MS", 200)
    with Store.open(store.root) as impatient:
        impatient.connection().execute("PRAGMA busy_timeout = 200")
        with pytest.raises(StoreError, match="locked by another process"):
            import_paths(impatient, [write(tmp_path / "a.dcm", make_dataset())])
        assert list(impatient.tmp_dir.iterdir()) == []
    blocker.execute("ROLLBACK")
    blocker.close()
    assert check(store).ok and list_studies(store) == []
