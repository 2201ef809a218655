"""The one timing loop of the MicroPython micro-benchmarks (mp_core.py, mp_dukpt.py): time per
call, and heap bytes allocated per call (GC heap growth with collection disabled, so garbage
counts too: what the call costs the allocator)."""

import gc
import time


def measure(name, fn, n, width=28):
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    start = time.ticks_us()
    for _ in range(n):
        fn()
    took = time.ticks_diff(time.ticks_us(), start)
    alloc = gc.mem_alloc() - before
    gc.enable()
    gc.collect()
    print("%-*s %8.1f us/call %7d bytes/call" % (width, name, took / n, alloc // n))
