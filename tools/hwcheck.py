"""Hardware check: run on a real board to exercise each module one by one and say what it saw.

    mpremote run tools/hwcheck.py        (after the firmware and config.json are on the board)
    make hwcheck PORT=/dev/ttyUSB0 [WAIT=15]    (the same, from a clean soft reset: hwcheck_run)

It reads the board profile and the settings from config.json, builds the buses from the
profile's pin map, then checks, each on its own so one dead module does not hide the others:
the I2C bus (who answers), the display (a test pattern, then text), the keypad (press keys for
15 s), the card reader (tap a card within 15 s), the printer (status, then a test slip).
Nothing is sent to the host and nothing is written to flash. The last lines are a summary
table: module, OK or FAIL, what was seen.
"""

import sys
import time

from drivers.watch import ticks_diff, ticks_ms

WAIT_S = 15
DIVIDER = "-" * 40


def _ms():
    return ticks_ms()


def _sleep_ms(ms):
    # time.sleep_ms on MicroPython; CPython (the tests) has time.sleep alone.
    if hasattr(time, "sleep_ms"):
        time.sleep_ms(ms)
    else:
        time.sleep(ms / 1000)


def _elapsed(start):
    return ticks_diff(ticks_ms(), start)


class Check:
    def __init__(self, settings, wiring, *, wait_s=WAIT_S, out=print, sleep_ms=None):
        self.settings = settings
        self.wiring = wiring
        self.wait_s = wait_s
        self.out = out
        self.sleep_ms = sleep_ms or _sleep_ms
        self.results = []
        self.display = None

    def step(self, name, fn):
        self.out(DIVIDER)
        self.out("[%s]" % name)
        try:
            ok, detail = fn()
        except Exception as e:  # noqa: BLE001 - a dead module is a result, not a crash
            ok, detail = False, "%s: %s" % (type(e).__name__, e)
        self.results.append((name, ok, detail))
        self.out("%s  %s" % ("OK  " if ok else "FAIL", detail))
        return ok

    def i2c(self):
        found = self.wiring["i2c"].scan()
        want = [self.settings["display_addr"]]
        if self.settings["reader"] == "pn532_i2c":
            want.append(0x24)
        missing = [a for a in want if a not in found]
        seen = " ".join("0x%02X" % a for a in found) or "nothing"
        if missing:
            return False, "answering: %s; missing: %s (check SDA/SCL, power, address)" % (
                seen, " ".join("0x%02X" % a for a in missing))
        return True, "answering: " + seen

    def screen(self):
        from boards.common import make_display

        display = make_display(self.settings, i2c=self.wiring["i2c"])
        oled = display.oled
        oled.fill(1)
        start = _ms()
        oled.show()
        full_ms = _elapsed(start)
        self.sleep_ms(500)
        display.show(["HARDWARE CHECK", "", "Display OK if", "you read this", "",
                      "Next: keypad"])
        self.display = display
        return True, "full refresh %d ms; test pattern then text shown: look at it" % full_ms

    def keys(self):
        from drivers.keypad import Keypad

        keypad = Keypad(self.wiring["rows"], self.wiring["cols"],
                        debounce_ms=self.settings["keypad_debounce_ms"],
                        ticks_ms=self.wiring.get("ticks_ms"))
        ticks = self.wiring.get("ticks_ms") or _ms
        self.out("press keys (each of the 16 once if you can), %d s..." % self.wait_s)
        self._show(["KEYPAD", "Press keys", "(%d s)" % self.wait_s])
        seen = []
        start = _ms()
        while _elapsed(start) < self.wait_s * 1000 and len(seen) < 16:
            keypad.scan(ticks())
            label = keypad.get()
            while label is not None:
                self.out("  key %s" % label)
                if label not in seen:
                    seen.append(label)
                label = keypad.get()
            self.sleep_ms(2)
        if not seen:
            return False, "no key in %d s: check the row and column wires" % self.wait_s
        missing = [k for k in "123A456B789C*0#D" if k not in seen]
        note = "; not pressed: " + " ".join(missing) if missing else ""
        return True, "%d keys seen%s" % (len(seen), note)

    def card(self):
        from boards.common import make_reader

        w = self.wiring
        reader = make_reader(self.settings, spi=w["spi"], i2c=w["i2c"], cs=w["reader_cs"],
                             rst=w["reader_rst"], clock=w.get("clock"),
                             sleep_us=w.get("sleep_us"))
        self.out("reader %s answers; tap a card within %d s..." % (
            self.settings["reader"], self.wait_s))
        self._show(["CARD READER", "Tap a card", "(%d s)" % self.wait_s])
        start = _ms()
        while _elapsed(start) < self.wait_s * 1000:
            t0 = _ms()
            card = reader.read_card()
            if card is not None:
                pan, expiry = card
                # Never the full card number, even here (S7).
                return True, "card ...%s expiry %s/%s read in %d ms" % (
                    pan[-4:], expiry[2:], expiry[:2], _elapsed(t0))
            self.sleep_ms(self.settings["poll_ms"])
        return False, "no card read in %d s (a demo tag or an EMV card?)" % self.wait_s

    def printer(self):
        from boards.common import make_printer

        printer = make_printer(self.settings, self.wiring["uart"],
                               timebase=self.wiring.get("timebase"))
        if not printer.paper_ok():
            return False, "no paper, cover open or no status answer (check TX/RX, baud %d)" % (
                self.settings["printer_baud"])
        slip = "\n".join(["^BIG HW CHECK", "^BOLD bold line", "normal line 32 columns .....",
                          "^CENTER centred", "^QR 000000000000", "", ""])
        start = _ms()
        _run(printer.print_text(slip))
        return True, "test slip printed in %d ms at %d baud" % (
            _elapsed(start), self.settings["printer_baud"])

    def _show(self, lines):
        if self.display is not None:
            self.display.show(lines)

    def run(self):
        self.step("i2c bus", self.i2c)
        self.step("display", self.screen)
        self.step("keypad", self.keys)
        self.step("card reader", self.card)
        self.step("printer", self.printer)
        self.out(DIVIDER)
        for name, ok, detail in self.results:
            self.out("%-12s %-4s %s" % (name, "OK" if ok else "FAIL", detail))
        failed = sum(1 for r in self.results if not r[1])
        summary = "%d of %d OK" % (len(self.results) - failed, len(self.results))
        self.out("hwcheck: " + summary)
        self._show(["HARDWARE CHECK", "", summary])
        return failed


def _run(coro):
    import asyncio

    return asyncio.run(coro)


def parse_args(argv):
    """(wait_s, config path) from `--wait S` and `--config PATH` in argv; anything else is
    skipped (the unix port's own arguments: sys.argv is the port's where `mpremote run` runs)."""
    wait_s, config = WAIT_S, "config.json"
    for i in range(len(argv) - 1):
        if argv[i] == "--wait":
            wait_s = int(argv[i + 1])
        elif argv[i] == "--config":
            config = argv[i + 1]
    return wait_s, config


def main(argv=(), out=print):
    """The check on this board: its profile's buses() and the settings of its config.json.
    Returns how many checks failed."""
    from firmware import settings as settings_mod

    wait_s, config = parse_args(list(argv))
    settings = settings_mod.load(config)
    profile = __import__("boards." + settings["board"], None, None, ["buses"])
    return Check(settings, profile.buses(settings), wait_s=wait_s, out=out).run()


if __name__ == "__main__":
    # No sys.exit: on a board, SystemExit in the raw REPL soft-resets it under mpremote.
    main(sys.argv[1:])
