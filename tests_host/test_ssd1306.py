# portable: micropython
"""The SSD1306 driver and the text display against the controller model, at the bus level:
exact init bytes on I2C and SPI, GDDRAM equal to the framebuffer, only changed pages sent,
the 128x32 layout, a missing display, and the CPython framebuf shim rendering exactly as
MicroPython's framebuf does."""

import binascii

import framebuf

from drivers.display import TextDisplay, fit
from drivers.ssd1306 import SSD1306_I2C, DisplayError
from drivers.ssd1306_spi import SSD1306_SPI
from firmware import screens
from tools.models.bus import SimI2C, SimPin, SimSPI, VirtualClock
from tools.models.ssd1306 import SSD1306

SETTINGS = {"currency": "EUR", "merchant_name": "DEMO CAFE", "host_tls": "verify"}

INIT_64 = bytes((0xAE, 0xD5, 0x80, 0xA8, 0x3F, 0xD3, 0x00, 0x40, 0x8D, 0x14, 0x20, 0x00, 0xA1,
                 0xC8, 0xDA, 0x12, 0x81, 0xCF, 0xD9, 0xF1, 0xDB, 0x30, 0xA4, 0xA6, 0xAF))
INIT_32 = bytes((0xAE, 0xD5, 0x80, 0xA8, 0x1F, 0xD3, 0x00, 0x40, 0x8D, 0x14, 0x20, 0x00, 0xA1,
                 0xC8, 0xDA, 0x02, 0x81, 0x8F, 0xD9, 0xF1, 0xDB, 0x30, 0xA4, 0xA6, 0xAF))


class _I2CTap:
    """Records each I2C transaction's bytes on the way to the model."""

    def __init__(self, device):
        self.device = device
        self.log = []

    def i2c_write(self, data, stop=True):
        self.log.append(bytes(data))
        return self.device.i2c_write(data, stop)

    def i2c_read(self, n):
        return self.device.i2c_read(n)


class _SPITap:
    """Records each chip-select window as (D/C level, bytes) on the way to the model."""

    def __init__(self, device, dc):
        self.device = device
        self.dc = dc
        self.log = []

    def select(self, active):
        self.device.selected = active
        self.device.select(active)
        if active:
            self.log.append([self.dc.value(), bytearray()])

    def transfer(self, byte):
        self.log[-1][1].append(byte)
        return self.device.transfer(byte)


def _i2c_rig(height=64):
    clock = VirtualClock()
    i2c = SimI2C(clock, freq=400000)
    model = SSD1306(128, height, clock=clock)
    tap = _I2CTap(model)
    i2c.attach(0x3C, tap)
    oled = SSD1306_I2C(128, height, i2c)
    return clock, model, tap, oled


def _spi_rig(height=64):
    clock = VirtualClock()
    spi = SimSPI(clock, baudrate=8000000)
    dc = SimPin("dc", SimPin.OUT, value=0)
    res = SimPin("res", SimPin.OUT, value=1)
    cs = SimPin("cs", SimPin.OUT, value=1)
    model = SSD1306(128, height, clock=clock, dc=dc, res=res)
    tap = _SPITap(model, dc)
    spi.attach(tap, cs)
    oled = SSD1306_SPI(128, height, spi, dc, res, cs)
    return clock, model, tap, oled


def test_i2c_init_bytes_exact():
    for height, init in ((64, INIT_64), (32, INIT_32)):
        _, model, tap, oled = _i2c_rig(height)
        pages = height // 8
        assert tap.log[0] == b"\x00" + init
        assert tap.log[1] == bytes((0x00, 0x21, 0, 127, 0x22, 0, pages - 1))
        assert tap.log[2:] == [b"\x40" + bytes(128)] * pages
        assert model.on and model.contrast == init[17] and model.mode == 0
        assert model.settings[0xDA] == bytes((init[15],))


def test_spi_init_bytes_exact():
    for height, init in ((64, INIT_64), (32, INIT_32)):
        _, model, tap, oled = _spi_rig(height)
        pages = height // 8
        assert tap.log[0] == [0, init]
        assert tap.log[1] == [0, bytes((0x21, 0, 127, 0x22, 0, pages - 1))]
        assert tap.log[2:] == [[1, bytes(128)]] * pages
        assert model.on and model.data_bytes == 128 * pages


def test_spi_reset_pin_resets_the_controller():
    _, model, tap, oled = _spi_rig()
    assert model.on
    oled.res(0)
    assert not model.on and model.mode == 2  # power-on defaults: off, page addressing
    oled.res(1)
    oled.init_display()
    assert model.on


def test_gddram_equals_framebuffer_after_show():
    for rig in (_i2c_rig, _spi_rig):
        for height in (64, 32):
            _, model, _, oled = rig(height)
            oled.text("Card ...0010", 0, 8)
            oled.rect(0, 0, 128, height, 1)
            oled.fill_rect(100, 20, 20, 9, 1)
            oled.show()
            assert model.page_bytes() == bytes(oled.buffer)
            assert model.pixel(0, 0) == 1 and model.pixel(50, 3) == 0


def test_show_pages_sends_only_those_pages():
    _, model, tap, oled = _i2c_rig()
    oled.text("top", 0, 0)
    oled.text("middle", 0, 24)
    oled.text("next", 0, 32)
    before = len(tap.log)
    oled.show_pages(3, 4)
    assert tap.log[before] == bytes((0x00, 0x21, 0, 127, 0x22, 3, 4))
    assert len(tap.log) == before + 3  # window, then one transaction per page
    assert model.page_bytes(3, 4) == bytes(oled.buffer[384:640])
    assert model.page_bytes(0, 0) == bytes(128)  # "top" was not sent


def test_model_decodes_page_mode_vertical_mode_and_split_commands():
    clock = VirtualClock()
    i2c = SimI2C(clock)
    model = SSD1306(128, 64, clock=clock)
    i2c.attach(0x3C, model)
    # Page addressing, page 5, column 0x12: the column wraps within the page at 127.
    i2c.writeto(0x3C, bytes((0x00, 0x20, 0x02, 0xB5, 0x02, 0x11)))
    i2c.writeto(0x3C, b"\x40\x01\x02")
    assert model.gddram[5 * 128 + 0x12:5 * 128 + 0x14] == b"\x01\x02"
    # Vertical addressing in a 2x2 window: page first, then column.
    i2c.writeto(0x3C, bytes((0x00, 0x20, 0x01, 0x21, 10, 11, 0x22, 1, 2)))
    i2c.writeto(0x3C, b"\x40\xa1\xa2\xa3\xa4\xa5")
    g = model.gddram
    assert (g[128 + 10], g[256 + 10], g[128 + 11], g[256 + 11]) == (0xA5, 0xA2, 0xA3, 0xA4)
    # Co=1: one control byte per byte, a command's argument in a later transaction.
    i2c.writeto(0x3C, b"\x80\x81")
    i2c.writeto(0x3C, b"\x80\x10\x80\xa7\x80\xaf\xc0\x55")
    assert model.contrast == 0x10 and model.inverted
    assert model.gddram[256 + 10] == 0x55  # the vertical window's pointer had moved to (2, 10)
    assert model.pixel(0, 0) == 1  # inverted: unlit GDDRAM shows lit


def test_text_display_sends_only_changed_pages():
    clock, model, tap, oled = _i2c_rig()
    display = TextDisplay(oled)
    display.show(screens.amount(SETTINGS, "12", "0010"))
    assert model.page_bytes() == bytes(oled.buffer)
    data_before = model.data_bytes
    sent_before = len(tap.log)
    t0 = clock.now()
    display.show(screens.amount(SETTINGS, "123", "0010"))  # only the amount line changes
    assert model.data_bytes - data_before == 128
    assert tap.log[sent_before] == bytes((0x00, 0x21, 0, 127, 0x22, 4, 4))
    assert len(tap.log) == sent_before + 2
    assert clock.now() - t0 < 3500  # one page on 400 kHz I2C: 138 bytes, 3.1 ms
    assert model.page_bytes() == bytes(oled.buffer)
    # The same screen again sends nothing.
    before = model.data_bytes
    display.show(screens.amount(SETTINGS, "123", "0010"))
    assert model.data_bytes == before
    # Two separate changed lines: two windows, pages between them not sent.
    display.show(screens.amount(SETTINGS, "1234", "0010", note="Too large"))
    assert model.data_bytes - before == 256
    assert display.lines[6] == "Too large"


def test_text_display_renders_lines_with_the_8x8_font():
    _, model, _, oled = _i2c_rig()
    display = TextDisplay(oled, invert_first=True)
    display.show(["APPROVED", "EUR 12.50", "", "Printing..."])
    ref = bytearray(1024)
    fb = framebuf.FrameBuffer(ref, 128, 64, framebuf.MONO_VLSB)
    fb.fill_rect(0, 0, 128, 8, 1)
    fb.text("APPROVED", 0, 0, 0)
    fb.text("EUR 12.50", 0, 8, 1)
    fb.text("Printing...", 0, 24, 1)
    assert model.page_bytes() == bytes(ref)
    display.show(["A" * 20])  # cut to 16 characters; the other rows cleared
    assert display.lines == ["A" * 16] + [""] * 7
    assert model.page_bytes(1, 7) == bytes(7 * 128)


def test_128x32_layout():
    amount = screens.amount(SETTINGS, "123", "0010")
    assert fit(amount, 4) == ["PURCHASE", "Enter amount:", "        EUR 1.23", "#=OK *=Cancel"]
    idle = screens.idle(SETTINGS, (2025, 1, 2, 3, 4, 5),
                        {"recovering": False, "unprinted": 0, "reversals": 0, "queued": 2})
    assert fit(idle, 4) == ["DEMO CAFE", "Ready", "Tap card", "2 to send"]
    assert fit(screens.declined("51"), 4) == ["DECLINED", "", "Insufficient", "funds"]
    assert fit(screens.paper_out(1), 4) == ["PAPER OUT", "Load paper", "1 receipt(s)",
                                            "will print"]
    _, model, _, oled = _i2c_rig(32)
    display = TextDisplay(oled)
    display.show(amount)
    assert display.lines == fit(amount, 4)
    assert model.page_bytes() == bytes(oled.buffer) and len(oled.buffer) == 512


def test_no_display_at_the_address_is_a_clear_error():
    clock = VirtualClock()
    i2c = SimI2C(clock)
    i2c.attach(0x3D, SSD1306(128, 64, clock=clock))  # strapped to the other address
    try:
        SSD1306_I2C(128, 64, i2c)
    except DisplayError as e:
        assert "0x3c" in str(e)
        assert isinstance(e, OSError)
    else:
        raise AssertionError("no error")
    SSD1306_I2C(128, 64, i2c, addr=0x3D)


def _scene():
    buf = bytearray(1024)
    fb = framebuf.FrameBuffer(buf, 128, 64, framebuf.MONO_VLSB)
    chars = "".join(chr(c) for c in range(32, 128))
    for i in range(6):
        fb.text(chars[i * 16:(i + 1) * 16], 0, i * 8)
    fb.fill_rect(0, 48, 128, 8, 1)
    fb.text("INVERTED \u00e9\u20ac\t", 0, 48, 0)
    fb.text("clip", -5, -3)
    fb.text("edge", 110, 60)
    fb.rect(2, 57, 30, 7, 1)
    fb.rect(40, 58, 10, 5, 1, True)
    fb.hline(-4, 63, 200, 1)
    fb.vline(127, -10, 100, 0)
    fb.pixel(60, 60, 1)
    fb.pixel(200, 60, 1)
    return buf, fb


def test_framebuf_renders_as_micropython():
    # The CRC was taken from MicroPython's own framebuf on the unix port; under CPython the
    # shim (tests_host/shims/framebuf.py) must produce the same bytes.
    buf, fb = _scene()
    assert binascii.crc32(buf) & 0xFFFFFFFF == 0x299D11E5
    assert fb.pixel(60, 60) == 1 and fb.pixel(200, 0) is None
