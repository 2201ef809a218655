"""Simulated board: the real firmware on the MicroPython unix port, its peripherals, network and
power modelled here, against the host simulator. `python -m tools.sim --scenario FILE --out DIR`
runs a scripted scenario (docs/simulated-board.md); without arguments it is the interactive
simulator.
"""
