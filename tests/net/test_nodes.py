"""Nodes, our settings and identity, context planning: no peer needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from viewer import __version__, dicom
from viewer.net import contexts
from viewer.net.nodes import (
    ConfigError,
    LocalSettings,
    NetConfig,
    Node,
    Timeouts,
    Tls,
    add_node,
    config_path,
    load_config,
    parse_node_spec,
    remove_node,
    save_config,
    with_overrides,
)
from viewer.net.retrieve import PER_CLASS, _get_contexts, split_for_get
from viewer.net.send import InstanceStatus, batches


def test_node_specs_parse_ipv4_names_and_ipv6() -> None:
    node = parse_node_spec("ORTHANC@pacs.example.org:4242")
    assert (node.ae_title, node.host, node.port) == ("ORTHANC", "pacs.example.org", 4242)
    v6 = parse_node_spec("PACS@[::1]:104")
    assert (v6.ae_title, v6.host, v6.port) == ("PACS", "::1", 104)
    assert str(v6) == "PACS@[::1]:104"
    for bad in ("PACS@host", "@host:1", "PACS@host:99999", "A" * 17 + "@h:1", "A\\B@h:1"):
        with pytest.raises(ConfigError):
            parse_node_spec(bad)


def test_config_round_trip_under_app_home(tmp_path: Path) -> None:
    local = LocalSettings(
        ae_title="WS1",
        scp_port=11113,
        bind_address="127.0.0.1",
        start_with_app=False,
        accepted_callers=("PACS", "CT1"),
        timeouts=Timeouts(connect=1, acse=2, dimse=3, network=4),
        tls=Tls(ca="/ca.pem", cert="/c.pem", key="/k.pem"),
    )
    node = Node("main", "ORTHANC", "10.0.0.5", 4242, Tls("/ca.pem"), "get")
    path = save_config(NetConfig(local, {"main": node}))
    assert path == config_path() and path.parent.exists()
    loaded = load_config()
    assert loaded.local == local
    assert loaded.nodes == {"main": node}
    assert loaded.node("main") is loaded.nodes["main"]
    assert loaded.node("X@h:1").ae_title == "X"
    with pytest.raises(ConfigError, match="unknown node 'nope'"):
        loaded.node("nope")
    add_node(Node("b", "B", "h", 1))
    assert set(load_config().nodes) == {"main", "b"}
    remove_node("b")
    assert set(load_config().nodes) == {"main"}
    assert with_overrides(local, "OTHER", 2000).ae_title == "OTHER"
    assert with_overrides(local, None, None) is local


def test_defaults_and_broken_config() -> None:
    config = load_config()
    assert config.local.ae_title == "LIGHTBOX" and config.local.scp_port == 11112
    assert config.local.timeouts.connect is not None and config.local.accepted_callers == ()
    config_path().write_text("{not json")
    with pytest.raises(ConfigError, match=r"network\.json: cannot read"):
        load_config()
    config_path().write_text(json.dumps({"nodes": {"x": {"ae_title": "X", "host": "h"}}}))
    with pytest.raises(ConfigError, match="port"):
        load_config()


def test_implementation_identity() -> None:
    uid = dicom.IMPLEMENTATION_CLASS_UID
    assert uid.startswith("2.25.") and len(uid) <= 64
    assert all(
        part.isdigit() and (part == "0" or not part.startswith("0")) for part in uid.split(".")
    )
    assert f"LIGHTBOX_{__version__}" == dicom.IMPLEMENTATION_VERSION_NAME
    assert len(dicom.IMPLEMENTATION_VERSION_NAME) <= 16


def test_context_lists_fit_one_association_and_feed_the_conformance_rows() -> None:
    assert len(contexts.GET_STORAGE_SOP_CLASSES) + len(contexts.GET_MODELS) <= 128
    rows = contexts.conformance_rows()
    services = {r.service for r in rows}
    assert {"Verification", "Query (C-FIND)", "Retrieve (C-MOVE)", "Retrieve (C-GET)"} <= services
    assert all(r.transfer_syntaxes for r in rows)


def test_get_split_keeps_each_association_within_128_contexts() -> None:
    classes = [f"1.2.3.{i}" for i in range(300)]
    requests = []
    for start in range(0, 300, 50):
        ds = Dataset()
        ds.SeriesInstanceUID = f"9.{start}"
        requests.append((ds, set(classes[start : start + 50])))
    few = []
    for start in range(0, 12):
        ds = Dataset()
        ds.SeriesInstanceUID = f"8.{start}"
        few.append((ds, {classes[start]}))
    groups = split_for_get(requests + few)
    assert sum(len(idents) for _, idents in groups) == 6 + 12
    assert set().union(*(c for c, _ in groups)) == set(classes)
    for group_classes, _ in groups:
        requested, roles = _get_contexts(group_classes)
        assert len(requested) <= 128
        assert {str(r.sop_class_uid) for r in roles} == group_classes
        assert group_classes <= {str(cx.abstract_syntax) for cx in requested}
    # the one-class series share associations, each class with its compressed contexts
    small = [c for c, _ in groups if len(c) < 50]
    assert len(small) == 2 and all(len(c) * PER_CLASS <= 126 for c in small)


def test_send_batches_stay_within_128_contexts() -> None:
    items = [
        InstanceStatus(Path(f"{i}.dcm"), f"1.{i}", f"1.2.3.{i % 100}", "1.2.840.10008.1.2.4.50")
        for i in range(400)
    ]
    groups = batches(items)
    assert sum(len(g) for g in groups) == 400
    assert len(groups) > 1
    for group in groups:
        wanted = {(i.sop_class_uid, t) for i in group for t in ("jpeg", "plain")}
        assert len(wanted) <= 128
