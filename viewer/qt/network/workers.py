"""One network operation = one job = one association (STYLE.md, threads rules 2 and 3).

Each blocking core function (:func:`viewer.net.echo.echo`, :func:`viewer.net.find.find`, a
retrieve, a send) runs on a :class:`viewer.qt.jobs.Job`: it gets the job's cancel token and a
``report`` callable (the job's ``reported`` signal); its result or the exception it raised comes
back through ``finished`` / ``failed``, queued to the GUI thread, and :func:`describe_error`
puts a failure into words. The GUI thread never holds an association: it only starts jobs,
cancels them and reads signals.
"""

from __future__ import annotations

import logging

from viewer.net.diagnose import NetError
from viewer.net.nodes import ConfigError
from viewer.store import StoreError

log = logging.getLogger(__name__)


def describe_error(exc: BaseException) -> str:
    """Words for a failed job: our own errors already say what and where."""
    if isinstance(exc, NetError | ConfigError | StoreError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    return f"{type(exc).__name__}: {exc}"
