"""Wi-Fi station link manager over MicroPython's `network.WLAN(network.STA_IF)` API.

Needs an object with the ESP32 port's WLAN interface: `active()`, `connect(ssid, key)` (returns
at once), `status()`, `isconnected()`, `disconnect()`, and `ipconfig('addr4')` or `ifconfig()`.
On the board that is the radio; in tests and on the simulated board, tools/models/wlan.py.

`WifiLink.run()` is an asyncio task: it connects with retries and exponential backoff, says what
is happening in words a cashier can act on (`status`, `screen`), watches for loss and reconnects.
Every change sets the `changed` event; `up` is set while connected. The password is handed to
`connect()` and to nothing else: no status, log line or exception text of this module holds it.
"""

from micropython import const

try:
    import asyncio
except ImportError:  # very old MicroPython builds
    import uasyncio as asyncio

# network.STAT_* on the ESP32 port (ports/esp32/network_wlan.c; the same numbers in the
# micropython-esp32 stubs from 1.10 on). Numbers, not network.STAT_*: the unix port and CPython
# have no `network` module, and the model must speak the same values.
STAT_IDLE = const(1000)
STAT_CONNECTING = const(1001)
STAT_GOT_IP = const(1010)
STAT_BEACON_TIMEOUT = const(200)
STAT_NO_AP_FOUND = const(201)
STAT_WRONG_PASSWORD = const(202)
STAT_ASSOC_FAIL = const(203)
STAT_HANDSHAKE_TIMEOUT = const(204)

# Why an attempt failed: (log text, second line of the screen). The ESP32 often reports a wrong
# WPA2 password as a handshake timeout (reason 15), hence the question mark there.
_FAILURES = {
    STAT_WRONG_PASSWORD: ("wrong password", "wrong password"),
    STAT_NO_AP_FOUND: ("network not found", "no network found"),
    STAT_HANDSHAKE_TIMEOUT: ("handshake timeout (password?)", "password?"),
    STAT_ASSOC_FAIL: ("access point refused", "refused by AP"),
    STAT_BEACON_TIMEOUT: ("no answer from access point", "no answer"),
}
_TIMED_OUT = ("no answer in time", "timed out")

# The longest wait between attempts. Doubling from wifi_retry_ms (2 s) reaches it after four
# failures: an access point back after a power cut (about 30 s to boot) is found within 30 s,
# and a terminal left without Wi-Fi all night still tries twice a minute, which costs nothing.
MAX_RETRY_MS = const(30000)
_POLL_MS = const(100)  # status polling during an attempt (IDF connects take 1 to 5 s)
_WATCH_MS = const(500)  # loss is noticed within half a second; a purchase takes seconds anyway


class WifiLink:
    def __init__(self, wlan, ssid, password, *, retry_ms, timeout_ms, ticks_ms, ticks_diff,
                 sleep_ms, max_retry_ms=MAX_RETRY_MS):
        self._wlan = wlan
        self._ssid = ssid
        self._password = password
        self.retry_ms = retry_ms
        self.max_retry_ms = max_retry_ms
        self.timeout_ms = timeout_ms
        self._ticks_ms = ticks_ms
        self._ticks_diff = ticks_diff
        self._sleep_ms = sleep_ms
        self.status = "Wi-Fi: off"
        self.screen = ("Wi-Fi off", "")
        self.changed_at = ticks_ms()  # when status last changed
        self.ip = None
        self.attempts = 0  # of the current connection; 0 once connected
        self.connects = 0  # successful connections since boot (1 + reconnects)
        self.changed = asyncio.Event()
        self.up = asyncio.Event()

    @property
    def connected(self):
        return self.up.is_set()

    def _set(self, status, screen):
        self.status = status
        self.screen = screen
        self.changed_at = self._ticks_ms()
        self.changed.set()

    def _address(self):
        wlan = self._wlan
        if hasattr(wlan, "ipconfig"):  # MicroPython 1.24 on
            try:
                return wlan.ipconfig("addr4")[0]
            except (OSError, ValueError, TypeError):
                pass
        return wlan.ifconfig()[0]

    async def _attempt(self):
        """One connection attempt: None once connected, else why it failed (_FAILURES)."""
        wlan = self._wlan
        try:
            wlan.connect(self._ssid, self._password)
        except OSError as e:
            # ESP32: "Wifi Internal Error" while the driver is busy; the text names no secret,
            # but only the error number is shown, to be sure.
            return ("radio error %s" % (e.args[0] if e.args else "?"), "radio error")
        start = self._ticks_ms()
        while True:
            await self._sleep_ms(_POLL_MS)
            status = wlan.status()
            if status == STAT_GOT_IP or wlan.isconnected():
                return None
            if status in _FAILURES:
                return _FAILURES[status]
            if self._ticks_diff(self._ticks_ms(), start) >= self.timeout_ms:
                return _TIMED_OUT

    async def connect(self, lost=False):
        """Try until connected, waiting retry_ms, doubled per failure, at most max_retry_ms."""
        wlan = self._wlan
        delay = self.retry_ms
        self.attempts = 0
        while True:
            self.attempts += 1
            if lost and self.attempts == 1:
                # The first try follows the loss at once: one status says both.
                self._set("Wi-Fi: lost, reconnecting (try 1)", ("Wi-Fi lost", "reconnecting"))
            else:
                self._set("Wi-Fi: connecting (try %d)" % self.attempts,
                          ("Wi-Fi connecting", "try %d" % self.attempts))
            failure = await self._attempt()
            if failure is None:
                break
            self._set("Wi-Fi: %s (try %d, next in %d s)" % (
                failure[0], self.attempts, (delay + 999) // 1000),
                ("Wi-Fi failed:", failure[1]))
            # Stop the driver's own retries: our backoff decides when the radio tries again.
            wlan.disconnect()
            await self._sleep_ms(delay)
            delay = min(delay * 2, self.max_retry_ms)
        self.ip = self._address()
        self.attempts = 0
        self.connects += 1
        self.up.set()
        self._set("Wi-Fi: connected " + self.ip, ("Wi-Fi connected", self.ip))

    async def run(self):
        wlan = self._wlan
        wlan.active(True)
        isconnected = wlan.isconnected
        sleep_ms = self._sleep_ms
        lost = False
        while True:
            await self.connect(lost)
            # Steady state: one bool and one sleep per half second, nothing allocated here.
            while isconnected():
                await sleep_ms(_WATCH_MS)
            self.up.clear()
            self.ip = None
            lost = True
            wlan.disconnect()


async def news(runtime):
    """The runtime's task beside WifiLink.run: the link's news to the log and, while it is
    down, to the idle screen."""
    wifi = runtime.wifi
    while True:
        await wifi.changed.wait()
        wifi.changed.clear()
        runtime.log(wifi.status)
        runtime.dispatch(("net", runtime.net_lines()))
