"""The ``lightbox`` command: the GUI with no subcommand, headless subcommands otherwise.

Exit codes (DEVELOPERS.md): 0 done; 1 done with problems (listed); 2 usage error; 3 could not
do it at all. No uncaught traceback reaches the user. PySide6 is imported only inside
:func:`_cmd_open`, so every headless subcommand runs where Qt is absent.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from viewer import __version__
from viewer.text import escape, json_safe

if TYPE_CHECKING:
    from viewer.net.nodes import LocalSettings, Node
    from viewer.store import Receiver, Store

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_FAILED = 3

log = logging.getLogger("lightbox")


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
    parser = argparse.ArgumentParser(
        prog="lightbox",
        description="Lightbox DICOM workstation. With no subcommand, opens the viewer "
        "(on PATH when given: a file, a folder or a DICOMDIR).",
    )
    parser.add_argument("--version", action="version", version=f"lightbox {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log more (never patient data)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p_open = sub.add_parser(
        "open", help="open the viewer on a file, folder, DICOMDIR or disc image (.iso)"
    )
    p_open.add_argument("paths", nargs="*", metavar="PATH")
    p_open.add_argument(
        "--quit-when-shown",
        nargs="?",
        const=120.0,
        type=float,
        metavar="SECONDS",
        help="quit once the first image is on screen: exit 0, or 3 when none is within SECONDS "
        "(default 120; a smoke test of an installation: make smoke)",
    )
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
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="a PNG file for one input; a folder for several (OUT/<input name>.png)",
    )
    p_render.add_argument("--frame", type=_positive_int, default=1, help="frame number, from 1")
    group = p_render.add_mutually_exclusive_group()
    group.add_argument(
        "--window",
        type=_parse_window,
        metavar="C,W|minmax",
        help="window centre and width in modality units, or minmax",
    )
    group.add_argument("--preset", metavar="NAME", help="a CT preset: brain, lung, bone, ...")
    p_render.add_argument("--no-overlays", action="store_true", help="leave overlays out")
    p_render.set_defaults(func=_cmd_render)

    # -- media and the local store (issue 3) --------------------------------------------------
    p_ls = sub.add_parser(
        "ls",
        help="list what is on media, a disc image (.iso) or a folder, without importing",
        description="List the patients, studies and series on media (DICOMDIR), in an ISO 9660 "
        "disc image (read without mounting) or in a folder, and every problem of the media "
        "health report. Nothing is imported.",
    )
    p_ls.add_argument("path", metavar="PATH")
    p_ls.add_argument("--json", action="store_true", help="print JSON (see the README)")
    p_ls.add_argument(
        "--check",
        action="store_true",
        help="also open every file: presence, UIDs against the DICOMDIR, preambles, "
        "unreferenced files (the listing itself comes from the DICOMDIR alone)",
    )
    p_ls.set_defaults(func=_cmd_ls)

    p_import = sub.add_parser(
        "import",
        help="import files, folders, media or disc images (.iso) into the local store",
        description="Import into the local store; prints imported / already present / "
        "conflicts / rejected (with reasons). Ctrl+C cancels and leaves the store consistent.",
    )
    p_import.add_argument("paths", nargs="+", metavar="PATH")
    p_import.add_argument(
        "--receipt",
        metavar="FILE.html",
        help="write a printable receipt: what the disc listed, what was stored, SHA-256 per file",
    )
    p_import.set_defaults(func=_cmd_import)

    p_store = sub.add_parser("store", help="the local store: ls, rm, check")
    store_sub = p_store.add_subparsers(dest="store_command", metavar="STORE_COMMAND", required=True)
    p_sls = store_sub.add_parser("ls", help="list the store (problems: what check would report)")
    p_sls.add_argument("--json", action="store_true", help="print JSON (same shape as ls)")
    p_sls.set_defaults(func=_cmd_store_ls)
    p_srm = store_sub.add_parser("rm", help="delete a study or series (rows and files)")
    p_srm.add_argument("uid", metavar="UID", help="a Study or Series Instance UID")
    p_srm.set_defaults(func=_cmd_store_rm)
    p_schk = store_sub.add_parser(
        "check", help="find rows without files, files without rows, hash mismatches"
    )
    p_schk.add_argument("--repair", action="store_true", help="fix what can be fixed")
    p_schk.set_defaults(func=_cmd_store_check)
    p_shand = store_sub.add_parser(
        "handovers", help="hand-overs with storage commitment: per study, node and instance"
    )
    p_shand.add_argument("--study", metavar="UID", help="only this study")
    p_shand.add_argument("--json", action="store_true", help="print JSON")
    p_shand.set_defaults(func=_cmd_store_handovers)

    # -- network (issue 4) --------------------------------------------------------------------
    net_common = argparse.ArgumentParser(add_help=False)
    net_common.add_argument("--aet", metavar="TITLE", help="our AE title for this run")
    net_common.add_argument("--scp-port", type=int, metavar="N", help="our storage SCP port")
    node_help = "a configured node name, or AET@HOST:PORT (IPv6: AET@[::1]:PORT)"

    p_echo = sub.add_parser("echo", parents=[net_common], help="C-ECHO a node, with a diagnosis")
    p_echo.add_argument("node", metavar="NODE", help=node_help)
    p_echo.set_defaults(func=_cmd_echo)

    p_find = sub.add_parser("find", parents=[net_common], help="C-FIND on a node")
    p_find.add_argument("node", metavar="NODE", help=node_help)
    p_find.add_argument("--level", choices=["study", "series", "image"], default="study")
    p_find.add_argument(
        "-k",
        dest="keys",
        action="append",
        default=[],
        metavar="KEYWORD=VALUE",
        help="a filter or return key by DICOM keyword (repeatable)",
    )
    p_find.add_argument("--json", action="store_true", help="print a JSON list keyed by keyword")
    p_find.set_defaults(func=_cmd_find)

    # -- the worklist and reconciling an outside study (issue 13) ----------------------------
    wl_query = argparse.ArgumentParser(add_help=False)
    wl_query.add_argument("--patient-id", metavar="ID", default="")
    wl_query.add_argument("--name", metavar="NAME", default="", help="patient name (* ? wildcards)")
    wl_query.add_argument("--accession", metavar="NUMBER", default="")
    wl_query.add_argument(
        "--date", metavar="FROM[-TO]", default="", help="scheduled date or range, YYYYMMDD"
    )
    wl_query.add_argument("--modality", metavar="MOD", default="")
    wl_query.add_argument("--station", metavar="AET", default="", help="scheduled station AE")
    wl_query.add_argument("--json", action="store_true", help="print JSON")
    p_wl = sub.add_parser(
        "worklist", parents=[net_common, wl_query], help="list a node's Modality Worklist items"
    )
    p_wl.add_argument("node", metavar="NODE", help=node_help)
    p_wl.set_defaults(func=_cmd_worklist)
    p_rec = sub.add_parser(
        "reconcile",
        parents=[net_common, wl_query],
        help="coerce a stored outside study to the hospital's patient (copies to send)",
        description="Copies of a stored study with the hospital's Patient ID, name, birth date, "
        "sex and accession: from a worklist item (--worklist NODE with a query) or typed in "
        "(--patient-id ID and the rest). The study in the store is not changed.",
    )
    p_rec.add_argument("study", metavar="STUDY_UID")
    p_rec.add_argument("--worklist", metavar="NODE", help="take the identity from this worklist")
    p_rec.add_argument("--choose", type=_positive_int, metavar="N", help="the Nth listed item")
    p_rec.add_argument("--issuer", metavar="ISSUER", default="", help="Issuer of Patient ID")
    p_rec.add_argument("--birth-date", metavar="YYYYMMDD", default="")
    p_rec.add_argument("--sex", choices=["M", "F", "O"], default="")
    p_rec.add_argument("--description", metavar="TEXT", default="", help="study description")
    p_rec.add_argument("--reason", choices=["COERCE", "CORRECT"], default="COERCE")
    p_rec.add_argument(
        "--new-uids", action="store_true", help="new Study/Series/SOP Instance UIDs in the copies"
    )
    p_rec.add_argument("--out", type=Path, metavar="DIR", help="staging folder (empty or new)")
    p_rec.add_argument("--yes", action="store_true", help="write the copies without asking")
    p_rec.set_defaults(func=_cmd_reconcile)

    p_get = sub.add_parser(
        "get", parents=[net_common], help="retrieve a study or series into the local store"
    )
    p_get.add_argument("node", metavar="NODE", help=node_help)
    p_get.add_argument("--study", required=True, metavar="UID")
    p_get.add_argument("--series", metavar="UID")
    p_get.add_argument(
        "--method",
        choices=["move", "get"],
        help="C-MOVE into our storage SCP or C-GET (default: the node's)",
    )
    p_get.set_defaults(func=_cmd_get)

    p_send = sub.add_parser("send", parents=[net_common], help="C-STORE to a node")
    p_send.add_argument("node", metavar="NODE", help=node_help)
    what = p_send.add_mutually_exclusive_group(required=True)
    what.add_argument("--study", metavar="UID", help="a study of the local store")
    what.add_argument("--series", metavar="UID", help="a series of the local store")
    what.add_argument("paths", nargs="*", metavar="PATH", default=[])
    p_send.add_argument(
        "--commit",
        action="store_true",
        help="then ask the node to commit what it stored (Storage Commitment) and wait; a "
        "DICOMweb node: check with QIDO-RS that it lists each instance",
    )
    p_send.add_argument(
        "--commit-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds to wait for the commitment report (default 60)",
    )
    p_send.add_argument(
        "--receipt", metavar="FILE.html", help="with --commit: write a printable receipt"
    )
    p_send.set_defaults(func=_cmd_send)

    p_listen = sub.add_parser(
        "listen",
        parents=[net_common],
        help="run the storage SCP into the local store until interrupted",
    )
    p_listen.set_defaults(func=_cmd_listen)

    p_nodes = sub.add_parser("nodes", help="configured peers: add, ls, rm")
    nodes_sub = p_nodes.add_subparsers(dest="nodes_command", metavar="NODES_COMMAND", required=True)
    p_nadd = nodes_sub.add_parser("add", help="add or replace a node")
    p_nadd.add_argument("name", metavar="NAME")
    p_nadd.add_argument("aet", metavar="AET|URL", help="AE title, or a DICOMweb base URL")
    p_nadd.add_argument("host", metavar="HOST", nargs="?")
    p_nadd.add_argument("port", type=int, metavar="PORT", nargs="?")
    p_nadd.add_argument(
        "--method", choices=["move", "get"], default="move", help="preferred retrieve method"
    )
    p_nadd.add_argument("--tls-ca", metavar="FILE", help="CA file to verify the node (TLS)")
    p_nadd.add_argument("--tls-cert", metavar="FILE")
    p_nadd.add_argument("--tls-key", metavar="FILE")
    web_auth = p_nadd.add_mutually_exclusive_group()
    web_auth.add_argument("--user", metavar="USER", help="DICOMweb: HTTP basic authentication")
    web_auth.add_argument(
        "--bearer", action="store_true", help="DICOMweb: a bearer token authenticates"
    )
    p_nadd.add_argument(
        "--secret-file",
        metavar="FILE",
        help="DICOMweb: the password or token's file (else $LIGHTBOX_SECRET, else asked)",
    )
    p_nadd.add_argument(
        "--insecure",
        action="store_true",
        help="DICOMweb over https: do NOT verify the server's certificate (warned at each use)",
    )
    p_nadd.set_defaults(func=_cmd_nodes_add)
    p_nls = nodes_sub.add_parser("ls", help="list nodes")
    p_nls.set_defaults(func=_cmd_nodes_ls)
    p_nrm = nodes_sub.add_parser("rm", help="remove a node")
    p_nrm.add_argument("name", metavar="NAME")
    p_nrm.set_defaults(func=_cmd_nodes_rm)

    # -- media writing (issue 5) --------------------------------------------------------------
    p_burn = sub.add_parser(
        "burn",
        help="write IHE PDI media (folder, ISO image or disc), checked after writing",
        description="Write IHE PDI media for the chosen studies: DICOMDIR, DICOM/, README.TXT, "
        "INDEX.HTM; every file is read back and checked after writing.",
    )
    p_burn.add_argument(
        "--study",
        action="append",
        default=[],
        metavar="UID",
        help="a study (of the store, or of --from PATH); repeatable",
    )
    p_burn.add_argument(
        "--from",
        dest="source",
        metavar="PATH",
        help="take the studies from files, a folder or media instead of the store",
    )
    target = p_burn.add_mutually_exclusive_group(required=True)
    target.add_argument("--to", metavar="DIR", help="a folder (or a mounted USB stick)")
    target.add_argument("--iso", metavar="FILE", help="an ISO 9660 image")
    target.add_argument("--device", metavar="DEV", help="a disc writer (xorriso)")
    p_burn.add_argument("--profile", choices=["cd", "dvd-jpeg", "usb-jpeg"], default="cd")
    p_burn.add_argument(
        "--medium",
        choices=["cd", "dvd", "dvd-dl", "usb"],
        help="the medium whose size limits one disc (default: the profile's)",
    )
    p_burn.add_argument(
        "--label",
        default="",
        metavar="TEXT",
        help="text for the disc label and README.TXT (never the volume ID)",
    )
    deid = p_burn.add_argument_group(
        "de-identification (PS3.15 Annex E Basic Profile; for research and teaching, never the "
        "default)"
    )
    deid.add_argument("--deidentify", action="store_true", help="de-identify what is written")
    dates = deid.add_mutually_exclusive_group()
    dates.add_argument(
        "--keep-dates",
        action="store_true",
        help="Retain Longitudinal Temporal Information with Full Dates",
    )
    dates.add_argument(
        "--shift-dates",
        type=int,
        metavar="DAYS",
        help="Retain Longitudinal Temporal Information with Modified Dates: add DAYS "
        "(negative: earlier) to every date",
    )
    deid.add_argument(
        "--keep-characteristics", action="store_true", help="Retain Patient Characteristics"
    )
    deid.add_argument("--keep-device", action="store_true", help="Retain Device Identity")
    deid.add_argument("--keep-uids", action="store_true", help="Retain UIDs")
    p_burn.set_defaults(func=_cmd_burn)

    # -- reading tools (issue 11) --------------------------------------------------------------
    p_dump = sub.add_parser(
        "dump",
        help="print every element of a file: sequences, private tags, fragments",
        description="Print the whole data set of a DICOM file, one element per line indented "
        "by depth (as dcmdump does): the File Meta first, sequences and their items, private "
        "tags with their creator, and the fragments of encapsulated Pixel Data with their byte "
        "offsets. Values are escaped and cut at 200 characters; binary values show their "
        "length and first bytes.",
    )
    p_dump.add_argument("file", metavar="FILE")
    p_dump.add_argument(
        "--search",
        metavar="TEXT",
        help="only the elements whose keyword, tag ((0010,0010), 0010,0010 or 00100010), "
        "value or private creator matches, with the sequences and items holding them",
    )
    p_dump.add_argument(
        "--json",
        action="store_true",
        help="print JSON: path, transfer_syntax, warnings, elements (see the README)",
    )
    p_dump.set_defaults(func=_cmd_dump)

    p_movie = sub.add_parser(
        "movie",
        help="a series or cine to an MP4 or animated GIF, at its frame rate",
        description="Write one series (or a multi-frame cine) as a movie, each frame rendered "
        "as `lightbox render` renders it, in stack order: MP4 (H.264, else MPEG-4 Part 2) or "
        "GIF by the output's suffix. The frame rate is the file's (Cine Rate, Frame Time, "
        "Recommended Display Frame Rate; else 10) unless --fps. PATH may be files, folders or "
        "a DICOMDIR holding one series; with several, --series chooses one.",
    )
    p_movie.add_argument("paths", nargs="+", metavar="PATH")
    p_movie.add_argument("-o", "--output", required=True, metavar="OUT", help="OUT.mp4 or OUT.gif")
    p_movie.add_argument("--fps", type=_movie_fps, metavar="N", help="frames per second")
    p_movie.add_argument(
        "--series", metavar="UID|NUMBER", help="the series to write (Series Instance UID or number)"
    )
    movie_window = p_movie.add_mutually_exclusive_group()
    movie_window.add_argument(
        "--window",
        type=_movie_window,
        metavar="C,W|C/W|minmax",
        help="window centre and width in modality units (--window=-600,1500), or minmax",
    )
    movie_window.add_argument("--preset", metavar="NAME", help="a CT preset: brain, lung, ...")
    p_movie.add_argument("--no-overlays", action="store_true", help="leave overlays out")
    p_movie.set_defaults(func=_cmd_movie)

    p_verify = sub.add_parser("verify", help="check media (folder or .iso) as MEDIA.md says")
    p_verify.add_argument("path", metavar="PATH")
    p_verify.add_argument("--profile", choices=["cd", "dvd-jpeg", "usb-jpeg"])
    p_verify.set_defaults(func=_cmd_verify)

    p_desktop = sub.add_parser(
        "desktop",
        help="desktop integration: the menu entry and icons; DICOM files and discs open with "
        "Lightbox from the file manager",
        description="Install (or remove) the desktop entry, AppStream metainfo, MIME types and "
        "icons, by default in $XDG_DATA_HOME (~/.local/share), and make Lightbox the default "
        "application for DICOM files and media with a DICOMDIR (never for folders).",
    )
    p_desktop.add_argument("action", choices=["install", "uninstall"])
    where = p_desktop.add_mutually_exclusive_group()
    where.add_argument(
        "--prefix", type=Path, metavar="DIR", help="into DIR/share, without setting defaults"
    )
    where.add_argument(
        "--system", action="store_true", help="for every user, in /usr/local/share (as root)"
    )
    p_desktop.set_defaults(func=_cmd_desktop)

    p_diag = sub.add_parser(
        "diagnostics",
        help="write a diagnostic bundle (logs, configuration, versions; no patient data)",
        description="Write a zip to attach to a bug report: about.txt (versions, platform, the "
        "store in numbers), the log files without their DEBUG records, and the configuration "
        "with passwords redacted. Never the store's index or a DICOM file.",
    )
    p_diag.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE.zip",
        help="where to write it (a folder: a dated name in it; default: the current folder)",
    )
    p_diag.set_defaults(func=_cmd_diagnostics)
    return parser


def _cmd_open(args: argparse.Namespace) -> int:
    from viewer.qt.app import run_gui  # the only place the CLI reaches into Qt

    return run_gui(list(args.paths), quit_when_shown=getattr(args, "quit_when_shown", None))


def _cmd_render(args: argparse.Namespace) -> int:
    from viewer.imaging.display import CT_PRESETS
    from viewer.imaging.render import run_render

    if args.preset is not None and args.preset.lower() not in CT_PRESETS:
        names = ", ".join(CT_PRESETS)
        print(
            f"lightbox render: unknown preset {args.preset!r} (choose from {names})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return run_render(
        args.files,
        args.output,
        frame=args.frame,
        window=args.window,
        preset=args.preset.lower() if args.preset else None,
        overlays=not args.no_overlays,
    )


# -- shared helpers ----------------------------------------------------------------------------


def _json(data: object) -> str:
    """``--json`` output: names and values kept as they are (``ensure_ascii=False``), with
    what ``json.dumps`` leaves raw but a terminal would act on (DEL, C1, bidi overrides, U+2028,
    lone surrogates of undecodable file names) written as ``\\uNNNN``: same JSON, safe to print."""
    return json_safe(json.dumps(data, indent=2, ensure_ascii=False))


def _say(message: str) -> None:
    """One line on stderr. ``message`` is raw text (names, values, peers' words as they are):
    it is escaped here (:func:`viewer.text.escape`), once, so nothing from a disc or a peer
    can reach the terminal as a control character or split the line."""
    print(f"lightbox: {escape(message)}", file=sys.stderr)


@contextlib.contextmanager
def _cancel_on_signals() -> Iterator[threading.Event]:
    """Ctrl+C / SIGTERM set a cancel event, so long work stops cleanly instead of dying."""
    cancel = threading.Event()

    def handler(signum: int, frame: object) -> None:
        cancel.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield cancel
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class _Progress:
    """One self-overwriting progress line on stderr when it is a terminal, nothing otherwise."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.tty = sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        if self.tty:
            print(f"\r{self.what}: {done}/{total}", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tty:
            print(file=sys.stderr)


def _open_store() -> Store:
    from viewer.store import Store

    return Store.open()


# -- media and the store (issue 3) -------------------------------------------------------------


def _cmd_ls(args: argparse.Namespace) -> int:
    from viewer.media.health import check_media
    from viewer.media.listing import listing_text, tree_to_json
    from viewer.media.scan import scan
    from viewer.model import merge_problems

    path = Path(args.path)
    if not path.exists():
        _say(f"{path}: no such file or folder")
        return EXIT_FAILED
    with _cancel_on_signals() as cancel, contextlib.ExitStack() as held:
        if not _hold_disc_images([path], held, cancel):
            return EXIT_PROBLEMS if cancel.is_set() else EXIT_FAILED
        result = scan(path, cancel=cancel, headers=args.check)
        checked = args.check and not cancel.is_set()
        health = check_media(path, cancel=cancel) if checked else None
    problems = merge_problems(result.problems, health.problems if health else [])
    data = tree_to_json(result.patients, problems)
    print(_json(data) if args.json else listing_text(data))
    if cancel.is_set():
        _say("cancelled: the listing is incomplete")
        return EXIT_PROBLEMS
    return EXIT_PROBLEMS if problems else EXIT_OK


def _cmd_import(args: argparse.Namespace) -> int:
    from viewer.store import import_paths
    from viewer.store.commands import import_summary

    paths = [Path(p) for p in args.paths]
    missing = [p for p in paths if not p.exists()]
    for p in missing:
        _say(f"{p}: no such file or folder")
    if len(missing) == len(paths):
        return EXIT_FAILED
    progress = _Progress("importing")
    with _open_store() as store, _cancel_on_signals() as cancel, contextlib.ExitStack() as held:
        present = [p for p in paths if p.exists()]
        usable = _hold_disc_images(present, held, cancel, progress)
        if cancel.is_set():  # Ctrl+C while an image was unpacked: nothing imported, said so
            progress.close()
            _say("cancelled: nothing was imported")
            return EXIT_PROBLEMS
        if not usable:
            progress.close()
            return EXIT_FAILED
        report = import_paths(store, usable, cancel=cancel, progress=progress)
        complete = _import_receipt(args.receipt, usable, store, report, cancel)
    progress.close()
    print(import_summary(report))
    return EXIT_OK if report.ok and len(usable) == len(paths) and complete else EXIT_PROBLEMS


def _hold_disc_images(
    paths: list[Path],
    held: contextlib.ExitStack,
    cancel: threading.Event,
    progress: Callable[[int, int], None] | None = None,
) -> list[Path]:
    """Unpack the ISO 9660 images among ``paths`` once, held open in ``held`` (the scan, the
    health check and the import reuse them: viewer.media.disc_image); an image that cannot be
    read at all is said here and left out. Returns the paths left."""
    from viewer.media import disc_image

    usable = []
    for path in paths:
        if disc_image.is_disc_image(path):
            try:
                held.enter_context(disc_image.open_image(path, cancel=cancel, progress=progress))
            except disc_image.DiscImageError as exc:
                _say(str(exc))
                continue
        usable.append(path)
    return usable


def _cmd_store_ls(args: argparse.Namespace) -> int:
    from viewer.media.listing import listing_text
    from viewer.store.commands import listing

    with _open_store() as store:
        data = listing(store)
    print(_json(data) if args.json else listing_text(data))
    return EXIT_PROBLEMS if data["problems"] else EXIT_OK


def _cmd_store_rm(args: argparse.Namespace) -> int:
    from viewer.store import StoreError, delete_uid
    from viewer.store.commands import delete_summary

    with _open_store() as store:
        try:
            result = delete_uid(store, args.uid)
        except StoreError as exc:
            _say(str(exc))
            return EXIT_FAILED
    print(delete_summary(args.uid, result))
    return EXIT_OK


def _cmd_store_check(args: argparse.Namespace) -> int:
    from viewer.store import check
    from viewer.store.commands import check_summary

    progress = _Progress("checking")
    with _open_store() as store, _cancel_on_signals() as cancel:
        report = check(store, repair=args.repair, cancel=cancel, progress=progress)
    progress.close()
    print(check_summary(report))
    return EXIT_OK if report.ok else EXIT_PROBLEMS


def _cmd_store_handovers(args: argparse.Namespace) -> int:
    from viewer.store.index import HANDOVER_STATES, HELD_STATES, list_handovers

    with _open_store() as store:
        handovers = list_handovers(store, args.study)
    if args.json:
        print(
            _json(
                [
                    {
                        "study_instance_uid": h.study_instance_uid,
                        "node": h.node,
                        "transaction_uid": h.transaction_uid,
                        "requested_at": h.requested_at,
                        "reported_at": h.reported_at,
                        "handed_over": h.handed_over,
                        "instances": [
                            {
                                "sop_instance_uid": i.sop_instance_uid,
                                "sop_class_uid": i.sop_class_uid,
                                "state": i.state,
                                "reason": i.reason,
                            }
                            for i in h.instances or []
                        ],
                    }
                    for h in handovers
                ]
            )
        )
        return EXIT_OK
    for h in handovers:
        counts = ", ".join(
            f"{state} {h.count(state)}" for state in HANDOVER_STATES if h.count(state)
        )
        verdict = "HANDED OVER" if h.handed_over else "not handed over"
        print(
            f"{escape(h.requested_at or '-')}  {escape(h.study_instance_uid)}  to "
            f"{escape(h.node)}: {verdict} ({counts or 'nothing sent'})"
            + (f"  transaction {escape(h.transaction_uid)}" if h.transaction_uid else "")
        )
        for i in h.instances or []:
            if i.state not in HELD_STATES:
                print(
                    f"    {i.state}: {escape(i.sop_instance_uid)}"
                    + (f" ({escape(i.reason)})" if i.reason else "")
                )
    if not handovers:
        print("no hand-overs", file=sys.stderr)
    return EXIT_OK


def _import_receipt(
    target: str | None, paths: list[Path], store: Store, report: Any, cancel: threading.Event
) -> bool:
    """``import --receipt``: what each path listed (its DICOMDIR's records, else its files'
    headers) matched with the import's report, written as HTML; True when there is no receipt
    to write or it is complete (else it says INCOMPLETE and the exit code is 1)."""
    if not target:
        return True
    from viewer.media import receipt as rc
    from viewer.store import has_instance

    receipt = rc.receipt_of_import(
        paths, report, in_store=lambda uid: has_instance(store, uid), cancel=cancel
    )
    rc.write_receipt(receipt, Path(target))
    print(f"receipt: {escape(target)}" + ("" if receipt.complete else " (INCOMPLETE)"))
    return receipt.complete


# -- network (issue 4) -------------------------------------------------------------------------


def _net_setup(args: argparse.Namespace) -> tuple[Node, LocalSettings]:
    from viewer.net.nodes import load_config, with_overrides

    config = load_config()
    local = with_overrides(config.local, args.aet, args.scp_port)
    return config.node(args.node), local


def _store_receiver(store: Store) -> Receiver:
    """Received instances go through the store's one atomic import path: durable in the
    store's spool before the sender hears success, indexed in batches by a background thread
    (viewer.store.receiver). Use it as a context manager: leaving imports what is queued, and
    what a kill leaves spooled is imported by the next receiver on this store."""
    from viewer.store import Receiver

    return Receiver(store)


def _cmd_echo(args: argparse.Namespace) -> int:
    from viewer.net.echo import echo

    node, local = _net_setup(args)
    if node.is_web:  # DICOMweb: a one-study QIDO-RS search answers for the server
        from viewer.net import dicomweb

        ok, message, _seconds = dicomweb.echo(node, local)
        print(escape(message)) if ok else _say(message)
        return EXIT_OK if ok else EXIT_FAILED
    result = echo(node, local)
    if result.ok:
        print(f"{escape(node)}: C-ECHO OK ({result.seconds * 1e3:.0f} ms)")
        return EXIT_OK
    _say(f"{node}: {result.message}")
    return EXIT_FAILED


def _cmd_find(args: argparse.Namespace) -> int:
    from viewer.net.find import FindQuery, find

    keys: dict[str, str] = {}
    for item in args.keys:
        keyword, sep, value = item.partition("=")
        if not sep or not keyword:
            _say(f"-k '{item}': expected KEYWORD=VALUE")
            return EXIT_USAGE
        keys[keyword.strip()] = value
    try:
        query = FindQuery.from_keys(args.level.upper(), keys)
    except ValueError as exc:
        _say(str(exc))
        return EXIT_USAGE
    node, local = _net_setup(args)
    with _cancel_on_signals() as cancel:
        result = find(node, local, query, cancel=cancel)
    if args.json:
        print(_json(result.matches))
    else:  # the peer's values, escaped: one line per match whatever the peer sends
        for match in result.matches:
            print("  ".join(f"{escape(k)}={escape(v)}" for k, v in match.items() if v))
        print(f"{len(result.matches)} match(es)", file=sys.stderr)
    if result.note:  # a PACS with more matches than we keep (find.MAX_MATCHES)
        _say(f"{node}: {result.note}")
    return EXIT_PROBLEMS if result.cancelled or result.stopped_at else EXIT_OK


def _cmd_get(args: argparse.Namespace) -> int:
    from viewer.net.retrieve import RetrieveProgress, retrieve
    from viewer.store import has_instance

    node, local = _net_setup(args)

    def progress(p: RetrieveProgress) -> None:
        print(
            f"completed {p.completed}, failed {p.failed}, warning {p.warning}, "
            f"remaining {p.remaining} of {p.total}",
            file=sys.stderr,
            flush=True,
        )

    with (
        _open_store() as store,
        _store_receiver(store) as receiver,
        _cancel_on_signals() as cancel,
    ):
        result = retrieve(
            node,
            local,
            args.study,
            args.series,
            method=args.method,
            on_instance=receiver,
            is_present=lambda uid: has_instance(store, uid),
            cancel=cancel,
            progress=progress,
        )
    print(
        f"completed: {result.completed}, failed: {result.failed}, warning: {result.warning}, "
        f"already present: {result.skipped}" + (", cancelled" if result.cancelled else "")
    )
    for uid in result.failed_uids:
        print(f"  failed: {escape(uid)}")
    return EXIT_OK if result.ok else EXIT_PROBLEMS


def _paths_of(args: argparse.Namespace) -> list[Path]:
    """Files to send: a study or series of the store, or files and folders (DICOM files only)."""
    from viewer.store import StoreError, instance_paths, study_instance_paths

    if args.study or args.series:
        with _open_store() as store:
            found = (
                study_instance_paths(store, args.study)
                if args.study
                else instance_paths(store, args.series)
            )
        if not found:
            raise StoreError(f"{args.study or args.series}: not in the local store")
        return found
    from viewer.media.scan import scan

    files: list[Path] = []
    for raw in args.paths:
        path = Path(raw)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
        files.extend(i.path for i in scan(path).instances) if path.is_dir() else files.append(path)
    return files


def _cmd_send(args: argparse.Namespace) -> int:
    from viewer.net.send import send

    if args.receipt and not args.commit:
        _say("--receipt needs --commit (a receipt says what the node committed)")
        return EXIT_USAGE
    node, local = _net_setup(args)  # an unknown node is a usage error, whatever the paths
    try:
        paths = _paths_of(args)
    except (OSError, ValueError) as exc:
        _say(str(exc))
        return EXIT_FAILED
    progress = _Progress("sending")
    with _cancel_on_signals() as cancel:
        if not node.is_web:
            result = send(node, local, paths, cancel=cancel, progress=progress)
        else:  # STOW-RS (viewer.net.dicomweb), the same per-instance result
            from viewer.net import dicomweb

            result = dicomweb.send(node, local, paths, cancel=cancel, progress=progress)
        progress.close()
        print(
            f"sent: {result.sent}, warnings: {result.warnings}, failed: {len(result.failed)}"
            + (", cancelled" if result.cancelled else "")
        )
        for item in result.failed:
            status = "no answer" if item.status is None else f"status 0x{item.status:04X}"
            print(f"  {escape(item.path)}: {status} {escape(item.message)}".rstrip())
        if args.commit:
            return _commit_sent(args, node, local, result, cancel)
    return EXIT_OK if not result.failed and not result.cancelled else EXIT_PROBLEMS


def _commit_sent(
    args: argparse.Namespace, node: Node, local: LocalSettings, result: Any, cancel: threading.Event
) -> int:
    """``send --commit`` (issue 13, :mod:`viewer.handover`): Storage Commitment of what
    ``send`` stored (a DICOMweb node: a QIDO-RS check that it lists each instance), kept in
    the store; a receipt when asked. 0: all committed; 1: some failed, missing or not stored;
    3: the node refused the request or could not be reached."""
    from viewer.handover import confirm
    from viewer.net.diagnose import NetError

    how = "a QIDO-RS check" if node.is_web else "storage commitment"
    if result.stored and not cancel.is_set():
        print(
            f"requesting {how} of {len(result.stored)} instance(s) from {escape(node)}",
            file=sys.stderr,
            flush=True,
        )
    with _open_store() as store, _store_receiver(store) as receiver:
        try:
            outcome = confirm(
                node,
                local,
                result,
                store,
                on_instance=receiver,
                timeout=args.commit_timeout,
                cancel=cancel,
            )
        except NetError as exc:
            _say(f"{node}: {exc.message}")
            return EXIT_FAILED
    for note in outcome.notes:
        _say(note)
    if outcome.not_kept:
        _say(f"the hand-over could not be kept in the local store: {outcome.not_kept}")
    transaction = outcome.commitment.transaction_uid if outcome.commitment else ""
    print(outcome.summary() + (f" (transaction {transaction})" if transaction else ""))
    for uid, state, reason in outcome.problems():
        print(f"  {state}: {escape(uid)}" + (f" ({escape(reason)})" if reason else ""))
    if args.receipt:
        from viewer.media import receipt as rc

        receipt = outcome.receipt()
        rc.write_receipt(receipt, Path(args.receipt))
        print(f"receipt: {escape(args.receipt)}" + ("" if receipt.complete else " (INCOMPLETE)"))
    return EXIT_OK if outcome.complete else EXIT_PROBLEMS


def _cmd_listen(args: argparse.Namespace) -> int:
    from viewer.net.nodes import load_config, with_overrides
    from viewer.net.scp import serve_until

    local = with_overrides(load_config().local, args.aet, args.scp_port)
    with (
        _open_store() as store,
        _store_receiver(store) as receiver,
        _cancel_on_signals() as stop,
    ):
        print(
            f"listening as {local.ae_title} on port {local.scp_port} (Ctrl+C to stop)",
            file=sys.stderr,
            flush=True,
        )
        try:
            serve_until(local, receiver, stop)
        except OSError as exc:
            _say(
                f"cannot listen on port {local.scp_port}: {exc.strerror or exc} "
                "(is another storage SCP, perhaps Lightbox's GUI, using it?)"
            )
            return EXIT_FAILED
    return EXIT_OK


def _web_secret(args: argparse.Namespace) -> str:
    """A DICOMweb node's password or token: from a file, $LIGHTBOX_SECRET, or asked (never an
    argument: a command line is visible to every user of the computer)."""
    import getpass
    import os

    if args.secret_file:
        return Path(args.secret_file).read_text(encoding="utf-8").strip()
    if os.environ.get("LIGHTBOX_SECRET"):
        return os.environ["LIGHTBOX_SECRET"]
    if not sys.stdin.isatty():
        return ""
    return getpass.getpass("token: " if args.bearer else f"password for {args.user}: ")


def _cmd_nodes_add(args: argparse.Namespace) -> int:
    from viewer.net.nodes import Auth, Node, Tls, add_node

    tls = Tls(ca=args.tls_ca or "", cert=args.tls_cert or "", key=args.tls_key or "")
    for label, value in (("--tls-ca", tls.ca), ("--tls-cert", tls.cert), ("--tls-key", tls.key)):
        if value and not Path(value).is_file():
            _say(f"{label} {value}: no such file")
            return EXIT_USAGE
    if args.aet.startswith(("http://", "https://")):  # a DICOMweb node (issue 13)
        if args.host or args.port:
            _say("a DICOMweb node is its URL alone: no HOST or PORT")
            return EXIT_USAGE
        auth: Auth = "basic" if args.user else "bearer" if args.bearer else "none"
        secret = _web_secret(args) if auth != "none" else ""
        node = Node(
            args.name,
            url=args.aet,
            tls=tls,
            auth=auth,
            user=args.user or "",
            secret=secret,
            insecure=args.insecure,
        )
        if args.insecure:
            _say(f"{node}: the server's TLS certificate will NOT be verified (--insecure)")
        if auth != "none" and node.url.startswith("http:"):
            _say(f"{node}: without https the {auth} credentials cross the network unencrypted")
    else:
        if args.host is None or args.port is None:
            _say("a DIMSE node needs AET HOST PORT (or give a DICOMweb URL)")
            return EXIT_USAGE
        if args.user or args.bearer or args.insecure or args.secret_file:
            _say("--user, --bearer, --secret-file and --insecure are for DICOMweb nodes")
            return EXIT_USAGE
        node = Node(args.name, args.aet, args.host, args.port, tls=tls, retrieve_method=args.method)
    add_node(node)
    print(f"{escape(args.name)}: {escape(node.describe())}")
    return EXIT_OK


def _cmd_nodes_ls(args: argparse.Namespace) -> int:
    from viewer.net.nodes import load_config

    config = load_config()
    local = config.local
    print(f"our AE: {local.ae_title}, storage SCP port {local.scp_port}")
    for name, node in sorted(config.nodes.items()):  # never a DICOMweb node's secret
        print(f"{escape(name)}: {escape(node.describe())}")
    return EXIT_OK


def _cmd_nodes_rm(args: argparse.Namespace) -> int:
    from viewer.net.nodes import load_config, remove_node

    if args.name not in load_config().nodes:
        _say(f"no node named '{args.name}'")
        return EXIT_FAILED
    remove_node(args.name)
    return EXIT_OK


# -- media writing (issue 5) -------------------------------------------------------------------


def _burn_sources(args: argparse.Namespace) -> list[Path]:
    from viewer.store import StoreError, study_instance_paths

    if args.source:
        from viewer.media.scan import scan

        source = Path(args.source)
        if not source.exists():
            raise FileNotFoundError(f"{source}: no such file or folder")
        result = scan(source)
        for problem in result.problems:
            print(f"lightbox: {problem}", file=sys.stderr)  # Problem's str() is escaped
        args.source_problems = len(result.problems)
        wanted = set(args.study)
        return [i.path for i in result.instances if not wanted or i.study_instance_uid in wanted]
    paths: list[Path] = []
    with _open_store() as store:
        for uid in args.study:
            found = study_instance_paths(store, uid)
            if not found:
                raise StoreError(f"study {uid}: not in the local store")
            paths.extend(found)
    return paths


def _cmd_burn(args: argparse.Namespace) -> int:
    from viewer.media.plan import MediaError

    if not args.study and not args.source:
        _say("burn: name the studies (--study UID ...) or a source (--from PATH)")
        return EXIT_USAGE
    keep_options = (
        args.keep_dates,
        args.shift_dates is not None,
        args.keep_characteristics,
        args.keep_device,
        args.keep_uids,
    )
    if any(keep_options) and not args.deidentify:
        _say("burn: --keep-*/--shift-dates options go with --deidentify")
        return EXIT_USAGE
    try:
        paths = _burn_sources(args)
    except (OSError, ValueError) as exc:
        _say(str(exc))
        return EXIT_FAILED
    if not paths:
        _say("burn: nothing to write (no instances found)")
        return EXIT_FAILED
    options: dict[str, Any] = {"profile": args.profile, "medium": args.medium, "label": args.label}
    if args.deidentify:
        from viewer.media.deidentify import Deidentifier, DeidentifyOptions

        options["deidentify"] = Deidentifier(
            DeidentifyOptions(
                keep_dates=args.keep_dates,
                shift_dates=args.shift_dates,
                keep_characteristics=args.keep_characteristics,
                keep_device=args.keep_device,
                keep_uids=args.keep_uids,
            )
        )
    progress = _Progress("writing")
    try:
        with _cancel_on_signals() as cancel:
            options.update(cancel=cancel, progress=progress)
            if args.to:
                from viewer.media.writer import write_media

                report = write_media(paths, args.to, **options)
            elif args.iso:
                from viewer.media.iso import write_iso

                report = write_iso(paths, args.iso, **options)
            else:
                from viewer.media.iso import burn

                report = burn(paths, args.device, **options)
    except MediaError as exc:
        progress.close()
        _say(str(exc))
        return EXIT_FAILED
    progress.close()
    print(report.summary())
    source_problems: int = getattr(args, "source_problems", 0)
    return EXIT_OK if report.ok and not report.skipped and not source_problems else EXIT_PROBLEMS


def _cmd_verify(args: argparse.Namespace) -> int:
    from viewer.media.verify import verify

    path = Path(args.path)
    if not path.exists():
        _say(f"{path}: no such file or folder")
        return EXIT_FAILED
    report = verify(path, args.profile)
    print(report.summary())
    return EXIT_OK if report.ok else EXIT_PROBLEMS


# -- reading tools (issue 11) ------------------------------------------------------------------


def _cmd_dump(args: argparse.Namespace) -> int:
    from viewer.imaging.decode import DecodeError
    from viewer.imaging.dump import dump_file, dump_json, search, text_lines

    path = Path(args.file)
    try:
        dump = dump_file(path)
    except DecodeError as exc:
        _say(f"{exc.path}: {exc.reason}")
        return EXIT_FAILED
    nodes = search(dump.nodes, args.search) if args.search else dump.nodes
    if args.json:
        print(_json(dump_json(dump, nodes)))
    else:
        for line in text_lines(nodes):  # every name and value in a node is escaped already
            print(line)
    for warning in dump.warnings:
        _say(f"{path}: {warning}")
    return EXIT_PROBLEMS if dump.warnings else EXIT_OK


def _movie_window(text: str) -> tuple[float, float] | str:
    """``render``'s CENTER,WIDTH or minmax, and CENTER/WIDTH as the corners write it."""
    return _parse_window(text.replace("/", ",", 1))


def _movie_fps(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.1 <= value <= 120:
        raise argparse.ArgumentTypeError("frames per second go from 0.1 to 120")
    return value


def _cmd_movie(args: argparse.Namespace) -> int:
    from viewer.imaging.display import CT_PRESETS
    from viewer.imaging.movie import (
        MovieError,
        describe_stacks,
        movie_format,
        stack_fps,
        stack_frames,
        write_movie,
    )
    from viewer.imaging.render import RenderError
    from viewer.imaging.stack import route
    from viewer.media.scan import scan
    from viewer.model import Instance, Series

    if args.preset is not None and args.preset.lower() not in CT_PRESETS:
        _say(f"movie: unknown preset '{args.preset}' (choose from {', '.join(CT_PRESETS)})")
        return EXIT_USAGE
    try:
        movie_format(args.output)
    except MovieError as exc:
        _say(str(exc))
        return EXIT_USAGE
    instances: list[Instance] = []
    series: list[Series] = []
    problems = 0
    with _cancel_on_signals() as cancel:
        for raw in args.paths:
            path = Path(raw)
            if not path.exists():
                _say(f"{path}: no such file or folder")
                problems += 1
                continue
            result = scan(path, cancel=cancel)
            for problem in result.problems:
                print(f"lightbox: {problem}", file=sys.stderr)  # Problem's str() is escaped
            problems += len(result.problems)
            instances.extend(result.instances)
            series.extend(result.series())
        stacks = route(instances, series=series).stacks
        if args.series:
            wanted = args.series.strip()
            stacks = [
                s
                for s in stacks
                if s.series_instance_uid == wanted or str(s.series_number) == wanted
            ]
        if not stacks:
            what = f"series {args.series}" if args.series else "images"
            _say(f"movie: no {what} to write in {', '.join(args.paths)}")
            return EXIT_FAILED
        if len(stacks) > 1:
            _say("movie: choose one series (--series UID or NUMBER, or one multi-frame file):")
            for line in describe_stacks(stacks):
                print(f"  {escape(line)}", file=sys.stderr)
            return EXIT_USAGE
        stack = stacks[0]
        fps = args.fps or stack_fps(stack)
        failed: list[RenderError] = []

        def on_problem(error: RenderError) -> None:
            failed.append(error)
            _say(f"{error.path}: {error.reason}")

        frames = stack_frames(
            stack,
            window=args.window,
            preset=args.preset.lower() if args.preset else None,
            overlays=not args.no_overlays,
            on_problem=on_problem,
        )
        progress = _Progress("encoding")
        try:
            report = write_movie(
                frames,
                args.output,
                fps,
                cancel=cancel,
                progress=progress,
                total=len(stack.frames),
            )
        except MovieError as exc:
            progress.close()
            _say(str(exc))
            return EXIT_FAILED
        progress.close()
    if report.cancelled:
        _say("movie: cancelled, nothing written")
        return EXIT_PROBLEMS
    print(
        f"{escape(args.output)}: {report.frames} frames, {report.width}x{report.height}, "
        f"{report.fps:g} fps, {report.codec}"
    )
    return EXIT_PROBLEMS if failed or problems else EXIT_OK


def _cmd_desktop(args: argparse.Namespace) -> int:
    from viewer import desktop

    notes: list[str] = []
    installing = args.action == "install"
    action = desktop.install if installing else desktop.uninstall
    try:
        paths = action(args.prefix, system=args.system, notes=notes)
    except desktop.DesktopError as exc:
        for note in notes:
            print(f"note: {escape(note)}", file=sys.stderr)
        print(f"lightbox: {escape(str(exc))}", file=sys.stderr)
        return EXIT_PROBLEMS
    for path in paths:
        print(f"{'installed' if installing else 'removed'} {escape(str(path))}")
    if not paths and not installing:
        folder = desktop.target_folder(args.prefix, system=args.system)
        print(f"nothing of Lightbox's was installed in {escape(str(folder))}")
    for note in notes:
        print(f"note: {escape(note)}")
    return EXIT_OK


def _cmd_diagnostics(args: argparse.Namespace) -> int:
    from viewer.diagnostics import write_bundle

    target = args.output if args.output is not None else Path.cwd()
    try:
        path = write_bundle(target)
    except OSError as exc:
        _say(f"cannot write the diagnostic bundle to {target}: {exc.strerror or exc}")
        return EXIT_FAILED
    print(escape(str(path)))
    return EXIT_OK


# -- the worklist and reconciliation (issue 13) ---------------------------------------------


def _worklist_query(args: argparse.Namespace) -> Any:
    from viewer.net.worklist import WorklistQuery

    first, _, last = args.date.partition("-")
    return WorklistQuery(
        patient_name=args.name,
        patient_id=args.patient_id,
        accession_number=args.accession,
        date_from=first,
        date_to=last if "-" in args.date else first,
        modality=args.modality,
        station_ae=args.station,
    )


def _cmd_worklist(args: argparse.Namespace) -> int:
    from viewer.net.worklist import query_worklist

    try:
        query = _worklist_query(args)
    except ValueError as exc:
        _say(str(exc))
        return EXIT_USAGE
    node, local = _net_setup(args)
    with _cancel_on_signals() as cancel:
        result = query_worklist(node, local, query, cancel=cancel)
    if args.json:
        print(_json([item.to_dict() for item in result.items]))
    else:
        for number, item in enumerate(result.items, start=1):
            print(f"{number}. {escape(item.summary())}")
        print(f"{len(result.items)} worklist item(s)", file=sys.stderr)
    if result.note:
        _say(f"{node}: {result.note}")
    return EXIT_PROBLEMS if result.cancelled or result.stopped_at else EXIT_OK


def _reconcile_target(args: argparse.Namespace) -> tuple[Any, Any, int]:
    """(Identity, the worklist item or None, exit code when there is no identity)."""
    from viewer.store.reconcile import Identity

    if not args.worklist:
        if not args.patient_id:
            _say("reconcile needs --worklist NODE (with a query) or --patient-id ID")
            return None, None, EXIT_USAGE
        if args.choose or args.date or args.modality or args.station:
            _say("--choose, --date, --modality and --station query a worklist: add --worklist")
            return None, None, EXIT_USAGE
        identity = Identity(
            patient_id=args.patient_id,
            issuer_of_patient_id=args.issuer,
            patient_name=args.name,
            birth_date=args.birth_date,
            sex=args.sex,
            accession_number=args.accession,
            study_description=args.description,
        )
        return identity, None, EXIT_OK
    if args.issuer or args.birth_date or args.sex:
        _say("--issuer, --birth-date and --sex come from the worklist item with --worklist")
        return None, None, EXIT_USAGE
    from viewer.net.nodes import load_config, with_overrides
    from viewer.net.worklist import query_worklist

    query = _worklist_query(args)
    config = load_config()
    node = config.node(args.worklist)
    local = with_overrides(config.local, args.aet, args.scp_port)
    with _cancel_on_signals() as cancel:
        result = query_worklist(node, local, query, cancel=cancel)
    items = result.items
    if result.cancelled:
        _say("the worklist query was cancelled")
        return None, None, EXIT_PROBLEMS
    if not items:
        _say(f"{node}: no worklist item matches the query")
        return None, None, EXIT_PROBLEMS
    if args.choose and args.choose > len(items):
        _say(f"--choose {args.choose}: the worklist listed {len(items)} item(s)")
        return None, None, EXIT_USAGE
    if len(items) > 1 and not args.choose:
        print(f"{len(items)} worklist items match:", file=sys.stderr)
        for number, item in enumerate(items, start=1):
            print(f"  {number}. {escape(item.summary())}", file=sys.stderr)
        _say("narrow the query (--patient-id, --accession, --date...) or pick one with --choose N")
        return None, None, EXIT_PROBLEMS
    item = items[(args.choose or 1) - 1]
    try:
        identity = Identity(
            patient_id=item.patient_id,
            issuer_of_patient_id=item.issuer_of_patient_id,
            patient_name=item.patient_name,
            birth_date=item.birth_date if len(item.birth_date) == 8 else "",
            sex=item.sex if item.sex in ("M", "F", "O") else "",
            accession_number=item.accession_number,
            study_description=args.description or item.requested_procedure_description,
            study_instance_uid=item.study_instance_uid,
        )
    except ValueError as exc:  # the worklist's own values (an order without a Patient ID)
        _say(f"{node}: the worklist item cannot be used: {exc}")
        return None, None, EXIT_PROBLEMS
    return identity, item, EXIT_OK


def _cmd_reconcile(args: argparse.Namespace) -> int:
    import time

    from viewer.config import app_home
    from viewer.store.reconcile import plan, write

    try:
        identity, item, code = _reconcile_target(args)
    except ValueError as exc:  # a bad date, sex or ID typed, an unknown node
        _say(str(exc))
        return EXIT_USAGE
    if identity is None:
        return code
    out = args.out or app_home() / "staging" / time.strftime("reconcile-%Y%m%d-%H%M%S")
    with _open_store() as store:
        rec = plan(store, args.study, identity, new_uids=args.new_uids, reason=args.reason)
        go = args.yes
        if not args.json:
            print(f"study {escape(rec.study_instance_uid)}: {rec.instances} instance(s)")
            for change in rec.changes:
                old = " | ".join(escape(v) or "(empty)" for v in change.old)
                mark = "" if change.changes else "  (unchanged)"
                print(f"  {change.keyword}: {old} -> {escape(change.new)}{mark}")
            for other_id, issuer in rec.other_ids:
                kept = escape(other_id) + (f" ({escape(issuer)})" if issuer else "")
                print(f"  OtherPatientIDsSequence: + {kept}")
            if rec.new_uids:
                print(f"  StudyInstanceUID: -> {escape(rec.new_study_instance_uid)} (new UIDs)")
            if not go and sys.stdin.isatty():
                question = f"write {rec.instances} reconciled copies to {escape(out)}? [y/N] "
                with contextlib.suppress(EOFError):
                    go = input(question).strip().lower() in ("y", "yes")
        report = None
        if go:
            progress = _Progress("reconciling")
            with _cancel_on_signals() as cancel:
                report = write(store, rec, out, cancel=cancel, progress=progress)
            progress.close()
    problems = rec.problems + (report.problems if report else [])
    if args.json:
        data: dict[str, Any] = {"plan": rec.to_dict(), "worklist_item": None, "out": None}
        if item is not None:
            data["worklist_item"] = item.to_dict()
        if report is not None:
            data |= {"out": str(out), "written": len(report.written), "problems": problems}
        print(_json(data))
    elif report is not None:
        print(f"{len(report.written)} reconciled copies in {escape(out)}")
    else:
        print("nothing written: add --yes to write the copies")
    for problem in problems:
        _say(problem)
    if report is not None and report.cancelled:
        _say("cancelled: the staging folder is incomplete")
    return EXIT_PROBLEMS if problems or (report is not None and report.cancelled) else EXIT_OK


def _normalise_argv(argv: Sequence[str], subcommands: Sequence[str]) -> list[str]:
    """``lightbox PATH`` means ``lightbox open PATH``."""
    args = list(argv)
    first = next((i for i, a in enumerate(args) if not a.startswith("-")), None)
    if first is not None and args[first] not in subcommands:
        args.insert(first, "open")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    args_list = _normalise_argv(sys.argv[1:] if argv is None else argv, list(subparsers.choices))
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse: --help/--version exit 0, usage errors exit 2
        return int(exc.code or 0)
    # stderr as always (WARNING, DEBUG with -v) and the rotating log file of the app folder at
    # the reader's level (viewer.logs); both escape what records quote from discs and peers.
    from viewer import logs

    logs.configure(verbose=args.verbose)
    func: Callable[[argparse.Namespace], int] = getattr(args, "func", _cmd_open)
    if not hasattr(args, "paths") and func is _cmd_open:
        args.paths = []
    command = func.__name__.removeprefix("_cmd_").replace("_", " ")  # never its arguments
    session = logging.getLogger(logs.FILE_ONLY)  # the file's record of this run, not stderr's
    session.info("%s started (Lightbox %s)", command, __version__)
    try:
        code = func(args)
    except KeyboardInterrupt:
        print("lightbox: interrupted", file=sys.stderr)
        code = EXIT_FAILED
    except Exception as exc:  # the last line of defence: a message, never a traceback
        code, message = _explain(exc)
        log.debug("failed", exc_info=True)
        print(f"lightbox: {escape(message)}", file=sys.stderr)
    session.info("%s ended: exit %d", command, code)
    return code


def _explain(exc: Exception) -> tuple[int, str]:
    """Exit code and message for an error a subcommand let through. The error classes are
    looked up only in modules already imported, so the CLI's start-up stays light."""
    nodes = sys.modules.get("viewer.net.nodes")
    if nodes is not None and isinstance(exc, nodes.ConfigError):
        return EXIT_USAGE, str(exc)
    diagnose = sys.modules.get("viewer.net.diagnose")
    if diagnose is not None and isinstance(exc, diagnose.NetError):
        return EXIT_FAILED, exc.message
    store = sys.modules.get("viewer.store.store")
    if store is not None and isinstance(exc, store.StoreError):
        # "the store's disc is full: FOLDER", "the store is read-only: FOLDER" say it already
        text = str(exc)
        return EXIT_FAILED, text if text.startswith("the store") else f"local store: {text}"
    if isinstance(exc, OSError):
        return EXIT_FAILED, str(exc)
    return EXIT_FAILED, f"{type(exc).__name__}: {exc}"


if __name__ == "__main__":
    sys.exit(main())
