"""Remote DICOM nodes and our own network settings, kept in ``app_home()/network.json``.

A node is what PS3.8 calls a remote Application Entity: an AE title (PS3.5 6.2, VR AE: at most
16 characters, no backslash or control characters) reachable at a TCP/IP host and port
(PS3.8 9.1.1), optionally over TLS (PS3.15 B.9, BCP 195 profile). Our own settings describe the
local AE: its title, the storage SCP's port and bind address, whether the storage service starts
with the application, which callers it accepts, and the timeouts that keep a dead peer from
hanging a worker.
"""

from __future__ import annotations

import json
import re
import threading
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


@dataclass(frozen=True, slots=True)
class Node:
    """A remote AE we talk to as an SCU (echo, find, move/get, store)."""

    name: str
    ae_title: str
    host: str
    port: int
    tls: Tls = field(default_factory=Tls)
    retrieve_method: RetrieveMethod = "move"

    def __post_init__(self) -> None:
        object.__setattr__(self, "ae_title", check_ae_title(self.ae_title, "called AE title"))
        check_port(self.port)
        if not self.host.strip():
            raise ConfigError(f"node {self.name!r}: host is empty")
        if self.retrieve_method not in ("move", "get"):
            raise ConfigError(f"node {self.name!r}: retrieve method must be 'move' or 'get'")

    def __str__(self) -> str:
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
        if "@" in name_or_spec:
            return parse_node_spec(name_or_spec)
        known = ", ".join(sorted(self.nodes)) or "none configured"
        raise ConfigError(f"unknown node {name_or_spec!r} (known: {known}; or give AET@HOST:PORT)")


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
                ae_title=str(raw["ae_title"]),
                host=str(raw["host"]),
                port=int(raw["port"]),
                tls=_tls_from(raw.get("tls")),
                retrieve_method=raw.get("retrieve_method", "move"),
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
    text = json.dumps(data, indent=2) + "\n"
    with _lock:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, text)
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
