"""Time before TLS on the simulated board: the sim's time server slow to answer (a delay), or
losing the first request (a drop), while a card is tapped at boot. The screen says Setting
clock..., the card waits in the field, no 0200 leaves before the clock is set, and the purchase
then completes on both sides. Without ntp_host (the sim's default) nothing waits, as before."""

import json
from pathlib import Path

import pytest
from simruns import run_all

from tools.sim.scenario import ScenarioError, validate

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "approved_after_clock_set.json"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("clock")
    delayed = json.loads(EXAMPLE.read_text())
    dropped = json.loads(EXAMPLE.read_text())
    dropped["steps"][0] = {"ntp": "drop", "times": 1}  # 3 s timeout, then again in 10 s
    plain = json.loads((ROOT / "examples" / "approved.json").read_text())
    scenarios = {}
    for name, scenario in (("delayed", delayed), ("dropped", dropped), ("no_ntp", plain)):
        scenarios[name] = base / (name + ".json")
        scenarios[name].write_text(json.dumps(scenario))
    return run_all(scenarios, base)


def _record(runs, name):
    rc, out, path = runs[name]
    assert rc == 0, "%s failed: %s" % (name, out)
    events = [json.loads(line) for line in (path / "events.jsonl").read_text().splitlines()]
    ledger = json.loads((path / "ledger.json").read_text())
    return events, ledger


def _first(events, test):
    for i, event in enumerate(events):
        if test(event):
            return i
    raise AssertionError("no such event")


def _log(text):
    return lambda e: e["kind"] == "log" and e["text"].startswith(text)


@pytest.mark.parametrize("name", ["delayed", "dropped"])
def test_purchases_wait_for_the_clock_then_complete(runs, name):
    events, ledger = _record(runs, name)
    why = _first(events, _log("clock: not set"))
    assert "purchases wait for NTP from 127.0.0.1:" in events[why]["text"]
    tapped = _first(events, lambda e: e["kind"] == "tap")
    answered = _first(events, lambda e: e["kind"] == "ntp")
    opened = _first(events, _log("clock: set; purchases open"))
    read = _first(events, lambda e: e["kind"] == "card_read")
    purchase = _first(events, lambda e: e["kind"] == "host_tx" and e.get("mti") == "0200")
    # The card was in the field before the clock was set, and read only after.
    assert why < tapped < answered < opened < read < purchase
    held = [e["lines"] for e in events[:opened] if e["kind"] == "display"
            and "Setting clock..." in e["lines"]]
    assert held and not [lines for lines in held if "Ready" in lines], held
    assert not [e for e in events[:opened] if e["kind"] in ("host_tx", "card_read")]
    if name == "dropped":
        assert [e for e in events[:opened] if _log("ntp: 127.0.0.1:")(e)
                and "again in 10 s" in e["text"]], "the lost request was not retried"
    purchases = [t for t in ledger if t["type"] == "purchase"]
    assert [(t["amount"], t["status"]) for t in purchases] == [(1250, "approved")], ledger
    assert len([e for e in events if e["kind"] == "receipt"]) == 2


def test_without_ntp_host_nothing_waits(runs):
    events, ledger = _record(runs, "no_ntp")
    assert not [e for e in events if e["kind"] == "log" and e["text"].startswith("clock: ")]
    assert not [e for e in events if e["kind"] == "display" and "Setting clock..." in e["lines"]]
    assert [t["status"] for t in ledger if t["type"] == "purchase"] == ["approved"]


def test_an_ntp_step_needs_the_sims_time_server():
    with pytest.raises(ScenarioError, match="ntp_host"):
        validate({"steps": [{"ntp": "delay", "ms": 100}]})
    with pytest.raises(ScenarioError, match="needs ms"):
        validate({"config": {"ntp_host": "sim"}, "steps": [{"ntp": "delay"}]})
    validate({"config": {"ntp_host": "sim"}, "steps": [{"ntp": "drop", "times": "all"},
                                                       {"ntp": "heal"}]})
