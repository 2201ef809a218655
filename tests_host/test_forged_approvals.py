"""A hostile host or network: forged approvals (docs/protocol.md, "What the terminal takes from an
answer"; README "When the host does not answer"). None of them prints a receipt or shows
APPROVED, and the books on both sides agree afterwards.

Each forgery answers one purchase in place of (or before) the host's answer:
- a wrong MAC (one bit flipped, MAC field missing, MACed under another key);
- a wrong STAN, amount, terminal ID or currency, each with a wrong MAC and with a correct one
  (computed with the key the host derives for the request's KSN: only the key holder can, so
  this shows the matching rules themselves refuse it);
- the genuine 0210 of an earlier purchase, captured on the wire and replayed (its MAC is good
  under the KSN it carries, an earlier request's: under DUKPT it is no answer to this one);
- garbage: random bytes, a well-framed random body, a huge length prefix, a truncated frame.

Two harnesses:
- the deterministic simulator (tools/dst): the real `firmware.core.Terminal` and codec against
  the host's real ledger logic, with the forged bytes read by the runtime's own `_read_frame`
  and handed over as ("rx", frame) (or ("closed", kind) when the reader takes nothing), as the
  DST does; the DST checker holds S1-S6 throughout. Each case runs in three host modes:
  `intercepted` (the request never reaches the ledger: the status query finds no record),
  `reversed` (the host approved it, its query answers are lost: the terminal reverses),
  `found` (the host approved it and says so to the query: the genuine approval prints, never
  the forged one);
- the simulated board: the real firmware on the MicroPython unix port (SimSession) against
  tools/host/forge.py's ForgingHost; every case once, in two sessions run side by side.
"""

import asyncio
import json
import sqlite3
import time

import pytest

from firmware import core as core_mod
from tools import fuzz
from tools.dst import world as dst_world
from tools.host import forge, keys, spec
from tools.host.forge import Forgery, ForgingHost, approval, flip_mac, frame, strip_mac

OTHER_KEY = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
BAD_MAC = "security: response with a bad MAC ignored"
MISMATCH = "mismatched 0210 ignored"
UNKNOWN = "response 0210 for unknown stan ignored"
MALFORMED = "malformed frame ignored"


def _stan_plus_one(ctx):
    return "%06d" % (int(ctx["req"]["11"]) % 999999 + 1)


def _amount_plus_one(ctx):
    return "%012d" % (int(ctx["req"]["4"]) + 1)


def _wrong(field_fn, key):
    """An approval with one field changed, MACed under `key` ("good": the host's key)."""

    def build(ctx):
        changes = field_fn(ctx)
        return frame(approval(ctx, key=None if key == "good" else OTHER_KEY, **changes)
                     if key in ("good", "other") else flip_mac(approval(ctx, **changes)))

    return build


# name -> (build(ctx, captured) -> wire bytes, the firmware's log line (or None), what the
# terminal does next: "query" at once (bad MAC) or "timeout" (ignored, waits for its timer),
# "closed" (the runtime's reader takes nothing: the link failed))
CASES = {
    "mac_bit_flipped": (lambda ctx, cap: frame(flip_mac(approval(ctx), bit=13)), BAD_MAC,
                        "query"),
    "mac_missing": (lambda ctx, cap: frame(strip_mac(approval(ctx))), BAD_MAC, "query"),
    "mac_other_key": (lambda ctx, cap: frame(approval(ctx, key=OTHER_KEY)), BAD_MAC, "query"),
    "wrong_stan_bad_mac": (lambda ctx, cap: _wrong(lambda c: {"f11": _stan_plus_one(c)},
                                                   "flip")(ctx), BAD_MAC, "query"),
    "wrong_stan_good_mac": (lambda ctx, cap: _wrong(lambda c: {"f11": _stan_plus_one(c)},
                                                    "good")(ctx), UNKNOWN, "timeout"),
    "wrong_amount_bad_mac": (lambda ctx, cap: _wrong(lambda c: {"f4": _amount_plus_one(c)},
                                                     "flip")(ctx), BAD_MAC, "query"),
    "wrong_amount_good_mac": (lambda ctx, cap: _wrong(lambda c: {"f4": _amount_plus_one(c)},
                                                      "good")(ctx), MISMATCH, "timeout"),
    "wrong_tid_bad_mac": (lambda ctx, cap: _wrong(lambda c: {"f41": "TERM0666"}, "flip")(ctx),
                          BAD_MAC, "query"),
    "wrong_tid_good_mac": (lambda ctx, cap: _wrong(lambda c: {"f41": "TERM0666"}, "good")(ctx),
                           MISMATCH, "timeout"),
    "wrong_currency_bad_mac": (lambda ctx, cap: _wrong(lambda c: {"f49": "840"}, "flip")(ctx),
                               BAD_MAC, "query"),
    "wrong_currency_good_mac": (lambda ctx, cap: _wrong(lambda c: {"f49": "840"}, "good")(ctx),
                                MISMATCH, "timeout"),
    # Under DUKPT its KSN is the earlier purchase's, not this one's: refused as a bad MAC.
    "replayed_approval": (lambda ctx, cap: frame(cap[0]), BAD_MAC, "query"),
    "random_bytes": (lambda ctx, cap: forge.random_bytes(48, 7), None, "closed"),
    "random_framed_body": (lambda ctx, cap: frame(forge.random_bytes(40, 8)), MALFORMED,
                           "timeout"),
    "huge_length_prefix": (lambda ctx, cap: forge.huge_prefix(approval(ctx)), None, "closed"),
    "truncated_approval": (lambda ctx, cap: forge.truncated(approval(ctx)), None, "closed"),
}
# Field 49 (currency) is not among the fields a 0210 carries, but an answer that does carry it
# must name the request's currency (firmware/iso8583.py matches()): a correctly MACed approval
# in another currency is not taken. (It was, until these tests found it.)
DST_MODES = ("intercepted", "reversed", "found")
PAN, EXPIRY = "4761739001010010", "2812"  # the approving card (tools/host/cards.json)
AMOUNT = 1250


def _case_params(cases):
    return list(cases)


# ---- the deterministic simulator --------------------------------------------------------------


class ForgedWorld(dst_world.World):
    """A DST world without random faults, whose customer pays `plan` (one entry per purchase:
    None for an honest exchange, else a case name) and whose network hands the terminal the
    forged bytes instead of the host's answer to that purchase."""

    def __init__(self, plan, mode):
        super().__init__(1, purchases=len(plan), trace=True)
        self.intensity = 0.0
        self.cut_rate = 0.0
        self.cut_every_ms = 0
        self.paper_rate = 0.0
        self.outage_every_ms = 0
        self.settings["receipt_copies"] = 2
        self.plan = list(plan)
        self.mode = mode
        self.purchase_no = 0
        self.current = None  # the case of the purchase in progress
        self.captured = []  # genuine 0210 frames seen on the wire
        self.forged = {}  # purchase number -> (case, stan, wire)
        self.record = []  # (purchase number, action) as executed
        self.ledger_rows = self.absent = self.host_totals = None

    def _run(self):
        try:
            super()._run()
        finally:
            ledger = self.host.ledger
            self.ledger_rows = ledger.export()
            self.absent = {r[0] for r in ledger.db.execute("SELECT stan FROM absent")}
            self.host_totals = self.checker._host_totals()

    def customer(self):
        if self.healing:
            return
        term = self.term
        if not self.plan:
            if self.settled() and term.mode == core_mod.IDLE:
                self.heal()
            else:
                if term is not None and term.mode == core_mod.MESSAGE:
                    self.dispatch(("key", "#"))
                self.at(200, self.customer)
            return
        if term is None or not term.wants_card():
            if term is not None and term.mode == core_mod.MESSAGE:
                self.dispatch(("key", "#"))
            self.at(200, self.customer)
            return
        self.current = self.plan.pop(0)
        self.purchase_no += 1
        self.purchases_left -= 1
        self.stats["purchases"] += 1
        self.dispatch(("card", PAN, EXPIRY))
        for i, key in enumerate("%d#1234#" % AMOUNT):
            self.at(40 * (i + 1), self.press, key)
        self.at(1000, self.customer)

    def execute(self, action):
        self.record.append((self.purchase_no, self.now, action))
        super().execute(action)

    def host_receive(self, conn, frame_bytes, duplicate):
        mti = bytes(frame_bytes[:4])
        if mti == b"0200" and self.current is not None and not duplicate:
            self.inflight -= 1
            self._forge(conn, frame_bytes)
            return
        if mti == b"0600" and self.mode == "reversed" and not self.healing:
            # The host decides the query; its answer is lost on the way.
            self.inflight -= 1
            self.host._process("0600", frame_bytes)
            self.log("NET", "0610 lost (hostile network)")
            return
        super().host_receive(conn, frame_bytes, duplicate)

    def _forge(self, conn, request):
        case, self.current = self.current, None
        mti, req = spec.decode_frame(request)
        genuine = None
        if self.mode != "intercepted":
            resp_mti, resp_fields, _ = self.host._process(mti, request)
            genuine = self.host.encode_response(resp_mti, resp_fields)
        ctx = {"req_mti": mti, "req": req, "resp_mti": "0210", "genuine": genuine,
               "mac_key": self.host.response_key(req), "host": self.host}
        wire = CASES[case][0](ctx, self.captured)
        self.forged[self.purchase_no] = (case, int(req["11"]), wire)
        # What the runtime would take from these bytes (firmware/app.py `_read_frame`).
        message = fuzz.read_frame_sync(wire)
        self.log("NET", "forged %s: %d bytes, the reader takes %s" % (
            case, len(wire), "nothing" if message is None else "%d" % len(message)))
        if message is None:
            self.at(self.latency(), self.link_event, conn, ("closed", conn["kind"]))
        else:
            self.inflight += 1
            self.at(self.latency(), self.term_receive, conn, message, False)

    def term_receive(self, conn, frame_bytes, duplicate):
        if bytes(frame_bytes[:4]) == b"0210" and frame_bytes not in self.captured:
            self.captured.append(bytes(frame_bytes))  # an eavesdropper's copy
        super().term_receive(conn, frame_bytes, duplicate)


def run_world(plan, mode):
    w = ForgedWorld(plan, mode)
    w.run()
    assert not w.checker.violations, "\n".join(w.lines[-60:] + [str(w.checker.violations)])
    return w


def _check_world(w, case, mode, number):
    """Both sides of the forged purchase `number` of world `w`."""
    name, stan, _ = w.forged[number]
    assert name == case
    _, want_line, after = CASES[case]
    mine = [a for n, _, a in w.record if n == number]
    prints = [a for a in mine if a[0] == "print"]
    shows = [a[1] for a in mine if a[0] == "show"]
    journal = [a[1] for a in mine if a[0] == "journal"]
    sends = [(a[1], a[2][:4]) for a in mine if a[0] == "send"]
    row = [r for r in w.ledger_rows if int(r["stan"]) == stan]
    trace = "\n".join(w.lines[-80:])
    # Nothing the forgery said reached paper or screen.
    assert not any(forge.FORGED_AUTH in a[2] or forge.FORGED_RRN in a[2] for a in prints), trace
    assert (sends[0], sends[1][0]) == (("purchase", b"0200"), "query"), (sends, trace)
    if want_line is not None:
        assert any(want_line in line for line in w.lines), (want_line, trace)
    if mode == "found":
        # The host approved it: the status query learns so and the genuine approval prints.
        assert [r["status"] for r in row] == ["approved"] and row[0]["receipt_confirmed"]
        assert {"r": "ok", "stan": stan, "rrn": row[0]["rrn"],
                "auth": journal[1]["auth"]} == journal[1], journal
        assert len(prints) == w.settings["receipt_copies"]
        assert all(row[0]["rrn"] in a[2] for a in prints)
    else:
        assert not prints, trace
        assert not any("APPROVED" in line for lines in shows for line in lines), shows
        assert not any(r["r"] == "ok" for r in journal), journal
        if mode == "intercepted":
            assert row == [] and "%06d" % stan in w.absent  # never charged; tombstone left
            assert journal[-1] == {"r": "dec", "stan": stan, "rc": "25"}, journal
            assert any("NOT DONE" in lines[0] for lines in shows), shows
        else:
            assert [(r["status"], r["receipt_confirmed"]) for r in row] == [("reversed", False)]
            reason = core_mod.REASON_BAD_MAC if want_line == BAD_MAC else \
                core_mod.REASON_NO_RESPONSE
            assert {"r": "rev", "stan": stan, "reason": reason} in journal, journal
            assert journal[-1] == {"r": "revd", "stan": stan}, journal
            assert any("NOT COMPLETED" in lines[0] for lines in shows), shows
    # How the terminal went on: a query at once on a bad MAC, after its timer otherwise.
    sent = [(t, a[2][:4]) for n, t, a in w.record if n == number and a[0] == "send"]
    waited = sent[1][0] - sent[0][0]
    if after == "timeout":
        assert waited >= w.settings["response_timeout_ms"], (waited, trace)
    else:
        assert waited < w.settings["response_timeout_ms"], (waited, trace)
    # The books agree: nothing open, the terminal's totals are the host's.
    assert not w.term.order and not w.term.saf
    assert w.term.totals() == w.host_totals


@pytest.mark.parametrize("mode", DST_MODES)
@pytest.mark.parametrize("case", _case_params(CASES))
def test_dst_forged_answer_prints_nothing(case, mode):
    # An honest purchase first: the replay needs its approval, and the books start non-empty.
    w = run_world([None, case], mode)
    honest = [a for n, _, a in w.record if n == 1 and a[0] == "print"]
    assert len(honest) == w.settings["receipt_copies"]
    _check_world(w, case, mode, 2)


def test_dst_forged_answers_back_to_back():
    """Every forgery in one batch, one after another: the batch closes with one approval."""
    cases = [c for c in CASES if c != "wrong_currency_good_mac"]
    w = run_world([None] + cases, "intercepted")
    for number, case in enumerate(cases, start=2):
        _check_world(w, case, "intercepted", number)
    assert w.host_totals == (1, AMOUNT)


def test_dst_forged_query_answers_end_in_a_reversal():
    """The attacker also answers the status queries, with forged 0610 approvals (bad MAC):
    the terminal reverses with reason A0 and the host's approval is undone."""
    w = ForgedWorld(["mac_bit_flipped"], "reversed")
    bad = []

    def host_receive(conn, frame_bytes, duplicate, base=w.host_receive):
        if bytes(frame_bytes[:4]) == b"0600" and not w.healing:
            w.inflight -= 1
            mti, req = spec.decode_frame(frame_bytes)
            ctx = {"req": req, "resp_mti": "0610", "mac_key": w.host.response_key(req)}
            forged = flip_mac(approval(ctx))
            bad.append(forged)
            w.inflight += 1
            w.at(w.latency(), w.term_receive, conn, forged, False)
            return
        base(conn, frame_bytes, duplicate)

    w.host_receive = host_receive
    w.run()
    assert not w.checker.violations, w.checker.violations
    assert len(bad) == w.settings["query_attempts"]
    _check_world(w, "mac_bit_flipped", "reversed", 1)
    assert sum(BAD_MAC in line for line in w.lines) == 1 + len(bad)


def test_stale_reversal_reason_after_a_bad_mac():
    """A bad-MAC answer to one purchase, then a purchase that gets no answer at all (truncated
    frame, queries lost): its reversal must give reason 98 (no response), not A0."""
    w = run_world(["mac_bit_flipped", "truncated_approval"], "reversed")
    revs = [a[1] for _, _, a in w.record if a[0] == "journal" and a[1]["r"] == "rev"]
    assert [r["reason"] for r in revs] == ["A0", "98"], revs


# ---- the simulated board ------------------------------------------------------------------------

# A response timer long enough that a query sent "at once" stays well under half of it on a
# loaded machine (seen: 690 ms), and an ignored answer is told from it by the timer.
SIM_CONFIG = {"response_timeout_ms": 4000, "query_timeout_ms": 2500, "query_attempts": 2,
              "query_window_ms": 10000, "retry_base_ms": 200, "retry_max_ms": 1000,
              "message_ms": 300, "receipt_copies": 1}
# Each session: an honest purchase, then its cases. Host mode per case: "intercepted" (default)
# or "reversed" (committed, forged bytes before the genuine answer, query answers dropped).
SIM_SESSIONS = {
    "mac": ["mac_bit_flipped", "mac_missing", "wrong_stan_bad_mac", "wrong_amount_bad_mac",
            "wrong_tid_bad_mac", "wrong_currency_bad_mac", "replayed_approval",
            "truncated_approval"],
    "match": ["wrong_stan_good_mac", "wrong_amount_good_mac", "wrong_tid_good_mac",
              "random_bytes", "random_framed_body", "huge_length_prefix"],
    # Alone: the case that once printed a receipt, kept apart from the others' checks.
    "gap": ["wrong_currency_good_mac"],
}
SIM_REVERSED = {"mac_bit_flipped", "truncated_approval"}
# Of those, the forged bytes precede the genuine answer on the same connection (a truncated
# frame would swallow the genuine one's first bytes: not a truncation any more).
SIM_PRECEDE = {"mac_bit_flipped"}


async def _sim_session(name, cases, out):
    from tools.sim.session import SimSession

    session = SimSession(out / name, config=SIM_CONFIG, host_factory=ForgingHost)
    record = {"cases": {}, "error": None}
    await session.start()
    events = session.events.events
    try:
        await session.wait("idle", 20000)
        for case in [None] + cases:
            start = len(events)
            host = session.host
            reversed_ = case in SIM_REVERSED
            if case is not None:
                captured = [f for m, f in host.sent if m == "0210"]
                host.forge(Forgery(case, lambda ctx, c=case, cap=captured: CASES[c][0](ctx, cap),
                                   commit=reversed_, genuine_after=case in SIM_PRECEDE))
                if reversed_:
                    host.inject({"host": "drop_response", "for": "query", "times": "all"})
            await session.tap(PAN)
            await session.keys("%d#" % AMOUNT)
            await session.keys("1234#")
            await session.wait("idle", 20000)
            if reversed_:
                host.inject({"host": "heal"})
            await session.wait("settled", 20000)
            record["cases"][case or "honest"] = (start, len(events))
        # The terminal's batch totals, from its own screen.
        before = len(events)
        session.board.press("B")
        await asyncio.sleep(0.4)
        record["totals_screen"] = [line for e in events[before:] if e["kind"] == "display"
                                   for line in e["lines"]]
    except Exception as exc:  # noqa: BLE001 - reported by the tests, with the record
        record["error"] = "%s: %s" % (type(exc).__name__, exc)
    finally:
        await session.stop()
    record["events"] = list(events)
    record["dir"] = out / name
    return record


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = tmp_path_factory.mktemp("forged")

    async def both():
        return await asyncio.gather(*[_sim_session(n, c, out) for n, c in SIM_SESSIONS.items()])

    t0 = time.monotonic()
    records = asyncio.run(both())
    runs = dict(zip(SIM_SESSIONS, records))
    for rec in runs.values():
        rec["seconds"] = time.monotonic() - t0
        ledger = json.loads((rec["dir"] / "ledger.json").read_text())
        rec["ledger"] = ledger
        db = sqlite3.connect(str(rec["dir"] / "host.db"))
        rec["absent"] = {r[0] for r in db.execute("SELECT stan FROM absent")}
        db.close()
    return runs


def _sim_slice(sim, case):
    for name, cases in SIM_SESSIONS.items():
        if case in cases:
            rec = sim[name]
            assert rec["error"] is None, rec["error"]
            start, end = rec["cases"][case]
            return rec, rec["events"][start:end]
    raise AssertionError(case)


@pytest.mark.parametrize("case", _case_params(
    [c for cases in SIM_SESSIONS.values() for c in cases]))
def test_sim_forged_answer_prints_nothing(sim, case):
    rec, ev = _sim_slice(sim, case)
    _, want_line, after = CASES[case]
    tx = [e for e in ev if e["kind"] == "host_tx"]
    rx = [e for e in ev if e["kind"] == "host_rx"]
    logs = [e["text"] for e in ev if e["kind"] == "log"]
    stan = tx[0]["stan"]
    assert tx[0]["mti"] == "0200" and tx[1]["mti"] == "0600", tx
    # Terminal: no receipt, APPROVED never on screen, the security event in its log.
    assert not [e for e in ev if e["kind"] == "receipt"], case
    assert not any("APPROVED" in line for e in ev if e["kind"] == "display"
                   for line in e["lines"])
    assert not [e for e in ev if e["kind"] in ("firmware_error", "firmware_exit")]
    if want_line is not None:
        assert any(want_line in line for line in logs), logs
    assert "stan %s approved" % stan not in logs
    # A bad MAC or a failed link: the status query goes at once; an ignored answer: the terminal
    # waits for its response timer (wall-clock times of two processes: margins).
    waited = tx[1]["t_ms"] - tx[0]["t_ms"]
    if after == "timeout":
        assert waited >= 0.8 * SIM_CONFIG["response_timeout_ms"], waited
    else:
        assert waited < 0.5 * SIM_CONFIG["response_timeout_ms"], waited
    # Host: what it recorded for this purchase.
    row = [t for t in rec["ledger"] if t["stan"] == stan]
    if case in SIM_REVERSED:
        # The host approved it and the genuine 0210 followed the forged bytes on the wire, unread.
        assert [(t["status"], t["receipt_confirmed"]) for t in row] == [("reversed", False)]
        reversal = [e for e in tx if e["mti"] == "0400"]
        assert reversal, tx
        request = bytes.fromhex(reversal[0]["hex"])[2:]
        ksn = spec.decode_frame(request)[1]["53"]  # its MAC under its own KSN's key
        fields = spec.decode_msg(request, keys.dukpt_key(ksn, keys.dukpt.MAC_GENERATION))[1]
        if want_line == BAD_MAC:
            assert fields["39"] == "A0"  # the reversal says why: MAC failure
        # (Otherwise it should say 98; after an earlier bad MAC in the same boot it says A0:
        # test_stale_reversal_reason_after_a_bad_mac.)
        assert any("reversal acknowledged" in line for line in logs), logs
    else:
        assert row == [] and stan in rec["absent"], (row, rec["absent"])
        assert [e.get("rc") for e in rx if e["mti"] == "0610"] == ["25"], rx
        assert any("NOT DONE" in e["lines"][0] for e in ev if e["kind"] == "display")


@pytest.mark.parametrize("session", [s for s in SIM_SESSIONS if s != "gap"])
def test_sim_books_agree(sim, session):
    rec = sim[session]
    assert rec["error"] is None, rec["error"]
    from tools.sim.check import check

    assert check(rec["dir"]) == []
    # Exactly the honest purchase was charged and printed, once; its STAN's receipt only.
    approved = [t for t in rec["ledger"] if t["status"] == "approved"]
    assert [(t["amount"], t["receipt_confirmed"]) for t in approved] == [(AMOUNT, True)]
    receipts = [e["text"] for e in rec["events"] if e["kind"] == "receipt"]
    assert len(receipts) == SIM_CONFIG["receipt_copies"]
    assert all(approved[0]["rrn"] in text for text in receipts)
    files = sorted((rec["dir"] / "receipts").glob("*.txt"))
    assert len(files) == len(receipts)
    # The terminal's own batch totals (key B) are the host's.
    screen = " ".join(rec["totals_screen"])
    assert "Approved: 1" in screen and "12.50" in screen, screen
