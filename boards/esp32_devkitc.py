"""ESP32 DevKitC (ESP32-WROOM-32, no PSRAM): the pin map and the buses, nothing else.

Every GPIO choice is here and only here; docs/wiring.md and its diagram are generated from
PINS (python -m tools.wiring). Modules: RC522 or PN532 reader, SSD1306 OLED, 4x4 membrane
keypad, TTL ESC/POS printer. Why these pins:
- VSPI (SPI 2) on its native pins 18/23/19 runs at full speed without the GPIO matrix.
- I2C on 21/22, the DevKitC's customary SDA/SCL, shared by the OLED (0x3C) and a PN532 (0x24).
- UART 2 on 17/16 for the printer; UART 0 stays the USB console and REPL.
- Keypad columns need internal pull-ups, so none of the input-only GPIOs 34-39 (no pull-ups).
  GPIO 15 is a strapping pin (boot log on/off); a column is only ever pulled up or briefly
  pulled low by a held key, so it boots normally unless a key is held at reset.
- GPIO 6-11 are the flash: never used.
- Hardware timer 1 scans the keypad every 5 ms (drivers/keypad.py); timer 0 stays free for a
  UART's IRQ_RXIDLE, which the port builds on it.
"""

PINS = {
    "spi": {"id": 2, "sck": 18, "mosi": 23, "miso": 19, "baudrate": 5000000},
    "reader_cs": 5,
    "reader_rst": 4,
    "i2c": {"id": 0, "sda": 21, "scl": 22, "freq": 400000},
    "uart": {"id": 2, "tx": 17, "rx": 16},
    "keypad_rows": (13, 14, 27, 26),
    "keypad_cols": (25, 33, 32, 15),
    "keypad_timer": 1,
}


def mount():
    """The ESP32 port mounts its littlefs at / before main.py runs."""
    return ""


def device_id():
    """The chip's unique ID (its factory MAC address): the device key's input
    (firmware/keystore.py)."""
    from machine import unique_id

    return unique_id()


def buses(settings, pins=PINS):
    """The buses and pins of `pins` (this board's, or another ESP32 board's), as keyword
    arguments for boards.common.assemble (tools/hwcheck.py uses them one by one)."""
    from machine import SPI, UART, Pin, Timer

    p = pins
    spi = SPI(p["spi"]["id"], baudrate=p["spi"]["baudrate"], sck=Pin(p["spi"]["sck"]),
              mosi=Pin(p["spi"]["mosi"]), miso=Pin(p["spi"]["miso"]))
    i2c = _i2c(p)
    uart = UART(p["uart"]["id"], baudrate=settings["printer_baud"], tx=p["uart"]["tx"],
                rx=p["uart"]["rx"], timeout=0)
    rows = [Pin(n, Pin.OUT, value=1) for n in p["keypad_rows"]]
    cols = [Pin(n, Pin.IN, Pin.PULL_UP) for n in p["keypad_cols"]]
    return {"spi": spi, "i2c": i2c, "uart": uart, "rows": rows, "cols": cols,
            "keypad_timer": Timer(p["keypad_timer"]),
            "reader_cs": Pin(p["reader_cs"], Pin.OUT, value=1),
            "reader_rst": Pin(p["reader_rst"], Pin.OUT, value=1)}


def _i2c(p):
    from machine import I2C, Pin

    return I2C(p["i2c"]["id"], sda=Pin(p["i2c"]["sda"]), scl=Pin(p["i2c"]["scl"]),
               freq=p["i2c"]["freq"])


def display_board(settings, pins=PINS):
    """The display alone, on a board whose other parts cannot start: firmware/startup.py says
    a boot error on it."""
    from boards.common import Board, make_display

    board = Board()
    board.display = make_display(settings, i2c=_i2c(pins))
    return board


# What Wi-Fi and one TLS session need of the IDF's heap, beside MicroPython's (the figure the
# ESP32 port's heap sizing leaves them: MicroPython PR 13219).
IDF_RESERVE = 40 * 1024


def free_heap():
    """Heap the firmware may still use. gc.mem_free() counts, besides the free bytes of the GC
    heap, the largest free block of the IDF's heap, which the GC heap grows into when it runs
    short (the ESP32 port's split heap); of that, what Wi-Fi and TLS need is not ours."""
    import gc

    import esp32

    regions = esp32.idf_heap_info(esp32.HEAP_DATA)  # (total, free, largest free block, min)
    largest = max(region[2] for region in regions)
    idf_free = sum(region[1] for region in regions)
    return gc.mem_free() - largest + max(0, min(largest, idf_free - IDF_RESERVE))


def set_clock(unix_seconds):
    """The RTC to UTC from NTP. RTC.datetime wants (y, m, d, weekday, h, min, s, subseconds);
    firmware.app.calendar knows the port's epoch (2000 on the ESP32)."""
    from machine import RTC

    from firmware.app import calendar

    t = calendar(unix_seconds)
    RTC().datetime((t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0))


def build(settings, pins=PINS):
    from boards.common import assemble

    board = assemble(settings, root="", **buses(settings, pins))
    board.set_clock = set_clock
    board.free_heap = free_heap
    if settings["wifi_ssid"]:
        import network

        # Created here, when there is a network to join: the radio and its buffers cost heap.
        board.wlan = network.WLAN(network.STA_IF)
    return board
