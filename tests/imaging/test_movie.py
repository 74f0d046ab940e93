"""viewer.imaging.movie: MP4 and GIF written from synthetic frames and read back with PyAV."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from viewer.imaging.movie import MovieError, fit_frame, write_movie


def grey_frames(count: int, rows: int = 48, cols: int = 64) -> list[np.ndarray]:
    """Flat grey frames 0, 20, 40, ... with a white block in the top-left corner."""
    frames = []
    for i in range(count):
        frame = np.full((rows, cols), 20 * i, np.uint8)
        frame[:8, :8] = 255
        frames.append(frame)
    return frames


def read_back(path: Path) -> tuple[list[np.ndarray], av.video.stream.VideoStream]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return frames, stream


def test_mp4_has_every_frame_at_the_rate_and_size(tmp_path: Path) -> None:
    out = tmp_path / "cine.mp4"
    report = write_movie(grey_frames(12), out, 12.5)
    assert report.frames == 12 and not report.cancelled
    assert report.codec in {"libx264", "mpeg4"}
    with av.open(str(out)) as container:
        assert container.format.name.startswith("mov,mp4")
        stream = container.streams.video[0]
        assert stream.codec_context.name in {"h264", "mpeg4"}
        assert stream.average_rate == Fraction(25, 2)
        decoded = [f.to_ndarray(format="gray") for f in container.decode(stream)]
    assert len(decoded) == 12
    assert decoded[0].shape == (48, 64)
    # lossy, but the grey level of each frame and the white corner survive
    for i, frame in enumerate(decoded):
        assert abs(int(frame[30, 40]) - 20 * i) <= 6
        assert int(frame[2, 2]) >= 240
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left beside it
    reference = tmp_path / "reference"
    reference.touch()  # a new file's permissions (0666 less the umask), not mkstemp's 0600
    assert out.stat().st_mode & 0o777 == reference.stat().st_mode & 0o777


def test_mp4_pads_odd_sizes_to_even(tmp_path: Path) -> None:
    out = tmp_path / "odd.mp4"
    report = write_movie(grey_frames(3, rows=31, cols=45), out, 10)
    assert (report.width, report.height) == (46, 32)
    frames, _ = read_back(out)
    assert len(frames) == 3 and frames[0].shape == (32, 46, 3)
    assert frames[0][31, 45].max() <= 8  # the padding is black


def test_gif_keeps_grey_levels_exactly_and_colour_closely(tmp_path: Path) -> None:
    grey = tmp_path / "grey.gif"
    write_movie(grey_frames(5, rows=31, cols=45), grey, 10)
    frames, stream = read_back(grey)
    assert len(frames) == 5 and frames[0].shape == (31, 45, 3)  # GIF needs no even size
    assert stream.average_rate == 10
    for i, frame in enumerate(frames):
        assert frame[20, 30].tolist() == [20 * i] * 3
        assert frame[0, 0].tolist() == [255, 255, 255]
    colour = tmp_path / "colour.gif"
    rgb = [np.dstack([f, f // 2, 255 - f]) for f in grey_frames(4)]
    write_movie(iter(rgb), colour, 5)
    frames, _ = read_back(colour)
    assert len(frames) == 4
    for expected, frame in zip(rgb, frames, strict=True):
        assert np.abs(frame.astype(int) - expected.astype(int)).max() <= 8


def test_gif_frame_delay_follows_the_rate(tmp_path: Path) -> None:
    out = tmp_path / "slow.gif"
    write_movie(grey_frames(4), out, 4)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        times = [f.time for f in container.decode(stream)]
    assert times == pytest.approx([0, 0.25, 0.5, 0.75])


def test_frames_of_another_size_are_fitted_into_the_first(tmp_path: Path) -> None:
    small = np.full((24, 32), 200, np.uint8)
    fitted = fit_frame(small, 48, 64)
    assert fitted.shape == (48, 64) and fitted.min() == 200
    tall = fit_frame(np.full((64, 16), 100, np.uint8), 48, 64)
    assert tall.shape == (48, 64)
    assert tall[24, 32] == 100 and tall[24, 0] == 0  # letterboxed, aspect kept
    out = tmp_path / "mixed.mp4"
    report = write_movie([*grey_frames(2), small], out, 10)
    assert report.frames == 3
    frames, _ = read_back(out)
    assert frames[2].shape == (48, 64, 3)


def test_cancel_leaves_no_file_and_keeps_an_old_one(tmp_path: Path) -> None:
    out = tmp_path / "cine.mp4"
    out.write_bytes(b"the previous movie")
    cancel = threading.Event()
    seen: list[tuple[int, int]] = []

    def frames() -> Iterator[np.ndarray]:
        for i, frame in enumerate(grey_frames(10)):
            if i == 4:
                cancel.set()
            yield frame

    report = write_movie(
        frames(), out, 10, cancel=cancel, progress=lambda d, t: seen.append((d, t)), total=10
    )
    assert report.cancelled and report.frames == 0
    assert seen == [(1, 10), (2, 10), (3, 10), (4, 10)]
    assert out.read_bytes() == b"the previous movie"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cine.mp4"]


def test_an_error_mid_movie_leaves_no_file(tmp_path: Path) -> None:
    def frames() -> Iterator[np.ndarray]:
        yield from grey_frames(3)
        yield np.zeros((4, 4, 4), np.uint8)  # neither grey nor RGB

    with pytest.raises(MovieError, match="neither grey"):
        write_movie(frames(), tmp_path / "bad.gif", 10)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "frames", "fps", "message"),
    [
        ("movie.avi", grey_frames(1), 10, "mp4 or .gif"),
        ("movie.mp4", [], 10, "no frame"),
        ("movie.mp4", grey_frames(1), 0, "frame rate"),
        ("movie.mp4", [np.zeros((8, 8), np.uint16)], 10, "uint8"),
        ("missing/movie.mp4", grey_frames(1), 10, "does not exist"),
    ],
)
def test_refusals_are_messages(
    tmp_path: Path, name: str, frames: list[np.ndarray], fps: float, message: str
) -> None:
    with pytest.raises(MovieError, match=message):
        write_movie(frames, tmp_path / name, fps)
    assert list(tmp_path.iterdir()) == []
