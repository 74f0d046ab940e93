"""The command line's contract: subcommand routing and exit codes (DEVELOPERS.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from viewer import cli

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["scan.dcm"], ["open", "scan.dcm"]),
        (["-v", "/media/cdrom"], ["-v", "open", "/media/cdrom"]),
        (["render", "a.dcm", "-o", "a.png"], ["render", "a.dcm", "-o", "a.png"]),
        (["open", "render"], ["open", "render"]),
        (["--version"], ["--version"]),
        ([], []),
    ],
)
def test_a_bare_path_means_open(argv: list[str], expected: list[str]) -> None:
    assert cli._normalise_argv(argv, ["open", "render"]) == expected


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "viewer", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_usage_errors_exit_2_with_a_message() -> None:
    result = run("render", "x.dcm")  # -o is required
    assert result.returncode == 2
    assert "-o/--output" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--window", "40"], "is not CENTER,WIDTH"),
        (["--window", "40,0"], "window width must be at least 1"),
        (["--frame", "0"], "frames count from 1"),
        (["--preset", "spleen"], "unknown preset 'spleen'"),
        (["--window", "40,400", "--preset", "lung"], "not allowed with argument"),
    ],
)
def test_render_rejects_bad_options(args: list[str], message: str, tmp_path: Path) -> None:
    result = run("render", str(tmp_path / "in.dcm"), "-o", str(tmp_path / "out.png"), *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
