"""The study list, its filters, series and instances, the model tree, rows without files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.store.dicomfiles import make_dataset, uid, write
from viewer import model
from viewer.store import (
    InstanceRecord,
    Store,
    StudyFilter,
    add_records,
    check,
    import_paths,
    instance_paths,
    list_series,
    list_studies,
    store_tree,
)
from viewer.store.index import wildcard_to_glob

PEOPLE = [
    # study, patient name, patient id, date, modalities of its two series
    (1, "SMITH^JOHN", "AB123", "20240105", ("CT", "CT")),
    (2, "Smith^Anna", "ab124", "20230301", ("MR", "SR")),
    (3, "SMYTHE^JOE", "X[1]", "20240110", ("CR", "CR")),
    (4, "MÜLLER^JÖRG", "M-1", "", ("US", "US")),
    (5, "Yamada^Tarou=山田^太郎=やまだ^たろう", "JP1", "20221231", ("PT", "CT")),
]


@pytest.fixture
def people(store: Store, tmp_path: Path) -> Store:
    for study, name, pid, date, modalities in PEOPLE:
        for series, modality in enumerate(modalities, 1):
            for inst in range(1, series + 1):  # series 1: 1 image, series 2: 2 images
                ds = make_dataset(
                    study,
                    series,
                    inst,
                    patient=name,
                    patient_id=pid,
                    modality=modality,
                    study_date=date,
                )
                write(tmp_path / f"{study}-{series}-{inst}.dcm", ds)
    report = import_paths(store, [tmp_path])
    assert len(report.imported) == 15, report.rejected
    return store


def _names(store: Store, **kwargs: str) -> list[str]:
    return [s.patient_name for s in list_studies(store, StudyFilter(**kwargs))]


def test_study_list_columns_and_order(people: Store) -> None:
    studies = list_studies(people)
    assert [s.study_date for s in studies] == [
        "20240110",
        "20240105",
        "20230301",
        "20221231",
        "",
    ]  # newest first, undated last
    smith = next(s for s in studies if s.patient_id == "AB123")
    assert smith.modalities == ("CT",) and (smith.num_series, smith.num_instances) == (2, 3)
    anna = next(s for s in studies if s.patient_id == "ab124")
    assert anna.modalities == ("MR", "SR")
    assert (anna.accession_number, anna.study_description, anna.birth_date) == (
        "ACC2",
        "Study 2",
        "19600101",
    )


def test_name_filter_wildcards_ignore_case(people: Store) -> None:
    assert sorted(_names(people, patient_name="smith*")) == ["SMITH^JOHN", "Smith^Anna"]
    assert _names(people, patient_name="SM?TH*") == ["SMYTHE^JOE", "SMITH^JOHN", "Smith^Anna"]
    assert _names(people, patient_name="sm?the^joe") == ["SMYTHE^JOE"]
    assert _names(people, patient_name="smith") == []  # no wildcard: the whole value
    assert _names(people, patient_name="*john") == ["SMITH^JOHN"]
    assert _names(people, patient_name="müller*") == ["MÜLLER^JÖRG"]  # non-ASCII folds too
    assert _names(people, patient_name="*山田*") == ["Yamada^Tarou=山田^太郎=やまだ^たろう"]
    assert _names(people, patient_name="*") == [s.patient_name for s in list_studies(people)]


def test_id_date_and_modality_filters(people: Store) -> None:
    assert sorted(_names(people, patient_id="ab12?")) == ["SMITH^JOHN", "Smith^Anna"]
    assert _names(people, patient_id="X[1]") == ["SMYTHE^JOE"]  # [ is literal, not a class
    assert _names(people, patient_id="X[1") == []
    assert _names(people, date_from="20240101") == ["SMYTHE^JOE", "SMITH^JOHN"]
    assert _names(people, date_to="20230301") == ["Smith^Anna", _names(people, patient_id="JP1")[0]]
    assert _names(people, date_from="20230101", date_to="20240105") == [
        "SMITH^JOHN",
        "Smith^Anna",
    ]
    assert _names(people, modality="ct") == ["SMITH^JOHN", PEOPLE[4][1]]
    assert _names(people, modality="SR") == ["Smith^Anna"]
    assert _names(people, modality="CT", date_from="20240101") == ["SMITH^JOHN"]
    assert _names(people, modality="MG") == []
    with pytest.raises(ValueError, match="YYYYMMDD"):
        list_studies(people, StudyFilter(date_from="2024-01-01"))


def test_wildcard_translation() -> None:
    assert wildcard_to_glob("Ab*?[x]") == "ab*?[[]x]"


def test_series_and_instances(people: Store) -> None:
    series = list_series(people, uid(2))
    assert [(s.series_number, s.modality, s.num_instances) for s in series] == [
        (1, "MR", 1),
        (2, "SR", 2),
    ]
    paths = instance_paths(people, uid(2, 2))
    assert len(paths) == 2 and all(p.is_file() for p in paths)
    assert list_series(people, uid(99)) == [] and instance_paths(people, uid(99)) == []


def test_store_tree_is_the_model(people: Store) -> None:
    tree = store_tree(people)
    assert all(isinstance(p, model.Patient) for p in tree)
    assert len(tree) == 5
    john = next(p for p in tree if p.patient_id == "AB123")
    (study,) = john.studies
    assert isinstance(study, model.Study) and study.study_instance_uid == uid(1)
    assert [len(s.instances) for s in study.series] == [1, 2]
    inst = study.series[1].instances[0]
    assert isinstance(inst, model.Instance) and inst.path.is_file()
    assert (inst.sop_instance_uid, inst.series_instance_uid) == (uid(1, 2, 1), uid(1, 2))
    assert inst.image_position == (0.0, 0.0, 1.0)


def test_patient_without_id(store: Store, tmp_path: Path) -> None:
    ds = make_dataset(patient_id="")
    del ds.PatientID
    import_paths(store, [write(tmp_path / "a.dcm", ds)])
    (patient,) = store_tree(store)
    assert patient.patient_id is None
    assert list_studies(store)[0].patient_id is None


def test_add_records_without_files(store: Store) -> None:
    sha = "ab" * 32
    rec = InstanceRecord(
        sop_instance_uid="1.2.3.1",
        study_instance_uid="1.2.3",
        series_instance_uid="1.2.3.0",
        path=f"files/ab/{sha}.dcm",
        size=10,
        meta_sha256=sha,
        dataset_sha256=sha,
        patient_name="ROW^ONLY",
        modality="OT",
    )
    assert add_records(store, [rec, rec]) == 1
    (row,) = list_studies(store)
    assert (row.patient_name, row.num_instances) == ("ROW^ONLY", 1)
    report = check(store)  # the row names a file that is not there
    assert [p.problem for p in report.problems] == ["in the index, but the file is missing"]
