"""NXP PN532 NFC reader (PN532 User Manual UM0701-02): the protocol, and the terminal's card
reader built on it (`PN532Reader`). Each host interface is a module of its own, so a board holds
only the one it uses: drivers/pn532_i2c.py, drivers/pn532_spi.py, drivers/pn532_uart.py.

The common red/blue "PN532 NFC module V3" boards select the host interface with two DIP
switches (SEL0, SEL1): HSU 0 0, I2C 1 0, SPI 0 1; switch with the module unpowered. On every
interface, IRQ (optional) is low while a frame is ready, which saves polling the bus, and
RSTPDN (optional `reset`) low resets the chip.

Frames (UM 6.2.1): `00 00 FF LEN LCS D4 CMD data DCS 00`, LCS and DCS making LEN and the body
sum to zero. The PN532 acknowledges a good frame with `00 00 FF 00 FF 00` and ignores a frame
whose checksum is wrong; without an ACK within 15 ms the host sends the command again (UM 6.2.3).
A response with a bad checksum is asked for again with a NACK `00 00 FF FF 00 00` (UM 6.2.1.4).
Every wait is bounded: a silent chip raises `PN532Timeout`, never a hang.

Waiting uses a clock with the two methods of tools/models/bus.VirtualClock: `now()` in us and
`advance(us)` (sleep). The default is the real clock; tests and the simulated board pass their
VirtualClock so that modelled time passes while the driver waits.
"""

import time

from micropython import const

from drivers import CardUnreadable, let_go
from drivers.watch import PollWatch

_TFI_HOST = const(0xD4)
_TFI_PN532 = const(0xD5)

_CMD_GET_FIRMWARE_VERSION = const(0x02)
_CMD_SAM_CONFIGURATION = const(0x14)
_CMD_RF_CONFIGURATION = const(0x32)
_CMD_IN_DATA_EXCHANGE = const(0x40)
_CMD_IN_LIST_PASSIVE_TARGET = const(0x4A)
_CMD_IN_RELEASE = const(0x52)

_BUF = const(272)  # a normal frame: 7 header/trailer bytes + LEN up to 255, with slack
FRAME_BYTES = const(_BUF)  # for the transports
_MAX_DATA = const(252)  # InDataExchange: LEN 255 less TFI, command and target number
_ACK_US = const(15000)  # UM 6.2.3: no ACK within 15 ms -> send the command again
_CMD_US = const(100000)
_LIST_US = const(200000)
_EXCHANGE_US = const(600000)  # above the card's FWT (77 ms at FWI 8) with WTX extensions
_TRIES = const(3)
_POLL_US = const(500)  # status poll interval: adds at most this to each wait
_IRQ_POLL_US = const(100)  # an IRQ pin (a UART's byte count) costs no bus time: look more often
IRQ_POLL_US = const(_IRQ_POLL_US)  # for the transports

# MxRtyPassiveActivation (UM 7.3.1, CfgItem 5): InListPassiveTarget tries n + 1 times, each
# about a millisecond with no card; 0xFF (the power-on default) retries forever, so with no
# card the command never returns and a polling terminal would block. One retry keeps a
# no-card poll at a few ms.
PASSIVE_RETRIES = 1

_ACK = const(b"\x00\x00\xff\x00\xff\x00")
_NACK = const(b"\x00\x00\xff\xff\x00\x00")
_ARGS_LIST = const(b"\x01\x00")  # MaxTg 1, BrTy 0: 106 kbps type A
_ARGS_SAM = const(b"\x01\x14\x01")  # normal mode, virtual card timeout 1 s, use the IRQ pin
_ARGS_RELEASE = const(b"\x01")
_ARGS_NONE = const(b"")

try:
    from time import sleep_us as _sleep_us
    from time import ticks_diff as _ticks_diff
    from time import ticks_us as _ticks_us
except ImportError:  # CPython: tests pass a VirtualClock, this only makes a default

    def _ticks_us():
        return time.monotonic_ns() // 1000

    def _sleep_us(us):
        time.sleep(us / 1000000)

    def _ticks_diff(a, b):
        return a - b


class PN532Error(Exception):
    """The PN532 misbehaved (bad frames, error frame, unexpected answer)."""


class PN532Timeout(PN532Error):
    """The PN532 did not answer in time (after the retries)."""


class PN532CardError(PN532Error):
    """The card exchange failed: InDataExchange status (0x01 timeout: the card left)."""


class RealClock:
    """The board's clock, with VirtualClock's interface."""

    def now(self):
        return _ticks_us()

    def advance(self, us):
        _sleep_us(us)


class PN532:
    """The PN532 command protocol. A transport subclass provides `_write_data(buf)`,
    `_read_data(n)` (the first n bytes of the frame the chip offers, into `self._rx`; returns
    the offset where they start), and either `_status_ready()` -> bool (one look at the chip's
    ready bit: I2C, SPI) or its own `_wait_ready(us)` -> bool (UART)."""

    def __init__(self, *, reset=None, clock=None, passive_retries=PASSIVE_RETRIES):
        self._clock = clock if clock is not None else RealClock()
        self._tx = bytearray(_BUF)
        self._txv = memoryview(self._tx)
        self._rx = bytearray(_BUF)
        self._rxv = memoryview(self._rx)
        self._views = {}
        self._p = 0  # where the payload of the last response starts in _rx
        self.retransmissions = 0  # commands sent again (no ACK, NACK, bad response)
        self.target_uid = None
        self.target_sak = 0
        self.target_atqa = 0
        if reset is not None:
            reset.value(0)
            self._clock.advance(1000)
            reset.value(1)
            self._clock.advance(10000)  # oscillator start-up and firmware boot
        self._wakeup()
        self.firmware = self.firmware_version()
        self.sam_configuration()
        self.rf_configuration(passive_retries)

    # -- transport-independent framing -------------------------------------------------------

    def _wakeup(self):
        pass

    def _elapsed(self, start):
        return _ticks_diff(self._clock.now(), start)

    def _wait_ready(self, timeout_us):
        """Until the chip has a frame for us: the IRQ line if it is wired (cheap to poll), else
        the transport's status byte; False after timeout_us."""
        clock = self._clock
        start = clock.now()
        while True:
            if self._irq is not None:
                if self._irq.value() == 0:
                    return True
                step = _IRQ_POLL_US
            else:
                if self._status_ready():
                    return True
                step = _POLL_US
            if self._elapsed(start) >= timeout_us:
                return False
            clock.advance(step)

    def _view(self, mv, n):
        """An n-byte view of a buffer; the small ones are kept, so that the no-card poll
        allocates nothing after its first run."""
        if n > 24:
            return mv[:n]
        key = n if mv is self._txv else n + 100
        v = self._views.get(key)
        if v is None:
            v = mv[:n]
            self._views[key] = v
        return v

    def _build(self, cmd, data, n):
        tx = self._tx
        length = n + 2
        tx[0] = 0x00
        tx[1] = 0x00
        tx[2] = 0xFF
        tx[3] = length
        tx[4] = (-length) & 0xFF
        tx[5] = _TFI_HOST
        tx[6] = cmd
        total = _TFI_HOST + cmd
        for i in range(n):
            b = data[i]
            tx[7 + i] = b
            total += b
        tx[7 + n] = (-total) & 0xFF
        tx[8 + n] = 0x00
        return 9 + n

    def _read_ack(self):
        """True for an ACK; False for a NACK or anything else (the caller sends again)."""
        o = self._read_data(6)
        rx = self._rx
        for i in range(6):
            if rx[o + i] != _ACK[i]:
                return False
        return True

    def _read_response(self, cmd):
        """Payload length of a good response to `cmd` (payload at self._p); -1 when the frame
        is damaged (the caller NACKs); PN532Error for an error frame or a wrong answer."""
        n = 6
        while True:
            o = self._read_data(n)
            rx = self._rx
            # Start code 00 FF after any number of preamble zeros (UM 6.2.1.1).
            i = o
            end = o + n - 1
            while i < end and rx[i] == 0x00 and rx[i + 1] != 0xFF:
                i += 1
            if i >= end or rx[i] != 0x00:
                return -1
            s = i + 2  # LEN
            need = s - o + 2
            if need > n:
                if need > 16:
                    return -1
                n = need
                continue
            length = rx[s]
            if (length + rx[s + 1]) & 0xFF:
                return -1
            need = s - o + 2 + length + 1
            if need > _BUF - 1:
                return -1
            if need > n:
                n = need
                continue
            break
        body = s + 2
        total = 0
        for k in range(body, body + length + 1):
            total += rx[k]
        if total & 0xFF:
            return -1
        if length == 1 and rx[body] == 0x7F:
            raise PN532Error("error frame (syntax error) for command %02X" % cmd)
        if length < 2 or rx[body] != _TFI_PN532 or rx[body + 1] != cmd + 1:
            raise PN532Error("unexpected answer to command %02X" % cmd)
        self._p = body + 2
        return length - 2

    def _call(self, cmd, data=_ARGS_NONE, n=-1, timeout_us=_CMD_US):
        """Send a command, get its ACK and response; payload length (payload at self._p)."""
        if n < 0:
            n = len(data)
        size = self._build(cmd, data, n)
        frame = self._view(self._txv, size)
        for _ in range(_TRIES):
            self._write_data(frame)
            if not self._wait_ready(_ACK_US) or not self._read_ack():
                self.retransmissions += 1
                continue
            if not self._wait_ready(timeout_us):
                # Abort the command (an ACK from the host, UM 6.2.1.3) so that the chip is
                # ready for the next one, then report.
                self._write_data(_ACK)
                self._timed_out()
                raise PN532Timeout("no response to command %02X" % cmd)
            for _ in range(_TRIES):
                length = self._read_response(cmd)
                if length >= 0:
                    return length
                self.retransmissions += 1
                self._write_data(_NACK)
                if not self._wait_ready(_ACK_US):
                    break
            raise PN532Error("damaged response to command %02X" % cmd)
        self._timed_out()
        raise PN532Timeout("no ACK for command %02X" % cmd)

    def _timed_out(self):
        pass

    # -- commands ----------------------------------------------------------------------------

    def firmware_version(self):
        """(IC, version, revision, support): a PN532 v1.6 answers (0x32, 1, 6, 7)."""
        n = self._call(_CMD_GET_FIRMWARE_VERSION)
        if n != 4:
            raise PN532Error("GetFirmwareVersion: %d bytes" % n)
        p = self._p
        return self._rx[p], self._rx[p + 1], self._rx[p + 2], self._rx[p + 3]

    def sam_configuration(self):
        """Normal mode (no SAM), IRQ pin used: the chip leaves low-VBat power-down."""
        self._call(_CMD_SAM_CONFIGURATION, _ARGS_SAM)

    def rf_configuration(self, passive_retries):
        """MxRtyATR 0xFF (default), MxRtyPSL 1, MxRtyPassiveActivation `passive_retries`."""
        self._call(_CMD_RF_CONFIGURATION, bytes((0x05, 0xFF, 0x01, passive_retries & 0xFF)))

    def list_target(self):
        """InListPassiveTarget, one target at 106 kbps type A. True when a card was activated
        (ISO-DEP cards through RATS): `target_uid`, `target_sak`, `target_atqa` are then set.
        With no card it allocates nothing: this runs every 50 ms while the terminal is idle."""
        n = self._call(_CMD_IN_LIST_PASSIVE_TARGET, _ARGS_LIST, 2, _LIST_US)
        if n < 1 or self._rx[self._p] == 0:
            self.target_uid = None
            return False
        rx = self._rx
        p = self._p
        # NbTg, Tg, SENS_RES (2), SEL_RES, NFCIDLength, NFCID1 [, ATS]   (UM 7.3.5)
        if n < 6 or rx[p + 5] not in (4, 7, 10) or n < 6 + rx[p + 5]:
            raise PN532Error("InListPassiveTarget: short target data")
        self.target_atqa = (rx[p + 2] << 8) | rx[p + 3]
        self.target_sak = rx[p + 4]
        self.target_uid = bytes(rx[p + 6:p + 6 + rx[p + 5]])
        return True

    def exchange(self, data):
        """InDataExchange with target 1: the card's answer (an APDU response for ISO-DEP
        cards, the tag's answer otherwise). PN532CardError when the status is not 0."""
        n = len(data)
        if n > _MAX_DATA - 1:
            raise PN532Error("InDataExchange: %d bytes" % n)
        buf = bytearray(n + 1)
        buf[0] = 0x01
        buf[1:] = data
        length = self._call(_CMD_IN_DATA_EXCHANGE, buf, n + 1, _EXCHANGE_US)
        if length < 1:
            raise PN532Error("InDataExchange: empty answer")
        status = self._rx[self._p]
        if status & 0x3F:  # b6 is MI (more information, chaining), the low 6 bits the error
            raise PN532CardError("InDataExchange status %02X" % status)
        return bytes(self._rx[self._p + 1:self._p + length])

    def release(self):
        """InRelease target 1: DESELECT for ISO-DEP, HLTA otherwise."""
        self._call(_CMD_IN_RELEASE, _ARGS_RELEASE, 1)


_ABSENT_POLLS = const(2)
_MAX_FAULTS = const(20)
_READ_TRIES = const(3)  # reads of one presentation before it is "not read": a slow tap recovers
_NTAG_READ_4 = const(b"\x30\x04")
_NTAG_READ_8 = const(b"\x30\x08")
_CLASSIC_KEY_A = const(b"\xff\xff\xff\xff\xff\xff")


class PN532Reader:
    """The terminal's card reader (`board.reader`): `read_card()` -> None or (pan, expiry).

    ISO-DEP targets (SAK bit 0x20) are read as EMV contactless cards (drivers/emv.py); other
    targets as our demo record (drivers/democard.py) on NTAG pages 4 to 9, or MIFARE Classic
    block 4-5 (key A FF..FF). Any fault (card gone, bad data, no PAN, status word) gives None:
    never a wrong card number.

    The runtime polls every 50 ms while idle. A card that was read is not reported again until
    the field has been seen empty on two polls in a row (100 ms): one empty poll can be a card
    at the edge of the field, and EMV cards show a new random UID at every activation, so the
    UID cannot tell "same card" from "new card". While such a card stays, a poll costs one
    InListPassiveTarget and an InRelease, not a second read.

    A card the reader cannot read (bad data, a status word refusing a command, a card taken
    away mid-read) is tried again on the next polls; after 3 failed reads of one presentation
    it raises CardUnreadable with the reason, once, and is left alone until it leaves.

    PN532 faults (timeouts, damaged frames) give None; after 20 in a row (a second at the
    idle rate) the last one is raised: the runtime then resets the board, which resets the chip.
    """

    def __init__(self, pn532, *, pdol_values=None, forget_ms=200):
        self._pn532 = pn532
        self._watch = PollWatch(forget_ms)
        self._pdol_values = pdol_values
        self._latched = False
        self._absent = 0
        self._faults = 0
        self._failed = 0  # failed reads of the card in the field
    def read_card(self):
        pn = self._pn532
        if self._watch.lapsed():
            self._latched = False  # nobody watched the field: see drivers/watch.py
        try:
            found = pn.list_target()
        except PN532Error:
            self._faults += 1
            if self._faults >= _MAX_FAULTS:
                self._faults = 0
                raise
            return None
        self._faults = 0
        if not found:
            if self._absent < _ABSENT_POLLS:
                self._absent += 1
            if self._absent >= _ABSENT_POLLS:
                self._latched = False
                self._failed = 0
            return None
        self._absent = 0
        result = None
        why = None
        if not self._latched:
            try:
                if pn.target_sak & 0x20:
                    result = self._read_emv()
                else:
                    result = self._read_demo(classic=bool(pn.target_sak & 0x18))
            except PN532CardError as e:  # the card's side: refused, or gone mid-read
                why = "card: %s" % e
            except PN532Error:  # our side of the link: a fault, counted at the poll
                pass
            except ValueError as e:  # EmvError, CardFormatError: no card number in it
                why = str(e)
        try:
            pn.release()
        except PN532Error:
            pass
        if result is not None:
            self._latched = True
            self._failed = 0
        elif why is not None:
            self._failed += 1
            if self._failed >= _READ_TRIES:
                self._latched = True
                raise CardUnreadable(why)
        return result

    # The card formats' code is imported for a read and let go after it: from .mpy files EMV's
    # 6 KB would sit in the heap that a purchase needs, for a read that takes 0.1 s a purchase.

    def _read_emv(self):
        from drivers import emv

        try:
            values = emv.default_values()
            if self._pdol_values:
                values.update(self._pdol_values)
            return emv.read_card(self._pn532.exchange, values)
        finally:
            let_go("emv")

    def _read_demo(self, classic):
        """Our demo record (drivers/democard.py): NTAG pages 4 to 11, or MIFARE Classic blocks
        4 and 5 after authenticating with key A."""
        from drivers import democard

        try:
            exchange = self._pn532.exchange
            if classic:
                block = democard.CLASSIC_FIRST_BLOCK
                # MIFARE authenticate with key A (0x60): block, key, the UID's last four bytes.
                exchange(bytes((0x60, block)) + _CLASSIC_KEY_A + self._pn532.target_uid[-4:])
                rec = exchange(bytes((0x30, block))) + exchange(bytes((0x30, block + 1)))
            else:
                # READ 0x30 returns 4 pages (16 bytes): pages 4-7, then 8-11 (8 and 9 used).
                rec = exchange(_NTAG_READ_4) + exchange(_NTAG_READ_8)
            if len(rec) != 32:
                raise democard.CardFormatError("short tag read")
            return democard.decode(rec[:democard.RECORD_LEN])
        finally:
            let_go("democard")
