"""Network > Settings: our own Application Entity (PS3.2 section 2.2 describes what it means).

AE title, storage SCP port and bind address, whether the storage service runs, the calling AE
titles it accepts (empty: anyone), how many associations it takes at once and from one address,
TLS files (PS3.15 B.9) and the timeouts that keep a dead peer from hanging a worker. Saved with
:func:`viewer.net.nodes.save_config` through the service,
which restarts the SCP when our AE changed. A bad value is said in words beside the buttons;
nothing is saved until every value is valid.
"""

from __future__ import annotations

import re

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from viewer.net.nodes import ConfigError, LocalSettings, NetConfig, Timeouts, Tls
from viewer.qt.network.service import NetworkService


class FileField(QWidget):
    """A path with a Browse button (TLS CA, certificate, key)."""

    def __init__(self, name: str, caption: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.edit = QLineEdit()
        self.edit.setObjectName(name)
        self.edit.setPlaceholderText("none")
        self._caption = caption
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._on_browse_clicked)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(browse)

    def text(self) -> str:
        return self.edit.text().strip()

    def setText(self, value: str) -> None:
        self.edit.setText(value)

    def _on_browse_clicked(self) -> None:
        name, _ = QFileDialog.getOpenFileName(self, self._caption, self.text())
        if name:
            self.edit.setText(name)


def timeout_box(name: str, value: float) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setObjectName(name)
    box.setRange(0.5, 3600.0)
    box.setDecimals(1)
    box.setSuffix(" s")
    box.setValue(value)
    return box


class SettingsDialog(QDialog):
    """Edit :class:`viewer.net.nodes.LocalSettings`; Save writes ``network.json``."""

    def __init__(self, service: NetworkService, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Network settings")
        self.setObjectName("network_settings_dialog")
        self.service = service

        self.ae_title = QLineEdit()
        self.ae_title.setObjectName("ae_title")
        self.ae_title.setMaxLength(16)
        self.scp_port = QSpinBox()
        self.scp_port.setObjectName("scp_port")
        self.scp_port.setRange(1, 65535)
        self.bind_address = QLineEdit()
        self.bind_address.setObjectName("bind_address")
        self.bind_address.setPlaceholderText("all addresses")
        self.start_with_app = QCheckBox("Run the storage service (receive instances)")
        self.start_with_app.setObjectName("start_with_app")
        self.accepted_callers = QLineEdit()
        self.accepted_callers.setObjectName("accepted_callers")
        self.accepted_callers.setPlaceholderText("anyone (or AE titles separated by commas)")
        self.max_pdu = QSpinBox()
        self.max_pdu.setObjectName("max_pdu")
        self.max_pdu.setRange(0, 2**31 - 1)
        self.max_pdu.setSingleStep(16384)
        self.max_pdu.setSpecialValueText("unlimited")
        self.max_pdu.setToolTip("The storage service never accepts more than 16 MiB per PDU")
        self.scp_max_associations = QSpinBox()
        self.scp_max_associations.setObjectName("scp_max_associations")
        self.scp_max_associations.setRange(1, 1000)
        self.scp_max_per_host = QSpinBox()
        self.scp_max_per_host.setObjectName("scp_max_per_host")
        self.scp_max_per_host.setRange(1, 1000)
        self.scp_max_per_host.setToolTip("So that one machine cannot take every association")

        own = QGroupBox("Our Application Entity")
        form = QFormLayout(own)
        form.addRow("AE title", self.ae_title)
        form.addRow("Storage port", self.scp_port)
        form.addRow("Bind address", self.bind_address)
        form.addRow("", self.start_with_app)
        form.addRow("Accepted callers", self.accepted_callers)
        form.addRow("Maximum PDU (bytes)", self.max_pdu)
        form.addRow("Associations at once", self.scp_max_associations)
        form.addRow("… from one address", self.scp_max_per_host)

        self.tls_ca = FileField("tls_ca", "CA certificates")
        self.tls_cert = FileField("tls_cert", "Our certificate")
        self.tls_key = FileField("tls_key", "Our private key")
        tls_box = QGroupBox("TLS for the storage service (BCP 195, TLS 1.2 or later)")
        tls_form = QFormLayout(tls_box)
        tls_form.addRow("CA (callers must chain to it)", self.tls_ca)
        tls_form.addRow("Certificate", self.tls_cert)
        tls_form.addRow("Private key", self.tls_key)

        t = Timeouts()
        self.timeout_connect = timeout_box("timeout_connect", t.connect)
        self.timeout_acse = timeout_box("timeout_acse", t.acse)
        self.timeout_dimse = timeout_box("timeout_dimse", t.dimse)
        self.timeout_network = timeout_box("timeout_network", t.network)
        self.scp_idle_timeout = timeout_box("scp_idle_timeout", LocalSettings().scp_idle_timeout)
        times = QGroupBox("Timeouts")
        times_form = QFormLayout(times)
        times_form.addRow("Connect", self.timeout_connect)
        times_form.addRow("Association (ACSE)", self.timeout_acse)
        times_form.addRow("Answer (DIMSE)", self.timeout_dimse)
        times_form.addRow("Idle connection", self.timeout_network)
        times_form.addRow("Idle caller (storage service)", self.scp_idle_timeout)

        self.status_label = QLabel()
        self.status_label.setObjectName("scp_status")
        self.status_label.setWordWrap(True)
        self.error_label = QLabel()
        self.error_label.setObjectName("error_label")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #c0392b;")

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self._on_buttons_accepted)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        for widget in (own, tls_box, times, self.status_label, self.error_label, self.buttons):
            layout.addWidget(widget)
        service.scp_state_changed.connect(self._on_service_scp_state_changed)
        self.load()

    def load(self) -> None:
        """Show the saved settings."""
        local = self.service.local
        self.ae_title.setText(local.ae_title)
        self.scp_port.setValue(local.scp_port)
        self.bind_address.setText(local.bind_address)
        self.start_with_app.setChecked(local.start_with_app)
        self.accepted_callers.setText(", ".join(local.accepted_callers))
        self.max_pdu.setValue(local.max_pdu)
        self.scp_max_associations.setValue(local.scp_max_associations)
        self.scp_max_per_host.setValue(local.scp_max_per_host)
        self.scp_idle_timeout.setValue(local.scp_idle_timeout)
        self.tls_ca.setText(local.tls.ca)
        self.tls_cert.setText(local.tls.cert)
        self.tls_key.setText(local.tls.key)
        self.timeout_connect.setValue(local.timeouts.connect)
        self.timeout_acse.setValue(local.timeouts.acse)
        self.timeout_dimse.setValue(local.timeouts.dimse)
        self.timeout_network.setValue(local.timeouts.network)
        self.error_label.setText(self.service.config_problem)
        self._on_service_scp_state_changed(self.service.scp_running(), self.service.scp_message)

    def settings(self) -> LocalSettings:
        """What the form says; raises :class:`ConfigError` naming the bad value."""
        callers = tuple(c for c in re.split(r"[,\s]+", self.accepted_callers.text()) if c)
        tls = Tls(self.tls_ca.text(), self.tls_cert.text(), self.tls_key.text())
        if bool(tls.cert) != bool(tls.key):
            raise ConfigError("TLS needs both a certificate and its private key")
        return LocalSettings(
            ae_title=self.ae_title.text(),
            scp_port=self.scp_port.value(),
            bind_address=self.bind_address.text().strip(),
            start_with_app=self.start_with_app.isChecked(),
            accepted_callers=callers,
            timeouts=Timeouts(
                connect=self.timeout_connect.value(),
                acse=self.timeout_acse.value(),
                dimse=self.timeout_dimse.value(),
                network=self.timeout_network.value(),
            ),
            max_pdu=self.max_pdu.value(),
            tls=tls,
            scp_max_associations=self.scp_max_associations.value(),
            scp_max_per_host=self.scp_max_per_host.value(),
            scp_idle_timeout=self.scp_idle_timeout.value(),
        )

    def _on_buttons_accepted(self) -> None:
        try:
            local = self.settings()
            self.service.save(NetConfig(local, dict(self.service.config.nodes)))
        except (ConfigError, OSError) as exc:
            self.error_label.setText(f"Not saved: {exc}")
            return
        self.error_label.clear()
        self.accept()

    def _on_service_scp_state_changed(self, running: bool, message: str) -> None:
        self.status_label.setText(("● " if running else "○ ") + message[:1].upper() + message[1:])
