"""The reader's settings file (viewer.settings): remembered, written whole, never an error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from viewer import settings


def test_values_are_kept_and_none_removes_one(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    assert settings.load(path) == {}
    settings.update({"last_folder": "/media/cdrom", "layout": [2, 2]}, path=path)
    settings.update({"welcome_shown": True}, path=path)
    assert settings.load(path) == {
        "last_folder": "/media/cdrom",
        "layout": [2, 2],
        "welcome_shown": True,
    }
    settings.update({"layout": None}, path=path)
    assert settings.get("layout", "none", path=path) == "none"
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]  # no temporary left


def test_the_default_file_is_in_the_app_home(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LIGHTBOX_HOME", str(tmp_path / "home"))
    settings.update({"log_level": "DEBUG"})
    assert json.loads((tmp_path / "home" / "settings.json").read_text()) == {"log_level": "DEBUG"}


@pytest.mark.parametrize(
    "content", [b"{not json", b"[1, 2]", b"\xff\xfe", b"{" + b" " * (settings.MAX_BYTES + 1) + b"}"]
)
def test_a_damaged_file_is_an_empty_set_and_is_replaced(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "settings.json"
    path.write_bytes(content)
    assert settings.load(path) == {}
    settings.update({"layout": [1, 2]}, path=path)
    assert settings.load(path) == {"layout": [1, 2]}


def test_an_unwritable_place_raises_oserror_for_the_caller(tmp_path: Path) -> None:
    (tmp_path / "not-a-folder").write_text("")
    with pytest.raises(OSError):
        settings.update({"layout": [3, 3]}, path=tmp_path / "not-a-folder" / "settings.json")
