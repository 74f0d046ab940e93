"""The tag inspector: every element of one file in a tree, searchable, copyable.

The file is read on a worker (:class:`viewer.qt.jobs.Job` running
:func:`viewer.imaging.dump.dump_file`, the same tree ``lightbox dump`` prints); the dialog only
turns the finished tree into rows: the File Meta Information first, then the data set,
sequences with their items to any depth, private tags with their creator, and under an
encapsulated Pixel Data its Basic Offset Table and fragments with their byte offsets in the
file. Every text shown was escaped by the core (:func:`viewer.text.escape`), and labels are
plain text, so nothing from the file is read as markup.

Typing in the search box keeps the rows whose keyword, tag (``(0010,0010)``, ``0010,0010``,
``00100010``), value or private creator match, with the sequences and items holding them
(expanded to show them); a matching sequence keeps its items. Ctrl+C or Copy puts the selected
rows on the clipboard as tab-separated text (Tag, Name, VR, Length, Value).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import (
    QFont,
    QFontDatabase,
    QFontMetrics,
    QGuiApplication,
    QKeySequence,
    QShortcut,
)
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QTreeWidgetItemIterator,
    QVBoxLayout,
    QWidget,
)

from viewer.imaging.decode import DecodeError
from viewer.imaging.dump import Dump, Node, Query, dump_file
from viewer.qt.jobs import Job, JobDialog
from viewer.text import escape, plural

COLUMNS = ("Tag", "Name", "VR", "Length", "Value")
TAG, NAME, VR, LENGTH, VALUE = range(len(COLUMNS))
#: Where a row keeps its :class:`~viewer.imaging.dump.Node` (rows without one: headings,
#: fragments, "more not listed").
NODE_ROLE = Qt.ItemDataRole.UserRole
#: Typing pauses this long before the tree is filtered (a large tree takes a moment).
FILTER_DELAY_MS = 150
#: Warnings shown under the tree (all of them in its tooltip).
SHOWN_WARNINGS = 3


class TagInspector(JobDialog):
    """Non-modal: the whole data set of ``path``; ``loaded`` once the tree is filled."""

    loaded = Signal()
    #: The file could not be read: the reason, escaped.
    failed = Signal(str)

    def __init__(self, path: Path | str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("tag_inspector")
        self.setModal(False)
        self.path = Path(path)
        self.dump: Dump | None = None
        self._title(escape(self.path.name), "reading…")

        self.search_edit = QLineEdit()
        self.search_edit.setObjectName("tag_search")
        self.search_edit.setPlaceholderText("Search a keyword, a tag such as (0010,0010), a value")
        self.search_edit.setClearButtonEnabled(True)
        self.search_edit.setEnabled(False)
        self.search_edit.textChanged.connect(self._on_search_edit_text_changed)

        self.tree = QTreeWidget()
        self.tree.setObjectName("tag_tree")
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setSelectionMode(QTreeWidget.SelectionMode.ExtendedSelection)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setAllColumnsShowFocus(True)
        self.tree.header().setStretchLastSection(True)
        self.tree.itemSelectionChanged.connect(self._on_tree_item_selection_changed)

        self.status = QLabel("Reading the file…")
        self.status.setObjectName("tag_status")
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.status.setWordWrap(True)

        self.copy_button = QPushButton("Copy")
        self.copy_button.setObjectName("tag_copy")
        self.copy_button.setToolTip("Copy the selected rows as tab-separated text (Ctrl+C)")
        self.copy_button.setEnabled(False)
        self.copy_button.clicked.connect(self.copy_selection)
        self.expand_button = QPushButton("Expand all")
        self.expand_button.clicked.connect(self.tree.expandAll)
        self.collapse_button = QPushButton("Collapse all")
        self.collapse_button.clicked.connect(self._collapse_to_headings)
        close_button = QPushButton("Close")
        close_button.clicked.connect(self.close)

        buttons = QHBoxLayout()
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.expand_button)
        buttons.addWidget(self.collapse_button)
        buttons.addStretch(1)
        buttons.addWidget(close_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.search_edit)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.status)
        layout.addLayout(buttons)

        copy = QShortcut(QKeySequence.StandardKey.Copy, self.tree, self.copy_selection)
        copy.setContext(Qt.ShortcutContext.WidgetShortcut)
        find = QShortcut(QKeySequence.StandardKey.Find, self, self.search_edit.setFocus)
        find.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)

        self._filter_timer = QTimer(self)
        self._filter_timer.setSingleShot(True)
        self._filter_timer.setInterval(FILTER_DELAY_MS)
        self._filter_timer.timeout.connect(self.apply_filter)
        self._fixed = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.resize(960, 680)

        target = self.path

        def work(cancel: threading.Event, _progress: Callable[..., None]) -> Dump:
            return dump_file(target, cancel=cancel)

        job = Job("InspectTags", work)  # never the file's name: it names the thread in logs
        job.finished.connect(self._on_job_finished)
        job.failed.connect(self._on_job_failed)
        self.jobs.start(job)

    # -- loading ---------------------------------------------------------------------------------

    def _title(self, name: str, patient: str) -> None:
        self.setWindowTitle(f"Tags: {name} — {patient}")

    def _on_job_finished(self, dump: object) -> None:
        if not isinstance(dump, Dump):
            return
        self.dump = dump
        self._title(escape(self.path.name), dump.patient_name or "no patient name")
        self._fill(dump)
        self.search_edit.setEnabled(True)
        count = sum(1 for _ in _walk(dump.nodes))
        text = f"{plural(count, 'element')}; transfer syntax {dump.transfer_syntax or 'unknown'}"
        if dump.warnings:
            shown = [escape(w) for w in dump.warnings]
            text += f"; {plural(len(shown), 'problem')}:\n" + "\n".join(shown[:SHOWN_WARNINGS])
            if len(shown) > SHOWN_WARNINGS:
                text += f"\n… {len(shown) - SHOWN_WARNINGS} more (in the tooltip)"
            self.status.setToolTip("\n".join(shown))
        self.status.setText(text)
        if self.search_edit.text().strip():
            self.apply_filter()
        self.loaded.emit()

    def _on_job_failed(self, error: object) -> None:
        reason = error.reason if isinstance(error, DecodeError) else f"{error}"
        reason = escape(reason)
        self._title(escape(self.path.name), "cannot be read")
        self.status.setText(f"{escape(self.path)} cannot be read: {reason}")
        self.failed.emit(reason)

    def _fill(self, dump: Dump) -> None:
        self.tree.setUpdatesEnabled(False)
        try:
            self.tree.clear()
            headings = []
            for title, meta in (("File Meta Information", True), ("Data Set", False)):
                nodes = [n for n in dump.nodes if n.meta == meta]
                if not nodes:
                    continue
                heading = QTreeWidgetItem([title])
                bold = QFont(heading.font(TAG))
                bold.setBold(True)
                heading.setFont(TAG, bold)
                heading.addChildren([self._item(n) for n in nodes])
                headings.append(heading)
            self.tree.addTopLevelItems(headings)
            for heading in headings:
                heading.setFirstColumnSpanned(True)
                heading.setExpanded(True)
            for column in (VR, LENGTH):
                self.tree.resizeColumnToContents(column)
            # wide enough for the deepest tag, expanded or not (contents count only rows shown)
            depth = 1 + max((d + bool(n.fragments) for d, n in _depths(dump.nodes, 1)), default=1)
            text = QFontMetrics(self._fixed).horizontalAdvance("(FFFE,E000)")
            self.tree.setColumnWidth(TAG, min(text + self.tree.indentation() * depth + 16, 480))
            self.tree.setColumnWidth(NAME, 300)
            self.tree.header().setSectionResizeMode(VALUE, QHeaderView.ResizeMode.Interactive)
        finally:
            self.tree.setUpdatesEnabled(True)

    def _item(self, node: Node) -> QTreeWidgetItem:
        length = "undefined" if node.length is None else str(node.length)
        if node.is_item:
            length = ""
        item = QTreeWidgetItem([node.tag_text, node.name, node.vr, length, node.value])
        item.setData(TAG, NODE_ROLE, node)
        item.setFont(TAG, self._fixed)
        if len(node.value) > 60:
            item.setToolTip(VALUE, node.value)
        if node.private_creator:
            item.setToolTip(NAME, f"Private creator: {node.private_creator}")
        children = [self._item(child) for child in node.children]
        for fragment in node.fragments:
            value = f"at byte {fragment.offset}"
            if fragment.kind == "offset table":
                value += ": " + ("\\".join(str(e) for e in fragment.entries[:64]) or "empty")
                if len(fragment.entries) > 64:
                    value += "\\…"
            row = QTreeWidgetItem(["(FFFE,E000)", fragment.label, "", str(fragment.length), value])
            row.setFont(TAG, self._fixed)
            children.append(row)
        if node.omitted:
            what = "fragments" if node.fragments else "items"
            more = QTreeWidgetItem(["", f"… {node.omitted:,} more {what} not listed"])
            more.setDisabled(True)
            children.append(more)
        item.addChildren(children)
        return item

    # -- search ----------------------------------------------------------------------------------

    def _on_search_edit_text_changed(self, _text: str) -> None:
        self._filter_timer.start()

    def apply_filter(self) -> None:
        """Show the rows matching the search box, their ancestors (expanded) and, under a
        matching row, all of its rows; everything when the box is empty."""
        self._filter_timer.stop()
        query = Query(self.search_edit.text())
        root = self.tree.invisibleRootItem()
        self.tree.setUpdatesEnabled(False)
        try:
            for heading in _children(root):
                self._filter(heading, query, shown=False)
        finally:
            self.tree.setUpdatesEnabled(True)

    def _filter(self, item: QTreeWidgetItem, query: Query, *, shown: bool) -> tuple[bool, bool]:
        """(visible, holds a match) for ``item``; ``shown``: an ancestor matched."""
        node = item.data(TAG, NODE_ROLE)
        matched = isinstance(node, Node) and bool(query) and query.matches(node)
        keep_all = shown or matched or not query
        inner_match = False
        any_visible = False
        for child in _children(item):
            visible, holds = self._filter(child, query, shown=keep_all)
            any_visible |= visible
            inner_match |= holds
        visible = keep_all or any_visible
        item.setHidden(not visible)
        if query and inner_match:
            item.setExpanded(True)
        return visible, matched or inner_match

    # -- copy ------------------------------------------------------------------------------------

    def selected_rows(self) -> Iterator[QTreeWidgetItem]:
        """Selected rows that are shown, in the tree's order."""
        it = QTreeWidgetItemIterator(self.tree, QTreeWidgetItemIterator.IteratorFlag.Selected)
        while it.value() is not None:
            item = it.value()
            if not item.isHidden():
                yield item
            it += 1

    def copy_selection(self) -> None:
        lines = [
            "\t".join(item.text(c) for c in range(len(COLUMNS))).rstrip("\t")
            for item in self.selected_rows()
        ]
        if lines:
            QGuiApplication.clipboard().setText("\n".join(lines) + "\n")

    def _on_tree_item_selection_changed(self) -> None:
        self.copy_button.setEnabled(bool(self.tree.selectedItems()))

    def _collapse_to_headings(self) -> None:
        self.tree.collapseAll()
        for heading in _children(self.tree.invisibleRootItem()):
            heading.setExpanded(True)

    # -- closing ---------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop reading (a large file on a slow disc) and join the worker, with a deadline."""
        self._filter_timer.stop()
        super().shutdown()


def _walk(nodes: list[Node]) -> Iterator[Node]:
    for node in nodes:
        if not node.is_item:
            yield node
        yield from _walk(node.children)


def _children(item: QTreeWidgetItem) -> Iterator[QTreeWidgetItem]:
    for i in range(item.childCount()):
        child = item.child(i)
        if child is not None:
            yield child


def _depths(nodes: list[Node], depth: int) -> Iterator[tuple[int, Node]]:
    """(depth, node) of every node and item, the top level at ``depth``."""
    for node in nodes:
        yield depth, node
        yield from _depths(node.children, depth + 1)
