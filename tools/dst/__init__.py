"""Deterministic simulation testing (DST) of the terminal against the host's real ledger.

`python -m tools.dst --seeds N --start S` runs N seeded worlds (tools/dst/world.py): the real
state machine `firmware.core.Terminal` with its real codec, a simulated flash that loses power
between any two actions, the host simulator's real decision code (`HostSimulator._process` over
a `Ledger` in an in-memory SQLite), a faulty network, a printer that runs out of paper, a
virtual clock, all driven by one `random.Random(seed)`. A checker (tools/dst/check.py) holds
the safety contract S1-S6 after every step and at quiescence.
"""

import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
if sys.implementation.name == "cpython":
    try:
        import cryptolib  # noqa: F401
    except ImportError:  # CPython: MicroPython's built-ins come from the test shims
        sys.path.insert(0, os.path.join(_ROOT, "tests_host", "shims"))
