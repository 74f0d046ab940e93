"""Robust reading and pixel decoding: every transfer syntax, the hard cases, bad input.

Reading (PS3.10 7.1 file format, PS3.5 7 data set encoding)
    :func:`read_file` maps the file into memory and lets pydicom parse it. Reads from a memory
    map return at most what is in the file, so a length field of 0xFFFFFFF0 in a small file
    never allocates 4 GiB; top-level elements whose declared length runs past the end of the
    file are reported in :attr:`DicomFile.warnings`. Files without a preamble are accepted only
    when they start like a DICOM data set (ACR-NEMA and raw streams); anything else is "not a
    DICOM file". A preamble holding an executable header (Windows PE ``MZ``, ELF, Mach-O) is
    flagged (CVE-2019-11687: a file can be a valid DICOM file and a runnable program at once);
    the file is still read. pydicom parses nested sequences recursively, so a file whose
    sequences nest thousands deep raises RecursionError: we then walk the elements
    without recursion (:mod:`viewer.imaging._decode_scan`), cut out the top-level elements that
    nest deeper than :data:`MAX_SEQUENCE_DEPTH` and read the rest (with a warning). We never
    raise the recursion limit: the C stack, not Python's counter, is what overflows then.

Transfer syntax inference (as DCMTK does)
    When the File Meta has no Transfer Syntax UID, pydicom's guess of the data set encoding
    (implicit/explicit VR, little/big endian, from the first element) gives the native
    syntax; encapsulated Pixel Data is identified by its codestream (JPEG SOF, JPEG-LS SOF55,
    JPEG 2000 SOC/COD, RLE header). The inferred UID is written into ``dataset.file_meta`` and
    a warning records it.

Decoding plugins, in the order tried (measured here with :func:`configure`'s order on files
from ``../shared/data``; ms per frame, same machine)
    - JPEG Baseline: Pillow first (libjpeg-turbo: 0.7 ms on 800x535 where pylibjpeg took 3.3
      and gdcm 4.9), then pylibjpeg, then gdcm.
    - JPEG Extended (12-bit): pylibjpeg first (pylibjpeg-libjpeg decodes 12-bit; this gdcm
      build and Pillow refuse 12-bit precision), then Pillow (8-bit streams), then gdcm.
    - JPEG Lossless (process 14 and SV1): gdcm (1.5-2.2x faster than pylibjpeg), pylibjpeg.
    - JPEG-LS lossless and near-lossless: gdcm (2.6x faster), pylibjpeg, pyjpegls.
    - JPEG 2000 lossless and lossy: gdcm (1.4x faster on lossless; on par on lossy), then
      pylibjpeg (openjpeg), then Pillow.
    - HTJ2K: pylibjpeg (openjpeg >= 2.5) is the only plugin that decodes it.
    - RLE Lossless: pylibjpeg-rle's segment decoder (12-17x faster than pydicom's
      pure-Python decoder, the fallback; gdcm is 10x slower on RLE), on segments whose header
      was checked (:func:`_rle_segments`), assembled here: pylibjpeg-rle's frame decoder
      panics on overlong segments (1.5-2x faster than this assembly where it does not).
    :func:`configure` applies this order to pydicom's own decoders (so ``ds.pixel_array``
    elsewhere uses it too); :func:`decode_frame` walks the same list itself so that one
    plugin's failure falls through to the next with every message kept.

Hard cases (``../shared/data/hard``)
    - 12-bit JPEG Extended streams whose scan header says Ss=Se=0 instead of 0/63 (NEMA WG04
      MR1_JPLY, NM1_JPLY): the two fields carry no information for sequential DCT, so the
      SOS is rewritten before decoding (:mod:`viewer.imaging._jpeg`); DCMTK ignores them too.
    - JPEG frames smaller than Rows x Columns (multiframe.dcm: the right and bottom edge tiles
      of a tiled slide are 55 or 121 pixels wide in their SOF): decoded at their own size and
      placed top-left in a zero-filled frame. pydicom refuses them (shape mismatch) and
      dcmdjpeg writes their samples contiguously from the start of the frame.
    - 1-bit (Bits Allocated 1) RLE frames: one RLE segment holding the frame's bits, packed
      LSB first and padded to a byte (PS3.5 G.2 and 8.1.1); pydicom expects a byte per pixel.
    - Deflated Image Frame Compression (1.2.840.10008.1.2.8.1, PS3.5 A.4.13 / 8.2.15): each
      fragment is a raw deflate stream of the native frame; inflated with an output bound.
    - ACR-NEMA packed 12-bit pixels (Bits Allocated 12, GH340.dcm): two pixels in three
      bytes, LSB first, as DCMTK unpacks them; missing Photometric Interpretation is assumed
      MONOCHROME2 (DCMTK's ``+Ma``).

Parallel decoding
    The decoders hold the GIL, so frames are decoded in processes (spawn or forkserver, never
    fork: the caller may run Qt). :func:`decode_frames_parallel` splits a multi-frame file's
    frames between workers that write into shared memory.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import mmap
import os
import struct
import sys
import tempfile
import threading
import warnings
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from io import BytesIO
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pydicom
from pydicom.datadict import dictionary_has_tag, dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_fragments, get_frame
from pydicom.errors import InvalidDicomError
from pydicom.hooks import hooks as pydicom_hooks
from pydicom.hooks import raw_element_value as _pydicom_raw_element_value
from pydicom.hooks import raw_element_vr as _pydicom_raw_element_vr
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pydicom.values import converters as _pydicom_converters

from viewer.dicom import elements
from viewer.dicom.part10 import executable_header
from viewer.imaging import _decode_scan, _jpeg

__all__ = [
    "MAX_SEQUENCE_DEPTH",
    "PLUGIN_ORDER",
    "DecodeError",
    "DicomFile",
    "configure",
    "decode_all",
    "decode_frame",
    "decode_frames_parallel",
    "frame_count",
    "plugin_status",
    "read_file",
]

#: Deflated Image Frame Compression (PS3.5 A.4.13), newer than pydicom 3.0.
DEFLATED_IMAGE_FRAME = UID("1.2.840.10008.1.2.8.1")

#: Sequences nested deeper than this are cut out on a RecursionError (real files: under 20).
MAX_SEQUENCE_DEPTH = 64

#: Decoding plugins per transfer syntax, fastest first (see the module docstring for why).
PLUGIN_ORDER: dict[str, tuple[str, ...]] = {
    JPEGBaseline8Bit: ("pillow", "pylibjpeg", "gdcm"),
    JPEGExtended12Bit: ("pylibjpeg", "pillow", "gdcm"),
    JPEGLossless: ("gdcm", "pylibjpeg"),
    JPEGLosslessSV1: ("gdcm", "pylibjpeg"),
    JPEGLSLossless: ("gdcm", "pylibjpeg", "pyjpegls"),
    JPEGLSNearLossless: ("gdcm", "pylibjpeg", "pyjpegls"),
    JPEG2000Lossless: ("gdcm", "pylibjpeg", "pillow"),
    JPEG2000: ("gdcm", "pylibjpeg", "pillow"),
    HTJ2KLossless: ("pylibjpeg",),
    HTJ2KLosslessRPCL: ("pylibjpeg",),
    HTJ2K: ("pylibjpeg",),
    RLELossless: ("pylibjpeg", "pydicom"),
}

# Where pydicom keeps each plugin's decode function (pydicom.pixels.decoders.*).
_PLUGIN_MODULES = {
    "gdcm": "pydicom.pixels.decoders.gdcm",
    "pylibjpeg": "pydicom.pixels.decoders.pylibjpeg",
    "pillow": "pydicom.pixels.decoders.pillow",
    "pyjpegls": "pydicom.pixels.decoders.pyjpegls",
    "pydicom": "pydicom.pixels.decoders.rle",
}

# What to install when a transfer syntax has no available plugin.
_INSTALL_HINT = {
    JPEGBaseline8Bit: "Pillow, pylibjpeg-libjpeg or python-gdcm",
    JPEGExtended12Bit: "pylibjpeg-libjpeg",
    JPEGLossless: "python-gdcm or pylibjpeg-libjpeg",
    JPEGLosslessSV1: "python-gdcm or pylibjpeg-libjpeg",
    JPEGLSLossless: "python-gdcm or pylibjpeg-libjpeg",
    JPEGLSNearLossless: "python-gdcm or pylibjpeg-libjpeg",
    JPEG2000Lossless: "python-gdcm or pylibjpeg-openjpeg",
    JPEG2000: "python-gdcm or pylibjpeg-openjpeg",
    HTJ2KLossless: "pylibjpeg-openjpeg>=2.0",
    HTJ2KLosslessRPCL: "pylibjpeg-openjpeg>=2.0",
    HTJ2K: "pylibjpeg-openjpeg>=2.0",
    RLELossless: "pylibjpeg-rle",
}

_JPEG_FAMILY = frozenset({JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless, JPEGLosslessSV1})
_JPEG_LS = frozenset({JPEGLSLossless, JPEGLSNearLossless})
_J2K = frozenset({JPEG2000Lossless, JPEG2000, HTJ2KLossless, HTJ2KLosslessRPCL, HTJ2K})
_NATIVE = frozenset({ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian})
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_PIXEL_TAG = 0x7FE00010
_SOF55 = 0xF7  # T.87: the frame header marker of JPEG-LS
_UNDEFINED = 0xFFFFFFFF


# Groups a data set without a preamble plausibly starts with (command, meta, identifying...).
_FIRST_GROUPS = frozenset({0x0000, 0x0002, 0x0004, 0x0008, 0x0010, 0x0018, 0x0020, 0x0028})
_VRS = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL "
    b"UN UR US UT UV".split()
)


class DecodeError(Exception):
    """A file that cannot be read or a frame that cannot be decoded, and exactly why."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"

    def __reduce__(self) -> tuple[type[DecodeError], tuple[str, str]]:
        return (DecodeError, (self.path, self.reason))


@dataclass
class DicomFile:
    """A parsed file: its data set (file_meta always has a Transfer Syntax UID) and warnings."""

    path: Path
    dataset: Dataset
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Plugin registry


_configured = False


def configure() -> None:
    """Put pydicom's decoding plugins in :data:`PLUGIN_ORDER` (idempotent).

    Called at import of this module, hence in every worker process before it decodes. Uses
    pydicom's public ``remove_plugin`` / ``add_plugin``: a plugin keeps its availability test.
    """
    global _configured
    if _configured:
        return
    # Values that break their VR's rules are read as they are, without a warning: pydicom's
    # warning quotes the value, which may be a patient's name (no patient data in logs).
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    # A US/UL/FD... value whose length is no multiple of its size, or a VR that is no VR
    # (PS3.5 6.2), is kept as bytes instead of raising when someone reads it: on a
    # damaged file the rest stays readable and nothing raises later, far from the reader.
    pydicom.config.convert_wrong_length_to_UN = True
    pydicom_hooks.register_callback("raw_element_vr", _raw_element_vr)
    pydicom_hooks.register_callback("raw_element_value", _raw_element_value)
    _guard_ambiguous_vr()
    _quiet_pydicom()
    for uid, order in PLUGIN_ORDER.items():
        decoder = get_decoder(uid)
        present = [name for name in order if name in _registered_plugins(decoder)]
        for name in present:
            decoder.remove_plugin(name)
        for name in present:
            decoder.add_plugin(name, (_PLUGIN_MODULES[name], "_decode_frame"))
    _configured = True


def _raw_element_vr(raw: RawDataElement, data: dict[str, Any], **kwargs: Any) -> None:
    """pydicom's VR lookup; a VR pydicom cannot convert (damage: "XX", NULs) becomes UN."""
    _pydicom_raw_element_vr(raw, data, **kwargs)
    if data.get("VR") not in _pydicom_converters:
        # OB, not UN: pydicom turns an UN of a known tag back into its dictionary VR
        # (config.replace_un_with_known_vr), which is what cannot be read here.
        data["VR"] = "OB"


def _raw_element_value(raw: RawDataElement, data: dict[str, Any], **kwargs: Any) -> None:
    """pydicom's value conversion; a value it cannot convert is kept as OB bytes.

    pydicom converts an element when it is first read, anywhere in the program: an IS of
    "1e309" (OverflowError), a sequence whose items are no items (TypeError) would raise in
    whoever looked. The failure is logged (see :class:`_PydicomLogFilter`) instead.
    """
    try:
        _pydicom_raw_element_value(raw, data, **kwargs)
    except (RecursionError, MemoryError):
        raise
    except Exception as exc:
        _unreadable(raw, data, _one_line(exc))
        return
    value = data.get("value")
    if data.get("VR") == "UN" and dictionary_has_tag(raw.tag):
        # pydicom gave up on a known tag's value (convert_wrong_length_to_UN): as UN, the
        # DataElement would take the dictionary VR again (an SQ of bytes raises TypeError).
        data["VR"] = "OB"
        return
    if data.get("VR") == "SQ" and (
        isinstance(value, str | bytes | bytearray)
        or not isinstance(value, Iterable)
        or not all(isinstance(item, Dataset) for item in value)
    ):
        _unreadable(raw, data, "its items are no data sets")


def _guard_ambiguous_vr() -> None:
    """A US-or-SS / OB-or-OW element that cannot be resolved is kept as OB, not raised.

    pydicom resolves an implicit VR element whose dictionary VR is ambiguous (PS3.5 A.1: the
    LUT descriptors, Smallest Image Pixel Value, Pixel Data...) on first access, from Pixel
    Representation or Bits Allocated, through ``pydicom.filewriter.correct_ambiguous_vr_element``
    (looked up there at each access). On a damaged file (no Bits Allocated, an odd length) it
    raises AttributeError or BytesLengthException in whoever read the element.
    """
    import pydicom.filewriter as filewriter

    original = getattr(filewriter, "correct_ambiguous_vr_element", None)
    if original is None or getattr(original, "_lightbox_guard", False):
        return

    def guarded(elem: Any, ds: Dataset, is_little_endian: bool, *args: Any, **kw: Any) -> Any:
        try:
            return original(elem, ds, is_little_endian, *args, **kw)
        except (RecursionError, MemoryError):
            raise
        except Exception as exc:
            tag = int(elem.tag)
            logging.getLogger("pydicom").warning(
                "element (%04X,%04X) cannot be read (%s): kept as bytes",
                tag >> 16,
                tag & 0xFFFF,
                _one_line(exc),
            )
            value = elem.value if isinstance(elem.value, bytes | bytearray) else b""
            return pydicom.DataElement(elem.tag, "OB", bytes(value))

    guarded._lightbox_guard = True  # type: ignore[attr-defined]
    filewriter.correct_ambiguous_vr_element = guarded


def _unreadable(raw: RawDataElement, data: dict[str, Any], why: str) -> None:
    tag = f"({raw.tag >> 16:04X},{raw.tag & 0xFFFF:04X})"
    logging.getLogger("pydicom").warning("element %s cannot be read (%s): kept as bytes", tag, why)
    data["VR"] = "OB"  # not UN: see _raw_element_vr
    data["value"] = raw.value


# --------------------------------------------------------------------------------------------
# What the libraries say: pydicom warns (warnings module) and logs (the "pydicom" loggers) about
# damaged files, gdcm writes C++ warnings to stderr. None of it may reach a terminal as is:
# while this module reads or decodes, the thread collects pydicom's messages (they become the
# file's warnings or part of one DecodeError); outside, pydicom's records are shown only at
# debug level (lightbox -v) and its UserWarnings are not printed (they may quote values).

_log = logging.getLogger(__name__)
_capture = threading.local()
_PYDICOM_LOGGERS = (
    "pydicom",
    "pydicom.pixels.decoders.base",
    "pydicom.pixels.utils",
    "pydicom.pixels.encoders.base",
)


class _PydicomLogFilter(logging.Filter):
    """Collect pydicom's records in a capturing thread; elsewhere pass them only at debug."""

    def filter(self, record: logging.LogRecord) -> bool:
        messages: list[str] | None = getattr(_capture, "messages", None)
        if messages is not None:
            if record.levelno >= logging.WARNING:
                messages.append(" ".join(record.getMessage().split()))
            return False
        return logging.getLogger().isEnabledFor(logging.DEBUG)


def _quiet_pydicom() -> None:
    log_filter = _PydicomLogFilter()
    for name in _PYDICOM_LOGGERS:
        logging.getLogger(name).addFilter(log_filter)
    # pydicom's warn_and_log() logs and warns the same message: the log record is kept above.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom(\.|$)")


@contextlib.contextmanager
def library_messages() -> Iterator[list[str]]:
    """Collect what pydicom logs in this thread (nested uses share the outer list)."""
    outer: list[str] | None = getattr(_capture, "messages", None)
    if outer is not None:
        yield outer
        return
    messages: list[str] = []
    _capture.messages = messages
    try:
        yield messages
    finally:
        _capture.messages = None


_stderr_lock = threading.Lock()
_stderr_sink: BinaryIO | None = None


@contextlib.contextmanager
def native_stderr() -> Iterator[list[str]]:
    """Collect what native code writes to file descriptor 2 meanwhile (the lines, at exit).

    gdcm's bundled OpenJPEG prints its errors ("Error with SIZ marker: illegal tile offset")
    straight to stderr, and so may any C/C++ decoder: the descriptor is pointed at a private
    file for the call, under a lock (the decoders hold the GIL, so they run one at a time
    anyway), and what was written becomes part of the DecodeError instead of terminal noise.
    """
    global _stderr_sink
    printed: list[str] = []
    with _stderr_lock:
        try:
            if _stderr_sink is None:
                _stderr_sink = tempfile.TemporaryFile()  # noqa: SIM115 - kept for the process
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):  # no stderr at all (a GUI start)
            yield printed
            return
        sink = _stderr_sink
        os.dup2(sink.fileno(), 2)
        try:
            yield printed
        finally:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read(8192).decode("utf-8", "replace")
            sink.seek(0)
            sink.truncate()
            printed.extend(" ".join(line.split()) for line in text.splitlines() if line.strip())


@atexit.register
def _close_stderr_sink() -> None:
    global _stderr_sink
    if _stderr_sink is not None:
        _stderr_sink.close()
        _stderr_sink = None


_gdcm_quiet = False


def _quiet_gdcm() -> None:
    """gdcm's Trace writes warnings and errors to std::cerr: the exception says it instead."""
    global _gdcm_quiet
    if _gdcm_quiet:
        return
    _gdcm_quiet = True
    try:
        import gdcm
    except ImportError:  # pragma: no cover - python-gdcm is a dependency
        return
    gdcm.Trace.WarningOff()
    gdcm.Trace.ErrorOff()
    gdcm.Trace.DebugOff()


def _registered_plugins(decoder: Any) -> set[str]:
    names = set(decoder.available_plugins)
    names.update(getattr(decoder, "_unavailable", {}).keys())
    return names


def plugin_status() -> dict[str, tuple[str, ...]]:
    """Available plugins per compressed transfer syntax, in the order they are tried.

    An empty tuple means the syntax cannot be decoded here; :func:`decode_frame` then says
    what to install.
    """
    return {uid: _plugins_for(UID(uid)) for uid in PLUGIN_ORDER}


def _plugins_for(ts: UID) -> tuple[str, ...]:
    available = set(get_decoder(ts).available_plugins)
    return tuple(name for name in PLUGIN_ORDER.get(ts, ()) if name in available)


# --------------------------------------------------------------------------------------------
# Reading


def read_file(path: str | os.PathLike[str], *, headers_only: bool = False) -> DicomFile:
    """Read a DICOM file (PS3.10) or a bare data set; raise DecodeError saying why not.

    ``headers_only`` stops before Pixel Data (for scanning folders). Never hangs, never
    allocates more than the file holds, survives sequences nested thousands deep.
    """
    p = Path(path)
    try:
        if not p.is_file():
            raise DecodeError(p, "no such file" if not p.exists() else "not a regular file")
        size = p.stat().st_size
        if size == 0:
            raise DecodeError(p, "not a DICOM file (empty file)")
        with open(p, "rb") as fh:
            try:
                mapped: mmap.mmap | None = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError):
                mapped = None
            try:
                buf: bytes | mmap.mmap = mapped if mapped is not None else fh.read()
                return _read_buffer_quietly(p, buf, headers_only)
            finally:
                if mapped is not None:
                    mapped.close()
    except DecodeError:
        raise
    except OSError as exc:
        raise DecodeError(p, f"cannot read the file: {exc.strerror or exc}") from exc
    except MemoryError as exc:
        raise DecodeError(p, "not enough memory to read the file") from exc


def read_buffer(
    path: str | os.PathLike[str], buf: bytes | mmap.mmap, *, headers_only: bool = False
) -> DicomFile:
    """:func:`read_file` on a file already read or mapped (``path`` names it in messages)."""
    p = Path(path)
    try:
        return _read_buffer_quietly(p, buf, headers_only)
    except MemoryError as exc:
        raise DecodeError(p, "not enough memory to read the file") from exc


def _read_buffer_quietly(path: Path, buf: bytes | mmap.mmap, headers_only: bool) -> DicomFile:
    """:func:`_read_buffer` with pydicom's messages kept as the file's warnings."""
    with library_messages() as messages:
        try:
            result = _read_buffer(path, buf, headers_only)
        except (DecodeError, MemoryError):
            raise
        except RecursionError as exc:
            raise DecodeError(path, "sequences nest too deep to read") from exc
        except Exception as exc:  # pydicom on hostile bytes: a message, never a traceback
            raise DecodeError(path, f"cannot parse the data set: {_one_line(exc)}") from exc
    for message in dict.fromkeys(messages):
        text = message.replace(" in file <no filename>", "")
        if text not in result.warnings:
            result.warnings.append(text)
    return result


def _read_buffer(path: Path, buf: bytes | mmap.mmap, headers_only: bool) -> DicomFile:
    warnings: list[str] = []
    head = bytes(buf[:132])
    has_dicm = head[128:132] == b"DICM"
    if has_dicm:
        preamble = head[:128]
        what = executable_header(preamble)
        if what:
            warnings.append(
                f"the preamble holds {what} (CVE-2019-11687): this file may also be a "
                "program; it was read as DICOM only and must never be executed"
            )
    elif not _looks_like_bare_dataset(head, len(buf)):
        raise DecodeError(path, "not a DICOM file (no DICM prefix and no DICOM data set)")

    src: BinaryIO | mmap.mmap = buf if isinstance(buf, mmap.mmap) else BytesIO(buf)
    try:
        ds = _dcmread(src, headers_only)
    except RecursionError:
        ds = _read_without_deep_sequences(path, buf, headers_only, warnings)
    except MemoryError:
        raise
    except Exception as exc:  # InvalidDicomError, EOFError, zlib.error, struct.error...
        raise DecodeError(path, f"cannot parse the data set: {_one_line(exc)}") from exc

    tags = list(ds.keys())
    if not has_dicm and not any(tag.group not in (0x0000, 0x0002) for tag in tags):
        raise DecodeError(path, "not a DICOM file (no data elements)")
    ds.filename = str(path)
    _drop_meta_sequences(ds, warnings)
    _drop_deep_sequences(ds, warnings)
    _check_lengths(ds, warnings)
    _ensure_transfer_syntax(path, ds, warnings)
    _fill_acr_nema_defaults(ds, warnings)
    return DicomFile(path=path, dataset=ds, warnings=warnings)


def _dcmread(src: Any, headers_only: bool) -> Dataset:
    ds = pydicom.dcmread(src, force=True, stop_before_pixels=headers_only)
    if not isinstance(ds, Dataset):
        raise InvalidDicomError("not a data set")
    return ds


def _looks_like_bare_dataset(head: bytes, size: int) -> bool:
    """True if the bytes start like a data set without preamble (ACR-NEMA, raw PS3.5)."""
    if len(head) < 8:
        return False
    for order in ("<", ">"):
        group, _elem = struct.unpack(order + "HH", head[:4])
        if group not in _FIRST_GROUPS:
            continue
        if head[4:6] in _VRS:
            return True
        (length,) = struct.unpack(order + "I", head[4:8])
        if group == 0 and (_elem != 0 or length != 4):
            continue  # only a command group length (UL, 4 bytes) starts group 0000
        if 0 < length < size:
            return True
    return False


def _read_without_deep_sequences(
    path: Path, buf: bytes | mmap.mmap, headers_only: bool, warnings: list[str]
) -> Dataset:
    """Cut out the top-level elements nesting deeper than MAX_SEQUENCE_DEPTH and re-read."""
    data = memoryview(buf)
    try:
        try:
            start, meta = elements.parse_meta(buf, len(buf))
        except elements.Malformed as exc:
            raise DecodeError(path, f"the File Meta Information is broken ({exc})") from None
        ts_value = meta.get(0x00020010)
        ts = None if ts_value is None else ts_value.rstrip(b"\x00 ").decode("ascii", "replace")
        implicit, little = _encoding_of(ts, data, start)
        deep = _decode_scan.find_deep_elements(
            data, start, implicit=implicit, little=little, limit=MAX_SEQUENCE_DEPTH
        )
        if not deep:
            raise DecodeError(path, "sequences nest too deep to read")
        pieces: list[bytes] = []
        pos = 0
        for element in deep:
            pieces.append(bytes(data[pos : element.start]))
            pos = element.end
            tag = f"({element.tag >> 16:04X},{element.tag & 0xFFFF:04X})"
            if element.depth < 0:
                warnings.append(
                    f"element {tag} and everything after it left out: its sequences are "
                    "malformed (a length or delimiter runs past the end of the file)"
                )
            else:
                warnings.append(
                    f"element {tag} left out: its sequences nest {element.depth} deep "
                    f"(more than {MAX_SEQUENCE_DEPTH})"
                )
        pieces.append(bytes(data[pos:]))
        patched = b"".join(pieces)
    finally:
        data.release()
    try:
        return _dcmread(BytesIO(patched), headers_only)
    except RecursionError as exc:
        raise DecodeError(path, "sequences nest too deep to read") from exc
    except Exception as exc:
        raise DecodeError(path, f"cannot parse the data set: {exc}") from exc


def _encoding_of(ts: str | None, data: memoryview, start: int) -> tuple[bool, bool]:
    """(implicit VR, little endian) of the data set at ``start``."""
    if ts == ImplicitVRLittleEndian:
        return True, True
    if ts == ExplicitVRBigEndian:
        return False, False
    if ts is not None:
        return False, True
    head = bytes(data[start : start + 8])
    explicit = head[4:6] in _VRS
    group_le = struct.unpack_from("<H", head, 0)[0] if len(head) >= 2 else 0
    little = group_le in _FIRST_GROUPS or group_le < 0x0100
    return not explicit, little


def _drop_meta_sequences(ds: Dataset, warnings: list[str]) -> None:
    """Drop sequences from the File Meta: PS3.10 7.1 defines none, and pydicom would parse a
    deeply nested one recursively when the meta is read (RecursionError, found by make fuzz in
    a damaged Media Storage SOP Class UID)."""
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        return
    for tag in list(meta.keys()):
        raw = meta.get_item(tag)
        vr = raw.VR if isinstance(raw, RawDataElement) else getattr(raw, "VR", "")
        if vr == "SQ":
            del meta[tag]
            warnings.append(
                f"File Meta element ({tag.group:04X},{tag.element:04X}) left out: "
                "a sequence, which the File Meta cannot hold"
            )


def _drop_deep_sequences(ds: Dataset, warnings: list[str]) -> None:
    """Drop top-level defined-length sequences that nest deeper than MAX_SEQUENCE_DEPTH.

    pydicom keeps a defined-length sequence as raw bytes and parses one level per access, so
    a 20,000-deep one reads fine and raises RecursionError later, in whoever walks it
    (printing, copying, JSON). Walk their bytes here without recursion. An UN element of a tag
    the dictionary knows as SQ is one too: pydicom reads it as a sequence on first access
    (``replace_un_with_known_vr``; a 4 KB one nested 250 deep, found by make fuzz); its items
    may be in either VR encoding, so both are walked.
    """
    for tag in list(ds.keys()):
        raw = ds.get_item(tag)
        if not isinstance(raw, RawDataElement) or raw.value is None:
            continue
        if raw.VR == "SQ":
            encodings = [bool(raw.is_implicit_VR)]
        elif raw.VR == "UN" and dictionary_has_tag(tag) and dictionary_VR(tag) == "SQ":
            encodings = [True, False]
        else:
            continue
        if raw.length == _UNDEFINED or len(raw.value) < 8 * MAX_SEQUENCE_DEPTH:
            continue  # too short to nest that deep (each level takes 16+ bytes)
        order = "<" if raw.is_little_endian else ">"
        tag_bytes = struct.pack(order + "HH", tag.group, tag.element)
        length = struct.pack(order + "I", len(raw.value))
        found = []
        for implicit in encodings:
            header = tag_bytes + (length if implicit else b"SQ\x00\x00" + length)
            found.append(
                _decode_scan.find_deep_elements(
                    header + bytes(raw.value),
                    0,
                    implicit=implicit,
                    little=bool(raw.is_little_endian),
                    limit=MAX_SEQUENCE_DEPTH,
                )
            )
        # An SQ: too deep or malformed. An UN: too deep in one encoding, or malformed in both
        # (pydicom reads on through item lengths that run past the end, one level deeper each)
        deep = next((d for d in found if d and d[0].depth > 0), None)
        if deep is None and all(found):
            deep = found[0]
        if deep:
            del ds[tag]
            depth = deep[0].depth
            how = (
                f"nest {depth} deep (more than {MAX_SEQUENCE_DEPTH})"
                if depth > 0
                else ("are malformed")
            )
            warnings.append(
                f"element ({tag.group:04X},{tag.element:04X}) left out: its sequences {how}"
            )


def _check_lengths(ds: Dataset, warnings: list[str]) -> None:
    """Warn about top-level elements whose declared length runs past the end of the file."""
    for tag in list(ds.keys()):
        raw = ds.get_item(tag)
        if not isinstance(raw, RawDataElement) or raw.value is None:
            continue
        if raw.length != _UNDEFINED and len(raw.value) < raw.length:
            warnings.append(
                f"element ({tag.group:04X},{tag.element:04X}) declares {raw.length} bytes but "
                f"the file holds only {len(raw.value)}: the file is truncated or corrupt"
            )


def _ensure_transfer_syntax(path: Path, ds: Dataset, warnings: list[str]) -> None:
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = FileMetaDataset()
        ds.file_meta = meta
    if meta.get("TransferSyntaxUID"):
        return
    implicit, little = ds.original_encoding
    if implicit is None:
        implicit, little = True, True
    ts: str
    how = "the data set encoding"
    encapsulated = _encapsulated_first_fragment(ds)
    if encapsulated is not None:
        sniffed = _decode_scan.sniff_encapsulated_syntax(encapsulated)
        if sniffed is None:
            ts = ExplicitVRLittleEndian
            how = "the data set encoding (its compressed Pixel Data is of an unknown kind)"
        else:
            ts = sniffed
            how = "the compressed Pixel Data's codestream"
    elif implicit:
        ts = ImplicitVRLittleEndian
    elif little:
        ts = ExplicitVRLittleEndian
    else:
        ts = ExplicitVRBigEndian
    meta.TransferSyntaxUID = UID(ts)
    warnings.append(f"the File Meta has no Transfer Syntax UID: inferred {UID(ts).name} from {how}")


def _encapsulated_first_fragment(ds: Dataset) -> bytes | None:
    if _PIXEL_TAG not in ds:
        return None
    raw = ds.get_item(_PIXEL_TAG)
    length = raw.length if isinstance(raw, RawDataElement) else None
    value = raw.value if isinstance(raw, RawDataElement) else ds.PixelData
    if length != _UNDEFINED or not isinstance(value, bytes | bytearray):
        return None
    try:
        fragments = generate_fragments(value, endianness="<")
        next(fragments)  # the Basic Offset Table item
        return bytes(next(fragments)[:4096])
    except (StopIteration, ValueError):
        return None


def _fill_acr_nema_defaults(ds: Dataset, warnings: list[str]) -> None:
    """ACR-NEMA images may lack Samples per Pixel and Photometric Interpretation."""
    if not any(k in ds for k in _PIXEL_KEYWORDS) and "Rows" not in ds:
        return
    if "SamplesPerPixel" not in ds:
        ds.SamplesPerPixel = 1
    if "PhotometricInterpretation" not in ds and ds.SamplesPerPixel == 1:
        ds.PhotometricInterpretation = "MONOCHROME2"
        warnings.append("no Photometric Interpretation: assumed MONOCHROME2 (ACR-NEMA)")


# --------------------------------------------------------------------------------------------
# Decoding


def frame_count(ds: Dataset) -> int:
    """Number of Frames (PS3.3 C.7.6.6), 1 when absent, empty or nonsensical."""
    try:
        value = ds.get("NumberOfFrames", 1)
        count = int(value) if value not in (None, "") else 1
    except (TypeError, ValueError):
        count = 1
    return max(count, 1)


def _path_of(ds: Dataset) -> str:
    name = getattr(ds, "filename", None)
    return str(name) if isinstance(name, str | os.PathLike) and str(name) else "<data set>"


#: Exceptions that are no decoding failure and must go on up.
_NOT_FAILURES = (KeyboardInterrupt, SystemExit, GeneratorExit)


def decode_frame(ds: Dataset, index: int) -> np.ndarray:
    """Decode frame ``index`` (from 0) of ``ds`` without decoding the other frames.

    Monochrome and PALETTE COLOR give a 2-D array of stored values; colour gives (rows,
    cols, 3) RGB (YBR_FULL / YBR_FULL_422 converted per PS3.3 C.7.6.3.1.2; YBR_ICT / YBR_RCT
    are undone by the JPEG 2000 decoder). Arrays are in native byte order. Raises DecodeError,
    and nothing else: a panic in a native decoder (pyo3's PanicException is a BaseException)
    and anything pydicom raises on a damaged data set become one, and what the libraries log
    meanwhile is collected instead of printed.
    """
    path = _path_of(ds)
    with library_messages():
        try:
            return _decode_frame(ds, index, path)
        except DecodeError:
            raise
        except MemoryError as exc:
            raise DecodeError(path, f"frame {index + 1}: not enough memory to decode") from exc
        except _NOT_FAILURES:
            raise
        except BaseException as exc:
            raise DecodeError(
                path, f"frame {index + 1}: cannot decode: {type(exc).__name__}: {_one_line(exc)}"
            ) from exc


def _decode_frame(ds: Dataset, index: int, path: str) -> np.ndarray:
    count = frame_count(ds)
    if not 0 <= index < count:
        raise DecodeError(path, f"frame {index + 1} does not exist (the file has {count})")
    keyword = next((k for k in _PIXEL_KEYWORDS if k in ds), None)
    if keyword is None:
        raise DecodeError(path, "no Pixel Data (the file holds no image)")
    meta = getattr(ds, "file_meta", None)
    ts_value = meta.get("TransferSyntaxUID") if meta is not None else None
    if not ts_value:
        raise DecodeError(path, "no Transfer Syntax UID (read the file with read_file)")
    ts = UID(str(ts_value))
    for required in ("Rows", "Columns", "BitsAllocated"):
        value = ds.get(required)
        if not isinstance(value, int) or value <= 0:
            raise DecodeError(path, f"{required} is missing or zero: no image geometry")
    if ds.Rows * ds.Columns * int(ds.get("SamplesPerPixel", 1) or 1) > 1 << 31:
        raise DecodeError(path, f"absurd image size {ds.Rows}x{ds.Columns}")
    try:
        if ts == DEFLATED_IMAGE_FRAME:
            arr = _decode_deflated_frame(ds, index, count)
        elif ts in _NATIVE or (
            ts.is_transfer_syntax and not ts.is_encapsulated and keyword != "PixelData"
        ):
            arr = _decode_native_frame(path, ds, ts, index, count, keyword)
        elif ts.is_transfer_syntax and ts.is_encapsulated and ts in PLUGIN_ORDER:
            arr = _decode_encapsulated_frame(path, ds, ts, index, count)
        elif ts.is_transfer_syntax and not ts.is_encapsulated:
            arr = _decode_native_frame(path, ds, ts, index, count, keyword)
        else:
            name = ts.name if ts.name != ts else "unknown"
            raise DecodeError(path, f"unsupported transfer syntax {ts} ({name})")
    except DecodeError:
        raise
    except MemoryError as exc:
        raise DecodeError(path, f"frame {index + 1}: not enough memory to decode") from exc
    except _NOT_FAILURES:
        raise
    except BaseException as exc:  # a native decoder's panic too
        raise DecodeError(
            path, f"frame {index + 1}: cannot decode {ts.name}: {_one_line(exc)}"
        ) from exc
    if arr.dtype.byteorder not in ("=", "|"):
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _frame_bytes(ds: Dataset) -> int:
    """Bytes of one native frame (PS3.5 8.1.1); Bits Allocated 1 frames are not padded."""
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    return math.ceil(int(ds.Rows) * int(ds.Columns) * samples * int(ds.BitsAllocated) / 8)


def _decode_native_frame(
    path: str, ds: Dataset, ts: UID, index: int, count: int, keyword: str
) -> np.ndarray:
    data = ds[keyword].value
    if data is None:
        raise DecodeError(path, f"{keyword} is empty")
    if ds.BitsAllocated == 12 and keyword == "PixelData":
        return _unpack_acr_nema_12(path, ds, bytes(data), index, count)
    needed = _frame_bytes(ds) * count
    if ds.BitsAllocated == 1:
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        needed = math.ceil(ds.Rows * ds.Columns * samples * count / 8)
    if len(data) < needed:
        raise DecodeError(
            path, f"{keyword} is truncated: {len(data)} bytes where {count} frame(s) need {needed}"
        )
    arr, _ = get_decoder(ts).as_array(ds, index=index)
    return np.asarray(arr)


def _unpack_acr_nema_12(path: str, ds: Dataset, data: bytes, index: int, count: int) -> np.ndarray:
    """ACR-NEMA 300 packed 12-bit pixels: pairs in three bytes, least significant bits first."""
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        raise DecodeError(path, "packed 12-bit pixels with more than one sample are unsupported")
    pixels = ds.Rows * ds.Columns
    first = pixels * index
    needed = math.ceil((first + pixels) * 3 / 2)
    if len(data) < needed:
        raise DecodeError(
            path,
            f"PixelData is truncated: {len(data)} bytes where packed 12-bit frame "
            f"{index + 1} ends at byte {needed}",
        )
    start_byte = first // 2 * 3  # the triple holding the frame's first pixel
    chunk = data[start_byte : (first + pixels + 1) // 2 * 3]
    chunk += bytes(-len(chunk) % 3)
    triples = np.frombuffer(chunk, np.uint8).reshape(-1, 3).astype(np.uint16)
    lo = triples[:, 0] | ((triples[:, 1] & 0x0F) << 8)
    hi = (triples[:, 1] >> 4) | (triples[:, 2] << 4)
    odd = first % 2
    values = np.stack([lo, hi], axis=1).reshape(-1)[odd : odd + pixels]
    stored = int(ds.get("BitsStored", 12) or 12)
    if int(ds.get("PixelRepresentation", 0) or 0) == 1:
        shift = 16 - stored
        signed = (values << shift).astype(np.int16) >> shift
        return signed.reshape(ds.Rows, ds.Columns)
    if stored < 12:
        values &= (1 << stored) - 1
    return values.reshape(ds.Rows, ds.Columns)


def _encoded_frame(ds: Dataset, index: int, count: int) -> bytes:
    offsets: tuple[bytes, bytes] | None = None
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        offsets = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
    return get_frame(ds.PixelData, index, number_of_frames=count, extended_offsets=offsets)


_IMAGE_PIXEL_KEYWORDS = (
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
)


def _frame_dataset(ds: Dataset, ts: UID, pixel_data: bytes, rows: int, cols: int) -> Dataset:
    """A one-frame data set with ``ds``'s Image Pixel module (PS3.3 C.7.6.3) and new data."""
    one = Dataset()
    one.file_meta = FileMetaDataset()
    one.file_meta.TransferSyntaxUID = ts
    one.Rows = rows
    one.Columns = cols
    for keyword in _IMAGE_PIXEL_KEYWORDS:
        if keyword in ds:
            setattr(one, keyword, ds[keyword].value)
    if "BitsStored" not in one:
        one.BitsStored = ds.BitsAllocated
    if "PixelRepresentation" not in one:
        one.PixelRepresentation = 0
    if "SamplesPerPixel" not in one:
        one.SamplesPerPixel = 1
    if "PhotometricInterpretation" not in one:
        one.PhotometricInterpretation = "MONOCHROME2" if one.SamplesPerPixel == 1 else "RGB"
    one.NumberOfFrames = 1
    one.PixelData = pixel_data
    one["PixelData"].VR = "OB" if ts.is_encapsulated or one.BitsAllocated <= 8 else "OW"
    return one


def _decode_encapsulated_frame(
    path: str, ds: Dataset, ts: UID, index: int, count: int
) -> np.ndarray:
    frame = _encoded_frame(ds, index, count)
    rows, cols = ds.Rows, ds.Columns
    if ts == RLELossless:
        if ds.BitsAllocated == 1:
            return _decode_rle_1bit(path, ds, frame, index)
        return _decode_rle_frame(path, ds, frame, index)
    # Refuse streams whose headers do not parse before any plugin sees them: python-gdcm
    # aborts the whole process on some garbage (seen here with a corrupt JPEG 2000 stream).
    coded: tuple[int, int] | None = None
    avoid_gdcm = ""
    if ts in _JPEG_FAMILY or ts in _JPEG_LS:
        header = _jpeg.parse_header(frame)
        if header is None:
            raise DecodeError(
                path,
                f"frame {index + 1}: corrupt {ts.name} data (no valid JPEG frame and scan headers)",
            )
        if (header.sof_marker == _SOF55) != (ts in _JPEG_LS):
            # gdcm terminated the process on a JPEG-LS stream labelled JPEG Lossless
            kind = "JPEG-LS" if header.sof_marker == _SOF55 else "JPEG"
            raise DecodeError(
                path, f"frame {index + 1}: a {kind} codestream where {ts.name} was declared"
            )
        if header.rows == 0 or header.columns == 0:
            # T.81 B.2.2: 0 lines means "given by a DNL marker after the first scan"; IJG (and
            # so DCMTK) refuses it, and libjpeg sized its buffers past 3 GiB for a 70 KB file
            # (found by make fuzz)
            raise DecodeError(
                path,
                f"frame {index + 1}: the {ts.name} frame header declares "
                f"{header.rows}x{header.columns} samples (a DNL marker is not supported)",
            )
        if int(ds.BitsAllocated) not in (8, 16):
            raise DecodeError(
                path,
                f"frame {index + 1}: {ts.name} with Bits Allocated {ds.BitsAllocated} "
                "(PS3.5 8.2.1 and 8.2.3 allow 8 or 16)",
            )
        _check_codestream(path, ds, ts, index, header.components, header.precision)
        if int(ds.BitsAllocated) == 8 and header.precision > int(ds.get("BitsStored") or 8):
            # python-gdcm terminates the process (gdcmImageCodec.cxx: "PF.GetBitsAllocated()
            # == PF.GetBitsStored()") on an 8-bit-allocated frame whose codestream is more
            # precise than Bits Stored (found by make fuzz); the other decoders say why.
            avoid_gdcm = (
                f"gdcm: not tried ({header.precision}-bit codestream, "
                f"Bits Stored {ds.get('BitsStored')})"
            )
        if ts in _JPEG_LS and (header.rows, header.columns) != (ds.Rows, ds.Columns):
            raise DecodeError(
                path,
                f"frame {index + 1}: the {ts.name} codestream is {header.rows}x{header.columns}, "
                f"the data set says {ds.Rows}x{ds.Columns}",
            )
        if ts in _JPEG_FAMILY:
            if not header.scan_header_conformant:
                frame = _jpeg.fix_scan_header(frame, header)
            rows, cols = header.rows, header.columns
    elif ts in _J2K:
        size = _jpeg.parse_j2k_size(frame)
        if size is None:
            raise DecodeError(
                path, f"frame {index + 1}: corrupt {ts.name} data (no valid SOC/SIZ header)"
            )
        _check_codestream(path, ds, ts, index, size[2], None)
        coded = size[0], size[1]  # what the decoder allocates, whatever the data set says
        _check_j2k_main_header(path, ts, index, frame)
    if ts == JPEGBaseline8Bit and _is_ycbcr_colour(ds):
        fast = _pillow_rgb(frame)
        if fast is not None:
            return (
                _place_tile(fast, ds.Rows, ds.Columns)
                if fast.shape[:2]
                != (
                    ds.Rows,
                    ds.Columns,
                )
                else fast
            )
    plugins = _plugins_for(ts)
    if not plugins:
        raise DecodeError(
            path, f"no decoder for {ts.name} is installed (install {_INSTALL_HINT.get(ts, '?')})"
        )
    failures: list[str] = []
    if avoid_gdcm and "gdcm" in plugins:
        plugins = tuple(name for name in plugins if name != "gdcm")
        failures.append(avoid_gdcm)
    _check_expansion(path, ds, ts, index, len(frame), *(coded or (rows, cols)))
    one = _frame_dataset(ds, ts, encapsulate([frame]), rows, cols)
    decoder = get_decoder(ts)
    for name in plugins:
        if name == "gdcm":
            _quiet_gdcm()
        failure: BaseException | None = None
        with native_stderr() as printed:
            try:
                arr, _ = decoder.as_array(one, index=0, decoding_plugin=name)
            except _NOT_FAILURES:
                raise
            except BaseException as exc:  # a native decoder's panic too: try the next one
                failure = exc
        if failure is None:
            if printed:
                _log.debug("%s: frame %d: %s said: %s", path, index + 1, name, printed)
            break
        said = f" ({'; '.join(printed[:3])})" if printed else ""
        failures.append(f"{name}: {_one_line(failure)}{said}")
    else:
        raise DecodeError(
            path, f"frame {index + 1}: the {ts.name} data cannot be decoded ({'; '.join(failures)})"
        )
    arr = np.asarray(arr)
    if (rows, cols) != (ds.Rows, ds.Columns):
        arr = _place_tile(arr, ds.Rows, ds.Columns)
    return arr


#: A compressed frame may always decode to this many bytes...
EXPANSION_FREE_BYTES = 64 << 20
#: ...and beyond that to at most this many times its compressed size (lossless codecs reach
#: a few hundred on blank images; a tiny file declaring 40000x40000 would allocate 3 GiB).
MAX_EXPANSION = 1000


def _check_expansion(
    path: str, ds: Dataset, ts: UID, index: int, size: int, rows: int, cols: int
) -> None:
    """Memory is bounded by the data we hold, not by the sizes a header declares."""
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    width = max(1, math.ceil(int(ds.BitsAllocated) / 8))
    # the decoder's frame, and the data set's frame the tile is placed in
    needed = (rows * cols + ds.Rows * ds.Columns) * samples * max(width, 2)
    if needed > EXPANSION_FREE_BYTES and needed > MAX_EXPANSION * size:
        raise DecodeError(
            path,
            f"frame {index + 1}: {size} bytes of {ts.name} data declare a {rows}x{cols} image "
            f"({needed >> 20} MiB to decode): refused as corrupt",
        )


# PS3.3 C.7.6.3.1.2: the number of samples each Photometric Interpretation has.
_PHOTOMETRIC_SAMPLES = {
    "MONOCHROME1": 1,
    "MONOCHROME2": 1,
    "PALETTE COLOR": 1,
    "RGB": 3,
    "YBR_FULL": 3,
    "YBR_FULL_422": 3,
    "YBR_PARTIAL_420": 3,
    "YBR_ICT": 3,
    "YBR_RCT": 3,
}


def _check_j2k_main_header(path: str, ts: UID, index: int, frame: bytes) -> None:
    """OpenJPEG must read the whole main header (T.800 A.4-A.6) before gdcm sees the stream.

    python-gdcm terminates the process (an uncaught ``std::string`` thrown from its OpenJPEG
    glue) on main headers OpenJPEG refuses; pylibjpeg-openjpeg's ``get_parameters`` reads the
    same header safely in about 10 microseconds.
    """
    try:
        from openjpeg.utils import get_parameters
    except ImportError:  # pragma: no cover - pylibjpeg-openjpeg is a dependency
        return
    failure: Exception | None = None
    with native_stderr() as printed:
        try:
            get_parameters(frame)
        except Exception as exc:
            failure = exc
    if failure is not None:
        said = f" ({'; '.join(printed[:3])})" if printed else ""
        raise DecodeError(
            path, f"frame {index + 1}: corrupt {ts.name} data: {_one_line(failure)}{said}"
        )


def _check_codestream(
    path: str, ds: Dataset, ts: UID, index: int, components: int, precision: int | None
) -> None:
    """The codestream's header must agree with the Image Pixel module before a decoder runs.

    python-gdcm terminates the process (an uncaught C++ exception, "len <= outbv->GetLength()")
    when a JPEG-LS stream decodes to more than the data set's frame: samples per pixel and
    precision are checked against Samples per Pixel and Bits Allocated (PS3.5 8.2.1-8.2.4,
    8.2.3: the codestream's values shall match).
    """
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip()
    needs = _PHOTOMETRIC_SAMPLES.get(photometric)
    if needs is not None and needs != samples:
        # gdcm's JPEG 2000 codec asserts that they agree (terminate: "image->numcomps ==
        # GetPhotometricInterpretation().GetSamplesPerPixel()"); PS3.3 C.7.6.3.1.2.
        raise DecodeError(
            path,
            f"frame {index + 1}: Photometric Interpretation {photometric} needs {needs} "
            f"sample(s) per pixel, Samples per Pixel is {samples}",
        )
    if components != samples:
        raise DecodeError(
            path,
            f"frame {index + 1}: the {ts.name} codestream has {components} component(s), "
            f"Samples per Pixel is {samples}",
        )
    if precision is not None and precision > int(ds.BitsAllocated):
        raise DecodeError(
            path,
            f"frame {index + 1}: the {ts.name} codestream has {precision}-bit samples, "
            f"Bits Allocated is {ds.BitsAllocated}",
        )


def _is_ycbcr_colour(ds: Dataset) -> bool:
    photometric = str(ds.get("PhotometricInterpretation", ""))
    return int(ds.get("SamplesPerPixel", 1) or 1) == 3 and photometric in (
        "YBR_FULL_422",
        "YBR_FULL",
    )


def _pillow_rgb(frame: bytes) -> np.ndarray | None:
    """Baseline YCbCr JPEG to RGB inside libjpeg-turbo, as IJG does for DCMTK (T.81 + JFIF).

    pydicom's Pillow plugin asks for YCbCr and converts in float numpy afterwards: 3.4 of
    4.7 ms per 640x480 frame here. Returns None (use pydicom) for anything unusual: an Adobe
    APP14 transform flag, RGB component IDs, or a Pillow failure.
    """
    try:
        from PIL import Image

        with Image.open(BytesIO(frame), formats=("JPEG",)) as image:
            if "adobe_transform" in image.info or image.mode != "RGB":
                return None
            header = _jpeg.parse_header(frame)
            if header is None or header.components != 3:
                return None
            return np.asarray(image.convert("RGB"))
    except Exception:
        return None


def _place_tile(tile: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Put a frame coded smaller (or larger) than Rows x Columns at the top left of a frame."""
    out = np.zeros((rows, cols, *tile.shape[2:]), dtype=tile.dtype)
    r, c = min(rows, tile.shape[0]), min(cols, tile.shape[1])
    out[:r, :c] = tile[:r, :c]
    return out


def _decode_rle_1bit(path: str, ds: Dataset, frame: bytes, index: int) -> np.ndarray:
    """RLE (PS3.5 G) of Bits Allocated 1 data: one segment of LSB-first packed bits."""
    if len(frame) < 64:
        raise DecodeError(path, f"frame {index + 1}: RLE header is truncated")
    segments, first = struct.unpack_from("<II", frame, 0)
    if segments != 1 or int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        raise DecodeError(
            path, f"frame {index + 1}: 1-bit RLE with {segments} segments is unsupported"
        )
    if not 64 <= first < len(frame):
        raise DecodeError(path, f"frame {index + 1}: RLE segment offset {first} is invalid")
    packed = _rle_segment(frame[first:])
    needed = math.ceil(ds.Rows * ds.Columns / 8)
    if len(packed) < needed:
        raise DecodeError(
            path, f"frame {index + 1}: RLE segment holds {len(packed)} bytes, needs {needed}"
        )
    one = _frame_dataset(ds, ExplicitVRLittleEndian, bytes(packed[:needed]), ds.Rows, ds.Columns)
    arr, _ = get_decoder(ExplicitVRLittleEndian).as_array(one, index=0)
    return np.asarray(arr)


def _rle_segments(path: str, ds: Dataset, frame: bytes, index: int) -> list[bytes]:
    """The segments of an RLE frame whose header was checked against the image (PS3.5 G).

    G.3.1 / G.5: a 64-byte header of 16 little-endian words, the number of segments (1 to
    15; Samples per Pixel x Bits Allocated / 8 of them, G.2) and their offsets, the first 64,
    each after the previous one and inside the frame. A segment must hold at least the two
    bytes per 128 pixels of the most compact replicate runs (G.3.1).
    """
    where = f"frame {index + 1}"
    if len(frame) < 64:
        raise DecodeError(path, f"{where}: RLE header is truncated ({len(frame)} bytes)")
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    bits = int(ds.BitsAllocated)
    if bits % 8:
        raise DecodeError(path, f"{where}: RLE with Bits Allocated {bits} is unsupported")
    words = struct.unpack_from("<16I", frame, 0)
    count = words[0]
    expected = samples * bits // 8
    if not 1 <= count <= 15:
        raise DecodeError(path, f"{where}: RLE header declares {count} segments (1 to 15)")
    if count != expected:
        raise DecodeError(
            path,
            f"{where}: RLE header declares {count} segments, the image needs {expected} "
            f"({samples} sample(s) of {bits} bits)",
        )
    offsets = [*words[1 : 1 + count], len(frame)]
    if offsets[0] != 64:
        raise DecodeError(path, f"{where}: RLE segment 1 starts at {offsets[0]}, not 64")
    pixels = int(ds.Rows) * int(ds.Columns)
    least = 2 * math.ceil(pixels / 128)
    segments: list[bytes] = []
    for number in range(count):
        start, end = offsets[number], offsets[number + 1]
        if start >= len(frame):
            raise DecodeError(
                path,
                f"{where}: RLE segment {number + 1} offset {start} is past the end of the "
                f"{len(frame)}-byte frame",
            )
        if end <= start:
            raise DecodeError(
                path,
                f"{where}: RLE segment {number + 2} offset {end} is not after segment "
                f"{number + 1}'s {start}",
            )
        if end - start < least:
            raise DecodeError(
                path,
                f"{where}: RLE segment {number + 1} holds {end - start} bytes, too few for "
                f"{ds.Rows}x{ds.Columns} pixels",
            )
        segments.append(frame[start:end])
    return segments


def _decode_rle_frame(path: str, ds: Dataset, frame: bytes, index: int) -> np.ndarray:
    """RLE Lossless (PS3.5 G) of 8/16/32/64-bit samples, without pylibjpeg-rle's frame decoder.

    pylibjpeg-rle's ``decode_frame`` panics (Rust "index out of bounds": a BaseException, and
    a message on stderr that nothing can catch) when a multi-byte sample's segment decodes to
    more bytes than the frame has pixels. Its segment decoder is safe: each checked segment is
    decoded alone, its length checked, and the bytes placed as little-endian native data
    (segments are most significant byte first, G.2) that pydicom's native decoder turns into
    the array (signedness, YBR to RGB) as for any uncompressed frame.
    """
    segments = _rle_segments(path, ds, frame, index)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    width = int(ds.BitsAllocated) // 8
    pixels = int(ds.Rows) * int(ds.Columns)
    planes = np.empty((samples, pixels, width), dtype=np.uint8)
    for number, segment in enumerate(segments):
        decoded = _rle_segment(segment)
        if len(decoded) < pixels:
            raise DecodeError(
                path,
                f"frame {index + 1}: RLE segment {number + 1} decodes to {len(decoded)} bytes, "
                f"{ds.Rows}x{ds.Columns} pixels need {pixels}",
            )
        sample, byte = divmod(number, width)
        planes[sample, :, width - 1 - byte] = np.frombuffer(decoded, np.uint8, count=pixels)
    one = _frame_dataset(ds, ExplicitVRLittleEndian, planes.tobytes(), ds.Rows, ds.Columns)
    if samples > 1:
        one.PlanarConfiguration = 1
    arr, _ = get_decoder(ExplicitVRLittleEndian).as_array(one, index=0)
    return np.asarray(arr)


def _rle_segment(data: bytes) -> bytes:
    try:
        from rle.rle import decode_segment  # pylibjpeg-rle, compiled

        return bytes(decode_segment(data))
    except ImportError:  # pragma: no cover - pylibjpeg-rle is a dependency
        from pydicom.pixels.decoders.rle import _rle_decode_segment

        return bytes(_rle_decode_segment(data))


def _decode_deflated_frame(ds: Dataset, index: int, count: int) -> np.ndarray:
    """Deflated Image Frame Compression: each frame is raw deflate of the native frame."""
    frame = _encoded_frame(ds, index, count)
    needed = _frame_bytes(ds)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    native = inflater.decompress(frame, needed)  # bounded: a deflate bomb stops here
    if len(native) < needed:
        raise DecodeError(
            _path_of(ds),
            f"frame {index + 1}: inflates to {len(native)} bytes, the frame needs {needed}",
        )
    one = _frame_dataset(ds, ExplicitVRLittleEndian, native, ds.Rows, ds.Columns)
    arr, _ = get_decoder(ExplicitVRLittleEndian).as_array(one, index=0)
    return np.asarray(arr)


def decode_all(ds: Dataset) -> np.ndarray:
    """Every frame: ``(frames, rows, cols[, 3])``. Raises DecodeError."""
    count = frame_count(ds)
    first = decode_frame(ds, 0)
    out = np.empty((count, *first.shape), dtype=first.dtype)
    out[0] = first
    for index in range(1, count):
        out[index] = decode_frame(ds, index)
    return out


# --------------------------------------------------------------------------------------------
# Parallel decoding of one multi-frame file


def _decode_chunk(
    path: str, shm_name: str, shape: tuple[int, ...], dtype: str, frames: list[int]
) -> None:
    """Worker: decode ``frames`` of ``path`` into the shared array (runs in a child process)."""
    shm = shared_memory.SharedMemory(name=shm_name)
    try:
        out: np.ndarray = np.ndarray(shape, dtype=np.dtype(dtype), buffer=shm.buf)
        ds = read_file(path).dataset
        for index in frames:
            out[index] = decode_frame(ds, index)
        del out
    finally:
        shm.close()


def _split(items: list[int], parts: int) -> Iterable[list[int]]:
    size = math.ceil(len(items) / parts)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def decode_frames_parallel(path: str | os.PathLike[str], workers: int = 2) -> np.ndarray:
    """Decode every frame of one file using ``workers`` processes; ``(frames, rows, cols[, 3])``.

    The caller decodes the first frame (to learn the shape) and then a share of the rest while
    the application's process pool (:mod:`viewer.imaging.pool`) decodes ``workers - 1`` shares
    straight into shared memory, so no frame is pickled. With ``workers <= 1`` or a handful of
    frames it is :func:`decode_all`. Raises DecodeError.
    """
    ds = read_file(path).dataset
    count = frame_count(ds)
    if workers <= 1 or count < 4:
        return decode_all(ds)
    first = decode_frame(ds, 0)
    shape = (count, *first.shape)
    nbytes = int(np.prod(shape)) * first.dtype.itemsize
    shm = shared_memory.SharedMemory(create=True, size=max(nbytes, 1))
    try:
        out: np.ndarray = np.ndarray(shape, dtype=first.dtype, buffer=shm.buf)
        out[0] = first
        chunks = list(_split(list(range(1, count)), workers))
        from viewer.imaging.pool import get_pool  # the pool's workers import this module

        pool = get_pool()
        futures = [
            pool.submit(_decode_chunk, str(path), shm.name, shape, first.dtype.str, chunk)
            for chunk in chunks[1:]
        ]
        for index in chunks[0]:
            out[index] = decode_frame(ds, index)
        for future in futures:
            future.result()
        result = out.copy()
        del out
        return result
    finally:
        shm.close()
        shm.unlink()


configure()
