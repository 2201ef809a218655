"""Asyncio runtime: turns the board's peripherals into events for the core, executes its actions.

The core (firmware/core.py) decides; this module only does. Actions run in the order the core
gave them, and a `journal` action is flushed to flash before the next one starts: that ordering
is what makes "journal before acting" hold under power loss.

Host exchanges use one TCP connection each (2-byte big-endian length prefix, see
docs/protocol.md). A purchase connection stays open after its timer fired, so a late response is
still read and handed to the core, which logs and ignores it once it has moved on.
"""

import asyncio
import errno
import gc
import os
import struct
import time

from firmware import settings as settings_mod
from firmware.core import Terminal
from firmware.journal import Journal

try:
    from time import ticks_diff, ticks_ms
except ImportError:  # CPython, for tools that import the runtime
    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b

if hasattr(asyncio, "sleep_ms"):
    sleep_ms = asyncio.sleep_ms
    wait_for_ms = asyncio.wait_for_ms
else:  # CPython: the runtime also runs there, in tests
    def sleep_ms(ms):
        return asyncio.sleep(ms / 1000)

    def wait_for_ms(aw, ms):
        return asyncio.wait_for(aw, ms / 1000)

# Errors that mean the connection was never made; by name, as the numbers differ between
# Linux and the ESP32's newlib (ENOTCONN is 107 on one, 128 on the other).
_NOT_CONNECTED = tuple(getattr(errno, name) for name in
                       ("ECONNREFUSED", "EHOSTUNREACH", "ENOTCONN") if hasattr(errno, name))
_MAX_FRAME = 4096  # larger than any message we exchange; a bigger prefix is garbage


class Clock:
    def now(self):
        return time.localtime()[:6]

    def ticks_ms(self):
        return ticks_ms()


def _random_bytes(n):
    return os.urandom(n)


class Runtime:
    def __init__(self, board, settings, journal_name="journal.bin"):
        self.board = board
        self.settings = settings
        root = board.root
        self.journal = Journal((root + "/" if root else "") + journal_name)
        self.terminal = Terminal(settings, Clock(), _random_bytes)
        self.timers = {}  # name -> deadline in ticks_ms
        self.links = {}  # kind -> the exchange task's stream writer, to close it on a new send
        self.link_gen = {}  # kind -> generation, so a superseded connection's events are dropped
        self.reported = None
        self.heap_peak = self.heap_idle = 0
        self.fatal = None

    # ---- dispatch -------------------------------------------------------------------------

    def dispatch(self, event):
        terminal = self.terminal
        actions = terminal.handle(event)
        for action in actions:
            self.execute(action)
        for line in terminal.log:
            self.log(line)
        del terminal.log[:]
        self.after(event)

    def execute(self, action):
        kind = action[0]
        if kind == "show":
            self.board.display.show(action[1])
        elif kind == "journal":
            self.journal.append(action[1])
        elif kind == "send":
            self.spawn(self.exchange(action[1], action[2]))
        elif kind == "print":
            self.spawn(self.print_job(action[1], action[2]))
        elif kind == "arm":
            self.timers[action[1]] = ticks_ms() + action[2]
        elif kind == "disarm":
            self.timers.pop(action[1], None)

    def after(self, event):
        status = self.terminal.status()
        if status != self.reported:
            self.reported = status
            report = getattr(self.board, "report", None)
            if report:
                report(status)
        quiet = status["idle"] and self.terminal.current is None
        if quiet and self.journal.size > self.settings["journal_max_bytes"]:
            self.journal.rewrite(self.terminal.snapshot())
            self.log("journal compacted to %d bytes" % self.journal.size)
        if self.settings["heap_report"]:
            self.measure_heap(quiet)

    def measure_heap(self, quiet):
        """Live heap after each event; at the end of a transaction, log its peak.

        Measurement mode only (setting heap_report): a collection per event costs time.
        """
        gc.collect()
        used = gc.mem_alloc()
        if used > self.heap_peak:
            self.heap_peak = used
        if quiet and self.heap_peak > self.heap_idle:
            self.log("heap: transaction peak %d bytes live, idle %d, free %d" % (
                self.heap_peak, used, gc.mem_free()))
            self.heap_peak = self.heap_idle = used

    def log(self, line):
        print(line)
        board_log = getattr(self.board, "log", None)
        if board_log:
            board_log(line)

    def spawn(self, coro):
        return asyncio.create_task(self.guarded(coro))

    async def guarded(self, coro):
        # A task that dies (a MemoryError in a flash write, say) would leave the terminal
        # half-alive: stop the whole runtime instead, so main.py logs it and resets the board,
        # and boot recovery finishes the work from the journal.
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure is fatal, see above
            if self.fatal is None:
                self.fatal = e

    # ---- host link ------------------------------------------------------------------------

    async def exchange(self, kind, frame):
        """One request, one response, on a connection of its own."""
        gen = self.link_gen.get(kind, 0) + 1
        self.link_gen[kind] = gen
        old = self.links.pop(kind, None)
        if old is not None:
            old.close()
        try:
            reader, writer = await wait_for_ms(
                asyncio.open_connection(self.settings["host"], self.settings["port"]),
                self.settings["connect_timeout_ms"])
        except (OSError, asyncio.TimeoutError) as e:
            self.log("%s: host unreachable (%r)" % (kind, e))
            outcome = ("unsent", kind)
        else:
            self.links[kind] = writer
            try:
                writer.write(struct.pack(">H", len(frame)) + frame)
                await writer.drain()
            except OSError as e:
                # MicroPython's open_connection returns before the connection is made; a
                # refused or unreachable host shows up at the first write: nothing was sent.
                outcome = ("unsent" if _errno(e) in _NOT_CONNECTED else "closed", kind)
            else:
                response = await _read_frame(reader)
                outcome = ("closed", kind) if response is None else ("rx", response)
            writer.close()
            if self.links.get(kind) is writer:
                del self.links[kind]
        # A superseded exchange's failure is old news; its response is not: a late answer to a
        # purchase is still handed to the core, which decides what it is worth.
        if self.link_gen.get(kind) == gen or outcome[0] == "rx" and kind == "purchase":
            self.dispatch(outcome)

    # ---- printer --------------------------------------------------------------------------

    async def print_job(self, job, text):
        printer = self.board.printer
        if not printer.paper_ok():
            self.dispatch(("print_failed", job, False))
            return
        try:
            await wait_for_ms(printer.print_text(text), self.settings["print_timeout_ms"])
        except Exception as e:  # noqa: BLE001 - paper out, cover open, printer silent
            self.log("printer: %r" % e)
            self.dispatch(("print_failed", job, True))
            return
        self.dispatch(("printed", job))

    # ---- input and time -------------------------------------------------------------------

    async def keys(self):
        async for label in self.board.keypad:
            self.dispatch(("key", label))

    async def cards(self):
        reader = self.board.reader
        period = self.settings["poll_ms"]
        while True:
            if self.terminal.wants_card():
                card = reader.read_card()
                if card is not None:
                    self.dispatch(("card", card[0], card[1]))
            await sleep_ms(period)

    async def paper(self):
        while True:
            await sleep_ms(500)
            if self.terminal.paper_out and self.board.printer.paper_ok():
                self.dispatch(("paper", "in"))

    async def clock(self):
        last_tick = ticks_ms()
        board = self.board
        while True:
            # A task of ours, or one of the board's own (the simulated board's link), died.
            self.fatal = self.fatal or getattr(board, "fatal", None)
            if self.fatal is not None:
                break
            now = ticks_ms()
            due = None
            for name, deadline in self.timers.items():
                if ticks_diff(deadline, now) <= 0:
                    due = name
                    break
            if due is not None:
                del self.timers[due]
                self.dispatch(("timer", due))
                continue
            if ticks_diff(now, last_tick) >= 1000:
                last_tick = now
                self.dispatch(("tick",))
            # 20 ms granularity is far below any timeout the core sets (seconds).
            await sleep_ms(20)

    async def run(self):
        start = getattr(self.board, "start", None)
        if start:
            await start()
        for record in self.journal.replay():
            self.terminal.restore(record)
        if self.journal.torn:
            # A power cut tore the last write: rewrite before anything is appended after it.
            self.journal.rewrite(self.terminal.snapshot())
            self.log("journal: torn tail cut off")
        self.dispatch(("boot", ()))
        tasks = [self.spawn(self.keys()), self.spawn(self.cards()), self.spawn(self.paper())]
        await self.clock()
        for task in tasks:
            task.cancel()
        raise self.fatal


def run(board, settings):
    asyncio.run(Runtime(board, settings).run())


def load_settings(root, overrides=None):
    values = settings_mod.load((root + "/" if root else "") + "config.json")
    if overrides:
        values = settings_mod.merge(values, overrides, "board overrides")
    return values


def _errno(e):
    return e.args[0] if e.args else None


async def _read_frame(reader):
    """One length-prefixed frame, or None when the link closes, resets or sends garbage."""
    try:
        (length,) = struct.unpack(">H", await reader.readexactly(2))
        if length == 0 or length > _MAX_FRAME:
            return None
        return await reader.readexactly(length)
    except (OSError, EOFError):
        return None
