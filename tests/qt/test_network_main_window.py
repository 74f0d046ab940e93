"""Issue 4 end to end in the real main window: Network > Query/Retrieve against Orthanc,
Retrieve, and the study appears in the study browser and opens in the view."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtCore import Qt

from tests.net import conftest as net
from tests.qt.test_network_query import configure, search, top
from viewer.qt.main_window import MainWindow
from viewer.qt.network.query_dialog import QueryDialog

orthanc = net.orthanc
orthanc_node = net.orthanc_node
study = net.study
other_study = net.other_study
scp_port = net.scp_port


@pytest.fixture
def window(qtbot, orthanc, orthanc_node, study, other_study, scp_port) -> Iterator[MainWindow]:  # type: ignore[no-untyped-def]
    orthanc.upload(study.files + other_study.files)
    configure(scp_port, [orthanc_node], service_on=True)
    main = MainWindow(volume_source=list, start_services=True)
    qtbot.addWidget(main)
    main.resize(1200, 900)
    main.show()
    assert main.network.scp_running(), main.network.scp_message
    yield main
    main.close()
    assert not main.network.scp_running()


def find_doe(qtbot, window: MainWindow) -> QueryDialog:  # type: ignore[no-untyped-def]
    """Network > Query/Retrieve, DOE* found and chosen, ready for Retrieve."""
    window.network.menu.actions_by_name["network_query"].trigger()  # type: ignore[union-attr]
    dialog = window.network.menu.dialogs["query"]  # type: ignore[union-attr]
    assert isinstance(dialog, QueryDialog)
    qtbot.keyClicks(dialog.patient_name, "DOE*")
    search(qtbot, dialog, 1)
    dialog.results.setCurrentItem(top(dialog, 0))
    return dialog


def test_query_retrieve_then_the_study_is_in_the_browser_and_the_view(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, study
) -> None:
    window.browser.show_store()
    assert window.browser.studies() == []
    dialog = find_doe(qtbot, window)
    with qtbot.waitSignal(window.opened, timeout=60_000):
        qtbot.mouseClick(dialog.retrieve_button, Qt.MouseButton.LeftButton)
    rows = window.browser.studies()
    assert len(rows) == 1
    assert rows[0][0] == "DOE, JOHN" and rows[0][1] == "LB001" and rows[0][-1] == "6"
    qtbot.waitUntil(window.view.is_displayable, timeout=30_000)
    dialog.shutdown()


def test_a_retrieved_study_is_offered_not_forced_on_a_reader(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, study
) -> None:
    """Nothing switches what a reader is looking at unasked: the retrieved study waits behind
    a button while another patient's images are on screen."""
    from tests.qt.conftest import ArraySource, ct_series

    datasets, arrays = ct_series(3)
    shown = ArraySource(datasets, arrays)
    window._show_source(shown)
    dialog = find_doe(qtbot, window)
    qtbot.mouseClick(dialog.retrieve_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(window.offer_button.isVisible, timeout=60_000)
    assert window.view.source is shown  # still the images the reader was looking at
    with qtbot.waitSignal(window.opened, timeout=30_000):
        qtbot.mouseClick(window.offer_button, Qt.MouseButton.LeftButton)
    assert window.view.source is not shown and not window.offer_button.isVisible()
    rows = window.browser.studies()
    assert [r[0] for r in rows] == ["DOE, JOHN"]
    dialog.shutdown()
