"""Network > Reconcile and hand over: an outside study of the store into the hospital's PACS
under the hospital's identity, and proof that the PACS took it (issue 13).

The clerk works down the dialog:

1. **Hospital patient and order**: search a Modality Worklist node (C-FIND on a worker) and
   pick the order, or type the identity in; the fields stay editable either way.
2. **Mapping**: "Show mapping" reads the stored study's headers on a worker
   (:func:`viewer.store.reconcile.plan`) and lists, per attribute, the outside value(s) and the
   hospital's; the Patient IDs kept in Other Patient IDs Sequence are listed too. Nothing goes
   anywhere until the clerk ticks "This is the same patient"; any change to the identity, the
   UID or the reason choice clears the mapping and the tick.
3. **Hand over**: on one worker, the reconciled copies are written to a staging folder (the
   store's original is never edited), sent to the chosen node and confirmed
   (:mod:`viewer.handover`: Storage Commitment, or a QIDO-RS check on a DICOMweb node).
   Per instance the table says committed / verified / failed / missing / not stored; the
   verdict says HANDED OVER only when every instance is confirmed, else INCOMPLETE with what is
   missing. "Receipt…" shows the printable receipt (:class:`viewer.qt.receipt.ReceiptDialog`).

The outside patient (the browser's row) is named at the top all along, and the hospital's
identity as the mapping shows it: whose study goes where is never in doubt. Cancel stops the
worker between files (or the commitment wait); what was confirmed is kept.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.config import app_home
from viewer.handover import HandoverResult, hand_over
from viewer.media import receipt as rc
from viewer.net.nodes import ConfigError
from viewer.net.worklist import WorklistItem, WorklistQuery, WorklistResult, query_worklist
from viewer.qt.jobs import Job, JobSet, Work
from viewer.qt.network.service import NetworkService
from viewer.qt.network.workers import describe_error
from viewer.qt.selection import Selection
from viewer.store.index import HELD_STATES
from viewer.store.reconcile import REASONS, Identity, Reconciliation, plan, write
from viewer.text import escape

ITEM_ROLE = Qt.ItemDataRole.UserRole
GOOD = QColor("#1b7a1b")
BAD = QColor("#b00020")

#: The identity fields: (attribute of Identity, label, object name).
FIELDS = (
    ("patient_id", "Patient ID", "target_patient_id"),
    ("issuer_of_patient_id", "Issuer of Patient ID", "target_issuer"),
    ("patient_name", "Patient's name", "target_patient_name"),
    ("birth_date", "Birth date (YYYYMMDD)", "target_birth_date"),
    ("sex", "Sex (M, F, O)", "target_sex"),
    ("accession_number", "Accession number", "target_accession"),
    ("study_description", "Study description", "target_description"),
)


@dataclass(slots=True)
class Outcome:
    """What the hand-over worker gives back: the copies written and the hand-over."""

    staging: Path
    #: The node as the clerk chose it ("name (AE@host:port)").
    node: str
    patient_id: str
    written: int
    problems: list[str]
    result: HandoverResult | None


class HandoverDialog(QDialog):
    """Reconcile a store study with the hospital's identity and hand it over to a node."""

    def __init__(
        self, service: NetworkService, selection: Selection, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Reconcile and hand over")
        self.setObjectName("network_handover_dialog")
        self.resize(1000, 900)
        self.service = service
        self.workers = JobSet(self)
        self._worker: Job | None = None
        self.plan: Reconciliation | None = None
        self.outcome: Outcome | None = None
        self._study_order_uid = ""  # the chosen order's Study Instance UID

        # -- whose study -------------------------------------------------------------
        self.study_label = QLabel()
        self.study_label.setObjectName("outside_study")
        self.study_label.setTextFormat(Qt.TextFormat.PlainText)
        self.study_label.setWordWrap(True)
        font = self.study_label.font()
        font.setBold(True)
        self.study_label.setFont(font)

        # -- 1. the hospital's patient and order -------------------------------------------
        self.worklist_node = QComboBox()
        self.worklist_node.setObjectName("worklist_node")
        self.wl_name = QLineEdit()
        self.wl_name.setObjectName("worklist_patient_name")
        self.wl_name.setPlaceholderText("name, * for any")
        self.wl_id = QLineEdit()
        self.wl_id.setObjectName("worklist_patient_id")
        self.wl_accession = QLineEdit()
        self.wl_accession.setObjectName("worklist_accession")
        self.search_button = QPushButton("Search worklist")
        self.search_button.setObjectName("search_button")
        self.search_button.clicked.connect(self.search_worklist)
        search_row = QHBoxLayout()
        for label, widget in (
            ("Worklist", self.worklist_node),
            ("Name", self.wl_name),
            ("ID", self.wl_id),
            ("Accession", self.wl_accession),
        ):
            search_row.addWidget(QLabel(label))
            search_row.addWidget(widget, 1 if isinstance(widget, QLineEdit) else 0)
        search_row.addWidget(self.search_button)
        self.orders = QTreeWidget()
        self.orders.setObjectName("orders")
        self.orders.setHeaderLabels(
            ["Patient ID", "Name", "Birth date", "Sex", "Accession", "Procedure", "Scheduled"]
        )
        self.orders.setRootIsDecorated(False)
        self.orders.setMaximumHeight(130)
        self.orders.currentItemChanged.connect(self._on_order_chosen)

        self.fields: dict[str, QLineEdit] = {}
        grid = QGridLayout()
        for n, (attr, label, name) in enumerate(FIELDS):
            edit = QLineEdit()
            edit.setObjectName(name)
            edit.textEdited.connect(self._forget_plan)
            self.fields[attr] = edit
            grid.addWidget(QLabel(label), n // 2, (n % 2) * 2)
            grid.addWidget(edit, n // 2, (n % 2) * 2 + 1)
        self.new_uids = QCheckBox("New Study, Series and SOP Instance UIDs")
        self.new_uids.setObjectName("new_uids")
        self.new_uids.toggled.connect(self._forget_plan)
        self.reason = QComboBox()
        self.reason.setObjectName("reason")
        self.reason.addItems(list(REASONS))
        self.reason.currentIndexChanged.connect(self._forget_plan)
        options = QHBoxLayout()
        options.addWidget(self.new_uids)
        options.addWidget(QLabel("Reason"))
        options.addWidget(self.reason)
        options.addStretch(1)
        target_box = QGroupBox("1. The hospital's patient and order (from the worklist, or typed)")
        target_layout = QVBoxLayout(target_box)
        target_layout.addLayout(search_row)
        target_layout.addWidget(self.orders)
        target_layout.addLayout(grid)
        target_layout.addLayout(options)

        # -- 2. the mapping --------------------------------------------------------------
        self.plan_button = QPushButton("Show mapping")
        self.plan_button.setObjectName("plan_button")
        self.plan_button.clicked.connect(self.show_mapping)
        self.mapping = QTreeWidget()
        self.mapping.setObjectName("mapping")
        self.mapping.setHeaderLabels(["Attribute", "Outside study", "Hospital"])
        self.mapping.setRootIsDecorated(False)
        self.mapping.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.mapping.setColumnWidth(0, 220)
        self.mapping.setColumnWidth(1, 330)
        self.mapping.setMinimumHeight(170)  # every attribute at once, no scrolling to check
        self.confirm_box = QCheckBox("This is the same patient: hand over under the hospital's ID")
        self.confirm_box.setObjectName("confirm_box")
        self.confirm_box.setEnabled(False)
        self.confirm_box.toggled.connect(self._update_buttons)
        mapping_box = QGroupBox("2. The mapping (nothing is sent before you confirm it)")
        mapping_layout = QVBoxLayout(mapping_box)
        mapping_layout.addWidget(self.plan_button, 0, Qt.AlignmentFlag.AlignLeft)
        mapping_layout.addWidget(self.mapping)
        mapping_layout.addWidget(self.confirm_box)

        # -- 3. the hand-over --------------------------------------------------------------
        self.node_combo = QComboBox()
        self.node_combo.setObjectName("node_combo")
        self.handover_button = QPushButton("Hand over")
        self.handover_button.setObjectName("handover_button")
        self.handover_button.clicked.connect(self.hand_over)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancel_button")
        self.cancel_button.clicked.connect(self._on_cancel)
        self.receipt_button = QPushButton("Receipt…")
        self.receipt_button.setObjectName("receipt_button")
        self.receipt_button.clicked.connect(self.show_receipt)
        send_row = QFormLayout()
        send_row.addRow("Send to", self.node_combo)
        self.instances = QTreeWidget()
        self.instances.setObjectName("instances")
        self.instances.setHeaderLabels(["Series", "SOP Instance UID", "State", "Reason"])
        self.instances.setRootIsDecorated(False)
        self.instances.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.instances.setColumnWidth(0, 170)
        self.instances.setColumnWidth(1, 400)
        self.instances.setColumnWidth(2, 90)
        self.instances.setMinimumHeight(110)
        self.instances.header().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.progress = QProgressBar()
        self.progress.setObjectName("progress")
        self.verdict = QLabel()
        self.verdict.setObjectName("verdict")
        self.verdict.setTextFormat(Qt.TextFormat.PlainText)
        self.verdict.setWordWrap(True)
        send_box = QGroupBox("3. Hand over (send, then the node confirms it holds each instance)")
        send_layout = QVBoxLayout(send_box)
        send_layout.addLayout(send_row)
        send_layout.addWidget(self.instances, 1)
        send_layout.addWidget(self.progress)
        send_layout.addWidget(self.verdict)

        self.status_label = QLabel()
        self.status_label.setObjectName("status_label")
        self.status_label.setWordWrap(True)
        self.status_label.setTextFormat(Qt.TextFormat.PlainText)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        buttons = QHBoxLayout()
        for b in (self.handover_button, self.cancel_button, self.receipt_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(close)

        layout = QVBoxLayout(self)
        layout.addWidget(self.study_label)
        layout.addWidget(target_box)
        layout.addWidget(mapping_box, 2)
        layout.addWidget(send_box, 1)
        layout.addWidget(self.status_label)
        layout.addLayout(buttons)
        self.service.config_changed.connect(self._load_nodes)
        self._load_nodes()
        self.set_selection(selection)

    # ------------------------------------------------------------------ state
    def _load_nodes(self) -> None:
        nodes = self.service.config.nodes
        for combo, names in (
            (self.worklist_node, sorted(n for n, node in nodes.items() if not node.is_web)),
            (self.node_combo, sorted(nodes)),
        ):
            current = combo.currentText()
            combo.clear()
            combo.addItems(names)
            if current in names:
                combo.setCurrentText(current)

    def set_selection(self, selection: Selection) -> None:
        """Reconcile another study (not while a worker runs): everything about the previous
        one is cleared."""
        self.selection = selection
        if selection.study_instance_uid and selection.in_store:
            self.study_label.setText(f"Outside study: {escape(selection.title)}")
            self.status_label.setText(
                "Search the worklist for the hospital's patient (or type the identity), then "
                "Show mapping."
            )
        else:
            self.study_label.setText("Outside study: (none chosen)")
            self.status_label.setText(
                "Choose a study of the local store in the browser first (import a disc with "
                "File > Import)."
            )
        self.orders.clear()
        self._forget_plan()
        self.instances.clear()
        self.verdict.clear()
        self.outcome = None
        self._update_buttons()

    @property
    def idle(self) -> bool:
        """No worklist search, mapping or hand-over is running."""
        return self._worker is None

    def _ready(self) -> bool:
        return bool(self.selection.study_instance_uid and self.selection.in_store)

    def _forget_plan(self, *_: object) -> None:
        """The identity or an option changed: the mapping shown no longer holds."""
        self.plan = None
        self.mapping.clear()
        self.confirm_box.setChecked(False)
        self._update_buttons()

    def _update_buttons(self, *_: object) -> None:
        idle = self._worker is None
        self.search_button.setEnabled(idle and self.worklist_node.count() > 0)
        self.plan_button.setEnabled(idle and self._ready())
        self.handover_button.setEnabled(
            idle and self.plan is not None and self.confirm_box.isChecked()
        )
        self.cancel_button.setEnabled(not idle)
        self.receipt_button.setEnabled(idle and self.outcome is not None)
        # while a worker runs, nothing it was started with can change under it
        for widget in (self.orders, self.new_uids, self.reason, self.node_combo):
            widget.setEnabled(idle)
        self.worklist_node.setEnabled(idle)
        self.confirm_box.setEnabled(idle and self.plan is not None and not self.plan.problems)
        for edit in self.fields.values():
            edit.setReadOnly(not idle)

    def _run(self, name: str, work: Work, done: Callable[[object], None]) -> bool:
        if self._worker is not None:
            return False
        job = Job(name, work)
        job.finished.connect(done)
        job.failed.connect(self._on_failed)
        job.done.connect(self._on_done)
        self._worker = job
        self._update_buttons()
        self.workers.start(job)
        return True

    def _on_failed(self, error: Exception) -> None:
        message = describe_error(error)
        self.status_label.setText(message)
        if self._worker is not None and self._worker.name == "HandoverWorker":
            self.verdict.setText(f"NOT HANDED OVER: {message}")
            self._paint_verdict(False)

    def _on_done(self) -> None:
        self._worker = None
        self._update_buttons()

    def _on_cancel(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            self.status_label.setText("Cancelling…")

    # ------------------------------------------------------------------ 1. the worklist
    def search_worklist(self) -> None:
        try:
            node = self.service.config.node(self.worklist_node.currentText())
            query = WorklistQuery(
                patient_name=self.wl_name.text().strip(),
                patient_id=self.wl_id.text().strip(),
                accession_number=self.wl_accession.text().strip(),
            )
        except (ConfigError, ValueError) as exc:
            self.status_label.setText(str(exc))
            return
        local = self.service.local

        def work(cancel: threading.Event, _report: Callable[..., None]) -> WorklistResult:
            return query_worklist(node, local, query, cancel=cancel)

        self.orders.clear()
        if self._run("WorklistWorker", work, self._on_worklist):
            self.status_label.setText(f"Searching the worklist of {node}…")

    def _on_worklist(self, result: object) -> None:
        assert isinstance(result, WorklistResult)
        for item in result.items:
            step = item.steps[0] if item.steps else None
            row = QTreeWidgetItem(
                [
                    escape(item.patient_id),
                    escape(item.patient_name),
                    escape(item.birth_date),
                    escape(item.sex),
                    escape(item.accession_number),
                    escape(item.requested_procedure_description),
                    escape(" ".join(v for v in (step.start_date, step.start_time) if v))
                    if step
                    else "",
                ]
            )
            row.setData(0, ITEM_ROLE, item)
            self.orders.addTopLevelItem(row)
        count = len(result.items)
        text = f"{count} order{'s' if count != 1 else ''} found"
        text += ": choose the patient's" if count else ": widen the search or type the identity"
        self.status_label.setText(text + (f" ({result.note})" if result.note else ""))

    def _on_order_chosen(self, current: QTreeWidgetItem | None, _previous: object) -> None:
        item = current.data(0, ITEM_ROLE) if current is not None else None
        if not isinstance(item, WorklistItem):
            return
        values = {
            "patient_id": item.patient_id,
            "issuer_of_patient_id": item.issuer_of_patient_id,
            "patient_name": item.patient_name,
            "birth_date": item.birth_date,
            "sex": item.sex,
            "accession_number": item.accession_number,
            "study_description": item.requested_procedure_description,
        }
        for attr, value in values.items():
            self.fields[attr].setText(value)
        self._study_order_uid = item.study_instance_uid
        self._forget_plan()

    # ------------------------------------------------------------------ 2. the mapping
    def identity(self) -> Identity:
        """The identity typed or chosen; ValueError says what is wrong with it."""
        values = {attr: edit.text().strip() for attr, edit in self.fields.items()}
        return Identity(**values, study_instance_uid=self._study_order_uid)

    def show_mapping(self) -> None:
        try:
            target = self.identity()
        except ValueError as exc:
            self.status_label.setText(f"The hospital's identity: {exc}")
            return
        store = self.service.store()
        study = self.selection.study_instance_uid
        new_uids, reason = self.new_uids.isChecked(), self.reason.currentText()

        def work(_cancel: threading.Event, _report: Callable[..., None]) -> Reconciliation:
            try:
                return plan(store, study, target, new_uids=new_uids, reason=reason)
            finally:
                store.release_connection()  # this thread's SQLite connection ends with it

        self._forget_plan()
        if self._run("PlanWorker", work, self._on_plan):
            self.status_label.setText("Reading the study's headers…")

    def _on_plan(self, rec: object) -> None:
        assert isinstance(rec, Reconciliation)
        self.plan = rec
        self.mapping.clear()
        for change in rec.changes:
            old = " | ".join(escape(v) or "(empty)" for v in change.old)
            row = QTreeWidgetItem([change.keyword, old, escape(change.new)])
            if change.changes:
                font = row.font(2)
                font.setBold(True)
                row.setFont(2, font)
            else:
                row.setText(2, f"{escape(change.new)} (unchanged)")
            self.mapping.addTopLevelItem(row)
        for other_id, issuer in rec.other_ids:
            kept = escape(other_id) + (f" ({escape(issuer)})" if issuer else "")
            self.mapping.addTopLevelItem(
                QTreeWidgetItem(["Other Patient IDs", kept, "kept in Other Patient IDs Sequence"])
            )
        if rec.new_uids:
            self.mapping.addTopLevelItem(
                QTreeWidgetItem(
                    ["Study Instance UID", rec.study_instance_uid, rec.new_study_instance_uid]
                )
            )
        words = f"{rec.instances} instance(s); the stored original is not changed"
        if rec.problems:
            words = f"{len(rec.problems)} file(s) cannot be read: {escape(rec.problems[0])}"
        self.status_label.setText(words)
        self._update_buttons()

    # ------------------------------------------------------------------ 3. the hand-over
    def hand_over(self) -> None:
        rec = self.plan
        if rec is None or not self.confirm_box.isChecked():
            return
        try:
            node = self.service.config.node(self.node_combo.currentText())
        except ConfigError as exc:
            self.status_label.setText(str(exc))
            return
        store = self.service.store()
        local = self.service.local
        receiver = self.service.receiver()
        pid = rec.target.patient_id
        label = node.name if node.name == str(node) else f"{node.name} ({node})"

        def work(cancel: threading.Event, report: Callable[..., None]) -> Outcome:
            try:
                return copy_and_hand_over(cancel, report)
            finally:
                store.release_connection()  # this thread's SQLite connection ends with it

        def copy_and_hand_over(cancel: threading.Event, report: Callable[..., None]) -> Outcome:
            root = app_home() / "staging"
            root.mkdir(parents=True, exist_ok=True)
            prefix = time.strftime("handover-%Y%m%d-%H%M%S-")
            staging = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
            written = write(
                store,
                rec,
                staging,
                cancel=cancel,
                progress=lambda d, t: report(("writing copies", d, t)),
            )
            if written.cancelled or not written.written:
                return Outcome(staging, label, pid, len(written.written), written.problems, None)
            result = hand_over(
                node,
                local,
                written.written,
                store,
                on_instance=receiver,
                cancel=cancel,
                progress=lambda phase, d, t: report((phase, d, t)),
            )
            return Outcome(staging, label, pid, len(written.written), written.problems, result)

        self.instances.clear()
        self.verdict.clear()
        self.outcome = None
        if self._run("HandoverWorker", work, self._on_handed_over):
            assert self._worker is not None
            self._worker.reported.connect(self._on_progress)
            self.status_label.setText(f"Handing over {rec.instances} instance(s) to {node}…")

    def _on_progress(self, report: object) -> None:
        assert isinstance(report, tuple) and len(report) == 3
        phase, done, total = str(report[0]), int(report[1]), int(report[2])
        self.progress.setFormat(f"{phase} %v / %m")
        self.progress.setRange(0, max(int(total), 1))
        self.progress.setValue(int(done))
        if phase == "confirming":
            self.status_label.setText("Sent; waiting for the node to confirm it holds each one…")

    def _on_handed_over(self, outcome: object) -> None:
        assert isinstance(outcome, Outcome)
        self.outcome = outcome
        result = outcome.result
        self.progress.setFormat("done")
        problems = list(outcome.problems)
        if result is None:
            self.verdict.setText(
                "NOT HANDED OVER: "
                + ("cancelled while writing the copies" if not problems else escape(problems[0]))
            )
            self._paint_verdict(False)
            self._update_buttons()
            return
        for row in result.rows:
            state, reason = result.states.get(row.sop_instance_uid, (rc.MISSING, ""))
            series = " ".join(v for v in (row.modality, row.series_description) if v)
            item = QTreeWidgetItem(
                [escape(series), escape(row.sop_instance_uid), state, escape(reason)]
            )
            item.setForeground(2, GOOD if state in HELD_STATES else BAD)
            self.instances.addTopLevelItem(item)
        total = len(result.states)
        if result.complete and not problems:
            self.verdict.setText(
                f"HANDED OVER to {escape(outcome.node)}: all {total} instance(s) confirmed by "
                f"{result.method}, under Patient ID {escape(outcome.patient_id)}"
            )
        else:
            missing = len(result.problems()) + len(problems)
            self.verdict.setText(
                f"INCOMPLETE: {missing} of {total} instance(s) not confirmed by "
                f"{escape(outcome.node)} ({result.summary()}); the study is not handed over"
            )
        self._paint_verdict(result.complete and not problems)
        notes = list(result.notes)
        if result.not_kept:
            notes.append(f"the hand-over is not kept in the store: {result.not_kept}")
        self.status_label.setText(
            f"Copies in {outcome.staging}" + ("; " + "; ".join(notes) if notes else "")
        )
        self._update_buttons()

    def _paint_verdict(self, good: bool) -> None:
        colour = GOOD if good else BAD
        self.verdict.setStyleSheet(f"font-weight: bold; color: {colour.name()};")

    def show_receipt(self) -> QDialog | None:
        """The printable receipt of the last hand-over (read-only; save as HTML or PDF)."""
        if self.outcome is None or self.outcome.result is None:
            return None
        from viewer.qt.receipt import ReceiptDialog

        html = rc.render_html(self.outcome.result.receipt())
        dialog = ReceiptDialog(html, "Hand-over receipt", self)
        dialog.show()
        return dialog

    def shutdown(self) -> None:
        """Cancel and join the worker (the application quits)."""
        self.workers.cancel_all()
        self.workers.wait_all()
        self._worker = None
