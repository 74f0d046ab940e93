"""Waveforms (12-lead ECG, hemodynamic, audio...): samples in physical units (PS3.3 C.10.9).

A waveform object holds a Waveform Sequence (5400,0100) of multiplex groups. Each group samples
its channels at one Sampling Frequency (003A,001A); its Waveform Data (5400,1010) interleaves
them (channel 1 sample 1, channel 2 sample 1, ..., channel 1 sample 2, ...), each sample
Waveform Bits Allocated (5400,1004) wide and read as Waveform Sample Interpretation
(5400,1006) says (PS3.3 C.10.9.1.5: SB/UB signed/unsigned 8 bit, MB/AB 8-bit mu-law/A-law,
SS/US 16 bit, SL/UL 32 bit). The Channel Definition Sequence (003A,0200) gives, per channel,
its source (the lead, as a coded entry), Channel Sensitivity (003A,0210) in Channel Sensitivity
Units (003A,0211, UCUM: "uV", "mV", "mm[Hg]"), the Channel Sensitivity Correction Factor
(003A,0212) and Channel Baseline (003A,0213): the value in those units is
``sample * sensitivity * correction + baseline`` (PS3.3 C.10.9.1.4.3, as pydicom's
``multiplex_array(as_raw=False)``).

The file is untrusted: the declared channel and sample counts are checked against the data's
length before anything is allocated, and a group that does not add up is a
:class:`WaveformError` saying so. No Qt.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from viewer.imaging.decode import DecodeError, read_file
from viewer.imaging.items import first as _first_item
from viewer.imaging.items import items as _sequence_items
from viewer.text import escape, person_name, show_date, show_time

#: At most this many samples (all channels of a group) are decoded: 64 M samples, 512 MB as
#: float64.
MAX_VALUES = 64 * 1024 * 1024
#: More channels than this in one group is refused (Number of Waveform Channels is a US).
MAX_CHANNELS = 1024

#: (bits allocated, sample interpretation) -> numpy dtype (little endian; swapped for big).
_DTYPES = {
    (8, "SB"): "i1",
    (8, "UB"): "u1",
    (8, "MB"): "u1",
    (8, "AB"): "u1",
    (16, "SS"): "<i2",
    (16, "US"): "<u2",
    (32, "SL"): "<i4",
    (32, "UL"): "<u4",
}

#: Voltage units (UCUM) in millivolts: ECG channels are drawn at 10 mm/mV.
_MILLIVOLTS = {"uV": 1e-3, "mV": 1.0, "V": 1e3, "nV": 1e-6}

ECG_ROOT = "1.2.840.10008.5.1.4.1.1.9.1."


class WaveformError(DecodeError):
    """A waveform that cannot be decoded, and exactly why."""


@dataclass(slots=True)
class Channel:
    """One channel: its label (the lead), units, and samples in those units (float64)."""

    label: str
    units: str
    units_meaning: str
    samples: np.ndarray

    @property
    def millivolt_scale(self) -> float | None:
        """Factor from this channel's units to millivolts; None when it is no voltage."""
        return _MILLIVOLTS.get(self.units)

    def in_millivolts(self) -> np.ndarray | None:
        scale = self.millivolt_scale
        return None if scale is None else self.samples * scale


@dataclass(slots=True)
class MultiplexGroup:
    """One multiplex group: channels sampled together."""

    label: str
    originality: str
    sampling_frequency: float
    sample_count: int
    bits_allocated: int
    interpretation: str
    time_offset: float = 0.0  # seconds (Multiplex Group Time Offset is in ms)
    channels: list[Channel] = field(default_factory=list)

    @property
    def duration(self) -> float:
        """Seconds."""
        return self.sample_count / self.sampling_frequency

    @property
    def is_voltage(self) -> bool:
        return bool(self.channels) and all(c.millivolt_scale is not None for c in self.channels)


@dataclass(slots=True)
class Waveform:
    """A waveform object: header (escaped), its groups, and what could not be decoded."""

    path: str
    sop_class_uid: str
    modality: str
    patient_name: str
    patient_id: str
    acquired: str
    groups: list[MultiplexGroup]
    warnings: list[str] = field(default_factory=list)

    @property
    def is_ecg(self) -> bool:
        return self.sop_class_uid.startswith(ECG_ROOT) or self.modality == "ECG"


def read_waveform(path: str | os.PathLike[str]) -> Waveform:
    """The waveform object at ``path``; raises :class:`DecodeError` / :class:`WaveformError`."""
    dicom = read_file(path)
    return waveform_from_dataset(dicom.dataset, path=str(path), warnings=dicom.warnings)


def waveform_from_dataset(
    ds: Dataset, *, path: str = "", warnings: list[str] | None = None
) -> Waveform:
    """Every multiplex group of ``ds`` that decodes; a group that does not becomes a warning,
    and a :class:`WaveformError` when none does."""
    notes = [escape(w) for w in warnings or []]
    items = _sequence_items(ds, "WaveformSequence")
    if not items:
        raise WaveformError(path, "no Waveform Sequence (5400,0100): not a waveform")
    little = _little_endian(ds)
    groups: list[MultiplexGroup] = []
    reasons: list[str] = []
    for number, item in enumerate(items, start=1):
        try:
            groups.append(decode_group(item, little_endian=little, path=path))
        except WaveformError as exc:
            reasons.append(f"multiplex group {number}: {exc.reason}")
    if not groups:
        raise WaveformError(path, "; ".join(reasons))
    notes.extend(f"{r} (not shown)" for r in reasons)
    stamp = _raw(ds, "AcquisitionDateTime")
    date = stamp[:8] or _raw(ds, "AcquisitionDate") or _raw(ds, "ContentDate")
    time = stamp[8:14] or _raw(ds, "AcquisitionTime") or _raw(ds, "ContentTime")
    acquired = escape(" ".join(p for p in (show_date(date), show_time(time)) if p))
    return Waveform(
        path=escape(path),
        sop_class_uid=_text(ds, "SOPClassUID"),
        modality=_text(ds, "Modality"),
        patient_name=escape(person_name(ds.get("PatientName", ""))),
        patient_id=_text(ds, "PatientID"),
        acquired=acquired,
        groups=groups,
        warnings=notes,
    )


def decode_group(item: Dataset, *, little_endian: bool = True, path: str = "") -> MultiplexGroup:
    """One multiplex group (a Waveform Sequence item) in physical units (PS3.3 C.10.9.1)."""
    channels = _int(item, "NumberOfWaveformChannels", path)
    samples = _int(item, "NumberOfWaveformSamples", path)
    bits = _int(item, "WaveformBitsAllocated", path)
    interpretation = _raw(item, "WaveformSampleInterpretation")
    frequency = _float(item, "SamplingFrequency", path)
    if not 0 < channels <= MAX_CHANNELS:
        raise WaveformError(path, f"Number of Waveform Channels is {channels}")
    if samples <= 0:
        raise WaveformError(path, f"Number of Waveform Samples is {samples}")
    if not (math.isfinite(frequency) and frequency > 0):
        raise WaveformError(path, f"Sampling Frequency is {escape(frequency)}")
    dtype_name = _DTYPES.get((bits, interpretation))
    if dtype_name is None:
        raise WaveformError(
            path,
            f"{bits}-bit samples read as {escape(interpretation or 'nothing')} are not "
            "supported (SB, UB, MB, AB at 8 bits; SS, US at 16; SL, UL at 32)",
        )
    if channels * samples > MAX_VALUES:
        raise WaveformError(
            path, f"{channels} channels of {samples} samples: more than {MAX_VALUES} values"
        )
    data = _bytes(item, "WaveformData")
    if data is None:
        raise WaveformError(path, "no Waveform Data (5400,1010)")
    expected = channels * samples * (bits // 8)
    if len(data) < expected:
        raise WaveformError(
            path,
            f"Waveform Data holds {len(data)} bytes but {channels} channels of {samples} "
            f"{bits}-bit samples need {expected}: the data is truncated",
        )
    dtype = np.dtype(dtype_name)
    if not little_endian and dtype.itemsize > 1:
        dtype = dtype.newbyteorder(">")
    raw = np.frombuffer(data, dtype=dtype, count=channels * samples).reshape(samples, channels)
    if interpretation == "MB":
        values = _MU_LAW[raw]
    elif interpretation == "AB":
        values = _A_LAW[raw]
    else:
        values = raw.astype(np.float64)
    padding = _padding(item, dtype)
    definitions = _sequence_items(item, "ChannelDefinitionSequence")
    result = MultiplexGroup(
        label=_text(item, "MultiplexGroupLabel"),
        originality=_text(item, "WaveformOriginality"),
        sampling_frequency=frequency,
        sample_count=samples,
        bits_allocated=bits,
        interpretation=escape(interpretation),
        time_offset=_optional_float(item, "MultiplexGroupTimeOffset", 0.0) / 1000.0,
    )
    for index in range(channels):
        definition = definitions[index] if index < len(definitions) else Dataset()
        column = values[:, index].astype(np.float64)
        if padding is not None:
            column[raw[:, index] == padding] = np.nan
        sensitivity = _optional_float(definition, "ChannelSensitivity", 1.0)
        correction = _optional_float(definition, "ChannelSensitivityCorrectionFactor", 1.0)
        baseline = _optional_float(definition, "ChannelBaseline", 0.0)
        column = column * (sensitivity * correction) + baseline
        units_code = _first_item(definition, "ChannelSensitivityUnitsSequence")
        units = _text(units_code, "CodeValue") if units_code is not None else ""
        meaning = _text(units_code, "CodeMeaning") if units_code is not None else ""
        result.channels.append(Channel(_label(definition, index), units, meaning, column))
    return result


def _label(definition: Dataset, index: int) -> str:
    """The lead's name: Channel Label, else the Channel Source's Code Meaning ("Lead II")."""
    label = _text(definition, "ChannelLabel")
    if label:
        return label
    source = _first_item(definition, "ChannelSourceSequence")
    if source is not None:
        meaning = _text(source, "CodeMeaning") or _text(source, "CodeValue")
        if meaning:
            return meaning
    return f"Channel {index + 1}"


def _padding(item: Dataset, dtype: np.dtype[Any]) -> int | None:
    """Waveform Padding Value (5400,100A): samples holding it are gaps (NaN)."""
    data = _bytes(item, "WaveformPaddingValue")
    if data is None or len(data) < dtype.itemsize:
        return None
    return int(np.frombuffer(data[: dtype.itemsize], dtype=dtype)[0])


def _g711_mu_law() -> np.ndarray:
    """ITU-T G.711 mu-law byte -> linear value (-8031..8031), the 8-bit MB interpretation."""
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign != 0, -magnitude, magnitude).astype(np.float64) / 4.0


def _g711_a_law() -> np.ndarray:
    """ITU-T G.711 A-law byte -> linear value (-4032..4032), the 8-bit AB interpretation."""
    codes = np.arange(256, dtype=np.int32) ^ 0x55
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = np.where(
        exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << (exponent - 1)
    )
    return np.where(sign != 0, magnitude, -magnitude).astype(np.float64) / 8.0


_MU_LAW = _g711_mu_law()
_A_LAW = _g711_a_law()


def _little_endian(ds: Dataset) -> bool:
    meta = getattr(ds, "file_meta", None)
    ts = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if ts == "1.2.840.10008.1.2.2":
        return False
    try:
        little = ds.original_encoding[1]
    except Exception:
        little = None
    return True if little is None else bool(little)


def _bytes(ds: Dataset, keyword: str) -> bytes | None:
    try:
        value = ds.get(keyword)
    except Exception:
        return None
    return bytes(value) if isinstance(value, bytes | bytearray | memoryview) else None


def _raw(ds: Dataset, keyword: str) -> str:
    try:
        value = ds.get(keyword)
    except Exception:
        return ""
    return "" if value is None else str(value).strip()


def _text(ds: Dataset, keyword: str) -> str:
    return escape(_raw(ds, keyword))


def _required(ds: Dataset, keyword: str, path: str, kind: type[int] | type[float]) -> Any:
    """A required number (``int`` or ``float``); WaveformError naming it when absent or not
    a number."""
    try:
        value = ds.get(keyword)
        if value is None or value == "":
            raise WaveformError(path, f"no {keyword}")
        return kind(value)
    except WaveformError:
        raise
    except Exception as exc:
        raise WaveformError(path, f"{keyword} is not a number") from exc


def _int(ds: Dataset, keyword: str, path: str) -> int:
    return int(_required(ds, keyword, path, int))


def _float(ds: Dataset, keyword: str, path: str) -> float:
    return float(_required(ds, keyword, path, float))


def _optional_float(ds: Dataset, keyword: str, default: float) -> float:
    try:
        value = ds.get(keyword)
        number = default if value is None or value == "" else float(value)
    except Exception:
        return default
    return number if math.isfinite(number) else default
