"""A tiny SNTP server (RFC 4330, section 6) on asyncio UDP, for tests and the simulated board.

It answers each client request (mode 3) with a server reply (mode 4) from this PC's clock,
shifted by `offset_s` if asked: stratum 1, reference ID "SIM", the client's transmit timestamp
echoed as the originate timestamp, receive and transmit timestamps of this machine. `replies`
counts the answers; `on_reply(addr)` is called after each (the sim records an event).

Faults (`inject`, a scenario's `{"ntp": ...}` step): "drop" leaves the next requests unanswered,
"delay" sends their replies `ms` late (the transmit timestamp is when the reply leaves, as from a
slow server), each for `times` requests or "all"; "heal" clears them. `dropped` counts requests
left unanswered.
"""

import asyncio
import struct
import time

NTP_UNIX_DELTA = 2208988800  # seconds from 1900-01-01 to 1970-01-01
_MODE_CLIENT = 3
_MODE_SERVER = 4
_PRECISION = -20  # log2 seconds: about a microsecond, what time.time() resolves
STRATUM = 1
REFID = b"SIM\x00"  # stratum 1: four ASCII characters naming the reference clock


def ntp_timestamp(unix_seconds):
    """Unix time (float) -> 64-bit NTP timestamp (32 bits seconds, 32 bits fraction)."""
    seconds = int(unix_seconds)
    fraction = int((unix_seconds - seconds) * (1 << 32)) & 0xFFFFFFFF
    return struct.pack(">II", (seconds + NTP_UNIX_DELTA) & 0xFFFFFFFF, fraction)


def reply(request, received, now):
    """The server reply to a 48-byte request, or None if it is not a client request."""
    if len(request) < 48:
        return None
    version, mode = (request[0] >> 3) & 7, request[0] & 7
    if mode != _MODE_CLIENT or version not in (1, 2, 3, 4):
        return None
    header = struct.pack(
        ">BBBb",
        (0 << 6) | (version << 3) | _MODE_SERVER,  # LI 0, the client's version, mode 4
        STRATUM,
        request[2],  # poll: the client's
        _PRECISION,
    )
    root = struct.pack(">II", 0, 1 << 6)  # root delay 0, root dispersion ~1 ms (16.16 format)
    # Reference (when the clock was last set: this second), originate (the client's transmit
    # timestamp, echoed), receive, transmit.
    return (header + root + REFID + ntp_timestamp(int(received)) + bytes(request[40:48])
            + ntp_timestamp(received) + ntp_timestamp(now))


class NtpServer(asyncio.DatagramProtocol):
    def __init__(self, host="127.0.0.1", port=0, *, offset_s=0.0, on_reply=None):
        self.host = host
        self.port = port
        self.offset_s = offset_s
        self.on_reply = on_reply
        self.replies = 0
        self.silent = False  # True: requests are dropped (a server that is down)
        self.dropped = 0
        self._fault = None  # [kind, ms, requests left or "all"]
        self._transport = None

    def inject(self, fault, ms=0, times=1):
        """fault: "drop", "delay" (by ms) or "heal"; for the next `times` requests, or "all"."""
        if fault == "heal":
            self._fault = None
        elif fault in ("drop", "delay") and (times == "all" or times >= 1):
            self._fault = [fault, ms, times]
        else:
            raise ValueError("ntp fault: drop, delay or heal, for 1 or more requests or all")

    def now(self):
        return time.time() + self.offset_s

    async def start(self):
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=(self.host, self.port))
        self.port = self._transport.get_extra_info("sockname")[1]
        return self

    def stop(self):
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def datagram_received(self, data, addr):
        received = self.now()
        if self.silent:
            self.dropped += 1
            return
        fault = self._fault
        if fault is not None and reply(data, received, received) is not None:
            if fault[2] != "all":
                fault[2] -= 1
                if fault[2] == 0:
                    self._fault = None
            if fault[0] == "drop":
                self.dropped += 1
                return
            asyncio.get_running_loop().call_later(fault[1] / 1000, self._answer, data, addr,
                                                  received)
            return
        self._answer(data, addr, received)

    def _answer(self, data, addr, received):
        if self._transport is None:
            return  # stopped meanwhile
        answer = reply(data, received, self.now())
        if answer is None:
            return
        self._transport.sendto(answer, addr)
        self.replies += 1
        if self.on_reply is not None:
            self.on_reply(addr)
