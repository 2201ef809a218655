# portable: micropython
"""AES DUKPT keys in use at the terminal (firmware/msgkeys.py, firmware/core.py): the KSN of
every request (field 53), the counter reservation that survives power cuts, the keys the host
derives from the BDK (tests_host/dukpt_peer.py, firmware/dukpt.py `derive`), and which answers
the terminal takes. Runs on CPython and on the MicroPython unix port; the host simulator's side
(replays, unknown BDK, static keys refused) is test_dukpt_host.py.
"""

# core first: compiling it is the peak of this file's heap on MicroPython.
from firmware import core  # noqa: I001
from firmware import dukpt, iso8583, msgkeys
from firmware.settings import DEFAULTS

import dukpt_peer
import pinblock_peer
from fakes import Clock

PAN = "4761739001010010"
IKID = DEFAULTS["initial_key_id"]


class Rig:
    """A terminal; `flash` every journal record, `sent` (kind, mti, fields) of each request,
    decoded and MAC-checked as the host does (under the MAC_GENERATION key of its KSN)."""

    def __init__(self, records=(), **overrides):
        self.settings = dict(DEFAULTS)
        self.settings.update(overrides)
        self.t = core.Terminal(self.settings, Clock(), lambda n: bytes(n))
        self.flash = []
        self.sent = []
        self.printed = []
        self.screen = []
        self.actions = []
        self.do(("boot", list(records)))

    def do(self, event):
        actions = self.t.handle(event)
        self.actions = actions
        for a in actions:
            if a[0] == "journal":
                self.flash.append(a[1])
            elif a[0] == "send":
                mti, fields = dukpt_peer.decode_request(a[2])
                self.sent.append((a[1], mti, fields))
            elif a[0] == "print":
                self.printed.append(a[2])
            elif a[0] == "show":
                self.screen = a[1]
        return actions

    def purchase(self, pin="1234"):
        self.do(("card", PAN, "2812"))
        for ch in "1250#" + pin + "#":
            self.do(("key", ch))
        return self.sent[-1]

    def answer(self, request, rc="00", ksn="same", key=None, mti=None):
        """The host's answer to `request`; `ksn`: the KSN it carries ("same": the request's),
        `key`: the MAC key (default: the MAC_VERIFICATION key of `ksn`)."""
        kind, req_mti, f = request
        fields = {3: f[3], 4: f[4], 7: f[7], 11: f[11], 39: rc, 41: f[41]}
        if rc == "00":
            fields[37] = "000000000777"
            fields[38] = "AB1234"
        if ksn == "same":
            ksn = f.get(53)
        mti = mti or iso8583.answer_mti(req_mti)
        return self.do(("rx", dukpt_peer.encode_answer(mti, fields, ksn, key)))

    def finish_printing(self):
        while self.t.printing:
            self.do(("printed", 0))

    def counters(self):
        return [dukpt_peer.counter(s[2][53]) for s in self.sent]


def _journal_kinds(actions):
    return [a[1]["r"] for a in actions if a[0] == "journal"]


def _reservation(upto):
    return {"r": "ksn", "id": IKID, "upto": upto}


def test_every_request_takes_the_next_counter():
    rig = Rig()
    request = rig.purchase()
    assert request[1] == "0200" and request[2][53] == dukpt_peer.ksn(1)
    rig.do(("timer", "resp"))  # no answer: a status query, under a KSN of its own
    rig.answer(rig.sent[-1])
    rig.finish_printing()
    rig.answer(rig.sent[-1])  # the advice's acknowledgement
    assert [s[1] for s in rig.sent] == ["0200", "0600", "0220"]
    assert rig.counters() == [1, 2, 3]
    for _, _, fields in rig.sent:
        assert fields[53][:8] == dukpt_peer.ksn(0)[:8]  # the initial key ID, in every KSN
    assert rig.t.totals() == (1, 1250) and not rig.t.saf


def test_counters_with_more_than_sixteen_one_bits_are_skipped():
    # 0x0001FFFE has 16 one-bits, 0x0001FFFF has 17: never used, the next is 0x00020000.
    rig = Rig([_reservation(0x0001FFFD)])
    rig.answer(rig.purchase())
    rig.finish_printing()
    assert rig.counters() == [0x0001FFFE, 0x00020000]
    for c in rig.counters():
        assert dukpt.one_bits(c) <= 16


def test_reservation_on_flash_before_the_request_leaves():
    rig = Rig()
    rig.do(("card", PAN, "2812"))
    for ch in "1250#1234":
        rig.do(("key", ch))
    actions = rig.do(("key", "#"))
    kinds = [a[0] for a in actions]
    assert kinds.index("journal") < kinds.index("send")
    assert _journal_kinds(actions) == ["ksn", "send"]
    assert rig.flash[0] == _reservation(msgkeys.RESERVE)
    # Within the reservation no new record; past it, a new one, again before the request.
    rig.answer(rig.sent[-1])
    rig.finish_printing()
    rig.t.keys.last = msgkeys.RESERVE  # as if every reserved counter had been used
    rig.answer(rig.sent[-1])  # advice acknowledged; the next purchase needs counter 33
    rig.do(("timer", "msg"))
    rig.do(("card", PAN, "2812"))
    for ch in "1250#1234":
        rig.do(("key", ch))
    actions = rig.do(("key", "#"))
    assert _journal_kinds(actions) == ["ksn", "send"]
    assert actions[[a[0] for a in actions].index("journal")][1] == _reservation(
        2 * msgkeys.RESERVE)
    assert rig.counters()[-1] == msgkeys.RESERVE + 1


def test_power_cut_never_reuses_a_counter():
    rig = Rig()
    rig.purchase()  # counter 1 went out; power cut before any answer
    again = Rig(rig.flash)
    # Boot recovery asks the host about it, under a counter past the whole reservation.
    assert again.sent[-1][1] == "0600"
    assert again.counters() == [msgkeys.RESERVE + 1]
    assert again.flash[0] == _reservation(2 * msgkeys.RESERVE)  # reserved before it left
    # A cut right after that reservation: resumes past it, whatever was used of it.
    third = Rig(rig.flash + again.flash)
    assert third.counters() == [2 * msgkeys.RESERVE + 1]
    used = set(rig.counters() + again.counters() + third.counters())
    assert len(used) == 3


def test_compaction_keeps_the_reservation():
    rig = Rig()
    rig.answer(rig.purchase())
    rig.finish_printing()
    rig.answer(rig.sent[-1])
    snap = rig.t.snapshot()
    assert snap[0]["r"] == "batch" and _reservation(msgkeys.RESERVE) in snap
    again = Rig(snap)
    again.answer(again.purchase())
    assert again.counters()[0] == msgkeys.RESERVE + 1
    # A reservation for another initial key ID (a key since replaced) does not hold this one.
    other = Rig([{"r": "ksn", "id": "FFFF000011112222", "upto": 500}])
    assert other.purchase()[2][53] == dukpt_peer.ksn(1)


def test_host_and_terminal_derive_the_same_keys():
    rig = Rig()
    kind, mti, fields = rig.purchase(pin="4321")  # decoded: its MAC verified at the "host"
    ksn = fields[53]
    # The PIN block deciphers under the PIN key the host derives from the BDK, and not under
    # the static PIN key or another counter's.
    pin_key = dukpt_peer.key(ksn, dukpt.PIN_ENCRYPTION)
    assert pinblock_peer.decipher(pin_key, fields[52], PAN) == "4321"
    for wrong in (dukpt_peer.STATIC_PIN_KEY, dukpt_peer.key(dukpt_peer.ksn(2),
                                                             dukpt.PIN_ENCRYPTION)):
        try:
            assert pinblock_peer.decipher(wrong, fields[52], PAN) != "4321"
        except ValueError:
            pass
    # The request's MAC verifies under the host's MAC_GENERATION key and no other.
    frame = [a[2] for a in rig.actions if a[0] == "send"][0]
    for usage in (dukpt.MAC_VERIFICATION, dukpt.PIN_ENCRYPTION):
        try:
            iso8583.decode(frame, dukpt_peer.key(ksn, usage))
            raise AssertionError("MAC verified under usage %04X" % usage)
        except iso8583.MacError:
            pass
    # And the answer MACed under the host's MAC_VERIFICATION key is taken.
    rig.answer(rig.sent[-1])
    rig.finish_printing()
    assert len(rig.printed) == 2 and rig.flash[-1]["r"] == "pr"


def _no_receipt(rig):
    assert rig.printed == []
    assert "ok" not in [r["r"] for r in rig.flash]


def test_answer_under_another_key_or_ksn_is_no_answer():
    # Each forgery answers the purchase: none prints, each is logged as a security event and
    # treated as no answer (the status query goes at once, as for a bad MAC).
    request = None
    forgeries = (
        ("the right KSN, MACed under another KSN's key", "same",
         lambda ksn: dukpt_peer.key(dukpt_peer.ksn(2), dukpt.MAC_VERIFICATION)),
        ("the right KSN, MACed under its request key", "same",
         lambda ksn: dukpt_peer.key(ksn, dukpt.MAC_GENERATION)),
        ("a KSN the terminal did not send, correctly MACed", dukpt_peer.ksn(5), None),
        ("another terminal's KSN, correctly MACed", dukpt_peer.ksn(1, "1234567800000002"),
         None),
        ("no KSN, the static key", None, None),
    )
    for name, ksn, key in forgeries:
        rig = Rig()
        request = rig.purchase()
        if key is not None:
            key = key(request[2][53])
        rig.answer(request, ksn=ksn, key=key)
        _no_receipt(rig)
        assert rig.sent[-1][1] == "0600", name
        assert [line for line in rig.t.log if line.startswith("security:")], name
        # The genuine answer, under the request's own KSN, is still taken afterwards.
        rig.answer(request)
        rig.finish_printing()
        assert len(rig.printed) == 2, name


def test_refusal_of_a_replayed_copy_is_no_answer():
    # The network duplicated the purchase: the host decided the first copy and refused the
    # second (its KSN used, 63). The refusal, correctly MACed, says nothing of the purchase.
    rig = Rig()
    request = rig.purchase()
    rig.answer(request, rc="63")
    _no_receipt(rig)
    assert "dec" not in [r["r"] for r in rig.flash]
    assert rig.sent[-1][1] == "0600" and rig.t.mode == core.QUERY
    rig.answer(rig.sent[-1])  # the host's record: approved
    rig.finish_printing()
    assert len(rig.printed) == 2


def test_duplicate_94_is_no_answer():
    # Static keys: a duplicated copy of the purchase reaches the ledger second and is declined
    # 94 (its STAN is taken). The terminal never sends a STAN twice: 94 means another copy was
    # decided, maybe charged. No answer, then: the query finds the original's outcome.
    for scheme in ("static", "dukpt"):
        rig = Rig(key_scheme=scheme)
        rig.answer(rig.purchase(), rc="94")
        _no_receipt(rig)
        assert "dec" not in [r["r"] for r in rig.flash], scheme
        assert rig.sent[-1][1] == "0600", scheme
        rig.answer(rig.sent[-1])
        rig.finish_printing()
        assert len(rig.printed) == 2, scheme


def test_query_answer_is_checked_under_the_query_ksn():
    rig = Rig(query_attempts=2)
    purchase = rig.purchase()
    rig.do(("timer", "resp"))
    first = rig.sent[-1]
    # A 0610 under the purchase's KSN (a request of another kind) is no answer.
    rig.answer(first, ksn=purchase[2][53], mti="0610")
    _no_receipt(rig)
    rig.do(("timer", "query"))
    second = rig.sent[-1]
    assert second[1] == "0600" and rig.counters() == [1, 2, 3]
    # The first query's answer, now late: not the latest query's KSN.
    rig.answer(first)
    _no_receipt(rig)
    rig.answer(second)
    rig.finish_printing()
    assert len(rig.printed) == 2
    assert [line for line in rig.t.log if "security:" in line]


def test_reversal_and_advice_answers_under_their_own_ksn():
    rig = Rig(query_attempts=1)
    rig.purchase()
    rig.do(("timer", "resp"))
    rig.do(("timer", "query"))
    reversal = rig.sent[-1]
    assert reversal[1] == "0400" and rig.flash[-1]["r"] == "rev"
    rig.answer(reversal, ksn=rig.sent[-2][2][53], mti="0410")  # the query's KSN: no
    assert rig.flash[-1]["r"] == "rev"
    rig.answer(reversal)
    assert rig.flash[-1] == {"r": "revd", "stan": 1}


def test_purchase_limit_leaves_1024_counters():
    c = msgkeys.PURCHASE_LIMIT
    for _ in range(1024):
        c = dukpt.next_counter(c)
    assert c == 0xFFFF0000
    try:
        dukpt.next_counter(c)
        raise AssertionError("a counter after the last")
    except dukpt.CounterExhausted:
        pass


def test_keys_used_up_refuses_new_purchases():
    rig = Rig([_reservation(msgkeys.PURCHASE_LIMIT)])
    assert rig.t.wants_card()
    rig.do(("card", PAN, "2812"))
    assert rig.screen[:3] == ["Keys used up", "", "Call support"] or (
        "Keys used up" in rig.screen and "Call support" in rig.screen), rig.screen
    assert rig.sent == [] and rig.t.mode == core.MESSAGE
    assert [line for line in rig.t.log if "counter exhausted" in line]
    # Just below the limit: the last purchase goes.
    ok = Rig([_reservation(msgkeys.PURCHASE_LIMIT - 1)])
    assert dukpt_peer.counter(ok.purchase()[2][53]) == msgkeys.PURCHASE_LIMIT


def test_follow_ups_go_past_the_purchase_limit_until_the_last_counter():
    sending = {"r": "send", "stan": 7, "batch": 1, "amt": 500, "l4": "0010",
               "t": [2026, 11, 26, 10, 0, 0], "f7": "1126100000"}
    rig = Rig([_reservation(msgkeys.PURCHASE_LIMIT), sending])
    assert rig.sent[-1][1] == "0600"  # the recovery query still goes
    assert dukpt_peer.counter(rig.sent[-1][2][53]) > msgkeys.PURCHASE_LIMIT
    # With no counter left at all, nothing goes and the terminal says why in its log.
    last = Rig([_reservation(0xFFFF0000), sending])
    assert last.sent == []
    assert [line for line in last.t.log if "counter exhausted" in line]


def test_static_scheme_sends_no_ksn():
    rig = Rig(key_scheme="static")
    kind, mti, fields = rig.purchase()  # decoded under the static MAC key
    assert 53 not in fields
    assert pinblock_peer.decipher(dukpt_peer.STATIC_PIN_KEY, fields[52], PAN) == "1234"
    assert "ksn" not in [r["r"] for r in rig.flash]
    rig.answer(rig.sent[-1])  # static key, no KSN
    rig.finish_printing()
    assert len(rig.printed) == 2


def test_decode_zeroes_the_resolved_working_key():
    key = dukpt_peer.key(dukpt_peer.ksn(1), dukpt.MAC_VERIFICATION)
    frame = iso8583.encode("0210", {3: "000000", 4: "000000001250", 11: "000001",
                                    39: "00", 41: "TERM0001", 53: dukpt_peer.ksn(1)}, key)
    given = []

    def resolver(mti, fields):
        given.append(bytearray(key))
        return given[-1]

    mti, fields = iso8583.decode(frame, resolver)
    assert fields[53] == dukpt_peer.ksn(1) and given[0] == bytearray(16)
    try:
        iso8583.decode(frame, lambda mti, fields: None)
        raise AssertionError("no key, yet decoded")
    except iso8583.MacError:
        pass
