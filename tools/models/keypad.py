"""Model of a 4x4 membrane keypad matrix (no diodes) wired to SimPins.

    matrix = KeypadMatrix(row_pins, col_pins, clock)
    matrix.press("5", at_ms=100, hold_ms=60)

The driver drives the row pins (outputs) and reads the column pins (inputs with pull-ups);
each column pin's `reader` is wired here as the membrane wires it: a column reads 0 when the
keys closed at this moment connect it, through any path of rows and columns, to a row that is
driven low. So with three keys of a rectangle held, the fourth corner reads closed too
(ghosting), with no special case.

Contact bounce: for `bounce_ms` after a press starts and after it ends the contact chatters,
opening and closing at random times (a seeded generator, the same sequence on CPython and
MicroPython), ending closed after the press edge and open after the release edge.

Two fingers: `press()` holds a key for a fixed time (what tests of the scan's timing want), and
`type_key()` holds it until the driver's scans have read it closed for `hold_ms`, and one scan
more, then keeps off the keypad until they have read it open for `lift_ms`, and one scan more
(what the simulated board types with: a PC busy elsewhere stalls the firmware's process, and a
press timed by the PC's clock could then end before a scan ever saw it, which no cashier's
finger does to a running board).
"""

LAYOUT_4X4 = ("123A", "456B", "789C", "*0#D")
# The finger acts one scan after the one that saw it held (or off) long enough: a driver dates
# a scan by its start, and a process stalled in the middle of one reads the key later than that
# date, so only the next scan, which starts after that read, is sure to count the whole hold.
_HELD_LONG_ENOUGH = -2
_LIFT_NEXT = -1


class _Rng:
    """xorshift32: the same numbers on both interpreters (their `random` modules differ)."""

    def __init__(self, seed):
        self.s = (seed or 1) & 0xFFFFFFFF

    def next(self, n):
        s = self.s
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        self.s = s
        return s % n


class KeypadMatrix:
    def __init__(self, row_pins, col_pins, clock, *, labels=LAYOUT_4X4, bounce_ms=5, seed=1):
        self.rows = row_pins
        self.cols = col_pins
        self.clock = clock
        self.labels = labels
        self.bounce_us = bounce_ms * 1000
        self._rng = _Rng(seed)
        self._presses = []  # (key, start_us, end_us, press chatter, release chatter)
        self._at = -1  # the time the cached contact state is for
        self._closed = 0  # bit (row * ncols + col) set: contact closed
        self._typing = []  # keys type_key() has yet to type: (key, hold_us, lift_us)
        self.typed = 0  # keys type_key() has typed, lifted and all
        self._finger = None  # [key, hold_us, lift_us, start_us, seen_from, end_us, open_from]
        for c in range(len(col_pins)):
            col_pins[c].reader = self._reader(c)

    def key_index(self, label):
        for r in range(len(self.labels)):
            c = self.labels[r].find(label)
            if c >= 0:
                return r * len(self.cols) + c
        raise ValueError("no key " + label)

    def _chatter(self, start_us):
        # An even number of toggle times inside the bounce window: the contact ends where the
        # edge put it.
        if not self.bounce_us:
            return ()
        n = 2 * (1 + self._rng.next(3))
        times = sorted(start_us + self._rng.next(self.bounce_us) for _ in range(n))
        return tuple(times)

    def press(self, label, at_ms, hold_ms):
        """Press `label` at `at_ms` (virtual time) and release it `hold_ms` later."""
        start = at_ms * 1000
        # Presses over and done with are dropped (in _press_at): a long run must not grow the
        # list (and the scan's work) without bound.
        self._press_at(self.key_index(label), start, start + hold_ms * 1000)

    def clear(self):
        self._presses = []
        self._typing = []
        self._finger = None
        self._at = -1

    def type_key(self, label, hold_ms, lift_ms):
        """Type `label` after the keys typed before it: held until the scans have read it
        closed, past its bounce, for `hold_ms`, then off the keypad until they have read it
        open for `lift_ms`."""
        self._typing.append((self.key_index(label), hold_ms * 1000, lift_ms * 1000))

    def typing(self):
        """Keys type_key() has not finished typing."""
        return len(self._typing) + (self._finger is not None)

    def contacts(self, now):
        """The closed contacts at `now` (us), bit row * ncols + col, as a scanning chip reads
        them (tools/models/tca8418.py): it looks at every key at once."""
        if self._finger is not None or self._typing:
            self._watch_finger(None, now)
        return self._contacts(now)

    def _watch_finger(self, col, now):
        # One column read (col None: every key read at once): when it is the finger's key's
        # column while its row is driven low, the driver is looking at that key now.
        finger = self._finger
        if finger is None:
            if not self._typing:
                return
            key, hold, lift = self._typing.pop(0)
            self._press_at(key, now, None)
            self._finger = finger = [key, hold, lift, now, None, None, None]
        key = finger[0]
        if col is not None:
            ncols = len(self.cols)
            if col != key % ncols:
                return
            row = self.rows[key // ncols]
            if row.mode != row.OUT or row.value() != 0:
                return
        if finger[5] is None:  # held
            if now < finger[3] + self.bounce_us:
                return
            if finger[4] is None:
                finger[4] = now
            elif now - finger[4] >= finger[1]:
                finger[5] = _HELD_LONG_ENOUGH
        elif finger[5] == _HELD_LONG_ENOUGH:
            finger[5] = _LIFT_NEXT  # this scan started after the hold: the driver counts it
        elif finger[5] == _LIFT_NEXT:
            finger[5] = now
            self._release(key, now)
        elif now >= finger[5] + self.bounce_us:  # lifted, past the release's bounce
            if finger[6] is None:
                finger[6] = now
            elif finger[6] == _HELD_LONG_ENOUGH:
                self._finger = None  # this scan started after the lift: the driver saw it up
                self.typed += 1
            elif now - finger[6] >= finger[2]:
                finger[6] = _HELD_LONG_ENOUGH

    def _press_at(self, key, start, end):
        now = self.clock.now()
        self._presses = [p for p in self._presses
                         if p[2] is None or p[2] + self.bounce_us > now]
        self._presses.append((key, start, end, self._chatter(start),
                              None if end is None else self._chatter(end)))
        self._at = -1

    def _release(self, key, end):
        for i in range(len(self._presses)):
            p = self._presses[i]
            if p[0] == key and p[2] is None:
                self._presses[i] = (key, p[1], end, p[3], self._chatter(end))
        self._at = -1

    # ---- wiring --------------------------------------------------------------------------------

    def _contacts(self, now):
        if now == self._at:
            return self._closed
        closed = 0
        for key, start, end, on_chatter, off_chatter in self._presses:
            if now < start or end is not None and now >= end + self.bounce_us:
                continue
            if end is None or now < end:  # closed at the press edge, toggling during the chatter
                level = 1
                toggles = on_chatter
            else:
                level = 0
                toggles = off_chatter
            for t in toggles:
                if t <= now:
                    level ^= 1
            if level:
                closed |= 1 << key
        self._at = now
        self._closed = closed
        return closed

    def _reader(self, col):
        def read():
            return self._level(col)

        return read

    def _level(self, col):
        now = self.clock.now()
        if self._finger is not None or self._typing:
            self._watch_finger(col, now)
        closed = self._contacts(now)
        if not closed:
            return None  # nothing pressed: the pull-up holds the column high
        ncols = len(self.cols)
        # Flood from this column through closed keys; low if it reaches a row driven low.
        cols = 1 << col
        rows = 0
        while True:
            new_rows = rows
            for r in range(len(self.rows)):
                for c in range(ncols):
                    if cols >> c & 1 and closed >> (r * ncols + c) & 1:
                        new_rows |= 1 << r
            new_cols = cols
            for r in range(len(self.rows)):
                if new_rows >> r & 1:
                    for c in range(ncols):
                        if closed >> (r * ncols + c) & 1:
                            new_cols |= 1 << c
            if new_rows == rows and new_cols == cols:
                break
            rows, cols = new_rows, new_cols
        for r in range(len(self.rows)):
            pin = self.rows[r]
            if rows >> r & 1 and pin.mode == pin.OUT and pin.value() == 0:
                return 0
        return None
