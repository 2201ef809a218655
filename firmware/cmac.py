"""AES-CMAC (NIST SP 800-38B, RFC 4493) on MicroPython's `cryptolib`.

MicroPython has no CMAC, only the raw AES block cipher, so the mode is built here. It runs on
the ESP32, on the unix port and on CPython (through the `cryptolib` shim in tests_host/shims).
The MAC of every host message goes through `cmac()`, so it works on one 16-byte scratch buffer
and never slices the message into new objects.
"""

from cryptolib import aes
from micropython import const

_BLOCK = const(16)
_ECB = const(1)
# Rb for a 128-bit block cipher (SP 800-38B 5.3): folded in when the doubled value overflows.
_RB = const(0x87)


def _double(block):
    # Multiplication by x in GF(2^128), in place (SP 800-38B 6.1, steps 2-3).
    carry = 0
    for i in range(_BLOCK - 1, -1, -1):
        b = block[i]
        block[i] = ((b << 1) & 0xFF) | carry
        carry = b >> 7
    if carry:
        block[_BLOCK - 1] ^= _RB


def cmac(key, data):
    """Return the 16-byte AES-CMAC of `data` (bytes, bytearray or memoryview) under `key`."""
    cipher = aes(key, _ECB)
    subkey = bytearray(_BLOCK)
    cipher.encrypt(subkey, subkey)  # L = AES(K, 0^128)
    _double(subkey)  # K1
    n = len(data)
    complete = n > 0 and n % _BLOCK == 0
    if not complete:
        _double(subkey)  # K2: the last block is padded
    # Index of the last block (a zero-length message has one, all padding).
    last = n - _BLOCK if complete else n - n % _BLOCK
    state = bytearray(_BLOCK)
    pos = 0
    while pos < last:
        for i in range(_BLOCK):
            state[i] ^= data[pos + i]
        cipher.encrypt(state, state)
        pos += _BLOCK
    tail = n - last
    for i in range(tail):
        state[i] ^= data[last + i] ^ subkey[i]
    if tail < _BLOCK:
        state[tail] ^= 0x80 ^ subkey[tail]  # padding 10*
        for i in range(tail + 1, _BLOCK):
            state[i] ^= subkey[i]
    cipher.encrypt(state, state)
    return bytes(state)
