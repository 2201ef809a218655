"""SSD1306 OLED controller (128x64 or 128x32 monochrome panels) on I2C, and on 4-wire SPI
with drivers/ssd1306_spi.py (a module of its own: a board holds only the bus it uses).

Wiring: I2C modules have SDA/SCL only (address 0x3C, 0x3D with SA0 high; the board's I2C runs at
400 kHz, the SSD1306's fast-mode limit). SPI modules add D/C (low = command, high = data), RES
(active low) and CS (active low); the SSD1306 is write-only there (no MISO) and takes up to
10 MHz (tcycle >= 100 ns), so the board uses 8 MHz.

The driver is a `framebuf.FrameBuffer` over a MONO_VLSB buffer allocated once: one byte is an
8-pixel column of one page, which is the controller's GDDRAM layout, so a page is sent as is.
`show()` sends the whole buffer; `show_pages(first, last)` only the pages that changed (a full
refresh costs about 23.6 ms on 400 kHz I2C, one page about 3 ms: see drivers/display.py).
"""

import framebuf
from micropython import const

_SET_CONTRAST = const(0x81)
_SET_ENTIRE_ON = const(0xA4)
_SET_NORM_INV = const(0xA6)
_SET_DISP = const(0xAE)
_SET_MEM_ADDR = const(0x20)
_SET_COL_ADDR = const(0x21)
_SET_PAGE_ADDR = const(0x22)
_SET_DISP_START_LINE = const(0x40)
_SET_SEG_REMAP = const(0xA0)
_SET_MUX_RATIO = const(0xA8)
_SET_COM_OUT_DIR = const(0xC0)
_SET_DISP_OFFSET = const(0xD3)
_SET_COM_PIN_CFG = const(0xDA)
_SET_DISP_CLK_DIV = const(0xD5)
_SET_PRECHARGE = const(0xD9)
_SET_VCOM_DESEL = const(0xDB)
_SET_CHARGE_PUMP = const(0x8D)

# I2C control byte (datasheet 8.1.5.2): Co=0 (no further control bytes), D/C#=0 commands follow,
# D/C#=1 data follows.
_CTRL_CMD = const(0x00)
_CTRL_DATA = const(0x40)


class DisplayError(OSError):
    """The display did not answer (no device at the I2C address, or a NACK mid-transfer)."""


def init_sequence(width, height):
    """The power-up command bytes for a panel of this size (datasheet 'Software initialization'
    flow, with the internal charge pump that the common modules use)."""
    tall = height > 32
    return bytes((
        _SET_DISP | 0x00,            # display off while configuring
        _SET_DISP_CLK_DIV, 0x80,     # divide ratio 1, oscillator mid (reset value)
        _SET_MUX_RATIO, height - 1,  # one COM line per pixel row
        _SET_DISP_OFFSET, 0x00,
        _SET_DISP_START_LINE | 0x00,
        _SET_CHARGE_PUMP, 0x14,      # internal charge pump on: modules have no 7-15 V supply
        _SET_MEM_ADDR, 0x00,         # horizontal addressing: a window fills page by page
        _SET_SEG_REMAP | 0x01,       # column 127 is SEG0: modules mount the glass this way
        _SET_COM_OUT_DIR | 0x08,     # scan COM[N-1] to COM0: with the remap, (0, 0) is top left
        _SET_COM_PIN_CFG, 0x12 if tall else 0x02,  # alternative COM pins on 64-row glass
        _SET_CONTRAST, 0xCF if tall else 0x8F,     # the module makers' values for the pump
        _SET_PRECHARGE, 0xF1,        # phase 2 long, phase 1 short: needed with the charge pump
        _SET_VCOM_DESEL, 0x30,       # 0.83 x Vcc
        _SET_ENTIRE_ON,              # show GDDRAM (not all pixels on)
        _SET_NORM_INV,               # not inverted
        _SET_DISP | 0x01,            # display on
    ))


class SSD1306(framebuf.FrameBuffer):
    """Transport-independent part; subclasses supply `_command(buf)` and `_data(page)`."""

    def __init__(self, width, height):
        if width > 128 or height not in (32, 64):
            raise ValueError("SSD1306 panels are up to 128 wide and 32 or 64 high")
        self.width = width
        self.height = height
        self.pages = height // 8
        self.buffer = bytearray(self.pages * width)
        super().__init__(self.buffer, width, height, framebuf.MONO_VLSB)
        view = memoryview(self.buffer)
        # One view per page, made once: show_pages allocates nothing.
        self._page_views = [view[p * width:(p + 1) * width] for p in range(self.pages)]
        self._window = bytearray(6)
        self._cmd = bytearray(1)
        self._cmd_arg = bytearray(2)
        self._bind_pages()
        self.init_display()

    def _bind_pages(self):
        pass

    def init_display(self):
        self._command(init_sequence(self.width, self.height))
        self.fill(0)
        self.show()

    def _command_byte(self, cmd):
        self._cmd[0] = cmd
        self._command(self._cmd)

    def poweroff(self):
        self._command_byte(_SET_DISP)

    def poweron(self):
        self._command_byte(_SET_DISP | 0x01)

    def contrast(self, value):
        self._cmd_arg[0] = _SET_CONTRAST
        self._cmd_arg[1] = value & 0xFF
        self._command(self._cmd_arg)

    def invert(self, on):
        self._command_byte(_SET_NORM_INV | (1 if on else 0))

    def show(self):
        self.show_pages(0, self.pages - 1)

    def show_pages(self, first, last):
        """Send pages first..last (8-pixel rows, inclusive): the address window, then each
        page's bytes in one data transaction."""
        if first < 0 or last >= self.pages or first > last:
            raise ValueError("pages out of range")
        # Narrow panels (64 or 72 wide) sit in the middle of the 128 columns.
        x0 = (128 - self.width) // 2 if self.width < 128 else 0
        w = self._window
        w[0] = _SET_COL_ADDR
        w[1] = x0
        w[2] = x0 + self.width - 1
        w[3] = _SET_PAGE_ADDR
        w[4] = first
        w[5] = last
        self._command(w)
        for page in range(first, last + 1):
            self._data(page)


class SSD1306_I2C(SSD1306):
    def __init__(self, width, height, i2c, addr=0x3C):
        self.i2c = i2c
        self.addr = addr
        self._cmd_vector = [bytes((_CTRL_CMD,)), None]
        super().__init__(width, height)

    def _bind_pages(self):
        # (control byte, page view) pairs made once: writevto sends both in one transaction
        # (no copy into a 129-byte buffer, nothing allocated per page).
        ctrl = bytes((_CTRL_DATA,))
        self._data_vectors = [(ctrl, view) for view in self._page_views]

    def _write(self, vector, length):
        try:
            acks = self.i2c.writevto(self.addr, vector)
        except OSError as e:
            # ENODEV (19) on the ESP32 port: nothing ACKed the address.
            raise DisplayError("no SSD1306 answering at I2C 0x%02x (%r)" % (self.addr, e))
        # machine.I2C returns the count of ACKed bytes: fewer means the panel stopped listening.
        if acks is not None and acks < length:
            raise DisplayError("SSD1306 at I2C 0x%02x NACKed a byte" % self.addr)

    def _command(self, buf):
        # One transaction, Co=0 D/C#=0: every following byte is a command byte.
        self._cmd_vector[1] = buf
        self._write(self._cmd_vector, len(buf) + 1)

    def _data(self, page):
        self._write(self._data_vectors[page], self.width + 1)
