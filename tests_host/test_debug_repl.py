"""The debug_repl setting on the MicroPython unix port: with it on, micropython-lib's aiorepl
(the pinned peer copy in tests_host/peers/, no network) answers on the console inside the
running firmware, `await` included, while the runtime's tasks go on; with aiorepl missing the
log says so and the terminal works without it; with it off aiorepl is never imported."""

import subprocess
import threading
import time
from pathlib import Path

from tools import vboard

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "tests_host"
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"
PEERS = HERE / "peers"

# The runtime on a board of stand-ins (tests_host/test_clock_hold.py's); `card`: one in the
# field. Prints RESULT lines when `run_ms` is set, else runs until the REPL stops it.
_PROGRAM = """
import sys
sys.path[:0] = %(paths)r
import asyncio, gc
from firmware import app
from firmware.settings import DEFAULTS
from test_clock_hold import Board

class NoCard:
    polls = 0

    def read_card(self):
        self.polls += 1
        return None

board = Board("repl_%(name)s")
if not %(card)r:
    board.reader = NoCard()
settings = dict(DEFAULTS, debug_repl=%(on)r, ntp_host="", host_tls="plain", port=1, poll_ms=5)
runtime = app.Runtime(board, settings, {})

async def bounded():
    task = asyncio.create_task(runtime.run())
    await app.sleep_ms(%(run_ms)d)
    task.cancel()

if %(run_ms)d:
    asyncio.run(bounded())
    gc.collect()
    print("RESULT modules", "aiorepl" in sys.modules)
    print("RESULT screen", board.display.screens[-1][0])
    print("RESULT heap", gc.mem_alloc())
else:
    app.run(runtime)
"""


def _program(name, on, paths, card=False, run_ms=0):
    return _PROGRAM % {"paths": [str(p) for p in paths], "name": name,
                       "on": on, "card": card, "run_ms": run_ms}


class Console:
    """The firmware process with its console on pipes: type, and wait for what it prints."""

    def __init__(self, program):
        self.proc = subprocess.Popen([str(MICROPYTHON), "-X", "heapsize=400000", "-c", program],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, cwd=str(ROOT))
        self.out = b""
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        while True:
            chunk = self.proc.stdout.read1(4096)
            if not chunk:
                return
            with self._lock:
                self.out += chunk

    def text(self):
        with self._lock:
            return self.out.decode("utf-8", "replace")

    def wait_for(self, text, after=0, timeout_s=60):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            at = self.text().find(text, after)
            if at >= 0:
                return at + len(text)
            time.sleep(0.02)
        raise AssertionError("not printed within %d s: %r\n%s" % (timeout_s, text, self.text()))

    def type(self, keys):
        self.proc.stdin.write(keys.encode())
        self.proc.stdin.flush()

    def close(self):
        """Kill the process and read the pipe to its end: a loaded machine may hold the reader
        behind the exit, and the traceback is the last thing written."""
        self.proc.kill()
        self.proc.wait()
        self._reader.join(timeout=60)


def test_debug_repl_answers_inside_the_running_firmware():
    console = Console(_program("on", True, (ROOT, HERE, PEERS)))
    try:
        at = console.wait_for("debug_repl: aiorepl on the console")
        at = console.wait_for("--> ", at)
        # One command at a time: while an `await` runs, aiorepl reads the console for Ctrl-C.
        console.type("runtime.terminal.status()['idle']\r")
        at = console.wait_for("True\n", at)
        at = console.wait_for("--> ", at)
        console.type("polls = runtime.board.reader.polls\r")
        at = console.wait_for("--> ", at)
        console.type("await asyncio.sleep_ms(200)\r")  # the runtime's tasks run meanwhile
        at = console.wait_for("--> ", at)
        console.type("runtime.board.reader.polls > polls\r")
        at = console.wait_for("True\n", at)
        at = console.wait_for("--> ", at)
        console.type("runtime.clock_set, 'aiorepl' in __import__('sys').modules\r")
        at = console.wait_for("(True, True)\n", at)
        console.type("\x04")  # Ctrl-D: aiorepl ends the event loop, so the terminal stops
        console.wait_for("\n", at)
        # Ctrl-C (SIGINT from a terminal on the unix port) then ends main.py, as on a board; aimed
        # at the main thread, as the virtual board does, not at the keypad's timer thread.
        vboard.interrupt_main_thread(console.proc.pid)
        console.proc.wait(timeout=60)
    finally:
        console.close()
    out = console.text()
    assert "KeyboardInterrupt" in out and out.count("Traceback") == 1, out


def test_debug_repl_without_aiorepl_logs_it_and_goes_on():
    console = Console(_program("missing", True, (ROOT, HERE), card=True, run_ms=500))
    try:
        console.proc.wait(timeout=120)
    finally:
        console.close()
    out = console.text()
    assert "debug_repl: aiorepl is not installed (mpremote mip install aiorepl); going on " \
           "without it" in out, out
    assert "RESULT modules False" in out and "RESULT screen PURCHASE" in out, out


def test_debug_repl_off_never_imports_aiorepl():
    console = Console(_program("off", False, (ROOT, HERE, PEERS), card=True, run_ms=500))
    try:
        console.proc.wait(timeout=120)
    finally:
        console.close()
    out = console.text()
    assert "RESULT modules False" in out and "RESULT screen PURCHASE" in out, out
    assert "debug_repl" not in out, out


def test_a_scenario_cannot_ask_for_it():
    # The simulated board's firmware has /dev/null for a console: aiorepl would spin on it.
    import pytest

    from tools.sim.scenario import ScenarioError, validate

    with pytest.raises(ScenarioError, match="debug_repl needs a console"):
        validate({"config": {"debug_repl": True}})
    with pytest.raises(ScenarioError, match="debug_repl must be bool"):
        validate({"config": {"debug_repl": "yes"}})
