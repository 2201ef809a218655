"""Every amount typed reaches the host as typed, with the machine loaded: two CPU hogs run beside
the simulated board for the whole run (the keypad is scanned by its timer, not by the event
loop, so a busy loop must not lose or double a digit)."""

import json
import subprocess
import sys

from simruns import ROOT

PAN = "4761739001010010"
# Amounts whose digits a lost or doubled key would change into another amount.
AMOUNTS = [1972, 305, 8640, 7, 12345, 999, 2050, 4711, 10001, 66]
# Generous: the firmware runs in real time beside the hogs, and only keys are under test.
CONFIG = {"response_timeout_ms": 8000, "query_timeout_ms": 5000, "query_attempts": 3,
          "message_ms": 300}
HOG = "while True: pass"


def test_every_typed_amount_reaches_the_host_as_typed_beside_two_cpu_hogs(tmp_path):
    steps = [{"wait": "idle", "timeout_ms": 60000}]
    for amount in AMOUNTS:
        steps += [{"tap": PAN}, {"keys": "%d#" % amount}, {"keys": "1234#"},
                  {"wait": "settled", "timeout_ms": 120000}]
    scenario = tmp_path / "amounts.json"
    card = {"pan": PAN, "expiry": "2812", "pin": "1234", "balance": sum(AMOUNTS),
            "status": "active"}
    scenario.write_text(json.dumps({"config": CONFIG, "cards": [card], "steps": steps}))
    out = tmp_path / "out"
    hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(2)]
    try:
        proc = subprocess.run([sys.executable, "-m", "tools.sim", "--scenario", str(scenario),
                               "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                              timeout=1200)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ledger = json.loads((out / "ledger.json").read_text())
    assert [t["amount"] for t in ledger] == AMOUNTS
    assert all(t["status"] == "approved" and t["receipt_confirmed"] for t in ledger)
