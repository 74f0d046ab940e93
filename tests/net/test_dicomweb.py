"""DICOMweb nodes (issue 13): QIDO-RS, WADO-RS, STOW-RS against Orthanc's DICOMweb plugin.

Real Orthanc (Debian's ``orthanc`` with ``orthanc-dicomweb`` 1.7), real TLS (a self-signed
certificate made here with the ``openssl`` command), and for what no honest server does a tiny
``http.server`` in this file that lies about lengths and sizes.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import os
import socket
import ssl
import stat
import subprocess
import threading
import time
import tracemalloc
import urllib.request
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pynetdicom.dsutils import split_dataset

from tests.cli import lightbox
from tests.conftest import require_tool
from tests.net import peers
from tests.net.conftest import Received
from viewer.net import dicomweb
from viewer.net.diagnose import NetError
from viewer.net.find import FindQuery, find
from viewer.net.nodes import LocalSettings, Node, Tls, add_node, config_path, load_config
from viewer.net.retrieve import RetrieveProgress, retrieve

DICOMWEB = {"DicomWeb": {"Enable": True, "Root": "/dicom-web/"}}
PLUGINS = ("OrthancDicomWeb",)


def _start(folder: Path, scp_port: int, **extra: Any) -> peers.Orthanc:
    return peers.start_orthanc(folder, scp_port, extra={**DICOMWEB, **extra}, plugins=PLUGINS)


@pytest.fixture
def web(tmp_path: Path, scp_port: int) -> Iterator[peers.Orthanc]:
    peer = _start(tmp_path / "orthanc", scp_port)
    yield peer
    peer.stop()


def _node(peer: peers.Orthanc, **kw: Any) -> Node:
    scheme = "https" if kw.pop("https", False) else "http"
    return Node("web", url=f"{scheme}://127.0.0.1:{peer.http_port}/dicom-web", **kw)


def _dataset_bytes(path: Path) -> bytes:
    _meta, offset = split_dataset(path)
    return path.read_bytes()[offset:]


@contextlib.contextmanager
def _rest_opener(*, auth: str = "", context: ssl.SSLContext | None = None) -> Iterator[None]:
    """``peers.Orthanc.rest`` (urllib's global opener) with our credentials or over TLS, for an
    Orthanc that demands them (its readiness check and uploads go through it)."""

    class Handler(urllib.request.HTTPHandler):
        def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
            if auth:
                req.add_unredirected_header("Authorization", auth)
            if context is not None:
                return self.do_open(partial(http.client.HTTPSConnection, context=context), req)
            return self.do_open(http.client.HTTPConnection, req)

    urllib.request.install_opener(urllib.request.build_opener(Handler))
    try:
        yield
    finally:
        urllib.request.install_opener(None)


# -- QIDO-RS -----------------------------------------------------------------------------------


def test_qido_three_levels(
    web: peers.Orthanc,
    local: LocalSettings,
    study: peers.StudyFiles,
    other_study: peers.StudyFiles,
) -> None:
    web.upload(study.files + other_study.files)
    node = _node(web)
    studies = find(node, local, FindQuery(patient_name="DOE*"))
    assert [m["StudyInstanceUID"] for m in studies.matches] == [study.study_instance_uid]
    assert studies.matches[0]["PatientName"] == "DOE^JOHN"
    assert studies.matches[0]["AccessionNumber"] == "ACC001"
    assert studies.model == "QIDO-RS" and not studies.stopped_at
    both = find(node, local, FindQuery(study_date_from="20230101", study_date_to="20241231"))
    assert len(both.matches) == 2
    limited = find(node, local, FindQuery(), limit=1)
    assert len(limited.matches) == 1 and limited.stopped_at == 1 and limited.note
    series = find(node, local, FindQuery("SERIES", study_instance_uid=study.study_instance_uid))
    assert {m["SeriesInstanceUID"] for m in series.matches} == set(study.series)
    assert {m["Modality"] for m in series.matches} == {"CT", "OT"}
    first = next(iter(study.series))
    images = find(
        node,
        local,
        FindQuery("IMAGE", study_instance_uid=study.study_instance_uid, series_instance_uid=first),
    )
    assert sorted(m["SOPInstanceUID"] for m in images.matches) == sorted(study.series[first])
    patients = find(node, local, FindQuery("PATIENT"))
    assert sorted(m["PatientID"] for m in patients.matches) == ["LB001", "LB002"]


# -- WADO-RS -----------------------------------------------------------------------------------


def test_wado_retrieve_byte_identical(
    web: peers.Orthanc, local: LocalSettings, study: peers.StudyFiles, received: Received
) -> None:
    web.upload(study.files)
    seen: list[RetrieveProgress] = []
    result = retrieve(
        _node(web),
        local,
        study.study_instance_uid,
        on_instance=received,
        is_present=received.is_present,
        progress=lambda p: seen.append(
            RetrieveProgress(**{k: getattr(p, k) for k in RetrieveProgress.__dataclass_fields__})
        ),
    )
    assert result.ok and result.completed == 6 and result.skipped == 0, result
    assert received.uids() == set(study.sop_instance_uids)
    for original in study.files:  # the JPEG one too: transfer-syntax=*, never transcoded
        copy = received.folder / f"{original.stem}.dcm"
        assert _dataset_bytes(copy) == _dataset_bytes(original)
    assert [p.completed for p in seen] == [0, 1, 2, 3, 4, 5, 6]
    assert seen[-1].total == 6 and seen[-1].remaining == 0
    series = next(iter(study.series))
    again = retrieve(
        _node(web),
        local,
        study.study_instance_uid,
        series,
        on_instance=received,
        is_present=received.is_present,
    )
    assert again.completed == 0 and again.skipped == len(study.series[series])


def test_wado_resume_after_cancel(
    web: peers.Orthanc, local: LocalSettings, study: peers.StudyFiles, received: Received
) -> None:
    web.upload(study.files)
    cancel = threading.Event()

    def progress(p: RetrieveProgress) -> None:
        if p.completed >= 2:
            cancel.set()

    node = _node(web)
    first = retrieve(
        node,
        local,
        study.study_instance_uid,
        on_instance=received,
        is_present=received.is_present,
        cancel=cancel,
        progress=progress,
    )
    assert first.cancelled and first.completed == 2 and not first.ok
    assert len(received.uids()) == 2
    rest = retrieve(
        node,
        local,
        study.study_instance_uid,
        on_instance=received,
        is_present=received.is_present,
    )
    assert rest.ok and rest.skipped == 2 and rest.completed == 4
    assert received.uids() == set(study.sop_instance_uids)
    assert not list(received.folder.glob(".rx-*")), "a spool file was left behind"


# -- STOW-RS -----------------------------------------------------------------------------------


def test_stow_send_stored_and_resumed(
    web: peers.Orthanc, local: LocalSettings, study: peers.StudyFiles
) -> None:
    node = _node(web)
    ticks: list[tuple[int, int]] = []
    result = dicomweb.send(node, local, study.files[:4], progress=lambda d, t: ticks.append((d, t)))
    assert result.sent == 4 and not result.failed and result.skipped == 0
    assert web.statistics()["CountInstances"] == 4
    assert ticks[-1] == (4, 4)
    again = dicomweb.send(node, local, study.files)  # resumes: the four are not sent again
    assert again.skipped == 4 and again.sent == 6 and not again.failed
    assert web.statistics()["CountInstances"] == 6
    assert {i.message for i in again.instances[:4]} == {"already on the node"}
    cancel = threading.Event()
    cancel.set()
    web.reset()
    stopped = dicomweb.send(node, local, study.files, cancel=cancel)
    assert stopped.cancelled and stopped.sent == 0
    assert web.statistics()["CountInstances"] == 0


def test_stow_failed_instance_is_not_success(
    web: peers.Orthanc, local: LocalSettings, tmp_path: Path, study: peers.StudyFiles
) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\x04\x00abcd")
    result = dicomweb.send(_node(web), local, [study.files[0], junk])
    assert result.sent == 1
    assert [i.path for i in result.failed] == [junk]


# -- authentication and TLS ---------------------------------------------------------------------


def test_basic_auth(
    tmp_path: Path, scp_port: int, local: LocalSettings, study: peers.StudyFiles
) -> None:
    import base64

    header = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    with _rest_opener(auth=header):
        peer = _start(
            tmp_path / "orthanc",
            scp_port,
            AuthenticationEnabled=True,
            RegisteredUsers={"alice": "s3cret"},
        )
        try:
            peer.upload(study.files)
        except BaseException:
            peer.stop()
            raise
    try:
        good = _node(peer, auth="basic", user="alice", secret="s3cret")
        assert len(find(good, local, FindQuery()).matches) == 1
        bad = _node(peer, auth="basic", user="alice", secret="wrong")
        with pytest.raises(NetError) as refused:
            find(bad, local, FindQuery())
        assert refused.value.code == dicomweb.AUTH and "401" in refused.value.message
        none = _node(peer)
        with pytest.raises(NetError, match="no credentials"):
            find(none, local, FindQuery())
        # the command: exit 3, the URL named, the password nowhere
        add_node(bad)
        cli = lightbox("find", "web")
        assert cli.returncode == 3, cli.stderr
        assert f"127.0.0.1:{peer.http_port}/dicom-web" in cli.stderr
        assert "401" in cli.stderr and "wrong" not in cli.stderr + cli.stdout
        assert "Traceback" not in cli.stderr
    finally:
        peer.stop()


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """(key, certificate) PEM files for 127.0.0.1; the certificate is its own CA."""
    openssl = require_tool("openssl")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return key, cert


class _TlsFront:
    """TLS in front of a plain HTTP port: each connection is accepted with ``context``'s
    certificate and piped to ``127.0.0.1:port``. Orthanc 1.10.1 of Debian 12 has TLS
    (``SslEnabled``), but it dies of a segmentation fault at the first HTTPS connection
    (exit 139), so its TLS cannot be tested; this front is real TLS all the same."""

    def __init__(self, context: ssl.SSLContext, port: int) -> None:
        self.context, self.target = context, port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.server.getsockname()[1])
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                raw, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            conn = self.context.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()  # the client did not trust us: what the test wants to see
            return
        back = socket.create_connection(("127.0.0.1", self.target))

        def pipe(a: socket.socket, b: socket.socket) -> None:
            with contextlib.suppress(OSError):
                while data := a.recv(1 << 16):
                    b.sendall(data)
            with contextlib.suppress(OSError):
                b.shutdown(socket.SHUT_WR)

        up = threading.Thread(target=pipe, args=(conn, back), daemon=True)
        up.start()
        pipe(back, conn)
        up.join(5)
        conn.close()
        back.close()

    def close(self) -> None:
        self.server.close()


def test_https_verified_with_ca_file_refused_without(
    web: peers.Orthanc, local: LocalSettings, study: peers.StudyFiles, tmp_path: Path
) -> None:
    web.upload(study.files[:2])
    key, cert = _self_signed(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    front = _TlsFront(server_ctx, web.http_port)
    url = f"https://127.0.0.1:{front.port}/dicom-web"
    try:
        trusted = Node("web", url=url, tls=Tls(ca=str(cert)))
        assert len(find(trusted, local, FindQuery()).matches) == 1
        got = dicomweb.send(trusted, local, study.files[2:4])
        assert got.sent == 2 and web.statistics()["CountInstances"] == 4
        stranger = Node("web", url=url)  # the system's CAs do not know it
        with pytest.raises(NetError) as refused:
            find(stranger, local, FindQuery())
        assert refused.value.code == "tls" and "--tls-ca" in refused.value.message
        assert url in refused.value.message
        insecure = Node("web", url=url, insecure=True)
        assert len(find(insecure, local, FindQuery()).matches) == 1
        assert "NOT VERIFIED" in insecure.describe()
        add_node(stranger)
        cli = lightbox("find", "web")
        assert cli.returncode == 3 and "not trusted" in cli.stderr, cli.stderr
    finally:
        front.close()


# -- a hostile server --------------------------------------------------------------------------

STUDY, SERIES, SOP = "1.2.3", "1.2.3.4", "1.2.3.4.5"


class _Liar(http.server.BaseHTTPRequestHandler):
    """QIDO lists one instance; WADO answers with whatever ``mode`` says."""

    mode = "huge"
    protocol_version = "HTTP/1.1"
    #: The Authorization header of each request, as received.
    seen_auth: ClassVar[list[str]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.seen_auth.append(self.headers.get("Authorization", ""))
        if self.path.startswith(f"/dw/studies/{STUDY}/instances"):
            if self.mode == "bigjson":
                body = b"[" + b"{}," * 400_000 + b"{}]"
            else:
                body = json.dumps(
                    [
                        {
                            "0020000E": {"vr": "UI", "Value": [SERIES]},
                            "00080018": {"vr": "UI", "Value": [SOP]},
                        }
                    ]
                ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/dicom+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Content-Type", 'multipart/related; type="application/dicom"; boundary=B')
        if self.mode == "short":
            # says 10 GB, sends a part without its closing boundary, then closes
            self.send_header("Content-Length", str(10 << 30))
            self.end_headers()
            self.wfile.write(b"--B\r\nContent-Type: application/dicom\r\nContent-Length: 5\r\n\r\n")
            self.wfile.write(b"\0" * 1000)
            self.close_connection = True
            return
        if self.mode == "unclosed":  # no Content-Length: the body ends when the socket does
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"--B\r\nContent-Type: application/dicom\r\n\r\n" + b"\0" * 1000)
            return
        if self.mode == "headers":
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"--B\r\n" + b"X-Junk: " + b"a" * (1 << 20))
            return
        # "huge": a part that never ends: 64 MiB without a boundary, Content-Length 10
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b"--B\r\nContent-Type: application/dicom\r\nContent-Length: 10\r\n\r\n")
        block = b"\x55" * (1 << 20)
        with contextlib.suppress(OSError):
            for _ in range(64):
                self.wfile.write(block)


@pytest.fixture
def liar() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Liar)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("mode", "words"),
    [
        ("huge", "larger than"),
        ("short", "ended inside a part"),
        ("unclosed", "ended inside a part"),
        ("headers", "headers are too long"),
        ("bigjson", "larger than"),
    ],
)
def test_hostile_multipart_is_bounded(
    liar: http.server.ThreadingHTTPServer,
    local: LocalSettings,
    received: Received,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    words: str,
) -> None:
    _Liar.mode = mode
    monkeypatch.setattr(dicomweb, "MAX_JSON", 1 << 20)
    node = Node("liar", url=f"http://127.0.0.1:{liar.server_address[1]}/dw")
    tracemalloc.start()
    try:
        with pytest.raises(NetError, match=words) as failed:
            dicomweb.retrieve(node, local, STUDY, on_instance=received, max_instance=8 << 20)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert node.url in failed.value.message
    assert peak < 16 << 20, f"{peak} bytes held for a hostile answer"
    assert not list(received.folder.iterdir()) and not list(received.folder.glob(".*"))


class _Trickler(http.server.BaseHTTPRequestHandler):
    """A server that answers, but one byte every ``PACE`` seconds: never idle long enough for
    the network timeout. ``where`` says what trickles: the WADO-RS ``body`` (after honest
    headers) or the QIDO-RS answer's status line and ``headers``."""

    PACE = 0.2
    where = "body"
    stop = threading.Event()
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _trickle(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            for byte in data:
                if self.stop.wait(self.PACE):
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()

    def do_GET(self) -> None:
        if self.path.startswith(f"/dw/studies/{STUDY}/instances"):
            body = json.dumps(
                [
                    {
                        "0020000E": {"vr": "UI", "Value": [SERIES]},
                        "00080018": {"vr": "UI", "Value": [SOP]},
                    }
                ]
            ).encode()
            head = (
                "HTTP/1.1 200 OK\r\nContent-Type: application/dicom+json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            if self.where == "headers":
                self._trickle(head + body)
                self.close_connection = True
                return
            self.wfile.write(head + body)
            return
        self.send_response(200)
        self.send_header("Content-Type", 'multipart/related; type="application/dicom"; boundary=B')
        self.send_header("Connection", "close")
        self.end_headers()
        self._trickle(b"--B\r\nContent-Type: application/dicom\r\n\r\n" + b"\0" * 10_000)


@pytest.fixture
def trickler() -> Iterator[http.server.ThreadingHTTPServer]:
    _Trickler.stop = threading.Event()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Trickler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    _Trickler.stop.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.mark.parametrize("where", ["body", "headers"])
def test_trickling_server_meets_the_overall_deadline(
    trickler: http.server.ThreadingHTTPServer, local: LocalSettings, received: Received, where: str
) -> None:
    """A byte every 0.2 s never trips the 30 s network timeout; the 2 s deadline ends the
    retrieve (the WADO-RS body trickles) or its QIDO-RS listing (the headers trickle)."""
    _Trickler.where = where
    node = Node("slow", url=f"http://127.0.0.1:{trickler.server_address[1]}/dw")
    start = time.monotonic()
    with pytest.raises(dicomweb.DeadlineError) as stopped:
        dicomweb.retrieve(node, local, STUDY, on_instance=received, deadline=2.0)
    took = time.monotonic() - start
    assert 2.0 <= took < 6.0, took  # the trickle alone would last 2000 s
    message = stopped.value.message
    assert stopped.value.code == "timeout"
    assert f"GET {node.url}/studies/{STUDY}" in message
    if where == "body":
        assert f"/instances/{SOP}: not finished after 2" in message
    assert "the server answers too slowly" in message
    assert not list(received.folder.iterdir()) and not list(received.folder.glob(".*"))


def test_bearer_token_is_sent_and_never_shown(
    liar: http.server.ThreadingHTTPServer, local: LocalSettings
) -> None:
    _Liar.mode, _Liar.seen_auth = "huge", []
    node = Node(
        "liar", url=f"http://127.0.0.1:{liar.server_address[1]}/dw", auth="bearer", secret="t0k"
    )
    assert dicomweb.echo(node, local)[0] is False  # the answer to /studies is not JSON
    assert _Liar.seen_auth == ["Bearer t0k"]
    assert "t0k" not in repr(node) + node.describe() + str(node)


def test_multipart_reader_across_chunks() -> None:
    body = (
        b"preamble\r\n--XY\r\nContent-Type: application/dicom\r\n\r\nfirst\r\n--X"
        b"\r\n--XY\r\nContent-Type: application/dicom\r\n\r\n\r\n--XZsecond\r\n--XY--\r\n"
    )
    for step in (1, 2, 3, 7, len(body)):
        chunks = [body[i : i + step] for i in range(0, len(body), step)]
        reader = dicomweb.MultipartReader(
            partial(lambda it, _n: next(it, b""), iter(chunks)), "XY", max_parts=2, max_part=100
        )
        import io

        outs: list[io.BytesIO] = []

        def open_part(headers: dict[str, str], outs: list[io.BytesIO] = outs) -> Any:
            outs.append(io.BytesIO())
            outs[-1].close = lambda: None  # type: ignore[method-assign]
            return outs[-1]

        sizes = [p.size for p in reader.parts(open_part)]
        assert [o.getvalue() for o in outs] == [b"first\r\n--X", b"\r\n--XZsecond"], step
        assert sizes == [10, 12]


# -- the commands ------------------------------------------------------------------------------


def test_cli_nodes_find_get_send(
    web: peers.Orthanc, study: peers.StudyFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{web.http_port}/dicom-web"
    monkeypatch.setenv("LIGHTBOX_SECRET", "tok-123-secret")
    added = lightbox("nodes", "add", "web", url, "--bearer")
    assert added.returncode == 0, added.stderr
    listed = lightbox("nodes", "ls")
    assert f"web: {url} (DICOMweb, bearer token, no TLS)" in listed.stdout
    assert "tok-123" not in listed.stdout + listed.stderr
    assert stat.S_IMODE(os.stat(config_path()).st_mode) == 0o600
    assert load_config().nodes["web"].secret == "tok-123-secret"
    assert lightbox("echo", "web").returncode == 0
    folder = tmp_path / "send"
    folder.mkdir()
    for f in study.files:
        (folder / f.name).write_bytes(f.read_bytes())
    sent = lightbox("send", "web", str(folder))
    assert sent.returncode == 0, sent.stderr
    assert "sent: 6, warnings: 0, failed: 0" in sent.stdout
    assert web.statistics()["CountInstances"] == 6
    found = lightbox("find", "web", "-k", "PatientID=LB001", "--json")
    assert found.returncode == 0, found.stderr
    assert [m["StudyInstanceUID"] for m in json.loads(found.stdout)] == [study.study_instance_uid]
    series = lightbox(
        "find", "web", "--level", "series", "-k", f"StudyInstanceUID={study.study_instance_uid}"
    )
    assert series.returncode == 0 and series.stdout.count("SeriesInstanceUID=") == 3
    got = lightbox("get", "web", "--study", study.study_instance_uid)
    assert got.returncode == 0, got.stderr
    assert "completed: 6, failed: 0" in got.stdout
    again = lightbox("get", "web", "--study", study.study_instance_uid)
    assert "completed: 0" in again.stdout and "already present: 6" in again.stdout
    bad = lightbox("nodes", "add", "x", "https://u:p@host/dicom-web")
    assert bad.returncode == 2 and "no user or password in the URL" in bad.stderr
    unreachable = lightbox("find", f"http://127.0.0.1:{peers.free_port()}/dicom-web")
    assert unreachable.returncode == 3 and "connection refused" in unreachable.stderr
