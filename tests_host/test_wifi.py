# portable: micropython
"""The Wi-Fi link manager (firmware/wifi.py) over the ESP32 WLAN model (tools/models/wlan.py):
retries with backoff on a virtual clock, wrong password, no network, loss and reconnect, the
password kept out of every status; then the runtime with the model: the status on the idle
screen, and a purchase without Wi-Fi ending "Host unreachable" instead of hanging."""

import asyncio
import gc
import sys

from fakes import VirtualTime

# core before app: compiling core is this file's heap peak on MicroPython.
import firmware.core  # noqa: F401
from firmware import app
from firmware.settings import DEFAULTS
from firmware.wifi import MAX_RETRY_MS, WifiLink
from tools.models.wlan import WLAN, AccessPoint

SECRET = "s3cret-Passw0rd"


def _link(ap, t, **options):
    wlan = WLAN(aps=[ap], ticks_ms=t.ticks_ms)
    calls = []
    connect = wlan.connect

    def recording_connect(ssid=None, key=None):
        calls.append(t.ms)
        connect(ssid, key)

    wlan.connect = recording_connect
    link = WifiLink(wlan, "shop", SECRET, retry_ms=options.get("retry_ms", 2000),
                    timeout_ms=options.get("timeout_ms", 15000), ticks_ms=t.ticks_ms,
                    ticks_diff=t.ticks_diff, sleep_ms=t.sleep_ms)
    return link, wlan, calls


def _run(link, t, until, limit_ms=600000, on_change=None):
    """Run the link until `until(link)` holds; returns [(ms, status)] of every change."""
    seen = []

    async def main():
        task = asyncio.create_task(link.run())
        while t.ms < limit_ms:
            if link.changed.is_set():
                link.changed.clear()
                seen.append((link.changed_at, link.status))
                if on_change:
                    on_change(link, t)
            if until(link):
                break
            await asyncio.sleep(0)
        task.cancel()

    asyncio.run(main())
    return seen


def test_connects_at_the_first_try():
    t = VirtualTime()
    link, wlan, calls = _link(AccessPoint("shop", SECRET), t)
    seen = _run(link, t, lambda lk: lk.connected)
    assert [s for _, s in seen] == ["Wi-Fi: connecting (try 1)", "Wi-Fi: connected 192.168.1.23"]
    assert link.screen == ("Wi-Fi connected", "192.168.1.23")
    assert seen[-1][0] == wlan.join_ms  # polled every 100 ms; the model joins in 1.2 s
    assert calls == [0] and wlan.active()


def test_no_network_backs_off_doubling_up_to_the_cap():
    t = VirtualTime()
    ap = AccessPoint("shop", SECRET, up=False)
    link, wlan, calls = _link(ap, t)
    seen = [s for _, s in _run(link, t, lambda lk: len(calls) >= 8)]
    assert link.status == "Wi-Fi: connecting (try 8)"
    assert seen[-2] == "Wi-Fi: network not found (try 7, next in 30 s)", seen
    assert seen[1] == "Wi-Fi: network not found (try 1, next in 2 s)", seen
    # Each attempt ends when the scan does (2.5 s); then the wait: 2, 4, 8, 16, 30, 30, 30 s.
    waits = [calls[i + 1] - calls[i] - wlan.scan_ms for i in range(len(calls) - 1)]
    assert waits == [2000, 4000, 8000, 16000, 30000, 30000, 30000], waits
    assert MAX_RETRY_MS == 30000
    ap.up = True
    _run(link, t, lambda lk: lk.connected)
    assert link.attempts == 0 and link.connects == 1


def test_wrong_password_is_said_and_retried():
    t = VirtualTime()
    link, wlan, calls = _link(AccessPoint("shop", "another-password"), t)
    seen = _run(link, t, lambda lk: len(calls) >= 3)
    assert ("Wi-Fi: wrong password (try 1, next in 2 s)" in [s for _, s in seen]), seen
    assert link.screen == ("Wi-Fi connecting", "try 3")
    assert not link.connected


def test_an_attempt_that_never_ends_times_out():
    t = VirtualTime()
    ap = AccessPoint("shop", SECRET)
    link, wlan, calls = _link(ap, t, timeout_ms=5000)
    wlan.join_ms = 60000  # an access point that never finishes the handshake
    seen = _run(link, t, lambda lk: len(calls) >= 2)
    assert (5000, "Wi-Fi: no answer in time (try 1, next in 2 s)") in seen, seen
    assert calls == [0, 7000]


def test_loss_is_noticed_and_the_link_reconnects():
    t = VirtualTime()
    ap = AccessPoint("shop", SECRET)
    link, wlan, calls = _link(ap, t)
    marks = {}

    def watch(lk, t):
        if lk.status.startswith("Wi-Fi: lost"):
            marks["lost"] = t.ms
        if lk.status.startswith("Wi-Fi: network not found (try 2"):
            assert lk.screen == ("Wi-Fi failed:", "no network found")
            ap.up = True
            marks["up"] = t.ms

    def until(lk):
        if lk.connected and "first" not in marks:
            marks["first"] = t.ms
        if "first" in marks and t.ms >= marks["first"] + 3000 and "down" not in marks:
            ap.up = False
            marks["down"] = t.ms
        return "up" in marks and lk.connected

    seen = _run(link, t, until, on_change=watch)
    assert marks["lost"] - marks["down"] <= 500  # the watch looks twice a second
    assert link.connected and link.connects == 2
    back = seen[-1][0] - marks["up"]
    # AP back during the 4 s wait: the next try joins in the model's 1.2 s.
    assert back <= 4000 + wlan.join_ms, back
    assert seen[-1][1] == "Wi-Fi: connected 192.168.1.23"


def test_the_password_is_only_handed_to_connect():
    t = VirtualTime()
    ap = AccessPoint("shop", "wrong")
    link, wlan, calls = _link(ap, t)
    seen = _run(link, t, lambda lk: len(calls) >= 3)
    ap.password = SECRET
    seen += _run(link, t, lambda lk: lk.connected)
    texts = [s for _, s in seen] + list(link.screen)
    assert texts and not [s for s in texts if SECRET in s]
    assert set(wlan.keys_seen) == {SECRET}
    for name in dir(link):
        value = getattr(link, name)
        if isinstance(value, str) and name != "_password":
            assert SECRET not in value, name


def test_watching_a_connected_link_allocates_nothing():
    if sys.implementation.name != "micropython":
        return  # CPython's asyncio allocates per sleep, and gc.mem_alloc is MicroPython's
    # The runtime's own sleep and ticks (asyncio.sleep_ms reuses one object): real time.
    wlan = WLAN(aps=[AccessPoint("shop", SECRET)], join_ms=10)
    link = WifiLink(wlan, "shop", SECRET, retry_ms=10, timeout_ms=1000, ticks_ms=app.ticks_ms,
                    ticks_diff=app.ticks_diff, sleep_ms=app.sleep_ms)
    marks = []

    async def main():
        task = asyncio.create_task(link.run())
        while not link.connected:
            await app.sleep_ms(10)
        await app.sleep_ms(600)  # into the watch loop
        gc.collect()
        gc.disable()
        before = gc.mem_alloc()
        await app.sleep_ms(2100)  # four watch rounds
        marks.append(gc.mem_alloc() - before)
        gc.enable()
        task.cancel()

    asyncio.run(main())
    assert marks[0] == 0, marks


# ---- the runtime with the WLAN model (real time, short model timings) -------------------------

class _Keypad:
    def __init__(self):
        self.labels = []

    def __aiter__(self):
        return self

    async def __anext__(self):
        while not self.labels:
            await app.sleep_ms(5)
        await app.sleep_ms(5)
        return self.labels.pop(0)


class _Display:
    def __init__(self):
        self.screens = []

    def show(self, lines):
        self.screens.append(list(lines))


class _Reader:
    def __init__(self):
        self.card = None

    def read_card(self):
        card, self.card = self.card, None
        return card


class _Board:
    def __init__(self, ap):
        import os

        self.root = "/tmp/pos_wifi"
        try:
            os.mkdir(self.root)
        except OSError:
            pass
        try:
            os.remove(self.root + "/journal.bin")
        except OSError:
            pass
        self.reader = _Reader()
        self.keypad = _Keypad()
        self.display = _Display()
        self.printer = None
        self.wlan = WLAN(aps=[ap], join_ms=60, scan_ms=80, auth_fail_ms=40)
        self.lines = []

    def log(self, line):
        self.lines.append(line)


def test_runtime_shows_wifi_and_a_purchase_without_it_ends_unreachable():
    ap = AccessPoint("shop", SECRET, up=False)
    board = _Board(ap)
    values = dict(DEFAULTS)
    values.update({"poll_ms": 5, "wifi_ssid": "shop", "wifi_password": SECRET,
                   "wifi_retry_ms": 50, "ntp_host": "", "port": 1, "host_tls": "plain"})
    runtime = app.Runtime(board, values, {})  # host_tls plain
    shown = board.display.screens

    async def until(check, ms):
        for _ in range(ms // 10):
            if check():
                return True
            await app.sleep_ms(10)
        return False

    async def scenario():
        task = asyncio.create_task(runtime.run())
        assert await until(lambda: shown and shown[-1][2:4] == ["Wi-Fi failed:",
                                                                "no network found"], 3000)
        assert shown[-1][4:6] == ["Ready", "Tap card"] and len(shown[-1]) <= 8
        board.reader.card = ("4761739001010010", "2812")
        board.keypad.labels = list("1250#1234#")
        assert await until(lambda: shown[-1][0] == "Host unreachable", 3000), shown[-1]
        assert shown[-1][:2] == ["Host unreachable", "Not charged"]
        ap.up = True
        assert await until(lambda: runtime.wifi.connected, 3000)
        board.keypad.labels = ["#"]  # dismiss the result: the idle screen, without Wi-Fi news
        assert await until(lambda: shown[-1][2:4] == ["", "Ready"], 6000), shown[-1]
        task.cancel()

    asyncio.run(scenario())
    records = [r["r"] for r in runtime.journal.replay()]
    assert records == ["ksn", "send", "unsent"], records  # ksn: DUKPT counters reserved
    assert "Wi-Fi: connected 192.168.1.23" in board.lines
    assert [line for line in board.lines if "purchase: host unreachable (Wi-Fi:" in line]
    for screen in shown:
        assert all(len(line) <= 16 for line in screen), screen
    assert not [line for line in board.lines + sum(shown, []) if SECRET in line]
