"""Model of an NXP PN532 NFC reader (User Manual UM0701-02) behind the simulated buses, with a
field that holds cards (tools/models/emvcard.py, tools/models/tags.py).

One object answers on all three host interfaces, as the chip does depending on its DIP switches:
- I2C (`SimI2C.attach(0x24, model)`): every read starts with the status byte (0x01 when a frame
  is ready), then the frame from its start; the frame stays offered until a read reaches its end.
- SPI (`SimSPI.attach(model, cs)`): first byte 0x02 status read, 0x01 data write, 0x03 data read.
  The board's bus is MSB-first, so by default the model mirrors every byte (`spi_msb=True`), as
  the wire presents the PN532's LSB-first bytes to an MSB-first controller.
- HSU (`SimUART(clock, model, baudrate=115200)`): asleep at power-on until a 0x55 arrives; frames
  out are paced at `uart_byte_us` a byte.
- IRQ: `attach_irq(pin)` makes a SimPin read low while a frame is ready.

Host frames are checked as the chip does (UM 6.2.1): a frame whose LCS or DCS is wrong is
ignored (no ACK: the host sends it again after 15 ms); a host NACK makes the chip send its last
response again; a host ACK aborts the command in progress.

Timing on the VirtualClock: ACK 0.2 ms after the frame, then the command's time: field-on guard
time 5 ms (ISO 14443-2) the first time, about 1 ms per activation try with no card, activation
of a found card (REQA, anticollision per cascade level, SELECT, RATS for ISO-DEP), and for
InDataExchange the RF bytes at 106 kbit/s (9 bits a byte with parity, plus PCB and CRC, frame
delay times, 64-byte blocks chained) plus the card's processing time (`busy_us`).

Fault injection: `fault(kind)` queues one for the next command: "nack" (a NACK in place of the
ACK), "no_ack" (the frame is lost), "no_response" (ACK, then silence), "garbage" (a damaged
response; a host NACK gets the good one), "error" (an error frame). `leave_after(n)`: the target
leaves the field during the n-th InDataExchange from now (the PN532 then answers status 0x01).
MicroPython-compatible.
"""

_ACK = b"\x00\x00\xff\x00\xff\x00"
_NACK = b"\x00\x00\xff\xff\x00\x00"
_ERROR = b"\x00\x00\xff\x01\xff\x7f\x81\x00"

_KEEP = 64  # frames and commands kept for tests: the simulated board polls for hours

ACK_US = 200
CMD_US = 400  # firmware time of a local command
FIELD_ON_US = 5000
TRY_US = 1000
REQA_US = 300
CASCADE_US = 900
RATS_US = 1200
RF_BYTE_US = 85  # 9 bits at 105.9 kbit/s
FDT_US = 100
NTAG_US = 500
CARD_GONE_US = 77000  # FWT at FWI 8: the PN532 waits this long for a card that left


def mirror(b):
    r = 0
    for i in range(8):
        if b & (1 << i):
            r |= 0x80 >> i
    return r


def frame(payload):
    """A normal information frame carrying `payload` (TFI included)."""
    n = len(payload)
    return bytes([0, 0, 0xFF, n, (-n) & 0xFF]) + bytes(payload) + \
        bytes([(-sum(payload)) & 0xFF, 0])


class PN532Model:
    def __init__(self, clock, cards=None, spi_msb=True, uart_byte_us=87, keep=_KEEP):
        self.clock = clock
        self.keep = keep  # frames and commands kept (the simulated board keeps none)
        self.field = list(cards or [])
        self.spi_msb = spi_msb
        self.uart_byte_us = uart_byte_us
        self.host_frames = []  # the last frames the host sent, for tests
        self.commands = []  # the last commands executed: (code, params)
        self.bad_frames = 0
        self.faults = []
        self._leave = 0
        self.retries = 0xFF  # MxRtyPassiveActivation at power-on
        self.field_on = False
        self.target = None
        self.hsu_awake = False
        self._queue = []  # [(ready_at_us, frame)] for the host
        self._last = None  # last response, for a host NACK
        self._irq = None
        self._spi_mode = None
        self._spi_buf = bytearray()
        self._spi_pos = 0
        self._uart_in = bytearray()
        self.selected = False
        self._powered = []  # ids of tags.py PICCs already powered in this field

    # -- the field ---------------------------------------------------------------------------

    def put(self, card):
        self.field.append(card)

    def remove(self, card):
        if card in self.field:
            self.field.remove(card)
        if id(card) in self._powered:
            # Out of the field it loses power; and its id may be reused by the next card.
            self._powered.remove(id(card))
        if self.target is card:
            self.target = None

    def fault(self, kind):
        self.faults.append(kind)

    def leave_after(self, n):
        self._leave = n

    def attach_irq(self, pin):
        self._irq = pin
        pin.reader = self._irq_level

    # -- frames to the host ------------------------------------------------------------------

    def _offered(self):
        if self._queue and self._queue[0][0] <= self.clock.now():
            return self._queue[0][1]
        return None

    def _consume(self):
        if self._queue:
            self._queue.pop(0)

    def _irq_level(self):
        return 0 if self._offered() is not None else 1

    def _queue_frame(self, delay_us, data):
        self._queue.append((self.clock.now() + delay_us, data))

    # -- frames from the host ----------------------------------------------------------------

    def host_frame(self, data):
        data = bytes(data)
        self.host_frames.append(data)
        if len(self.host_frames) > self.keep:
            self.host_frames.pop(0)
        i = data.find(b"\x00\xff")
        if i < 0 or len(data) < i + 4:
            self.bad_frames += 1
            return
        body = data[i + 2:]
        if body[:3] == b"\x00\xff\x00" or body[:2] == b"\x00\xff":
            self._queue = []  # host ACK: abort (UM 6.2.1.3)
            return
        if body[:2] == b"\xff\x00":
            if self._last is not None:  # host NACK: send the last response again
                self._queue = [(self.clock.now() + ACK_US, self._last)]
            return
        n = body[0]
        if (n + body[1]) & 0xFF or len(body) < n + 3 or n < 2:
            self.bad_frames += 1
            return
        payload = body[2:2 + n]
        if (sum(payload) + body[2 + n]) & 0xFF or payload[0] != 0xD4:
            self.bad_frames += 1  # UM 6.2.1: no ACK for a damaged frame
            return
        self._queue = []  # a new command aborts whatever was in progress
        fault = self.faults.pop(0) if self.faults else None
        if fault == "no_ack":
            return
        if fault == "nack":
            self._queue_frame(ACK_US, _NACK)
            return
        self._queue_frame(ACK_US, _ACK)
        if fault == "no_response":
            return
        if fault == "error":
            self._last = _ERROR
            self._queue_frame(ACK_US + CMD_US, _ERROR)
            return
        result = self._execute(payload[1], payload[2:])
        if result is None:
            return  # never answers (InListPassiveTarget retrying forever)
        us, out = result
        resp = frame(bytes([0xD5, payload[1] + 1]) + out)
        self._last = resp
        if fault == "garbage":
            bad = bytearray(resp)
            bad[len(bad) - 3] ^= 0x5A
            resp = bytes(bad)
        self._queue_frame(ACK_US + us, resp)

    # -- commands ----------------------------------------------------------------------------

    def _execute(self, cmd, params):
        self.commands.append((cmd, bytes(params)))
        if len(self.commands) > self.keep:
            self.commands.pop(0)
        if cmd == 0x02:
            return CMD_US, b"\x32\x01\x06\x07"
        if cmd == 0x14:
            return CMD_US, b""
        if cmd == 0x32:
            if len(params) >= 4 and params[0] == 0x05:
                self.retries = params[3]
            if len(params) >= 2 and params[0] == 0x01:
                self.field_on = bool(params[1] & 0x01)
            return CMD_US, b""
        if cmd == 0x4A:
            return self._list(params)
        if cmd == 0x40:
            return self._exchange(params)
        if cmd == 0x52:
            if self.target is not None and not getattr(self.target, "iso_dep", False):
                self.target.command(b"\x50\x00")  # HLTA
            self.target = None
            return CMD_US, b"\x00"
        return CMD_US, b"\x27"  # not supported in this model: "wrong context"

    def _list(self, params):
        us = CMD_US
        if not self.field_on:
            us += FIELD_ON_US
            self.field_on = True
        self.target = None
        if not self.field:
            if self.retries == 0xFF:
                return None
            return us + (self.retries + 1) * TRY_US, b"\x00"
        card = self.field[0]
        uid = bytes(card.uid)
        us += REQA_US + CASCADE_US * (1 if len(uid) == 4 else 2 if len(uid) == 7 else 3)
        if hasattr(card, "reqa") and not self._activate(card):
            return us + self.retries * TRY_US, b"\x00"
        # ATQA travels LSB first (tags.py keeps it so); SENS_RES is reported MSB first.
        atqa = bytes(card.atqa)
        out = b"\x01\x01" + atqa[1:2] + atqa[0:1] + bytes([card.sak, len(uid)]) + uid
        if getattr(card, "iso_dep", False):
            ats = bytes(card.ats)
            if not ats or ats[0] != len(ats):
                ats = bytes([len(ats) + 1]) + ats
            out += ats
            us += RATS_US + len(ats) * RF_BYTE_US
        self.target = card
        return us, out

    def _activate(self, card):
        """ISO 14443-3 activation of a tags.py PICC: WUPA (so that a tag halted by the last
        InRelease answers again), then anticollision and SELECT per cascade level."""
        if id(card) not in self._powered:
            card.field_on()
            self._powered.append(id(card))
        if card.reqa(True) is None:
            return False
        for sel in (0x93, 0x95, 0x97):
            cln = card.anticollision(sel)
            if cln is None:
                return False
            sak = card.select(sel, cln[:4])
            if sak is None:
                return False
            if not sak & 0x04:
                return True
        return False

    def _exchange(self, params):
        card = self.target
        if card is None or len(params) < 1 or params[0] != 0x01:
            return CMD_US, b"\x27"
        data = bytes(params[1:])
        if self._leave:
            self._leave -= 1
            if self._leave == 0:
                self.remove(card)
        if card not in self.field:
            self.target = None
            return CARD_GONE_US, b"\x01"
        if getattr(card, "iso_dep", False):
            resp = card.apdu(data)
            frames = (len(data) + 3 + 63) // 64 + (len(resp or b"") + 3 + 63) // 64
            extra = frames * (2 * FDT_US + 4 * RF_BYTE_US)
        elif data[:1] in (b"\x60", b"\x61") and len(data) >= 12 and hasattr(card, "classic_auth"):
            # MIFARE authenticate: the PN532 runs Crypto1 itself; 0x14 is its auth error.
            if not card.classic_auth(data[1], data[0], data[2:8]):
                return CMD_US + 5000, b"\x14"
            resp = b""
            extra = 4 * FDT_US
        else:
            resp = card.command(data)
            extra = FDT_US
        if resp is None:
            return CARD_GONE_US, b"\x01"
        resp = bytes(resp)
        busy = getattr(card, "busy_us", NTAG_US) or 0
        us = CMD_US + (len(data) + len(resp) + 6) * RF_BYTE_US + 2 * FDT_US + extra + busy
        if len(resp) > 252:
            return us, b"\x0B"  # more than a normal frame holds
        return us, b"\x00" + resp

    # -- I2C ---------------------------------------------------------------------------------

    def i2c_write(self, data, stop):
        self.host_frame(data)
        return True

    def i2c_read(self, n):
        f = self._offered()
        if f is None:
            return bytes(n)
        out = b"\x01" + f[:n - 1]
        if n - 1 >= len(f):
            self._consume()
        return out + bytes(n - len(out))

    # -- SPI ---------------------------------------------------------------------------------

    def select(self, active):
        if active:
            self._spi_mode = None
            self._spi_buf = bytearray()
            self._spi_pos = 0
            return
        if self._spi_mode == 0x01:
            self.host_frame(self._spi_buf)
        elif self._spi_mode == 0x03:
            f = self._offered()
            if f is not None and self._spi_pos >= len(f):
                self._consume()
        self._spi_mode = None

    def transfer(self, byte):
        if self.spi_msb:
            byte = mirror(byte)
        out = 0x00
        if self._spi_mode is None:
            self._spi_mode = byte
        elif self._spi_mode == 0x02:
            out = 0x01 if self._offered() is not None else 0x00
        elif self._spi_mode == 0x01:
            self._spi_buf.append(byte)
        elif self._spi_mode == 0x03:
            f = self._offered()
            if f is not None and self._spi_pos < len(f):
                out = f[self._spi_pos]
            self._spi_pos += 1
        return mirror(out) if self.spi_msb else out

    # -- HSU ---------------------------------------------------------------------------------

    def uart_rx(self, data):
        for b in data:
            if not self.hsu_awake:
                if b == 0x55:
                    self.hsu_awake = True  # wakes on 0x55; the dummy bytes cover T_osc_start
                continue
            self._uart_in.append(b)
        self._uart_parse()

    def _uart_parse(self):
        buf = self._uart_in
        while True:
            i = bytes(buf).find(b"\x00\xff")
            if i < 0:
                self._uart_in = buf[-1:] if buf else bytearray()
                return
            rest = buf[i + 2:]
            if len(rest) < 2:
                self._uart_in = buf[i:]
                return
            if rest[0] in (0x00, 0xFF) and rest[1] in (0x00, 0xFF) and rest[0] != rest[1]:
                self.host_frame(b"\x00\x00\xff" + bytes(rest[:2]) + b"\x00")  # ACK or NACK
                buf = rest[2:]
                continue
            need = 2 + rest[0] + 1
            if len(rest) < need:
                self._uart_in = buf[i:]
                return
            self.host_frame(b"\x00\x00\xff" + bytes(rest[:need]) + b"\x00")
            buf = rest[need:]

    def uart_tx(self):
        out = b""
        now = self.clock.now()
        while self._queue:
            at, f = self._queue[0]
            if at + len(f) * self.uart_byte_us > now:
                break
            out += f
            self._queue.pop(0)
        return out
