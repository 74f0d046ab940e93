"""Network > Nodes: the remote AEs we query, retrieve from and send to.

Add, edit and remove nodes (AE title, host, port, TLS files, preferred retrieve method); "Test"
runs C-ECHO (PS3.4 Annex A) on a worker and shows the diagnosis in plain words (connection
refused, timeout, AE title not recognised...) from :func:`viewer.net.echo.echo`. The node
tested is the one in the form, saved or not, so a setting can be tried before it is kept.

A node with a DICOMweb URL (issue 13) is a DICOMweb server: its authentication (none, basic
with a user and password, a bearer token) and TLS (the CA file; "do not verify" only when
ticked, and said so) are in the same form; "Test" then runs a one-study QIDO-RS search
(:func:`viewer.net.dicomweb.echo`). The password or token field never shows what it holds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from viewer.net import dicomweb
from viewer.net.echo import EchoResult, echo
from viewer.net.nodes import ConfigError, NetConfig, Node, Tls
from viewer.qt.jobs import Job, JobSet
from viewer.qt.network.service import NetworkService
from viewer.qt.network.settings_dialog import FileField
from viewer.qt.network.workers import describe_error

OK_STYLE = "color: #1e8449;"
BAD_STYLE = "color: #c0392b;"


class NodesDialog(QDialog):
    """Edit the configured nodes; changes are saved node by node with "Save node"."""

    def __init__(self, service: NetworkService, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("DICOM nodes")
        self.setObjectName("network_nodes_dialog")
        self.service = service
        self.workers = JobSet(self)
        self.last_echo: EchoResult | None = None

        self.node_list = QListWidget()
        self.node_list.setObjectName("node_list")
        self.node_list.currentItemChanged.connect(self._on_node_list_current_item_changed)

        self.name = QLineEdit()
        self.name.setObjectName("node_name")
        self.ae_title = QLineEdit()
        self.ae_title.setObjectName("node_ae_title")
        self.ae_title.setMaxLength(16)
        self.host = QLineEdit()
        self.host.setObjectName("node_host")
        self.port = QSpinBox()
        self.port.setObjectName("node_port")
        self.port.setRange(1, 65535)
        self.port.setValue(104)
        self.method = QComboBox()
        self.method.setObjectName("node_method")
        self.method.addItem("C-MOVE (the PACS connects back to our storage service)", "move")
        self.method.addItem("C-GET (no inbound connection)", "get")
        self.tls_ca = FileField("node_tls_ca", "CA certificates")
        self.tls_cert = FileField("node_tls_cert", "Our certificate")
        self.tls_key = FileField("node_tls_key", "Our private key")
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("AE title", self.ae_title)
        form.addRow("Host", self.host)
        form.addRow("Port", self.port)
        form.addRow("Retrieve with", self.method)
        form.addRow("TLS CA", self.tls_ca)
        form.addRow("TLS certificate", self.tls_cert)
        form.addRow("TLS key", self.tls_key)
        # DICOMweb (issue 13): a URL makes the node a DICOMweb server; AE title, host, port
        # and retrieve method are then not used.
        self.url = QLineEdit()
        self.url.setObjectName("node_url")
        self.url.setPlaceholderText("https://host/dicom-web (empty: a DIMSE node)")
        self.auth = QComboBox()
        self.auth.setObjectName("node_auth")
        self.auth.addItem("None", "none")
        self.auth.addItem("Basic (user and password)", "basic")
        self.auth.addItem("Bearer token", "bearer")
        self.user = QLineEdit()
        self.user.setObjectName("node_user")
        self.secret = QLineEdit()
        self.secret.setObjectName("node_secret")
        self.secret.setEchoMode(QLineEdit.EchoMode.Password)
        self.insecure = QCheckBox("Do not verify the server's certificate (insecure)")
        self.insecure.setObjectName("node_insecure")
        form.addRow("DICOMweb URL", self.url)
        form.addRow("Authentication", self.auth)
        form.addRow("User", self.user)
        form.addRow("Password or token", self.secret)
        form.addRow("", self.insecure)

        self.new_button = self._button("new_button", "New", self._on_new_clicked)
        self.save_button = self._button("save_button", "Save node", self._on_save_clicked)
        self.remove_button = self._button("remove_button", "Remove", self._on_remove_clicked)
        self.test_button = self._button("test_button", "Test (C-ECHO)", self._on_test_clicked)
        # what Test does follows the form: C-ECHO, or a QIDO-RS search for a DICOMweb URL
        self.url.textChanged.connect(
            lambda text: self.test_button.setText(
                "Test (QIDO-RS)" if text.strip() else "Test (C-ECHO)"
            )
        )
        buttons = QHBoxLayout()
        for b in (self.new_button, self.save_button, self.remove_button, self.test_button):
            buttons.addWidget(b)

        self.result_label = QLabel()
        self.result_label.setObjectName("test_result")
        self.result_label.setWordWrap(True)
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.result_label.setMinimumWidth(360)

        right = QVBoxLayout()
        right.addLayout(form)
        right.addLayout(buttons)
        right.addWidget(self.result_label)
        right.addStretch(1)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        right.addWidget(close)

        layout = QHBoxLayout(self)
        layout.addWidget(self.node_list, 1)
        layout.addLayout(right, 2)
        self.refresh()

    def _button(self, name: str, text: str, slot: Callable[[], None]) -> QPushButton:
        button = QPushButton(text)
        button.setObjectName(name)
        button.clicked.connect(slot)
        return button

    def refresh(self, select: str = "") -> None:
        self.node_list.clear()
        for name in sorted(self.service.config.nodes):
            item = QListWidgetItem(f"{name}  ({self.service.config.nodes[name]})")
            item.setData(Qt.ItemDataRole.UserRole, name)
            self.node_list.addItem(item)
            if name == select:
                self.node_list.setCurrentItem(item)
        if not select and self.node_list.count():
            self.node_list.setCurrentRow(0)

    def show_node(self, node: Node | None) -> None:
        self.name.setText(node.name if node else "")
        self.ae_title.setText(node.ae_title if node else "")
        self.host.setText(node.host if node else "")
        self.port.setValue(node.port if node else 104)
        self.method.setCurrentIndex(1 if node and node.retrieve_method == "get" else 0)
        self.tls_ca.setText(node.tls.ca if node else "")
        self.tls_cert.setText(node.tls.cert if node else "")
        self.tls_key.setText(node.tls.key if node else "")
        self.url.setText(node.url if node else "")
        self.auth.setCurrentIndex(max(0, self.auth.findData(node.auth if node else "none")))
        self.user.setText(node.user if node else "")
        self.secret.setText(node.secret if node else "")
        self.insecure.setChecked(bool(node and node.insecure))

    def node(self) -> Node:
        """The node in the form; raises :class:`ConfigError` naming the bad field."""
        name = self.name.text().strip()
        if not name:
            raise ConfigError("the node needs a name")
        tls = Tls(self.tls_ca.text(), self.tls_cert.text(), self.tls_key.text())
        if self.url.text().strip():
            return Node(
                name=name,
                url=self.url.text().strip(),
                tls=tls,
                auth=self.auth.currentData(),
                user=self.user.text().strip(),
                secret=self.secret.text(),
                insecure=self.insecure.isChecked(),
            )
        return Node(
            name=name,
            ae_title=self.ae_title.text(),
            host=self.host.text().strip(),
            port=self.port.value(),
            tls=Tls(self.tls_ca.text(), self.tls_cert.text(), self.tls_key.text()),
            retrieve_method=self.method.currentData(),
        )

    def _say(self, text: str, ok: bool) -> None:
        self.result_label.setStyleSheet(OK_STYLE if ok else BAD_STYLE)
        self.result_label.setText(text)

    def _on_node_list_current_item_changed(self, item: QListWidgetItem | None) -> None:
        name = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        self.show_node(self.service.config.nodes.get(name) if name else None)
        self.result_label.clear()

    def _on_new_clicked(self) -> None:
        self.node_list.setCurrentRow(-1)
        self.show_node(None)
        self.name.setFocus()

    def _on_save_clicked(self) -> None:
        try:
            node = self.node()
            current = self.node_list.currentItem()
            old = current.data(Qt.ItemDataRole.UserRole) if current is not None else None
            nodes = dict(self.service.config.nodes)
            if old and old != node.name:
                nodes.pop(old, None)
            nodes[node.name] = node
            self.service.save(NetConfig(self.service.local, nodes))
        except (ConfigError, OSError) as exc:
            self._say(f"Not saved: {exc}", False)
            return
        self.refresh(node.name)
        self._say(f"Saved {node.name} ({node}).", True)

    def _on_remove_clicked(self) -> None:
        current = self.node_list.currentItem()
        if current is None:
            return
        name = current.data(Qt.ItemDataRole.UserRole)
        nodes = {k: v for k, v in self.service.config.nodes.items() if k != name}
        try:
            self.service.save(NetConfig(self.service.local, nodes))
        except OSError as exc:
            self._say(f"Not removed: {exc}", False)
            return
        self.refresh()
        if not nodes:
            self.show_node(None)
        self._say(f"Removed {name}.", True)

    def _on_test_clicked(self) -> None:
        try:
            node = self.node()
        except ConfigError as exc:
            self._say(str(exc), False)
            return
        local = self.service.local

        def job(_cancel: threading.Event, _report: Callable[[object], None]) -> EchoResult:
            if node.is_web:
                ok, message, seconds = dicomweb.echo(node, local)
                return EchoResult(ok, "ok" if ok else "failed", message, seconds)
            return echo(node, local)

        worker = Job("EchoWorker", job)
        worker.finished.connect(self._on_echo_finished)
        worker.failed.connect(self._on_echo_failed)
        self.test_button.setEnabled(False)
        self._say(f"Testing {node}…", True)
        self.workers.start(worker)

    def _on_echo_finished(self, result: EchoResult) -> None:
        self.test_button.setEnabled(True)
        self.last_echo = result
        if result.ok:
            self._say(f"OK: {result.message}", True)
        else:
            self._say(f"Failed: {result.message}", False)

    def _on_echo_failed(self, error: Exception) -> None:
        message = describe_error(error)
        self.test_button.setEnabled(True)
        self._say(f"Failed: {message}", False)

    def shutdown(self) -> None:
        """Join a running test (the application quits); bounded by the connect timeout."""
        self.workers.wait_all()
