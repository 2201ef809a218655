"""PN532 on I2C (drivers/pn532.py): DIP SEL0=1 SEL1=0; SDA, SCL (the module has 10k pull-ups),
3V3, GND; 7-bit address 0x24, up to 400 kHz. On the DevKitC: SDA 21, SCL 22, shared with the
OLED (boards/esp32_devkitc.py)."""

from drivers.pn532 import PASSIVE_RETRIES, PN532


class PN532_I2C(PN532):
    """PN532 on I2C (DIP SEL0=1 SEL1=0). Each read starts with the status byte, 0x01 when a
    frame is ready (UM 6.2.4); the chip NACKs its address while it sleeps or is busy."""

    def __init__(self, i2c, *, addr=0x24, irq=None, reset=None, clock=None,
                 passive_retries=PASSIVE_RETRIES):
        self._i2c = i2c
        self._addr = addr
        self._irq = irq
        self._status = bytearray(1)
        super().__init__(reset=reset, clock=clock, passive_retries=passive_retries)

    def _wakeup(self):
        # Any addressing wakes it from power-down; it may NACK that first transfer.
        try:
            self._i2c.readfrom_into(self._addr, self._status)
        except OSError:
            pass
        self._clock.advance(2000)

    def _write_data(self, buf):
        try:
            self._i2c.writeto(self._addr, buf)
        except OSError:
            pass  # no ACK will follow: the command is sent again

    def _read_data(self, n):
        self._i2c.readfrom_into(self._addr, self._view(self._rxv, n + 1))
        return 1

    def _status_ready(self):
        try:
            self._i2c.readfrom_into(self._addr, self._status)
        except OSError:
            return False  # the chip NACKs its address while busy
        return self._status[0] & 0x01 != 0
