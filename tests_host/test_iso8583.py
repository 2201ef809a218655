# portable: micropython
"""The firmware's ISO 8583 codec: layout, MAC, rejections, framing and response matching.

Runs on CPython (pytest) and on the MicroPython unix port (tests_host/mprun.py); the
cross-check against pyiso8583 lives in test_iso8583_peer.py."""

from binascii import unhexlify

from firmware import iso8583
from firmware.cmac import cmac
from tools import framing

_KEY = unhexlify("2B7E151628AED2A6ABF7158809CF4F3C")
_OTHER_KEY = unhexlify("000102030405060708090A0B0C0D0E0F")
_TID = "TERM0001"
_MID = "MERCHANT0000001"
_F90 = "0200000042" + "1126101500" + "0" * 22

# One message of every type in docs/protocol.md (request and response).
MESSAGES = (
    ("0200", {2: "4761739001010010", 3: "000000", 4: "000000001250", 7: "1126101500",
              11: "000042", 12: "111500", 13: "1126", 14: "2812", 22: "071", 25: "00",
              41: _TID, 42: _MID, 49: "978", 52: bytes(range(16)), 60: "000001"}),
    ("0210", {3: "000000", 4: "000000001250", 7: "1126101501", 11: "000042",
              37: "633010000042", 38: "A1B2C3", 39: "00", 41: _TID}),
    ("0210", {3: "000000", 4: "000000001250", 7: "1126101501", 11: "000042",
              37: "633010000042", 39: "51", 41: _TID}),
    ("0600", {3: "000000", 4: "000000001250", 7: "1126101600", 11: "000042", 41: _TID,
              42: _MID, 60: "000001", 90: _F90}),
    ("0610", {3: "000000", 4: "000000001250", 7: "1126101601", 11: "000042",
              37: "633010000042", 38: "A1B2C3", 39: "00", 41: _TID}),
    ("0610", {3: "000000", 4: "000000001250", 7: "1126101601", 11: "000042", 39: "25",
              41: _TID}),
    ("0400", {3: "000000", 4: "000000001250", 7: "1126101700", 11: "000042", 39: "98",
              41: _TID, 42: _MID, 60: "000001", 90: _F90}),
    ("0401", {3: "000000", 4: "000000001250", 7: "1126101800", 11: "000042", 39: "A0",
              41: _TID, 42: _MID, 60: "000001", 90: _F90}),
    ("0410", {3: "000000", 4: "000000001250", 7: "1126101801", 11: "000042", 39: "00",
              41: _TID}),
    ("0220", {3: "000000", 4: "000000001250", 7: "1126101900", 11: "000042",
              37: "633010000042", 38: "A1B2C3", 41: _TID, 42: _MID, 60: "000001", 90: _F90}),
    ("0230", {3: "000000", 4: "000000001250", 7: "1126101901", 11: "000042", 39: "00",
              41: _TID}),
)


def _raises(exc_type, func, *args):
    try:
        func(*args)
    except exc_type:
        return True
    return False


def test_layout_known_answer():
    msg = iso8583.encode("0210", {39: "00", 11: "1"}, _KEY)
    body = b"0210" + unhexlify("0020000002000001") + b"000001" + b"00"
    assert msg == body + cmac(_KEY, body)[:8]


def test_secondary_bitmap_and_mac_128():
    msg = iso8583.encode("0600", MESSAGES[3][1], _KEY)
    assert msg[4] & 0x80  # bit 1: secondary bitmap present
    assert msg[4 + 7] & 0x01 == 0  # no field 64
    assert msg[4 + 15] & 0x01  # field 128
    assert msg[-8:] == cmac(_KEY, msg[:-8])[:8]
    msg = iso8583.encode("0200", MESSAGES[0][1], _KEY)
    assert not msg[4] & 0x80
    assert msg[4 + 7] & 0x01  # field 64


def test_round_trip_every_message():
    for mti, fields in MESSAGES:
        msg = iso8583.encode(mti, fields, _KEY)
        got_mti, got = iso8583.decode(msg, _KEY)
        mac_field = 128 if 90 in fields else 64
        assert got_mti == mti
        assert got.pop(mac_field) == msg[-8:]
        assert got == fields, (mti, got)
        # A memoryview or bytearray of the frame decodes the same.
        assert iso8583.decode(memoryview(bytearray(msg)), _KEY)[1][11] == "000042"


def test_numeric_padding_and_variable_lengths():
    msg = iso8583.encode("0200", {4: "1250", 11: 42, 2: "476173", 60: ""}, _KEY)
    _, got = iso8583.decode(msg, _KEY)
    assert got[4] == "000000001250" and got[11] == "000042"
    assert got[2] == "476173" and got[60] == ""
    assert b"06476173" in msg and b"000" in msg


def test_encode_rejections():
    bad = (
        {4: "1234567890123"},  # too long
        {4: "12a4"},  # not a digit
        {2: "12345678901234567890"},  # LLVAR over 19
        {60: "x" * 1000},
        {41: "TERM1"},  # ans fixed: exact length, the codec does not invent padding
        {41: "TERM\u00e90001"},  # not ASCII
        {39: "0\n"},
        {52: bytes(15)},
        {52: "00" * 16},  # b field given as text
        {4: b"000000001250"},  # n field given as bytes
        {4: -5},
        {5: "1"},  # field not in the protocol
        {64: bytes(8)},  # the MAC is added by encode
        {128: bytes(8)},
        {1: bytes(8)},
    )
    for fields in bad:
        assert _raises(ValueError, iso8583.encode, "0200", fields, _KEY), fields
    for mti in ("200", "02a0", "02000", 200):
        assert _raises(ValueError, iso8583.encode, mti, {11: "1"}, _KEY), mti


def test_mac_errors():
    msg = iso8583.encode("0210", MESSAGES[1][1], _KEY)
    assert _raises(iso8583.MacError, iso8583.decode, msg, _OTHER_KEY)
    broken = bytearray(msg)
    broken[-1] ^= 1
    assert _raises(iso8583.MacError, iso8583.decode, broken, _KEY)
    # No MAC at all: the same fields with the MAC bit cleared and the MAC cut off.
    no_mac = bytearray(msg[:-8])
    no_mac[4 + 7] &= 0xFE
    assert _raises(iso8583.MacError, iso8583.decode, no_mac, _KEY)
    assert issubclass(iso8583.MacError, ValueError)
    # Without a key the MAC is not checked (logging and tools only).
    assert iso8583.decode(broken, None)[1][39] == "00"


def test_every_corruption_is_rejected():
    for mti, fields in (MESSAGES[1], MESSAGES[3]):
        msg = iso8583.encode(mti, fields, _KEY)
        buf = bytearray(msg)
        for i in range(len(buf)):
            for flip in (0x01, 0x80):
                buf[i] ^= flip
                assert _raises(ValueError, iso8583.decode, buf, _KEY), (i, flip)
                buf[i] ^= flip


def test_truncated_and_trailing():
    msg = iso8583.encode("0600", MESSAGES[3][1], _KEY)
    for n in range(len(msg)):
        assert _raises(ValueError, iso8583.decode, msg[:n], _KEY), n
    assert _raises(ValueError, iso8583.decode, msg + b"0", _KEY)
    assert _raises(ValueError, iso8583.decode, b"", _KEY)


def _mac_it(body):
    return body + cmac(_KEY, body)[:8]


def test_malformed_but_correctly_maced():
    # A host with the right key can still send nonsense; it must not get past the parser.
    bitmap_11_64 = unhexlify("0020000000000001")
    assert iso8583.decode(_mac_it(b"0210" + bitmap_11_64 + b"000001"), _KEY)[1][11] == "000001"
    assert _raises(ValueError, iso8583.decode, _mac_it(b"0210" + bitmap_11_64 + b"00000x"), _KEY)
    assert _raises(ValueError, iso8583.decode, _mac_it(b"02 0" + bitmap_11_64 + b"000001"), _KEY)
    # Field 5 is not ours.
    assert _raises(ValueError, iso8583.decode,
                   _mac_it(b"0210" + unhexlify("0820000000000001") + b"000001"), _KEY)
    # LLVAR longer than its maximum, and a non-digit length.
    bitmap_2_64 = unhexlify("4000000000000001")
    assert iso8583.decode(_mac_it(b"0200" + bitmap_2_64 + b"044761"), _KEY)[1][2] == "4761"
    assert _raises(ValueError, iso8583.decode,
                   _mac_it(b"0200" + bitmap_2_64 + b"20" + b"1" * 20), _KEY)
    assert _raises(ValueError, iso8583.decode, _mac_it(b"0200" + bitmap_2_64 + b"x44761"), _KEY)
    # Secondary bitmap announced but empty; MAC 64 where 128 belongs.
    assert _raises(ValueError, iso8583.decode,
                   _mac_it(b"0200" + unhexlify("8020000000000000" + "0000000000000000")
                           + b"000001"), _KEY)
    assert _raises(ValueError, iso8583.decode,
                   _mac_it(b"0200" + unhexlify("8020000000000001" + "0000004000000000")
                           + b"000001" + b"0" * 42), _KEY)


def test_original_data():
    assert iso8583.original_data("0200", "42", "1126101500") == _F90
    assert iso8583.original_data("0200", 42, 1126101500) == _F90


def test_answer_mti():
    assert iso8583.answer_mti("0200") == "0210"
    assert iso8583.answer_mti("0401") == "0410"
    assert iso8583.answer_mti("0400") == "0410"
    assert iso8583.answer_mti("0600") == "0610"
    assert iso8583.answer_mti("0220") == "0230"
    assert _raises(ValueError, iso8583.answer_mti, "02x0")


def test_matches():
    req = MESSAGES[0][1]
    resp = dict(MESSAGES[1][1])
    assert iso8583.matches("0200", req, "0210", resp)
    assert not iso8583.matches("0200", req, "0200", resp)
    assert not iso8583.matches("0200", req, "0230", resp)
    assert not iso8583.matches("0200", req, None, resp)
    assert not iso8583.matches("junk", req, "0210", resp)
    for field, other in ((41, "TERM0002"), (11, "000043"), (3, "200000"), (4, "000000001251")):
        changed = dict(resp)
        changed[field] = other
        assert not iso8583.matches("0200", req, "0210", changed), field
        del changed[field]
        assert not iso8583.matches("0200", req, "0210", changed), field
    # The request as the core may hold it, unpadded: compared as it travels.
    loose = dict(req)
    loose[4] = 1250
    loose[11] = "42"
    assert iso8583.matches("0200", loose, "0210", resp)
    rev = MESSAGES[7][1]
    assert iso8583.matches("0401", rev, "0410", MESSAGES[8][1])
    assert iso8583.matches("0400", MESSAGES[6][1], "0410", MESSAGES[8][1])
    assert not iso8583.matches("0401", rev, "0411", MESSAGES[8][1])


def test_frame_and_reader():
    a = iso8583.encode("0210", MESSAGES[1][1], _KEY)
    b = iso8583.encode("0410", MESSAGES[8][1], _KEY)
    fa = framing.frame(a)
    assert fa[:2] == len(a).to_bytes(2, "big") and fa[2:] == a
    assert framing.message_length(fa[:2]) == len(a)
    stream = fa + framing.frame(b)
    reader = framing.FrameReader()
    got = []
    for i in range(len(stream)):
        got.extend(reader.feed(stream[i : i + 1]))
    assert got == [a, b] and reader.pending() == 0
    reader = framing.FrameReader()
    assert reader.feed(stream) == [a, b]
    assert reader.feed(fa[:5]) == [] and reader.pending() == 5
    assert reader.feed(fa[5:]) == [a]


def test_frame_limits():
    assert _raises(ValueError, framing.frame, b"")
    # Only the rejection at the limit: a 4 KB success case would measure the test heap.
    assert _raises(ValueError, framing.frame, bytes(framing.MAX_MESSAGE + 1))
    assert framing.frame(bytes(300))[:2] == b"\x01\x2c"
    for prefix in (b"\x00\x00", b"\x10\x01", b"\xff\xff"):
        assert _raises(ValueError, framing.message_length, prefix)
        assert _raises(ValueError, framing.FrameReader().feed, prefix)
    assert _raises(ValueError, framing.message_length, b"\x00")
    small = framing.FrameReader(100)
    assert _raises(ValueError, small.feed, b"\x00\x65")


def test_fuzz_only_valueerror():
    # Deterministic LCG so the same cases run on MicroPython and CPython (hypothesis does the
    # wider search in test_iso8583_peer.py on CPython).
    state = 12345

    def rand(n):
        nonlocal state
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        return state % n

    for _ in range(400):
        mti, fields = MESSAGES[rand(len(MESSAGES))]
        buf = bytearray(iso8583.encode(mti, fields, _KEY))
        for _ in range(1 + rand(4)):
            buf[rand(len(buf))] = rand(256)
        if rand(3) == 0:
            buf = buf[: rand(len(buf) + 1)]
        if rand(5) == 0:
            buf = bytearray(rand(256) for _ in range(rand(200)))
        for key in (_KEY, None):
            try:
                iso8583.decode(buf, key)
            except ValueError:
                pass
