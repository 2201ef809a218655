"""Model of the SSD1306 OLED controller at its bus: I2C (control bytes) or 4-wire SPI (D/C pin).

    oled = SSD1306(128, 64, clock=clock)          # I2C: i2c.attach(0x3C, oled)
    oled = SSD1306(128, 32, clock=clock, dc=dc)   # SPI: spi.attach(oled, cs); res pin optional

It decodes the command stream into the 128x64 GDDRAM (8 pages of 128 column bytes, bit 0 = top
row of the page) as the datasheet describes: horizontal, vertical and page addressing, column
and page windows (0x21/0x22), page-mode pointers (0x00-0x1F, 0xB0-0xB7), display on/off,
contrast, inversion, entire-display-on, and the fixed-argument configuration commands (whose
values it keeps in `settings`). Multi-byte commands may be split across I2C transactions, as
drivers that send one control byte per command byte do.

I2C (datasheet 8.1.5.2): after the address each transaction starts with a control byte; Co=1
means one byte follows and then another control byte, Co=0 means the rest of the transaction is
all commands (D/C#=0) or all data (D/C#=1).

Counts: `command_bytes`, `data_bytes`, `transactions`, and `last_write_us` (the bus clock's
time of the last byte received); the bus adds the wire time to the virtual clock.
"""

# Commands followed by argument bytes, and how many.
_ARGS = {
    0x81: 1, 0x20: 1, 0x21: 2, 0x22: 2, 0xA8: 1, 0xD3: 1, 0xD5: 1, 0xD9: 1, 0xDA: 1, 0xDB: 1,
    0x8D: 1, 0xAD: 1, 0x26: 6, 0x27: 6, 0x29: 5, 0x2A: 5, 0xA3: 2,
}
HORIZONTAL = 0
VERTICAL = 1
PAGE = 2


class SSD1306:
    def __init__(self, width=128, height=64, *, clock=None, dc=None, res=None):
        self.width = width
        self.height = height
        self.clock = clock
        self.dc = dc
        self.selected = False
        self.gddram = bytearray(128 * 8)
        self.command_bytes = 0
        self.data_bytes = 0
        self.transactions = 0
        self.last_write_us = 0
        self.last_command = b""  # the last command with its arguments (no log: the sim runs long)
        if res is not None:
            res.on_change = self._res_changed
        self.reset()

    # ---- state ------------------------------------------------------------------------------

    def reset(self):
        """Power-on / RES values (datasheet 9, command table defaults)."""
        self.on = False
        self.contrast = 0x7F
        self.inverted = False
        self.entire_on = False
        self.mode = PAGE
        self.col_start, self.col_end = 0, 127
        self.page_start, self.page_end = 0, 7
        self.col = 0
        self.page = 0
        self.page_col_start = 0
        self.settings = {}
        self._pending = None  # the command waiting for arguments, with those received
        self._need = 0

    def _res_changed(self, level):
        if level == 0:
            self.reset()

    # ---- bus ------------------------------------------------------------------------------

    def _stamp(self):
        if self.clock is not None:
            self.last_write_us = self.clock.now()

    def i2c_write(self, data, stop=True):
        self.transactions += 1
        i = 0
        n = len(data)
        while i < n:
            control = data[i]
            i += 1
            is_data = control & 0x40
            if control & 0x80:  # Co=1: one byte, then another control byte
                if i < n:
                    self._byte(data[i], is_data)
                    i += 1
                continue
            while i < n:
                self._byte(data[i], is_data)
                i += 1
        self._stamp()
        return True

    def i2c_read(self, n):
        # Status read (D/C#=0): bit 6 = display off.
        return bytes([0x00 if self.on else 0x40]) * n

    def select(self, active):
        if active:
            self.transactions += 1

    def transfer(self, byte):
        self._byte(byte, self.dc is not None and self.dc.value())
        self._stamp()
        return 0xFF  # write-only interface: MISO is not connected

    def _byte(self, b, is_data):
        if is_data:
            self.data_bytes += 1
            self._write_data(b)
        else:
            self.command_bytes += 1
            self._command_byte(b)

    # ---- commands -----------------------------------------------------------------------------

    def _command_byte(self, b):
        if self._pending is not None:
            self._pending.append(b)
            self._need -= 1
            if self._need == 0:
                cmd = self._pending
                self._pending = None
                self._execute(cmd)
            return
        need = _ARGS.get(b, 0)
        if need:
            self._pending = bytearray((b,))
            self._need = need
            return
        self._execute(bytearray((b,)))

    def _execute(self, cmd):
        self.last_command = bytes(cmd)
        op = cmd[0]
        if op == 0x81:
            self.contrast = cmd[1]
        elif op == 0x20:
            self.mode = cmd[1] & 0x03
        elif op == 0x21:
            self.col_start, self.col_end = cmd[1] & 0x7F, cmd[2] & 0x7F
            self.col = self.col_start
        elif op == 0x22:
            self.page_start, self.page_end = cmd[1] & 0x07, cmd[2] & 0x07
            self.page = self.page_start
        elif op <= 0x0F:  # page mode: lower column nibble
            self.page_col_start = (self.page_col_start & 0xF0) | op
            self.col = self.page_col_start
        elif op <= 0x1F:  # page mode: upper column nibble
            self.page_col_start = (self.page_col_start & 0x0F) | ((op & 0x07) << 4)
            self.col = self.page_col_start
        elif 0xB0 <= op <= 0xB7:
            self.page = op & 0x07
        elif op in (0xA4, 0xA5):
            self.entire_on = op == 0xA5
        elif op in (0xA6, 0xA7):
            self.inverted = op == 0xA7
        elif op in (0xAE, 0xAF):
            self.on = op == 0xAF
        elif 0x40 <= op <= 0x7F:
            self.settings["start_line"] = op & 0x3F
        elif op in (0xA0, 0xA1):
            self.settings["seg_remap"] = op & 1
        elif op in (0xC0, 0xC8):
            self.settings["com_scan_reversed"] = op == 0xC8
        elif len(cmd) > 1:
            self.settings[op] = bytes(cmd[1:])

    def _write_data(self, b):
        self.gddram[self.page * 128 + self.col] = b
        if self.mode == HORIZONTAL:
            if self.col >= self.col_end:
                self.col = self.col_start
                self.page = self.page_start if self.page >= self.page_end else self.page + 1
            else:
                self.col += 1
        elif self.mode == VERTICAL:
            if self.page >= self.page_end:
                self.page = self.page_start
                self.col = self.col_start if self.col >= self.col_end else self.col + 1
            else:
                self.page += 1
        else:  # page mode: the column wraps within the page, the page stays
            self.col = self.page_col_start if self.col >= 127 else self.col + 1

    # ---- rendering ------------------------------------------------------------------------------

    def page_bytes(self, first=0, last=None):
        """GDDRAM pages first..last (default: every page the panel shows), as bytes, in the
        layout of a MONO_VLSB framebuffer of the panel's width."""
        if last is None:
            last = self.height // 8 - 1
        x0 = (128 - self.width) // 2 if self.width < 128 else 0
        out = bytearray()
        for page in range(first, last + 1):
            out += self.gddram[page * 128 + x0:page * 128 + x0 + self.width]
        return bytes(out)

    def pixel(self, x, y):
        """What the panel shows at (x, y): 1 lit, 0 dark (display off shows nothing)."""
        if not self.on:
            return 0
        if self.entire_on:
            return 1
        x0 = (128 - self.width) // 2 if self.width < 128 else 0
        lit = (self.gddram[(y >> 3) * 128 + x0 + x] >> (y & 7)) & 1
        return lit ^ 1 if self.inverted else lit

    def pixels(self):
        """The panel as rows of '#' (lit) and '.' (dark) strings, for tests and the sim UI."""
        return ["".join("#" if self.pixel(x, y) else "." for x in range(self.width))
                for y in range(self.height)]
