"""The clock from NTP: the runtime's task when the setting ntp_host names a server.

Imported only then (firmware/app.py, Runtime.run): a terminal without a server holds none of it.
Until the first answer the runtime holds purchases (`clock_set` False, "Setting clock...").
"""

from micropython import const

from firmware import let_go
from firmware.app import calendar, sleep_ms, ticks_diff, ticks_ms, unix_time

# NTP again every 6 hours: awake, the ESP32 keeps time on its crystal (tens of ppm, well under a
# second in 6 hours) and a receipt shows whole seconds. A failed sync is tried again after 10 s,
# doubled per failure up to 10 minutes: nothing waits for it (receipts carry the RTC's time).
_NTP_PERIOD_MS = const(6 * 3600 * 1000)
_NTP_RETRY_MS = const(10000)
_NTP_RETRY_MAX_MS = const(600000)
_NTP_TIMEOUT_MS = const(3000)  # one query; a server on the far side of the world answers in 0.3 s
# While purchases wait for the clock, a failed sync is tried again within a minute at most.
_NTP_HOLD_RETRY_MAX_MS = const(60000)


async def time_sync(runtime):
    """Set the clock from NTP after the first connection, then every _NTP_PERIOD_MS."""
    host, port = runtime.settings["ntp_host"], runtime.settings["ntp_port"]
    delay = _NTP_RETRY_MS
    while True:
        if runtime.wifi is not None:
            await runtime.wifi.up.wait()
        try:
            unix, rtt = await _ntp_query(host, port)
        except (OSError, ValueError) as e:  # ValueError: sntp.SNTPError, a bad reply
            runtime.log("ntp: %s:%d: %r; again in %d s" % (host, port, e, delay // 1000))
            await sleep_ms(delay)
            delay = min(delay * 2, _NTP_RETRY_MAX_MS if runtime.clock_set
                        else _NTP_HOLD_RETRY_MAX_MS)
            continue
        delay = _NTP_RETRY_MS
        step = set_clock(runtime, unix)
        runtime.log("ntp: %04d-%02d-%02d %02d:%02d:%02d UTC from %s:%d, round trip %d ms, "
                    "clock moved %d s" % (calendar(unix)[:6] + (host, port, rtt, step)))
        if not runtime.clock_set:
            runtime.clock_set = True
            runtime.log("clock: set; purchases open")
            runtime.dispatch(("net", runtime.net_lines()))
        await sleep_ms(_NTP_PERIOD_MS)


def set_clock(runtime, unix):
    """The board's RTC where it has one it may set, else the Clock's correction; returns how
    far the clock moved, in seconds."""
    before = runtime.wall_clock.unix()
    board_set = getattr(runtime.board, "set_clock", None)
    if board_set is not None:
        board_set(unix)
        runtime.wall_clock.correction = 0
    else:
        runtime.wall_clock.correction = unix - unix_time()
    return unix - before


async def _ntp_query(host, port):
    """(unix seconds, round trip ms) from the NTP server. The client is imported for the query
    and let go: it runs every 6 hours."""
    from firmware import sntp

    try:
        return await sntp.query(host, port, timeout_ms=_NTP_TIMEOUT_MS, ticks_ms=ticks_ms,
                                ticks_diff=ticks_diff, sleep_ms=sleep_ms)
    finally:
        let_go("sntp")
