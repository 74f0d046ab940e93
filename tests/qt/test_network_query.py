"""Query/Retrieve dialog against a real Orthanc: find, expand to series, retrieve into the store.

qtbot drives the dialog through the Network menu that :func:`install_network_menu` adds to a
plain QMainWindow (the main window wires the same call). The PACS is Orthanc started by the
network fixtures, filled with a study of three series; what arrives must be in the real store
(``app_home()/store``) and handed to ``open_study``.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QDate, Qt
from PySide6.QtWidgets import QMainWindow, QTreeWidgetItem

from tests.net import conftest as net
from tests.net import peers
from viewer.net.nodes import LocalSettings, NetConfig, Node, save_config
from viewer.qt.network import NetworkService, install_network_menu
from viewer.qt.network.query_dialog import QueryDialog
from viewer.qt.selection import Selection
from viewer.store import Store, check, list_studies

ROOT = Path(__file__).resolve().parents[2]

# the network tests' fixtures: real peers on 127.0.0.1, free ports, test studies
orthanc = net.orthanc
orthanc_node = net.orthanc_node
study = net.study
other_study = net.other_study
scp_port = net.scp_port


def configure(scp_port: int, nodes: list[Node], *, service_on: bool) -> None:
    """network.json in this test's LIGHTBOX_HOME: LIGHTBOX on the port Orthanc knows."""
    local = LocalSettings(
        ae_title="LIGHTBOX", scp_port=scp_port, timeouts=net.FAST, start_with_app=service_on
    )
    save_config(NetConfig(local, {n.name: n for n in nodes}))


class App:
    """A QMainWindow with the Network menu, recording open_study calls."""

    def __init__(self, qtbot, selection: list[Path] | None = None) -> None:  # type: ignore[no-untyped-def]
        self.window = QMainWindow()
        qtbot.addWidget(self.window)
        self.opened: list[str] = []
        self.selection = selection or []
        self.service: NetworkService = install_network_menu(
            self.window,
            open_study=self.opened.append,
            selection=lambda: Selection.of_paths(self.selection),
        )

    def action(self, name: str):  # type: ignore[no-untyped-def]
        return self.service.menu.actions_by_name[name]  # type: ignore[union-attr]

    def query_dialog(self) -> QueryDialog:
        self.action("network_query").trigger()
        dialog = self.service.menu.dialogs["query"]  # type: ignore[union-attr]
        assert isinstance(dialog, QueryDialog)
        return dialog


@pytest.fixture
def app(qtbot, orthanc, orthanc_node, study, other_study, scp_port) -> Iterator[App]:  # type: ignore[no-untyped-def]
    orthanc.upload(study.files + other_study.files)
    configure(scp_port, [orthanc_node], service_on=True)
    application = App(qtbot)
    assert application.service.scp_running(), application.service.scp_message
    yield application
    application.service.shutdown()
    assert not application.service.scp_running()


def search(qtbot, dialog: QueryDialog, expected: int) -> None:  # type: ignore[no-untyped-def]
    qtbot.mouseClick(dialog.search_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.search_button.isEnabled(), timeout=20_000)
    assert dialog.results.topLevelItemCount() == expected, dialog.status_label.text()


def top(dialog: QueryDialog, row: int) -> QTreeWidgetItem:
    item = dialog.results.topLevelItem(row)
    assert item is not None
    return item


def test_find_expand_retrieve_opens_the_study(qtbot, app: App, study) -> None:  # type: ignore[no-untyped-def]
    dialog = app.query_dialog()
    assert dialog.isVisible()
    assert dialog.node_combo.currentText() == "orthanc"

    search(qtbot, dialog, 2)  # no filter: both studies
    qtbot.keyClicks(dialog.patient_name, "DOE*")
    search(qtbot, dialog, 1)
    item = top(dialog, 0)
    assert item.text(0) == "DOE, JOHN"
    assert item.text(2) == "2024-01-02"
    assert item.text(3) == "CHEST CT"
    assert item.text(7) == "6"

    # expand: a series-level C-FIND on a worker fills the children
    dialog.results.expandItem(item)
    qtbot.waitUntil(lambda: item.childCount() == 3 and item.child(0).text(0) != "loading series…")
    assert sorted(item.child(i).text(7) for i in range(3)) == ["1", "2", "3"]

    received: list[str] = []
    app.service.study_received.connect(received.append)
    # one series first (the selected child row)
    first = item.child(0)
    assert first.text(0) == "Series 1"
    dialog.results.setCurrentItem(first)
    assert dialog.retrieve_button.isEnabled()
    qtbot.mouseClick(dialog.retrieve_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: app.opened == [study.study_instance_uid], timeout=30_000)
    assert study.study_instance_uid in received  # the browser is told as instances arrive
    with Store.open() as store:
        [row] = list_studies(store)
        assert (row.num_series, row.num_instances) == (1, 3)

    # then the whole study: the series already here is skipped
    app.opened.clear()
    dialog.results.setCurrentItem(item)
    qtbot.mouseClick(dialog.retrieve_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: app.opened == [study.study_instance_uid], timeout=30_000)
    assert "done: 3 received, 3 already here" in dialog.transfers.topLevelItem(1).text(3)  # type: ignore[union-attr]

    with Store.open() as store:
        [row] = list_studies(store)
        assert row.study_instance_uid == study.study_instance_uid
        assert row.num_instances == 6
        assert row.num_series == 3
        assert check(store).ok
    assert dialog.transfers.topLevelItemCount() == 2
    assert dialog.transfers.topLevelItem(0).text(0).endswith("/ Series 1")  # type: ignore[union-attr]

    # again: everything is present, nothing fetched, the study opens again
    app.opened.clear()
    dialog.retrieve([item])
    qtbot.waitUntil(lambda: app.opened == [study.study_instance_uid], timeout=30_000)
    assert "0 received, 6 already here" in dialog.transfers.topLevelItem(2).text(3)  # type: ignore[union-attr]

    if os.environ.get("LIGHTBOX_SCREENSHOTS"):
        dialog.resize(1100, 700)
        assert dialog.grab().save(str(ROOT / "docs" / "screenshot-query.png"))


def test_filters_and_date_shortcuts(qtbot, app: App) -> None:  # type: ignore[no-untyped-def]
    dialog = app.query_dialog()
    today = QDate.currentDate()
    dialog.date_choice.setCurrentText("Yesterday")
    assert not dialog.date_from.isEnabled()
    query = dialog.query()
    yesterday = today.addDays(-1).toString("yyyyMMdd")
    assert (query.study_date_from, query.study_date_to) == (yesterday, yesterday)
    dialog.date_choice.setCurrentText("Last 7 days")
    query = dialog.query()
    assert query.study_date_from == today.addDays(-6).toString("yyyyMMdd")
    assert query.study_date_to == today.toString("yyyyMMdd")
    search(qtbot, dialog, 0)  # the test studies are older

    dialog.date_choice.setCurrentText("Range")
    assert dialog.date_from.isEnabled()
    dialog.date_from.setDate(QDate(2023, 5, 1))
    dialog.date_to.setDate(QDate(2023, 5, 31))
    search(qtbot, dialog, 1)
    assert top(dialog, 0).text(0) == "SMITH, ANNA"
    dialog.date_from.setDate(QDate(2024, 1, 3))
    dialog.date_to.setDate(QDate(2024, 1, 1))
    qtbot.mouseClick(dialog.search_button, Qt.MouseButton.LeftButton)
    assert "ends before it starts" in dialog.status_label.text()

    dialog.date_choice.setCurrentText("Any date")
    dialog.modality.setCurrentText("MR")
    search(qtbot, dialog, 1)
    assert top(dialog, 0).text(4) == "MR"
    dialog.modality.setCurrentText("")
    qtbot.keyClicks(dialog.accession, "ACC001")
    search(qtbot, dialog, 1)
    assert top(dialog, 0).text(5) == "ACC001"
    dialog.accession.clear()
    qtbot.keyClicks(dialog.description, "BRAIN*")
    search(qtbot, dialog, 1)
    assert top(dialog, 0).text(3) == "BRAIN MR"
    dialog.description.clear()
    qtbot.keyClicks(dialog.patient_id, "LB001")
    search(qtbot, dialog, 1)
    assert top(dialog, 0).text(1) == "LB001"

    # sortable: by images, both directions
    dialog.patient_id.clear()
    search(qtbot, dialog, 2)
    dialog.results.sortByColumn(7, Qt.SortOrder.AscendingOrder)
    assert [top(dialog, i).text(7) for i in range(2)] == ["2", "6"]
    dialog.results.sortByColumn(7, Qt.SortOrder.DescendingOrder)
    assert [top(dialog, i).text(7) for i in range(2)] == ["6", "2"]


def test_a_refused_query_is_said_in_words(qtbot, scp_port) -> None:  # type: ignore[no-untyped-def]
    dead = Node("dead", "NOBODY", "127.0.0.1", peers.free_port())
    configure(scp_port, [dead], service_on=False)
    application = App(qtbot)
    dialog = application.query_dialog()
    search(qtbot, dialog, 0)
    assert "connection refused" in dialog.status_label.text()
    application.service.shutdown()


def test_cancel_mid_retrieve_leaves_no_partial_instance(  # type: ignore[no-untyped-def]
    qtbot,
    tmp_path,
    scp_port,
    study,
) -> None:
    """C-GET of a large series, cancelled after the first instances: what is in the store is
    whole (check passes, every file is readable), the transfer says cancelled, nothing opened."""
    big = peers.make_study(
        tmp_path / "big",
        patient_name="BIG^STUDY",
        patient_id="LB009",
        accession="ACC009",
        study_date="20240301",
        description="MANY",
        parts=[("CT_small.dcm", "CT", 120)],
    )
    peer = peers.start_orthanc(tmp_path / "orthanc", scp_port)
    try:
        peer.upload(big.files)
        node = Node("orthanc", peer.aet, "127.0.0.1", peer.dicom_port, retrieve_method="get")
        configure(scp_port, [node], service_on=False)
        application = App(qtbot)
        dialog = application.query_dialog()
        search(qtbot, dialog, 1)
        arrived: list[str] = []
        application.service.study_received.connect(arrived.append)
        # slow storage: after 3 instances the receiving waits until Cancel was clicked
        service = application.service
        real_import = service.receive_instance
        gate = threading.Event()
        count = itertools.count(1)

        def slow_import(path: Path, calling_ae: str) -> int:
            status = real_import(path, calling_ae)
            if next(count) >= 3:
                gate.wait(10)
            return status

        service.receive_instance = slow_import  # type: ignore[method-assign]
        dialog.retrieve([top(dialog, 0)])
        qtbot.waitUntil(lambda: bool(arrived), timeout=30_000)
        dialog.transfers.clearSelection()
        assert dialog.cancel_transfer_button.isEnabled()
        qtbot.mouseClick(dialog.cancel_transfer_button, Qt.MouseButton.LeftButton)
        gate.set()
        service.receive_instance = real_import  # type: ignore[method-assign]
        qtbot.waitUntil(lambda: dialog.running_transfers() == 0, timeout=30_000)
        state = dialog.transfers.topLevelItem(0).text(3)  # type: ignore[union-attr]
        assert state.startswith("cancelled"), state
        assert application.opened == []
        with Store.open() as store:
            report = check(store)
            assert report.ok, report.remaining
            [row] = list_studies(store)
            assert 0 < row.num_instances < 120
            assert report.instances == row.num_instances

        # resume: Retry fetches only the rest
        dialog.transfers.setCurrentItem(dialog.transfers.topLevelItem(0))
        assert dialog.retry_button.isEnabled()
        qtbot.mouseClick(dialog.retry_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: application.opened == [big.study_instance_uid], timeout=60_000)
        with Store.open() as store:
            [row] = list_studies(store)
            assert row.num_instances == 120
        application.service.shutdown()
    finally:
        peer.stop()
