"""TI TCA8418 keypad scan controller on I2C (address 0x34), with a 4x4 membrane keypad.

Wiring: the keypad's 4 row lines to ROW0-3, its 4 column lines to COL0-3 (the chip has the
pull-ups), SDA/SCL to the board's I2C bus (shared with the OLED and the PN532), 3.3 V, GND. The
INT output (open drain, active low) is optional: without it the driver asks the chip how many
events it holds.

    keypad = TCA8418Keypad(i2c, timer=machine.Timer(1))   # bus and timer from the profile
    async for label in keypad: ...                        # '0'-'9', 'A'-'D', '*', '#'

Why this chip: it scans and debounces the matrix on its own clock and queues up to 10 press and
release events in its FIFO, so keys pressed while the ESP32 is inside a long C call (the crypto
of a TLS handshake, a flash erase), when no Python code runs at all, wait there. The driver
empties the FIFO every `poll_ms` from a timer callback (a soft interrupt on the ESP32) into a
ring buffer the async iterator drains, so the FIFO only has to hold what comes in during one
such call: 5 keys, 0.6 s of fast typing (docs/keypad.md).

Set-up (datasheet SCPS215, 8.3 and 8.6): ROW0-3 and COL0-3 in keypad mode (KP_GPIO1-3), the
chip's debounce on (DEBOUNCE_DIS1-3 = 0), old events read out, the interrupt flags cleared, then
CFG = KE_IEN | OVR_FLOW_IEN | INT_CFG. Events are read one register access at a time (field
reports tie burst reads to lock-ups). A press (bit 7 set) of key number row * 10 + col + 1 is a
key; releases are dropped: a held key is one key. An overflow (OVR_FLOW_INT) means the chip lost
presses: counted in `dropped`, as a full ring is.
"""

import asyncio

from micropython import const

from drivers.keypad import LAYOUT_4X4

if hasattr(asyncio, "sleep_ms"):
    _sleep_ms = asyncio.sleep_ms
else:  # CPython

    def _sleep_ms(ms):
        return asyncio.sleep(ms / 1000)


ADDRESS = const(0x34)
_CFG = const(0x01)
_INT_STAT = const(0x02)
_KEY_LCK_EC = const(0x03)
_KEY_EVENT_A = const(0x04)
_KP_GPIO1 = const(0x1D)
_DEBOUNCE_DIS1 = const(0x29)
_CFG_RUN = const(0x19)  # KE_IEN | OVR_FLOW_IEN | INT_CFG (INT pulses again while events wait)
_K_INT = const(0x01)
_OVR_FLOW_INT = const(0x08)
_PRESS = const(0x80)
_FIFO = const(10)
_PERIODIC = const(1)


class TCA8418Error(OSError):
    pass


class TCA8418Keypad:
    def __init__(self, i2c, *, addr=ADDRESS, labels=LAYOUT_4X4, int_pin=None, timer=None,
                 poll_ms=10, queue=16):
        if len(labels) > 8 or any(len(r) > 10 for r in labels):
            raise ValueError("the TCA8418 scans at most 8 rows of 10 columns")
        self._i2c = i2c
        self._addr = addr
        self._labels = labels
        self._int = int_pin
        self.poll_ms = poll_ms
        self._reg = bytearray(1)
        self._queue = bytearray(queue + 1)  # one slot free: head == tail means empty
        self._head = 0  # written by the reader only
        self._tail = 0  # written by the poll only
        self.dropped = 0
        self.faults = 0  # polls the bus failed (the next poll tries again)
        self._setup(len(labels), max(len(r) for r in labels))
        self._timer = timer
        if timer is not None:
            self._on_timer = self._tick  # made once: the callback allocates nothing
            timer.init(period=poll_ms, mode=_PERIODIC, callback=self._on_timer)

    def _write(self, reg, value):
        self._reg[0] = value
        try:
            self._i2c.writeto_mem(self._addr, reg, self._reg)
        except OSError as e:
            raise TCA8418Error("TCA8418 at 0x%02X does not answer (%s)" % (self._addr, e))

    def _read(self, reg):
        self._i2c.readfrom_mem_into(self._addr, reg, self._reg)
        return self._reg[0]

    def _setup(self, rows, cols):
        col_bits = (1 << cols) - 1
        self._write(_KP_GPIO1, (1 << rows) - 1)
        self._write(_KP_GPIO1 + 1, col_bits & 0xFF)
        self._write(_KP_GPIO1 + 2, col_bits >> 8)
        for i in range(3):
            self._write(_DEBOUNCE_DIS1 + i, 0)
        for _ in range(_FIFO):  # what a reset of the MCU alone left in the FIFO
            if not self._read(_KEY_EVENT_A):
                break
        self._write(_INT_STAT, 0x1F)
        self._write(_CFG, _CFG_RUN)

    def deinit(self):
        if self._timer is not None:
            self._timer.deinit()
            self._timer = None

    def _tick(self, _timer):
        try:
            self.poll()
        except OSError:  # a glitch on the shared bus: the events wait in the chip
            self.faults += 1

    def poll(self):
        """Move the chip's events into the ring. Allocates nothing."""
        if self._int is not None and self._int.value():
            return  # INT high: nothing waiting
        count = self._read(_KEY_LCK_EC) & 0x0F
        for _ in range(count):
            event = self._read(_KEY_EVENT_A)
            if not event:
                break
            if event & _PRESS:
                self._push(event & 0x7F)
        status = self._read(_INT_STAT)
        if status & _OVR_FLOW_INT:
            self.dropped += 1  # at least one; the chip does not say how many
        if status & (_K_INT | _OVR_FLOW_INT):
            self._write(_INT_STAT, status & (_K_INT | _OVR_FLOW_INT))

    def _push(self, number):
        row = (number - 1) // 10  # not divmod: its tuple would allocate
        col = number - 1 - row * 10
        if row >= len(self._labels) or col >= len(self._labels[row]):
            return  # a GPI event or a key outside our pad
        tail = self._tail
        nxt = tail + 1
        if nxt == len(self._queue):
            nxt = 0
        if nxt == self._head:
            self.dropped += 1
            return
        self._queue[tail] = row * 10 + col
        self._tail = nxt

    def pending(self):
        n = self._tail - self._head
        return n if n >= 0 else n + len(self._queue)

    def get(self):
        """The oldest key's label, or None."""
        head = self._head
        if head == self._tail:
            return None
        code = self._queue[head]
        head += 1
        self._head = 0 if head == len(self._queue) else head
        return self._labels[code // 10][code % 10]

    def __aiter__(self):
        return self

    async def __anext__(self):
        while self._head == self._tail:
            if self._timer is None:
                self.poll()
            await _sleep_ms(self.poll_ms)
        return self.get()
