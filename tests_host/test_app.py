# portable: micropython
"""The asyncio runtime with a board of fakes: a task that dies stops the runtime (so main.py
resets the board) instead of leaving the terminal half-alive."""

import asyncio
import os

from firmware import app, opening
from firmware.settings import DEFAULTS


class Keypad:
    def __init__(self, labels):
        self.labels = list(labels)

    def __aiter__(self):
        return self

    async def __anext__(self):
        await app.sleep_ms(5)
        if not self.labels:
            await app.sleep_ms(100000)
        return self.labels.pop(0)


class Display:
    def __init__(self, fail_on=None):
        self.screens = []
        self.fail_on = fail_on

    def show(self, lines):
        if self.fail_on and self.fail_on in lines[0]:
            raise MemoryError("display")
        self.screens.append(lines)


class Reader:
    def __init__(self, card):
        self.card = card

    def read_card(self):
        card, self.card = self.card, None
        return card


class Board:
    def __init__(self, name, labels, fail_on=None):
        self.root = "/tmp/pos_app_" + name
        try:
            os.mkdir(self.root)
        except OSError:
            pass
        try:
            os.remove(self.root + "/journal.bin")
        except OSError:
            pass
        self.reader = Reader(("4761739001010010", "2812"))
        self.keypad = Keypad(labels)
        self.display = Display(fail_on)
        self.printer = None


def _settings():
    values = dict(DEFAULTS)
    values["poll_ms"] = 5
    values["port"] = 1  # nothing listens: a purchase ends "host unreachable"
    values["ntp_host"] = ""  # no time server in these tests (test_wifi.py has one)
    values["host_tls"] = "plain"  # no host at all here (test_tls.py has TLS)
    return values


def test_task_exception_stops_the_runtime():
    board = Board("fail", "12", fail_on="PURCHASE")
    try:
        asyncio.run(app.Runtime(board, _settings(), {}).run())
    except MemoryError:
        return
    raise AssertionError("the runtime went on after a task died")


def test_unreachable_host_ends_not_charged():
    board = Board("unreach", "1250#1234#")
    runtime = app.Runtime(board, _settings(), {})

    async def scenario():
        task = asyncio.create_task(runtime.run())
        for _ in range(200):
            await app.sleep_ms(10)
            if board.display.screens and board.display.screens[-1][0] == "Host unreachable":
                break
        task.cancel()

    asyncio.run(scenario())
    assert board.display.screens[-1][:2] == ["Host unreachable", "Not charged"]
    records = list(runtime.journal.replay())
    assert [r["r"] for r in records] == ["ksn", "send", "unsent"]  # ksn: DUKPT reservation


def test_boot_after_torn_write_cuts_the_tail_before_appending():
    board = Board("torn", "")
    runtime = app.Runtime(board, _settings(), {})
    runtime.journal.append({"r": "send", "stan": 7, "batch": 1, "amt": 500, "l4": "0010",
                            "t": [2026, 11, 26, 10, 0, 0], "f7": "1126100000"})
    runtime.journal.close()
    with open(runtime.journal.path, "ab") as f:
        f.write(b"\x00\x30\x00\x00")  # a record header whose body never reached flash

    again = app.Runtime(board, _settings(), {})

    async def boot():
        task = asyncio.create_task(again.run())
        await app.sleep_ms(50)
        task.cancel()

    asyncio.run(boot())
    assert again.terminal.status()["recovering"] == 1  # the in-flight purchase, still known
    again.journal.append({"r": "dec", "stan": 7, "rc": "25"})
    again.journal.close()
    records = list(app.Journal(again.journal.path).replay())
    # ksn: the DUKPT counters reserved for the recovery's status query.
    assert [r["r"] for r in records] == ["batch", "send", "ksn", "dec"]


def test_a_board_task_failure_stops_the_runtime():
    board = Board("boardfail", "")
    board.fatal = None
    runtime = app.Runtime(board, _settings(), {})

    async def scenario():
        task = asyncio.create_task(runtime.run())
        await app.sleep_ms(100)
        board.fatal = OSError("link task died")
        await task

    try:
        asyncio.run(scenario())
    except OSError as e:
        assert "link task died" in str(e)
        return
    raise AssertionError("the runtime went on after the board's task died")


def test_background_messages_wait_while_keys_are_typed():
    # A TLS handshake holds the event loop long enough to lose a key press: a confirmation
    # or reversal does not even try to connect while the cashier types the amount or PIN.
    runtime = app.Runtime(Board("background", ""), _settings(), {})
    outcomes = []
    runtime.dispatch = outcomes.append

    async def scenario():
        runtime.terminal.mode = "pin"
        task = asyncio.create_task(runtime.exchange("advice", b"\x00"))
        await app.sleep_ms(300)
        waited = list(outcomes)
        runtime.terminal.mode = "wait"  # the purchase went: typing is over
        for _ in range(200):
            await app.sleep_ms(10)
            if outcomes:
                break
        await task
        return waited

    assert asyncio.run(scenario()) == []
    assert outcomes == [("unsent", "advice")]  # port 1: nothing listens


class SilentLog:
    def __init__(self):
        self.lines = []

    def __call__(self, line):
        self.lines.append(line)


def test_short_heap_at_boot_says_so_and_waits():
    # A board that cannot hold a purchase's heap would end in a MemoryError mid-purchase and a
    # reset loop: it shows why, and the fix, and waits without booting the terminal.
    board = Board("shortheap", "")
    board.free_heap = lambda: 1000
    board.log = SilentLog()
    runtime = app.Runtime(board, _settings(), {})

    async def scenario():
        task = asyncio.create_task(runtime.run())
        await app.sleep_ms(200)
        alive = not task.done()
        task.cancel()
        return alive

    assert asyncio.run(scenario())
    assert board.display.screens[-1][:2] == ["NOT ENOUGH", "MEMORY"]
    assert "Put the code in" in board.display.screens[-1] or opening.code_in_flash()
    assert [line for line in board.log.lines if line.startswith("memory: ")]
    assert runtime.terminal.status()["mode"] == "idle" and not runtime.journal.size


class OutOfMemoryPrinter:
    def paper_ok(self):
        return True

    async def print_text(self, text):
        raise MemoryError("memory allocation failed, allocating 523 bytes")


def test_memory_error_while_printing_is_not_paper_out():
    # The heap, not the paper: the runtime stops (main.py resets the board, boot recovery prints
    # the receipt again) and the cashier is not sent to change a roll that is there.
    board = Board("oomprint", "")
    board.printer = OutOfMemoryPrinter()
    board.log = SilentLog()
    runtime = app.Runtime(board, _settings(), {})

    async def scenario():
        task = asyncio.create_task(runtime.run())
        await app.sleep_ms(50)
        runtime.spawn(runtime.print_job(1, "APPROVED\n"))
        await task

    try:
        asyncio.run(scenario())
    except MemoryError:
        pass
    else:
        raise AssertionError("a MemoryError while printing did not stop the runtime")
    assert not runtime.terminal.paper_out
    assert board.display.screens[-1][0] == "OUT OF MEMORY"
    assert not [s for s in board.display.screens if s[0] == "PAPER OUT"]
    assert [line for line in board.log.lines if line.startswith("memory: out of memory")]
