"""The viewer of objects that are no images (viewer.qt.documents.ObjectViewer): an SR as a tree
with Copy as text, an ECG drawn to scale on its grid, an Encapsulated PDF shown inside (Qt's PDF
module) and handed to the system's viewer from a private copy when asked, hostile files refused
with the reason; and the browser opening a
document series there instead of saying it cannot."""

from __future__ import annotations

import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QUrl
from PySide6.QtGui import (
    QDesktopServices,
    QFont,
    QGuiApplication,
    QImage,
    QPageSize,
    QPainter,
    QPdfWriter,
)
from PySide6.QtPdfWidgets import QPdfView
from PySide6.QtWidgets import QLabel, QPushButton, QTreeWidgetItem, QWidget

from viewer.imaging.sr import Report
from viewer.imaging.waveform import Waveform
from viewer.qt import documents as documents_module
from viewer.qt.browser import BrowserWidget
from viewer.qt.documents import ObjectViewer, PdfDocument, WaveformView
from viewer.store import Store


def letter(pages: int = 2) -> bytes:
    """A real PDF of ``pages`` A4 pages (Qt's PDF writer), each saying which page it is; of
    odd length, so that the file pads it."""
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    writer = QPdfWriter(buffer)
    writer.setPageSize(QPageSize(QPageSize.PageSizeId.A4))
    painter = QPainter(writer)
    painter.setFont(QFont("Sans", 28))
    for page in range(pages):
        if page:
            writer.newPage()
        painter.drawText(400, 1200, f"Discharge letter, page {page + 1}")
    painter.end()
    buffer.close()
    document = bytes(data.data())
    return document if len(document) % 2 else document + b"\n"


def bundled(name: str) -> Path:
    path = get_testdata_file(name)
    assert path is not None, name
    return Path(path)


@pytest.fixture
def open_viewer(qtbot) -> Iterator[Callable[..., ObjectViewer]]:  # type: ignore[no-untyped-def]
    opened: list[ObjectViewer] = []

    def open_(path: Path, *, fails: bool = False) -> ObjectViewer:
        dialog = ObjectViewer(path)
        qtbot.addWidget(dialog)
        opened.append(dialog)
        with qtbot.waitSignal(dialog.failed if fails else dialog.loaded, timeout=30_000):
            dialog.show()
        return dialog

    yield open_
    for dialog in opened:
        dialog.shutdown()


@pytest.fixture
def opened_urls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """QDesktopServices.openUrl recorded instead of launching a viewer."""
    urls: list[str] = []

    def fake_open_url(url: QUrl) -> bool:
        urls.append(url.toLocalFile())
        return True

    monkeypatch.setattr(QDesktopServices, "openUrl", fake_open_url)
    return urls


def children(item: QTreeWidgetItem) -> list[QTreeWidgetItem]:
    return [item.child(i) for i in range(item.childCount())]  # type: ignore[misc]


def rows(dialog: ObjectViewer) -> list[tuple[str, str]]:
    assert dialog.tree is not None
    stack = [dialog.tree.topLevelItem(0)]
    found = []
    while stack:
        item = stack.pop()
        assert item is not None
        found.append((item.text(0), item.text(1)))
        stack.extend(reversed(children(item)))
    return found


def test_a_report_is_a_tree_of_concepts_and_values_and_copies_as_text(  # type: ignore[no-untyped-def]
    qtbot, open_viewer
) -> None:
    dialog = open_viewer(bundled("test-SR.dcm"))
    assert isinstance(dialog.loaded_object, Report)
    assert dialog.windowTitle() == "Diagnosis — Test, S R"
    found = rows(dialog)
    assert found[0] == ("Diagnosis", "")
    assert ("Diameter", "3 Length Unit") in found
    assert ("[has obs context] Some UID", "1.2.3.4.5") in found
    assert ("(image)", "image 1.2.3.4.5.0, frames 5, 2") in found
    assert len(found) == dialog.loaded_object.item_count
    assert "completion: COMPLETE; verification: VERIFIED" in dialog.header.text()
    QGuiApplication.clipboard().clear()
    dialog.copy_report()
    copied = QGuiApplication.clipboard().text()
    assert copied == dialog.loaded_object.text()
    assert "    Diameter: 3 Length Unit\n" in copied


def test_the_ecg_shows_its_12_leads_on_the_calibrated_grid(  # type: ignore[no-untyped-def]
    qtbot, open_viewer
) -> None:
    dialog = open_viewer(bundled("waveform_ecg.dcm"))
    assert isinstance(dialog.loaded_object, Waveform)
    assert dialog.windowTitle() == "ECG 2013-01-25 10:59:19 — Anonymous"
    view = dialog.waveform_view
    assert isinstance(view, WaveformView)
    assert view.group is not None and len(view.group.channels) == 12
    assert view.group.channels[1].label == "Lead II"
    mm = view.px_per_mm
    assert (view.speed, view.gain) == (25.0, 10.0)
    assert view.x_of(1.0) - view.x_of(0.0) == pytest.approx(25 * mm)  # 25 mm/s
    width = view.width()
    assert width == pytest.approx((12 + 10 * 25 + 10) * mm, abs=1)  # 10 s and the margins
    assert dialog.speed_box is not None and dialog.group_box is not None
    dialog.speed_box.setCurrentIndex(3)  # 100 mm/s: the horizontal zoom
    assert view.speed == 100.0
    assert view.width() == pytest.approx((12 + 10 * 100 + 10) * mm, abs=1)
    dialog.group_box.setCurrentIndex(1)  # the median beat, 1.2 s
    assert view.group.label == "MEDIAN BEAT"
    assert view.width() == pytest.approx((12 + 1.2 * 100 + 10) * mm, abs=1)


def synthetic_ecg(
    path: Path,
    *,
    patient: str = "Doe^Jane",
    units: str = "uV",
    samples: np.ndarray | None = None,
) -> Path:
    """Two leads of one second at 500 Hz: +1 mV (1000 x 1 uV) and -0.5 mV (-250 x 2 uV)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.9.1.1")
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName, ds.PatientID, ds.Modality = patient, "P-9", "ECG"
    group = Dataset()
    group.MultiplexGroupLabel = "RHYTHM"
    group.NumberOfWaveformChannels, group.NumberOfWaveformSamples = 2, 500
    group.SamplingFrequency = "500"
    group.WaveformBitsAllocated, group.WaveformSampleInterpretation = 16, "SS"
    definitions = []
    for label, sensitivity in (("Lead I", "1"), ("Lead II", "2")):
        definition = Dataset()
        definition.ChannelLabel = label
        definition.ChannelSensitivity = sensitivity
        unit = Dataset()
        unit.CodeValue, unit.CodingSchemeDesignator, unit.CodeMeaning = units, "UCUM", units
        definition.ChannelSensitivityUnitsSequence = [unit]
        definitions.append(definition)
    group.ChannelDefinitionSequence = definitions
    if samples is None:
        samples = np.tile(np.array([1000, -250], dtype="<i2"), 500)
    group.WaveformData = samples.astype("<i2").tobytes()
    ds.WaveformSequence = [group]
    ds.save_as(path, enforce_file_format=True)
    return path


def trace_rows(image: QImage, x: int) -> list[int]:
    """The rows of column ``x`` painted in the trace's near-black."""
    found = []
    for y in range(image.height()):
        colour = image.pixelColor(x, y)
        if max(colour.red(), colour.green(), colour.blue()) < 80:
            found.append(y)
    return found


def test_the_trace_is_drawn_at_10_mm_per_millivolt(  # type: ignore[no-untyped-def]
    qtbot, open_viewer, tmp_path: Path
) -> None:
    dialog = open_viewer(synthetic_ecg(tmp_path / "ecg.dcm"))
    view = dialog.waveform_view
    assert view is not None
    qtbot.waitExposed(dialog)
    mm = view.px_per_mm
    x = round(view.x_of(0.5))
    image = view.grab().toImage()
    expected = [view.lane_baseline(0) - 10 * mm, view.lane_baseline(1) + 5 * mm]
    found = trace_rows(image, x)
    assert found, "no trace drawn"
    for y in expected:  # +1 mV 10 mm above lane 1's baseline, -0.5 mV 5 mm below lane 2's
        assert any(abs(row - y) <= 1.5 for row in found), (y, found)
    assert all(any(abs(row - y) <= 1.5 for y in expected) for row in found)
    assert dialog.gain_box is not None
    dialog.gain_box.setCurrentIndex(2)  # 20 mm/mV
    image = view.grab().toImage()
    assert any(abs(row - (view.lane_baseline(0) - 20 * mm)) <= 1.5 for row in trace_rows(image, x))


def test_a_pressure_channel_fills_its_lane_without_a_voltage_grid(  # type: ignore[no-untyped-def]
    qtbot, open_viewer, tmp_path: Path
) -> None:
    wave = (1000 * np.sin(np.linspace(0, 4 * np.pi, 500))).astype(np.int16)
    samples = np.stack([wave, wave], axis=1).ravel()
    path = synthetic_ecg(tmp_path / "pressure.dcm", units="mm[Hg]", samples=samples)
    dialog = open_viewer(path)
    view = dialog.waveform_view
    assert view is not None and view.group is not None
    assert not view.group.is_voltage
    scale = dialog.findChild(QLabel, "waveform_scale")
    assert (
        scale is not None and scale.text() == "each channel scaled to its lane (no voltage units)"
    )
    image = view.grab().toImage()
    mm = view.px_per_mm
    rows_drawn: set[int] = set()
    for x in range(round(view.x_of(0.0)) + 1, round(view.x_of(1.0)) - 1):
        rows_drawn.update(trace_rows(image, x))
    top, bottom = view.lane_baseline(0) - 15 * mm, view.lane_baseline(0) + 15 * mm
    lane_rows = [y for y in rows_drawn if y < bottom]
    # 60 % of the 30 mm lane (the label above it): from 9 mm above the baseline to 9 mm below
    assert min(lane_rows) == pytest.approx(view.lane_baseline(0) - 9 * mm, abs=1.5)
    assert max(lane_rows) == pytest.approx(view.lane_baseline(0) + 9 * mm, abs=1.5)
    assert top < min(lane_rows)


@pytest.mark.filterwarnings("ignore:Found unknown escape sequence")  # pydicom, about the ESC
def test_the_title_names_the_patient_escaped(  # type: ignore[no-untyped-def]
    qtbot, open_viewer, tmp_path: Path
) -> None:
    dialog = open_viewer(synthetic_ecg(tmp_path / "ecg.dcm", patient="Evil\x1b[2J^Eve"))
    assert "\x1b" not in dialog.windowTitle() and "\x1b" not in dialog.header.text()
    assert dialog.windowTitle().endswith("— Evil\\x1b[2J, Eve")


def test_a_truncated_waveform_says_why(  # type: ignore[no-untyped-def]
    qtbot, open_viewer, tmp_path: Path
) -> None:
    ds = pydicom.dcmread(bundled("waveform_ecg.dcm"))
    for group in ds.WaveformSequence:
        group.WaveformData = group.WaveformData[:2000]
    ds.save_as(tmp_path / "truncated.dcm")
    dialog = open_viewer(tmp_path / "truncated.dcm", fails=True)
    assert "the data is truncated" in dialog.header.text()
    assert dialog.waveform_view is None


def pdf_file(path: Path, document: bytes, *, declared: int | None = None) -> Path:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = UID(documents_module.ENCAPSULATED_PDF)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.PatientName, ds.PatientID, ds.Modality = "Doe^Jane", "P-1", "DOC"
    ds.DocumentTitle = "Discharge letter"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = document
    ds.EncapsulatedDocumentLength = len(document) if declared is None else declared
    ds.save_as(path, enforce_file_format=True)
    return path


def test_a_pdf_is_shown_inside_page_by_page_from_memory(  # type: ignore[no-untyped-def]
    qtbot, open_viewer, opened_urls: list[str], tmp_path: Path
) -> None:
    document = letter(pages=2)
    assert len(document) % 2 == 1  # the element is padded to an even length in the file
    path = pdf_file(tmp_path / "letter.dcm", document)
    assert len(pydicom.dcmread(path).EncapsulatedDocument) == len(document) + 1
    dialog = open_viewer(path)
    pdf = dialog.loaded_object
    assert isinstance(pdf, PdfDocument)
    assert pdf.data == document  # the declared length, not the padding
    assert dialog.windowTitle() == "Discharge letter — Doe, Jane"
    assert dialog.header.text() == (
        f"Patient: Doe, Jane (ID P-1)\nPDF: Discharge letter, 2 pages, {len(document)} bytes"
    )
    assert dialog.pdf_document is not None and dialog.pdf_view is not None
    qtbot.waitUntil(dialog.pdf_view.isVisible)
    assert dialog.pdf_document.pageCount() == 2
    assert dialog.pdf_document.getAllText(1).text() == "Discharge letter, page 2"
    # What the reader sees: the view paints the first page's text (dark pixels on white).
    qtbot.waitUntil(lambda: dark_fraction(dialog.pdf_view) > 0.001, timeout=10_000)
    assert opened_urls == [] and dialog.pdf_file is None  # nothing written to show it
    assert dialog.zoom_box is not None
    dialog.zoom_box.setCurrentText("200 %")
    assert dialog.pdf_view.zoomMode() == QPdfView.ZoomMode.Custom
    assert dialog.pdf_view.zoomFactor() == 2.0


def dark_fraction(widget: QWidget) -> float:
    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_Grayscale8)
    pixels = np.frombuffer(image.constBits(), np.uint8).reshape(
        image.height(), image.bytesPerLine()
    )[:, : image.width()]
    return float((pixels < 100).mean())


def test_the_system_viewer_gets_a_private_copy_when_asked(  # type: ignore[no-untyped-def]
    qtbot, open_viewer, opened_urls: list[str], tmp_path: Path
) -> None:
    document = letter(pages=1)
    dialog = open_viewer(pdf_file(tmp_path / "letter.dcm", document))
    button = dialog.findChild(QPushButton, "pdf_open")
    assert button is not None and button.text() == "Open in the system viewer"
    with qtbot.waitSignal(dialog.pdf_opened):
        button.click()
    assert dialog.pdf_file is not None
    assert opened_urls == [str(dialog.pdf_file)]
    assert dialog.pdf_file.read_bytes() == document
    assert dialog.pdf_file.name == "document.pdf"  # never the file's own name
    assert stat.S_IMODE(dialog.pdf_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(dialog.pdf_file.parent.stat().st_mode) == 0o700
    button.click()  # the same copy again, not a second one
    assert opened_urls == [str(dialog.pdf_file)] * 2


def test_a_declared_length_beyond_the_element_is_bounded_by_it(  # type: ignore[no-untyped-def]
    qtbot, open_viewer, tmp_path: Path
) -> None:
    document = letter(pages=1)
    path = pdf_file(tmp_path / "long.dcm", document, declared=2**31)
    dialog = open_viewer(path)
    assert isinstance(dialog.loaded_object, PdfDocument)
    assert dialog.loaded_object.data == document + b"\x00"  # the padding: all there is


def test_a_damaged_pdf_is_named_with_the_reason_and_nothing_opened(  # type: ignore[no-untyped-def]
    qtbot, open_viewer, opened_urls: list[str], tmp_path: Path
) -> None:
    path = pdf_file(tmp_path / "damaged.dcm", b"%PDF-1.7\n" + b"\x00garbage" * 40)
    dialog = open_viewer(path, fails=True)
    assert dialog.header.text().endswith(
        "damaged.dcm cannot be shown: the PDF is damaged (not a readable PDF file)"
    )
    assert dialog.pdf_view is None and opened_urls == [] and dialog.pdf_file is None


def test_a_document_that_is_no_pdf_is_refused_and_never_opened(  # type: ignore[no-untyped-def]
    qtbot, open_viewer, opened_urls: list[str], tmp_path: Path
) -> None:
    path = pdf_file(tmp_path / "fake.dcm", b"#!/bin/sh\nrm -rf ~\n")
    dialog = open_viewer(path, fails=True)
    assert "it does not start %PDF-" in dialog.header.text()
    assert opened_urls == [] and dialog.pdf_file is None


# -- the browser -----------------------------------------------------------------------------------


@pytest.fixture
def browser(qtbot, tmp_path: Path) -> Iterator[BrowserWidget]:  # type: ignore[no-untyped-def]
    store = Store.open(tmp_path / "store")
    widget = BrowserWidget(store=store, volume_source=list)
    qtbot.addWidget(widget)
    widget.resize(1000, 600)
    widget.show()
    yield widget
    for viewer in widget.findChildren(ObjectViewer):
        viewer.shutdown()
    widget.shutdown()
    store.close()


def same_study(source: Path, target: Path, image: Dataset, number: int) -> Path:
    """``source`` copied as a series of ``image``'s study and patient."""
    ds = pydicom.dcmread(source)
    for keyword in ("StudyInstanceUID", "PatientName", "PatientID", "StudyDate", "StudyID"):
        if keyword in image:
            setattr(ds, keyword, image[keyword].value)
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = number
    ds.save_as(target)
    return target


def open_every_series(qtbot, browser: BrowserWidget, disc: Path) -> tuple[int, list[object]]:  # type: ignore[no-untyped-def]
    """Open ``disc``, then each series of its study: (stacks opened, documents loaded)."""
    with qtbot.waitSignal(browser.media_opened, timeout=30_000):
        browser.open_media([disc], show_first=False)
    stacks: list[object] = []
    documents: list[str] = []
    browser.series_opened.connect(lambda found, row: stacks.append(found[row]))
    browser.document_opened.connect(documents.append)
    loaded: list[object] = []
    for row in range(browser.series_strip.count()):
        before = len(documents)
        browser.open_series(row)
        if len(documents) > before:
            viewer = next(v for v in browser.findChildren(ObjectViewer) if v.isVisible())
            assert viewer.path == Path(documents[-1])
            qtbot.waitUntil(lambda v=viewer: v.loaded_object is not None, timeout=30_000)
            loaded.append(viewer.loaded_object)
    return len(stacks), loaded


def test_the_browser_opens_a_report_and_an_ecg_beside_the_images(  # type: ignore[no-untyped-def]
    qtbot, browser: BrowserWidget, tmp_path: Path
) -> None:
    disc = tmp_path / "disc"
    disc.mkdir()
    image = pydicom.dcmread(bundled("CT_small.dcm"))
    image.SeriesNumber = 1
    image.save_as(disc / "ct.dcm")
    same_study(bundled("test-SR.dcm"), disc / "report.dcm", image, 2)
    same_study(bundled("waveform_ecg.dcm"), disc / "ecg.dcm", image, 3)
    stacks, loaded = open_every_series(qtbot, browser, disc)
    assert stacks == 1  # the CT opens in the view as before
    assert sorted(type(o).__name__ for o in loaded) == ["Report", "Waveform"]
    assert "opened in a window of its own" in browser.status_label.text()


def test_the_browser_opens_documents_beside_real_images_of_another_vendor(  # type: ignore[no-untyped-def]
    qtbot, browser: BrowserWidget, tmp_path: Path, shared_data: Path
) -> None:
    """A real CT (dicompyler, from dwv's set) with a report and an ECG of its study."""
    disc = tmp_path / "disc"
    disc.mkdir()
    source = shared_data / "dwv" / "dicompyler-ct.0.dcm"
    shutil.copy(source, disc / "ct.dcm")
    image = pydicom.dcmread(source, stop_before_pixels=True)
    same_study(bundled("reportsi.dcm"), disc / "report.dcm", image, 901)
    same_study(bundled("waveform_ecg.dcm"), disc / "ecg.dcm", image, 902)
    stacks, loaded = open_every_series(qtbot, browser, disc)
    assert stacks == 1
    titles = sorted(o.title for o in loaded if isinstance(o, Report))
    assert titles == ["Document Title"]
    assert [len(o.groups[0].channels) for o in loaded if isinstance(o, Waveform)] == [12]
