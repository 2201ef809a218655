"""Property tests (CPython, hypothesis) of drivers/emv.py: malformed, truncated and mutated
card data only ever gives EmvError or the card's own PAN, never a different card number."""

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers import emv
from tools.models import emvcard

PAN = "4761739001010010"
EXP = "2812"
PROFILES = emvcard.PROFILES


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=80), st.sampled_from([0x5A, 0x57, 0x5F24, 0x9F38, 0xBF0C]))
def test_random_bytes_only_raise_emv_error(data, tag):
    try:
        emv.find(data, tag)
        emv.parse_dol(data)
    except emv.EmvError:
        pass
    for fn in (emv.parse_afl, emv.gpo_afl, emv.choose_aid, emv.track2, emv.pan_from_5a):
        try:
            fn(data)
        except emv.EmvError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2), st.integers(0, 300), st.integers(1, 6))
def test_nested_length_overflows(depth, claimed, extra):
    inner = emvcard.tlv(0x5A, emvcard.bcd_digits(PAN))
    data = inner
    for _ in range(depth + 1):
        data = emvcard.tlv(0x70, data)
    # The outer template claims more (or fewer) bytes than it holds.
    bad = bytes([0x70, 0x81, claimed & 0xFF]) + data[2:]
    try:
        found = emv.find(bad, 0x5A)
    except emv.EmvError:
        return
    assert found is None or emv.pan_from_5a(found) == PAN


def _pan_zones(resp):
    """Byte ranges holding a PAN copy (the TLV with its tag and length, two bytes of margin)."""
    zones = []
    for needle in (emvcard.bcd_digits(PAN), emvcard.track2_value(PAN, EXP)):
        i = resp.find(needle)
        while i >= 0:
            zones.append((i - 4, i + len(needle) + 2))
            i = resp.find(needle, i + 1)
    return zones


class Mutated:
    """The card, with its n-th response mutated."""

    def __init__(self, card, index, kind, pos, value):
        self.card = card
        self.index = index
        self.kind = kind
        self.pos = pos
        self.value = value
        self.count = 0
        self.touched_pan = False

    def __call__(self, apdu):
        resp = self.card.apdu(apdu)
        self.count += 1
        if self.count - 1 != self.index:
            return resp
        p = self.pos % (len(resp) + 1)
        for lo, hi in _pan_zones(resp):
            if lo <= p < hi:
                self.touched_pan = True
        b = bytearray(resp)
        if self.kind == "replace" and p < len(b):
            b[p] = self.value
        elif self.kind == "insert":
            b.insert(p, self.value)
        elif self.kind == "delete" and p < len(b):
            del b[p]
        elif self.kind == "truncate":
            b = b[:p]
        return bytes(b)


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(PROFILES), st.integers(0, 10),
       st.sampled_from(["replace", "insert", "delete", "truncate"]),
       st.integers(0, 400), st.integers(0, 255))
def test_mutated_card_responses_never_give_a_wrong_pan(profile, index, kind, pos, value):
    mutated = Mutated(profile(PAN, EXP), index, kind, pos, value)
    try:
        pan, expiry = emv.read_card(mutated, emv.default_values())
    except emv.EmvError:
        return
    if mutated.touched_pan:
        # Damage inside a PAN's own bytes can only be caught by the Luhn digit and by the
        # other copies; what we check there is that whatever comes out is a valid number.
        assert emv.luhn_ok(pan)
        return
    assert pan == PAN, (profile.__name__, index, kind, pos, value, pan)


def test_every_single_digit_change_in_the_pan_is_caught():
    for i in range(len(PAN)):
        for d in "0123456789":
            if d == PAN[i]:
                continue
            wrong = PAN[:i] + d + PAN[i + 1:]
            try:
                emv.pan_from_5a(emvcard.bcd_digits(wrong))
            except emv.EmvError:
                continue
            raise AssertionError(wrong)
