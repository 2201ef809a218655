"""Assembles the terminal's peripherals from buses and pins a board profile built.

Board profiles (one file per board) own the pin maps and construct the buses; this module only
chooses drivers by the settings (`reader`, `display`, ...) and hands each its bus, so the same
assembly serves every ESP32 board and the simulated board, and the core never knows which
chips are fitted.
"""

import binascii


class Board:
    """What the runtime uses: `reader`, `keypad`, `display`, `printer`, and `root`, the flash
    root. A profile may add `wlan`, `set_clock(unix_seconds)`, `free_heap()`; the simulated
    board also `start()`, `log(line)`, `report(state)`, `fatal`.

    No methods: the board outlives this module, which firmware/startup.py drops after boot, and
    a method would keep the whole module in the heap through its globals."""


def make_reader(settings, *, spi=None, i2c=None, cs=None, rst=None, clock=None, sleep_us=None):
    kind = settings["reader"]
    key = binascii.unhexlify(settings["classic_key"])
    if kind == "rc522":
        from drivers.mfrc522 import MFRC522, RC522Reader

        return RC522Reader(MFRC522(spi, cs, rst=rst, sleep_us=sleep_us), classic_key=key)
    from drivers.pn532 import PN532Reader

    # Card-side PDOL values the terminal knows before the amount is keyed.
    pdol = {0x5F2A: binascii.unhexlify("0" + settings["currency_code"])}
    if kind == "pn532_i2c":
        from drivers.pn532_i2c import PN532_I2C

        return PN532Reader(PN532_I2C(i2c, reset=rst, clock=clock), pdol_values=pdol)
    if kind == "pn532_spi":
        from drivers.pn532_spi import PN532_SPI

        return PN532Reader(PN532_SPI(spi, cs, reset=rst, clock=clock), pdol_values=pdol)
    raise ValueError("reader: unknown %r" % kind)


def make_display(settings, *, i2c=None, spi=None, dc=None, res=None, cs=None):
    from drivers.display import TextDisplay

    height = settings["display_height"]
    if settings["display"] == "ssd1306_i2c":
        from drivers.ssd1306 import SSD1306_I2C

        return TextDisplay(SSD1306_I2C(128, height, i2c, addr=settings["display_addr"]))
    if settings["display"] == "ssd1306_spi":
        from drivers.ssd1306_spi import SSD1306_SPI

        return TextDisplay(SSD1306_SPI(128, height, spi, dc, res, cs))
    raise ValueError("display: unknown %r" % settings["display"])


def make_printer(settings, uart, *, timebase=None):
    from drivers.escpos import EscPosPrinter

    status = settings["printer_status"]
    return EscPosPrinter(uart, baudrate=settings["printer_baud"],
                         line_ms=settings["printer_line_ms"],
                         buffer_bytes=settings["printer_buffer"],
                         status=None if status == "none" else status,
                         cut=settings["printer_cut"], timebase=timebase)


def make_keypad(settings, *, rows, cols, i2c, timer=None, ticks_ms=None):
    """The matrix on 8 GPIOs, or a TCA8418 controller on the I2C bus (docs/keypad.md); either
    scanned from the board's timer."""
    if settings["keypad"] == "tca8418":
        from drivers.tca8418 import TCA8418Keypad

        return TCA8418Keypad(i2c, addr=settings["keypad_addr"], timer=timer)
    from drivers.keypad import Keypad

    return Keypad(rows, cols, debounce_ms=settings["keypad_debounce_ms"], ticks_ms=ticks_ms,
                  timer=timer)


def assemble(settings, *, root, spi, i2c, uart, rows, cols, reader_cs, reader_rst,
             keypad_timer=None, clock=None, sleep_us=None, timebase=None, ticks_ms=None):
    board = Board()
    board.root = root
    board.reader = make_reader(settings, spi=spi, i2c=i2c, cs=reader_cs, rst=reader_rst,
                               clock=clock, sleep_us=sleep_us)
    board.keypad = make_keypad(settings, rows=rows, cols=cols, i2c=i2c, timer=keypad_timer,
                               ticks_ms=ticks_ms)
    board.display = make_display(settings, i2c=i2c)
    board.printer = make_printer(settings, uart, timebase=timebase)
    return board
