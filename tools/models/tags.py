"""Virtual ISO 14443-A PICCs (cards and tags) for the card-reader models (MFRC522, PN532).

A PICC here is a plain object that a reader model drives frame by frame:

- `uid` (bytes, 4 or 7), `atqa` (2 bytes, as sent: LSB first), `sak` (int, final SAK),
  `iso_dep` (False: none of these speaks ISO 14443-4).
- ISO 14443-3 activation (`reqa`, `anticollision`, `select`, `unexpected`, `field_on`): the
  IDLE / READY / ACTIVE / HALT states of ISO 14443-3 section 6.3; the reader model does the
  bit-level collision arithmetic with `cascade_levels` and `bcc`.
- `command(frame) -> bytes or None` for frames after selection, CRC_A removed on the way in and
  added by the reader model on the way out. None is silence. A real tag answers some errors with
  a 4-bit NAK; the models treat a NAK as silence (a reader sees a failed exchange either way, and
  the tag drops to IDLE after it just as after silence).

`NTAG213`, `NTAG215` (NFC Forum type 2, 7-byte UID) and `MifareClassic1K` (4- or 7-byte UID).
MIFARE Classic needs Crypto1 authentication before READ: the reader model calls
`classic_auth(block, key_type, key)`. The models do not implement Crypto1: once authenticated the
channel is treated as plain (the MFRC522 and PN532 encrypt and decrypt transparently, so a
driver never sees ciphertext either).

MicroPython-compatible (no dataclasses, no typing, no f-strings).
"""

import binascii

CASCADE_TAG = 0x88  # ISO 14443-3 6.5.4: CT, first byte of a CLn that is not the last
SEL_CODES = (0x93, 0x95, 0x97)  # SEL for cascade levels 1, 2, 3
SAK_CASCADE = 0x04  # SAK bit 3: UID not complete
REQA = 0x26
WUPA = 0x52
HLTA = 0x50

IDLE = 0
READY = 1
ACTIVE = 2
HALT = 3


def bcc(four):
    """Block check character: XOR of the four bytes of a CLn."""
    return four[0] ^ four[1] ^ four[2] ^ four[3]


def cascade_levels(uid):
    """The 4-byte CLn chunks a PICC sends at each cascade level (CT + 3 UID bytes before the
    last level)."""
    uid = bytes(uid)
    if len(uid) == 4:
        return [uid]
    if len(uid) == 7:
        return [bytes([CASCADE_TAG]) + uid[0:3], uid[3:7]]
    if len(uid) == 10:
        return [bytes([CASCADE_TAG]) + uid[0:3], bytes([CASCADE_TAG]) + uid[3:6], uid[6:10]]
    raise ValueError("UID must be 4, 7 or 10 bytes")


def crc_a(data, preset=0x6363):
    """CRC_A of ISO 14443-3 annex B (reflected 0x1021, preset 0x6363): 2 bytes, LSB first."""
    crc = preset
    for byte in data:
        byte ^= crc & 0xFF
        byte = (byte ^ (byte << 4)) & 0xFF
        crc = (crc >> 8) ^ (byte << 8) ^ (byte << 3) ^ (byte >> 4)
    return bytes((crc & 0xFF, crc >> 8))


class Picc:
    """ISO 14443-3 type A state machine common to the tags below."""

    iso_dep = False

    def __init__(self, uid, atqa, sak):
        self.uid = bytes(uid)
        self.atqa = bytes(atqa)
        self.sak = sak
        self.levels = cascade_levels(self.uid)
        self.state = IDLE
        self.level = 0
        self._was_halted = False
        self.reads = 0  # READ commands answered (tests count re-reads with it)

    def field_on(self):
        """Power-up in a field: IDLE (ISO 14443-3 6.3.1)."""
        self.state = IDLE
        self.level = 0
        self._was_halted = False
        self._deselected()

    def _deselected(self):
        pass

    def unexpected(self):
        """Any frame not valid in the current state: back to IDLE, or HALT if the PICC came
        from HALT (6.3.3, READY* / ACTIVE*)."""
        self.state = HALT if self._was_halted else IDLE
        self.level = 0
        self._deselected()

    def reqa(self, wakeup):
        """REQA (or WUPA when `wakeup`): the ATQA, or None."""
        if self.state == IDLE or (wakeup and self.state == HALT):
            self._was_halted = self.state == HALT
            self.state = READY
            self.level = 0
            return self.atqa
        if self.state != HALT:
            self.unexpected()
        return None

    def anticollision(self, sel):
        """The 5 bytes (CLn + BCC) this PICC sends to an ANTICOLLISION at `sel`, or None."""
        if self.state != READY or SEL_CODES[self.level] != sel:
            return None
        cln = self.levels[self.level]
        return cln + bytes([bcc(cln)])

    def select(self, sel, cln):
        """SELECT with a full CLn: the SAK for this level, or None (not addressed)."""
        if self.state != READY or SEL_CODES[self.level] != sel:
            return None
        if bytes(cln) != self.levels[self.level]:
            self.unexpected()
            return None
        if self.level + 1 < len(self.levels):
            self.level += 1
            return SAK_CASCADE
        self.state = ACTIVE
        return self.sak

    def command(self, frame):
        if self.state != ACTIVE:
            return None
        if len(frame) == 2 and frame[0] == HLTA and frame[1] == 0:
            self.state = HALT
            self._was_halted = True
            self._deselected()
            return None
        response = self._command(frame)
        if response is None:
            self.unexpected()
        return response

    def _command(self, frame):
        return None


class _NTAG21x(Picc):
    """NTAG213/215: 4-byte pages; page 0-2 UID, BCC and lock bytes, page 3 the NFC capability
    container, user memory from page 4 (NXP NTAG213/215/216 datasheet, 8.5)."""

    PAGES = 0
    VERSION = b""
    CC_SIZE = 0

    def __init__(self, uid, memory=None):
        if len(uid) != 7:
            raise ValueError("NTAG21x UIDs are 7 bytes")
        Picc.__init__(self, uid, b"\x44\x00", 0x00)
        size = self.PAGES * 4
        mem = bytearray(size)
        u = self.uid
        mem[0:4] = bytes((u[0], u[1], u[2], CASCADE_TAG ^ u[0] ^ u[1] ^ u[2]))
        mem[4:8] = u[3:7]
        mem[8] = u[3] ^ u[4] ^ u[5] ^ u[6]
        mem[12:16] = bytes((0xE1, 0x10, self.CC_SIZE, 0x00))
        if memory is not None:
            mem[16:16 + len(memory)] = memory
        self.memory = mem

    def write_page(self, page, data):
        self.memory[page * 4:page * 4 + 4] = data

    def _command(self, frame):
        cmd = frame[0]
        if cmd == 0x30 and len(frame) == 2:
            page = frame[1]
            if page >= self.PAGES:
                return None  # NAK (as silence, see module docstring)
            self.reads += 1
            out = bytearray(16)
            for i in range(16):  # READ rolls over to page 0 past the last page (8.5.1)
                out[i] = self.memory[(page * 4 + i) % (self.PAGES * 4)]
            return bytes(out)
        if cmd == 0x60 and len(frame) == 1:
            return self.VERSION
        return None


class NTAG213(_NTAG21x):
    PAGES = 45
    VERSION = b"\x00\x04\x04\x02\x01\x00\x0f\x03"
    CC_SIZE = 0x12


class NTAG215(_NTAG21x):
    PAGES = 135
    VERSION = b"\x00\x04\x04\x02\x01\x00\x11\x03"
    CC_SIZE = 0x3E


DEFAULT_KEY = b"\xff" * 6


class MifareClassic1K(Picc):
    """MIFARE Classic 1K: 16 sectors of 4 blocks of 16 bytes; block 0 holds the UID, the last
    block of each sector (the trailer) key A, access bits, key B. Every sector starts with the
    transport keys FF..FF. A READ needs an authentication to the block's sector first."""

    def __init__(self, uid, memory=None):
        atqa = b"\x04\x00" if len(uid) == 4 else b"\x44\x00"
        Picc.__init__(self, uid, atqa, 0x08)
        self.memory = bytearray(1024)
        if memory is not None:
            self.memory[0:len(memory)] = memory
        else:
            for sector in range(16):
                self.set_keys(sector, DEFAULT_KEY, DEFAULT_KEY)
        mem = self.memory
        u = self.uid
        if len(u) == 4:
            mem[0:4] = u
            mem[4] = bcc(u)
        else:
            mem[0:7] = u
        mem[5] = 0x08
        mem[6:8] = b"\x04\x00"
        self._auth_sector = None

    def set_keys(self, sector, key_a, key_b):
        t = (sector * 4 + 3) * 16
        self.memory[t:t + 6] = key_a
        self.memory[t + 6:t + 10] = b"\xff\x07\x80\x69"  # transport access bits
        self.memory[t + 10:t + 16] = key_b

    def write_block(self, block, data):
        self.memory[block * 16:block * 16 + 16] = data

    def _deselected(self):
        self._auth_sector = None

    def classic_auth(self, block, key_type, key):
        """Crypto1 three-pass authentication, reduced to the key check: True when `key` is
        the sector's key A (`key_type` 0x60 or "A") or key B (0x61 or "B"). A failed
        authentication sends the card back to IDLE, as the real card does."""
        if self.state != ACTIVE or not 0 <= block < 64:
            self.unexpected()
            return False
        t = (block // 4 * 4 + 3) * 16
        if key_type in (0x60, "A"):
            stored = self.memory[t:t + 6]
        else:
            stored = self.memory[t + 10:t + 16]
        if bytes(stored) != bytes(key):
            self.unexpected()
            return False
        self._auth_sector = block // 4
        return True

    def _command(self, frame):
        if frame[0] == 0x30 and len(frame) == 2:
            block = frame[1]
            if block >= 64 or self._auth_sector != block // 4:
                return None  # NAK, then IDLE
            self.reads += 1
            out = bytearray(self.memory[block * 16:block * 16 + 16])
            if block % 4 == 3:
                out[0:6] = bytes(6)  # key A never reads back
            return bytes(out)
        return None


def _uid_from(pan, expiry, size):
    crc = binascii.crc32((pan + expiry).encode()) & 0xFFFFFFFF
    b = crc.to_bytes(4, "big")
    if size == 7:
        return b"\x04" + b + b"\x5a\x80"  # 0x04: NXP's manufacturer code
    first = b[0]
    if first in (CASCADE_TAG, 0x08):  # CT and the random-UID prefix are not plain UIDs
        first ^= 0x01
    return bytes([first]) + b[1:4]


def demo_ntag(pan, expiry, uid=None, kind=None):
    """An NTAG215 (or `kind`, e.g. NTAG213) carrying our demo record at pages 4 to 9."""
    from drivers import democard

    kind = kind or NTAG215
    tag = kind(uid or _uid_from(pan, expiry, 7))
    rec = democard.encode(pan, expiry)
    start = democard.NTAG_FIRST_PAGE * 4
    tag.memory[start:start + len(rec)] = rec
    return tag


def blank_ntag(pan, expiry):
    """An NTAG215 with nothing written on it (a foreign tag), its UID made from pan and expiry
    so that each scenario card is a tag of its own."""
    return NTAG215(_uid_from(pan, expiry, 7))


def demo_classic(pan, expiry, uid=None, key_a=DEFAULT_KEY):
    """A MIFARE Classic 1K carrying our demo record in blocks 4 and 5 (sector 1, key A)."""
    from drivers import democard

    card = MifareClassic1K(uid or _uid_from(pan, expiry, 4))
    card.set_keys(1, key_a, DEFAULT_KEY)
    rec = democard.encode(pan, expiry)
    start = democard.CLASSIC_FIRST_BLOCK * 16
    card.memory[start:start + len(rec)] = rec
    return card
