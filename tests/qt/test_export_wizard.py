"""The export wizard driven by real clicks: to a folder, read back and verified; cancelled
mid-write without leaving anything that looks like complete media; de-identified on request;
a selection too large for the medium refused, naming the medium that would hold it."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QWizard

from viewer.media import writer
from viewer.media.profiles import Medium
from viewer.media.verify import verify
from viewer.qt.export_wizard import ExportWizard, open_export_wizard

TEST_FILES = Path(get_testdata_file("CT_small.dcm")).parent
SELECTION = [TEST_FILES / n for n in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "test-SR.dcm")]


@pytest.fixture
def wizard(qtbot) -> Iterator[ExportWizard]:  # type: ignore[no-untyped-def]
    dialog = open_export_wizard(None, list(SELECTION))
    qtbot.addWidget(dialog)
    qtbot.waitExposed(dialog)
    yield dialog
    # Every worker ended through its own signals and was joined (none left to the teardown).
    qtbot.waitUntil(lambda: not dialog.busy, timeout=30000)
    assert not dialog.jobs.jobs()
    dialog.close()


def click_next(qtbot, wizard: ExportWizard) -> None:  # type: ignore[no-untyped-def]
    page = wizard.currentPage()
    button = wizard.button(
        QWizard.WizardButton.CommitButton
        if page.isCommitPage()
        else QWizard.WizardButton.NextButton
    )
    qtbot.waitUntil(button.isEnabled, timeout=30000)
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: wizard.currentPage() is not page, timeout=30000)


def to_size_check(qtbot, wizard: ExportWizard, target: Path) -> None:  # type: ignore[no-untyped-def]
    assert wizard.currentPage() is wizard.target_page
    wizard.target_page.folder_edit.clear()
    qtbot.keyClicks(wizard.target_page.folder_edit, str(target))
    click_next(qtbot, wizard)
    assert wizard.currentPage() is wizard.profile_page
    qtbot.keyClicks(wizard.profile_page.label_edit, "TEST PATIENT 2026 DICOM PLUS WEB")
    click_next(qtbot, wizard)
    assert wizard.currentPage() is wizard.deidentify_page


def test_folder_export_is_written_verified_and_reported(  # type: ignore[no-untyped-def]
    qtbot, wizard: ExportWizard, tmp_path: Path
) -> None:
    target = tmp_path / "STICK" / "EXPORT"
    to_size_check(qtbot, wizard, target)
    assert not wizard.deidentify_page.options_box.isEnabled()  # de-identification is opt-in
    click_next(qtbot, wizard)
    assert wizard.currentPage() is wizard.size_page
    qtbot.waitUntil(wizard.size_page.isComplete, timeout=30000)
    assert "4 files in 4 studies" in wizard.size_page.status.text()
    assert "fits on one CD-R (700 MB)" in wizard.size_page.status.text()
    # whose images these are, before anything is written
    details = wizard.size_page.details.toPlainText()
    assert wizard.size_page.details.isVisible()
    assert "Patient: CompressedSamples, CT1 (ID 1CT1)" in details
    assert "  Study 2004-01-19  CT  e+1  (1 series, 1 file)" in details
    with qtbot.waitSignal(wizard.written, timeout=60000) as signal:
        click_next(qtbot, wizard)
    report = signal.args[0]
    assert wizard.currentPage() is wizard.report_page
    assert report.ok and report.deidentification == ""
    assert wizard.report_page.headline.text().startswith("✔ Verified")
    assert "File-set ID" in wizard.report_page.text.toPlainText()
    assert verify(target, "cd").ok
    readme = (target / "README.TXT").read_text()
    assert "TEST PATIENT 2026 DICOM PLUS WEB" in readme
    assert wizard.button(QWizard.WizardButton.FinishButton).isVisible()


def test_cancel_mid_write_leaves_no_media_claimed_complete(  # type: ignore[no-untyped-def]
    qtbot, wizard: ExportWizard, tmp_path: Path, monkeypatch
) -> None:
    """The writer is held after its first file (deterministically, not by timing), the user
    cancels, the writer goes on to notice: the folder the user had keeps its own files, and
    nothing of the media stays."""
    reached, release = threading.Event(), threading.Event()
    real_write_one = writer._write_one
    calls = []

    def held_write_one(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 2:
            reached.set()
            release.wait(30)
        return real_write_one(*args, **kwargs)

    monkeypatch.setattr(writer, "_write_one", held_write_one)
    target = tmp_path / "USBSTICK"
    target.mkdir()
    (target / "holiday.jpg").write_bytes(b"not ours")
    to_size_check(qtbot, wizard, target)
    click_next(qtbot, wizard)
    qtbot.waitUntil(wizard.size_page.isComplete, timeout=30000)
    click_next(qtbot, wizard)
    assert wizard.currentPage() is wizard.write_page
    qtbot.waitUntil(reached.is_set, timeout=30000)
    assert (target / "DICOM").is_dir()  # the first file is there
    with qtbot.waitSignal(wizard.job_ended, timeout=30000):
        qtbot.mouseClick(wizard.write_page.cancel_button, Qt.MouseButton.LeftButton)
        release.set()
    assert wizard.write_page.cancelled
    assert wizard.write_page.status.text().startswith("Cancelled.")
    assert sorted(p.name for p in target.iterdir()) == ["holiday.jpg"]
    assert not verify(target).ok
    assert not wizard.write_page.isComplete()  # no way on to a report


def test_wizard_cancel_button_while_writing_stops_cleans_and_closes(  # type: ignore[no-untyped-def]
    qtbot, wizard: ExportWizard, tmp_path: Path, monkeypatch
) -> None:
    reached, release = threading.Event(), threading.Event()
    real_write_one = writer._write_one

    def held_write_one(*args, **kwargs):  # type: ignore[no-untyped-def]
        reached.set()
        release.wait(30)
        return real_write_one(*args, **kwargs)

    monkeypatch.setattr(writer, "_write_one", held_write_one)
    target = tmp_path / "NEW"
    to_size_check(qtbot, wizard, target)
    click_next(qtbot, wizard)
    qtbot.waitUntil(wizard.size_page.isComplete, timeout=30000)
    click_next(qtbot, wizard)
    qtbot.waitUntil(reached.is_set, timeout=30000)
    with qtbot.waitSignal(wizard.rejected, timeout=30000):
        qtbot.mouseClick(
            wizard.button(QWizard.WizardButton.CancelButton), Qt.MouseButton.LeftButton
        )
        assert wizard.isVisible()  # still writing: it waits for the writer to stop
        release.set()
    assert not target.exists()


def test_deidentify_option_produces_deidentified_media(  # type: ignore[no-untyped-def]
    qtbot, wizard: ExportWizard, tmp_path: Path
) -> None:
    target = tmp_path / "TEACHING"
    to_size_check(qtbot, wizard, target)
    page = wizard.deidentify_page
    for box in (page.enable_box, page.keep_characteristics):
        # On the indicator: a check box stretched by its layout ignores clicks past its text.
        qtbot.mouseClick(box, Qt.MouseButton.LeftButton, pos=QPoint(8, box.height() // 2))
        assert box.isChecked() and page.options_box.isEnabled()
    click_next(qtbot, wizard)
    qtbot.waitUntil(wizard.size_page.isComplete, timeout=30000)
    with qtbot.waitSignal(wizard.written, timeout=60000) as signal:
        click_next(qtbot, wizard)
    report = signal.args[0]
    assert report.ok
    assert "Retain Patient Characteristics Option" in report.deidentification
    assert "de-identified:" in wizard.report_page.text.toPlainText()
    blob = b"".join(p.read_bytes() for p in target.rglob("*") if p.is_file())
    for source in SELECTION:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            original = pydicom.dcmread(source)
        for value in (str(original.PatientName), original.SOPInstanceUID):
            assert value.encode() not in blob
    written = [p for p in (target / "DICOM").rglob("*") if p.is_file()]
    assert len(written) == len(SELECTION)
    for path in written:
        ds = pydicom.dcmread(path)
        assert ds.PatientIdentityRemoved == "YES"
        codes = [i.CodeValue for i in ds.DeidentificationMethodCodeSequence]
        assert codes == ["113100", "113108"]


def test_study_too_large_is_refused_naming_the_medium(  # type: ignore[no-untyped-def]
    qtbot, wizard: ExportWizard, tmp_path: Path, monkeypatch
) -> None:
    real_plan = writer.plan_media
    tiny = Medium("tiny", "tiny test disc", writer._DEFAULT_RESERVE + 1000)
    monkeypatch.setattr(
        writer, "plan_media", lambda paths, **kw: real_plan(paths, profile="cd", medium=tiny)
    )
    to_size_check(qtbot, wizard, tmp_path / "OUT")
    click_next(qtbot, wizard)
    qtbot.waitUntil(lambda: wizard.size_page.status.text().startswith("Cannot"), timeout=30000)
    assert "larger than a tiny test disc: it needs a CD-R" in wizard.size_page.status.text()
    assert not wizard.size_page.isComplete()
    assert not wizard.button(QWizard.WizardButton.CommitButton).isEnabled()
    assert not (tmp_path / "OUT").exists()
