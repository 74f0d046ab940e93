"""What the view writes over an image: corner text, orientation letters, scale bar, cine rate.

Plain functions of a dataset (no Qt), so they are tested without a window. The values come
from the attributes PS3.3 defines for them, looked up first at the top level and then in the
enhanced multi-frame functional groups (PS3.3 C.7.6.16), per frame before shared.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as PydicomSequence

from viewer.text import person_name, show_date, show_time

# A 2x2 integer matrix that maps image directions (column, row) to screen directions (x, y),
# y pointing down: the product of the user's rotations and flips (a signed permutation).
Orient = tuple[tuple[int, int], tuple[int, int]]
IDENTITY: Orient = ((1, 0), (0, 1))

# Transfer syntaxes whose compression loses information (PS3.5 Annex A, PS3.6 Table A-1).
LOSSY_TRANSFER_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2.4.50",  # JPEG baseline
        "1.2.840.10008.1.2.4.51",  # JPEG extended
        "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
        "1.2.840.10008.1.2.4.91",  # JPEG 2000 (lossy allowed)
        "1.2.840.10008.1.2.4.203",  # HTJ2K (lossy allowed)
        "1.2.840.10008.1.2.4.100",  # MPEG2
        "1.2.840.10008.1.2.4.102",  # MPEG-4
        "1.2.840.10008.1.2.4.103",
        "1.2.840.10008.1.2.4.104",
        "1.2.840.10008.1.2.4.105",
        "1.2.840.10008.1.2.4.106",
        "1.2.840.10008.1.2.4.107",  # HEVC
        "1.2.840.10008.1.2.4.108",
    }
)

DEFAULT_FPS = 10.0


def functional_group_items(ds: Dataset, frame_index: int, macro: str) -> Iterator[Dataset]:
    """The items of functional group ``macro`` for a frame (PS3.3 C.7.6.16): the Per-frame
    Functional Groups item first, then the Shared one. Anything that is not a sequence of data
    sets where one should be (a damaged file's sequence kept as bytes) is passed over."""
    for groups_keyword, index in (
        ("PerFrameFunctionalGroupsSequence", frame_index),
        ("SharedFunctionalGroupsSequence", 0),
    ):
        groups = ds.get(groups_keyword)
        if not isinstance(groups, PydicomSequence) or not 0 <= index < len(groups):
            continue
        group = groups[index]
        items = group.get(macro) if isinstance(group, Dataset) else None
        if isinstance(items, PydicomSequence) and len(items) and isinstance(items[0], Dataset):
            yield items[0]


def functional_attr(ds: Dataset, keyword: str, frame_index: int, macro: str) -> Any:
    """``keyword`` for one frame: top level, else Per-frame, else Shared Functional Groups.

    ``macro`` is the functional group sequence that holds it (PS3.3 C.7.6.16.2), for example
    ``PixelMeasuresSequence`` for Pixel Spacing and Slice Thickness.
    """
    value = ds.get(keyword)
    if value is not None and value != "":
        return value
    for item in functional_group_items(ds, frame_index, macro):
        value = item.get(keyword)
        if value is not None and value != "":
            return value
    return None


def finite_floats(value: Any, count: int) -> tuple[float, ...] | None:
    """``count`` finite numbers from a multi-valued element, or None (absent, short, text)."""
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    if len(numbers) != count or not all(math.isfinite(v) for v in numbers):
        return None
    return numbers


def _number(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return ""
    return f"{number:.6g}"


def slice_location(ds: Dataset, frame_index: int) -> float | None:
    """Slice Location (0020,1041), else the position along the slice normal (PS3.3 C.7.6.2.1.1)."""
    value = ds.get("SliceLocation")
    if value is not None and value != "":
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    position = finite_floats(
        functional_attr(ds, "ImagePositionPatient", frame_index, "PlanePositionSequence"), 3
    )
    orientation = finite_floats(
        functional_attr(ds, "ImageOrientationPatient", frame_index, "PlaneOrientationSequence"), 6
    )
    if position is None or orientation is None:
        return None
    normal = np.cross(orientation[:3], orientation[3:])
    return float(np.dot(normal, position))


@dataclass(frozen=True)
class Corners:
    """The four blocks of text, each a list of lines, top to bottom."""

    top_left: list[str]
    top_right: list[str]
    bottom_left: list[str]


def corner_text(ds: Dataset | None, frame_index: int, position: int, count: int) -> Corners:
    """Patient (top left), study (top right), series and image (bottom left).

    The bottom right (window and zoom) belongs to the view's state, not to the file.
    """
    image_line = f"Im: {position + 1}/{count}"
    if ds is None:
        return Corners([], [], [image_line])
    top_left = [
        person_name(ds.get("PatientName")),
        f"ID: {ds.get('PatientID')}" if ds.get("PatientID") else "",
        "  ".join(
            part
            for part in (
                f"DOB: {show_date(ds.get('PatientBirthDate'))}"
                if ds.get("PatientBirthDate")
                else "",
                f"Sex: {ds.get('PatientSex')}" if ds.get("PatientSex") else "",
            )
            if part
        ),
    ]
    top_right = [
        " ".join(p for p in (show_date(ds.get("StudyDate")), show_time(ds.get("StudyTime"))) if p),
        str(ds.get("StudyDescription", "") or ""),
    ]
    series_number = ds.get("SeriesNumber")
    series = " ".join(
        p
        for p in (
            f"Se: {series_number}" if series_number not in (None, "") else "",
            str(ds.get("SeriesDescription", "") or ""),
        )
        if p
    )
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1 and count != frames:
        image_line += f" (frame {frame_index + 1})"
    bottom_left = [series, image_line]
    location = slice_location(ds, frame_index)
    thickness = functional_attr(ds, "SliceThickness", frame_index, "PixelMeasuresSequence")
    parts = []
    if location is not None:
        parts.append(f"Loc: {location:.1f} mm")
    if _number(thickness):
        parts.append(f"Thick: {_number(thickness)} mm")
    if parts:
        bottom_left.append("  ".join(parts))
    return Corners(
        [line for line in top_left if line],
        [line for line in top_right if line],
        [line for line in bottom_left if line],
    )


def view_corners(
    ds: Dataset | None,
    frame_index: int,
    position: int,
    count: int,
    *,
    window: Any,
    colour: bool,
    inverted: bool,
    zoom: float,
    cine_fps: float | None,
    file_text: Corners | None = None,
) -> dict[str, list[str]]:
    """The four corners as a view draws them: :func:`corner_text` for the file's part (``file_text``
    when the caller has it already), LOSSY at the end of the top right, and the view's state
    bottom right (window, INV, zoom, cine). ``window`` is the window shown (a ``Window``, a VOI
    LUT with a ``label``, or None)."""
    corners = file_text if file_text is not None else corner_text(ds, frame_index, position, count)
    bottom_right = []
    if not colour and window is not None:
        if hasattr(window, "width"):
            text = f"W: {window_value(window.width)} L: {window_value(window.center)}"
            if window.explanation:
                text += f" ({window.explanation})"
        else:
            text = f"VOI LUT: {window.label}"
        bottom_right.append(text + ("  INV" if inverted else ""))
    elif inverted:
        bottom_right.append("INV")
    bottom_right.append(f"Zoom: {zoom * 100:.0f}%")
    if cine_fps is not None:
        bottom_right.append(f"Cine {cine_fps:.3g} fps")
    top_right = list(corners.top_right)
    if is_lossy(ds):
        ratio = ds.get("LossyImageCompressionRatio") if ds is not None else None
        top_right.append("LOSSY" + (f" {ratio}:1" if ratio else ""))
    return {
        "top_left": list(corners.top_left),
        "top_right": top_right,
        "bottom_left": list(corners.bottom_left),
        "bottom_right": bottom_right,
    }


def window_value(value: float) -> str:
    """A window's width or centre as a reader reads it: whole numbers from 10 up (``W: 238
    L: 99``, not ``238.184``/``99.0918``), two decimals below (a PET window in SUV, 0.5-6)."""
    if abs(value) >= 10:
        return f"{round(value):d}"
    return f"{value:.2f}".rstrip("0").rstrip(".") or "0"


def format_value(value: Any, units: str) -> str:
    """A modality value for the readout: ``-1000 HU``, ``(12, 40, 200)`` for colour."""
    suffix = f" {units}" if units else ""
    if isinstance(value, (tuple, list, np.ndarray)):
        return "(" + ", ".join(f"{float(v):.6g}" for v in value) + ")"
    try:
        return f"{float(value):.6g}{suffix}"
    except (TypeError, ValueError):
        return str(value)


def is_lossy(ds: Dataset | None) -> bool:
    """Lossy Image Compression (0028,2110) "01" (PS3.3 C.7.6.1.1.5), or a lossy transfer syntax."""
    if ds is None:
        return False
    if str(ds.get("LossyImageCompression", "")).strip() == "01":
        return True
    meta = getattr(ds, "file_meta", None)
    syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    return syntax in LOSSY_TRANSFER_SYNTAXES


# Patient axes (PS3.3 C.7.6.2.1.1): +x towards the patient's left, +y posterior, +z head.
_AXIS_LETTERS = (("L", "R"), ("P", "A"), ("H", "F"))
_LETTER_VECTORS = {
    "L": (1.0, 0.0, 0.0),
    "R": (-1.0, 0.0, 0.0),
    "P": (0.0, 1.0, 0.0),
    "A": (0.0, -1.0, 0.0),
    "H": (0.0, 0.0, 1.0),
    "F": (0.0, 0.0, -1.0),
}


def direction_letters(vector: Sequence[float], threshold: float = 0.25) -> str:
    """The letters of a patient direction, strongest first (``"L"``, ``"LA"`` when oblique).

    A component counts when it exceeds ``threshold`` (about 15 degrees off an axis), so a slight
    tilt does not clutter the edge with letters.
    """
    order = sorted(range(3), key=lambda axis: -abs(vector[axis]))
    letters = []
    for axis in order:
        component = vector[axis]
        if abs(component) > threshold:
            letters.append(_AXIS_LETTERS[axis][0 if component > 0 else 1])
    return "".join(letters)


def image_axes(ds: Dataset | None, frame_index: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Patient directions of increasing column and increasing row.

    From Image Orientation (Patient) (PS3.3 C.7.6.2.1.1), else from Patient Orientation
    (0020,0020, PS3.3 C.7.6.1.1.1) as projection radiographs give it.
    """
    if ds is None:
        return None
    orientation = finite_floats(
        functional_attr(ds, "ImageOrientationPatient", frame_index, "PlaneOrientationSequence"), 6
    )
    if orientation is not None:
        row = np.array(orientation[:3])
        column = np.array(orientation[3:])
        if np.linalg.norm(row) > 0.5 and np.linalg.norm(column) > 0.5:
            return row / np.linalg.norm(row), column / np.linalg.norm(column)
    patient_orientation = ds.get("PatientOrientation")
    if patient_orientation is not None and len(patient_orientation) == 2:
        vectors = []
        for text in patient_orientation:
            total = np.zeros(3)
            for letter in str(text).upper():
                if letter in _LETTER_VECTORS:
                    total += _LETTER_VECTORS[letter]
            if not total.any():
                return None
            vectors.append(total / np.linalg.norm(total))
        return vectors[0], vectors[1]
    return None


def screen_to_image(orient: Orient, screen: tuple[int, int]) -> tuple[int, int]:
    """The image direction (column, row) that ``orient`` turns into the screen direction."""
    (a, b), (c, d) = orient
    det = a * d - b * c  # +-1 for a signed permutation
    x, y = screen
    return ((d * x - b * y) * det, (-c * x + a * y) * det)


def edge_letters(
    axes: tuple[np.ndarray, np.ndarray] | None, orient: Orient = IDENTITY
) -> dict[str, str]:
    """Letters for the ``left``, ``right``, ``top`` and ``bottom`` edges of the screen."""
    if axes is None:
        return {}
    row, column = axes
    letters = {}
    edges = (("right", (1, 0)), ("left", (-1, 0)), ("bottom", (0, 1)), ("top", (0, -1)))
    for edge, screen in edges:
        dc, dr = screen_to_image(orient, screen)
        letters[edge] = direction_letters(dc * row + dr * column)
    return letters


@dataclass(frozen=True)
class Spacing:
    """Millimetres between rows and between columns, and whether they are at the detector.

    ``note`` says where a calibration that is neither came from (an ultrasound region).
    """

    row_mm: float
    column_mm: float
    detector: bool
    note: str = ""


def pixel_spacing(ds: Dataset | None, frame_index: int) -> Spacing | None:
    """Pixel Spacing (PS3.3 10.7.1.3), else Imager Pixel Spacing (at the detector, not the
    patient), else the first ultrasound region calibrated in cm (PS3.3 C.8.5.5.1).

    Both spacings give the row spacing (between row centres, vertical) first.
    """
    if ds is None:
        return None
    spacing = finite_floats(
        functional_attr(ds, "PixelSpacing", frame_index, "PixelMeasuresSequence"), 2
    )
    if spacing is not None and spacing[0] > 0 and spacing[1] > 0:
        return Spacing(spacing[0], spacing[1], detector=False)
    spacing = finite_floats(ds.get("ImagerPixelSpacing"), 2)
    if spacing is not None and spacing[0] > 0 and spacing[1] > 0:
        return Spacing(spacing[0], spacing[1], detector=True)
    return _ultrasound_spacing(ds)


#: Physical Units X/Y Direction (0018,6024/6026) code for centimetres (PS3.3 C.8.5.5.1.15).
_UNITS_CM = 3


def _ultrasound_spacing(ds: Dataset) -> Spacing | None:
    """Physical Delta X/Y of the first 2-D region in cm, as mm (valid inside that region)."""
    for region in ds.get("SequenceOfUltrasoundRegions") or []:
        try:
            units = (int(region.PhysicalUnitsXDirection), int(region.PhysicalUnitsYDirection))
            dx, dy = abs(float(region.PhysicalDeltaX)), abs(float(region.PhysicalDeltaY))
        except (AttributeError, TypeError, ValueError):
            continue
        if units == (_UNITS_CM, _UNITS_CM) and dx > 0 and dy > 0:
            return Spacing(dy * 10.0, dx * 10.0, detector=False, note="ultrasound region")
    return None


def nice_length(limit: float) -> float:
    """The largest 1, 2 or 5 times a power of ten not above ``limit`` (a scale bar length)."""
    if limit <= 0 or not math.isfinite(limit):
        return 0.0
    power = 10.0 ** math.floor(math.log10(limit))
    for step in (5.0, 2.0, 1.0):
        if step * power <= limit:
            return step * power
    return power


def screen_mm_per_pixel(spacing: Spacing, orient: Orient, zoom: float) -> float:
    """Millimetres per screen pixel along the screen's horizontal."""
    dc, _ = screen_to_image(orient, (1, 0))
    along = spacing.column_mm if dc else spacing.row_mm
    return along / zoom


def cine_rate(ds: Dataset | None) -> float:
    """Frames per second the file asks for: Cine Rate (0018,0040), Frame Time (0018,1063, ms),
    Recommended Display Frame Rate (0008,2144) (PS3.3 C.7.6.5); else ``DEFAULT_FPS``."""
    if ds is None:
        return DEFAULT_FPS
    for keyword, per_millisecond in (
        ("CineRate", False),
        ("FrameTime", True),
        ("RecommendedDisplayFrameRate", False),
    ):
        raw = ds.get(keyword)
        try:
            value = float(raw) if raw not in (None, "") else 0.0
        except (TypeError, ValueError):
            continue
        if value <= 0 or not math.isfinite(value):
            continue
        fps = 1000.0 / value if per_millisecond else value
        if 0 < fps <= 1000:
            return fps
    return DEFAULT_FPS
