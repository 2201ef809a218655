"""Card-in-field time of a PN532 read, in modelled time (VirtualClock), on MicroPython:

    micropython tools/bench/hw_pn532.py

For each EMV profile (tools/models/emvcard.py) and for a demo NTAG, over I2C at 400 kHz and
SPI at 5 MHz (the boards' bus speeds, boards/esp32_devkitc.py; the PN532 takes up to 5 MHz):
from the poll that finds the card to the PAN. Also the cost of a no-card poll, which the idle
terminal pays every 50 ms. Target: under 500 ms, as long as a customer holds a card still. The
figures are the models' (RF at 106 kbit/s, card processing times of typical cards), not a
measurement on hardware; driver CPU time on the ESP32 comes on top.
"""

import sys

sys.path.insert(0, "")

from drivers import democard  # noqa: E402
from drivers.pn532 import PN532Reader  # noqa: E402
from drivers.pn532_i2c import PN532_I2C  # noqa: E402
from drivers.pn532_spi import PN532_SPI  # noqa: E402
from tools.models import emvcard  # noqa: E402
from tools.models.bus import SimI2C, SimPin, SimSPI, VirtualClock  # noqa: E402
from tools.models.pn532 import PN532Model  # noqa: E402

PAN = "4761739001010010"
EXP = "2812"


class DemoTag:
    iso_dep = False
    sak = 0x00
    atqa = b"\x44\x00"
    uid = b"\x04\x11\x22\x33\x44\x55\x66"

    def __init__(self):
        self.pages = bytearray(45 * 4)
        self.pages[16:40] = democard.encode(PAN, EXP)

    def command(self, data):
        if len(data) == 2 and data[0] == 0x30:
            return bytes(self.pages[((data[1] + i) % 45) * 4 + j]
                         for i in range(4) for j in range(4))
        return None


def reader(bus):
    clock = VirtualClock()
    model = PN532Model(clock)
    if bus == "i2c":
        i2c = SimI2C(clock, 400000)
        i2c.attach(0x24, model)
        pn = PN532_I2C(i2c, clock=clock)
    else:
        spi = SimSPI(clock, 5000000)
        cs = SimPin("cs", SimPin.OUT, value=1)
        spi.attach(model, cs)
        pn = PN532_SPI(spi, cs, clock=clock)
    r = PN532Reader(pn)
    r.read_card()  # field on
    return clock, model, r


def main():
    worst = 0
    for bus, label in (("i2c", "I2C 400 kHz"), ("spi", "SPI 5 MHz")):
        clock, model, r = reader(bus)
        t = clock.us
        r.read_card()
        print("%-12s no-card poll          %6.1f ms" % (label, (clock.us - t) / 1000))
        cards = [(p.__name__, p(PAN, EXP)) for p in emvcard.PROFILES]
        cards.append(("ntag_demo", DemoTag()))
        for name, card in cards:
            model.put(card)
            t = clock.us
            got = r.read_card()
            ms = (clock.us - t) / 1000
            worst = max(worst, ms)
            ok = "ok" if got == (PAN, EXP) else "FAILED %r" % (got,)
            print("%-12s %-20s %6.1f ms  %s" % (label, name, ms, ok))
            model.remove(card)
            r.read_card()
            r.read_card()
    print("worst card-in-field %.1f ms (target < 500 ms): %s" %
          (worst, "ok" if worst < 500 else "OVER"))


main()
