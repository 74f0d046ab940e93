"""The core and the CLI import no Qt: every module outside viewer/qt imports without PySide6."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def core_modules() -> list[str]:
    names = []
    for path in sorted((ROOT / "viewer").rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        if rel.parts[:2] == ("viewer", "qt") or rel.name == "__main__":
            continue
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        names.append(".".join(parts))
    return names


def test_core_imports_without_pyside6() -> None:
    modules = core_modules()
    assert "viewer.cli" in modules and "viewer.model" in modules
    script = textwrap.dedent(
        f"""
        import importlib, sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in ('PySide6', 'shiboken6'):
                    raise ImportError('PySide6 is blocked in this test: ' + name)
                return None
        sys.meta_path.insert(0, Block())
        for name in {modules!r}:
            importlib.import_module(name)
        loaded = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6')]
        assert not loaded, loaded
        print('imported', len({modules!r}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert f"imported {len(modules)}" in result.stdout


def test_cli_help_and_version_without_qt() -> None:
    for args, expected in ((["--version"], "lightbox "), (["--help"], "render")):
        result = subprocess.run(
            [sys.executable, "-m", "viewer", *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert expected in result.stdout
