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
])
def test_bad_scenarios_are_refused(scenario, reason):
    with pytest.raises(ScenarioError, match=reason):
        validate(scenario)


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
