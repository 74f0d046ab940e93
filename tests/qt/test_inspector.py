"""The tag inspector (viewer.qt.inspector.TagInspector): read on a worker, File Meta first,
private creators and fragments shown, search filters as you type, Ctrl+C / Copy copy rows."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QApplication, QTreeWidgetItem

from viewer.imaging import dump as dump_module
from viewer.qt import inspector as inspector_module
from viewer.qt.inspector import TagInspector


def bundled(name: str) -> Path:
    path = get_testdata_file(name)
    assert path is not None, name
    return Path(path)


@pytest.fixture
def open_inspector(qtbot) -> Iterator[Callable[[Path], TagInspector]]:  # type: ignore[no-untyped-def]
    opened: list[TagInspector] = []

    def open_(path: Path) -> TagInspector:
        dialog = TagInspector(path)
        qtbot.addWidget(dialog)
        opened.append(dialog)
        with qtbot.waitSignal(dialog.loaded, timeout=30_000):
            dialog.show()
        return dialog

    yield open_
    for dialog in opened:
        dialog.shutdown()


def items(parent: QTreeWidgetItem) -> list[QTreeWidgetItem]:
    return [parent.child(i) for i in range(parent.childCount())]  # type: ignore[misc]


def all_items(dialog: TagInspector) -> Iterator[QTreeWidgetItem]:
    stack = list(reversed(items(dialog.tree.invisibleRootItem())))
    while stack:
        item = stack.pop()
        yield item
        stack.extend(reversed(items(item)))


def on_screen(item: QTreeWidgetItem) -> bool:
    """Not hidden, and every ancestor shown and expanded."""
    if item.isHidden():
        return False
    parent = item.parent()
    while parent is not None:
        if parent.isHidden() or not parent.isExpanded():
            return False
        parent = parent.parent()
    return True


def visible_rows(dialog: TagInspector) -> list[str]:
    return [
        f"{item.text(0)} {item.text(1)}".strip() for item in all_items(dialog) if on_screen(item)
    ]


def row(dialog: TagInspector, tag: str) -> QTreeWidgetItem:
    return next(item for item in all_items(dialog) if item.text(0) == tag)


def test_the_file_is_read_on_a_worker_and_shown_file_meta_first(
    open_inspector, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    threads: list[bool] = []
    real = dump_module.dump_file

    def spy(path, **kwargs):  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread() is threading.main_thread())
        return real(path, **kwargs)

    monkeypatch.setattr(inspector_module, "dump_file", spy)
    dialog = open_inspector(bundled("CT_small.dcm"))
    assert threads == [False]
    assert not dialog.isModal()
    assert dialog.windowTitle() == "Tags: CT_small.dcm — CompressedSamples, CT1"
    meta, body = items(dialog.tree.invisibleRootItem())
    assert (meta.text(0), body.text(0)) == ("File Meta Information", "Data Set")
    assert [c.text(0) for c in items(meta)][:2] == ["(0002,0000)", "(0002,0001)"]
    assert all(c.text(0).startswith("(0002,") for c in items(meta))
    name = row(dialog, "(0010,0010)")
    assert [name.text(c) for c in range(5)] == [
        "(0010,0010)",
        "PatientName",
        "PN",
        "22",
        "CompressedSamples^CT1",
    ]
    assert row(dialog, "(0009,1001)").text(1) == "Private tag (GEMS_IDEN_01)"
    assert "transfer syntax 1.2.840.10008.1.2.1" in dialog.status.text()


def test_sequences_and_fragments_are_rows(open_inspector) -> None:  # type: ignore[no-untyped-def]
    dialog = open_inspector(bundled("JPEG2000.dcm"))
    sequence = row(dialog, "(0008,9215)")
    (item,) = items(sequence)
    assert item.text(1) == "Item 1"
    assert [c.text(1) for c in items(item)] == [
        "CodeValue",
        "CodingSchemeDesignator",
        "CodeMeaning",
    ]
    two_frames = open_inspector(bundled("SC_rgb_rle_2frame.dcm"))
    pixels = row(two_frames, "(7FE0,0010)")
    assert pixels.text(3) == "undefined"
    assert [c.text(1) for c in items(pixels)] == ["Basic Offset Table", "Fragment 1", "Fragment 2"]
    assert items(pixels)[0].text(4).endswith(": 0\\672")
    # the tag column fits the deepest rows, collapsed or not
    fixed = QFontMetrics(items(pixels)[0].font(0))
    indent = two_frames.tree.indentation()
    assert two_frames.tree.columnWidth(0) >= fixed.horizontalAdvance("(FFFE,E000)") + 3 * indent
    assert dialog.tree.columnWidth(0) >= fixed.horizontalAdvance("(FFFE,E000)") + 5 * indent


def test_typing_a_search_leaves_only_matching_rows_and_their_ancestors(
    open_inspector, qtbot
) -> None:  # type: ignore[no-untyped-def]
    dialog = open_inspector(bundled("JPEG2000.dcm"))
    everything = len(visible_rows(dialog))
    qtbot.keyClicks(dialog.search_edit, "codevalue")
    expected = [
        "Data Set",
        "(0008,2112) SourceImageSequence",
        "(FFFE,E000) Item 1",
        "(0040,A170) PurposeOfReferenceCodeSequence",
        "(FFFE,E000) Item 1",
        "(0008,0100) CodeValue",
        "(0008,9215) DerivationCodeSequence",
        "(FFFE,E000) Item 1",
        "(0008,0100) CodeValue",
    ]
    qtbot.waitUntil(lambda: visible_rows(dialog) == expected)

    dialog.search_edit.setText("(0010,0010)")
    qtbot.waitUntil(lambda: visible_rows(dialog) == ["Data Set", "(0010,0010) PatientName"])
    dialog.search_edit.setText("GEMS_GENIE")  # a private creator: its block
    qtbot.waitUntil(lambda: "(0009,1010) Private tag (GEMS_GENIE_1)" in visible_rows(dialog))
    assert "(0010,0010) PatientName" not in visible_rows(dialog)

    dialog.search_edit.clear()
    qtbot.waitUntil(lambda: len(visible_rows(dialog)) >= everything)
    assert not any(item.isHidden() for item in all_items(dialog))


def test_ctrl_c_and_the_copy_button_copy_the_selected_rows(open_inspector, qtbot) -> None:  # type: ignore[no-untyped-def]
    dialog = open_inspector(bundled("CT_small.dcm"))
    clipboard = QApplication.clipboard()
    clipboard.setText("before")
    assert not dialog.copy_button.isEnabled()
    name, patient_id = row(dialog, "(0010,0010)"), row(dialog, "(0010,0020)")
    patient_id.setSelected(True)
    name.setSelected(True)  # selected second, copied in the tree's order
    dialog.tree.setFocus()
    qtbot.keyClick(dialog.tree, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert clipboard.text() == (
        "(0010,0010)\tPatientName\tPN\t22\tCompressedSamples^CT1\n"
        f"(0010,0020)\tPatientID\tLO\t{patient_id.text(3)}\t{patient_id.text(4)}\n"
    )
    clipboard.setText("before")
    dialog.tree.clearSelection()
    row(dialog, "(0028,0010)").setSelected(True)
    assert dialog.copy_button.isEnabled()
    qtbot.mouseClick(dialog.copy_button, Qt.MouseButton.LeftButton)
    assert clipboard.text() == "(0028,0010)\tRows\tUS\t2\t128\n"


def test_names_from_the_file_are_escaped_in_the_title_and_rows(
    open_inspector, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3"
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Evil\u202e<b>Bold</b>^Name\n"
    path = tmp_path / "evil\x1b.dcm"
    ds.save_as(path, enforce_file_format=True)
    dialog = open_inspector(path)
    assert dialog.windowTitle() == "Tags: evil\\x1b.dcm — Evil\\u202e<b>Bold</b>, Name"
    assert row(dialog, "(0010,0010)").text(4) == "Evil\\u202e<b>Bold</b>^Name\\n"


def test_a_file_that_cannot_be_read_says_why(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "notes.txt"
    path.write_text("no DICOM here\n" * 20)
    dialog = TagInspector(path)
    qtbot.addWidget(dialog)
    with qtbot.waitSignal(dialog.failed, timeout=30_000) as blocker:
        dialog.show()
    dialog.shutdown()
    assert blocker.args == ["not a DICOM file (no DICM prefix and no DICOM data set)"]
    assert dialog.windowTitle() == "Tags: notes.txt — cannot be read"
    assert "cannot be read: not a DICOM file" in dialog.status.text()
    assert dialog.tree.topLevelItemCount() == 0
    assert not dialog.search_edit.isEnabled()
