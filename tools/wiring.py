"""Writes docs/wiring.md and a wiring diagram per board from the boards' PINS (the one place the
pin maps live), so the docs cannot drift from the code.

    python -m tools.wiring            # rewrite docs/wiring.md and docs/wiring-<board>.png
    python -m tools.wiring --check    # exit 1 if docs/wiring.md is stale (used by the tests)
"""

import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOARDS = (("esp32_devkitc", "ESP32 DevKitC (ESP32-WROOM-32)"),
          ("esp32_s3_devkitc", "ESP32-S3 DevKitC-1"))
KEY_ROWS = ("123A", "456B", "789C", "*0#D")


def connections(pins):
    """[(module, module pin, GPIO or supply, note)] for one board's PINS."""
    spi, i2c, uart = pins["spi"], pins["i2c"], pins["uart"]
    rows = []
    rows += [
        ("RC522 (SPI)", "SDA (CS)", pins["reader_cs"], ""),
        ("RC522 (SPI)", "SCK", spi["sck"], "%d MHz" % (spi["baudrate"] // 1000000)),
        ("RC522 (SPI)", "MOSI", spi["mosi"], ""),
        ("RC522 (SPI)", "MISO", spi["miso"], ""),
        ("RC522 (SPI)", "RST", pins["reader_rst"], ""),
        ("RC522 (SPI)", "3.3V / GND", "3V3 / GND", "3.3 V only: 5 V destroys it"),
        ("PN532 (I2C mode)", "SDA", i2c["sda"], "DIP switches: I2C = SEL0 on, SEL1 off"),
        ("PN532 (I2C mode)", "SCL", i2c["scl"], "address 0x24"),
        ("PN532 (I2C mode)", "RSTPDN", pins["reader_rst"], "optional"),
        ("PN532 (I2C mode)", "VCC / GND", "3V3 / GND", ""),
        ("SSD1306 OLED (I2C)", "SDA", i2c["sda"], "shared bus, address 0x3C (or 0x3D)"),
        ("SSD1306 OLED (I2C)", "SCL", i2c["scl"], "%d kHz" % (i2c["freq"] // 1000)),
        ("SSD1306 OLED (I2C)", "VCC / GND", "3V3 / GND", ""),
        ("Thermal printer (TTL)", "RX", uart["tx"], "UART %d TX" % uart["id"]),
        ("Thermal printer (TTL)", "TX", uart["rx"],
         "often 5 V: through a level shifter or a 10k/20k divider"),
        ("Thermal printer (TTL)", "GND", "GND", "common ground with the ESP32"),
        ("Thermal printer (TTL)", "VH / power", "own 5-9 V, 1-2 A supply",
         "never from the ESP32's 5 V pin: printing draws amps"),
    ]
    for i, gpio in enumerate(pins["keypad_rows"]):
        rows.append(("4x4 keypad", "row %d (%s)" % (i + 1, KEY_ROWS[i]), gpio,
                     "output, driven low in turn"))
    for i, gpio in enumerate(pins["keypad_cols"]):
        rows.append(("4x4 keypad", "column %d (%s)" % (
            i + 1, "".join(r[i] for r in KEY_ROWS)), gpio, "input, internal pull-up"))
    return rows


def pins_of(module):
    return importlib.import_module("boards." + module).PINS


def render_markdown():
    out = ["# Wiring", "",
           "Generated from the boards' `PINS` by `python -m tools.wiring`; do not edit by hand.",
           "Fit one card reader: the RC522 on SPI or the PN532 on I2C (the `reader` setting).",
           "The printer's supply must be its own: a thermal head draws 1 to 2 A while printing,",
           "which browns out an ESP32 fed from the same USB port.", ""]
    for module, title in BOARDS:
        out += ["## " + title, "", "![wiring](wiring-%s.png)" % module, "",
                "| module | module pin | ESP32 | note |", "|---|---|---|---|"]
        for mod, pin, gpio, note in connections(pins_of(module)):
            where = "GPIO %d" % gpio if isinstance(gpio, int) else gpio
            out.append("| %s | %s | %s | %s |" % (mod, pin, where, note))
        out.append("")
    return "\n".join(out)


def render_png(module, title, path):
    from PIL import Image, ImageDraw

    rows = connections(pins_of(module))
    modules = []
    for mod, *_ in rows:
        if mod not in modules:
            modules.append(mod)
    line_h, width = 22, 1100
    height = 60 + 20 + sum(line_h * sum(1 for r in rows if r[0] == m) + 28 + 2 * line_h - 10
                           for m in modules)
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    draw.text((20, 15), "Wiring: " + title, fill="black")
    board_box = (760, 50, 1060, height - 20)
    draw.rectangle(board_box, outline="black", width=2, fill=(230, 240, 255))
    draw.text((board_box[0] + 10, board_box[1] + 8), title, fill="black")
    colours = [(200, 40, 40), (30, 120, 30), (30, 60, 200), (160, 90, 0), (120, 0, 140),
               (0, 120, 130)]
    y = 60
    for m_index, mod in enumerate(modules):
        mine = [r for r in rows if r[0] == mod]
        top = y
        box_h = line_h * len(mine) + 28
        colour = colours[m_index % len(colours)]
        draw.rectangle((20, top, 260, top + box_h), outline=colour, width=2)
        draw.text((28, top + 6), mod, fill=colour)
        for i, (_, pin, gpio, note) in enumerate(mine):
            py = top + 26 + i * line_h
            draw.text((40, py - 6), pin, fill="black")
            where = "GPIO %d" % gpio if isinstance(gpio, int) else str(gpio)
            on_board = isinstance(gpio, int) or where in ("GND", "3V3 / GND")
            if on_board:
                draw.line((200, py, board_box[0], py), fill=colour, width=2)
                draw.ellipse((board_box[0] - 4, py - 4, board_box[0] + 4, py + 4), fill=colour)
                draw.text((board_box[0] + 12, py - 6), where, fill="black")
            else:  # a supply of its own, not a pin of the board
                draw.text((270, py - 2), "-> " + where, fill=colour)
            if note:
                draw.text((270, py - 16), note[:70], fill=(90, 90, 90))
        y = top + box_h + 2 * line_h - 10
    img.save(path)


def main(argv):
    md_path = ROOT / "docs" / "wiring.md"
    text = render_markdown()
    if "--check" in argv:
        return 0 if md_path.read_text() == text else 1
    md_path.write_text(text)
    for module, title in BOARDS:
        render_png(module, title, ROOT / "docs" / ("wiring-%s.png" % module))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
