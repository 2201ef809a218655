"""The tests' reading of an ISO 9564-1 format 4 PIN block, written apart from the firmware's
(firmware/pinblock.py only enciphers: the terminal never deciphers a PIN); checked against
psec in test_crypto_peer.py. Runs on MicroPython (cryptolib) and CPython (tests_host/shims).

    PIN field  4 | N | PIN digits | A-fill to 16 nibbles | 16 random nibbles
    PAN field  M | PAN (right-justified in 12 digits when shorter) | 0-fill   (M = len - 12)
    block      AES(K, AES(K, PIN field) XOR PAN field)
"""

from cryptolib import aes


def _pan_field(pan):
    if not 1 <= len(pan) <= 19 or not all("0" <= c <= "9" for c in pan):
        raise ValueError("PAN")
    text = "%X" % max(0, len(pan) - 12) + ("0" * (12 - len(pan)) + pan if len(pan) < 12 else pan)
    text += "0" * (32 - len(text))
    return bytes(int(text[i:i + 2], 16) for i in range(0, 32, 2))


def decipher(pin_key, block, pan):
    """The PIN (a str of digits) in an enciphered format 4 block; ValueError when the block is
    not a well-formed format 4 PIN field under this key and PAN."""
    if len(block) != 16:
        raise ValueError("PIN block length")
    field = bytearray(block)
    aes(pin_key, 1).decrypt(field, field)
    pan_field = _pan_field(pan)
    for i in range(16):
        field[i] ^= pan_field[i]
    aes(pin_key, 1).decrypt(field, field)
    nibbles = "".join("%02X" % b for b in field[:8])
    if nibbles[0] != "4":
        raise ValueError("not format 4")
    n = int(nibbles[1], 16)
    if not 4 <= n <= 12:
        raise ValueError("PIN length")
    pin, fill = nibbles[2:2 + n], nibbles[2 + n:16]
    if not all("0" <= c <= "9" for c in pin):
        raise ValueError("PIN digit")
    if fill != "A" * len(fill):
        raise ValueError("PIN fill")
    return pin
