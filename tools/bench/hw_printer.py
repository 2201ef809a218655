"""Receipt print time on the ESC/POS printer model, in its virtual time, run ON MicroPython:

    .venv/bin/micropython tools/bench/hw_printer.py

For 9600 and 19200 baud: the time `EscPosPrinter.print_text` takes for one receipt
(firmware/receipt.render of a sample purchase), from the first status query to the final one
after the last line, against the bound bytes/(baud/10) + lines x line_ms (the UART's time and
the mechanism's time end to end, without overlap), as a ratio. Below 1 means the driver keeps
the UART and the mechanism working at once; the status queries are counted in the bytes.
"""

import sys

sys.path.insert(0, "")

import asyncio  # noqa: E402

from drivers.escpos import EscPosPrinter  # noqa: E402
from firmware import receipt  # noqa: E402
from firmware.settings import DEFAULTS  # noqa: E402
from tools.models.escpos import rig  # noqa: E402

LINE_MS = 60
TXN = {"stan": 42, "batch": 1, "amount": 1250, "l4": "0010", "t": (2026, 7, 5, 10, 15, 0),
       "rrn": "000000000042", "auth": "A1B2C3"}


def run(baud, text, **printer_options):
    model, uart, tb = rig(baud, line_ms=LINE_MS)
    printer = EscPosPrinter(uart, baudrate=baud, line_ms=LINE_MS, timebase=tb,
                            **printer_options)
    start = tb.ticks_ms()
    asyncio.run(printer.print_text(text))
    took = tb.ticks_ms() - start
    lines = 0
    for entry in model.paper:
        if entry[0] == "text":
            lines += entry[2][3]
        elif entry[0] in ("raster", "qr"):
            rows = entry[2] if entry[0] == "raster" else entry[2] * entry[3]
            lines += (rows + 23) // 24
    bound = uart.bytes * 10000 // baud + lines * LINE_MS
    assert not model.overrun and model.idle()
    return took, uart.bytes, lines, bound, model.max_fill


def main():
    text = receipt.render(DEFAULTS, TXN, 1, False)
    logo = (384, 48, bytes(48 * 48))
    print("ESC/POS receipt print time (model, virtual time), line_ms=%d, buffer 256 bytes"
          % LINE_MS)
    print("%-24s %6s %7s %6s %6s %8s %6s %9s" % ("receipt", "baud", "time_ms", "bytes",
                                                 "lines", "bound_ms", "ratio", "max_fill"))
    for name, body, opts in (("plain (receipt.render)", text, {}),
                             ("with 384x48 logo", "^LOGO\n" + text, {"logo": logo})):
        for baud in (9600, 19200):
            took, nbytes, lines, bound, fill = run(baud, body, **opts)
            print("%-24s %6d %7d %6d %6d %8d %6.2f %9d" % (name, baud, took, nbytes, lines,
                                                           bound, took / bound, fill))


main()
