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
import sys
import time

from micropython import const

from drivers import CardUnreadable
from firmware import let_go, screens
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
# Exchanges the terminal starts by itself, and the modes in which keys are being typed.
_BACKGROUND = const(("reversal", "advice"))
_ENTRY = const(("amount", "pin"))
_MAX_FRAME = const(4096)  # larger than any message we exchange; a bigger prefix is garbage
# Free heap at boot that purchases over TLS need, fragmentation included: what this check sees
# in the smallest heap three purchases pass in (make bench-heap), on 32 bits, rounded down, so
# that it never refuses a heap that works. Objects on a 64-bit port are up to twice as large.
_PURCHASE_HEAP = const(13312)
_WORD_SCALE = 2 if sys.maxsize > 1 << 32 else 1
# An RTC before 2025-01-01 UTC was never set: the ESP32's starts at 2000-01-01 at power-on, and
# mbedtls checks the host's certificate against it ("not yet valid").
CLOCK_FLOOR = const(1735689600)


# MicroPython's bare-metal ports (the ESP32 among them) count time.time() from 2000-01-01, the
# unix port and CPython from 1970-01-01 (docs.micropython.org, "time": "Epoch"). Asking gmtime(0)
# finds out which; everything else speaks Unix seconds and converts only through these two.
EPOCH_SHIFT = 946684800 if time.gmtime(0)[0] == 2000 else 0


def unix_time():
    """The port's clock, in Unix seconds."""
    return int(time.time()) + EPOCH_SHIFT


def calendar(unix_seconds):
    """Unix seconds -> (year, month, day, hour, minute, second, weekday, yearday), weekday
    0 = Monday, as time.gmtime gives it on every port."""
    return time.gmtime(unix_seconds - EPOCH_SHIFT)


class Clock:
    """Local time for receipts and the idle screen: the port's clock (UTC once NTP set it),
    plus `correction` where the board cannot set its clock (the simulated board leaves the PC's
    alone), plus the setting utc_offset_min."""

    def __init__(self, utc_offset_min=0):
        self.offset_s = utc_offset_min * 60
        self.correction = 0

    def unix(self):
        return unix_time() + self.correction

    def now(self):
        return calendar(self.unix() + self.offset_s)[:6]

    def ticks_ms(self):
        return ticks_ms()


def _random_bytes(n):
    return os.urandom(n)


class Runtime:
    def __init__(self, board, settings, tls, journal_name="journal.bin"):
        """tls: open_connection's TLS arguments (firmware/startup.py, host_tls)."""
        self.board = board
        self.settings = settings
        root = board.root
        self.journal = Journal((root + "/" if root else "") + journal_name)
        self.tls = tls
        self.wall_clock = Clock(settings["utc_offset_min"])
        self.terminal = Terminal(settings, self.wall_clock, _random_bytes)
        self.wifi = None
        wlan = getattr(board, "wlan", None)
        if wlan is not None and settings["wifi_ssid"]:
            from firmware.wifi import WifiLink

            self.wifi = WifiLink(wlan, settings["wifi_ssid"], settings["wifi_password"],
                                 retry_ms=settings["wifi_retry_ms"],
                                 timeout_ms=settings["wifi_timeout_ms"], ticks_ms=ticks_ms,
                                 ticks_diff=ticks_diff, sleep_ms=sleep_ms)
        self.timers = {}  # name -> deadline in ticks_ms
        self.links = {}  # kind -> the exchange task's stream writer, to close it on a new send
        self.link_gen = {}  # kind -> generation, so a superseded connection's events are dropped
        self.reported = None
        self.heap_peak = 0
        self.heap_busy = True  # the boot is the first thing heap_report reports
        self.fatal = None
        self.handshakes = 0  # reversals and confirmations connecting (see exchange)
        # False: no card is read, no exchange starts. Without an ntp_host the clock is taken as
        # it is; with one, the boot decides (firmware/opening.py, clock_known).
        self.clock_set = not settings["ntp_host"]

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
        quiet = status["idle"] and self.terminal.current is None
        if quiet and self.journal.size > self.settings["journal_max_bytes"]:
            self.journal.rewrite(self.terminal.snapshot())
            self.log("journal compacted to %d bytes" % self.journal.size)
        if self.settings["heap_report"]:
            # Settled: nothing owed to the host either, so one line per transaction. Before
            # the report, so whoever waits for idle finds the line already logged.
            self.measure_heap(quiet and not status["queued"] and not status["reversals"])
        if status != self.reported:
            self.reported = status
            report = getattr(self.board, "report", None)
            if report:
                report(status)

    def measure_heap(self, quiet):
        """Live heap after each event; at the end of a transaction, log its peak.

        Measurement mode only (setting heap_report): a collection per event costs time.
        """
        gc.collect()
        used = gc.mem_alloc()
        if used > self.heap_peak:
            self.heap_peak = used
        # One line at boot and one for each transaction once all is quiet again, whatever
        # its peak: make bench counts them.
        if not quiet:
            self.heap_busy = True
        elif self.heap_busy:
            self.log("heap: transaction peak %d bytes live, idle %d, free %d" % (
                self.heap_peak, used, gc.mem_free()))
            self.heap_peak = used
            self.heap_busy = False

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

    async def _typing_done(self, kind, gen):
        """Wait, for a reversal or confirmation, until the cashier has finished typing the
        amount and PIN: a TLS handshake holds the event loop (60 ms on the unix port, far
        longer with the ESP32's software ECC) and keys pressed meanwhile are never scanned.
        False when a newer exchange of the same kind superseded this one."""
        if kind in _BACKGROUND:
            while self.terminal.mode in _ENTRY:
                await sleep_ms(50)
        return self.link_gen.get(kind) == gen

    async def exchange(self, kind, frame):
        """One request, one response, on a connection of its own."""
        gen = self.link_gen.get(kind, 0) + 1
        self.link_gen[kind] = gen
        old = self.links.pop(kind, None)
        if old is not None:
            old.close()
        if not self.clock_set:
            # A query or reversal at boot: a handshake now would fail on the certificate's dates.
            self.log("%s: waits for the clock" % kind)
            while not self.clock_set:
                await sleep_ms(100)
        if not await self._typing_done(kind, gen):
            return
        # While a reversal or confirmation connects and shakes hands, no card is read: the
        # handshake holds the event loop, and a card read now would let the cashier's first
        # key fall into it (cards() checks `handshakes`).
        handshake = [kind in _BACKGROUND]
        if handshake[0]:
            self.handshakes += 1
        try:
            await self._exchange(kind, frame, gen, handshake)
        finally:
            self._handshake_over(handshake)

    def _handshake_over(self, handshake):
        if handshake[0]:
            handshake[0] = False
            self.handshakes -= 1

    async def _exchange(self, kind, frame, gen, handshake):
        if self.wifi is not None and not self.wifi.connected:
            # No Wi-Fi: nothing can leave, and a socket would only wait for its timeout.
            self.log("%s: host unreachable (%s)" % (kind, self.wifi.status))
            self.dispatch(("unsent", kind))
            return
        tls = self.tls
        try:
            reader, writer = await wait_for_ms(
                asyncio.open_connection(self.settings["host"], self.settings["port"], **tls),
                self.settings["connect_timeout_ms"])
        except (OSError, ValueError, asyncio.TimeoutError) as e:
            self.host_unreachable(kind, e)
            outcome = ("unsent", kind)
        else:
            self.links[kind] = writer
            # The handshake is in the first write: a card read since the connect waits too.
            if not await self._typing_done(kind, gen):
                writer.close()
                return
            try:
                writer.write(struct.pack(">H", len(frame)) + frame)
                if tls:
                    # MicroPython does the TLS handshake inside this first write (CPython in
                    # open_connection): bounded like the connection. The request leaves only
                    # after the host's certificate passed, and drain returns as soon as its
                    # record is all out, so a failure here means the host got no request it
                    # could decrypt: nothing was sent.
                    await wait_for_ms(writer.drain(), self.settings["connect_timeout_ms"])
                else:
                    await writer.drain()
                self._handshake_over(handshake)
            except (OSError, ValueError, asyncio.TimeoutError) as e:
                if tls:
                    self.host_unreachable(kind, e)
                    outcome = ("unsent", kind)
                else:
                    # MicroPython's open_connection returns before the connection is made; a
                    # refused or unreachable host shows up at the first write: nothing was sent.
                    code = e.args[0] if e.args else None  # a timeout has none
                    outcome = ("unsent" if code in _NOT_CONNECTED else "closed", kind)
            else:
                response = await _read_frame(reader)
                outcome = ("closed", kind) if response is None else ("rx", response)
                if self.settings["heap_report"]:
                    self.measure_heap(False)  # the TLS session and its buffers still live
            writer.close()
            if self.links.get(kind) is writer:
                del self.links[kind]
        # A superseded exchange's failure is old news; its response is not: a late answer to a
        # purchase is still handed to the core, which decides what it is worth.
        if self.link_gen.get(kind) == gen or outcome[0] == "rx" and kind == "purchase":
            self.dispatch(outcome)

    def host_unreachable(self, kind, e):
        from firmware import link_failure  # on a failure only: let go after

        try:
            self.log(link_failure.describe(kind, e, self.tls))
        finally:
            let_go("link_failure")

    # ---- network and time -----------------------------------------------------------------

    def net_lines(self):
        """The idle screen's two lines on the link: Wi-Fi down, else the clock not yet set."""
        wifi = self.wifi
        if wifi is not None and not wifi.connected:
            return wifi.screen
        return None if self.clock_set else screens.SETTING_CLOCK

    # ---- printer --------------------------------------------------------------------------

    async def print_job(self, job, text):
        printer = self.board.printer
        if not printer.paper_ok():
            self.dispatch(("print_failed", job, False))
            return
        try:
            await wait_for_ms(printer.print_text(text), self.settings["print_timeout_ms"])
        except MemoryError:
            raise  # the heap, not the printer: fatal (see run)
        except Exception as e:  # noqa: BLE001 - paper out, cover open, printer silent
            self.log("printer: %r" % e)
            self.dispatch(("print_failed", job, True))
            return
        if self.settings["heap_report"]:
            self.measure_heap(False)  # the receipt's text still live
        text = None  # let go before the next copy is rendered: two at once need the heap twice
        self.dispatch(("printed", job))

    # ---- input and time -------------------------------------------------------------------

    async def keys(self):
        async for label in self.board.keypad:
            self.dispatch(("key", label))

    async def cards(self):
        reader = self.board.reader
        period = self.settings["poll_ms"]
        while True:
            if self.clock_set and self.terminal.wants_card() and not self.handshakes:
                try:
                    card = reader.read_card()
                except CardUnreadable as e:
                    self.dispatch(("unread", str(e)))
                else:
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

    def heap_short(self):
        """How many bytes the free heap lacks for a purchase (0: enough). The board's
        free_heap() where it has one (the ESP32's counts what the heap can still grow into,
        less what Wi-Fi and TLS need), else gc.mem_free()."""
        free_heap = getattr(self.board, "free_heap", None) or getattr(gc, "mem_free", None)
        if free_heap is None:
            return 0  # CPython, in tests: no heap of its own to run out of
        gc.collect()
        return max(0, _PURCHASE_HEAP * _WORD_SCALE - free_heap())

    async def run(self):
        start = getattr(self.board, "start", None)
        if start:
            await start()
        short = self.heap_short()  # before the boot's own code below is imported
        from firmware import opening  # boot only: let go once the terminal is open

        try:
            opened = opening.open_terminal(self, short)
        finally:
            let_go("opening")
        if not opened:
            while True:  # not enough heap: the display says so; a purchase would not fit
                await sleep_ms(60000)
        self.dispatch(("boot", ()))
        if not self.clock_set:
            self.dispatch(("net", self.net_lines()))
        tasks = [self.spawn(self.keys()), self.spawn(self.cards()), self.spawn(self.paper())]
        if self.wifi is not None:
            from firmware.wifi import news

            tasks += [self.spawn(self.wifi.run()), self.spawn(news(self))]
        if self.settings["ntp_host"]:
            from firmware.timesync import time_sync  # only with a server to ask

            tasks.append(self.spawn(time_sync(self)))
        if self.settings["debug_repl"]:
            from firmware.debug_repl import start  # only then: off, it costs the heap nothing

            repl = start(self)
            if repl is not None:
                tasks.append(self.spawn(repl))
        await self.clock()
        for task in tasks:
            task.cancel()
        if isinstance(self.fatal, MemoryError):
            # Not paper, not the host: the heap. The reset clears it, and boot recovery finishes
            # what was in flight (a receipt cut off prints again, marked REPRINT).
            self.log("memory: out of memory (%s); restarting" % self.fatal)
            self.board.display.show(screens.out_of_memory())
        raise self.fatal


def run(runtime):
    asyncio.run(runtime.run())


async def _read_frame(reader):
    """One length-prefixed frame, or None when the link closes, resets or sends garbage."""
    try:
        (length,) = struct.unpack(">H", await reader.readexactly(2))
        if length == 0 or length > _MAX_FRAME:
            return None
        return await reader.readexactly(length)
    except (OSError, EOFError, ValueError):  # ValueError: a TLS record that fails its check
        return None
