"""Minimal SNTP client (RFC 4330) over UDP: the time from a server, in Unix seconds.

Needs a `socket` module with getaddrinfo, SOCK_DGRAM sockets, sendto/recvfrom and
setblocking (MicroPython's, or CPython's). `query()` never blocks the asyncio loop for long: the
socket is non-blocking and polled every few ms. Only the name lookup (getaddrinfo) blocks, for a
name that is not an address: on the ESP32 that is lwIP's DNS, bounded by its own timeout.

Time is handled in integers: the ESP32's float is single precision (24-bit mantissa), which
cannot even count the seconds since 1970 to the minute.
"""

import errno
import os
import socket
import struct

# NTP counts from 1900, Unix from 1970: (date(1970, 1, 1) - date(1900, 1, 1)).days * 86400.
NTP_UNIX_DELTA = 2208988800
_LI_ALARM = 3  # leap indicator 3: the server's clock is not synchronised
_MODE_CLIENT = 3
_MODE_SERVER = 4
_VERSION = 4
_POLL_MS = 10  # how often a pending reply is looked for


class SNTPError(ValueError):
    """The reply is no good (what is wrong in the message); never holds the reply itself."""


def request(nonce):
    """A 48-byte client request: LI 0, version 4, mode 3. The transmit timestamp is a nonce
    (RFC 4330 section 5 lets a client put anything there): the server echoes it as the
    originate timestamp, and a reply that does not echo it is not an answer to us."""
    packet = bytearray(48)
    packet[0] = (_VERSION << 3) | _MODE_CLIENT
    packet[40:48] = nonce
    return packet


def parse(reply, nonce):
    """Check a server reply (RFC 4330 section 5) and return its transmit time as
    (unix seconds, milliseconds). Raises SNTPError saying what is wrong."""
    if len(reply) < 48:
        raise SNTPError("short reply (%d bytes)" % len(reply))
    first = reply[0]
    leap, version, mode = first >> 6, (first >> 3) & 7, first & 7
    if mode != _MODE_SERVER:
        raise SNTPError("mode %d, not a server reply" % mode)
    if version not in (3, 4):
        raise SNTPError("version %d" % version)
    if leap == _LI_ALARM:
        raise SNTPError("server clock not synchronised (leap indicator 3)")
    stratum = reply[1]
    if stratum == 0:
        # A kiss-o'-death: the reference ID says why (RATE, DENY, ...).
        raise SNTPError("kiss-o'-death %s" % bytes(reply[12:16]).decode("ascii", "replace"))
    if stratum > 15:
        raise SNTPError("stratum %d" % stratum)
    if bytes(reply[24:32]) != bytes(nonce):
        raise SNTPError("originate timestamp is not ours")
    seconds, fraction = struct.unpack(">II", reply[40:48])
    if seconds == 0 and fraction == 0:
        raise SNTPError("no transmit timestamp")
    # RFC 4330 section 3: with the top bit clear the time is past 2036-02-07 (era 1).
    if seconds < 0x80000000:
        seconds += 0x100000000
    return seconds - NTP_UNIX_DELTA, (fraction * 1000) >> 32


async def query(host, port, *, timeout_ms, ticks_ms, ticks_diff, sleep_ms, sock=None):
    """Ask host:port once. Returns (unix seconds, round trip ms): the server's transmit time plus
    half the round trip, to the nearest second (receipts show seconds).

    Raises OSError (no route, no reply within timeout_ms: errno ETIMEDOUT) or SNTPError.
    `sock` is for tests: a socket-like object used instead of a new UDP socket.
    """
    addr = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0][-1]
    own = sock is None
    if own:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        nonce = os.urandom(8)
        start = ticks_ms()
        sock.sendto(request(nonce), addr)
        while True:
            try:
                reply, _ = sock.recvfrom(64)
            except OSError:  # EAGAIN: nothing yet (CPython: BlockingIOError, an OSError)
                reply = None
            rtt = ticks_diff(ticks_ms(), start)
            if reply is not None:
                try:
                    seconds, ms = parse(reply, nonce)
                except SNTPError:
                    if bytes(reply[24:32]) != bytes(nonce):
                        continue  # a stray or stale datagram: keep waiting for ours
                    raise
                return seconds + (ms + rtt // 2 + 500) // 1000, rtt
            if rtt >= timeout_ms:
                raise OSError(errno.ETIMEDOUT,
                              "no NTP reply from %s in %d ms" % (host, timeout_ms))
            await sleep_ms(_POLL_MS)
    finally:
        if own:
            sock.close()
