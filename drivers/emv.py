"""EMV contactless read: the card number and expiry from a payment card over ISO-DEP.

Chip-independent: it runs over any `transceive(apdu) -> response` callable that carries an APDU
to an ISO 14443-4 card and returns the response data followed by SW1 SW2 (drivers/pn532.py gives
one through InDataExchange). The flow is the kernel-independent part of EMV Book B / Book C:

    SELECT PPSE "2PAY.SYS.DDF01"  -> FCI lists the AIDs (tag 61 entries in BF0C)
    SELECT AID (highest priority) -> FCI may carry a PDOL (9F38)
    GET PROCESSING OPTIONS        -> AIP + AFL (format 1 "80" or format 2 "77")
    READ RECORD for each AFL entry, until the PAN and the expiry are known

The PAN comes from tag 5A or from the track 2 equivalent (57: PAN 'D' YYMM ...), the expiry from
5F24 (YYMMDD) or from 57. Nothing is authenticated here: this is a terminal that sends the PAN
online, the issuer decides. Every parse is bounds-checked: malformed data raises `EmvError`
(a ValueError), never IndexError, and a PAN is only returned when it is all digits, 12 to 19 long,
passes the Luhn check (ISO/IEC 7812) and agrees with every other copy on the card.
"""

from micropython import const

_MAX_DEPTH = const(6)  # templates nest 3 deep in a PPSE FCI (6F > A5 > BF0C > 61)
_MAX_SW_TURNS = const(3)  # 61xx / 6Cxx round trips per command
_MAX_RECORDS = const(32)

PPSE = b"2PAY.SYS.DDF01"

# Terminal Transaction Qualifiers (EMV Book C-3): qVSDC supported (byte 1 b6), online PIN
# supported (b3); byte 2 b8: online cryptogram required (this terminal is online-only).
TTQ = b"\x24\x80\x00\x00"

# Tags whose format is numeric (n): padded and truncated on the left (EMV Book 3, 5.4).
_NUMERIC = const((0x9F02, 0x9F03, 0x5F2A, 0x9A, 0x9C, 0x9F1A, 0x9F21, 0x5F36))


class EmvError(ValueError):
    pass


def read_tag(buf, pos, end):
    """(tag, next position); tags of up to 3 bytes (EMV uses 1 and 2)."""
    if pos >= end:
        raise EmvError("TLV: tag past end")
    first = buf[pos]
    tag = first
    pos += 1
    if first & 0x1F == 0x1F:
        for _ in range(2):
            if pos >= end:
                raise EmvError("TLV: truncated tag")
            b = buf[pos]
            tag = (tag << 8) | b
            pos += 1
            if not b & 0x80:
                break
        else:
            raise EmvError("TLV: tag too long")
    return tag, pos


def read_len(buf, pos, end):
    """(length, next position): short form, or long form 81 xx / 82 xx xx."""
    if pos >= end:
        raise EmvError("TLV: length past end")
    b = buf[pos]
    pos += 1
    if b < 0x80:
        return b, pos
    n = b & 0x7F
    if n == 0 or n > 2:
        raise EmvError("TLV: bad length form %02X" % b)
    if pos + n > end:
        raise EmvError("TLV: truncated length")
    length = 0
    for _ in range(n):
        length = (length << 8) | buf[pos]
        pos += 1
    return length, pos


def parse(buf, start=0, end=None):
    """One level of BER-TLV: a list of (tag, start, end) of each value. '00' and 'FF' between
    objects are padding (EMV Book 3, Annex B)."""
    if end is None:
        end = len(buf)
    out = []
    pos = start
    while pos < end:
        if buf[pos] in (0x00, 0xFF):
            pos += 1
            continue
        tag, pos = read_tag(buf, pos, end)
        length, pos = read_len(buf, pos, end)
        if pos + length > end:
            raise EmvError("TLV: %X value overruns its container" % tag)
        out.append((tag, pos, pos + length))
        pos += length
    return out


def _constructed(tag):
    first = tag
    while first > 0xFF:
        first >>= 8
    return bool(first & 0x20)


def find_all(buf, tag, start=0, end=None, depth=0, out=None):
    """Every value of `tag` anywhere in the TLV data (constructed templates searched), as
    bytes, in order. The whole structure is checked, so damage anywhere raises EmvError."""
    if out is None:
        out = []
    if depth > _MAX_DEPTH:
        raise EmvError("TLV: nested too deep")
    for t, s, e in parse(buf, start, end):
        if t == tag:
            out.append(bytes(buf[s:e]))
        if _constructed(t):
            find_all(buf, tag, s, e, depth + 1, out)
    return out


def find(buf, tag):
    """The single value of `tag`, None when absent; EmvError if copies disagree."""
    values = find_all(buf, tag)
    if not values:
        return None
    for v in values[1:]:
        if v != values[0]:
            raise EmvError("TLV: %X appears with different values" % tag)
    return values[0]


def parse_dol(dol):
    """A data object list (PDOL, CDOL): [(tag, length)]."""
    out = []
    pos = 0
    end = len(dol)
    while pos < end:
        tag, pos = read_tag(dol, pos, end)
        length, pos = read_len(dol, pos, end)
        out.append((tag, length))
    return out


def _bcd2(value):
    value %= 100
    return bytes(((value // 10) << 4 | value % 10,))


def default_values():
    """What the terminal answers for the tags a PDOL commonly asks (EMV Book A, Table 5).
    The card is read before the amount is keyed, so the amount is zero."""
    try:
        from os import urandom

        unpredictable = urandom(4)
    except ImportError:  # pragma: no cover - ports without os.urandom
        unpredictable = b"\x00\x00\x00\x00"
    import time

    t = time.localtime()
    date = _bcd2(t[0]) + _bcd2(t[1]) + _bcd2(t[2])
    return {
        0x9F66: TTQ,
        0x9F02: bytes(6),
        0x9F03: bytes(6),
        0x9F37: unpredictable,
        0x5F2A: b"\x09\x78",  # EUR (settings: currency_code)
        0x9A: date,
        0x9C: b"\x00",  # purchase
        0x95: bytes(5),
        0x9F1A: b"\x02\x50",  # France
    }


def build_dol(dol, values):
    """The data for a DOL: each tag's value at exactly the length asked; a tag the terminal
    does not know is zeros (EMV Book 3, 5.4)."""
    out = bytearray()
    for tag, length in parse_dol(dol):
        value = values.get(tag)
        if value is None:
            out.extend(bytes(length))
            continue
        value = bytes(value)
        if len(value) > length:
            value = value[len(value) - length:] if tag in _NUMERIC else value[:length]
        elif len(value) < length:
            pad = bytes(length - len(value))
            value = pad + value if tag in _NUMERIC else value + pad
        out.extend(value)
    return bytes(out)


def parse_afl(afl):
    """Application File Locator: [(sfi, first, last)], each entry checked."""
    if len(afl) % 4 or not afl:
        raise EmvError("AFL: length %d" % len(afl))
    out = []
    for i in range(0, len(afl), 4):
        sfi = afl[i] >> 3
        first = afl[i + 1]
        last = afl[i + 2]
        if not 1 <= sfi <= 30 or first == 0 or last < first:
            raise EmvError("AFL: bad entry")
        out.append((sfi, first, last))
    return out


def _digits(value, allow_d=False):
    """Nibbles as a digit string, stopping at the trailing 'F' padding."""
    out = []
    for b in value:
        for nib in (b >> 4, b & 0x0F):
            out.append("0123456789ABCDEF"[nib])
    s = "".join(out).rstrip("F")
    for c in s:
        if c == "D" and allow_d:
            continue
        if c not in "0123456789":
            raise EmvError("not a digit")
    return s


def luhn_ok(pan):
    total = 0
    for i, c in enumerate(reversed(pan)):
        d = ord(c) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _check_pan(pan):
    if not 12 <= len(pan) <= 19 or not luhn_ok(pan):
        raise EmvError("not a card number")
    return pan


def _check_yymm(yymm):
    if len(yymm) != 4 or not yymm.isdigit() or not 1 <= int(yymm[2:]) <= 12:
        raise EmvError("bad expiry")
    return yymm


def pan_from_5a(value):
    return _check_pan(_digits(value))


def track2(value):
    """(pan, yymm) from a track 2 equivalent (57): PAN, separator D, YYMM, service code..."""
    s = _digits(value, allow_d=True)
    sep = s.find("D")
    if sep < 0:
        raise EmvError("track 2: no separator")
    return _check_pan(s[:sep]), _check_yymm(s[sep + 1:sep + 5])


def expiry_from_5f24(value):
    if len(value) != 3:
        raise EmvError("5F24: length")
    return _check_yymm(_digits(value)[:4])


class CardData:
    """PAN and expiry collected from several responses; every copy must agree."""

    def __init__(self):
        self.pan = None
        self.expiry = None  # from 5F24, preferred
        self.t2_expiry = None

    def _set_pan(self, pan):
        if self.pan is not None and self.pan != pan:
            raise EmvError("PAN copies disagree")
        self.pan = pan

    def add(self, buf):
        v = find(buf, 0x5A)
        if v is not None:
            self._set_pan(pan_from_5a(v))
        v = find(buf, 0x57)
        if v is not None:
            pan, yymm = track2(v)
            self._set_pan(pan)
            self.t2_expiry = yymm
        v = find(buf, 0x5F24)
        if v is not None:
            self.expiry = expiry_from_5f24(v)

    def done(self):
        return self.pan is not None and (self.expiry or self.t2_expiry) is not None

    def result(self):
        if not self.done():
            raise EmvError("no PAN or no expiry on the card")
        return self.pan, self.expiry or self.t2_expiry


def _sw(resp):
    if resp is None or len(resp) < 2:
        raise EmvError("no status word")
    return resp[-2], resp[-1]


def command(transceive, apdu):
    """Send an APDU; follow 61xx (GET RESPONSE) and 6Cxx (resend with the right Le), a few
    turns at most (ISO 7816-4, 5.1.3). Returns the data of a 9000 answer."""
    for _ in range(_MAX_SW_TURNS + 1):
        resp = transceive(apdu)
        sw1, sw2 = _sw(resp)
        if sw1 == 0x90 and sw2 == 0x00:
            return resp[:-2]
        if sw1 == 0x61:
            apdu = b"\x00\xC0\x00\x00" + bytes([sw2])
        elif sw1 == 0x6C:
            apdu = bytes(apdu[:-1]) + bytes([sw2])
        else:
            raise EmvError("status %02X%02X" % (sw1, sw2))
    raise EmvError("status word loop")


def select(name):
    return b"\x00\xA4\x04\x00" + bytes([len(name)]) + bytes(name) + b"\x00"


def choose_aid(fci):
    """The AID of the highest-priority entry (lowest 87 value; none means last)."""
    best = None
    best_rank = 0x100
    bf0c = find(fci, 0xBF0C)
    if bf0c is None:
        raise EmvError("PPSE: no directory")
    for t, s, e in parse(bf0c):
        if t != 0x61:
            continue
        aid = find(bf0c[s:e], 0x4F)
        if aid is None or not 5 <= len(aid) <= 16:
            continue
        prio = find(bf0c[s:e], 0x87)
        rank = prio[0] & 0x0F if prio else 0
        rank = rank or 0x10  # 0 or absent: no priority
        if rank < best_rank:
            best, best_rank = aid, rank
    if best is None:
        raise EmvError("PPSE: no application")
    return best


def gpo_command(pdol_data):
    body = b"\x83" + bytes([len(pdol_data)]) + pdol_data
    return b"\x80\xA8\x00\x00" + bytes([len(body)]) + body + b"\x00"


def gpo_afl(resp):
    """AFL from a GET PROCESSING OPTIONS answer, format 1 (80: AIP AFL) or 2 (77)."""
    items = parse(resp)
    if len(items) != 1:
        raise EmvError("GPO: not one template")
    tag, s, e = items[0]
    if tag == 0x80:
        if e - s < 2:
            raise EmvError("GPO: short format 1")
        return bytes(resp[s + 2:e])
    if tag == 0x77:
        return find(resp, 0x94) or b""
    raise EmvError("GPO: template %X" % tag)


def read_card(transceive, values=None):
    """(pan, expiry YYMM) of the contactless EMV card behind `transceive`, or EmvError."""
    if values is None:
        values = default_values()
    fci = command(transceive, select(PPSE))
    aid = choose_aid(fci)
    fci = command(transceive, select(aid))
    card = CardData()
    pdol = find(fci, 0x9F38)
    resp = command(transceive, gpo_command(build_dol(pdol, values) if pdol else b""))
    afl = gpo_afl(resp)
    card.add(resp)  # qVSDC returns track 2 and often 5A in the GPO answer itself
    if card.done():
        return card.result()
    if not afl:
        raise EmvError("GPO: no AFL and no PAN")
    count = 0
    for sfi, first, last in parse_afl(afl):
        for rec in range(first, last + 1):
            count += 1
            if count > _MAX_RECORDS:
                raise EmvError("AFL: too many records")
            data = command(transceive, bytes((0x00, 0xB2, rec, (sfi << 3) | 4, 0x00)))
            items = parse(data)
            if len(items) != 1 or items[0][0] != 0x70:
                raise EmvError("record: not a 70 template")
            card.add(data)
            # Stop as soon as both are known: every record costs card-in-field time.
            if card.done():
                return card.result()
    return card.result()
