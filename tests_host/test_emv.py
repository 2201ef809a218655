# portable: micropython
"""BER-TLV parsing, PDOL data, AFL entries and card-number checks of drivers/emv.py."""

from drivers import emv
from tools.models import emvcard

PAN = "4761739001010010"


def _raises(fn, *args):
    try:
        fn(*args)
    except emv.EmvError:
        return True
    return False


def test_tags_and_lengths():
    assert emv.read_tag(b"\x5a", 0, 1) == (0x5A, 1)
    assert emv.read_tag(b"\x9f\x38", 0, 2) == (0x9F38, 2)
    assert emv.read_tag(b"\xbf\x0c", 0, 2) == (0xBF0C, 2)
    assert emv.read_tag(b"\xdf\x81\x01", 0, 3) == (0xDF8101, 3)
    assert emv.read_len(b"\x7f", 0, 1) == (0x7F, 1)
    assert emv.read_len(b"\x81\x80", 0, 2) == (0x80, 2)
    assert emv.read_len(b"\x82\x01\x00", 0, 3) == (0x100, 3)


def test_malformed_tlv_raises_emv_error():
    for bad in (b"\x9f", b"\x5a", b"\x5a\x81", b"\x5a\x82\x01", b"\x5a\x05\x01\x02",
                b"\x5a\x80", b"\x5a\x83\x00\x00\x01", b"\xdf\x81\x81\x81\x01\x00",
                b"\x70\x03\x5a\x05\x01", b"\x6f\x02\xa5\x05"):
        assert _raises(emv.find_all, bad, 0x5A), bad
        assert isinstance(emv.EmvError("x"), ValueError)


def test_constructed_templates_and_padding():
    data = emvcard.tlv(0x70, emvcard.tlv(0x61, emvcard.tlv(0x5A, b"\x47\x61")) + b"\x00\x00")
    assert emv.find(data, 0x5A) == b"\x47\x61"
    assert emv.find(b"\x00\xff" + data, 0x5A) == b"\x47\x61"
    assert emv.find(data, 0x57) is None
    two = emvcard.tlv(0x70, emvcard.tlv(0x5A, b"\x01") + emvcard.tlv(0x5A, b"\x02"))
    assert _raises(emv.find, two, 0x5A)


def test_nesting_too_deep():
    data = b"\x01"
    for _ in range(10):
        data = emvcard.tlv(0x70, data)
    assert _raises(emv.find_all, data, 0x5A)


def test_pdol_data_has_exact_lengths():
    pdol = bytes.fromhex("9F66049F02069F3704" "5F2A02" "9A03" "9C01" "9505" "9F1A02" "DF010C")
    values = {0x9F66: emv.TTQ, 0x9F02: b"\x00\x00\x00\x00\x12\x50", 0x9F37: b"\x01\x02\x03\x04",
              0x5F2A: b"\x09\x78", 0x9A: b"\x26\x11\x26", 0x9C: b"\x00", 0x95: bytes(5),
              0x9F1A: b"\x02\x50"}
    data = emv.build_dol(pdol, values)
    assert len(data) == 4 + 6 + 4 + 2 + 3 + 1 + 5 + 2 + 12
    assert data[:4] == emv.TTQ
    assert data[4:10] == b"\x00\x00\x00\x00\x12\x50"
    assert data[-12:] == bytes(12)  # unknown tag: zeros
    # Numeric values pad and truncate on the left, others on the right (EMV Book 3, 5.4).
    assert emv.build_dol(b"\x9F\x02\x08", {0x9F02: b"\x12\x50"}) == bytes(6) + b"\x12\x50"
    assert emv.build_dol(b"\x9F\x02\x01", {0x9F02: b"\x12\x50"}) == b"\x50"
    assert emv.build_dol(b"\x9F\x66\x02", {0x9F66: emv.TTQ}) == emv.TTQ[:2]
    assert emv.build_dol(b"\x9F\x66\x06", {0x9F66: emv.TTQ}) == emv.TTQ + b"\x00\x00"
    defaults = emv.default_values()
    assert len(emv.build_dol(pdol, defaults)) == len(data)


def test_afl_entries():
    assert emv.parse_afl(b"\x08\x01\x02\x00\x10\x01\x01\x01") == [(1, 1, 2), (2, 1, 1)]
    for bad in (b"", b"\x08\x01\x02", b"\x00\x01\x01\x00", b"\x08\x00\x01\x00",
                b"\x08\x03\x02\x00", b"\xf8\x01\x01\x00"):
        assert _raises(emv.parse_afl, bad), bad


def test_gpo_formats():
    f1 = emvcard.tlv(0x80, b"\x19\x80\x08\x01\x01\x00")
    assert emv.gpo_afl(f1) == b"\x08\x01\x01\x00"
    f2 = emvcard.tlv(0x77, emvcard.tlv(0x82, b"\x20\x40") + emvcard.tlv(0x94, b"\x10\x01\x03\x00"))
    assert emv.gpo_afl(f2) == b"\x10\x01\x03\x00"
    assert _raises(emv.gpo_afl, emvcard.tlv(0x80, b"\x19"))
    assert _raises(emv.gpo_afl, emvcard.tlv(0x6F, b""))


def test_pan_and_track2():
    assert emv.pan_from_5a(emvcard.bcd_digits(PAN)) == PAN
    assert emv.track2(emvcard.track2_value(PAN, "2812")) == (PAN, "2812")
    assert _raises(emv.pan_from_5a, emvcard.bcd_digits("4761739001010011"))  # Luhn
    assert _raises(emv.pan_from_5a, b"\x47\x6A\x17\x39\x00\x10\x10\x01")  # not a digit
    assert _raises(emv.track2, emvcard.bcd_digits(PAN + "2812"))  # no separator
    assert _raises(emv.track2, emvcard.bcd_digits(PAN + "D2813"))  # month 13
    assert emv.expiry_from_5f24(b"\x28\x12\x31") == "2812"
    assert _raises(emv.expiry_from_5f24, b"\x28\x12")


def test_status_words_61_and_6c():
    calls = []

    def card(apdu):
        calls.append(apdu)
        if apdu[1] == 0xB2 and apdu[4] != 7:
            return b"\x6C\x07"
        if apdu[1] == 0xB2:
            return b"\x61\x05"
        if apdu[1] == 0xC0:
            return b"\x70\x03\x5a\x01\x47\x90\x00"
        return b"\x6A\x82"

    assert emv.command(card, b"\x00\xB2\x01\x0C\x00") == b"\x70\x03\x5a\x01\x47"
    assert calls[1] == b"\x00\xB2\x01\x0C\x07"
    assert calls[2] == b"\x00\xC0\x00\x00\x05"
    assert _raises(emv.command, card, b"\x00\xA4\x04\x00\x00")
    assert _raises(emv.command, lambda a: b"\x90", b"\x00")
    assert _raises(emv.command, lambda a: b"\x61\x00", b"\x00")  # endless 61xx


def test_priority_picks_the_aid():
    card = emvcard.mastercard_like(PAN, "2812")
    assert emv.choose_aid(card.ppse_fci()) == b"\xA0\x00\x00\x00\x04\x10\x10"


def test_every_profile_reads_and_disagreeing_copies_fail():
    for profile in emvcard.PROFILES:
        assert emv.read_card(profile(PAN, "2812").apdu) == (PAN, "2812")
    card = emvcard.mastercard_like(PAN, "2812")
    rec = card.records[(2, 1)]
    other = emvcard.tlv(0x5A, emvcard.bcd_digits("4761739001010028"))
    card.records[(2, 1)] = emvcard.tlv(0x70, emvcard.tlv(0x57, emvcard.track2_value(
        PAN, "2812")) + other)
    assert rec != card.records[(2, 1)]
    assert _raises(emv.read_card, card.apdu)
