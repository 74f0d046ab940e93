"""TLS contexts for DICOM associations: PS3.15 B.9 'BCP 195 TLS Profile' (TLS 1.2 or later).

BCP 195 (RFC 7525/9325): no SSL, no TLS 1.0/1.1, no RC4/3DES/export/NULL/anonymous suites,
forward-secret AEAD suites preferred, peer certificates verified. Both sides authenticate with
certificates when a CA is given (DICOM's 'secure transport connection' assumes mutual
authentication; PS3.15 B.1).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from viewer.net.nodes import ConfigError, Tls

#: OpenSSL cipher string for TLS 1.2: ECDHE/DHE with AES-GCM or ChaCha20 (RFC 9325 4.2).
#: TLS 1.3 suites are all acceptable and configured by OpenSSL itself.
BCP195_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS"


def _check_files(tls: Tls) -> None:
    for what, name in (("CA file", tls.ca), ("certificate", tls.cert), ("key", tls.key)):
        if name and not Path(name).is_file():
            raise ConfigError(f"TLS {what} {name} does not exist")
    if bool(tls.cert) != bool(tls.key):
        raise ConfigError("TLS needs both a certificate and its private key")


def _harden(ctx: ssl.SSLContext) -> ssl.SSLContext:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(BCP195_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION  # CRIME (RFC 9325 3.3)
    return ctx


def client_context(tls: Tls) -> ssl.SSLContext:
    """Context for an SCU: verify the peer against ``tls.ca`` (else the system store)."""
    _check_files(tls)
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls.ca or None)
        if tls.cert:
            ctx.load_cert_chain(tls.cert, tls.key)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"TLS material cannot be loaded: {exc}") from exc
    return _harden(ctx)


def server_context(tls: Tls) -> ssl.SSLContext:
    """Context for our SCP: our certificate; callers must present one chaining to ``tls.ca``."""
    _check_files(tls)
    if not tls.cert:
        raise ConfigError("a TLS storage SCP needs a certificate and a key")
    try:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls.cert, tls.key)
        if tls.ca:
            ctx.load_verify_locations(cafile=tls.ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"TLS material cannot be loaded: {exc}") from exc
    return _harden(ctx)
