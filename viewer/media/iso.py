"""ISO 9660 images and discs for the media writer.

ISO 9660 / ECMA-119 Level 1 (names ``NAME.EXT;1`` of 8.3 upper-case characters, at most 8
directory levels), with a Joliet tree for desktop systems; the Volume Identifier is the DICOM
File-set ID (PS3.12 F.3.2 and Annex P: one file-set per volume, ID without patient data).
Images are made with pycdlib; discs are written with ``xorriso`` (cdrecord emulation), which also
serves a ``stdio:`` pseudo-drive on a plain file, the way the disc path is tested here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from viewer.media.plan import MediaError
from viewer.media.writer import WriteReport, write_media


def iso_name(name: str, is_dir: bool) -> str:
    """The ISO 9660 Level 1 identifier of a media name (already upper-case 8.3 by design)."""
    if is_dir:
        return name
    stem, dot, ext = name.partition(".")
    return f"{stem}.{ext};1" if dot else f"{stem}.;1"


_LEVEL1 = re.compile(r"^[A-Z0-9_]{1,8}(\.[A-Z0-9_]{0,3})?$")


def make_iso(
    folder: str | os.PathLike[str], iso_path: str | os.PathLike[str], volume_id: str
) -> None:
    """Write ``folder`` as an ISO 9660 Level 1 + Joliet image whose Volume ID is ``volume_id``.

    The image is written under a temporary name beside ``iso_path`` and renamed to it once
    whole, so that a file under the final name is never a partial image (a kill, a full disc).
    Raises :class:`MediaError` for a name that is not Level 1 (the writer never makes one)."""
    import pycdlib

    final = Path(iso_path)
    partial = final.with_name(f"{_PARTIAL_PREFIX}{os.getpid()}-{final.name}.partial")
    root = Path(folder)
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=1, joliet=3, vol_ident=volume_id, app_ident_str="LIGHTBOX")
    handles: list[Any] = []
    try:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            rel = Path(dirpath).relative_to(root)
            parts = rel.parts
            if len(parts) > 7:
                raise MediaError(f"{dirpath}: more than 8 directory levels for ISO 9660")
            for name in dirnames:
                if not _LEVEL1.match(name) or "." in name:
                    raise MediaError(f"{dirpath}/{name}: not an ISO 9660 Level 1 directory name")
                path = "/" + "/".join((*parts, name))
                iso.add_directory(path, joliet_path=path)
            for name in sorted(filenames):
                if not _LEVEL1.match(name):
                    raise MediaError(f"{dirpath}/{name}: not an ISO 9660 Level 1 file name")
                iso_path_name = "/" + "/".join((*parts, iso_name(name, False)))
                joliet = "/" + "/".join((*parts, name))
                full = os.path.join(dirpath, name)
                handle = open(full, "rb")  # noqa: SIM115 - pycdlib reads it at write()
                handles.append(handle)
                iso.add_fp(handle, os.path.getsize(full), iso_path_name, joliet_path=joliet)
        try:
            iso.write(str(partial))
            os.replace(partial, final)
        finally:
            partial.unlink(missing_ok=True)
    finally:
        iso.close()
        for handle in handles:
            handle.close()


#: Names of what :func:`write_iso` keeps beside the image while it works, each with the pid
#: of the process writing it: its staging folder and the image before it is whole.
_STAGING_PREFIX = ".lightbox-burn-"
_PARTIAL_PREFIX = ".lightbox-iso-"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists
        return True
    return True


def remove_abandoned(folder: Path) -> list[Path]:
    """Remove the staging folders and partial images a killed :func:`write_iso` left in
    ``folder`` (their process is gone); returns what was removed. POSIX only: elsewhere the
    process cannot be asked about, and they stay."""
    removed: list[Path] = []
    if os.name != "posix":
        return removed
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for path in entries:
        for prefix in (_STAGING_PREFIX, _PARTIAL_PREFIX):
            pid = path.name.removeprefix(prefix).split("-", 1)[0]
            if not path.name.startswith(prefix) or not pid.isdigit() or _pid_alive(int(pid)):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def iso_paths(iso_file: Path, count: int) -> list[Path]:
    """``NAME.iso`` for one disc; ``NAME_1.iso``, ``NAME_2.iso``... for several."""
    if count <= 1:
        return [iso_file]
    return [
        iso_file.with_name(f"{iso_file.stem}_{n}{iso_file.suffix}") for n in range(1, count + 1)
    ]


def write_iso(
    paths: Sequence[str | os.PathLike[str]],
    iso_file: str | os.PathLike[str],
    *,
    verify: bool = True,
    **options: Any,
) -> WriteReport:
    """Write the selection as one ISO image per disc (the media is staged in a temporary folder
    beside the image), then read each image back (:func:`viewer.media.verify.verify_written`).

    An image appears under its name only whole (:func:`make_iso`); what a killed run left
    beside it (staging folder, partial image) is removed by the next run (:func:`remove_abandoned`).
    """
    from viewer.media.verify import verify_written

    target = Path(iso_file)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned(target.parent)
    with tempfile.TemporaryDirectory(
        prefix=f"{_STAGING_PREFIX}{os.getpid()}-", dir=target.parent
    ) as staging:
        report = write_media(paths, Path(staging) / "MEDIA", verify=False, **options)
        images = iso_paths(target, len(report.discs))
        for disc, image in zip(report.discs, images, strict=True):
            make_iso(disc.root, image, disc.fileset_id)
            disc.root = image
    if verify:
        for disc in report.discs:
            report.verification.append(verify_written(disc.root, disc, report.profile))
    return report


# --- discs ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Drive:
    device: str
    description: str


class BurnError(MediaError):
    pass


def _xorriso() -> str:
    path = shutil.which("xorriso")
    if path is None:
        raise BurnError("xorriso is not installed: install the xorriso package to write discs")
    return path


def detect_drives() -> list[Drive]:
    """Optical writers xorriso sees (``xorriso -devices``); empty when there is none."""
    result = subprocess.run(
        [_xorriso(), "-devices"], capture_output=True, text=True, timeout=60, check=False
    )
    drives = []
    for line in result.stdout.splitlines():
        match = re.match(r"\s*\d+\s+-dev\s+'([^']+)'\s+\S+\s+:\s+(.*)$", line)
        if match:
            drives.append(Drive(match.group(1), match.group(2).strip()))
    return drives


def burn_image(image: str | os.PathLike[str], device: str, *, eject: bool = True) -> str:
    """Write an ISO image to ``device`` (``/dev/sr0``, or ``stdio:/path`` for a pseudo-drive on
    a file) with xorriso's cdrecord emulation; ejects real media after. Returns xorriso's log.

    Raises :class:`BurnError` with xorriso's own words when the burn fails."""
    command = [_xorriso(), "-as", "cdrecord", "-v", f"dev={device}"]
    if eject and not device.startswith("stdio:"):
        command.append("-eject")
    command.append(os.fspath(image))
    result = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=False)
    log = result.stdout + result.stderr
    if result.returncode != 0:
        lines = [ln for ln in log.splitlines() if "FAILURE" in ln or "SORRY" in ln]
        raise BurnError(
            f"{device}: xorriso failed ({result.returncode}): "
            + ("; ".join(lines[-3:]) or log.strip()[-300:])
        )
    return log


def media_space(device: str) -> int | None:
    """Bytes free on the medium in ``device`` (``xorriso -tell_media_space``), None if unknown
    (no medium, or xorriso could not tell)."""
    result = subprocess.run(
        [_xorriso(), "-outdev", device, "-tell_media_space"],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=120,
        check=False,
    )
    match = re.search(r"Media space\s*:\s*(\d+)s", result.stdout + result.stderr)
    return int(match.group(1)) * 2048 if match else None


def readback_path(device: str) -> Path:
    """What to open to read the written disc back: the file behind ``stdio:``, else the device."""
    return Path(device[len("stdio:") :] if device.startswith("stdio:") else device)


def burn(
    paths: Sequence[str | os.PathLike[str]],
    device: str,
    *,
    verify: bool = True,
    eject: bool = True,
    **options: Any,
) -> WriteReport:
    """Write the selection to a disc in ``device``: ISO image(s) made in a temporary folder,
    burned one after another (the caller prompts for each next disc through ``next_disc``),
    then read back from the device and verified. Multi-disc selections need a prompt between
    discs: pass ``next_disc`` (a callable taking the disc number) in ``options``."""
    from viewer.media.verify import verify_written

    next_disc = options.pop("next_disc", None)
    # The images hold patient data: what a killed burn left in the temporary folder goes now.
    scratch = Path(tempfile.gettempdir())
    remove_abandoned(scratch)
    with tempfile.TemporaryDirectory(
        prefix=f"{_STAGING_PREFIX}{os.getpid()}-", dir=scratch
    ) as staging:
        report = write_iso(paths, Path(staging) / "DISC.iso", verify=False, **options)
        for disc in report.discs:
            if disc.index > 1:
                if next_disc is None:
                    raise BurnError(
                        f"the selection needs {disc.count} discs: insert them one "
                        "by one (GUI) or write ISO images with --iso"
                    )
                next_disc(disc.index)
            space = media_space(device)
            size = disc.root.stat().st_size
            if space is None:
                raise BurnError(f"{device}: no writable medium found (insert a blank disc)")
            if size > space:
                raise BurnError(
                    f"{device}: the image needs {size / 1e6:.0f} MB, the medium has "
                    f"{space / 1e6:.0f} MB free: insert a larger or blank disc"
                )
            burn_image(disc.root, device, eject=eject and not verify)
            disc.root = readback_path(device)
            if verify:
                report.verification.append(verify_written(disc.root, disc, report.profile))
            if eject and verify and not device.startswith("stdio:"):
                subprocess.run(
                    [_xorriso(), "-outdev", device, "-eject", "all"],
                    capture_output=True,
                    timeout=120,
                    check=False,
                )
    return report
