"""Model of the ESP32 port's `network.WLAN(network.STA_IF)`, for tests and the simulated board.

What MicroPython does on the ESP32 (ports/esp32/network_wlan.c), as far as firmware/wifi.py can
see it:
- `connect(ssid, key)` returns at once; `status()` is STAT_CONNECTING until the attempt ends in
  STAT_GOT_IP, or in STAT_NO_AP_FOUND (no such network after a scan of every channel, which
  takes seconds), STAT_WRONG_PASSWORD (authentication refused), ...;
- `connect()` on an inactive interface raises OSError ("Wifi Not Started");
- a lost access point shows as STAT_BEACON_TIMEOUT and `isconnected()` False.
The real port may also retry by itself after a loss (`config(reconnects=...)`); the model does
not, which is the harder case for the manager. Addresses are the model's own.

Time is in ms from `ticks_ms` (a callable; real time by default), so a test can run it on a
virtual clock. The test takes the access point down and up with `AccessPoint.up`.
Runs on MicroPython and CPython.
"""

try:
    from time import ticks_diff, ticks_ms
except ImportError:  # CPython
    import time

    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b

STA_IF = 0
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_BEACON_TIMEOUT = 200
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202


class AccessPoint:
    def __init__(self, ssid, password, *, up=True, ip="192.168.1.23"):
        self.ssid = ssid
        self.password = password
        self.up = up
        self.ip = ip  # what its DHCP server gives the station


class WLAN:
    """network.WLAN(STA_IF) on the ESP32, over the access points in `aps`."""

    def __init__(self, interface=STA_IF, *, aps=(), ticks_ms=ticks_ms, join_ms=1200,
                 scan_ms=2500, auth_fail_ms=800):
        self.aps = list(aps)
        self._ticks_ms = ticks_ms
        self.join_ms = join_ms  # association + WPA2 handshake + DHCP (1 to 2 s on a board)
        self.scan_ms = scan_ms  # all 13 channels scanned before "no AP found"
        self.auth_fail_ms = auth_fail_ms
        self._active = False
        self._ap = None  # the access point of the current attempt or connection
        self._ssid = None
        self._key = None
        self._since = 0
        self._state = STAT_IDLE
        self.connect_calls = 0
        self.keys_seen = []  # the keys passed to connect(): tests check where they went

    def active(self, flag=None):
        if flag is None:
            return self._active
        self._active = bool(flag)
        if not flag:
            self._state = STAT_IDLE
            self._ap = None

    def connect(self, ssid=None, key=None):
        if not self._active:
            raise OSError("Wifi Not Started")
        self.connect_calls += 1
        self.keys_seen.append(key)
        self._ssid = ssid
        self._key = key
        self._since = self._ticks_ms()
        self._state = STAT_CONNECTING
        self._ap = None

    def disconnect(self):
        self._state = STAT_IDLE
        self._ap = None

    def _find(self):
        for ap in self.aps:
            if ap.ssid == self._ssid and ap.up:
                return ap
        return None

    def _update(self):
        state = self._state
        elapsed = ticks_diff(self._ticks_ms(), self._since)
        if state == STAT_CONNECTING:
            ap = self._find()
            if ap is None:
                if elapsed >= self.scan_ms:
                    self._state = STAT_NO_AP_FOUND
            elif ap.password != (self._key or ""):
                if elapsed >= self.auth_fail_ms:
                    self._state = STAT_WRONG_PASSWORD
            elif elapsed >= self.join_ms:
                self._state = STAT_GOT_IP
                self._ap = ap
        elif state == STAT_GOT_IP and not (self._ap is not None and self._ap.up):
            self._state = STAT_BEACON_TIMEOUT
            self._ap = None

    def status(self, param=None):
        if param is not None:
            raise ValueError("unknown status param")
        self._update()
        return self._state

    def isconnected(self):
        self._update()
        return self._state == STAT_GOT_IP

    def ifconfig(self):
        if self._ap is None or self._state != STAT_GOT_IP:
            return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")
        return (self._ap.ip, "255.255.255.0", "192.168.1.1", "192.168.1.1")

    def ipconfig(self, name):
        if name != "addr4":
            raise ValueError("unknown config param")
        address = self.ifconfig()
        return (address[0], address[1])
