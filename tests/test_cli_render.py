"""``lightbox render``: options against dcm2pnm, output naming and exit codes (issue 2)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from numpy.typing import NDArray
from PIL import Image

from tests.conftest import require_tool
from viewer.imaging.render import run_render

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
CT_SMALL = TEST_FILES / "CT_small.dcm"  # CT, rescale, padding, no window
MR_SMALL = TEST_FILES / "MR_small.dcm"  # has a window 600/1600
OVERLAYS = TEST_FILES / "examples_overlay.dcm"
RGB = TEST_FILES / "examples_rgb_color.dcm"
LIGHTBOX = Path(sys.executable).parent / "lightbox"


def _png(path: Path) -> tuple[NDArray[np.uint8], str]:
    with Image.open(path) as img:
        return np.asarray(img).copy(), img.mode


def _dcm2pnm(src: Path, out: Path, *options: str) -> NDArray[np.uint8]:
    tool = require_tool("dcm2pnm")
    subprocess.run([tool, *options, "+on", str(src), str(out)], check=True, capture_output=True)
    return _png(out)[0]


def _lightbox(*args: str) -> subprocess.CompletedProcess[str]:
    command = [str(LIGHTBOX)] if LIGHTBOX.exists() else [sys.executable, "-m", "viewer"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120)


def _equal(ours: NDArray[np.uint8], ref: NDArray[np.uint8]) -> None:
    assert ours.shape == ref.shape
    diff = np.abs(ours.astype(int) - ref.astype(int))
    assert (diff <= 1).mean() >= 0.99, f"max difference {diff.max()}"


@pytest.mark.parametrize(("src", "dcmtk_window"), [(CT_SMALL, ("+Wm",)), (OVERLAYS, ("+Wi", "1"))])
def test_the_installed_command_matches_dcm2pnm(
    src: Path, dcmtk_window: tuple[str, ...], tmp_path: Path
) -> None:
    out = tmp_path / "out.png"
    result = _lightbox("render", str(src), "-o", str(out))
    assert result.returncode == 0, result.stderr
    ours, mode = _png(out)
    assert mode == "L"
    _equal(ours, _dcm2pnm(src, tmp_path / "ref.png", *dcmtk_window))


@pytest.mark.parametrize(
    ("options", "dcmtk"),
    [
        ({"window": (40.0, 400.0)}, ("+Ww", "40", "400")),
        ({"window": "minmax"}, ("+Wm",)),
        ({"preset": "lung"}, ("+Ww", "-600", "1500")),
        ({"preset": "bone"}, ("+Ww", "400", "1800")),
    ],
)
def test_window_options_match_dcm2pnm(
    options: dict[str, object], dcmtk: tuple[str, ...], tmp_path: Path
) -> None:
    for src in (CT_SMALL, MR_SMALL):
        out = tmp_path / f"{src.stem}.png"
        assert run_render([src], out, **options) == 0  # type: ignore[arg-type]
        _equal(_png(out)[0], _dcm2pnm(src, tmp_path / "ref.png", *dcmtk))


def test_minmax_differs_from_the_file_window(tmp_path: Path) -> None:
    assert run_render([MR_SMALL], tmp_path / "a.png") == 0
    assert run_render([MR_SMALL], tmp_path / "b.png", window="minmax") == 0
    assert (_png(tmp_path / "a.png")[0] != _png(tmp_path / "b.png")[0]).any()


def test_no_overlays_matches_dcm2pnm_without_overlays(tmp_path: Path) -> None:
    out = tmp_path / "plain.png"
    result = _lightbox("render", str(OVERLAYS), "-o", str(out), "--no-overlays")
    assert result.returncode == 0, result.stderr
    _equal(_png(out)[0], _dcm2pnm(OVERLAYS, tmp_path / "ref.png", "+Wi", "1", "-O"))


def test_frame_option_counts_from_1(tmp_path: Path, shared_data: Path) -> None:
    emri = shared_data / "pydicom-data/emri_small.dcm"
    for frame in (1, 2, 10):
        out = tmp_path / f"f{frame}.png"
        assert run_render([emri], out, frame=frame) == 0
        _equal(_png(out)[0], _dcm2pnm(emri, tmp_path / "ref.png", "+F", str(frame), "+Wm"))


def test_frame_beyond_the_file_is_a_listed_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_render([CT_SMALL], tmp_path / "x.png", frame=2) == 3
    err = capsys.readouterr().err
    assert f"{CT_SMALL}: frame 2 is beyond the file's 1 frame(s)" in err
    assert not (tmp_path / "x.png").exists()


def test_colour_gives_24_bit_rgb(tmp_path: Path) -> None:
    src = RGB
    assert run_render([src], tmp_path / "c.png") == 0
    img, mode = _png(tmp_path / "c.png")
    assert mode == "RGB" and img.shape[2] == 3
    _equal(img, _dcm2pnm(src, tmp_path / "ref.png"))


def test_several_inputs_go_to_a_folder_with_numbered_collisions(tmp_path: Path) -> None:
    for sub in ("a", "b", "c"):
        (tmp_path / sub).mkdir()
        shutil.copy(CT_SMALL, tmp_path / sub / "scan.dcm")
    shutil.copy(MR_SMALL, tmp_path / "IM0001")
    out = tmp_path / "out"
    inputs = [tmp_path / s / "scan.dcm" for s in ("a", "b", "c")] + [tmp_path / "IM0001"]
    assert run_render(inputs, out) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["IM0001.png", "scan-2.png", "scan-3.png", "scan.png"]
    np.testing.assert_array_equal(_png(out / "scan.png")[0], _png(out / "scan-3.png")[0])


def test_bad_inputs_are_listed_and_the_others_rendered(tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(CT_SMALL.read_bytes()[:-5000])
    text = tmp_path / "notes.txt"
    text.write_text("not DICOM at all\n")
    missing = tmp_path / "missing.dcm"
    out = tmp_path / "out"
    result = _lightbox("render", str(truncated), str(CT_SMALL), str(text), str(missing),
                       "-o", str(out))  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    for bad in (truncated, text, missing):
        assert any(line.startswith(f"{bad}: ") for line in lines), (bad, lines)
    assert [p.name for p in out.iterdir()] == ["CT_small.png"]


def test_nothing_rendered_exits_3(tmp_path: Path) -> None:
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"\0" * 10)
    result = _lightbox("render", str(bad), "-o", str(tmp_path / "x.png"))
    assert result.returncode == 3
    assert result.stderr.startswith(f"{bad}: ")
    assert "Traceback" not in result.stderr


def test_unwritable_output_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert run_render([CT_SMALL, MR_SMALL], blocker / "sub") == 3
    assert "cannot create the output folder" in capsys.readouterr().err
    assert run_render([CT_SMALL], tmp_path / "no" / "such" / "x.png") == 3
    assert "does not exist" in capsys.readouterr().err
