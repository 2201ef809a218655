"""ISO 9564-1 format 4 PIN block (AES), as docs/protocol.md describes it.

    PIN field  4 | N | PIN digits | A-fill to 16 nibbles | 16 random nibbles
    PAN field  M | PAN (right-justified in 12 digits when shorter) | 0-fill   (M = len - 12)
    block      AES(K, AES(K, PIN field) XOR PAN field)

The PIN arrives as a bytearray of ASCII digits plus a length, never as a str, so the caller can
zero its buffer afterwards (S7: the PIN is never kept); the plaintext PIN field built here is
zeroed before returning for the same reason. The random fill is passed in so the function is
deterministic under test; on the board the caller passes os.urandom(8). The terminal only
enciphers: deciphering is the host's (tools/host/pinblock.py) and the tests'
(tests_host/pinblock_peer.py).
"""

from cryptolib import aes
from micropython import const

_ECB = const(1)
_BLOCK = const(16)
_PIN_MIN = const(4)
_PIN_MAX = const(12)
_PAN_MAX = const(19)
_FILL = const(0xA)


def _pan_field(pan):
    # Returns the 16-byte PAN field; raises ValueError unless pan is 1 to 19 ASCII digits.
    n = len(pan)
    if n < 1 or n > _PAN_MAX or not pan.isdigit():
        raise ValueError("PAN")
    nibbles = bytearray(32)  # 0-fill
    nibbles[0] = n - 12 if n > 12 else 0
    # Shorter than 12 digits: right-justified in the 12 nibbles after M, zeros to the left.
    start = 1 + (12 - n if n < 12 else 0)
    for i in range(n):
        c = ord(pan[i])
        if c < 0x30 or c > 0x39:  # isdigit() also accepts non-ASCII digits on CPython
            raise ValueError("PAN")
        nibbles[start + i] = c - 0x30
    field = bytearray(_BLOCK)
    for i in range(_BLOCK):
        field[i] = (nibbles[2 * i] << 4) | nibbles[2 * i + 1]
    return field


def encipher(pin_key, pin_digits, pin_len, pan, random_bytes):
    """Return the 16-byte enciphered format 4 PIN block.

    pin_digits: bytearray (or bytes) holding at least pin_len ASCII digits; pin_len 4 to 12.
    pan: the card number as a str of digits. random_bytes: 8 bytes of random fill.
    Raises ValueError on a bad PIN, PAN or fill.
    """
    if pin_len < _PIN_MIN or pin_len > _PIN_MAX or len(pin_digits) < pin_len:
        raise ValueError("PIN length")
    if len(random_bytes) != 8:
        raise ValueError("random fill")
    pan_field = _pan_field(pan)
    field = bytearray(_BLOCK)
    try:
        field[0] = 0x40 | pin_len
        # Nibbles 2..15: PIN digits, then A-fill; nibble i lives in byte i // 2.
        for i in range(14):
            if i < pin_len:
                d = pin_digits[i] - 0x30
                if d < 0 or d > 9:
                    raise ValueError("PIN digit")
            else:
                d = _FILL
            pos = 2 + i
            if pos & 1:
                field[pos >> 1] |= d
            else:
                field[pos >> 1] = d << 4
        field[8:16] = random_bytes
        cipher = aes(pin_key, _ECB)
        cipher.encrypt(field, field)
        for i in range(_BLOCK):
            field[i] ^= pan_field[i]
        cipher.encrypt(field, field)
        return bytes(field)
    finally:
        # The enciphered result has been copied out; wipe what may still hold the PIN.
        for i in range(_BLOCK):
            field[i] = 0
