"""pytest setup: the repository root (for `firmware`, `tools`) and, on CPython, the shims that
stand in for MicroPython's built-in modules (`cryptolib`, `micropython`)."""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)

for _path in (_ROOT, _HERE):
    if _path not in sys.path:
        sys.path.insert(0, _path)
if sys.implementation.name == "cpython":
    _SHIMS = os.path.join(_HERE, "shims")
    if _SHIMS not in sys.path:
        sys.path.insert(0, _SHIMS)

# The files that take minutes (whole runs on the simulated and the virtual board), longest first:
# run first, so that `make test`'s workers (pytest-xdist, one file each) do not end waiting on
# one of them started last.
SLOW_FIRST = ("test_sim_campaign.py", "test_vboard.py", "test_makers_path.py",
              "test_sim_power_random.py", "test_dst.py", "test_sim_power.py",
              "test_sim_examples.py", "test_sim_keys_under_load.py", "test_dev.py",
              "test_testboard.py")


def pytest_collection_modifyitems(session, config, items):
    def rank(item):
        name = os.path.basename(str(item.fspath))
        return SLOW_FIRST.index(name) if name in SLOW_FIRST else len(SLOW_FIRST)

    items.sort(key=rank)  # stable: each file's own order is kept
