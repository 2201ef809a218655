"""Compact ISO 8583 (1987) codec for the terminal's host link, with its MAC, its 2-byte length
framing and response matching.

It knows exactly the fields of docs/protocol.md and nothing else: an unknown field is an error
in both directions, so a host speaking another dialect is noticed at once instead of misparsed.
No ISO 8583 library exists for MicroPython; tests_host/test_iso8583_peer.py checks this codec
against pyiso8583 with the project's one wire spec (tools/host/spec.py).

Values: str for n, an and ans fields (n may also be given as an int when encoding), bytes for
b fields. The MAC (field 64, or 128 when a secondary bitmap is present) is added by `encode` and
checked by `decode`; callers never pass it.

Everything `decode` rejects raises ValueError (MacError for a missing or wrong MAC), whatever
bytes arrive, so the runtime needs one except clause for a hostile or broken host.
"""

from micropython import const

from .cmac import cmac

# A field's spec is one small int: format | length-prefix digits | length or maximum length.
# Ints in a dict cost the heap only the dict; tuples would cost about 500 bytes more, which
# ROMFS cannot keep in flash.
_N = const(0 << 12)  # ASCII digits
_AN = const(1 << 12)  # printable ASCII (an: hosts put spaces in auth codes, so not only alnum)
_ANS = const(2 << 12)  # printable ASCII
_B = const(3 << 12)  # raw bytes
_FORMAT = const(3 << 12)
_LL = const(2 << 10)  # LLVAR: two length digits before the value
_LLL = const(3 << 10)  # LLLVAR
_SIZE = const(0x3FF)
_MAC_LEN = const(8)
_MAC_PRIMARY = const(64)
_MAC_SECONDARY = const(128)
_MIN_MESSAGE = const(12)  # MTI + primary bitmap

# field: format | prefix | fixed length (no prefix) or maximum length
_SPEC = {
    2: _N | _LL | 19,
    3: _N | 6,
    4: _N | 12,
    7: _N | 10,
    11: _N | 6,
    12: _N | 6,
    13: _N | 4,
    14: _N | 4,
    22: _N | 3,
    25: _N | 2,
    37: _AN | 12,
    38: _AN | 6,
    39: _AN | 2,
    41: _ANS | 8,
    42: _ANS | 15,
    49: _N | 3,
    52: _B | 16,
    53: _B | 12,  # the DUKPT KSN: initial key ID (8 bytes) + transaction counter (4)
    60: _ANS | _LLL | 999,
    64: _B | 8,
    90: _N | 42,
    128: _B | 8,
}
# Encoding order: ascending field number, as the bitmap requires.
_ORDER = const((2, 3, 4, 7, 11, 12, 13, 14, 22, 25, 37, 38, 39, 41, 42, 49, 52, 53, 60, 90))
# Fields whose values `matches` compares (docs/protocol.md: TID, STAN, processing code, amount).
_MATCH = const((41, 11, 3, 4))
# Not sent in answers, but an answer that does carry it must agree: an approval in another
# currency is not an approval of this purchase.
_MATCH_IF_SENT = const((49,))


class MacError(ValueError):
    """The message carries no MAC, or a MAC that does not verify under the MAC key, or the
    key resolver has no key for it (a KSN that is not the one expected)."""


def _check_chars(raw, lo, hi):
    for c in raw:
        if c < lo or c > hi:
            return False
    return True


def _spec(spec):
    """(format, length-prefix digits, length) of a _SPEC entry."""
    return spec & _FORMAT, (spec >> 10) & 3, spec & _SIZE


def _encode_field(field, value):
    fmt, prefix, size = _spec(_SPEC[field])
    if fmt == _B:
        if not isinstance(value, (bytes, bytearray)):
            raise ValueError("field %d: bytes expected" % field)
        raw = bytes(value)
    else:
        if fmt == _N and isinstance(value, int) and not isinstance(value, bool):
            if value < 0:
                raise ValueError("field %d: negative" % field)
            value = str(value)
        if not isinstance(value, str):
            raise ValueError("field %d: str expected" % field)
        raw = value.encode()
        if fmt == _N:
            if not _check_chars(raw, 0x30, 0x39):
                raise ValueError("field %d: not digits" % field)
            if not prefix and len(raw) < size:
                raw = b"0" * (size - len(raw)) + raw  # n fixed: right-justified, zero-filled
        elif not _check_chars(raw, 0x20, 0x7E):
            raise ValueError("field %d: not printable ASCII" % field)
    n = len(raw)
    if n > size or (not prefix and n != size) or (n == 0 and fmt == _N):
        raise ValueError("field %d: length %d" % (field, n))
    if prefix:
        return (("%02d" if prefix == 2 else "%03d") % n).encode() + raw
    return raw


def _set_bit(bitmap, field):
    bitmap[(field - 1) >> 3] |= 0x80 >> ((field - 1) & 7)


def _mac_ok(expected, got):
    # Compare all bytes whatever the first difference, so timing says nothing about the MAC.
    diff = 0
    for i in range(_MAC_LEN):
        diff |= expected[i] ^ got[i]
    return diff == 0


def encode(mti, fields, mac_key):
    """Return the ISO message (without length prefix) for `mti` (4 digits) and `fields`
    ({number: value}), with its MAC appended. Raises ValueError on an unknown field, a value
    of the wrong type, characters or length, or a caller-supplied MAC field."""
    if not isinstance(mti, str) or len(mti) != 4 or not _check_chars(mti.encode(), 0x30, 0x39):
        raise ValueError("MTI")
    secondary = False
    for field in fields:
        if field not in _SPEC or field == _MAC_PRIMARY or field == _MAC_SECONDARY:
            raise ValueError("field %r not allowed" % (field,))
        if field > 64:
            secondary = True
    bitmap = bytearray(16 if secondary else 8)
    pieces = [mti.encode(), bitmap]
    for field in _ORDER:
        if field in fields:
            pieces.append(_encode_field(field, fields[field]))
            _set_bit(bitmap, field)
    if secondary:
        _set_bit(bitmap, 1)
        _set_bit(bitmap, _MAC_SECONDARY)
    else:
        _set_bit(bitmap, _MAC_PRIMARY)
    body = b"".join(pieces)
    return body + cmac(mac_key, body)[:_MAC_LEN]


def _text(view, lo, hi, field):
    # Checks the characters in place, then makes the one str (str() takes any buffer).
    for c in view:
        if c < lo or c > hi:
            raise ValueError("field %d: bad character" % field)
    return str(view, "ascii")


def decode(message, mac_key):
    """Parse an ISO message (without length prefix) into (mti, {field: value}); the dict holds
    the MAC field too. Raises ValueError on anything malformed and MacError when the MAC is
    missing or wrong. mac_key None skips the MAC check (logging, tools), never for trust.

    `mac_key` may be a resolver instead: called as `mac_key(mti, fields)` once the message has
    parsed, it returns the key to check the MAC under (DUKPT: derived from the KSN in field
    53), or None when there is none (MacError). A bytearray it returns is a working key made for
    this check: it is zeroed after."""
    view = memoryview(message)
    end = len(view)
    if end < _MIN_MESSAGE:
        raise ValueError("truncated")
    mti = _text(view[:4], 0x30, 0x39, 0)  # "field 0": the MTI
    secondary = view[4] & 0x80
    pos = 20 if secondary else 12
    if end < pos:
        raise ValueError("truncated bitmap")
    if secondary and not (view[12] or view[13] or view[14] or view[15] or view[16]
                          or view[17] or view[18] or view[19]):
        raise ValueError("empty secondary bitmap")
    mac_field = _MAC_SECONDARY if secondary else _MAC_PRIMARY
    fields = {}
    mac_at = -1
    bitmap_bytes = pos - 4
    for i in range(bitmap_bytes):
        byte = view[4 + i]
        if not byte:
            continue
        for bit in range(8):
            if not byte & (0x80 >> bit):
                continue
            field = i * 8 + bit + 1
            if field == 1:
                continue
            spec = _SPEC.get(field)
            if spec is None:
                raise ValueError("unknown field %d" % field)
            if field == _MAC_PRIMARY or field == _MAC_SECONDARY:
                # The MAC closes the message: 64 is the last bit of a primary-only bitmap
                # and 128 the last of a secondary one, so only the wrong one needs catching.
                if field != mac_field:
                    raise ValueError("MAC field %d misplaced" % field)
                mac_at = pos
            fmt, prefix, size = _spec(spec)
            if prefix:
                if end < pos + prefix:
                    raise ValueError("truncated field %d" % field)
                length = int(_text(view[pos : pos + prefix], 0x30, 0x39, field))
                pos += prefix
                # An empty numeric field (a PAN of no digits) is no number at all: refused, as
                # the host's decoder refuses it. Empty text (ans) is a value.
                if length > size or length == 0 and fmt == _N:
                    raise ValueError("field %d: length %d" % (field, length))
            else:
                length = size
            if end < pos + length:
                raise ValueError("truncated field %d" % field)
            chunk = view[pos : pos + length]
            if fmt == _B:
                fields[field] = bytes(chunk)
            elif fmt == _N:
                fields[field] = _text(chunk, 0x30, 0x39, field)
            else:
                fields[field] = _text(chunk, 0x20, 0x7E, field)
            pos += length
    if pos != end:
        raise ValueError("trailing bytes")
    if mac_at < 0:
        raise MacError("no MAC")
    if mac_key is None:
        return mti, fields
    key = mac_key
    if callable(mac_key):
        key = mac_key(mti, fields)
        if key is None:
            raise MacError("no key for this message")
    ok = _mac_ok(cmac(key, view[:mac_at]), fields[mac_field])
    if key is not mac_key and isinstance(key, bytearray):
        for i in range(len(key)):
            key[i] = 0
    if not ok:
        raise MacError("bad MAC")
    return mti, fields


def original_data(mti, stan, transmission_time):
    """Field 90 (original data elements): original MTI (4) + STAN (6) + field 7 (10) + 22 zeros."""
    return "%s%06d%010d%s" % (mti, int(stan), int(transmission_time), "0" * 22)


def answer_mti(request_mti):
    """The MTI that answers `request_mti`: 0200 -> 0210; a repeat (0401) is answered as 0410.
    Raises ValueError unless request_mti is 4 digits."""
    if not isinstance(request_mti, str) or len(request_mti) != 4:
        raise ValueError("MTI")
    if not _check_chars(request_mti.encode(), 0x30, 0x39):
        raise ValueError("MTI")
    return "%04d" % (int(request_mti) // 10 * 10 + 10)


def _normalised(field, value):
    if value is None:
        return None
    fmt, prefix, size = _spec(_SPEC[field])
    if fmt == _N and not prefix:
        value = str(value)
        if len(value) < size:
            value = "0" * (size - len(value)) + value
    return value


def matches(request_mti, request_fields, response_mti, response_fields):
    """True when the response answers the request: MTI = request MTI + 10 (class), and the
    terminal ID (41), STAN (11), processing code (3) and amount (4) are present in both and
    equal (numeric fields compared zero-filled, as they travel); the currency (49), if the
    response carries it, equals the request's."""
    try:
        if response_mti != answer_mti(request_mti):
            return False
    except ValueError:
        return False
    for field in _MATCH:
        mine = _normalised(field, request_fields.get(field))
        theirs = _normalised(field, response_fields.get(field))
        if mine is None or mine != theirs:
            return False
    for field in _MATCH_IF_SENT:
        theirs = response_fields.get(field)
        if theirs is not None and _normalised(field, theirs) != _normalised(
                field, request_fields.get(field)):
            return False
    return True
