# portable: micropython
"""ESC/POS printer driver against the printer model: exact bytes, a whole receipt, directives,
paper out mid-receipt, no overrun at 9600 and 19200 baud, garbage and silent status."""

import asyncio

from drivers.escpos import (
    STATUS_DLE,
    STATUS_ESCV,
    CoverOpen,
    EscPosPrinter,
    PaperOut,
    PrinterSilent,
)
from firmware import receipt
from firmware.settings import DEFAULTS
from tools.models.escpos import rig

TXN = {"stan": 42, "batch": 1, "amount": 1250, "l4": "0010", "t": (2026, 7, 5, 10, 15, 0),
       "rrn": "000000000042", "auth": "A1B2C3"}
INIT = b"\x1b@\x1b7\x07\x50\x02"
FEED = b"\x1bd\x02"


# What a Tap records, allocated once at import while the heap is whole: a growing or a fresh
# buffer per test would take, from a fragmented heap, what the code under test runs in.
_RECORD = bytearray(8192)


class Tap:
    """The UART as the driver sees it, recording every byte written (in _RECORD: one Tap at a
    time)."""

    def __init__(self, uart):
        self.uart = uart
        self.baudrate = uart.baudrate
        self._record = _RECORD
        self._n = 0

    @property
    def written(self):
        return memoryview(self._record)[:self._n]

    def write(self, buf):
        n = self.uart.write(buf)
        end = self._n + n
        if end > len(self._record):
            raise AssertionError("Tap: more than %d bytes written" % len(self._record))
        self._record[self._n:end] = buf[:n]
        self._n = end
        return n

    def any(self):
        return self.uart.any()

    def read(self, n=-1):
        return self.uart.read(n)

    def txdone(self):
        return self.uart.txdone()


def _setup(baud=9600, printer=None, **model_options):
    model, uart, tb = rig(baud, **model_options)
    tap = Tap(uart)
    opts = {"baudrate": baud, "timebase": tb}
    opts.update(printer or {})
    return model, tap, EscPosPrinter(tap, **opts), tb


def _print(printer, text):
    asyncio.run(printer.print_text(text))


def _raises(printer, text, kinds):
    try:
        _print(printer, text)
    except kinds as e:
        return e
    raise AssertionError("no exception")


def _payload(written):
    """The bytes written with the status queries taken out."""
    return bytes(written).replace(STATUS_DLE, b"").replace(STATUS_ESCV, b"")


def _receipt(copy=1, reprint=False):
    return receipt.render(DEFAULTS, TXN, copy, reprint)


def _logo(width=384, height=48):
    # Includes bytes that read as DLE EOT 4 and ESC v 0: the model answers them as a real
    # printer would, and the driver must not take those answers for its own.
    row = bytearray(width // 8)
    for i in range(len(row)):
        row[i] = (i * 37) & 0xFF
    row[0:6] = b"\x10\x04\x04\x1bv\x00"
    return (width, height, bytes(row) * height)


def test_exact_bytes_init_text_feed():
    model, tap, printer, _ = _setup()
    _print(printer, "HELLO\n")
    assert bytes(tap.written).startswith(STATUS_DLE)  # status before anything else
    assert bytes(tap.written).endswith(STATUS_DLE)  # and after the last line
    assert _payload(tap.written) == INIT + b"HELLO\n" + FEED
    assert model.heat == (7, 80, 2)
    assert model.text() == "HELLO\n\n"


def test_exact_bytes_styles_alignment_cut():
    model, tap, printer, _ = _setup(printer={"cut": True, "heat": (11, 120, 40)})
    _print(printer, "^BOLD B\n^CENTER C\n^BIG G\nplain\n")
    assert _payload(tap.written) == (
        b"\x1b@\x1b7\x0b\x78\x28"
        b"\x1bE\x01B\n\x1bE\x00"
        b"\x1ba\x01C\n\x1ba\x00"
        b"\x1ba\x01\x1d!\x11G\n\x1d!\x00\x1ba\x00"
        b"plain\n" + FEED + b"\x1dV\x01")
    texts = [e for e in model.paper if e[0] == "text"]
    assert texts[0] == ("text", "B", (0, True, 1, 1))
    assert texts[1] == ("text", "C", (1, False, 1, 1))
    assert texts[2] == ("text", "G", (1, False, 2, 2))
    assert texts[3] == ("text", "plain", (0, False, 1, 1))
    assert model.paper[-1] == ("cut",)
    assert model.heat == (11, 120, 40)
    assert model.text().split("\n")[:4] == ["B", "               C", "       G", "plain"]


def test_status_query_bytes_and_answers():
    model, tap, printer, tb = _setup()
    assert printer.paper_ok()
    assert bytes(tap.written) == STATUS_DLE
    assert printer.paper_ok()  # cached: no second query
    assert bytes(tap.written) == STATUS_DLE
    model.set_paper_out()
    tb.sleep_ms(1000)
    assert not printer.paper_ok()
    model.load_paper()
    model.cover_open = True
    tb.sleep_ms(1000)
    assert not printer.paper_ok()
    _raises(printer, "X\n", CoverOpen)
    model.cover_open = False
    tb.sleep_ms(1000)
    assert printer.paper_ok()

    model, tap, printer, tb = _setup(printer={"status": "escv"})
    assert printer.paper_ok()
    assert bytes(tap.written) == b"\x1bv\x00"
    model.set_paper_out()
    tb.sleep_ms(1000)
    assert not printer.paper_ok()


def test_full_receipt_prints_every_line():
    for copy, reprint in ((1, False), (2, True)):
        text = _receipt(copy, reprint)
        model, tap, printer, _ = _setup()
        _print(printer, text)
        assert model.idle()  # print_text returns once the paper shows it all
        printed = model.text()
        for line in text.split("\n"):
            if line.startswith("^QR "):
                continue  # a picture, not text
            if line.startswith("^"):
                line = line.split(" ", 1)[1]  # ^BIG: its text, printed large
            assert line in printed, line
        assert "^" not in printed
        assert [e[1] for e in model.paper if e[0] == "qr"] == (["000000000042"] if copy == 2
                                                               else [])
        assert ("REPRINT" in printed) == reprint
        assert not model.overrun and not model.unknown
        assert len(model.jobs()) == 1


def test_directives_never_printed_literally():
    model, tap, printer, _ = _setup(printer={"logo": _logo(128, 24)})
    _print(printer, "^LOGO\n^QR https://pay.example/r/42\n^BIG THANKS\n^CENTER hi\n"
           "^BOLD TOTAL\n^NEWTHING text kept\n" + _receipt())
    printed = model.text(images=True)
    assert "^" not in printed
    assert "text kept" in printed
    kinds = [e[0] for e in model.paper]
    assert kinds[0] == "raster" and model.paper[0][1:3] == (128, 24)
    assert model.paper[0][4] == 1  # centred
    assert ("qr", "https://pay.example/r/42", 25, 4, 1) in model.paper
    assert "TRACE NO" in printed and not model.overrun

    # No QR support: the data is printed as text; no logo given: ^LOGO prints nothing.
    model, tap, printer, _ = _setup(printer={"qr": False})
    _print(printer, "^LOGO\n^QR https://pay.example/r/42\n")
    assert model.text() == "    https://pay.example/r/42\n\n"
    written = bytes(tap.written)
    assert b"\x1d(k" not in written and b"\x1dv0" not in written


def test_paper_out_mid_receipt_raises_and_shows_the_partial():
    text = _receipt()
    model, tap, printer, tb = _setup(paper_lines=8)
    _raises(printer, text, PaperOut)
    partial = model.text()
    lines = text.split("\n")
    assert lines[0][len("^BIG "):] in partial and lines[6] in partial
    assert "APPROVED" not in partial
    assert not model.overrun
    assert not printer.paper_ok()
    # Paper loaded: what was queued prints out, then the core's reprint prints whole.
    model.load_paper()
    tb.sleep_ms(5000)
    assert printer.paper_ok()
    _print(printer, _receipt(1, True))
    jobs = model.jobs()
    assert "REPRINT" in jobs[-1] and "APPROVED" in jobs[-1] and "TRACE NO" in jobs[-1]
    assert not model.overrun


def test_buffer_never_overruns_at_9600_and_19200():
    for baud in (9600, 19200):
        for buffer_bytes in (256, 128):
            model, tap, printer, _ = _setup(baud, printer={"logo": _logo(),
                                                           "buffer_bytes": buffer_bytes},
                                            buffer_bytes=buffer_bytes)
            _print(printer, "^LOGO\n^QR https://pay.example/r/42\n" + _receipt() + _receipt(2))
            assert not model.overrun, (baud, buffer_bytes, model.lost)
            assert model.max_fill <= buffer_bytes
            assert model.paper[0][0] == "raster" and model.paper[0][2] == 48
            assert "KEEP FOR YOUR RECORDS" in model.text()


def test_unpaced_writes_would_overrun():
    # The model's buffer is real: the same bytes written flat out are lost.
    model, uart, tb = rig(19200)
    data = _receipt().encode() * 2
    off = 0
    while off < len(data):
        off += uart.write(data[off:])
        tb.sleep_ms(5)
    tb.sleep_ms(200)
    assert model.overrun and model.lost > 0


def test_garbage_status_handled():
    # Always garbage: no answer can be trusted, the print is refused; nothing hangs.
    model, tap, printer, _ = _setup()
    model.status_mode = "garbage"
    _raises(printer, _receipt(), (PrinterSilent, PaperOut, CoverOpen))
    assert not model.overrun
    assert not printer.paper_ok()
    # Sometimes garbage (a noisy line): the second try answers and the receipt prints.
    model, tap, printer, _ = _setup(seed=7)
    model.status_mode = "garbage"
    model.garbage_rate = 0.05
    _print(printer, _receipt())
    assert "APPROVED" in model.text() and not model.overrun


def test_silent_printer_handled():
    model, tap, printer, tb = _setup()
    model.status_mode = "silent"
    start = tb.ticks_ms()
    _raises(printer, _receipt(), PrinterSilent)
    assert tb.ticks_ms() - start < 1000  # bounded: two tries of the status timeout
    assert model.text() == ""  # nothing sent before the printer answered
    assert not printer.paper_ok()

    # Falls silent mid-receipt (unplugged): raised within a few lines, not at the timeout.
    model, tap, printer, tb = _setup()

    def unplug(m):
        if len(m.paper) == 6:
            m.powered = False

    model.on_line = unplug
    start = tb.ticks_ms()
    _raises(printer, _receipt(), PrinterSilent)
    assert tb.ticks_ms() - start < 2000
    assert len(model.paper) == 6


def test_escv_status_prints_and_sees_paper_out():
    model, tap, printer, _ = _setup(19200, printer={"status": "escv"})
    _print(printer, _receipt())
    assert "TRACE NO                  000042" in model.text()
    model, tap, printer, _ = _setup(19200, printer={"status": "escv"}, paper_lines=5)
    _raises(printer, _receipt(), PaperOut)
    assert not model.overrun


def test_long_lines_and_small_buffer_do_not_overrun():
    model, tap, printer, _ = _setup(19200, printer={"buffer_bytes": 96}, buffer_bytes=96)
    long_line = "0123456789" * 20
    _print(printer, long_line + "\n^BOLD " + long_line + "\n^QR " + "Q" * 100 + "\n")
    assert not model.overrun
    printed = model.text()
    assert printed.replace("\n", "").startswith(long_line + long_line)
    assert model.text().split("\n")[0] == long_line[:32]
    assert "Q" * 32 in printed  # too big for this buffer as a QR: printed as text
