"""Board profiles: one module per board; `build(settings)` returns the board's peripherals.

`sim` is the simulated board (MicroPython unix port driven by tools/sim).
"""
