"""SSD1306 OLED on 4-wire SPI (drivers/ssd1306.py): D/C low for a command, high for data; RES
and CS active low; write-only (no MISO), up to 10 MHz."""

from drivers.ssd1306 import SSD1306


class SSD1306_SPI(SSD1306):
    def __init__(self, width, height, spi, dc, res, cs):
        self.spi = spi
        self.dc = dc
        self.res = res
        self.cs = cs
        cs(1)
        dc(0)
        if res is not None:
            import time

            # RES low for at least 3 us (datasheet tw(RES)); the controller is ready 2 us
            # after it rises. 1 ms each way is generous and costs nothing at boot.
            res(1)
            _sleep_ms(time, 1)
            res(0)
            _sleep_ms(time, 1)
            res(1)
            _sleep_ms(time, 1)
        super().__init__(width, height)

    def _command(self, buf):
        self.cs(1)
        self.dc(0)
        self.cs(0)
        self.spi.write(buf)
        self.cs(1)

    def _data(self, page):
        self.cs(1)
        self.dc(1)
        self.cs(0)
        self.spi.write(self._page_views[page])
        self.cs(1)


def _sleep_ms(time, ms):
    if hasattr(time, "sleep_ms"):
        time.sleep_ms(ms)
    else:  # CPython, for the host tests
        time.sleep(ms / 1000)
