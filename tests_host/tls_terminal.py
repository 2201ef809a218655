"""One purchase by the real runtime (firmware/app.py, real core, journal and host link) on a
board of fakes, for tests_host/test_tls.py. Runs on the MicroPython unix port (and CPython):

    micropython -X heapsize=200000 tests_host/tls_terminal.py '{"settings": {...}, "root": DIR}'

Taps one card, types the amount and the PIN, waits until the terminal is idle with nothing
queued or unprinted (or `"until"` seconds pass), and prints one line `RESULT {json}`: the
screens, the log, the receipts, the boot error if the runtime would not start, and the heap
figures of the first host exchange (`heap`: before, peak while it ran, after; gc.mem_alloc()).
"""

import asyncio
import gc
import json
import sys
import time

# The repository's root, where firmware/ is: the script's folder is tests_host/.
sys.path.insert(0, sys.path[0].rsplit("/", 1)[0] if "/" in sys.path[0] else "..")

from firmware import app, startup  # noqa: E402
from firmware.settings import DEFAULTS, SettingsError  # noqa: E402


class Done(Exception):
    pass


class Keypad:
    def __init__(self, board, labels):
        self.board = board
        self.labels = list(labels)

    def __aiter__(self):
        return self

    async def __anext__(self):
        while not self.labels or not self.board.card_taken:
            await app.sleep_ms(20)
        await app.sleep_ms(20)
        return self.labels.pop(0)


class Display:
    def __init__(self):
        self.screens = []

    def show(self, lines):
        self.screens.append(list(lines))


class Reader:
    def __init__(self, board, card):
        self.board = board
        self.card = card

    def read_card(self):
        card, self.card = self.card, None
        if card is not None:
            self.board.card_taken = True
        return card


class Printer:
    def __init__(self):
        self.receipts = []

    def paper_ok(self):
        return True

    async def print_text(self, text):
        await app.sleep_ms(5)
        self.receipts.append(text)


class Board:
    def __init__(self, root, labels):
        self.root = root
        self.card_taken = False
        self.reader = Reader(self, ("4761739001010010", "2812"))
        self.keypad = Keypad(self, labels)
        self.display = Display()
        self.printer = Printer()
        self.logs = []
        self.fatal = None
        self.seen_result = False

    def log(self, line):
        self.logs.append(line)

    def report(self, state):
        if self.keypad.labels or not self.card_taken:
            return
        if state["idle"] and not state["queued"] and not state["unprinted"]:
            self.fatal = Done()


def _watch_heap(runtime, figures):
    """Wrap runtime.exchange: gc.mem_alloc() before and after the first exchange, and its peak
    sampled at every turn of the event loop while it runs (TLS handshake included)."""
    exchange = runtime.exchange

    async def sample(state):
        while not state["done"]:
            used = gc.mem_alloc()
            if used > figures["peak"]:
                figures["peak"] = used
            await app.sleep_ms(0)

    async def measured(kind, frame):
        if "before" in figures:
            return await exchange(kind, frame)
        gc.collect()
        figures["before"] = figures["peak"] = gc.mem_alloc()
        figures["kind"] = kind
        state = {"done": False}
        sampler = asyncio.create_task(sample(state))
        started = time.ticks_ms() if hasattr(time, "ticks_ms") else None
        try:
            return await exchange(kind, frame)
        finally:
            if started is not None:
                figures["ms"] = time.ticks_diff(time.ticks_ms(), started)
            state["done"] = True
            await app.sleep_ms(0)
            sampler.cancel()
            gc.collect()
            figures["after"] = gc.mem_alloc()

    runtime.exchange = measured


def main():
    args = json.loads(sys.argv[1])
    settings = dict(DEFAULTS)
    settings.update({"poll_ms": 10, "ntp_host": "", "message_ms": 300, "receipt_copies": 1})
    settings.update(args["settings"])
    board = Board(args["root"], args.get("keys", "1250#1234#"))
    result = {"error": None, "screens": [], "log": [], "receipts": [], "heap": {}}
    try:
        runtime = app.Runtime(board, settings, startup.host_tls(settings, board.root))
    except SettingsError as e:
        result["error"] = str(e)
        print("RESULT " + json.dumps(result))
        return
    if hasattr(gc, "mem_alloc"):  # MicroPython
        _watch_heap(runtime, result["heap"])

    async def run():
        try:
            await app.wait_for_ms(runtime.run(), args.get("until", 20) * 1000)
        except Done:
            pass
        except asyncio.TimeoutError:
            result["error"] = "timed out"

    asyncio.run(run())
    result["screens"] = board.display.screens
    result["log"] = board.logs
    result["receipts"] = board.printer.receipts
    print("RESULT " + json.dumps(result))


main()
