"""Register-level model of the NXP MFRC522 (RC522 modules) behind a SimSPI, with an RF field.

What the driver sees is what the datasheet (MFRC522 rev. 3.9) describes:
- SPI (8.1.2): the first byte of a frame is the address `(reg << 1) & 0x7E`, bit 7 set to read.
  In a write frame every following byte goes to that register (how the FIFO is filled); in a
  read frame every byte is the next address, and each register's value comes back one byte
  later.
- registers (9.2) with their reset values, the 64-byte FIFO and FIFOLevelReg (FlushBuffer),
  ComIrqReg / DivIrqReg with the Set1 / Set2 write rule, ErrorReg, CollReg, Status2Reg
  (MFCrypto1On, ModemState), CRCResultReg, VersionReg 0x92.
- commands (10.3): Idle, CalcCRC (CRC_A, preset from ModeReg), Transceive (started by
  BitFramingReg.StartSend, TxLastBits and RxAlign honoured, RxLastBits reported), MFAuthent,
  SoftReset (PowerDown bit set until the reset is done).
- the timer (8.5): TAuto starts it at the end of a transmission and the 5th received bit stops
  it; it fires TimerIRq after (2 * TPrescaler + 1) * (TReload + 1) / 13.56 MHz.
- the antenna (TxControlReg Tx1RFEn/Tx2RFEn) and 100 % ASK (TxASKReg Force100ASK): without both,
  no card answers.

RF timing on the VirtualClock, ISO 14443-2/-3 type A at 106 kbit/s: a bit is 128 / fc =
9.44 us; a standard frame is SOF + 9 bits a byte (8 data + parity) + EOF, a short frame (REQA,
WUPA) SOF + 7 bits + EOF. A card answers after the frame delay time FDT = (n * 128 + 84) / fc
with n = 9, about 86 us (6.2.1.1). MFAuthent runs the four frames of the Crypto1 handshake.

Collisions: each card's answer is a bit string; where two cards send different bits the
receiver sees a collision (Manchester coding lets the PCD detect it, ISO 14443-3 6.5.4).
ErrorReg.CollErr is set and CollReg.CollPos holds the first collision's position counted from
the first received bit (1 = first bit, 0 = 32nd; CollPosNotValid beyond 32). The datasheet
(9.3.1.15) does not say how RxAlign shifts that count; this model counts received bits, and the
driver follows the same reading. With CollReg.ValuesAfterColl = 0 the bits after the collision
are received as 0.

Faults for tests: `field.remove(card, at_us)` (a card leaves at once or at a virtual time: a
frame sent after that gets no answer from it), `model.corrupt_crc += n` (the next n answers that
carry a CRC_A arrive with a wrong CRC byte, as RF noise would leave them).

MicroPython-compatible: plain classes, no f-strings, no dataclasses.
"""

from tools.models import tags

BIT_US = 128 / 13.56  # one bit at 106 kbit/s: 9.44 us
FDT_US = (9 * 128 + 84) / 13.56  # PICC frame delay time, last PCD bit 0: 86.2 us
SOFT_RESET_US = 38  # oscillator restart, datasheet 8.8.2 (37.74 us)
CRC_BYTE_US = 0.6  # the CRC coprocessor takes 8 clocks of 13.56 MHz a byte

# registers (datasheet 9.2)
COMMAND = 0x01
COM_IEN = 0x02
DIV_IEN = 0x03
COM_IRQ = 0x04
DIV_IRQ = 0x05
ERROR = 0x06
STATUS1 = 0x07
STATUS2 = 0x08
FIFO_DATA = 0x09
FIFO_LEVEL = 0x0A
WATER_LEVEL = 0x0B
CONTROL = 0x0C
BIT_FRAMING = 0x0D
COLL = 0x0E
MODE = 0x11
TX_MODE = 0x12
RX_MODE = 0x13
TX_CONTROL = 0x14
TX_ASK = 0x15
CRC_RESULT_H = 0x21
CRC_RESULT_L = 0x22
T_MODE = 0x2A
T_PRESCALER = 0x2B
T_RELOAD_H = 0x2C
T_RELOAD_L = 0x2D
VERSION = 0x37

# commands (10.3)
CMD_IDLE = 0x00
CMD_CALC_CRC = 0x03
CMD_TRANSCEIVE = 0x0C
CMD_MF_AUTHENT = 0x0E
CMD_SOFT_RESET = 0x0F

# ComIrqReg bits
TX_IRQ = 0x40
RX_IRQ = 0x20
IDLE_IRQ = 0x10
ERR_IRQ = 0x02
TIMER_IRQ = 0x01
CRC_IRQ = 0x04  # DivIrqReg

# ErrorReg bits
BUFFER_OVFL = 0x10
COLL_ERR = 0x08
CRC_ERR = 0x04
PARITY_ERR = 0x02
PROTOCOL_ERR = 0x01

MF_CRYPTO1_ON = 0x08

_RESET = {
    COMMAND: 0x20, COM_IEN: 0x80, COM_IRQ: 0x14, STATUS1: 0x21, WATER_LEVEL: 0x08,
    CONTROL: 0x10, COLL: 0x80, MODE: 0x3F, TX_CONTROL: 0x80, 0x16: 0x10, 0x17: 0x84,
    0x18: 0x84, 0x19: 0x4D, 0x1C: 0x62, 0x1F: 0xEB, CRC_RESULT_H: 0xFF, CRC_RESULT_L: 0xFF,
    0x24: 0x26, 0x26: 0x48, 0x27: 0x88, 0x28: 0x20, 0x29: 0x20, VERSION: 0x92,
}


def _bits_of(data, nbits=None):
    """LSB-first bit list of `data` (ISO 14443 sends the least significant bit first)."""
    out = []
    for byte in data:
        for i in range(8):
            out.append((byte >> i) & 1)
    if nbits is not None:
        del out[nbits:]
    return out


LOG_MAX = 200  # entries kept in `frames` and `writes` (the heap of the unix port is small)


def _log(entries, item):
    entries.append(item)
    if len(entries) > LOG_MAX:
        del entries[0]


class Field:
    """The RF field in front of the antenna: the cards in it, and when they leave."""

    def __init__(self, clock):
        self.clock = clock
        self.cards = []
        self._leaving = []  # [(at_us, card)]
        self.powered = False

    def add(self, card):
        """The card enters the field (again): it powers up in IDLE."""
        self.present(self.clock.now())
        self._leaving = [e for e in self._leaving if e[1] is not card]
        if card not in self.cards:
            self.cards.append(card)
            if self.powered:
                card.field_on()
        return card

    def remove(self, card, at_us=None):
        """The card leaves the field now, or at virtual time `at_us`."""
        if at_us is None or at_us <= self.clock.now():
            if card in self.cards:
                self.cards.remove(card)
        else:
            self._leaving.append((at_us, card))

    def present(self, at_us):
        """The cards in the field at `at_us` (scheduled departures applied)."""
        for entry in list(self._leaving):
            if entry[0] <= at_us:
                self._leaving.remove(entry)
                if entry[1] in self.cards:
                    self.cards.remove(entry[1])
        return self.cards if self.powered else []

    def power(self, on):
        if on and not self.powered:
            for card in self.cards:
                card.field_on()  # a card powers up in IDLE
        self.powered = on


class MFRC522Model:
    """The chip. Wire it with `spi.attach(model, cs_pin)`; cards go in `model.field`."""

    def __init__(self, clock, field=None):
        self.clock = clock
        self.field = field or Field(clock)
        self.selected = False
        self.corrupt_crc = 0
        self.frames = []  # the last RF frames, for tests: ("tx"|"rx", data)
        self.writes = []  # the last register writes, for tests: (register, value)
        self._hard_reset()

    # -- reset ------------------------------------------------------------------------------

    def _hard_reset(self):
        self.regs = bytearray(64)
        for reg, value in _RESET.items():
            self.regs[reg] = value
        self.fifo = bytearray()
        self._events = []  # [(at_us, callable)] in time order
        self._crc = 0
        self._reset_until = None
        self.field.power(False)

    def attach_rst(self, pin):
        """NRSTPD: low holds the chip in hard power-down; the rising edge resets it."""
        def changed(level):
            if level:
                self._hard_reset()

        pin.on_change = changed

    # -- SPI device interface (tools/models/bus.py) ---------------------------------------

    def select(self, active):
        self._update()
        self._frame_pos = 0
        self._read_addr = None

    def transfer(self, byte):
        self._update()
        pos = self._frame_pos
        self._frame_pos += 1
        if pos == 0:
            self._reading = bool(byte & 0x80)
            self._addr = (byte >> 1) & 0x3F
            if self._reading:
                self._read_addr = self._addr
            return 0
        if self._reading:
            out = self._read(self._read_addr)
            self._read_addr = (byte >> 1) & 0x3F
            return out
        self._write(self._addr, byte)
        return 0

    # -- time -------------------------------------------------------------------------------

    def _at(self, t, action):
        self._events.append((t, action))
        self._events.sort(key=lambda e: e[0])

    def _update(self):
        now = self.clock.now()
        if self._reset_until is not None and now >= self._reset_until:
            self._reset_until = None
            self.regs[COMMAND] &= 0xEF  # PowerDown cleared: the reset is done
        while self._events and self._events[0][0] <= now:
            action = self._events.pop(0)[1]
            action()

    def timeout_us(self):
        r = self.regs
        prescaler = ((r[T_MODE] & 0x0F) << 8) | r[T_PRESCALER]
        reload = (r[T_RELOAD_H] << 8) | r[T_RELOAD_L]
        return (2 * prescaler + 1) * (reload + 1) / 13.56

    # -- registers --------------------------------------------------------------------------

    def _read(self, reg):
        r = self.regs
        if reg == FIFO_DATA:
            if self.fifo:
                byte = self.fifo[0]
                self.fifo = self.fifo[1:]
                return byte
            return 0
        if reg == FIFO_LEVEL:
            return len(self.fifo) & 0x7F
        if reg == STATUS2:
            return r[STATUS2]
        return r[reg]

    def _write(self, reg, value):
        _log(self.writes, (reg, value))
        r = self.regs
        if reg == COMMAND:
            r[COMMAND] = (r[COMMAND] & 0x10) | (value & 0x3F)
            self._command(value & 0x0F)
        elif reg == COM_IRQ:
            self._set_clear(COM_IRQ, value)
        elif reg == DIV_IRQ:
            self._set_clear(DIV_IRQ, value)
        elif reg == FIFO_DATA:
            if len(self.fifo) >= 64:
                r[ERROR] |= BUFFER_OVFL
            else:
                self.fifo.append(value)
                if r[COMMAND] & 0x0F == CMD_CALC_CRC:
                    self._crc_feed(bytes([value]))
        elif reg == FIFO_LEVEL:
            if value & 0x80:
                self.fifo = bytearray()
                r[ERROR] &= 0xFF ^ BUFFER_OVFL
        elif reg == BIT_FRAMING:
            r[BIT_FRAMING] = value
            if value & 0x80 and r[COMMAND] & 0x0F == CMD_TRANSCEIVE:
                self._transmit()
        elif reg == COLL:
            r[COLL] = (r[COLL] & 0x7F) | (value & 0x80)
        elif reg == STATUS2:
            r[STATUS2] = (r[STATUS2] & 0x37) | (value & 0xC8)  # MFCrypto1On: software clears
        elif reg == TX_CONTROL:
            r[TX_CONTROL] = value
            self.field.power(value & 0x03 != 0)
        elif reg in (ERROR, STATUS1, CRC_RESULT_H, CRC_RESULT_L, VERSION):
            pass  # read-only
        else:
            r[reg] = value

    def _set_clear(self, reg, value):
        if value & 0x80:
            self.regs[reg] |= value & 0x7F
        else:
            self.regs[reg] &= 0xFF ^ (value & 0x7F)

    # -- commands ---------------------------------------------------------------------------

    def _command(self, cmd):
        self._events = []  # a new command ends the last one (and its pending answer)
        if cmd == CMD_IDLE:
            self._idle(False)
        elif cmd == CMD_SOFT_RESET:
            self._soft_reset()
        elif cmd == CMD_CALC_CRC:
            preset = (0x0000, 0x6363, 0xA671, 0xFFFF)[self.regs[MODE] & 0x03]
            self._crc = preset
            data = bytes(self.fifo)
            self.fifo = bytearray()
            self._crc_feed(data)
        elif cmd == CMD_TRANSCEIVE:
            self.regs[STATUS2] = (self.regs[STATUS2] & 0xF8) | 0x01  # waiting for StartSend
        elif cmd == CMD_MF_AUTHENT:
            self._authenticate()

    def _idle(self, irq=True):
        self.regs[COMMAND] &= 0xF0
        self.regs[STATUS2] &= 0xF8
        if irq:
            self.regs[COM_IRQ] |= IDLE_IRQ

    def _soft_reset(self):
        # every register to its reset value (9.3.1.2); PowerDown stays set until done
        keep = self.field
        self._hard_reset()
        self.field = keep
        self.regs[COMMAND] = 0x30
        self._reset_until = self.clock.now() + SOFT_RESET_US

    def _crc_feed(self, data):
        crc = tags.crc_a(data, self._crc)
        self._crc = crc[0] | (crc[1] << 8)
        self.regs[CRC_RESULT_L] = crc[0]
        self.regs[CRC_RESULT_H] = crc[1]
        done = self.clock.now() + CRC_BYTE_US * max(1, len(data))

        def ready():
            self.regs[DIV_IRQ] |= CRC_IRQ
            self.regs[STATUS1] |= 0x20

        self._at(done, ready)

    # -- RF ---------------------------------------------------------------------------------

    def _rf_on(self):
        r = self.regs
        return r[TX_CONTROL] & 0x03 and r[TX_ASK] & 0x40

    def _timer(self, tx_end, answer_start):
        """TAuto: the timer runs from the end of the transmission until the 5th received bit;
        TimerIRq if it runs out first."""
        if not self.regs[T_MODE] & 0x80:
            return
        timeout = self.timeout_us()
        if answer_start is None or answer_start + 5 * BIT_US > tx_end + timeout:

            def fire():
                self.regs[COM_IRQ] |= TIMER_IRQ

            self._at(tx_end + timeout, fire)

    def _transmit(self):
        r = self.regs
        data = bytes(self.fifo)
        self.fifo = bytearray()
        last = r[BIT_FRAMING] & 0x07
        nbits = len(data) * 8 if last == 0 else (len(data) - 1) * 8 + last
        # SOF + data with a parity bit per whole byte + EOF
        air_bits = 2 + nbits + nbits // 8
        now = self.clock.now()
        tx_end = now + air_bits * BIT_US
        _log(self.frames, ("tx", data))
        r[STATUS2] = (r[STATUS2] & 0xF8) | 0x03

        def sent():
            r[COM_IRQ] |= TX_IRQ
            r[STATUS2] = (r[STATUS2] & 0xF8) | 0x05

        self._at(tx_end, sent)
        answers = []
        cards = self.field.present(tx_end) if self._rf_on() else []
        if cards:
            answers = self._answers(cards, data, nbits)
        if not answers:
            self._timer(tx_end, None)
            return
        rx_start = tx_end + FDT_US
        length = max(len(a) for a in answers)
        rx_end = rx_start + (2 + length + length // 8) * BIT_US
        self._timer(tx_end, rx_start)
        self._at(rx_end, lambda: self._receive(answers, length))

    def _answers(self, cards, data, nbits):
        """Each present card's answer as a bit list (ISO 14443-3 activation here, the rest
        through `card.command`)."""
        out = []
        if nbits == 7 and data[0] in (tags.REQA, tags.WUPA):
            for card in cards:
                atqa = card.reqa(data[0] == tags.WUPA)
                if atqa is not None:
                    out.append(_bits_of(atqa))
            return out
        if len(data) >= 2 and data[0] in tags.SEL_CODES and data[1] != 0x70:
            known = nbits - 16  # bits of CLn + BCC the PCD already sent
            if known < 0 or known >= 40:
                return out
            sent = _bits_of(data[2:], known)
            for card in cards:
                full = card.anticollision(data[0])
                if full is None:
                    continue
                bits = _bits_of(full)
                if bits[:known] == sent:
                    out.append(bits[known:])
            return out
        if nbits % 8 or len(data) < 3 or tags.crc_a(data[:-2]) != data[-2:]:
            for card in cards:
                card.unexpected()  # a garbled frame: no answer, cards fall back to IDLE
            return out
        frame = data[:-2]
        if frame[0] in tags.SEL_CODES and len(frame) == 7 and frame[1] == 0x70:
            for card in cards:
                sak = card.select(frame[0], frame[2:6])
                if sak is not None:
                    out.append(_bits_of(self._with_crc(bytes([sak]))))
            return out
        for card in cards:
            response = card.command(frame)
            if response is not None:
                out.append(_bits_of(self._with_crc(response)))
        return out

    def _with_crc(self, data):
        crc = tags.crc_a(data)
        if self.corrupt_crc > 0:
            self.corrupt_crc -= 1
            crc = bytes((crc[0] ^ 0x5A, crc[1]))
        return data + crc

    def _receive(self, answers, length):
        r = self.regs
        bits = []
        coll = 0
        for i in range(length):
            values = [a[i] for a in answers if i < len(a)]
            bit = 1 if 1 in values else 0
            if coll == 0 and (0 in values and 1 in values or len(values) < len(answers)):
                coll = i + 1
            if coll and i + 1 > coll and not r[COLL] & 0x80:
                bit = 0  # ValuesAfterColl = 0
            bits.append(bit)
        align = (r[BIT_FRAMING] >> 4) & 0x07
        stream = [0] * align + bits
        data = bytearray((len(stream) + 7) // 8)
        for i in range(len(stream)):
            if stream[i]:
                data[i // 8] |= 1 << (i % 8)
        _log(self.frames, ("rx", bytes(data)))
        space = 64 - len(self.fifo)
        self.fifo.extend(data[:space])
        err = 0
        if len(data) > space:
            err |= BUFFER_OVFL
        r[CONTROL] = (r[CONTROL] & 0xF8) | (len(stream) % 8)
        if coll:
            err |= COLL_ERR
            if coll <= 32:
                r[COLL] = (r[COLL] & 0x80) | (coll % 32)
            else:
                r[COLL] = (r[COLL] & 0x80) | 0x20  # CollPosNotValid
        else:
            r[COLL] = (r[COLL] & 0x80) | 0x20
        r[ERROR] = err
        r[COM_IRQ] |= RX_IRQ | (ERR_IRQ if err else 0)
        r[STATUS2] = (r[STATUS2] & 0xF8) | 0x01  # Transceive: back to waiting for StartSend

    def _authenticate(self):
        """MFAuthent (10.3.1.9): FIFO = auth command, block, 6-byte key, 4 UID bytes. Ends
        with IdleIRq and MFCrypto1On; a card that does not answer leaves it to the timer."""
        r = self.regs
        data = bytes(self.fifo)
        self.fifo = bytearray()
        if len(data) < 12:
            r[ERROR] |= PROTOCOL_ERR
            r[COM_IRQ] |= ERR_IRQ
            return
        now = self.clock.now()
        # auth frame (2 bytes + CRC), nT (4), nR + aR (8), aT (4): frames with parity
        t_auth = now + (2 + 36) * BIT_US
        cards = self.field.present(t_auth) if self._rf_on() else []
        ok = False
        for card in cards:
            auth = getattr(card, "classic_auth", None)
            if card.state != tags.ACTIVE or auth is None:
                continue
            if bytes(card.uid[-4:]) != data[8:12]:
                continue
            ok = auth(data[1], data[0], data[2:8])
            if ok:
                break
        _log(self.frames, ("tx", data[0:2]))
        if not ok:
            self._timer(t_auth, None)
            return
        done = t_auth + 4 * FDT_US + (38 + 74 + 38) * BIT_US

        def authenticated():
            r[STATUS2] |= MF_CRYPTO1_ON
            self._idle()

        self._at(done, authenticated)
