"""The firmware's AES-CMAC and PIN block against independent implementations: the
`cryptography` package's CMAC, psec's ISO 9564 format 4 and the host simulator's PIN block.
CPython only."""

import pinblock_peer
import psec.pinblock
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.cmac import CMAC
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware import pinblock
from firmware.cmac import cmac
from tools.host import pinblock as host_pinblock

_keys = st.sampled_from((16, 24, 32)).flatmap(lambda n: st.binary(min_size=n, max_size=n))
_aes128 = st.binary(min_size=16, max_size=16)
_pins = st.text("0123456789", min_size=4, max_size=12)
_pans = st.text("0123456789", min_size=1, max_size=19)
_fills = st.binary(min_size=8, max_size=8)


def _reference_cmac(key, data):
    c = CMAC(algorithms.AES(key))
    c.update(data)
    return c.finalize()


@settings(max_examples=500, deadline=None)
@given(_keys, st.binary(max_size=200))
def test_cmac_matches_cryptography(key, data):
    assert cmac(key, data) == _reference_cmac(key, data)


def test_cmac_every_length_up_to_five_blocks():
    key = bytes(range(16))
    data = bytes(range(80))
    for n in range(81):
        assert cmac(key, data[:n]) == _reference_cmac(key, data[:n]), n


@settings(max_examples=300, deadline=None)
@given(_aes128, _pins, _pans, _fills)
def test_pinblock_same_bytes_as_psec(key, pin, pan, fill):
    original = psec.pinblock._urandom
    psec.pinblock._urandom = lambda n: fill  # psec draws its fill from os.urandom
    try:
        expected = psec.pinblock.encipher_pinblock_iso_4(key, pin, pan)
    finally:
        psec.pinblock._urandom = original
    block = pinblock.encipher(key, bytearray(pin.encode()), len(pin), pan, fill)
    assert block == expected
    assert block == host_pinblock.encipher(pin, pan, key, fill)


@settings(max_examples=300, deadline=None)
@given(_aes128, _pins, _pans, _fills)
def test_pinblock_both_directions(key, pin, pan, fill):
    ours = pinblock.encipher(key, bytearray(pin.encode()), len(pin), pan, fill)
    assert psec.pinblock.decipher_pinblock_iso_4(key, ours, pan) == pin
    assert host_pinblock.decipher(ours, pan, key) == pin
    theirs = psec.pinblock.encipher_pinblock_iso_4(key, pin, pan)
    assert pinblock_peer.decipher(key, theirs, pan) == pin


@settings(max_examples=500, deadline=None)
@given(_aes128, st.binary(min_size=16, max_size=16), _pans)
def test_decipher_agrees_on_garbage(key, block, pan):
    # Random blocks: ours accepts exactly what psec accepts, with the same PIN.
    try:
        expected = psec.pinblock.decipher_pinblock_iso_4(key, block, pan)
    except ValueError:
        expected = None
    try:
        got = pinblock_peer.decipher(key, block, pan)
    except ValueError:
        got = None
    assert got == expected
