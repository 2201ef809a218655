"""The virtual board's peripherals (`make vboard`, `python -m tools.vboard --peripherals`): the
screen, keypad, card reader and printer of `make sim`, for the firmware deployed on the board.

The chip models run inside the board's process, under the real drivers, as on the simulated
board (boards/sim.py); this is the other end of their link (tools/sim/session.py BoardModel),
reached through POS_SIM_LINK, so the bytes on the simulated buses are a board's. The board runs
the `sim` profile (POS_BOARD=sim) whatever config.json says. The host is not simulated here: it
is the one the board is provisioned for (`make host`, whose prompt injects its faults).

- In a terminal: `make sim`'s screen (tools/sim/ui.py): the OLED, the last receipt, the cards to
  tap; keys type on the keypad, `t` and a number taps a card, `p` paper, `k` power.
- Otherwise (a test, a script): one step a line on stdin, as a scenario's steps
  (docs/simulated-board.md): {"tap": PAN}, {"keys": "1250#"}, {"paper": "out"}, {"power": "cut"},
  {"wait": "idle" | "settled" | "display", "text": ..., "timeout_ms": ...}; each is answered on
  stdout with `step N ok` or `step N failed: why`, in order. What the board shows comes on stdout
  as it happens: `screen: ...` (the display's lines), `receipt:` and the receipt's lines, `log:`
  (the firmware's log over the link). End of input leaves the board running; SIGTERM or Ctrl-C
  stops it.

Beside the board's folder DIR, DIR.record holds the session's record as a scripted run's does:
events.jsonl and receipts/ (text and PNG).
"""

import asyncio
import json
import signal
import sys
import threading

from tools.sim import scenario
from tools.sim.session import BoardModel, SimError, SimSession, default_cards
from tools.sim.ui import App, drive, in_curses

# What a scenario can do that needs the simulated host or network, which the virtual board has
# not: its host is the maker's own.
NOT_HERE = ("host", "net", "ntp")
POWER_TIMEOUT_S = 30  # the bridge applies a power change within its next turn


def record_path(folder):
    """The session's record: beside the board's folder, as its ROM partition and serial device."""
    return folder.with_name(folder.name + ".record")


class BoardPower:
    """The virtual board as SimSession's firmware: it runs while powered, and its power is
    switched by the bridge (tools/vboard.py set_power)."""

    def __init__(self, board):
        self.board = board

    @property
    def powered(self):
        return self.board.powered

    running = powered

    async def power_on(self):
        await self._switch(True)

    async def power_cut(self):
        await self._switch(False)

    async def _switch(self, on):
        self.board.set_power(on)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + POWER_TIMEOUT_S
        while self.board.powered != on and not self.board.stopped:
            if loop.time() > deadline:
                raise SimError("power %s: the virtual board did not switch" % (
                    "on" if on else "cut"))
            await asyncio.sleep(0.02)


class Counter(SimSession):
    """The sim's session for a virtual board: its peripherals, no host, no network."""

    def __init__(self, board):
        super().__init__(record_path(board.folder))
        self.vboard = board

    async def start(self):
        self.board = BoardModel(self.events, self.out / "receipts")
        await self.board.start()
        self.vboard.env["POS_SIM_LINK"] = str(self.board.port)
        self.vboard.env.setdefault("POS_BOARD", "sim")
        self.firmware = BoardPower(self.vboard)

    async def step(self, step):
        kind = next((k for k in NOT_HERE if k in step), None)
        if kind is not None:
            raise SimError("%s steps need the simulated host (make sim); the virtual board's "
                           "host is make host, whose prompt injects faults" % kind)
        await super().step(step)


class BoardApp(App):
    """`make sim`'s screen for the virtual board: no host or network keys."""

    TITLE = "POS virtual board"
    HELP = [
        "KEYPAD  0-9 A-D    # or Enter = OK    * or Esc = cancel    D or Backspace = clear",
        "CARDS   t then 1-9 taps that card (list on the left)",
        "BOARD   p paper out/in   k power cut/on   q quit (the board stops)",
        "HOST    the board's own (make host: its prompt injects faults)",
    ]

    def key(self, ch):
        if not self.pending_tap and ch in "xyrmohn":
            self.message = "no simulated host here: make host's prompt injects faults"
            return
        super().key(ch)

    def status(self, state):
        return "%s   power %s  paper %s   %s" % (
            self.TITLE, "ON" if self.session.firmware.powered else "OFF",
            "in" if self.paper_in else "OUT",
            "idle" if state.get("idle") else (state.get("mode") or "-"))


def run(board):
    """Serve the virtual board `board` (tools/vboard.py VirtualBoard, not yet serving) with its
    peripherals until it is stopped; the exit status."""
    session = Counter(board)
    if sys.stdin.isatty() and sys.stdout.isatty():
        app = BoardApp(session, default_cards())
        app.message = "mpremote connect %s; repl: mpremote connect %s" % (
            board.url, board.serial_device)
        rc = in_curses(lambda scr, curses: _serve(board, session, drive(scr, curses, app)),
                       who="vboard")
        print("virtual board stopped; its record is in %s" % session.out)
        return rc
    print(board.url, flush=True)
    print("serial device %s" % board.serial_device, flush=True)
    session.events.listeners.append(_print_event)
    try:
        asyncio.run(_serve(board, session, _steps(session)))
    except KeyboardInterrupt:
        pass
    return 0


async def _serve(board, session, body):
    """The bridge in a thread, the peripherals and `body` in this loop, until either ends or a
    signal stops them."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await session.start()
    failed = []

    def bridge():
        try:
            board.serve()
        except Exception as e:  # noqa: BLE001 - said once, then everything stops
            failed.append(e)
        finally:
            loop.call_soon_threadsafe(stop.set)

    thread = threading.Thread(target=bridge, name="vboard bridge", daemon=True)
    thread.start()
    work = asyncio.ensure_future(body)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (work, stopping):
            task.cancel()
        await asyncio.gather(work, stopping, return_exceptions=True)
        board.stopped = True
        await loop.run_in_executor(None, thread.join)
        board.close()
        await session.stop()
    if failed:
        raise failed[0]


def _print_event(event):
    kind = event["kind"]
    if kind == "display":
        _say("screen: " + " | ".join(line.strip() for line in event["lines"]))
    elif kind == "receipt":
        _say("receipt:\n" + "\n".join("  " + line for line in event["text"].splitlines()))
    elif kind in ("log", "firmware_error"):
        for line in event["text"].splitlines():
            _say("log: " + line)


def _say(text):
    print(text, flush=True)


async def _steps(session):
    """The steps on stdin, one JSON object a line, each run and answered in turn; then the board
    serves on (until a signal stops it)."""
    n = 0
    async for line in _lines(sys.stdin):
        if not line.strip():
            continue
        n += 1
        try:
            step = json.loads(line)
            scenario.validate_step(n - 1, step)
            await session.step(step)
        except (ValueError, SimError) as e:  # ScenarioError and a bad JSON line are ValueErrors
            why = (str(e) or repr(e)).splitlines()[0]
            _say("step %d failed: %s" % (n, why.removeprefix("step %d: " % n)))
        else:
            _say("step %d ok" % n)
    await asyncio.Event().wait()


async def _lines(stream):
    """The lines of stdin as they come: a pipe or terminal read without blocking the loop, a
    file read whole."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stream)
    except ValueError:  # a regular file: nothing to wait for
        for line in stream.readlines():
            yield line
        return
    while True:
        line = await reader.readline()
        if not line:
            return
        yield line.decode("utf-8", "replace")
