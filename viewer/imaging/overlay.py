"""Overlay planes (PS3.3 C.9.2, groups 6000-601E) as masks, and drawing them as DCMTK does.

An overlay is a bit plane either in Overlay Data (60xx,3000) or, in older files, in an unused
high bit of Pixel Data (Overlay Bit Position above High Bit; C.9.2.1.3, retired in 2004 but still
found). A multi-frame overlay (Number of Frames in Overlay, Image Frame Origin, C.9.2.1.1) covers
image frames ``origin .. origin + frames - 1``; a single-frame overlay without those attributes
covers every frame. Overlay Origin (row, column) counts from 1 and may lie outside the image.

``dcm2pnm`` by default shows every overlay plane in "Replace" mode with foreground density 1:
overlay pixels become the brightest P-value (255 in the 8-bit output), whatever the window and
polarity. :func:`draw_overlays` does the same; the masks stay separate so a view can toggle them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.tag import Tag

log = logging.getLogger(__name__)

_NATIVE_SYNTAXES = {
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.2",
}


@dataclass(frozen=True)
class OverlayPlane:
    """One overlay group's attributes (C.9.2)."""

    group: int
    rows: int
    cols: int
    origin: tuple[int, int]
    frames: int
    first_frame: int
    kind: str
    description: str
    bit_position: int
    embedded: bool


def _int(ds: Dataset, group: int, element: int, default: int | None) -> int | None:
    elem = ds.get(Tag(group, element))
    if elem is None or elem.value is None or elem.value == "":
        return default
    value = elem.value
    if not isinstance(value, str | bytes | int | float) and hasattr(value, "__getitem__"):
        value = value[0] if len(value) else None
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def overlay_planes(ds: Dataset) -> list[OverlayPlane]:
    """Every usable overlay group of the dataset; groups missing rows/columns are skipped."""
    planes: list[OverlayPlane] = []
    for group in range(0x6000, 0x6020, 2):
        rows = _int(ds, group, 0x0010, None)
        cols = _int(ds, group, 0x0011, None)
        if not rows or not cols or rows < 0 or cols < 0:
            continue
        origin_elem = ds.get(Tag(group, 0x0050))
        origin = (1, 1)
        if origin_elem is not None and origin_elem.value is not None:
            try:
                values = list(origin_elem.value)
                if len(values) >= 2:
                    origin = (int(values[0]), int(values[1]))
            except (TypeError, ValueError):
                pass
        data_elem = ds.get(Tag(group, 0x3000))
        has_data = data_elem is not None and bool(data_elem.value)
        bits_allocated = _int(ds, group, 0x0100, 1) or 1
        bit_position = _int(ds, group, 0x0102, 0) or 0
        embedded = not has_data and bits_allocated > 1
        if not has_data and not embedded:
            continue
        kind_elem = ds.get(Tag(group, 0x0040))
        description = ds.get(Tag(group, 0x0022))
        planes.append(
            OverlayPlane(
                group=group,
                rows=rows,
                cols=cols,
                origin=origin,
                frames=max(_int(ds, group, 0x0015, 1) or 1, 1),
                first_frame=max(_int(ds, group, 0x0051, 1) or 1, 1),
                kind=str(kind_elem.value or "G") if kind_elem is not None else "G",
                description=str(description.value or "") if description is not None else "",
                bit_position=bit_position,
                embedded=embedded,
            )
        )
    return planes


def _separate_bits(ds: Dataset, plane: OverlayPlane, index: int) -> NDArray[np.bool_] | None:
    """Bit plane ``index`` of Overlay Data: bits packed little-end first across the frames."""
    elem = ds[Tag(plane.group, 0x3000)]
    raw = bytes(elem.value)
    if elem.VR == "OW" and getattr(ds, "is_little_endian", True) is False:
        raw = np.frombuffer(raw[: len(raw) // 2 * 2], dtype=">u2").astype("<u2").tobytes()
    count = plane.rows * plane.cols
    start = index * count
    if (start + count + 7) // 8 > len(raw):
        log.debug("overlay %04x: data too short for frame %d", plane.group, index + 1)
        return None
    first_byte, skip = divmod(start, 8)
    chunk = np.frombuffer(raw, dtype=np.uint8, count=(skip + count + 7) // 8, offset=first_byte)
    bits = np.unpackbits(chunk, bitorder="little")[skip : skip + count]
    return bits.reshape(plane.rows, plane.cols).astype(bool)


def _embedded_bits(ds: Dataset, plane: OverlayPlane, frame_index: int) -> NDArray[np.bool_] | None:
    """The overlay bit of native Pixel Data (C.9.2.1.3): only uncompressed data keeps it."""
    syntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    if syntax not in _NATIVE_SYNTAXES or "PixelData" not in ds:
        log.debug("overlay %04x in pixel data of a compressed image is not shown", plane.group)
        return None
    bits_allocated = int(ds.get("BitsAllocated", 16) or 16)
    if bits_allocated not in (8, 16, 32) or plane.bit_position >= bits_allocated:
        return None
    rows, cols = int(ds.Rows), int(ds.Columns)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples != 1 or (plane.rows, plane.cols) != (rows, cols):
        return None
    big = syntax == "1.2.840.10008.1.2.2"
    dtype = np.dtype(f"{'>' if big else '<'}u{bits_allocated // 8}")
    raw: bytes = ds.PixelData
    offset = frame_index * rows * cols * dtype.itemsize
    if offset + rows * cols * dtype.itemsize > len(raw):
        return None
    words = np.frombuffer(raw, dtype=dtype, count=rows * cols, offset=offset)
    return ((words >> plane.bit_position) & 1).astype(bool).reshape(rows, cols)


def _place(
    bits: NDArray[np.bool_], origin: tuple[int, int], shape: tuple[int, int]
) -> NDArray[np.bool_]:
    """An image-sized mask with the overlay put at its 1-based origin, cropped to the image."""
    mask = np.zeros(shape, dtype=bool)
    top, left = origin[0] - 1, origin[1] - 1
    r0, c0 = max(top, 0), max(left, 0)
    r1 = min(top + bits.shape[0], shape[0])
    c1 = min(left + bits.shape[1], shape[1])
    if r1 > r0 and c1 > c0:
        mask[r0:r1, c0:c1] = bits[r0 - top : r1 - top, c0 - left : c1 - left]
    return mask


def overlay_masks(ds: Dataset, frame_index: int) -> list[NDArray[np.bool_]]:
    """Boolean masks, image-sized, of every overlay plane that covers this frame (0-based)."""
    try:
        shape = (int(ds.Rows), int(ds.Columns))
    except (AttributeError, TypeError, ValueError):
        return []
    masks: list[NDArray[np.bool_]] = []
    for plane in overlay_planes(ds):
        try:
            if plane.embedded:
                bits = _embedded_bits(ds, plane, frame_index)
            else:
                number = _int(ds, plane.group, 0x0015, None)
                if number is None:
                    index = 0  # single-frame overlay: shown on every frame
                else:
                    index = frame_index + 1 - plane.first_frame
                    if not 0 <= index < plane.frames:
                        continue
                bits = _separate_bits(ds, plane, index)
        except (ValueError, TypeError, KeyError) as exc:
            log.debug("overlay %04x unreadable: %s", plane.group, exc)
            continue
        if bits is not None:
            masks.append(_place(bits, plane.origin, shape))
    return masks


def scale_mask(mask: NDArray[np.bool_], rows: int, cols: int) -> NDArray[np.bool_]:
    """A mask for an image shown at ``rows x cols`` (what ``render_scaled`` gives).

    A shown pixel is set when any overlay pixel falls in its footprint, so one-pixel lines and
    text stay visible when a large image is fitted into a small view.
    """
    from viewer.imaging.display import area_resize

    if mask.shape == (rows, cols):
        return mask
    result: NDArray[np.bool_] = area_resize(mask.astype(np.float32), rows, cols) > 1e-6
    return result


def draw_overlays(img: NDArray[np.uint8], masks: list[NDArray[Any]]) -> NDArray[np.uint8]:
    """Draw masks into ``img`` in place in DCMTK's default "Replace" mode: overlay pixels 255."""
    for mask in masks:
        if mask.shape != img.shape[:2]:
            continue
        img[mask] = 255
    return img
