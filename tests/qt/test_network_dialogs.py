"""Nodes, settings and send dialogs, and the NetworkService's storage SCP, with real peers.

- Nodes: "Test" runs C-ECHO on a worker: a refused port is explained, Orthanc answers OK.
- Settings: typed values are saved to network.json and come back in a new dialog; a bad value
  is refused in words and nothing is saved.
- Send: the browser's selection goes to DCMTK storescp; per-instance statuses; a file that is
  not DICOM fails and "Retry failed" sends only it.
- Receive: DCMTK storescu pushes into the service's SCP; the instances are in the store and
  ``study_received`` is emitted in the GUI thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QThread
from PySide6.QtWidgets import QMainWindow

from tests.net import conftest as net
from tests.net import peers
from viewer.net.nodes import LocalSettings, NetConfig, Node, load_config, save_config
from viewer.qt.network import NetworkService, install_network_menu
from viewer.qt.network.nodes_dialog import NodesDialog
from viewer.qt.network.send_dialog import SendDialog
from viewer.qt.network.settings_dialog import SettingsDialog
from viewer.qt.selection import Selection
from viewer.store import Store, check, list_studies

orthanc = net.orthanc
orthanc_node = net.orthanc_node
study = net.study
scp_port = net.scp_port


def configure(port: int, nodes: list[Node], *, service_on: bool = False) -> LocalSettings:
    local = LocalSettings(
        ae_title="LIGHTBOX", scp_port=port, timeouts=net.FAST, start_with_app=service_on
    )
    save_config(NetConfig(local, {n.name: n for n in nodes}))
    return local


class App:
    def __init__(self, qtbot, selection: list[Path] | None = None) -> None:  # type: ignore[no-untyped-def]
        self.window = QMainWindow()
        qtbot.addWidget(self.window)
        self.selection = selection or []
        self.service: NetworkService = install_network_menu(
            self.window,
            open_study=lambda _uid: None,
            selection=lambda: Selection.of_paths(self.selection),
        )

    def open(self, action: str, key: str):  # type: ignore[no-untyped-def]
        menu = self.service.menu
        menu.actions_by_name[action].trigger()  # type: ignore[union-attr]
        return menu.dialogs[key]  # type: ignore[union-attr]


@pytest.fixture
def app(qtbot) -> Iterator[App]:  # type: ignore[no-untyped-def]
    application = App(qtbot)
    yield application
    application.service.shutdown()


def test_the_menu_has_the_five_entries(app: App) -> None:
    menus = [a.text() for a in app.window.menuBar().actions()]
    assert "&Network" in menus
    texts = [a.text() for a in app.service.menu.actions() if a.text()]  # type: ignore[union-attr]
    assert texts == [
        "&Query/Retrieve…",
        "&Send selection…",
        "Reconcile and &hand over…",
        "&Nodes…",
        "S&ettings…",
    ]


def test_nodes_test_button_diagnoses_and_passes(qtbot, orthanc_node, scp_port) -> None:  # type: ignore[no-untyped-def]
    configure(scp_port, [orthanc_node])
    application = App(qtbot)
    dialog = application.open("network_nodes", "nodes")
    assert isinstance(dialog, NodesDialog)
    assert dialog.node_list.count() == 1
    assert dialog.ae_title.text() == "ORTHANC"

    qtbot.mouseClick(dialog.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.test_button.isEnabled(), timeout=15_000)
    assert dialog.result_label.text().startswith("OK: ORTHANC@127.0.0.1"), (
        dialog.result_label.text()
    )

    # an unsaved edit is what gets tested: a port where nothing listens
    dialog.port.setValue(peers.free_port())
    qtbot.mouseClick(dialog.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.test_button.isEnabled(), timeout=15_000)
    text = dialog.result_label.text()
    assert text.startswith("Failed: connection refused by 127.0.0.1 port"), text
    assert "nothing listens there" in text
    application.service.shutdown()


def test_nodes_add_edit_remove(qtbot, app: App) -> None:  # type: ignore[no-untyped-def]
    dialog = app.open("network_nodes", "nodes")
    assert isinstance(dialog, NodesDialog)
    qtbot.mouseClick(dialog.new_button, Qt.MouseButton.LeftButton)
    qtbot.keyClicks(dialog.name, "pacs")
    qtbot.keyClicks(dialog.ae_title, "MAINPACS")
    qtbot.keyClicks(dialog.host, "pacs.example.org")
    dialog.port.setValue(4242)
    dialog.method.setCurrentIndex(1)
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    node = load_config().nodes["pacs"]
    assert (node.ae_title, node.host, node.port, node.retrieve_method) == (
        "MAINPACS",
        "pacs.example.org",
        4242,
        "get",
    )
    # rename: the old name goes away
    dialog.name.setText("pacs2")
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert sorted(load_config().nodes) == ["pacs2"]
    # a bad AE title is refused, nothing saved
    dialog.ae_title.setText("BAD\\AE")
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert "backslash" in dialog.result_label.text()
    assert load_config().nodes["pacs2"].ae_title == "MAINPACS"
    qtbot.mouseClick(dialog.remove_button, Qt.MouseButton.LeftButton)
    assert load_config().nodes == {}
    assert dialog.node_list.count() == 0


def test_settings_saved_and_reloaded(qtbot, app: App) -> None:  # type: ignore[no-untyped-def]
    dialog = app.open("network_settings", "settings")
    assert isinstance(dialog, SettingsDialog)
    assert dialog.ae_title.text() == "LIGHTBOX"
    dialog.ae_title.clear()
    qtbot.keyClicks(dialog.ae_title, "READING1")
    dialog.scp_port.setValue(11999)
    qtbot.keyClicks(dialog.bind_address, "127.0.0.1")
    dialog.start_with_app.setChecked(False)
    qtbot.keyClicks(dialog.accepted_callers, "CT1, MR2")
    dialog.timeout_dimse.setValue(45)
    qtbot.mouseClick(
        dialog.buttons.button(dialog.buttons.StandardButton.Save), Qt.MouseButton.LeftButton
    )
    assert not dialog.isVisible()
    local = load_config().local
    assert local.ae_title == "READING1"
    assert local.scp_port == 11999
    assert local.bind_address == "127.0.0.1"
    assert local.start_with_app is False
    assert local.accepted_callers == ("CT1", "MR2")
    assert local.timeouts.dimse == 45

    fresh = SettingsDialog(NetworkService())
    qtbot.addWidget(fresh)
    assert fresh.ae_title.text() == "READING1"
    assert fresh.accepted_callers.text() == "CT1, MR2"
    assert fresh.scp_port.value() == 11999
    assert not fresh.start_with_app.isChecked()
    assert fresh.timeout_dimse.value() == 45

    # a certificate without its key: said in words, not saved
    dialog = app.open("network_settings", "settings")
    dialog.tls_cert.setText("/nonexistent/cert.pem")
    qtbot.mouseClick(
        dialog.buttons.button(dialog.buttons.StandardButton.Save), Qt.MouseButton.LeftButton
    )
    assert "certificate and its private key" in dialog.error_label.text()
    assert dialog.isVisible()
    assert load_config().local.tls.cert == ""


@pytest.mark.filterwarnings("ignore:Expected implicit VR")  # pydicom on the junk file
def test_send_selection_to_storescp(qtbot, tmp_path: Path, study, scp_port) -> None:  # type: ignore[no-untyped-def]
    peer = peers.start_storescp(tmp_path / "storescp", aet="PEER")
    try:
        configure(scp_port, [Node("peer", "PEER", "127.0.0.1", peer.port)])
        junk = tmp_path / "notes.dcm"
        junk.write_text("not DICOM at all")
        selection = [*study.files[:3], junk]
        application = App(qtbot, selection)
        dialog = application.open("network_send", "send")
        assert isinstance(dialog, SendDialog)
        assert dialog.instances.topLevelItemCount() == 4
        qtbot.mouseClick(dialog.send_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: dialog.send_button.isEnabled(), timeout=20_000)
        statuses = [dialog.instances.topLevelItem(i).text(2) for i in range(4)]  # type: ignore[union-attr]
        assert statuses == ["stored", "stored", "stored", "not sent"]
        assert "not a" in dialog.instances.topLevelItem(3).text(3)  # type: ignore[union-attr]
        assert dialog.status_label.text().startswith("3 sent, 1 failed")
        assert dialog.progress.value() == 4
        assert len(peer.files()) == 3

        # retry failed: only the junk file goes again (and fails again, saying why)
        assert dialog.retry_button.isEnabled()
        qtbot.mouseClick(dialog.retry_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: dialog.send_button.isEnabled(), timeout=20_000)
        assert dialog.last_result is not None
        assert [i.path for i in dialog.last_result.instances] == [junk]
        assert len(peer.files()) == 3

        # the peer goes away: the dialog says why, nothing hangs
        peer.stop()
        application.selection = study.files[3:5]
        dialog = application.open("network_send", "send")
        assert dialog.instances.topLevelItemCount() == 2
        qtbot.mouseClick(dialog.send_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: dialog.send_button.isEnabled(), timeout=20_000)
        assert "connection refused" in dialog.status_label.text()
        application.service.shutdown()
    finally:
        peer.stop()


def test_service_receives_from_storescu_into_the_store(
    qtbot, tmp_path: Path, study, scp_port
) -> None:  # type: ignore[no-untyped-def]
    configure(scp_port, [], service_on=True)
    application = App(qtbot)
    service = application.service
    assert service.scp_running(), service.scp_message
    assert service.scp_port == scp_port
    gui = QThread.currentThread()
    threads: list[bool] = []
    received: list[str] = []

    def on_study(uid: str) -> None:
        threads.append(QThread.currentThread() is gui)
        received.append(uid)

    service.study_received.connect(on_study)
    # storescu proposes JPEG only when told to; the rest goes uncompressed
    result = peers.storescu("MODALITY", "LIGHTBOX", scp_port, study.files, "-xy")
    assert result.returncode == 0, result.stderr
    qtbot.waitUntil(lambda: study.study_instance_uid in received, timeout=15_000)
    assert all(threads)
    assert set(received) == {study.study_instance_uid}
    with Store.open() as store:

        def all_indexed() -> bool:
            rows = list_studies(store)
            return len(rows) == 1 and rows[0].num_instances == len(study.files)

        # the first signal may cover the first batch only: wait for the whole study
        qtbot.waitUntil(all_indexed, timeout=15_000)
        [row] = list_studies(store)
        assert row.study_instance_uid == study.study_instance_uid
        assert check(store).ok
    assert not any((Path(service.store().root).parent / "incoming").glob("*")), "spool left"

    # a caller addressing another AE title is refused (the SCP checks the called AE)
    result = peers.storescu("MODALITY", "SOMEBODY", scp_port, study.files[:1])
    assert result.returncode != 0

    service.shutdown()
    assert not service.scp_running()
    result = peers.storescu("MODALITY", "LIGHTBOX", scp_port, study.files[:1])
    assert result.returncode != 0  # stopped on quit: nobody listens


def test_a_taken_port_is_explained(qtbot, scp_port) -> None:  # type: ignore[no-untyped-def]
    import socket

    with socket.socket() as squatter:
        squatter.bind(("", scp_port))
        squatter.listen()
        configure(scp_port, [], service_on=True)
        states: list[tuple[bool, str]] = []
        application = App(qtbot)
        service = application.service
        assert not service.scp_running()
        assert f"cannot listen on port {scp_port}" in service.scp_message
        dialog = application.open("network_settings", "settings")
        assert "cannot listen" in dialog.status_label.text()
        service.scp_state_changed.connect(lambda ok, msg: states.append((ok, msg)))
    # the port is free again: saving the settings starts the service
    dialog.timeout_acse.setValue(7)
    qtbot.mouseClick(
        dialog.buttons.button(dialog.buttons.StandardButton.Save), Qt.MouseButton.LeftButton
    )
    assert service.scp_running(), service.scp_message
    assert states and states[-1][0]
    service.shutdown()
