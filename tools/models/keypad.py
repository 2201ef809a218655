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
"""

LAYOUT_4X4 = ("123A", "456B", "789C", "*0#D")


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
        end = start + hold_ms * 1000
        # Presses over and done with are dropped: a long run must not grow the list (and the
        # scan's work) without bound.
        now = self.clock.now()
        self._presses = [p for p in self._presses if p[2] + self.bounce_us > now]
        self._presses.append((self.key_index(label), start, end, self._chatter(start),
                              self._chatter(end)))
        self._at = -1

    def clear(self):
        self._presses = []
        self._at = -1

    # ---- wiring --------------------------------------------------------------------------------

    def _contacts(self, now):
        if now == self._at:
            return self._closed
        closed = 0
        for key, start, end, on_chatter, off_chatter in self._presses:
            if now < start or now >= end + self.bounce_us:
                continue
            if now < end:  # closed at the press edge, toggling during the chatter
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
        closed = self._contacts(self.clock.now())
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
