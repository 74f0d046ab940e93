"""Overlays (PS3.3 C.9.2): masks against pydicom, drawing against DCMTK's dcm2pnm."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from numpy.typing import NDArray
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tests.conftest import require_tool
from viewer.imaging.display import FrameRenderer
from viewer.imaging.overlay import draw_overlays, overlay_masks, overlay_planes, scale_mask
from viewer.imaging.render import render_file

RNG = np.random.default_rng(7)


def _dcm2pnm(path: Path, out: Path, *options: str) -> NDArray[np.uint8]:
    tool = require_tool("dcm2pnm")
    subprocess.run([tool, *options, "+on", str(path), str(out)], check=True, capture_output=True)
    with Image.open(out) as img:
        return np.asarray(img).copy()


def _pack_bits(bits: NDArray[np.bool_]) -> bytes:
    packed = np.packbits(bits.ravel().astype(np.uint8), bitorder="little").tobytes()
    return packed + b"\0" * (len(packed) % 2)


def _image(
    tmp_path: Path, frames: NDArray[Any], name: str = "img.dcm", **attrs: Any
) -> tuple[Path, Dataset]:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.Rows, ds.Columns = frames.shape[1:]
    ds.NumberOfFrames = frames.shape[0]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.PixelData = frames.astype("<u2").tobytes()
    path = tmp_path / name
    ds.save_as(path, enforce_file_format=True)
    return path, ds


def _add_overlay(
    ds: Dataset,
    bits: NDArray[np.bool_],
    origin: tuple[int, int] = (1, 1),
    extra: dict[tuple[int, str], Any] | None = None,
    group: int = 0x6000,
) -> None:
    rows, cols = bits.shape[-2:]
    ds.add_new((group, 0x0010), "US", rows)
    ds.add_new((group, 0x0011), "US", cols)
    ds.add_new((group, 0x0040), "CS", "G")
    ds.add_new((group, 0x0050), "SS", list(origin))
    ds.add_new((group, 0x0100), "US", 1)
    ds.add_new((group, 0x0102), "US", 0)
    for (element, vr), value in (extra or {}).items():
        ds.add_new((group, element), vr, value)
    ds.add_new((group, 0x3000), "OW", _pack_bits(bits))


@pytest.mark.parametrize("name", ["MR-SIEMENS-DICOM-WithOverlays.dcm", "examples_overlay.dcm"])
def test_masks_match_pydicom_overlay_array(name: str, shared_data: Path) -> None:
    path = shared_data / "pydicom-data" / name
    if not path.exists():
        path = Path(pydicom.data.get_testdata_file(name))  # type: ignore[arg-type]
    ds = pydicom.dcmread(path)
    (mask,) = overlay_masks(ds, 0)
    expected = ds.overlay_array(0x6000).astype(bool)
    np.testing.assert_array_equal(mask[: expected.shape[0], : expected.shape[1]], expected)
    assert mask.any()


def test_overlays_are_a_layer_that_can_be_left_out(shared_data: Path, tmp_path: Path) -> None:
    path = shared_data / "pydicom-data/MR-SIEMENS-DICOM-WithOverlays.dcm"
    with_overlays = render_file(path).image
    without = render_file(path, overlays=False).image
    np.testing.assert_array_equal(without, _dcm2pnm(path, tmp_path / "a.png", "+Wi", "1", "-O"))
    np.testing.assert_array_equal(with_overlays, _dcm2pnm(path, tmp_path / "b.png", "+Wi", "1"))
    assert (with_overlays != without).any()
    # drawing the masks onto the plain rendering gives the full one
    ds = pydicom.dcmread(path)
    redrawn = draw_overlays(without.copy(), overlay_masks(ds, 0))
    np.testing.assert_array_equal(redrawn, with_overlays)


def test_overlay_with_origin_outside_the_image_matches_dcmtk(tmp_path: Path) -> None:
    frames = RNG.integers(0, 4096, size=(1, 40, 50), dtype=np.uint16)
    path, ds = _image(tmp_path, frames)
    bits = RNG.random((30, 30)) > 0.6
    _add_overlay(ds, bits, origin=(-4, 31))
    ds.save_as(path, enforce_file_format=True)
    (mask,) = overlay_masks(ds, 0)
    assert mask[0:26, 30:50].sum() == bits[5:, :20].sum()
    ours = render_file(path).image
    np.testing.assert_array_equal(ours, _dcm2pnm(path, tmp_path / "o.png", "+Wi", "1"))


def test_multiframe_overlay_with_image_frame_origin_matches_dcmtk(tmp_path: Path) -> None:
    frames = RNG.integers(0, 4096, size=(4, 24, 32), dtype=np.uint16)
    path, ds = _image(tmp_path, frames)
    bits = RNG.random((2, 24, 32)) > 0.5
    _add_overlay(ds, bits, extra={(0x0015, "IS"): 2, (0x0051, "US"): 2})
    ds.save_as(path, enforce_file_format=True)
    assert overlay_masks(ds, 0) == []
    np.testing.assert_array_equal(overlay_masks(ds, 1)[0], bits[0])
    np.testing.assert_array_equal(overlay_masks(ds, 2)[0], bits[1])
    assert overlay_masks(ds, 3) == []
    for frame in range(1, 5):
        ours = render_file(path, frame_index=frame - 1).image
        ref = _dcm2pnm(path, tmp_path / f"f{frame}.png", "+F", str(frame), "+Wi", "1")
        np.testing.assert_array_equal(ours, ref, err_msg=f"frame {frame}")


def test_overlay_in_unused_high_bits_matches_dcmtk(tmp_path: Path) -> None:
    """C.9.2.1.3 (retired, still found): the overlay is bit 14 of the 16-bit Pixel Data words."""
    stored = RNG.integers(0, 4096, size=(1, 30, 40), dtype=np.uint16)
    bits = RNG.random((30, 40)) > 0.7
    words = stored | (bits.astype(np.uint16) << 14)[None]
    path, ds = _image(tmp_path, words)
    ds.add_new((0x6002, 0x0010), "US", 30)
    ds.add_new((0x6002, 0x0011), "US", 40)
    ds.add_new((0x6002, 0x0040), "CS", "G")
    ds.add_new((0x6002, 0x0050), "SS", [1, 1])
    ds.add_new((0x6002, 0x0100), "US", 16)
    ds.add_new((0x6002, 0x0102), "US", 14)
    ds.save_as(path, enforce_file_format=True)
    (plane,) = overlay_planes(ds)
    assert plane.embedded and plane.group == 0x6002
    (mask,) = overlay_masks(ds, 0)
    np.testing.assert_array_equal(mask, bits)
    ours = render_file(path).image
    np.testing.assert_array_equal(ours, _dcm2pnm(path, tmp_path / "e.png", "+Wi", "1"))
    # the overlay bit does not leak into the grey levels
    plain = FrameRenderer(ds, 0, stored[0]).render()
    np.testing.assert_array_equal(render_file(path, overlays=False).image, plain)


def test_overlays_on_monochrome1_stay_white(tmp_path: Path) -> None:
    frames = RNG.integers(0, 4096, size=(1, 20, 20), dtype=np.uint16)
    path, ds = _image(tmp_path, frames, PhotometricInterpretation="MONOCHROME1")
    bits = np.eye(20, dtype=bool)
    _add_overlay(ds, bits)
    ds.save_as(path, enforce_file_format=True)
    ours = render_file(path).image
    assert (ours[bits] == 255).all()
    np.testing.assert_array_equal(ours, _dcm2pnm(path, tmp_path / "m.png", "+Wi", "1"))


def test_files_without_overlays_have_no_masks() -> None:
    ds = pydicom.dcmread(pydicom.data.get_testdata_file("CT_small.dcm"))  # type: ignore[arg-type]
    assert overlay_masks(ds, 0) == []


def test_scaled_masks_keep_thin_lines() -> None:
    mask = np.zeros((400, 600), dtype=bool)
    mask[101, :] = True  # a one-pixel line: plain decimation by 4 would drop it
    small = scale_mask(mask, 100, 150)
    assert small.shape == (100, 150)
    assert small[25].all() and small.sum() == 150
    assert scale_mask(mask, 400, 600) is mask
