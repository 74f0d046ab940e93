"""C-ECHO and its diagnoses against real peers on loopback (PEERS.md)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.net import peers
from viewer.net import diagnose
from viewer.net.echo import echo
from viewer.net.nodes import LocalSettings, Node, Timeouts


def test_echo_orthanc_and_dcmtk(orthanc_node: Node, local: LocalSettings, tmp_path: Path) -> None:
    result = echo(orthanc_node, local)
    assert result.ok and result.code == "ok", result.message
    storescp = peers.start_storescp(tmp_path)
    try:
        assert echo(Node("s", "PEER", "127.0.0.1", storescp.port), local).ok
    finally:
        storescp.stop()


def test_refused(local: LocalSettings) -> None:
    result = echo(Node("n", "ANY", "127.0.0.1", peers.free_port()), local)
    assert (result.ok, result.code) == (False, diagnose.REFUSED)
    assert "connection refused" in result.message


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A socket that accepts connections (kernel backlog) and never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(4)
        yield int(sock.getsockname()[1])


def test_timeout_from_a_socket_that_never_answers(silent_port: int) -> None:
    local = LocalSettings(timeouts=Timeouts(connect=2, acse=1, dimse=2, network=5))
    result = echo(Node("n", "ANY", "127.0.0.1", silent_port), local)
    assert result.code == diagnose.TIMEOUT, result.message
    assert "did not answer the association request within 1 s" in result.message
    assert result.seconds < 4


def _peer_that_resets_once_then_rejects(sock: socket.socket, connections: list[str]) -> None:
    """First connection: the request read, then a reset (SO_LINGER 0), no answer; the second:
    an A-ASSOCIATE-RJ, rejected permanent, service user, calling AE title not recognised."""
    import struct

    for attempt in range(2):
        conn, _ = sock.accept()
        with conn:
            conn.settimeout(5)
            conn.recv(65536)
            if attempt == 0:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                connections.append("reset")
            else:
                conn.sendall(bytes([0x03, 0, 0, 0, 0, 4, 0, 0x01, 0x01, 0x03]))
                connections.append("rejected")


def test_a_rejection_lost_to_a_reset_is_asked_once_more(local: LocalSettings) -> None:
    """Orthanc rejects an unknown calling AE and closes at once; now and then the reset beats
    the A-ASSOCIATE-RJ and the association reads as aborted. echo asks once more."""
    import threading

    connections: list[str] = []
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(4)
        peer = threading.Thread(
            target=_peer_that_resets_once_then_rejects, args=(sock, connections), daemon=True
        )
        peer.start()
        result = echo(Node("n", "PEER", "127.0.0.1", int(sock.getsockname()[1])), local)
        peer.join(10)
    assert connections == ["reset", "rejected"]
    assert result.code == diagnose.CALLING_AE, result.message


def test_unknown_called_ae(orthanc_node: Node, local: LocalSettings) -> None:
    result = echo(replace(orthanc_node, ae_title="NOTORTHANC"), local)
    assert result.code == diagnose.CALLED_AE
    assert "'NOTORTHANC'" in result.message


def test_unknown_calling_ae(orthanc_node: Node, local: LocalSettings) -> None:
    result = echo(orthanc_node, replace(local, ae_title="STRANGER"))
    assert result.code == diagnose.CALLING_AE
    assert "'STRANGER'" in result.message and "known modalities" in result.message


def test_unknown_host(local: LocalSettings) -> None:
    result = echo(Node("n", "ANY", "no-such-host.invalid", 104), local)
    assert result.code == diagnose.UNKNOWN_HOST


PROFILE = """\
[[TransferSyntaxes]]
[Uncompressed]
TransferSyntax1 = LocalEndianExplicit
TransferSyntax2 = LittleEndianImplicit
[[PresentationContexts]]
[CTOnly]
PresentationContext1 = CTImageStorage\\Uncompressed
[[Profiles]]
[CTOnly]
PresentationContexts = CTOnly
"""


def test_no_common_presentation_context(local: LocalSettings, tmp_path: Path) -> None:
    """A storescp whose association profile offers CT storage only: no Verification."""
    profile = tmp_path / "ct-only.cfg"
    profile.write_text(PROFILE)
    storescp = peers.start_storescp(tmp_path, "-xf", str(profile), "CTOnly")
    try:
        result = echo(Node("s", "PEER", "127.0.0.1", storescp.port), local)
    finally:
        storescp.stop()
    assert result.code == diagnose.NO_CONTEXT, result.message
    assert "Verification" in result.message
