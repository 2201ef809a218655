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
# The layout: the OLED (64 braille cells by 16 for 128x64 pixels), the last receipt beside it
# in a column as wide as its paper, under it the cards, the terminal's log and the host's log
# in columns as wide, and the help at the bottom.
OLED_COLS, OLED_ROWS = 64, 16
COLUMN = 32  # a receipt line (58 mm paper)
HOST_ROWS = 3  # the fewest rows of the host's log worth showing

HELP = [
    "KEYPAD  0-9 A-D    # or Enter = OK    * or Esc = cancel    D or Backspace = clear",
    "CARDS   t then 1-9 taps that card (list on the left)",
    "HOST    x drop next response (query recovers)   y delay next response %ds (late)" % (
        LATE_MS // 1000),
    "        r drop every status query (-> reversal)  m bad MAC on next response",
    "        o host down/up   h heal all host faults",
    "BOARD   p paper out/in   k power cut/on   n network down/up        q quit",
]
# The smallest terminal the layout fits: the OLED's frame and the receipt column across; down,
# the title, the OLED's frame, its status line, the cards' header and nine cards, the host's
# log, the help and the message line.
MIN_COLS = max(OLED_COLS + 4 + COLUMN + 1, max(len(line) for line in HELP) + 1)
MIN_ROWS = 3 + OLED_ROWS + 3 + 11 + 1 + HOST_ROWS + len(HELP) + 2


class App:
    TITLE = "POS terminal simulator"
    HELP = HELP

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

    def status(self, state):
        """The title line: power, network, paper, host and the terminal's mode."""
        return "%s   power %s  net %s  paper %s  host %s   %s" % (
            self.TITLE, "ON" if self.session.firmware.powered else "OFF",
            "up" if self.net_up else "DOWN", "in" if self.paper_in else "OUT",
            "DOWN" if self.host_down else "up",
            "idle" if state.get("idle") else (state.get("mode") or "-"))

    def layout(self, h, w):
        """What the screen shows at h rows by w columns: [(row, column, text, style)], style
        None, "bold" or "reverse"; each text fits its place. A terminal smaller than the
        layout gets the size it needs instead."""
        if h < MIN_ROWS or w < MIN_COLS:
            text = ("The simulator needs a terminal of at least %d columns by %d rows; this one "
                    "is %d by %d: enlarge it (q quits)" % (MIN_COLS, MIN_ROWS, w, h))
            return [(y, 0, line, "bold")
                    for y, line in enumerate(textwrap.wrap(text, max(1, w - 1))[:h])]
        shown = []

        def put(y, x, text, style=None, width=None):
            if 0 <= y < h and x < w:
                room = max(0, w - x - 1) if width is None else min(width, max(0, w - x - 1))
                shown.append((y, x, text[:room], style))

        s = self.session
        state = s.board.state or {}
        put(0, 0, self.status(state), "bold")
        # The OLED, drawn from the SSD1306 model's memory: 2 x 4 pixels per braille cell.
        screen = oled_rows(s.board.framebuffer) if s.firmware.powered else None
        if screen is None:
            lines = s.board.lines if s.firmware.powered else []
            screen = [(lines[i] if i < len(lines) else "").ljust(16) for i in range(8)]
        width = max(len(row) for row in screen)
        put(2, 0, "+" + "-" * width + "+")
        for i, row in enumerate(screen):
            put(3 + i, 0, "|" + row.ljust(width) + "|")
        bottom = 3 + len(screen)
        put(bottom, 0, "+" + "-" * width + "+")
        put(bottom + 1, 0, "queued %s unprinted %s" % (state.get("queued", "-"),
                                                       state.get("unprinted", "-")))
        # The last receipt, scrolled to its end, right of the screen.
        rx = width + 4
        put(2, rx, "Last receipt", "bold")
        help_ = self.HELP
        body = [line for line in self.receipt if line.strip()][-(h - len(help_) - 5):]
        for i, text in enumerate(body):
            put(3 + i, rx, text, width=COLUMN)
        # Under the screen: cards, the terminal's log, the host's log.
        top = bottom + 3
        put(top, 0, "Test cards (t + number):", "bold")
        for i, card in enumerate(self.cards[:9]):
            label = card.get("label", card.get("status", "")).split(":")[0]
            put(top + 1 + i, 0, "%d ...%s %s" % (i + 1, card["pan"][-4:], label), width=COLUMN)
        lx = COLUMN + 2
        rows = max(0, h - len(help_) - 2 - top - 1)
        put(top, lx, "Terminal", "bold")
        for i, text in enumerate(wrapped_tail(self.term_log, rx - lx - 2, rows)):
            put(top + 1 + i, lx, text)
        hy = top + 11
        put(hy, 0, "Host", "bold")
        host_log = [line[13:] for line in getattr(s.host, "log", [])[-rows:]]  # less the time
        hrows = max(0, h - len(help_) - 2 - hy - 1)
        for i, text in enumerate(wrapped_tail(host_log, COLUMN, hrows)):
            put(hy + 1 + i, 0, text)
        base = h - len(help_) - 1
        for i, text in enumerate(help_):
            put(base + i, 0, text)
        put(h - 1, 0, "> " + self.message, "reverse")
        return shown

    def draw(self, scr, curses):
        styles = {None: 0, "bold": curses.A_BOLD, "reverse": curses.A_REVERSE}
        scr.erase()
        h, w = scr.getmaxyx()
        for y, x, text, style in self.layout(h, w):
            try:
                scr.addstr(y, x, text, styles[style])
            except curses.error:
                pass
        scr.refresh()


def wrapped_tail(lines, width, rows):
    """The last `rows` screen rows of `lines`, each line wrapped to `width` (its continuation
    rows indented), so that a long log line is shown whole rather than cut."""
    out = []
    for line in reversed(lines):
        if len(out) >= rows or width < 8:
            break
        out[:0] = textwrap.wrap(line, width, subsequent_indent="  ") or [""]
    return out[-rows:] if rows else []


def oled_rows(gddram, width=128):
    """Braille text for an SSD1306 memory image (MONO_VLSB pages): each character cell shows
    2 x 4 pixels, so 128 x 64 pixels fit in 64 x 16 characters. None when there is none."""
    if not gddram:
        return None
    height = len(gddram) // width * 8
    # Braille dot bits by (dx, dy) in the 2 x 4 cell.
    dots = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))
    rows = []
    for cy in range(0, height, 4):
        row = []
        for cx in range(0, width, 2):
            bits = 0
            for dy in range(4):
                y = cy + dy
                byte_row = (y // 8) * width
                for dx in range(2):
                    if gddram[byte_row + cx + dx] >> (y % 8) & 1:
                        bits |= dots[dy][dx]
            row.append(chr(0x2800 + bits))
        rows.append("".join(row))
    return rows


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


async def drive(scr, curses, app):
    """The screen's loop: the PC's keys to the app, the app drawn, until it quits."""
    scr.nodelay(True)
    scr.keypad(True)
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


async def _main(scr, curses, out, heapsize, main, firmware):
    cards = default_cards()
    session = SimSession(out, DEMO_CONFIG, None, heapsize, main, **firmware)
    app = App(session, cards)
    await session.start()
    try:
        await drive(scr, curses, app)
    finally:
        await session.stop()


def in_curses(main, who="tools.sim"):
    """Run the coroutine function main(scr, curses) on a curses screen: 0, or 2 with the reason
    when there is no terminal or no curses."""
    try:
        import curses
    except ImportError:
        print("%s: the screen needs the curses module" % who, file=sys.stderr)
        return 2
    import locale

    locale.setlocale(locale.LC_ALL, "")  # braille cells for the OLED need a UTF-8 terminal
    try:
        curses.wrapper(lambda scr: asyncio.run(main(scr, curses)))
    except KeyboardInterrupt:
        pass
    return 0


def run_ui(out="out/sim", heapsize=None, main=None, **firmware):
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print("tools.sim: the interactive simulator needs a terminal (TTY); for a scripted run "
              "use: python -m tools.sim --scenario FILE --out DIR", file=sys.stderr)
        return 2
    rc = in_curses(lambda scr, curses: _main(scr, curses, out, heapsize, main, firmware))
    if not rc:
        print("session recorded in %s (events.jsonl, ledger.json, receipts/)" % out)
    return rc
