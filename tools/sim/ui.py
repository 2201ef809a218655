"""Interactive simulator (`make sim`): the terminal's screen, its printer and the host, in a
text UI. Keys on the PC keyboard press the keypad; letters tap cards and inject faults.

Built on SimSession: everything shown comes from its event stream and the host's log, and the
whole session is recorded in the out directory like a scripted run.
"""

import asyncio
import sys
import textwrap

from tools.sim.session import SimSession, default_cards

# Short timeouts so that a dropped response, its status query and a reversal can be watched.
DEMO_CONFIG = {"response_timeout_ms": 6000, "query_timeout_ms": 3000, "query_attempts": 2,
               "retry_base_ms": 1000, "retry_max_ms": 8000, "message_ms": 3000}
LATE_MS = 20000  # longer than the response timeout plus the queries: the answer comes too late

HELP = [
    "KEYPAD  0-9 A-D    # or Enter = OK    * or Esc = cancel    D or Backspace = clear",
    "CARDS   t then 1-9 taps that card (list on the left)",
    "HOST    x drop next response (query recovers)   y delay next response %ds (late)" % (
        LATE_MS // 1000),
    "        r drop every status query (-> reversal)  m bad MAC on next response",
    "        o host down/up   h heal all host faults",
    "BOARD   p paper out/in   k power cut/on   n network down/up        q quit",
]


class App:
    def __init__(self, session, cards):
        self.session = session
        self.cards = cards
        self.receipt = []
        self.term_log = []
        self.pending_tap = False
        self.message = "t1 then 1250# then 1234# pays; t2 is declined; x before it shows recovery"
        self.quit = False
        self.paper_in = True
        self.net_up = True
        self.host_down = False
        session.events.listeners.append(self.on_event)

    def on_event(self, e):
        kind = e["kind"]
        if kind == "receipt":
            self.receipt = e["text"].splitlines()
        elif kind in ("log", "firmware_error"):
            self.term_log.extend(e["text"].splitlines())
        elif kind in ("host_tx", "host_rx"):
            rc = e.get("rc")
            self.term_log.append("%s %s stan %s%s" % (
                "->" if kind == "host_tx" else "<-", e["mti"], e["stan"],
                " rc " + rc if rc else ""))
        elif kind in ("power", "net", "paper", "tap"):
            self.term_log.append("%s %s" % (kind, e.get("state") or e.get("pan_last4")))
        del self.term_log[:-200]

    def key(self, ch):
        s = self.session
        if self.pending_tap:
            self.pending_tap = False
            if "1" <= ch <= "9" and int(ch) <= len(self.cards):
                s.tap_nowait(self.cards[int(ch) - 1]["pan"])
                self.message = "card %s in the field" % ch
            else:
                self.message = "no such card"
            return
        if ch in "0123456789ABCD*#":
            s.board.press(ch)
        elif ch == "t":
            self.pending_tap = True
            self.message = "tap which card? 1-%d" % len(self.cards)
        elif ch == "x":
            s.host_fault({"host": "drop_response"})
            self.message = "host will drop its next response"
        elif ch == "y":
            s.host_fault({"host": "delay_response", "ms": LATE_MS})
            self.message = "host will answer the next request %d s late" % (LATE_MS // 1000)
        elif ch == "r":
            s.host_fault({"host": "drop_response", "for": "query", "times": "all"})
            self.message = "host drops every status query answer until h"
        elif ch == "m":
            s.host_fault({"host": "bad_mac"})
            self.message = "next response carries a bad MAC"
        elif ch == "o":
            self.host_down = not self.host_down
            s.host_fault({"host": "host_down" if self.host_down else "host_up"})
            self.message = "host " + ("down" if self.host_down else "up")
        elif ch == "h":
            s.host_fault({"host": "heal"})
            if self.host_down:
                s.host_fault({"host": "host_up"})
                self.host_down = False
            self.message = "host faults healed"
        elif ch == "p":
            self.paper_in = not self.paper_in
            s.paper(self.paper_in)
            self.message = "paper " + ("in" if self.paper_in else "out")
        elif ch == "k":
            on = not s.firmware.powered
            asyncio.ensure_future(s.power(on))
            self.message = "power " + ("on" if on else "cut")
        elif ch == "n":
            self.net_up = not self.net_up
            s.net(self.net_up)
            self.message = "network " + ("up" if self.net_up else "down")
        elif ch == "q":
            self.quit = True

    def draw(self, scr, curses):
        scr.erase()
        h, w = scr.getmaxyx()

        def put(y, x, text, attr=0, width=None):
            if 0 <= y < h and x < w:
                room = max(0, w - x - 1) if width is None else min(width, max(0, w - x - 1))
                try:
                    scr.addstr(y, x, text[:room], attr)
                except curses.error:
                    pass

        s = self.session
        state = s.board.state or {}
        power = "ON" if s.firmware.powered else "OFF"
        put(0, 0, "POS terminal simulator   power %s  net %s  paper %s  host %s   %s" % (
            power, "up" if self.net_up else "DOWN", "in" if self.paper_in else "OUT",
            "DOWN" if self.host_down else "up",
            "idle" if state.get("idle") else (state.get("mode") or "-")), curses.A_BOLD)
        # The 16 x 8 display.
        put(2, 0, "+" + "-" * 16 + "+")
        lines = s.board.lines if s.firmware.powered else []
        for i in range(8):
            text = lines[i] if i < len(lines) else ""
            put(3 + i, 0, "|" + text[:16].ljust(16) + "|")
        put(11, 0, "+" + "-" * 16 + "+")
        put(12, 0, "queued %s unprinted %s" % (state.get("queued", "-"),
                                               state.get("unprinted", "-")))
        # Cards.
        rx = 36
        put(14, 0, "Test cards (t + number):", curses.A_BOLD)
        for i, card in enumerate(self.cards[:9]):
            label = card.get("label", card.get("status", "")).split(":")[0]
            put(15 + i, 0, "%d ...%s %s" % (i + 1, card["pan"][-4:], label), width=rx - 2)
        # The last receipt, scrolled to its end.
        put(2, 20, "Last receipt", curses.A_BOLD)
        body = [line for line in self.receipt if line.strip()][-11:]
        for i, text in enumerate(body):
            put(3 + i, 20, text, width=32)
        # Host log and terminal log.
        lx = 54
        if lx < w - 10:
            put(2, lx, "Host", curses.A_BOLD)
            host_log = list(getattr(s.host, "log", []))[-11:]
            for i, text in enumerate(host_log):
                put(3 + i, lx, text)
        put(14, rx, "Terminal", curses.A_BOLD)
        rows = max(0, h - len(HELP) - 2 - 15)
        for i, text in enumerate(self.term_log[-rows:] if rows else []):
            put(15 + i, rx, text)
        base = h - len(HELP) - 1
        for i, text in enumerate(HELP):
            put(base + i, 0, text)
        put(h - 1, 0, "> " + self.message, curses.A_REVERSE)
        scr.refresh()


def _char(code, curses):
    if code in (10, 13, curses.KEY_ENTER):
        return "#"
    if code == 27:
        return "*"
    if code in (8, 127, curses.KEY_BACKSPACE):
        return "D"
    if 0 <= code < 256:
        return chr(code)
    return None


async def _main(scr, curses, out, heapsize, main):
    cards = default_cards()
    session = SimSession(out, DEMO_CONFIG, None, heapsize, main)
    app = App(session, cards)
    await session.start()
    scr.nodelay(True)
    scr.keypad(True)
    try:
        while not app.quit:
            while True:
                code = scr.getch()
                if code == -1:
                    break
                ch = _char(code, curses)
                if ch:
                    app.key(ch)
            app.draw(scr, curses)
            await asyncio.sleep(0.05)
    finally:
        await session.stop()


def run_ui(out="out/sim", heapsize=None, main=None):
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print("tools.sim: the interactive simulator needs a terminal (TTY); for a scripted run "
              "use: python -m tools.sim --scenario FILE --out DIR", file=sys.stderr)
        return 2
    try:
        import curses
    except ImportError:
        print("tools.sim: the interactive simulator needs the curses module", file=sys.stderr)
        return 2
    try:
        curses.wrapper(lambda scr: asyncio.run(_main(scr, curses, out, heapsize, main)))
    except KeyboardInterrupt:
        pass
    print("session recorded in %s (events.jsonl, ledger.json, receipts/)" % out)
    return 0


def wrap(text, width):  # pragma: no cover - kept for narrow terminals
    return textwrap.wrap(text, width)
