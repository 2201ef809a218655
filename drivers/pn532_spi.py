"""PN532 on SPI (drivers/pn532.py): DIP SEL0=0 SEL1=1; SCK, MOSI, MISO, SS (= `cs`), mode 0,
LSB first, up to 5 MHz. The board's SPI bus is shared and built MSB-first (MicroPython's default
`firstbit`), so by default this driver mirrors each byte in software; pass `bus_lsb=True` for a
bus built with `firstbit=SPI.LSB`. On the DevKitC: VSPI 18/23/19, SS 5, RSTPDN 4."""

from drivers.pn532 import FRAME_BYTES, PASSIVE_RETRIES, PN532


def _mirror_table():
    t = bytearray(256)
    for i in range(256):
        r = 0
        for b in range(8):
            if i & (1 << b):
                r |= 0x80 >> b
        t[i] = r
    return t


class PN532_SPI(PN532):
    """PN532 on SPI (DIP SEL0=0 SEL1=1), mode 0, LSB first. Every transfer starts with a
    direction byte (UM 6.2.5): 0x02 status read (bit 0 = ready), 0x01 data write, 0x03 data
    read."""

    _STATUS = b"\x02"
    _WRITE = b"\x01"
    _READ = b"\x03"

    def __init__(self, spi, cs, *, irq=None, reset=None, bus_lsb=False, clock=None,
                 passive_retries=PASSIVE_RETRIES):
        self._spi = spi
        self._cs = cs
        self._irq = irq
        self._one = bytearray(1)
        self._mirror = None if bus_lsb else _mirror_table()
        m = self._mirror
        self._status_cmd = self._STATUS if m is None else bytes((m[0x02],))
        self._write_cmd = self._WRITE if m is None else bytes((m[0x01],))
        self._read_cmd = self._READ if m is None else bytes((m[0x03],))
        self._wire = bytearray(FRAME_BYTES)  # mirrored copy of an outgoing frame
        self._wirev = memoryview(self._wire)
        cs.value(1)
        super().__init__(reset=reset, clock=clock, passive_retries=passive_retries)

    def _wakeup(self):
        # A falling SS wakes the chip from power-down; it needs about 2 ms (UM 6.2.5).
        self._cs.value(0)
        self._clock.advance(2000)
        self._cs.value(1)

    def _write_data(self, buf):
        m = self._mirror
        if m is not None:
            n = len(buf)
            w = self._wire
            for i in range(n):
                w[i] = m[buf[i]]
            buf = self._wirev[:n] if n > 24 else self._view_wire(n)
        self._cs.value(0)
        self._spi.write(self._write_cmd)
        self._spi.write(buf)
        self._cs.value(1)

    def _view_wire(self, n):
        key = n + 200
        v = self._views.get(key)
        if v is None:
            v = self._wirev[:n]
            self._views[key] = v
        return v

    def _read_data(self, n):
        self._cs.value(0)
        self._spi.write(self._read_cmd)
        self._spi.readinto(self._view(self._rxv, n))
        self._cs.value(1)
        m = self._mirror
        if m is not None:
            rx = self._rx
            for i in range(n):
                rx[i] = m[rx[i]]
        return 0

    def _status_ready(self):
        self._cs.value(0)
        self._spi.write(self._status_cmd)
        self._spi.readinto(self._one)
        self._cs.value(1)
        status = self._one[0] if self._mirror is None else self._mirror[self._one[0]]
        return status & 0x01 != 0
