"""C-ECHO (Verification Service, PS3.4 Annex A; PS3.7 9.1.5) with a diagnosis in plain words."""

from __future__ import annotations

import time
from dataclasses import dataclass

from pynetdicom.presentation import build_context

from viewer.net import contexts, diagnose
from viewer.net.connect import close_association, open_association
from viewer.net.diagnose import NetError
from viewer.net.nodes import LocalSettings, Node

#: Seconds before the second try when a peer closed without answering.
RETRY_AFTER_ABORT = 0.2


@dataclass(frozen=True, slots=True)
class EchoResult:
    ok: bool
    #: ``"ok"`` or a :mod:`viewer.net.diagnose` code.
    code: str
    message: str
    seconds: float


def echo(node: Node, local: LocalSettings) -> EchoResult:
    """Associate, send one C-ECHO, release. Never raises for network trouble."""
    start = time.perf_counter()
    requested = [build_context(contexts.VERIFICATION, list(contexts.UNCOMPRESSED))]
    try:
        try:
            assoc = open_association(node, local, requested)
        except NetError as exc:
            if exc.code != diagnose.ABORTED:
                raise
            # A peer that rejects and closes at once (Orthanc refusing a calling AE title)
            # may reset the connection before its A-ASSOCIATE-RJ is read: asked once more,
            # it usually gives the reason itself, which is what a diagnosis is for.
            time.sleep(RETRY_AFTER_ABORT)
            assoc = open_association(node, local, requested)
    except NetError as exc:
        return EchoResult(False, exc.code, exc.message, time.perf_counter() - start)
    try:
        status = assoc.send_c_echo()
        code = int(getattr(status, "Status", -1)) if status else -1
    finally:
        close_association(assoc)
    seconds = time.perf_counter() - start
    if code == 0x0000:
        return EchoResult(True, "ok", f"{node} answered in {seconds * 1000:.0f} ms", seconds)
    if code == -1:
        return EchoResult(
            False, "timeout", f"{node} did not answer the C-ECHO (DIMSE timeout)", seconds
        )
    return EchoResult(False, "failed", f"{node} answered C-ECHO with status 0x{code:04X}", seconds)
