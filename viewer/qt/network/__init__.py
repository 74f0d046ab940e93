"""The network in the GUI: the Network menu, its dialogs and the application-wide service.

The main window calls :func:`install_network_menu` once; it adds a "Network" menu (Query/Retrieve,
Send selection, Reconcile and hand over, Nodes, Settings) to any ``QMainWindow`` and returns the
:class:`~viewer.qt.network.service.NetworkService` that owns the storage SCP (started now when the
settings say so, stopped on quit) and signals ``study_received(study_uid)`` for the browser.

Every network operation runs on a worker (:mod:`viewer.qt.network.workers`); the dialogs are
created on first use and kept (closing one hides it: running transfers go on).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDialog, QMainWindow, QMenu

from viewer.qt.network.service import NetworkService
from viewer.qt.selection import Selection

__all__ = ["NetworkMenu", "NetworkService", "install_network_menu"]


class NetworkMenu(QMenu):
    """The "Network" menu; it creates each dialog on first use and keeps it."""

    def __init__(
        self,
        window: QMainWindow,
        service: NetworkService,
        open_study: Callable[[str], None],
        selection: Callable[[], Selection],
    ) -> None:
        super().__init__("&Network", window)
        self.setObjectName("network_menu")
        self.window_ = window
        self.service = service
        self.open_study = open_study
        self.selection = selection
        self.dialogs: dict[str, QDialog] = {}
        self.actions_by_name: dict[str, QAction] = {}
        for name, text, slot in (
            ("network_query", "&Query/Retrieve…", self.show_query),
            ("network_send", "&Send selection…", self.show_send),
            ("network_handover", "Reconcile and &hand over…", self.show_handover),
            ("network_nodes", "&Nodes…", self.show_nodes),
            ("network_settings", "S&ettings…", self.show_settings),
        ):
            action = QAction(text, self)
            action.setObjectName(name)
            action.triggered.connect(slot)
            self.addAction(action)
            self.actions_by_name[name] = action
            if name == "network_handover":
                self.addSeparator()

    def _dialog(self, name: str, make: Callable[[], QDialog]) -> QDialog:
        dialog = self.dialogs.get(name)
        if dialog is None:
            dialog = make()
            self.dialogs[name] = dialog
            shutdown = getattr(dialog, "shutdown", None)
            if shutdown is not None:
                self.service.call_on_shutdown(shutdown)
        return dialog

    def show_query(self) -> QDialog:
        from viewer.qt.network.query_dialog import QueryDialog

        dialog = self._dialog(
            "query", lambda: QueryDialog(self.service, self.open_study, self.window_)
        )
        assert isinstance(dialog, QueryDialog)
        _raise(dialog)
        return dialog

    def show_send(self) -> QDialog:
        from viewer.qt.network.send_dialog import SendDialog

        chosen = self.selection()
        dialog = self._dialog("send", lambda: SendDialog(self.service, chosen, self.window_))
        assert isinstance(dialog, SendDialog)
        if dialog.selection != chosen and dialog.send_button.isEnabled():
            dialog.set_selection(chosen)  # not while a send runs: its rows stay
        _raise(dialog)
        return dialog

    def show_handover(self) -> QDialog:
        from viewer.qt.network.handover_dialog import HandoverDialog

        chosen = self.selection()
        dialog = self._dialog(
            "handover", lambda: HandoverDialog(self.service, chosen, self.window_)
        )
        assert isinstance(dialog, HandoverDialog)
        if dialog.selection != chosen and dialog.idle:
            dialog.set_selection(chosen)  # not while a hand-over runs: its rows stay
        _raise(dialog)
        return dialog

    def show_nodes(self) -> QDialog:
        from viewer.qt.network.nodes_dialog import NodesDialog

        dialog = self._dialog("nodes", lambda: NodesDialog(self.service, self.window_))
        assert isinstance(dialog, NodesDialog)
        _raise(dialog)
        return dialog

    def show_settings(self) -> QDialog:
        from viewer.qt.network.settings_dialog import SettingsDialog

        dialog = self._dialog("settings", lambda: SettingsDialog(self.service, self.window_))
        assert isinstance(dialog, SettingsDialog)
        dialog.load()
        _raise(dialog)
        return dialog


def _raise(dialog: QDialog) -> None:
    dialog.show()
    dialog.raise_()
    dialog.activateWindow()


def install_network_menu(
    window: QMainWindow,
    *,
    open_study: Callable[[str], None],
    selection: Callable[[], Selection],
    config_path: Path | None = None,
    store_root: Path | None = None,
    start: bool = True,
) -> NetworkService:
    """Add the "Network" menu to ``window`` and start the network service.

    ``open_study(study_instance_uid)`` shows a study of the store (called for each retrieved
    study); ``selection()`` gives what the browser has selected for "Send selection"
    (:class:`viewer.qt.selection.Selection`).
    The storage SCP starts now when the settings say so; it stops when the application quits
    (``QCoreApplication.aboutToQuit``) or when ``service.shutdown()`` is called, for example in
    the window's own shutdown. ``config_path`` and ``store_root`` default to the application
    data folder (tests pass their own); ``start=False`` leaves the SCP to ``start_if_configured``.
    """
    service = NetworkService(window, config_path=config_path, store_root=store_root)
    menu = NetworkMenu(window, service, open_study, selection)
    window.menuBar().addMenu(menu)
    service.menu = menu
    if start:
        service.start_if_configured()
    return service
