"""TLS (PS3.15 B.9, BCP 195) between our SCU and SCP, and from DCMTK storescu (+tls)."""

from __future__ import annotations

import ssl
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.net import peers
from tests.net.conftest import Received
from viewer.net import diagnose
from viewer.net.echo import echo
from viewer.net.find import FindQuery, find
from viewer.net.nodes import LocalSettings, Node, Tls
from viewer.net.scp import StorageScp
from viewer.net.send import send
from viewer.net.tls import client_context, server_context


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(
        [require_tool("openssl"), *args], cwd=cwd, check=True, capture_output=True, timeout=60
    )


def _ca(folder: Path, name: str) -> tuple[Path, Path]:
    key, cert = folder / f"{name}.key", folder / f"{name}.pem"
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(cert),
        "-days",
        "2",
        "-subj",
        f"/CN={name}",
        cwd=folder,
    )
    return cert, key


def _leaf(folder: Path, name: str, ca: tuple[Path, Path], san: str) -> tuple[Path, Path]:
    key, csr, cert = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.pem"
    ext = folder / f"{name}.ext"
    ext.write_text(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n")
    _openssl(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        f"/CN={name}",
        cwd=folder,
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca[0]),
        "-CAkey",
        str(ca[1]),
        "-CAcreateserial",
        "-out",
        str(cert),
        "-days",
        "2",
        "-extfile",
        str(ext),
        cwd=folder,
    )
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throw-away CA with a server certificate for 127.0.0.1 and a client certificate."""
    folder = tmp_path_factory.mktemp("pki")
    ca = _ca(folder, "ca")
    other = _ca(folder, "other-ca")
    server = _leaf(folder, "server", ca, "IP:127.0.0.1,DNS:localhost")
    client = _leaf(folder, "client", ca, "DNS:lightbox-client")
    return Pki(ca[0], server[0], server[1], client[0], client[1], other[0])


@pytest.fixture
def tls_scp(pki: Pki, local: LocalSettings, received: Received) -> StorageScp:
    settings = replace(local, tls=Tls(str(pki.ca), str(pki.server_cert), str(pki.server_key)))
    scp = StorageScp(settings, received)
    scp.start()
    yield scp  # type: ignore[misc]
    scp.stop()


def test_contexts_follow_bcp195(pki: Pki) -> None:
    for ctx in (
        client_context(Tls(str(pki.ca), str(pki.client_cert), str(pki.client_key))),
        server_context(Tls(str(pki.ca), str(pki.server_cert), str(pki.server_key))),
    ):
        assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
        assert ctx.verify_mode == ssl.CERT_REQUIRED
        names = {c["name"] for c in ctx.get_ciphers()}
        assert not any(
            "RC4" in n or "3DES" in n or "NULL" in n or n.startswith("AES") for n in names
        )


def test_tls_round_trip(
    tls_scp: StorageScp,
    pki: Pki,
    local: LocalSettings,
    received: Received,
    study: peers.StudyFiles,
) -> None:
    tls = Tls(str(pki.ca), str(pki.client_cert), str(pki.client_key))
    node = Node("self", "LIGHTBOX", "127.0.0.1", local.scp_port, tls=tls)
    assert echo(node, local).ok
    result = send(node, local, study.files)
    assert result.sent == len(study.files)
    assert received.uids() == set(study.sop_instance_uids)


def test_untrusted_server_and_plain_caller_are_refused(
    tls_scp: StorageScp, pki: Pki, local: LocalSettings
) -> None:
    wrong = Tls(str(pki.other_ca), str(pki.client_cert), str(pki.client_key))
    result = echo(Node("self", "LIGHTBOX", "127.0.0.1", local.scp_port, tls=wrong), local)
    assert result.code == diagnose.TLS, result.message
    assert "certificate" in result.message
    plain = echo(Node("self", "LIGHTBOX", "127.0.0.1", local.scp_port), local)
    assert not plain.ok


def test_dcmtk_storescu_over_tls(
    tls_scp: StorageScp,
    pki: Pki,
    local: LocalSettings,
    received: Received,
    study: peers.StudyFiles,
) -> None:
    result = peers.storescu(
        "STORESCU",
        "LIGHTBOX",
        local.scp_port,
        study.files[:2],
        "+tls",
        str(pki.client_key),
        str(pki.client_cert),
        "+cf",
        str(pki.ca),
        "+px",
    )
    assert result.returncode == 0, result.stderr
    assert received.uids() == set(p.stem for p in study.files[:2])


def test_tls_round_trip_with_orthanc(
    pki: Pki, tmp_path: Path, scp_port: int, local: LocalSettings, study: peers.StudyFiles
) -> None:
    """Orthanc's DICOM TLS (DCMTK inside) with our certificates: echo, store, find."""
    orthanc = peers.start_orthanc(
        tmp_path / "orthanc-tls",
        scp_port,
        extra={
            "DicomTlsEnabled": True,
            "DicomTlsCertificate": str(pki.server_cert),
            "DicomTlsPrivateKey": str(pki.server_key),
            "DicomTlsTrustedCertificates": str(pki.ca),
            "DicomTlsRemoteCertificateRequired": True,
        },
    )
    try:
        tls = Tls(str(pki.ca), str(pki.client_cert), str(pki.client_key))
        node = Node("orthanc", "ORTHANC", "127.0.0.1", orthanc.dicom_port, tls=tls)
        result = echo(node, local)
        assert result.ok, result.message
        assert send(node, local, study.files).sent == len(study.files)
        assert orthanc.statistics()["CountInstances"] == len(study.files)
        [match] = find(node, local, FindQuery(patient_id="LB001")).matches
        assert match["StudyInstanceUID"] == study.study_instance_uid
        assert not echo(Node("plain", "ORTHANC", "127.0.0.1", orthanc.dicom_port), local).ok
    finally:
        orthanc.stop()
