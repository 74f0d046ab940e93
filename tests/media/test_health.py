"""viewer.media.health: the report lists what the DICOMDIR promises against what is on the media."""

from __future__ import annotations

import os
import shutil
import struct
import threading
from pathlib import Path

import pytest

from tests.media.test_dicomdir import (
    PYDICOM_DIRS,
    Rec,
    build_dicomdir,
    element,
    image,
    patient,
    series,
    study,
    write_instance,
)
from viewer.media.dicomdir import read_dicomdir
from viewer.media.health import check_media, read_header


def _names(paths: list[Path], root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in paths)


def _problem_paths(problems: list, root: Path) -> list[str]:  # type: ignore[type-arg]
    return sorted(str(Path(p.path).relative_to(root)) for p in problems)


@pytest.fixture()
def bad_media(tmp_path: Path) -> Path:
    """A disc with one of each fault next to good files."""
    root = tmp_path / "media"
    d = root / "DICOM"
    write_instance(d / "GOOD", "1.1")
    write_instance(d / "PE", "1.2", preamble=b"MZ\x90\x00" + b"\x03" * 20)
    write_instance(d / "ELF", "1.3", preamble=b"\x7fELF\x02\x01\x01")
    write_instance(d / "MACHO", "1.4", preamble=b"\xcf\xfa\xed\xfe\x07")
    cut = write_instance(d / "CUT", "1.5")
    cut.write_bytes(cut.read_bytes()[:-10])  # Pixel Data shorter than its length
    write_instance(d / "WRONGUID", "1.6")
    write_instance(d / "EXTRA", "1.7")  # on disc, in no record
    (d / "NOTDICOM").write_bytes(b"this is text, not DICOM\n" * 10)
    (root / "README.TXT").write_text("Made by a test.\n")
    outside = write_instance(tmp_path / "OUTSIDE", "1.9")
    os.symlink(outside, d / "ESCAPE")
    images = [
        image("DICOM\\GOOD", "1.1"),
        image("DICOM\\PE", "1.2"),
        image("DICOM\\ELF", "1.3"),
        image("DICOM\\MACHO", "1.4"),
        image("DICOM\\CUT", "1.5"),
        image("DICOM\\WRONGUID", "9.9.9"),
        image("DICOM\\NOTDICOM", "1.8"),
        image("DICOM\\GONE", "1.10"),
        image("..\\OUTSIDE", "1.9"),
    ]
    build_dicomdir(
        root / "DICOMDIR",
        [patient("P1", "A^B", study("1.2.3.1", series("1.2.3.1.1", *images)))],
    )
    return root


def test_bad_media_report(bad_media: Path) -> None:
    root = bad_media
    report = check_media(root)
    assert report.dicomdir == root / "DICOMDIR"
    assert _names(report.present, root) == sorted(
        f"DICOM/{n}" for n in ("GOOD", "PE", "ELF", "MACHO", "CUT", "WRONGUID", "NOTDICOM")
    )
    assert _names(report.missing, root) == ["DICOM/GONE"]
    assert len(report.referenced) == 8  # the refused one has no path on the media
    assert _names(report.unreferenced, root) == ["DICOM/EXTRA"]
    assert _names(report.other_files, root) == ["README.TXT"]
    assert _problem_paths(report.unreadable, root) == ["DICOM/CUT", "DICOM/NOTDICOM"]
    cut = next(p for p in report.unreadable if p.path.endswith("CUT"))
    assert "truncated" in cut.problem and "(7FE0,0010)" in cut.problem
    assert _problem_paths(report.suspicious_preambles, root) == [
        "DICOM/ELF",
        "DICOM/MACHO",
        "DICOM/PE",
    ]
    pe = next(p for p in report.suspicious_preambles if p.path.endswith("PE"))
    assert "'MZ'" in pe.problem and "CVE-2019-11687" in pe.problem
    (mismatch,) = report.mismatches
    assert mismatch.path.endswith("WRONGUID")
    assert "SOP Instance UID: the DICOMDIR says 9.9.9, the file says 1.6" in mismatch.problem
    refused = "\n".join(str(p) for p in report.refused)
    assert "'..\\\\OUTSIDE'" in refused
    assert "ESCAPE: symbolic link leading outside the media: not followed" in refused
    # Every item is in problems, once.
    everything = "\n".join(str(p) for p in report.problems)
    for needle in ("GONE", "EXTRA", "CUT", "NOTDICOM", "PE", "ELF", "MACHO", "WRONGUID", "ESCAPE"):
        assert needle in everything, needle
    assert "README" not in everything
    assert "GOOD" not in everything


def test_report_reuses_a_dicomdir_already_read(bad_media: Path) -> None:
    result = read_dicomdir(bad_media / "DICOMDIR")
    report = check_media(bad_media / "DICOMDIR", dicomdir=result)
    assert _names(report.missing, bad_media) == ["DICOM/GONE"]
    assert len(report.present) == 7


def test_clean_media_has_no_problems(tmp_path: Path) -> None:
    root = tmp_path / "media"
    for i in (1, 2):
        write_instance(root / "DICOM" / f"IM{i}", f"1.{i}")
    images = [image(f"DICOM\\IM{i}", f"1.{i}") for i in (1, 2)]
    build_dicomdir(
        root / "DICOMDIR", [patient("P1", "A^B", study("1.2.3.1", series("1.2.3.1.1", *images)))]
    )
    report = check_media(root / "DICOMDIR")
    assert report.problems == []
    assert len(report.present) == 2 and report.unreferenced == [] and report.missing == []


def test_pydicom_media(tmp_path: Path) -> None:
    root = tmp_path / "media"
    shutil.copytree(PYDICOM_DIRS, root)
    report = check_media(root / "DICOMDIR")
    assert len(report.present) == 31
    assert report.missing == [] and report.mismatches == [] and report.unreadable == []
    assert report.suspicious_preambles == []
    # The other DICOMDIR variants are directory files, not lost instances; TINY_ALPHA is a
    # second file-set (with its own DICOMDIR) that this DICOMDIR does not reference.
    others = _names(report.other_files, root)
    assert "DICOMDIR-bigEnd" in others and "TINY_ALPHA/DICOMDIR" in others
    unreferenced = _names(report.unreferenced, root)
    assert unreferenced and all(n.startswith("TINY_ALPHA/") for n in unreferenced)


def test_bbmri_media(shared_data: Path) -> None:
    root = shared_data / "dwv" / "bbmri_media"
    report = check_media(root / "bbmri.dcmdir")
    assert len(report.present) == 4
    assert _names(report.unreferenced, root) == ["bbmri-53323707.dcm", "bbmri-53323851.dcm"]
    # Its STUDY record carries a Study Instance UID that none of the files has.
    assert len(report.mismatches) == 4
    assert all("Study Instance UID" in p.problem for p in report.mismatches)


def test_orphan_dicomdir(shared_data: Path) -> None:
    report = check_media(shared_data / "dwv" / "orphan_dicomdir")
    assert len(report.missing) == 44 and report.present == []
    assert sum("but missing" in p.problem for p in report.problems) == 44


def test_folder_without_dicomdir(tmp_path: Path) -> None:
    write_instance(tmp_path / "a" / "IM1", "1.1")
    write_instance(tmp_path / "IM2", "1.2", preamble=b"MZ")
    report = check_media(tmp_path)
    assert report.dicomdir is None
    assert _names(report.unreferenced, tmp_path) == ["IM2", "a/IM1"]
    assert _problem_paths(report.suspicious_preambles, tmp_path) == ["IM2"]
    assert "no usable DICOMDIR" in "\n".join(str(p) for p in report.problems)


def test_broken_dicomdir_is_reported_not_raised(tmp_path: Path) -> None:
    (tmp_path / "DICOMDIR").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")
    write_instance(tmp_path / "IM1", "1.1")
    report = check_media(tmp_path)
    assert any("DICOMDIR" in p.path for p in report.unreadable)
    assert _names(report.unreferenced, tmp_path) == ["IM1"]


def test_huge_length_is_not_allocated(tmp_path: Path) -> None:
    path = write_instance(tmp_path / "IM1", "1.1")
    data = path.read_bytes()
    tag = struct.pack("<HH", 0x0010, 0x0010) + b"PN"
    pos = data.index(tag)
    huge = (
        data[:pos] + struct.pack("<HH", 0x0009, 0x1010) + b"UN\0\0" + struct.pack("<I", 0xFFFFFFF0)
    )
    path.write_bytes(huge + data[pos:])
    header = read_header(path)
    assert header.is_dicom
    assert "4294967280 bytes past the end" in header.problem


@pytest.mark.parametrize("depth", [3000, 20000])
def test_deep_nesting_is_walked(tmp_path: Path, depth: int) -> None:
    path = write_instance(tmp_path / "IM1", "1.1")
    data = path.read_bytes()
    pos = data.index(struct.pack("<HH", 0x0010, 0x0010) + b"PN")
    sq = struct.pack("<HH", 0x0009, 0x1010) + b"SQ\0\0" + struct.pack("<I", 0xFFFFFFFF)
    item = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    close = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    path.write_bytes(data[:pos] + (sq + item) * depth + close * depth + data[pos:])
    header = read_header(path)
    assert header.is_dicom and header.problem == ""
    assert header.values[0x00080018] == "1.1"


def test_file_without_preamble_or_meta_is_dicom(tmp_path: Path) -> None:
    path = write_instance(tmp_path / "IM1", "1.1")
    data = path.read_bytes()
    bare = data[data.index(struct.pack("<HH", 0x0008, 0x0016)) :]
    path.write_bytes(bare)
    header = read_header(path)
    assert header.is_dicom and header.problem == ""
    assert header.values[0x00080018] == "1.1"
    assert element(0x00100010, "PN", b"A").startswith(b"\x10\x00\x10\x00PN")  # builder sanity


def test_progress_and_cancel(bad_media: Path) -> None:
    calls: list[tuple[int, int]] = []
    report = check_media(bad_media, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1][0] == calls[-1][1] > 0
    assert not report.cancelled
    cancel = threading.Event()
    cancel.set()
    report = check_media(bad_media, cancel=cancel)
    assert report.cancelled
    assert "cancelled" in "\n".join(p.problem for p in report.problems)


def test_dirfile_is_not_unreferenced(tmp_path: Path) -> None:
    root = tmp_path / "media"
    write_instance(root / "DICOM" / "ST1" / "IM1", "1.1")
    build_dicomdir(
        root / "DICOM" / "ST1" / "DIRFILE", [series("1.2.3.1.1", image("DICOM\\ST1\\IM1", "1.1"))]
    )
    st: Rec = study("1.2.3.1")
    st.file_id = "DICOM\\ST1\\DIRFILE"
    build_dicomdir(root / "DICOMDIR", [patient("P1", "A^B", st)])
    report = check_media(root)
    assert report.problems == []
    assert _names(report.present, root) == ["DICOM/ST1/IM1"]


def test_fuzzed_files_never_raise(tmp_path: Path) -> None:
    """Random damage to bundled pydicom files: read_header always answers, never raises."""
    import random

    import pydicom

    files = Path(pydicom.__file__).parent / "data" / "test_files"
    names = ["CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm",
             "rtplan.dcm", "image_dfl.dcm"]  # fmt: skip
    sources = [(files / n).read_bytes() for n in names if (files / n).is_file()]
    assert len(sources) >= 5
    rng = random.Random(7)
    target = tmp_path / "F"
    for _ in range(300):
        data = bytearray(rng.choice(sources))
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(data))
            roll = rng.random()
            if roll < 0.6:
                data[i] = rng.randrange(256)
            elif roll < 0.9:
                data[i : i + 4] = rng.choice(
                    [b"\xff\xff\xff\xff", b"\xfe\xff\x00\xe0", b"\xf0\xff\xff\xff"]
                )
            else:
                del data[max(i, 1) :]
        target.write_bytes(bytes(data))
        header = read_header(target)
        assert isinstance(header.problem, str)


def test_link_inside_the_root_counts_its_target_as_referenced(tmp_path: Path) -> None:
    root = tmp_path / "media"
    write_instance(root / "DICOM" / "REAL", "1.1")
    os.symlink(root / "DICOM" / "REAL", root / "DICOM" / "ALIAS")
    os.symlink(root / "DICOM", root / "LINKDIR")
    write_instance(root / "DICOM" / "OTHER", "1.2")
    build_dicomdir(
        root / "DICOMDIR",
        [
            patient(
                "P1",
                "A^B",
                study(
                    "1.2.3.1",
                    series(
                        "1.2.3.1.1", image("DICOM\\ALIAS", "1.1"), image("LINKDIR\\OTHER", "1.2")
                    ),
                ),
            )
        ],
    )
    report = check_media(root)
    assert report.unreferenced == []
    assert report.problems == []
    assert _names(report.present, root) == ["DICOM/ALIAS", "LINKDIR/OTHER"]
