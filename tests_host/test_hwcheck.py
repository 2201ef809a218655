# portable: micropython heapsize=400000
"""The on-board hardware check, run against the simulated board's buses and chip models: a
person's keys, a tapped card and the printer are played by the models."""

import json
import os
import sys
import time

from boards import sim
from firmware.settings import DEFAULTS
from tools import hwcheck
from tools.models import emvcard

PAN = "4761739001010010"


def _sleep_ms(ms):
    if hasattr(time, "sleep_ms"):
        time.sleep_ms(ms)
    else:
        time.sleep(ms / 1000)


def _run(**overrides):
    """The check with `overrides` in its settings, on a board wired with the defaults."""
    models = {}
    wiring = sim.buses(DEFAULTS, models)
    settings = dict(DEFAULTS)
    settings.update(overrides)
    models["field"][0](emvcard.visa_like(PAN, "2812"))
    now = models["clock"].now() // 1000
    for i, label in enumerate("123A456B789C*0#D"):
        # After the display step's half-second test pattern, one key every 90 ms.
        models["keypad"].press(label, now + 900 + i * 90, 60)
    out = []
    check = hwcheck.Check(settings, wiring, wait_s=3, out=out.append, sleep_ms=_sleep_ms)
    failed = check.run()
    return failed, check.results, "\n".join(out), models


def test_every_module_passes_on_a_working_board():
    failed, results, text, models = _run()
    assert failed == 0, text
    assert [r[0] for r in results] == ["i2c bus", "display", "keypad", "card reader",
                                       "printer"]
    assert "0x24" in text and "0x3C" in text
    assert "16 keys seen" in text
    assert "card ...0010 expiry 12/28" in text and PAN not in text
    assert "HW CHECK" in models["printer"].text()
    assert models["oled"].pixels() is not None


def test_a_missing_display_fails_alone():
    failed, results, text, _ = _run(display_addr=0x3D)
    verdicts = {name: ok for name, ok, _ in results}
    assert verdicts == {"i2c bus": False, "display": False, "keypad": True,
                        "card reader": True, "printer": True}, text
    assert "missing: 0x3D" in text and failed == 2


def test_main_runs_every_check_on_the_boards_own_profile_and_settings():
    # main() as on a board: the profile config.json names, its buses() as every profile gives
    # them. No one presses a key or taps a card here: those two fail, alone, after the wait.
    # In the working folder (a board has no /tmp), one name per interpreter: both run at once.
    config = "hwcheck_test_%s.json" % sys.implementation.name
    with open(config, "w") as f:
        json.dump({"board": "sim"}, f)
    out = []
    try:
        failed = hwcheck.main(["--config", config, "--wait", "1"], out=out.append)
    finally:
        os.remove(config)
    text = "\n".join(out)
    assert failed == 2, text
    assert "TypeError" not in text
    rows = [(line[:12].strip(), line[13:17].strip()) for line in out[-6:-1]]
    assert rows == [("i2c bus", "OK"), ("display", "OK"), ("keypad", "FAIL"),
                    ("card reader", "FAIL"), ("printer", "OK")], text
    assert "no key in 1 s" in text and "no card read in 1 s" in text
    assert out[-1] == "hwcheck: 3 of 5 OK"


def test_the_wait_and_the_config_come_from_the_arguments():
    assert hwcheck.parse_args([]) == (hwcheck.WAIT_S, "config.json")
    assert hwcheck.parse_args(["micropython", "--wait", "3", "--config", "c.json"]) == (
        3, "c.json")
