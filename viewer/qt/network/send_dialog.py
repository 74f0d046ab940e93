"""Network > Send selection: C-STORE the browser's selection to a node (PS3.4 B.2).

The files go out on a worker through :func:`viewer.net.send.send` (each in its own transfer
syntax, decompressed only when the peer accepts nothing else); the dialog shows the overall
progress and, per instance, the C-STORE status and what it means. "Retry failed" sends again
only the instances that did not arrive.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.net import dicomweb
from viewer.net.nodes import ConfigError
from viewer.net.send import WARNING_STATUSES, SendResult, send
from viewer.qt.jobs import Job, JobSet
from viewer.qt.network.service import NetworkService
from viewer.qt.network.workers import describe_error
from viewer.qt.selection import Selection
from viewer.text import escape

PATH_ROLE = Qt.ItemDataRole.UserRole


def status_words(status: int | None, message: str) -> str:
    """The C-STORE status in words (PS3.4 Table B.2-1)."""
    if status is None:
        return "not sent"
    if status == 0x0000:
        return "stored"
    if status in WARNING_STATUSES:
        return f"stored with warning 0x{status:04X}"
    return f"failed 0x{status:04X}"


class SendDialog(QDialog):
    """Send a selection to a configured node; per-instance statuses; retry the failures. The
    patient and study are named above the list, each instance by series and number."""

    def __init__(
        self, service: NetworkService, selection: Selection, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Send to a DICOM node")
        self.setObjectName("network_send_dialog")
        self.resize(820, 460)
        self.service = service
        self.workers = JobSet(self)
        self._worker: Job | None = None
        self.last_result: SendResult | None = None

        self.node_combo = QComboBox()
        self.node_combo.setObjectName("node_combo")
        self.node_combo.addItems(sorted(service.config.nodes))
        self.title_label = QLabel()
        self.title_label.setObjectName("selection_title")
        self.title_label.setTextFormat(Qt.TextFormat.PlainText)
        form = QFormLayout()
        form.addRow("Patient and study", self.title_label)
        form.addRow("Send to", self.node_combo)

        self.instances = QTreeWidget()
        self.instances.setObjectName("instances")
        self.instances.setHeaderLabels(["Instance", "SOP Instance UID", "Status", "Message"])
        self.instances.setRootIsDecorated(False)
        self.instances.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.instances.header().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.instances.setColumnWidth(0, 200)
        self.instances.setColumnWidth(1, 220)
        self.instances.setColumnWidth(2, 150)

        self.progress = QProgressBar()
        self.progress.setObjectName("progress")
        self.progress.setFormat("%v / %m")
        self.status_label = QLabel()
        self.status_label.setObjectName("status_label")
        self.status_label.setWordWrap(True)

        self.send_button = QPushButton("Send")
        self.send_button.setObjectName("send_button")
        self.send_button.setDefault(True)
        self.send_button.clicked.connect(self._on_send_clicked)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancel_button")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self._on_cancel_clicked)
        self.retry_button = QPushButton("Retry failed")
        self.retry_button.setObjectName("retry_button")
        self.retry_button.setEnabled(False)
        self.retry_button.clicked.connect(self._on_retry_clicked)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        buttons = QHBoxLayout()
        for b in (self.send_button, self.cancel_button, self.retry_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(close)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.instances, 1)
        layout.addWidget(self.progress)
        layout.addWidget(self.status_label)
        layout.addLayout(buttons)
        self.set_selection(selection)

    def set_selection(self, selection: Selection) -> None:
        """Show a new selection (the dialog is reused)."""
        self.selection = selection
        self.paths = selection.paths
        self.title_label.setText(
            escape(selection.title)
            or ("(files without a study row)" if selection.items else "(nothing selected)")
        )
        self.instances.clear()
        for path, label in selection.items:
            item = QTreeWidgetItem([escape(label), "", "waiting", ""])
            item.setData(0, PATH_ROLE, str(path))
            item.setToolTip(0, str(path))
            self.instances.addTopLevelItem(item)
        self.progress.setRange(0, max(len(self.paths), 1))
        self.progress.setValue(0)
        self.retry_button.setEnabled(False)
        self.send_button.setEnabled(bool(self.paths) and self._worker is None)
        count = len(self.paths)
        self.status_label.setText(
            f"{count} file{'s' if count != 1 else ''} selected"
            if count
            else "Nothing selected: choose studies or series in the browser first."
        )
        if not self.service.config.nodes:
            self.status_label.setText("No node configured: add one in Network > Nodes.")

    def _items(self) -> dict[str, QTreeWidgetItem]:
        out = {}
        for i in range(self.instances.topLevelItemCount()):
            item = self.instances.topLevelItem(i)
            if item is not None:
                out[str(item.data(0, PATH_ROLE))] = item
        return out

    def _start(self, paths: list[Path]) -> None:
        if self._worker is not None or not paths:
            return
        try:
            name = self.node_combo.currentText()
            if not name:
                raise ConfigError("choose a node (add one in Network > Nodes)")
            node = self.service.config.node(name)
        except ConfigError as exc:
            self.status_label.setText(str(exc))
            return
        local = self.service.local

        def job(cancel: threading.Event, report: Callable[[object], None]) -> SendResult:
            if node.is_web:  # STOW-RS (issue 13): the same per-instance result
                return dicomweb.send(
                    node, local, paths, cancel=cancel, progress=lambda d, t: report((d, t))
                )
            return send(node, local, paths, cancel=cancel, progress=lambda d, t: report((d, t)))

        worker = Job("SendWorker", job)
        worker.reported.connect(self._on_send_progress)
        worker.finished.connect(self._on_send_finished)
        worker.failed.connect(self._on_send_failed)
        worker.done.connect(self._on_send_done)
        self._worker = worker
        items = self._items()
        for path in paths:
            if (item := items.get(str(path))) is not None:
                item.setText(2, "sending…")
                item.setText(3, "")
        self.progress.setRange(0, len(paths))
        self.progress.setValue(0)
        self.send_button.setEnabled(False)
        self.retry_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status_label.setText(f"Sending {len(paths)} to {node}…")
        self.workers.start(worker)

    def _on_send_clicked(self) -> None:
        self._start(self.paths)

    def _on_retry_clicked(self) -> None:
        if self.last_result is not None:
            self._start([i.path for i in self.last_result.failed])

    def _on_cancel_clicked(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            self.status_label.setText("Cancelling…")

    def _on_send_progress(self, counts: tuple[int, int]) -> None:
        done, total = counts
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def _on_send_finished(self, result: SendResult) -> None:
        self.last_result = result
        items = self._items()
        for instance in result.instances:
            item = items.get(str(instance.path))
            if item is None:
                continue
            item.setText(1, instance.sop_instance_uid)
            item.setText(2, status_words(instance.status, instance.message))
            item.setText(3, instance.message)
            item.setToolTip(3, instance.message)
            colour = Qt.GlobalColor.darkGreen if instance.ok else Qt.GlobalColor.red
            item.setForeground(2, colour)
        failed = len(result.failed)
        text = f"{result.sent} sent, {failed} failed"
        if result.warnings:
            text += f" ({result.warnings} with warnings)"
        if result.cancelled:
            text += " — cancelled"
        self.status_label.setText(text)
        self.retry_button.setEnabled(failed > 0)

    def _on_send_failed(self, error: Exception) -> None:
        message = describe_error(error)
        self.status_label.setText(f"Not sent: {message}")
        for item in self._items().values():
            if item.text(2) == "sending…":
                item.setText(2, "not sent")
                item.setForeground(2, Qt.GlobalColor.red)
        self.retry_button.setEnabled(False)
        self.send_button.setEnabled(True)

    def _on_send_done(self) -> None:
        self._worker = None
        self.cancel_button.setEnabled(False)
        self.send_button.setEnabled(bool(self.paths))

    def shutdown(self) -> None:
        """Cancel and join the send (the application quits)."""
        self.workers.wait_all()
        self._worker = None
