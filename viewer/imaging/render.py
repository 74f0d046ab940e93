"""``lightbox render``: the view's pipeline to PNG files, headless.

Each input is read and decoded (:mod:`viewer.imaging.decode`), windowed by
:class:`~viewer.imaging.display.FrameRenderer` exactly as the view does, overlays drawn as DCMTK
draws them unless asked not to, and written at native size as 8-bit grey or 24-bit RGB PNG
(Pillow). Exit codes follow DEVELOPERS.md: 0 all rendered, 1 some inputs failed (each listed on
stderr as ``path: reason``, one line, names and reasons escaped by :func:`viewer.text.escape`),
3 nothing could be rendered or the output cannot be written.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from viewer.imaging.decode import DecodeError, decode_frame, frame_count, read_file
from viewer.imaging.display import CT_PRESETS, FrameRenderer, Voi, Window
from viewer.imaging.overlay import draw_overlays, overlay_masks
from viewer.text import escape

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_FAILED = 3

_DICOM_SUFFIXES = {".dcm", ".dicom", ".dic", ".ima"}

WindowOption = tuple[float, float] | str | None


class RenderError(Exception):
    """An input that cannot be rendered; ``str(e)`` is ``"path: reason"``."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


@dataclass
class Rendered:
    """One rendered frame: the display buffer and the renderer that made it."""

    image: NDArray[np.uint8]
    renderer: FrameRenderer


def _decode(path: Path, frame_index: int) -> tuple[Any, NDArray[Any]]:
    """Read ``path`` and decode one frame through :mod:`viewer.imaging.decode`."""
    try:
        dicom = read_file(path)
        ds = dicom.dataset
        if (
            "PixelData" not in ds
            and "FloatPixelData" not in ds
            and ("DoubleFloatPixelData" not in ds)
        ):
            raise RenderError(path, "no pixel data (not an image)")
        count = frame_count(ds)
        if frame_index >= count:
            raise RenderError(
                path, f"frame {frame_index + 1} is beyond the file's {count} frame(s)"
            )
        pixels = decode_frame(ds, frame_index)
    except DecodeError as exc:
        raise RenderError(path, exc.reason) from None
    return ds, pixels


def choose_window(renderer: FrameRenderer, window: WindowOption, preset: str | None) -> Voi | None:
    """The VOI for the command line's options; None means the frame's default window."""
    if preset is not None:
        return CT_PRESETS[preset.lower()]
    if window == "minmax":
        return renderer.minmax_window()
    if isinstance(window, tuple):
        return Window(float(window[0]), float(window[1]), explanation="command line")
    return None


def render_file(
    path: Path | str,
    *,
    frame_index: int = 0,
    window: WindowOption = None,
    preset: str | None = None,
    overlays: bool = True,
) -> Rendered:
    """Render one frame of one file at native size; raises :class:`RenderError`."""
    path = Path(path)
    if frame_index < 0:
        raise RenderError(path, "frames count from 1")
    try:
        ds, pixels = _decode(path, frame_index)
        renderer = FrameRenderer(ds, frame_index, pixels)
        voi = choose_window(renderer, window, preset)
        image = np.array(renderer.render(voi), copy=True)
        if overlays:
            draw_overlays(image, overlay_masks(ds, frame_index))
    except RenderError:
        raise
    except MemoryError:
        raise RenderError(path, "not enough memory to render this image") from None
    except Exception as exc:  # bad input must give a message, never a traceback
        log.debug("rendering %s failed", path, exc_info=True)
        raise RenderError(path, f"cannot render: {type(exc).__name__}: {exc}") from None
    return Rendered(image=image, renderer=renderer)


def output_name(path: Path) -> str:
    """``<input name>.png``: the file name without a DICOM suffix."""
    name = path.name
    if path.suffix.lower() in _DICOM_SUFFIXES and path.stem:
        name = path.stem
    return f"{name}.png"


def _unique(folder: Path, name: str, taken: set[str]) -> Path:
    stem = name[: -len(".png")]
    candidate, n = name, 1
    while candidate.lower() in taken:
        n += 1
        candidate = f"{stem}-{n}.png"
    taken.add(candidate.lower())
    return folder / candidate


def write_png(image: NDArray[np.uint8], target: Path) -> None:
    """8-bit grey (mode L) or 24-bit RGB PNG."""
    from PIL import Image

    mode = "RGB" if image.ndim == 3 else "L"
    Image.fromarray(np.ascontiguousarray(image), mode=mode).save(target, format="PNG")


def run_render(
    files: Sequence[str | Path],
    output: str | Path,
    *,
    frame: int = 1,
    window: WindowOption = None,
    preset: str | None = None,
    overlays: bool = True,
) -> int:
    """``lightbox render``; returns the exit code and reports problems on stderr."""
    paths = [Path(f) for f in files]
    out = Path(output)
    if not paths:
        print("lightbox render: no input files", file=sys.stderr)
        return EXIT_FAILED
    if preset is not None and preset.lower() not in CT_PRESETS:
        print(f"lightbox render: unknown preset '{escape(preset)}'", file=sys.stderr)
        return EXIT_FAILED
    to_folder = len(paths) > 1 or out.is_dir()
    if to_folder:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            reason = exc.strerror or exc
            print(
                f"{escape(out)}: cannot create the output folder: {escape(reason)}", file=sys.stderr
            )
            return EXIT_FAILED
    elif out.parent != Path("") and not out.parent.is_dir():
        print(f"{escape(out)}: the folder {escape(out.parent)} does not exist", file=sys.stderr)
        return EXIT_FAILED

    taken: set[str] = set()
    rendered = 0
    output_failures = 0
    for path in paths:
        try:
            result = render_file(
                path, frame_index=frame - 1, window=window, preset=preset, overlays=overlays
            )
        except RenderError as exc:
            print(f"{escape(exc.path)}: {escape(exc.reason)}", file=sys.stderr)
            continue
        target = _unique(out, output_name(path), taken) if to_folder else out
        try:
            write_png(result.image, target)
        except (OSError, ValueError) as exc:
            output_failures += 1
            reason = getattr(exc, "strerror", None) or str(exc)
            print(
                f"{escape(path)}: cannot write {escape(target)}: {escape(reason)}", file=sys.stderr
            )
            continue
        rendered += 1
    if rendered == len(paths):
        return EXIT_OK
    if rendered == 0:
        return EXIT_FAILED
    return EXIT_PROBLEMS
