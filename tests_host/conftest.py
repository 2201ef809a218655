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
