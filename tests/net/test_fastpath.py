"""The direct C-STORE writer's PDU framing (PS3.8 9.3.5, Annex E) and the SCP's direct
C-STORE-RSP, checked byte by byte."""

from __future__ import annotations

import struct
from io import BytesIO

import pytest
from pydicom.filereader import read_dataset
from pynetdicom.dimse_messages import C_STORE_RSP
from pynetdicom.dimse_primitives import C_STORE

from viewer.net.fastpath import command_set, pdus, store_response_set


def parse(stream: bytes) -> list[tuple[int, int, bytes]]:
    """(context ID, message control header, data) of each PDV, checking each PDU's lengths."""
    out = []
    pos = 0
    while pos < len(stream):
        pdu_type, _, length = struct.unpack(">BBI", stream[pos : pos + 6])
        assert pdu_type == 0x04
        item_length, context_id, header = struct.unpack(">IBB", stream[pos + 6 : pos + 12])
        assert item_length == length - 4
        out.append((context_id, header, stream[pos + 12 : pos + 6 + length]))
        pos += 6 + length
    assert pos == len(stream)
    return out


@pytest.mark.parametrize(
    ("size", "max_pdu"),
    [(0, 16384), (1, 16384), (16378, 16384), (16379, 16384), (100_000, 16384), (5000, 0)],
)
def test_pdvs_fit_the_peer_maximum_and_reassemble(size: int, max_pdu: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    items = parse(pdus(7, payload, False, max_pdu))
    assert b"".join(data for _, _, data in items) == payload
    assert all(cx == 7 for cx, _, _ in items)
    assert [h for _, h, _ in items] == [0x00] * (len(items) - 1) + [0x02]
    if max_pdu:
        assert all(len(data) + 6 <= max_pdu for _, _, data in items)


def test_command_set_is_a_c_store_rq() -> None:
    raw = command_set("1.2.840.10008.5.1.4.1.1.2", "1.2.3.4.5", 42)
    [(cx, header, data)] = parse(pdus(1, raw, True, 16384))
    assert (cx, header) == (1, 0x03)
    ds = read_dataset(BytesIO(data), is_implicit_VR=True, is_little_endian=True)
    assert ds.CommandGroupLength == len(data) - 12
    assert ds.CommandField == 0x0001
    assert ds.MessageID == 42
    assert ds.AffectedSOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    assert ds.AffectedSOPInstanceUID == "1.2.3.4.5"
    assert ds.CommandDataSetType != 0x0101


@pytest.mark.parametrize("status", [0x0000, 0xA700, 0xB007])
def test_store_response_is_what_pynetdicom_encodes(status: int) -> None:
    """The SCP's direct C-STORE-RSP (PS3.7 Table 9.3-2) carries the same bytes as pynetdicom's
    own encoder would send for the same primitive."""
    rsp = C_STORE()
    rsp.MessageIDBeingRespondedTo = 7
    rsp.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    rsp.AffectedSOPInstanceUID = "1.2.3.4.55"  # odd length: padded with NUL
    rsp.Status = status
    message = C_STORE_RSP()
    message.primitive_to_message(rsp)
    [theirs] = list(message.encode_msg(3, 16384))
    ours = store_response_set("1.2.840.10008.5.1.4.1.1.2", "1.2.3.4.55", 7, status)
    [(cx, header, data)] = parse(pdus(3, ours, True, 16384))
    assert (cx, header) == (3, 0x03)
    [(their_cx, their_pdv)] = theirs.presentation_data_value_list
    assert (their_cx, their_pdv[0]) == (cx, header)
    assert data == their_pdv[1:]
    ds = read_dataset(BytesIO(data), is_implicit_VR=True, is_little_endian=True)
    assert (ds.CommandField, ds.MessageIDBeingRespondedTo, ds.Status) == (0x8001, 7, status)
    assert ds.CommandDataSetType == 0x0101
