"""``lightbox movie``: a synthetic CT series to MP4/GIF, one series only, exit codes (issue 11)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from tests.cli import lightbox
from viewer import cli


def ct_slice(
    number: int, *, series_uid: str, series_number: int = 2, rows: int = 24, cols: int = 30
) -> Dataset:
    """A CT slice whose HU are 10 * number everywhere except a bright corner (HU 1000)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.10.999.7"
    ds.SeriesInstanceUID = series_uid
    ds.Modality = "CT"
    ds.PatientName = "Movie^Test"
    ds.PatientID = "MOV-1"
    ds.SeriesNumber = series_number
    ds.SeriesDescription = "Axial\x07"  # a control character that must not reach the terminal
    ds.InstanceNumber = number
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [0, 0, -5.0 * number]  # stack order is by position, not by file
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1
    ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    ds.WindowCenter, ds.WindowWidth = 100, 200  # HU 0..200 -> 0..255
    pixels = np.full((rows, cols), 10 * number, np.int16)
    pixels[:4, :4] = 1000
    ds.PixelData = pixels.tobytes()
    return ds


def write_series(folder: Path, count: int = 6, *, series_number: int = 2) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    uid = generate_uid()
    for number in range(1, count + 1):
        # file names in the reverse of the stack order
        path = folder / f"f{count - number:02d}.dcm"
        ct_slice(number, series_uid=uid, series_number=series_number).save_as(
            path, enforce_file_format=True
        )
    return uid


def linear(hu: float, center: float, width: float) -> int:
    """PS3.3 C.11.2.1.2.1, the oracle for the default LINEAR window."""
    y = ((hu - (center - 0.5)) / (width - 1) + 0.5) * 255
    return int(min(255, max(0, y)))


def decoded(path: Path) -> tuple[list[np.ndarray], Fraction]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="gray") for f in container.decode(stream)]
        return frames, Fraction(stream.average_rate or 0)


def test_a_series_becomes_an_mp4_in_stack_order(tmp_path: Path) -> None:
    write_series(tmp_path / "ct", 6)
    out = tmp_path / "ct.mp4"
    result = lightbox("movie", str(tmp_path / "ct"), "-o", str(out), "--fps", "5")
    assert result.returncode == 0, result.stderr
    assert "6 frames" in result.stdout
    frames, rate = decoded(out)
    assert len(frames) == 6 and rate == 5
    assert frames[0].shape == (24, 30)
    # Stack order: the slice at the top (z = -5, number 1) first; the default window 100/200
    # maps HU 10 * number to about 255 * (10 * number) / 200.
    greys = [int(f[15, 20]) for f in frames]
    expected = [linear(10 * n, 100, 200) for n in range(6, 0, -1)]  # see the next test
    assert greys == pytest.approx(expected, abs=4)  # H.264 is lossy


def test_stack_order_follows_position_not_file_names(tmp_path: Path) -> None:
    """Positions fall as numbers rise; the stack runs along the normal (feet to head)."""
    from viewer.imaging.stack import build_stacks
    from viewer.media.scan import scan

    write_series(tmp_path / "ct", 4)
    stack = build_stacks(scan(tmp_path / "ct").instances)[0]
    numbers = [ref.instance.instance_number for ref in stack.frames]
    out = tmp_path / "ct.gif"
    assert cli.main(["movie", str(tmp_path / "ct"), "-o", str(out), "--fps", "4"]) == 0
    frames, _ = decoded(out)
    greys = [int(f[15, 20]) for f in frames]
    assert numbers == [4, 3, 2, 1]
    assert greys == pytest.approx([linear(10 * n, 100, 200) for n in numbers], abs=1)


def test_window_preset_and_file_rate(tmp_path: Path) -> None:
    write_series(tmp_path / "ct", 3)
    out = tmp_path / "w.gif"
    # --window 1000,1 puts everything but the corner (HU 1000) at black
    for window in ("1000,1", "1000/1"):
        assert cli.main(["movie", str(tmp_path / "ct"), "-o", str(out), "--window", window]) == 0
        frames, rate = decoded(out)
        assert rate == 10  # no cine rate in the files: the view's default
        assert len(frames) == 3
        assert all(int(f[15, 20]) == 0 and int(f[1, 1]) == 255 for f in frames)
    assert cli.main(["movie", str(tmp_path / "ct"), "-o", str(out), "--window", "1000/x"]) == 2
    assert cli.main(["movie", str(tmp_path / "ct"), "-o", str(out), "--preset", "bone"]) == 0
    frames, _ = decoded(out)
    expected = [linear(10 * n, 400, 1800) for n in (3, 2, 1)]  # bone 400/1800
    assert [int(f[15, 20]) for f in frames] == pytest.approx(expected, abs=1)


def test_the_cine_rate_of_the_file_is_the_movies(tmp_path: Path) -> None:
    folder = tmp_path / "ct"
    write_series(folder, 3)
    for path in folder.iterdir():
        from pydicom import dcmread

        ds = dcmread(path)
        ds.FrameTime = 40  # ms: 25 frames per second (PS3.3 C.7.6.5)
        ds.save_as(path)
    out = tmp_path / "cine.mp4"
    assert cli.main(["movie", str(folder), "-o", str(out)]) == 0
    assert decoded(out)[1] == 25


def test_two_series_ask_to_choose_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_series(tmp_path / "a", 3, series_number=2)
    uid = write_series(tmp_path / "b", 2, series_number=7)
    out = tmp_path / "two.mp4"
    assert cli.main(["movie", str(tmp_path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "choose one series" in err
    assert "Se 2" in err and "Se 7" in err and uid in err
    assert "\x07" not in err and "Axial\\x07" in err  # the description escaped
    assert not out.exists()
    assert cli.main(["movie", str(tmp_path), "-o", str(out), "--series", "7"]) == 0
    assert len(decoded(out)[0]) == 2
    assert cli.main(["movie", str(tmp_path), "-o", str(out), "--series", uid]) == 0
    assert cli.main(["movie", str(tmp_path), "-o", str(out), "--series", "99"]) == 3


def test_unreadable_input_and_bad_output(tmp_path: Path) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"\x00" * 128 + b"DICM" + b"\xff" * 40)
    result = lightbox("movie", str(junk), "-o", str(tmp_path / "x.mp4"))
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.mp4").exists()
    assert cli.main(["movie", str(tmp_path / "absent"), "-o", str(tmp_path / "x.mp4")]) == 3
    write_series(tmp_path / "ct", 2)
    assert cli.main(["movie", str(tmp_path / "ct"), "-o", str(tmp_path / "x.avi")]) == 2
    assert cli.main(["movie", str(tmp_path / "ct"), "-o", str(tmp_path / "no/x.mp4")]) == 3
    assert cli.main(["movie", str(tmp_path / "ct"), "-o", "x.mp4", "--preset", "nope"]) == 2
    assert cli.main(["movie", str(tmp_path / "ct"), "-o", "x.mp4", "--fps", "0"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct", "junk.dcm"]


def test_a_frame_that_fails_is_left_out_with_exit_1(tmp_path: Path) -> None:
    folder = tmp_path / "ct"
    write_series(folder, 4)
    victim = sorted(folder.iterdir())[1]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) - 600])  # pixel data cut short
    out = tmp_path / "cut.gif"
    assert cli.main(["movie", str(folder), "-o", str(out)]) == 1
    assert len(decoded(out)[0]) == 3
