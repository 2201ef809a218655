"""A power cut at each point of the purchase flow, on the simulated board (real MicroPython
process killed with SIGKILL, real littlefs image), checked on both sides after power returns."""

import json

import pytest
from simruns import run_all

from tools.sim.check import check

PAN = "4761739001010010"
# Timeouts with room for a loaded machine: the firmware runs in real time, and an answer the
# host sends at once must never miss them.
CONFIG = {"response_timeout_ms": 4000, "query_timeout_ms": 3000, "query_attempts": 2,
          "retry_base_ms": 300, "retry_max_ms": 1500, "message_ms": 300}
START = [{"wait": "idle", "timeout_ms": 10000}]
CUT = [{"power": "cut"}, {"sleep_ms": 300}, {"power": "on"}]
PAY = [{"tap": PAN}, {"keys": "1250#"}, {"keys": "1234#"}]
SETTLED = [{"wait": "settled", "timeout_ms": 40000}]

def sent(mti):
    return [{"wait": "sent", "mti": mti, "timeout_ms": 20000}]


def received(mti):
    return [{"wait": "received", "mti": mti, "timeout_ms": 20000}]


# Each cut is timed to a message of the flow, not to a duration: on a busy machine the firmware
# takes longer to get there, and the cut must still land where the scenario says.
SCENARIOS = {
    # Nothing was sent: nothing on the host, and the terminal takes the next purchase.
    "amount_entry": START + [{"tap": PAN}, {"keys": "12"}] + CUT + SETTLED + PAY + SETTLED,
    "pin_entry": START + [{"tap": PAN}, {"keys": "1250#12"}] + CUT + SETTLED,
    # Sent, and the host never got it: the status query after boot finds no record.
    "sent_request_lost": START + [{"host": "drop_request"}] + PAY + sent("0200") + CUT
    + SETTLED,
    # Approved and journaled, paper out so nothing printed yet: printed after boot and paper.
    "approved_not_printed": START + [{"paper": "out"}] + PAY + received("0210")
    + [{"wait": "idle", "timeout_ms": 20000}] + CUT + [{"paper": "in"}] + SETTLED,
    # Printed, confirmation not yet acknowledged: sent after boot, nothing printed again.
    "printed_not_confirmed": START + [{"host": "drop_response", "for": "advice", "times": "all"}]
    + PAY + sent("0220") + CUT + [{"host": "heal"}] + SETTLED,
    # Reversal decided and not acknowledged: sent after boot, before anything new.
    "reversal_pending": START + [
        {"host": "drop_response"},
        {"host": "drop_response", "for": "query", "times": "all"},
        {"host": "drop_response", "for": "reversal", "times": "all"},
    ] + PAY + sent("0400") + CUT + [{"host": "heal"}] + SETTLED,
    # Power cut again while boot recovery is asking the host.
    "during_recovery": START + [
        {"host": "drop_response"},
        {"host": "delay_response", "for": "query", "ms": 8000, "times": 2},
    ] + PAY + sent("0200") + CUT + sent("0600") + CUT + SETTLED,
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("power")
    paths = {}
    for name, steps in SCENARIOS.items():
        paths[name] = base / (name + ".json")
        paths[name].write_text(json.dumps({"config": CONFIG, "steps": steps}))
    return run_all(paths, base)


def outcome(runs, name):
    rc, out, path = runs[name]
    assert rc == 0, "%s: %s" % (name, out)
    assert check(path) == []
    ledger = json.loads((path / "ledger.json").read_text())
    events = [json.loads(line) for line in (path / "events.jsonl").open()]
    receipts = [e["text"] for e in events if e["kind"] == "receipt"]
    assert sum(1 for e in events if e["kind"] == "boot") >= 2, "the power was not cut"
    return ledger, receipts, events


def test_cut_in_amount_entry_leaves_nothing_and_next_purchase_works(runs):
    ledger, receipts, _ = outcome(runs, "amount_entry")
    assert [t["status"] for t in ledger] == ["approved"]
    assert ledger[0]["stan"] == "000001"
    assert len(receipts) == 2 and not any("REPRINT" in r for r in receipts)


def test_cut_in_pin_entry_leaves_nothing(runs):
    ledger, receipts, events = outcome(runs, "pin_entry")
    assert ledger == [] and receipts == []
    assert not [e for e in events if e["kind"] == "host_tx"]


def test_cut_after_lost_request_ends_not_charged(runs):
    ledger, receipts, events = outcome(runs, "sent_request_lost")
    assert ledger == [] and receipts == []
    answers = [e["rc"] for e in events if e["kind"] == "host_rx" and e["mti"] == "0610"]
    assert answers == ["25"]


def test_cut_after_approval_prints_after_boot(runs):
    ledger, receipts, _ = outcome(runs, "approved_not_printed")
    assert [(t["status"], t["receipt_confirmed"]) for t in ledger] == [("approved", True)]
    assert len(receipts) == 2
    # The journal cannot tell whether the merchant copy had started: it says REPRINT.
    assert "MERCHANT COPY" in receipts[0] and "REPRINT" in receipts[0]
    assert "CUSTOMER COPY" in receipts[1] and "REPRINT" not in receipts[1]


def test_cut_before_confirmation_sends_it_after_boot(runs):
    ledger, receipts, events = outcome(runs, "printed_not_confirmed")
    assert [(t["status"], t["receipt_confirmed"]) for t in ledger] == [("approved", True)]
    assert len(receipts) == 2 and not any("REPRINT" in r for r in receipts)
    boots = [e["t_ms"] for e in events if e["kind"] == "boot"]
    advices = [e["t_ms"] for e in events if e["kind"] == "host_tx" and e["mti"] == "0220"]
    assert advices[0] < boots[1] <= advices[-1]


def test_cut_with_reversal_pending_reverses_after_boot(runs):
    ledger, receipts, events = outcome(runs, "reversal_pending")
    assert [t["status"] for t in ledger] == ["reversed"]
    assert receipts == []
    boots = [e["t_ms"] for e in events if e["kind"] == "boot"]
    reversals = [e for e in events if e["kind"] == "host_tx" and e["mti"] in ("0400", "0401")]
    assert reversals[0]["t_ms"] < boots[1] <= reversals[-1]["t_ms"]


def test_cut_during_boot_recovery_recovers_again(runs):
    ledger, receipts, events = outcome(runs, "during_recovery")
    assert sum(1 for e in events if e["kind"] == "boot") == 3
    assert [(t["status"], t["receipt_confirmed"]) for t in ledger] == [("approved", True)]
    assert len(receipts) == 2
