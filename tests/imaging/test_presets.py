"""A reader's own window presets per modality (viewer.imaging.presets)."""

from __future__ import annotations

from pathlib import Path

from viewer.imaging import presets
from viewer.imaging.display import Window


def test_saved_presets_come_back_per_modality(tmp_path: Path) -> None:
    path = tmp_path / "presets.json"
    presets.save_preset("MR", "Brain T2", Window(350, 700), path)
    presets.save_preset("PT", "SUV 0-6", Window(3, 6), path)
    presets.save_preset("MR", "Brain T2", Window(300, 600), path)  # same name: replaced
    loaded = presets.load(path)
    assert loaded["MR"] == [Window(300, 600, explanation="Brain T2")]
    assert loaded["PT"] == [Window(3, 6, explanation="SUV 0-6")]
    assert [p.name for p in tmp_path.iterdir()] == ["presets.json"]  # no temporary left


def test_a_damaged_file_is_no_presets_and_a_bad_entry_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "presets.json"
    path.write_text("{not json")
    assert presets.load(path) == {}
    path.write_text(
        '{"MR": [{"name": "ok", "center": 1, "width": 2}, {"name": "bad", "center": 1,'
        ' "width": -5}, "nonsense"], "CT": "nonsense"}'
    )
    assert presets.load(path) == {"MR": [Window(1, 2, explanation="ok")]}
    presets.save_preset("MR", "new", Window(5, 10), path)  # writes over the damage
    assert [w.explanation for w in presets.load(path)["MR"]] == ["ok", "new"]
    assert presets.load(tmp_path / "absent.json") == {}
