"""The firmware's heap budget, measured on the simulated board and given without the simulation's
own share (the chip models, the board link, the ROMFS image's bytes: boards/sim.py says at boot
what it holds), for code imported from .mpy files and for code mounted as ROMFS.

    python -m tools.bench.budget [--micropython PATH] [--purchases 1000]
    python -m tools.bench.budget --min-heap [--purchases 3] [--campaign] [--code romfs]

The budget: the live heap at idle after boot, its peak during a purchase over TLS (sampled after
every event, after each host exchange and after each receipt: setting heap_report), and the live
heap after 1, 100 and 1000 purchases (a leak shows as growth). Both codes run at once.

--min-heap: the smallest -X heapsize at which N purchases pass (each approved, every copy printed
and confirmed), or with --campaign a generated campaign of N purchases with faults passes its
safety checks (tools/sim/check.py); either way with no MemoryError (which the board survives by
a reset, but a heap that needs one is too small). A binary search from the idle heap up, then
the smallest passing heap confirmed by --runs more runs (a run is not deterministic: the order
of the firmware's events depends on real time, so the heap's layout does too).

Heap figures depend on the interpreter: a 64-bit unix port's objects are up to twice an ESP32's.
A 32-bit build (the unix port for i386, float single precision) gives the ESP32's sizes.
"""

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"
PAN = "4761739001010010"
CODES = ("mpy", "romfs")
# Short waits and a fast printer, so that a thousand purchases take minutes: the heap the
# firmware needs does not depend on them.
FAST = {"heap_report": True, "message_ms": 100, "keypad_debounce_ms": 10, "printer_baud": 19200,
        "printer_line_ms": 5}
SIM_LINE = re.compile(r"the simulation holds (\d+) bytes")
HEAP_LINE = re.compile(r"heap: transaction peak (\d+) bytes live, idle (\d+)")
STEPS = (1, 100, 1000)


def purchases(n, config=FAST):
    purchase = [{"tap": PAN}, {"keys": "1250#"}, {"keys": "1234#"},
                {"wait": "settled", "timeout_ms": 120000}]
    # With Wi-Fi the board joins its network first (the WLAN model takes about a second).
    joined = [{"sleep_ms": 5000}] if config.get("wifi_ssid") else []
    # A balance for every purchase to be approved (the default test card's runs out after 40).
    card = {"pan": PAN, "expiry": "2812", "pin": "1234", "balance": 1250 * n + 1250,
            "status": "active"}
    return {"config": dict(config), "cards": [card],
            "steps": [{"wait": "idle", "timeout_ms": 20000}] + joined + purchase * n}


def run_scenario(scenario, out, code, micropython, heapsize=None):
    """Run it on the simulated board; (exit status, seconds, record dir)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "scenario.json"
    path.write_text(json.dumps(scenario))
    cmd = [sys.executable, "-m", "tools.sim", "--scenario", str(path), "--out", str(out / "run"),
           "--code", code, "--micropython", str(micropython)]
    if heapsize:
        cmd += ["--heapsize", str(heapsize)]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    return proc.returncode, time.monotonic() - start, out / "run"


def simulation_share(run):
    """What the simulation holds in the heap, from its boot log line (the first boot's)."""
    with open(run / "events.jsonl") as f:
        for line in f:
            found = SIM_LINE.search(line)
            if found:
                return int(found.group(1))
    raise ValueError("%s: no 'the simulation holds' line" % run)


def measure(code, micropython, n, tmp, config=None):
    """The budget of one code: a dict of figures, the simulation's share taken off."""
    rc, took, run = run_scenario(purchases(n, dict(FAST, **(config or {}))), Path(tmp) / code,
                                 code, micropython)
    log = (run / "firmware.log").read_text()
    if rc or "Traceback" in log:
        raise RuntimeError("%s: the run failed (exit %d); see %s" % (code, rc, run))
    sim = simulation_share(run)
    marks = [(int(peak) - sim, int(idle) - sim) for peak, idle in HEAP_LINE.findall(log)]
    ledger = json.loads((run / "ledger.json").read_text())
    approved = sum(t["status"] == "approved" and t["receipt_confirmed"] for t in ledger)
    if approved != n or len(marks) != n + 1:
        raise RuntimeError("%s: %d of %d purchases approved and confirmed, %d heap lines for "
                           "%d; see %s" % (code, approved, n, len(marks), n + 1, run))
    # The first line is the boot's; then one a purchase, when it has settled.
    figures = {"sim": sim, "boot": marks[0][1], "peak": max(p for p, _ in marks[1:]),
               "seconds": took}
    for k in STEPS:
        if k < len(marks):
            figures[k] = marks[k][1]
    return figures


def interpreter(micropython):
    """'32-bit' or '64-bit', asked of the interpreter itself."""
    out = subprocess.run([str(micropython), "-c", "import sys; print(sys.maxsize > 1 << 32)"],
                         capture_output=True, text=True).stdout.strip()
    return "64-bit" if out == "True" else "32-bit"


def budget(micropython, n, config=None):
    print("== heap budget of the firmware alone (the simulation's share taken off), %s, %s"
          % (micropython, interpreter(micropython)))
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(len(CODES)) as pool:
        jobs = {code: pool.submit(measure, code, micropython, n, tmp, config) for code in CODES}
        got = {code: job.result() for code, job in jobs.items()}
    rows = [("live heap at idle after boot", "boot"),
            ("peak during a purchase over TLS", "peak")]
    rows += [("live heap after %d purchase%s" % (k, "s" if k > 1 else ""), k)
             for k in STEPS if k <= n]
    rows += [("(the simulation's share, taken off)", "sim")]
    print("%-40s %12s %12s" % ("", ".mpy files", "ROMFS"))
    for label, key in rows:
        print("%-40s %12s %12s" % (label, *("{:,}".format(got[c][key]) for c in CODES)))
    print("%-40s %12s %12s" % ("time for %d purchases" % n,
                               *("%.0f s" % got[c]["seconds"] for c in CODES)))
    return got


def _passes(scenario, n, campaign, heapsize, code, micropython, tmp):
    rc, took, run = run_scenario(scenario, tmp, code, micropython, heapsize)
    try:
        sim = simulation_share(run)
    except (OSError, ValueError):
        sim = None  # it did not even boot
    if campaign:
        from tools.sim import check

        ok = rc == 0 and not check.check(run)
    else:
        ledger = json.loads((run / "ledger.json").read_text())
        ok = rc == 0 and len(ledger) == n and all(
            t["status"] == "approved" and t["receipt_confirmed"] for t in ledger)
    # A MemoryError resets the board and recovery makes good, but the heap was not enough.
    log = run / "firmware.log"
    ok = ok and not (log.exists() and "MemoryError" in log.read_text())
    return ok, sim, took


def min_heap(purchases_n, campaign, code, micropython, seed=1, runs=3, step=1024, config=None,
             jobs=1):
    if campaign:
        from tools.sim import gen

        scenario = gen.generate(seed, purchases_n)
        scenario["config"].update(config or {})
        what = "a campaign of %d purchases with faults (seed %d)" % (purchases_n, seed)
    else:
        # The printer at its default pace (an ESP32's receipt prints while nothing else goes
        # on) and no heap_report, whose collection after every event would change the result.
        scenario = purchases(purchases_n, dict({"message_ms": 200}, **(config or {})))
        what = "%d purchase%s over TLS" % (purchases_n, "s" if purchases_n > 1 else "")
    print("== smallest heap for %s, code as %s, %s (%s)" % (
        what, code, micropython, interpreter(micropython)))
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(jobs) as pool:
        probe = measure(code, micropython, 1, tmp, config)
        low = probe["boot"] + probe["sim"]  # it cannot even idle below this
        high = low * 2
        count = [0]

        def passes_all(heapsizes):
            # Runs wait on the simulated host and printer more than they compute: `jobs` of
            # them at once search as fast on two cores as one does alone.
            def one(heapsize):
                count[0] += 1
                run_dir = Path(tmp) / ("run%d" % count[0])
                ok, sim, took = _passes(scenario, purchases_n, campaign, heapsize, code,
                                        micropython, run_dir)
                print("  -X heapsize=%-7d %s (%.0f s)" % (heapsize, "pass" if ok else "FAIL",
                                                          took), flush=True)
                return ok, sim

            return list(pool.map(one, heapsizes))

        if not passes_all([high])[0][0]:
            print("fails even at %d" % high)
            return 1
        while high - low > step:
            # `jobs` points evenly inside (low, high): the smallest that passes is the new high,
            # the largest below it that fails the new low.
            points = [low + (high - low) * (i + 1) // (jobs + 1) for i in range(jobs)]
            results = passes_all(points)
            passing = [h for h, (ok, _) in zip(points, results) if ok]
            if passing:
                high = min(passing)
            below = [h for h, (ok, _) in zip(points, results) if not ok and h < high]
            if below:
                low = max(below)
        # Confirmed: `runs` more runs pass, else a step up.
        while True:
            results = passes_all([high] * runs)
            if all(ok for ok, _ in results):
                break
            low, high = high, high + step
        sim = results[-1][1]
    print("smallest heap: %d bytes (%d runs in a row passed; a run failed at %d); the "
          "simulation holds %d of it, the firmware's share is %d bytes"
          % (high, runs, low, sim, high - sim))
    return 0


# The settings of a board at the counter, as the simulated board has them: Wi-Fi (its WLAN
# model's access point) and NTP (the simulation's server on loopback).
BOARD_CONFIG = {"wifi_ssid": "counter", "wifi_password": "counter-pass", "ntp_host": "sim"}


def add_config_argument(parser):
    parser.add_argument("--config", type=json.loads, default=None, metavar="JSON",
                        help="settings for the runs (a JSON object)")
    parser.add_argument("--board-config", dest="config", action="store_const",
                        const=BOARD_CONFIG, help="Wi-Fi and NTP on, as a board at the counter")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.bench.budget",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--micropython", default=str(MICROPYTHON),
                        help="the unix port to measure with (default %(default)s)")
    parser.add_argument("--purchases", type=int, default=None,
                        help="purchases (default 1000 for the budget, 3 for --min-heap)")
    parser.add_argument("--min-heap", action="store_true")
    parser.add_argument("--campaign", action="store_true",
                        help="--min-heap: a generated campaign with faults (tools/sim/gen.py)")
    parser.add_argument("--code", choices=CODES, default="romfs")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--step", type=int, default=1024, help="--min-heap: bytes (sharpness)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="--min-heap: runs at once (they mostly wait: 4 suit two cores)")
    add_config_argument(parser)
    args = parser.parse_args(argv)
    args.micropython = str(Path(args.micropython).resolve())
    if args.min_heap:
        return min_heap(args.purchases or 3, args.campaign, args.code, args.micropython,
                        args.seed, args.runs, args.step, args.config, args.jobs)
    budget(args.micropython, args.purchases or 1000, args.config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
