"""viewer.imaging.presentation: Grayscale Softcopy Presentation States and Key Object Selection.

The objects are built here with pydicom, written, and read back through the module (which
reads with decode.read_file); one GSPS is written by DCMTK's dcmpsmk, an independent writer.
Neither pydicom's test files nor ../shared/data hold a GSPS or a KOS (MANIFEST.tsv lists no
PR or KO modality): a real SR of pydicom's is used to check the refusal of other objects.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from tests.conftest import require_tool
from viewer.imaging import presentation as p
from viewer.imaging.display import LookupTable, Window
from viewer.text import escape

IMAGE_A = "1.2.826.0.1.3680043.8.498.100"
IMAGE_B = "1.2.826.0.1.3680043.8.498.101"
MULTI = "1.2.826.0.1.3680043.8.498.102"
CT = "1.2.840.10008.5.1.4.1.1.2"


def _save(ds: Dataset, path: Path, transfer_syntax: str = ExplicitVRLittleEndian) -> Path:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(transfer_syntax)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(path, enforce_file_format=True)
    return path


def _ref(uid: str, frames: list[int] | None = None) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = CT
    item.ReferencedSOPInstanceUID = uid
    if frames:
        item.ReferencedFrameNumber = frames
    return item


def _graphic(kind: str, data: list[float], units: str = "PIXEL", filled: str = "N") -> Dataset:
    item = Dataset()
    item.GraphicAnnotationUnits = units
    item.GraphicDimensions = 2
    item.NumberOfGraphicPoints = len(data) // 2
    item.GraphicData = data
    item.GraphicType = kind
    item.GraphicFilled = filled
    return item


def _text(
    text: str, box: tuple[list[float], list[float]] | None, anchor: list[float] | None
) -> Dataset:
    item = Dataset()
    item.UnformattedTextValue = text
    if box is not None:
        item.BoundingBoxAnnotationUnits = "PIXEL"
        item.BoundingBoxTopLeftHandCorner = box[0]
        item.BoundingBoxBottomRightHandCorner = box[1]
        item.BoundingBoxTextHorizontalJustification = "LEFT"
    if anchor is not None:
        item.AnchorPointAnnotationUnits = "PIXEL"
        item.AnchorPoint = anchor
        item.AnchorPointVisibility = "Y"
    return item


def _layer(name: str, order: int, grey: int | None = None) -> Dataset:
    item = Dataset()
    item.GraphicLayer = name
    item.GraphicLayerOrder = order
    if grey is not None:
        item.GraphicLayerRecommendedDisplayGrayscaleValue = grey
    return item


def _annotation(
    layer: str, refs: list[Dataset] | None, graphics: list[Dataset], texts: Sequence[Dataset] = ()
) -> Dataset:
    item = Dataset()
    if refs is not None:
        item.ReferencedImageSequence = DicomSequence(refs)
    item.GraphicLayer = layer
    if graphics:
        item.GraphicObjectSequence = DicomSequence(graphics)
    if texts:
        item.TextObjectSequence = DicomSequence(list(texts))
    return item


def _gsps(**attrs: Any) -> Dataset:
    """A GSPS referencing IMAGE_A, IMAGE_B and frames 2-3 of MULTI, with ``attrs`` set on it."""
    ds = Dataset()
    ds.SOPClassUID = p.GSPS_SOP_CLASS_UID
    ds.SOPInstanceUID = generate_uid()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.Modality = "PR"
    ds.ContentLabel = "REVIEW"
    ds.ContentDescription = "Review"
    ds.PresentationCreationDate = "20260101"
    series = Dataset()
    series.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.9"
    series.ReferencedImageSequence = DicomSequence(
        [_ref(IMAGE_A), _ref(IMAGE_B), _ref(MULTI, [2, 3])]
    )
    ds.ReferencedSeriesSequence = DicomSequence([series])
    ds.PresentationLUTShape = "IDENTITY"
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    return ds


def _read(tmp_path: Path, ds: Dataset) -> p.PresentationState:
    return p.read_presentation_state(_save(ds, tmp_path / "gsps.dcm"))


# -- GSPS --------------------------------------------------------------------------------------


def test_references_and_frames(tmp_path: Path) -> None:
    gsps = _read(tmp_path, _gsps())
    assert [(r.sop_instance_uid, r.frames) for r in gsps.references] == [
        (IMAGE_A, ()),
        (IMAGE_B, ()),
        (MULTI, (2, 3)),
    ]
    assert gsps.label == "REVIEW" and gsps.notes == ()
    assert p.for_image(gsps, IMAGE_A, 1) is not None
    assert p.for_image(gsps, "1.2.3.4", 1) is None
    assert p.for_image(gsps, MULTI, 1) is None
    assert p.for_image(gsps, MULTI, 3) is not None


@pytest.mark.parametrize(
    ("rotation", "flip", "want"),
    [(90, "Y", (90, True)), (270, "N", (270, False)), (180, None, (180, False))],
)
def test_rotation_and_flip(
    tmp_path: Path, rotation: int, flip: str | None, want: tuple[int, bool]
) -> None:
    attrs: dict[str, Any] = {"ImageRotation": rotation}
    if flip is not None:
        attrs["ImageHorizontalFlip"] = flip
    gsps = _read(tmp_path, _gsps(**attrs))
    shown = p.for_image(gsps, IMAGE_B)
    assert shown is not None
    assert (shown.rotation, shown.horizontal_flip) == want


def test_rotation_not_a_right_angle_is_refused(tmp_path: Path) -> None:
    gsps = _read(tmp_path, _gsps(ImageRotation=45))
    assert gsps.rotation == 0
    assert any("Image Rotation 45" in note for note in gsps.notes)


def test_displayed_area_per_image(tmp_path: Path) -> None:
    """C.10.4: corners are (column, row) counted from 1; here zero-based (row, column)."""
    only_b = Dataset()
    only_b.ReferencedImageSequence = DicomSequence([_ref(IMAGE_B)])
    only_b.DisplayedAreaTopLeftHandCorner = [21, 11]
    only_b.DisplayedAreaBottomRightHandCorner = [220, 110]
    only_b.PresentationSizeMode = "TRUE SIZE"
    only_b.PresentationPixelSpacing = [0.5, 0.25]
    everyone = Dataset()
    everyone.DisplayedAreaTopLeftHandCorner = [1, 1]
    everyone.DisplayedAreaBottomRightHandCorner = [512, 256]
    everyone.PresentationSizeMode = "SCALE TO FIT"
    everyone.PresentationPixelAspectRatio = [1, 2]
    gsps = _read(tmp_path, _gsps(DisplayedAreaSelectionSequence=DicomSequence([only_b, everyone])))
    b = p.for_image(gsps, IMAGE_B)
    a = p.for_image(gsps, IMAGE_A)
    assert b is not None and a is not None
    assert b.displayed_area is not None and a.displayed_area is not None
    assert b.displayed_area.top_left == (10, 20)
    assert b.displayed_area.bottom_right == (109, 219)
    assert b.displayed_area.size_mode == "TRUE SIZE"
    assert b.displayed_area.pixel_spacing == (0.5, 0.25)
    assert a.displayed_area.top_left == (0, 0)
    assert a.displayed_area.bottom_right == (255, 511)
    assert a.displayed_area.aspect_ratio == (1, 2)


def test_displayed_area_corners_follow_the_rotation(tmp_path: Path) -> None:
    """C.10.4: the corners name the pixels shown top left and bottom right after the spatial
    transformation; turned 90 degrees clockwise, the stored image's bottom left pixel is shown
    top left, so "top left" lies below "bottom right". Kept as given, not refused."""
    item = Dataset()
    item.DisplayedAreaTopLeftHandCorner = [1, 256]
    item.DisplayedAreaBottomRightHandCorner = [512, 1]
    item.PresentationSizeMode = "SCALE TO FIT"
    gsps = _read(
        tmp_path,
        _gsps(ImageRotation=90, DisplayedAreaSelectionSequence=DicomSequence([item])),
    )
    area = gsps.displayed_areas[0]
    assert area.top_left == (255, 0) and area.bottom_right == (0, 511)
    assert area.rows == (0, 255) and area.columns == (0, 511)
    assert gsps.notes == ()


def test_displayed_area_true_size_without_spacing_falls_back(tmp_path: Path) -> None:
    item = Dataset()
    item.DisplayedAreaTopLeftHandCorner = [1, 1]
    item.DisplayedAreaBottomRightHandCorner = [10, 10]
    item.PresentationSizeMode = "TRUE SIZE"
    gsps = _read(tmp_path, _gsps(DisplayedAreaSelectionSequence=DicomSequence([item])))
    assert gsps.displayed_areas[0].size_mode == "SCALE TO FIT"
    assert any("TRUE SIZE without" in note for note in gsps.notes)


def test_softcopy_voi_per_image(tmp_path: Path) -> None:
    for_a = Dataset()
    for_a.ReferencedImageSequence = DicomSequence([_ref(IMAGE_A)])
    for_a.WindowCenter = 40
    for_a.WindowWidth = 400
    for_a.WindowCenterWidthExplanation = "SOFT"
    lut = Dataset()
    lut.LUTDescriptor = [4, 0, 8]
    lut.add_new(0x00283006, "US", [0, 100, 200, 255])
    lut.LUTExplanation = "curve"
    for_others = Dataset()
    for_others.VOILUTSequence = DicomSequence([lut])
    gsps = _read(tmp_path, _gsps(SoftcopyVOILUTSequence=DicomSequence([for_a, for_others])))
    a, b = p.for_image(gsps, IMAGE_A), p.for_image(gsps, IMAGE_B)
    assert a is not None and b is not None
    assert a.voi == Window(40.0, 400.0, "LINEAR", "SOFT")
    assert isinstance(b.voi, LookupTable)
    assert list(b.voi.data) == [0, 100, 200, 255] and b.voi.bits == 8


def test_voi_with_a_nan_window_is_left_out(tmp_path: Path) -> None:
    item = Dataset()
    item.add_new(0x00281050, "DS", "NaN")
    item.WindowWidth = 400
    gsps = _read(tmp_path, _gsps(SoftcopyVOILUTSequence=DicomSequence([item])))
    assert gsps.vois == ()
    assert any("Softcopy VOI" in note for note in gsps.notes)


def test_polyline_points_are_converted_exactly(tmp_path: Path) -> None:
    """C.10.5.1.2: PIXEL (x, y) with the top left corner at 0\\0 -> (row, column) = (y - 0.5,
    x - 0.5); DISPLAY fractions only swapped."""
    polyline = _graphic("POLYLINE", [0.5, 0.5, 10.0, 20.0, 100.25, 3.75])
    display = _graphic("POINT", [0.25, 0.75], units="DISPLAY")
    ellipse = _graphic("ELLIPSE", [10.5, 20.5, 30.5, 20.5, 20.5, 15.5, 20.5, 25.5], filled="Y")
    closed = _graphic("POLYLINE", [1.5, 1.5, 5.5, 1.5, 5.5, 5.5, 1.5, 1.5])
    gsps = _read(
        tmp_path,
        _gsps(
            GraphicLayerSequence=DicomSequence([_layer("L", 1)]),
            GraphicAnnotationSequence=DicomSequence(
                [_annotation("L", None, [polyline, display, ellipse, closed])]
            ),
        ),
    )
    graphics = gsps.annotations[0].graphics
    assert graphics[0].points == ((0.0, 0.0), (19.5, 9.5), (3.25, 99.75))
    assert graphics[0].units == "PIXEL" and not graphics[0].closed
    assert graphics[1].points == ((0.75, 0.25),) and graphics[1].units == "DISPLAY"
    assert graphics[2].graphic_type == "ELLIPSE" and graphics[2].filled
    assert graphics[2].points == ((20.0, 10.0), (20.0, 30.0), (15.0, 20.0), (25.0, 20.0))
    assert graphics[3].closed
    assert gsps.notes == ()


@pytest.mark.filterwarnings("ignore:Found unknown escape sequence")
def test_text_is_escaped_and_placed(tmp_path: Path) -> None:
    hostile = "tumour\x1b[31m red\x07 \u202egnp.exe"
    texts = [
        _text(hostile, ([10.5, 20.5], [60.5, 30.5]), [5.5, 5.5]),
        _text("anchor only", None, [1.0, 2.0]),
        _text("nowhere", None, None),
    ]
    gsps = _read(
        tmp_path,
        _gsps(
            GraphicLayerSequence=DicomSequence([_layer("T", 1)]),
            GraphicAnnotationSequence=DicomSequence([_annotation("T", None, [], texts)]),
        ),
    )
    got = gsps.annotations[0].texts
    assert len(got) == 2
    assert got[0].text == escape(hostile) and "\x1b" not in got[0].text
    assert "\u202e" not in got[0].text
    assert got[0].box_top_left == (20.0, 10.0) and got[0].box_bottom_right == (30.0, 60.0)
    assert got[0].anchor == (5.0, 5.0) and got[0].anchor_visible
    assert got[0].justification == "LEFT"
    assert got[1].anchor == (1.5, 0.5) and got[1].box_top_left is None
    assert any("neither bounding box nor anchor" in note for note in gsps.notes)


def test_long_text_is_cut(tmp_path: Path) -> None:
    item = _text("x" * 5000, None, [1.0, 1.0])
    item["UnformattedTextValue"].VR = "UT"
    gsps = _read(
        tmp_path,
        _gsps(GraphicAnnotationSequence=DicomSequence([_annotation("", None, [], [item])])),
    )
    assert len(gsps.annotations[0].texts[0].text) == p.MAX_TEXT
    assert any("cut to 1024" in note for note in gsps.notes)


def test_layers_and_applicability(tmp_path: Path) -> None:
    on_b = _annotation("TOP", [_ref(IMAGE_B)], [_graphic("POINT", [1.5, 1.5])])
    on_frame_3 = _annotation("BOTTOM", [_ref(MULTI, [3])], [_graphic("POINT", [2.5, 2.5])])
    on_all = _annotation("BOTTOM", None, [_graphic("POINT", [3.5, 3.5])])
    gsps = _read(
        tmp_path,
        _gsps(
            GraphicLayerSequence=DicomSequence([_layer("TOP", 5, 65535), _layer("BOTTOM", 1)]),
            GraphicAnnotationSequence=DicomSequence([on_b, on_frame_3, on_all]),
        ),
    )
    assert [layer.name for layer in gsps.layers] == ["BOTTOM", "TOP"]
    assert gsps.layers[1].grey == 65535
    b = p.for_image(gsps, IMAGE_B)
    assert b is not None
    # drawn lowest layer first
    assert [a.layer for a in b.annotations] == ["BOTTOM", "TOP"]
    assert b.annotations[1].graphics[0].points == ((1.0, 1.0),)
    frame2, frame3 = p.for_image(gsps, MULTI, 2), p.for_image(gsps, MULTI, 3)
    assert frame2 is not None and frame3 is not None
    assert len(frame2.annotations) == 1 and len(frame3.annotations) == 2
    a = p.for_image(gsps, IMAGE_A)
    assert a is not None and len(a.annotations) == 1


def test_presentation_lut_shape(tmp_path: Path) -> None:
    gsps = _read(tmp_path, _gsps(PresentationLUTShape="INVERSE"))
    shown = p.for_image(gsps, IMAGE_A)
    assert shown is not None and shown.inverted


def test_a_million_points_are_refused_without_reading_them(tmp_path: Path) -> None:
    """Implicit VR: the one encoding where FL Graphic Data can be longer than 64 KiB."""
    huge = _graphic("POLYLINE", [0.5, 0.5, 1.5, 1.5])
    del huge.NumberOfGraphicPoints  # US: a file cannot even declare 10^6
    huge.GraphicData = np.arange(2_000_000, dtype=np.float64).tolist()
    fine = _graphic("POINT", [1.5, 1.5])
    ds = _gsps(GraphicAnnotationSequence=DicomSequence([_annotation("", None, [huge, fine])]))
    path = _save(ds, tmp_path / "huge.dcm", ImplicitVRLittleEndian)
    assert path.stat().st_size > 8_000_000
    gsps = p.read_presentation_state(path)
    assert [g.graphic_type for g in gsps.annotations[0].graphics] == ["POINT"]
    assert any("1000000 points refused" in note for note in gsps.notes), gsps.notes


@pytest.mark.parametrize(
    ("data", "kind", "words"),
    [
        ([1.0, float("nan")], "POINT", "without finite points"),
        ([1.0, float("inf"), 2.0, 2.0], "POLYLINE", "without finite points"),
        ([1.0, 2e9, 2.0, 2.0], "POLYLINE", "without finite points"),
        ([1.0, 2.0, 3.0], "POLYLINE", "odd number"),
        ([1.0, 2.0, 3.0, 4.0], "ELLIPSE", "ELLIPSE with 2 points refused"),
        ([1.0, 2.0], "SPLINE", "Graphic Type 'SPLINE'"),
    ],
)
def test_bad_graphics_are_refused_with_a_note(
    tmp_path: Path, data: list[float], kind: str, words: str
) -> None:
    gsps = _read(
        tmp_path,
        _gsps(
            GraphicAnnotationSequence=DicomSequence([_annotation("", None, [_graphic(kind, data)])])
        ),
    )
    assert gsps.annotations[0].graphics == ()
    assert any(words in note for note in gsps.notes), gsps.notes


def test_too_many_objects_are_cut(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(p, "MAX_GRAPHIC_OBJECTS", 5)
    graphics = [_graphic("POINT", [float(i) + 0.5, 0.5]) for i in range(8)]
    gsps = _read(
        tmp_path, _gsps(GraphicAnnotationSequence=DicomSequence([_annotation("", None, graphics)]))
    )
    assert len(gsps.annotations[0].graphics) == 5
    assert any("3 graphic and text objects cut" in note for note in gsps.notes)


def test_other_objects_and_damaged_files_are_refused(tmp_path: Path) -> None:
    sr = Path(str(get_testdata_file("test-SR.dcm")))
    with pytest.raises(p.PresentationError, match="not a Grayscale Softcopy"):
        p.read_presentation_state(sr)
    with pytest.raises(p.PresentationError, match="not a Key Object Selection"):
        p.read_key_objects(sr)
    damaged = tmp_path / "damaged.dcm"
    damaged.write_bytes(b"\x00" * 128 + b"DICM" + b"\xff" * 7)
    with pytest.raises(p.PresentationError):
        p.read_presentation_state(damaged)


def test_a_gsps_written_by_dcmpsmk(tmp_path: Path) -> None:
    """DCMTK writes a GSPS for an image: its references, window and displayed area (the whole
    image, 1\\1 to columns\\rows) are read as DCMTK meant them."""
    require_tool("dcmpsmk")
    image = Dataset()
    image.SOPClassUID = CT
    image.SOPInstanceUID = generate_uid()
    image.StudyInstanceUID = generate_uid()
    image.SeriesInstanceUID = generate_uid()
    image.PatientName = "Test^Gsps"
    image.PatientID = "G1"
    image.Modality = "CT"
    image.Rows, image.Columns = 32, 48
    image.SamplesPerPixel = 1
    image.PhotometricInterpretation = "MONOCHROME2"
    image.BitsAllocated, image.BitsStored, image.HighBit = 16, 12, 11
    image.PixelRepresentation = 0
    image.RescaleSlope, image.RescaleIntercept = 1, -1024
    image.WindowCenter, image.WindowWidth = 50, 350
    image.PixelData = np.zeros((32, 48), dtype=np.uint16).tobytes()
    source = _save(image, tmp_path / "image.dcm")
    out = tmp_path / "dcmpsmk.dcm"
    run = subprocess.run(
        ["dcmpsmk", "+Vw", str(source), str(out)], capture_output=True, text=True, errors="replace"
    )
    assert run.returncode == 0, run.stderr
    gsps = p.read_presentation_state(out)
    assert [r.sop_instance_uid for r in gsps.references] == [image.SOPInstanceUID]
    shown = p.for_image(gsps, str(image.SOPInstanceUID))
    assert shown is not None
    assert shown.voi == Window(50.0, 350.0, "LINEAR", shown.voi.explanation if shown.voi else "")
    assert shown.displayed_area is not None
    assert shown.displayed_area.top_left == (0, 0)
    assert shown.displayed_area.bottom_right == (31, 47)
    assert (shown.rotation, shown.horizontal_flip) == (0, False)


# -- Key Object Selection ----------------------------------------------------------------------


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _kos(content: list[Dataset], evidence: list[Dataset]) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = p.KOS_SOP_CLASS_UID
    ds.SOPInstanceUID = generate_uid()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.Modality = "KO"
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = DicomSequence([_code("113000", "DCM", "Of Interest")])
    ds.ContinuityOfContent = "SEPARATE"
    ds.ContentSequence = DicomSequence(content)
    study = Dataset()
    study.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.8"
    series = Dataset()
    series.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.9"
    series.ReferencedSOPSequence = DicomSequence(evidence)
    study.ReferencedSeriesSequence = DicomSequence([series])
    ds.CurrentRequestedProcedureEvidenceSequence = DicomSequence([study])
    return ds


def _kos_image(uid: str, frames: list[int] | None = None) -> Dataset:
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = "IMAGE"
    item.ReferencedSOPSequence = DicomSequence([_ref(uid, frames)])
    return item


def _kos_text(text: str) -> Dataset:
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = "TEXT"
    item.ConceptNameCodeSequence = DicomSequence([_code("113012", "DCM", "Key Object Description")])
    item.TextValue = text
    return item


@pytest.mark.filterwarnings("ignore:Found unknown escape sequence")
def test_key_objects_in_document_order(tmp_path: Path) -> None:
    kos = _kos(
        [
            _kos_text("look\x1b[2J here"),
            _kos_image(IMAGE_B),
            _kos_image(MULTI, [3]),
            _kos_image(IMAGE_A),
        ],
        [_ref(IMAGE_A), _ref(IMAGE_B), _ref(MULTI)],
    )
    key = p.read_key_objects(_save(kos, tmp_path / "kos.dcm"))
    assert key.title == "Of Interest"
    assert [(r.sop_instance_uid, r.frames) for r in key.images] == [
        (IMAGE_B, ()),
        (MULTI, (3,)),
        (IMAGE_A, ()),
    ]
    assert key.note == escape("look\x1b[2J here") and "\x1b" not in key.note
    assert key.notes == ()
    cursor = p.KeyImageCursor(key)
    assert cursor.current is not None and cursor.current.sop_instance_uid == IMAGE_B
    assert cursor.previous().current == key.images[2]
    assert cursor.next().next().next().current == key.images[0]
    assert cursor.is_key(MULTI, 3) and not cursor.is_key(MULTI, 2)


def test_key_objects_from_the_evidence_when_the_tree_has_none(tmp_path: Path) -> None:
    kos = _kos([_kos_text("only text")], [_ref(IMAGE_A), _ref(IMAGE_B)])
    key = p.read_key_objects(_save(kos, tmp_path / "kos.dcm"))
    assert [r.sop_instance_uid for r in key.images] == [IMAGE_A, IMAGE_B]
    assert key.images[0].series_instance_uid == "1.2.826.0.1.3680043.8.498.9"
    assert any("evidence" in note for note in key.notes)


# -- damaged files -----------------------------------------------------------------------------


def _mutants(path: Path, count: int, seed: int) -> list[bytes]:
    """``count`` copies of the file with a few bytes after the preamble changed at random."""
    data = path.read_bytes()
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        copy = bytearray(data)
        for at in rng.integers(132, len(copy), size=int(rng.integers(1, 6))):
            copy[int(at)] = int(rng.integers(0, 256))
        out.append(bytes(copy))
    return out


@pytest.mark.filterwarnings("ignore")
def test_damaged_objects_raise_only_presentation_error(tmp_path: Path) -> None:
    """Random byte changes in a GSPS and a KOS: each either reads or raises PresentationError
    (never another exception); a seed makes a failure reproducible."""
    layer = DicomSequence([_layer("L", 1)])
    graphics = [
        _graphic("POLYLINE", [0.5, 0.5, 10.0, 20.0]),
        _graphic("CIRCLE", [5.0, 5.0, 7.0, 5.0]),
    ]
    texts = [_text("note", ([1.0, 1.0], [9.0, 9.0]), [2.0, 2.0])]
    voi = Dataset()
    voi.WindowCenter, voi.WindowWidth = 40, 400
    gsps = _save(
        _gsps(
            ImageRotation=90,
            GraphicLayerSequence=layer,
            GraphicAnnotationSequence=DicomSequence(
                [_annotation("L", [_ref(IMAGE_A)], graphics, texts)]
            ),
            SoftcopyVOILUTSequence=DicomSequence([voi]),
        ),
        tmp_path / "gsps.dcm",
    )
    kos = _save(
        _kos([_kos_text("t"), _kos_image(IMAGE_A, [1])], [_ref(IMAGE_A)]), tmp_path / "kos.dcm"
    )
    target = tmp_path / "mutant.dcm"
    read_ok = 0
    for source, reader in ((gsps, p.read_presentation_state), (kos, p.read_key_objects)):
        for data in _mutants(source, 150, seed=11):
            target.write_bytes(data)
            try:
                reader(target)
                read_ok += 1
            except p.PresentationError:
                pass
    assert read_ok > 0  # most changes hit values, not structure: the readers still read
