"""A strip of series thumbnails: across the browser's foot, and down the side of the view.

Both strips are this one widget over the browser's :class:`ThumbnailWorker` (one thread, one
memory and disk cache): an entry is a label, a tooltip and, for an image series, the instance
whose first frame is drawn. Only images get a thumbnail; an SR or a key object note has nothing
to draw and keeps the grey placeholder.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QByteArray, QMimeData, QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import QListView, QListWidget, QListWidgetItem, QWidget

from viewer import model
from viewer.qt.thumbnails import ThumbnailWorker

ICON = 64

#: The mime type of a series dragged from the strip beside the view: its row in the strip.
SERIES_MIME = "application/x-lightbox-series-row"
#: The mime type of a series dragged from the browser's strip: its row in the browser's list.
BROWSER_SERIES_MIME = "application/x-lightbox-browser-series-row"


def series_mime(row: int, kind: str = SERIES_MIME) -> QMimeData:
    """What a strip row carries when it is dragged into a viewport."""
    mime = QMimeData()
    mime.setData(kind, QByteArray(str(row).encode("ascii")))
    return mime


def series_row(mime: QMimeData, kind: str = SERIES_MIME) -> int | None:
    """The strip row a drag carries, or None when it carries no series of that kind."""
    if not mime.hasFormat(kind):
        return None
    try:
        return int(bytes(mime.data(kind).data()).decode("ascii"))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class StripEntry:
    text: str
    tooltip: str = ""
    instance: model.Instance | None = None  # drawn when it has pixels


class SeriesStrip(QListWidget):
    """Series as thumbnails with a short label; row ``i`` is entry ``i``.

    ``vertical`` puts the strip beside the view (one column, fixed width); otherwise it runs
    across (one row, fixed height). Entries of both are dragged into viewports, each strip's
    with its own mime type (:data:`SERIES_MIME`, :data:`BROWSER_SERIES_MIME`).
    ``thumbnails_done`` when no thumbnail is pending; ``thumbnail_failed(path, message)`` for
    one that could not be drawn.
    """

    thumbnails_done = Signal()
    thumbnail_failed = Signal(str, str)

    def __init__(
        self, thumbnails: ThumbnailWorker, *, vertical: bool, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.TopToBottom if vertical else QListView.Flow.LeftToRight)
        self.setWrapping(False)
        self.setMovement(QListView.Movement.Static)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setIconSize(QSize(ICON, ICON))
        # three lines of text under each thumbnail (number and modality, description, count)
        grid = QSize(104 if vertical else 112, 124)
        self.setGridSize(grid)
        self.setWordWrap(True)
        if vertical:
            scroll_bar = self.verticalScrollBar().sizeHint().width()
            self.setFixedWidth(grid.width() + 2 * self.frameWidth() + scroll_bar + 4)
        else:
            self.setFixedHeight(grid.height() + 2 * self.frameWidth() + 18)
        # a series is dragged into any viewport, from beside the view or from the browser
        self._mime_kind = SERIES_MIME if vertical else BROWSER_SERIES_MIME
        self.setDragEnabled(True)
        self.setDragDropMode(QListView.DragDropMode.DragOnly)
        self._thumbnails = thumbnails
        self._keys: list[str] = []
        self._pending: set[str] = set()
        self._placeholder = _placeholder_icon()
        thumbnails.thumbnail_ready.connect(self._on_thumbnails_thumbnail_ready)
        thumbnails.thumbnail_failed.connect(self._on_thumbnails_thumbnail_failed)

    def clear(self) -> None:
        """No entries (and no thumbnail still expected)."""
        super().clear()
        self._keys = []
        self._pending = set()

    def set_entries(self, entries: list[StripEntry]) -> None:
        """Show ``entries``, their thumbnails as they come (at once from memory)."""
        self.clear()
        for index, entry in enumerate(entries):
            item = QListWidgetItem(self._placeholder, entry.text)
            item.setData(Qt.ItemDataRole.UserRole, index)
            item.setToolTip(entry.tooltip)
            self.addItem(item)
            key = ""
            instance = entry.instance
            if instance is not None and instance.rows > 0 and instance.columns > 0:
                key, image = self._thumbnails.request(instance.sop_instance_uid, instance.path)
                if image is not None:
                    item.setIcon(QIcon(QPixmap.fromImage(image)))
                else:
                    self._pending.add(key)
            self._keys.append(key)
        if not self._pending:
            self.thumbnails_done.emit()

    def mimeData(self, items: list[QListWidgetItem]) -> QMimeData:  # type: ignore[override]
        """A dragged entry carries its row (:data:`SERIES_MIME`)."""
        if not items:
            return super().mimeData(items)
        return series_mime(int(items[0].data(Qt.ItemDataRole.UserRole)), self._mime_kind)

    def thumbnail_keys(self) -> list[str]:
        """Each row's thumbnail key ("" for an entry that has nothing to draw)."""
        return list(self._keys)

    def icons_ready(self) -> int:
        """How many rows show their thumbnail (not the placeholder)."""
        return sum(1 for key in self._keys if key and key not in self._pending)

    def _on_thumbnails_thumbnail_ready(self, key: str, image: QImage) -> None:
        if key not in self._pending:
            return
        self._pending.discard(key)
        icon = QIcon(QPixmap.fromImage(image))
        for row, mine in enumerate(self._keys):
            if mine == key:
                self.item(row).setIcon(icon)
        if not self._pending:
            self.thumbnails_done.emit()

    def _on_thumbnails_thumbnail_failed(self, key: str, message: str) -> None:
        if key not in self._pending:
            return
        self._pending.discard(key)
        self.thumbnail_failed.emit(message.split(": ", 1)[0], message)
        if not self._pending:
            self.thumbnails_done.emit()


def _placeholder_icon() -> QIcon:
    pixmap = QPixmap(96, 96)
    pixmap.fill(QColor(40, 40, 40))
    return QIcon(pixmap)
