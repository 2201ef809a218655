"""58 mm ESC/POS thermal receipt printer on a TTL serial line (CSN-A2, QR204 and their kin).

Hardware: 384 dots a line (203 dpi), 32 columns of the 12x24 font, 9600 or 19200 baud 8N1.
Wiring: printer RX <- ESP32 TX, printer TX -> ESP32 RX, GND to GND. The printer's TX is often
5 V: level-shift it (a divider or a MOSFET shifter) before it reaches the ESP32, whose pins are
not 5 V tolerant. The printer has its own 5-9 V supply good for 1-2 A peaks (the head draws them
while heating); never power it from the board's 3.3 V or USB rail, and join the grounds.

The driver is handed its UART (`machine.UART(2, 9600, tx=..., rx=...)` built by the board
profile) and speaks only bytes:

    printer = EscPosPrinter(uart, baudrate=9600, line_ms=60)
    await printer.print_text(receipt_text)   # PaperOut, CoverOpen, PrinterSilent
    printer.paper_ok()                       # cheap, cached status query

Why it paces itself: these printers have a small receive buffer (a few hundred bytes) and no
usable flow control on the 3-wire TTL cable; text prints at tens of mm/s, far slower than even
9600 baud delivers it, so a driver that just writes overruns the buffer and the printer drops
bytes mid-receipt. The driver keeps an estimate of when each line will have been printed (the
UART's byte time, then `line_ms` per text line) and never has more than the buffer (less a
reserve) in flight. The printer's status (DLE EOT 4 and 2, real-time commands answered even while
it prints; or ESC v 0 on printers that only know that one) is asked before the receipt, between
chunks and after the last line: paper out mid-receipt raises `PaperOut` (the core prints the
whole receipt again, marked REPRINT), and a printer that stops answering raises `PrinterSilent`.

Directive lines the core may send (never printed literally): `^LOGO`, `^QR <data>`,
`^BIG <text>`, `^CENTER <text>`, `^BOLD <text>`. Any other `^WORD text` line prints its text.
"""

try:
    from micropython import const
except ImportError:  # CPython without the test shims

    def const(value):
        return value


import asyncio

from drivers import let_go

try:
    from time import sleep_ms as _sleep_ms
    from time import ticks_diff
    from time import ticks_ms as _ticks_ms
except ImportError:  # CPython: tests drive the driver through an injected timebase
    import time as _time

    def _ticks_ms():
        return int(_time.monotonic() * 1000)

    def _sleep_ms(ms):
        _time.sleep(ms / 1000)

    def ticks_diff(a, b):
        return a - b


class PaperOut(Exception):
    pass


class CoverOpen(Exception):
    pass


class PrinterSilent(Exception):
    """No valid status answer (after a second try): unplugged, unpowered, or a bad line."""


# DLE EOT 4 (roll paper sensor) then DLE EOT 2 (offline cause: cover, stopped at paper end).
STATUS_DLE = b"\x10\x04\x04\x10\x04\x02"
STATUS_ESCV = b"\x1bv\x00"
_PAPER_END_BITS = const(0x60)  # DLE EOT 4: paper end sensor
_STOPPED_BITS = const(0x20)  # DLE EOT 2: printing stopped at paper end
_COVER_BIT = const(0x04)  # DLE EOT 2: cover open
_ESCV_NO_PAPER = const(0x04)
_RING = const(32)  # chunks tracked in flight; more than fit in any printer's buffer
_POLL_MS = const(2)


class _Timebase:
    """Real time: ticks_ms, a blocking sleep for paper_ok and asyncio's sleep for printing.
    Tests hand the driver a virtual one (tools/models/escpos.py)."""

    def ticks_ms(self):
        return _ticks_ms()

    def sleep_ms(self, ms):
        _sleep_ms(ms)

    def wait_ms(self, ms):
        if hasattr(asyncio, "sleep_ms"):
            return asyncio.sleep_ms(ms)
        return asyncio.sleep(ms / 1000)


class EscPosPrinter:
    """ESC/POS printer on `uart`. `buffer_bytes`: the printer's receive buffer; `line_ms`: time
    the mechanism takes for one 24-dot text line (set it from a measurement, never below: the
    pacing trusts it); `logo`: `(width, height, data)` MONO_HLSB rows, width a multiple of 8
    (a framebuf buffer as is); `qr`: the printer knows GS ( k; `cut`: a cutter is fitted;
    `heat`: ESC 7 (max heating dots in 8s - 1, heating time and interval in 10 us).
    `status`: "dle" (DLE EOT) or "escv" (ESC v 0) or None (no status: printing blind)."""

    def __init__(self, uart, *, buffer_bytes=256, line_ms=60, logo=None, qr=True, cut=False,
                 heat=(7, 80, 2), baudrate=9600, status="dle", status_timeout_ms=50,
                 paper_cache_ms=300, timebase=None):
        self._uart = uart
        self._line_ms = line_ms
        self._logo = logo
        self._qr = qr
        self._cut = cut
        self._status = status
        self._status_timeout = status_timeout_ms
        self._paper_cache_ms = paper_cache_ms
        self._tb = timebase or _Timebase()
        baud = getattr(uart, "baudrate", None) or baudrate
        self._byte_us = 10 * 1000000 // baud
        # A stall (paper out) is seen at the next status check, up to `_check_bytes` later:
        # those bytes and a status query must still fit after a full budget.
        self._check_bytes = buffer_bytes // 4
        self._budget = buffer_bytes - self._check_bytes - 16
        self._heat = bytearray(b"\x1b7\x00\x00\x00")
        self._heat[2], self._heat[3], self._heat[4] = heat
        self._ans = bytearray(4)
        self._hdr = bytearray(8)  # GS v 0 header, reused for every raster slice
        self._qr_store = bytearray(b"\x1d(k\x00\x001P0")
        self._done_at = [0] * _RING  # estimated time (ticks_ms) each chunk has been printed
        self._size = [0] * _RING
        self._head = 0
        self._count = 0
        self._in_flight = 0
        self._since_check = 0
        self._uart_free = 0  # estimated time the UART has sent all written bytes
        self._mech_free = 0  # estimated time the mechanism has printed everything sent
        self._busy = False
        self._paper = None  # cached paper_ok answer
        self._paper_at = 0

    # ---- status -----------------------------------------------------------------------------

    def _drain_rx(self):
        while self._uart.any():
            self._uart.read()

    def _query(self):
        self._drain_rx()
        self._uart.write(STATUS_DLE if self._status == "dle" else STATUS_ESCV)
        return 2 if self._status == "dle" else 1

    def _parse(self, n):
        """Status answer -> None (fine), PaperOut, CoverOpen; raises ValueError on garbage."""
        a = self._ans
        if n == 2:
            # DLE EOT answers have fixed bits: 0 and 7 clear, 1 and 4 set. Noise rarely does.
            if a[0] & 0x93 != 0x12 or a[1] & 0x93 != 0x12:
                raise ValueError
            if a[1] & _COVER_BIT:
                return CoverOpen
            if a[0] & _PAPER_END_BITS or a[1] & _STOPPED_BITS:
                return PaperOut
            return None
        if a[0] & ~0x0C:  # ESC v 0 uses bits 2-3 (paper end, near end) only
            raise ValueError
        return PaperOut if a[0] & _ESCV_NO_PAPER else None

    def _finish_answer(self, got, n):
        while got < n and self._uart.any():
            chunk = self._uart.read(n - got)
            if not chunk:
                break
            self._ans[got:got + len(chunk)] = chunk
            got += len(chunk)
        return got

    def paper_ok(self):
        """True when the printer answers and reports paper, cover closed. Blocks for at most
        two status timeouts; the answer is cached for `paper_cache_ms`, and while a receipt is
        printing the printing's own checks answer."""
        if self._status is None:
            return True
        tb = self._tb
        if self._busy or (self._paper is not None and
                          ticks_diff(tb.ticks_ms(), self._paper_at) < self._paper_cache_ms):
            return bool(self._paper)
        ok = False
        for _ in range(2):
            n = self._query()
            start = tb.ticks_ms()
            got = 0
            while got < n and ticks_diff(tb.ticks_ms(), start) < self._status_timeout:
                tb.sleep_ms(_POLL_MS)
                got = self._finish_answer(got, n)
            if got == n:
                try:
                    ok = self._parse(n) is None
                except ValueError:
                    continue
                break
        self._paper = ok
        self._paper_at = tb.ticks_ms()
        return ok

    # ---- receipt ----------------------------------------------------------------------------

    async def print_text(self, text):
        """Print a receipt (lines separated by newlines, 32 columns). Returns once the last
        line is estimated printed and the printer still reports paper."""
        # The printing code is imported for a receipt and let go after: from .mpy files its
        # 3 KB would sit in the heap that a card read needs (drivers/escpos_job.py).
        from drivers import escpos_job

        try:
            await escpos_job.print_text(self, text)
        finally:
            let_go("escpos_job")
