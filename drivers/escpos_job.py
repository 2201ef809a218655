"""Printing a receipt on the ESC/POS printer of drivers/escpos.py: the pacing, the lines and the
directives. Functions of the printer `p` (an EscPosPrinter, whose state they keep), imported by
its print_text() for a receipt and let go after: a card read never needs them in the heap.
"""

try:
    from micropython import const
except ImportError:  # CPython without the test shims

    def const(value):
        return value


try:
    from time import ticks_add, ticks_diff
except ImportError:  # CPython: tests drive the driver through an injected timebase

    def ticks_diff(a, b):
        return a - b

    def ticks_add(a, b):
        return a + b


from drivers.escpos import CoverOpen, PaperOut, PrinterSilent

_GS = const(0x1D)

_INIT = const(b"\x1b@")
_BOLD_ON = const(b"\x1bE\x01")
_BOLD_OFF = const(b"\x1bE\x00")
_CENTER = const(b"\x1ba\x01")
_LEFT = const(b"\x1ba\x00")
_BIG_ON = const(b"\x1d!\x11")  # GS ! : double width and double height
_BIG_OFF = const(b"\x1d!\x00")
_CUT = const(b"\x1dV\x01")  # partial cut: leaves a tab, the usual choice on receipt printers
# QR (GS ( k, function 165/167/169/180/181): model 2, module size 4 dots, error correction M.
_QR_SETUP = const(b"\x1d(k\x04\x001A2\x00" b"\x1d(k\x03\x001C\x04" b"\x1d(k\x03\x001E1")
_QR_PRINT = const(b"\x1d(k\x03\x001Q0")
QR_MODULE_DOTS = 4
# Byte-mode capacity at error correction M, versions 1 to 10 (ISO/IEC 18004 table 7).
QR_CAPACITY_M = (14, 26, 42, 62, 84, 106, 122, 152, 180, 213)

_COLUMNS = const(32)  # font A, 12 dots wide, on 384 dots
_RING = const(32)  # the ring drivers/escpos.py allocates
_POLL_MS = const(2)
_FEED_LINES = const(2)  # from the head to the tear bar / cutter, past the receipt's own blanks


def qr_modules(n):
    """Modules per side of the QR code holding n bytes (versions 1-10), 0 if too long."""
    for i in range(len(QR_CAPACITY_M)):
        if n <= QR_CAPACITY_M[i]:
            return 17 + 4 * (i + 1)
    return 0


async def _check(p):
    """Raise PaperOut, CoverOpen or PrinterSilent; two tries, each bounded in time."""
    if p._status is None:
        return
    # A status query behind bytes still in the UART could be answered by raster data that
    # happens to read as one: ask only once the line is quiet.
    while hasattr(p._uart, "txdone") and not p._uart.txdone():
        await p._tb.wait_ms(_POLL_MS)
    for _ in range(2):
        n = p._query()
        start = p._tb.ticks_ms()
        got = 0
        while got < n and ticks_diff(p._tb.ticks_ms(), start) < p._status_timeout:
            await p._tb.wait_ms(_POLL_MS)
            got = p._finish_answer(got, n)
        if got == n:
            try:
                fault = p._parse(n)
            except ValueError:
                continue
            p._paper = fault is not PaperOut and fault is not CoverOpen
            p._paper_at = p._tb.ticks_ms()
            p._since_check = 0
            if fault is not None:
                raise fault()
            return
    p._paper = False
    raise PrinterSilent()


def _retire(p, now):
    while p._count and ticks_diff(now, p._done_at[p._head]) >= 0:
        p._in_flight -= p._size[p._head]
        p._head = (p._head + 1) % _RING
        p._count -= 1


async def _room(p, n):
    """Wait until n more bytes keep the printer's buffer within budget; check status
    every `_check_bytes`."""
    if p._since_check and p._since_check + n > p._check_bytes:
        await _check(p)
    while True:
        now = p._tb.ticks_ms()
        _retire(p, now)
        if p._count < _RING and (p._in_flight + n <= p._budget or not p._count):
            return now
        wait = ticks_diff(p._done_at[p._head], now)
        await p._tb.wait_ms(wait if wait > 0 else 1)


async def _write(p, buf):
    mv = memoryview(buf)
    off = 0
    while off < len(buf):
        off += p._uart.write(mv[off:]) or 0
        if off < len(buf):
            await p._tb.wait_ms(_POLL_MS)


def _sent(p, now, n, cost_ms):
    """Book a chunk of n bytes that takes the mechanism cost_ms once it has arrived."""
    if ticks_diff(p._uart_free, now) < 0:
        p._uart_free = now
    p._uart_free = ticks_add(p._uart_free, (n * p._byte_us + 999) // 1000)
    start = p._uart_free
    if ticks_diff(p._mech_free, start) > 0:
        start = p._mech_free
    p._mech_free = ticks_add(start, cost_ms)
    i = (p._head + p._count) % _RING
    p._done_at[i] = p._mech_free
    p._size[i] = n
    p._count += 1
    p._in_flight += n
    p._since_check += n


async def _chunk(p, cost_ms, a, b=None, c=None, d=None):
    # Parts written one after the other: no concatenated copy of a line or a raster band.
    n = len(a) + (len(b) if b else 0) + (len(c) if c else 0) + (len(d) if d else 0)
    now = await _room(p, n)
    await _write(p, a)
    for part in (b, c, d):
        if part:
            await _write(p, part)
    _sent(p, now, n, cost_ms)


async def _text_line(p, text, on=None, off=None, height=1):
    # A line longer than the paper is sent a printed line at a time (the printer wraps it
    # anyway): one long chunk could be more than the printer's whole buffer.
    cols = _COLUMNS // height
    while len(text) > cols:
        await _chunk(p, p._line_ms * height, on or b"", text[:cols])
        on = None
        text = text[cols:]
    await _chunk(p, p._line_ms * height, on or b"", text, b"\n", off)


async def _raster(p, width, height, data, align_center=True):
    wb = width // 8
    rows = max(1, (p._check_bytes - 8) // wb)
    hdr = p._hdr
    if align_center:
        await _chunk(p, 0, _CENTER)
    y = 0
    mv = memoryview(data)
    while y < height:
        r = min(rows, height - y)
        hdr[0], hdr[1], hdr[2], hdr[3] = _GS, 0x76, 0x30, 0
        hdr[4], hdr[5], hdr[6], hdr[7] = wb & 0xFF, wb >> 8, r, 0
        # A band of 24 dot rows takes the mechanism about one text line.
        await _chunk(p, (r * p._line_ms + 23) // 24, hdr, mv[y * wb:(y + r) * wb])
        y += r
    if align_center:
        await _chunk(p, 0, _LEFT)


async def _qr_code(p, data):
    modules = qr_modules(len(data))
    if not p._qr or not modules or len(data) + 8 > p._budget:
        await _text_line(p, data, _CENTER, _LEFT)
        return
    store = p._qr_store
    n = len(data) + 3
    store[3], store[4] = n & 0xFF, n >> 8
    await _chunk(p, 0, _CENTER, _QR_SETUP)
    await _chunk(p, 0, store, data)
    rows = modules * QR_MODULE_DOTS
    await _chunk(p, (rows * p._line_ms + 23) // 24 + p._line_ms, _QR_PRINT,
                      b"\n", _LEFT)


async def _directive(p, line):
    sp = line.find(" ")
    word = line[1:] if sp < 0 else line[1:sp]
    arg = b"" if sp < 0 else _ascii(line[sp + 1:])
    if word == "LOGO":
        if p._logo is not None:
            await _raster(p, *p._logo)
    elif word == "QR":
        await _qr_code(p, arg)
    elif word == "BIG":
        await _text_line(p, arg, _CENTER + _BIG_ON, _BIG_OFF + _LEFT, 2)
    elif word == "CENTER":
        await _text_line(p, arg, _CENTER, _LEFT)
    elif word == "BOLD":
        await _text_line(p, arg, _BOLD_ON, _BOLD_OFF)
    elif arg:  # a directive we do not know: its text still reaches the paper
        await _text_line(p, arg)


async def print_text(p, text):
    """EscPosPrinter.print_text: the receipt `text` on the printer `p`."""
    if p._busy:
        raise RuntimeError("printer busy")
    p._busy = True
    try:
        now = p._tb.ticks_ms()
        p._uart_free = p._mech_free = now
        p._count = p._in_flight = 0
        p._since_check = 0
        await _check(p)
        await _chunk(p, p._line_ms, _INIT, p._heat)
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
                await _directive(p, line)
            else:
                await _text_line(p, _ascii(line))
            start = nl + 1
        await _chunk(p, p._line_ms * _FEED_LINES, b"\x1bd", bytes((_FEED_LINES,)),
                     _CUT if p._cut else None)
        wait = ticks_diff(p._mech_free, p._tb.ticks_ms())
        if p._cut:
            wait += 300  # the cutter's stroke
        if wait > 0:
            await p._tb.wait_ms(wait)
        await _check(p)
    finally:
        p._busy = False


def _ascii(text):
    """The printer's code page is PC437: anything beyond ASCII prints as '?'."""
    try:
        return text.encode("ascii")
    except UnicodeError:
        return bytes((ord(c) if ord(c) < 128 else 63) for c in text)
