"""The simulator's own parts: scenario validation, frame description, the record checker, the
generator, and the simulated board's littlefs flash surviving SIGKILL."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tools.sim import check, gen
from tools.sim.scenario import ScenarioError, validate
from tools.sim.session import describe_frame

ROOT = Path(__file__).resolve().parents[1]
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"


@pytest.mark.parametrize("scenario, reason", [
    ([], "JSON object"),
    ({"steps": [{"jump": 1}]}, "unknown step"),
    ({"config": {"no_such_setting": 1}, "steps": []}, "unknown setting"),
    ({"steps": [{"keys": "12x"}]}, "labels"),
    ({"steps": [{"net": "sideways"}]}, "net must be"),
    ({"steps": [{"host": "explode"}]}, "host must be"),
    ({"steps": [{"host": "drop_response", "for": "advice", "times": 0}]}, "times"),
    ({"steps": [{"wait": "idle", "timeout_ms": -1}]}, "timeout_ms"),
    ({"steps": [{"tap": "4761"}]}, "PAN"),
    ({"steps": [{"tap": "4761739001010010", "keys": "1"}]}, "unknown step"),
    ({"cards": [{"pan": "4761739001010010", "profile": "amex"}], "steps": []}, "profile"),
    ({"steps": [{"tap": "4761739001010011"}]}, r"step 1: tap: .*Luhn check"),
])
def test_bad_scenarios_are_refused(scenario, reason):
    with pytest.raises(ScenarioError, match=reason):
        validate(scenario)


CARD = {"pan": "4761739001010010", "expiry": "2812", "pin": "1234", "balance": 50000,
        "status": "active"}


@pytest.mark.parametrize("changes, reason", [
    ({"balence": 500}, r"card \.\.\.0010: unknown field\(s\) \['balence'\]"),
    ({"pan": "4761739001010011"}, r"card \.\.\.0011: .*Luhn check \(its last digit would be 0\)"),
    ({"pan": "47617390010"}, "12 to 19 digits"),
    ({"balance": -1}, "balance must be a whole number of minor units, 0 or more"),
    ({"balance": "500"}, "balance must be"),
    ({"expiry": "2813"}, "month 13 is not 01 to 12"),
    ({"expiry": "2800"}, "month 00"),
    ({"expiry": "281"}, "YYMM"),
    ({"expiry": None}, "expiry missing"),
    ({"pin": "12"}, "pin must be 4 to 12 digits"),
    ({"pin": 1234}, "pin must be"),
    ({"status": "frozen"}, "status must be one of active, blocked"),
    ({"limit": -5}, "limit must be"),
])
def test_what_cannot_be_a_card_is_refused(changes, reason):
    card = {k: v for k, v in dict(CARD, **changes).items() if v is not None}
    with pytest.raises(ScenarioError, match=reason):
        validate({"cards": [card], "steps": []})


def test_a_card_may_have_its_limit_label_and_profile_and_an_expired_date():
    validate({"cards": [dict(CARD, expiry="2201", limit=None, label="old", profile="ntag213"),
                        dict(CARD, pan="4761739001010028", limit=1000, status="blocked")]})


def test_cli_unknown_card_field_exits_nonzero_with_one_line(tmp_path):
    bad = tmp_path / "balence.json"
    card = {k: v for k, v in CARD.items() if k != "balance"}
    bad.write_text(json.dumps({"cards": [dict(card, balence=50000)],
                               "steps": [{"wait": "idle"}]}))
    proc = subprocess.run([sys.executable, "-m", "tools.sim", "--scenario", str(bad),
                           "--out", str(tmp_path / "out")], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "tools.sim: card ...0010: unknown field(s) ['balence'] (a card has pan, expiry, pin, "
        "balance, status, limit, label, profile)"], proc.stderr
    assert not (tmp_path / "out").exists()


def test_contract_example_is_valid():
    validate({
        "config": {"response_timeout_ms": 2000},
        "cards": [{"pan": "4761739001010010", "expiry": "2812", "pin": "1234",
                   "balance": 50000, "status": "active"}],
        "steps": [{"host": "delay_response", "ms": 4000}, {"tap": "4761739001010010"},
                  {"keys": "1250#"}, {"keys": "1234#"},
                  {"host": "drop_response", "for": "query", "times": "all"},
                  {"net": "down"}, {"net": "up"}, {"paper": "out"}, {"paper": "in"},
                  {"power": "cut"}, {"power": "on"}, {"sleep_ms": 10},
                  {"wait": "idle", "timeout_ms": 60000}, {"wait": "settled", "timeout_ms": 1}]})


def test_cli_bad_json_exits_nonzero_with_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    proc = subprocess.run([sys.executable, "-m", "tools.sim", "--scenario", str(bad),
                           "--out", str(tmp_path / "out")], cwd=ROOT, capture_output=True,
                          text=True)
    assert proc.returncode != 0
    assert len(proc.stderr.strip().splitlines()) == 1 and "bad JSON" in proc.stderr


def test_describe_frame_tolerates_garbage():
    assert describe_frame(b"\x00\x01garbage") == {"mti": None, "stan": None}
    assert describe_frame(b"0800" + b"\xff" * 3)["mti"] == "0800"


def test_generator_is_seeded_and_valid():
    a = gen.generate(7, 30)
    assert a == gen.generate(7, 30)
    assert a != gen.generate(8, 30)
    validate(a)
    steps = a["steps"]
    assert steps[-1]["wait"] == "settled"
    for kind in ({"host": "heal"}, {"net": "up"}, {"paper": "in"}, {"power": "on"}):
        assert kind in steps[-6:]
    many = gen.generate(3, 400)["steps"]
    faults = {s["host"] for s in many if "host" in s}
    assert set(gen.HOST_FAULTS) <= faults
    assert {"for"} <= {k for s in many for k in s}
    assert {"power", "net", "paper"} <= {k for s in many for k in s}


def _write_record(path, ledger, events):
    path.mkdir(parents=True, exist_ok=True)
    (path / "ledger.json").write_text(json.dumps(ledger))
    with open(path / "events.jsonl", "w") as f:
        for i, e in enumerate(events):
            f.write(json.dumps(dict({"t_ms": i}, **e)) + "\n")


def _receipt(stan, rrn, copy, reprint=False, approved=True):
    lines = ["DEMO CAFE", copy] + (["*** REPRINT ***"] if reprint else [])
    lines += ["TRACE NO %s" % stan, "RRN %s" % rrn, "AMOUNT EUR 1.00"]
    lines += ["APPROVED"] if approved else []
    return {"kind": "receipt", "text": "\n".join(lines) + "\n"}


TXN = {"tid": "TERM0001", "stan": "000001", "rrn": "633000000001", "type": "purchase",
       "amount": 100, "pan_last4": "0010", "status": "approved", "receipt_confirmed": True}
CONFIG = {"kind": "config", "settings": {"receipt_copies": 2}}


def test_checker_accepts_a_clean_record(tmp_path):
    _write_record(tmp_path, [TXN], [CONFIG, _receipt("000001", "633000000001", "MERCHANT COPY"),
                                    _receipt("000001", "633000000001", "CUSTOMER COPY"),
                                    _receipt("000001", "633000000001", "CUSTOMER COPY", True)])
    assert check.check(tmp_path) == []


@pytest.mark.parametrize("ledger, events, rule", [
    ([TXN], [CONFIG, _receipt("000001", "633000000001", "MERCHANT COPY")], "1 of 2"),
    ([TXN], [CONFIG], "no receipt"),
    ([dict(TXN, receipt_confirmed=False)],
     [CONFIG, _receipt("000001", "633000000001", "MERCHANT COPY"),
      _receipt("000001", "633000000001", "CUSTOMER COPY")], "receipt_confirmed"),
    ([TXN], [CONFIG, _receipt("000001", "633000000001", "MERCHANT COPY"),
             _receipt("000001", "633000000001", "CUSTOMER COPY"),
             _receipt("000001", "633000000001", "CUSTOMER COPY")], "without REPRINT"),
    ([dict(TXN, status="reversed")], [CONFIG, _receipt("000001", "633000000001", "CUSTOMER COPY")],
     "reversed"),
    ([], [CONFIG, _receipt("000009", "633000000009", "CUSTOMER COPY")], "no host transaction"),
    ([], [CONFIG, {"kind": "display", "lines": ["4761739001010010"]}], "S7"),
])
def test_checker_finds_violations(tmp_path, ledger, events, rule):
    _write_record(tmp_path, ledger, events)
    assert any(rule in v for v in check.check(tmp_path)), check.check(tmp_path)


def test_checker_ignores_pan_in_wire_frames(tmp_path):
    _write_record(tmp_path, [], [{"kind": "host_tx", "mti": "0200", "stan": "000001",
                                  "hex": "4761739001010010"}])
    assert check.check(tmp_path) == []


FLASH_WRITER = """
import sys, os
sys.path.insert(0, %r)
import boards.sim as sim
sim.mount()
n = len(os.listdir('/flash'))
with open('/flash/f%%03d' %% n, 'w') as f:
    f.write('x' * 3000)
print('wrote', n)
while True:
    pass
"""


@pytest.mark.skipif(not MICROPYTHON.exists(), reason="needs the MicroPython unix port")
def test_flash_image_survives_sigkill(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(FLASH_WRITER % str(ROOT))
    env = dict(os.environ, POS_FLASH=str(tmp_path / "flash.img"))
    for i in range(3):
        proc = subprocess.Popen([str(MICROPYTHON), str(script)], env=env,
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().split() == ["wrote", str(i)]
        proc.send_signal(signal.SIGKILL)  # power cut: no close, no unmount
        proc.wait()
    assert (tmp_path / "flash.img").stat().st_size == 512 * 1024


def test_virtual_clock_follows_real_time_across_the_ticks_wrap(monkeypatch):
    # A 32-bit MicroPython's ticks_us wraps every 2^30 us (18 minutes): the simulated board's
    # clock must still only move forward, or its printer and reader models stop for 18 minutes.
    from tools.models import bus

    period = 1 << 30
    now = [period - 5000]
    monkeypatch.setattr(bus, "_ticks_us", lambda: now[0])
    monkeypatch.setattr(bus, "_ticks_diff",
                        lambda a, b: ((a - b + period // 2) % period) - period // 2)
    clock = bus.VirtualClock(real=True)
    seen = [clock.now()]
    for _ in range(4):
        now[0] = (now[0] + 3000) % period  # past the wrap on the second step
        clock.advance(100)
        seen.append(clock.now())
    assert seen == [0, 3100, 6200, 9300, 12400]


FAST = {"response_timeout_ms": 1500, "query_timeout_ms": 1000, "query_attempts": 2,
        "retry_base_ms": 300, "retry_max_ms": 2000, "message_ms": 500}


def _sim(scenario, out, *args):
    return subprocess.run([sys.executable, "-m", "tools.sim", "--scenario", str(scenario),
                           "--out", str(out), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.skipif(not MICROPYTHON.exists(), reason="needs the MicroPython unix port")
def test_a_run_ends_with_its_summary_and_keeps_its_record_without_force(tmp_path):
    purchase = [{"keys": "1250#"}, {"keys": "1234#"}, {"wait": "settled", "timeout_ms": 60000}]
    scenario = tmp_path / "two.json"
    scenario.write_text(json.dumps({"config": FAST, "steps": [
        {"wait": "idle", "timeout_ms": 60000}, {"tap": "4761739001010010"}, *purchase,
        {"tap": "4761739001010028"}, *purchase]}))  # approved, then declined 51
    out = tmp_path / "out"
    proc = _sim(scenario, out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    receipts = len(list((out / "receipts").glob("*.txt")))
    assert receipts >= 2
    assert proc.stdout.splitlines()[-1] == (
        "tools.sim: 2 transactions (1 approved, 1 declined), %d receipts printed (0 reprints); "
        "record in %s (events.jsonl, ledger.json, receipts/)" % (receipts, out))
    # Again into the same OUT: refused in one line, the record as it was.
    record = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    again = _sim(scenario, out)
    assert again.returncode == 2 and again.stdout == ""
    assert again.stderr.splitlines() == [
        "tools.sim: %s holds something already, which this run would replace: give another "
        "OUT, or --force (make sim FORCE=1)" % out]
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == record
    # With --force it is replaced: a run with no purchase leaves an empty ledger.
    idle = tmp_path / "idle.json"
    idle.write_text(json.dumps({"config": FAST, "steps": [{"wait": "idle",
                                                           "timeout_ms": 60000}]}))
    forced = _sim(idle, out, "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert forced.stdout.splitlines()[-1].startswith(
        "tools.sim: 0 transactions, 0 receipts printed (0 reprints); record in %s" % out)
    assert json.loads((out / "ledger.json").read_text()) == []


def test_a_file_for_out_is_refused_even_with_force(tmp_path):
    scenario = tmp_path / "idle.json"
    scenario.write_text(json.dumps({"steps": []}))
    (tmp_path / "out").write_text("notes")
    proc = _sim(scenario, tmp_path / "out", "--force")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == ["tools.sim: %s is a file, not a folder for the record: "
                                        "give another OUT" % (tmp_path / "out")]
