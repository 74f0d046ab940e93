"""The core and the CLI import no Qt: every module outside viewer/qt imports without PySide6."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
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


# -- the import rules of docs/architecture.md --------------------------------------------------

#: Which of the application's packages each may import (besides itself and the root package's
#: ``__version__``): docs/architecture.md, "Import rules". Read from every import statement,
#: those inside functions and under ``if TYPE_CHECKING`` included.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "text": frozenset(),
    "config": frozenset(),
    "settings": frozenset({"config"}),
    "resources": frozenset(),
    "desktop": frozenset({"resources"}),
    "logs": frozenset({"settings", "config", "text"}),
    "diagnostics": frozenset({"logs", "store", "config"}),
    "dicom": frozenset(),
    "model": frozenset({"text"}),
    "imaging": frozenset({"dicom", "model", "text", "config"}),
    "media": frozenset({"imaging", "dicom", "model", "text", "config"}),
    "store": frozenset({"media", "imaging", "dicom", "model", "text", "config"}),
    "net": frozenset({"dicom", "text", "config"}),
    "conformance": frozenset({"net", "media", "dicom"}),
    "handover": frozenset({"net", "store", "media", "text", "config"}),
    "cli": frozenset(
        {"qt", "conformance", "handover", "net", "store", "media", "imaging", "desktop"}
    )
    | frozenset({"logs", "diagnostics"})
    | frozenset({"dicom", "model", "text", "config"}),
    "qt": frozenset({"conformance", "handover", "net", "store", "media", "imaging"})
    | frozenset({"dicom", "model", "text", "config", "settings", "resources"})
    | frozenset({"logs", "diagnostics"}),
    "__main__": frozenset({"cli"}),
}
#: Imports allowed only inside a function (not when the module is imported): cli opens the GUI.
ONLY_IN_FUNCTIONS = {("cli", "qt")}


@dataclass(frozen=True)
class Import:
    source: str  # module importing, e.g. viewer.net.scp
    target: str  # module imported, e.g. viewer.net.guard
    line: int
    in_function: bool


def module_name(package_root: Path, path: Path) -> str:
    rel = path.relative_to(package_root.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports_of(package_root: Path) -> list[Import]:
    """Every import of a module of the package by a module of the package."""
    modules = {module_name(package_root, p) for p in package_root.rglob("*.py")}
    top = package_root.name
    found: list[Import] = []
    for path in sorted(package_root.rglob("*.py")):
        source = module_name(package_root, path)
        package = source if path.name == "__init__.py" else source.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        functions = {
            id(node)
            for fn in ast.walk(tree)
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
            for node in ast.walk(fn)
        }
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    name = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    name = node.module or ""
                targets = [
                    f"{name}.{alias.name}" if f"{name}.{alias.name}" in modules else name
                    for alias in node.names
                ]
            for target in targets:
                if target.split(".")[0] == top and target != source:
                    found.append(Import(source, target, node.lineno, id(node) in functions))
    return found


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def rule_violations(package_root: Path) -> list[str]:
    out = []
    for imp in imports_of(package_root):
        src, dst = layer(imp.source), layer(imp.target)
        if src == dst or dst == "":  # itself, or the root package (``__version__``)
            continue
        where = f"{imp.source} (line {imp.line}) imports {imp.target}"
        if src not in MAY_IMPORT:
            out.append(f"{where}: {src!r} has no rule in docs/architecture.md")
        elif dst not in MAY_IMPORT[src]:
            out.append(f"{where}: {src} may not import {dst}")
        elif (src, dst) in ONLY_IN_FUNCTIONS and not imp.in_function:
            out.append(f"{where}: only inside a function")
    return out


def import_cycles(package_root: Path) -> list[list[str]]:
    """Groups of modules that import each other, directly or through others (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for imp in imports_of(package_root):
        graph.setdefault(imp.source, set()).add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_every_import_follows_the_rules_of_the_architecture() -> None:
    assert rule_violations(ROOT / "viewer") == []


def test_no_module_imports_itself_back() -> None:
    assert import_cycles(ROOT / "viewer") == []


def test_the_rules_are_the_documented_ones() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Import rules", 1)[1].split("\n## ", 1)[0]
    for package, allowed in MAY_IMPORT.items():
        row = next(
            (line for line in section.splitlines() if line.startswith(f"| `{package}` |")), None
        )
        assert row is not None, f"docs/architecture.md has no row for {package}"
        documented = set(re.findall(r"`([a-z_]+)`", row.split("|")[2]))
        assert documented == set(allowed), (package, documented, set(allowed))


def test_the_checker_sees_a_broken_rule_and_a_cycle(tmp_path: Path) -> None:
    root = tmp_path / "viewer"
    for name, body in {
        "__init__.py": "__version__ = '0'\n",
        "net/__init__.py": "",
        "net/scp.py": "from viewer.store import importer\nfrom viewer import __version__\n",
        "store/__init__.py": "",
        "store/importer.py": "def f():\n    from ..store import index\n",
        "store/index.py": "from viewer.store.importer import f\n",
        "cli.py": "from viewer.qt import app\ndef main():\n    from viewer import qt\n",
        "qt/__init__.py": "",
        "qt/app.py": "import viewer.cli\n",
    }.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(body)
    assert rule_violations(root) == [
        "viewer.cli (line 1) imports viewer.qt.app: only inside a function",
        "viewer.net.scp (line 1) imports viewer.store.importer: net may not import store",
        "viewer.qt.app (line 1) imports viewer.cli: qt may not import cli",
    ]
    assert import_cycles(root) == [
        ["viewer.cli", "viewer.qt.app"],
        ["viewer.store.importer", "viewer.store.index"],
    ]
