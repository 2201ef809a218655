"""Our demo card format: a card number and expiry on a plain NFC tag or MIFARE Classic card.

Cheap tags (NTAG213/215, MIFARE Classic 1K) carry no EMV application, so for demos the PAN and
expiry are written on them in this 24-byte record, guarded by a CRC32 so that a half-read tag,
a foreign tag or a bit error is rejected instead of read as a wrong card number:

    offset  size  content
    0       4     magic b"PAY1"
    4       1     PAN length in digits (12 to 19)
    5       10    PAN as BCD, padded with 0xF nibbles
    15      2     expiry YYMM as BCD
    17      3     zero
    20      4     CRC32 (big-endian) of bytes 0 to 19

On NTAG213/215 it fills pages 4 to 9 (user memory starts at page 4); on MIFARE Classic 1K it
fills block 4 and the first half of block 5 (sector 1, read with key A).
"""

import binascii

RECORD_LEN = 24
MAGIC = b"PAY1"
NTAG_FIRST_PAGE = 4
CLASSIC_FIRST_BLOCK = 4


class CardFormatError(ValueError):
    pass


def _bcd(digits, size):
    out = bytearray(b"\xff" * size)
    for i in range(len(digits)):
        nibble = ord(digits[i]) - 48
        if i % 2 == 0:
            out[i // 2] = (nibble << 4) | 0x0F
        else:
            out[i // 2] = (out[i // 2] & 0xF0) | nibble
    return out


def encode(pan, expiry):
    """The 24-byte record for a PAN (12 to 19 digits) and expiry YYMM."""
    if not (12 <= len(pan) <= 19) or not pan.isdigit():
        raise CardFormatError("PAN must be 12 to 19 digits")
    if len(expiry) != 4 or not expiry.isdigit():
        raise CardFormatError("expiry must be YYMM")
    rec = bytearray(RECORD_LEN)
    rec[0:4] = MAGIC
    rec[4] = len(pan)
    rec[5:15] = _bcd(pan, 10)
    rec[15:17] = _bcd(expiry, 2)
    crc = binascii.crc32(bytes(rec[:20])) & 0xFFFFFFFF
    rec[20:24] = crc.to_bytes(4, "big")
    return bytes(rec)


def _digits(buf, start, count):
    out = []
    for i in range(count):
        byte = buf[start + i // 2]
        nibble = byte >> 4 if i % 2 == 0 else byte & 0x0F
        if nibble > 9:
            raise CardFormatError("not a digit")
        out.append(chr(48 + nibble))
    return "".join(out)


def decode(rec):
    """(pan, expiry) from a record; CardFormatError if it is not a whole, valid record."""
    if len(rec) < RECORD_LEN:
        raise CardFormatError("short record")
    if bytes(rec[0:4]) != MAGIC:
        raise CardFormatError("not a demo card")
    crc = binascii.crc32(bytes(rec[:20])) & 0xFFFFFFFF
    if int.from_bytes(bytes(rec[20:24]), "big") != crc:
        raise CardFormatError("CRC mismatch")
    length = rec[4]
    if not 12 <= length <= 19:
        raise CardFormatError("bad PAN length")
    return _digits(rec, 5, length), _digits(rec, 15, 4)
