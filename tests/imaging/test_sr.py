"""Structured Reports as a content tree and as text (viewer.imaging.sr): pydicom's SR test
files (DCMTK's OFFIS test documents), a Key Object Selection, and hostile trees (nested 1000
deep, 25,000 items, control characters)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from viewer.imaging import sr
from viewer.imaging.sr import ReportError, read_report, report_from_dataset


def bundled(name: str) -> Path:
    path = get_testdata_file(name)
    assert path is not None, name
    return Path(path)


def code(meaning: str, value: str = "1") -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "99TEST", meaning
    return item


def document(sop_class: str = "1.2.840.10008.5.1.4.1.1.88.33", title: str = "Report") -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = UID(sop_class)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.PatientName, ds.PatientID = "Doe^Jane", "P-1"
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = [code(title)]
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "UNVERIFIED"
    return ds


def item(relationship: str, value_type: str, concept: str, **values: object) -> Dataset:
    ds = Dataset()
    ds.RelationshipType, ds.ValueType = relationship, value_type
    ds.ConceptNameCodeSequence = [code(concept)]
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def test_the_comprehensive_sr_test_document_reads_as_its_tree() -> None:
    report = read_report(bundled("test-SR.dcm"))
    assert report.kind == "Comprehensive SR"
    assert report.title == "Diagnosis" == report.root.concept
    assert (report.completion_flag, report.verification_flag) == ("COMPLETE", "VERIFIED")
    assert report.patient_name == "Test, S R"
    assert report.content_date == "2001-02-13 18:47:46"
    items = list(report.root.walk())
    assert report.item_count == len(items)
    by_concept: dict[tuple[str, str], sr.ContentItem] = {}
    for _, found in items:  # the first of each (the test document repeats a few)
        by_concept.setdefault((found.concept, found.value_type), found)
    diameter = by_concept[("Diameter", "NUM")]
    assert diameter.value == "3 Length Unit"
    assert diameter.children[0].relationship == "HAS CONCEPT MOD"
    assert by_concept[("Some UID", "UIDREF")].value == "1.2.3.4.5"
    assert by_concept[("SCoord Code", "SCOORD")].value == "CIRCLE, 2 points"
    assert by_concept[("Date", "DATE")].value == "2000-12-06"
    assert by_concept[("DateTime", "DATETIME")].value == "2000-12-06 12:00:00"
    image = next(i for _, i in items if i.value_type == "IMAGE" and i.reference is not None)
    assert image.reference is not None
    assert image.reference.sop_instance_uid == "1.2.3.4.5.0"
    assert image.reference.frames == (5, 2)
    assert image.value == "image 1.2.3.4.5.0, frames 5, 2"
    # a by-reference relationship names the item it points to
    assert any(i.value == "see item 1.3.2" for _, i in items)
    assert not report.notes


def test_the_text_rendering_has_the_header_and_the_hierarchy_indented() -> None:
    text = read_report(bundled("test-SR.dcm")).text()
    lines = text.splitlines()
    assert lines[0] == "Patient: Test, S R"
    assert "Document: Diagnosis (Comprehensive SR)" in lines
    assert "Status: completion: COMPLETE; verification: VERIFIED" in lines
    assert "Diagnosis" in lines
    assert "  [has obs context] Some UID: 1.2.3.4.5" in lines
    assert "    Diameter: 3 Length Unit" in lines
    assert "      [has concept mod] Code: Sample Code" in lines
    # a TEXT value's own line breaks: its further lines under its first, indented
    first = lines.index("  Code: Sample Text")
    assert lines[first + 1 : first + 4] == ["      A", "      B", "      C"]


def test_a_basic_text_sr_with_observer_and_section() -> None:
    report = read_report(bundled("reportsi.dcm"))
    assert report.kind == "Basic Text SR"
    assert report.title == "Document Title"
    assert (report.completion_flag, report.verification_flag) == ("PARTIAL", "UNVERIFIED")
    text = report.text()
    assert "  [has obs context] Recording Observer's Name: " in text
    assert "  Section Heading\n    Report Text: Enter text\n" in text


def test_a_key_object_selection_lists_its_images_and_frames() -> None:
    ds = document(sr.KEY_OBJECT_SELECTION, "Of Interest")
    images = []
    for number, frames in ((1, None), (2, [3, 7])):
        reference = Dataset()
        reference.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        reference.ReferencedSOPInstanceUID = f"1.2.3.{number}"
        if frames is not None:
            reference.ReferencedFrameNumber = frames
        images.append(item("CONTAINS", "IMAGE", "Image", ReferencedSOPSequence=[reference]))
    ds.ContentSequence = Sequence(
        [item("CONTAINS", "TEXT", "Key Object Description", TextValue="see the lesion"), *images]
    )
    report = report_from_dataset(ds)
    assert report.kind == "Key Object Selection"
    assert report.title == "Of Interest"
    refs = [c.reference for c in report.root.children if c.reference is not None]
    assert [(r.sop_instance_uid, r.frames) for r in refs] == [("1.2.3.1", ()), ("1.2.3.2", (3, 7))]
    assert "  Image: image 1.2.3.2, frames 3, 7" in report.text()


def test_num_pname_code_and_missing_values() -> None:
    ds = document()
    measured = Dataset()
    measured.NumericValue = "12.5"
    measured.MeasurementUnitsCodeSequence = [code("millimeter", "mm")]
    ds.ContentSequence = Sequence(
        [
            item("CONTAINS", "NUM", "Length", MeasuredValueSequence=[measured]),
            item("CONTAINS", "NUM", "Empty"),
            item("HAS OBS CONTEXT", "PNAME", "Observer", PersonName="Smith^John^^Dr"),
            item("CONTAINS", "CODE", "Finding", ConceptCodeSequence=[code("Nodule")]),
            item("CONTAINS", "IMAGE", "Image"),
        ]
    )
    values = [(c.concept, c.value, c.note) for c in report_from_dataset(ds).root.children]
    assert values == [
        ("Length", "12.5 millimeter", ""),
        ("Empty", "(no value)", ""),
        ("Observer", "Smith, Dr John", ""),
        ("Finding", "Nodule", ""),
        ("Image", "", "no referenced object"),
    ]


def nested(depth: int) -> Dataset:
    ds = document(title="Deep")
    parent = ds
    for level in range(depth):
        child = item("CONTAINS", "CONTAINER", f"Level {level + 1}")
        parent.ContentSequence = Sequence([child])
        parent = child
    return ds


def test_a_report_nested_1000_deep_is_cut_at_64_levels_with_a_note() -> None:
    report = report_from_dataset(nested(1000))
    depths = [d for d, _ in report.root.walk()]
    assert max(depths) == sr.MAX_DEPTH == 64
    assert len(depths) == 65
    assert report.notes == ["content nested more than 64 levels deep is not shown"]
    deepest = next(i for d, i in report.root.walk() if d == 64)
    assert deepest.concept == "Level 64"
    assert deepest.note == "1 item below not shown: too deep"
    assert "Note: content nested more than 64 levels" in report.text()


def test_a_file_nested_1000_deep_reads_with_the_reader_s_note(tmp_path: Path) -> None:
    path = tmp_path / "deep.dcm"
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)  # pydicom writes nested sequences recursively
    try:
        nested(1000).save_as(path, enforce_file_format=True)
    finally:
        sys.setrecursionlimit(limit)
    report = read_report(path)
    assert report.title == "Deep"
    assert report.root.children == []
    assert any("(0040,A730) left out" in n and "deep" in n for n in report.notes)


def test_more_than_20000_items_are_cut_with_a_note() -> None:
    ds = document()
    ds.ContentSequence = Sequence(
        [item("CONTAINS", "TEXT", "Line", TextValue=str(k)) for k in range(25_000)]
    )
    report = report_from_dataset(ds)
    assert report.item_count == sr.MAX_ITEMS == 20_000
    assert len(report.root.children) == 19_999
    assert report.notes == ["only the first 20000 content items are shown (5001 more)"]


def test_every_text_is_escaped() -> None:
    ds = document(title="Title\x1b]0;owned\x07")
    ds.PatientName = "Evil\u202e^Name"
    ds.ContentSequence = Sequence(
        [item("CONTAINS", "TEXT", "Finding\x9b", TextValue="red \x1b[31m\r\nnext\u2028line")]
    )
    report = report_from_dataset(ds)
    text = report.text()
    assert "\x1b" not in text and "\x9b" not in text and "\u202e" not in text
    assert "\u2028" not in text and "\x07" not in text
    assert report.title == "Title\\x1b]0;owned\\x07"
    assert report.patient_name == "Evil\\u202e, Name"
    finding = report.root.children[0]
    assert finding.concept == "Finding\\x9b"
    assert finding.value == "red \\x1b[31m\nnext\\u2028line"


def test_an_image_is_no_report() -> None:
    with pytest.raises(ReportError, match="not a structured report"):
        read_report(bundled("CT_small.dcm"))


def test_a_value_of_the_wrong_kind_is_a_note_on_its_item(tmp_path: Path) -> None:
    """Frame numbers that are no numbers (written with another VR, as a hostile file may):
    the item says its value is unreadable, the rest of the report reads on."""
    ds = document()
    reference = Dataset()
    reference.ReferencedSOPInstanceUID = "1.2.3"
    reference.add(DataElement(0x00081160, "LO", "abc"))  # Referenced Frame Number
    measured = Dataset()
    measured.add(DataElement(0x0040A30A, "LO", "n/a\x07"))  # Numeric Value
    ds.ContentSequence = Sequence(
        [
            item("CONTAINS", "IMAGE", "Image", ReferencedSOPSequence=[reference]),
            item("CONTAINS", "NUM", "Size", MeasuredValueSequence=[measured]),
            item("CONTAINS", "TEXT", "After", TextValue="still read"),
        ]
    )
    ds.save_as(tmp_path / "odd.dcm", enforce_file_format=True)
    report = read_report(tmp_path / "odd.dcm")
    image, size, after = report.root.children
    assert image.note == "value unreadable: ValueError"
    assert size.value == "n/a\\x07"
    assert after.value == "still read"
    assert "    (value unreadable: ValueError)" in report.text()
