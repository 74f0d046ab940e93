"""Presentation objects without Qt: Grayscale Softcopy Presentation States and Key Object
Selection documents read into plain frozen dataclasses.

A GSPS (PS3.3 A.33.1) says how to show the images it references: which VOI (C.11.8 Softcopy
VOI LUT), which part of the image at which size (C.10.4 Displayed Area), turned and flipped how
(C.10.6 Spatial Transformation), with which annotations (C.10.5 Graphic Annotation, C.10.7
Graphic Layer) and Presentation LUT Shape (C.11.6). Each of these may apply to some of the
referenced images only: :func:`for_image` gives what applies to one frame of one image.

Coordinates. Graphic Data (0070,0022) and the text boxes and anchors of C.10.5 are (column,
row) pairs; in PIXEL units "the origin, which is at the top left hand corner of the top left
hand pixel, is 0.0\\0.0, the bottom right hand corner of the top left hand pixel is 1.0\\1.0"
(C.10.5.1.2), so the centre of the first pixel is 0.5\\0.5. Here a PIXEL point is
``(row, column)`` with pixel centres at integers, the convention of
:mod:`viewer.imaging.measure`: ``(y - 0.5, x - 0.5)``. DISPLAY units are fractions of the
displayed area (0.0\\0.0 its top left, 1.0\\1.0 its bottom right): they are only swapped to
``(row, column)``, never shifted. Displayed Area corners (C.10.4) are pixel numbers counted
from 1\\1, (column, row), in the stored image's matrix, naming the pixels that end up top left
and bottom right *after* the spatial transformation: with a rotation or a flip the "top left"
may lie right of or below the "bottom right". Here they are the zero-based ``(row, column)``
of those pixels, kept in that order.

Spatial transformation (C.10.6, Table C.10-6): rotate clockwise by Image Rotation first, then
flip horizontally when Image Horizontal Flip is Y.

Untrusted files: everything is read with :func:`viewer.imaging.decode.read_file`; counts are
bounded (:data:`MAX_GRAPHIC_OBJECTS`, :data:`MAX_POINTS`, :data:`MAX_TEXT`), numbers must be
finite and within :data:`MAX_COORDINATE`; what is cut or refused is said in ``notes``, one
fact a line, texts escaped with :func:`viewer.text.escape`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydicom.dataset import Dataset

from viewer.imaging.decode import read_file
from viewer.imaging.display import Voi, Window, file_windows
from viewer.text import escape

RowCol = tuple[float, float]
_T = TypeVar("_T")

GSPS_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.11.1"
KOS_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.88.59"

MAX_GRAPHIC_OBJECTS = 10_000
"""Graphic plus text objects read from one presentation state; the rest are cut with a note."""
MAX_POINTS = 16_384
"""Points of one graphic object; an object with more is refused (a cut polyline lies)."""
MAX_TEXT = 1024
"""Characters of one text object (Unformatted Text Value is ST, at most 1024)."""
MAX_REFERENCES = 100_000
"""Referenced images read from one object."""
MAX_COORDINATE = 1_000_000.0
"""The largest coordinate accepted, either sign (as in :mod:`viewer.imaging.measure`)."""

GRAPHIC_TYPES = ("POINT", "POLYLINE", "INTERPOLATED", "CIRCLE", "ELLIPSE")
_POINT_COUNT = {"POINT": (1, 1), "CIRCLE": (2, 2), "ELLIPSE": (4, 4)}
_UNITS = ("PIXEL", "DISPLAY")
_ROTATIONS = (0, 90, 180, 270)
_SIZE_MODES = ("SCALE TO FIT", "TRUE SIZE", "MAGNIFY")


# -- records -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageReference:
    """One referenced image; ``frames`` empty means every frame (PS3.3 C.10.5.1.1)."""

    sop_instance_uid: str
    sop_class_uid: str = ""
    frames: tuple[int, ...] = ()
    series_instance_uid: str = ""

    def covers(self, sop_instance_uid: str, frame_number: int) -> bool:
        return self.sop_instance_uid == sop_instance_uid and (
            not self.frames or frame_number in self.frames
        )


@dataclass(frozen=True)
class GraphicObject:
    """One item of Graphic Object Sequence (C.10.5.1.2), points as ``(row, column)``."""

    graphic_type: str
    """POINT, POLYLINE, INTERPOLATED, CIRCLE or ELLIPSE."""
    units: str
    """PIXEL (image points, centres at integers) or DISPLAY (fractions of the displayed area)."""
    points: tuple[RowCol, ...]
    filled: bool = False

    @property
    def closed(self) -> bool:
        """A POLYLINE or INTERPOLATED whose last point is its first (C.10.5.1.2)."""
        return len(self.points) > 2 and self.points[0] == self.points[-1]


@dataclass(frozen=True)
class TextObject:
    """One item of Text Object Sequence (C.10.5.1.1); text escaped, points ``(row, column)``."""

    text: str
    box_units: str = ""
    box_top_left: RowCol | None = None
    box_bottom_right: RowCol | None = None
    justification: str = ""
    anchor_units: str = ""
    anchor: RowCol | None = None
    anchor_visible: bool = False


@dataclass(frozen=True)
class Annotation:
    """One item of Graphic Annotation Sequence: objects on a layer, for some images."""

    layer: str
    references: tuple[ImageReference, ...]
    """Empty: every image the presentation state references."""
    graphics: tuple[GraphicObject, ...] = ()
    texts: tuple[TextObject, ...] = ()


@dataclass(frozen=True)
class GraphicLayer:
    """One item of Graphic Layer Sequence (C.10.7)."""

    name: str
    order: int
    description: str = ""
    grey: int | None = None
    """Recommended Display Grayscale Value (0-65535)."""
    cielab: tuple[int, int, int] | None = None
    """Recommended Display CIELab Value, as stored (PS3.3 C.10.7.1.1: L*a*b* scaled to 16 bits)."""


@dataclass(frozen=True)
class SoftcopyVoi:
    """One item of Softcopy VOI LUT Sequence (C.11.8)."""

    references: tuple[ImageReference, ...]
    voi: Voi


@dataclass(frozen=True)
class DisplayedArea:
    """One item of Displayed Area Selection Sequence (C.10.4)."""

    references: tuple[ImageReference, ...]
    top_left: tuple[int, int]
    """Zero-based (row, column), in the stored image, of the pixel shown top left after the
    spatial transformation (may lie outside the image)."""
    bottom_right: tuple[int, int]
    """Zero-based (row, column), in the stored image, of the pixel shown bottom right."""
    size_mode: str
    """SCALE TO FIT, TRUE SIZE or MAGNIFY."""
    pixel_spacing: tuple[float, float] | None = None
    """Presentation Pixel Spacing, mm (row spacing, column spacing)."""
    aspect_ratio: tuple[int, int] | None = None
    """Presentation Pixel Aspect Ratio (row, column)."""
    magnification: float | None = None

    @property
    def rows(self) -> tuple[int, int]:
        """First and last row of the stored image in the area (inclusive)."""
        a, b = self.top_left[0], self.bottom_right[0]
        return (min(a, b), max(a, b))

    @property
    def columns(self) -> tuple[int, int]:
        """First and last column of the stored image in the area (inclusive)."""
        a, b = self.top_left[1], self.bottom_right[1]
        return (min(a, b), max(a, b))


@dataclass(frozen=True)
class PresentationState:
    """A GSPS as read: what it references and what it applies to which image."""

    sop_instance_uid: str
    label: str
    description: str
    creation_date: str
    references: tuple[ImageReference, ...]
    vois: tuple[SoftcopyVoi, ...] = ()
    displayed_areas: tuple[DisplayedArea, ...] = ()
    annotations: tuple[Annotation, ...] = ()
    layers: tuple[GraphicLayer, ...] = ()
    rotation: int = 0
    horizontal_flip: bool = False
    presentation_lut_shape: str = "IDENTITY"
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImagePresentation:
    """What a presentation state asks for one frame of one image.

    Order of application (PS3.4 N.2.1.1, PS3.3 C.10.6): VOI, Presentation LUT Shape;
    annotations in PIXEL units drawn on the image, layer by layer in ``layers`` order (lowest
    first); rotation clockwise, then the horizontal flip; the displayed area shown; annotations
    in DISPLAY units drawn last, relative to the displayed area.
    """

    voi: Voi | None
    displayed_area: DisplayedArea | None
    rotation: int
    horizontal_flip: bool
    presentation_lut_shape: str
    layers: tuple[GraphicLayer, ...]
    annotations: tuple[Annotation, ...]
    notes: tuple[str, ...] = ()

    @property
    def inverted(self) -> bool:
        return self.presentation_lut_shape == "INVERSE"


class PresentationError(ValueError):
    """A file that is not a presentation object this module reads, with the reason."""


# -- reading helpers ---------------------------------------------------------------------------


@dataclass
class _Notes:
    lines: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        if len(self.lines) < 200 and text not in self.lines:
            self.lines.append(text)


def _text(value: Any, limit: int = 256) -> str:
    return escape(str(value if value is not None else "").strip()[:limit])


def _items(ds: Dataset, keyword: str, notes: _Notes, limit: int, what: str) -> list[Dataset]:
    try:
        seq = ds.get(keyword)
    except Exception as exc:  # a damaged element: the file's fault, said once
        notes.add(f"{keyword} unreadable: {escape(str(exc)[:120])}")
        return []
    if not seq:
        return []
    items = list(seq)
    if len(items) > limit:
        notes.add(f"{len(items)} {what}: only the first {limit} read")
        items = items[:limit]
    return [item for item in items if isinstance(item, Dataset)]


def _numbers(value: Any) -> list[float] | None:
    """Finite floats within :data:`MAX_COORDINATE`, else None."""
    if value is None:
        return None
    if isinstance(value, str | bytes):
        values: Iterable[Any] = [value]
    else:
        try:
            values = list(value)
        except TypeError:
            values = [value]
    out = []
    for v in values:
        try:
            number = float(v)
        except (TypeError, ValueError):
            return None
        if not math.isfinite(number) or abs(number) > MAX_COORDINATE:
            return None
        out.append(number)
    return out


def _pair(value: Any, units: str) -> RowCol | None:
    """A (column, row) pair of C.10.5 as (row, column) in our convention (module docstring)."""
    numbers = _numbers(value)
    if numbers is None or len(numbers) != 2:
        return None
    x, y = numbers
    return (y - 0.5, x - 0.5) if units == "PIXEL" else (y, x)


def _image_references(
    items: Sequence[Dataset], notes: _Notes, series_uid: str = ""
) -> list[ImageReference]:
    out = []
    for item in items:
        uid = str(item.get("ReferencedSOPInstanceUID", "") or "").strip()
        if not uid:
            notes.add("an image reference without Referenced SOP Instance UID left out")
            continue
        frames_value = item.get("ReferencedFrameNumber")
        frames: list[int] = []
        if frames_value not in (None, ""):
            raw = frames_value if not isinstance(frames_value, str | int) else [frames_value]
            try:
                frames = [int(f) for f in list(raw)[:MAX_REFERENCES]]
            except (TypeError, ValueError):
                notes.add(f"image {escape(uid[:64])}: unreadable Referenced Frame Number")
                frames = []
            frames = [f for f in frames if f >= 1]
        out.append(
            ImageReference(
                escape(uid[:64]),
                escape(str(item.get("ReferencedSOPClassUID", "") or "")[:64]),
                tuple(frames),
                series_uid,
            )
        )
    return out


def _applies(
    references: Sequence[ImageReference], sop_instance_uid: str, frame_number: int
) -> bool:
    return not references or any(r.covers(sop_instance_uid, frame_number) for r in references)


# -- GSPS --------------------------------------------------------------------------------------


def _graphic(item: Dataset, notes: _Notes, where: str) -> GraphicObject | None:
    graphic_type = str(item.get("GraphicType", "") or "").strip().upper()
    if graphic_type not in GRAPHIC_TYPES:
        notes.add(f"{where}: Graphic Type {escape(graphic_type[:20])!r} not drawn")
        return None
    units = str(item.get("GraphicAnnotationUnits", "") or "").strip().upper()
    if units not in _UNITS:
        notes.add(f"{where}: Graphic Annotation Units {escape(units[:20])!r} not drawn")
        return None
    # look at the element's length before converting it: 10^6 points are never made into floats
    try:
        element = item.get_item(0x00700022)
    except Exception:
        element = None
    length = getattr(element, "length", None) if element is not None else None
    if isinstance(length, int) and length > MAX_POINTS * 2 * 4:
        notes.add(f"{where}: {graphic_type} with {length // 8} points refused (over {MAX_POINTS})")
        return None
    try:
        data = item.get("GraphicData")
    except Exception:
        data = None
    numbers = _numbers(data)
    if numbers is None or not numbers:
        notes.add(f"{where}: {graphic_type} without finite points within range refused")
        return None
    if len(numbers) % 2:
        notes.add(f"{where}: {graphic_type} with an odd number of coordinates refused")
        return None
    count = len(numbers) // 2
    if count > MAX_POINTS:
        notes.add(f"{where}: {graphic_type} with {count} points refused (over {MAX_POINTS})")
        return None
    declared = item.get("NumberOfGraphicPoints")
    if isinstance(declared, int) and declared != count:
        notes.add(f"{where}: Number of Graphic Points {declared} but {count} points given")
    low, high = _POINT_COUNT.get(graphic_type, (1 if graphic_type == "POINT" else 2, MAX_POINTS))
    if not low <= count <= high:
        notes.add(f"{where}: {graphic_type} with {count} points refused")
        return None
    points = []
    for i in range(count):
        point = _pair(numbers[2 * i : 2 * i + 2], units)
        assert point is not None
        points.append(point)
    filled = str(item.get("GraphicFilled", "") or "").strip().upper() == "Y"
    return GraphicObject(graphic_type, units, tuple(points), filled)


def _text_object(item: Dataset, notes: _Notes, where: str) -> TextObject | None:
    raw = str(item.get("UnformattedTextValue", "") or "")
    if len(raw) > MAX_TEXT:
        notes.add(f"{where}: text of {len(raw)} characters cut to {MAX_TEXT}")
        raw = raw[:MAX_TEXT]
    box_units = str(item.get("BoundingBoxAnnotationUnits", "") or "").strip().upper()
    anchor_units = str(item.get("AnchorPointAnnotationUnits", "") or "").strip().upper()
    top_left = bottom_right = anchor = None
    if box_units in _UNITS:
        top_left = _pair(item.get("BoundingBoxTopLeftHandCorner"), box_units)
        bottom_right = _pair(item.get("BoundingBoxBottomRightHandCorner"), box_units)
        if top_left is None or bottom_right is None:
            notes.add(f"{where}: a text's bounding box is not two finite numbers each")
            top_left = bottom_right = None
    if anchor_units in _UNITS:
        anchor = _pair(item.get("AnchorPoint"), anchor_units)
        if anchor is None:
            notes.add(f"{where}: a text's anchor point is not two finite numbers")
    if top_left is None and anchor is None:
        notes.add(f"{where}: a text with neither bounding box nor anchor point left out")
        return None
    return TextObject(
        text=escape(raw),
        box_units=box_units if top_left is not None else "",
        box_top_left=top_left,
        box_bottom_right=bottom_right,
        justification=_text(item.get("BoundingBoxTextHorizontalJustification"), 16).upper(),
        anchor_units=anchor_units if anchor is not None else "",
        anchor=anchor,
        anchor_visible=str(item.get("AnchorPointVisibility", "") or "").strip().upper() == "Y",
    )


def _layers(ds: Dataset, notes: _Notes) -> tuple[GraphicLayer, ...]:
    out = []
    for item in _items(ds, "GraphicLayerSequence", notes, 1000, "graphic layers"):
        name = _text(item.get("GraphicLayer"), 16)
        try:
            order = int(item.get("GraphicLayerOrder", 0) or 0)
        except (TypeError, ValueError):
            order = 0
        grey_value = item.get("GraphicLayerRecommendedDisplayGrayscaleValue")
        grey = int(grey_value) if isinstance(grey_value, int) and 0 <= grey_value <= 65535 else None
        lab_value = item.get("GraphicLayerRecommendedDisplayCIELabValue")
        cielab = None
        if lab_value is not None and not isinstance(lab_value, str | bytes | int):
            lab = [int(v) for v in list(lab_value)[:4] if isinstance(v, int)]
            if len(lab) == 3 and all(0 <= v <= 65535 for v in lab):
                cielab = (lab[0], lab[1], lab[2])
        description = _text(item.get("GraphicLayerDescription"), 64)
        out.append(GraphicLayer(name, order, description, grey, cielab))
    return tuple(sorted(out, key=lambda layer: layer.order))


def _voi(item: Dataset, notes: _Notes) -> Voi | None:
    try:
        choices = file_windows(item)
    except (ValueError, TypeError, OverflowError) as exc:
        notes.add(f"a softcopy VOI unreadable: {escape(str(exc)[:120])}")
        return None
    if not choices:
        notes.add("a Softcopy VOI LUT item without a usable window or VOI LUT left out")
        return None
    voi = choices[0]
    if isinstance(voi, Window) and (abs(voi.center) > 1e7 or voi.width > 1e7):
        notes.add(f"a softcopy window {voi.center:g}/{voi.width:g} beyond any pixel range refused")
        return None
    return voi


def _displayed_area(item: Dataset, notes: _Notes) -> DisplayedArea | None:
    corners = []
    for keyword in ("DisplayedAreaTopLeftHandCorner", "DisplayedAreaBottomRightHandCorner"):
        numbers = _numbers(item.get(keyword))
        if numbers is None or len(numbers) != 2 or any(n != int(n) for n in numbers):
            notes.add("a displayed area without two whole-number corners left out")
            return None
        column, row = int(numbers[0]), int(numbers[1])
        corners.append((row - 1, column - 1))
    mode = str(item.get("PresentationSizeMode", "") or "").strip().upper()
    if mode not in _SIZE_MODES:
        notes.add(f"Presentation Size Mode {escape(mode[:20])!r} read as SCALE TO FIT")
        mode = "SCALE TO FIT"
    spacing = None
    numbers = _numbers(item.get("PresentationPixelSpacing"))
    if numbers is not None and len(numbers) == 2 and all(0 < n < 1e4 for n in numbers):
        spacing = (numbers[0], numbers[1])
    aspect = None
    numbers = _numbers(item.get("PresentationPixelAspectRatio"))
    if numbers is not None and len(numbers) == 2 and all(0 < n < 1e6 for n in numbers):
        aspect = (int(numbers[0]), int(numbers[1]))
    magnification = None
    numbers = _numbers(item.get("PresentationPixelMagnificationRatio"))
    if numbers is not None and len(numbers) == 1 and 0 < numbers[0] < 1e4:
        magnification = numbers[0]
    if mode == "TRUE SIZE" and spacing is None:
        notes.add("TRUE SIZE without Presentation Pixel Spacing: shown scaled to fit")
        mode = "SCALE TO FIT"
    if mode == "MAGNIFY" and magnification is None:
        notes.add("MAGNIFY without a usable magnification ratio: shown scaled to fit")
        mode = "SCALE TO FIT"
    references = tuple(
        _image_references(
            _items(item, "ReferencedImageSequence", notes, MAX_REFERENCES, "references"), notes
        )
    )
    return DisplayedArea(references, corners[0], corners[1], mode, spacing, aspect, magnification)


def read_presentation_state(path: str | os.PathLike[str]) -> PresentationState:
    """A Grayscale Softcopy Presentation State file; :class:`PresentationError` for a file that
    is none (or cannot be read: the reason of :class:`~viewer.imaging.decode.DecodeError`)."""
    from viewer.imaging.decode import DecodeError

    try:
        ds = read_file(path).dataset
    except DecodeError as exc:
        raise PresentationError(str(exc)) from exc
    return _untrusted(path, presentation_state, ds)


def _untrusted(path: str | os.PathLike[str], read: Callable[[Dataset], _T], ds: Dataset) -> _T:
    """``read(ds)``, any error of a damaged value (pydicom converts values when first read)
    turned into a :class:`PresentationError` naming the file."""
    try:
        return read(ds)
    except PresentationError:
        raise
    except Exception as exc:  # the file's fault, whatever pydicom raised for it
        raise PresentationError(f"{escape(os.fspath(path))}: {escape(str(exc)[:200])}") from exc


def presentation_state(ds: Dataset) -> PresentationState:
    """The :class:`PresentationState` of a data set already read (see the module docstring)."""
    sop_class = str(ds.get("SOPClassUID", "") or "").strip()
    if sop_class != GSPS_SOP_CLASS_UID:
        raise PresentationError(
            f"not a Grayscale Softcopy Presentation State (SOP Class {escape(sop_class[:64])})"
        )
    notes = _Notes()
    references: list[ImageReference] = []
    for series in _items(ds, "ReferencedSeriesSequence", notes, 10_000, "referenced series"):
        series_uid = escape(str(series.get("SeriesInstanceUID", "") or "")[:64])
        images = _items(series, "ReferencedImageSequence", notes, MAX_REFERENCES, "references")
        references += _image_references(images, notes, series_uid)
    if not references:
        notes.add("the presentation state references no image")

    vois = []
    for item in _items(ds, "SoftcopyVOILUTSequence", notes, 10_000, "softcopy VOI items"):
        voi = _voi(item, notes)
        if voi is not None:
            refs = _items(item, "ReferencedImageSequence", notes, MAX_REFERENCES, "references")
            vois.append(SoftcopyVoi(tuple(_image_references(refs, notes)), voi))

    areas = []
    for item in _items(ds, "DisplayedAreaSelectionSequence", notes, 10_000, "displayed areas"):
        area = _displayed_area(item, notes)
        if area is not None:
            areas.append(area)

    layers = _layers(ds, notes)
    layer_names = {layer.name for layer in layers}
    annotations = []
    budget = MAX_GRAPHIC_OBJECTS
    cut = 0
    seq = _items(ds, "GraphicAnnotationSequence", notes, MAX_GRAPHIC_OBJECTS, "annotations")
    for index, item in enumerate(seq, start=1):
        where = f"annotation {index}"
        layer = _text(item.get("GraphicLayer"), 16)
        if layer not in layer_names:
            notes.add(f"{where}: layer {layer!r} is not in Graphic Layer Sequence")
        refs = _items(item, "ReferencedImageSequence", notes, MAX_REFERENCES, "references")
        graphics: list[GraphicObject] = []
        texts: list[TextObject] = []
        for kind, keyword in (("graphic", "GraphicObjectSequence"), ("text", "TextObjectSequence")):
            try:
                objects = list(item.get(keyword) or [])
            except Exception:
                notes.add(f"{where}: {keyword} unreadable")
                objects = []
            if len(objects) > budget:
                cut += len(objects) - budget
                objects = objects[:budget]
            budget -= len(objects)
            for number, obj in enumerate(objects, start=1):
                if kind == "graphic":
                    graphic = _graphic(obj, notes, f"{where}, graphic {number}")
                    if graphic is not None:
                        graphics.append(graphic)
                else:
                    text = _text_object(obj, notes, f"{where}, text {number}")
                    if text is not None:
                        texts.append(text)
        annotations.append(
            Annotation(layer, tuple(_image_references(refs, notes)), tuple(graphics), tuple(texts))
        )
    if cut:
        notes.add(f"{cut} graphic and text objects cut (at most {MAX_GRAPHIC_OBJECTS} are read)")

    rotation = 0
    raw_rotation = ds.get("ImageRotation")
    if raw_rotation not in (None, ""):
        try:
            rotation = int(raw_rotation)
        except (TypeError, ValueError):
            rotation = -1
        if rotation not in _ROTATIONS:
            notes.add(f"Image Rotation {escape(str(raw_rotation)[:20])} is not 0/90/180/270: none")
            rotation = 0
    flip = str(ds.get("ImageHorizontalFlip", "") or "").strip().upper() == "Y"

    shape = str(ds.get("PresentationLUTShape", "") or "").strip().upper()
    if not shape:
        if ds.get("PresentationLUTSequence"):
            notes.add("a Presentation LUT Sequence is not applied (IDENTITY used)")
        shape = "IDENTITY"
    elif shape not in ("IDENTITY", "INVERSE"):
        notes.add(f"Presentation LUT Shape {escape(shape[:20])!r} read as IDENTITY")
        shape = "IDENTITY"

    return PresentationState(
        sop_instance_uid=escape(str(ds.get("SOPInstanceUID", "") or "")[:64]),
        label=_text(ds.get("ContentLabel"), 64),
        description=_text(ds.get("ContentDescription"), 64),
        creation_date=_text(ds.get("PresentationCreationDate"), 8),
        references=tuple(references),
        vois=tuple(vois),
        displayed_areas=tuple(areas),
        annotations=tuple(annotations),
        layers=layers,
        rotation=rotation,
        horizontal_flip=flip,
        presentation_lut_shape=shape,
        notes=tuple(notes.lines),
    )


def for_image(
    gsps: PresentationState, sop_instance_uid: str, frame_number: int = 1
) -> ImagePresentation | None:
    """What ``gsps`` asks for frame ``frame_number`` (from 1) of an image; None when it does
    not reference that frame. An item without Referenced Image Sequence applies to every
    referenced image (C.10.4, C.10.5, C.11.8); when several apply, the first one wins."""
    if not any(r.covers(sop_instance_uid, frame_number) for r in gsps.references):
        return None
    voi = next(
        (v.voi for v in gsps.vois if _applies(v.references, sop_instance_uid, frame_number)),
        None,
    )
    area = next(
        (a for a in gsps.displayed_areas if _applies(a.references, sop_instance_uid, frame_number)),
        None,
    )
    order = {layer.name: layer.order for layer in gsps.layers}
    annotations = sorted(
        (a for a in gsps.annotations if _applies(a.references, sop_instance_uid, frame_number)),
        key=lambda a: order.get(a.layer, math.inf),
    )
    return ImagePresentation(
        voi=voi,
        displayed_area=area,
        rotation=gsps.rotation,
        horizontal_flip=gsps.horizontal_flip,
        presentation_lut_shape=gsps.presentation_lut_shape,
        layers=gsps.layers,
        annotations=tuple(annotations),
        notes=gsps.notes,
    )


# -- Key Object Selection ----------------------------------------------------------------------


@dataclass(frozen=True)
class KeyObjects:
    """A Key Object Selection document (PS3.3 A.35.4, TID 2010): its title, the images it
    selects in document order, and its Key Object Description text."""

    sop_instance_uid: str
    title: str
    """Code Meaning of the document title (CID 7010, e.g. "Of Interest")."""
    images: tuple[ImageReference, ...]
    note: str = ""
    notes: tuple[str, ...] = ()


_KEY_OBJECT_DESCRIPTION = ("113012", "DCM")


def _code(item: Dataset, keyword: str = "ConceptNameCodeSequence") -> tuple[str, str, str]:
    seq = item.get(keyword)
    if not seq:
        return ("", "", "")
    code = seq[0]
    return (
        str(code.get("CodeValue", "") or "").strip(),
        str(code.get("CodingSchemeDesignator", "") or "").strip(),
        str(code.get("CodeMeaning", "") or "").strip(),
    )


def read_key_objects(path: str | os.PathLike[str]) -> KeyObjects:
    """A Key Object Selection document; :class:`PresentationError` for anything else.

    The images are the content tree's IMAGE items in order (they carry the selection and its
    order, TID 2010); without any, the Current Requested Procedure Evidence Sequence's.
    """
    from viewer.imaging.decode import DecodeError

    try:
        ds = read_file(path).dataset
    except DecodeError as exc:
        raise PresentationError(str(exc)) from exc
    return _untrusted(path, key_objects, ds)


def key_objects(ds: Dataset) -> KeyObjects:
    """The :class:`KeyObjects` of a data set already read (see :func:`read_key_objects`)."""
    sop_class = str(ds.get("SOPClassUID", "") or "").strip()
    if sop_class != KOS_SOP_CLASS_UID:
        raise PresentationError(
            f"not a Key Object Selection document (SOP Class {escape(sop_class[:64])})"
        )
    notes = _Notes()
    images: list[ImageReference] = []
    texts: list[str] = []
    content = _items(ds, "ContentSequence", notes, MAX_REFERENCES, "content items")
    for item in content:
        value_type = str(item.get("ValueType", "") or "").strip().upper()
        if value_type in ("IMAGE", "COMPOSITE"):
            refs = _items(item, "ReferencedSOPSequence", notes, 1, "references")
            images += _image_references(refs, notes)
        elif value_type == "TEXT" and _code(item)[:2] == _KEY_OBJECT_DESCRIPTION:
            value = str(item.get("TextValue", "") or "")
            if len(value) > 10 * MAX_TEXT:
                notes.add(f"a Key Object Description of {len(value)} characters cut")
                value = value[: 10 * MAX_TEXT]
            texts.append(escape(value))
    if not images:
        for study in _items(
            ds, "CurrentRequestedProcedureEvidenceSequence", notes, 1000, "evidence studies"
        ):
            for series in _items(study, "ReferencedSeriesSequence", notes, 10_000, "series"):
                series_uid = escape(str(series.get("SeriesInstanceUID", "") or "")[:64])
                refs = _items(series, "ReferencedSOPSequence", notes, MAX_REFERENCES, "refs")
                images += _image_references(refs, notes, series_uid)
        if images:
            notes.add("no IMAGE items in the content tree: the evidence list is shown")
    if len(images) > MAX_REFERENCES:
        notes.add(f"{len(images)} key images: only the first {MAX_REFERENCES} kept")
        images = images[:MAX_REFERENCES]
    return KeyObjects(
        sop_instance_uid=escape(str(ds.get("SOPInstanceUID", "") or "")[:64]),
        title=escape(_code(ds)[2][:64]),
        images=tuple(images),
        note="\n".join(texts),
        notes=tuple(notes.lines),
    )


@dataclass(frozen=True)
class KeyImageCursor:
    """Navigation among key images: the index of the one shown, wrapping at the ends."""

    key_objects: KeyObjects
    index: int = 0

    @property
    def current(self) -> ImageReference | None:
        images = self.key_objects.images
        return images[self.index % len(images)] if images else None

    def next(self) -> KeyImageCursor:
        count = len(self.key_objects.images) or 1
        return KeyImageCursor(self.key_objects, (self.index + 1) % count)

    def previous(self) -> KeyImageCursor:
        count = len(self.key_objects.images) or 1
        return KeyImageCursor(self.key_objects, (self.index - 1) % count)

    def is_key(self, sop_instance_uid: str, frame_number: int = 1) -> bool:
        return any(r.covers(sop_instance_uid, frame_number) for r in self.key_objects.images)
