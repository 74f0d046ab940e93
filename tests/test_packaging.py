"""The built wheel carries everything the program reads at run time.

A wheel built from the repository once held only ``viewer/*.py``: an installed Lightbox had no
icon and its keyboard help said "See docs/controls.md". Here the wheel is built, installed into a
fresh virtual environment (its dependencies borrowed from this one through a path file, so that
nothing is downloaded and the repository is not on the path), and the installed GUI is asked for
every resource.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from viewer import resources

ROOT = Path(__file__).resolve().parents[1]

PROBE = r"""
import os, sys
os.environ["QT_QPA_PLATFORM"] = "offscreen"
import viewer
from viewer import resources
assert viewer.__file__.startswith(sys.prefix), f"viewer imported from {viewer.__file__}"
for name in resources.RUN_TIME:
    assert resources.path(name).is_file(), name
from viewer.qt.app import application
from viewer.qt.help import CONFORMANCE_DOC, CONTROLS_DOC, DocumentDialog
app = application()
assert not app.windowIcon().isNull(), "no window icon"
for title, document, expected in (
    ("Keyboard and mouse", CONTROLS_DOC, "Keyboard and mouse"),
    ("Conformance", CONFORMANCE_DOC, "Conformance Statement"),
):
    dialog = DocumentDialog(title, document)
    text = dialog.browser.toPlainText()
    assert expected in text and "cannot be read" not in text, (title, text[:200])
print("resources found:", " ".join(resources.RUN_TIME))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(ROOT)],
        check=True,
        timeout=300,
    )
    (built,) = out.glob("lightbox_dicom-*.whl")
    return built


def test_the_wheel_holds_every_run_time_resource(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in resources.RUN_TIME:
        assert f"viewer/resources/{name}" in names
    assert not any(name.startswith(("tests/", "docs/", "benchmarks/")) for name in names)


@pytest.mark.slow
def test_an_installed_wheel_finds_its_icon_help_and_conformance_statement(
    wheel: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # The dependencies of this environment, but not its editable install of the repository
    # (path files in a directory named by a path file are not read).
    (site / "borrowed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    result = subprocess.run(
        [python, "-I", "-c", PROBE],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resources found: icons/lightbox.svg controls.md" in result.stdout
