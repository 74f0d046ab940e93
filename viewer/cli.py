"""The ``lightbox`` command: the GUI with no subcommand, headless subcommands otherwise.

Exit codes (DEVELOPERS.md): 0 done; 1 done with problems (listed); 2 usage error; 3 could not
do it at all. No uncaught traceback reaches the user. PySide6 is imported only inside
:func:`_cmd_open`, so every headless subcommand runs where Qt is absent.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from viewer import __version__

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_FAILED = 3

log = logging.getLogger("lightbox")


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors already; keep its message, drop nothing."""


def _parse_window(text: str) -> tuple[float, float] | str:
    if text.lower() == "minmax":
        return "minmax"
    try:
        center_text, width_text = text.split(",")
        center, width = float(center_text), float(width_text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not CENTER,WIDTH (for example 40,400) nor 'minmax'"
        ) from None
    if width < 1:
        raise argparse.ArgumentTypeError(f"window width must be at least 1, not {width:g}")
    return center, width


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("frames count from 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lightbox",
        description="Lightbox DICOM workstation. With no subcommand, opens the viewer "
        "(on PATH when given: a file, a folder or a DICOMDIR).",
    )
    parser.add_argument("--version", action="version", version=f"lightbox {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more (never patient data)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p_open = sub.add_parser("open", help="open the viewer on a file, folder or DICOMDIR")
    p_open.add_argument("paths", nargs="*", metavar="PATH")
    p_open.set_defaults(func=_cmd_open)

    p_render = sub.add_parser(
        "render",
        help="render images to PNG with the viewer's pipeline (no text annotations)",
        description="Render DICOM images to PNG at native size, with the same pipeline as the "
        "view: 8-bit grey or 24-bit RGB, overlays drawn unless --no-overlays. Without a window "
        "option, the default window (the file's first Window Center/Width, else its first VOI "
        "LUT, else the frame's min-max).",
    )
    p_render.add_argument("files", nargs="+", metavar="FILE")
    p_render.add_argument(
        "-o", "--output", required=True, metavar="OUT",
        help="a PNG file for one input; a folder for several (OUT/<input name>.png)",
    )
    p_render.add_argument("--frame", type=_positive_int, default=1, help="frame number, from 1")
    group = p_render.add_mutually_exclusive_group()
    group.add_argument(
        "--window", type=_parse_window, metavar="C,W|minmax",
        help="window centre and width in modality units, or minmax",
    )
    group.add_argument("--preset", metavar="NAME", help="a CT preset: brain, lung, bone, ...")
    p_render.add_argument("--no-overlays", action="store_true", help="leave overlays out")
    p_render.set_defaults(func=_cmd_render)
    return parser


def _cmd_open(args: argparse.Namespace) -> int:
    from viewer.qt.app import run_gui  # the only place the CLI reaches into Qt

    return run_gui(list(args.paths))


def _cmd_render(args: argparse.Namespace) -> int:
    from viewer.imaging.display import CT_PRESETS
    from viewer.imaging.render import run_render

    if args.preset is not None and args.preset.lower() not in CT_PRESETS:
        names = ", ".join(CT_PRESETS)
        print(f"lightbox render: unknown preset {args.preset!r} (choose from {names})",
              file=sys.stderr)
        return EXIT_USAGE
    return run_render(
        args.files,
        args.output,
        frame=args.frame,
        window=args.window,
        preset=args.preset.lower() if args.preset else None,
        overlays=not args.no_overlays,
    )


def _normalise_argv(argv: Sequence[str], subcommands: Sequence[str]) -> list[str]:
    """``lightbox PATH`` means ``lightbox open PATH``."""
    args = list(argv)
    first = next((i for i, a in enumerate(args) if not a.startswith("-")), None)
    if first is not None and args[first] not in subcommands:
        args.insert(first, "open")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    subparsers = next(
        a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
    )
    args_list = _normalise_argv(sys.argv[1:] if argv is None else argv, list(subparsers.choices))
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse: --help/--version exit 0, usage errors exit 2
        return int(exc.code or 0)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="lightbox: %(levelname)s: %(message)s",
    )
    func: Callable[[argparse.Namespace], int] = getattr(args, "func", _cmd_open)
    if not hasattr(args, "paths") and func is _cmd_open:
        args.paths = []
    try:
        return func(args)
    except KeyboardInterrupt:
        print("lightbox: interrupted", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # the last line of defence: a message, never a traceback
        log.debug("unexpected error", exc_info=True)
        print(f"lightbox: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
