"""ESP32-S3 DevKitC-1: the pin map and the buses, nothing else.

Every GPIO choice is here and only here; docs/wiring.md and its diagram are generated from
PINS (python -m tools.wiring). Why these pins:
- SPI 2 (FSPI) on 12/11/13 with CS 10: its IO-MUX pins, full speed.
- I2C on 8/9, shared by the OLED (0x3C) and a PN532 (0x24).
- UART 1 on 17/18 for the printer; UART 0 and the native USB stay the console.
- GPIO 26-37 are taken by the octal flash/PSRAM on N8R8/N16R8 modules; 0, 3, 45, 46 are
  strapping pins; 19/20 are the native USB: none used.
"""

PINS = {
    "spi": {"id": 2, "sck": 12, "mosi": 11, "miso": 13, "baudrate": 5000000},
    "reader_cs": 10,
    "reader_rst": 14,
    "i2c": {"id": 0, "sda": 8, "scl": 9, "freq": 400000},
    "uart": {"id": 1, "tx": 17, "rx": 18},
    "keypad_rows": (4, 5, 6, 7),
    "keypad_cols": (15, 16, 1, 2),
    "keypad_timer": 1,
}


def mount():
    return ""


def device_id():
    from boards import esp32_devkitc

    return esp32_devkitc.device_id()


def buses(settings):
    from boards import esp32_devkitc

    return esp32_devkitc.buses(settings, PINS)


def display_board(settings):
    from boards import esp32_devkitc

    return esp32_devkitc.display_board(settings, PINS)


def build(settings):
    from boards import esp32_devkitc

    # Same modules, same assembly: only the pin map differs.
    return esp32_devkitc.build(settings, PINS)
