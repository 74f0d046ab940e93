"""Remote DICOM nodes and our own network settings, kept in ``app_home()/network.json``.

A node is what PS3.8 calls a remote Application Entity: an AE title (PS3.5 6.2, VR AE: at most
16 characters, no backslash or control characters) reachable at a TCP/IP host and port
(PS3.8 9.1.1), optionally over TLS (PS3.15 B.9, BCP 195 profile). Our own settings describe the
local AE: its title, the storage SCP's port and bind address, whether the storage service starts
with the application, which callers it accepts, and the timeouts that keep a dead peer from
hanging a worker.

A node may instead be a DICOMweb origin server (PS3.18): its base URL (``https://host/dicom-web``)
with an authentication (none, HTTP basic with a user and a password, or a bearer token) and TLS
verified against the system's CAs or ``tls.ca`` (``insecure`` turns verification off, and every
connection says so in the log). The password or token is kept in ``network.json``, which is
written with mode 0600 and whose secrets ``lightbox nodes ls`` never prints.
"""

from __future__ import annotations

import json
import os
import re
import threading
import urllib.parse
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from viewer.config import app_home, write_text

CONFIG_NAME = "network.json"
DEFAULT_AE_TITLE = "LIGHTBOX"
DEFAULT_SCP_PORT = 11112
DEFAULT_MAX_PDU = 262144
#: The storage SCP's limits against a hostile or broken peer (issue 9): how many associations
#: at once, how many of them from one calling address, and how long an association may stay
#: silent (or take to send one PDU) before it is aborted.
DEFAULT_SCP_MAX_ASSOCIATIONS = 32
DEFAULT_SCP_MAX_PER_HOST = 8
DEFAULT_SCP_IDLE_TIMEOUT = 60.0

RetrieveMethod = Literal["move", "get"]
Auth = Literal["none", "basic", "bearer"]
AUTHS = ("none", "basic", "bearer")

_AE_BAD = re.compile(r"[\\\x00-\x1f\x7f]")
_lock = threading.Lock()


class ConfigError(ValueError):
    """A node or setting that cannot be used, said in words (never a traceback)."""


def check_ae_title(title: str, what: str = "AE title") -> str:
    """Validate an AE title (PS3.5 Table 6.2-1, VR AE) and return it without padding."""
    value = title.strip()
    if not value:
        raise ConfigError(f"{what} is empty")
    if len(value) > 16:
        raise ConfigError(f"{what} {value!r} is longer than 16 characters")
    if _AE_BAD.search(value):
        raise ConfigError(f"{what} {value!r} contains a backslash or a control character")
    return value


def check_port(port: int, what: str = "port") -> int:
    if not 0 < int(port) < 65536:
        raise ConfigError(f"{what} {port} is not between 1 and 65535")
    return int(port)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds; ``None`` waits forever, which we never default to (PEERS.md pitfalls).

    - ``connect``: TCP connection set-up.
    - ``acse``: waiting for an association answer or release (PS3.8 9.1).
    - ``dimse``: waiting for the next DIMSE message (a C-MOVE may be quiet while the PACS fetches
      from slow storage, hence the generous default).
    - ``network``: an idle connection is aborted (ARTIM-like, PS3.8 9.1.5).
    """

    connect: float = 10.0
    acse: float = 30.0
    dimse: float = 60.0
    network: float = 120.0


@dataclass(frozen=True, slots=True)
class Tls:
    """TLS material for one peer (PS3.15 B.9): CA bundle to verify it, our certificate and key."""

    ca: str = ""
    cert: str = ""
    key: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.ca or self.cert)


def check_url(url: str) -> urllib.parse.SplitResult:
    """A DICOMweb base URL: http or https, a host, no credentials, query or fragment."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise ConfigError(f"{url!r} is not a URL ({exc})") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{url!r} is not an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            "put no user or password in the URL: give them as the node's authentication"
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"{url!r}: a DICOMweb base URL has no query or fragment")
    return parts


@dataclass(frozen=True, slots=True)
class Node:
    """A remote AE we talk to as an SCU (echo, find, move/get, store), or a DICOMweb server
    (``url`` set: QIDO-RS, WADO-RS, STOW-RS; ``host`` and ``port`` then come from the URL)."""

    name: str
    ae_title: str = ""
    host: str = ""
    port: int = 0
    tls: Tls = field(default_factory=Tls)
    retrieve_method: RetrieveMethod = "move"
    #: DICOMweb base URL (the part before ``/studies``); empty for a DIMSE node.
    url: str = ""
    auth: Auth = "none"
    user: str = ""
    #: The password (basic) or token (bearer); never printed, never in ``repr``.
    secret: str = field(default="", repr=False)
    #: Do not verify the server's TLS certificate (``--insecure``): warned at every connection.
    insecure: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.tls, dict):  # from a JSON copy (the transfer queue)
            object.__setattr__(self, "tls", Tls(**self.tls))
        if self.url:
            parts = check_url(self.url)
            object.__setattr__(self, "url", self.url.strip().rstrip("/"))
            object.__setattr__(self, "host", parts.hostname or "")
            default = 443 if parts.scheme == "https" else 80
            object.__setattr__(self, "port", parts.port or default)
            if self.ae_title:
                object.__setattr__(self, "ae_title", check_ae_title(self.ae_title))
            if self.auth not in AUTHS:
                raise ConfigError(f"node {self.name!r}: auth must be one of {', '.join(AUTHS)}")
            if self.auth == "basic" and not self.user:
                raise ConfigError(f"node {self.name!r}: basic authentication needs a user")
            if self.auth != "none" and not self.secret:
                raise ConfigError(f"node {self.name!r}: {self.auth} authentication needs a secret")
            if ":" in self.user:
                raise ConfigError(f"node {self.name!r}: a basic-auth user has no colon")
            return
        object.__setattr__(self, "ae_title", check_ae_title(self.ae_title, "called AE title"))
        check_port(self.port)
        if not self.host.strip():
            raise ConfigError(f"node {self.name!r}: host is empty")
        if self.retrieve_method not in ("move", "get"):
            raise ConfigError(f"node {self.name!r}: retrieve method must be 'move' or 'get'")

    @property
    def is_web(self) -> bool:
        """A DICOMweb node (QIDO-RS, WADO-RS, STOW-RS) rather than a DIMSE one."""
        return bool(self.url)

    def describe(self) -> str:
        """One line for ``nodes ls`` and the GUI: never the secret."""
        if not self.is_web:
            tls = " TLS" if self.tls.enabled else ""
            return f"{self} ({self.retrieve_method}){tls}"
        auth = {"none": "no auth", "basic": f"basic auth as {self.user}", "bearer": "bearer token"}
        if self.url.startswith("https:"):
            tls = (
                "TLS NOT VERIFIED (--insecure)"
                if self.insecure
                else f"TLS verified with {self.tls.ca}"
                if self.tls.ca
                else "TLS verified"
            )
        else:
            tls = "no TLS"
        return f"{self} (DICOMweb, {auth[self.auth]}, {tls})"

    def __str__(self) -> str:
        if self.url:
            return self.url
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.ae_title}@{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class LocalSettings:
    """Our own AE (PS3.2 conformance statement, section 2 'AE specifications')."""

    ae_title: str = DEFAULT_AE_TITLE
    scp_port: int = DEFAULT_SCP_PORT
    bind_address: str = ""
    start_with_app: bool = True
    #: Calling AE titles the storage SCP accepts; empty means anyone (PS3.8 7.1.1.4).
    accepted_callers: tuple[str, ...] = ()
    timeouts: Timeouts = field(default_factory=Timeouts)
    #: Largest PDU we accept (PS3.8 D.1); 0 means no limit.
    max_pdu: int = DEFAULT_MAX_PDU
    #: TLS for our storage SCP: our certificate/key and the CA that callers' certificates chain to.
    tls: Tls = field(default_factory=Tls)
    #: The storage SCP's associations at once (connections still sending their request count).
    scp_max_associations: int = DEFAULT_SCP_MAX_ASSOCIATIONS
    #: ... of which at most this many from one calling IP address, so one host cannot take all.
    scp_max_per_host: int = DEFAULT_SCP_MAX_PER_HOST
    #: Seconds an SCP association may be silent, or take to send one PDU, before it is aborted
    #: (the association request itself has ``timeouts.acse``: the ARTIM timer, PS3.8 9.1.5).
    scp_idle_timeout: float = DEFAULT_SCP_IDLE_TIMEOUT

    def __post_init__(self) -> None:
        object.__setattr__(self, "ae_title", check_ae_title(self.ae_title, "our AE title"))
        check_port(self.scp_port, "storage SCP port")
        if int(self.scp_max_associations) < 1 or int(self.scp_max_per_host) < 1:
            raise ConfigError("the storage SCP needs at least one association (total and per host)")
        if not float(self.scp_idle_timeout) > 0:
            raise ConfigError(f"SCP idle timeout {self.scp_idle_timeout} is not a positive number")
        callers = tuple(check_ae_title(c, "accepted caller") for c in self.accepted_callers)
        object.__setattr__(self, "accepted_callers", callers)


@dataclass(slots=True)
class NetConfig:
    local: LocalSettings = field(default_factory=LocalSettings)
    nodes: dict[str, Node] = field(default_factory=dict)

    def node(self, name_or_spec: str) -> Node:
        """A configured node by name, or ``AET@HOST:PORT`` (IPv6: ``AET@[::1]:PORT``)."""
        if name_or_spec in self.nodes:
            return self.nodes[name_or_spec]
        if name_or_spec.startswith(("http://", "https://")):
            return Node(name_or_spec, url=name_or_spec)
        if "@" in name_or_spec:
            return parse_node_spec(name_or_spec)
        known = ", ".join(sorted(self.nodes)) or "none configured"
        raise ConfigError(
            f"unknown node {name_or_spec!r} (known: {known}; or give AET@HOST:PORT or a "
            "DICOMweb URL)"
        )


def parse_node_spec(spec: str, name: str = "") -> Node:
    """``AET@HOST:PORT`` or ``AET@[IPv6]:PORT`` to a :class:`Node`."""
    match = re.fullmatch(r"([^@]+)@(\[[^\]]+\]|[^:\[\]]+):(\d+)", spec.strip())
    if match is None:
        raise ConfigError(f"{spec!r} is not AET@HOST:PORT (IPv6 as AET@[::1]:PORT)")
    aet, host, port = match.groups()
    return Node(name or spec, aet, host.strip("[]"), int(port))


def config_path() -> Path:
    return app_home() / CONFIG_NAME


def _timeouts_from(data: Any) -> Timeouts:
    if not isinstance(data, dict):
        return Timeouts()
    known = {k: float(v) for k, v in data.items() if k in Timeouts.__dataclass_fields__}
    return Timeouts(**known)


def _tls_from(data: Any) -> Tls:
    if not isinstance(data, dict):
        return Tls()
    return Tls(str(data.get("ca", "")), str(data.get("cert", "")), str(data.get("key", "")))


def load_config(path: Path | None = None) -> NetConfig:
    """Read the config; a missing file gives the defaults, a broken one a :class:`ConfigError`."""
    path = path or config_path()
    if not path.exists():
        return NetConfig()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        local_raw = data.get("local", {})
        local = LocalSettings(
            ae_title=str(local_raw.get("ae_title", DEFAULT_AE_TITLE)),
            scp_port=int(local_raw.get("scp_port", DEFAULT_SCP_PORT)),
            bind_address=str(local_raw.get("bind_address", "")),
            start_with_app=bool(local_raw.get("start_with_app", True)),
            accepted_callers=tuple(str(c) for c in local_raw.get("accepted_callers", [])),
            timeouts=_timeouts_from(local_raw.get("timeouts")),
            max_pdu=int(local_raw.get("max_pdu", DEFAULT_MAX_PDU)),
            tls=_tls_from(local_raw.get("tls")),
            scp_max_associations=int(
                local_raw.get("scp_max_associations", DEFAULT_SCP_MAX_ASSOCIATIONS)
            ),
            scp_max_per_host=int(local_raw.get("scp_max_per_host", DEFAULT_SCP_MAX_PER_HOST)),
            scp_idle_timeout=float(local_raw.get("scp_idle_timeout", DEFAULT_SCP_IDLE_TIMEOUT)),
        )
        nodes = {}
        for name, raw in data.get("nodes", {}).items():
            nodes[name] = Node(
                name=name,
                ae_title=str(raw.get("ae_title", "")),
                host=str(raw.get("host", "")),
                port=int(raw.get("port", 0)),
                tls=_tls_from(raw.get("tls")),
                retrieve_method=raw.get("retrieve_method", "move"),
                url=str(raw.get("url", "")),
                auth=raw.get("auth", "none"),
                user=str(raw.get("user", "")),
                secret=str(raw.get("secret", "")),
                insecure=bool(raw.get("insecure", False)),
            )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{path}: cannot read the network settings ({exc})") from exc
    return NetConfig(local, nodes)


def save_config(config: NetConfig, path: Path | None = None) -> Path:
    """Write atomically (temporary file + rename) so a crash never leaves half a config."""
    path = path or config_path()
    local = asdict(config.local)
    local["accepted_callers"] = list(config.local.accepted_callers)
    data = {
        "local": local,
        "nodes": {name: asdict(node) for name, node in sorted(config.nodes.items())},
    }
    for node in data["nodes"].values():
        node.pop("name", None)
        if not node["url"]:  # a DIMSE node: no DICOMweb keys
            for key in ("url", "auth", "user", "secret", "insecure"):
                node.pop(key, None)
    text = json.dumps(data, indent=2) + "\n"
    with _lock:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, text)  # a temporary file made with mode 0600, renamed
        os.chmod(path, 0o600)  # the secrets of DICOMweb nodes: for this user only
    return path


def add_node(node: Node, path: Path | None = None) -> NetConfig:
    config = load_config(path)
    config.nodes[node.name] = node
    save_config(config, path)
    return config


def remove_node(name: str, path: Path | None = None) -> NetConfig:
    config = load_config(path)
    if name not in config.nodes:
        raise ConfigError(f"no node named {name!r}")
    del config.nodes[name]
    save_config(config, path)
    return config


def with_overrides(
    local: LocalSettings, ae_title: str | None, scp_port: int | None
) -> LocalSettings:
    """``--aet`` / ``--scp-port`` on the command line."""
    changes: dict[str, Any] = {}
    if ae_title:
        changes["ae_title"] = ae_title
    if scp_port:
        changes["scp_port"] = scp_port
    return replace(local, **changes) if changes else local
