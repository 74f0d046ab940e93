"""The export wizard: IHE PDI media (a folder or USB stick, an ISO image, a disc) from the
browser's selection, de-identified on request, size-checked, written and read back.

Pages: target, profile and label, de-identification (PS3.15 Annex E options), size check
(:func:`viewer.media.writer.plan_media`), writing with progress and cancel, and the verification
report. Drive detection, planning and writing run on :class:`viewer.qt.jobs.Job` threads; the GUI
thread only shows what they report through queued signals (STYLE.md, threads rule 3). A cancelled
write removes what it wrote, so that no folder is left looking like complete media.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from viewer.media import iso, writer
from viewer.media.deidentify import Deidentifier, DeidentifyOptions
from viewer.media.plan import Cancelled, MediaError, Plan, contents_lines
from viewer.qt.jobs import Job, JobSet
from viewer.text import escape, plural

log = logging.getLogger(__name__)

PROFILES = {
    "cd": "STD-GEN-CD: uncompressed, read by every viewer (CD, 700 MB)",
    "dvd-jpeg": "STD-GEN-DVD-JPEG: JPEG kept as JPEG (DVD, 4.7 GB)",
    "usb-jpeg": "STD-GEN-USB-JPEG: JPEG kept as JPEG (USB stick or folder, no size limit)",
}
WRITTEN_NAMES = writer.WRITTEN_NAMES
"""What the writer puts in a target folder (its incomplete-marker too): what a cancelled
write removes again."""

TARGET_FOLDER, TARGET_ISO, TARGET_DISC = "folder", "iso", "disc"


# --- pages ---------------------------------------------------------------------------------


class TargetPage(QWizardPage):
    """Where the media go: a folder (a USB stick's folder too), an ISO image, or a disc."""

    def __init__(self, wizard: ExportWizard, default_name: str) -> None:
        super().__init__()
        self._wizard = wizard
        self.setTitle("Where to write")
        self.setSubTitle(
            "A folder (also on a USB stick), an ISO image to burn later, or a disc in a "
            "writer drive. The folder must not already hold DICOM media."
        )
        base = Path.home() / default_name
        self.folder_radio = QRadioButton("Folder or USB stick")
        self.iso_radio = QRadioButton("ISO image file")
        self.disc_radio = QRadioButton("Disc (CD/DVD writer)")
        self.folder_radio.setChecked(True)
        group = QButtonGroup(self)
        for button in (self.folder_radio, self.iso_radio, self.disc_radio):
            group.addButton(button)
            button.toggled.connect(self._on_kind_toggled)
        self.folder_edit = QLineEdit(str(base))
        self.iso_edit = QLineEdit(str(base.with_suffix(".iso")))
        self.drive_combo = QComboBox()
        self.drive_status = QLabel("")
        self.detect_button = QPushButton("Detect drives")
        self.detect_button.clicked.connect(self._on_detect_button_clicked)
        self.folder_browse = folder_browse = QPushButton("Browse…")
        folder_browse.clicked.connect(self._on_folder_browse_clicked)
        self.iso_browse = iso_browse = QPushButton("Browse…")
        iso_browse.clicked.connect(self._on_iso_browse_clicked)

        layout = QVBoxLayout(self)
        layout.addWidget(self.folder_radio)
        row = QHBoxLayout()
        row.addWidget(self.folder_edit)
        row.addWidget(folder_browse)
        layout.addLayout(row)
        layout.addWidget(self.iso_radio)
        row = QHBoxLayout()
        row.addWidget(self.iso_edit)
        row.addWidget(iso_browse)
        layout.addLayout(row)
        layout.addWidget(self.disc_radio)
        row = QHBoxLayout()
        row.addWidget(self.drive_combo, 1)
        row.addWidget(self.detect_button)
        layout.addLayout(row)
        layout.addWidget(self.drive_status)
        layout.addStretch(1)
        for edit in (self.folder_edit, self.iso_edit):
            edit.textChanged.connect(self.completeChanged)
        self._on_kind_toggled()

    @property
    def kind(self) -> str:
        if self.iso_radio.isChecked():
            return TARGET_ISO
        if self.disc_radio.isChecked():
            return TARGET_DISC
        return TARGET_FOLDER

    @property
    def target(self) -> str:
        if self.kind == TARGET_ISO:
            return self.iso_edit.text().strip()
        if self.kind == TARGET_DISC:
            return str(self.drive_combo.currentData() or "")
        return self.folder_edit.text().strip()

    def isComplete(self) -> bool:
        return bool(self.target)

    def _on_kind_toggled(self) -> None:
        kind = self.kind
        self.folder_edit.setEnabled(kind == TARGET_FOLDER)
        self.folder_browse.setEnabled(kind == TARGET_FOLDER)
        self.iso_edit.setEnabled(kind == TARGET_ISO)
        self.iso_browse.setEnabled(kind == TARGET_ISO)
        self.drive_combo.setEnabled(kind == TARGET_DISC)
        self.detect_button.setEnabled(kind == TARGET_DISC)
        if kind == TARGET_DISC and self.drive_combo.count() == 0 and not self._wizard.busy:
            self._on_detect_button_clicked()
        self.completeChanged.emit()

    def _on_folder_browse_clicked(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Folder for the media")
        if chosen:
            self.folder_edit.setText(chosen)

    def _on_iso_browse_clicked(self) -> None:
        chosen, _ = QFileDialog.getSaveFileName(
            self, "ISO image", self.iso_edit.text(), "ISO images (*.iso)"
        )
        if chosen:
            self.iso_edit.setText(chosen)

    def _on_detect_button_clicked(self) -> None:
        """``xorriso -devices`` can take seconds: a worker asks it."""
        self.drive_status.setText("Looking for writer drives…")
        self.detect_button.setEnabled(False)
        self._wizard.run_job(
            "DetectDrives",
            lambda _cancel, _progress: iso.detect_drives(),
            self._on_drives_found,
            self._on_drives_failed,
        )

    def _on_drives_found(self, drives: list[iso.Drive]) -> None:
        self.drive_combo.clear()
        for drive in drives:
            self.drive_combo.addItem(f"{drive.device}  {drive.description}", drive.device)
        self.drive_status.setText(
            f"{len(drives)} writer drive(s) found." if drives else "No writer drive found."
        )
        self.detect_button.setEnabled(self.kind == TARGET_DISC)
        self.completeChanged.emit()

    def _on_drives_failed(self, message: str, _cancelled: bool) -> None:
        self.drive_status.setText(message)
        self.detect_button.setEnabled(self.kind == TARGET_DISC)


class ProfilePage(QWizardPage):
    """The media profile (PS3.11) and the label text (README.TXT and the printed label)."""

    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Media profile and label")
        self.setSubTitle(
            "STD-GEN-CD is read by every DICOM viewer. The label text goes into README.TXT "
            "and onto the printed label, never into file names or the volume ID."
        )
        self.profile_combo = QComboBox()
        for name, text in PROFILES.items():
            self.profile_combo.addItem(text, name)
        self.label_edit = QLineEdit()
        self.label_edit.setPlaceholderText("patient, date, institution, DICOM PLUS WEB")
        form = QFormLayout(self)
        form.addRow("Profile:", self.profile_combo)
        form.addRow("Label text:", self.label_edit)

    @property
    def profile(self) -> str:
        return str(self.profile_combo.currentData())

    @property
    def label(self) -> str:
        return self.label_edit.text().strip()


class DeidentifyPage(QWizardPage):
    """De-identification for research and teaching (never the default): PS3.15 Annex E Basic
    Profile and the options :class:`viewer.media.deidentify.DeidentifyOptions` offers."""

    def __init__(self) -> None:
        super().__init__()
        self.setTitle("De-identification")
        self.setSubTitle(
            "For research and teaching only. A disc for the patient or another doctor is "
            "written as it is: leave this off."
        )
        self.enable_box = QCheckBox("De-identify (DICOM PS3.15 Basic Application Profile)")
        self.options_box = QGroupBox("Retain")
        self.dates_remove = QRadioButton("Remove dates (Basic Profile)")
        self.dates_keep = QRadioButton("Keep full dates")
        self.dates_shift = QRadioButton("Shift every date by")
        self.dates_remove.setChecked(True)
        self.shift_days = QSpinBox()
        self.shift_days.setRange(-36500, 36500)
        self.shift_days.setValue(-365)
        self.shift_days.setSuffix(" days")
        self.keep_characteristics = QCheckBox("Patient characteristics (age, sex, size, weight)")
        self.keep_device = QCheckBox("Device identity (station name, serial numbers)")
        self.keep_uids = QCheckBox("UIDs (study, series and instance UIDs unchanged)")
        group = QButtonGroup(self)
        for button in (self.dates_remove, self.dates_keep, self.dates_shift):
            group.addButton(button)
        inner = QVBoxLayout(self.options_box)
        inner.addWidget(self.dates_remove)
        inner.addWidget(self.dates_keep)
        row = QHBoxLayout()
        row.addWidget(self.dates_shift)
        row.addWidget(self.shift_days)
        row.addStretch(1)
        inner.addLayout(row)
        inner.addWidget(self.keep_characteristics)
        inner.addWidget(self.keep_device)
        inner.addWidget(self.keep_uids)
        note = QLabel(
            "Pixels are not changed: ultrasound, secondary capture and images with burned-in "
            "annotation may still show a name; the report warns about them."
        )
        note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.enable_box)
        layout.addWidget(self.options_box)
        layout.addWidget(note)
        layout.addStretch(1)
        self.enable_box.toggled.connect(self.options_box.setEnabled)
        self.options_box.setEnabled(False)

    def options(self) -> DeidentifyOptions | None:
        if not self.enable_box.isChecked():
            return None
        return DeidentifyOptions(
            keep_dates=self.dates_keep.isChecked(),
            shift_dates=self.shift_days.value() if self.dates_shift.isChecked() else None,
            keep_characteristics=self.keep_characteristics.isChecked(),
            keep_device=self.keep_device.isChecked(),
            keep_uids=self.keep_uids.isChecked(),
        )


class SizeCheckPage(QWizardPage):
    """Reads every header (in a worker) and says how many discs the selection needs, or why it
    cannot be written on the chosen medium."""

    def __init__(self, wizard: ExportWizard) -> None:
        super().__init__()
        self._wizard = wizard
        self.setTitle("Size check")
        self.setSubTitle("Every file's header is read to plan the media.")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addWidget(self.details, 1)
        self.plan: Plan | None = None
        # Writing cannot be taken back: past this page there is no Back button.
        self.setCommitPage(True)
        self.setButtonText(QWizard.WizardButton.CommitButton, "Write")

    def initializePage(self) -> None:
        self.plan = None
        self.details.clear()
        self.status.setText(f"Reading {len(self._wizard.paths)} file(s)…")
        profile = self._wizard.profile_page.profile
        paths = list(self._wizard.paths)
        self._wizard.run_job(
            "PlanMedia",
            lambda _cancel, _progress: writer.plan_media(paths, profile=profile),
            self._on_planned,
            self._on_plan_failed,
        )
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return self.plan is not None

    def _on_planned(self, plan: Plan) -> None:
        files = sum(len(s.files) for disc in plan.discs for s in disc)
        studies = sum(len(disc) for disc in plan.discs)
        size = plan.total_size / 1e6
        count = len(plan.discs)
        kind = self._wizard.target_page.kind
        # Whose images these are, before anything is written (values escaped for the screen).
        lines = [escape(line) for line in contents_lines([s for d in plan.discs for s in d])]
        if lines:
            lines.append("")
        if plan.skipped:
            lines += [f"{len(plan.skipped)} file(s) will not be written:", *plan.skipped, ""]
        if plan.changes:
            lines += [
                f"{len(plan.changes)} change(s) the media need (listed in the report too):",
                *(str(c) for c in plan.changes),
            ]
        if self._wizard.deidentify_page.options() is not None:
            lines += ["", "De-identified copies are made first; their size is about the same."]
        self.details.setPlainText("\n".join(lines).strip())
        self.details.setVisible(bool(lines))
        if count == 0:
            self.status.setText("Nothing can be written: " + "; ".join(plan.skipped[:3]))
            self.completeChanged.emit()
            return
        if count > 1 and kind == TARGET_DISC:
            self.status.setText(
                f"{plural(files, 'file')} in {plural(studies, 'study', 'studies')}, "
                f"{size:.0f} MB: this needs {count} "
                f"{plan.medium.label}s. Write ISO images (one per disc) and burn them one by "
                "one, or choose the DVD profile."
            )
            self.completeChanged.emit()
            return
        self.plan = plan
        if count == 1:
            where = f"fits on one {plan.medium.label}"
        else:
            target = Path(self._wizard.target_page.target)
            names = (
                iso.iso_paths(target, count)
                if kind == TARGET_ISO
                else writer.disc_roots(target, count)
            )
            where = (
                f"needs {count} {plan.medium.label}s, each a complete file-set with its own "
                f"DICOMDIR (no study split): {', '.join(p.name for p in names)}"
            )
        self.status.setText(
            f"{plural(files, 'file')} in {plural(studies, 'study', 'studies')}, {size:.1f} MB, "
            "profile "
            f"{plan.profile.name}: {where}."
        )
        self.completeChanged.emit()

    def _on_plan_failed(self, message: str, _cancelled: bool) -> None:
        self.status.setText(f"Cannot be written: {message}")
        self.completeChanged.emit()


class WritePage(QWizardPage):
    """Writing in a worker, with progress and a cancel that removes the partial media."""

    def __init__(self, wizard: ExportWizard) -> None:
        super().__init__()
        self._wizard = wizard
        self.setTitle("Writing")
        self.setSubTitle("The media are written, then every file is read back and checked.")
        self.progress = QProgressBar()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.cancel_button = QPushButton("Cancel writing")
        self.cancel_button.clicked.connect(self._on_cancel_button_clicked)
        layout = QVBoxLayout(self)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
        layout.addStretch(1)
        self.report: writer.WriteReport | None = None
        self.error = ""
        self.cancelled = False

    def initializePage(self) -> None:
        self.report = None
        self.error = ""
        self.cancelled = False
        self.progress.setRange(0, 0)
        self.status.setText("Starting…")
        self.cancel_button.setEnabled(True)
        self._wizard.start_writing(self._on_progress_changed, self._on_written, self._on_failed)
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return self.report is not None

    def _on_cancel_button_clicked(self) -> None:
        self.cancel_button.setEnabled(False)
        self.status.setText("Cancelling…")
        self._wizard.cancel_job()

    def _on_progress_changed(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.status.setText(f"{done} of {total}")

    def _on_written(self, report: writer.WriteReport) -> None:
        self.report = report
        self.cancel_button.setEnabled(False)
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.status.setText("Written and read back." if report.ok else "Written, with problems.")
        self.completeChanged.emit()
        self._wizard.next()

    def _on_failed(self, message: str, cancelled: bool) -> None:
        self.cancelled = cancelled
        self.error = message
        self.cancel_button.setEnabled(False)
        removed = self._wizard.remove_partial()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        if cancelled:
            self.status.setText(
                "Cancelled. " + (f"Removed the incomplete media: {removed}." if removed else "")
            )
        else:
            self.status.setText(
                f"Failed: {message}"
                + (f"\nRemoved the incomplete media: {removed}." if removed else "")
            )
        self._wizard.job_ended.emit()


class ReportPage(QWizardPage):
    """The verification report: the facts first (what went where, what was checked, what
    changed, warnings), then the full report of the writer and of the read-back."""

    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Verification report")
        self.headline = QLabel("")
        font = QFont(self.headline.font())
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.2)
        self.headline.setFont(font)
        self.headline.setWordWrap(True)
        self.facts = QLabel("")
        self.facts.setWordWrap(True)
        self.facts.setTextFormat(Qt.TextFormat.PlainText)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        layout = QVBoxLayout(self)
        layout.addWidget(self.headline)
        layout.addWidget(self.facts)
        layout.addWidget(QLabel("Full report:"))
        layout.addWidget(self.text, 1)

    def show_report(self, report: writer.WriteReport) -> None:
        if report.ok:
            self.headline.setText("✔ Verified: every file was read back and matches.")
            self.headline.setStyleSheet("color: #1b7a2b;")
        else:
            self.headline.setText("✘ Problems found on the written media: see the report.")
            self.headline.setStyleSheet("color: #b00020;")
        files = sum(len(d.files) for d in report.discs)
        facts = [
            f"Written: {files} DICOM file(s), profile {report.profile}, "
            f"{len(report.discs)} disc(s) / file-set(s):",
            *(
                f"    {d.index} of {d.count}: {d.root}  (File-set ID {d.fileset_id})"
                for d in report.discs
            ),
        ]
        for result in report.verification:
            read = getattr(result, "files_read", "?")
            state = "OK" if getattr(result, "ok", False) else "PROBLEMS"
            checked = len(getattr(result, "checked", []))
            facts.append(
                f"Read back: {getattr(result, 'path', '')}: {state}, {read} file(s) read, "
                f"{checked} check(s)"
            )
        if report.deidentification:
            facts.append(f"De-identified: {report.deidentification}")
        facts.append(
            f"{len(report.changes)} change(s) to datasets beyond the File Meta, "
            f"{len(report.skipped)} file(s) not written, {len(report.warnings)} warning(s)"
        )
        facts += [f"⚠ {w}" for w in report.warnings[:5]]
        self.facts.setText("\n".join(facts))
        self.text.setPlainText(report.summary())


# --- the wizard ----------------------------------------------------------------------------


class ExportWizard(QWizard):
    """From a list of DICOM files to verified media. ``written`` carries the
    :class:`viewer.media.writer.WriteReport` once the media are written and read back."""

    written = Signal(object)
    job_ended = Signal()

    def __init__(
        self,
        paths: list[str] | list[Path] | list[str | Path],
        default_name: str = "LIGHTBOX_EXPORT",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export to CD, DVD, USB stick or folder")
        self.setWizardStyle(QWizard.WizardStyle.ClassicStyle)
        self.setOption(QWizard.WizardOption.NoBackButtonOnLastPage, True)
        self.setOption(QWizard.WizardOption.NoCancelButtonOnLastPage, True)
        self.paths = [Path(p) for p in paths]
        self.jobs = JobSet(self)
        self.jobs.job_ended.connect(self._on_job_ended)
        self._callbacks: dict[Job, tuple[Any, Any, Any]] = {}
        self._written_roots: list[tuple[Path, bool]] = []
        self._closing = False
        self.target_page = TargetPage(self, default_name or "LIGHTBOX_EXPORT")
        self.profile_page = ProfilePage()
        self.deidentify_page = DeidentifyPage()
        self.size_page = SizeCheckPage(self)
        self.write_page = WritePage(self)
        self.report_page = ReportPage()
        for page in (
            self.target_page,
            self.profile_page,
            self.deidentify_page,
            self.size_page,
            self.write_page,
            self.report_page,
        ):
            self.addPage(page)
        self.currentIdChanged.connect(self._on_current_id_changed)
        self.resize(680, 500)

    # --- jobs ------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self.jobs.busy()

    def run_job(
        self,
        name: str,
        work: Callable[[threading.Event, Callable[[int, int], None]], Any],
        on_finished: Callable[[Any], None],
        on_failed: Callable[[str, bool], None],
        on_progress: Callable[[int, int], None] | None = None,
    ) -> Job:
        """``work`` on a :class:`viewer.qt.jobs.Job`; ``on_failed(message, cancelled)``. The
        callbacks run in the GUI thread (this wizard's slots receive the job's signals)."""
        job = Job(name, work)
        self._callbacks[job] = (on_finished, on_failed, on_progress)
        job.finished.connect(self._on_job_finished)
        job.failed.connect(self._on_job_failed)
        job.progress_changed.connect(self._on_job_progress)
        self.jobs.start(job)
        return job

    def _on_job_progress(self, done: int, total: int) -> None:
        callbacks = self._callbacks.get(self.sender())  # type: ignore[call-overload]
        if callbacks is not None and callbacks[2] is not None:
            callbacks[2](done, total)

    def _on_job_finished(self, result: Any) -> None:
        callbacks = self._callbacks.get(self.sender())  # type: ignore[call-overload]
        if callbacks is not None:
            callbacks[0](result)

    def _on_job_failed(self, error: Exception) -> None:
        callbacks = self._callbacks.get(self.sender())  # type: ignore[call-overload]
        if callbacks is None:
            return
        if isinstance(error, Cancelled):
            callbacks[1](str(error), True)
        elif isinstance(error, MediaError | OSError | ValueError):
            callbacks[1](str(error), False)
        else:
            callbacks[1](f"unexpected error: {error}", False)

    def _on_job_ended(self, job: Job) -> None:
        """The job has sent its last signal and been joined."""
        self._callbacks.pop(job, None)
        job.deleteLater()
        self.job_ended.emit()
        if self._closing and not self.jobs.jobs():
            super().reject()

    def cancel_job(self) -> None:
        self.jobs.cancel_all()

    def start_writing(
        self,
        on_progress: Callable[[int, int], None],
        on_finished: Callable[[writer.WriteReport], None],
        on_failed: Callable[[str, bool], None],
    ) -> None:
        kind = self.target_page.kind
        target = self.target_page.target
        profile = self.profile_page.profile
        label = self.profile_page.label
        plan = self.size_page.plan
        options = self.deidentify_page.options()
        deidentifier = Deidentifier(options) if options is not None else None
        paths = list(self.paths)
        count = len(plan.discs) if plan is not None else 1
        self._written_roots = []
        if kind == TARGET_FOLDER:
            # Remember which folders existed, so that a cancel removes only what we wrote.
            for root in writer.disc_roots(Path(target), count):
                self._written_roots.append((root, root.exists()))

        def job(cancel: threading.Event, progress: Callable[[int, int], None]) -> Any:
            common: dict[str, Any] = {
                "profile": profile,
                "label": label,
                "plan": plan,
                "cancel": cancel,
                "progress": progress,
                "deidentify": deidentifier,
            }
            if kind == TARGET_ISO:
                return iso.write_iso(paths, target, **common)
            if kind == TARGET_DISC:
                return iso.burn(paths, target, **common)
            return writer.write_media(paths, target, **common)

        self.run_job("ExportWriter", job, on_finished, on_failed, on_progress)

    def remove_partial(self) -> str:
        """After a cancel or failure: delete what the writer put in the target folders (the
        folder itself when we created it). Returns what was removed, for the message."""
        removed: list[str] = []
        for root, existed in self._written_roots:
            if not root.exists():
                continue
            if not existed:
                shutil.rmtree(root, ignore_errors=True)
                removed.append(str(root))
                continue
            for name in WRITTEN_NAMES:
                path = root / name
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                    removed.append(str(path))
                elif path.exists():
                    path.unlink()
                    removed.append(str(path))
        self._written_roots = []
        return ", ".join(removed)

    # --- navigation ------------------------------------------------------------------------

    def _on_current_id_changed(self, page_id: int) -> None:
        if self.page(page_id) is self.report_page and self.write_page.report is not None:
            report = self.write_page.report
            self.report_page.show_report(report)
            self.written.emit(report)

    def reject(self) -> None:
        """Cancel while writing: stop the worker, remove the partial media, then close."""
        if self.jobs.jobs():
            self._closing = True
            self.cancel_job()
            return
        super().reject()

    def shutdown(self) -> None:
        """Join every worker (the application quitting, or a test ending)."""
        self.jobs.wait_all(timeout=60.0)

    def done(self, result: int) -> None:
        self.shutdown()
        super().done(result)


def open_export_wizard(
    parent: QWidget | None,
    paths: list[str] | list[Path] | list[str | Path],
    default_name: str = "LIGHTBOX_EXPORT",
) -> ExportWizard:
    """Show the export wizard for ``paths`` (the browser's selection), not modal."""
    wizard = ExportWizard(paths, default_name, parent)
    wizard.show()
    return wizard
