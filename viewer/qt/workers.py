"""Opening files, folders and DICOMDIRs for the view: :func:`open_paths` runs on a
:class:`viewer.qt.jobs.Job` (the one way the GUI runs long work) and takes its cancel token and
progress callback (STYLE.md, threads rule 1).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from viewer import model
from viewer.imaging.stack import Stack, route
from viewer.media.scan import scan

log = logging.getLogger(__name__)


@dataclass
class OpenResult:
    """What opening some paths gave: the stacks to show and the problems met."""

    stacks: list[Stack] = field(default_factory=list)
    problems: list[model.Problem] = field(default_factory=list)
    cancelled: bool = False


def open_paths(paths: list[Path], cancel: threading.Event, progress: object = None) -> OpenResult:
    """Scan every path (file, folder or DICOMDIR) and group what they hold into stacks."""
    instances: list[model.Instance] = []
    series: list[model.Series] = []
    problems: list[model.Problem] = []
    for path in paths:
        if cancel.is_set():
            break
        if not path.exists():
            problems.append(model.Problem(str(path), "no such file or folder"))
            continue
        try:
            result = scan(path, cancel=cancel, progress=progress)  # type: ignore[arg-type]
        except Exception as exc:  # a scan that fails is this path's problem, not a crash
            log.debug("scan failed", exc_info=True)
            problems.append(model.Problem(str(path), f"cannot be read: {exc}"))
            continue
        instances.extend(result.instances)
        series.extend(result.series())
        problems.extend(result.problems)
    if cancel.is_set():
        return OpenResult([], problems, cancelled=True)
    if not instances and not problems:
        problems.extend(model.Problem(str(p), "holds no DICOM images") for p in paths)
    stacks = route(instances, series=series).stacks
    return OpenResult(stacks, problems)
