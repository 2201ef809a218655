"""ISO 9564-1 format 4 PIN block (AES), host side: decipher, and encipher for test clients.

Plaintext PIN field: `4 | N | PIN digits | A-fill to 16 nibbles | 16 random nibbles`.
PAN field: `M-12 | PAN (left zero-padded to 12 digits) | 0-fill` (32 nibbles), M = PAN length.
Enciphered block: `AES(K, AES(K, PIN field) XOR PAN field)`.
"""

import os

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


class PinBlockError(ValueError):
    """The block does not decipher to a well-formed format-4 PIN field."""


def _aes(key, block, decrypt=False):
    cipher = Cipher(algorithms.AES(key), modes.ECB())
    op = cipher.decryptor() if decrypt else cipher.encryptor()
    return op.update(block) + op.finalize()


def pan_field(pan):
    if not pan.isdigit() or not 1 <= len(pan) <= 19:
        raise PinBlockError("bad PAN")
    m = max(len(pan), 12)
    nibbles = "%X" % (m - 12) + pan.rjust(12, "0")
    return bytes.fromhex(nibbles.ljust(32, "0"))


def pin_field(pin, random_bytes=None):
    if not pin.isdigit() or not 4 <= len(pin) <= 12:
        raise PinBlockError("PIN must be 4 to 12 digits")
    head = ("4%X" % len(pin) + pin).ljust(16, "A")
    tail = random_bytes if random_bytes is not None else os.urandom(8)
    return bytes.fromhex(head) + tail


def encipher(pin, pan, key, random_bytes=None):
    """Test-client side: the 16-byte enciphered PIN block for field 52."""
    inner = _aes(key, pin_field(pin, random_bytes))
    return _aes(key, bytes(a ^ b for a, b in zip(inner, pan_field(pan))))


def decipher(block, pan, key):
    """Host side: the clear PIN from the 16-byte field 52. Raises PinBlockError."""
    if len(block) != 16:
        raise PinBlockError("PIN block must be 16 bytes")
    inner = bytes(a ^ b for a, b in zip(_aes(key, block, True), pan_field(pan)))
    nibbles = _aes(key, inner, True).hex().upper()
    if nibbles[0] != "4":
        raise PinBlockError("not a format 4 PIN block")
    n = int(nibbles[1], 16)
    pin = nibbles[2:2 + n]
    if not 4 <= n <= 12 or not pin.isdigit() or nibbles[2 + n:16] != "A" * (14 - n):
        raise PinBlockError("malformed PIN field")
    return pin
