"""Stacks: one per series, sorted along the slice normal (PS3.3 C.7.6.2.1.1), else by number."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pydicom
import pytest

from viewer import model
from viewer.imaging.stack import build_stacks, slice_normal, sort_instances
from viewer.media.scan import scan

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def inst(
    name: str,
    *,
    series: str = "1.2.3",
    number: int | None = None,
    position: tuple[float, float, float] | None = None,
    orientation: tuple[float, float, float, float, float, float] | None = AXIAL,
    frames: int = 1,
) -> model.Instance:
    return model.Instance(
        path=Path(f"/data/{name}"),
        sop_instance_uid=f"1.2.840.99.{name}",
        series_instance_uid=series,
        instance_number=number,
        number_of_frames=frames,
        rows=4,
        columns=4,
        image_position=position,
        image_orientation=orientation,
    )


def names(instances: list[model.Instance]) -> list[str]:
    return [i.path.name for i in instances]


def test_shuffled_axial_positions_sort_by_z_not_by_number_or_name() -> None:
    rng = random.Random(7)
    zs = list(range(20))
    items = [inst(f"f{(7 * z) % 20:02d}", number=20 - z, position=(0.0, 0.0, z * 2.5)) for z in zs]
    rng.shuffle(items)
    ordered = sort_instances(items)
    assert [i.image_position[2] for i in ordered] == [z * 2.5 for z in zs]  # type: ignore[index]
    # The instance numbers run the other way: geometry wins over them.
    assert [i.instance_number for i in ordered] == list(range(20, 0, -1))


def test_oblique_series_sorts_along_its_normal_not_along_z() -> None:
    theta = math.radians(35.0)
    row = (1.0, 0.0, 0.0)
    col = (0.0, math.cos(theta), math.sin(theta))
    normal = np.cross(row, col)
    rng = random.Random(3)
    items = []
    for k in range(15):
        # Slide each slice within its own plane by a large random amount: its normal distance
        # stays k * 1.5 mm, while its z (and so a z sort) is scrambled.
        shift = rng.uniform(-60.0, 60.0)
        pos = tuple(float(v) for v in k * 1.5 * normal + shift * np.array(col))
        items.append(inst(f"s{k:02d}", number=None, position=pos, orientation=(*row, *col)))  # type: ignore[arg-type]
    shuffled = items[:]
    rng.shuffle(shuffled)
    ordered = sort_instances(shuffled)
    assert names(ordered) == [f"s{k:02d}" for k in range(15)]
    by_z = sorted(items, key=lambda i: i.image_position[2])  # type: ignore[index]
    assert names(by_z) != names(ordered), "the test must tell the normal from z"


def test_missing_position_falls_back_to_instance_number() -> None:
    items = [inst(f"a{n}", number=n, position=(0.0, 0.0, -float(n))) for n in (3, 1, 2, 4)]
    items[2].image_position = None
    assert [i.instance_number for i in sort_instances(items)] == [1, 2, 3, 4]


def test_mixed_orientations_fall_back_to_instance_number() -> None:
    sagittal = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
    items = [
        inst("loc1", number=2, position=(0.0, 0.0, 5.0)),
        inst("loc2", number=1, position=(0.0, 0.0, 9.0), orientation=sagittal),
        inst("loc3", number=3, position=(0.0, 0.0, 1.0)),
    ]
    assert names(sort_instances(items)) == ["loc2", "loc1", "loc3"]


def test_no_geometry_no_numbers_sorts_by_path() -> None:
    items = [inst(n, orientation=None) for n in ("c", "a", "b")]
    assert names(sort_instances(items)) == ["a", "b", "c"]


def test_degenerate_orientation_is_not_geometry() -> None:
    assert slice_normal((1.0, 0.0, 0.0, 1.0, 0.0, 0.0)) is None
    items = [
        inst("x", number=2, position=(0.0, 0.0, 1.0), orientation=(1, 0, 0, 1, 0, 0)),
        inst("y", number=1, position=(0.0, 0.0, 2.0), orientation=(1, 0, 0, 1, 0, 0)),
    ]
    assert names(sort_instances(items)) == ["y", "x"]


def test_one_stack_per_series_multiframe_alone_ordered_by_series_number() -> None:
    items = [
        inst("b2", series="S-B", number=2),
        inst("a1", series="S-A", number=1),
        inst("cine", series="S-B", number=3, frames=5),
        inst("b1", series="S-B", number=1),
        inst("nonum", series="S-C", number=1),
    ]
    series = [
        model.Series("S-A", modality="CT", series_number=7, series_description="late"),
        model.Series("S-B", modality="US", series_number=2, series_description="early"),
    ]
    stacks = build_stacks(items, series=series)
    assert [(s.series_instance_uid, len(s.frames)) for s in stacks] == [
        ("S-B", 2),
        ("S-B", 5),
        ("S-A", 1),
        ("S-C", 1),
    ]
    b, cine, a, c = stacks
    assert [f.path.name for f in b.frames] == ["b1", "b2"]
    assert [f.frame_index for f in cine.frames] == [0, 1, 2, 3, 4]
    assert {f.path.name for f in cine.frames} == {"cine"}
    assert b.key != cine.key
    assert (b.modality, b.series_number, b.series_description) == ("US", 2, "early")
    assert (a.modality, a.series_number) == ("CT", 7)
    assert c.series_number is None and c.modality == ""


def test_non_image_instances_make_no_stack() -> None:
    report = inst("sr", series="S-SR", number=1)
    report.rows = report.columns = 0
    assert (
        build_stacks([report, inst("img", series="S-I", number=1)])[0].series_instance_uid == "S-I"
    )
    assert len(build_stacks([report])) == 0


@pytest.fixture(scope="module")
def nih_stacks(shared_data: Path) -> list:  # type: ignore[type-arg]
    folder = shared_data / "dcm_qa_nih"
    if not folder.is_dir():
        pytest.fail(f"{folder} is missing from the shared data")
    result = scan(folder)
    assert not result.problems
    return build_stacks(result.instances, series=result.series())


def test_real_ge_fmri_series_runs_volume_by_volume_along_its_normal(
    nih_stacks: list,  # type: ignore[type-arg]
) -> None:
    ge = max(nih_stacks, key=len)
    assert len(ge) == 150
    assert ge.modality == "MR" and ge.series_number == 4
    # Independent check from the files themselves (numpy on each file's own header): this fMRI
    # series holds 10 volumes of 15 positions; each volume must step evenly up the normal.
    distances = []
    numbers = []
    for ref in ge.frames:
        ds = pydicom.dcmread(ref.path, stop_before_pixels=True)
        iop = np.array(ds.ImageOrientationPatient, float)
        normal = np.cross(iop[:3], iop[3:])
        distances.append(float(np.dot(normal, np.array(ds.ImagePositionPatient, float))))
        numbers.append(int(ds.InstanceNumber))
    volumes = np.array(distances).reshape(10, 15)
    steps = np.diff(volumes, axis=1)
    assert np.all(steps > 0)
    assert np.allclose(steps, steps[0, 0], atol=1e-3)
    assert np.allclose(volumes, volumes[0], atol=1e-3)
    # Within each position, the volumes follow Instance Number.
    by_position = np.array(numbers).reshape(10, 15)
    assert np.all(np.diff(by_position, axis=0) > 0)


def test_repeated_positions_with_uneven_counts_sort_by_position_then_number() -> None:
    items = [
        inst("p1a", number=4, position=(0.0, 0.0, 1.0)),
        inst("p0a", number=3, position=(0.0, 0.0, 0.0)),
        inst("p0b", number=1, position=(0.0, 0.0, 0.0)),
        inst("p2", number=2, position=(0.0, 0.0, 2.0)),
    ]
    assert names(sort_instances(items)) == ["p0b", "p0a", "p1a", "p2"]


def test_two_volumes_interleave_volume_by_volume() -> None:
    items = [
        inst(f"t{t}z{z}", number=10 * t + (2 - z), position=(0.0, 0.0, float(z)))
        for t in (1, 0)
        for z in (2, 0, 1)
    ]
    assert names(sort_instances(items)) == ["t0z0", "t0z1", "t0z2", "t1z0", "t1z1", "t1z2"]


# -- routing every object: images to stacks, the rest to documents of their kind --------------


def _object(uid: str, sop_class: str, *, series: str = "S1", number: int = 1) -> model.Instance:
    pixels = sop_class == "1.2.840.10008.5.1.4.1.1.2"
    return model.Instance(
        path=Path(f"/disc/{uid}"),
        sop_instance_uid=uid,
        sop_class_uid=sop_class,
        series_instance_uid=series,
        instance_number=number,
        rows=64 if pixels else 0,
        columns=64 if pixels else 0,
    )


def test_every_object_is_routed_and_none_dropped() -> None:
    from viewer.imaging.stack import ObjectKind, route

    objects = [
        _object("ct1", "1.2.840.10008.5.1.4.1.1.2", number=2),
        _object("ct2", "1.2.840.10008.5.1.4.1.1.2", number=1),
        _object("sr", "1.2.840.10008.5.1.4.1.1.88.33", series="S2"),  # Comprehensive SR
        _object("pdf", "1.2.840.10008.5.1.4.1.1.104.1", series="S3"),
        _object("gsps", "1.2.840.10008.5.1.4.1.1.11.1", series="S4"),
        _object("ko", "1.2.840.10008.5.1.4.1.1.88.59", series="S5"),  # not an SR to a reader
        _object("ecg", "1.2.840.10008.5.1.4.1.1.9.1.1", series="S6"),  # 12-lead ECG
        _object("plan", "1.2.840.10008.5.1.4.1.1.481.5", series="S7"),  # RT Plan: no pixels
    ]
    series = [
        model.Series("S1", "CT", 1),
        model.Series("S2", "SR", 9, "Report"),
        model.Series("S3", "DOC", 3),
        model.Series("S4", "PR", 4),
        model.Series("S5", "KO", 5),
        model.Series("S6", "ECG", 6),
    ]
    routed = route(objects, series=series)
    (stack,) = routed.stacks
    assert [f.instance.sop_instance_uid for f in stack.frames] == ["ct2", "ct1"]
    kinds = {d.instance.sop_instance_uid: d.kind for d in routed.documents}
    assert kinds == {
        "sr": ObjectKind.STRUCTURED_REPORT,
        "pdf": ObjectKind.PDF,
        "gsps": ObjectKind.PRESENTATION_STATE,
        "ko": ObjectKind.KEY_OBJECTS,
        "ecg": ObjectKind.WAVEFORM,
        "plan": ObjectKind.OTHER,
    }
    # in series-number order, those without a known series last
    assert [d.instance.sop_instance_uid for d in routed.documents] == [
        "pdf",
        "gsps",
        "ko",
        "ecg",
        "sr",
        "plan",
    ]
    (report,) = routed.of_kind(ObjectKind.STRUCTURED_REPORT)
    assert (report.modality, report.series_number, report.series_description) == (
        "SR",
        9,
        "Report",
    )
    assert len(routed.stacks) + len(routed.documents) == len(objects) - 1  # two CT: one stack


def test_a_disc_with_a_report_and_an_ecg_lists_them(tmp_path: Path) -> None:
    import shutil

    from pydicom.data import get_testdata_file

    from viewer.imaging.stack import ObjectKind, route

    for name in ("test-SR.dcm", "waveform_ecg.dcm", "CT_small.dcm"):
        shutil.copy(get_testdata_file(name), tmp_path / name)
    result = scan(tmp_path)
    routed = route(result.instances, series=result.series())
    assert len(routed.stacks) == 1
    assert {d.kind for d in routed.documents} == {
        ObjectKind.STRUCTURED_REPORT,
        ObjectKind.WAVEFORM,
    }
