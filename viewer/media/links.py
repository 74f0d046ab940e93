"""Symbolic links on untrusted media: what is followed and what is refused, decided in one place.

A disc, a USB stick or a folder someone hands over may hold symbolic links. A link leading out of
the media would make a scan list, and an import store, files of this computer (another patient's
study, anything readable) as if they were on the disc. The rules, for every reader (``ls`` and
the GUI's scan, ``import``, ``verify``, ``burn --from``, the media health report):

* A link whose target, every link on the way resolved, is outside the media root is never
  followed: it is one problem, ``PATH: symbolic link leading outside the media: not followed``.
* A folder walk never goes through a link (to a folder or to a file), so it cannot loop and reads
  each file once: a link staying inside the media points at something the walk reads where it
  lives. A link to nothing is a problem of its own.
* A DICOMDIR record may name a link that stays inside the media (its target is read through it);
  one that leaves is refused as above (:mod:`viewer.media.dicomdir`).
* A path named on the command line is the user's choice and is followed; its folder (or, for a
  file, the folder holding it) is the media root for everything found from there.

:func:`resolve_within` is the one test, used by every reader; :func:`walk_files` is the walk that
:mod:`viewer.media.scan`, :mod:`viewer.media.health` and the store's import share.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

from viewer.model import Problem

#: The problem said of a link leading out of the media (one line per link).
LEAVES_MEDIA = "symbolic link leading outside the media: not followed"
#: A FIFO, device or socket: opening one to read could block for ever, so it is never read.
NOT_REGULAR = "not a regular file"
#: The problem said of a link that points at nothing.
DANGLING = "symbolic link to nothing: not followed"


def resolve_within(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> str | None:
    """The real path of ``path`` (every symbolic link resolved) if it stays inside ``root``
    (itself resolved); None when it leads outside, or when that cannot be decided."""
    try:
        root_real = os.path.realpath(root)
        real = os.path.realpath(path)
        inside = os.path.commonpath([real, root_real]) == root_real
    except (OSError, ValueError):  # a loop of links (3.13+ strict), another drive (Windows)
        return None
    return real if inside else None


def link_problem(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> Problem | None:
    """What is wrong with the link ``path`` met under ``root``: it leads outside (refused), it
    points at nothing, or None (it stays inside: the walk reads its target where it lives)."""
    if resolve_within(path, root) is None:
        return Problem(str(path), LEAVES_MEDIA)
    if not os.path.exists(path):
        return Problem(str(path), DANGLING)
    return None


def walk_files(
    root: str | os.PathLike[str],
    problems: list[Problem],
    *,
    sort: bool = True,
    prune: Callable[[str], bool] | None = None,
    on_error: Callable[[str, OSError], None] | None = None,
) -> Iterator[Path]:
    """Regular files under ``root``, never through a symbolic link (see the module docstring);
    links leading out, dangling links and anything neither a file nor a folder (a FIFO would
    block a reader for ever) go to ``problems``, once each.

    ``sort``: each folder's names sorted, files before subfolders (a stable listing), else
    directory order (fewer seeks on optical media). ``prune(folder_path)`` true leaves a folder
    out (the store's own folder). ``on_error(folder, error)`` hears of a folder that cannot be
    listed (default: a problem ``FOLDER: cannot list: REASON``).
    """
    top = os.fspath(root)
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            if on_error is not None:
                on_error(folder, exc)
            else:
                problems.append(Problem(folder, f"cannot list: {exc.strerror or exc}"))
            continue
        if sort:
            entries.sort(key=lambda e: e.name)
        subfolders: list[str] = []
        for entry in entries:
            try:
                if entry.is_symlink():
                    problem = link_problem(entry.path, top)
                    if problem is not None:
                        problems.append(problem)
                    continue
                if entry.is_dir(follow_symlinks=False):
                    if prune is None or not prune(entry.path):
                        subfolders.append(entry.path)
                    continue
                if not entry.is_file(follow_symlinks=False):
                    problems.append(Problem(entry.path, NOT_REGULAR))
                    continue
            except OSError as exc:
                problems.append(Problem(entry.path, f"cannot be examined: {exc.strerror or exc}"))
                continue
            yield Path(entry.path)
        stack.extend(reversed(subfolders))
