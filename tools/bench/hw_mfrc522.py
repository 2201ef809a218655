"""MFRC522 (RC522) read times on the modelled chip and field, in virtual time.

    .venv/bin/micropython tools/bench/hw_mfrc522.py      (from the repository root)

Runs drivers/mfrc522.py against tools/models/mfrc522.py on a SimSPI at the board's SPI clock
(5 MHz: the RC522 allows 10 MHz, but its module sits on flying leads on most builds) and prints
the card-in-field time of a demo read (NTAG215, MIFARE Classic 1K), the cost of a no-card poll
and of a poll while a card that was already read stays on the reader. Virtual time is SPI bus
time plus RF time (ISO 14443-A at 106 kbit/s, card FDT); MicroPython's own overhead per SPI
call (tens of us on an ESP32) comes on top. Target: card read under 500 ms.
"""

import sys

sys.path.insert(0, "")

from drivers.mfrc522 import MFRC522, RC522Reader  # noqa: E402
from tools.models import tags  # noqa: E402
from tools.models.bus import SimPin, SimSPI, VirtualClock  # noqa: E402
from tools.models.mfrc522 import MFRC522Model  # noqa: E402

PAN = "4761739001010010"


def _rig(baud):
    clock = VirtualClock()
    spi = SimSPI(clock, baudrate=baud)
    cs = SimPin("cs", SimPin.OUT, value=1)
    model = MFRC522Model(clock)
    spi.attach(model, cs)
    reader = RC522Reader(MFRC522(spi, cs, sleep_us=clock.advance))
    return clock, spi, model, reader


def _measure(baud, card):
    clock, spi, model, reader = _rig(baud)
    t, b = clock.now(), spi.bytes
    assert reader.read_card() is None
    idle = (clock.now() - t, spi.bytes - b)
    model.field.add(card)
    t, b = clock.now(), spi.bytes
    assert reader.read_card() == (PAN, "2812")
    read = (clock.now() - t, spi.bytes - b)
    t, b = clock.now(), spi.bytes
    assert reader.read_card() is None
    held = (clock.now() - t, spi.bytes - b)
    return idle, read, held


def main():
    for baud in (5000000, 10000000):
        print("SPI %d MHz" % (baud // 1000000))
        for name, make in (("NTAG215", tags.demo_ntag), ("Classic 1K", tags.demo_classic)):
            idle, read, held = _measure(baud, make(PAN, "2812"))
            print("  %-10s card read %6.2f ms (%d SPI bytes)" % (name, read[0] / 1000, read[1]))
            print("  %-10s held card poll %6.2f ms (%d SPI bytes)" % (name, held[0] / 1000,
                                                                      held[1]))
        print("  no-card poll %.2f ms (%d SPI bytes)" % (idle[0] / 1000, idle[1]))


main()
