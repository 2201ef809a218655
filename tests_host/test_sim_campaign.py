"""200 purchases with every fault of the contract mixed in, on the simulated board.

Four campaigns of 50 purchases (seeds 1 to 4, tools/sim/gen.py) run side by side, each its own
board, host and record: most of a campaign's time is its own waits (timeouts, sleeps between
faults), so four share the machine well. A failure in one part is replayed with:
    python -m tools.sim.gen --seed N --purchases 50 > s.json
    python -m tools.sim --scenario s.json --out out/c && python -m tools.sim.check out/c
"""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from simruns import record_leaks

from tools.sim import check, gen

ROOT = Path(__file__).resolve().parents[1]
SEEDS = (1, 2, 3, 4)
PURCHASES = 200
NEEDED = ("host:drop_request", "host:drop_response", "host:delay_response", "host:disconnect",
          "host:bad_mac", "host:crash_after_commit", "host:host_down", "net:down", "paper:out",
          "power:cut")


def _faults(scenario):
    faults = Counter()
    for step in scenario["steps"]:
        for kind in ("host", "net", "paper", "power"):
            if kind in step:
                faults["%s:%s" % (kind, step[kind])] += 1
    return faults


def _start(tmp_path, seed):
    scenario = gen.generate(seed, PURCHASES // len(SEEDS))
    # S6: once all is quiet, the terminal's batch totals (key B) equal the host's.
    scenario["steps"] += [{"keys": "B"}, {"sleep_ms": 500}]
    path = tmp_path / ("campaign-%d.json" % seed)
    path.write_text(json.dumps(scenario))
    out = tmp_path / ("out-%d" % seed)
    log = (tmp_path / ("sim-%d.log" % seed)).open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.sim", "--scenario", str(path), "--out", str(out)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True)
    return scenario, out, proc, log


def _check_part(scenario, out):
    """One part's record: the contract, no card data kept, amounts as typed, totals on screen.
    Returns the host's ledger."""
    assert check.check(out) == [], "safety contract violated, see %s" % out
    # No card number in the terminal's flash, log or receipts, no PIN digit in the key events.
    assert record_leaks(out, scenario["cards"]) == []
    ledger = json.loads((out / "ledger.json").read_text())
    approved = [t for t in ledger if t["status"] == "approved"]
    # Every amount the host saw was typed on the keypad (a doubled digit read once would not be).
    typed = {int(s["keys"][:-1]) for s in scenario["steps"]
             if "keys" in s and s["keys"].endswith("#") and s["keys"][:-1].isdigit()}
    assert {t["amount"] for t in ledger} <= typed, out
    assert all(t["receipt_confirmed"] for t in approved), out
    events = [json.loads(line) for line in (out / "events.jsonl").open()]
    pressed = [i for i, e in enumerate(events) if e["kind"] == "key" and e["label"] == "B"][-1]
    screen = [e["lines"] for e in events[pressed:] if e["kind"] == "display"][0]
    assert screen[0] == "BATCH 000001", screen
    assert screen[1] == "Approved: %d" % len(approved), screen
    total = sum(t["amount"] for t in approved)
    assert screen[2] == "EUR %d.%02d" % (total // 100, total % 100), screen
    return ledger


def test_200_purchases_with_faults_keep_the_contract(tmp_path):
    parts = [_start(tmp_path, seed) for seed in SEEDS]
    try:
        for _, _, proc, log in parts:
            assert proc.wait(timeout=1800) == 0, open(log.name).read()[-4000:]
            log.close()
    finally:
        for _, _, proc, log in parts:
            proc.kill()
            proc.wait()
            log.close()
    faults = sum((_faults(scenario) for scenario, _, _, _ in parts), Counter())
    for needed in NEEDED:
        assert faults[needed] > 0, needed
    ledger = [t for scenario, out, _, _ in parts for t in _check_part(scenario, out)]
    approved = [t for t in ledger if t["status"] == "approved"]
    assert len(approved) > PURCHASES // 2
    statuses = Counter(t["status"] for t in ledger)
    assert statuses["declined"] > 0 and statuses["reversed"] > 0, statuses
