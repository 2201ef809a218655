"""4x4 membrane matrix keypad: rows driven, columns read, scanned by a timer interrupt.

Wiring: 8 pins. The 4 row lines are outputs, idle high, driven low one at a time; the 4 column
lines are inputs with pull-ups (the board profile configures the pins, this driver only calls
`value()`). A pressed key joins its row to its column, so while its row is low its column reads
0. Standard membrane layout, rows top to bottom: "123A", "456B", "789C", "*0#D".

    keypad = Keypad(rows, cols, timer=machine.Timer(1))   # Pins and timer from the profile
    async for label in keypad: ...                        # '0'-'9', 'A'-'D', '*', '#'

Why a timer: scanned from the event loop, a key is only seen while the loop runs, and whatever
holds the loop (a TLS handshake, a long GC pass, a DNS lookup) swallows a short press: a typed
amount then reaches the host with a digit missing. With `timer` the scan runs every `scan_ms`
in the timer's callback, whatever the event loop is doing, into a ring buffer the async
iterator drains. On the ESP32 a Timer callback is a soft interrupt (ports/esp32/machine_timer.c
schedules it): it runs between any two bytecodes, so during Python code and sleeps, but not
inside one long C call (the crypto steps of a TLS handshake, a flash erase); the runtime holds
background TLS handshakes while a cashier types for that reason (firmware/app.py). A keypad
controller with its own event FIFO (drivers/tca8418.py) keeps presses through those too
(docs/keypad.md). Without `timer` the iterator scans as it waits (host tests, tools).

Debounce: a key counts as pressed once it has read closed for `debounce_ms` without a change,
and released likewise; membrane contacts chatter for a few ms (the datasheets of the common
modules say 5 ms), so 30 ms rejects chatter and still accepts a quick 40 ms tap. A held key is
one key: there is no auto-repeat.

Ghosting: with no diodes, three closed keys at three corners of a rectangle (two rows, two
columns) connect the fourth corner's row and column, so a key nobody pressed reads closed, and
which of the four is the ghost cannot be known. When a scan sees a rectangle, every key that is
not already counted as pressed is blocked: it is ignored until it has been released, so neither
the ghost nor the real fourth key comes out, even after the others are let go.

Keys wait in a ring buffer of `queue` entries (bytes, allocated once); a key that finds it full
is dropped and counted in `dropped` (the older keys are the ones the cashier already saw). The
scan writes only the ring's tail and the iterator only its head, so an interrupt between any
two bytecodes of either leaves it whole. `scan(now_ms)` is a pure step that allocates nothing,
so it may run in an interrupt and tests drive it on a virtual clock.
"""

import asyncio

from micropython import const

try:
    from time import ticks_diff
    from time import ticks_ms as _ticks_ms
except ImportError:  # CPython, for the host tests
    from time import monotonic_ns as _mono

    def _ticks_ms():
        return _mono() // 1000000

    def ticks_diff(a, b):
        return a - b


if hasattr(asyncio, "sleep_ms"):
    _sleep_ms = asyncio.sleep_ms
else:  # CPython

    def _sleep_ms(ms):
        return asyncio.sleep(ms / 1000)


_PERIODIC = const(1)  # machine.Timer.PERIODIC on every port
_DRAIN_MS = const(20)  # how often the iterator looks at the ring when a timer scans

LAYOUT_4X4 = ("123A", "456B", "789C", "*0#D")

# Per-key debounced state.
_UP = const(0)
_DOWN = const(1)  # pressed and reported
_BLOCKED = const(2)  # closed while a ghost rectangle was seen: ignored until released


class Keypad:
    def __init__(self, rows, cols, *, labels=LAYOUT_4X4, debounce_ms=30, scan_ms=5, queue=16,
                 ticks_ms=None, timer=None):
        if len(labels) != len(rows) or any(len(r) != len(cols) for r in labels):
            raise ValueError("labels must be one string per row, one character per column")
        if len(cols) > 8:
            raise ValueError("at most 8 columns")  # a row's reading is one byte
        self._rows = tuple(rows)
        self._cols = tuple(cols)
        self._labels = tuple(ch for row in labels for ch in row)
        self.debounce_ms = debounce_ms
        self.scan_ms = scan_ms
        self._ticks = ticks_ms or _ticks_ms
        n = len(self._labels)
        self._raw = bytearray(len(rows))  # this scan's closed columns, a bit mask per row
        self._last = bytearray(n)  # each key's reading in the previous scan
        self._state = bytearray(n)  # _UP, _DOWN or _BLOCKED
        self._since = [0] * n  # when each key's reading last changed, ms
        # Key indexes; one slot stays free, so head == tail means empty without a count that
        # both sides would write.
        self._queue = bytearray(queue + 1)
        self._head = 0  # written by the reader only
        self._tail = 0  # written by the scan only
        self.dropped = 0
        self.ghosted = False  # the last scan saw a rectangle
        self._active = 0  # some key is closed or not yet settled open
        for row in self._rows:
            row.value(1)
        self._timer = timer
        self._interrupted = False
        if timer is not None:
            # The bound method made once: the callback allocates nothing.
            self._on_timer = self._tick
            timer.init(period=scan_ms, mode=_PERIODIC, callback=self._on_timer)

    def deinit(self):
        """Stop the timer's scans."""
        if self._timer is not None:
            self._timer.deinit()
            self._timer = None

    def _tick(self, _timer):
        try:
            self.scan(self._ticks())
        except KeyboardInterrupt:
            # MicroPython prints and drops an exception raised in a scheduled callback: a
            # Ctrl-C (mpremote's way in) landing here would be lost. The iterator raises it.
            self._interrupted = True

    # ---- the scan step -----------------------------------------------------------------------

    def scan(self, now_ms):
        """Read the matrix once and update the debounce state; keys that become pressed go to
        the queue. Allocates nothing (rows and columns are read into preallocated bytes)."""
        raw = self._raw
        ncols = len(self._cols)
        r = 0
        any_closed = 0
        for row in self._rows:
            row.value(0)
            mask = 0
            bit = 1
            for col in self._cols:
                if not col.value():
                    mask |= bit
                bit <<= 1
            row.value(1)
            raw[r] = mask
            any_closed |= mask
            r += 1
        # Idle fast path: nothing closed now and every key settled open. The per-key loop
        # below is most of a scan's cost, and the keypad is idle nearly all the time.
        if not any_closed and not self._active:
            self.ghosted = False
            return
        ghost = self._rectangle()
        self.ghosted = ghost
        last = self._last
        state = self._state
        since = self._since
        for k in range(len(state)):
            closed = (raw[k // ncols] >> (k % ncols)) & 1
            if closed != last[k]:
                last[k] = closed
                since[k] = now_ms
                if closed and ghost and state[k] == _UP:
                    state[k] = _BLOCKED
                continue
            if closed and ghost and state[k] == _UP:
                state[k] = _BLOCKED
                continue
            if closed == (state[k] != _UP):
                continue
            if ticks_diff(now_ms, since[k]) < self.debounce_ms:
                continue
            if closed:
                state[k] = _DOWN
                self._push(k)
            else:
                state[k] = _UP
        active = 0
        for k in range(len(state)):
            active |= last[k] | state[k]
        self._active = active

    def _rectangle(self):
        # Two rows that share two or more closed columns.
        raw = self._raw
        n = len(raw)
        for i in range(n - 1):
            if not raw[i] & (raw[i] - 1):  # fewer than two columns: cannot be a corner pair
                continue
            for j in range(i + 1, n):
                both = raw[i] & raw[j]
                if both & (both - 1):
                    return True
        return False

    # ---- the queue -------------------------------------------------------------------------

    def _push(self, k):
        tail = self._tail
        nxt = tail + 1
        if nxt == len(self._queue):
            nxt = 0
        if nxt == self._head:
            self.dropped += 1
            return
        self._queue[tail] = k
        self._tail = nxt  # published last: the reader sees the key only once it is there

    def pending(self):
        n = self._tail - self._head
        return n if n >= 0 else n + len(self._queue)

    def get(self):
        """The oldest key's label, or None."""
        head = self._head
        if head == self._tail:
            return None
        k = self._queue[head]
        head += 1
        self._head = 0 if head == len(self._queue) else head
        return self._labels[k]

    def pressed(self):
        """Labels of the keys counted as held now (for tests and diagnostics)."""
        return [self._labels[k] for k in range(len(self._state)) if self._state[k] == _DOWN]

    # ---- async iterator -------------------------------------------------------------------------

    def __aiter__(self):
        return self

    async def __anext__(self):
        while self._head == self._tail:
            if self._timer is None:
                self.scan(self._ticks())
                await _sleep_ms(self.scan_ms)
            else:
                await _sleep_ms(_DRAIN_MS)
                if self._interrupted:
                    self._interrupted = False
                    raise KeyboardInterrupt
        return self.get()
