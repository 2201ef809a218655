"""Virtual EMV contactless cards (ISO 14443-4 type A) that answer APDUs with realistic TLV data.

A card here is a PICC as the PN532 model (tools/models/pn532.py) hosts it: `uid`, `atqa`, `sak`
(0x20: ISO 14443-4 compliant), `iso_dep` True, `ats` (with its TL byte) and `apdu(cmd)` returning
the response data and SW1 SW2. After each APDU `busy_us` holds the card's processing time for it,
which the reader model adds to the RF time: a contactless card takes a few ms for a SELECT or a
READ RECORD and tens of ms for GET PROCESSING OPTIONS (qVSDC signs its dynamic data there).

Profiles (each a function returning a card):
- `visa_like(pan, expiry)`: PPSE with one Visa AID, PDOL (TTQ, amount, UN, currency...), format 2
  GPO, PAN in 5A and expiry in 5F24 in the second record of SFI 1.
- `track2_only(pan, expiry)`: only a track 2 equivalent (57) in its single record.
- `long_pdol(pan, expiry)`: a PDOL asking 14 tags; GPO refused (6700) if the data is not exactly
  the length asked.
- `multi_sfi(pan, expiry)`: records over SFIs 1, 2 and 3 (PAN in SFI 2, expiry in SFI 3), and
  READ RECORD answered 6Cxx unless Le is exact.
- `mastercard_like(pan, expiry)`: two AIDs in the PPSE (priority picks the second listed),
  format 1 GPO (80), SELECT AID answered 61xx (GET RESPONSE), 5A + 57 + 5F24 in one record.
MicroPython-compatible (the simulated board runs it inside the firmware process).
"""


def tlv(tag, value):
    """BER-TLV encoding of one object (short or long-form length)."""
    t = bytes([tag]) if tag < 0x100 else bytes([tag >> 8, tag & 0xFF])
    n = len(value)
    if n < 0x80:
        ln = bytes([n])
    elif n < 0x100:
        ln = bytes([0x81, n])
    else:
        ln = bytes([0x82, n >> 8, n & 0xFF])
    return t + ln + bytes(value)


def bcd_digits(digits, pad_to=None):
    """Digits (and 'D') as packed nibbles, right-padded with F."""
    s = digits
    if len(s) % 2:
        s += "F"
    if pad_to is not None:
        s += "F" * (pad_to * 2 - len(s))
    return bytes(int(s[i:i + 2], 16) for i in range(0, len(s), 2))


def track2_value(pan, expiry, service="201"):
    return bcd_digits(pan + "D" + expiry + service + "0000000000")


_OK = b"\x90\x00"

# Card processing times (us), typical of contactless payment cards.
SELECT_US = 4000
SELECT_AID_US = 6000
GPO_US = 45000  # qVSDC: fDDA signature computed in GPO
GPO_F1_US = 12000  # M/Chip: GPO only returns AIP/AFL, the cryptogram is in GENERATE AC
READ_US = 4000
OTHER_US = 1500


class EmvCard:
    iso_dep = True
    sak = 0x20

    def __init__(self, pan, expiry, uid=None, aids=None, pdol=b"", gpo_format=2, afl=None,
                 records=None, gpo_extra=b"", gpo_us=GPO_US, sw61_select=False,
                 exact_le=False):
        self.pan = pan
        self.expiry = expiry
        if uid is None:
            # A random-looking 4-byte UID (first byte 08: "random ID", as payment cards use).
            h = 0
            for c in pan:
                h = (h * 31 + ord(c)) & 0xFFFFFF
            uid = bytes([0x08, h >> 16, (h >> 8) & 0xFF, h & 0xFF])
        self.uid = uid
        self.atqa = b"\x04\x00" if len(uid) == 4 else b"\x44\x00"  # as sent: LSB first
        # TL, T0 (FSCI 8: 256 bytes; TA TB TC follow), TA, TB (FWI 8: 77 ms), TC.
        self.ats = b"\x05\x78\x80\x80\x02"
        self.aids = aids or [(b"\xA0\x00\x00\x00\x03\x10\x10", b"VISA CREDIT", 1)]
        self.pdol = pdol
        self.gpo_format = gpo_format
        self.afl = afl if afl is not None else b"\x08\x01\x01\x00"
        self.records = records or {}
        self.gpo_extra = gpo_extra
        self.gpo_us = gpo_us
        self.sw61_select = sw61_select
        self.exact_le = exact_le
        self.selected = None
        self.pending = b""  # for GET RESPONSE
        self.busy_us = 0
        self.log = []  # the last APDUs received, for tests

    def _pdol_len(self):
        n = 0
        i = 0
        d = self.pdol
        while i < len(d):
            i += 2 if d[i] & 0x1F == 0x1F else 1
            n += d[i]
            i += 1
        return n

    def ppse_fci(self):
        entries = b""
        for aid, label, prio in self.aids:
            body = tlv(0x4F, aid) + tlv(0x50, label)
            if prio is not None:
                body += tlv(0x87, bytes([prio]))
            entries += tlv(0x61, body)
        return tlv(0x6F, tlv(0x84, b"2PAY.SYS.DDF01") + tlv(0xA5, tlv(0xBF0C, entries)))

    def aid_fci(self, aid, label):
        body = tlv(0x50, label) + tlv(0x87, b"\x01")
        if self.pdol:
            body += tlv(0x9F38, self.pdol)
        return tlv(0x6F, tlv(0x84, aid) + tlv(0xA5, body))

    def gpo_response(self):
        aip = b"\x20\x40" if self.gpo_format == 2 else b"\x19\x80"
        if self.gpo_format == 1:
            return tlv(0x80, aip + self.afl)
        body = tlv(0x82, aip) + tlv(0x94, self.afl) + tlv(0x9F36, b"\x00\x2A")
        body += tlv(0x9F26, b"\x1F\x3E\x5D\x7C\x9B\xBA\xD9\xF8") + tlv(0x9F10, b"\x06\x01\x0A\x03")
        return tlv(0x77, body + self.gpo_extra)

    def apdu(self, cmd):
        self.log.append(bytes(cmd))
        if len(self.log) > 64:
            self.log.pop(0)
        resp, self.busy_us = self._apdu(bytes(cmd))
        return resp

    def _apdu(self, cmd):
        if len(cmd) < 4:
            return b"\x67\x00", OTHER_US
        cla, ins, p1, p2 = cmd[0], cmd[1], cmd[2], cmd[3]
        if ins == 0xA4 and p1 == 0x04:
            name = cmd[5:5 + cmd[4]] if len(cmd) > 5 else b""
            if name == b"2PAY.SYS.DDF01":
                self.selected = None  # the PPSE is not an application
                return self.ppse_fci() + _OK, SELECT_US
            for aid, label, _prio in self.aids:
                if name == aid:
                    self.selected = aid
                    fci = self.aid_fci(aid, label)
                    if self.sw61_select:
                        self.pending = fci
                        return bytes([0x61, len(fci)]), SELECT_AID_US
                    return fci + _OK, SELECT_AID_US
            return b"\x6A\x82", SELECT_US
        if ins == 0xC0 and cla == 0x00:
            data, self.pending = self.pending, b""
            if not data:
                return b"\x69\x85", OTHER_US
            return data + _OK, OTHER_US
        if ins == 0xA8 and cla == 0x80:
            if self.selected is None:
                return b"\x69\x85", OTHER_US
            if len(cmd) < 7 or cmd[5] != 0x83 or cmd[6] != self._pdol_len() \
                    or cmd[4] != cmd[6] + 2 or len(cmd) < 7 + cmd[6]:
                return b"\x67\x00", OTHER_US
            return self.gpo_response() + _OK, self.gpo_us
        if ins == 0xB2 and cla == 0x00:
            sfi = p2 >> 3
            rec = self.records.get((sfi, p1))
            if rec is None or self.selected is None:
                return b"\x6A\x83", READ_US
            le = cmd[4] if len(cmd) == 5 else 0
            if self.exact_le and le != len(rec) % 256:
                return bytes([0x6C, len(rec) % 256]), OTHER_US
            return rec + _OK, READ_US
        return b"\x6D\x00", OTHER_US


def _rec(*objs):
    return tlv(0x70, b"".join(objs))


_NAME = tlv(0x5F20, b"CARDHOLDER/TEST")
_PDOL_SHORT = bytes.fromhex("9F66049F02069F37045F2A02")


def visa_like(pan, expiry, **kw):
    records = {
        (1, 1): _rec(_NAME, tlv(0x9F1F, b"0123456789")),
        (1, 2): _rec(tlv(0x5A, bcd_digits(pan)), tlv(0x5F24, bcd_digits(expiry + "31")),
                     tlv(0x5F34, b"\x01"), tlv(0x9F07, b"\xFF\x00")),
    }
    return EmvCard(pan, expiry, pdol=_PDOL_SHORT, afl=b"\x08\x01\x02\x00", records=records, **kw)


def track2_only(pan, expiry, **kw):
    records = {(1, 1): _rec(tlv(0x57, track2_value(pan, expiry)), _NAME)}
    return EmvCard(pan, expiry, pdol=_PDOL_SHORT, records=records, **kw)


_PDOL_LONG = bytes.fromhex(
    "9F6604" "9F0206" "9F0306" "9F1A02" "9505" "5F2A02" "9A03" "9C01" "9F3704"
    "9F3501" "9F4502" "9F4C08" "9F3403" "9F2103")


def long_pdol(pan, expiry, **kw):
    records = {(1, 1): _rec(tlv(0x5A, bcd_digits(pan)), tlv(0x5F24, bcd_digits(expiry + "31")))}
    return EmvCard(pan, expiry, pdol=_PDOL_LONG, records=records, **kw)


def multi_sfi(pan, expiry, **kw):
    records = {
        (1, 1): _rec(_NAME),
        (2, 1): _rec(tlv(0x9F08, b"\x00\x02")),
        (2, 2): _rec(tlv(0x5A, bcd_digits(pan))),
        (3, 1): _rec(tlv(0x5F24, bcd_digits(expiry + "31")), tlv(0x5F25, b"\x22\x01\x01")),
    }
    afl = b"\x08\x01\x01\x00" b"\x10\x01\x02\x01" b"\x18\x01\x01\x00"
    return EmvCard(pan, expiry, pdol=_PDOL_SHORT, afl=afl, records=records, exact_le=True, **kw)


def mastercard_like(pan, expiry, **kw):
    aids = [(b"\xA0\x00\x00\x00\x04\x30\x60", b"MAESTRO", 2),
            (b"\xA0\x00\x00\x00\x04\x10\x10", b"MASTERCARD", 1)]
    records = {
        (1, 1): _rec(tlv(0x9F42, b"\x09\x78")),
        (2, 1): _rec(tlv(0x57, track2_value(pan, expiry)), tlv(0x5A, bcd_digits(pan)),
                     tlv(0x5F24, bcd_digits(expiry + "31"))),
    }
    kw.setdefault("uid", b"\x04\x5A\x21\x72\x9C\x3B\x80")
    return EmvCard(pan, expiry, aids=aids, gpo_format=1, afl=b"\x08\x01\x01\x00\x10\x01\x01\x00",
                   records=records, gpo_us=GPO_F1_US, sw61_select=True, **kw)


PROFILES = (visa_like, track2_only, long_pdol, multi_sfi, mastercard_like)
