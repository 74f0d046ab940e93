"""packaging/lightbox.spec, read without building (a build takes a minute: `make smoke` does it).

PyInstaller follows imports; what the code loads by name must be named in the spec, and these
tests compare the spec's lists with what the code and the installed plugins name today.
"""

from __future__ import annotations

import ast
import re
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "packaging" / "lightbox.spec"


@pytest.fixture(scope="module")
def spec() -> ast.Module:
    source = SPEC.read_text(encoding="utf-8")
    compile(source, str(SPEC), "exec")  # a SyntaxError fails here
    return ast.parse(source)


def _strings(tree: ast.Module, name: str) -> set[str]:
    """The string literals of the spec's top-level list ``name``."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            assert isinstance(node.value, ast.List | ast.Tuple), name
            return {
                e.value
                for e in node.value.elts
                if isinstance(e, ast.Constant) and isinstance(e.value, str)
            }
    raise AssertionError(f"the spec has no list {name}")


def _calls(tree: ast.Module, function: str) -> set[str]:
    """First arguments (string literals) of every call of ``function`` in the spec."""
    return {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == function
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }


def test_pydicom_decoder_modules_the_code_names_are_hidden_imports(spec: ast.Module) -> None:
    from viewer.imaging import decode

    hidden = _strings(spec, "HIDDEN_IMPORTS")
    missing = sorted(set(decode._PLUGIN_MODULES.values()) - hidden)
    assert not missing, f"add to HIDDEN_IMPORTS in {SPEC.name}: {missing}"


def test_every_installed_pylibjpeg_plugin_is_collected(spec: ast.Module) -> None:
    """pylibjpeg finds its plugins through entry points: each plugin's distribution metadata
    must be copied and the module its entry points name must be a hidden import."""
    hidden = _strings(spec, "HIDDEN_IMPORTS")
    metadata = {re.sub(r"[-_.]+", "-", name).lower() for name in _strings(spec, "METADATA")}
    plugins = entry_points(group="pylibjpeg.pixel_data_decoders")
    assert plugins, "no pylibjpeg plugin installed: the test would check nothing"
    for point in plugins:
        dist = point.dist
        assert dist is not None
        name = re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower()
        assert name in metadata, f"add {name!r} to METADATA (copy_metadata) in {SPEC.name}"
        module = point.value.split(":")[0]
        assert module in hidden, f"add {module!r} to HIDDEN_IMPORTS in {SPEC.name}"


def test_viewer_modules_and_resources_are_collected(spec: ast.Module) -> None:
    """The pool's fork server preloads viewer.imaging.loader by name and the resources are
    read with importlib.resources: the whole package and its resources are collected."""
    assert "viewer" in _calls(spec, "collect_submodules")
    assert "viewer.resources" in _calls(spec, "collect_data_files")
    assert "pydicom.data" in _calls(spec, "collect_data_files")  # the demo study


def test_no_excluded_module_is_imported_by_the_code(spec: ast.Module) -> None:
    excludes = _strings(spec, "EXCLUDES")
    imported: set[str] = set()
    for path in (ROOT / "viewer").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module)
                imported.update(f"{node.module}.{alias.name}" for alias in node.names)
    clashes = sorted(
        name for name in imported if any(name == ex or name.startswith(f"{ex}.") for ex in excludes)
    )
    assert not clashes, f"imported by viewer/ but excluded in {SPEC.name}: {clashes}"


def test_the_entry_script_starts_multiprocessing_children_as_children() -> None:
    """The fork server and the resource tracker re-run the bundle's executable: without
    freeze_support() they would start a second Lightbox (make smoke's `ls` step shows it)."""
    assert "multiprocessing.freeze_support()" in SPEC.read_text(encoding="utf-8")
