"""What the fuzz harness runs on each input, and what counts as a crash.

Each target takes the input's bytes and a private work folder, writes the bytes as a file and
runs one reader. It raises :class:`Finding` when the reader broke its contract:

- an exception other than the documented one escapes (DecodeError from the file reader and the
  decoders, DicomdirError from the DICOMDIR reader; ``scan`` returns problems and never
  raises; the CLI returns an exit code 0..3), including BaseExceptions such as pyo3's
  PanicException;
- a library wrote to stderr (gdcm's C++ warnings, pydicom's warnings or log records): the
  descriptor 2 itself is captured, so output from native code is seen too. For the CLI, every
  stderr line must be a ``path: problem`` line (or ``lightbox: ...``);
- the reader said "not enough memory" for a small input: it allocated from a declared length.
  Workers run under an address-space limit (RLIMIT_AS) so such an allocation fails quickly
  instead of taking the machine.

Aborts, segfaults and hangs are detected by whoever runs the target (libFuzzer under atheris,
or the parent process of the plain random engine, see :mod:`tests.fuzz.fuzz`).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np


class Finding(Exception):
    """The input made a reader break its contract; ``str()`` says how."""


#: Inputs no larger than this must never need "not enough memory" (they are fuzz inputs).
SMALL_INPUT = 4 << 20

_KEEP = (KeyboardInterrupt, SystemExit, GeneratorExit)


@contextlib.contextmanager
def captured_stderr() -> Iterator[io.StringIO]:
    """Capture file descriptor 2: Python's ``sys.stderr`` and native libraries both write there."""
    sink = io.StringIO()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield sink
        finally:
            try:
                sys.stderr.flush()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            tmp.seek(0)
            try:
                sink.write(tmp.read(1 << 16).decode("utf-8", "replace"))
            except MemoryError:  # a decoder that ran out of memory may not have given it back
                sink.write("(stderr not read: out of memory)")


def _guard(
    what: str, call: Callable[[], object], allowed: tuple[type[BaseException], ...]
) -> object:
    """Run ``call``; documented exceptions come back as values, anything else is a Finding."""
    try:
        return call()
    except allowed as exc:
        return exc
    except _KEEP:
        raise
    except Finding:
        raise
    except BaseException as exc:  # PanicException is a BaseException
        raise Finding(f"{what}: {type(exc).__module__}.{type(exc).__name__}: {exc}") from exc


_MEMORY_WORDS = ("not enough memory", "Unable to allocate", "MemoryError", "bad_alloc")


def _check_memory(what: str, exc: object, size: int) -> None:
    text = str(exc) if isinstance(exc, Exception) else ""
    if any(word in text for word in _MEMORY_WORDS) and size <= SMALL_INPUT:
        raise Finding(f"{what}: a {size}-byte input needed more memory than the limit: {exc}")


def _no_stderr(what: str, text: str) -> None:
    if text.strip():
        raise Finding(f"{what}: wrote to stderr: {text.strip()[:600]!r}")


def _values(ds: object) -> None:
    for tag in list(ds.keys()):  # type: ignore[attr-defined]
        _ = ds[tag].value  # type: ignore[index]


def _write(data: bytes, workdir: Path, name: str = "input.dcm") -> Path:
    folder = workdir / "in"
    if folder.exists():
        for child in folder.iterdir():
            if child.is_file() or child.is_symlink():
                child.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------------------------


def target_read(data: bytes, workdir: Path) -> None:
    """viewer.imaging.decode.read_file, headers only and full."""
    from viewer.imaging.decode import DecodeError, read_file

    path = _write(data, workdir)
    with captured_stderr() as err:
        for headers_only in (True, False):
            result = _guard(
                f"read_file(headers_only={headers_only})",
                lambda h=headers_only: read_file(path, headers_only=h),  # type: ignore[misc]
                (DecodeError,),
            )
            _check_memory("read_file", result, len(data))
            if not isinstance(result, DecodeError):
                # what every caller does next: look at the top-level values
                _guard("values", lambda r=result: _values(r.dataset), ())  # type: ignore[misc]
    _no_stderr("read_file", err.getvalue())


def target_decode(data: bytes, workdir: Path) -> None:
    """decode_frame / decode_all, FrameRenderer(...).render() and the overlays."""
    from viewer.imaging.decode import DecodeError, decode_all, decode_frame, frame_count, read_file
    from viewer.imaging.display import FrameRenderer
    from viewer.imaging.overlay import draw_overlays, overlay_masks

    path = _write(data, workdir)
    with captured_stderr() as err:
        read = _guard("read_file", lambda: read_file(path), (DecodeError,))
        _check_memory("read_file", read, len(data))
        if isinstance(read, DecodeError):
            _no_stderr("read_file", err.getvalue())
            return
        ds = read.dataset  # type: ignore[attr-defined]
        count = frame_count(ds)
        frames = sorted({0, count - 1})[:2] if count < 10_000 else [0]
        if count <= 4:
            arr_all = _guard("decode_all", lambda: decode_all(ds), (DecodeError,))
            _check_memory("decode_all", arr_all, len(data))
        for index in frames:
            pixels = _guard(
                f"decode_frame({index})", lambda i=index: decode_frame(ds, i), (DecodeError,)
            )
            _check_memory("decode_frame", pixels, len(data))
            if not isinstance(pixels, np.ndarray):
                continue
            # documented: ValueError for a frame it cannot show (no palette, wrong shape)
            renderer = _guard(
                "FrameRenderer", lambda i=index, p=pixels: FrameRenderer(ds, i, p), (ValueError,)
            )
            if isinstance(renderer, ValueError):
                continue
            image = _guard("render", lambda r=renderer: np.array(r.render(), copy=True), ())
            _guard("render(minmax)", lambda r=renderer: r.render(r.minmax_window()), ())
            _guard(
                "overlays",
                lambda i=index, im=image: draw_overlays(im, overlay_masks(ds, i)),
                (),
            )
    _no_stderr("decode", err.getvalue())


def target_dicomdir(data: bytes, workdir: Path) -> None:
    """viewer.media.dicomdir.read_dicomdir on the input named DICOMDIR."""
    from viewer.media.dicomdir import DicomdirError, read_dicomdir

    path = _write(data, workdir, "DICOMDIR")
    with captured_stderr() as err:
        result = _guard("read_dicomdir", lambda: read_dicomdir(path), (DicomdirError,))
        if not isinstance(result, DicomdirError):
            for instance in result.instances:  # type: ignore[attr-defined]
                if not instance.path.is_file():
                    raise Finding(f"read_dicomdir: listed a missing file {instance.path}")
    _no_stderr("read_dicomdir", err.getvalue())


def target_scan(data: bytes, workdir: Path) -> None:
    """viewer.media.scan.scan on a folder holding the input (as a file and as a DICOMDIR)."""
    from viewer.media.scan import scan

    path = _write(data, workdir)
    (path.parent / "DICOMDIR").write_bytes(data)
    with captured_stderr() as err:
        for where in (path.parent, path):
            result = _guard(f"scan({where.name})", lambda w=where: scan(w), ())
            problems = result.problems  # type: ignore[attr-defined]
            for problem in problems:
                _check_memory("scan", problem, len(data))
    _no_stderr("scan", err.getvalue())


_PROBLEM_LINE = re.compile(r"^(\S.*?): \S")
_LOG_LINE = re.compile(r"^lightbox: (DEBUG|INFO|WARNING|ERROR|CRITICAL):")


def target_cli(data: bytes, workdir: Path) -> None:
    """``lightbox ls FOLDER --check`` (every file opened, as the listing alone does not) and
    ``lightbox render FILE -o OUT``: an exit code, clean stderr."""
    from viewer import cli

    path = _write(data, workdir)
    out = workdir / "out.png"
    for argv in (["ls", str(path.parent), "--check"], ["render", str(path), "-o", str(out)]):
        with captured_stderr() as err, contextlib.redirect_stdout(io.StringIO()):
            code = _guard(f"lightbox {argv[0]}", lambda a=argv: cli.main(a), ())
        if not isinstance(code, int) or not 0 <= code <= 3:
            raise Finding(f"lightbox {argv[0]}: exit code {code!r}")
        root = str(workdir)
        for line in err.getvalue().splitlines():
            if "Traceback" in line or not _PROBLEM_LINE.match(line):
                raise Finding(f"lightbox {argv[0]}: stderr line is no 'path: problem': {line!r}")
            if not (line.startswith(root) or line.startswith("lightbox: ")):
                raise Finding(f"lightbox {argv[0]}: stderr line names no input: {line!r}")
            if _LOG_LINE.match(line):
                raise Finding(f"lightbox {argv[0]}: library log output on stderr: {line!r}")
            if any(word in line for word in _MEMORY_WORDS) and len(data) <= SMALL_INPUT:
                raise Finding(f"lightbox {argv[0]}: small input needed too much memory: {line!r}")
        with contextlib.suppress(FileNotFoundError):
            out.unlink()


def target_dump(data: bytes, workdir: Path) -> None:
    """viewer.imaging.dump (``lightbox dump`` and the tag inspector): the tree, its text and
    JSON, a search; every line printed free of control characters."""
    import json

    from viewer.imaging.decode import DecodeError
    from viewer.imaging.dump import dump_file, dump_json, search, text_lines

    path = _write(data, workdir)
    with captured_stderr() as err:
        dump = _guard("dump_file", lambda: dump_file(path), (DecodeError,))
        _check_memory("dump_file", dump, len(data))
        if not isinstance(dump, DecodeError):
            lines = _guard("text_lines", lambda: list(text_lines(dump.nodes)), ())  # type: ignore[attr-defined]
            if isinstance(lines, list):
                for line in lines:
                    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in line):
                        raise Finding(f"dump printed a control character: {line[:200]!r}")
            _guard("dump_json", lambda: json.dumps(dump_json(dump)), ())  # type: ignore[arg-type]
            _guard("search", lambda: search(dump.nodes, "0010"), ())  # type: ignore[attr-defined]
    _no_stderr("dump", err.getvalue())


TARGETS: dict[str, Callable[[bytes, Path], None]] = {
    "read": target_read,
    "decode": target_decode,
    "dicomdir": target_dicomdir,
    "scan": target_scan,
    "cli": target_cli,
    "dump": target_dump,
}
