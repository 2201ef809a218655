"""What the message keys cost a purchase, run ON MicroPython (the unix port):

    micropython -X heapsize=200000 tools/bench/mp_msgkeys.py

One approved purchase through the real core (`firmware.core.Terminal`): card, amount, PIN, the
0200 sent, its 0210 taken, two receipts, the 0220 advice sent and its 0230 taken; with
key_scheme static and with dukpt (the test initial key, low counters: a few one-bits, so a few
AES operations per key). The host's answers are made before the clock starts. Prints the time
the core spends per purchase, the heap it allocates per purchase (garbage included: collection
disabled) and its live heap (the Terminal with its keys, after boot).
"""

import gc
import sys
import time

sys.path.insert(0, "")
sys.path.insert(0, "tests_host")

import dukpt_peer  # noqa: E402

from firmware import core  # noqa: E402
from firmware.settings import DEFAULTS  # noqa: E402

PAN = "4761739001010010"
ROUNDS = 5


class Clock:
    def now(self):
        return (2026, 11, 26, 10, 15, 0)

    def ticks_ms(self):
        return 0


def answer(mti, stan, ksn, static):
    fields = {3: "000000", 4: "000000001250", 7: "1126101500", 11: "%06d" % stan, 39: "00",
              41: DEFAULTS["terminal_id"]}
    if mti == "0210":
        fields[37] = "000000000777"
        fields[38] = "AB1234"
    return dukpt_peer.encode_answer(mti, fields, None if static else ksn)


def events(n, static):
    """The events of purchase n (1-based): requests take counters 2n-1 (0200), 2n (0220)."""
    ksn = None if static else dukpt_peer.ksn(2 * n - 1)
    adv = None if static else dukpt_peer.ksn(2 * n)
    out = [("card", PAN, "2812")] + [("key", k) for k in "1250#1234#"]
    out += [("rx", answer("0210", n, ksn, static)), ("printed", 1), ("printed", 2)]
    out += [("rx", answer("0230", n, adv, static)), ("timer", "msg")]
    return out


def run(static):
    settings = dict(DEFAULTS)
    settings["key_scheme"] = "static" if static else "dukpt"
    settings["receipt_copies"] = 2
    plans = [events(n, static) for n in range(1, ROUNDS + 1)]
    gc.collect()
    before = gc.mem_alloc()
    t = core.Terminal(settings, Clock(), lambda n: bytes(n))
    t.handle(("boot", []))
    del t.log[:]
    gc.collect()
    live = gc.mem_alloc() - before
    took = alloc = 0
    for plan in plans:
        gc.collect()
        gc.disable()
        a = gc.mem_alloc()
        start = time.ticks_us()
        for event in plan:
            t.handle(event)
        took += time.ticks_diff(time.ticks_us(), start)
        alloc += gc.mem_alloc() - a
        gc.enable()
        del t.log[:]
        assert not t.order and not t.saf, "purchase not closed"
    assert t.totals() == (ROUNDS, ROUNDS * 1250)
    print("purchase through the core, %-6s %8d us %7d bytes allocated, Terminal live %6d" % (
        "static" if static else "dukpt", took // ROUNDS, alloc // ROUNDS, live))
    return took // ROUNDS, alloc // ROUNDS, live


s = run(True)
d = run(False)
print("DUKPT costs per purchase                 +%d us, +%d bytes allocated, +%d live" % (
    d[0] - s[0], d[1] - s[1], d[2] - s[2]))
