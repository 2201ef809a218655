"""Models of the chips the terminal drives, at the level of their bus transactions, for tests
and for the simulated board. MicroPython-compatible: the simulated board runs them inside the
firmware process, under the real drivers (see bus.py for the buses and the virtual clock)."""
