"""ISO 9660 disc images (``.iso``) read directly, without mounting (issue 13).

Every reader of media (scan, the DICOMDIR reader's mmap, the health report, the image loader
re-opening files for pixel data, the import copying files) works on paths. A disc image is
therefore *unpacked*: its files are copied, one at a time and streamed (never the whole image in
memory), into a private temporary folder (mode 0700, under :func:`tempfile.gettempdir`), and the
readers read that folder. What a reader says is said of the image, not of the folder:
``disc.iso!/DICOM/IM000001`` (:meth:`DiscImage.label`, :meth:`DiscImage.relabel`).

The image is untrusted, like any disc:

* names come from the primary ISO 9660 tree (``;1`` and a trailing ``.`` stripped, as a mounted
  disc shows them and as DICOM File IDs name them); a record without a usable primary name takes
  its Rock Ridge name, and an image whose primary tree holds no file is read through its Joliet
  tree; a name holding a path separator, NUL or another control character, or that is ``.`` or
  ``..``, is refused (a problem; the member is not written);
* at most :attr:`Limits.max_files` files and :attr:`Limits.max_depth` directory levels; a
  member whose extent runs past the end of the image is refused; symbolic links are not followed;
* nothing is written when the declared sizes together exceed :attr:`Limits.max_bytes` or the free
  space of the temporary folder (:class:`DiscImageError`, naming the image).

Unpacked images are shared: :func:`open_image` hands out a :class:`DiscImage` handle, and a
second opening of the same image (same file, size and modification time) while a handle is open
reuses its folder instead of unpacking again (the GUI lists, reads, checks and imports one disc
in four jobs). The folder is removed when the last handle is closed, and at exit (a handle
that is only dropped keeps it until then: paths taken from a result stay readable).
:class:`DiscReader` is the listing and the streaming underneath, which ``lightbox verify``
reads images with too.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import struct
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from viewer.model import Problem

log = logging.getLogger(__name__)

#: ISO 9660 volume descriptors start at sector 16 (32768); ``CD001`` follows the type byte.
MAGIC_OFFSET = 32769
MAGIC = b"CD001"
SUFFIXES = (".iso",)
#: Bytes of free space kept in the temporary folder's file system beyond what an image needs.
SPARE_BYTES = 64 << 20
_CHUNK = 1 << 20
_MULTI_EXTENT = 0x80
_MAX_DIRECTORY = 16 << 20  # bytes of one folder's records read at most

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class Limits:
    """What an image may hold before it is refused (a DVD-DL is 8.5 GB, a BD-DL 50 GB)."""

    max_bytes: int = 64 << 30
    max_files: int = 200_000
    max_depth: int = 32


class DiscImageError(Exception):
    """An image that cannot be read at all, or a member that cannot: says which."""

    def __init__(self, image: str | os.PathLike[str], reason: str, member: str = "") -> None:
        self.image = str(image)
        self.member = member
        self.reason = reason
        super().__init__(f"{self.where}: {reason}")

    @property
    def where(self) -> str:
        return f"{self.image}!/{self.member}" if self.member else self.image


class DiscImageCancelled(DiscImageError):
    pass


def is_disc_image(path: str | os.PathLike[str]) -> bool:
    """True for a regular file holding an ISO 9660 volume (``CD001`` at byte 32769), whatever
    its name; never opens anything else (a FIFO would block)."""
    try:
        if not os.path.isfile(path):
            return False
        with open(path, "rb") as fh:
            fh.seek(MAGIC_OFFSET - 1)
            head = fh.read(len(MAGIC) + 2)
    except OSError:
        return False
    # the Primary Volume Descriptor: type 1, "CD001", version 1 (ECMA-119 8.4)
    return head == b"\x01" + MAGIC + b"\x01"


def _clean(raw: str) -> str:
    """A recorded ISO 9660 identifier as a mounted disc shows it: ``IM1.;1`` -> ``IM1``."""
    name, semi, version = raw.rpartition(";")
    if not semi or not version.isdigit():
        name = raw
    return name.rstrip(".") if name not in (".", "..") else name


def refusal(name: str) -> str:
    """Why a member name is refused on an untrusted disc, or ``""``."""
    if not name:
        return "empty name"
    if name in (".", ".."):
        return f"name '{name}' would leave its folder"
    if "/" in name or "\\" in name:
        return "name holds a path separator"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "name holds NUL or a control character"
    return ""


@dataclass(slots=True)
class Member:
    """One file of the image: where it lives (extents: byte offset, length) and its name as
    recorded (for the ISO 9660 naming checks of ``verify``)."""

    rel: str
    recorded: str
    extents: list[tuple[int, int]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(length for _offset, length in self.extents)


class _Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...


class DiscReader:
    """The members of an ISO 9660 image (see the module docstring for names and limits), read
    by streaming from the image file. ``problems`` holds (relative path, reason) of what was
    refused. Raises :class:`DiscImageError` when the image cannot be read at all."""

    def __init__(self, path: str | os.PathLike[str], limits: Limits | None = None) -> None:
        import pycdlib

        self.path = Path(path)
        self.limits = limits or Limits()
        self.members: dict[str, Member] = {}
        self.directories: list[str] = []
        self.problems: list[tuple[str, str]] = []
        self.volume_id = ""
        iso = pycdlib.PyCdlib()
        try:
            iso.open(str(self.path))
        except Exception as exc:  # pycdlib's own exceptions, struct errors on a broken image
            raise DiscImageError(self.path, f"not a readable ISO 9660 image ({exc})") from None
        try:
            self.volume_id = iso.pvd.volume_identifier.decode("ascii", "replace").strip(" \x00")
            self._block = int(iso.logical_block_size)
            self._image_size = os.path.getsize(self.path)
            self._list(iso)
        except DiscImageError:
            raise
        except Exception as exc:
            raise DiscImageError(self.path, f"the ISO 9660 tree cannot be read ({exc})") from None
        finally:
            iso.close()
        self._fh = open(self.path, "rb")  # noqa: SIM115 - closed by close()

    def _list(self, iso: Any) -> None:
        self._walk(iso.get_record(iso_path="/"), joliet=False)
        if not self.members and iso.has_joliet():
            self.members.clear()
            self.directories.clear()
            self.problems.clear()
            self._walk(iso.get_record(joliet_path="/"), joliet=True)

    def _name(self, record: Any, joliet: bool) -> tuple[str, str]:
        """(recorded identifier, name to use)."""
        ident = bytes(record.file_identifier())
        recorded = ident.decode("utf-16-be" if joliet else "latin-1", "replace")
        name = _clean(recorded)
        rock = getattr(record, "rock_ridge", None)
        if not joliet and refusal(name) and rock is not None:
            try:
                rr = bytes(rock.name()).decode("utf-8", "replace")
            except Exception:
                rr = ""
            if rr and not refusal(rr):
                return recorded, rr
        return recorded, name

    def _declared(self, folder: Any) -> dict[tuple[bytes, int], int]:
        """(identifier, extent) -> data length as the folder's records declare it, read from
        the image: pycdlib quietly cuts a length running past the end of the image, and such a
        member is refused here rather than read as whatever ends the image."""
        out: dict[tuple[bytes, int], int] = {}
        start = int(folder.extent_location()) * self._block
        size = min(int(folder.data_length), _MAX_DIRECTORY)
        with open(self.path, "rb") as fh:
            fh.seek(start)
            data = fh.read(size)
        pos = 0
        while pos + 33 <= len(data):
            length = data[pos]
            if length == 0:  # records never cross a sector: the rest of this one is padding
                pos = (pos // self._block + 1) * self._block
                continue
            if length < 34 or pos + length > len(data):
                break
            extent, declared = struct.unpack_from("<I4xI", data, pos + 2)
            ident = bytes(data[pos + 33 : pos + 33 + data[pos + 32]])
            out[(ident, extent)] = declared
            pos += length
        return out

    def _walk(self, root: Any, *, joliet: bool) -> None:
        stack: list[tuple[Any, str, int]] = [(root, "", 0)]
        count = 0
        while stack:
            folder, rel_dir, depth = stack.pop()
            pending: Member | None = None
            declared = self._declared(folder)
            for child in folder.children:
                if child is None or child.is_dot() or child.is_dotdot():
                    continue
                recorded, name = self._name(child, joliet)
                shown = f"{rel_dir}/{name}" if rel_dir else name
                if pending is not None and pending.recorded == recorded and child.is_file():
                    target = pending  # the next extent of a multi-extent file
                else:
                    target = None
                    why = refusal(name)
                    if why:
                        self.problems.append(
                            (f"{rel_dir}/{recorded}" if rel_dir else recorded, why)
                        )
                        continue
                    if child.is_symlink():
                        self.problems.append(
                            (shown, "symbolic link on the disc image: not followed")
                        )
                        continue
                    if shown in self.members or shown in self.directories:
                        self.problems.append((shown, "name recorded twice: the first one is read"))
                        continue
                if child.is_dir():
                    if depth + 1 > self.limits.max_depth:
                        self.problems.append(
                            (shown, f"more than {self.limits.max_depth} folder levels: not read")
                        )
                        continue
                    self.directories.append(shown)
                    stack.append((child, shown, depth + 1))
                    continue
                extent = int(child.extent_location())
                offset = extent * self._block
                length = declared.get((bytes(child.file_identifier()), extent), -1)
                if length < 0:
                    length = int(child.data_length)
                if offset + length > self._image_size:
                    self.problems.append(
                        (
                            shown,
                            f"declared size {length} bytes at byte {offset} runs past the end of "
                            f"the image ({self._image_size} bytes): not read",
                        )
                    )
                    pending = None
                    continue
                if target is None:
                    count += 1
                    if count > self.limits.max_files:
                        raise DiscImageError(
                            self.path, f"more than {self.limits.max_files} files: refused"
                        )
                    target = Member(shown, recorded)
                    self.members[shown] = target
                target.extents.append((offset, length))
                pending = target if int(child.file_flags) & _MULTI_EXTENT else None

    @property
    def declared_bytes(self) -> int:
        return sum(m.size for m in self.members.values())

    def copy_to(self, rel: str, sink: _Sink, cancel: threading.Event | None = None) -> None:
        """Stream member ``rel`` into ``sink`` (a chunk at a time); raises
        :class:`DiscImageError` naming the member when the image ends early."""
        member = self.members[rel]
        for offset, length in member.extents:
            self._fh.seek(offset)
            left = length
            while left:
                if cancel is not None and cancel.is_set():
                    raise DiscImageCancelled(self.path, "cancelled", rel)
                chunk = self._fh.read(min(_CHUNK, left))
                if not chunk:
                    raise DiscImageError(
                        self.path, f"the image ends {left} bytes before the file does", rel
                    )
                sink.write(chunk)
                left -= len(chunk)

    def read(self, rel: str) -> bytes:
        out = bytearray()

        class _Buffer:
            def write(self, data: bytes) -> int:
                out.extend(data)
                return len(data)

        self.copy_to(rel, _Buffer())
        return bytes(out)

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> DiscReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- unpacking -----------------------------------------------------------------------------


@dataclass(eq=False)
class _Entry:
    key: tuple[str, int, int]
    root: Path | None = None
    problems: list[tuple[str, str]] = field(default_factory=list)
    refs: int = 0
    ready: threading.Event = field(default_factory=threading.Event)
    error: DiscImageError | None = None


_lock = threading.Lock()
_entries: dict[tuple[str, int, int], _Entry] = {}
_folders: set[str] = set()  # every folder made and not yet removed (removed at exit)


def _remove(folder: str) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    with _lock:
        _folders.discard(folder)


@atexit.register
def _remove_all() -> None:
    for folder in list(_folders):
        _remove(folder)


def _release(entry: _Entry) -> None:
    with _lock:
        entry.refs -= 1
        if entry.refs > 0:
            return
        if _entries.get(entry.key) is entry:
            del _entries[entry.key]
        root = entry.root
    if root is not None:
        # Removed here, by whoever lets go last: no thread left behind (a CD's few thousand
        # files take a fraction of a second; the GUI lets go when another medium has been read
        # or the window closes).
        _remove(str(root))


class DiscImage:
    """A handle on an unpacked image: ``root`` is the private folder holding its files.

    Close it (or use it as a context manager) when done; the folder goes with the last handle
    closed, and at exit. A handle merely dropped keeps the folder until the process ends: a
    caller that kept the paths of a result it let go of still reads them. ``problems`` are the
    members refused while unpacking, named in the image."""

    def __init__(self, entry: _Entry, image: Path) -> None:
        assert entry.root is not None
        self.image = image
        self.root: Path = entry.root
        self._entry = entry
        self._closed = False

    @property
    def problems(self) -> list[Problem]:
        return [Problem(self._shown(rel), reason) for rel, reason in self._entry.problems]

    def _shown(self, rel: str) -> str:
        return f"{self.image}!/{rel}" if rel else f"{self.image}!"

    def contains(self, path: str | os.PathLike[str]) -> bool:
        return self._rel(path) is not None

    def _rel(self, path: str | os.PathLike[str]) -> str | None:
        text = os.path.abspath(path)
        for root in (str(self.root), os.path.realpath(self.root)):
            if text == root:
                return ""
            if text.startswith(root + os.sep):
                return text[len(root) + 1 :].replace(os.sep, "/")
        return None

    def label(self, path: str | os.PathLike[str]) -> str:
        """``IMAGE!/REL`` for a path inside the unpacked folder; other paths as they are."""
        rel = self._rel(path)
        return str(path) if rel is None else self._shown(rel)

    def relabel_text(self, text: str) -> str:
        """``text`` with every mention of the unpacked folder said of the image instead."""
        for root in {str(self.root), os.path.realpath(self.root)}:
            text = text.replace(root + os.sep, f"{self.image}!/").replace(root, f"{self.image}!")
        return text

    def relabel(self, problem: Problem) -> Problem:
        return Problem(
            self.relabel_text(problem.path), self.relabel_text(problem.problem), problem.kind
        )

    def copy(self) -> DiscImage:
        """Another handle on the same folder (kept until both are closed)."""
        with _lock:
            self._entry.refs += 1
        return DiscImage(self._entry, self.image)

    def close(self) -> None:
        with _lock:
            if self._closed:
                return
            self._closed = True
        _release(self._entry)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> DiscImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DiscImage({str(self.image)!r}, root={str(self.root)!r})"


def _key(path: Path) -> tuple[str, int, int]:
    st = os.stat(path)
    return (os.path.realpath(path), st.st_size, st.st_mtime_ns)


def open_image(
    path: str | os.PathLike[str],
    *,
    cancel: threading.Event | None = None,
    progress: ProgressCallback | None = None,
    limits: Limits | None = None,
    scratch: str | os.PathLike[str] | None = None,
) -> DiscImage:
    """The image at ``path`` unpacked (or the folder another open handle unpacked it to).

    Blocks (call it from a worker); ``progress(done, total)`` counts files; ``cancel`` stops
    between chunks. Raises :class:`DiscImageError` (naming the image, and the member when one
    is the cause) when the image cannot be read or does not fit; :class:`DiscImageCancelled`
    when cancelled. Members that cannot be used are :attr:`DiscImage.problems` instead."""
    image = Path(path)
    try:
        key = _key(image)
    except OSError as exc:
        raise DiscImageError(image, f"cannot be read ({exc.strerror or exc})") from None
    while True:
        with _lock:
            entry = _entries.get(key)
            owner = entry is None
            if entry is None:
                entry = _Entry(key)
                _entries[key] = entry
            entry.refs += 1
        if owner:
            try:
                _unpack(image, entry, cancel, progress, limits or Limits(), scratch)
            except BaseException as exc:
                entry.error = (
                    exc if isinstance(exc, DiscImageError) else DiscImageError(image, str(exc))
                )
                with _lock:  # a failed unpacking is not shared: the next opener tries anew
                    if _entries.get(key) is entry:
                        del _entries[key]
                _release(entry)
                entry.ready.set()
                raise
            entry.ready.set()
            return DiscImage(entry, image)
        while not entry.ready.wait(0.1):
            if cancel is not None and cancel.is_set():
                _release(entry)
                raise DiscImageCancelled(image, "cancelled")
        if entry.error is None:
            return DiscImage(entry, image)
        _release(entry)
        if not isinstance(entry.error, DiscImageCancelled):
            raise DiscImageError(image, entry.error.reason, entry.error.member)
        # the other opener was cancelled: unpack here


def _unpack(
    image: Path,
    entry: _Entry,
    cancel: threading.Event | None,
    progress: ProgressCallback | None,
    limits: Limits,
    scratch: str | os.PathLike[str] | None,
) -> None:
    with DiscReader(image, limits) as reader:
        entry.problems = list(reader.problems)
        declared = reader.declared_bytes
        if declared > limits.max_bytes:
            raise DiscImageError(
                image,
                f"its files declare {declared / 1e9:.1f} GB, more than the "
                f"{limits.max_bytes / 1e9:.0f} GB an image may hold: not unpacked",
            )
        base = Path(scratch) if scratch is not None else Path(tempfile.gettempdir())
        free = shutil.disk_usage(base).free
        if declared + SPARE_BYTES > free:
            raise DiscImageError(
                image,
                f"its files need {declared / 1e6:.0f} MB and {base} has {free / 1e6:.0f} MB "
                "free: not unpacked",
            )
        folder = tempfile.mkdtemp(prefix="lightbox-disc-", dir=base)  # mode 0700
        with _lock:
            _folders.add(folder)
        try:
            root = Path(folder)
            for rel in reader.directories:
                (root / rel).mkdir(parents=True, exist_ok=True)
            members = list(reader.members)
            for done, rel in enumerate(members):
                if progress is not None:
                    progress(done, len(members))
                target = root / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with open(target, "xb") as out:
                        reader.copy_to(rel, out, cancel)
                except DiscImageCancelled:
                    raise
                except DiscImageError as exc:
                    target.unlink(missing_ok=True)
                    entry.problems.append((rel, exc.reason))
                except OSError as exc:
                    raise DiscImageError(
                        image,
                        f"cannot be unpacked into {folder} ({exc.strerror or exc})",
                        rel,
                    ) from None
            if progress is not None:
                progress(len(members), len(members))
        except BaseException:
            _remove(folder)
            raise
        entry.root = root
    log.debug("%s unpacked into %s", image, folder)


def holding(paths: Iterable[str | os.PathLike[str]]) -> list[DiscImage]:
    """New handles on the open images whose folders hold any of ``paths`` (a viewer showing a
    series of a disc keeps the disc's files while it shows it)."""
    wanted = [os.path.abspath(p) for p in paths]
    with _lock:
        entries = [e for e in _entries.values() if e.root is not None and e.ready.is_set()]
    found: list[DiscImage] = []
    for entry in entries:
        assert entry.root is not None
        roots = (str(entry.root) + os.sep, os.path.realpath(entry.root) + os.sep)
        if any(p.startswith(roots) for p in wanted):
            with _lock:
                if entry.refs <= 0:
                    continue
                entry.refs += 1
            found.append(DiscImage(entry, Path(entry.key[0])))
    return found
