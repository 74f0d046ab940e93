"""What the browser has selected, said so that a person knows whose images they are: the
patient and study in a title, and each instance by series and number (never a store's hashed
file name)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Selection:
    title: str = ""
    """``NAME (ID ...) · DATE DESCRIPTION``; empty when nothing is selected."""
    items: tuple[tuple[Path, str], ...] = field(default_factory=tuple)
    """(file, label such as ``Se 2 CT · Im 14``) in series and instance order."""
    study_instance_uid: str = ""
    """The selected study's UID ("" for loose files)."""
    in_store: bool = False
    """The study is one of the local store's (not an opened disc's or folder's)."""

    @property
    def paths(self) -> list[Path]:
        return [path for path, _ in self.items]

    @classmethod
    def of_paths(cls, paths: Sequence[Path | str], title: str = "") -> Selection:
        """Files known by nothing but their names."""
        return cls(title, tuple((Path(p), Path(p).name) for p in paths))
