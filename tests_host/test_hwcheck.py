# portable: micropython heapsize=400000
"""The on-board hardware check, run against the simulated board's buses and chip models: a
person's keys, a tapped card and the printer are played by the models."""

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
    wiring, models = sim.buses(DEFAULTS)
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
