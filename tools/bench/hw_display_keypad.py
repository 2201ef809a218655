"""Display and keypad timings on the bus models (virtual time: wire time only, not the CPU).

    .venv/bin/micropython tools/bench/hw_display_keypad.py      (from the repository root)

Prints the SSD1306 full-refresh time on 400 kHz I2C and on the 8 MHz SPI a board would use,
the time of typical screen changes through TextDisplay (changed pages only), and the keypad's
latency from the first contact to the label being in the queue (bounce plus debounce plus the
scan period), over several seeds and phases.
"""

import sys

sys.path.insert(0, "")

from drivers.display import TextDisplay  # noqa: E402 - after the path is set
from drivers.keypad import Keypad  # noqa: E402
from drivers.ssd1306 import SSD1306_I2C  # noqa: E402
from drivers.ssd1306_spi import SSD1306_SPI  # noqa: E402
from firmware import screens  # noqa: E402
from firmware.settings import DEFAULTS as SETTINGS  # noqa: E402 - what screens read
from tools.models.bus import SimI2C, SimPin, SimSPI, VirtualClock  # noqa: E402
from tools.models.keypad import KeypadMatrix  # noqa: E402
from tools.models.ssd1306 import SSD1306  # noqa: E402

SPI_HZ = 8000000  # SSD1306 serial clock cycle >= 100 ns (10 MHz); 80 MHz / 10 on the ESP32
I2C_HZ = 400000
IDLE = {"recovering": False, "unprinted": 0, "reversals": 0, "queued": 0}


def _oled(kind):
    clock = VirtualClock()
    if kind == "i2c":
        bus = SimI2C(clock, freq=I2C_HZ)
        bus.attach(0x3C, SSD1306(128, 64, clock=clock))
        return clock, bus, SSD1306_I2C(128, 64, bus)
    bus = SimSPI(clock, baudrate=SPI_HZ)
    dc = SimPin("dc", SimPin.OUT, value=0)
    cs = SimPin("cs", SimPin.OUT, value=1)
    bus.attach(SSD1306(128, 64, clock=clock, dc=dc), cs)
    return clock, bus, SSD1306_SPI(128, 64, bus, dc, None, cs)


def _timed(clock, bus, action, *args):
    t0 = clock.now()
    b0 = bus.bytes
    action(*args)
    return (clock.now() - t0) / 1000, bus.bytes - b0


def display():
    print("== SSD1306 128x64 (bus time only)")
    for kind, label in (("i2c", "I2C 400 kHz"), ("spi", "SPI 8 MHz")):
        clock, bus, oled = _oled(kind)
        ms, n = _timed(clock, bus, oled.show)
        print("%-12s full refresh          %6.2f ms  %5d bytes" % (label, ms, n))
        text = TextDisplay(oled)
        text.show(screens.idle(SETTINGS, (2025, 1, 2, 3, 4, 5), IDLE))
        ms, n = _timed(clock, bus, text.show,
                       screens.amount(SETTINGS, "", "0010"))
        print("%-12s idle -> amount screen %6.2f ms  %5d bytes" % (label, ms, n))
        ms, n = _timed(clock, bus, text.show,
                       screens.amount(SETTINGS, "1", "0010"))
        print("%-12s one digit typed       %6.2f ms  %5d bytes" % (label, ms, n))
        text.show(screens.pin(SETTINGS, 1250, 2))
        ms, n = _timed(clock, bus, text.show, screens.pin(SETTINGS, 1250, 3))
        print("%-12s one PIN digit         %6.2f ms  %5d bytes" % (label, ms, n))


def keypad(debounce_ms=30, scan_ms=5, bounce_ms=5):
    latencies = []
    for seed in range(1, 21):
        clock = VirtualClock()
        rows = [SimPin("row%d" % i, SimPin.OUT, value=1) for i in range(4)]
        cols = [SimPin("col%d" % i, SimPin.IN, SimPin.PULL_UP) for i in range(4)]
        matrix = KeypadMatrix(rows, cols, clock, bounce_ms=bounce_ms, seed=seed)
        pad = Keypad(rows, cols, debounce_ms=debounce_ms, scan_ms=scan_ms)
        at = 100 + seed % scan_ms  # every phase of the press against the scan
        matrix.press("5", at, 100)
        t = 0
        while not pad.pending():
            t += scan_ms
            clock.us = t * 1000
            pad.scan(t)
        latencies.append(t - at)
    print("== keypad (debounce %d ms, scan every %d ms, contact bounce %d ms, 20 presses)"
          % (debounce_ms, scan_ms, bounce_ms))
    print("press to label in queue: min %d ms, mean %.1f ms, max %d ms"
          % (min(latencies), sum(latencies) / len(latencies), max(latencies)))


display()
keypad()
