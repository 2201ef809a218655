"""Data at rest and in logs: no full card number, expiry with it, track data, PIN or PIN block
in what the terminal keeps (its journal, its flash, its log, its receipts) nor in the simulated
board's record of a run; keys wrapped in the settings unwrap on the board and never show.

The journal's records are checked at the core; then purchases on the simulated board (approved,
declined, recovered by a status query, a power cut after sending, a demo tag, a reprint), with
the test cards of tools/host/cards.json and a distinct six-digit PIN each, and the run's files
are scanned (tests_host/simruns.py `record_leaks`: what it looks for and where)."""

import json
from pathlib import Path

from simruns import record_leaks, run_all
from test_core import PAN, Rig

from boards import sim
from firmware import keystore
from firmware.settings import DEFAULTS

ROOT = Path(__file__).resolve().parents[1]
CARDS = json.loads((ROOT / "tools" / "host" / "cards.json").read_text())
# The PINs typed: six digits, so that none turns up by chance in a time, an amount or a picture.
PINS = {"4761739001010010": "730519", "4761739001010028": "841736",
        "4761739001010036": "260481", "4761739001010044": "613927",
        "4761739001010051": "592048", "4761739001010069": "378150"}
FAST = {"response_timeout_ms": 1500, "query_timeout_ms": 1000, "query_attempts": 2,
        "retry_base_ms": 300, "retry_max_ms": 2000, "message_ms": 500}
WIFI_PASSWORD = "correct horse battery"
KEY_NAMES = [name for name in keystore.KEY_SETTINGS if name in DEFAULTS]
CLEAR_KEYS = [DEFAULTS[name] for name in KEY_NAMES]


def _values(record):
    if isinstance(record, dict):
        for v in record.values():
            yield from _values(v)
    elif isinstance(record, (list, tuple)):
        for v in record:
            yield from _values(v)
    else:
        yield record


def test_journal_records_keep_the_last_four_digits_only():
    records = []
    for flow in ("approved", "declined", "queried", "reversed"):
        rig = Rig(query_attempts=1)
        rig.do(("card", PAN, "2812"))
        rig.keys("1250#")
        rig.keys("9731#")
        request = rig.sent[-1]
        pin_block = request[2][52]
        if flow == "approved":
            rig.answer(request)
            rig.finish_printing()
        elif flow == "declined":
            rig.answer(request, rc="51")
        else:
            rig.do(("timer", "resp"))
            if flow == "queried":
                rig.answer(rig.sent[-1])
                rig.finish_printing()
            else:
                rig.do(("timer", "query"))
        kept = getattr(rig, "flash", rig.journal)  # every record on flash, where the rig has it
        assert kept, flow
        for record in kept:
            values = list(_values(record))
            text = json.dumps(record)
            assert PAN not in text and PAN[:-4] not in text, (flow, record)
            assert "2812" not in values and "9731" not in text, (flow, record)
            assert pin_block not in values and bytes(pin_block).hex() not in text.lower()
            assert not any(isinstance(v, (bytes, bytearray)) for v in values), record
        records += kept
    sends = [r for r in records if r["r"] == "send"]
    assert len(sends) == 4 and all(r["l4"] == PAN[-4:] for r in sends)


def _scenario(config, steps):
    cards = [dict(card, pin=PINS[card["pan"]]) for card in CARDS]
    return {"config": dict(FAST, **config), "cards": cards, "steps": steps}


def _purchase(pan, amount, wait=True):
    steps = [{"tap": pan}, {"keys": amount + "#"}, {"keys": PINS[pan] + "#"}]
    return steps + ([{"wait": "settled", "timeout_ms": 30000}] if wait else [])


def _wrapped_keys():
    kek = keystore.device_key(sim.SIM_DEVICE_ID)  # the simulated board's ID: no POS_DEVICE_ID
    return {name: keystore.wrap_hex(kek, DEFAULTS[name]) for name in KEY_NAMES}


def test_the_record_of_purchases_keeps_no_card_data_pin_or_key(tmp_path):
    clear = _scenario(
        dict({name: DEFAULTS[name] for name in KEY_NAMES}, wifi_password=WIFI_PASSWORD),
        [{"wait": "idle", "timeout_ms": 10000}]
        + _purchase("4761739001010010", "1250")  # approved
        + _purchase("4761739001010028", "2500")  # declined: insufficient funds
        + [{"host": "drop_response"}] + _purchase("4761739001010010", "700")  # found by query
        + [{"host": "delay_response", "ms": 5000}] + _purchase("4761739001010051", "300", False)
        + [{"sleep_ms": 500}, {"power": "cut"}, {"sleep_ms": 500}, {"power": "on"},
           {"wait": "settled", "timeout_ms": 30000}]  # power cut after sending
        + _purchase("4761739001010044", "100")  # a demo tag; a blocked card
        + [{"keys": "A"}, {"sleep_ms": 300}, {"wait": "settled", "timeout_ms": 20000}])
    wrapped = _scenario(_wrapped_keys(), [{"wait": "idle", "timeout_ms": 10000}]
                        + _purchase("4761739001010010", "1250"))
    paths = {}
    for name, scenario in (("clear", clear), ("wrapped", wrapped)):
        paths[name] = tmp_path / (name + ".json")
        paths[name].write_text(json.dumps(scenario))
    results = run_all(paths, tmp_path / "out", timeout=300)
    for name, (status, output, _) in results.items():
        assert status == 0, "%s: %s" % (name, output)

    out = results["clear"][2]
    ledger = json.loads((out / "ledger.json").read_text())
    assert sorted(t["status"] for t in ledger).count("approved") == 3, ledger
    assert len(list((out / "receipts").glob("*.txt"))) >= 7  # 3 x 2 copies and a reprint
    assert record_leaks(out, CARDS, PINS.values(), CLEAR_KEYS + [WIFI_PASSWORD]) == []
    events = [json.loads(line) for line in (out / "events.jsonl").open()]
    config = [e for e in events if e["kind"] == "config"][0]["settings"]
    assert all(config[name] == "****" for name in KEY_NAMES + ["wifi_password"]), config
    labels = "".join(e["label"] for e in events if e["kind"] == "key")
    # Each PIN typed shows as bullets; the amounts are still there to read.
    assert labels.count("\u2022") == sum(len(PINS[p]) for p in (
        "4761739001010010", "4761739001010028", "4761739001010010", "4761739001010051",
        "4761739001010044")), labels
    assert "1250#\u2022\u2022\u2022\u2022\u2022\u2022#2500#" in labels, labels
    taps = [e for e in events if e["kind"] in ("tap", "card_read")]
    assert taps and all(set(e) == {"t_ms", "kind", "pan_last4"} for e in taps), taps
    # The keys were in clear: each boot's log says so, once, without them.
    log = (out / "firmware.log").read_text()
    assert log.count("keys stored in clear") == log.count("--- boot ") == 2, log

    out = results["wrapped"][2]
    ledger = json.loads((out / "ledger.json").read_text())
    # Approved: the MAC the host checked was made with the unwrapped key.
    assert [t["status"] for t in ledger] == ["approved"], ledger
    assert "keys stored in clear" not in (out / "firmware.log").read_text()
    assert record_leaks(out, CARDS, PINS.values(),
                        CLEAR_KEYS + list(_wrapped_keys().values())) == []
