"""The main window's Network menu: retrieved or received studies reach the browser."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.qt.test_browser import write_studies
from viewer.qt.main_window import MainWindow
from viewer.store import Store, import_paths


@pytest.fixture
def window(qtbot, store: Store) -> Iterator[MainWindow]:  # type: ignore[no-untyped-def]
    main = MainWindow(store=store, volume_source=list)
    qtbot.addWidget(main)
    main.resize(1200, 900)
    main.show()
    yield main
    main.close()


def test_network_menu_is_installed_without_claiming_a_port(window: MainWindow) -> None:
    titles = [a.text() for a in window.menuBar().actions()]
    assert "&Network" in titles
    assert not window.network.scp_running()  # only the real application starts the SCP
    assert window.network.store().root == window.browser.store.root  # type: ignore[union-attr]


def test_open_study_shows_it_and_selection_gives_its_files(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, store: Store, tmp_path: Path
) -> None:
    media = write_studies(tmp_path / "disc")
    report = import_paths(store, [media])
    assert len(report.imported) == 14
    uid = "1.2.826.0.1.3680043.10.9.0"  # Müller: two CT series, 6 + 5 images
    with qtbot.waitSignal(window.opened, timeout=30000):
        assert window.browser.select_study(uid)
    qtbot.waitUntil(window.view.is_displayable, timeout=30000)
    selected = window.browser.selected_paths()
    assert len(selected) == 11
    assert all(p.is_file() and store.root in p.parents for p in selected)
    assert not window.browser.select_study("1.2.3.999")


def test_a_received_study_refreshes_the_store_list(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, store: Store, tmp_path: Path
) -> None:
    window.browser.show_store()
    assert window.browser.studies() == []
    import_paths(store, [write_studies(tmp_path / "disc")])
    with qtbot.waitSignal(window.browser.studies_listed, timeout=10000) as listed:
        window.network.study_received.emit("1.2.826.0.1.3680043.10.9.0")
    assert listed.args == [3]


def test_export_needs_a_selection_then_opens_the_wizard(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PySide6.QtWidgets import QMessageBox

    told: list[str] = []
    monkeypatch.setattr(QMessageBox, "information", lambda _p, _t, text: told.append(text))
    window.browser.show_store()
    window.actions_by_name["export_media"].trigger()
    assert told == ["Select a study in the browser first."]
    import_paths(store, [write_studies(tmp_path / "disc")])
    assert window.browser.select_study("1.2.826.0.1.3680043.10.9.2", open_first=False)
    window.actions_by_name["export_media"].trigger()
    wizard = window._export_wizard
    assert wizard is not None and wizard.isVisible()
    assert len(wizard.paths) == 1  # Smythe^Bob: one CR image


def test_a_taken_port_is_said_in_the_window_not_only_on_the_console(qtbot) -> None:  # type: ignore[no-untyped-def]
    """A second Lightbox (or any program) on our port: the status bar says so and why."""
    import socket

    from viewer.net.nodes import LocalSettings, NetConfig, save_config

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        local = LocalSettings(
            ae_title="LIGHTBOX", scp_port=port, bind_address="127.0.0.1", start_with_app=True
        )
        save_config(NetConfig(local, {}))
        main = MainWindow(volume_source=list, start_services=True)
        qtbot.addWidget(main)
        main.show()
        assert not main.network.scp_running()
        assert main.scp_status.text() == "⚠ Not receiving"
        assert f"cannot listen on port {port}" in main.scp_status.toolTip()
        assert "another Lightbox" in main.statusBar().currentMessage()
        main.close()
    finally:
        holder.close()
