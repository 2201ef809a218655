"""Model of the TI TCA8418 keypad scan IC at its I2C bus (address 0x34), with a membrane keypad.

    chip = TCA8418(clock, membrane)        # i2c.attach(0x34, chip); membrane: KeypadMatrix-like
    chip.int_pin                           # a SimPin: open drain, low while an interrupt is up

What it models, from the datasheet (SCPS215): the register file (CFG 0x01, INT_STAT 0x02,
KEY_LCK_EC 0x03, the KEY_EVENT_A..J FIFO read port 0x04, KP_GPIO1-3 0x1D-0x1F, DEBOUNCE_DIS1-3
0x29-0x2B, GPIO_PULL1-3 0x2C-0x2E and the other GPIO banks as plain registers); an I2C write
sets the register pointer, then writes registers; a read returns registers from the pointer on.
CFG bit 7 (AI) makes the pointer move on after each byte, except that KEY_EVENT_A stays put
(it is the FIFO's read port). The chip scans the rows and columns that KP_GPIO puts in keypad
mode, on its own clock, whatever its host is doing: a key whose contact has been steady for
`debounce_ms` (the datasheet's Keypad Switching Characteristics bound it at 60 ms; 30 here) goes
into the 10-entry FIFO as one byte, bit 7 set for a press, clear for a release, bits 6-0 the key
number row * 10 + column + 1. KEY_LCK_EC bits 3-0 count the events; reading KEY_EVENT_A takes
the oldest (0 when empty). A press or release that finds the FIFO full sets OVR_FLOW_INT and is
lost, unless CFG bit 5 (OVR_FLOW_M) is set: then it pushes the oldest out. CFG bit 0 (KE_IEN)
sets K_INT (INT_STAT bit 0) with each event, bit 3 (OVR_FLOW_IEN) lets an overflow pull INT
too; INT is low while an enabled INT_STAT bit is set, and writing 1 to an INT_STAT bit clears it
(K_INT stays set while events are left in the FIFO). Debounce disabled (DEBOUNCE_DIS) makes
the chip take a contact as it reads it, chatter included.

The membrane gives the contacts: `contacts(now_us)` -> a bit mask, bit (row * 4 + col) of a 4x4
pad (tools/models/keypad.py, KeypadMatrix). The chip is evaluated lazily, up to the virtual
clock's now, at every bus access and INT pin read and whenever `run()` is called, stepping its
scan every `scan_us`.
"""

from tools.models.bus import SimPin

ADDRESS = 0x34

CFG = 0x01
INT_STAT = 0x02
KEY_LCK_EC = 0x03
KEY_EVENT_A = 0x04
KP_GPIO1 = 0x1D
KP_GPIO2 = 0x1E
KP_GPIO3 = 0x1F
DEBOUNCE_DIS1 = 0x29
DEBOUNCE_DIS2 = 0x2A
_LAST_REG = 0x2E

CFG_AI = 0x80
CFG_OVR_FLOW_M = 0x20
CFG_INT_CFG = 0x10
CFG_OVR_FLOW_IEN = 0x08
CFG_KE_IEN = 0x01
K_INT = 0x01
OVR_FLOW_INT = 0x08

_FIFO = 10


def key_number(row, col):
    """The TCA8418's number for the key at `row`, `col`: row * 10 + col + 1."""
    return row * 10 + col + 1


class TCA8418:
    def __init__(self, clock, membrane, *, ncols=4, nrows=4, debounce_ms=30, scan_us=1000):
        self.clock = clock
        self.membrane = membrane
        self.nrows = nrows
        self.ncols = ncols
        self.debounce_us = debounce_ms * 1000
        self.scan_us = scan_us
        self.regs = bytearray(_LAST_REG + 1)
        self.fifo = []
        self.overflows = 0  # events lost to a full FIFO, or pushed out of it
        self.int_pin = SimPin("tca8418_int", SimPin.IN, SimPin.PULL_UP)
        self.int_pin.reader = self._int_level
        self._ptr = 0
        self._scanned_us = clock.now()
        self._reading = 0  # each key's contact as last scanned
        self._since = [0] * (nrows * ncols)  # when each key's reading last changed
        self._state = 0  # each key's debounced state
        self.transactions = 0

    # ---- the scan -----------------------------------------------------------------------------

    def _keypad_keys(self):
        rows = self.regs[KP_GPIO1]
        cols = self.regs[KP_GPIO2] | self.regs[KP_GPIO3] << 8
        mask = 0
        for r in range(self.nrows):
            if rows >> r & 1:
                for c in range(self.ncols):
                    if cols >> c & 1:
                        mask |= 1 << (r * self.ncols + c)
        return mask

    def run(self):
        """Scan up to the clock's now."""
        now = self.clock.now()
        keys = self._keypad_keys()
        t = self._scanned_us
        if not keys:
            self._scanned_us = now
            return
        while t + self.scan_us <= now:
            t += self.scan_us
            self._scan(t, keys)
        self._scanned_us = t

    def _scan(self, t, keys):
        reading = self.membrane.contacts(t) & keys
        debounce_off = self.regs[DEBOUNCE_DIS1] or self.regs[DEBOUNCE_DIS2]
        for k in range(self.nrows * self.ncols):
            bit = 1 << k
            if not keys & bit:
                continue
            now_closed = reading & bit
            if now_closed != self._reading & bit:
                self._reading ^= bit
                self._since[k] = t
                if not debounce_off:
                    continue
            if bool(now_closed) == bool(self._state & bit):
                continue
            if not debounce_off and t - self._since[k] < self.debounce_us:
                continue
            self._state ^= bit
            self._event((0x80 if now_closed else 0) | key_number(k // self.ncols, k % self.ncols))

    def _event(self, code):
        if len(self.fifo) >= _FIFO:
            self.overflows += 1
            self.regs[INT_STAT] |= OVR_FLOW_INT
            if not self.regs[CFG] & CFG_OVR_FLOW_M:
                return
            self.fifo.pop(0)
        self.fifo.append(code)
        if self.regs[CFG] & CFG_KE_IEN:
            self.regs[INT_STAT] |= K_INT

    def _int_level(self):
        self.run()
        pending = self.regs[INT_STAT] & K_INT and self.regs[CFG] & CFG_KE_IEN
        pending = pending or self.regs[INT_STAT] & OVR_FLOW_INT and self.regs[CFG] & \
            CFG_OVR_FLOW_IEN
        return 0 if pending else None  # open drain: released, the pull-up holds it high

    # ---- the bus ------------------------------------------------------------------------------

    def _read_reg(self, reg):
        if reg == KEY_EVENT_A:
            return self.fifo.pop(0) if self.fifo else 0
        if reg == KEY_LCK_EC:
            return (self.regs[KEY_LCK_EC] & 0xF0) | len(self.fifo)
        if KEY_EVENT_A < reg <= KEY_EVENT_A + 9:
            i = reg - KEY_EVENT_A
            return self.fifo[i] if i < len(self.fifo) else 0
        return self.regs[reg] if reg <= _LAST_REG else 0

    def _write_reg(self, reg, value):
        if reg == INT_STAT:
            cleared = self.regs[INT_STAT] & ~value
            if self.fifo:
                cleared |= self.regs[INT_STAT] & K_INT  # set while events are left
            self.regs[INT_STAT] = cleared & 0x1F
        elif reg == KEY_LCK_EC:
            self.regs[reg] = value & 0x70  # the lock bits; the count is the chip's
        elif reg <= _LAST_REG and not KEY_EVENT_A <= reg <= KEY_EVENT_A + 9:
            self.regs[reg] = value

    def _advance(self, reg):
        if not self.regs[CFG] & CFG_AI or reg == KEY_EVENT_A:
            return reg
        return reg + 1 if reg < _LAST_REG else reg

    def i2c_write(self, data, stop=True):
        self.run()
        self.transactions += 1
        if not data:
            return True
        self._ptr = data[0]
        for b in data[1:]:
            self._write_reg(self._ptr, b)
            self._ptr = self._advance(self._ptr)
        return True

    def i2c_read(self, n):
        self.run()
        self.transactions += 1
        out = bytearray(n)
        for i in range(n):
            out[i] = self._read_reg(self._ptr)
            self._ptr = self._advance(self._ptr)
        return bytes(out)
