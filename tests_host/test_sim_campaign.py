"""200 purchases with every fault of the contract mixed in, on the simulated board.

The scenario comes from the seeded generator (tools/sim/gen.py, seed 1), so a failure here is
replayed with:
    python -m tools.sim.gen --seed 1 --purchases 200 > s.json
    python -m tools.sim --scenario s.json --out out/c && python -m tools.sim.check out/c
Takes about six minutes, most of it the scenario's own waits (timeouts, sleeps between faults).
"""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from simruns import record_leaks

from tools.sim import check, gen

ROOT = Path(__file__).resolve().parents[1]
SEED = 1
PURCHASES = 200


def test_200_purchases_with_faults_keep_the_contract(tmp_path):
    scenario = gen.generate(SEED, PURCHASES)
    faults = Counter()
    for step in scenario["steps"]:
        for kind in ("host", "net", "paper", "power"):
            if kind in step:
                faults["%s:%s" % (kind, step[kind])] += 1
    for needed in ("host:drop_request", "host:drop_response", "host:delay_response",
                   "host:disconnect", "host:bad_mac", "host:crash_after_commit",
                   "host:host_down", "net:down", "paper:out", "power:cut"):
        assert faults[needed] > 0, needed
    # S6: once all is quiet, the terminal's batch totals (key B) equal the host's.
    scenario["steps"] += [{"keys": "B"}, {"sleep_ms": 500}]
    path = tmp_path / "campaign.json"
    path.write_text(json.dumps(scenario))
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "tools.sim", "--scenario", str(path), "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert check.check(out) == [], "safety contract violated, see %s" % out
    # No card number in the terminal's flash, log or receipts, no PIN digit in the key events.
    assert record_leaks(out, scenario["cards"]) == []
    ledger = json.loads((out / "ledger.json").read_text())
    approved = [t for t in ledger if t["status"] == "approved"]
    assert len(approved) > PURCHASES // 2
    # Every amount the host saw was typed on the keypad (a doubled digit read once would not be).
    typed = {int(s["keys"][:-1]) for s in scenario["steps"]
             if "keys" in s and s["keys"].endswith("#") and s["keys"][:-1].isdigit()}
    assert {t["amount"] for t in ledger} <= typed
    assert all(t["receipt_confirmed"] for t in approved)
    events = [json.loads(line) for line in (out / "events.jsonl").open()]
    pressed = [i for i, e in enumerate(events) if e["kind"] == "key" and e["label"] == "B"][-1]
    screen = [e["lines"] for e in events[pressed:] if e["kind"] == "display"][0]
    assert screen[0] == "BATCH 000001", screen
    assert screen[1] == "Approved: %d" % len(approved), screen
    total = sum(t["amount"] for t in approved)
    assert screen[2] == "EUR %d.%02d" % (total // 100, total % 100), screen
    statuses = Counter(t["status"] for t in ledger)
    assert statuses["declined"] > 0 and statuses["reversed"] > 0, statuses
