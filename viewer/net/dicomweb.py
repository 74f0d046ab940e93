"""DICOMweb user agent (PS3.18): QIDO-RS search, WADO-RS retrieve into the store, STOW-RS store.

Plain ``http.client`` from the standard library: one persistent (keep-alive) connection per
operation, every read under the node's network timeout, TLS from :func:`viewer.net.tls.
client_context` (BCP 195; the system's CAs or the node's CA file; ``insecure`` only when the
node says so, warned at each connection). No third-party HTTP library: we need four request
shapes, a streaming multipart reader and a streamed request body, all a few lines on
``http.client``, and ``requests``/``urllib3`` would read a whole multipart answer into memory.

- :func:`find`: QIDO-RS (PS3.18 10.6) at study, series or instance level from the same
  :class:`~viewer.net.common.FindQuery` the C-FIND uses: filters and return keys become
  ``KEYWORD=VALUE`` and ``includefield=KEYWORD``; the ``application/dicom+json`` answer (PS3.18
  F.2) becomes the same keyword -> value dictionaries (names' Alphabetic group, several values
  joined by ``\\``). At most ``limit`` matches (``limit=`` asks for one more to tell "complete"
  from "stopped"); the answer's size is capped (:data:`MAX_JSON`).
- :func:`retrieve`: lists the study's (or series') instances with QIDO-RS, skips those the store
  has (``is_present``), and fetches the rest one instance per WADO-RS request (PS3.18 10.4,
  ``multipart/related; type="application/dicom"; transfer-syntax=*``: the instance as stored,
  never transcoded). The multipart answer is parsed as it arrives (:class:`MultipartReader`):
  memory is bounded by :data:`CHUNK` plus the boundary whatever the server declares, each part
  is written to a spool file (at most ``max_instance`` bytes) and handed to ``on_instance`` (the
  store's receiver, as the C-GET's sub-operations are). Cancel is looked at between chunks; an
  interrupted retrieve resumes by skipping what arrived.
- :func:`send`: STOW-RS (PS3.18 10.5) of Part 10 files in batches, each request body streamed
  from the files with an exact Content-Length; "stored" means named in the answer's Referenced
  SOP Sequence (0008,1199); Failed SOP Sequence (0008,1198) gives the Failure Reason. Before
  sending, QIDO-RS asks which of the instances the server already has: those are skipped (a
  resumed send re-sends only the rest).

Every request also has an overall deadline (:class:`Deadline`): the node's network timeout bounds
each wait for bytes, but a server that trickles a byte every few seconds never trips it, and a
retrieve (or search, or send) would never end. A request (one WADO-RS instance, one QIDO-RS page,
one STOW-RS batch) must finish within :data:`DEADLINE` seconds plus one second per
:data:`FLOOR_RATE` bytes moved so far: the size of an instance is not known before it arrives, so
the allowance grows with what came, and only a transfer slower than the floor rate on average
(after a generous start) is stopped. Checked before every read from the socket (each wait is
also cut to what is left), so it holds for the status line and headers too, and between the
chunks of a STOW-RS body. Past it: :class:`DeadlineError` (code ``timeout``) naming the request.

Errors are :class:`~viewer.net.diagnose.NetError` naming the URL (never credentials) and what
was wrong; the server's words are escaped (:func:`viewer.text.escape`) before they are quoted.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.client
import io
import json
import logging
import os
import socket
import ssl
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from pydicom.datadict import keyword_for_tag
from pydicom.filereader import read_file_meta_info

from viewer.net import diagnose, tls
from viewer.net.common import (
    MAX_MATCHES,
    FindQuery,
    FindResult,
    IsPresent,
    RetrieveProgress,
    RetrieveResult,
)
from viewer.net.diagnose import NetError
from viewer.net.guard import spool_dir
from viewer.net.nodes import ConfigError, LocalSettings, Node
from viewer.net.scp import OnInstance, StoreResult
from viewer.net.send import InstanceStatus, SendResult, _describe
from viewer.text import escape

LOG = logging.getLogger(__name__)

#: The 401/403 answer's code: the server refused our credentials (exit 3 like a refusal).
AUTH = "auth"
#: Bytes read from the socket at a time: with the boundary, what a multipart part holds in memory.
CHUNK = 1 << 20
#: The largest QIDO-RS or STOW-RS JSON answer we read.
MAX_JSON = 64 << 20
#: The most of an error answer we read (to quote a line of it).
MAX_ERROR_BODY = 64 << 10
#: The largest instance a WADO-RS part may hold (spooled to disc, never in memory).
MAX_INSTANCE = 4 << 30
#: The most header bytes of one multipart part.
MAX_PART_HEADERS = 16 << 10
#: STOW-RS batches: at most this many instances, or about this many bytes, per request.
STOW_BATCH = 50
STOW_BATCH_BYTES = 256 << 20
#: PS3.18 8.7.3.5.2: what we accept for an instance (the stored transfer syntax).
ACCEPT_DICOM = 'multipart/related; type="application/dicom"; transfer-syntax=*'
DICOM_JSON = "application/dicom+json"
UA = "Lightbox DICOMweb"
#: The overall deadline of one request, seconds, before its allowance for the bytes moved.
DEADLINE = 300.0
#: Bytes per second a request must average past :data:`DEADLINE` (64 KiB/s: a 1 GiB instance
#: may take 300 s + 4.5 h).
FLOOR_RATE = 64 << 10

Progress = Callable[[RetrieveProgress], None]
SendProgress = Callable[[int, int], None]


class HttpError(NetError):
    """An answer we did not want: ``status`` (0: no answer at all)."""

    def __init__(self, code: str, message: str, status: int = 0) -> None:
        super().__init__(code, message)
        self.status = status


class DeadlineError(NetError):
    """A request did not finish within its overall deadline (:class:`Deadline`)."""

    def __init__(self, message: str) -> None:
        super().__init__(diagnose.TIMEOUT, message)


class Deadline:
    """The overall deadline of the current request: ``seconds`` plus one second per
    ``floor_rate`` bytes moved since :meth:`restart`."""

    def __init__(self, seconds: float = DEADLINE, floor_rate: int = FLOOR_RATE) -> None:
        self.seconds = seconds
        self.floor_rate = floor_rate
        self.what = ""
        self.start = time.monotonic()
        self.moved = 0

    def restart(self, what: str) -> None:
        self.what, self.start, self.moved = what, time.monotonic(), 0

    def left(self) -> float:
        """Seconds left; :class:`DeadlineError` when none are."""
        left = self.start + self.seconds + self.moved / self.floor_rate - time.monotonic()
        if left <= 0:
            raise self.error()
        return left

    def error(self) -> DeadlineError:
        return DeadlineError(
            f"{self.what}: not finished after {time.monotonic() - self.start:.1f} s "
            f"({self.moved} bytes moved; the deadline is {self.seconds:g} s plus 1 s per "
            f"{self.floor_rate} bytes): the server answers too slowly, stopped"
        )


class _PacedReader(io.RawIOBase):
    """The socket as an HTTP response reads it, each read under the request's deadline: the
    wait is cut to what is left of it (or the network timeout, if shorter)."""

    def __init__(self, sock: socket.socket, deadline: Deadline, network: float) -> None:
        super().__init__()
        self._raw = sock.makefile("rb", buffering=0)
        self._sock = sock
        self._deadline = deadline
        self._network = network

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._deadline.left()
        self._sock.settimeout(min(self._network, left))
        try:
            n = self._raw.readinto(buffer) or 0
        except TimeoutError as exc:
            if left < self._network:  # the deadline cut this wait short, not the idle timeout
                raise self._deadline.error() from exc
            raise
        self._deadline.moved += n
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


class _Response(http.client.HTTPResponse):
    def __init__(
        self,
        sock: socket.socket,
        debuglevel: int = 0,
        method: str | None = None,
        url: str | None = None,
        *,
        deadline: Deadline,
        network: float,
    ) -> None:
        super().__init__(sock, debuglevel, method, url)
        self.fp.close()  # nothing read from it yet: read through the deadline instead
        self.fp = io.BufferedReader(_PacedReader(sock, deadline, network))


def _ssl_context(node: Node) -> ssl.SSLContext:
    ctx = tls.client_context(node.tls)
    if node.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Client:
    """One keep-alive connection to a DICOMweb node; reconnects when the server closed it."""

    def __init__(
        self,
        node: Node,
        local: LocalSettings,
        cancel: threading.Event | None = None,
        *,
        deadline: float = DEADLINE,
    ):
        if not node.is_web:
            raise ConfigError(f"{node} is not a DICOMweb node")
        self.node = node
        self.timeouts = local.timeouts
        self.cancel = cancel
        parts = urllib.parse.urlsplit(node.url)
        self.https = parts.scheme == "https"
        self.base = parts.path.rstrip("/")
        self._ctx = _ssl_context(node) if self.https else None
        self._conn: http.client.HTTPConnection | None = None
        self._used = 0.0
        self.deadline = Deadline(deadline)
        self._headers = {"User-Agent": UA}
        if node.auth == "basic":
            token = base64.b64encode(f"{node.user}:{node.secret}".encode()).decode("ascii")
            self._headers["Authorization"] = f"Basic {token}"
        elif node.auth == "bearer":
            self._headers["Authorization"] = f"Bearer {node.secret}"

    # -- connection -------------------------------------------------------------------------

    def _connect(self) -> http.client.HTTPConnection:
        if self._conn is not None:
            return self._conn
        node, t = self.node, self.timeouts
        conn: http.client.HTTPConnection
        if self.https:
            if node.insecure:
                LOG.warning("%s: TLS certificate NOT verified (the node is insecure)", node)
            conn = http.client.HTTPSConnection(
                node.host, node.port, timeout=t.connect, context=self._ctx
            )
        else:
            conn = http.client.HTTPConnection(node.host, node.port, timeout=t.connect)
        try:
            conn.connect()
        except BaseException as exc:
            conn.close()
            raise self._connect_error(exc) from exc
        assert conn.sock is not None
        conn.sock.settimeout(t.network)
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.response_class = cast(
            "type[http.client.HTTPResponse]",
            functools.partial(_Response, deadline=self.deadline, network=t.network),
        )
        self._conn = conn
        return conn

    def _connect_error(self, exc: BaseException) -> NetError:
        url = self.node.url
        if isinstance(exc, ssl.SSLCertVerificationError):
            return NetError(
                diagnose.TLS,
                f"{url}: the server's TLS certificate is not trusted ({exc.verify_message}): "
                "give the node the CA file that signed it (nodes add ... --tls-ca FILE)",
            )
        if diagnose.is_tls_error(exc):
            return NetError(diagnose.TLS, f"{url}: the TLS handshake failed ({exc})")
        if isinstance(exc, socket.gaierror):
            return NetError(
                diagnose.UNKNOWN_HOST, f"{url}: the host name cannot be resolved ({exc.strerror})"
            )
        if isinstance(exc, TimeoutError):
            return NetError(
                diagnose.TIMEOUT,
                f"{url}: no answer within {self.timeouts.connect:g} s (host down or firewalled)",
            )
        if isinstance(exc, ConnectionRefusedError):
            return NetError(diagnose.REFUSED, f"{url}: connection refused (nothing listens)")
        if isinstance(exc, OSError):
            return NetError(diagnose.UNREACHABLE, f"{url}: cannot connect ({exc.strerror or exc})")
        return NetError(diagnose.FAILED, f"{url}: cannot connect ({exc})")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests ---------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Sequence[tuple[str, str]] = (),
        headers: dict[str, str] | None = None,
        body: Iterable[bytes] | bytes | None = None,
        ok: Sequence[int] = (200,),
    ) -> http.client.HTTPResponse:
        """Send one request; the response (status in ``ok``) is the caller's to read whole,
        under the request's :attr:`deadline` (restarted here). A reused connection the server
        closed meanwhile is opened again once (GET only)."""
        target = self.base + path
        if params:
            # Wildcards and name separators as they are (RFC 3986 allows them in a query):
            # Orthanc 1.10 matches "DOE%2A" literally
            target += "?" + urllib.parse.urlencode(list(params), safe="*?^-,.")
        shown = self.node.url + path
        all_headers = {**self._headers, **(headers or {})}
        if method != "GET" and self._conn is not None and time.monotonic() - self._used > 1.0:
            self.close()  # a body cannot be sent twice: no request on a connection gone stale
        self.deadline.restart(f"{method} {shown}")
        for attempt in (0, 1):
            reused = self._conn is not None
            conn = self._connect()
            try:
                assert conn.sock is not None
                conn.sock.settimeout(self.timeouts.network)  # a read may have cut it shorter
                conn.request(method, target, body=body, headers=all_headers)
                rsp = conn.getresponse()
            except NetError:
                self.close()
                raise
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                self.close()
                if reused and attempt == 0 and method == "GET":
                    continue
                raise NetError(
                    diagnose.ABORTED, f"{method} {shown}: the server closed the connection ({exc})"
                ) from exc
            except TimeoutError as exc:
                self.close()
                raise NetError(
                    diagnose.TIMEOUT,
                    f"{method} {shown}: no answer within {self.timeouts.network:g} s",
                ) from exc
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if isinstance(exc, ssl.SSLError):
                    raise self._connect_error(exc) from exc
                raise NetError(diagnose.FAILED, f"{method} {shown}: {exc}") from exc
            break
        self._used = time.monotonic()
        if rsp.status in ok:
            return rsp
        raise self._refusal(method, shown, rsp)

    def _refusal(self, method: str, shown: str, rsp: http.client.HTTPResponse) -> HttpError:
        try:
            said = rsp.read(MAX_ERROR_BODY).decode("utf-8", "replace").strip()
        except (OSError, http.client.HTTPException, NetError):
            said = ""
        self.close()
        said = escape(" ".join(said.split())[:300])
        reason = escape(rsp.reason or "")
        quote = f" (the server said: {said})" if said else ""
        if rsp.status in (401, 403):
            how = {
                "none": "the node has no credentials: add a user (--user) or a token (--bearer)",
                "basic": f"check the user {self.node.user!r} and its password",
                "bearer": "check the token",
            }[self.node.auth]
            return HttpError(
                AUTH,
                f"{method} {shown}: refused with HTTP {rsp.status} {reason}: {how}{quote}",
                rsp.status,
            )
        return HttpError(
            diagnose.FAILED, f"{method} {shown}: HTTP {rsp.status} {reason}{quote}", rsp.status
        )

    def get_json(self, path: str, params: Sequence[tuple[str, str]] = ()) -> Any:
        rsp = self.request(
            "GET", path, params=params, headers={"Accept": f"{DICOM_JSON}, application/json"}
        )
        return self._read_json(rsp, f"GET {self.node.url}{path}")

    def _read_json(self, rsp: http.client.HTTPResponse, what: str) -> Any:
        try:
            data = _read_capped(rsp, MAX_JSON, self.cancel)
        except DeadlineError:
            self.close()
            raise  # names the request already
        except NetError as exc:
            self.close()
            raise NetError(exc.code, f"{what}: {exc.message}") from exc
        if rsp.will_close:
            self.close()
        if not data.strip():
            return []  # 204 No Content: no match
        try:
            return json.loads(data)
        except ValueError as exc:
            raise NetError(diagnose.FAILED, f"{what}: the answer is not JSON ({exc})") from exc


def _read_capped(rsp: http.client.HTTPResponse, cap: int, cancel: threading.Event | None) -> bytes:
    """The whole body, refused past ``cap`` bytes whatever Content-Length says."""
    out = bytearray()
    while True:
        if cancel is not None and cancel.is_set():
            raise NetError(diagnose.CANCELLED, "cancelled")
        try:
            chunk = rsp.read(min(CHUNK, cap + 1 - len(out)))
        except TimeoutError as exc:
            raise NetError(diagnose.TIMEOUT, "the answer stopped coming (timeout)") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise NetError(diagnose.ABORTED, f"the answer was cut short ({exc!r})") from exc
        if not chunk:
            return bytes(out)
        out += chunk
        if len(out) > cap:
            raise NetError(diagnose.FAILED, f"the answer is larger than {cap} bytes: refused")


# -- DICOM JSON (PS3.18 F.2) -------------------------------------------------------------------


def _json_value(item: dict[str, Any]) -> str:
    values = item.get("Value")
    if not isinstance(values, list):
        return ""
    out = []
    for v in values:
        if isinstance(v, dict):
            if item.get("vr") == "PN":
                out.append(str(v.get("Alphabetic", "")))
            continue  # a sequence item: not shown in a match
        out.append("" if v is None else str(v))
    return "\\".join(out).replace("\0", "").strip()


def json_to_dict(obj: Any) -> dict[str, str]:
    """A DICOM JSON object to keyword -> value (as :func:`viewer.net.find.identifier_to_dict`)."""
    out: dict[str, str] = {}
    if not isinstance(obj, dict):
        return out
    for tag, item in obj.items():
        try:
            keyword = keyword_for_tag(int(str(tag), 16))
        except ValueError:
            continue
        if not keyword or not isinstance(item, dict) or item.get("vr") == "SQ":
            continue
        if keyword in ("SpecificCharacterSet", "RetrieveURL"):
            continue
        out[keyword] = _json_value(item)
    return out


def _sequence(obj: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    item = obj.get(tag)
    if not isinstance(item, dict) or not isinstance(item.get("Value"), list):
        return []
    return [i for i in item["Value"] if isinstance(i, dict)]


# -- QIDO-RS -----------------------------------------------------------------------------------


def qido_params(query: FindQuery, level: str) -> tuple[str, list[tuple[str, str]]]:
    """The QIDO-RS resource and its parameters for ``query`` at ``level`` (PS3.18 10.6.1)."""
    ident = query.identifier(level)
    study, series = query.study_instance_uid, query.series_instance_uid
    if level in ("PATIENT", "STUDY"):
        path = "/studies"
    elif level == "SERIES":
        path = f"/studies/{_uid(study)}/series"
    else:
        path = f"/studies/{_uid(study)}/series/{_uid(series)}/instances"
    params: list[tuple[str, str]] = []
    for elem in ident:
        keyword = elem.keyword
        if not keyword or keyword == "QueryRetrieveLevel":
            continue
        if level in ("SERIES", "IMAGE") and keyword == "StudyInstanceUID":
            continue
        if level == "IMAGE" and keyword == "SeriesInstanceUID":
            continue
        value = "" if elem.VR == "SQ" else str(elem.value or "")
        if value:
            params.append((keyword, value))
        else:
            params.append(("includefield", keyword))
    return path, params


def _uid(value: str) -> str:
    """A UID in a URL path: digits and dots only (PS3.5 9.1), refused otherwise."""
    if not value or any(c not in "0123456789." for c in value) or len(value) > 64:
        raise ValueError(f"{value!r} is not a UID")
    return value


def find(
    node: Node,
    local: LocalSettings,
    query: FindQuery,
    *,
    cancel: threading.Event | None = None,
    progress: Callable[[int], None] | None = None,
    limit: int | None = None,
    deadline: float = DEADLINE,
) -> FindResult:
    """QIDO-RS search on ``node``; the same result as :func:`viewer.net.find.find`.
    ``deadline``: the request's overall deadline (:class:`Deadline`)."""
    limit = MAX_MATCHES if limit is None else limit
    level = query.level
    path, params = qido_params(query, "STUDY" if level == "PATIENT" else level)
    params.append(("limit", str(limit + 1)))
    if cancel is not None and cancel.is_set():
        return FindResult([], True, "QIDO-RS")
    with Client(node, local, cancel, deadline=deadline) as client:
        try:
            answer = client.get_json(path, params)
        except NetError as exc:
            if exc.code == diagnose.CANCELLED:
                return FindResult([], True, "QIDO-RS")
            raise
    if not isinstance(answer, list):
        raise NetError(diagnose.FAILED, f"GET {node.url}{path}: the answer is not a JSON list")
    matches = [json_to_dict(obj) for obj in answer]
    if level == "PATIENT":  # QIDO-RS has no patient level: the studies' patients, once each
        keys = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex")
        seen: dict[tuple[str, str], dict[str, str]] = {}
        for m in matches:
            seen.setdefault(
                (m.get("PatientID", ""), m.get("PatientName", "")),
                {k: m[k] for k in keys if k in m},
            )
        matches = list(seen.values())
    stopped_at = 0
    if len(matches) > limit:
        matches, stopped_at = matches[:limit], limit
    if progress is not None:
        progress(len(matches))
    return FindResult(matches, False, "QIDO-RS", stopped_at)


def echo(node: Node, local: LocalSettings) -> tuple[bool, str, float]:
    """A one-study QIDO-RS search as a reachability check: (ok, words, seconds)."""
    start = time.perf_counter()
    try:
        with Client(node, local) as client:
            client.get_json("/studies", [("limit", "1"), ("includefield", "StudyInstanceUID")])
    except NetError as exc:
        return False, exc.message, time.perf_counter() - start
    seconds = time.perf_counter() - start
    return True, f"{node}: QIDO-RS OK ({seconds * 1e3:.0f} ms)", seconds


def list_instances(client: Client, study_uid: str, series_uid: str | None) -> list[tuple[str, str]]:
    """(Series, SOP Instance UID) of every instance of a study or series (QIDO-RS)."""
    path = f"/studies/{_uid(study_uid)}"
    path += f"/series/{_uid(series_uid)}/instances" if series_uid else "/instances"
    out: list[tuple[str, str]] = []
    offset = 0
    page = 1000
    while True:
        answer = client.get_json(
            path,
            [
                ("includefield", "SeriesInstanceUID"),
                ("includefield", "SOPInstanceUID"),
                ("limit", str(page)),
                ("offset", str(offset)),
            ],
        )
        if not isinstance(answer, list):
            raise NetError(diagnose.FAILED, f"GET {client.node.url}{path}: not a JSON list")
        for obj in answer:
            row = json_to_dict(obj)
            sop = row.get("SOPInstanceUID", "")
            series = row.get("SeriesInstanceUID", "") or (series_uid or "")
            if sop and series:
                out.append((series, sop))
        if len(answer) < page or len(out) >= 10 * MAX_MATCHES:
            return out
        offset += len(answer)


# -- the streaming multipart reader (RFC 2046 5.1, as PS3.18 8.6.1.2 uses it) ------------------


class MultipartError(Exception):
    pass


def boundary_of(content_type: str) -> str:
    """The boundary parameter of a ``multipart/related`` Content-Type."""
    kind, _, rest = content_type.partition(";")
    if kind.strip().lower() != "multipart/related":
        raise MultipartError(f"the answer is {escape(kind.strip())!s}, not multipart/related")
    for param in rest.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "boundary":
            value = value.strip().strip('"')
            if 0 < len(value) <= 70:
                return value
    raise MultipartError("the multipart answer has no (valid) boundary")


@dataclass(slots=True)
class Part:
    headers: dict[str, str]
    size: int


class MultipartReader:
    """Reads a multipart body from ``read(n)`` and writes each part's content to the file that
    ``open_part(headers)`` returns. Holds at most :data:`CHUNK` plus a boundary in memory; never
    trusts a Content-Length (the stream's or a part's): parts end at the boundary. At most
    ``max_parts`` parts of at most ``max_part`` bytes each; fewer headers than
    :data:`MAX_PART_HEADERS`."""

    def __init__(
        self,
        read: Callable[[int], bytes],
        boundary: str,
        *,
        max_parts: int,
        max_part: int,
        cancel: threading.Event | None = None,
    ) -> None:
        self.read = read
        self.delimiter = b"\r\n--" + boundary.encode("ascii", "replace")
        self.max_parts = max_parts
        self.max_part = max_part
        self.cancel = cancel
        self.buffer = bytearray(b"\r\n")  # the first boundary may open the body
        self.eof = False

    def _fill(self) -> bool:
        if self.eof:
            return False
        if self.cancel is not None and self.cancel.is_set():
            raise NetError(diagnose.CANCELLED, "cancelled")
        chunk = self.read(CHUNK)
        if not chunk:
            self.eof = True
            return False
        self.buffer += chunk
        return True

    def parts(self, open_part: Callable[[dict[str, str]], BinaryIO]) -> Iterator[Part]:
        """Yields each part after its content was written to (and its file closed)."""
        # preamble: up to the first delimiter
        while (at := self.buffer.find(self.delimiter)) < 0:
            if len(self.buffer) > MAX_PART_HEADERS:
                raise MultipartError("no multipart boundary at the start of the answer")
            if not self._fill():
                raise MultipartError("the answer holds no multipart boundary")
        del self.buffer[: at + len(self.delimiter)]
        count = 0
        while True:
            while len(self.buffer) < 2 and self._fill():
                pass
            if self.buffer[:2] == b"--":
                return  # the close delimiter
            head_end = self.buffer.find(b"\r\n\r\n")
            while head_end < 0:
                if len(self.buffer) > MAX_PART_HEADERS:
                    raise MultipartError("a part's headers are too long")
                if not self._fill():
                    raise MultipartError("the answer ended inside a part's headers")
                head_end = self.buffer.find(b"\r\n\r\n")
            if head_end > MAX_PART_HEADERS:
                raise MultipartError("a part's headers are too long")
            headers = self._headers(bytes(self.buffer[:head_end]))
            del self.buffer[: head_end + 4]
            count += 1
            if count > self.max_parts:
                raise MultipartError(f"the answer holds more than {self.max_parts} part(s)")
            size = 0
            keep = len(self.delimiter) - 1
            with open_part(headers) as out:
                while True:
                    at = self.buffer.find(self.delimiter)
                    if at >= 0:
                        size += at
                        if size > self.max_part:
                            raise MultipartError(f"a part is larger than {self.max_part} bytes")
                        out.write(self.buffer[:at])
                        del self.buffer[: at + len(self.delimiter)]
                        break
                    if len(self.buffer) > keep:
                        n = len(self.buffer) - keep
                        size += n
                        if size > self.max_part:
                            raise MultipartError(f"a part is larger than {self.max_part} bytes")
                        out.write(self.buffer[:n])
                        del self.buffer[:n]
                    if not self._fill():
                        raise MultipartError("the answer ended inside a part (no closing boundary)")
            yield Part(headers, size)

    @staticmethod
    def _headers(raw: bytes) -> dict[str, str]:
        out: dict[str, str] = {}
        for line in raw.split(b"\r\n"):
            if not line.strip():
                continue
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep:
                raise MultipartError("a part's header line has no colon")
            out[name.strip().lower()] = value.strip()
        return out


# -- WADO-RS -----------------------------------------------------------------------------------


def _spool_file(folder: Path) -> tuple[Path, BinaryIO]:
    fd, name = tempfile.mkstemp(prefix=f".rx-{os.getpid()}-", suffix=".dcm", dir=folder)
    return Path(name), os.fdopen(fd, "wb")


def _status(result: StoreResult) -> int:
    return int(result[0] if isinstance(result, tuple) else result)


def fetch_instances(
    client: Client,
    path: str,
    expected: set[str],
    on_instance: OnInstance,
    folder: Path,
    *,
    max_instance: int = MAX_INSTANCE,
) -> tuple[list[str], list[tuple[str, str]]]:
    """One WADO-RS request; each part spooled then handed to ``on_instance``.
    Returns (stored SOP Instance UIDs, [(uid or '?', why)] of those that failed)."""
    shown = f"GET {client.node.url}{path}"
    rsp = client.request("GET", path, headers={"Accept": ACCEPT_DICOM})
    stored: list[str] = []
    failed: list[tuple[str, str]] = []
    try:
        reader = MultipartReader(
            rsp.read,
            boundary_of(rsp.getheader("Content-Type", "")),
            max_parts=len(expected),
            max_part=max_instance,
            cancel=client.cancel,
        )
        current: list[Path] = []

        def open_part(headers: dict[str, str]) -> BinaryIO:
            kind = headers.get("content-type", "application/dicom").split(";")[0].strip()
            if kind.lower() != "application/dicom":
                raise MultipartError(f"a part is {escape(kind)}, not application/dicom")
            path, fh = _spool_file(folder)
            current.append(path)
            return fh

        for _part in reader.parts(open_part):
            spooled = current.pop()
            why, uid = _check_part(spooled, expected)
            if why:
                spooled.unlink(missing_ok=True)
                failed.append((uid or "?", why))
                continue
            expected.discard(uid)
            try:
                answer = on_instance(spooled, client.node.ae_title or client.node.name)
            except Exception as exc:
                spooled.unlink(missing_ok=True)
                failed.append((uid, f"not stored: {exc}"))
                continue
            code = _status(answer)
            if code == 0 or code in (0xB000, 0xB006, 0xB007, 0x0001):
                stored.append(uid)
            else:
                spooled.unlink(missing_ok=True)
                failed.append((uid, f"the store refused it (0x{code:04X})"))
    except MultipartError as exc:
        client.close()
        for leftover in current:
            leftover.unlink(missing_ok=True)
        raise NetError(diagnose.FAILED, f"{shown}: {exc}") from exc
    except TimeoutError as exc:
        client.close()
        raise NetError(diagnose.TIMEOUT, f"{shown}: the answer stopped coming") from exc
    except (OSError, http.client.HTTPException) as exc:
        client.close()
        raise NetError(diagnose.ABORTED, f"{shown}: the answer was cut short ({exc!r})") from exc
    except BaseException:
        client.close()
        for leftover in current:
            leftover.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError, http.client.HTTPException, NetError):
        rsp.read(MAX_ERROR_BODY)  # the epilogue after the close delimiter, if any (bounded)
    if rsp.will_close or not rsp.isclosed():
        client.close()  # more than that after the close delimiter: a fresh connection
    return stored, failed


def _check_part(path: Path, expected: set[str]) -> tuple[str, str]:
    """('', uid) for a Part 10 file of an instance we asked for; (why, uid) otherwise."""
    try:
        meta = read_file_meta_info(path)
    except Exception as exc:
        return f"not a DICOM Part 10 file ({escape(exc)})", ""
    uid = str(meta.get("MediaStorageSOPInstanceUID", "")).strip("\0 ")
    if uid not in expected:
        return "the server sent an instance that was not asked for", escape(uid)
    return "", uid


def retrieve(
    node: Node,
    local: LocalSettings,
    study_uid: str,
    series_uid: str | None = None,
    *,
    on_instance: OnInstance,
    is_present: IsPresent | None = None,
    cancel: threading.Event | None = None,
    progress: Progress | None = None,
    max_instance: int = MAX_INSTANCE,
    deadline: float = DEADLINE,
) -> RetrieveResult:
    """WADO-RS of a study or series into ``on_instance``, only what is not present.
    ``deadline``: each request's (each instance's) overall deadline (:class:`Deadline`);
    past it the retrieve stops with :class:`DeadlineError`."""
    folder = Path(getattr(on_instance, "scp_folder", None) or spool_dir())
    result = RetrieveResult()
    with Client(node, local, cancel, deadline=deadline) as client:
        try:
            listed = list_instances(client, study_uid, series_uid)
        except NetError as exc:
            if exc.code == diagnose.CANCELLED:
                result.cancelled = True
                return result
            raise
        todo = [(se, sop) for se, sop in listed if is_present is None or not is_present(sop)]
        result.skipped = len(listed) - len(todo)
        state = RetrieveProgress(total=len(todo), skipped=result.skipped, remaining=len(todo))
        if progress is not None:
            progress(state)
        for series, sop in todo:
            if cancel is not None and cancel.is_set():
                result.cancelled = True
                break
            path = f"/studies/{_uid(study_uid)}/series/{_uid(series)}/instances/{_uid(sop)}"
            try:
                stored, failed = fetch_instances(
                    client, path, {sop}, on_instance, folder, max_instance=max_instance
                )
            except NetError as exc:
                if exc.code == diagnose.CANCELLED:
                    result.cancelled = True
                    break
                if isinstance(exc, HttpError) and exc.status == 404:
                    stored, failed = [], [(sop, "the server no longer has it (404)")]
                else:
                    raise
            if not stored and not failed:
                failed = [(sop, "the answer held no instance")]
            result.completed += len(stored)
            result.failed += len(failed)
            result.failed_uids += [uid for uid, _ in failed]
            for uid, why in failed:
                LOG.warning("%s: instance %s not retrieved: %s", node, uid, why)
            state.completed, state.failed = result.completed, result.failed
            state.remaining = len(todo) - result.completed - result.failed
            if progress is not None:
                progress(state)
    return result


# -- STOW-RS -----------------------------------------------------------------------------------


@dataclass(slots=True)
class StowResult(SendResult):
    #: Already on the node (found by QIDO-RS before sending): not sent again.
    skipped: int = 0


#: PS3.4 Table B.2-1 and PS3.18 Table I.2-1: a Failure Reason of these is a warning, not a loss.
_WARNINGS = {0xB000, 0xB006, 0xB007}


def _study_of(path: Path) -> str:
    try:
        import pydicom

        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["StudyInstanceUID"])
        return str(ds.get("StudyInstanceUID", ""))
    except Exception:
        return ""


def _stow_batches(items: Sequence[InstanceStatus]) -> list[list[InstanceStatus]]:
    out: list[list[InstanceStatus]] = []
    current: list[InstanceStatus] = []
    size = 0
    for item in items:
        length = item.path.stat().st_size
        if current and (len(current) >= STOW_BATCH or size + length > STOW_BATCH_BYTES):
            out.append(current)
            current, size = [], 0
        current.append(item)
        size += length
    if current:
        out.append(current)
    return out


class _Cancelled(Exception):
    pass


def _body(
    items: Sequence[InstanceStatus],
    boundary: str,
    cancel: threading.Event | None,
    deadline: Deadline | None = None,
) -> tuple[int, Iterator[bytes]]:
    """The multipart request body's exact length and its chunks, read from the files; the
    request's ``deadline`` is looked at between chunks."""
    heads = [
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode("ascii") for _ in items
    ]
    sizes = [item.path.stat().st_size for item in items]
    tail = f"\r\n--{boundary}--\r\n".encode("ascii")
    length = sum(len(h) for h in heads) + sum(sizes) + 2 * (len(items) - 1) + len(tail)

    def chunks() -> Iterator[bytes]:
        for index, (item, head) in enumerate(zip(items, heads, strict=True)):
            yield (b"\r\n" if index else b"") + head
            sent = 0
            with item.path.open("rb") as fh:
                while sent < sizes[index]:
                    if cancel is not None and cancel.is_set():
                        raise _Cancelled
                    if deadline is not None:
                        deadline.left()
                    chunk = fh.read(min(CHUNK, sizes[index] - sent))
                    if not chunk:
                        raise OSError(f"{item.path}: the file shrank while it was sent")
                    sent += len(chunk)
                    if deadline is not None:
                        deadline.moved += len(chunk)
                    yield chunk
        yield tail

    return length, chunks()


def _stow_batch(client: Client, items: list[InstanceStatus], study_uid: str = "") -> None:
    """POST one batch; each item's status from the answer (PS3.18 10.5.3)."""
    node = client.node
    path = "/studies" + (f"/{_uid(study_uid)}" if study_uid else "")
    shown = f"POST {node.url}{path}"
    boundary = uuid.uuid4().hex
    length, body = _body(items, boundary, client.cancel, client.deadline)
    headers = {
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        "Content-Length": str(length),
        "Accept": f"{DICOM_JSON}, application/json",
    }
    try:
        rsp = client.request("POST", path, headers=headers, body=body, ok=(200, 202, 400, 409))
    except _Cancelled:
        client.close()
        for item in items:
            item.message = "cancelled"
        raise
    answer = client._read_json(rsp, shown)
    if isinstance(answer, list):  # some servers wrap the one object in a list
        answer = answer[0] if answer else {}
    if not isinstance(answer, dict):
        answer = {}
    by_uid = {item.sop_instance_uid: item for item in items}
    for ref in _sequence(answer, "00081199"):
        uid = json_to_dict(ref).get("ReferencedSOPInstanceUID", "")
        if uid in by_uid:
            warned = "00081196" in ref
            by_uid[uid].status = 0xB000 if warned else 0
            by_uid[uid].message = "stored with a warning" if warned else ""
    for bad in _sequence(answer, "00081198"):
        row = json_to_dict(bad)
        uid = row.get("ReferencedSOPInstanceUID", "")
        if uid in by_uid:
            reason = row.get("FailureReason", "")
            code = int(reason) if reason.isdigit() else 0x0110
            by_uid[uid].status = code if code not in _WARNINGS else 0x0110
            by_uid[uid].message = f"{node} did not store it (Failure Reason 0x{code:04X})"
    for item in items:
        if item.status is None:
            item.message = (
                f"{shown}: HTTP {rsp.status}, and the answer does not say it stored this instance"
            )


def send(
    node: Node,
    local: LocalSettings,
    paths: Sequence[Path],
    *,
    cancel: threading.Event | None = None,
    progress: SendProgress | None = None,
    skip_present: bool = True,
    deadline: float = DEADLINE,
) -> StowResult:
    """STOW-RS of ``paths`` (Part 10 files) to ``node``; per-instance statuses in the result
    (the same :class:`viewer.net.send.SendResult` shape as C-STORE). Raises
    :class:`NetError` when the node cannot be reached or refuses us (401/403). ``deadline``:
    each request's (each batch's) overall deadline (:class:`Deadline`); a batch past it fails."""
    items = [_describe(Path(p)) for p in paths]
    result = StowResult(items)
    total = len(items)
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    todo: list[InstanceStatus] = []
    for item in items:
        if not item.retryable:
            tick(1)
        elif not item.offset:
            item.message = f"{item.path}: not a DICOM Part 10 file (STOW-RS sends only those)"
            item.retryable = False
            tick(1)
        else:
            todo.append(item)
    if cancel is not None and cancel.is_set():
        for item in todo:
            item.message = "cancelled"
        result.cancelled = True
        return result
    with Client(node, local, cancel, deadline=deadline) as client:
        if skip_present and todo:
            studies = {id(item): _study_of(item.path) for item in todo}
            try:
                present = _present_on_node_by(client, todo, studies)
            except NetError as exc:
                if exc.code != diagnose.CANCELLED:
                    raise
                for item in todo:
                    item.message = "cancelled"
                result.cancelled = True
                return result
            if present:
                for item in todo:
                    if item.sop_instance_uid in present:
                        item.status = 0
                        item.message = "already on the node"
                result.skipped = sum(1 for i in todo if i.sop_instance_uid in present)
                todo = [i for i in todo if i.sop_instance_uid not in present]
                tick(result.skipped)
        for batch in _stow_batches(todo):
            if cancel is not None and cancel.is_set():
                result.cancelled = True
                for item in batch:
                    item.message = "cancelled"
                continue
            try:
                _stow_batch(client, batch)
            except _Cancelled:
                result.cancelled = True
                continue
            except NetError as exc:
                if exc.code in (AUTH, diagnose.TLS, diagnose.REFUSED, diagnose.UNKNOWN_HOST):
                    raise
                if exc.code == diagnose.CANCELLED:
                    result.cancelled = True
                    continue
                for item in batch:
                    item.message = exc.message
            tick(len(batch))
    return result


def _present_on_node_by(
    client: Client, items: Sequence[InstanceStatus], studies: dict[int, str]
) -> set[str]:
    by_study: dict[str, set[str]] = {}
    for item in items:
        study = studies.get(id(item), "")
        if study:
            by_study.setdefault(study, set()).add(item.sop_instance_uid)
    present: set[str] = set()
    for study, uids in by_study.items():
        try:
            listed = list_instances(client, study, None)
        except HttpError as exc:
            if exc.code == AUTH:
                raise
            continue  # unknown study (404, or 204): nothing of it there
        except ValueError:
            continue
        present |= {sop for _, sop in listed} & uids
    return present
