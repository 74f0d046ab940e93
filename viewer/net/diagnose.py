"""Why an association failed, in plain words a person can act on.

pynetdicom reports a failed association only as flags (``is_rejected``, ``is_aborted``) and log
lines. This module turns what happened into one :class:`NetError` with a stable ``code`` (for
programs and tests) and a sentence (for people): the TCP outcome, the A-ASSOCIATE-RJ result,
source and reason (PS3.8 7.1.1.9, Table 9-21), an A-ABORT, or an accepted association without
one usable presentation context (PS3.8 7.1.1.13).
"""

from __future__ import annotations

import errno
import socket
import ssl
from typing import Any

REFUSED = "refused"
UNREACHABLE = "unreachable"
UNKNOWN_HOST = "unknown-host"
TIMEOUT = "timeout"
CALLED_AE = "called-ae"
CALLING_AE = "calling-ae"
NO_CONTEXT = "no-context"
REJECTED = "rejected"
ABORTED = "aborted"
TLS = "tls"
CANCELLED = "cancelled"
FAILED = "failed"
MOVE_DESTINATION = "move-destination"


class NetError(Exception):
    """A network operation failed; ``code`` is one of the constants above."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def probe_tcp(host: str, port: int, timeout: float) -> tuple[str, str] | None:
    """Connect once, close at once; ``None`` when the port accepts, else (code, words).

    Used only after pynetdicom failed to connect: it swallows the OSError, so we ask again.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.gaierror as exc:
        return UNKNOWN_HOST, f"the host name {host!r} cannot be resolved ({exc.strerror})"
    except TimeoutError:
        return TIMEOUT, (
            f"no answer from {host} port {port} within {timeout:g} s: the host is down, or a "
            "firewall drops the connection"
        )
    except ConnectionRefusedError:
        return REFUSED, (
            f"connection refused by {host} port {port}: nothing listens there (is the DICOM "
            "service running, and is the port right?)"
        )
    except OSError as exc:
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN):
            return UNREACHABLE, f"host {host} is unreachable ({exc.strerror}): check the address"
        return UNREACHABLE, f"cannot connect to {host} port {port}: {exc.strerror or exc}"


def rejection(primitive: Any, calling: str, called: str) -> tuple[str, str]:
    """Words for an A-ASSOCIATE-RJ (PS3.8 Table 9-21: result, source, reason/diag.)."""
    result, source, reason = primitive.result, primitive.result_source, primitive.diagnostic
    transient = " (transient: try again later)" if result == 0x02 else ""
    if source == 0x01 and reason == 0x07:
        return CALLED_AE, (
            f"the peer does not recognise the called AE title {called!r}: check the node's "
            f"AE title (some peers, DCMTK's dcmqrscp among them, also say this when they do not "
            f"know our AE title {calling!r} from this host){transient}"
        )
    if source == 0x01 and reason == 0x03:
        return CALLING_AE, (
            f"the peer does not recognise our AE title {calling!r} (calling AE title): add "
            f"{calling!r} with this computer's address to the peer's list of known "
            f"modalities{transient}"
        )
    if source == 0x01 and reason == 0x02:
        return REJECTED, f"the peer does not support the application context{transient}"
    if source == 0x03 and reason in (0x01, 0x02):
        return REJECTED, f"the peer is busy or out of resources{transient}"
    if source == 0x02 and reason == 0x02:
        return REJECTED, "the peer does not support our protocol version"
    return REJECTED, (
        f"the peer rejected the association without a specific reason (result {result}, "
        f"source {source}, reason {reason}){transient}: check that it knows our AE title "
        f"{calling!r} and that {called!r} is its AE title"
    )


def tls_failure(exc: BaseException | None) -> tuple[str, str]:
    detail = f": {exc}" if exc else ""
    return TLS, (
        "the TLS handshake failed (certificate not trusted, wrong host name, no common TLS "
        f"version, or the peer does not use TLS){detail}"
    )


def is_tls_error(exc: BaseException | None) -> bool:
    return isinstance(exc, ssl.SSLError | ssl.CertificateError)
