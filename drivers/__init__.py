"""Drivers: one module per chip family, each handed its bus and pins by a board profile.

The runtime (firmware/app.py) sees four objects, whatever chips are fitted (see
docs/architecture.md, "Peripheral interface"): a card reader with `read_card()`, a keypad that is
an async iterator of key labels, a display with `show(lines)`, and a printer with
`async print_text(text)` and `paper_ok()`. `read_card()` raises `CardUnreadable` for a card it
could not read. The simulated board (boards/sim.py) provides the same
four at that interface; the chip drivers slot in under it without the core knowing.
"""

import sys


class CardUnreadable(Exception):
    """A card was presented and gave no card number: args[0] says why, in words that never
    hold a card number (bad data, a foreign tag, a card taken away mid-read). Raised once per
    presentation by a reader's read_card(); the terminal shows "Card not read"."""


def let_go(name):
    """Forget drivers.<name>, imported for one card read or one receipt: out of sys.modules and
    off this package, so the heap it holds is freed (code imported from .mpy files is copied into
    the heap; docs/romfs.md, "Heap")."""
    sys.modules.pop("drivers." + name, None)
    globals().pop(name, None)
