"""A few minutes of the fuzz harness inside ``make test``, and every saved crash replayed.

``make fuzz`` hunts for an hour (tests/fuzz/fuzz.py, coverage-guided with atheris); here each
target runs a fixed number of DICOM-aware mutations from a fixed seed (reproducible), in a
child process so that an abort or a segfault of a native decoder fails the test instead of
killing pytest, and under the same address-space limit and per-input watchdog.

Every input in ``corpus/regressions/`` is a crash the fuzzer (or a report) found once; the
replay runs all targets on each of them (see ``corpus/regressions/README.md``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz.fuzz import REGRESSIONS, seed_files
from tests.fuzz.mutate import Mutator, elements
from tests.fuzz.targets import TARGETS

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
FUZZ = HERE / "fuzz.py"

#: Inputs per target in `make test` (about 10-20 s each on this 2-core machine).
SMOKE_RUNS = {
    "read": 3000,
    "decode": 3000,
    "dicomdir": 2500,
    "scan": 1000,
    "cli": 700,
    "dump": 1500,
}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OPENBLAS_NUM_THREADS="1", QT_QPA_PLATFORM="offscreen")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_seeds_cover_every_kind_of_input() -> None:
    names = " ".join(p.name for p in seed_files())
    for name in ("MR_small_RLE", "SC_rgb_rle", "jpeg", "jp2k", "jpeg_ls", "bigendian",
                 "implicit", "dfl", "DICOMDIR"):  # fmt: skip
        assert name in names, name


def test_the_mutator_finds_dicom_structure_and_is_reproducible() -> None:
    import random

    seed = next(p for p in seed_files() if p.name == "MR_small_RLE.dcm").read_bytes()
    found = elements(seed)
    assert any(e.tag == 0x7FE00010 for e in found)
    assert sum(e.tag == 0xFFFEE000 for e in found) >= 2  # offset table and a fragment
    one = [Mutator(random.Random(5), [seed]).mutate(seed) for _ in range(20)]
    two = [Mutator(random.Random(5), [seed]).mutate(seed) for _ in range(20)]
    assert one == two
    assert sum(m != seed for m in one) >= 18


@pytest.mark.slow
@pytest.mark.parametrize("target", list(TARGETS))
def test_fuzz_smoke(target: str, tmp_path: Path) -> None:
    """A fixed number of mutated inputs; no finding, no abort, no hang."""
    cmd = [sys.executable, str(FUZZ), "worker", "--engine", "random", "--target", target,
           "--runs", str(SMOKE_RUNS[target]), "--seed", "20261204", "--seconds", "90",
           "--workdir", str(tmp_path / "work"), "--crashes", str(tmp_path / "crashes")]  # fmt: skip
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=240, check=False
    )
    output = proc.stdout + proc.stderr
    summary = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    inputs = sorted((tmp_path / "work").glob("current-*.bin"))
    died = f"the worker died (exit {proc.returncode}; input {inputs})"
    assert summary, f"{died}:\n{output[-3000:]}"
    result = json.loads(summary[-1])
    assert result["execs"] > 0
    findings = [line for line in output.splitlines() if line.startswith("FINDING")]
    assert result["findings"] == 0, "\n".join(findings)


def _regressions() -> list[Path]:
    if not REGRESSIONS.is_dir():
        return []
    return sorted(
        p for p in REGRESSIONS.iterdir() if p.is_file() and p.suffix not in (".txt", ".md")
    )


def test_the_regression_corpus_is_small_and_present() -> None:
    files = _regressions()
    assert files, "tests/fuzz/corpus/regressions/ holds the crashes found so far"
    assert all(p.stat().st_size <= 64 * 1024 for p in files)


@pytest.fixture(scope="module")
def replayed() -> str:
    """One child process replays the whole corpus (an abort shows as missing lines)."""
    cmd = [sys.executable, str(FUZZ), "replay", str(REGRESSIONS)]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=600, check=False
    )
    return proc.stdout + f"\n(exit {proc.returncode})\n" + proc.stderr[-3000:]


@pytest.mark.parametrize("path", _regressions(), ids=lambda p: p.name)
def test_regression_replays_clean(path: Path, replayed: str) -> None:
    """Every target on a crash found once: each says ok."""
    lines = [line for line in replayed.splitlines() if f" {path.name} [" in line]
    assert len(lines) == len(TARGETS), replayed[-4000:]
    assert all(line.startswith("ok   ") for line in lines), "\n".join(lines)
