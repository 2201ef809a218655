"""tools/demotag.py: what it prints is the record the readers decode, page by page."""

import binascii
import re

import pytest

from drivers import democard
from tools import demotag


def _written(out, what):
    return b"".join(binascii.unhexlify(h) for h in re.findall(what + r" \d+: ([0-9A-F]+)", out))


def test_pages_and_blocks_decode_to_the_card(capsys):
    assert demotag.main(["4761739001010010", "2812"]) == 0
    out = capsys.readouterr().out
    assert re.findall(r"page (\d+):", out) == ["4", "5", "6", "7", "8", "9"]
    for what in ("page", "block"):
        record = _written(out, what)[:democard.RECORD_LEN]
        assert democard.decode(record) == ("4761739001010010", "2812")


def test_bad_card_number_is_refused(capsys):
    assert demotag.main(["12", "2812"]) == 2
    assert "12 to 19 digits" in capsys.readouterr().err


@pytest.mark.parametrize("pan, expiry, words", [
    ("4761739001010011", "2812", "fails the Luhn check (its last digit would be 0)"),
    ("4761739001010010", "2813", "month 13 is not 01 to 12"),
    ("4761739001010010", "2800", "month 00 is not 01 to 12"),
    ("4761739001010010", "28", "YYMM"),
])
def test_what_cannot_be_a_card_is_refused(capsys, pan, expiry, words):
    assert demotag.main([pan, expiry]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and words in err


def test_the_luhn_check_is_the_firmware_s():
    """tools/cardnumber.py against drivers/emv.py, which refuses a card read off the air."""
    from drivers import emv
    from tools import cardnumber

    for n in range(100000):
        pan = "47617390%08d" % (n * 7919 % 10 ** 8)
        assert cardnumber.luhn_ok(pan) == emv.luhn_ok(pan), pan
        assert emv.luhn_ok(pan[:-1] + cardnumber.luhn_digit(pan[:-1]))
    for pan in ("4761739001010010", "5555000011112222", "4111111111111111", "378282246310005"):
        assert cardnumber.pan_error(pan) is None
