"""Waveforms in physical units (viewer.imaging.waveform): pydicom's 12-lead ECG against
pydicom's own conversion, hand-made groups for every sample interpretation, and hostile
groups (truncated data, absurd counts) refused with a reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from viewer.imaging.decode import DecodeError
from viewer.imaging.waveform import (
    WaveformError,
    decode_group,
    read_waveform,
    waveform_from_dataset,
)

ECG = "waveform_ecg.dcm"
TWELVE_LEADS = [
    "Lead I (Einthoven)",
    "Lead II",
    "Lead III",
    "Lead aVR",
    "Lead aVL",
    "Lead aVF",
    "Lead V1",
    "Lead V2",
    "Lead V3",
    "Lead V4",
    "Lead V5",
    "Lead V6",
]


def bundled(name: str) -> Path:
    path = get_testdata_file(name)
    assert path is not None, name
    return Path(path)


def test_the_12_lead_ecg_in_microvolts() -> None:
    waveform = read_waveform(bundled(ECG))
    assert waveform.is_ecg
    assert waveform.patient_name == "Anonymous"
    assert [g.label for g in waveform.groups] == ["RHYTHM", "MEDIAN BEAT"]
    rhythm = waveform.groups[0]
    assert [c.label for c in rhythm.channels] == TWELVE_LEADS
    assert rhythm.sampling_frequency == 1000.0
    assert rhythm.sample_count == 10_000 and rhythm.duration == 10.0
    assert rhythm.is_voltage
    lead_i = rhythm.channels[0]
    assert (lead_i.units, lead_i.units_meaning) == ("uV", "microvolt")
    # the first stored sample of lead I is 80: 80 x 1.25 uV x 1 + 0 = 100 uV = 0.1 mV
    assert lead_i.samples[0] == 100.0
    converted = lead_i.in_millivolts()
    assert converted is not None
    assert converted[0] == pytest.approx(0.1)
    # lead II stores 90, 85, 80 (interleaved: bytes 2, 26, 50 of the data)
    assert rhythm.channels[1].samples[:3].tolist() == [112.5, 106.25, 100.0]


def test_every_group_equals_pydicom_s_own_conversion() -> None:
    ds = pydicom.dcmread(bundled(ECG))
    waveform = waveform_from_dataset(ds)
    for index, group in enumerate(waveform.groups):
        expected = ds.waveform_array(index)  # (samples, channels), sensitivity applied
        ours = np.stack([c.samples for c in group.channels], axis=1)
        assert ours.shape == expected.shape
        np.testing.assert_array_equal(ours, expected)


def group(
    samples: np.ndarray,
    *,
    bits: int = 16,
    interpretation: str = "SS",
    frequency: str = "500",
    definitions: list[Dataset] | None = None,
) -> Dataset:
    """A multiplex group of ``samples`` (samples, channels), stored little endian."""
    item = Dataset()
    item.MultiplexGroupLabel = "TEST"
    item.NumberOfWaveformSamples, item.NumberOfWaveformChannels = samples.shape
    item.SamplingFrequency = frequency
    item.WaveformBitsAllocated = bits
    item.WaveformSampleInterpretation = interpretation
    if definitions is not None:
        item.ChannelDefinitionSequence = definitions
    data = samples.astype(samples.dtype.newbyteorder("<")).tobytes()
    item.WaveformData = data + b"\x00" * (len(data) % 2)
    return item


def definition(label: str, sensitivity: str, units: str, correction: str, baseline: str) -> Dataset:
    item = Dataset()
    source = Dataset()
    source.CodeValue, source.CodingSchemeDesignator, source.CodeMeaning = "x", "99T", label
    item.ChannelSourceSequence = [source]
    item.ChannelSensitivity = sensitivity
    unit = Dataset()
    unit.CodeValue, unit.CodingSchemeDesignator, unit.CodeMeaning = units, "UCUM", units
    item.ChannelSensitivityUnitsSequence = [unit]
    item.ChannelSensitivityCorrectionFactor = correction
    item.ChannelBaseline = baseline
    return item


def test_sensitivity_correction_and_baseline_give_physical_units() -> None:
    samples = np.array([[1, 100], [-2, 200], [3, 300]], dtype=np.int16)
    definitions = [
        definition("Lead V1", "2.5", "uV", "2", "10"),
        definition("Pressure", "0.5", "mm[Hg]", "1", "-5"),
    ]
    decoded = decode_group(group(samples, definitions=definitions))
    first, second = decoded.channels
    assert first.samples.tolist() == [15.0, 0.0, 25.0]  # s x 2.5 x 2 + 10
    assert second.samples.tolist() == [45.0, 95.0, 145.0]  # s x 0.5 + (-5)
    assert (first.label, second.label) == ("Lead V1", "Pressure")
    assert second.millivolt_scale is None and second.in_millivolts() is None
    assert not decoded.is_voltage


@pytest.mark.parametrize(
    ("dtype", "bits", "interpretation"),
    [("i1", 8, "SB"), ("u1", 8, "UB"), ("<i2", 16, "SS"), ("<u2", 16, "US"), ("<i4", 32, "SL")],
)
def test_each_sample_interpretation(dtype: str, bits: int, interpretation: str) -> None:
    info = np.iinfo(np.dtype(dtype))
    samples = np.array([[info.min, 0], [info.max, 1]], dtype=dtype)
    decoded = decode_group(group(samples, bits=bits, interpretation=interpretation))
    assert [c.samples.tolist() for c in decoded.channels] == [
        [float(info.min), float(info.max)],
        [0.0, 1.0],
    ]
    # no Channel Definition Sequence: numbered channels, unit sensitivity
    assert [c.label for c in decoded.channels] == ["Channel 1", "Channel 2"]


def test_big_endian_samples() -> None:
    item = group(np.array([[1], [2]], dtype=np.int16))
    item.WaveformData = np.array([1, -2], dtype=">i2").tobytes()
    assert decode_group(item, little_endian=False).channels[0].samples.tolist() == [1.0, -2.0]


def test_mu_law_and_a_law_bytes() -> None:
    codes = np.array([[0xFF], [0x80], [0x00]], dtype=np.uint8)
    mu = decode_group(group(codes, bits=8, interpretation="MB")).channels[0].samples
    assert mu.tolist() == [0.0, 8031.0, -8031.0]
    codes = np.array([[0xD5], [0x55], [0xAA]], dtype=np.uint8)
    a_law = decode_group(group(codes, bits=8, interpretation="AB")).channels[0].samples
    assert a_law.tolist() == [1.0, -1.0, 4032.0]


def test_padding_values_are_gaps() -> None:
    item = group(np.array([[5], [-32768], [7]], dtype=np.int16))
    item.WaveformPaddingValue = np.array([-32768], dtype="<i2").tobytes()
    samples = decode_group(item).channels[0].samples
    assert samples[0] == 5.0 and np.isnan(samples[1]) and samples[2] == 7.0


def test_truncated_data_with_a_larger_declared_count_is_a_clear_error() -> None:
    item = group(np.zeros((1000, 12), dtype=np.int16))
    item.WaveformData = item.WaveformData[:5000]
    with pytest.raises(WaveformError) as caught:
        decode_group(item)
    assert caught.value.reason == (
        "Waveform Data holds 5000 bytes but 12 channels of 1000 16-bit samples need 24000: "
        "the data is truncated"
    )


def test_a_truncated_ecg_file_raises_a_decode_error_not_a_crash(tmp_path: Path) -> None:
    ds = pydicom.dcmread(bundled(ECG))
    for item in ds.WaveformSequence:
        item.WaveformData = item.WaveformData[:1000]
    path = tmp_path / "truncated.dcm"
    ds.save_as(path)
    with pytest.raises(DecodeError, match="multiplex group 1: Waveform Data holds 1000 bytes"):
        read_waveform(path)


def test_one_bad_group_is_a_warning_when_another_decodes() -> None:
    ds = pydicom.dcmread(bundled(ECG))
    ds.WaveformSequence[1].NumberOfWaveformSamples = 2**31
    waveform = waveform_from_dataset(ds)
    assert [g.label for g in waveform.groups] == ["RHYTHM"]
    assert waveform.warnings == [
        "multiplex group 2: 12 channels of 2147483648 samples: more than 67108864 values "
        "(not shown)"
    ]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"NumberOfWaveformChannels": 0}, "Number of Waveform Channels is 0"),
        ({"NumberOfWaveformSamples": 0}, "Number of Waveform Samples is 0"),
        ({"SamplingFrequency": "0"}, "Sampling Frequency is 0.0"),
        ({"SamplingFrequency": "nan"}, "Sampling Frequency is nan"),
        ({"WaveformBitsAllocated": 12}, "12-bit samples read as SS are not supported"),
        ({"WaveformSampleInterpretation": "SB"}, "16-bit samples read as SB"),
    ],
)
def test_absurd_headers_are_refused_with_the_reason(change: dict[str, object], reason: str) -> None:
    item = group(np.zeros((4, 2), dtype=np.int16))
    for keyword, value in change.items():
        setattr(item, keyword, value)
    with pytest.raises(WaveformError, match=reason.replace("(", r"\(")):
        decode_group(item)


def test_no_waveform_sequence_is_no_waveform(tmp_path: Path) -> None:
    with pytest.raises(WaveformError, match="no Waveform Sequence"):
        read_waveform(bundled("CT_small.dcm"))
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.9.1.1")
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.WaveformSequence = []
    ds.save_as(tmp_path / "empty.dcm", enforce_file_format=True)
    with pytest.raises(WaveformError, match="no Waveform Sequence"):
        read_waveform(tmp_path / "empty.dcm")
