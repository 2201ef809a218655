"""The sim's SNTP server (tools/host/ntp.py): its reply byte by byte against RFC 4330's layout
(no independent NTP peer is installed), and real round trips over UDP loopback with the
firmware's client and the runtime's clock setting."""

import asyncio
import socket
import struct
import time

from firmware import app, sntp, timesync
from firmware.settings import DEFAULTS
from tools.host.ntp import NtpServer, reply

NTP_DELTA = 2208988800


def _ntp_seconds(raw):
    seconds, fraction = struct.unpack(">II", raw)
    return seconds - NTP_DELTA + fraction / 2 ** 32


def test_reply_layout_per_rfc4330():
    request = bytearray(48)
    request[0] = 0x23  # LI 0, VN 4, mode 3
    request[2] = 10  # poll 2^10 s
    request[40:48] = b"\x01\x02\x03\x04\x05\x06\x07\x08"
    before = time.time()
    answer = reply(bytes(request), before, before + 0.001)
    assert len(answer) == 48
    assert answer[0] >> 6 == 0  # leap indicator: no warning
    assert (answer[0] >> 3) & 7 == 4  # the client's version
    assert answer[0] & 7 == 4  # mode 4, server
    assert answer[1] == 1  # stratum 1 ...
    assert answer[12:16] == b"SIM\x00"  # ... with a four-character reference ID
    assert answer[2] == 10  # poll echoed
    assert struct.unpack(">b", answer[3:4])[0] == -20  # precision 2^-20 s
    assert answer[4:8] == bytes(4)  # root delay
    assert 0 < struct.unpack(">I", answer[8:12])[0] < 1 << 16  # root dispersion under 1 s
    assert answer[24:32] == bytes(request[40:48])  # originate = the client's transmit
    reference, receive, transmit = (_ntp_seconds(answer[i:i + 8]) for i in (16, 32, 40))
    assert reference <= receive <= transmit
    assert abs(receive - before) < 1e-6 and abs(transmit - before - 0.001) < 1e-6
    # Version 3 clients get version 3; a non-client packet gets nothing.
    request[0] = 0x1B
    assert (reply(bytes(request), before, before)[0] >> 3) & 7 == 3
    request[0] = 0x24
    assert reply(bytes(request), before, before) is None
    assert reply(bytes(20), before, before) is None


def _query(port):
    return sntp.query("127.0.0.1", port, timeout_ms=2000, ticks_ms=app.ticks_ms,
                      ticks_diff=app.ticks_diff, sleep_ms=app.sleep_ms)


def test_round_trip_over_loopback():
    async def main():
        server = await NtpServer().start()
        try:
            unix, rtt = await _query(server.port)
            return unix, rtt, server.replies
        finally:
            server.stop()

    unix, rtt, replies = asyncio.run(main())
    assert abs(unix - time.time()) <= 1
    assert 0 <= rtt < 500 and replies == 1
    print("SNTP round trip over loopback: %d ms" % rtt)


def test_a_silent_server_times_out():
    async def main():
        server = await NtpServer().start()
        server.silent = True
        try:
            await sntp.query("127.0.0.1", server.port, timeout_ms=200, ticks_ms=app.ticks_ms,
                             ticks_diff=app.ticks_diff, sleep_ms=app.sleep_ms)
        except OSError as e:
            return str(e)
        finally:
            server.stop()

    assert "no NTP reply" in asyncio.run(main())


def test_faults_drop_and_delay_the_next_replies_then_heal():
    async def main():
        server = await NtpServer().start()
        seen = []
        try:
            server.inject("drop", times=1)
            try:
                await sntp.query("127.0.0.1", server.port, timeout_ms=200,
                                 ticks_ms=app.ticks_ms, ticks_diff=app.ticks_diff,
                                 sleep_ms=app.sleep_ms)
            except OSError as e:
                seen.append(str(e))
            unix, rtt = await _query(server.port)  # the drop was for one request only
            seen.append((server.dropped, server.replies, abs(unix - time.time()) <= 1))
            server.inject("delay", ms=300, times="all")
            for _ in range(2):
                seen.append((await _query(server.port))[1] >= 300)
            server.inject("drop", times="all")
            server.inject("heal")
            await _query(server.port)  # answered: a drop of all would time out
            seen.append(server.dropped == 1)
            return seen
        finally:
            server.stop()

    dropped, after, *delays, healed = asyncio.run(main())
    assert "no NTP reply" in dropped
    assert after == (1, 1, True)
    assert delays == [True, True] and healed


class _Board:
    def __init__(self, set_clock=None):
        self.lines = []
        if set_clock is not None:
            self.set_clock = set_clock

    def log(self, line):
        self.lines.append(line)


def _sync(board, offset_s, utc_offset_min=0):
    async def main():
        server = await NtpServer(offset_s=offset_s).start()
        values = dict(DEFAULTS, ntp_host="127.0.0.1", ntp_port=server.port,
                      utc_offset_min=utc_offset_min)
        runtime = app.Runtime.__new__(app.Runtime)  # only the clock part of the runtime
        runtime.board, runtime.settings, runtime.wifi = board, values, None
        runtime.wall_clock = app.Clock(utc_offset_min)
        runtime.clock_set = True  # not holding purchases: only the sync is looked at here
        task = asyncio.create_task(timesync.time_sync(runtime))
        for _ in range(200):
            await asyncio.sleep(0.01)
            if server.replies:
                break
        await asyncio.sleep(0.05)
        task.cancel()
        server.stop()
        return runtime

    return asyncio.run(main())


def test_runtime_keeps_a_correction_where_the_board_cannot_set_its_clock():
    board = _Board()
    runtime = _sync(board, offset_s=3 * 3600, utc_offset_min=60)
    assert abs(runtime.wall_clock.correction - 3 * 3600) <= 1
    shown = runtime.wall_clock.now()
    expected = time.gmtime(time.time() + 4 * 3600)[:5]
    assert shown[:4] == expected[:4]
    assert [line for line in board.lines if line.startswith("ntp: ") and "UTC from 127.0.0.1"
            in line and "clock moved 1080" in line], board.lines


def test_runtime_sets_the_boards_clock_where_it_can():
    set_to = []
    runtime = _sync(_Board(set_to.append), offset_s=0)
    assert len(set_to) == 1 and abs(set_to[0] - time.time()) <= 1
    assert runtime.wall_clock.correction == 0


def test_sntp_uses_a_real_udp_socket():
    # The client's own socket path (no injected socket), against a bare UDP responder.
    responder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    responder.bind(("127.0.0.1", 0))
    port = responder.getsockname()[1]

    async def main():
        task = asyncio.create_task(_query(port))
        loop = asyncio.get_running_loop()
        request, addr = await loop.run_in_executor(None, responder.recvfrom, 64)
        responder.sendto(reply(request, time.time(), time.time()), addr)
        return await task

    try:
        unix, _ = asyncio.run(main())
    finally:
        responder.close()
    assert abs(unix - time.time()) <= 1


def test_the_simulated_board_sets_its_clock_at_boot(tmp_path):
    import json

    from simruns import run_all

    scenario = tmp_path / "ntp.json"
    scenario.write_text(json.dumps({"config": {"ntp_host": "sim"},
                                    "steps": [{"wait": "idle", "timeout_ms": 10000},
                                              {"sleep_ms": 300}]}))
    rc, out, path = run_all({"ntp": scenario}, tmp_path)["ntp"]
    assert rc == 0, out
    events = [json.loads(line) for line in (path / "events.jsonl").read_text().splitlines()]
    assert [e for e in events if e["kind"] == "ntp"]  # the sim's server answered
    synced = [e["text"] for e in events if e["kind"] == "log" and e["text"].startswith("ntp: ")]
    assert synced and "UTC from 127.0.0.1:" in synced[0], synced
