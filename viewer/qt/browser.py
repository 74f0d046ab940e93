"""The study browser: what is on an opened disc or folder, and what is in the local store.

One widget shows either source through the same study list (patient name, ID, birth date, study
date, description, modalities, accession, series and image counts; sortable by any column) and
the same filters (name and ID with C-FIND wildcards ``*`` and ``?``, PS3.4 C.2.2.2.4; a study
date range; a modality). Media are listed straight from the scan (before anything is imported);
the store through :func:`viewer.store.list_studies`. Below the list, a strip of the chosen
study's series with thumbnails made in the background (:mod:`viewer.qt.thumbnails`); a double
click opens a series in the image view.

Everything slow runs in :class:`viewer.qt.jobs.Job` threads and reaches the widgets through queued
signals: scanning media, importing (with progress and cancel, through
:func:`viewer.store.import_paths`), the media health report
(:func:`viewer.media.health.check_media`) and the thumbnails. Study-list queries run here: an
indexed SQLite read in WAL mode, which never waits for an import writing at the same time.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QModelIndex,
    QPoint,
    QRegularExpression,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import (
    QRegularExpressionValidator,
    QStandardItem,
    QStandardItemModel,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidgetItem,
    QMenu,
    QProgressDialog,
    QPushButton,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from viewer import model
from viewer.imaging.stack import ObjectKind, Stack, object_kind, route
from viewer.media import receipt as rc
from viewer.media.health import HealthReport, check_media
from viewer.media.scan import ScanResult, scan
from viewer.qt.documents import ObjectViewer
from viewer.qt.health_dialog import HealthDialog
from viewer.qt.jobs import Job, JobSet
from viewer.qt.removable import (
    UNTESTED_NOTE,
    StorageLike,
    Volume,
    removable_volumes,
    system_volumes,
)
from viewer.qt.selection import Selection
from viewer.qt.sources import MediaStudies, StoreStudies, StudySource, name_pattern
from viewer.qt.strip import SeriesStrip, StripEntry
from viewer.qt.thumbnails import ThumbnailWorker
from viewer.store import (
    ImportReport,
    Store,
    StoreError,
    StudyFilter,
    StudyRow,
    has_instance,
    import_paths,
)
from viewer.text import person_name, plural, show_date

log = logging.getLogger(__name__)

COLUMNS = (
    "Patient name",
    "Patient ID",
    "Birth date",
    "Study date",
    "Description",
    "Modalities",
    "Accession",
    "Series",
    "Images",
)
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
KEY_ROLE = Qt.ItemDataRole.UserRole + 2
MODALITIES = ("", "CT", "MR", "CR", "DX", "US", "NM", "PT", "XA", "RF", "MG", "OT", "SR", "SEG")

Progress = Callable[[int, int], None]


# ------------------------------------------------------------------------------ pure helpers
def merge_scans(results: list[ScanResult]) -> ScanResult:
    """One tree for several scans (files opened together): a patient, study and series met in
    more than one scan is one row, not one row per file."""
    merged = ScanResult()
    found: dict[tuple[str | None, ...], Any] = {}

    def one(key: tuple[str | None, ...], item: Any, children: str, into: list[Any]) -> Any:
        """The merged copy of ``item`` (kept under ``key``), added to ``into`` when new."""
        if key not in found:
            found[key] = replace(item, **{children: []})
            into.append(found[key])
        return found[key]

    for result in results:
        merged.instances.extend(result.instances)
        merged.problems.extend(result.problems)
        merged.discs.extend(result.discs)  # unpacked ISO images stay while the merge holds them
        for patient in result.patients:
            pkey = (patient.patient_id, patient.patient_name)
            into = one(pkey, patient, "studies", merged.patients)
            for study in patient.studies:
                skey = (*pkey, study.study_instance_uid)
                study_into = one(skey, study, "series", into.studies)
                for series in study.series:
                    key = (*skey, series.series_instance_uid)
                    one(key, series, "instances", study_into.series).instances.extend(
                        series.instances
                    )
    return merged


def representative(series: model.Series) -> model.Instance | None:
    """The instance a thumbnail shows: the middle image by Instance Number (a mid-volume slice
    says more than the first, often a scout or an edge slice)."""
    images = [i for i in series.instances if i.rows > 0 and i.columns > 0]
    if not images:
        return series.instances[0] if series.instances else None
    ordered = sorted(
        images,
        key=lambda i: (i.instance_number is None, i.instance_number or 0, str(i.path)),
    )
    return ordered[len(ordered) // 2]


def scan_paths(
    paths: list[Path],
    cancel: threading.Event,
    progress: Progress,
    *,
    headers: bool = True,
    problems_found: Callable[[list[model.Problem]], None] | None = None,
) -> ScanResult:
    """Scan each path (file, folder, DICOMDIR); a path that fails is a problem, not a crash.

    ``headers=False`` lists a medium with a usable DICOMDIR from the DICOMDIR alone (then
    ``listed_from`` is set; see :func:`viewer.media.scan.scan`)."""
    results: list[ScanResult] = []
    for path in paths:
        if cancel.is_set():
            break
        try:
            results.append(
                scan(
                    path,
                    cancel=cancel,
                    progress=progress,
                    headers=headers,
                    problems_found=problems_found,
                )
            )
        except Exception as exc:
            log.debug("scan failed", exc_info=True)
            results.append(
                ScanResult(problems=[model.Problem(str(path), f"cannot be read: {exc}")])
            )
    merged = merge_scans(results)
    if len(results) == 1:
        merged.listed_from = results[0].listed_from
    if not merged.instances and not merged.problems:
        merged.problems.extend(model.Problem(str(p), "holds no DICOM images") for p in paths)
    return merged


def series_entry(series: model.Series) -> StripEntry:
    """How the browser's strip shows a series: number, modality, description, image count."""
    number = f"Se {series.series_number} " if series.series_number is not None else ""
    count = plural(len(series.instances), "image")
    text = f"{number}{series.modality}\n{series.series_description}\n{count}"
    return StripEntry(
        text.replace("\n\n", "\n"),
        series.series_description or series.series_instance_uid,
        representative(series),
    )


# ------------------------------------------------------------------------------ the widget
class BrowserWidget(QWidget):
    """The study list, its filters, the series strip and the media actions.

    Signals: ``media_opened(ScanResult, list[Stack])`` when an opened medium has been scanned
    (every stack of it, for the view); ``series_opened(list[Stack], int)`` on a double click
    (the study's stacks and the one to show); ``problems_found(list[Problem])``;
    ``studies_listed(int)`` after every refresh of the list; ``import_finished(ImportReport)``;
    ``health_checked(HealthReport)`` when a medium's health check ends.

    A medium listed from its DICOMDIR is checked in the background once its files are read
    (UID agreement between records and files, preambles, unreferenced files: what reading the
    headers does not show); its problems join the others, and Health… opens the report at
    once.
    """

    media_opened = Signal(object, list)
    series_opened = Signal(list, int)
    #: A series without images was chosen: the path of the document opened in its viewer.
    document_opened = Signal(str)
    presentation_picked = Signal(str)  # a GSPS or a key object selection to apply
    #: The report, PDF or waveform last opened (:meth:`open_series`).
    _document_viewer: ObjectViewer | None = None
    problems_found = Signal(list)
    studies_listed = Signal(int)
    import_finished = Signal(object)
    health_checked = Signal(object)
    thumbnails_done = Signal()
    volumes_listed = Signal(int)
    media_listed = Signal(int)
    compare_requested = Signal(list, tuple)  # the study's stacks, (patient ID, name)

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        store: Store | None = None,
        volume_source: Callable[[], list[StorageLike]] | None = None,
        thumbnails: ThumbnailWorker | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("browser")
        self._store = store
        self._store_error = ""
        if self._store is None:
            try:
                self._store = Store.open()
            except StoreError as exc:
                self._store_error = str(exc)
        self._volume_source = volume_source
        self.jobs = JobSet(self)
        self._scan_job: Job | None = None
        self._import_job: Job | None = None
        self._health_job: Job | None = None
        self._health_report: HealthReport | None = None
        self._show_health_when_done = False
        self._read_summary = ""
        self._volumes_job: Job | None = None
        self._media_paths: list[Path] = []
        self._media: ScanResult | None = None
        self._media_source: MediaStudies | None = None
        self._show_first = False
        self._listed = False
        self._open_when_read: tuple[str | None, str] | None = None
        self._series: list[model.Series] = []
        self.thumbnails = thumbnails or ThumbnailWorker()
        self.health_dialog: HealthDialog | None = None
        self.progress_dialog: QProgressDialog | None = None
        self.last_import: ImportReport | None = None
        #: What the last import of the medium shown read, for its receipt (None: no import, or
        #: another medium opened since: its files may be gone).
        self._imported: tuple[list[Path], ImportReport] | None = None
        self._receipt_job: Job | None = None
        self.receipt_dialog: QDialog | None = None
        self.volumes: list[Volume] = []
        self._build()
        self.refresh_volumes()
        self.refresh()

    # ----------------------------------------------------------------- layout
    def _build(self) -> None:
        self.source_combo = QComboBox()
        self.source_combo.setObjectName("source_combo")
        self.source_combo.addItem("Local store")
        self.source_combo.setToolTip("Show the local store or the medium opened last")
        self.source_combo.currentIndexChanged.connect(self._on_source_combo_changed)

        self.volumes_combo = QComboBox()
        self.volumes_combo.setObjectName("volumes_combo")
        self.volumes_combo.setMinimumContentsLength(18)
        self.volumes_combo.setToolTip(UNTESTED_NOTE)
        self.volumes_combo.activated.connect(self._on_volumes_combo_activated)
        self.refresh_volumes_button = QToolButton()
        self.refresh_volumes_button.setObjectName("refresh_volumes")
        self.refresh_volumes_button.setText("↻")
        self.refresh_volumes_button.setToolTip("Look again for mounted discs and USB media")
        self.refresh_volumes_button.clicked.connect(self.refresh_volumes)

        self.import_button = QPushButton("Import")
        self.import_button.setObjectName("import_button")
        self.import_button.setToolTip("Copy the opened medium into the local store")
        self.import_button.clicked.connect(self.start_import)
        self.health_button = QPushButton("Health…")
        self.health_button.setObjectName("health_button")
        self.health_button.setToolTip(
            "Check the opened medium: missing, unreferenced and unreadable files, executable "
            "preambles, records that disagree with their files"
        )
        self.health_button.clicked.connect(self.start_health_check)
        self.receipt_button = QPushButton("Receipt…")
        self.receipt_button.setObjectName("receipt_button")
        self.receipt_button.setToolTip(
            "The printable receipt of the last import: what the medium listed, what was stored, "
            "the SHA-256 of every file, INCOMPLETE when anything is missing"
        )
        self.receipt_button.clicked.connect(self.start_receipt)

        top = QHBoxLayout()
        top.addWidget(QLabel("Show:"))
        top.addWidget(self.source_combo, 1)
        top.addWidget(QLabel("Removable media:"))
        top.addWidget(self.volumes_combo)
        top.addWidget(self.refresh_volumes_button)
        top.addStretch(0)
        top.addWidget(self.import_button)
        top.addWidget(self.health_button)
        top.addWidget(self.receipt_button)

        date_check = QRegularExpressionValidator(QRegularExpression(r"\d{0,8}"), self)

        def field(name: str, placeholder: str, tip: str, width: int) -> QLineEdit:
            edit = QLineEdit()
            edit.setObjectName(name)
            edit.setPlaceholderText(placeholder)
            edit.setToolTip(tip)
            edit.setClearButtonEnabled(True)
            edit.setMaximumWidth(width)
            edit.textChanged.connect(self._on_filter_changed)
            return edit

        wild = "* matches any run of characters, ? one; without them, names starting so"
        self.name_filter = field("name_filter", "Patient name", wild, 220)
        self.id_filter = field("id_filter", "Patient ID", wild, 160)
        self.date_from = field("date_from", "From YYYYMMDD", "First study date", 120)
        self.date_to = field("date_to", "To YYYYMMDD", "Last study date", 120)
        for edit in (self.date_from, self.date_to):
            edit.setValidator(date_check)
        self.modality_filter = QComboBox()
        self.modality_filter.setObjectName("modality_filter")
        self.modality_filter.setEditable(True)
        self.modality_filter.addItems(list(MODALITIES))
        self.modality_filter.setToolTip("Studies with a series of this modality")
        self.modality_filter.currentTextChanged.connect(self._on_filter_changed)

        filters = QHBoxLayout()
        for widget in (self.name_filter, self.id_filter, self.date_from, self.date_to):
            filters.addWidget(widget)
        filters.addWidget(QLabel("Modality:"))
        filters.addWidget(self.modality_filter)
        filters.addStretch(1)

        self.model = QStandardItemModel(0, len(COLUMNS), self)
        self.model.setHorizontalHeaderLabels(list(COLUMNS))
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.table = QTableView()
        self.table.setObjectName("study_table")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(3, Qt.SortOrder.DescendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)
        for column, width in ((0, 190), (1, 110), (2, 90), (3, 90), (5, 90), (6, 100)):
            self.table.setColumnWidth(column, width)
        self.table.selectionModel().currentRowChanged.connect(self._on_table_current_row_changed)
        self.table.doubleClicked.connect(self._on_table_double_clicked)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._on_table_context_menu_requested)

        self.series_strip = SeriesStrip(self.thumbnails, vertical=False)
        self.series_strip.setObjectName("series_strip")
        self.series_strip.thumbnails_done.connect(self.thumbnails_done)
        self.series_strip.thumbnail_failed.connect(self._on_series_strip_thumbnail_failed)
        self.series_strip.setToolTip("Double-click a series (or press Enter) to open it")
        # Activation is the platform's gesture: a double click, or Enter on the current item.
        self.series_strip.itemActivated.connect(self._on_series_strip_item_activated)

        self.status_label = QLabel()
        self.status_label.setObjectName("browser_status")
        self.status_label.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addLayout(filters)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.series_strip)
        layout.addWidget(self.status_label)

    # ----------------------------------------------------------------- state
    @property
    def store(self) -> Store | None:
        return self._store

    @property
    def showing_media(self) -> bool:
        return self.source_combo.currentIndex() == 1

    @property
    def source(self) -> StudySource | None:
        """What the list shows: the store (first choice) or the opened medium (second)."""
        if self.showing_media:
            return self._media_source
        return StoreStudies(self._store) if self._store is not None else None

    @property
    def media_paths(self) -> list[Path]:
        return list(self._media_paths)

    @property
    def media(self) -> ScanResult | None:
        return self._media

    def current_filter(self) -> StudyFilter:
        """The filter the fields describe; a date not yet complete (8 digits) is not applied."""

        def date(edit: QLineEdit) -> str:
            text = edit.text().strip()
            return text if len(text) == 8 else ""

        return StudyFilter(
            patient_name=name_pattern(self.name_filter.text()),
            patient_id=name_pattern(self.id_filter.text()),
            date_from=date(self.date_from),
            date_to=date(self.date_to),
            modality=self.modality_filter.currentText().strip(),
        )

    def _update_buttons(self) -> None:
        busy = self._import_job is not None
        has_media = bool(self._media_paths) and self._media is not None
        self.import_button.setEnabled(has_media and not busy and self._store is not None)
        folder_like = any(
            p.is_dir() or p.name.upper().startswith("DICOMDIR") or p.suffix.lower() == ".iso"
            for p in self._media_paths
        )
        self.health_button.setEnabled(has_media and folder_like)
        self.receipt_button.setEnabled(
            self._imported is not None and self._receipt_job is None and not busy
        )

    def set_status(self, text: str) -> None:
        self.status_label.setText(text)

    # ----------------------------------------------------------------- listing
    def refresh(self) -> None:
        """List the studies of the shown source that pass the filter (keeps the sort)."""
        where = self.current_filter()
        rows: list[tuple[StudyRow, object]] = []
        source = self.source
        if source is not None:
            try:
                rows = source.studies(where)
            except (ValueError, StoreError) as exc:
                self.set_status(str(exc))
        elif self._store_error and not self.showing_media:
            self.set_status(self._store_error)
        self._fill(rows)
        self._update_buttons()
        self.studies_listed.emit(len(rows))

    def _fill(self, rows: list[tuple[StudyRow, object]]) -> None:
        self.model.removeRows(0, self.model.rowCount())
        for row, key in rows:
            values: list[tuple[str, Any]] = [
                (person_name(row.patient_name), row.patient_name.casefold()),
                (row.patient_id or "", (row.patient_id or "").casefold()),
                (show_date(row.birth_date), row.birth_date),
                (show_date(row.study_date), row.study_date + row.study_time),
                (row.study_description, row.study_description.casefold()),
                (", ".join(row.modalities), ",".join(row.modalities)),
                (row.accession_number, row.accession_number),
                (str(row.num_series), row.num_series),
                (str(row.num_instances), row.num_instances),
            ]
            items = []
            for text, sort_key in values:
                item = QStandardItem(text)
                item.setData(sort_key, SORT_ROLE)
                item.setData(key, KEY_ROLE)
                items.append(item)
            items[0].setToolTip(row.patient_name)
            self.model.appendRow(items)
        self.series_strip.clear()
        self._series = []
        if self.proxy.rowCount():
            self.table.selectRow(0)

    def studies(self) -> list[list[str]]:
        """The list as shown (sorted, filtered): one list of cell texts per study."""
        return [
            [self.proxy.index(r, c).data() for c in range(len(COLUMNS))]
            for r in range(self.proxy.rowCount())
        ]

    def _on_filter_changed(self, _text: str = "") -> None:
        self.refresh()

    def _on_source_combo_changed(self, _index: int) -> None:
        self.refresh()

    def show_store(self) -> None:
        if self.source_combo.currentIndex() != 0:
            self.source_combo.setCurrentIndex(0)  # refreshes
        else:
            self.refresh()

    def select_study(self, study_instance_uid: str, *, open_first: bool = True) -> bool:
        """Show the local store with this study selected (a retrieved study, for example) and,
        with ``open_first``, its first series in the view. False when the store lacks it."""
        self.show_store()
        for row in range(self.proxy.rowCount()):
            if self.proxy.index(row, 0).data(KEY_ROLE) == study_instance_uid:
                self.table.selectRow(row)
                if open_first and self._series:
                    self.open_series(0)
                return True
        return False

    def selected_paths(self) -> list[Path]:
        """The files of the selected study (store or opened media), for send and export."""
        return self.selection().paths

    def selection(self) -> Selection:
        """The selected study: whose it is (as its row shows it) and each instance by series
        and number, for the send dialog."""
        index = self.table.selectionModel().currentIndex()
        if not index.isValid():
            return Selection()
        model_ = index.model()

        def cell(column: int) -> str:
            return str(model_.index(index.row(), column).data() or "").strip()

        name, patient_id, date, description = cell(0), cell(1), cell(3), cell(4)
        title = (name or "(no name)") + (f" (ID {patient_id})" if patient_id else "")
        title += " · " + " ".join(p for p in (date, description) if p)
        items = []
        for series in self._series_of(index.data(KEY_ROLE)):
            number = f"Se {series.series_number}" if series.series_number is not None else "Se ?"
            ordered = sorted(
                series.instances,
                key=lambda i: (i.instance_number is None, i.instance_number or 0, str(i.path)),
            )
            for inst in ordered:
                image = f"Im {inst.instance_number}" if inst.instance_number is not None else ""
                label = " · ".join(p for p in (f"{number} {series.modality}".strip(), image) if p)
                items.append((inst.path, label))
        return Selection(
            title.rstrip(" ·"),
            tuple(items),
            str(index.data(KEY_ROLE) or ""),
            self.source_combo.currentIndex() == 0,
        )

    # ----------------------------------------------------------------- series strip
    def _on_table_current_row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not current.isValid():
            return
        key = current.data(KEY_ROLE)
        self._set_series(self._series_of(key))

    def _series_of(self, key: object) -> list[model.Series]:
        source = self.source
        return source.series_of(key) if source is not None else []

    def _set_series(self, series_list: list[model.Series]) -> None:
        self.thumbnails.clear_pending()
        self._series = list(series_list)
        self.series_strip.set_entries([series_entry(series) for series in series_list])

    def series_icons_ready(self) -> int:
        """How many series in the strip show their thumbnail (not the placeholder)."""
        return self.series_strip.icons_ready()

    def _on_series_strip_thumbnail_failed(self, path: str, message: str) -> None:
        self.problems_found.emit([model.Problem(path, message)])

    def _on_series_strip_item_activated(self, item: QListWidgetItem) -> None:
        self.open_series(int(item.data(Qt.ItemDataRole.UserRole)))

    def open_series(self, index: int) -> None:
        """Open the study's series in the view, showing series ``index`` of the strip."""
        if not 0 <= index < len(self._series):
            return
        chosen = self._series[index]
        if self._listed:
            # listed from the DICOMDIR: the stacks need the files' headers (position, size);
            # the series opens as soon as they are read
            self._open_when_read = (self._selected_study_uid(), chosen.series_instance_uid)
            self.set_status("The series opens when the files have been read…")
            return
        stacks = self._study_stacks()
        chosen_paths = {i.path for i in chosen.instances}
        row = next(
            (
                k
                for k, stack in enumerate(stacks)
                if stack.series_instance_uid == chosen.series_instance_uid
                and stack.frames
                and stack.frames[0].path in chosen_paths
            ),
            None,
        )
        if row is None:
            # a report, a PDF, a waveform...: its first object in a window of its own, and the
            # view keeps what it shows
            kinds = sorted({str(object_kind(i)) for i in chosen.instances})
            number = f"Se {chosen.series_number} " if chosen.series_number is not None else ""
            documents = sorted(
                (i for i in chosen.instances if object_kind(i) is not ObjectKind.IMAGE),
                key=lambda i: (i.instance_number is None, i.instance_number or 0, str(i.path)),
            )
            if not documents:
                self.set_status(f"{number}{chosen.modality} holds nothing Lightbox can show")
                return
            first = documents[0]
            if object_kind(first) in (ObjectKind.PRESENTATION_STATE, ObjectKind.KEY_OBJECTS):
                # applied to the study's images in the view (the window reads it on a worker)
                self.set_status(f"{number}{chosen.modality}: applied to the images it refers to")
                self.presentation_picked.emit(str(first.path))
                return
            self.set_status(
                f"{number}{chosen.modality} holds no images ({', '.join(kinds)}): "
                "opened in a window of its own"
            )
            self._open_document(documents[0].path)
            return
        self.series_opened.emit(stacks, row)

    def _open_document(self, path: Path) -> None:
        """A report, PDF or waveform in its viewer (read there on a worker); the previous
        one closes."""
        previous = self._document_viewer
        if previous is not None:
            previous.close()
            previous.deleteLater()
        viewer = ObjectViewer(path, self)
        self._document_viewer = viewer
        viewer.show()
        self.document_opened.emit(str(path))

    def series_stack(self, index: int) -> Stack | None:
        """The stack of series ``index`` of the strip (None: no images, or not read yet)."""
        if not 0 <= index < len(self._series) or self._listed:
            return None
        chosen = self._series[index]
        paths = {i.path for i in chosen.instances}
        return next(
            (
                stack
                for stack in self._study_stacks()
                if stack.series_instance_uid == chosen.series_instance_uid
                and stack.frames
                and stack.frames[0].path in paths
            ),
            None,
        )

    def _study_stacks(self) -> list[Stack]:
        """Every stack of the selected study (only that study: the view shows one patient)."""
        series_list = list(self._series)
        instances = [i for s in series_list for i in s.instances]
        return route(instances, series=series_list).stacks

    def _on_table_context_menu_requested(self, point: QPoint) -> None:
        index = self.table.indexAt(point)
        if not index.isValid():
            return
        self.table.selectRow(index.row())
        menu = QMenu(self)
        menu.addAction("Open", lambda: self._on_table_double_clicked(index))
        menu.addAction("Compare beside the images shown", self.compare_selected)
        menu.popup(self.table.viewport().mapToGlobal(point))

    def compare_selected(self) -> None:
        """Offer the selected study for comparison (``compare_requested``): the window shows it
        beside the study on screen if it is the same patient's."""
        index = self.table.selectionModel().currentIndex()
        if not index.isValid():
            self.set_status("Select a study to compare first")
            return
        stacks = self._study_stacks()
        if not stacks:
            self.set_status("This study holds no images to compare")
            return
        self.compare_requested.emit(stacks, self.selected_patient())

    def selected_patient(self) -> tuple[str, str]:
        """(Patient ID, name) of the selected study as its row shows them; ("", "") if none."""
        index = self.table.selectionModel().currentIndex()
        if not index.isValid():
            return ("", "")
        row = index.row()
        return (
            str(self.proxy.index(row, 1).data() or ""),
            str(self.proxy.index(row, 0).data() or ""),
        )

    def _on_table_double_clicked(self, index: QModelIndex) -> None:
        """A double click on a study opens it: its first series in the view."""
        if not index.isValid():
            return
        self.table.selectRow(index.row())
        stacks = self._study_stacks()
        if stacks:
            self.series_opened.emit(stacks, 0)
        else:
            self.set_status("This study holds no images to show")

    # ----------------------------------------------------------------- opening media
    def open_media(self, paths: list[Path] | list[str], *, show_first: bool = True) -> None:
        """Scan ``paths`` (files, folders, DICOMDIRs) on a worker and list what they hold.

        Nothing is imported. With ``show_first`` the scan's stacks go to the view as well
        (``media_opened``), the first one shown.
        """
        self._stop_job(self._scan_job)
        self._stop_job(self._health_job)
        self._health_job = None
        self._health_report = None
        self._show_health_when_done = False
        self._read_summary = ""
        targets = [Path(p) for p in paths]
        self._show_first = show_first
        self._listed = False
        self._open_when_read = None
        self._media_paths = targets
        self._imported = None
        # One medium is listed from its DICOMDIR first, without opening a file (on a CD each
        # open is a seek), then read in full; several paths are files and folders: read at once.
        self._start_scan(targets, headers=len(targets) != 1)
        self.set_status(f"Reading {self._media_label(targets)}…")
        self._update_buttons()

    def _start_scan(self, targets: list[Path], *, headers: bool) -> None:
        def work(cancel: threading.Event, progress: Callable[..., None]) -> ScanResult:
            # problems stream to the window as the files are read (``reported``)
            return scan_paths(targets, cancel, progress, headers=headers, problems_found=progress)

        job = Job("MediaScan", work)
        job.reported.connect(self._on_scan_reported)
        job.progress_changed.connect(self._on_scan_progress_changed)
        job.finished.connect(self._on_scan_finished)
        job.failed.connect(self._on_scan_finished)
        self._scan_job = job
        self._start(job)

    @property
    def reading_files(self) -> bool:
        """True while a medium listed from its DICOMDIR has its files read and checked."""
        return self._listed and self._scan_job is not None

    @staticmethod
    def _media_label(paths: list[Path]) -> str:
        if len(paths) == 1:
            return str(paths[0])
        return f"{paths[0]} and {len(paths) - 1} more"

    def _on_scan_progress_changed(self, done: int, total: int) -> None:
        if self.sender() is self._scan_job:
            self.set_status(f"Reading {self._media_label(self._media_paths)}… {done}/{total} files")

    def _on_scan_reported(self, problems: object) -> None:
        if self.sender() is self._scan_job and isinstance(problems, list):
            self.problems_found.emit(problems)

    def _on_scan_finished(self, result: object) -> None:
        job = self.sender()
        if job is not self._scan_job or self._scan_job is None:
            return
        self._forget(self._scan_job)
        self._scan_job = None
        if isinstance(result, Exception):
            names = self._media_label(self._media_paths)
            result = ScanResult(problems=[model.Problem(names, f"cannot be opened: {result}")])
        assert isinstance(result, ScanResult)
        # the study the reader chose while the files were read stays chosen
        chosen = self._selected_study_uid() if self._listed else None
        if self._media is not None and self._media is not result:
            self._media.close()  # an ISO image's folder goes (unless a series shown holds it)
        self._media = result
        self._media_source = MediaStudies(result, self._media_label(self._media_paths))
        label = f"Medium: {self._media_label(self._media_paths)}"
        if self.source_combo.count() < 2:
            self.source_combo.addItem(label)
        else:
            self.source_combo.setItemText(1, label)
        self.source_combo.setItemData(1, str(self._media_paths[0]), Qt.ItemDataRole.ToolTipRole)
        if self.source_combo.currentIndex() != 1:
            self.source_combo.setCurrentIndex(1)  # refreshes
        else:
            self.refresh()
        if chosen is not None:
            self._select_study(chosen)
        routed = route(result.instances, series=result.series())
        if result.listed_from is not None:
            # Listed from the DICOMDIR: shown now; the files are read and checked next (their
            # headers give the stacks and thumbnails, their problems come with them).
            self._listed = True
            self.set_status(
                f"{plural(len(self._media_source.rows), 'study', 'studies')}, "
                f"{plural(len(result.instances), 'object')} listed from "
                f"{self._media_label([result.listed_from])}; reading the files…"
            )
            self.media_listed.emit(len(self._media_source.rows))
            self._start_scan(list(self._media_paths), headers=True)
            return
        was_listed, self._listed = self._listed, False
        wanted, self._open_when_read = self._open_when_read, None
        parts = [
            plural(len(self._media_source.rows), "study", "studies"),
            plural(len(result.instances) - len(routed.documents), "image"),
        ]
        if routed.documents:
            kinds = sorted({str(d.kind) for d in routed.documents})
            parts.append(plural(len(routed.documents), "other object") + f" ({', '.join(kinds)})")
        parts.append(plural(len(result.problems), "problem"))
        self._read_summary = (
            f"{', '.join(parts)} on {self._media_label(self._media_paths)} (not imported)"
        )
        self.set_status(self._read_summary)
        if result.problems:
            self.problems_found.emit(list(result.problems))
        if was_listed:
            self._start_health_check(show=False)  # what the headers do not tell
        if wanted is not None:  # the reader opened a series from the listing: that one
            study_uid, series_uid = wanted
            if study_uid is not None:
                self._select_study(study_uid)
            index = next(
                (k for k, s in enumerate(self._series) if s.series_instance_uid == series_uid), 0
            )
            self.open_series(index)
            return
        stacks: list[Stack] = []
        if self._show_first and self.proxy.rowCount():
            # The view shows the study the browser selects, the first row: browser, series
            # list and view name the same patient (a disc's every patient used to be mixed).
            if chosen is None or self._selected_study_uid() != chosen:
                self.table.selectRow(0)
            stacks = self._study_stacks()
        self.media_opened.emit(result, stacks)

    def _selected_study_uid(self) -> str | None:
        """The Study Instance UID of the selected study of an opened medium."""
        index = self.table.selectionModel().currentIndex()
        source = self._media_source
        if not index.isValid() or source is None or not self.showing_media:
            return None
        key = index.siblingAtColumn(0).data(KEY_ROLE)
        if isinstance(key, int) and 0 <= key < len(source.rows):
            return source.rows[key][1].study_instance_uid
        return None

    def _select_study(self, study_uid: str) -> None:
        source = self._media_source
        if source is None:
            return
        for row in range(self.proxy.rowCount()):
            key = self.proxy.index(row, 0).data(KEY_ROLE)
            if isinstance(key, int) and source.rows[key][1].study_instance_uid == study_uid:
                self.table.selectRow(row)
                return

    # ----------------------------------------------------------------- removable media
    def refresh_volumes(self) -> None:
        """List the mounted removable media again (see :mod:`viewer.qt.removable`), on a
        worker: asking a hung network mount for its state can block for minutes, and the
        window must not. ``volumes_listed`` says when the list is there."""
        if self._volumes_job is not None:
            return  # a listing is under way (perhaps stuck on a mount): it will answer
        source = self._volume_source or system_volumes

        def work(_cancel: threading.Event, _progress: Progress) -> list[Volume]:
            return removable_volumes(source)

        job = Job("volumes", work)
        job.finished.connect(self._on_volumes_job_finished)
        job.failed.connect(self._on_volumes_job_finished)
        self._volumes_job = job
        if not self.volumes:
            self.volumes_combo.clear()
            self.volumes_combo.addItem("(looking for media…)")
            self.volumes_combo.setEnabled(False)
        self._start(job)

    def _on_volumes_job_finished(self, result: object) -> None:
        job, self._volumes_job = self._volumes_job, None
        if job is not None:
            self._forget(job)
        self.volumes = list(result) if isinstance(result, list) else []
        if isinstance(result, Exception):  # a platform call failing is a message, not a crash
            self.set_status(f"cannot list removable media: {result}")
        self.volumes_combo.clear()
        if not self.volumes:
            self.volumes_combo.addItem("(none mounted)")
            self.volumes_combo.setEnabled(False)
        else:
            self.volumes_combo.setEnabled(True)
            self.volumes_combo.addItem("Choose a medium…")
            for volume in self.volumes:
                self.volumes_combo.addItem(volume.label, str(volume.root))
        self.volumes_listed.emit(len(self.volumes))

    def _on_volumes_combo_activated(self, index: int) -> None:
        if 1 <= index <= len(self.volumes):
            self.volumes_combo.setCurrentIndex(0)
            self.open_media([self.volumes[index - 1].root])

    # ----------------------------------------------------------------- import
    def start_import(self) -> None:
        """Import the opened medium into the store on a worker, with a progress dialog."""
        if self._store is None or not self._media_paths or self._import_job is not None:
            return
        store = self._store
        paths = list(self._media_paths)

        def work(cancel: threading.Event, progress: Progress) -> ImportReport:
            try:
                return import_paths(store, paths, cancel=cancel, progress=progress)
            finally:
                store.release_connection()

        dialog = QProgressDialog("Importing into the local store…", "Cancel", 0, 0, self)
        dialog.setObjectName("import_progress")
        dialog.setWindowTitle("Import")
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        dialog.setMinimumDuration(0)
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        self.progress_dialog = dialog
        job = Job("StoreImport", work)
        job.progress_changed.connect(self._on_import_progress_changed)
        job.finished.connect(self._on_import_finished)
        job.failed.connect(self._on_import_finished)
        dialog.canceled.connect(job.cancel)
        self._import_job = job
        self._update_buttons()
        dialog.show()
        self._start(job)

    def _on_import_progress_changed(self, done: int, total: int) -> None:
        dialog = self.progress_dialog
        if dialog is None or self.sender() is not self._import_job:
            return
        dialog.setMaximum(max(total, 1))
        dialog.setValue(min(done, max(total, 1)))
        dialog.setLabelText(f"Importing into the local store… {done}/{total} files")

    def _on_import_finished(self, result: object) -> None:
        job = self._import_job
        if self.sender() is not job or job is None:
            return
        self._forget(job)
        self._import_job = None
        if self.progress_dialog is not None:
            self.progress_dialog.canceled.disconnect(job.cancel)
            self.progress_dialog.reset()
            self.progress_dialog.hide()
            self.progress_dialog.deleteLater()
            self.progress_dialog = None
        if isinstance(result, Exception):
            self.set_status(f"Import failed: {result}")
            self.problems_found.emit(
                [model.Problem(str(self._media_paths[0]), f"import failed: {result}")]
            )
            self._update_buttons()
            return
        assert isinstance(result, ImportReport)
        self.last_import = result
        self._imported = (list(self._media_paths), result)
        self.set_status(import_summary(result))
        problems = [*result.conflicts, *result.rejected]
        if problems:
            self.problems_found.emit(problems)
        if result.cancelled:
            self.refresh()
        else:
            self.show_store()
        self.import_finished.emit(result)

    # ----------------------------------------------------------------- receipt
    def start_receipt(self) -> None:
        """The receipt of the last import, made on a worker (every listed file is read for its
        SHA-256), then shown to print or save as HTML or PDF."""
        if self._imported is None or self._receipt_job is not None or self._store is None:
            return
        paths, report = self._imported
        store = self._store

        def work(cancel: threading.Event, _progress: Callable[..., None]) -> rc.Receipt:
            try:
                return rc.receipt_of_import(
                    paths, report, in_store=lambda uid: has_instance(store, uid), cancel=cancel
                )
            finally:
                store.release_connection()

        job = Job("ImportReceipt", work)
        job.finished.connect(self._on_receipt_finished)
        job.failed.connect(self._on_receipt_finished)
        self._receipt_job = job
        self._update_buttons()
        self.set_status("Making the import receipt (reading every file once)…")
        self._start(job)

    def _on_receipt_finished(self, result: object) -> None:
        job = self._receipt_job
        if self.sender() is not job or job is None:
            return
        self._forget(job)
        self._receipt_job = None
        self._update_buttons()
        if not isinstance(result, rc.Receipt):
            self.set_status(f"The receipt could not be made: {result}")
            return
        from viewer.qt.receipt import ReceiptDialog

        self.set_status(
            "Import receipt: complete" if result.complete else "Import receipt: INCOMPLETE"
        )
        self.receipt_dialog = ReceiptDialog(rc.render_html(result), "Import receipt", self)
        self.receipt_dialog.show()

    # ----------------------------------------------------------------- health
    def start_health_check(self) -> None:
        """The opened medium's health report in a dialog: at once when the background check
        has ended, when it ends if it is running, else checked now on a worker."""
        if self._health_report is not None:
            self._show_health(self._health_report)
        elif self._health_job is not None:
            self._show_health_when_done = True
            self.set_status("Checking the medium; the report opens when the check ends…")
        else:
            self._start_health_check(show=True)

    def _start_health_check(self, *, show: bool) -> None:
        if not self._media_paths or self._health_job is not None:
            return
        target = self._media_paths[0]
        job = Job("MediaHealth", lambda c, p: check_media(target, cancel=c, progress=p))
        job.progress_changed.connect(self._on_health_progress_changed)
        job.finished.connect(self._on_health_finished)
        job.failed.connect(self._on_health_finished)
        self._health_job = job
        self._show_health_when_done = show
        self._update_buttons()
        if show:
            self.set_status(f"Checking {target}…")
        self._start(job)

    def _on_health_progress_changed(self, done: int, total: int) -> None:
        if self.sender() is self._health_job and self._show_health_when_done:
            self.set_status(f"Checking the medium… {done}/{total} files")

    def _on_health_finished(self, result: object) -> None:
        job = self._health_job
        if self.sender() is not job or job is None:
            return
        self._forget(job)
        self._health_job = None
        show, self._show_health_when_done = self._show_health_when_done, False
        self._update_buttons()
        if isinstance(result, Exception):
            self.set_status(f"The health check failed: {result}")
            return
        assert isinstance(result, HealthReport)
        if result.cancelled:
            return
        self._health_report = result
        counted = plural(len(result.problems), "problem")
        if self._read_summary and not show:
            self.set_status(f"{self._read_summary}; files checked: {counted}")
        else:
            self.set_status(f"Health of {result.root}: {counted}")
        if result.problems:
            self.problems_found.emit(list(result.problems))  # each fact once in the window
        if show:
            self._show_health(result)
        self.health_checked.emit(result)

    def _show_health(self, report: HealthReport) -> None:
        if self.health_dialog is not None:
            self.health_dialog.close()
            self.health_dialog.deleteLater()
        self.health_dialog = HealthDialog(report, self)
        self.health_dialog.open()

    # ----------------------------------------------------------------- jobs
    def _start(self, job: Job) -> None:
        self.jobs.start(job)

    def _forget(self, job: Job) -> None:
        self.jobs.forget(job)  # it has emitted its last signal: ends at once

    def _stop_job(self, job: Job | None) -> None:
        if job is not None:
            job.finished.disconnect()
            job.failed.disconnect()
            job.cancel()
            self._forget(job)

    def busy(self) -> bool:
        return self.jobs.busy()

    def shutdown(self) -> None:
        """Cancel and join every job and the thumbnail thread; close dialogs. A volume listing
        stuck on a hung mount is waited for a second only (its thread is a daemon)."""
        volumes = self._volumes_job
        if volumes is not None:
            for signal in (volumes.finished, volumes.failed):
                with contextlib.suppress(RuntimeError, TypeError):  # already disconnected
                    signal.disconnect()
            volumes.wait(timeout=1.0)
            self.jobs.forget(volumes)
        self.jobs.wait_all(timeout=60.0)
        self._scan_job = self._import_job = self._health_job = self._volumes_job = None
        self.thumbnails.stop()
        if self._media is not None:
            self._media.close()  # an opened ISO image's unpacked folder
        if self.progress_dialog is not None:
            self.progress_dialog.reset()
            self.progress_dialog.deleteLater()
            self.progress_dialog = None
        if self.health_dialog is not None:
            self.health_dialog.close()


def import_summary(report: ImportReport) -> str:
    """One line a person reads after an import."""
    parts = [
        f"{len(report.imported)} imported",
        f"{len(report.already_present)} already present",
        f"{len(report.conflicts)} conflicts",
        f"{len(report.rejected)} rejected",
    ]
    text = "Import: " + ", ".join(parts)
    if report.cancelled:
        text += f"; cancelled, {report.not_processed} files not processed"
    return text
