"""Network > Query/Retrieve: find studies on a PACS, look into their series, fetch them.

The query is a C-FIND at STUDY level (PS3.4 C.4.1; filters as in :class:`viewer.net.find.FindQuery`:
patient name with ``*``/``?`` wildcards, patient ID, accession, modality, description, a study
date range with shortcuts). Expanding a study runs a SERIES-level C-FIND. Retrieve queues a
transfer per selected study or series (:class:`viewer.net.transfers.TransferQueue`, which survives
a restart) and runs it by C-MOVE or C-GET as the node prefers, each transfer on its own worker
with its own progress bar; instances go through the store's atomic import and what is already
stored is skipped. A retrieved study is handed to ``open_study``. Every network operation runs on a
:class:`~viewer.qt.jobs.Job`; Cancel sends C-CANCEL (then aborts).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QDate, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDateEdit,
    QDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.net.find import FindQuery, FindResult, find
from viewer.net.nodes import ConfigError, Node
from viewer.net.retrieve import RetrieveProgress
from viewer.net.transfers import TransferJob
from viewer.qt.jobs import Job, JobSet
from viewer.qt.network.service import NetworkService
from viewer.qt.network.workers import describe_error
from viewer.text import person_name, show_date

UID_ROLE = Qt.ItemDataRole.UserRole
SERIES_ROLE = Qt.ItemDataRole.UserRole + 1
LOADED_ROLE = Qt.ItemDataRole.UserRole + 2

STUDY_COLUMNS = (
    "Patient",
    "Patient ID",
    "Date",
    "Description",
    "Modalities",
    "Accession",
    "Series",
    "Images",
)
NUMERIC_COLUMNS = {6, 7}
MODALITIES = ("", "CT", "MR", "CR", "DX", "US", "MG", "NM", "PT", "XA", "RF", "OT", "SC", "SR")
DATE_CHOICES = ("Any date", "Today", "Yesterday", "Last 7 days", "Range")


class SortItem(QTreeWidgetItem):
    """Sorts the count columns as numbers, the rest as text."""

    def __lt__(self, other: QTreeWidgetItem) -> bool:
        tree = self.treeWidget()
        column = tree.sortColumn() if tree is not None else 0
        if column in NUMERIC_COLUMNS:
            try:
                return int(self.text(column) or 0) < int(other.text(column) or 0)
            except ValueError:
                pass
        return self.text(column).lower() < other.text(column).lower()


@dataclass
class TransferRow:
    job: TransferJob
    item: QTreeWidgetItem
    bar: QProgressBar
    label: str
    worker: Job | None = None


class QueryDialog(QDialog):
    """Query a node, expand studies to series, retrieve into the store, follow transfers."""

    def __init__(
        self,
        service: NetworkService,
        open_study: Callable[[str], None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Query/Retrieve")
        self.setObjectName("network_query_dialog")
        self.resize(1100, 700)
        self.service = service
        self.open_study = open_study
        self.workers = JobSet(self)
        self._search: Job | None = None
        self._transfers: dict[str, TransferRow] = {}

        # ---- filters
        self.node_combo = QComboBox()
        self.node_combo.setObjectName("node_combo")
        self.patient_name = self._line("patient_name", "DOE* (wildcards * and ?)")
        self.patient_id = self._line("patient_id", "")
        self.accession = self._line("accession", "")
        self.description = self._line("description", "CHEST*")
        self.modality = QComboBox()
        self.modality.setObjectName("modality")
        self.modality.setEditable(True)
        self.modality.addItems(MODALITIES)
        self.date_choice = QComboBox()
        self.date_choice.setObjectName("date_choice")
        self.date_choice.addItems(DATE_CHOICES)
        self.date_from = QDateEdit(QDate.currentDate().addDays(-7))
        self.date_from.setObjectName("date_from")
        self.date_to = QDateEdit(QDate.currentDate())
        self.date_to.setObjectName("date_to")
        for edit in (self.date_from, self.date_to):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd")
        self.date_choice.currentIndexChanged.connect(self._on_date_choice_changed)
        self._on_date_choice_changed()

        self.search_button = QPushButton("Search")
        self.search_button.setObjectName("search_button")
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self._on_search_clicked)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancel_button")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self._on_cancel_clicked)

        filters = QGroupBox("Find studies")
        grid = QGridLayout(filters)
        left = QFormLayout()
        left.addRow("Node", self.node_combo)
        left.addRow("Patient name", self.patient_name)
        left.addRow("Patient ID", self.patient_id)
        middle = QFormLayout()
        middle.addRow("Accession", self.accession)
        middle.addRow("Modality", self.modality)
        middle.addRow("Description", self.description)
        dates = QHBoxLayout()
        dates.addWidget(self.date_from)
        dates.addWidget(QLabel("to"))
        dates.addWidget(self.date_to)
        right = QFormLayout()
        right.addRow("Study date", self.date_choice)
        right.addRow("", dates)
        actions = QHBoxLayout()
        actions.addWidget(self.search_button)
        actions.addWidget(self.cancel_button)
        right.addRow("", actions)
        grid.addLayout(left, 0, 0)
        grid.addLayout(middle, 0, 1)
        grid.addLayout(right, 0, 2)

        # ---- results
        self.results = QTreeWidget()
        self.results.setObjectName("results")
        self.results.setColumnCount(len(STUDY_COLUMNS))
        self.results.setHeaderLabels(list(STUDY_COLUMNS))
        self.results.setSortingEnabled(True)
        self.results.sortByColumn(2, Qt.SortOrder.DescendingOrder)
        self.results.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.results.setAlternatingRowColors(True)
        self.results.setUniformRowHeights(True)
        self.results.itemExpanded.connect(self._on_results_item_expanded)
        self.results.itemSelectionChanged.connect(self._on_results_selection_changed)
        self.results.itemDoubleClicked.connect(self._on_results_item_double_clicked)
        header = self.results.header()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        for column, width in enumerate((200, 90, 90, 220, 90, 90, 55, 55)):
            self.results.setColumnWidth(column, width)

        self.retrieve_button = QPushButton("Retrieve")
        self.retrieve_button.setObjectName("retrieve_button")
        self.retrieve_button.setEnabled(False)
        self.retrieve_button.clicked.connect(self._on_retrieve_clicked)
        self.status_label = QLabel()
        self.status_label.setObjectName("status_label")
        self.status_label.setWordWrap(True)
        result_bar = QHBoxLayout()
        result_bar.addWidget(self.status_label, 1)
        result_bar.addWidget(self.retrieve_button)

        # ---- transfers
        self.transfers = QTreeWidget()
        self.transfers.setObjectName("transfers")
        self.transfers.setHeaderLabels(["Study / series", "Node", "Progress", "State"])
        self.transfers.setRootIsDecorated(False)
        self.transfers.setColumnWidth(0, 300)
        self.transfers.setColumnWidth(1, 120)
        self.transfers.setColumnWidth(2, 220)
        self.transfers.itemSelectionChanged.connect(self._on_transfers_selection_changed)
        self.cancel_transfer_button = QPushButton("Cancel transfer")
        self.cancel_transfer_button.setObjectName("cancel_transfer_button")
        self.cancel_transfer_button.clicked.connect(self._on_cancel_transfer_clicked)
        self.retry_button = QPushButton("Retry / resume")
        self.retry_button.setObjectName("retry_button")
        self.retry_button.clicked.connect(self._on_retry_clicked)
        self.clear_button = QPushButton("Clear finished")
        self.clear_button.setObjectName("clear_button")
        self.clear_button.clicked.connect(self._on_clear_clicked)
        transfer_buttons = QHBoxLayout()
        transfer_buttons.addStretch(1)
        for b in (self.cancel_transfer_button, self.retry_button, self.clear_button):
            transfer_buttons.addWidget(b)
        transfers_box = QGroupBox("Transfers")
        transfers_layout = QVBoxLayout(transfers_box)
        transfers_layout.addWidget(self.transfers)
        transfers_layout.addLayout(transfer_buttons)

        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.results)
        top_layout.addLayout(result_bar)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(top)
        splitter.addWidget(transfers_box)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([400, 220])  # room for a few transfers under the results

        layout = QVBoxLayout(self)
        layout.addWidget(filters)
        layout.addWidget(splitter, 1)

        service.config_changed.connect(self._on_service_config_changed)
        self._on_service_config_changed()
        for job in service.transfers.jobs():  # from an earlier session: resumable
            self._add_transfer_row(job)
        self._on_transfers_selection_changed()

    def _line(self, name: str, placeholder: str) -> QLineEdit:
        edit = QLineEdit()
        edit.setObjectName(name)
        edit.setPlaceholderText(placeholder)
        edit.setClearButtonEnabled(True)
        edit.returnPressed.connect(self._on_search_clicked)
        return edit

    # ------------------------------------------------------------------ query
    def _on_service_config_changed(self) -> None:
        current = self.node_combo.currentText()
        self.node_combo.clear()
        self.node_combo.addItems(sorted(self.service.config.nodes))
        if current:
            self.node_combo.setCurrentText(current)
        if not self.service.config.nodes:
            self.status_label.setText("No node configured: add one in Network > Nodes.")

    def node(self) -> Node:
        name = self.node_combo.currentText()
        if not name:
            raise ConfigError("choose a node (add one in Network > Nodes)")
        return self.service.config.node(name)

    def _on_date_choice_changed(self) -> None:
        choice = self.date_choice.currentText()
        today = QDate.currentDate()
        span = {"Today": (today, today), "Yesterday": (today.addDays(-1), today.addDays(-1))}
        span["Last 7 days"] = (today.addDays(-6), today)
        if choice in span:
            self.date_from.setDate(span[choice][0])
            self.date_to.setDate(span[choice][1])
        ranged = choice == "Range"
        self.date_from.setEnabled(ranged)
        self.date_to.setEnabled(ranged)

    def query(self) -> FindQuery:
        """The study-level query the form describes (raises ValueError on a bad value)."""
        date_from = date_to = ""
        if self.date_choice.currentText() != "Any date":
            date_from = self.date_from.date().toString("yyyyMMdd")
            date_to = self.date_to.date().toString("yyyyMMdd")
            if date_from > date_to:
                raise ValueError("the study date range ends before it starts")
        return FindQuery(
            level="STUDY",
            patient_name=self.patient_name.text().strip(),
            patient_id=self.patient_id.text().strip(),
            accession_number=self.accession.text().strip(),
            study_date_from=date_from,
            study_date_to=date_to,
            modality=self.modality.currentText().strip().upper(),
            study_description=self.description.text().strip(),
        )

    def _on_search_clicked(self) -> None:
        if self._search is not None:
            return
        try:
            node = self.node()
            query = self.query()
        except (ConfigError, ValueError) as exc:
            self.status_label.setText(str(exc))
            return
        local = self.service.local

        def job(cancel: threading.Event, report: Callable[[object], None]) -> FindResult:
            return find(node, local, query, cancel=cancel, progress=report)

        worker = Job("FindWorker", job)
        worker.reported.connect(self._on_search_progress)
        worker.finished.connect(self._on_search_finished)
        worker.failed.connect(self._on_search_failed)
        worker.done.connect(self._on_search_done)
        self._search = worker
        self.results.clear()
        self.search_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status_label.setText(f"Searching {node}…")
        self.workers.start(worker)

    def _on_search_progress(self, count: object) -> None:
        self.status_label.setText(f"Searching… {count} found")

    def _on_search_finished(self, result: FindResult) -> None:
        self.results.setSortingEnabled(False)
        for match in result.matches:
            self.results.addTopLevelItem(self._study_item(match))
        self.results.setSortingEnabled(True)
        found = f"{len(result.matches)} stud{'y' if len(result.matches) == 1 else 'ies'}"
        self.status_label.setText(f"{found} (cancelled)" if result.cancelled else found)

    def _on_search_failed(self, error: Exception) -> None:
        message = describe_error(error)
        self.status_label.setText(f"Query failed: {message}")

    def _on_search_done(self) -> None:
        self._search = None
        self.search_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _on_cancel_clicked(self) -> None:
        if self._search is not None:
            self._search.cancel()
            self.status_label.setText("Cancelling…")

    def _study_item(self, match: dict[str, str]) -> QTreeWidgetItem:
        item = SortItem(
            [
                person_name(match.get("PatientName", "")),
                match.get("PatientID", ""),
                show_date(match.get("StudyDate", "")),
                match.get("StudyDescription", ""),
                match.get("ModalitiesInStudy", "").replace("\\", ", "),
                match.get("AccessionNumber", ""),
                match.get("NumberOfStudyRelatedSeries", ""),
                match.get("NumberOfStudyRelatedInstances", ""),
            ]
        )
        item.setData(0, UID_ROLE, match.get("StudyInstanceUID", ""))
        item.setChildIndicatorPolicy(QTreeWidgetItem.ChildIndicatorPolicy.ShowIndicator)
        for column in NUMERIC_COLUMNS:
            item.setTextAlignment(column, Qt.AlignmentFlag.AlignRight)
        return item

    # ------------------------------------------------------------------ series
    def _on_results_item_expanded(self, item: QTreeWidgetItem) -> None:
        if item.parent() is not None or item.data(0, LOADED_ROLE):
            return
        try:
            node = self.node()
        except ConfigError as exc:
            self.status_label.setText(str(exc))
            return
        study_uid = str(item.data(0, UID_ROLE))
        item.setData(0, LOADED_ROLE, True)
        loading = QTreeWidgetItem(["loading series…"])
        loading.setFlags(Qt.ItemFlag.NoItemFlags)
        item.addChild(loading)
        local = self.service.local
        query = FindQuery("SERIES", study_instance_uid=study_uid)

        def job(cancel: threading.Event, _report: Callable[[object], None]) -> object:
            return study_uid, find(node, local, query, cancel=cancel)

        worker = Job("SeriesFindWorker", job)
        worker.finished.connect(self._on_series_finished)
        worker.failed.connect(self._on_series_failed)
        worker.setProperty("study_uid", study_uid)
        self.workers.start(worker)

    def _study_row(self, study_uid: str) -> QTreeWidgetItem | None:
        for i in range(self.results.topLevelItemCount()):
            item = self.results.topLevelItem(i)
            if item is not None and item.data(0, UID_ROLE) == study_uid:
                return item
        return None

    def _on_series_finished(self, payload: tuple[str, FindResult]) -> None:
        study_uid, result = payload
        item = self._study_row(study_uid)
        if item is None:  # a new search replaced the results
            return
        item.takeChildren()
        rows = sorted(result.matches, key=lambda m: int(m.get("SeriesNumber") or 0))
        for match in rows:
            child = SortItem(
                [
                    f"Series {match.get('SeriesNumber', '')}",
                    "",
                    show_date(match.get("SeriesDate", "")),
                    match.get("SeriesDescription", ""),
                    match.get("Modality", ""),
                    "",
                    "",
                    match.get("NumberOfSeriesRelatedInstances", ""),
                ]
            )
            child.setData(0, UID_ROLE, study_uid)
            child.setData(0, SERIES_ROLE, match.get("SeriesInstanceUID", ""))
            item.addChild(child)
        if not rows:
            item.addChild(QTreeWidgetItem(["no series found"]))

    def _on_series_failed(self, error: Exception) -> None:
        message = describe_error(error)
        study_uid = str(self.sender().property("study_uid")) if self.sender() else ""
        item = self._study_row(study_uid)
        if item is not None:
            item.takeChildren()
            item.setData(0, LOADED_ROLE, False)
            item.addChild(QTreeWidgetItem([f"series query failed: {message}"]))
        self.status_label.setText(f"Series query failed: {message}")

    # ------------------------------------------------------------------ retrieve
    def _on_results_selection_changed(self) -> None:
        wanted = [i for i in self.results.selectedItems() if i.data(0, UID_ROLE)]
        self.retrieve_button.setEnabled(bool(wanted))

    def _on_results_item_double_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        if item.parent() is None and item.data(0, UID_ROLE):
            self.retrieve([item])

    def _on_retrieve_clicked(self) -> None:
        self.retrieve(self.results.selectedItems())

    def retrieve(self, items: list[QTreeWidgetItem]) -> None:
        """Queue and start a transfer per selected study (or series of an unselected study)."""
        try:
            node = self.node()
        except ConfigError as exc:
            self.status_label.setText(str(exc))
            return
        studies = {str(i.data(0, UID_ROLE)) for i in items if i.parent() is None}
        for item in items:
            study_uid = str(item.data(0, UID_ROLE) or "")
            series_uid = str(item.data(0, SERIES_ROLE) or "")
            if not study_uid or (item.parent() is not None and study_uid in studies):
                continue
            label_item = item.parent() or item
            label = f"{label_item.text(0)} {label_item.text(2)} {label_item.text(3)}".strip()
            if series_uid:
                label += f" / {item.text(0)} {item.text(3)}".rstrip()
            job = self.service.transfers.add(node, study_uid, series_uid)
            self._run_transfer(self._add_transfer_row(job, label))

    def _add_transfer_row(self, job: TransferJob, label: str = "") -> TransferRow:
        if not label:  # a job from an earlier session: only its UIDs are known
            label = f"study {job.study_instance_uid}"
            if job.series_instance_uid:
                label += f" / series {job.series_instance_uid}"
        item = QTreeWidgetItem([label, job.node.name, "", ""])
        item.setToolTip(0, job.study_instance_uid)
        item.setData(0, UID_ROLE, job.id)
        self.transfers.addTopLevelItem(item)
        bar = QProgressBar()
        bar.setObjectName(f"progress_{job.id}")
        bar.setRange(0, 1)
        bar.setValue(1 if job.state == "done" else 0)
        bar.setFormat("%v / %m")
        self.transfers.setItemWidget(item, 2, bar)
        row = TransferRow(job, item, bar, label)
        self._transfers[job.id] = row
        self._show_state(row, job.state)
        return row

    def _show_state(self, row: TransferRow, state: str, detail: str = "") -> None:
        job = row.job
        words = {
            "queued": "queued (interrupted: Retry / resume)" if row.worker is None else "queued",
            "running": "running",
            "done": f"done: {job.completed} received, {job.skipped} already here",
            "failed": f"failed: {detail or job.message}",
            "cancelled": f"cancelled ({job.completed} received and kept)",
        }
        text = words.get(state, state)
        row.item.setText(3, text)
        row.item.setToolTip(3, text)

    def _run_transfer(self, row: TransferRow) -> None:
        service = self.service
        local = service.local
        job = row.job

        def work(cancel: threading.Event, report: Callable[[object], None]) -> TransferJob:
            def progress(_job: TransferJob, p: RetrieveProgress) -> None:
                report(p)

            done = service.transfers.run_job(
                job,
                local,
                on_instance=service.receive_instance,
                is_present=service.is_present,
                cancel=cancel,
                progress=progress,
            )
            return done

        worker = Job("RetrieveWorker", work)
        worker.setProperty("job_id", job.id)
        worker.reported.connect(self._on_transfer_progress)
        worker.finished.connect(self._on_transfer_finished)
        worker.failed.connect(self._on_transfer_failed)
        row.worker = worker
        self._show_state(row, "running")
        row.bar.setRange(0, 0)  # busy until the first counts arrive
        self.workers.start(worker)
        self._on_transfers_selection_changed()

    def _row_of_sender(self) -> TransferRow | None:
        sender = self.sender()
        job_id = str(sender.property("job_id")) if sender is not None else ""
        return self._transfers.get(job_id)

    def _on_transfer_progress(self, p: RetrieveProgress) -> None:
        row = self._row_of_sender()
        if row is None:
            return
        done = p.completed + p.failed + p.warning
        total = p.total or (done + p.remaining)
        row.bar.setRange(0, max(total, 1))
        row.bar.setValue(min(done, max(total, 1)))
        row.item.setText(
            3, f"running: {p.completed} received" + (f", {p.failed} failed" if p.failed else "")
        )

    def _on_transfer_finished(self, job: TransferJob) -> None:
        row = self._transfers.get(job.id)
        if row is None:
            return
        row.worker = None
        total = job.completed + job.failed + job.warning + job.skipped
        row.bar.setRange(0, max(total, 1))
        row.bar.setValue(job.completed + job.warning + job.skipped if total else 1)
        detail = job.message
        self._show_state(row, job.state, detail)
        self._on_transfers_selection_changed()
        if job.state == "done":
            self.open_study(job.study_instance_uid)

    def _on_transfer_failed(self, error: Exception) -> None:
        message = describe_error(error)
        row = self._row_of_sender()
        if row is None:
            return
        row.worker = None
        row.bar.setRange(0, 1)
        row.bar.setValue(0)
        self._show_state(row, "failed", message)
        self._on_transfers_selection_changed()

    def _selected_rows(self) -> list[TransferRow]:
        ids = {str(i.data(0, UID_ROLE)) for i in self.transfers.selectedItems()}
        return [r for r in self._transfers.values() if r.job.id in ids]

    def _on_transfers_selection_changed(self) -> None:
        rows = self._selected_rows()
        self.cancel_transfer_button.setEnabled(
            any(r.worker is not None for r in rows)
            or (not rows and any(r.worker is not None for r in self._transfers.values()))
        )
        self.retry_button.setEnabled(any(r.worker is None and r.job.state != "done" for r in rows))

    def _on_cancel_transfer_clicked(self) -> None:
        """Cancel the selected transfers, or every running one when none is selected."""
        rows = self._selected_rows() or list(self._transfers.values())
        for row in rows:
            if row.worker is not None:
                row.worker.cancel()
                row.item.setText(3, "cancelling…")

    def _on_retry_clicked(self) -> None:
        for row in self._selected_rows():
            if row.worker is None and row.job.state != "done":
                self.service.transfers.retry(row.job)
                self._run_transfer(row)
        self._on_transfers_selection_changed()

    def _on_clear_clicked(self) -> None:
        for job_id, row in list(self._transfers.items()):
            if row.worker is None and row.job.state in ("done", "failed", "cancelled"):
                index = self.transfers.indexOfTopLevelItem(row.item)
                self.transfers.takeTopLevelItem(index)
                del self._transfers[job_id]
        self.service.transfers.remove_finished()

    def running_transfers(self) -> int:
        return sum(1 for r in self._transfers.values() if r.worker is not None)

    def shutdown(self) -> None:
        """Cancel and join every worker (the application quits). Closing the dialog does not:
        transfers go on while it is hidden."""
        self.workers.wait_all()
        for row in self._transfers.values():
            row.worker = None
