"""The printer model's paper as a PNG (CPython, Pillow): 384 dots wide, ink where the text is."""

import asyncio

from PIL import Image

from drivers.escpos import EscPosPrinter
from firmware import receipt
from firmware.settings import DEFAULTS
from tools.models.escpos import rig
from tools.models.escpos_png import CELL_H, LINE_GAP, MARGIN, WIDTH, render_png

TXN = {"stan": 42, "batch": 1, "amount": 1250, "l4": "0010", "t": (2026, 7, 5, 10, 15, 0),
       "rrn": "000000000042", "auth": "A1B2C3"}


def _dark(img, box):
    return sum(1 for p in img.crop(box).getdata() if p < 128)


def test_png_of_a_printed_receipt(tmp_path):
    model, uart, tb = rig(19200)
    logo = (128, 24, bytes([0xF0]) * (16 * 24))
    printer = EscPosPrinter(uart, baudrate=19200, timebase=tb, logo=logo, cut=True)
    text = "^LOGO\n^BIG THANKS\n^QR https://pay.example/r/42\n" + \
        receipt.render(DEFAULTS, TXN, 2, False)
    asyncio.run(printer.print_text(text))
    path = tmp_path / "receipt.png"
    render_png(model, path)
    img = Image.open(path).convert("L")
    assert img.width == WIDTH
    assert img.height > 30 * 20
    assert _dark(img, (0, 0, img.width, img.height)) > 2000
    # The logo (centred, 128 wide) is ink in the middle of its rows, paper at the sides.
    assert _dark(img, (128, MARGIN, 256, MARGIN + 24)) > 128 * 24 // 3
    assert _dark(img, (0, MARGIN, 120, MARGIN + 24)) == 0


def test_png_rows_follow_the_text_lines(tmp_path):
    lines = ["X" * 32, "", "left", ("text", "CENTRE", (1, True, 2, 2))]
    img = render_png(lines, tmp_path / "lines.png").convert("L")
    pitch = CELL_H + LINE_GAP
    assert img.width == WIDTH
    assert _dark(img, (0, MARGIN, WIDTH, MARGIN + CELL_H)) > 32 * 10  # a full line of X
    assert _dark(img, (0, MARGIN + pitch, WIDTH, MARGIN + pitch + CELL_H)) == 0  # blank line
    row = MARGIN + 2 * pitch
    assert _dark(img, (0, row, 4 * 12, row + CELL_H)) > 20  # "left" at the left edge
    assert _dark(img, (200, row, WIDTH, row + CELL_H)) == 0
    row += pitch
    assert _dark(img, (0, row, 100, row + 2 * CELL_H)) == 0  # the centred big line
    assert _dark(img, (120, row, 264, row + 2 * CELL_H)) > 100
