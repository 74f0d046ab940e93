"""The store's part of the command line: the ``store ls --json`` shape and the summaries."""

from __future__ import annotations

import json
from pathlib import Path

from tests.store.dicomfiles import make_dataset, make_folder, uid, write
from viewer.media.listing import listing_text
from viewer.store import (
    Store,
    check,
    delete_uid,
    import_paths,
    series_instances,
)
from viewer.store.commands import (
    check_summary,
    delete_summary,
    import_summary,
    listing,
)


def test_listing_json_shape(store: Store, tmp_path: Path) -> None:
    make_folder(tmp_path / "disc", studies=1, series=2, instances=2)
    ds = make_dataset(2, 1, 1, patient_id="")
    del ds.PatientID
    del ds.StudyDescription
    del ds.SeriesNumber
    write(tmp_path / "disc" / "noid.dcm", ds)
    import_paths(store, [tmp_path / "disc"])
    series_instances(store, uid(1, 2))[0].path.unlink()

    data = json.loads(json.dumps(listing(store)))
    assert set(data) == {"patients", "problems"}
    by_id = {p["patient_id"]: p for p in data["patients"]}
    assert set(by_id) == {"P1", None}
    (study,) = by_id["P1"]["studies"]
    assert by_id["P1"]["patient_name"] == "PATIENT^1"
    assert study == {
        "study_instance_uid": uid(1),
        "study_date": "20240102",
        "study_description": "Study 1",
        "series": [
            {
                "series_instance_uid": uid(1, 1),
                "modality": "CT",
                "series_number": 1,
                "series_description": "Series 1",
                "instances": 2,
            },
            {
                "series_instance_uid": uid(1, 2),
                "modality": "CT",
                "series_number": 2,
                "series_description": "Series 2",
                "instances": 1,
            },  # one file is missing
        ],
    }
    (other,) = by_id[None]["studies"]
    assert other["study_description"] is None
    assert other["series"][0]["series_number"] is None
    (problem,) = data["problems"]
    assert problem["problem"] == "in the index, but the file is missing"

    text = listing_text(data)
    assert "PATIENT, 1  [P1]" in text and "(no name)" not in text
    assert "#2 CT Series 2  (1 instance)" in text and "1 problem(s):" in text


def test_summaries(store: Store, tmp_path: Path) -> None:
    make_folder(tmp_path / "disc", studies=1, series=1, instances=2)
    (tmp_path / "disc" / "README.TXT").write_text("hello")
    first = import_paths(store, [tmp_path / "disc"])
    text = import_summary(first)
    assert text.splitlines() == [
        "imported: 2",
        "already present: 0",
        "conflicts: 0",
        "rejected: 0",
        "other files (no DICOM instance, not imported): 1",
    ]
    assert "already present: 2" in import_summary(import_paths(store, [tmp_path / "disc"]))

    series_instances(store, uid(1, 1))[0].path.unlink()
    found = check_summary(check(store))
    assert "1 problem(s):" in found and "repaired" not in found
    fixed = check_summary(check(store, repair=True))
    assert "repaired 1:" in fixed and "no problems remain" in fixed
    assert check_summary(check(store)).endswith("no problems")

    result = delete_uid(store, uid(1))
    assert delete_summary(uid(1), result) == (
        f"deleted study {uid(1)}: 1 instance(s), 1 file(s) removed"
    )
    assert listing_text(listing(store)) == "(empty)"
