"""Runs the portable test files on the MicroPython unix port.

    micropython -X heapsize=200000 tests_host/mprun.py [test_file.py ...]

`make test` runs it once per file through tests_host/mpsuite.py (a fresh heap per file, as on a
fresh board); run it directly to debug one file.

A test file is portable when its first lines carry the marker `# portable: micropython`; such a
file uses plain `test_*` functions with `assert`, no pytest fixtures. Every `test_*` function
is called; the last lines are `peak heap N bytes` (the most the heap held, sampled every
millisecond by a thread where the port has threads, collections every 2 KB allocated keeping
garbage under that) and `N passed, N failed`, and the exit status is 1 on any failure.
"""

import gc
import os
import sys

_MARK = "# portable: micropython"


def _here():
    path = __file__
    return path[: path.rfind("/")] if "/" in path else "."


def _portable(path):
    with open(path) as f:
        for _ in range(5):
            if f.readline().startswith(_MARK):
                return True
    return False


_SAMPLE_MS = 1
_COLLECT_EVERY = 2048  # bytes allocated between collections: the garbage a sample can hold


def _watch_heap(peak):
    """Keep peak[0] at the most gc.mem_alloc() has been, until peak[1] is cleared. Allocates
    nothing, so it runs beside tests that lock the heap."""
    import time

    while peak[1]:
        used = gc.mem_alloc()
        if used > peak[0]:
            peak[0] = used
        time.sleep_ms(_SAMPLE_MS)


def main(argv):
    here = _here()
    root = here[: here.rfind("/")] if "/" in here else "."
    for path in (here, root):
        if path not in sys.path:
            sys.path.insert(0, path)
    # The firmware as the board has it, compiled (tests_host/mpsuite.py builds it).
    image = os.getenv("POS_TEST_IMAGE") if hasattr(os, "getenv") else None
    if image:
        sys.path.insert(0, image)
    names = argv or sorted(n for n in os.listdir(here) if n.startswith("test_") and
                           n.endswith(".py"))
    passed = failed = 0
    baseline = set(sys.modules)
    peak = [gc.mem_alloc(), 1]
    gc.threshold(_COLLECT_EVERY)
    try:
        import _thread

        _thread.start_new_thread(_watch_heap, (peak,))
    except ImportError:  # a port without threads: the peak is sampled after each test
        pass
    for name in names:
        path = here + "/" + name
        if not _portable(path):
            continue
        # Each file starts from a clean heap: the modules the last one imported are dropped.
        for loaded in [m for m in sys.modules if m not in baseline]:
            del sys.modules[loaded]
        gc.collect()
        try:
            module = __import__(name[:-3])
        except Exception as e:  # noqa: BLE001 - report and go on to the next file
            print("FAIL %s (import): %r" % (name, e))
            sys.print_exception(e)
            failed += 1
            continue
        for attr in sorted(dir(module)):
            if not attr.startswith("test_"):
                continue
            try:
                getattr(module, attr)()
                passed += 1
            except Exception as e:  # noqa: BLE001
                failed += 1
                print("FAIL %s::%s: %r" % (name, attr, e))
                sys.print_exception(e)
            peak[0] = max(peak[0], gc.mem_alloc())
    peak[1] = 0
    print("peak heap %d bytes" % peak[0])
    print("%d passed, %d failed" % (passed, failed))
    return failed


if __name__ == "__main__":
    sys.exit(1 if main(sys.argv[1:]) else 0)
