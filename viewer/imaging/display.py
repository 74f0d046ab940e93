"""From decoded stored values to an 8-bit display buffer (PS3.3 C.11, C.7.6.3, C.7.9).

The grayscale pipeline of PS3.4 N.2.1.1 is: stored values -> Modality LUT (C.11.1: rescale or
Modality LUT Sequence) -> VOI LUT (C.11.2: a window or a VOI LUT Sequence) -> Presentation LUT
(C.11.6: MONOCHROME1 and Presentation LUT Shape INVERSE invert) -> P-values. Colour images
(C.7.6.3.1.2) are shown as decoded; PALETTE COLOR goes through its palette (C.7.9).

Why it is built the way it is: interactive window/level must not redo float64 maths on every
stored pixel. :class:`FrameRenderer` converts a frame once to float32 values in which the
modality transform is linear (stored values for rescale, modality values after a Modality LUT
Sequence), then folds rescale, window and inversion into one multiply-add applied in place
(``clip -> multiply -> add`` straight into the uint8 buffer), the idea of pyqtgraph's
``_combine_levels_and_lut``. Measured on a 512x512 frame, this is faster here than a 65,536-entry
lookup table applied with ``np.take``, because numpy's ``take`` converts every index to intp.
Lookup tables (VOI LUT Sequence, Modality LUT Sequence) are applied with ``np.take``.

For large images, :meth:`FrameRenderer.render_scaled` resamples the modality values once per
frame and view size by exact area averaging (no aliasing from decimation) and windows only that.

The 8-bit quantisation follows DCMTK (``dcm2pnm``), the reference this project is tested
against: the real-valued output of C.11.2.1.2 scaled to 0..255 is truncated, inversion is
applied before truncation, a min-max window is centre ``(min + max + 1) / 2``, width
``max - min + 1`` (C.11.2.1.2.1, note 4), and colour samples wider than 8 bits keep their top
8 bits.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from viewer.imaging.annotations import functional_group_items

log = logging.getLogger(__name__)

VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


@dataclass(frozen=True)
class Window:
    """A VOI window (PS3.3 C.11.2.1.2) in modality units; ``function`` is the VOI LUT Function."""

    center: float
    width: float
    function: str = "LINEAR"
    explanation: str = ""

    def __post_init__(self) -> None:
        if self.function not in VOI_FUNCTIONS:
            raise ValueError(f"unknown VOI LUT Function {self.function!r}")
        if not (math.isfinite(self.center) and math.isfinite(self.width)):
            raise ValueError("window centre and width must be finite numbers")
        # C.11.2.1.2.1: LINEAR needs width >= 1; C.11.2.1.3: the others width > 0
        if self.function == "LINEAR" and self.width < 1:
            raise ValueError(f"a LINEAR window needs a width of at least 1, not {self.width:g}")
        if self.width <= 0:
            raise ValueError(f"window width must be positive, not {self.width:g}")

    @property
    def label(self) -> str:
        text = f"{self.center:g}/{self.width:g}"
        return f"{self.explanation} ({text})" if self.explanation else text


@dataclass(frozen=True, eq=False)
class LookupTable:
    """A LUT of PS3.3 C.11.1.1 / C.11.2.1.1: ``data[v - first_mapped]``, entries of ``bits`` bits.

    Input values below ``first_mapped`` take the first entry, values past the end the last.
    """

    first_mapped: int
    bits: int
    data: NDArray[np.int64]
    explanation: str = ""

    @property
    def label(self) -> str:
        return self.explanation or f"VOI LUT ({len(self.data)} entries)"

    def indices(self, values: NDArray[Any]) -> NDArray[np.intp]:
        """Entry index of each (modality) value, clamped to the table as C.11.2.1.1 says."""
        idx = np.rint(values.astype(np.float64, copy=False)) - self.first_mapped
        np.clip(idx, 0, len(self.data) - 1, out=idx)
        return idx.astype(np.intp)


#: The type of one VOI choice: a window or a VOI LUT.
Voi = Window | LookupTable

#: CT presets (HU), in the order of the keys 1-8 of the view.
CT_PRESETS: dict[str, Window] = {
    "brain": Window(40, 80, explanation="Brain"),
    "subdural": Window(75, 215, explanation="Subdural"),
    "stroke": Window(40, 40, explanation="Stroke"),
    "lung": Window(-600, 1500, explanation="Lung"),
    "mediastinum": Window(50, 350, explanation="Mediastinum"),
    "abdomen": Window(50, 400, explanation="Abdomen"),
    "liver": Window(30, 150, explanation="Liver"),
    "bone": Window(400, 1800, explanation="Bone"),
}


@dataclass(frozen=True, eq=False)
class ModalityTransform:
    """The Modality LUT stage (PS3.3 C.11.1) of one frame: a rescale or a lookup table."""

    slope: float = 1.0
    intercept: float = 0.0
    lut: LookupTable | None = None
    rescale_type: str = ""

    def apply(self, stored: NDArray[Any]) -> NDArray[np.float64]:
        """Modality values as float64 (the reference path; rendering uses a folded form)."""
        if self.lut is not None:
            return self.lut.data[self.lut.indices(stored)].astype(np.float64)
        out = stored.astype(np.float64)
        if self.slope != 1.0:
            out *= self.slope
        if self.intercept != 0.0:
            out += self.intercept
        return out


# --- reading the attributes ------------------------------------------------------------------


def _values(elem_value: Any) -> list[Any]:
    if elem_value is None or elem_value == "":
        return []
    if isinstance(elem_value, MultiValue | list | tuple):
        return [v for v in elem_value if v is not None and v != ""]
    return [elem_value]


def _float_or_none(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def functional_group_item(ds: Dataset, frame_index: int, keyword: str) -> Dataset | None:
    """The item of functional group ``keyword`` for a frame (PS3.3 C.7.6.16).

    A Per-Frame Functional Groups item wins over the Shared Functional Groups one; a damaged
    file's group kept as bytes is no item (:func:`annotations.functional_group_items`).
    """
    return next(functional_group_items(ds, frame_index, keyword), None)


def _pixel_representation(ds: Dataset) -> int:
    try:
        return int(ds.get("PixelRepresentation", 0) or 0)
    except (TypeError, ValueError):
        return 0


def _lut_data(item: Dataset, ds: Dataset, entries: int) -> NDArray[np.int64] | None:
    """LUT Data (0028,3006): US values, or OW bytes in the dataset's byte order."""
    if "LUTData" not in item:
        return None
    value = item["LUTData"].value
    if isinstance(value, bytes | bytearray):
        little = getattr(ds, "is_little_endian", None)
        if little is None:
            little = getattr(ds, "original_encoding", (None, True))[1] is not False
        words = np.frombuffer(bytes(value)[: len(value) // 2 * 2], dtype="<u2" if little else ">u2")
        data = words.astype(np.int64)
    else:
        data = np.asarray(_values(value), dtype=np.int64)
    if data.size == 0:
        return None
    if data.size > entries:
        data = data[:entries]
    return data


def read_lut(
    item: Dataset, ds: Dataset, explanation_keyword: str = "LUTExplanation"
) -> LookupTable | None:
    """A LUT from an item with LUT Descriptor and LUT Data (PS3.3 C.11.1.1.1, C.11.2.1.1)."""
    desc = _values(item.get("LUTDescriptor"))
    if len(desc) < 3:
        return None
    entries = int(desc[0]) or 65536  # 0 means 2^16 entries
    first = int(desc[1])
    # the second value is signed when the input values are (C.11.1.1.1)
    if _pixel_representation(ds) == 1 and first >= 32768:
        first -= 65536
    bits = int(desc[2])
    data = _lut_data(item, ds, entries)
    if data is None:
        return None
    # 8-bit entries packed two per OW word (seen in old files): unpack when the count says so
    if bits == 8 and len(data) * 2 == entries:
        packed = data.astype("<u2").view(np.uint8)
        data = packed.astype(np.int64)
    if bits < 1 or bits > 16:
        bits = max(int(data.max()).bit_length(), 1)
    if int(data.max()) >= 2**bits:  # wrong depth in the descriptor: trust the data
        bits = int(data.max()).bit_length()
    explanation = str(item.get(explanation_keyword, "") or "")
    return LookupTable(first_mapped=first, bits=bits, data=data, explanation=explanation)


def modality_transform(ds: Dataset, frame_index: int = 0) -> ModalityTransform:
    """The Modality LUT of a frame (C.11.1), enhanced per-frame values first (C.7.6.16.2.9)."""
    modality = str(ds.get("Modality", "") or "")
    item = functional_group_item(ds, frame_index, "PixelValueTransformationSequence")
    source: Dataset = ds
    if item is not None and "RescaleSlope" in item and "RescaleIntercept" in item:
        source = item
    elif ds.get("ModalityLUTSequence"):
        lut = read_lut(ds.ModalityLUTSequence[0], ds)
        if lut is not None:
            rtype = str(ds.ModalityLUTSequence[0].get("ModalityLUTType", "") or "")
            return ModalityTransform(lut=lut, rescale_type=rtype)
    slope = _float_or_none(source.get("RescaleSlope", 1.0))
    intercept = _float_or_none(source.get("RescaleIntercept", 0.0))
    rtype = str(source.get("RescaleType", "") or ds.get("RescaleType", "") or "")
    if not rtype and modality == "CT":
        rtype = "HU"  # C.11.1.1.2: CT rescaled values are Hounsfield units
    return ModalityTransform(
        slope=1.0 if slope is None or slope == 0 else slope,
        intercept=0.0 if intercept is None else intercept,
        rescale_type=rtype,
    )


#: Rescale Type (PS3.3 C.11.1.1.2) and PET Units (C.8.9.1.1.3) as a reader reads them: "US" is
#: "unspecified", not ultrasound, so it shows no unit at all.
_UNIT_WORDS = {
    "HU": "HU",
    "US": "",
    "NONE": "",
    "OD": "optical density",
    "PCNT": "%",
    "CPS": "counts/s",
    "CNTS": "counts",
    "BQML": "Bq/ml",
    "MGML": "mg/ml",
    "GML": "g/ml (SUV bw)",
    "MM": "mm",
}


def units_label(rescale_type: str, ds: Dataset | None = None) -> str:
    """The unit of a frame's modality values, spelled out (empty when unspecified); a PET
    image without a Rescale Type takes its Units (0054,1001)."""
    code = rescale_type.strip().upper()
    if not code and ds is not None and str(ds.get("Modality", "") or "") == "PT":
        code = str(ds.get("Units", "") or "").strip().upper()
    return _UNIT_WORDS.get(code, rescale_type.strip())


def file_windows(ds: Dataset, frame_index: int = 0) -> list[Voi]:
    """Every window and VOI LUT the file gives a frame, windows first, in file order (C.11.2).

    Each Window Center/Width pair is a choice with its Window Center & Width Explanation; the
    Frame VOI LUT functional group of enhanced images (C.7.6.16.2.10) wins over the top level.
    """
    source = ds
    item = functional_group_item(ds, frame_index, "FrameVOILUTSequence")
    if item is not None and ("WindowCenter" in item or "VOILUTSequence" in item):
        source = item
    centers = _values(source.get("WindowCenter"))
    widths = _values(source.get("WindowWidth"))
    explanations = _values(source.get("WindowCenterWidthExplanation"))
    function = str(source.get("VOILUTFunction", "") or ds.get("VOILUTFunction", "") or "LINEAR")
    function = function.strip().upper()
    if function not in VOI_FUNCTIONS:
        log.debug("unknown VOI LUT Function %r: using LINEAR", function)
        function = "LINEAR"
    result: list[Voi] = []
    for i, (c, w) in enumerate(zip(centers, widths, strict=False)):
        center, width = _float_or_none(c), _float_or_none(w)
        if center is None or width is None:
            continue
        explanation = str(explanations[i]) if i < len(explanations) else ""
        try:
            result.append(Window(center, width, function, explanation))
        except ValueError as exc:
            log.debug("window %d left out: %s", i + 1, exc)
    for lut_item in source.get("VOILUTSequence") or []:
        lut = read_lut(lut_item, ds)
        if lut is not None:
            result.append(lut)
    return result


def padding_range(ds: Dataset) -> tuple[int, int] | None:
    """Stored values that are padding (PS3.3 C.7.5.1.1.2), inclusive, or None.

    Pixel Padding Value alone pads one value; with Pixel Padding Range Limit every value between
    the two (in either order) is padding.
    """
    value = _float_or_none(ds.get("PixelPaddingValue"))
    if value is None:
        return None
    limit = _float_or_none(ds.get("PixelPaddingRangeLimit"))
    signed = _pixel_representation(ds) == 1

    def as_stored(v: float) -> int:
        iv = int(v)
        return iv - 65536 if signed and iv >= 32768 else iv

    low = as_stored(value)
    high = low if limit is None else as_stored(limit)
    return (min(low, high), max(low, high))


def inverts(ds: Dataset) -> bool:
    """Whether the frame is shown inverted before any user inversion (C.7.6.3.1.2, C.11.6.1).

    MONOCHROME1 is shown with its minimum white; Presentation LUT Shape INVERSE inverts. The two
    describe the same inversion (an IOD with MONOCHROME1 requires INVERSE, C.8.11.6.1.2), so
    they do not cancel out.
    """
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    shape = str(ds.get("PresentationLUTShape", "") or "").strip().upper()
    return photometric == "MONOCHROME1" or shape == "INVERSE"


def minmax_window(values: NDArray[Any], padding_mask: NDArray[np.bool_] | None = None) -> Window:
    """The window spanning ``values`` (C.11.2.1.2.1, note 4), padding left out."""
    data = values if padding_mask is None else values[~padding_mask]
    if data.size == 0:
        data = values
    finite = data[np.isfinite(data)] if data.dtype.kind == "f" else data
    if finite.size == 0:
        return Window(0.0, 1.0, explanation="min-max")
    low, high = float(finite.min()), float(finite.max())
    return Window((low + high + 1) / 2, max(high - low + 1, 1.0), explanation="min-max")


# --- the reference (float64) VOI: used by tests and for the odd cases ------------------------


def voi_to_display(
    modality_values: NDArray[Any], voi: Voi, *, invert: bool = False
) -> NDArray[np.uint8]:
    """Modality values -> 8-bit P-values with a window or VOI LUT, in float64 (C.11.2).

    Straightforward and slow; :class:`FrameRenderer` gives the same bytes faster.
    """
    x = modality_values.astype(np.float64)
    if isinstance(voi, LookupTable):
        y = voi.data[voi.indices(x)] * (255.0 / (2**voi.bits - 1))
    elif voi.function == "SIGMOID":  # C.11.2.1.3.1
        y = 255.0 / (1.0 + np.exp(-4.0 * (x - voi.center) / voi.width))
    elif voi.function == "LINEAR_EXACT":  # C.11.2.1.3.2
        y = np.clip(((x - voi.center) / voi.width + 0.5) * 255.0, 0.0, 255.0)
    elif voi.width <= 1:  # C.11.2.1.2.1 with w = 1: a step at c - 0.5
        y = np.where(x > voi.center - 0.5, 255.0, 0.0)
    else:  # C.11.2.1.2.1
        y = ((x - (voi.center - 0.5)) / (voi.width - 1) + 0.5) * 255.0
        y = np.clip(y, 0.0, 255.0)
    if invert:
        y = 255.0 - y
    result: NDArray[np.uint8] = np.floor(y + 1e-9).clip(0, 255).astype(np.uint8)
    return result


# --- colour -----------------------------------------------------------------------------------


def to_8bit_rgb(rgb: NDArray[Any], bits_stored: int) -> NDArray[np.uint8]:
    """RGB samples wider than 8 bits keep their top 8 bits, as DCMTK shows them."""
    if rgb.dtype == np.uint8:
        return np.ascontiguousarray(rgb)
    shift = max(int(bits_stored) - 8, 0)
    data = rgb.astype(np.uint32, copy=False)
    if shift:
        data = np.right_shift(data, np.uint32(shift))
    return np.ascontiguousarray(np.clip(data, 0, 255).astype(np.uint8))


def _palette_channel(ds: Dataset, colour: str) -> tuple[NDArray[np.int64], int, int] | None:
    """One non-segmented palette (C.7.6.3.1.5): its entries, first mapped value and bits."""
    desc = _values(ds.get(f"{colour}PaletteColorLookupTableDescriptor"))
    raw = ds.get(f"{colour}PaletteColorLookupTableData")
    if len(desc) < 3 or not raw:
        return None
    entries = int(desc[0]) or 65536
    first = int(desc[1])
    if _pixel_representation(ds) == 1 and first >= 32768:
        first -= 65536
    bits = int(desc[2])
    if isinstance(raw, bytes | bytearray):
        if bits == 8 and len(raw) == entries:  # 8-bit entries packed one per byte
            data = np.frombuffer(bytes(raw), dtype=np.uint8).astype(np.int64)
        else:
            little = getattr(ds, "is_little_endian", None) is not False
            words = np.frombuffer(bytes(raw)[: len(raw) // 2 * 2], dtype="<u2" if little else ">u2")
            data = words.astype(np.int64)
    else:
        data = np.asarray(_values(raw), dtype=np.int64)
    if data.size == 0:
        return None
    data = data[:entries]
    if bits == 8 and int(data.max()) > 255:
        data = data >> 8
    return data, first, 16 if bits != 8 else 8


def palette_to_rgb(stored: NDArray[Any], ds: Dataset) -> NDArray[np.uint8]:
    """PALETTE COLOR through its Red/Green/Blue palettes (C.7.6.3.1.5, C.7.9).

    Palette data is read in the dataset's byte order (pydicom 3.0's ``apply_color_lut`` reads
    big endian OW palettes wrongly); segmented palettes (C.7.9.2) go through ``apply_color_lut``.
    Input values below the first mapped value take the first entry, values past the end the
    last; 16-bit entries keep their top 8 bits.
    """
    channels = [_palette_channel(ds, c) for c in ("Red", "Green", "Blue")]
    if any(ch is None for ch in channels):
        from pydicom.pixels.processing import apply_color_lut

        rgb = apply_color_lut(stored, ds)
        if rgb.dtype == np.uint8:
            return np.ascontiguousarray(rgb)
        desc = _values(ds.get("RedPaletteColorLookupTableDescriptor"))
        bits = int(desc[2]) if len(desc) == 3 and int(desc[2]) in (8, 16) else 16
        return to_8bit_rgb(rgb, bits)
    out = np.empty((*stored.shape, 3), dtype=np.uint8)
    values = stored.astype(np.int64, copy=False)
    for i, channel in enumerate(channels):
        assert channel is not None
        data, first, bits = channel
        lut8 = (data >> (bits - 8)).clip(0, 255).astype(np.uint8)
        idx = np.clip(values - first, 0, len(lut8) - 1)
        out[..., i] = lut8[idx]
    return out


# --- resampling -------------------------------------------------------------------------------


def _area_resize_axis(data: NDArray[Any], size: int, axis: int) -> NDArray[np.float64]:
    """Exact area averaging along one axis: each output sample is the mean over its footprint.

    An integer factor is a reshape and a mean; any other factor sums the whole samples of each
    footprint (``np.add.reduceat``) and adds the fractions of the samples cut by its edges.
    """
    n = data.shape[axis]
    if size >= n:
        return data.astype(np.float64)
    moved = np.moveaxis(data, axis, 0)
    rest = moved.shape[1:]
    flat = moved.reshape(n, -1)
    if n % size == 0:
        k = n // size
        out = flat.reshape(size, k, -1).mean(axis=1, dtype=np.float64)
        return np.moveaxis(out.reshape(size, *rest), 0, axis)
    scale = n / size
    edges = np.arange(size + 1, dtype=np.float64) * scale
    edges[-1] = n
    base = np.floor(edges).astype(np.intp)  # strictly increasing: scale > 1
    frac = (edges - base)[:, None]
    # sums over whole samples [base_j, base_j+1), then the fractional samples at both edges:
    # area_j = S_j - frac_j * x[base_j] + frac_j+1 * x[base_j+1]  (the last edge is n exactly)
    sums = np.add.reduceat(flat, base[:-1], axis=0, dtype=np.float64)
    sums -= frac[:-1] * flat[base[:-1]]
    sums[:-1] += frac[1:-1] * flat[base[1:-1]]
    sums /= scale
    return np.moveaxis(sums.reshape(size, *rest), 0, axis)


def area_resize(data: NDArray[Any], rows: int, cols: int) -> NDArray[np.float64]:
    """Downscale a 2-D (or H, W, C) array to ``rows x cols`` by area averaging (no aliasing)."""
    out = _area_resize_axis(data, rows, 0)
    return _area_resize_axis(out, cols, 1)


def fit_size(rows: int, cols: int, size: tuple[int, int]) -> tuple[int, int]:
    """Rows and columns of the image drawn to fit a ``size = (width, height)`` view."""
    width, height = max(int(size[0]), 1), max(int(size[1]), 1)
    scale = min(width / cols, height / rows)
    if scale >= 1:
        return rows, cols
    return max(1, round(rows * scale)), max(1, round(cols * scale))


# --- the renderer -----------------------------------------------------------------------------


def _is_colour(ds: Dataset, pixels: NDArray[Any]) -> bool:
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    return pixels.ndim == 3 or photometric == "PALETTE COLOR"


class FrameRenderer:
    """One decoded frame and everything needed to show it with any window (PS3.4 N.2.1.1).

    ``pixels`` is what ``decode.decode_frame`` gives: stored values (2-D) for monochrome and
    PALETTE COLOR, RGB ``(rows, cols, 3)`` for colour. Work that does not depend on the window
    (float32 conversion, min-max, a resampled level for :meth:`render_scaled`) is done once.
    Raises ValueError (and nothing else) for a frame it cannot show: PALETTE COLOR without a
    usable palette, a monochrome frame that is not 2-D; once made, it renders any window.
    """

    def __init__(self, ds: Dataset, frame_index: int, pixels: NDArray[Any]) -> None:
        self.frame_index = frame_index
        self.pixels = pixels
        self.is_colour = _is_colour(ds, pixels)
        self.modality = modality_transform(ds, frame_index)
        self.units = units_label(self.modality.rescale_type, ds)
        self.inverse_shape = False
        self.file_windows: list[Voi] = []
        self._rgb: NDArray[np.uint8] | None = None
        self._values: NDArray[np.float32] | None = None
        self._slope = 1.0
        self._intercept = 0.0
        self._padding: NDArray[np.bool_] | None = None
        self._minmax: Window | None = None
        self._level_key: tuple[int, int] | None = None
        self._level: NDArray[Any] | None = None
        if self.is_colour:
            photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
            if photometric == "PALETTE COLOR" and pixels.ndim == 2:
                self._rgb = palette_to_rgb(pixels, ds)
            else:
                self._rgb = to_8bit_rgb(pixels, int(ds.get("BitsStored", 8) or 8))
            self.default_window: Voi | None = None
            return
        if pixels.ndim != 2:
            raise ValueError(f"a monochrome frame must be 2-D, not of shape {pixels.shape}")
        self.inverse_shape = inverts(ds)
        self.file_windows = file_windows(ds, frame_index)
        pad = padding_range(ds)
        if pad is not None and pixels.dtype.kind in "iu":
            self._padding = (pixels >= pad[0]) & (pixels <= pad[1])
            if not self._padding.any():
                self._padding = None
        if self.modality.lut is not None:
            # a lookup table is not linear: work on modality values directly
            self._values = np.ascontiguousarray(self.modality.apply(pixels), dtype=np.float32)
        else:
            self._values = np.ascontiguousarray(pixels, dtype=np.float32)
            self._slope, self._intercept = self.modality.slope, self.modality.intercept
        self._scratch = np.empty_like(self._values)
        self.default_window = self.file_windows[0] if self.file_windows else self.minmax_window()

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.pixels.shape[0]), int(self.pixels.shape[1])

    def modality_values(self) -> NDArray[np.float64]:
        """Modality values of the whole frame (C.11.1), float64."""
        return self.modality.apply(self.pixels)

    def minmax_window(self) -> Window:
        """The min-max window of the frame's modality values, Pixel Padding left out."""
        if self.is_colour:
            return Window(127.5, 256.0, explanation="min-max")
        if self._minmax is None:
            assert self._values is not None
            # min and max of the float32 values, then the (linear, monotonic) rescale: no
            # float64 copy of a large frame
            stored = minmax_window(self._values, self._padding)
            low = stored.center - stored.width / 2
            high = low + stored.width - 1
            ends = sorted(
                (low * self._slope + self._intercept, high * self._slope + self._intercept)
            )
            self._minmax = Window(
                (ends[0] + ends[1] + 1) / 2, max(ends[1] - ends[0] + 1, 1.0), explanation="min-max"
            )
        return self._minmax

    def modality_value(self, row: int, col: int) -> float | tuple[int, ...]:
        """The value under a pixel: modality units for grayscale, the RGB triple for colour."""
        if self._rgb is not None:
            return tuple(int(v) for v in self._rgb[row, col])
        stored = self.pixels[row : row + 1, col : col + 1]
        return float(self.modality.apply(stored)[0, 0])

    def render(
        self,
        window: Voi | None = None,
        *,
        invert: bool = False,
        out: NDArray[np.uint8] | None = None,
    ) -> NDArray[np.uint8]:
        """The frame as uint8 ``(rows, cols)`` grey or ``(rows, cols, 3)`` RGB, C-contiguous.

        ``window=None`` is :attr:`default_window`; ``invert`` is the user's inversion, on top of
        MONOCHROME1 / Presentation LUT Shape. Colour ignores both (the returned colour buffer is
        shared: do not write to it). ``out``, a C-contiguous uint8 array of the frame's shape,
        is filled and returned instead of a new array: a view that keeps its display buffer
        saves an allocation per window change.
        """
        if self._rgb is not None:
            return self._rgb
        assert self._values is not None
        return self._apply(self._values, window, invert, self._scratch, out)

    def render_scaled(
        self, window: Voi | None = None, *, invert: bool = False, size: tuple[int, int]
    ) -> NDArray[np.uint8]:
        """What a view of ``size = (width, height)`` device pixels shows with the frame fitted.

        The frame is area-averaged once per size (modality values, before the window, so any
        window stays exact), then only the small level is windowed. A frame smaller than the
        view comes back at native size.
        """
        rows, cols = fit_size(*self.shape, size)
        if (rows, cols) == self.shape:
            return self.render(window, invert=invert)
        if self._level_key != (rows, cols) or self._level is None:
            source = self._rgb if self._rgb is not None else self._values
            assert source is not None
            level = area_resize(source, rows, cols)
            if self._rgb is not None:
                self._level = np.ascontiguousarray(np.rint(level).clip(0, 255).astype(np.uint8))
            else:
                self._level = np.ascontiguousarray(level, dtype=np.float32)
            self._level_key = (rows, cols)
        if self._rgb is not None:
            return self._level
        return self._apply(self._level, window, invert, None)

    # -- internals --

    def _apply(
        self,
        values: NDArray[np.float32],
        window: Voi | None,
        invert: bool,
        scratch: NDArray[np.float32] | None,
        out: NDArray[np.uint8] | None = None,
    ) -> NDArray[np.uint8]:
        voi = self.default_window if window is None else window
        assert voi is not None
        inverse = self.inverse_shape != invert
        if out is None:
            out = np.empty(values.shape, dtype=np.uint8)
        elif out.shape != values.shape or out.dtype != np.uint8 or not out.flags.c_contiguous:
            raise ValueError(f"out must be C-contiguous uint8 of shape {values.shape}")
        if isinstance(voi, LookupTable) or voi.function == "SIGMOID":
            modality = values.astype(np.float64) * self._slope + self._intercept
            out[...] = voi_to_display(modality, voi, invert=inverse)
            return out
        if scratch is None:
            scratch = np.empty_like(values)
        self._linear(values, voi, inverse, scratch, out)
        return out

    def _linear(
        self,
        values: NDArray[np.float32],
        window: Window,
        inverse: bool,
        scratch: NDArray[np.float32],
        out: NDArray[np.uint8],
    ) -> None:
        """LINEAR / LINEAR_EXACT folded with rescale and inversion: y = A * v + B on clipped v.

        With x = slope * v + intercept, C.11.2.1.2.1 gives y = ((x - (c - 0.5)) / (w - 1) + 0.5)
        * 255 inside the window (C.11.2.1.3.2: (x - c) / w + 0.5 for LINEAR_EXACT). Clipping v
        to where y runs from 0 to 255.5 makes everything outside the window land on 0 or 255
        after truncation, without a separate clamp of the output.
        """
        m, b = self._slope, self._intercept
        c, w = window.center, window.width
        if window.function == "LINEAR_EXACT":
            a = 255.0 * m / w
            b0 = 255.0 * ((b - c) / w + 0.5)
        elif w <= 1:
            # a step at c - 0.5 (w - 1 = 0)
            np.greater(values * np.float32(m) + np.float32(b), c - 0.5, out=out)
            np.multiply(out, 255, out=out)
            if inverse:
                np.subtract(255, out, out=out)
            return
        else:
            a = 255.0 * m / (w - 1)
            b0 = 255.0 * ((b - c + 0.5) / (w - 1) + 0.5)
        if a == 0.0:
            level = math.floor(min(max(b0, 0.0), 255.0))
            out.fill(255 - level if inverse else level)
            return
        v0, v1 = -b0 / a, (255.5 - b0) / a
        low, high = (v0, v1) if v0 <= v1 else (v1, v0)
        if max(abs(low), abs(high)) > _FLOAT32_EXACT:
            # a window far outside float32's exact range (a centre of 1e20 from a damaged
            # file, found by make fuzz): the clip bounds are garbage in float32, so take
            # y = a * v + b0 in float64 and clamp the output instead
            wide = values.astype(np.float64)
            wide *= a
            wide += b0
            if inverse:
                np.subtract(255.0, wide, out=wide)
            np.clip(wide, 0.0, 255.0, out=wide)
            np.copyto(out, wide, casting="unsafe")
            return
        if inverse:
            a, b0 = -a, 255.0 - b0
        np.clip(values, np.float32(low), np.float32(high), out=scratch)
        np.multiply(scratch, np.float32(a), out=scratch)
        np.add(scratch, np.float32(b0), out=scratch)
        # y is now in [0, 256): the cast truncates, which is the floor DCMTK takes
        np.copyto(out, scratch, casting="unsafe")


#: Beyond this magnitude float32 no longer holds every integer (2**24).
_FLOAT32_EXACT = float(1 << 24)


def window_for_preset(name: str) -> Window:
    """The CT preset called ``name`` (case-insensitive), or KeyError listing the names."""
    try:
        return CT_PRESETS[name.lower()]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}: choose from {', '.join(CT_PRESETS)}") from None


def describe(voi: Voi) -> str:
    """A short label for menus and the corner text."""
    return voi.label


__all__: Sequence[str] = (
    "CT_PRESETS",
    "FrameRenderer",
    "LookupTable",
    "ModalityTransform",
    "Voi",
    "Window",
    "area_resize",
    "file_windows",
    "fit_size",
    "functional_group_item",
    "inverts",
    "minmax_window",
    "modality_transform",
    "padding_range",
    "palette_to_rgb",
    "read_lut",
    "to_8bit_rgb",
    "voi_to_display",
    "window_for_preset",
)
