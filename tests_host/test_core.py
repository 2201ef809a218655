# portable: micropython
"""The transaction state machine, driven event by event with a fake clock and host.

Each test checks the order of actions where the safety contract depends on it: journal before
send, approval journaled before the first receipt byte, nothing printed once a reversal is
decided. Runs on CPython (pytest) and on the MicroPython unix port (tests_host/mprun.py).
"""

# core first: compiling it is the peak of this file's heap on MicroPython (200 000 bytes).
from firmware import core  # noqa: I001
from firmware.settings import DEFAULTS

import dukpt_peer
from fakes import Clock

PAN = "4761739001010010"


class Rig:
    """A terminal plus a record of everything it asked the outside world to do."""

    def __init__(self, records=None, **overrides):
        self.settings = dict(DEFAULTS)
        self.settings.update(overrides)
        self.clock = Clock()
        self.t = core.Terminal(self.settings, self.clock, lambda n: bytes(n))
        self.actions = []
        self.journal = []  # transaction records (DUKPT counter reservations only in flash)
        self.flash = []  # every record, as the journal on flash holds them
        self.sent = []  # (kind, mti, fields)
        self.printed = []  # receipt texts
        self.screen = []
        self.timers = {}
        self.do(("boot", records or []))

    def do(self, event):
        actions = self.t.handle(event)
        self.actions += actions
        for a in actions:
            if a[0] == "journal":
                self.flash.append(a[1])
                if a[1]["r"] != "ksn":
                    self.journal.append(a[1])
            elif a[0] == "send":
                mti, fields = dukpt_peer.decode_request(a[2])
                self.sent.append((a[1], mti, fields))
            elif a[0] == "print":
                self.printed.append(a[2])
            elif a[0] == "show":
                self.screen = a[1]
            elif a[0] == "arm":
                self.timers[a[1]] = a[2]
            elif a[0] == "disarm":
                self.timers.pop(a[1], None)
        return actions

    def keys(self, text):
        for ch in text:
            self.do(("key", ch))

    def purchase(self, amount="1250", pin="1234"):
        self.do(("card", PAN, "2812"))
        self.keys(amount + "#")
        self.keys(pin + "#")
        return self.sent[-1]

    def answer(self, request, rc="00", mti=None, key=None, **changes):
        # MACed as the host does (the request's KSN echoed, its MAC_VERIFICATION key); `key`:
        # under that key instead.
        kind, req_mti, f = request
        resp = {3: f[3], 4: f[4], 7: f[7], 11: f[11], 39: rc, 41: f[41]}
        if rc == "00":
            resp[37] = "000000000777"
            resp[38] = "AB1234"
        for name, value in changes.items():
            resp[int(name[1:])] = value
        mti = mti or req_mti[:2] + str(int(req_mti[2]) + 1) + "0"
        return self.do(("rx", dukpt_peer.encode_answer(mti, resp, f.get(53), key)))

    def finish_printing(self):
        while self.t.printing:
            self.do(("printed", 0))

    def screen_text(self):
        return "\n".join(self.screen)


def kinds(actions):
    return [a[0] for a in actions]


def test_approved_purchase_journals_before_send_and_before_print():
    rig = Rig()
    rig.do(("card", PAN, "2812"))
    rig.keys("1250#1234")
    actions = rig.do(("key", "#"))
    k = kinds(actions)
    assert k.index("journal") < k.index("send")
    # The DUKPT counter's reservation, then the request, both on flash before it leaves.
    assert [a[1]["r"] for a in actions if a[0] == "journal"] == ["ksn", "send"]
    kind, mti, f = rig.sent[-1]
    assert (kind, mti, f[4], f[2], f[11]) == ("purchase", "0200", "000000001250", PAN, "000001")
    assert len(f[52]) == 16
    assert bytes(rig.t.pin_buf) == bytes(len(rig.t.pin_buf)), "clear PIN left in memory"
    actions = rig.answer(rig.sent[-1])
    k = kinds(actions)
    assert k.index("journal") < k.index("print")
    assert actions[k.index("journal")][1] == {"r": "ok", "stan": 1, "rrn": "000000000777",
                                              "auth": "AB1234"}
    rig.finish_printing()
    assert len(rig.printed) == 2
    for text in rig.printed:
        assert "TRACE NO" in text and "000001" in text and "APPROVED" in text
        assert "EUR 12.50" in text and "0010" in text and PAN not in text
        assert "REPRINT" not in text
    assert "MERCHANT COPY" in rig.printed[0] and "CUSTOMER COPY" in rig.printed[1]
    assert [r["r"] for r in rig.journal] == ["send", "ok", "pr", "pr"]
    advice = rig.sent[-1]
    assert advice[:2] == ("advice", "0220") and advice[2][37] == "000000000777"
    rig.answer(advice)
    assert rig.journal[-1] == {"r": "conf", "stan": 1}
    assert rig.t.status()["queued"] == 0
    assert rig.t.totals() == (1, 1250)


def test_decline_shows_reason_and_prints_nothing():
    rig = Rig()
    rig.answer(rig.purchase(), rc="51")
    assert rig.printed == []
    assert "Insufficient" in rig.screen_text()
    assert rig.journal[-1] == {"r": "dec", "stan": 1, "rc": "51"}
    rig.do(("timer", "msg"))
    assert rig.t.mode == core.IDLE and rig.t.wants_card()
    assert rig.t.totals() == (0, 0)


def test_timeout_then_status_query_finds_the_approval():
    rig = Rig()
    request = rig.purchase()
    rig.do(("timer", "resp"))
    query = rig.sent[-1]
    assert query[:2] == ("query", "0600")
    assert query[2][90].startswith("0200000001") and query[2][11] == "000001"
    rig.answer(query)
    rig.finish_printing()
    assert len(rig.printed) == 2 and "REPRINT" not in rig.printed[0]
    # The original response, arriving now, changes nothing.
    rig.answer(request)
    assert len(rig.printed) == 2


def test_query_no_record_means_not_charged():
    rig = Rig()
    rig.purchase()
    rig.do(("timer", "resp"))
    rig.answer(rig.sent[-1], rc="25")
    assert rig.printed == [] and "Not charged" in rig.screen_text()
    assert rig.journal[-1] == {"r": "dec", "stan": 1, "rc": "25"}
    assert rig.t.txns == {} and rig.t.order == [], "resolved transactions leave memory"


def test_unknown_after_queries_is_reversed_and_late_approval_ignored():
    rig = Rig(query_attempts=2)
    request = rig.purchase()
    rig.do(("timer", "resp"))
    rig.do(("timer", "query"))
    assert [s[1] for s in rig.sent] == ["0200", "0600", "0600"]
    rig.do(("timer", "query"))
    assert rig.journal[-1] == {"r": "rev", "stan": 1, "reason": "98"}
    reversal = rig.sent[-1]
    assert reversal[:2] == ("reversal", "0400") and reversal[2][39] == "98"
    assert "Not charged" in rig.screen_text()
    rig.answer(request)  # late approval: S3
    assert rig.printed == []
    assert not rig.t.wants_card(), "a new purchase must wait for the reversal"
    # No acknowledgement: retried with backoff as 0401, never dropped.
    for attempt in range(6):
        rig.do(("timer", "saf"))
        delay = rig.timers["saf_retry"]
        assert delay == min(DEFAULTS["retry_base_ms"] << attempt, DEFAULTS["retry_max_ms"])
        rig.do(("timer", "saf_retry"))
        assert rig.sent[-1][1] == "0401"
    rig.answer(rig.sent[-1], mti="0410", rc="00")
    assert rig.journal[-1] == {"r": "revd", "stan": 1}
    rig.do(("timer", "msg"))
    assert rig.t.wants_card()
    assert rig.printed == []


def test_bad_mac_counts_as_no_response():
    rig = Rig(query_attempts=1)
    request = rig.purchase()
    rig.answer(request, key=b"\x01" * 16)
    assert rig.sent[-1][1] == "0600"
    rig.answer(rig.sent[-1], key=b"\x01" * 16)
    rig.do(("timer", "query"))
    assert rig.journal[-1] == {"r": "rev", "stan": 1, "reason": "A0"}
    assert rig.printed == []


def test_mismatched_response_is_ignored():
    rig = Rig()
    request = rig.purchase()
    rig.answer(request, f4="000000009999")
    rig.answer(request, f41="OTHER001")
    assert rig.printed == [] and rig.t.mode == core.WAIT
    rig.answer(request)
    assert len(rig.printed) == 1


def test_connection_refused_means_not_sent():
    rig = Rig()
    rig.purchase()
    rig.do(("unsent", "purchase"))
    assert rig.journal[-1] == {"r": "unsent", "stan": 1}
    assert "unreachable" in rig.screen_text()
    assert rig.t.status()["queued"] == 0


def test_amount_entry_clear_cancel_limit_and_pin_rules():
    rig = Rig(max_amount=5000)
    rig.do(("card", PAN, "2812"))
    rig.keys("0012")
    assert rig.t.digits == "12"
    rig.keys("D#")
    assert "Enter an amount" in rig.screen_text()
    rig.keys("6000#")
    assert "Over max amount" in rig.screen_text() and rig.t.mode == core.AMOUNT
    rig.keys("D500#12#")
    assert "PIN too short" in rig.screen_text()
    assert "12" not in "".join(rig.screen[3:5])
    rig.keys("*")
    assert "CANCELLED" in rig.screen_text() and rig.sent == [] and rig.journal == []
    assert bytes(rig.t.pin_buf) == bytes(len(rig.t.pin_buf))


def test_entry_timeout_cancels():
    rig = Rig()
    rig.do(("card", PAN, "2812"))
    rig.do(("timer", "entry"))
    assert rig.t.mode == core.MESSAGE and rig.sent == []


def test_card_with_garbage_is_refused():
    rig = Rig()
    rig.do(("card", "12AB", "2812"))
    assert "Card not read" in rig.screen_text() and rig.t.mode == core.MESSAGE


def test_a_card_not_read_is_said_and_logged():
    rig = Rig()
    del rig.t.log[:]
    rig.do(("unread", "status 6A83"))
    assert rig.screen[0] == "Card not read" and "Try again" in rig.screen
    assert rig.t.mode == core.MESSAGE and rig.t.log == ["card not read: status 6A83"]
    rig.do(("timer", "msg"))
    assert rig.t.mode == core.IDLE
    # Mid-purchase (a second card swiped past the reader) it changes nothing.
    rig.do(("card", PAN, "2812"))
    del rig.t.log[:]
    rig.do(("unread", "not a demo card"))
    assert rig.t.mode == core.AMOUNT and rig.t.log == []


def _records_until(n):
    rig = Rig()
    rig.answer(rig.purchase())
    rig.finish_printing()
    out = []
    for rec in rig.flash:
        if rec["r"] != "ksn":
            if n == 0:
                break
            n -= 1
        out.append(rec)
    return out


def test_power_cut_after_send_recovers_by_query():
    rig = Rig(_records_until(1))
    assert rig.t.status()["recovering"] == 1 and not rig.t.wants_card()
    query = rig.sent[-1]
    assert query[:2] == ("query", "0600") and query[2][11] == "000001"
    rig.answer(query)
    rig.finish_printing()
    assert len(rig.printed) == 2 and "REPRINT" not in rig.printed[0]
    assert rig.t.next_stan == 2


def test_power_cut_after_send_unknown_is_reversed():
    rig = Rig(_records_until(1), query_attempts=1)
    rig.do(("timer", "query"))
    assert rig.journal[-1]["r"] == "rev" and rig.sent[-1][1] == "0400"
    assert rig.printed == []


def test_power_cut_after_approval_reprints_the_copy_that_may_be_cut():
    rig = Rig(_records_until(2))
    rig.finish_printing()
    assert len(rig.printed) == 2
    assert "REPRINT" in rig.printed[0] and "REPRINT" not in rig.printed[1]


def test_power_cut_after_first_copy_reprints_only_the_second():
    rig = Rig(_records_until(3))
    rig.finish_printing()
    assert len(rig.printed) == 1 and "REPRINT" in rig.printed[0]
    assert "CUSTOMER COPY" in rig.printed[0]


def test_power_cut_after_printing_sends_the_confirmation():
    rig = Rig(_records_until(4))
    assert rig.printed == [] and rig.sent[-1][1] == "0220"
    assert rig.t.wants_card()


def test_paper_out_prints_again_marked_reprint():
    rig = Rig()
    rig.answer(rig.purchase())
    rig.do(("print_failed", 1, True))
    assert "PAPER OUT" in rig.screen_text() and not rig.t.wants_card()
    rig.do(("paper", "in"))
    rig.finish_printing()
    assert "REPRINT" in rig.printed[1] and "MERCHANT COPY" in rig.printed[1]
    assert "REPRINT" not in rig.printed[2]
    assert [r["r"] for r in rig.journal] == ["send", "ok", "pr", "pr"]


def test_paper_out_before_printing_needs_no_reprint_mark():
    rig = Rig()
    rig.answer(rig.purchase())
    rig.do(("print_failed", 1, False))
    rig.do(("paper", "in"))
    rig.finish_printing()
    assert len(rig.printed) == 3 and "REPRINT" not in rig.printed[1]


def test_snapshot_rebuilds_the_same_obligations_and_totals():
    rig = Rig(query_attempts=1)
    rig.answer(rig.purchase())
    rig.finish_printing()
    rig.answer(rig.sent[-1])  # confirmed
    rig.do(("timer", "msg"))
    rig.answer(rig.purchase(amount="700"))
    rig.finish_printing()  # approved, confirmation unsent
    rig.do(("timer", "msg"))
    rig.purchase(amount="300")
    rig.do(("timer", "resp"))
    rig.do(("timer", "query"))  # reversal pending
    snap = rig.t.snapshot()
    again = Rig(snap, query_attempts=1)
    assert again.t.totals() == rig.t.totals() == (2, 1950)
    assert again.t.next_stan == 4
    assert [e[0] for e in again.t.saf] == ["adv", "rev"]
    assert again.printed == []


def test_snapshot_keeps_the_next_stan_past_a_newer_closed_purchase():
    # An approval whose confirmation is still owed (open), then a newer purchase declined
    # (closed, gone from memory): the snapshot holds the older one's "send" record, which must
    # not take the next STAN back to the newer one's (found by the DST, seed 1507).
    rig = Rig()
    rig.answer(rig.purchase())
    rig.finish_printing()  # approved, confirmation unsent
    rig.do(("timer", "msg"))
    rig.answer(rig.purchase(amount="300"), rc="05")
    assert rig.t.next_stan == 3 and [e[0] for e in rig.t.saf] == ["adv"]
    again = Rig(rig.t.snapshot())
    assert again.t.next_stan == 3
    assert again.purchase(amount="100")[2][11] == "000003"


def test_stan_unique_across_many_purchases():
    rig = Rig()
    stans = []
    for _ in range(5):
        request = rig.purchase(amount="100")
        stans.append(request[2][11])
        rig.answer(request, rc="05")
        rig.do(("timer", "msg"))
    assert stans == ["000001", "000002", "000003", "000004", "000005"]


def test_query_answer_that_says_nothing_is_no_answer():
    # 63: the host refused the query itself (its MAC failed on the way); not a decline.
    rig = Rig(query_attempts=2)
    rig.purchase()
    rig.do(("timer", "resp"))
    rig.answer(rig.sent[-1], rc="63")
    assert rig.t.mode == core.QUERY and rig.journal[-1]["r"] == "send"
    rig.do(("timer", "query"))
    rig.answer(rig.sent[-1])
    rig.finish_printing()
    assert len(rig.printed) == 2 and rig.t.totals() == (1, 1250)


def test_refused_advice_or_reversal_is_retried_not_taken_as_done():
    rig = Rig()
    rig.answer(rig.purchase())
    rig.finish_printing()
    rig.answer(rig.sent[-1], rc="63")  # the 0220 was refused: not confirmed
    assert rig.journal[-1] == {"r": "pr", "stan": 1, "copy": 2}
    assert "saf_retry" in rig.timers
    rig.do(("timer", "saf_retry"))
    assert rig.sent[-1][1] == "0220"
    rig.answer(rig.sent[-1])
    assert rig.journal[-1] == {"r": "conf", "stan": 1}
    rig = Rig(query_attempts=1)
    rig.purchase()
    rig.do(("timer", "resp"))
    rig.do(("timer", "query"))
    rig.answer(rig.sent[-1], mti="0410", rc="96")
    assert rig.journal[-1]["r"] == "rev" and rig.t.status()["reversals"] == 1
