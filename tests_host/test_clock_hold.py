# portable: micropython
"""Time before TLS (firmware/opening.py, clock_known): with an NTP server set and a clock not known
to be right, the idle screen says Setting clock..., no card is read and no exchange starts;
a board whose RTC kept a real date across a reset, or a board without ntp_host, goes on at
once as before. (test_sim_clock.py: the release when NTP answers, on the simulated board.)"""

import asyncio
import os

from firmware import app, opening, screens
from firmware.settings import DEFAULTS

_STATUS = {"recovering": 0, "unprinted": 0, "reversals": 0, "queued": 0}


class Keypad:
    def __aiter__(self):
        return self

    async def __anext__(self):
        await app.sleep_ms(100000)


class Display:
    def __init__(self):
        self.screens = []

    def show(self, lines):
        self.screens.append(lines)


class Reader:
    """A card always in the field; `polls` counts the runtime's looks at it."""

    def __init__(self):
        self.polls = 0

    def read_card(self):
        self.polls += 1
        return ("4761739001010010", "2812")


class Board:
    def __init__(self, name, rtc=False):
        self.root = "/tmp/pos_clock_" + name
        try:
            os.mkdir(self.root)
        except OSError:
            pass
        try:
            os.remove(self.root + "/journal.bin")
        except OSError:
            pass
        self.reader = Reader()
        self.keypad = Keypad()
        self.display = Display()
        self.printer = None
        self.lines = []
        self.clock_sets = []
        if rtc:
            # This machine's clock is set: the ESP32's RTC after a reset that kept it.
            self.set_clock = self.clock_sets.append

    def log(self, line):
        self.lines.append(line)


def _settings(ntp_host):
    values = dict(DEFAULTS)
    values["poll_ms"] = 5
    values["port"] = 1  # nothing listens
    values["host_tls"] = "plain"
    values["ntp_host"] = ntp_host
    values["ntp_port"] = 9  # discard: nothing answers, so the clock stays unset for the test
    return values


def _run(board, settings, ms=300):
    runtime = app.Runtime(board, settings, {})

    async def scenario():
        task = asyncio.create_task(runtime.run())
        await app.sleep_ms(ms)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    asyncio.run(scenario())
    return runtime


def test_idle_screen_while_the_clock_is_set_is_not_ready():
    now = (2000, 1, 1, 0, 0, 0)
    waiting = screens.idle(DEFAULTS, now, _STATUS, screens.SETTING_CLOCK)
    assert "Setting clock..." in waiting and "Ready" not in waiting, waiting
    assert "Ready" in screens.idle(DEFAULTS, now, _STATUS, None)
    recovering = dict(_STATUS, recovering=1)
    assert "Recovering..." in screens.idle(DEFAULTS, now, recovering, screens.SETTING_CLOCK)


def test_no_card_is_read_until_the_clock_is_set():
    board = Board("hold")
    runtime = _run(board, _settings("127.0.0.1"))
    assert not runtime.clock_set
    assert board.reader.polls == 0
    assert "Setting clock..." in board.display.screens[-1], board.display.screens
    assert runtime.terminal.mode == "idle"
    why = [line for line in board.lines if line.startswith("clock: not set")]
    assert why and "purchases wait for NTP from 127.0.0.1:9" in why[0], board.lines


def test_an_exchange_at_boot_waits_for_the_clock():
    board = Board("recover")
    runtime = app.Runtime(board, _settings("127.0.0.1"), {})
    # A purchase in flight at a power cut: boot recovery asks the host at once.
    runtime.journal.append({"r": "send", "stan": 7, "batch": 1, "amt": 500, "l4": "0010",
                            "t": [2026, 11, 26, 10, 0, 0], "f7": "1126100000"})
    runtime.journal.close()
    runtime = _run(board, _settings("127.0.0.1"))
    assert runtime.terminal.status()["recovering"] == 1
    assert "query: waits for the clock" in board.lines, board.lines
    assert not [line for line in board.lines if "host unreachable" in line], board.lines


def test_an_rtc_that_kept_the_date_across_a_reset_holds_nothing():
    board = Board("kept", rtc=True)
    runtime = _run(board, _settings("127.0.0.1"))
    assert runtime.clock_set
    assert board.reader.polls >= 1
    assert [line for line in board.lines if line.startswith("clock: ")
            and line.endswith("kept by the RTC across the reset")], board.lines


def test_an_rtc_at_its_power_on_date_is_not_set():
    board = Board("poweron", rtc=True)
    runtime = app.Runtime(board, _settings("127.0.0.1"), {})
    assert opening.clock_known(runtime)
    # The ESP32's RTC after power-on: 2000-01-01 00:00:10, its epoch and ten seconds.
    runtime.wall_clock.correction = 946684810 - app.unix_time()
    runtime.clock_set = opening.clock_known(runtime)  # as the boot decides it
    assert not runtime.clock_set
    opening.log_clock(runtime)
    assert board.lines[-1].startswith("clock: not set (2000-01-01 00:00:10 UTC); purchases "
                                      "wait for NTP"), board.lines


def test_without_ntp_host_the_terminal_behaves_as_before():
    board = Board("nontp")
    runtime = _run(board, _settings(""))
    assert runtime.clock_set
    assert board.reader.polls >= 1
    assert not [line for line in board.lines if line.startswith("clock: ")], board.lines
    assert not [s for s in board.display.screens if "Setting clock..." in s]
