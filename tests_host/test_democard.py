# portable: micropython
"""The demo card record: round trip, and every kind of damage rejected."""

from drivers import democard


def _rejects(rec):
    try:
        democard.decode(rec)
    except democard.CardFormatError:
        return True
    return False


def test_round_trip():
    for pan in ("4761739001010010", "476173900101", "4761739001010010123"):
        rec = democard.encode(pan, "2812")
        assert len(rec) == democard.RECORD_LEN
        assert democard.decode(rec) == (pan, "2812")


def test_every_single_bit_flip_is_rejected():
    rec = democard.encode("4761739001010010", "2812")
    for i in range(len(rec)):
        for bit in range(8):
            broken = bytearray(rec)
            broken[i] ^= 1 << bit
            assert _rejects(broken), (i, bit)


def test_short_foreign_and_blank_tags_are_rejected():
    rec = democard.encode("4761739001010010", "2812")
    assert _rejects(rec[:20])
    assert _rejects(bytes(24))
    assert _rejects(b"\xff" * 24)
    assert _rejects(b"NDEF" + rec[4:])


def test_bad_input_to_encode():
    for pan, exp in (("123", "2812"), ("47617390010100A0", "2812"), ("4761739001010010", "28")):
        try:
            democard.encode(pan, exp)
        except democard.CardFormatError:
            continue
        raise AssertionError((pan, exp))


def test_poll_watch_lapses_after_a_gap():
    from drivers.watch import PollWatch

    now = [0]
    watch = PollWatch(500, ticks=lambda: now[0])
    assert not watch.lapsed()  # the first poll knows nothing yet
    now[0] = 50
    assert not watch.lapsed()
    now[0] = 551
    assert watch.lapsed()
    now[0] = 600
    assert not watch.lapsed()
