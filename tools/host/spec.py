"""The host protocol's wire layout, written once (docs/protocol.md), and the MAC.

`SPEC` is a pyiso8583 spec: ASCII MTI, binary 8-byte bitmaps, ASCII numerics, ASCII LL/LLL
length prefixes, raw binary for fields 52, 53, 64 and 128. The firmware's own codec
(`firmware/iso8583.py`) is tested against it.

Messages are handled as `(mti, fields)`: `fields` maps the field number as a string ("11") to a
`str` (n, an, ans) or `bytes` (b). The MAC field is added by `encode_msg` and checked and removed
by `decode_msg`; callers never put it in `fields`.
"""

import iso8583
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.cmac import CMAC


def _fixed(enc, length, desc):
    return {"data_enc": enc, "len_enc": "ascii", "len_type": 0, "max_len": length, "desc": desc}


def _var(len_type, length, desc):
    return {"data_enc": "ascii", "len_enc": "ascii", "len_type": len_type, "max_len": length,
            "desc": desc}


SPEC = {
    "h": _fixed("ascii", 0, "Message Header (none)"),
    "t": _fixed("ascii", 4, "Message Type Identifier"),
    "p": _fixed("b", 8, "Bitmap, Primary"),
    "1": _fixed("b", 8, "Bitmap, Secondary"),
    "2": _var(2, 19, "Primary Account Number (PAN)"),
    "3": _fixed("ascii", 6, "Processing Code"),
    "4": _fixed("ascii", 12, "Amount, Transaction (minor units)"),
    "7": _fixed("ascii", 10, "Transmission Date and Time MMDDhhmmss (UTC)"),
    "11": _fixed("ascii", 6, "System Trace Audit Number (STAN)"),
    "12": _fixed("ascii", 6, "Local Time hhmmss"),
    "13": _fixed("ascii", 4, "Local Date MMDD"),
    "14": _fixed("ascii", 4, "Card Expiry YYMM"),
    "22": _fixed("ascii", 3, "POS Entry Mode"),
    "25": _fixed("ascii", 2, "POS Condition Code"),
    "37": _fixed("ascii", 12, "Retrieval Reference Number (RRN)"),
    "38": _fixed("ascii", 6, "Authorisation Code"),
    "39": _fixed("ascii", 2, "Response Code (reversal request: reason)"),
    "41": _fixed("ascii", 8, "Terminal ID"),
    "42": _fixed("ascii", 15, "Merchant ID"),
    "49": _fixed("ascii", 3, "Currency Code (ISO 4217 numeric)"),
    "52": _fixed("b", 16, "PIN Block, ISO 9564 format 4, enciphered"),
    "53": _fixed("b", 12, "Security Related Control Information: DUKPT KSN"),
    "60": _var(3, 999, "Batch Number (6 digits)"),
    "64": _fixed("b", 8, "MAC (no secondary bitmap)"),
    "90": _fixed("ascii", 42, "Original Data Elements"),
    "128": _fixed("b", 8, "MAC (secondary bitmap present)"),
}

# Fields whose content must be ASCII digits (format n); pyiso8583 does not check content.
NUMERIC_FIELDS = frozenset(["2", "3", "4", "7", "11", "12", "13", "14", "22", "25", "49", "90"])
BINARY_FIELDS = frozenset(k for k, v in SPEC.items() if k.isdigit() and k != "1"
                          and v["data_enc"] == "b")
MAC_LEN = 8

# Message type indicators (docs/protocol.md "Messages").
PURCHASE, PURCHASE_RESP = "0200", "0210"
ADVICE, ADVICE_RESP = "0220", "0230"
REVERSAL, REVERSAL_REPEAT, REVERSAL_RESP = "0400", "0401", "0410"
QUERY, QUERY_RESP = "0600", "0610"


class DecodeError(ValueError):
    """The frame is not a message of this protocol (garbage, unknown field, bad content)."""


class MacError(ValueError):
    """The message decoded but its MAC is missing or wrong; `mti` and `fields` are kept."""

    def __init__(self, msg, mti, fields):
        super().__init__(msg)
        self.mti = mti
        self.fields = fields


def mac(data, mac_key):
    """AES-CMAC (SP 800-38B) over `data`, truncated to its first 8 bytes."""
    c = CMAC(algorithms.AES(mac_key))
    c.update(bytes(data))
    return c.finalize()[:MAC_LEN]


def mac_field(fields):
    """The MAC's field number: 128 when a field above 64 is present, else 64."""
    return "128" if any(int(k) > 64 for k in fields if k.isdigit()) else "64"


def _normalise(fields):
    out = {}
    for key, value in fields.items():
        key = str(key)
        if key in ("64", "128"):
            raise ValueError("the MAC is added by encode_msg, do not pass field %s" % key)
        if key not in SPEC or not key.isdigit() or key == "1":
            raise ValueError("field %s is not in the protocol" % key)
        if isinstance(value, int) and key in NUMERIC_FIELDS:
            value = str(value).rjust(SPEC[key]["max_len"], "0")
        if SPEC[key]["data_enc"] == "b":
            value = bytes(value).hex().upper()  # pyiso8583 carries binary fields as hex text
        out[key] = value
    return out


def encode_msg(mti, fields, mac_key, corrupt_mac=False):
    """The frame (without length prefix) for `mti` and `fields`, MAC appended.

    Integers given for fixed numeric fields are zero-padded. `corrupt_mac` flips the MAC's last
    bit (fault injection).
    """
    doc = _normalise(fields)
    doc["t"] = mti
    doc[mac_field(doc)] = "00" * MAC_LEN
    frame, _ = iso8583.encode(doc, SPEC)
    code = bytearray(mac(frame[:-MAC_LEN], mac_key))
    if corrupt_mac:
        code[-1] ^= 0x01
    return bytes(frame[:-MAC_LEN]) + bytes(code)


def decode_frame(frame):
    """`(mti, fields)` with the MAC field left in; raises DecodeError. No MAC check."""
    try:
        doc, _ = iso8583.decode(bytes(frame), SPEC)
    except (iso8583.DecodeError, KeyError, ValueError, TypeError, IndexError) as exc:
        raise DecodeError("undecodable frame: %s" % exc) from None
    mti = doc.pop("t")
    doc.pop("h", None)
    doc.pop("p", None)
    doc.pop("1", None)
    for key in BINARY_FIELDS.intersection(doc):
        doc[key] = bytes.fromhex(doc[key])
    if not mti.isdigit():
        raise DecodeError("MTI %r is not numeric" % mti)
    for key in NUMERIC_FIELDS.intersection(doc):
        if not doc[key].isdigit():
            raise DecodeError("field %s is not numeric: %r" % (key, doc[key]))
    return mti, doc


def decode_msg(frame, mac_key):
    """`(mti, fields)` of a frame (without length prefix), MAC checked and removed.

    Raises DecodeError for a frame that is not a protocol message, MacError (carrying `mti` and
    `fields`) when the MAC is missing, misplaced or wrong.
    """
    mti, fields = decode_frame(frame)
    want = mac_field(fields)
    other = "64" if want == "128" else "128"
    code = fields.pop(want, None)
    if other in fields:
        fields.pop(other)
        raise MacError("MAC in field %s, expected %s" % (other, want), mti, fields)
    if code is None:
        raise MacError("no MAC (field %s)" % want, mti, fields)
    if mac(bytes(frame)[:-MAC_LEN], mac_key) != code:
        raise MacError("wrong MAC", mti, fields)
    return mti, fields


def frame_with_length(frame):
    """The 2-byte big-endian length prefix, then the frame."""
    return len(frame).to_bytes(2, "big") + bytes(frame)
