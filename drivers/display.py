"""The terminal's text display: `show(lines)` on an SSD1306 OLED (drivers/ssd1306.py).

firmware/screens.py lays screens out as up to 8 lines of 16 characters, which is the 128x64
panel in MicroPython's 8x8 font: one text line is one 8-pixel GDDRAM page. Only the pages whose
line changed are redrawn and sent. Measured on the bus model (tools/bench/hw_display_keypad.py,
400 kHz I2C, 9 clocks a byte): a full refresh is 1048 bytes, 23.6 ms; one changed line (the
amount as the cashier types a digit) is 138 bytes, 3.1 ms. On 8 MHz SPI a full refresh is about
1 ms, but sending only the changes still keeps the bus free for the card reader.

128x32 panels show 4 text lines. A screen of 4 lines or fewer is shown as is; a longer one is
cut down by this rule: the first line (the title: PURCHASE, APPROVED, the merchant's name),
then the last 3 non-empty lines after it, in order. The screens put what the cashier must act
on at the bottom (the amount being typed, "#=OK *=Cancel", "Tap card"), and the blank lines
are only spacing, so for example the amount screen shows PURCHASE / Enter amount: / EUR 12.34 /
#=OK *=Cancel, and the idle screen the merchant, Ready, Tap card and the count still to send.
"""

COLS = 16


def fit(lines, rows):
    """The lines a panel of `rows` text rows shows (the rule in the module docstring)."""
    if len(lines) <= rows:
        return list(lines)
    rest = [line for line in lines[1:] if line.strip()]
    return [lines[0]] + rest[-(rows - 1):]


class TextDisplay:
    """`oled` is an SSD1306 driver (a FrameBuffer with `show_pages(first, last)`).
    `invert_first=True` draws the first line as a lit title bar."""

    def __init__(self, oled, *, invert_first=False):
        self.oled = oled
        self.rows = oled.height // 8
        self.invert_first = invert_first
        self._shown = [None] * self.rows  # None: never drawn, so the first show sends all

    @property
    def lines(self):
        """The text on each row now ('' for blank)."""
        return [line or "" for line in self._shown]

    def show(self, lines):
        lines = fit(lines, self.rows)
        oled = self.oled
        first = -1
        for row in range(self.rows):
            text = lines[row][:COLS] if row < len(lines) else ""
            if text == self._shown[row]:
                if first >= 0:
                    oled.show_pages(first, row - 1)
                    first = -1
                continue
            self._shown[row] = text
            bg = 1 if (row == 0 and self.invert_first) else 0
            oled.fill_rect(0, row * 8, oled.width, 8, bg)
            oled.text(text, 0, row * 8, bg ^ 1)
            if first < 0:
                first = row
        if first >= 0:
            oled.show_pages(first, self.rows - 1)
