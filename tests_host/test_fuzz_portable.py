# portable: micropython heapsize=400000
"""A short seeded campaign of tools/fuzz.py (issue 4, malformed input) on CPython and on the
MicroPython unix port, with the same inputs on both: the decoder raises only ValueError and
decodes only well-formed frames, the framing and the runtime's `_read_frame` agree, and the
Terminal never raises and resolves a transaction only on a valid-MAC frame that answers it
(exact approvals accepted, every mismatch, replay, other terminal's or late approval refused).
`make fuzz` runs the long campaign on CPython. The heap is the sim's (the fuzzer's own code and
six terminals at once are no board's load)."""

from tools import fuzz


def _campaign(inputs, seed):
    stats = fuzz.run(inputs, seed)
    report = fuzz.summary(stats, 1)
    assert stats.inputs == inputs
    assert stats.failures() == 0, report
    assert stats.crashes == 0 and stats.false_approvals == 0, report
    assert stats.slowest_ms <= fuzz.MAX_MS, report
    return stats


def test_seeded_campaign_has_no_failures():
    stats = _campaign(2000, 4)
    # Every category and context ran, and the positive controls were accepted.
    for name in fuzz.CATEGORIES:
        assert stats.categories.get(name, 0) > 0, name
    for name in fuzz.CONTEXTS:
        assert stats.contexts.get(name, 0) > 0, name
    for outcome in ("ok", "dec", "revd", "conf", "ignored"):
        assert stats.outcomes.get(outcome, 0) > 0, outcome


def test_exact_approval_is_accepted_and_mismatches_are_not():
    for context in ("wait", "query", "recovery"):
        h = fuzz.Harness(context, 1250)
        mti = "0210" if context == "wait" else "0610"
        for field, value in ((41, "TERM0002"), (11, "%06d" % (h.stan + 1)),
                             (4, "%012d" % 1251), (3, "200000")):
            fields = h.response(mti)
            fields[field] = value
            actions = h.do(("rx", h.encode(mti, fields)))
            assert not [a for a in actions if a[0] in ("print", "journal")], (context, field)
        actions = h.do(("rx", h.encode(mti, h.response(mti), fuzz.OTHER_KEY)))
        assert not [a for a in actions if a[0] in ("print", "journal")], context
        actions = h.do(("rx", h.encode(mti, h.response(mti))))
        assert h.journal[-1] == {"r": "ok", "stan": h.stan, "rrn": "633010000042",
                                 "auth": "A1B2C3"}, context
        assert [a for a in actions if a[0] == "print"], context
        # The same approval again (a replay) prints nothing more.
        h.finish_printing()
        actions = h.do(("rx", h.encode(mti, h.response(mti))))
        assert not [a for a in actions if a[0] == "print" or a[0] == "journal"], context


def test_no_approval_after_the_reversal_was_decided():
    h = fuzz.Harness("reversed", 777)
    for mti in ("0210", "0610"):
        actions = h.do(("rx", h.encode(mti, h.response(mti))))
        assert not [a for a in actions if a[0] in ("print", "journal")], mti
