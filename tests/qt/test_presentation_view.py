"""Presentation objects on a disc, picked in the browser: a GSPS applied to the image it refers
to (window, rotation, displayed area, annotations), key images marked and stepped through."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tests.qt.conftest import ct_dataset
from viewer.imaging import presentation as p
from viewer.imaging.display import Window
from viewer.imaging.viewport import ROTATE_CW
from viewer.qt.main_window import MainWindow

STUDY = "1.2.826.0.1.3680043.10.66.1"
CT = "1.2.840.10008.5.1.4.1.1.2"


def _save(ds: Dataset, path: Path) -> None:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(path, enforce_file_format=True)


def _common(ds: Dataset, modality: str, series: str, number: int) -> None:
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = STUDY, series
    ds.PatientName, ds.PatientID = "Müller^Jürgen", "PID-42"
    ds.StudyDate, ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "20240131", modality, number, 1


def _ref(uid: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = CT, uid
    return item


def write_study(root: Path) -> list[str]:
    """Three CT slices, a GSPS on the second, a key object selection of the third then first."""
    root.mkdir(parents=True)
    uids = []
    for k in range(3):
        ds = ct_dataset(16, 16, z=float(k), number=k + 1, pixels=np.full((16, 16), 1024 + k))
        ds.StudyInstanceUID = STUDY
        ds.SeriesInstanceUID = STUDY + ".1"
        ds.save_as(root / f"IM{k}.dcm", enforce_file_format=True)
        uids.append(str(ds.SOPInstanceUID))

    gsps = Dataset()
    gsps.SOPClassUID = p.GSPS_SOP_CLASS_UID
    _common(gsps, "PR", STUDY + ".2", 2)
    gsps.ContentLabel, gsps.ContentDescription = "BONE", "bone window"
    gsps.PresentationCreationDate = "20240201"
    series = Dataset()
    series.SeriesInstanceUID = STUDY + ".1"
    series.ReferencedImageSequence = DicomSequence([_ref(uids[1])])
    gsps.ReferencedSeriesSequence = DicomSequence([series])
    voi = Dataset()
    voi.WindowCenter, voi.WindowWidth = 400, 1800
    gsps.SoftcopyVOILUTSequence = DicomSequence([voi])
    gsps.ImageRotation, gsps.ImageHorizontalFlip = 90, "N"
    layer = Dataset()
    layer.GraphicLayer, layer.GraphicLayerOrder = "FINDINGS", 1
    gsps.GraphicLayerSequence = DicomSequence([layer])
    graphic = Dataset()
    graphic.GraphicAnnotationUnits, graphic.GraphicDimensions = "PIXEL", 2
    graphic.NumberOfGraphicPoints, graphic.GraphicType, graphic.GraphicFilled = 2, "POLYLINE", "N"
    graphic.GraphicData = [2.0, 2.0, 10.0, 10.0]
    text = Dataset()
    text.UnformattedTextValue = "LESION"
    text.AnchorPointAnnotationUnits, text.AnchorPoint, text.AnchorPointVisibility = (
        "PIXEL",
        [5.0, 5.0],
        "Y",
    )
    annotation = Dataset()
    annotation.GraphicLayer = "FINDINGS"
    annotation.GraphicObjectSequence = DicomSequence([graphic])
    annotation.TextObjectSequence = DicomSequence([text])
    gsps.GraphicAnnotationSequence = DicomSequence([annotation])
    gsps.PresentationLUTShape = "IDENTITY"
    _save(gsps, root / "PR.dcm")

    kos = Dataset()
    kos.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.59"
    _common(kos, "KO", STUDY + ".3", 3)
    title = Dataset()
    title.CodeValue, title.CodingSchemeDesignator, title.CodeMeaning = (
        "113000",
        "DCM",
        "Of Interest",
    )
    kos.ConceptNameCodeSequence = DicomSequence([title])
    kos.ValueType = "CONTAINER"
    items = []
    for uid in (uids[2], uids[0]):
        item = Dataset()
        item.RelationshipType, item.ValueType = "CONTAINS", "IMAGE"
        item.ReferencedSOPSequence = DicomSequence([_ref(uid)])
        items.append(item)
    kos.ContentSequence = DicomSequence(items)
    _save(kos, root / "KO.dcm")
    return uids


@pytest.fixture
def window(store_window: MainWindow) -> MainWindow:
    store_window.resize(1000, 700)
    return store_window


def open_study(qtbot, window: MainWindow, root: Path) -> None:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(window.opened, timeout=30000):
        window.open_paths([root])
    qtbot.waitUntil(window.view.is_displayable, timeout=30000)


def pick(window: MainWindow, modality: str) -> None:
    """Open the browser's series of ``modality`` as a double click in the strip would."""
    browser = window.browser
    index = next(k for k, s in enumerate(browser._series) if s.modality == modality)
    browser.open_series(index)


def test_a_gsps_picked_is_applied_to_the_image_it_refers_to(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    uids = write_study(tmp_path / "study")
    open_study(qtbot, window, tmp_path / "study")
    view = window.view
    assert view.position == 0 and view.presentation is None
    pick(window, "PR")
    qtbot.waitUntil(lambda: view.presentation is not None, timeout=30000)
    qtbot.waitUntil(lambda: view.image_presentation() is not None, timeout=30000)
    assert view.measurement_key() == (uids[1], 1)  # the referenced image is shown
    # applied once that image's frame is decoded (on a loaded machine, after the pick)
    qtbot.waitUntil(lambda: view.effective_window() == Window(400, 1800), timeout=30000)
    assert view.orient == ROTATE_CW
    assert "GSPS: BONE" in view.corner_lines()["bottom_right"]
    shown = view.image_presentation()
    assert shown is not None and shown.annotations[0].texts[0].text == "LESION"
    grabbed = view.grab().toImage()  # the annotation is drawn (yellow on a flat image)
    colours = {
        grabbed.pixelColor(x, y).name()
        for x in range(0, grabbed.width(), 3)
        for y in range(0, grabbed.height(), 3)
    }
    assert "#ffdc3c" in colours
    view.set_position(0)  # an image the GSPS does not refer to: nothing drawn, no label
    assert "GSPS: BONE" not in " ".join(view.corner_lines()["bottom_right"])
    window.actions_by_name["presentation_off"].trigger()
    assert view.presentation is None and view.effective_window() != Window(400, 1800)


def test_key_images_are_marked_and_stepped_through(  # type: ignore[no-untyped-def]
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    uids = write_study(tmp_path / "study")
    open_study(qtbot, window, tmp_path / "study")
    view = window.view
    pick(window, "KO")
    qtbot.waitUntil(lambda: bool(view.key_images), timeout=30000)
    qtbot.waitUntil(lambda: view.measurement_key() is not None, timeout=30000)
    assert view.measurement_key() == (uids[2], 1)  # the first key image, in document order
    assert "KEY IMAGE" in view.corner_lines()["top_right"]
    assert len(view.key_images) == 2
    window.actions_by_name["key_next"].trigger()
    assert view.measurement_key() == (uids[0], 1)
    assert "KEY IMAGE" in view.corner_lines()["top_right"]
    window.actions_by_name["key_next"].trigger()  # wraps
    assert view.measurement_key() == (uids[2], 1)
    window.actions_by_name["key_previous"].trigger()
    assert view.measurement_key() == (uids[0], 1)
    view.set_position(1)  # not a key image
    assert "KEY IMAGE" not in view.corner_lines()["top_right"]
