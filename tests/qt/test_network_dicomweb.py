"""The Network dialogs with a DICOMweb node (issue 13): the node editor's URL and authentication,
"Test" by QIDO-RS, the query dialog's find and retrieve through the same service, and Send by
STOW-RS. Orthanc with Debian's DICOMweb plugin is the server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from tests.net import conftest as net
from tests.net import peers
from tests.qt.test_network_query import App, configure, search, top
from viewer.net.nodes import Node, load_config
from viewer.qt.network.nodes_dialog import NodesDialog
from viewer.store import Store, list_studies

study = net.study
scp_port = net.scp_port


@pytest.fixture
def web(tmp_path: Path, scp_port: int) -> Iterator[peers.Orthanc]:
    peer = peers.start_orthanc(
        tmp_path / "orthanc",
        scp_port,
        extra={"DicomWeb": {"Enable": True, "Root": "/dicom-web/"}},
        plugins=("OrthancDicomWeb",),
    )
    yield peer
    peer.stop()


def test_nodes_dialog_edits_and_tests_a_dicomweb_node(qtbot, web, scp_port) -> None:  # type: ignore[no-untyped-def]
    configure(scp_port, [], service_on=False)
    application = App(qtbot)
    application.action("network_nodes").trigger()
    dialog = application.service.menu.dialogs["nodes"]  # type: ignore[union-attr]
    assert isinstance(dialog, NodesDialog)
    dialog.name.setText("web")
    url = f"http://127.0.0.1:{web.http_port}/dicom-web"
    assert dialog.test_button.text() == "Test (C-ECHO)"
    dialog.url.setText(url)
    assert dialog.test_button.text() == "Test (QIDO-RS)"
    dialog.auth.setCurrentIndex(dialog.auth.findData("bearer"))
    dialog.secret.setText("t0ken")
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    saved = load_config().nodes["web"]
    assert (saved.url, saved.auth, saved.secret) == (url, "bearer", "t0ken")
    assert "t0ken" not in dialog.node_list.item(0).text()
    qtbot.mouseClick(dialog.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.test_button.isEnabled(), timeout=15_000)
    assert dialog.result_label.text().startswith(f"OK: {url}: QIDO-RS OK"), (
        dialog.result_label.text()
    )
    dialog.url.setText(f"http://127.0.0.1:{peers.free_port()}/dicom-web")
    qtbot.mouseClick(dialog.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.test_button.isEnabled(), timeout=15_000)
    assert "connection refused" in dialog.result_label.text()
    application.service.shutdown()


def test_query_dialog_finds_and_retrieves_by_dicomweb(qtbot, web, study, scp_port) -> None:  # type: ignore[no-untyped-def]
    web.upload(study.files)
    node = Node("web", url=f"http://127.0.0.1:{web.http_port}/dicom-web")
    configure(scp_port, [node], service_on=False)
    application = App(qtbot)
    dialog = application.query_dialog()
    search(qtbot, dialog, 1)
    item = top(dialog, 0)
    assert item.text(0) == "DOE, JOHN" and item.text(7) == "6"
    dialog.results.expandItem(item)
    qtbot.waitUntil(
        lambda: item.childCount() == 3 and item.child(0).text(0) != "loading series…"  # type: ignore[union-attr]
    )
    dialog.results.setCurrentItem(item)
    qtbot.mouseClick(dialog.retrieve_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: application.opened == [study.study_instance_uid], timeout=30_000)
    with Store.open() as store:
        [row] = list_studies(store)
        assert (row.num_series, row.num_instances) == (3, 6)
    application.service.shutdown()
