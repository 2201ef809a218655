"""One seeded world: terminal core + simulated flash + faulty network + host ledger + printer.

Everything runs on a virtual clock from one event queue; every random choice comes from one
`random.Random(seed)`. Nothing sleeps. The runtime's rules (firmware/app.py) are mirrored:

- actions run in order, a `journal` action is on flash before the next one runs; a power cut
  can fall after any journal write (and the write may be torn: the record is lost), or at any
  instant between events; at boot the terminal is rebuilt from the surviving records;
- one connection per exchange; a new exchange of a kind closes the previous one of that kind;
  a superseded exchange's failure is dropped, a late purchase response is still handed over;
  `('unsent', kind)` when the connection never opened, `('closed', kind)` when it closed
  without a response;
- compaction (`Terminal.snapshot()`) when idle and the journal is over `journal_max_bytes`;
- paper: a failed print is `('print_failed', job, partial)`, then `('paper', 'in')` once the
  printer has paper again (polled every 500 ms while the core says paper is out).
"""

import datetime
import heapq
import json
import random

from firmware import core as core_mod
from firmware.settings import DEFAULTS
from tools.host import keys as host_keys
from tools.host import ledger as ledger_mod
from tools.host import spec
from tools.host.ledger import load_cards
from tools.host.server import TARGETS, HostSimulator

from .check import Checker

BASE_TIME = datetime.datetime(2026, 11, 26, 10, 0, 0, tzinfo=datetime.timezone.utc)

# Short timeouts: the core's own timers, at a scale where thousands of purchases fit in seconds.
SETTINGS = {
    "connect_timeout_ms": 500,
    "response_timeout_ms": 3000,
    "query_timeout_ms": 1000,
    "query_attempts": 3,
    "query_window_ms": 6000,
    "retry_base_ms": 200,
    "retry_max_ms": 3000,
    "entry_timeout_ms": 5000,
    "message_ms": 1000,
    "print_timeout_ms": 2000,
    "journal_max_bytes": 1500,
    "max_amount": 100000,
}

# Faults, each counted in the summary.
FAULT_KINDS = ("drop", "delay", "duplicate", "reorder", "corrupt", "disconnect", "unsent",
               "outage", "paper_out")

CARDS = load_cards()
UNKNOWN_PAN = "4761739001019999"  # not on file at the host: declined 14


class _Secrets:
    """Stands in for the ledger's `secrets` (auth codes) so a seed replays byte for byte."""

    def __init__(self, rng):
        self.rng = rng

    def randbelow(self, n):
        return self.rng.randrange(n)


class Clock:
    def __init__(self, world):
        self.world = world

    def now(self):
        t = BASE_TIME + datetime.timedelta(milliseconds=self.world.now)
        return (t.year, t.month, t.day, t.hour, t.minute, t.second)

    def ticks_ms(self):
        return self.world.now


class Stop(Exception):
    """A violation ends the run (the checker has recorded it)."""


class World:
    def __init__(self, seed, purchases=None, disabled=(), trace=False,
                 terminal_cls=core_mod.Terminal, max_events=200000, key_scheme="dukpt"):
        self.seed = seed
        self.rng = random.Random(seed)
        rng = self.rng
        self.trace = trace
        self.lines = []
        self.terminal_cls = terminal_cls
        self.max_events = max_events
        self.now = 0
        self.queue = []
        self.seq = 0
        self.settings = dict(DEFAULTS)
        self.settings.update(SETTINGS)
        self.settings["key_scheme"] = key_scheme
        self.settings["receipt_copies"] = rng.choice((1, 2, 2))
        self.mac_key = host_keys.MAC_KEY
        # World shape, drawn first so that it does not move when faults are masked.
        self.purchases_total = rng.randint(3, 14)
        if purchases is not None:
            self.purchases_total = purchases
        self.intensity = rng.choice((0.0, 0.03, 0.08, 0.15, 0.3))
        self.cut_rate = rng.choice((0.0, 0.02, 0.06, 0.15))  # power cut after a journal write
        self.cut_every_ms = rng.choice((0, 0, 20000, 6000))  # mean time between timed cuts
        self.paper_rate = rng.choice((0.0, 0.05, 0.2))
        self.outage_every_ms = rng.choice((0, 0, 15000, 40000))  # network down for a while
        self.outage_until = -1
        self.slow_until = -1
        self.disabled = set(disabled)  # fault ordinals not applied (shrinking)
        self.fault_no = 0
        self.stats = {k: 0 for k in FAULT_KINDS}
        self.stats.update(power_cuts=0, torn=0, transactions=0, approved=0, purchases=0, events=0,
                          compactions=0, boots=0)
        # Host: the simulator's own decision code over its real ledger, in memory.
        self.secrets = _Secrets(random.Random(rng.getrandbits(64)))
        self.host = HostSimulator(":memory:", clock=self.host_clock,
                                  static_terminals=True if key_scheme == "static" else ())
        self.card_balance = {c["pan"]: c["balance"] for c in CARDS}
        # Terminal side.
        self.flash = []  # the journal's surviving records
        self.flash_bytes = 0
        self.term = None
        self.epoch = 0  # power generation: events of an earlier one are void
        self.timers = {}  # name -> token
        self.timer_token = 0
        self.conn_no = 0
        self.conns = {}  # id -> {kind, gen, epoch, open}
        self.link_gen = {}
        self.links = {}  # kind -> open connection id
        self.inflight = 0  # messages on the wire
        self.paper = True
        self.printing = None  # paper record of the job on the printer
        self.paper_polling = False
        self.healing = False
        self.purchases_left = self.purchases_total
        self.checker = Checker(self)

    # ---- plumbing --------------------------------------------------------------------------

    def host_clock(self):
        return BASE_TIME + datetime.timedelta(milliseconds=self.now)

    def log(self, side, text):
        if self.trace:
            self.lines.append("%9d ms  %-5s %s" % (self.now, side, text))

    def at(self, delay, fn, *args):
        self.seq += 1
        heapq.heappush(self.queue, (self.now + int(delay), self.seq, fn, args))

    def fault(self, kind, p):
        """Whether to inject a fault of `kind` now (probability p scaled by the intensity).

        The random draw happens whatever the outcome, so masking a fault (shrinking) keeps the
        draws that follow in step.
        """
        hit = self.rng.random() < p * self.intensity
        if not hit or self.healing:
            return False
        self.fault_no += 1
        if self.fault_no in self.disabled:
            return False
        self.stats[kind] += 1
        return True

    # ---- run -------------------------------------------------------------------------------

    def run(self):
        saved = ledger_mod.secrets
        ledger_mod.secrets = self.secrets
        try:
            self._run()
        except Stop:
            pass
        finally:
            ledger_mod.secrets = saved
            self.host.ledger.close()
        return self

    def _run(self):
        self.power_on()
        if self.cut_every_ms:
            self.at(self.rng.expovariate(1 / self.cut_every_ms), self.timed_cut)
        if self.outage_every_ms and self.intensity:
            self.at(self.rng.expovariate(1 / self.outage_every_ms), self.outage)
        self.at(self.rng.randint(10, 500), self.customer)
        events = 0
        while self.queue:
            t, _, fn, args = heapq.heappop(self.queue)
            self.now = t
            fn(*args)
            events += 1
            if self.healing and self.settled():
                break
            if events > self.max_events:
                break
        self.stats["events"] = events
        if not self.healing:
            self.heal()
        if not self.settled():
            self.checker.violation("S5", "not settled at quiescence: %s" % self.pending())
            return
        self.checker.quiescence()

    def heal(self):
        """End of the workload: no more faults or cuts, paper in, power on; run until quiet."""
        if self.healing:
            return
        self.healing = True
        self.log("WORLD", "heal: faults end, paper in, power on")
        self.paper = True
        if self.term is None:
            self.power_on()
        self.poll_paper()
        self.deadline = self.now + 600000
        self.at(600000, lambda: None)

    def settled(self):
        t = self.term
        if t is None or self.inflight or self.printing is not None:
            return False
        if t.recovery or t.print_queue or t.printing or t.saf or t.saf_busy or t.order:
            return False
        return t.mode in (core_mod.IDLE, core_mod.MESSAGE) and not t.paper_out

    def pending(self):
        t = self.term
        if t is None:
            return "terminal off"
        return ("mode %s, recovering %s, to print %s, printing %s, store-and-forward %s, open %s,"
                " on the wire %d" % (t.mode, t.recovery, t.print_queue, t.printing, t.saf,
                                     ["%06d:%s" % (s, t.txns[s]["state"]) for s in t.order],
                                     self.inflight))

    # ---- terminal runtime ------------------------------------------------------------------

    def power_on(self):
        self.epoch += 1
        self.stats["boots"] += 1
        self.timers = {}
        self.term = self.terminal_cls(self.settings, Clock(self), self.random_bytes)
        self.log("PWR", "power on: boot with %d records on flash" % len(self.flash))
        self.dispatch(("boot", list(self.flash)))

    def random_bytes(self, n):
        return bytes(self.rng.getrandbits(8) for _ in range(n))

    def power_cut(self, why):
        self.stats["power_cuts"] += 1
        self.log("PWR", "POWER CUT (%s)" % why)
        self.epoch += 1
        self.term = None
        self.timers = {}
        for conn in self.conns.values():
            conn["open"] = False
        self.conns = {}
        self.links = {}
        if self.printing is not None:
            self.printing = None  # what reached paper stays there, cut off
        self.paper_polling = False
        self.at(self.rng.choice((20, 300, 2000, 8000)), self.power_on)
        raise _Cut()

    def timed_cut(self):
        if self.healing:
            return
        if self.term is not None and self.fault_cut():
            try:
                self.power_cut("timed")
            except _Cut:
                pass
        self.at(self.rng.expovariate(1 / self.cut_every_ms) + 1, self.timed_cut)

    def fault_cut(self):
        self.fault_no += 1
        return self.fault_no not in self.disabled

    def dispatch(self, event):
        term = self.term
        if term is None:
            return
        if self.trace:
            self.log("TERM", "<- %s" % _show_event(event))
        actions = term.handle(event)
        epoch = self.epoch
        try:
            for action in actions:
                self.execute(action)
        except _Cut:
            return
        if self.trace:
            for line in term.log:
                self.log("TERM", "   log: " + line)
        del term.log[:]
        if epoch != self.epoch:
            return
        # The runtime's compaction, when quiet.
        status = term.status()
        if (status["idle"] and term.current is None
                and self.flash_bytes > self.settings["journal_max_bytes"]):
            self.flash = term.snapshot()
            self.flash_bytes = sum(_rec_size(r) for r in self.flash)
            self.stats["compactions"] += 1
            self.log("FLASH", "compacted to %d records" % len(self.flash))
            self.checker.compacted()
        self.checker.step(event)

    def execute(self, action):
        kind = action[0]
        if kind == "journal":
            rec = action[1]
            self.log("FLASH", "journal %s" % json.dumps(rec, sort_keys=True))
            self.checker.before_journal(rec)
            self.flash.append(rec)
            self.flash_bytes += _rec_size(rec)
            self.checker.journaled(rec)
            if not self.healing and self.rng.random() < self.cut_rate and self.fault_cut():
                if self.rng.random() < 0.3:
                    self.flash.pop()
                    self.flash_bytes -= _rec_size(rec)
                    self.stats["torn"] += 1
                    self.checker.torn(rec)
                    self.log("FLASH", "torn write: the last record is lost")
                self.power_cut("after journal %s" % rec["r"])
        elif kind == "send":
            self.send(action[1], action[2])
        elif kind == "print":
            self.print_job(action[1], action[2])
        elif kind == "arm":
            self.timer_token += 1
            token = self.timer_token
            self.timers[action[1]] = token
            self.at(action[2], self.timer_fired, action[1], token, self.epoch)
        elif kind == "disarm":
            self.timers.pop(action[1], None)
        elif kind == "show" and self.trace:
            self.log("SHOW", " | ".join(line.strip() for line in action[1] if line.strip()))

    def timer_fired(self, name, token, epoch):
        if epoch == self.epoch and self.timers.get(name) == token:
            del self.timers[name]
            self.dispatch(("timer", name))

    # ---- network ---------------------------------------------------------------------------

    def latency(self):
        return self.rng.randint(2, 60)

    def send(self, kind, frame):
        gen = self.link_gen.get(kind, 0) + 1
        self.link_gen[kind] = gen
        old = self.links.pop(kind, None)
        if old is not None:
            self.conns.pop(old)["open"] = False
        self.conn_no += 1
        cid = self.conn_no
        conn = {"kind": kind, "gen": gen, "epoch": self.epoch, "open": True, "id": cid}
        self.conns[cid] = conn
        self.links[kind] = cid
        mti = frame[:4].decode("ascii", "replace")
        if self.now < self.outage_until and not self.healing:
            if self.rng.random() < 0.5:
                self.log("NET", "%s %s: link down, connection refused" % (kind, mti))
                self.at(self.rng.randint(1, self.settings["connect_timeout_ms"]),
                        self.link_event, conn, ("unsent", kind))
            else:
                self.log("NET", "%s %s: link down, request lost" % (kind, mti))
            return
        if self.fault("unsent", 0.25):
            self.log("NET", "%s %s: connection refused (never sent)" % (kind, mti))
            self.at(self.rng.randint(1, self.settings["connect_timeout_ms"]), self.link_event,
                    conn, ("unsent", kind))
            return
        if self.fault("disconnect", 0.15):
            self.log("NET", "%s %s: link dropped before the request got through" % (kind, mti))
            self.at(self.latency(), self.link_event, conn, ("closed", kind))
            return
        if self.fault("drop", 0.25):
            self.log("NET", "%s %s: request lost" % (kind, mti))
            return
        delay = self.latency()
        if self.fault("reorder", 0.2):
            delay += self.rng.randint(0, 1500)
        if self.fault("delay", 0.15):
            delay += self.rng.randint(2000, 15000)
        if self.now < self.slow_until and not self.healing:
            delay += self.rng.randint(1000, 12000)
        if self.fault("corrupt", 0.1):
            frame = _corrupt(self.rng, frame)
            self.log("NET", "%s %s: request corrupted on the wire" % (kind, mti))
        self.log("NET", "%s %s -> host in %d ms" % (kind, mti, delay))
        self.inflight += 1
        self.at(delay, self.host_receive, conn, frame, False)
        if self.fault("duplicate", 0.1):
            # The same bytes twice on the connection: the host decides both, the terminal
            # reads the first response (one response per exchange).
            self.inflight += 1
            self.at(delay + 1, self.host_receive, conn, frame, True)

    def outage(self):
        """The link goes down for a while: nothing gets through in either direction."""
        if self.healing:
            return
        length = self.rng.choice((1000, 4000, 12000, 30000))
        slow = self.rng.random() < 0.5
        if self.fault("outage", 1 / self.intensity):
            if slow:  # congestion: everything gets through, seconds late
                self.slow_until = self.now + length
            else:
                self.outage_until = self.now + length
            self.log("NET", "link %s for %d ms" % ("slow" if slow else "down", length))
        self.at(self.rng.expovariate(1 / self.outage_every_ms) + length, self.outage)

    def link_event(self, conn, event):
        if conn["epoch"] != self.epoch or not conn["open"]:
            return
        conn["open"] = False
        if self.link_gen.get(conn["kind"]) == conn["gen"]:
            self.dispatch(event)

    def host_receive(self, conn, frame, duplicate):
        self.inflight -= 1
        host = self.host
        try:
            mti, _ = spec.decode_frame(frame)
        except spec.DecodeError as exc:
            self.log("HOST", "garbage, connection closed (%s)" % exc)
            self.at(self.latency(), self.link_event, conn, ("closed", conn["kind"]))
            return
        if mti not in TARGETS:
            self.log("HOST", "unsupported MTI %s, connection closed" % mti)
            self.at(self.latency(), self.link_event, conn, ("closed", conn["kind"]))
            return
        resp_mti, resp_fields, note = host._process(mti, frame)
        resp = host.encode_response(resp_mti, resp_fields)
        self.log("HOST", "%s stan=%s amount=%s -> %s rc=%s: %s%s" % (
            mti, resp_fields.get("11"), resp_fields.get("4"), resp_mti, resp_fields.get("39"),
            note, " (duplicate on the wire)" if duplicate else ""))
        self.checker.host_decided(mti, resp_fields)
        if duplicate:
            # The copy is a replay (its KSN was just used: the host refuses it, 63). Half the
            # time its answer reaches the core too, before or after the genuine one: a refusal
            # of a replayed copy must count as no answer.
            if self.rng.random() < 0.5 and not self.healing:
                self.inflight += 1
                self.at(self.rng.randint(0, 200), self.term_receive, conn, resp, True)
            return
        kind = conn["kind"]
        if self.now < self.outage_until and not self.healing:
            self.log("NET", "%s response lost: link down" % resp_mti)
            return
        if self.fault("drop", 0.25):
            self.log("NET", "%s response lost (connection stays open)" % resp_mti)
            return
        if self.fault("disconnect", 0.15):
            self.log("NET", "%s response lost: connection reset" % resp_mti)
            self.at(self.latency(), self.link_event, conn, ("closed", kind))
            return
        delay = self.latency()
        if self.fault("reorder", 0.2):
            delay += self.rng.randint(0, 1500)
        if self.fault("delay", 0.2):
            delay += self.rng.randint(2000, 15000)
        if self.now < self.slow_until and not self.healing:
            delay += self.rng.randint(1000, 12000)
        if self.fault("corrupt", 0.1):
            resp = _corrupt(self.rng, resp)
            self.log("NET", "%s response corrupted on the wire" % resp_mti)
        self.inflight += 1
        self.at(delay, self.term_receive, conn, resp, False)
        if self.fault("duplicate", 0.1):
            # Delivered twice to the core (stronger than TCP allows): the second must be inert.
            self.inflight += 1
            self.at(delay + self.rng.randint(0, 3000), self.term_receive, conn, resp, True)

    def term_receive(self, conn, frame, duplicate):
        self.inflight -= 1
        if conn["epoch"] != self.epoch:
            return
        if duplicate:
            self.log("NET", "duplicate %s delivered again" % frame[:4].decode("ascii", "replace"))
            self.dispatch(("rx", frame))
            return
        if not conn["open"]:
            self.log("NET", "%s response on a closed %s connection, not read" % (
                frame[:4].decode("ascii", "replace"), conn["kind"]))
            return
        conn["open"] = False
        if self.links.get(conn["kind"]) == conn["id"]:
            del self.links[conn["kind"]]
        if self.link_gen.get(conn["kind"]) == conn["gen"] or conn["kind"] == "purchase":
            self.dispatch(("rx", frame))

    # ---- printer ---------------------------------------------------------------------------

    def print_job(self, job, text):
        paper = self.checker.printing(job, text)
        if not self.paper:
            self.log("PRN", "job %s: no paper" % job)
            paper["lines"] = 0
            self.at(1, self.print_done, job, paper, False, False, self.epoch)
            return
        self.printing = paper
        duration = self.rng.randint(100, 1500)
        if self.fault("paper_out", self.paper_rate / max(self.intensity, 0.01)
                      if self.intensity else 0):
            cut = self.rng.randint(0, duration)
            self.at(cut, self.print_done, job, paper, False, True, self.epoch)
            return
        self.at(duration, self.print_done, job, paper, True, True, self.epoch)

    def print_done(self, job, paper, whole, started, epoch):
        if epoch != self.epoch:
            return
        self.printing = None
        if whole:
            paper["whole"] = True
            self.log("PRN", "job %s printed whole: %s" % (job, paper["what"]))
            self.dispatch(("printed", job))
            return
        if started:
            self.paper = False
            self.log("PRN", "job %s: paper ran out part way (%s)" % (job, paper["what"]))
            self.at(self.rng.choice((300, 2000, 10000)), self.paper_loaded)
        self.dispatch(("print_failed", job, started))
        self.poll_paper()

    def paper_loaded(self):
        self.paper = True
        self.log("PRN", "paper loaded")

    def poll_paper(self):
        if not self.paper_polling:
            self.paper_polling = True
            self.at(500, self._poll_paper, self.epoch)

    def _poll_paper(self, epoch):
        if epoch != self.epoch:
            return
        self.paper_polling = False
        term = self.term
        if term is None or not term.paper_out:
            return
        if self.paper:
            self.dispatch(("paper", "in"))
        self.poll_paper()

    # ---- the customer and the cashier ------------------------------------------------------

    def customer(self):
        """Start the next purchase when the terminal takes a card; press keys meanwhile."""
        if self.healing:
            return
        if self.purchases_left <= 0:
            self.at(self.rng.randint(0, 3000), self.heal)
            return
        term = self.term
        rng = self.rng
        if term is None or not term.wants_card():
            if term is not None and term.mode == core_mod.MESSAGE and rng.random() < 0.5:
                self.dispatch(("key", rng.choice("#*")))
            elif term is not None and term.mode == core_mod.IDLE and rng.random() < 0.1:
                self.dispatch(("key", rng.choice("ABC")))
            self.at(rng.randint(50, 800), self.customer)
            return
        if rng.random() < 0.05:
            self.dispatch(("key", rng.choice("ABC#*")))
            term = self.term
            if term is None or not term.wants_card():
                self.at(rng.randint(50, 800), self.customer)
                return
        self.purchases_left -= 1
        self.stats["purchases"] += 1
        r = rng.random()
        if r < 0.03:
            pan, expiry = "4761739", "2812"  # unreadable: card error
        elif r < 0.08:
            pan, expiry = UNKNOWN_PAN, "2812"
        elif r < 0.5:
            pan, expiry = CARDS[0]["pan"], CARDS[0]["expiry"]
        else:
            card = rng.choice(CARDS)
            pan, expiry = card["pan"], card["expiry"]
        self.log("USER", "taps card ..%s" % pan[-4:])
        self.dispatch(("card", pan, expiry))
        keys = self.script(pan)
        t = 0
        for key in keys:
            t += rng.choice((30, 120, 400)) if rng.random() < 0.99 else \
                self.settings["entry_timeout_ms"] + 100
            self.at(t, self.press, key)
        self.at(t + rng.randint(100, 2000), self.customer)

    def script(self, pan):
        rng = self.rng
        r = rng.random()
        if r < 0.07:
            amount = ""
        elif r < 0.1:
            amount = "0"
        elif r < 0.17:
            amount = str(rng.randint(self.settings["max_amount"] + 1, 99999999))
        elif r < 0.3:
            amount = str(rng.randint(900, 1200))  # about the limit card's limit
        else:
            amount = str(rng.randint(1, 3000))
        keys = list(amount) + ["#"]
        if amount in ("", "0") or int(amount) > self.settings["max_amount"]:
            if rng.random() < 0.5:
                keys += ["D"] + list(str(rng.randint(1, 2000))) + ["#"]
            else:
                keys += ["*"]
        r = rng.random()
        if r < 0.75:
            pin = "1234"
        elif r < 0.9:
            pin = "".join(rng.choice("0123456789") for _ in range(rng.randint(4, 6)))
        else:
            pin = "12"
        keys += list(pin) + ["#"]
        if rng.random() < 0.2:
            keys.insert(rng.randrange(len(keys) + 1), "*")  # cancel at a random step
        if rng.random() < 0.2:
            i = rng.randrange(len(keys))
            keys.insert(i, keys[i])  # a repeated press
        for _ in range(rng.choice((0, 0, 1, 3))):
            keys.append(rng.choice("#*#0A"))  # impatience after the PIN
        return keys

    def press(self, key):
        self.log("USER", "presses %s" % key)
        self.dispatch(("key", key))


class _Cut(Exception):
    pass


def _rec_size(rec):
    return 10 + len(json.dumps(rec))


def _corrupt(rng, frame):
    data = bytearray(frame)
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(data))
        data[i] ^= 1 << rng.randrange(8)
    return bytes(data)


def _show_event(event):
    if event[0] == "rx":
        frame = event[1]
        return "rx %s (%d bytes)" % (frame[:4].decode("ascii", "replace"), len(frame))
    if event[0] == "boot":
        return "boot (%d records)" % len(event[1])
    if event[0] == "card":
        return "card ..%s" % event[1][-4:]
    return " ".join(str(x) for x in event)
