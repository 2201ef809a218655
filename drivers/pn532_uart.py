"""PN532 on HSU (drivers/pn532.py): DIP SEL0=0 SEL1=0; TX/RX crossed to a UART at 115200 8N1."""

from micropython import const

from drivers.pn532 import IRQ_POLL_US, PASSIVE_RETRIES, PN532, PN532Timeout

_BYTE_US = const(10000)  # give up on a frame whose next byte is 10 ms late
_HSU_WAKE = b"\x55\x55" + bytes(14)  # UM 7.2.11: 0x55 then dummy bytes while it wakes


class PN532_UART(PN532):
    """PN532 on HSU (DIP SEL0=0 SEL1=0), 115200 8N1. The chip starts in low-VBat power-down
    and wakes on 0x55 followed by enough dummy bytes (UM 7.2.11); the driver sends that
    preamble before its first command and after a timeout."""

    def __init__(self, uart, *, reset=None, clock=None, passive_retries=PASSIVE_RETRIES):
        self._uart = uart
        self._one = bytearray(1)
        self._have = 0
        self._awake = False
        super().__init__(reset=reset, clock=clock, passive_retries=passive_retries)

    def _send(self, buf):
        uart = self._uart
        sent = uart.write(buf) or 0
        while sent < len(buf):
            uart.flush()
            sent += uart.write(buf[sent:]) or 0
        uart.flush()

    def _write_data(self, buf):
        if not self._awake:
            self._send(_HSU_WAKE)
            self._awake = True
        # Whatever is left of an earlier answer belongs to a command that is over.
        while self._uart.any():
            self._uart.readinto(self._one)
        self._have = 0
        self._send(buf)

    def _timed_out(self):
        self._awake = False

    def _read_data(self, n):
        # The stream is read once: bytes already taken for this frame stay in _rx.
        uart = self._uart
        clock = self._clock
        rx = self._rx
        while self._have < n:
            start = clock.now()
            while not uart.any():
                if self._elapsed(start) >= _BYTE_US:
                    raise PN532Timeout("UART frame cut short")
                clock.advance(IRQ_POLL_US)
            uart.readinto(self._one)
            rx[self._have] = self._one[0]
            self._have += 1
        return 0

    def _wait_ready(self, timeout_us):
        self._have = 0  # a new frame starts
        clock = self._clock
        start = clock.now()
        while not self._uart.any():
            if self._elapsed(start) >= timeout_us:
                return False
            clock.advance(IRQ_POLL_US)
        return True
