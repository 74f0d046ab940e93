"""A series or cine to an MP4 or animated GIF movie, headless (no Qt).

The encoders are FFmpeg's, shipped inside PyAV's wheel (``av``): H.264 (libx264) when the
wheel has it, else MPEG-4 Part 2, in an MP4 container with yuv420p pixels (what every player
reads; odd widths and heights are padded with black to even ones, as 4:2:0 needs); GIF with a
palette per frame (grey frames keep their 256 grey levels exactly). Which one is written
follows the output's suffix.

Frames are streamed: each is encoded and written as it arrives, so neither the frames nor the
encoded movie are held in memory. The movie is written under a hidden temporary name beside
the output and renamed at the end, so an error or a cancel leaves no partial file.

:func:`stack_frames` renders a stack's frames with ``lightbox render``'s pipeline
(:mod:`viewer.imaging.render`: the same window options and presets, overlays drawn) in stack
order, for ``lightbox movie`` (viewer/cli.py) to hand to :func:`write_movie`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from viewer.imaging.annotations import cine_rate
from viewer.imaging.decode import DecodeError, decode_frame, frame_count, read_file
from viewer.imaging.display import FrameRenderer
from viewer.imaging.overlay import draw_overlays, overlay_masks
from viewer.imaging.render import RenderError, WindowOption, choose_window
from viewer.imaging.stack import Stack
from viewer.text import plural

log = logging.getLogger(__name__)

#: Output suffixes and the container each means.
FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".gif": "gif"}
#: H.264 first; MPEG-4 Part 2 is in every FFmpeg build.
MP4_CODECS = ("libx264", "mpeg4")
MIN_FPS = 0.1
MAX_FPS = 120.0

ProgressCallback = Callable[[int, int], None]


class MovieError(Exception):
    """A movie that cannot be written; ``str(e)`` says why in words."""


@dataclass
class MovieReport:
    """What :func:`write_movie` wrote: ``frames`` at ``fps`` with ``codec`` (nothing when
    ``cancelled``: no file is left)."""

    path: Path
    frames: int = 0
    fps: float = 0.0
    codec: str = ""
    width: int = 0
    height: int = 0
    cancelled: bool = False
    skipped: list[str] = field(default_factory=list)


def movie_format(path: Path | str) -> str:
    """``"mp4"`` or ``"gif"`` from the suffix; :class:`MovieError` for any other."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise MovieError(f"{Path(path).name}: a movie is .mp4 or .gif, not {suffix or 'no suffix'}")
    return FORMATS[suffix]


def available_mp4_codec() -> str:
    """The best MP4 video encoder of the installed PyAV: libx264, else mpeg4."""
    import av

    for name in MP4_CODECS:
        try:
            av.codec.Codec(name, "w")
        except Exception:  # not in this build (av.codec.codec.UnknownCodecError)
            continue
        return name
    raise MovieError("this PyAV build has no MP4 video encoder (libx264 or mpeg4)")


def temp_beside(target: Path) -> Path:
    """A new empty hidden file beside ``target`` (``.<name>.<random>.part``), created with the
    permissions a new file gets (0666 less the umask; ``tempfile.mkstemp`` would make the
    finished file 0600), to be renamed over ``target`` once complete."""
    folder = target.parent if str(target.parent) else Path(".")
    for _ in range(100):
        temp = folder / f".{target.name}.{secrets.token_hex(4)}.part"
        try:
            handle = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(handle)
        return temp
    raise FileExistsError(f"no free temporary name beside {target}")


def _rate(fps: float) -> Fraction:
    if not (MIN_FPS <= fps <= MAX_FPS):
        raise MovieError(f"a frame rate of {fps:g} per second is outside {MIN_FPS:g}-{MAX_FPS:g}")
    return Fraction(fps).limit_denominator(1001)


def _as_rgb_or_grey(frame: NDArray[Any]) -> NDArray[np.uint8]:
    array = np.asarray(frame)
    if array.dtype != np.uint8:
        raise MovieError(f"frames are uint8 display buffers, not {array.dtype}")
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3):
        return array
    raise MovieError(f"a frame of shape {array.shape} is neither grey (H, W) nor RGB (H, W, 3)")


def fit_frame(frame: NDArray[np.uint8], height: int, width: int) -> NDArray[np.uint8]:
    """``frame`` scaled (nearest pixel, aspect kept) and centred on black ``height`` x
    ``width``: a series whose images differ in size still makes one movie."""
    rows, cols = frame.shape[:2]
    if (rows, cols) == (height, width):
        return frame
    scale = min(height / rows, width / cols)
    new_rows, new_cols = max(1, round(rows * scale)), max(1, round(cols * scale))
    row_index = np.minimum((np.arange(new_rows) / scale).astype(np.intp), rows - 1)
    col_index = np.minimum((np.arange(new_cols) / scale).astype(np.intp), cols - 1)
    scaled = frame[row_index][:, col_index]
    canvas = np.zeros((height, width, *frame.shape[2:]), np.uint8)
    top, left = (height - new_rows) // 2, (width - new_cols) // 2
    canvas[top : top + new_rows, left : left + new_cols] = scaled
    return canvas


def _pad_even(frame: NDArray[np.uint8]) -> NDArray[np.uint8]:
    rows, cols = frame.shape[:2]
    pad = [(0, rows % 2), (0, cols % 2)] + [(0, 0)] * (frame.ndim - 2)
    return np.ascontiguousarray(np.pad(frame, pad) if rows % 2 or cols % 2 else frame)


#: PyAV takes a pal8 palette as 256 ARGB rows (alpha first).
_GREY_PALETTE = np.column_stack(
    [np.full(256, 255, np.uint8)] + [np.arange(256, dtype=np.uint8)] * 3
)


def _palette_frame(frame: NDArray[np.uint8]) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """(indices, 256 x ARGB palette) for GIF: grey exactly, colour through Pillow's median cut."""
    if frame.ndim == 2:
        return np.ascontiguousarray(frame), _GREY_PALETTE
    from PIL import Image

    quantised = Image.fromarray(np.ascontiguousarray(frame), mode="RGB").quantize(256)
    indices = np.asarray(quantised, dtype=np.uint8)
    raw = np.frombuffer(bytes(quantised.getpalette() or []), np.uint8).reshape(-1, 3)[:256]
    palette = np.zeros((256, 4), np.uint8)
    palette[:, 0] = 255
    palette[: len(raw), 1:] = raw
    return np.ascontiguousarray(indices), palette


def write_movie(
    frames: Iterable[NDArray[np.uint8]],
    path: Path | str,
    fps: float,
    *,
    cancel: threading.Event | None = None,
    progress: ProgressCallback | None = None,
    total: int = 0,
) -> MovieReport:
    """Encode ``frames`` (uint8 grey (H, W) or RGB (H, W, 3), all shown at the first frame's
    size) into ``path`` at ``fps`` frames per second: MP4 or GIF by the suffix.

    ``progress(done, total)`` after each frame (``total`` as given, 0 when unknown). On
    ``cancel`` the report says ``cancelled`` and no file is left; on an error
    :class:`MovieError` is raised and no file is left either. An existing ``path`` is replaced
    only once the new movie is complete.
    """
    import av

    target = Path(path)
    kind = movie_format(target)
    rate = _rate(fps)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise MovieError(f"{target}: the folder {folder} does not exist")
    try:
        temp = temp_beside(target)
    except OSError as exc:
        raise MovieError(f"{target}: cannot write here: {exc.strerror or exc}") from None
    report = MovieReport(path=target, fps=float(rate))
    container: Any = None
    done = False
    try:
        options = {"movflags": "+faststart"} if kind == "mp4" else {}
        container = av.open(str(temp), mode="w", format=kind, options=options)
        stream: Any = None
        height = width = 0
        for raw in frames:
            if cancel is not None and cancel.is_set():
                report.cancelled = True
                break
            frame = _as_rgb_or_grey(raw)
            if stream is None:
                height, width = frame.shape[:2]
                stream = _add_stream(container, kind, rate, height, width)
                report.codec = stream.codec_context.name
                report.height, report.width = stream.height, stream.width
            frame = fit_frame(frame, height, width)
            if kind == "mp4":
                frame = _pad_even(frame)
            for packet in stream.encode(_video_frame(frame, kind, stream)):
                container.mux(packet)
            report.frames += 1
            if progress is not None:
                progress(report.frames, total)
        if cancel is not None and cancel.is_set():
            report.cancelled = True  # also when the frames stopped because of it
        if not report.cancelled:
            if stream is None:
                raise MovieError("no frame to write")
            for packet in stream.encode(None):
                container.mux(packet)
        container.close()
        container = None
        if not report.cancelled:
            os.replace(temp, target)
            done = True
    except MovieError:
        raise
    except MemoryError:
        raise MovieError("not enough memory to encode the movie") from None
    except (OSError, av.FFmpegError, ValueError, TypeError) as exc:
        log.debug("encoding %s failed", target, exc_info=True)
        reason = getattr(exc, "strerror", None) or str(exc)
        raise MovieError(f"{target}: cannot write the movie: {reason}") from None
    finally:
        if container is not None:
            with contextlib.suppress(Exception):
                container.close()
        if not done:
            with contextlib.suppress(OSError):
                temp.unlink()
    if report.cancelled:
        report.frames = 0
    return report


def _add_stream(container: Any, kind: str, rate: Fraction, height: int, width: int) -> Any:
    if kind == "gif":
        stream = container.add_stream("gif", rate=rate)
        stream.pix_fmt = "pal8"
        stream.width, stream.height = width, height
        return stream
    codec = available_mp4_codec()
    options = {"crf": "18", "preset": "medium"} if codec == "libx264" else {}
    stream = container.add_stream(codec, rate=rate, options=options)
    stream.pix_fmt = "yuv420p"
    stream.width, stream.height = width + width % 2, height + height % 2
    if codec != "libx264":  # MPEG-4 Part 2 has no constant-quality mode here: a generous rate
        stream.bit_rate = max(2_000_000, int(stream.width * stream.height * float(rate) * 0.5))
    return stream


def _video_frame(frame: NDArray[np.uint8], kind: str, stream: Any) -> Any:
    from av.video.frame import VideoFrame

    if kind == "gif":
        pair: Any = _palette_frame(frame)  # PyAV takes pal8 as (image, palette); its stub not
        return VideoFrame.from_ndarray(pair, format="pal8")
    video = VideoFrame.from_ndarray(frame, format="gray" if frame.ndim == 2 else "rgb24")
    return video.reformat(format="yuv420p")


# -- a stack's frames through `lightbox render`'s pipeline ---------------------------------------


def stack_frames(
    stack: Stack,
    *,
    window: WindowOption = None,
    preset: str | None = None,
    overlays: bool = True,
    on_problem: Callable[[RenderError], None] | None = None,
) -> Iterator[NDArray[np.uint8]]:
    """Each frame of ``stack`` in stack order, rendered as ``lightbox render`` renders it
    (:func:`viewer.imaging.render.choose_window`; without options each frame's default
    window). A file is read once for all its frames; a frame that cannot be rendered goes to
    ``on_problem`` and is left out."""
    current: tuple[Path, Any] | None = None
    for ref in stack.frames:
        try:
            if current is None or current[0] != ref.path:
                current = None
                ds = read_file(ref.path).dataset
                current = (ref.path, ds)
            ds = current[1]
            if ref.frame_index >= frame_count(ds):
                raise RenderError(ref.path, f"frame {ref.frame_index + 1} is not in the file")
            renderer = FrameRenderer(ds, ref.frame_index, decode_frame(ds, ref.frame_index))
            image = np.array(renderer.render(choose_window(renderer, window, preset)), copy=True)
            if overlays:
                draw_overlays(image, overlay_masks(ds, ref.frame_index))
        except DecodeError as exc:
            _problem(on_problem, RenderError(ref.path, exc.reason))
            continue
        except RenderError as exc:
            _problem(on_problem, exc)
            continue
        except MemoryError:
            _problem(on_problem, RenderError(ref.path, "not enough memory to render this image"))
            continue
        except Exception as exc:  # bad input: a message, never a traceback
            log.debug("rendering %s failed", ref.path, exc_info=True)
            _problem(on_problem, RenderError(ref.path, f"cannot render: {exc}"))
            continue
        yield image


def _problem(on_problem: Callable[[RenderError], None] | None, error: RenderError) -> None:
    if on_problem is not None:
        on_problem(error)


def stack_fps(stack: Stack) -> float:
    """The stack's cine rate (:func:`viewer.imaging.annotations.cine_rate`) from its first
    readable header, as the view learns it."""
    for ref in stack.frames[:1]:
        try:
            return cine_rate(read_file(ref.path, headers_only=True).dataset)
        except DecodeError:
            break
    return cine_rate(None)


def describe_stacks(stacks: Sequence[Stack]) -> list[str]:
    """One line per stack for "choose one series": number, modality, description, UID (and
    the file of a multi-frame stack, which is chosen by naming it)."""
    lines = []
    for stack in stacks:
        parts = [f"Se {stack.series_number}" if stack.series_number is not None else "Se ?"]
        parts += [p for p in (stack.modality, stack.series_description) if p]
        files = {ref.path for ref in stack.frames}
        cine = len(files) == 1 and len(stack.frames) > 1  # a multi-frame file: name it
        parts.append(f"({plural(len(stack.frames), 'frame' if cine else 'image')})")
        parts.append(stack.series_instance_uid or str(stack.frames[0].path))
        if cine:
            parts.append(str(stack.frames[0].path))
        lines.append(" ".join(parts))
    return lines
