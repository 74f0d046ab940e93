"""The tag inspector's tree (viewer.imaging.dump): every element, sequences to any depth, private
tags with their creator, the File Meta first, fragment offsets checked against the file's bytes,
search by keyword, tag and value, and bounded, escaped output on hostile files."""

from __future__ import annotations

import json
import struct
import threading
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import generate_fragments, parse_basic_offsets
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from viewer.imaging import dump as dump_module
from viewer.imaging.decode import DecodeError
from viewer.imaging.dump import (
    MAX_VALUE_CHARS,
    Node,
    dump_file,
    dump_json,
    parse_tag,
    search,
    text_lines,
)

#: Characters a terminal acts on: none may be in a node's text.
RAW_CONTROLS = [chr(c) for c in range(0x20)] + ["\x7f", "\x9b", "\u202e", "\u2028"]


def bundled(name: str) -> Path:
    path = get_testdata_file(name)
    assert path is not None, name
    return Path(path)


def walk(nodes: list[Node]) -> Iterator[Node]:
    for node in nodes:
        yield node
        yield from walk(node.children)


def find(nodes: list[Node], tag: int) -> Node:
    return next(n for n in walk(nodes) if n.tag == tag)


def write(tmp_path: Path, ds: Dataset, name: str = "test.dcm", *, implicit: bool = False) -> Path:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = "1.2.3.4"
    path = tmp_path / name
    ds.save_as(path, enforce_file_format=True)
    return path


# -- the tree ------------------------------------------------------------------------------------


def test_the_file_meta_comes_first_and_is_marked() -> None:
    tree = dump_file(bundled("CT_small.dcm"))
    meta = [n.meta for n in tree.nodes]
    assert meta[0] and not meta[-1]
    assert meta == sorted(meta, reverse=True)  # every meta node before every other
    assert {n.tag >> 16 for n in tree.nodes if n.meta} == {0x0002}
    assert find(tree.nodes, 0x00020010).value == "1.2.840.10008.1.2.1"
    assert tree.patient_name == "CompressedSamples, CT1"


def test_every_element_of_the_file_is_a_node_with_its_vr_vm_and_length() -> None:
    path = bundled("CT_small.dcm")
    ds = pydicom.dcmread(path)
    tree = dump_file(path)
    top = {n.tag: n for n in tree.nodes if not n.meta}
    assert set(top) == {int(e.tag) for e in ds}
    rows = top[0x00280010]
    assert (rows.keyword, rows.vr, rows.vm, rows.length, rows.value) == ("Rows", "US", 1, 2, "128")
    pixel_spacing = top[0x00280030]
    assert pixel_spacing.vm == 2
    assert pixel_spacing.value == "\\".join(str(v) for v in ds.PixelSpacing)
    pixels = top[0x7FE00010]
    assert pixels.length == len(ds.PixelData) == 32768
    assert pixels.value.startswith("32768 bytes: af 00 b4 00")
    assert pixels.value.endswith("…")


def test_sequences_hold_numbered_items_to_any_depth() -> None:
    tree = dump_file(bundled("JPEG2000.dcm"))
    source = find(tree.nodes, 0x00082112)  # Source Image Sequence
    assert (source.keyword, source.vr, source.value) == ("SourceImageSequence", "SQ", "1 item")
    (item,) = source.children
    assert item.keyword == "Item 1" and item.tag == 0xFFFEE000
    purpose = next(c for c in item.children if c.keyword == "PurposeOfReferenceCodeSequence")
    code = purpose.children[0].children[0]
    assert (code.keyword, code.value) == ("CodeValue", "121320")

    ds = pydicom.dcmread(bundled("rtplan.dcm"))
    tree = dump_file(bundled("rtplan.dcm"))
    beams = find(tree.nodes, 0x300A00B0)
    assert [i.keyword for i in beams.children] == [
        f"Item {n}" for n in range(1, len(ds.BeamSequence) + 1)
    ]
    control_points = beams.children[0].children
    assert any(c.keyword == "ControlPointSequence" and c.children for c in control_points)


def test_private_tags_name_their_creator() -> None:
    path = bundled("CT_small.dcm")
    ds = pydicom.dcmread(path)
    tree = dump_file(path)
    creator = find(tree.nodes, 0x00090010)
    assert creator.keyword == "PrivateCreator"
    assert creator.value == ds[0x00090010].value == "GEMS_IDEN_01"
    element = find(tree.nodes, 0x00091001)
    assert element.keyword == "Private tag"
    assert element.private_creator == "GEMS_IDEN_01"
    assert element.name == "Private tag (GEMS_IDEN_01)"
    assert find(tree.nodes, 0x00431010).private_creator == ds[0x00430010].value == "GEMS_PARM_01"
    assert find(tree.nodes, 0x00100010).private_creator is None


def test_a_private_element_without_its_creator_says_so(tmp_path: Path) -> None:
    ds = Dataset()
    ds.add_new(0x00291001, "LO", "orphan")
    tree = dump_file(write(tmp_path, ds))
    assert find(tree.nodes, 0x00291001).private_creator == "(no private creator)"


# -- encapsulated Pixel Data ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["JPEG2000.dcm", "SC_rgb_rle.dcm", "SC_rgb_rle_2frame.dcm"])
def test_fragment_offsets_point_at_the_items_in_the_file(name: str) -> None:
    path = bundled(name)
    data = path.read_bytes()
    tree = dump_file(path)
    pixels = find(tree.nodes, 0x7FE00010)
    table, *fragments = pixel_items = pixels.fragments
    assert table.kind == "offset table" and table.number == 0
    for item in pixel_items:
        assert data[item.offset - 8 : item.offset] == struct.pack(
            "<HHI", 0xFFFE, 0xE000, item.length
        )
    ds = pydicom.dcmread(path)
    offset_table, *expected = generate_fragments(ds.PixelData)  # pydicom's items, BOT first
    assert data[table.offset : table.offset + table.length] == offset_table
    assert [data[f.offset : f.offset + f.length] for f in fragments] == expected
    assert [f.number for f in fragments] == list(range(1, len(expected) + 1))
    assert table.entries == parse_basic_offsets(ds.PixelData)
    after = fragments[-1].offset + fragments[-1].length
    assert data[after : after + 4] == b"\xfe\xff\xdd\xe0"  # the Sequence Delimitation Item
    assert pixels.value.startswith(f"encapsulated: {len(expected)} fragment")


def test_a_basic_offset_table_lists_its_entries() -> None:
    tree = dump_file(bundled("SC_rgb_rle_2frame.dcm"))
    table = find(tree.nodes, 0x7FE00010).fragments[0]
    assert table.entries == [0, 672]
    assert "Basic Offset Table of 2 entries" in find(tree.nodes, 0x7FE00010).value


def _with_fragments(count: int) -> bytes:
    """SC_rgb_rle.dcm with its Pixel Data replaced by ``count`` two-byte fragments."""
    data = bundled("SC_rgb_rle.dcm").read_bytes()
    start = data.index(b"\xe0\x7f\x10\x00OB")
    item = struct.pack("<HHI", 0xFFFE, 0xE000, 2) + b"ab"
    return (
        data[:start]
        + b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff"
        + struct.pack("<HHI", 0xFFFE, 0xE000, 0)
        + item * count
        + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    )


def test_fragments_are_listed_up_to_the_cap_and_the_rest_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dump_module, "MAX_FRAGMENTS", 10)
    path = tmp_path / "many.dcm"
    path.write_bytes(_with_fragments(25))
    tree = dump_file(path)
    pixels = find(tree.nodes, 0x7FE00010)
    assert [f.number for f in pixels.fragments] == list(range(11))
    assert pixels.omitted == 15
    assert pixels.value.startswith("encapsulated: 25 fragments")
    assert "Pixel Data: 25 fragments, the first 10 listed" in tree.warnings
    assert "  … 15 more fragments not listed" in list(text_lines(tree.nodes))


def test_a_fragment_with_a_wrong_length_is_a_warning_not_a_crash(tmp_path: Path) -> None:
    # pydicom, landing on no item tag after the last fragment, scans for the delimiter's bytes
    # and reads this file; walked item by item, the walk stops there and says why.
    data = _with_fragments(3)
    last = data.rindex(struct.pack("<HHI", 0xFFFE, 0xE000, 2))
    data = data[:last] + struct.pack("<HHI", 0xFFFE, 0xE000, 1) + data[last + 8 :]
    path = tmp_path / "lying.dcm"
    path.write_bytes(data)
    tree = dump_file(path)
    pixels = find(tree.nodes, 0x7FE00010)
    assert [f.number for f in pixels.fragments] == [0, 1, 2, 3]
    assert pixels.fragments[-1].length == 1
    (problem,) = [w for w in tree.warnings if w.startswith("Pixel Data fragments:")]
    assert problem.endswith(f"at byte {last + 9} where an item was expected"), problem


# -- search --------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["(0010,0010)", "0010,0010", "00100010", " (0010, 0010) "])
def test_search_by_tag_in_every_form(form: str) -> None:
    assert parse_tag(form) == 0x00100010
    found = search(dump_file(bundled("CT_small.dcm")).nodes, form)
    assert [n.keyword for n in found] == ["PatientName"]


def test_search_by_keyword_is_case_insensitive_and_keeps_ancestors() -> None:
    tree = dump_file(bundled("JPEG2000.dcm"))
    found = search(tree.nodes, "codemeaning")
    assert [n.keyword for n in found] == ["SourceImageSequence", "DerivationCodeSequence"]
    assert [n.keyword for n in walk(found)] == [
        "SourceImageSequence",
        "Item 1",
        "PurposeOfReferenceCodeSequence",
        "Item 1",
        "CodeMeaning",
        "DerivationCodeSequence",
        "Item 1",
        "CodeMeaning",
    ]
    # the tree itself is left whole
    assert len(find(tree.nodes, 0x00089215).children[0].children) == 3


def test_search_by_value_and_by_creator() -> None:
    tree = dump_file(bundled("CT_small.dcm"))
    assert [n.keyword for n in search(tree.nodes, "compressedsamples")] == ["PatientName"]
    by_creator = list(walk(search(tree.nodes, "GEMS_PARM_01")))
    assert by_creator and all(
        n.private_creator == "GEMS_PARM_01" or n.value == "GEMS_PARM_01" for n in by_creator
    )


def test_a_matching_sequence_keeps_its_whole_subtree() -> None:
    tree = dump_file(bundled("JPEG2000.dcm"))
    (found,) = search(tree.nodes, "DerivationCodeSequence")
    assert [c.keyword for c in found.children[0].children] == [
        "CodeValue",
        "CodingSchemeDesignator",
        "CodeMeaning",
    ]


def test_an_empty_search_keeps_everything_and_a_miss_keeps_nothing() -> None:
    tree = dump_file(bundled("CT_small.dcm"))
    assert search(tree.nodes, "  ") == tree.nodes
    assert search(tree.nodes, "no such thing anywhere") == []


# -- output --------------------------------------------------------------------------------------


def test_json_has_stable_keys_and_parses() -> None:
    tree = dump_file(bundled("SC_rgb_rle_2frame.dcm"))
    document = json.loads(json.dumps(dump_json(tree)))
    assert set(document) == {"path", "transfer_syntax", "warnings", "elements"}
    keys = {
        "tag",
        "keyword",
        "vr",
        "vm",
        "length",
        "value",
        "private_creator",
        "meta",
        "children",
        "fragments",
    }
    assert all(set(e) == keys for e in document["elements"])
    pixels = next(e for e in document["elements"] if e["tag"] == "(7FE0,0010)")
    assert pixels["length"] is None
    assert [f["kind"] for f in pixels["fragments"]] == ["offset table", "fragment", "fragment"]
    assert pixels["fragments"][0]["entries"] == [0, 672]
    assert document["elements"][0]["meta"] is True


def test_text_lines_look_like_dcmdump() -> None:
    lines = list(text_lines(dump_file(bundled("JPEG2000.dcm")).nodes))
    assert lines[0] == "# File Meta Information"
    assert "# Data Set" in lines
    assert "(0010,0010) PN PatientName [CompressedSamples^NM1]" in lines
    assert "(0008,2112) SQ SourceImageSequence (1 item, undefined length)" in lines
    assert "  (FFFE,E000) Item 1 (3 elements)" in lines
    assert "        (0008,0100) SH CodeValue [121320]" in lines
    assert any(line.startswith("  (FFFE,E000) Fragment 1 at byte ") for line in lines)
    assert "(0009,0010) LO PrivateCreator [GEMS_GENIE_1]" in lines


# -- hostile input -------------------------------------------------------------------------------


def test_control_characters_in_values_are_escaped(tmp_path: Path) -> None:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Evil\x1b]0;pwned\x07^Name"
    ds.StudyDescription = "two\nlines\u202e"
    ds.ImageComments = "a \\ backslash"
    ds.ImageType = ["ORIGINAL", "PRI\x9bMARY"]
    ds.add_new(0x00290010, "LO", "CREATOR\x1b[2J")
    ds.add_new(0x00291001, "LO", "x")
    tree = dump_file(write(tmp_path, ds))
    assert find(tree.nodes, 0x00100010).value == "Evil\\x1b]0;pwned\\x07^Name"
    assert find(tree.nodes, 0x00081030).value == "two\\nlines\\u202e"
    assert find(tree.nodes, 0x00204000).value == "a \\\\ backslash"
    assert find(tree.nodes, 0x00080008).value == "ORIGINAL\\PRI\\x9bMARY"  # one separator
    assert find(tree.nodes, 0x00291001).private_creator == "CREATOR\\x1b[2J"
    assert tree.patient_name == "Evil\\x1b]0;pwned\\x07, Name"
    text = "\n".join(text_lines(tree.nodes)) + json.dumps(dump_json(tree), ensure_ascii=False)
    for line in text_lines(tree.nodes):
        assert not any(c in line for c in RAW_CONTROLS), line
    assert "\x1b" not in text and "\u202e" not in text


@pytest.mark.parametrize("implicit", [False, True])
def test_long_values_are_cut_and_never_converted_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, implicit: bool
) -> None:
    ds = Dataset()
    ds.TextValue = "A" * 3_000_000
    ds.ContourData = ["1.5"] * 20_000
    ds.RealWorldValueLUTData = [1.0] * 100_000
    path = write(tmp_path, ds, implicit=implicit)
    seen: list[tuple[int, int, str]] = []
    convert = pydicom.dataset.convert_raw_data_element

    def spy(raw, **kwargs):  # type: ignore[no-untyped-def]
        elem = convert(raw, **kwargs)
        seen.append((int(raw.tag), len(raw.value or b""), elem.VR))
        return elem

    monkeypatch.setattr(pydicom.dataset, "convert_raw_data_element", spy)
    monkeypatch.setattr(dump_module, "convert_raw_data_element", spy)
    tree = dump_file(path)
    as_text = [(tag, size) for tag, size, vr in seen if vr not in dump_module.BINARY_VRS]
    assert (0x0040A160, dump_module.MAX_CONVERTED_BYTES) in as_text  # the text, cut
    assert max(size for _tag, size in as_text) <= dump_module.MAX_CONVERTED_BYTES
    text = find(tree.nodes, 0x0040A160)
    assert text.length == 3_000_000
    assert text.value == "A" * (MAX_VALUE_CHARS - 1) + "…"
    lut = find(tree.nodes, 0x00409212)
    assert lut.length == 800_000
    assert len(lut.value) <= MAX_VALUE_CHARS
    contour = find(tree.nodes, 0x30060050)
    assert contour.length == 80_000
    if implicit:  # explicit VR has no room for these lengths in a DS or FD: pydicom wrote UN
        assert lut.vm == 100_000 and lut.value.startswith("1.0\\1.0\\")
        assert contour.vm == 20_000 and contour.value.startswith("1.5\\1.5\\")
    else:
        assert lut.value.startswith("800000 bytes: 00 00 00 00 00 00 f0 3f")


def test_items_beyond_the_cap_are_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dump_module, "MAX_ITEMS", 10)
    ds = Dataset()
    items = []
    for n in range(30):
        item = Dataset()
        item.ReferencedSOPInstanceUID = f"1.2.{n}"
        items.append(item)
    ds.ReferencedImageSequence = Sequence(items)
    tree = dump_file(write(tmp_path, ds))
    seq = find(tree.nodes, 0x00081140)
    assert len(seq.children) == 10 and seq.omitted == 20
    assert seq.value == "30 items"
    assert any("30 items, the first 10 listed" in w for w in tree.warnings)


def test_the_whole_tree_is_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dump_module, "MAX_NODES", 20)
    tree = dump_file(bundled("CT_small.dcm"))
    assert sum(1 for _ in walk(tree.nodes)) <= 20
    assert any("more than 20 elements" in w for w in tree.warnings)


def test_a_cancelled_dump_stops_and_says_so() -> None:
    cancel = threading.Event()
    cancel.set()
    tree = dump_file(bundled("CT_small.dcm"), cancel=cancel)
    assert tree.nodes == []
    assert "cancelled: the tree is incomplete" in tree.warnings


def _huge_lengths() -> bytes:
    """CT_small.dcm with its Patient Name declaring 0xFFFFFFF0 bytes (a UN header)."""
    data = bundled("CT_small.dcm").read_bytes()
    start = data.index(b"\x10\x00\x10\x00PN")
    return data[:start] + b"\x10\x00\x10\x00UN\x00\x00\xf0\xff\xff\xff" + data[start + 8 :]


def test_truncated_and_lying_files_give_a_decode_error_or_a_bounded_tree(tmp_path: Path) -> None:
    cases = {"huge length": _huge_lengths()}
    for name in ("JPEG2000.dcm", "rtplan.dcm", "CT_small.dcm"):
        data = bundled(name).read_bytes()
        for cut in range(0, len(data), max(1, len(data) // 40)):
            cases[f"{name} cut at {cut}"] = data[:cut]
    outcomes = {"tree": 0, "error": 0}
    for label, data in cases.items():
        path = tmp_path / "bad.dcm"
        path.write_bytes(data)
        try:
            tree = dump_file(path)
        except DecodeError as exc:
            assert exc.reason, label
            outcomes["error"] += 1
            continue
        outcomes["tree"] += 1
        for node in walk(tree.nodes):
            assert len(node.value) <= MAX_VALUE_CHARS + 100, label  # fragment summaries
            assert not any(c in node.value for c in RAW_CONTROLS), label
        json.dumps(dump_json(tree))
    assert outcomes["tree"] and outcomes["error"], outcomes


def test_a_huge_declared_length_is_said_and_nothing_is_allocated(tmp_path: Path) -> None:
    path = tmp_path / "huge.dcm"
    path.write_bytes(_huge_lengths())
    tree = dump_file(path)  # the reader keeps what the file holds, and says so
    assert any("declares 4294967280 bytes" in w for w in tree.warnings), tree.warnings
    name = find(tree.nodes, 0x00100010)
    assert name.length == 0xFFFFFFF0
    assert len(name.value) <= MAX_VALUE_CHARS


def test_a_file_that_is_no_dicom_is_a_decode_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"just some text, not DICOM at all\n" * 10)
    with pytest.raises(DecodeError, match="not a DICOM file"):
        dump_file(path)


def test_a_bare_data_set_without_file_meta_is_dumped(tmp_path: Path) -> None:
    ds = Dataset()
    ds.PatientName = "Bare^Set"
    ds.Modality = "OT"
    buffer = BytesIO()
    ds.save_as(buffer, implicit_vr=True, little_endian=True)
    path = tmp_path / "bare.dcm"
    path.write_bytes(buffer.getvalue())
    tree = dump_file(path)
    assert find(tree.nodes, 0x00100010).value == "Bare^Set"
    assert any("inferred" in w for w in tree.warnings)
