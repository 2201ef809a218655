# portable: micropython
"""The SNTP client (firmware/sntp.py) against a fake UDP socket: a valid reply, and each kind of
reply RFC 4330 section 5 says to throw away; the epoch conversion and the local time the
receipts show. (test_ntp_server.py does a real round trip against tools/host/ntp.py.)"""

import asyncio
import struct

from fakes import VirtualTime

from firmware import app, sntp

T = 1767225600  # 2026-01-01 00:00:00 UTC


def server_reply(request, *, first=0x24, stratum=2, refid=b"GPS\x00", unix=T, fraction=0,
                 originate=None):
    """What a server sends, built by hand from RFC 4330's layout (independent of the code)."""
    seconds = (unix + 2208988800) & 0xFFFFFFFF
    return (bytes([first, stratum, 6, 0xEC]) + bytes(8) + refid + bytes(8)
            + (bytes(request[40:48]) if originate is None else originate)
            + struct.pack(">II", seconds, 0) + struct.pack(">II", seconds, fraction))


class FakeSocket:
    """Non-blocking UDP socket: `replies(request)` gives the datagrams that arrive after
    `wait_polls` empty polls."""

    def __init__(self, replies, wait_polls=2):
        self.replies = replies
        self.wait_polls = wait_polls
        self.queue = None
        self.sent = []
        self.blocking = True

    def setblocking(self, flag):
        self.blocking = flag

    def sendto(self, data, addr):
        self.sent.append((bytes(data), addr))

    def recvfrom(self, n):
        if self.wait_polls > 0:
            self.wait_polls -= 1
            raise OSError(11)  # EAGAIN
        if self.queue is None:
            self.queue = list(self.replies(self.sent[-1][0]))
        if not self.queue:
            raise OSError(11)
        return self.queue.pop(0)[:n], ("127.0.0.1", 123)

    def close(self):
        pass


def _query(replies, wait_polls=2, timeout_ms=1000):
    t = VirtualTime()
    sock = FakeSocket(replies, wait_polls)
    result = asyncio.run(sntp.query("127.0.0.1", 123, timeout_ms=timeout_ms, ticks_ms=t.ticks_ms,
                                    ticks_diff=t.ticks_diff, sleep_ms=t.sleep_ms, sock=sock))
    return result, sock


def _error(reply_options, wait_polls=0):
    try:
        _query(lambda req: [server_reply(req, **reply_options)], wait_polls)
    except sntp.SNTPError as e:
        return str(e)
    except OSError as e:
        return "timeout" if e.args and e.args[0] == 110 else repr(e)
    raise AssertionError("accepted %r" % (reply_options,))


def test_a_valid_reply_gives_unix_seconds_and_the_round_trip():
    (unix, rtt), sock = _query(lambda req: [server_reply(req, fraction=0x40000000)])
    assert rtt == 20  # two empty polls of 10 ms
    assert unix == T  # 250 ms + half of 20 ms rounds down to the second
    request, addr = sock.sent[0]
    assert len(request) == 48 and request[0] == 0x23  # LI 0, version 4, client
    assert request[40:48] != bytes(8)  # the nonce the server must echo
    assert not sock.blocking
    (unix, _), _ = _query(lambda req: [server_reply(req, fraction=0xC0000000)])
    assert unix == T + 1  # 750 ms rounds up


def test_replies_rfc4330_says_to_discard_are_refused():
    assert "mode 3" in _error({"first": 0x23})  # a client request, not a reply
    assert "mode 5" in _error({"first": 0x25})  # broadcast
    assert "version 2" in _error({"first": 0x14})
    assert "leap indicator 3" in _error({"first": 0xE4})
    assert "kiss-o'-death RATE" in _error({"stratum": 0, "refid": b"RATE"})
    assert "stratum 16" in _error({"stratum": 16})
    assert "no transmit timestamp" in _error({"unix": -2208988800})


def test_a_reply_that_does_not_echo_our_nonce_is_not_ours():
    # A stray datagram is skipped, and the answer after it is taken.
    (unix, _), _ = _query(lambda req: [server_reply(req, originate=b"12345678", unix=T + 99),
                                       server_reply(req)])
    assert unix == T
    # Only strays: no answer within the timeout.
    assert _error({"originate": b"12345678"}) == "timeout"


def test_no_reply_times_out_without_blocking():
    t = VirtualTime()
    sock = FakeSocket(lambda req: [], wait_polls=10 ** 6)
    try:
        asyncio.run(sntp.query("127.0.0.1", 123, timeout_ms=300, ticks_ms=t.ticks_ms,
                               ticks_diff=t.ticks_diff, sleep_ms=t.sleep_ms, sock=sock))
    except OSError as e:
        assert "no NTP reply" in str(e)
        assert t.ms == 300  # 30 polls of 10 ms, each one a yield to the loop
        return
    raise AssertionError("no timeout")


def test_a_short_reply_is_refused():
    try:
        sntp.parse(bytes(47), bytes(8))
    except sntp.SNTPError as e:
        assert "short" in str(e)
        return
    raise AssertionError("accepted 47 bytes")


def test_era_1_after_2036():
    nonce = b"abcdefgh"
    reply = bytearray(server_reply(sntp.request(nonce)))
    reply[40:44] = struct.pack(">I", 1000)  # top bit clear: 2036-02-07 06:28:16 + 1000 s
    assert sntp.parse(reply, nonce) == (2085978496 + 1000, 0)


def test_calendar_and_local_time():
    assert app.calendar(0)[:6] == (1970, 1, 1, 0, 0, 0)
    assert app.calendar(T)[:7] == (2026, 1, 1, 0, 0, 0, 3)  # a Thursday
    assert abs(app.unix_time() - T) < 100 * 365 * 86400  # the port's clock, in Unix seconds
    clock = app.Clock(utc_offset_min=90)
    clock.correction = T - app.unix_time()  # as the runtime does where it cannot set the RTC
    assert clock.now() in ((2026, 1, 1, 1, 30, 0), (2026, 1, 1, 1, 30, 1))
    west = app.Clock(utc_offset_min=-300)
    west.correction = clock.correction
    assert west.now()[:5] == (2025, 12, 31, 19, 0)
