"""The example scenarios, run end to end: real firmware (unix port), simulated board, host
simulator. Each outcome is checked on both sides: the receipts printed and the host's ledger."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from simruns import run_all

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ["approved", "declined", "timeout_recovered_by_query", "timeout_reversal",
            "late_response_after_reversal", "power_cut_after_send", "paper_out_after_approval",
            "card_not_read"]



# The approved example once more with the static keys (key_scheme static): the examples
# themselves run with the default, DUKPT.
STATIC = "approved_static_keys"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run every example, a few at a time (they take seconds of simulated waiting each)."""
    base = tmp_path_factory.mktemp("sim")
    scenarios = {name: ROOT / "examples" / (name + ".json") for name in EXAMPLES}
    static = json.loads(scenarios["approved"].read_text())
    static["config"]["key_scheme"] = "static"
    scenarios[STATIC] = base / (STATIC + ".json")
    scenarios[STATIC].write_text(json.dumps(static))
    return run_all(scenarios, base)


def ksns(events):
    """Field 53 (hex) of every request the terminal sent, in order, or None where absent."""
    from tools.host import spec

    return [spec.decode_frame(bytes.fromhex(e["hex"])[2:])[1].get("53")
            for e in events if e["kind"] == "host_tx"]


def record(runs, name):
    rc, out, path = runs[name]
    assert rc == 0, "%s failed: %s" % (name, out)
    ledger = json.loads((path / "ledger.json").read_text())
    events = [json.loads(line) for line in (path / "events.jsonl").read_text().splitlines()]
    receipts = [e["text"] for e in events if e["kind"] == "receipt"]
    files = sorted((path / "receipts").glob("*.txt")) if (path / "receipts").is_dir() else []
    assert [f.read_text() for f in files] == receipts
    purchases = [t for t in ledger if t["type"] == "purchase"]
    assert len(purchases) == 1, ledger
    return purchases[0], receipts, events, path


def sent(events, *mtis):
    return [e for e in events if e["kind"] == "host_tx" and e["mti"] in mtis]


# A reversal, or its repeat: one that may have left before (a connection that timed out, as on
# a loaded machine) goes again as 0401.
REVERSAL = ("0400", "0401")


def assert_clean(path):
    from tools.sim.check import check

    assert check(path) == []


def assert_approved_receipts(txn, receipts, reprint=None):
    assert txn["status"] == "approved"
    assert txn["receipt_confirmed"] is True
    assert len(receipts) >= 1
    for text in receipts:
        assert "APPROVED" in text
        assert "TRACE NO" in text and txn["stan"] in text
        assert "**** " + txn["pan_last4"] in text
        assert "12.50" in text
        if reprint is not None:
            assert ("REPRINT" in text) == reprint


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_record_is_clean(runs, name):
    record(runs, name)
    assert_clean(runs[name][2])


def test_approved(runs):
    txn, receipts, events, _ = record(runs, "approved")
    assert_approved_receipts(txn, receipts, reprint=False)
    assert txn["amount"] == 1250
    assert sent(events, "0220")  # the receipt confirmation


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_request_has_a_ksn_of_its_own(runs, name):
    _, _, events, _ = record(runs, name)
    found = ksns(events)
    assert found and None not in found, found
    assert len(set(found)) == len(found), "a KSN used twice: %r" % found
    assert {k[:8] for k in found} == {bytes.fromhex("1234567890123456")}
    answers = [e for e in events if e["kind"] == "host_rx"]
    assert not [e for e in answers if e.get("rc") == "63"], "the host refused a request"


def test_approved_with_static_keys(runs):
    txn, receipts, events, path = record(runs, STATIC)
    assert_approved_receipts(txn, receipts, reprint=False)
    assert set(ksns(events)) == {None}
    assert_clean(path)


def test_declined_insufficient_funds(runs):
    txn, receipts, events, _ = record(runs, "declined")
    assert txn["status"] == "declined"
    assert not any("APPROVED" in r for r in receipts)
    assert [e["rc"] for e in events if e["kind"] == "host_rx"] == ["51"]


def test_card_not_read_is_said_then_a_good_card_pays(runs):
    txn, receipts, events, path = record(runs, "card_not_read")
    unread = [e for e in events if e["kind"] == "card_unread"]
    assert [e["reason"] for e in unread] == ["not a demo card"]
    shown = [e["lines"] for e in events if e["kind"] == "display"]
    assert ["Card not read", "", "Try again"] in shown
    assert "card not read: not a demo card" in (path / "firmware.log").read_text()
    # Nothing about the tag reached the host; the card tapped next paid as usual.
    assert txn["pan_last4"] == "0010"
    assert_approved_receipts(txn, receipts, reprint=False)


def test_timeout_recovered_by_query(runs):
    txn, receipts, events, _ = record(runs, "timeout_recovered_by_query")
    assert sent(events, "0600"), "no status query was sent"
    assert not sent(events, *REVERSAL)
    assert_approved_receipts(txn, receipts, reprint=False)


def test_timeout_reversal(runs):
    txn, receipts, events, _ = record(runs, "timeout_reversal")
    assert sent(events, "0600") and sent(events, *REVERSAL)
    assert txn["status"] == "reversed"
    assert not any("APPROVED" in r for r in receipts)


def test_late_response_after_reversal_is_ignored(runs):
    txn, receipts, events, _ = record(runs, "late_response_after_reversal")
    assert txn["status"] == "reversed"
    assert not any("APPROVED" in r for r in receipts)
    reversal_t = sent(events, *REVERSAL)[0]["t_ms"]
    late = [e for e in events if e["kind"] == "host_rx" and e["mti"] == "0210"]
    assert late and late[0]["t_ms"] > reversal_t, "the late approval never reached the terminal"


def test_power_cut_after_send(runs):
    txn, receipts, events, _ = record(runs, "power_cut_after_send")
    kinds = [(e["kind"], e.get("state")) for e in events if e["kind"] == "power"]
    assert ("power", "cut") in kinds
    assert sent(events, "0600"), "the in-flight purchase was not resolved by a status query"
    assert_approved_receipts(txn, receipts)
    # Nothing was printed before the cut, so each copy is printed exactly once unmarked.
    assert not any("REPRINT" in r for r in receipts)


def test_paper_out_after_approval(runs):
    txn, receipts, events, _ = record(runs, "paper_out_after_approval")
    paper_in = [e["t_ms"] for e in events if e["kind"] == "paper" and e["state"] == "in"][0]
    assert all(e["t_ms"] > paper_in for e in events if e["kind"] == "receipt")
    assert_approved_receipts(txn, receipts, reprint=False)


def test_make_sims_relative_interpreter_path(tmp_path):
    # `make sim SCENARIO=...` passes --micropython .venv/bin/micropython, relative to the repo,
    # while the board process runs in the record's folder: it once failed to start there.
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "tools.sim", "--scenario", "examples/approved.json", "--out",
         str(out), "--micropython", ".venv/bin/micropython"],
        cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 transaction (1 approved)" in proc.stdout + proc.stderr
