# portable: micropython
"""Virtual ISO 14443-A tags (tools/models/tags.py): states, anticollision data, commands."""

from drivers import democard
from tools.models import tags

UID7 = b"\x04\xa1\xb2\xc3\xd4\xe5\xf6"


def _activate(tag):
    tag.field_on()
    assert tag.reqa(False) == tag.atqa
    sak = None
    for level, cln in enumerate(tag.levels):
        sel = tags.SEL_CODES[level]
        assert tag.anticollision(sel) == cln + bytes([tags.bcc(cln)])
        sak = tag.select(sel, cln)
    return sak


def test_crc_a_known_value():
    # ISO 14443-3 annex B example: CRC_A of 00 00 is 1E A0
    assert tags.crc_a(b"\x00\x00") == b"\xa0\x1e"
    assert tags.crc_a(b"\x50\x00") == b"\x57\xcd"  # HLTA


def test_cascade_levels_and_bcc():
    assert tags.cascade_levels(b"\x01\x02\x03\x04") == [b"\x01\x02\x03\x04"]
    assert tags.cascade_levels(UID7) == [b"\x88\x04\xa1\xb2", b"\xc3\xd4\xe5\xf6"]
    assert len(tags.cascade_levels(bytes(range(10)))) == 3
    assert tags.bcc(b"\x88\x04\xa1\xb2") == 0x88 ^ 0x04 ^ 0xA1 ^ 0xB2


def test_ntag_activation_read_and_halt():
    tag = tags.NTAG215(UID7)
    assert tag.iso_dep is False
    assert _activate(tag) == 0x00
    page0 = tag.command(b"\x30\x00")
    assert page0[0:3] == UID7[0:3] and page0[3] == 0x88 ^ 0x04 ^ 0xA1 ^ 0xB2
    assert page0[4:8] == UID7[3:7]
    assert page0[12:16] == b"\xe1\x10\x3e\x00"
    assert tag.command(b"\x60") == b"\x00\x04\x04\x02\x01\x00\x11\x03"
    assert tag.command(b"\x50\x00") is None
    assert tag.state == tags.HALT
    assert tag.reqa(False) is None
    assert tag.reqa(True) == tag.atqa


def test_ntag_read_rolls_over_and_rejects_bad_page():
    tag = tags.NTAG213(UID7)
    _activate(tag)
    last = tag.command(b"\x30\x2c")  # page 44, the last: then pages 0, 1, 2
    assert last[4:8] == tag.memory[0:4]
    assert tag.command(b"\x30\x2d") is None  # past the end: NAK, tag back to IDLE
    assert tag.state == tags.IDLE


def test_classic_needs_auth_and_right_key():
    card = tags.MifareClassic1K(b"\x11\x22\x33\x44")
    assert _activate(card) == 0x08
    assert card.command(b"\x30\x04") is None  # no auth: NAK, IDLE
    _activate(card)
    assert not card.classic_auth(4, 0x60, b"\x00" * 6)
    assert card.state == tags.IDLE
    _activate(card)
    assert card.classic_auth(4, 0x60, tags.DEFAULT_KEY)
    assert card.command(b"\x30\x04") == bytes(16)
    trailer = card.command(b"\x30\x07")
    assert trailer[0:6] == bytes(6)  # key A never reads back
    assert card.command(b"\x30\x08") is None  # another sector: not authenticated


def test_wrong_select_sends_card_to_idle():
    tag = tags.NTAG215(UID7)
    tag.field_on()
    tag.reqa(False)
    assert tag.select(0x93, b"\x88\x00\x00\x00") is None
    assert tag.state == tags.IDLE


def test_demo_helpers_put_the_record_where_the_reader_looks():
    tag = tags.demo_ntag("4761739001010010", "2812")
    start = democard.NTAG_FIRST_PAGE * 4
    assert democard.decode(tag.memory[start:start + 24]) == ("4761739001010010", "2812")
    assert len(tag.uid) == 7 and isinstance(tag, tags.NTAG215)
    card = tags.demo_classic("4761739001010010", "2812")
    start = democard.CLASSIC_FIRST_BLOCK * 16
    assert democard.decode(card.memory[start:start + 24]) == ("4761739001010010", "2812")
    assert len(card.uid) == 4 and card.uid[0] != 0x88
    assert tags.demo_ntag("4761739001010011", "2812").uid != tag.uid
