"""Power cuts at random instants of real purchases on the simulated board (the MicroPython
process killed with SIGKILL on its littlefs image), seeded so a failure replays; then power on,
and the record is checked on both sides: every approval printed and confirmed, nothing else
printed as approved, totals agreeing (key B), no full card number anywhere."""

import json
import random

from simruns import run_all

from tools.sim.check import check

SEED = 7
PURCHASES = 15
CONFIG = {"response_timeout_ms": 1500, "query_timeout_ms": 800, "query_attempts": 2,
          "retry_base_ms": 300, "retry_max_ms": 1500, "message_ms": 300}


def amounts(seed):
    # Repeated digits on purpose: a key typed twice must count twice (1100, not 10).
    rng = random.Random(seed)
    return [int(str(rng.randint(1, 9)) * rng.randint(2, 4)) for _ in range(PURCHASES)]


def scenario(seed):
    rng = random.Random(seed + 1)
    steps = [{"wait": "idle", "timeout_ms": 20000}]
    for amount in amounts(seed):
        steps += [{"tap": "4761739001010010"}, {"keys": "%d#" % amount}, {"keys": "1234#"},
                  # The cut falls anywhere from sending the request to printing the copies
                  # and sending the confirmation.
                  {"sleep_ms": rng.randint(0, 1200)}, {"power": "cut"},
                  {"sleep_ms": rng.randint(50, 400)}, {"power": "on"},
                  {"wait": "settled", "timeout_ms": 40000}]
    steps += [{"keys": "B"}, {"sleep_ms": 150}]
    return {"config": CONFIG, "steps": steps}


def test_random_power_cuts_through_purchases(tmp_path):
    path = tmp_path / "cuts.json"
    path.write_text(json.dumps(scenario(SEED)))
    rc, out, record = run_all({"cuts": path}, tmp_path, timeout=600)["cuts"]
    assert rc == 0, out
    assert check(record) == []
    ledger = json.loads((record / "ledger.json").read_text())
    events = [json.loads(line) for line in (record / "events.jsonl").open()]
    cuts = sum(1 for e in events if e["kind"] == "power" and e["state"] == "cut")
    assert cuts == PURCHASES + 1  # and the one at the end of the run
    approved = [t for t in ledger if t["status"] == "approved"]
    assert approved and all(t["receipt_confirmed"] for t in approved)
    # What reached the host is what was typed (in order; a purchase cut before it was sent
    # leaves no trace there).
    typed = iter(amounts(SEED))
    assert all(t["amount"] in typed for t in ledger), [t["amount"] for t in ledger]
    pressed = [i for i, e in enumerate(events) if e["kind"] == "key" and e["label"] == "B"][-1]
    screen = [e["lines"] for e in events[pressed:] if e["kind"] == "display"][0]
    assert screen[1] == "Approved: %d" % len(approved), screen
