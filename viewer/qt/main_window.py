"""The main window: the study browser, the image view, the series list, the problems panel.

Opening media (File > Open, drag-and-drop, the command line, a removable medium) goes through the
browser (:class:`viewer.qt.browser.BrowserWidget`), which scans in a worker thread, lists the
studies and hands the stacks to the view; the demo study is only shown
(:meth:`MainWindow.view_paths`, :func:`viewer.qt.workers.open_paths` on a
:class:`viewer.qt.jobs.Job`), never listed for import.
A chosen stack is decoded by a :class:`viewer.qt.source.LoaderSource` (worker processes). The
GUI thread only paints. Problems (a file that cannot be read, a frame that cannot be decoded)
are listed in the panel and on stderr, naming the file, while the rest loads.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QByteArray, Qt, Signal
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLabel,
    QListWidget,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from viewer import diagnostics, logs, model, settings
from viewer.config import app_home
from viewer.imaging import measure, sr_write
from viewer.imaging import measure_tools as mt
from viewer.imaging import presentation as pstate
from viewer.imaging import presets as user_presets
from viewer.imaging.annotations import window_value
from viewer.imaging.decode import read_file
from viewer.imaging.display import CT_PRESETS, Window
from viewer.imaging.stack import Stack
from viewer.media.scan import ScanResult
from viewer.qt.browser import BrowserWidget
from viewer.qt.export_view import add_export_actions
from viewer.qt.export_wizard import ExportWizard, open_export_wizard
from viewer.qt.help import CONFORMANCE_DOC, CONTROLS_DOC, AboutDialog, DocumentDialog
from viewer.qt.image_view import ImageView
from viewer.qt.inspector import TagInspector
from viewer.qt.jobs import Job, JobSet
from viewer.qt.linker import Linker
from viewer.qt.mpr_view import MprController
from viewer.qt.removable import StorageLike
from viewer.qt.source import FrameSource, stack_caption
from viewer.qt.strip import SeriesStrip, StripEntry
from viewer.qt.thumbnails import ThumbnailWorker
from viewer.qt.viewports import LAYOUTS, MAX_SIDE, Viewport, ViewportGrid
from viewer.qt.welcome import WelcomeDialog
from viewer.qt.workers import OpenResult, open_paths
from viewer.store import Store
from viewer.store import measurements as measurements_store
from viewer.text import escape, plural

log = logging.getLogger(__name__)

#: The series list's title while the demo study is on screen.
DEMO_LABEL = "DEMO: sample images that ship with pydicom (made-up patients; not imported)"


class MainWindow(QMainWindow):
    """The study browser on top, series on the left, the image in the middle, problems below."""

    opened = Signal(int)  # number of stacks found by the last open
    measurements_exported = Signal(str)
    problems_reported = Signal(list)

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        store: Store | None = None,
        volume_source: Callable[[], list[StorageLike]] | None = None,
        start_services: bool = False,
    ) -> None:
        """``store`` defaults to ``Store.open()`` (``app_home()/store``); ``volume_source`` to
        Qt's mounted volumes (tests pass fakes)."""
        super().__init__(parent)
        self.setWindowTitle("Lightbox")
        self.showing_demo = False  # the demo study is on screen (labelled as such)
        self._opening_demo = False
        self.last_folder = ""  # where the file dialogs start (remembered)
        self.welcome: WelcomeDialog | None = None
        self.setAcceptDrops(True)
        self._stacks: list[Stack] = []
        self._patient: tuple[str, str] = ("", "")  # (ID, name) of the study the strip lists
        self._worker: Job | None = None
        self._opening: list[Path] = []
        self.jobs = JobSet(self)
        self._problems: list[model.Problem] = []

        # The viewports: one by default, any rows x columns from the View menu; keys and
        # menus act on the active one (self.view).
        self.grid = ViewportGrid(self.jobs, self)
        self.setCentralWidget(self.grid)

        # The series beside the view: a slim strip of thumbnails (the browser's worker and cache)
        self.thumbnails = ThumbnailWorker()
        self.series_list = SeriesStrip(self.thumbnails, vertical=True)
        self.series_list.setObjectName("series_list")
        self.series_list.setToolTip("The series of the study shown: click one to show it")
        self.series_list.currentRowChanged.connect(self._on_series_list_current_row_changed)
        self.whose_label = QLabel()
        self.whose_label.setObjectName("whose_label")
        self.whose_label.setWordWrap(True)
        self.whose_label.setTextFormat(Qt.TextFormat.PlainText)
        self.whose_label.setStyleSheet("font-weight: bold; padding: 2px;")
        series_panel = QWidget()
        panel_layout = QVBoxLayout(series_panel)
        panel_layout.setContentsMargins(0, 0, 0, 0)
        panel_layout.addWidget(self.whose_label)
        panel_layout.addWidget(self.series_list, 1)
        series_dock = self.series_dock = QDockWidget("Series", self)
        series_dock.setObjectName("series_dock")
        series_dock.setWidget(series_panel)
        series_dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, series_dock)
        self.whose_label.setMaximumWidth(self.series_list.width())

        self.problems_list = QListWidget()
        self.problems_list.setObjectName("problems_list")
        self.problems_dock = QDockWidget("Problems", self)
        self.problems_dock.setObjectName("problems_dock")
        self.problems_dock.setWidget(self.problems_list)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.problems_dock)
        self.problems_dock.hide()
        self.problems_button = QPushButton()
        self.problems_button.setObjectName("problems_button")
        self.problems_button.setFlat(True)
        self.problems_button.setVisible(False)
        self.problems_button.setToolTip("Show or hide the problems of this medium")
        self.problems_button.clicked.connect(self._on_problems_button_clicked)
        self.statusBar().addPermanentWidget(self.problems_button)

        self.browser = BrowserWidget(
            self, store=store, volume_source=volume_source, thumbnails=self.thumbnails
        )
        self.browser.media_opened.connect(self._on_browser_media_opened)
        self.browser.series_opened.connect(self._on_browser_series_opened)
        self.browser.compare_requested.connect(self.compare)
        self.browser.presentation_picked.connect(self.open_presentation_object)
        self.browser.problems_found.connect(self.report_problems)
        self.browser_dock = QDockWidget("Studies", self)
        self.browser_dock.setObjectName("browser_dock")
        self.browser_dock.setWidget(self.browser)
        self.browser_dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
        )
        self.addDockWidget(Qt.DockWidgetArea.TopDockWidgetArea, self.browser_dock)
        self.resizeDocks([self.browser_dock], [330], Qt.Orientation.Vertical)

        self.pixel_label = QLabel()
        self.pixel_label.setObjectName("pixel_label")
        self.statusBar().addPermanentWidget(self.pixel_label)
        for viewport in self.grid.viewports:
            self._on_grid_viewport_added(viewport)
        self.grid.viewport_added.connect(self._on_grid_viewport_added)
        self.grid.active_changed.connect(self._on_grid_active_changed)
        self.linker = Linker(self.grid, self)
        # Measurements: one board for every viewport, kept in the store per image.
        self.board = mt.Board()
        self._measured_uids: set[str] = set()
        # Images whose kept measurements are being read, and those changed meanwhile (saved
        # once the kept ones have joined them: saving first would replace the kept ones).
        self._loading_uids: set[str] = set()
        self._changed_while_loading: set[mt.Key] = set()
        self._saved: dict[mt.Key, int] = {}  # the board revision each image was saved at
        self._save_lock = threading.Lock()
        for viewport in self.grid.viewports:
            self._attach_board(viewport)
        self.grid.viewport_added.connect(self._attach_board)
        self.linker.linked.connect(lambda text: self.statusBar().showMessage(text, 8000))
        self.mpr = MprController(self.grid, self.jobs, self)
        self.mpr.failed.connect(lambda text: self.statusBar().showMessage(text, 10000))
        self.mpr.shown.connect(self._on_mpr_shown)
        self.mpr.stopped.connect(lambda: setattr(self.linker, "every_plane", False))

        self.actions_by_name: dict[str, QAction] = {}
        self._export_wizard: ExportWizard | None = None
        self._inspector: TagInspector | None = None
        self._presentation: pstate.PresentationState | None = None
        self._key_cursor: pstate.KeyImageCursor | None = None
        self._build_menus()
        # The Network menu and the application-wide storage SCP; the SCP starts only for the
        # real application (start_services), so tests building windows claim no port.
        from viewer.qt.network import install_network_menu

        self.network = install_network_menu(
            self,
            open_study=self._on_network_study_retrieved,
            selection=self.browser.selection,
            store_root=self.browser.store.root if self.browser.store is not None else None,
            start=start_services,
        )
        self.network.study_received.connect(self._on_network_study_received)
        # The storage service's state stays in sight: a second Lightbox whose port is taken
        # said so only on the console.
        self._offered_study: str | None = None
        self.offer_button = QPushButton("Show retrieved study")
        self.offer_button.setObjectName("offer_button")
        self.offer_button.setVisible(False)
        self.offer_button.clicked.connect(self._on_offer_button_clicked)
        self.statusBar().addPermanentWidget(self.offer_button)
        self.scp_status = QLabel()
        self.scp_status.setObjectName("scp_status")
        self.statusBar().addPermanentWidget(self.scp_status)
        self.network.scp_state_changed.connect(self._on_scp_state_changed)
        self._on_scp_state_changed(self.network.scp_running(), self.network.scp_message)
        self._on_view_window_changed()
        self._on_view_view_changed()

    def _on_scp_state_changed(self, running: bool, message: str) -> None:
        failed = not running and "cannot" in message
        self.scp_status.setText(
            "Receiving" if running else ("⚠ Not receiving" if failed else "Not receiving")
        )
        self.scp_status.setToolTip(message)
        self.scp_status.setStyleSheet("color: #c0392b; font-weight: bold;" if failed else "")
        if failed:
            self.statusBar().showMessage(message, 15000)

    # ----------------------------------------------------------------- menus
    def _action(self, name: str, text: str, slot: object, *, checkable: bool = False) -> QAction:
        action = QAction(text, self)
        action.setObjectName(name)
        action.setCheckable(checkable)
        action.triggered.connect(slot)
        self.actions_by_name[name] = action
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()

        file_menu = bar.addMenu("&File")
        open_file = self._action("open_file", "Open &File…", self._on_open_file_triggered)
        open_file.setShortcut(QKeySequence.StandardKey.Open)
        open_folder = self._action("open_folder", "Open F&older…", self._on_open_folder_triggered)
        open_folder.setShortcut(QKeySequence("Ctrl+Shift+O"))
        quit_action = self._action("quit", "&Quit", self.close)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        open_file.setToolTip("Open DICOM files, a DICOMDIR or a disc image (.iso) in the browser")
        open_folder.setToolTip("Open a folder or a disc in the browser")
        file_menu.addActions([open_file, open_folder])
        file_menu.addSeparator()
        browser = self.browser
        show_store = self._action("show_store", "Local &store", browser.show_store)
        show_store.setShortcut(QKeySequence("Ctrl+L"))
        import_media = self._action("import_media", "&Import medium", browser.start_import)
        import_media.setShortcut(QKeySequence("Ctrl+I"))
        health = self._action("media_health", "Medium &health…", browser.start_health_check)
        health.setShortcut(QKeySequence("Ctrl+H"))
        refresh_media = self._action(
            "refresh_volumes", "&Refresh removable media", browser.refresh_volumes
        )
        file_menu.addActions([show_store, import_media, health, refresh_media])
        file_menu.addSeparator()
        self.export_actions = add_export_actions(self, file_menu.addMenu("E&xport view"))
        export = self._action("export_media", "&Export to CD/DVD/USB…", self._on_export_triggered)
        export.setShortcut(QKeySequence("Ctrl+E"))
        export.setToolTip("Write the selected study as IHE PDI media, checked after writing")
        file_menu.addAction(export)
        file_menu.addSeparator()
        file_menu.addAction(quit_action)

        # Keys are handled by the view itself; "text\tkey" shows them in the menu.
        window_menu = bar.addMenu("&Window")
        window_menu.addAction(
            self._action("window_default", "File default\t0", lambda: self.view.set_window(None))
        )
        window_menu.addAction(
            self._action("window_auto", "Auto (min–max)\tA", lambda: self.view.auto_window())
        )
        self.file_windows_menu = QMenu("File windows", self)
        self.file_windows_menu.setObjectName("file_windows_menu")
        self.file_windows_menu.aboutToShow.connect(self._on_file_windows_menu_about_to_show)
        window_menu.addMenu(self.file_windows_menu)
        window_menu.addSeparator()
        self.ct_preset_actions = []
        for number, (name, window) in enumerate(CT_PRESETS.items(), start=1):
            text = f"CT {name} {window.center:g}/{window.width:g} HU\t{number}"
            action = self._action(
                f"preset_{name}", text, lambda _=False, n=number: self.view.apply_preset(n)
            )
            self.ct_preset_actions.append(action)
            window_menu.addAction(action)
        window_menu.aboutToShow.connect(self._on_window_menu_about_to_show)
        window_menu.addSeparator()
        self.user_presets_menu = QMenu("My presets", self)
        self.user_presets_menu.setObjectName("user_presets_menu")
        self.user_presets_menu.aboutToShow.connect(self._on_user_presets_menu_about_to_show)
        window_menu.addMenu(self.user_presets_menu)
        window_menu.addAction(
            self._action("save_preset", "Save window as preset…", self._on_save_preset)
        )
        window_menu.addSeparator()
        invert = self._action(
            "invert", "Invert\tI", lambda on: self.view.set_inverted(on), checkable=True
        )
        window_menu.addAction(invert)

        view_menu = bar.addMenu("&View")
        toggle_browser = self.browser_dock.toggleViewAction()
        toggle_browser.setObjectName("toggle_browser")
        toggle_browser.setText("Study &browser")
        toggle_browser.setShortcut(QKeySequence("Ctrl+B"))
        self.actions_by_name["toggle_browser"] = toggle_browser
        view_menu.addAction(toggle_browser)
        view_menu.addSeparator()
        for name, text, slot in (
            ("fit", "Fit to window\tF", lambda: self.view.fit()),
            ("actual_pixels", "1:1 pixels\tN", lambda: self.view.actual_pixels()),
            ("rotate_right", "Rotate right\tR", lambda: self.view.rotate(clockwise=True)),
            ("rotate_left", "Rotate left\tShift+R", lambda: self.view.rotate(clockwise=False)),
            ("flip_horizontal", "Flip horizontally\tH", lambda: self.view.flip(horizontal=True)),
            ("flip_vertical", "Flip vertically\tV", lambda: self.view.flip(horizontal=False)),
            ("reset_view", "Reset view", lambda: self.view.reset_view()),
        ):
            view_menu.addAction(self._action(name, text, slot))
        view_menu.addSeparator()
        overlays = self._action(
            "overlays", "Overlays\tO", lambda on: self.view.set_overlays_visible(on), checkable=True
        )
        view_menu.addAction(overlays)
        view_menu.addSeparator()
        view_menu.addAction(
            self._action("cine", "Play / pause cine\tSpace", lambda: self.view.toggle_cine())
        )
        view_menu.addAction(
            self._action(
                "cine_faster", "Faster cine\t+", lambda: self.view.set_fps(self.view.fps * 1.25)
            )
        )
        view_menu.addAction(
            self._action(
                "cine_slower", "Slower cine\t-", lambda: self.view.set_fps(self.view.fps / 1.25)
            )
        )
        view_menu.addSeparator()
        layout_menu = view_menu.addMenu("&Layout")
        layout_menu.setObjectName("layout_menu")
        for rows, columns in LAYOUTS:
            action = self._action(
                f"layout_{rows}x{columns}",
                f"{rows} × {columns}",
                lambda _=False, r=rows, c=columns: self.set_layout(r, c),
                checkable=True,
            )
            action.setShortcut(QKeySequence(f"Ctrl+Alt+{rows}" if rows == columns else ""))
            layout_menu.addAction(action)
        layout_menu.addAction(
            self._action("layout_custom", "Custom…", self._on_custom_layout_triggered)
        )
        layout_menu.aboutToShow.connect(self._on_layout_menu_about_to_show)
        compare = self._action(
            "compare", "&Compare with the selected study", self.browser.compare_selected
        )
        compare.setShortcut(QKeySequence("Ctrl+Shift+C"))
        compare.setToolTip(
            "Show the study selected in the browser (a prior of the same patient) beside the "
            "images on screen"
        )
        view_menu.addAction(compare)
        mpr_menu = view_menu.addMenu("&MPR")
        mpr_menu.setObjectName("mpr_menu")
        start_mpr = self._action(
            "mpr", "Axial, coronal, sagittal", lambda: self.mpr.start(self.grid.active)
        )
        start_mpr.setShortcut(QKeySequence("Ctrl+M"))
        mpr_menu.addAction(start_mpr)
        for slices in (1, 5, 10, 20):
            mpr_menu.addAction(
                self._action(
                    f"mpr_slab_{slices}",
                    "Thin (one slice)" if slices == 1 else f"Slab: MIP of {slices} slices",
                    lambda _=False, n=slices: self.mpr.set_slab(n),
                )
            )
        mpr_menu.addAction(self._action("mpr_stop", "Leave MPR", self.mpr.stop))
        for name, text, key, step in (
            ("key_next", "Next key image", "K", 1),
            ("key_previous", "Previous key image", "Shift+K", -1),
        ):
            action = self._action(name, text, lambda _=False, n=step: self.step_key_image(n))
            action.setShortcut(QKeySequence(key))
            view_menu.addAction(action)
        view_menu.addAction(
            self._action(
                "presentation_off", "Presentation state off", lambda: self.set_presentation(None)
            )
        )
        inspector = self._action("tag_inspector", "&Tag inspector…", self.show_tag_inspector)
        inspector.setShortcut(QKeySequence("Ctrl+T"))
        inspector.setToolTip("Every element of the image shown, as a tree, with a search box")
        view_menu.addAction(inspector)
        link_menu = view_menu.addMenu("Lin&k viewports")
        link_menu.setObjectName("link_menu")
        for name, text, toggle, key in (
            ("link_scroll", "Scroll together by position", self.linker.set_scroll, "Ctrl+K"),
            ("link_window", "Window/level together (same modality)", self.linker.set_window, ""),
            ("link_zoom", "Zoom and pan together", self.linker.set_zoom, ""),
            ("reference_lines", "Reference lines", self.linker.set_reference_lines, "Ctrl+R"),
        ):
            action = self._action(name, text, toggle, checkable=True)
            action.setShortcut(QKeySequence(key))
            link_menu.addAction(action)
        link_here = self._action("link_here", "Link here (these slices match)", self._link_here)
        link_here.setToolTip(
            "For series in different frames of reference (a prior study): the slices shown now "
            "show the same place; they scroll together from here"
        )
        link_menu.addAction(link_here)

        measure_menu = bar.addMenu("&Measure")
        measure_menu.setObjectName("measure_menu")
        group = QActionGroup(self)
        group.setExclusive(True)
        for name, text, key, kind in (
            ("measure_none", "Pan and edit measurements", "Esc", None),
            ("measure_distance", "Distance", "D", "distance"),
            ("measure_angle", "Angle (drag one arm, click the other's end)", "G", "angle"),
            ("measure_rectangle", "Rectangle ROI", "Q", "rectangle"),
            ("measure_ellipse", "Ellipse ROI", "E", "ellipse"),
            ("measure_freehand", "Freehand ROI", "W", "freehand"),
            ("measure_bidirectional", "Bidirectional (long and short axis)", "B", "bidirectional"),
        ):
            action = self._action(
                name, text, lambda _=False, k=kind: self.set_measure_kind(k), checkable=True
            )
            action.setShortcut(QKeySequence(key))
            group.addAction(action)
            measure_menu.addAction(action)
        self.actions_by_name["measure_none"].setChecked(True)
        measure_menu.addSeparator()
        delete = self._action(
            "measure_delete", "Delete the selected measurement", self.delete_measurement
        )
        delete.setShortcuts([QKeySequence(Qt.Key.Key_Delete), QKeySequence(Qt.Key.Key_Backspace)])
        measure_menu.addAction(delete)
        measure_menu.addAction(
            self._action(
                "measure_clear", "Clear the measurements of this image", self.clear_measurements
            )
        )
        measure_menu.addAction(
            self._action("measure_export", "Export measurements as CSV…", self.export_measurements)
        )
        measure_menu.addAction(
            self._action(
                "measure_export_sr",
                "Export the study's measurements as DICOM SR…",
                self.export_measurements_sr,
            )
        )

        help_menu = bar.addMenu("&Help")
        controls = self._action("controls", "Keyboard and mouse…", self._show_controls)
        controls.setShortcut(QKeySequence(Qt.Key.Key_F1))
        help_menu.addAction(controls)
        help_menu.addAction(
            self._action("conformance", "DICOM Conformance Statement…", self._show_conformance)
        )
        help_menu.addAction(self._action("welcome", "&Welcome…", self.show_welcome))
        help_menu.addSeparator()
        help_menu.addAction(
            self._action(
                "diagnostics",
                "Save &diagnostic bundle…",
                lambda: self.save_diagnostic_bundle(),
            )
        )
        self.log_level_menu = help_menu.addMenu("&Log level")
        self.log_level_menu.setObjectName("log_level_menu")
        levels = QActionGroup(self)
        levels.setExclusive(True)
        for level in logs.LEVELS:
            action = self._action(
                f"log_level_{level.lower()}",
                level.capitalize() + (" (may record patient data)" if level == "DEBUG" else ""),
                lambda _=False, name=level: self._on_log_level_chosen(name),
                checkable=True,
            )
            levels.addAction(action)
            self.log_level_menu.addAction(action)
        self.log_level_menu.aboutToShow.connect(self._on_log_level_menu_about_to_show)
        help_menu.addSeparator()
        help_menu.addAction(self._action("about", "About Lightbox…", self._show_about))

    def _on_file_windows_menu_about_to_show(self) -> None:
        menu = self.file_windows_menu
        menu.clear()
        windows = self.view.file_windows()
        if not windows:
            none = menu.addAction("(none in this file)")
            none.setEnabled(False)
            return
        ct = self.view.presets() != self.view.file_windows()
        for number, window in enumerate(windows, start=1):
            key = f"\t{number}" if number <= 8 and not ct else ""
            action = menu.addAction(window.label + key)
            action.triggered.connect(lambda _=False, w=window: self.view.set_window(w))

    def _on_window_menu_about_to_show(self) -> None:
        """CT presets only on a CT (in HU they mean nothing elsewhere; keys 1-8 then pick the
        file's own windows, listed under File windows)."""
        source = self.view.source
        ds = source.dataset(self.view.position) if source is not None and len(source) else None
        is_ct = ds is not None and str(ds.get("Modality", "") or "") == "CT"
        for action in self.ct_preset_actions:
            action.setEnabled(is_ct)

    def _modality(self) -> str:
        source = self.view.source
        ds = source.dataset(self.view.position) if source is not None and len(source) else None
        return str(ds.get("Modality", "") or "").strip() if ds is not None else ""

    def _on_user_presets_menu_about_to_show(self) -> None:
        """The reader's presets for the modality shown (saved in presets.json)."""
        menu = self.user_presets_menu
        menu.clear()
        modality = self._modality()
        windows = user_presets.load().get(modality, []) if modality else []
        if not windows:
            none = menu.addAction(f"(none saved for {modality or 'this image'})")
            none.setEnabled(False)
            return
        for window in windows:
            action = menu.addAction(
                f"{window.explanation} {window_value(window.center)}/{window_value(window.width)}"
            )
            action.triggered.connect(lambda _=False, w=window: self.view.set_window(w))

    def ask_preset_name(self, suggestion: str) -> str:
        name, ok = QInputDialog.getText(self, "Save window as preset", "Name:", text=suggestion)
        return name.strip() if ok else ""

    def _on_save_preset(self) -> None:
        """Keep the window shown as a preset of this modality."""
        window = self.view.effective_window()
        modality = self._modality()
        if not isinstance(window, Window) or not modality:
            self.statusBar().showMessage("Only a window (centre/width) on an image is kept", 5000)
            return
        name = self.ask_preset_name(window.explanation or f"{modality} window")
        if not name:
            return
        try:
            user_presets.save_preset(modality, name, window)
        except OSError as exc:
            self.statusBar().showMessage(f"The preset was not saved: {exc.strerror or exc}", 8000)
            return
        self.statusBar().showMessage(f"Saved {name} for {modality}", 5000)

    def _on_view_window_changed(self) -> None:
        if self.sender() in (None, self.view, self.grid):
            self.actions_by_name["invert"].setChecked(self.view.inverted)

    def _on_view_view_changed(self) -> None:
        if self.sender() in (None, self.view, self.grid):
            self.actions_by_name["overlays"].setChecked(self.view.overlays_visible)

    def _show_controls(self) -> None:
        """The keyboard and mouse reference (F1): scrolls, fits the screen."""
        self.help_dialog = DocumentDialog("Keyboard and mouse", CONTROLS_DOC, self)
        self.help_dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.help_dialog.open()

    def _show_conformance(self) -> None:
        self.help_dialog = DocumentDialog("DICOM Conformance Statement", CONFORMANCE_DOC, self)
        self.help_dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.help_dialog.open()

    def _show_about(self) -> None:
        self.about_dialog = AboutDialog(self)
        self.about_dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.about_dialog.open()

    # ----------------------------------------------------------------- opening
    def ask_files(self) -> list[str]:
        files, _ = QFileDialog.getOpenFileNames(
            self,
            "Open DICOM files, a DICOMDIR or a disc image",
            self.last_folder,
            "All files (*);;Disc images (*.iso *.ISO);;DICOMDIR (DICOMDIR dicomdir)",
        )
        if files:
            self.last_folder = str(Path(files[0]).parent)
        return files

    def ask_folder(self) -> str:
        folder = QFileDialog.getExistingDirectory(
            self, "Open a folder or a DICOM medium", self.last_folder
        )
        if folder:
            self.last_folder = str(Path(folder).parent)
        return folder

    # ----------------------------------------------------------------- remembered settings
    def restore_settings(self) -> None:
        """The window's size and place, its docks, the layout and the last folder, as the
        reader left them (viewer.settings); anything missing or odd keeps the default."""
        remembered = settings.load()
        geometry, state = remembered.get("window_geometry"), remembered.get("window_state")
        try:
            if isinstance(geometry, str):
                self.restoreGeometry(QByteArray.fromBase64(geometry.encode("ascii")))
            if isinstance(state, str):
                self.restoreState(QByteArray.fromBase64(state.encode("ascii")))
        except (UnicodeEncodeError, ValueError):
            log.warning("the remembered window geometry is damaged: ignored")
        layout = remembered.get("layout")
        if (
            isinstance(layout, list)
            and len(layout) == 2
            and all(isinstance(n, int) and 1 <= n <= MAX_SIDE for n in layout)
        ):
            self.set_layout(layout[0], layout[1])
        folder = remembered.get("last_folder")
        if isinstance(folder, str) and Path(folder).is_dir():
            self.last_folder = folder

    def save_settings(self) -> None:
        """Remember what :meth:`restore_settings` restores (a read-only home: a warning)."""
        try:
            settings.update(
                {
                    "window_geometry": bytes(self.saveGeometry().toBase64().data()).decode(),
                    "window_state": bytes(self.saveState().toBase64().data()).decode(),
                    "layout": list(self.grid.shape),
                    "last_folder": self.last_folder or None,
                }
            )
        except OSError as exc:
            log.warning("settings not saved: %s", exc)

    def show_welcome(self) -> None:
        """Help > Welcome (and the first start): the three jobs and where things live."""
        if self.welcome is None:
            store = self.browser.store
            self.welcome = WelcomeDialog(
                home=app_home(),
                store=store.root if store is not None else None,
                demo=self.showing_demo or (self._worker is not None and self._opening_demo),
                show_at_start=bool(settings.get("welcome_at_start", True)),
                parent=self,
            )
            self.welcome.show_at_start_changed.connect(self._on_welcome_at_start_changed)
            self.welcome.finished.connect(self._on_welcome_finished)
        self.welcome.show()
        self.welcome.raise_()

    def save_diagnostic_bundle(self, target: Path | None = None) -> Job | None:
        """Help > Save diagnostic bundle: logs (no debug lines), configuration (secrets
        redacted) and versions in a zip, written on a worker; never the store's contents.
        ``target``: the file (None: ask where)."""
        if target is None:
            start = Path(self.last_folder or Path.home()) / diagnostics.default_name()
            chosen, _ = QFileDialog.getSaveFileName(
                self, "Save diagnostic bundle", str(start), "Zip archives (*.zip)"
            )
            if not chosen:
                return None
            target = Path(chosen)
        where = target

        def work(_cancel: threading.Event, _progress: Callable[..., None]) -> Path:
            return diagnostics.write_bundle(where)

        job = Job("DiagnosticBundle", work)
        job.finished.connect(
            lambda path: self.statusBar().showMessage(
                f"Diagnostic bundle written: {escape(path)} (no patient data)", 15000
            )
        )
        job.failed.connect(
            lambda exc: QMessageBox.warning(
                self, "Diagnostic bundle", f"{escape(where)} cannot be written: {escape(exc)}"
            )
        )
        self.jobs.start(job)
        return job

    def _on_log_level_menu_about_to_show(self) -> None:
        current = logs.log_level()
        for level in logs.LEVELS:
            self.actions_by_name[f"log_level_{level.lower()}"].setChecked(level == current)

    def _on_log_level_chosen(self, level: str) -> None:
        try:
            logs.set_log_level(level)
        except (OSError, ValueError) as exc:
            QMessageBox.warning(self, "Log level", f"The log level cannot be saved: {exc}")
            return
        note = ": debug logs may record patient names and paths" if level == "DEBUG" else ""
        self.statusBar().showMessage(f"Log level {level}{note}", 10000)

    def _on_welcome_at_start_changed(self, shown: bool) -> None:
        try:
            settings.update({"welcome_at_start": shown})
        except OSError as exc:
            log.warning("settings not saved: %s", exc)

    def _on_welcome_finished(self) -> None:
        if self.welcome is not None:
            self.welcome.deleteLater()
            self.welcome = None

    def _on_open_file_triggered(self) -> None:
        files = self.ask_files()
        if files:
            self.open_paths(files)

    def _on_open_folder_triggered(self) -> None:
        folder = self.ask_folder()
        if folder:
            self.open_paths([folder])

    def open_paths(self, paths: list[str] | list[Path]) -> None:
        """Open ``paths`` (files, folders, DICOMDIRs) in the browser, scanned in a worker
        thread, and show their first series when that is done (nothing is imported)."""
        self.statusBar().showMessage("Opening…")
        self.clear_problems()
        self.browser_dock.show()
        self.browser.open_media([Path(p) for p in paths], show_first=True)

    def _on_browser_media_opened(self, result: ScanResult, stacks: list[Stack]) -> None:
        self.statusBar().clearMessage()
        self._show_study(stacks, 0)

    def _on_browser_series_opened(self, stacks: list[Stack], row: int) -> None:
        self._show_study(stacks, row)

    def _show_study(self, stacks: list[Stack], row: int) -> None:
        """Show a study of the browser; the view owns the window once a series is open (the
        browser hides, Ctrl+B brings it back), and the strip says when there are others."""
        studies = len(self.browser.studies())
        note = f"({studies} studies here: Ctrl+B lists them)" if studies > 1 else ""
        self._patient = self.browser.selected_patient()
        self._set_stacks(stacks, current=row, whose=self.browser.selection().title, note=note)
        if stacks:
            self.browser_dock.hide()
        self.opened.emit(len(stacks))

    def view_paths(self, paths: list[str] | list[Path], *, demo: bool = False) -> None:
        """Show ``paths`` in the view only (the demo study): scanned in a worker thread, not
        listed in the browser, so that it cannot be imported. ``demo``: labelled as the demo
        (the series list's title and the window's) while it is on screen."""
        self._stop_worker()
        self._opening_demo = demo
        self.statusBar().showMessage("Opening…")
        targets = [Path(p) for p in paths]
        worker = Job("Open", lambda cancel, progress: open_paths(targets, cancel, progress))
        self._opening = targets
        worker.finished.connect(self._on_worker_finished)
        worker.failed.connect(self._on_worker_finished)
        worker.progress_changed.connect(self._on_worker_progress_changed)
        self._worker = worker
        self.jobs.start(worker)

    def _stop_worker(self) -> None:
        if self._worker is not None:
            self._worker.finished.disconnect(self._on_worker_finished)
            self._worker.failed.disconnect(self._on_worker_finished)
            self._worker.wait()
            self._worker = None

    def _on_worker_progress_changed(self, done: int, total: int) -> None:
        self.statusBar().showMessage(f"Opening… {done}/{total} files")

    def _on_worker_finished(self, result: OpenResult | Exception) -> None:
        worker = self._worker
        if self.sender() is not worker or worker is None:
            return
        self._worker = None
        self.jobs.forget(worker)
        if isinstance(result, Exception):  # say what failed, never a silent thread death
            names = ", ".join(str(p) for p in self._opening)
            result = OpenResult([], [model.Problem(names, f"cannot be opened: {result}")])
        self.statusBar().clearMessage()
        self.report_problems(result.problems)
        if self._opening_demo:
            self._set_stacks(result.stacks, whose=DEMO_LABEL, demo=True)
        else:
            self._set_stacks(result.stacks, whose="the opened files (not in the browser)")
        self.opened.emit(len(result.stacks))

    def _set_stacks(
        self,
        stacks: list[Stack],
        current: int = 0,
        whose: str = "",
        note: str = "",
        *,
        demo: bool = False,
    ) -> None:
        """The series list: ``stacks`` of one study, its patient and study named in the list's
        title (``whose``, then ``note``), so that the list never leaves in doubt whose series
        these are. ``demo``: the demo study (the window's title says so too)."""
        self._stacks = stacks
        self.showing_demo = demo and bool(stacks)
        text = escape(whose) + (f"\n{note}" if note else "")
        self.whose_label.setText(text if stacks else "")
        self.whose_label.setVisible(bool(whose and stacks))
        current = min(max(current, 0), len(stacks) - 1) if stacks else -1
        self.series_list.blockSignals(True)
        self.series_list.set_entries([_strip_entry(stack) for stack in stacks])
        self.series_list.setCurrentRow(current)
        self.series_list.blockSignals(False)
        # A new study fills the viewports from the chosen series on; nothing of the study
        # shown before stays beside it.
        self.grid.fill(stacks, current, lambda problem: self.report_problems([problem]))
        self._on_grid_active_changed(self.grid.active)
        if stacks:
            self.view.setFocus()
        else:
            self.statusBar().showMessage("No images found", 5000)

    @property
    def stacks(self) -> list[Stack]:
        return list(self._stacks)

    # ----------------------------------------------------------------- viewports
    @property
    def view(self) -> ImageView:
        """The active viewport's view: what keys and menus act on."""
        return self.grid.active.view

    def set_layout(self, rows: int, columns: int) -> None:
        """Show ``rows`` × ``columns`` viewports; new ones get the next series of the study."""
        before = len(self.grid.viewports)
        self.grid.set_shape(rows, columns)
        shown = {id(v.stack) for v in self.grid.viewports if v.stack is not None}
        waiting = [s for s in self._stacks if id(s) not in shown]
        for viewport in self.grid.viewports[before:]:
            if waiting:
                problem = viewport.show_stack(waiting.pop(0))
                if problem is not None:
                    self.report_problems([problem])

    def compare(self, stacks: list[Stack], patient: tuple[str, str]) -> None:
        """Show another study of the same patient beside the one on screen (a prior): its
        first series in a viewport other than the active one (1 × 2 if there is one only).
        Another patient's study is refused: two patients are never side by side."""
        if not stacks:
            return
        if not self._stacks or not any(v.source is not None for v in self.grid.viewports):
            self.statusBar().showMessage("Open a study first, then compare another with it", 8000)
            return
        if not _same_patient(patient, self._patient):
            self.statusBar().showMessage(
                f"Not compared: {escape(patient[1] or '(no name)')} is not "
                f"{escape(self._patient[1] or '(no name)')}; double-click the study to open it",
                10000,
            )
            return
        if len(self.grid.viewports) == 1:
            self.grid.set_shape(1, 2)
        active = self.grid.active
        others = [v for v in self.grid.viewports if v is not active]
        target = next((v for v in others if v.source is None), others[0])
        problem = target.show_stack(stacks[0])
        if problem is not None:
            self.report_problems([problem])
        self.statusBar().showMessage(
            "Compared beside: View > Link viewports > Link here makes them scroll together",
            10000,
        )

    # ----------------------------------------------------------------- measurements
    def set_measure_kind(self, kind: str | None) -> None:
        """What the left button draws in every viewport (None: it moves measurements, pans)."""
        for viewport in self.grid.viewports:
            viewport.view.set_measure_kind(kind)
        name = f"measure_{kind}" if kind else "measure_none"
        self.actions_by_name[name].setChecked(True)

    def _attach_board(self, viewport: Viewport) -> None:
        view = viewport.view
        view.board = self.board
        if self.grid.viewports and self.grid.viewports[0] is not viewport:
            view.set_measure_kind(self.grid.viewports[0].view.measure_kind)
        view.measurements_changed.connect(lambda v=view: self._on_measurements_changed(v))
        viewport.stack_shown.connect(self._load_measurements)

    def _repaint_views(self) -> None:
        for viewport in self.grid.viewports:
            viewport.view.update()

    def _load_measurements(self, stack: Stack) -> None:
        """The store's measurements of a series' images, once per image and session, read on a
        worker (the index may be busy with an import)."""
        store = self.browser.store
        uids = {ref.instance.sop_instance_uid for ref in stack.frames} - self._measured_uids
        if store is None or not uids:
            return
        self._measured_uids |= uids
        self._loading_uids |= uids

        def work(
            _cancel: threading.Event, _progress: Callable[..., None]
        ) -> tuple[list[measure.Measurement], list[model.Problem]]:
            return measurements_store.load(store, uids)

        job = Job("LoadMeasurements", work)
        job.finished.connect(lambda result: self._on_measurements_loaded(uids, result))
        job.failed.connect(lambda exc: self._on_measurements_not_loaded(uids, store, exc))
        self.jobs.start(job)

    def _on_measurements_loaded(
        self, uids: set[str], result: tuple[list[measure.Measurement], list[model.Problem]]
    ) -> None:
        found, problems = result
        self._loading_uids -= uids
        if found:
            self.board.load(found)
            self._repaint_views()
        changed = {key for key in self._changed_while_loading if key[0] in uids}
        self._changed_while_loading -= changed
        for key in changed:  # the kept shapes and the new ones, together
            self._save_measurements(key)
        if problems:
            self.report_problems(problems)

    def _on_measurements_not_loaded(self, uids: set[str], store: Store, exc: object) -> None:
        self._loading_uids -= uids
        lost = {key for key in self._changed_while_loading if key[0] in uids}
        self._changed_while_loading -= lost
        note = f"; {plural(len(lost), 'image')} drawn on meanwhile not kept" if lost else ""
        self.report_problems(
            [model.Problem(str(store.db_path), f"measurements cannot be read: {exc}{note}")]
        )

    def _on_measurements_changed(self, view: ImageView) -> None:
        self._repaint_views()
        key = view.measurement_key()
        if key is not None:
            self._save_measurements(key)

    def _save_measurements(self, key: mt.Key) -> None:
        """Keep one image's shapes in the store, on a worker (the index may be busy); a later
        change of the same image always wins over an earlier one still being written."""
        store = self.browser.store
        if store is None or store.read_only:
            return
        if key[0] in self._loading_uids:  # saved once the kept shapes are on the board
            self._changed_while_loading.add(key)
            return
        revision = self.board.revision
        shapes = self.board.shapes(key)
        saved, lock = self._saved, self._save_lock

        def work(_cancel: threading.Event, _progress: Callable[..., None]) -> None:
            with lock:
                if saved.get(key, -1) > revision:
                    return
                measurements_store.save_image(store, key[0], key[1], shapes)
                saved[key] = revision

        job = Job("SaveMeasurements", work)
        job.failed.connect(
            lambda exc: self.report_problems(
                [model.Problem(str(store.db_path), f"measurements not kept: {exc}")]
            )
        )
        self.jobs.start(job)

    def delete_measurement(self) -> None:
        selected = self.board.selected
        if selected is not None and self.board.remove_selected():
            self._repaint_views()
            self._save_measurements(selected.key)

    def clear_measurements(self) -> None:
        key = self.view.measurement_key()
        if key is not None and self.board.clear(key):
            self._repaint_views()
            self._save_measurements(key)

    def ask_save_path(self, suggestion: str) -> str:
        """Where to write a file (empty: cancelled); tests replace it."""
        path, _filter = QFileDialog.getSaveFileName(
            self, "Export measurements", suggestion, "CSV (*.csv)"
        )
        return path

    def export_measurements(self) -> None:
        """Every measurement of the images open, measured again from their files on a
        worker, as CSV (UTF-8 with a byte order mark, so that a spreadsheet reads names)."""
        items = list(self.board)
        if not items:
            self.statusBar().showMessage("No measurements to export", 5000)
            return
        target = self.ask_save_path(str(Path.home() / "measurements.csv"))
        if not target:
            return
        paths: dict[str, Path] = {}
        stacks = list(self._stacks) + [v.stack for v in self.grid.viewports if v.stack]
        for stack in stacks:
            for ref in stack.frames:
                paths.setdefault(ref.instance.sop_instance_uid, ref.path)

        def work(_cancel: threading.Event, _progress: Callable[..., None]) -> list[model.Problem]:
            text, problems = mt.csv_of(items, paths.get)
            Path(target).write_text(text, encoding="utf-8-sig", newline="")
            return problems

        job = Job("ExportMeasurements", work)
        job.finished.connect(lambda problems: self._on_measurements_exported(target, problems))
        job.failed.connect(
            lambda exc: self.report_problems([model.Problem(target, f"not written: {exc}")])
        )
        self.jobs.start(job)

    def export_measurements_sr(self) -> None:
        """The measurements on the images of the study the strip lists, as a TID 1500
        Measurement Report (Comprehensive SR) in that study, written on a worker from the
        images read again (:func:`viewer.imaging.sr_write.measurements_sr`)."""
        paths: dict[str, Path] = {}
        for stack in self._stacks:
            for ref in stack.frames:
                paths.setdefault(ref.instance.sop_instance_uid, ref.path)
        items = [item for item in self.board if item.sop_instance_uid in paths]
        if not items:
            self.statusBar().showMessage("No measurements on this study's images", 5000)
            return
        target = self.ask_save_path(str(Path.home() / "measurements-sr.dcm"))
        if not target:
            return

        def work(_cancel: threading.Event, _progress: Callable[..., None]) -> list[model.Problem]:
            datasets = {}
            for uid in {item.sop_instance_uid for item in items}:
                datasets[uid] = read_file(paths[uid]).dataset
            written = sr_write.measurements_sr(items, datasets, out_path=target)
            return [model.Problem(target, note) for note in written.notes]

        job = Job("ExportMeasurementsSR", work)
        job.finished.connect(lambda problems: self._on_measurements_exported(target, problems))
        job.failed.connect(
            lambda exc: self.report_problems([model.Problem(target, f"not written: {exc}")])
        )
        self.jobs.start(job)

    def _on_measurements_exported(self, target: str, problems: object) -> None:
        if isinstance(problems, list) and problems:
            self.report_problems(problems)
        self.statusBar().showMessage(f"Measurements written to {escape(target)}", 8000)
        self.measurements_exported.emit(target)

    def _on_mpr_shown(self, warnings: list[str]) -> None:
        """The three planes are shown: reference lines on (the crosshair), warnings said."""
        self.linker.every_plane = True
        self.linker.set_reference_lines(True)
        self.actions_by_name["reference_lines"].setChecked(True)
        label = self.view.source.label() if self.view.source is not None else "MPR"
        if warnings:
            self.report_problems([model.Problem(label, w) for w in warnings])
        self.statusBar().showMessage(
            "MPR: click a point on one plane to move the others through it", 10000
        )

    # ----------------------------------------------------------------- GSPS and key images
    def open_presentation_object(self, path: str) -> None:
        """A presentation state or a key object selection picked in the browser: read on a
        worker, then applied to the images it references (see :meth:`set_presentation`,
        :meth:`show_key_objects`)."""

        def work(_cancel: threading.Event, _progress: Callable[..., None]) -> object:
            try:
                return pstate.read_presentation_state(path)
            except pstate.PresentationError:
                return pstate.read_key_objects(path)

        job = Job("PresentationObject", work)
        job.finished.connect(self._on_presentation_object_read)
        job.failed.connect(
            lambda exc: self.report_problems([model.Problem(path, f"cannot be applied: {exc}")])
        )
        self.jobs.start(job)

    def _on_presentation_object_read(self, read: object) -> None:
        if isinstance(read, pstate.PresentationState):
            self.set_presentation(read)
        elif isinstance(read, pstate.KeyObjects):
            self.show_key_objects(read)

    def _locate(self, reference: pstate.ImageReference) -> tuple[int, int] | None:
        """(stack row, position) of a referenced image among the study's stacks."""
        for row, stack in enumerate(self._stacks):
            for position, ref in enumerate(stack.frames):
                if ref.instance.sop_instance_uid == reference.sop_instance_uid and (
                    not reference.frames or ref.frame_index + 1 in reference.frames
                ):
                    return row, position
        return None

    def set_presentation(self, gsps: pstate.PresentationState | None) -> None:
        """Show the first image ``gsps`` references with it applied (every viewport applies
        it to the images it references); None takes it off."""
        self._presentation = gsps
        if gsps is None:
            for viewport in self.grid.viewports:
                viewport.view.set_presentation(None)
            return
        found = next(
            (where for ref in gsps.references if (where := self._locate(ref)) is not None), None
        )
        if found is None:
            self.statusBar().showMessage(
                "The presentation state refers to images this study does not hold", 10000
            )
            return
        row, position = found
        if self.grid.active.stack is not self._stacks[row]:
            self.show_stack(row)
        self.view.set_position(position)
        for viewport in self.grid.viewports:
            viewport.view.set_presentation(gsps)
        if gsps.notes:
            self.report_problems([model.Problem(gsps.label or "GSPS", n) for n in gsps.notes])
        self.statusBar().showMessage(
            f"Presentation state {escape(gsps.label)} applied (View > Presentation state off)",
            10000,
        )

    def show_key_objects(self, key_objects: pstate.KeyObjects) -> None:
        """Mark the key images in every viewport and show the first (K / Shift+K step)."""
        self._key_cursor = pstate.KeyImageCursor(key_objects)
        marks = {
            (ref.sop_instance_uid, frame)
            for ref in key_objects.images
            for frame in (ref.frames or (1,))
        }
        for viewport in self.grid.viewports:
            viewport.view.key_images = marks
            viewport.view.update()
        count = plural(len(key_objects.images), "key image")
        title = key_objects.title or "Key images"
        self.statusBar().showMessage(f"{escape(title)}: {count} (K next, Shift+K previous)", 10000)
        if key_objects.note:
            self.report_problems([model.Problem(title, f"note: {key_objects.note}")])
        self.step_key_image(0)

    def step_key_image(self, step: int) -> None:
        cursor = self._key_cursor
        if cursor is None or not cursor.key_objects.images:
            return
        for _ in range(abs(step)):
            cursor = cursor.next() if step > 0 else cursor.previous()
        self._key_cursor = cursor
        reference = cursor.current
        found = self._locate(reference) if reference is not None else None
        if found is None:
            self.statusBar().showMessage("That key image is not in the study shown", 8000)
            return
        row, position = found
        if self.grid.active.stack is not self._stacks[row]:
            self.show_stack(row)
        self.view.set_position(position)

    def show_tag_inspector(self) -> TagInspector | None:
        """The data set of the image shown in the active viewport, in a dialog (read again
        on a worker: every element, not only the header the view keeps)."""
        source = self.view.source
        if source is None or len(source) == 0:
            self.statusBar().showMessage("Open an image first", 5000)
            return None
        path = Path(source.path(self.view.position))
        if self._inspector is not None:
            self._inspector.shutdown()
            self._inspector.close()
            self._inspector.deleteLater()
        self._inspector = TagInspector(path, self)
        self._inspector.show()
        return self._inspector

    def _link_here(self) -> None:
        if self.linker.link_here():
            self.actions_by_name["link_scroll"].setChecked(True)

    def _on_layout_menu_about_to_show(self) -> None:
        shape = self.grid.shape
        for rows, columns in LAYOUTS:
            self.actions_by_name[f"layout_{rows}x{columns}"].setChecked((rows, columns) == shape)

    def _on_custom_layout_triggered(self) -> None:
        rows, columns = self.ask_layout(*self.grid.shape)
        if rows and columns:
            self.set_layout(rows, columns)

    def ask_layout(self, rows: int, columns: int) -> tuple[int, int]:
        """Rows and columns from the user (0, 0 when cancelled); tests replace it."""
        from PySide6.QtWidgets import QInputDialog

        text, ok = QInputDialog.getText(
            self,
            "Custom layout",
            f"Rows × columns (at most {MAX_SIDE} × {MAX_SIDE}):",
            text=f"{rows}x{columns}",
        )
        parts = text.lower().replace("×", "x").split("x") if ok else []
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            return 0, 0
        return int(parts[0]), int(parts[1])

    def _on_grid_viewport_added(self, viewport: Viewport) -> None:
        view = viewport.view
        view.pixel_probed.connect(self.pixel_label.setText)
        view.window_changed.connect(self._on_view_window_changed)
        view.view_changed.connect(self._on_view_view_changed)
        view.image_shown.connect(self._on_view_image_shown)
        viewport.problem_found.connect(lambda problem: self.report_problems([problem]))
        viewport.progress.connect(self._on_viewport_progress)
        viewport.series_dropped.connect(self._on_viewport_series_dropped)
        viewport.browser_series_dropped.connect(self._on_viewport_browser_series_dropped)

    def _on_grid_active_changed(self, viewport: Viewport) -> None:
        """Another viewport is active: the strip, the title and the menus follow it."""
        source = viewport.source
        title = "Lightbox — DEMO" if self.showing_demo else "Lightbox"
        self.setWindowTitle(f"{title} — {source.label()}" if source is not None else title)
        row = next((k for k, s in enumerate(self._stacks) if s is viewport.stack), -1)
        self.series_list.blockSignals(True)
        self.series_list.setCurrentRow(row)
        self.series_list.blockSignals(False)
        self._on_view_window_changed()
        self._on_view_view_changed()

    def _on_viewport_progress(self, text: str, timeout: int) -> None:
        if self.sender() is self.grid.active:
            self.statusBar().showMessage(text, timeout)

    def _on_viewport_series_dropped(self, viewport: Viewport, row: int) -> None:
        if 0 <= row < len(self._stacks):
            self.grid.set_active(viewport)
            self.show_stack(row)

    def _on_viewport_browser_series_dropped(self, viewport: Viewport, row: int) -> None:
        """A series dragged from the browser: shown in that viewport when it is the patient's
        on screen (or nothing is shown); another patient's is refused."""
        stack = self.browser.series_stack(row)
        if stack is None:
            self.statusBar().showMessage("That series holds no images to show here", 8000)
            return
        showing = any(v.source is not None for v in self.grid.viewports)
        patient = self.browser.selected_patient()
        if showing and self._stacks and not _same_patient(patient, self._patient):
            self.statusBar().showMessage(
                f"Not shown: {escape(patient[1] or '(no name)')} is not "
                f"{escape(self._patient[1] or '(no name)')}; double-click the study to open it",
                10000,
            )
            return
        self.grid.set_active(viewport)
        problem = viewport.show_stack(stack)
        if problem is not None:
            self.report_problems([problem])
        self._on_grid_active_changed(viewport)

    def _on_series_list_current_row_changed(self, row: int) -> None:
        if 0 <= row < len(self._stacks):
            self.show_stack(row)

    def show_stack(self, row: int) -> None:
        """Show stack ``row`` in the active viewport: its first image as soon as it is
        decoded, the rest as they come."""
        viewport = self.grid.active
        problem = viewport.show_stack(self._stacks[row])
        if problem is not None:
            self.report_problems([problem])
        self._on_grid_active_changed(viewport)
        self.view.setFocus()

    def _show_source(self, source: FrameSource | None) -> None:
        """Show ``source`` in the active viewport (the series strip does not list it)."""
        self.grid.active.set_source(source)
        self._on_grid_active_changed(self.grid.active)

    @property
    def decoded_count(self) -> int:
        """Frames of the active viewport's series decoded so far."""
        return self.grid.active.decoded_count

    def _on_view_image_shown(self, position: int) -> None:
        viewport = next((v for v in self.grid.viewports if v.view is self.sender()), None)
        if viewport is not None and viewport.shown_since is not None:
            elapsed = (time.perf_counter() - viewport.shown_since) * 1000
            viewport.shown_since = None
            log.debug("first image shown (%.0f ms after the series was chosen)", elapsed)

    # ----------------------------------------------------------------- problems
    def report_problems(self, problems: list[model.Problem]) -> None:
        """List problems in the panel and on stderr; each names its file and what is wrong, and
        each fact once (:func:`viewer.model.merge_problems`)."""
        shown = {p.key for p in self._problems}
        problems = [p for p in model.merge_problems(problems) if p.key not in shown]
        if not problems:
            return
        for problem in problems:
            self._problems.append(problem)
            # The loader's messages already start with the file's path.
            text = (
                escape(problem.problem)
                if problem.problem.startswith(problem.path)
                else str(problem)  # escaped: one line, no control character from a disc
            )
            self.problems_list.addItem(text)
            print(f"lightbox: {text}", file=sys.stderr)
        # A count in the status bar that opens the panel on demand: the panel no longer pops
        # up over the image (it shrank a CT to 43 %).
        self._show_problem_count()
        self.problems_reported.emit(list(problems))

    def _show_problem_count(self) -> None:
        count = len(self._problems)
        self.problems_button.setText(f"⚠ {plural(count, 'problem')}")
        self.problems_button.setVisible(count > 0)

    def clear_problems(self) -> None:
        """A new medium: the problems of the earlier one go (they are not this disc's)."""
        self._problems.clear()
        self.problems_list.clear()
        self._show_problem_count()
        self.problems_dock.hide()

    def _on_problems_button_clicked(self) -> None:
        self.problems_dock.setVisible(not self.problems_dock.isVisible())

    @property
    def problems(self) -> list[model.Problem]:
        return list(self._problems)

    # ----------------------------------------------------------------- drag and drop
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if _local_paths(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = _local_paths(event.mimeData())
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths)
        else:
            event.ignore()

    # ----------------------------------------------------------------- closing
    def closeEvent(self, event: QCloseEvent) -> None:
        self.save_settings()
        self.shutdown()
        super().closeEvent(event)

    def _on_export_triggered(self) -> None:
        paths = self.browser.selected_paths()
        if not paths:
            QMessageBox.information(self, "Export", "Select a study in the browser first.")
            return
        if self._export_wizard is not None:
            self._export_wizard.shutdown()
        self._export_wizard = open_export_wizard(self, paths)

    def _on_network_study_retrieved(self, study_instance_uid: str) -> None:
        """A retrieve finished. An empty view shows the study; a view showing images keeps
        them (nothing switches what a reader is looking at unasked): the study is offered by
        the "Show retrieved study" button in the status bar, and listed in the store."""
        if all(v.source is None for v in self.grid.viewports):
            self.browser.select_study(study_instance_uid)
            return
        if not self.browser.showing_media:
            self.browser.refresh()
        self._offered_study = study_instance_uid
        self.offer_button.setVisible(True)
        self.statusBar().showMessage("A retrieved study is in the local store", 15000)

    def _on_offer_button_clicked(self) -> None:
        uid, self._offered_study = self._offered_study, None
        self.offer_button.setVisible(False)
        if uid is not None:
            self.browser.select_study(uid)

    def _on_network_study_received(self, _study_instance_uid: str) -> None:
        if not self.browser.showing_media:
            self.browser.refresh()

    def shutdown(self) -> None:
        """Stop the open worker and the series loader; nothing runs after the window."""
        self.network.shutdown()
        if self._export_wizard is not None:
            self._export_wizard.shutdown()
        if self._inspector is not None:
            self._inspector.shutdown()
        for viewport in self.grid.viewports:
            viewport.view.stop_cine()
        self._stop_worker()
        self.browser.shutdown()
        self.grid.clear()
        self.jobs.wait_all(timeout=60.0)


def _same_patient(a: tuple[str, str], b: tuple[str, str]) -> bool:
    """One patient by ID when both have one, else by name (as the browser's rows show them)."""
    if a[0] and b[0]:
        return a[0] == b[0]
    return bool(a[1]) and a[1] == b[1] and not (a[0] or b[0])


def _strip_entry(stack: Stack) -> StripEntry:
    """A stack beside the view: its label, its first file, its middle image drawn."""
    middle = stack.frames[len(stack.frames) // 2].instance if stack.frames else None
    return StripEntry(
        stack_caption(stack), str(stack.frames[0].path) if stack.frames else "", middle
    )


def _local_paths(mime: object) -> list[str]:
    from PySide6.QtCore import QMimeData

    if not isinstance(mime, QMimeData) or not mime.hasUrls():
        return []
    return [url.toLocalFile() for url in mime.urls() if url.isLocalFile()]
