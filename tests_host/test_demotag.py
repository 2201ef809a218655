"""tools/demotag.py: what it prints is the record the readers decode, page by page."""

import binascii
import re

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
