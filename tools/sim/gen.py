"""Seeded fault-campaign scenarios: `python -m tools.sim.gen --seed N --purchases 200 > s.json`.

Purchases with, between and inside them, the faults of docs/simulated-board.md: every host
fault (also aimed at queries, reversals and advices), network down/up, paper out/in, power
cut/on. Every fault is undone before the purchase's `wait idle`; the scenario ends by healing
everything and waiting until the terminal has settled. The same seed always gives the same
scenario. Check the record with `python -m tools.sim.check DIR`.
"""

import argparse
import json
import random
import sys

CONFIG = {"response_timeout_ms": 1500, "query_timeout_ms": 1000, "query_attempts": 2,
          "retry_base_ms": 300, "retry_max_ms": 2000, "message_ms": 300}
CARDS = [
    {"pan": "4761739001010010", "expiry": "2812", "pin": "1234", "balance": 10 ** 9,
     "status": "active"},
    {"pan": "4761739001010028", "expiry": "2812", "pin": "1234", "balance": 500,
     "status": "active"},
    {"pan": "4761739001010044", "expiry": "2812", "pin": "1234", "balance": 50000,
     "status": "blocked"},
]
HOST_FAULTS = ["drop_request", "drop_response", "delay_response", "disconnect", "bad_mac",
               "crash_after_commit"]
TARGETS = [None, None, None, "query", "reversal", "advice"]
WAIT_MS = 90000


def host_fault(rng):
    step = {"host": rng.choice(HOST_FAULTS)}
    target = rng.choice(TARGETS)
    if target:
        step["for"] = target
    if step["host"] == "delay_response":
        step["ms"] = rng.choice([300, 1000, 2500, 5000])
    elif step["host"] == "crash_after_commit":
        step["ms"] = rng.choice([200, 1000, 3000])
    if rng.random() < 0.3:
        step["times"] = rng.randint(2, 3)
    return step


def purchase(rng):
    card = rng.choices(CARDS, weights=[8, 1, 1])[0]
    amount = str(rng.randint(1, 20000))
    steps = [{"tap": card["pan"]}]
    if rng.random() < 0.04:  # the customer changes their mind
        return steps + [{"keys": "*"}, {"wait": "idle", "timeout_ms": WAIT_MS}]
    fault = rng.choices(["none", "host", "host_down", "net", "paper", "power", "power_late"],
                        weights=[40, 25, 5, 8, 8, 9, 5])[0]
    steps.append({"keys": amount + "#"})
    before, after = [], []
    if fault == "host":
        before = [host_fault(rng)]
    elif fault == "host_down":
        before = [{"host": "host_down"}]
        after = [{"sleep_ms": rng.choice([200, 1500, 4000])}, {"host": "host_up"}]
    elif fault == "net":
        before = [{"net": "down"}] if rng.random() < 0.3 else []
        after = ([] if before else [{"sleep_ms": rng.randint(0, 2500)}, {"net": "down"}])
        after += [{"sleep_ms": rng.choice([300, 1500, 4000])}, {"net": "up"}]
    elif fault == "paper":
        before = [{"paper": "out"}]
        after = [{"sleep_ms": rng.choice([500, 2000, 5000])}, {"paper": "in"}]
    elif fault in ("power", "power_late"):
        if rng.random() < 0.5:
            before = [host_fault(rng)]
        cut_at = rng.randint(0, 800) if fault == "power" else rng.randint(800, 5000)
        after = [{"sleep_ms": cut_at}, {"power": "cut"}, {"sleep_ms": rng.choice([100, 1000])},
                 {"power": "on"}]
    steps += before + [{"keys": "1234#"}] + after
    steps.append({"wait": "idle", "timeout_ms": WAIT_MS})
    return steps


def generate(seed, purchases):
    rng = random.Random(seed)
    steps = [{"wait": "idle", "timeout_ms": WAIT_MS}]
    for _ in range(purchases):
        steps += purchase(rng)
        if rng.random() < 0.1:
            steps.append({"host": "heal"})
    steps += [{"host": "heal"}, {"host": "host_up"}, {"net": "up"}, {"paper": "in"},
              {"power": "on"}, {"wait": "settled", "timeout_ms": 180000}]
    return {"config": dict(CONFIG), "cards": [dict(c) for c in CARDS], "steps": steps}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.sim.gen",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--purchases", type=int, default=200)
    args = parser.parse_args(argv)
    json.dump(generate(args.seed, args.purchases), sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
