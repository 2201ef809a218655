"""Whether a card reader has been watching its field.

Readers read a card once per presentation: a card left on the reader is not read again until
the reader has seen the field empty. But the terminal polls only while it waits for a card;
during a transaction nobody watches, and a card taken away and presented again for the next
purchase would look like the card that never left. So a gap in polling longer than
`forget_ms` ends the presentation: whatever is in the field then is a new one. The readers use
200 ms: four idle polls (poll_ms 50) missed means the terminal was busy elsewhere. (A card simply
left on the reader through a whole purchase is then read again at the next idle screen, where
the cashier can cancel it with `*`: a nuisance, never a charge.)
"""

try:
    from time import ticks_diff, ticks_ms
except ImportError:  # CPython
    from time import monotonic

    def ticks_ms():
        return int(monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b


class PollWatch:
    def __init__(self, forget_ms=200, ticks=None):
        self.forget_ms = forget_ms
        self._ticks = ticks or ticks_ms
        self._last = None

    def lapsed(self):
        """Call at each poll: True when the last poll was too long ago to know the field."""
        now = self._ticks()
        last, self._last = self._last, now
        return last is not None and ticks_diff(now, last) > self.forget_ms
