"""The whole data set of one file as a tree: the tag inspector's and ``lightbox dump``'s model.

:func:`dump_file` reads a file with the project's robust reader
(:func:`viewer.imaging.decode.read_file`) and turns its data set into plain dataclasses
(:class:`Node`, :class:`Fragment`), one node per element (PS3.5 7.1): the File Meta (group
0002, PS3.10 7.1) first, then the data set in file order; sequences (PS3.5 7.5) hold their
items ("Item 1", ...) and the items their elements, to any depth; private elements (PS3.5 7.8)
name their Private Creator. Nothing from the file reaches a node unescaped: every text is made
safe by :func:`viewer.text.escape` and bounded (:data:`MAX_VALUE_CHARS`); a binary value (OB,
OW, OD, OF, OL, OV, UN) is its length and first bytes in hex, and a long value is converted
from a bounded prefix of its bytes, never as a whole.

Encapsulated Pixel Data (PS3.5 A.4): pydicom keeps no offsets, so the file's bytes are walked
with the one byte-level walker (:mod:`viewer.dicom.elements`) to the Pixel Data element, then
item by item: the Basic Offset Table with its entries, and each fragment with the byte offset
of its value in the file and its length (the 8 bytes before each offset are its item tag
(FFFE,E000) and that length).

Hostile files are bounded: at most :data:`MAX_ITEMS` items per sequence,
:data:`MAX_FRAGMENTS` fragments and offset table entries, :data:`MAX_NODES` nodes in all and
:data:`MAX_DEPTH` levels are listed; what is left out is counted (a node's ``omitted``) and said
in the dump's warnings.

:func:`search` keeps the nodes matching a query (keyword, tag, value, private creator) and their
ancestors; :func:`to_json` and :func:`text_lines` are what ``lightbox dump`` prints.
"""

from __future__ import annotations

import mmap
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.hooks import hooks
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag
from pydicom.uid import DeflatedExplicitVRLittleEndian

from viewer.dicom import elements
from viewer.imaging.decode import DecodeError, library_messages, read_file
from viewer.text import escape, person_name, plural

__all__ = [
    "MAX_DEPTH",
    "MAX_FRAGMENTS",
    "MAX_ITEMS",
    "MAX_NODES",
    "MAX_VALUE_CHARS",
    "Dump",
    "Fragment",
    "Node",
    "Query",
    "dump_file",
    "format_tag",
    "parse_tag",
    "search",
    "text_lines",
    "to_json",
]

#: A value's text is cut at this many characters, "…" marking the cut.
MAX_VALUE_CHARS = 200
#: Items listed per sequence.
MAX_ITEMS = 10_000
#: Fragments (and Basic Offset Table entries) listed per Pixel Data element.
MAX_FRAGMENTS = 10_000
#: Fragment items counted beyond those listed before the count gives up ("more than N").
MAX_FRAGMENT_WALK = 1_000_000
#: Nodes (elements and items) in one dump.
MAX_NODES = 200_000
#: Sequence levels shown (the reader already cuts out nesting deeper than 64).
MAX_DEPTH = 128
#: Bytes of a long value converted to text (a 100 MB LT is never decoded whole).
MAX_CONVERTED_BYTES = 4096
#: First bytes of a binary value shown in hex.
HEX_BYTES = 16

ITEM_TAG = elements.ITEM
PIXEL_DATA = 0x7FE00010
BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_NUMBER_SIZES = {"US": 2, "SS": 2, "UL": 4, "SL": 4, "FL": 4, "AT": 4, "FD": 8, "SV": 8, "UV": 8}


@dataclass(slots=True)
class Fragment:
    """An item of encapsulated Pixel Data (PS3.5 A.4): the Basic Offset Table (``number`` 0,
    its ``entries``) or a fragment (``number`` from 1). ``offset`` is the byte offset of the
    item's value in the file; its 8-byte item header lies just before."""

    kind: str  # "offset table" | "fragment"
    number: int
    offset: int
    length: int
    entries: list[int] = field(default_factory=list)

    @property
    def label(self) -> str:
        return "Basic Offset Table" if self.kind == "offset table" else f"Fragment {self.number}"


@dataclass(slots=True)
class Node:
    """One element (or one item of a sequence: ``tag`` (FFFE,E000), ``keyword`` "Item n").

    Every text field is escaped already. ``length`` is the value length in bytes, None when
    undefined (PS3.5 7.1.3) or unknown; ``omitted`` counts children (items or fragments) that
    the caps (:data:`MAX_ITEMS`, :data:`MAX_FRAGMENTS`...) left out."""

    tag: int
    keyword: str
    vr: str
    vm: int
    length: int | None
    value: str
    private_creator: str | None = None
    meta: bool = False
    children: list[Node] = field(default_factory=list)
    fragments: list[Fragment] = field(default_factory=list)
    omitted: int = 0

    @property
    def tag_text(self) -> str:
        return format_tag(self.tag)

    @property
    def is_item(self) -> bool:
        return self.tag == ITEM_TAG

    @property
    def name(self) -> str:
        """What a person reads: the keyword, a private tag with its creator."""
        if self.private_creator and self.keyword == "Private tag":
            return f"Private tag ({self.private_creator})"
        return self.keyword


@dataclass(slots=True)
class Dump:
    """A file's tree: ``nodes`` (File Meta first), the reader's and the dump's warnings."""

    path: Path
    transfer_syntax: str
    nodes: list[Node]
    warnings: list[str] = field(default_factory=list)
    patient_name: str = ""  # as every screen shows it (viewer.text.person_name), escaped


def format_tag(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


_TAG_FORMS = re.compile(r"^\(?\s*([0-9A-Fa-f]{4})\s*,?\s*([0-9A-Fa-f]{4})\s*\)?$")


def parse_tag(text: str) -> int | None:
    """A tag written ``(0010,0010)``, ``0010,0010`` or ``00100010``; None if it is none."""
    found = _TAG_FORMS.match(text.strip())
    if found is None:
        return None
    return (int(found.group(1), 16) << 16) | int(found.group(2), 16)


# -- reading -------------------------------------------------------------------------------------


def dump_file(path: str | Path, *, cancel: threading.Event | None = None) -> Dump:
    """The tree of the file at ``path``; raises :class:`~viewer.imaging.decode.DecodeError`
    when it cannot be read at all. A ``cancel`` event set meanwhile stops the walk (what was
    built is returned, with a warning)."""
    p = Path(path)
    try:
        dicom = read_file(p)
        broken = ""
    except DecodeError as whole:
        # A file that breaks in its Pixel Data (truncated, a fragment overrunning the file)
        # still has a header worth reading: shown up to the pixels, with the reason.
        try:
            dicom = read_file(p, headers_only=True)
        except DecodeError:
            raise whole from None
        broken = (
            f"the data set cannot be read past its header ({whole.reason}): "
            "Pixel Data and what follows it are not shown"
        )
    ds = dicom.dataset
    builder = _Builder(cancel)
    if broken:
        builder.warnings.append(broken)
    builder.warnings.extend(dicom.warnings)
    meta = getattr(ds, "file_meta", None)
    nodes: list[Node] = []
    with library_messages() as messages:  # pydicom's words on values it converts now
        if meta is not None:
            nodes.extend(builder.dataset_nodes(meta, depth=0, meta=True))
        nodes.extend(builder.dataset_nodes(ds, depth=0, meta=False))
    builder.warnings.extend(m.replace(" in file <no filename>", "") for m in messages)
    ts = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    pixel = next((n for n in nodes if n.tag == PIXEL_DATA and n.length is None), None)
    if pixel is not None:
        _add_fragments(p, ts, pixel, builder.warnings)
    if builder.cancelled():
        builder.warnings.append("cancelled: the tree is incomplete")
    return Dump(
        path=p,
        transfer_syntax=escape(ts),
        nodes=nodes,
        warnings=list(dict.fromkeys(builder.warnings)),
        patient_name=_patient_name(ds),
    )


def _patient_name(ds: Dataset) -> str:
    try:
        return escape(person_name(ds.get("PatientName", "")))[:MAX_VALUE_CHARS]
    except Exception:  # a damaged name is no reason to fail the dump
        return ""


class _Builder:
    """Turns pydicom data sets into nodes, counting them against the caps."""

    def __init__(self, cancel: threading.Event | None) -> None:
        self.cancel = cancel
        self.count = 0
        self.warnings: list[str] = []
        self._noted_node_cap = False

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def _room(self) -> bool:
        if self.count < MAX_NODES:
            return True
        if not self._noted_node_cap:
            self._noted_node_cap = True
            self.warnings.append(f"more than {MAX_NODES:,} elements: the rest is not listed")
        return False

    def dataset_nodes(self, ds: Dataset, *, depth: int, meta: bool) -> list[Node]:
        nodes: list[Node] = []
        for tag in list(ds.keys()):
            if self.cancelled() or not self._room():
                break
            self.count += 1
            try:
                nodes.append(self._element_node(ds, BaseTag(tag), depth=depth, meta=meta))
            except MemoryError:
                raise
            except RecursionError:
                # pydicom parses a sequence of undefined length nested in a deferred item all
                # at once, recursing a few frames per level: hundreds of levels (a crafted
                # file; found by make fuzz) exhaust Python's stack before MAX_DEPTH applies.
                text = format_tag(int(tag))
                self.warnings.append(f"element {text}: its sequences nest too deep to read")
                nodes.append(
                    Node(int(tag), _keyword(int(tag)), "", 0, None, "not shown: nests too deep")
                )
            except Exception as exc:  # hostile bytes pydicom cannot make sense of
                reason = " ".join(str(exc).split())[:MAX_VALUE_CHARS]
                self.warnings.append(f"element {format_tag(int(tag))} cannot be read: {reason}")
                nodes.append(
                    Node(int(tag), _keyword(int(tag)), "", 0, None, escape(f"unreadable: {reason}"))
                )
        return nodes

    def _element_node(self, ds: Dataset, tag: BaseTag, *, depth: int, meta: bool) -> Node:
        raw = ds.get_item(tag)
        length: int | None = None
        cut = False
        if isinstance(raw, RawDataElement):
            length = None if raw.length == elements.UNDEFINED else raw.length
            elem, cut = _bounded_element(ds, tag, raw)
        else:
            elem = raw
            length = _encoded_length(elem, ds)
        vr = str(elem.VR or "UN")
        node = Node(
            tag=int(tag),
            keyword=_keyword(int(tag)),
            vr=escape(vr),
            vm=_vm(elem, raw, cut=cut),
            length=length,
            value="",
            private_creator=_private_creator(ds, elem, tag),
            meta=meta,
        )
        if vr == "SQ":
            items = list(elem.value or [])
            node.value = plural(len(items), "item")
            if depth >= MAX_DEPTH:
                node.omitted = len(items)
                self.warnings.append(
                    f"{node.tag_text}: sequences nest deeper than {MAX_DEPTH}: not shown"
                )
                return node
            for number, item in enumerate(items[:MAX_ITEMS], start=1):
                if self.cancelled() or not self._room():
                    break
                self.count += 1
                children = self.dataset_nodes(item, depth=depth + 1, meta=meta)
                node.children.append(
                    Node(
                        ITEM_TAG,
                        f"Item {number}",
                        "",
                        0,
                        None,
                        plural(len(children), "element"),
                        meta=meta,
                        children=children,
                    )
                )
            node.omitted = len(items) - len(node.children)
            if len(items) > MAX_ITEMS:
                self.warnings.append(
                    f"{node.tag_text} {node.keyword}: {len(items):,} items, "
                    f"the first {MAX_ITEMS:,} listed"
                )
            return node
        if int(tag) == PIXEL_DATA and length is None:
            node.value = "encapsulated"  # completed by _add_fragments
            return node
        node.value = value_text(vr, elem.value, full_length=length, cut=cut)
        return node


def _keyword(tag: int) -> str:
    group, element = tag >> 16, tag & 0xFFFF
    if group % 2:
        if 0x0010 <= element <= 0x00FF:
            return "PrivateCreator"
        return "Private tag"
    if element == 0 and group != 0x0002:
        return "GroupLength"
    return keyword_for_tag(tag) or "Unknown"


def _private_creator(ds: Dataset, elem: DataElement, tag: BaseTag) -> str | None:
    """The Private Creator reserving the block of a private data element (PS3.5 7.8.1)."""
    group, element = tag.group, tag.element
    if group % 2 == 0 or element < 0x1000:
        return None
    creator = getattr(elem, "private_creator", None)
    if not creator:
        creator_tag = (group << 16) | (element >> 8)
        if creator_tag not in ds:
            return "(no private creator)"
        try:
            creator = ds[creator_tag].value
        except Exception:
            return "(unreadable private creator)"
    if isinstance(creator, bytes | bytearray):
        creator = bytes(creator).decode("latin-1")
    return escape(str(creator).strip())[:MAX_VALUE_CHARS]


def _bounded_element(ds: Dataset, tag: BaseTag, raw: RawDataElement) -> tuple[DataElement, bool]:
    """``ds[tag]``, except that a long value is converted from a prefix of its bytes (and not
    kept in ``ds``): a long text or number list is never materialised whole. The flag says
    whether the value was cut."""
    value = raw.value
    if value is None or len(value) <= MAX_CONVERTED_BYTES or int(tag) == PIXEL_DATA:
        return ds[tag], False
    encoding = getattr(ds, "original_character_set", None) or "iso8859"
    found: dict[str, Any] = {}
    hooks.raw_element_vr(raw, found, encoding=encoding, ds=ds)  # the reader's own VR lookup
    vr = str(found.get("VR") or "UN")
    if vr == "SQ" or vr in BINARY_VRS or " or " in vr:  # bytes as they are; ambiguous VRs
        return ds[tag], False
    cut = bytes(value[:MAX_CONVERTED_BYTES])  # a multiple of every number size
    short = raw._replace(value=cut, length=len(cut), VR=vr)
    return convert_raw_data_element(short, encoding=encoding, ds=ds), True


def _vm(elem: DataElement, raw: object, *, cut: bool) -> int:
    """The value multiplicity; counted in the bytes when only a prefix was converted."""
    if cut and isinstance(raw, RawDataElement) and raw.value is not None:
        size = _NUMBER_SIZES.get(str(elem.VR))
        if size:
            return len(raw.value) // size
        return bytes(raw.value).count(b"\\") + 1
    try:
        return int(elem.VM)
    except Exception:
        return 1


def _encoded_length(elem: DataElement, ds: Dataset) -> int | None:
    """The value length of an element pydicom converted already (it keeps no length)."""
    if elem.VR == "SQ":
        return None
    value = elem.value
    if isinstance(value, bytes | bytearray):
        return len(value) + len(value) % 2
    try:
        fp = DicomBytesIO()
        fp.is_little_endian = True
        fp.is_implicit_VR = True
        encoding = getattr(ds, "original_character_set", None) or "iso8859"
        write_data_element(fp, elem, encoding)
        return len(fp.getvalue()) - 8  # implicit VR: tag and a 4-byte length
    except Exception:
        return None


# -- value text ----------------------------------------------------------------------------------


def value_text(vr: str, value: Any, *, full_length: int | None = None, cut: bool = False) -> str:
    """A value as one escaped line of at most :data:`MAX_VALUE_CHARS` characters: values of a
    multi-valued element joined by ``\\`` (each escaped on its own, so the separator stays
    one backslash), binary values as their length and first bytes in hex."""
    if value is None:
        return ""
    if vr in BINARY_VRS or isinstance(value, bytes | bytearray):
        data = bytes(value[:HEX_BYTES]) if isinstance(value, bytes | bytearray) else b""
        length = full_length if full_length is not None else len(value)
        shown = " ".join(f"{b:02x}" for b in data)
        more = " …" if length > len(data) else ""
        return f"{plural(length, 'byte')}: {shown}{more}" if shown else plural(length, "byte")
    values = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
    parts: list[str] = []
    size = 0
    for item in values:
        part = escape(_one_value(item)[: MAX_VALUE_CHARS + 1])
        parts.append(part)
        size += len(part) + 1
        if size > MAX_VALUE_CHARS:
            break
    text = "\\".join(parts)
    if len(text) > MAX_VALUE_CHARS or len(parts) < len(values) or cut:
        return text[: MAX_VALUE_CHARS - 1] + "…"
    return text


def _one_value(value: Any) -> str:
    if isinstance(value, BaseTag):
        return format_tag(int(value))
    if isinstance(value, bytes | bytearray):
        return bytes(value[:HEX_BYTES]).hex(" ")
    return str(value)


# -- encapsulated Pixel Data ---------------------------------------------------------------------


def _add_fragments(path: Path, ts: str, node: Node, warnings: list[str]) -> None:
    """Fill ``node`` (an undefined-length Pixel Data) with the items of its value, found by
    walking the file's bytes with :mod:`viewer.dicom.elements`."""
    if ts == DeflatedExplicitVRLittleEndian:
        node.value = "encapsulated (offsets unknown: the data set is deflated)"
        return
    try:
        with open(path, "rb") as fh:
            try:
                buf: bytes | mmap.mmap = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError):
                buf = fh.read()
            try:
                problem = _walk_fragments(buf, ts, node)
            finally:
                if isinstance(buf, mmap.mmap):
                    buf.close()
    except OSError as exc:
        problem = f"cannot read the file again: {exc.strerror or exc}"
    except elements.Malformed as exc:
        problem = f"malformed {exc}"
    fragments = [f for f in node.fragments if f.kind == "fragment"]
    table = next((f for f in node.fragments if f.kind == "offset table"), None)
    count = len(fragments) + node.omitted
    more = "more than " if node.omitted >= MAX_FRAGMENT_WALK else ""
    node.value = f"encapsulated: {more}{plural(count, 'fragment')}"
    if table is not None:
        node.value += f", Basic Offset Table of {plural(table.length // 4, 'entry', 'entries')}"
    if node.omitted:
        warnings.append(
            f"Pixel Data: {more}{count:,} fragments, the first {len(fragments):,} listed"
        )
    if problem:
        warnings.append(f"Pixel Data fragments: {problem}")


def _walk_fragments(buf: bytes | mmap.mmap, ts: str, node: Node) -> str:
    """Items of the top-level Pixel Data into ``node.fragments``; a problem, or ""."""
    end = len(buf)
    pos, _meta = elements.parse_meta(buf, end)
    codec = elements.sniff_codec(buf, pos, end, elements.codec_for(ts))
    while True:  # the top-level elements, to the Pixel Data
        if pos >= end:
            return "no encapsulated Pixel Data found in the file's bytes"
        tag, vr, vpos, length = elements.element_header(buf, pos, end, codec)
        if tag == PIXEL_DATA and length == elements.UNDEFINED:
            break
        if length == elements.UNDEFINED:
            pos = elements.skip_undefined(buf, vpos, end, codec, vr)
        else:
            pos = vpos + length
    pos = vpos
    number = 0
    while True:  # its items (PS3.5 A.4): offset table, fragments, Sequence Delimitation Item
        if pos + 8 > end:
            return f"no Sequence Delimitation Item before the end (byte {pos})"
        tag, _vr, vpos, length = elements.element_header(buf, pos, end, codec)
        if tag == elements.SEQ_DELIM:
            return ""
        if tag != ITEM_TAG:
            return f"{format_tag(tag)} at byte {pos} where an item was expected"
        if length == elements.UNDEFINED:
            return f"an item of undefined length at byte {pos}"
        if vpos + length > end:
            return f"the item at byte {pos} declares {length} bytes past the end of the file"
        if number == 0:
            count = min(length // 4, MAX_FRAGMENTS)
            entries = np.frombuffer(buf, dtype="<u4", count=count, offset=vpos).tolist()
            node.fragments.append(Fragment("offset table", 0, vpos, length, entries))
        elif number <= MAX_FRAGMENTS:
            node.fragments.append(Fragment("fragment", number, vpos, length))
        else:
            node.omitted += 1
            if node.omitted >= MAX_FRAGMENT_WALK:
                return ""
        number += 1
        pos = vpos + length


# -- search --------------------------------------------------------------------------------------


class Query:
    """A search: a keyword, creator or value substring (case-insensitive) or a tag."""

    def __init__(self, text: str) -> None:
        self.text = text.strip().casefold()
        self.tag = parse_tag(text)

    def __bool__(self) -> bool:
        return bool(self.text)

    def matches(self, node: Node) -> bool:
        """Whether ``node`` itself matches (not its children)."""
        if not self.text:
            return True
        if self.tag is not None and node.tag == self.tag and not node.is_item:
            return True
        text = self.text
        return (
            text in node.keyword.casefold()
            or text in node.value.casefold()
            or (node.private_creator is not None and text in node.private_creator.casefold())
        )


def search(nodes: list[Node], query: str | Query) -> list[Node]:
    """The nodes that match ``query`` with their ancestors (pruned copies, in order); a node
    that matches keeps its whole subtree. An empty query keeps everything."""
    q = query if isinstance(query, Query) else Query(query)
    if not q:
        return nodes
    kept: list[Node] = []
    for node in nodes:
        if q.matches(node):
            kept.append(node)
            continue
        children = search(node.children, q)
        if children:
            kept.append(replace(node, children=children, fragments=[], omitted=0))
    return kept


# -- output --------------------------------------------------------------------------------------


def to_json(node: Node) -> dict[str, Any]:
    """A node as JSON (stable keys; texts escaped already, lengths None when undefined)."""
    return {
        "tag": node.tag_text,
        "keyword": node.keyword,
        "vr": node.vr,
        "vm": node.vm,
        "length": node.length,
        "value": node.value,
        "private_creator": node.private_creator,
        "meta": node.meta,
        "children": [to_json(child) for child in node.children],
        "fragments": [
            {
                "kind": f.kind,
                "number": f.number,
                "offset": f.offset,
                "length": f.length,
                "entries": f.entries,
            }
            for f in node.fragments
        ],
    }


def dump_json(dump: Dump, nodes: list[Node] | None = None) -> dict[str, Any]:
    """``lightbox dump --json``: the file, its warnings and its elements (or ``nodes``)."""
    return {
        "path": str(dump.path),
        "transfer_syntax": dump.transfer_syntax,
        "warnings": dump.warnings,
        "elements": [to_json(n) for n in (dump.nodes if nodes is None else nodes)],
    }


def text_lines(nodes: list[Node], depth: int = 0) -> Iterator[str]:
    """One line per element, indented by depth, as dcmdump shows them:
    ``(0010,0010) PN PatientName [Doe^John]``; the File Meta under its own heading."""
    meta_open = False
    body_open = False
    for node in nodes:
        if depth == 0 and node.meta and not meta_open:
            meta_open = True
            yield "# File Meta Information"
        if depth == 0 and not node.meta and not body_open:
            body_open = True
            yield "# Data Set"
        yield from _node_lines(node, depth)


def _node_lines(node: Node, depth: int) -> Iterator[str]:
    indent = "  " * depth
    if node.is_item:
        yield f"{indent}{node.tag_text} {node.keyword} ({node.value})"
    else:
        vr = node.vr or "--"
        length = "undefined length" if node.length is None else plural(node.length, "byte")
        if node.vr == "SQ":
            yield f"{indent}{node.tag_text} SQ {node.name} ({node.value}, {length})"
        else:
            yield f"{indent}{node.tag_text} {vr} {node.name} [{node.value}]"
    for child in node.children:
        yield from _node_lines(child, depth + 1)
    for fragment in node.fragments:
        line = f"{indent}  (FFFE,E000) {fragment.label} at byte {fragment.offset}, "
        line += plural(fragment.length, "byte")
        if fragment.entries:
            line += " [" + "\\".join(str(e) for e in fragment.entries[:32])
            line += "\\…]" if len(fragment.entries) > 32 else "]"
        yield line
    if node.omitted:
        what = "fragments" if node.fragments else "items"
        yield f"{indent}  … {node.omitted:,} more {what} not listed"
