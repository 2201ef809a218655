"""The terminal, chip-independent: runs unchanged on the ESP32, the unix port and CPython."""

import sys


def let_go(name):
    """Forget firmware.<name>, imported for a step that comes seldom: out of sys.modules and off
    this package, so the heap it holds is freed (code imported from .mpy files is copied into
    the heap; docs/romfs.md, "Heap")."""
    sys.modules.pop("firmware." + name, None)
    globals().pop(name, None)
