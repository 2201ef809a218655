"""The host's wire spec, MAC and PIN block (tools/host), checked against docs/protocol.md."""

import pytest

from tools.host import keys, pinblock, spec

PAN = "4761739001010010"


def purchase_fields():
    return {"2": PAN, "3": "000000", "4": 1250, "7": "0102030405", "11": 7, "12": "030405",
            "13": "0102", "14": "2812", "22": "071", "25": "00", "41": "TERM0001",
            "42": "MERCHANT0000001", "49": "978", "52": bytes(range(16)), "60": "000001"}


def query_fields():
    return {"3": "000000", "4": 1250, "7": "0102030405", "11": 7, "41": "TERM0001",
            "42": "MERCHANT0000001", "60": "000001",
            "90": "0200" + "000007" + "0102030405" + "0" * 22}


def test_cmac_is_sp800_38b():
    # SP 800-38B / RFC 4493 example 1 (empty message) and 2, under the test MAC key.
    assert spec.mac(b"", keys.MAC_KEY) == bytes.fromhex("bb1d6929e9593728")
    msg = bytes.fromhex("6bc1bee22e409f96e93d7e117393172a")
    assert spec.mac(msg, keys.MAC_KEY) == bytes.fromhex("070a16b46b4d4144")


def test_purchase_layout_is_the_documented_one():
    frame = spec.encode_msg("0200", purchase_fields(), keys.MAC_KEY)
    assert frame[:4] == b"0200"
    bitmap = int.from_bytes(frame[4:12], "big")
    present = [i for i in range(1, 65) if bitmap & (1 << (64 - i))]
    assert present == [2, 3, 4, 7, 11, 12, 13, 14, 22, 25, 41, 42, 49, 52, 60, 64]
    body = frame[12:]
    # ASCII LL prefix for the PAN, zero-padded ASCII numerics, LLL prefix for field 60.
    assert body.startswith(b"16" + PAN.encode() + b"000000" + b"000000001250" + b"0102030405"
                           + b"000007")
    assert bytes(range(16)) + b"006000001" in body
    assert len(frame) == 4 + 8 + (2 + 16) + 6 + 12 + 10 + 6 + 6 + 4 + 4 + 3 + 2 + 8 + 15 + 3 \
        + 16 + (3 + 6) + 8
    # The MAC covers everything before it, the MAC bit of the bitmap included.
    assert frame[-8:] == spec.mac(frame[:-8], keys.MAC_KEY)


def test_query_uses_secondary_bitmap_and_field_128():
    frame = spec.encode_msg("0600", query_fields(), keys.MAC_KEY)
    primary = int.from_bytes(frame[4:12], "big")
    secondary = int.from_bytes(frame[12:20], "big")
    assert primary >> 63 == 1  # bit 1: secondary bitmap present
    assert [i for i in range(65, 129) if secondary & (1 << (128 - i))] == [90, 128]
    assert not primary & 1  # no field 64
    assert frame[-8:] == spec.mac(frame[:-8], keys.MAC_KEY)
    assert spec.decode_msg(frame, keys.MAC_KEY) == ("0600", {
        "3": "000000", "4": "000000001250", "7": "0102030405", "11": "000007",
        "41": "TERM0001", "42": "MERCHANT0000001", "60": "000001",
        "90": "0200" + "000007" + "0102030405" + "0" * 22})


def test_round_trip_and_binary_fields():
    mti, fields = spec.decode_msg(spec.encode_msg("0200", purchase_fields(), keys.MAC_KEY),
                                  keys.MAC_KEY)
    assert mti == "0200" and fields["52"] == bytes(range(16)) and fields["11"] == "000007"
    assert "64" not in fields


def test_wrong_or_missing_mac_is_reported_with_the_fields():
    frame = spec.encode_msg("0200", purchase_fields(), keys.MAC_KEY)
    with pytest.raises(spec.MacError) as err:
        spec.decode_msg(frame[:-1] + bytes([frame[-1] ^ 1]), keys.MAC_KEY)
    assert err.value.fields["11"] == "000007"
    with pytest.raises(spec.MacError):
        spec.decode_msg(frame, bytes(16))
    with pytest.raises(spec.MacError):  # corrupt_mac is what the bad_mac fault sends
        spec.decode_msg(spec.encode_msg("0200", purchase_fields(), keys.MAC_KEY, True),
                        keys.MAC_KEY)
    bare = bytearray(frame[:-8])
    bare[11] &= 0xFE  # clear bit 64: a message without a MAC
    with pytest.raises(spec.MacError):
        spec.decode_msg(bytes(bare), keys.MAC_KEY)


@pytest.mark.parametrize("garbage", [b"", b"02", b"0200" + b"\xff" * 8, b"hello world, junk",
                                     b"0200" + bytes(8) + b"x"])
def test_garbage_does_not_decode(garbage):
    with pytest.raises(spec.DecodeError):
        spec.decode_msg(garbage, keys.MAC_KEY)


def test_non_digits_in_numeric_field_rejected():
    fields = purchase_fields()
    fields["4"] = "00000000125X"
    with pytest.raises(spec.DecodeError):
        spec.decode_frame(spec.encode_msg("0200", fields, keys.MAC_KEY))


def test_pin_block_format_4():
    block = pinblock.encipher("1234", PAN, keys.PIN_KEY, random_bytes=bytes(8))
    assert len(block) == 16
    assert pinblock.decipher(block, PAN, keys.PIN_KEY) == "1234"
    assert pinblock.pin_field("1234", bytes(8)).hex().upper() == "441234AAAAAAAAAA" + "0" * 16
    assert pinblock.pan_field(PAN).hex().upper() == "4" + PAN + "0" * 15
    assert pinblock.pan_field("123456789").hex().upper() == "0000123456789" + "0" * 19
    # Random fill: two blocks of the same PIN differ, both decipher.
    a, b = (pinblock.encipher("987654", PAN, keys.PIN_KEY) for _ in range(2))
    assert a != b and pinblock.decipher(a, PAN, keys.PIN_KEY) == "987654"
    # Another PAN or key does not give the PIN back.
    for pan, key in ((PAN[:-1] + "9", keys.PIN_KEY), (PAN, keys.MAC_KEY)):
        try:
            assert pinblock.decipher(block, pan, key) != "1234"
        except pinblock.PinBlockError:
            pass
