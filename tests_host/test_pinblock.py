# portable: micropython
"""ISO 9564-1 format 4 PIN block: known answers (cross-checked with psec, see
test_crypto_peer.py), round trips and rejections.

Runs on CPython (pytest) and on the MicroPython unix port (tests_host/mprun.py)."""

from binascii import unhexlify

import pinblock_peer

from firmware import pinblock

_KEY = unhexlify("00112233445566778899AABBCCDDEEFF")
_PAN = "1234567890123456"
_FILL = bytes((1, 2, 3, 4, 5, 6, 7, 8))


def _raises(func, *args):
    try:
        func(*args)
    except ValueError:
        return True
    return False


def test_known_answers():
    block = pinblock.encipher(_KEY, bytearray(b"1234"), 4, _PAN, _FILL)
    assert block == unhexlify("225a306a3c02d26d35c241b3fe9bb6c4")
    block = pinblock.encipher(
        _KEY, bytearray(b"123456789012"), 12, "1234567890123456789", _FILL
    )
    assert block == unhexlify("bd93284843c691e6a2482eb5f68163de")
    # psec's documented example block.
    example = unhexlify("E4BE5B623AF7E006AC319E5B93544564")
    assert pinblock_peer.decipher(_KEY, example, _PAN) == "1234"


def test_round_trip():
    for pin in ("0000", "98765", "123456789012"):
        for pan in ("4", "12345678901", "476173900101", "4761739001010010", "1234567890123456789"):
            buf = bytearray(pin.encode())
            block = pinblock.encipher(_KEY, buf, len(pin), pan, _FILL)
            assert len(block) == 16
            assert pinblock_peer.decipher(_KEY, block, pan) == pin


def test_pin_buffer_longer_than_pin():
    # The keypad buffer is allocated once at the maximum length; only pin_len digits count.
    buf = bytearray(b"4321999999999")
    block = pinblock.encipher(_KEY, buf, 4, _PAN, _FILL)
    assert pinblock_peer.decipher(_KEY, block, _PAN) == "4321"


def test_pan_binding():
    block = pinblock.encipher(_KEY, bytearray(b"1234"), 4, _PAN, _FILL)
    # Another PAN gives a garbled PIN field, which must be rejected, not read as some PIN.
    assert _raises(pinblock_peer.decipher, _KEY, block, "1234567890123457")


def test_random_fill_changes_block():
    a = pinblock.encipher(_KEY, bytearray(b"1234"), 4, _PAN, _FILL)
    b = pinblock.encipher(_KEY, bytearray(b"1234"), 4, _PAN, bytes(8))
    assert a != b


def test_rejects_bad_input():
    assert _raises(pinblock.encipher, _KEY, bytearray(b"123"), 3, _PAN, _FILL)
    assert _raises(pinblock.encipher, _KEY, bytearray(b"1234567890123"), 13, _PAN, _FILL)
    assert _raises(pinblock.encipher, _KEY, bytearray(b"12"), 4, _PAN, _FILL)
    assert _raises(pinblock.encipher, _KEY, bytearray(b"12a4"), 4, _PAN, _FILL)
    assert _raises(pinblock.encipher, _KEY, bytearray(b"1234"), 4, "", _FILL)
    assert _raises(pinblock.encipher, _KEY, bytearray(b"1234"), 4, "12345678901234567890", _FILL)
    assert _raises(pinblock.encipher, _KEY, bytearray(b"1234"), 4, "1234x", _FILL)
    assert _raises(pinblock.encipher, _KEY, bytearray(b"1234"), 4, _PAN, bytes(7))
    assert _raises(pinblock_peer.decipher, _KEY, bytes(15), _PAN)
