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

try:
    from time import sleep_ms as _sleep_ms
    from time import ticks_add, ticks_diff
    from time import ticks_ms as _ticks_ms
except ImportError:  # CPython: tests drive the driver through an injected timebase
    import time as _time

    def _ticks_ms():
        return int(_time.monotonic() * 1000)

    def _sleep_ms(ms):
        _time.sleep(ms / 1000)

    def ticks_diff(a, b):
        return a - b

    def ticks_add(a, b):
        return a + b


class PaperOut(Exception):
    pass


class CoverOpen(Exception):
    pass


class PrinterSilent(Exception):
    """No valid status answer (after a second try): unplugged, unpowered, or a bad line."""


_ESC = const(0x1B)
_GS = const(0x1D)
_LF = const(0x0A)

_INIT = const(b"\x1b@")
_BOLD_ON = const(b"\x1bE\x01")
_BOLD_OFF = const(b"\x1bE\x00")
_CENTER = const(b"\x1ba\x01")
_LEFT = const(b"\x1ba\x00")
_BIG_ON = const(b"\x1d!\x11")  # GS ! : double width and double height
_BIG_OFF = const(b"\x1d!\x00")
_CUT = const(b"\x1dV\x01")  # partial cut: leaves a tab, the usual choice on receipt printers
# DLE EOT 4 (roll paper sensor) then DLE EOT 2 (offline cause: cover, stopped at paper end).
STATUS_DLE = b"\x10\x04\x04\x10\x04\x02"
STATUS_ESCV = b"\x1bv\x00"
# QR (GS ( k, function 165/167/169/180/181): model 2, module size 4 dots, error correction M.
_QR_SETUP = const(b"\x1d(k\x04\x001A2\x00" b"\x1d(k\x03\x001C\x04" b"\x1d(k\x03\x001E1")
_QR_PRINT = const(b"\x1d(k\x03\x001Q0")
QR_MODULE_DOTS = 4
# Byte-mode capacity at error correction M, versions 1 to 10 (ISO/IEC 18004 table 7).
QR_CAPACITY_M = (14, 26, 42, 62, 84, 106, 122, 152, 180, 213)

_COLUMNS = const(32)  # font A, 12 dots wide, on 384 dots
_RING = const(32)  # chunks tracked in flight; more than fit in any printer's buffer
_POLL_MS = const(2)
_FEED_LINES = const(2)  # from the head to the tear bar / cutter, past the receipt's own blanks
_PAPER_END_BITS = const(0x60)  # DLE EOT 4: paper end sensor
_STOPPED_BITS = const(0x20)  # DLE EOT 2: printing stopped at paper end
_COVER_BIT = const(0x04)  # DLE EOT 2: cover open
_ESCV_NO_PAPER = const(0x04)


def qr_modules(n):
    """Modules per side of the QR code holding n bytes (versions 1-10), 0 if too long."""
    for i in range(len(QR_CAPACITY_M)):
        if n <= QR_CAPACITY_M[i]:
            return 17 + 4 * (i + 1)
    return 0


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

    async def _check(self):
        """Raise PaperOut, CoverOpen or PrinterSilent; two tries, each bounded in time."""
        if self._status is None:
            return
        # A status query behind bytes still in the UART could be answered by raster data that
        # happens to read as one: ask only once the line is quiet.
        while hasattr(self._uart, "txdone") and not self._uart.txdone():
            await self._tb.wait_ms(_POLL_MS)
        for _ in range(2):
            n = self._query()
            start = self._tb.ticks_ms()
            got = 0
            while got < n and ticks_diff(self._tb.ticks_ms(), start) < self._status_timeout:
                await self._tb.wait_ms(_POLL_MS)
                got = self._finish_answer(got, n)
            if got == n:
                try:
                    fault = self._parse(n)
                except ValueError:
                    continue
                self._paper = fault is not PaperOut and fault is not CoverOpen
                self._paper_at = self._tb.ticks_ms()
                self._since_check = 0
                if fault is not None:
                    raise fault()
                return
        self._paper = False
        raise PrinterSilent()

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

    # ---- pacing -----------------------------------------------------------------------------

    def _retire(self, now):
        while self._count and ticks_diff(now, self._done_at[self._head]) >= 0:
            self._in_flight -= self._size[self._head]
            self._head = (self._head + 1) % _RING
            self._count -= 1

    async def _room(self, n):
        """Wait until n more bytes keep the printer's buffer within budget; check status
        every `_check_bytes`."""
        if self._since_check and self._since_check + n > self._check_bytes:
            await self._check()
        while True:
            now = self._tb.ticks_ms()
            self._retire(now)
            if self._count < _RING and (self._in_flight + n <= self._budget or not self._count):
                return now
            wait = ticks_diff(self._done_at[self._head], now)
            await self._tb.wait_ms(wait if wait > 0 else 1)

    async def _write(self, buf):
        mv = memoryview(buf)
        off = 0
        while off < len(buf):
            off += self._uart.write(mv[off:]) or 0
            if off < len(buf):
                await self._tb.wait_ms(_POLL_MS)

    def _sent(self, now, n, cost_ms):
        """Book a chunk of n bytes that takes the mechanism cost_ms once it has arrived."""
        if ticks_diff(self._uart_free, now) < 0:
            self._uart_free = now
        self._uart_free = ticks_add(self._uart_free, (n * self._byte_us + 999) // 1000)
        start = self._uart_free
        if ticks_diff(self._mech_free, start) > 0:
            start = self._mech_free
        self._mech_free = ticks_add(start, cost_ms)
        i = (self._head + self._count) % _RING
        self._done_at[i] = self._mech_free
        self._size[i] = n
        self._count += 1
        self._in_flight += n
        self._since_check += n

    async def _chunk(self, cost_ms, a, b=None, c=None, d=None):
        # Parts written one after the other: no concatenated copy of a line or a raster band.
        n = len(a) + (len(b) if b else 0) + (len(c) if c else 0) + (len(d) if d else 0)
        now = await self._room(n)
        await self._write(a)
        for part in (b, c, d):
            if part:
                await self._write(part)
        self._sent(now, n, cost_ms)

    # ---- receipt ----------------------------------------------------------------------------

    async def _text_line(self, text, on=None, off=None, height=1):
        # A line longer than the paper is sent a printed line at a time (the printer wraps it
        # anyway): one long chunk could be more than the printer's whole buffer.
        cols = _COLUMNS // height
        while len(text) > cols:
            await self._chunk(self._line_ms * height, on or b"", text[:cols])
            on = None
            text = text[cols:]
        await self._chunk(self._line_ms * height, on or b"", text, b"\n", off)

    async def _raster(self, width, height, data, align_center=True):
        wb = width // 8
        rows = max(1, (self._check_bytes - 8) // wb)
        hdr = self._hdr
        if align_center:
            await self._chunk(0, _CENTER)
        y = 0
        mv = memoryview(data)
        while y < height:
            r = min(rows, height - y)
            hdr[0], hdr[1], hdr[2], hdr[3] = _GS, 0x76, 0x30, 0
            hdr[4], hdr[5], hdr[6], hdr[7] = wb & 0xFF, wb >> 8, r, 0
            # A band of 24 dot rows takes the mechanism about one text line.
            await self._chunk((r * self._line_ms + 23) // 24, hdr, mv[y * wb:(y + r) * wb])
            y += r
        if align_center:
            await self._chunk(0, _LEFT)

    async def _qr_code(self, data):
        modules = qr_modules(len(data))
        if not self._qr or not modules or len(data) + 8 > self._budget:
            await self._text_line(data, _CENTER, _LEFT)
            return
        store = self._qr_store
        n = len(data) + 3
        store[3], store[4] = n & 0xFF, n >> 8
        await self._chunk(0, _CENTER, _QR_SETUP)
        await self._chunk(0, store, data)
        rows = modules * QR_MODULE_DOTS
        await self._chunk((rows * self._line_ms + 23) // 24 + self._line_ms, _QR_PRINT,
                          b"\n", _LEFT)

    async def _directive(self, line):
        sp = line.find(" ")
        word = line[1:] if sp < 0 else line[1:sp]
        arg = b"" if sp < 0 else _ascii(line[sp + 1:])
        if word == "LOGO":
            if self._logo is not None:
                await self._raster(*self._logo)
        elif word == "QR":
            await self._qr_code(arg)
        elif word == "BIG":
            await self._text_line(arg, _CENTER + _BIG_ON, _BIG_OFF + _LEFT, 2)
        elif word == "CENTER":
            await self._text_line(arg, _CENTER, _LEFT)
        elif word == "BOLD":
            await self._text_line(arg, _BOLD_ON, _BOLD_OFF)
        elif arg:  # a directive we do not know: its text still reaches the paper
            await self._text_line(arg)

    async def print_text(self, text):
        """Print a receipt (lines separated by newlines, 32 columns). Returns once the last
        line is estimated printed and the printer still reports paper."""
        if self._busy:
            raise RuntimeError("printer busy")
        self._busy = True
        try:
            now = self._tb.ticks_ms()
            self._uart_free = self._mech_free = now
            self._count = self._in_flight = 0
            self._since_check = 0
            await self._check()
            await self._chunk(self._line_ms, _INIT, self._heat)
            start = 0
            end = len(text)
            if end and text[end - 1] == "\n":
                end -= 1
            while start <= end:
                nl = text.find("\n", start)
                if nl < 0 or nl > end:
                    nl = end
                line = text[start:nl]
                if line.startswith("^") and len(line) > 1 and "A" <= line[1] <= "Z":
                    await self._directive(line)
                else:
                    await self._text_line(_ascii(line))
                start = nl + 1
            await self._chunk(self._line_ms * _FEED_LINES, b"\x1bd", bytes((_FEED_LINES,)),
                              _CUT if self._cut else None)
            wait = ticks_diff(self._mech_free, self._tb.ticks_ms())
            if self._cut:
                wait += 300  # the cutter's stroke
            if wait > 0:
                await self._tb.wait_ms(wait)
            await self._check()
        finally:
            self._busy = False


def _ascii(text):
    """The printer's code page is PC437: anything beyond ASCII prints as '?'."""
    try:
        return text.encode("ascii")
    except UnicodeError:
        return bytes((ord(c) if ord(c) < 128 else 63) for c in text)
