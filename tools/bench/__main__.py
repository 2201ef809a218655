"""Benchmarks: `make bench` (a minute) and `make bench-heap` (a long search).

    python -m tools.bench                 micro-benchmarks on MicroPython, then one purchase on
                                          the simulated board: its live-heap peak and its time
    python -m tools.bench --min-heap [--purchases N] [--seed S]
                                          the smallest -X heapsize at which a generated campaign
                                          of N purchases still passes (binary search, N runs)

Heap figures are from the unix port, which is 64-bit: the ESP32 (32-bit) needs less for the
same objects, up to half (see Makefile, HEAP).
"""

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MICROPYTHON = Path(sys.executable).with_name("micropython")
PAN = "4761739001010010"


HARDWARE = ("hw_mfrc522", "hw_pn532", "hw_display_keypad", "hw_printer")

# Code in RAM once imported as .mpy (what an ESP32 holds unless the modules are frozen).
CODE_HEAP = """
import sys, gc
sys.path.insert(0, %r)
gc.collect(); a = gc.mem_alloc()
import firmware.app, boards.common, drivers.keypad, drivers.display, drivers.ssd1306
import drivers.escpos
gc.collect(); b = gc.mem_alloc()
import drivers.pn532, drivers.emv
gc.collect(); c = gc.mem_alloc()
import drivers.mfrc522
gc.collect(); d = gc.mem_alloc()
import boards.sim, tools.models.bus, tools.models.pn532, tools.models.emvcard, tools.models.tags
import tools.models.keypad, tools.models.ssd1306, tools.models.escpos
gc.collect(); e = gc.mem_alloc()
print("firmware, keypad, display, printer  %%7d bytes" %% (b - a))
print("PN532 reader with EMV               %%7d bytes" %% (c - b))
print("RC522 reader                        %%7d bytes" %% (d - c))
print("chip models (simulated board only)  %%7d bytes" %% (e - d))
"""


def micro():
    print("== hot paths on MicroPython (unix port, -X heapsize=200000)")
    for script in ("mp_core.py", "mp_dukpt.py", "mp_msgkeys.py"):
        subprocess.run([str(MICROPYTHON), "-X", "heapsize=200000", "tools/bench/" + script],
                       cwd=ROOT, check=True)
    for name in HARDWARE:
        print("== %s: modelled bus and card time (tools/models, virtual clock)" % name)
        subprocess.run([str(MICROPYTHON), "-X", "heapsize=400000",
                        "tools/bench/%s.py" % name], cwd=ROOT, check=True)


def code_heap():
    from tools.build import SIM_PACKAGES, build

    print("== code in RAM as .mpy on the unix port (64-bit), per part")
    with tempfile.TemporaryDirectory() as tmp:
        build(tmp, packages=SIM_PACKAGES)
        subprocess.run([str(MICROPYTHON), "-X", "heapsize=600000", "-c", CODE_HEAP % tmp],
                       cwd=ROOT, check=True)


def run_scenario(scenario, out, heapsize):
    path = Path(out) / "scenario.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(scenario))
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "tools.sim", "--scenario", str(path), "--out",
                           str(Path(out) / "run"), "--heapsize", str(heapsize)],
                          cwd=ROOT, capture_output=True, text=True)
    return proc.returncode, time.monotonic() - start, Path(out) / "run"


def one_purchase(heapsize):
    print("== one purchase on the simulated board (-X heapsize=%d, firmware as .mpy)" % heapsize)
    purchase = [{"tap": PAN}, {"keys": "1250#"}, {"keys": "1234#"},
                {"wait": "settled", "timeout_ms": 20000}]
    scenario = {"config": {"heap_report": True, "message_ms": 200},
                "steps": [{"wait": "idle", "timeout_ms": 10000}] + purchase * 3}
    with tempfile.TemporaryDirectory() as tmp:
        rc, took, run = run_scenario(scenario, tmp, heapsize)
        if rc:
            print("run failed (rc %d)" % rc)
            return 1
        log = (run / "firmware.log").read_text()
        peaks = [int(m) for m in re.findall(r"transaction peak (\d+)", log)]
        idles = [int(m) for m in re.findall(r"idle (\d+)", log)]
        events = [json.loads(line) for line in (run / "events.jsonl").open()]
    taps = [e["t_ms"] for e in events if e["kind"] == "tap"]
    settled = [e["t_ms"] for e in events if e["kind"] == "wait_done" and e["what"] == "settled"]
    print("live heap at idle after boot       %7d bytes" % idles[0])
    print("live heap peak during a purchase   %7d bytes (max of %d purchases)" % (
        max(peaks[1:]), len(peaks) - 1))
    print("  of which the purchase itself     %7d bytes" % (max(peaks[1:]) - idles[0]))
    spans = [s - t for t, s in zip(taps, settled)]
    print("tap to settled (one finger, 100 ms a key) %7d ms (median of %d)" % (
        sorted(spans)[len(spans) // 2], len(spans)))
    return 0


def min_heap(purchases, seed, low=60000, high=200000, step=5000):
    from tools.sim import check, gen

    scenario = gen.generate(seed, purchases)
    print("== smallest heap for %d purchases (seed %d), within %d bytes" % (
        purchases, seed, step))

    def passes(heapsize):
        with tempfile.TemporaryDirectory() as tmp:
            rc, took, run = run_scenario(scenario, tmp, heapsize)
            ok = rc == 0 and not check.check(run)
        print("  -X heapsize=%-7d %s (%.0f s)" % (heapsize, "pass" if ok else "FAIL", took))
        return ok

    if not passes(high):
        print("fails even at %d" % high)
        return 1
    while high - low > step:
        mid = (low + high) // 2 // 1000 * 1000
        if passes(mid):
            high = mid
        else:
            low = mid
    print("smallest passing heap: %d bytes (fails at %d)" % (high, low))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.bench")
    parser.add_argument("--min-heap", action="store_true")
    parser.add_argument("--purchases", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.min_heap:
        return min_heap(args.purchases, args.seed)
    micro()
    code_heap()
    return one_purchase(400000)


if __name__ == "__main__":
    sys.exit(main())
