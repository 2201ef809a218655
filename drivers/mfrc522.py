"""NXP MFRC522 contactless reader (the common "RC522" module), ISO 14443-A over SPI.

Wiring (3.3 V only: the MFRC522 is not 5 V tolerant):

    RC522   ESP32 (see the board profile for the pins actually used)
    SDA     CS (any GPIO, active low; the module calls SPI's chip select "SDA")
    SCK     SPI SCK       MOSI  SPI MOSI       MISO  SPI MISO
    RST     NRSTPD, optional (low = hard power-down); leave it high if not wired
    3.3V    3.3 V         GND   GND            IRQ   not used (the driver polls ComIrqReg)

SPI mode 0, MSB first, up to 10 MHz (datasheet 8.1.2); board profiles use 5 MHz, which the
module's long flying leads tolerate.

Two classes:
- `MFRC522(spi, cs, *, rst=None, sleep_us=None)`: the chip. Frames to a card (`request`,
  `select`, `read`, `auth_classic`, `halt`); `None` means no card, `ReaderError` a protocol fault.
- `RC522Reader(mfrc522, *, classic_key=b"\\xff" * 6)`: what the firmware runtime calls,
  `read_card()` -> None or (pan, expiry), reading our demo record (drivers/democard.py).

`sleep_us` waits between status polls (default `time.sleep_us`); a board or test running the
chip model on a virtual clock passes the clock's `advance`. The wait for the card's answer costs
sleep, not SPI traffic: a no-card poll is 12 SPI bytes of setup plus a few status reads.
"""

from micropython import const

from drivers import CardUnreadable, democard
from drivers.watch import PollWatch

try:
    from time import sleep_us as _sleep_us
except ImportError:  # CPython
    from time import sleep as _sleep

    def _sleep_us(us):
        _sleep(us / 1000000)


# registers (datasheet 9.2)
_COMMAND = const(0x01)
_COM_IRQ = const(0x04)
_DIV_IRQ = const(0x05)
_ERROR = const(0x06)
_STATUS2 = const(0x08)
_FIFO_DATA = const(0x09)
_FIFO_LEVEL = const(0x0A)
_CONTROL = const(0x0C)
_BIT_FRAMING = const(0x0D)
_COLL = const(0x0E)
_MODE = const(0x11)
_TX_CONTROL = const(0x14)
_TX_ASK = const(0x15)
_CRC_RESULT_H = const(0x21)
_CRC_RESULT_L = const(0x22)
_T_MODE = const(0x2A)
_T_PRESCALER = const(0x2B)
_T_RELOAD_H = const(0x2C)
_T_RELOAD_L = const(0x2D)
_VERSION = const(0x37)

# commands (10.3)
_IDLE = const(0x00)
_CALC_CRC = const(0x03)
_TRANSCEIVE = const(0x0C)
_MF_AUTHENT = const(0x0E)
_SOFT_RESET = const(0x0F)

_RX_IRQ = const(0x20)
_IDLE_IRQ = const(0x10)
_TIMER_IRQ = const(0x01)
_CRC_IRQ = const(0x04)
_COLL_ERR = const(0x08)
_FRAME_ERRS = const(0x13)  # BufferOvfl, ParityErr, ProtocolErr
_POWER_DOWN = const(0x10)
_MF_CRYPTO1_ON = const(0x08)

# Timer (8.5): TModeReg 0x8D = TAuto (starts at the end of each transmission, stops on the
# 5th received bit) with TPrescaler 0xD3E = 3390: a tick is (2 * 3390 + 1) / 13.56 MHz =
# 500.1 us, and the timeout is (TReload + 1) ticks. TReload 30 gives 15.50 ms, long enough for
# any READ or authentication. A REQA is answered 86 us after the frame (ISO 14443-3 FDT) and an
# HLTA counts as acknowledged after 1 ms of silence (ISO 14443-3 6.4.3), so polls and HLTA use
# TReload 1 = 1.00 ms: a no-card poll ends 1 ms after its 9-bit frame instead of 15.5 ms.
_RELOAD_LONG = const(30)
_RELOAD_SHORT = const(1)
_MAX_WAIT_US = const(40000)  # the timer fires long before: if not, the chip is gone
_POLL_US = const(100)
_BIT_US_X100 = const(944)  # 128 / 13.56 MHz = 9.44 us per bit at 106 kbit/s
_FDT_US = const(90)

_REQA = const(0x26)
_WUPA = const(0x52)
_CT = const(0x88)
_READ = const(0x30)
_AUTH_A = const(0x60)

_ADDR_READ = const(0x80)
# ErrorReg, FIFOLevelReg, ControlReg, CollReg in one read frame (8.1.2.2: one address per byte)
_RD_STATUS = bytes((0x80 | (_ERROR << 1), 0x80 | (_FIFO_LEVEL << 1),
                    0x80 | (_CONTROL << 1), 0x80 | (_COLL << 1), 0))
_RD_CRC = bytes((0x80 | (_CRC_RESULT_L << 1), 0x80 | (_CRC_RESULT_H << 1), 0))
_SEL = const(b"\x93\x95\x97")


class ReaderError(Exception):
    """A protocol fault: no answer mid-exchange, CRC or BCC error, collision not resolved,
    NAK, authentication refused, chip not answering."""


class MFRC522:
    def __init__(self, spi, cs, *, rst=None, sleep_us=None):
        self._spi = spi
        self._cs = cs
        self._sleep = sleep_us or _sleep_us
        self._w2 = bytearray(2)
        self._r2 = bytearray(2)
        self._rs = bytearray(5)
        # FIFO write frame: address byte + up to 64 data bytes
        self._txf = bytearray(65)
        self._txf[0] = _FIFO_DATA << 1
        # FIFO read frame: 64 FIFO addresses then the closing 0; a read of n bytes is the
        # last n + 1 bytes of it (a slice, no allocation of a new address list)
        self._rdf = bytearray(65)
        for i in range(64):
            self._rdf[i] = _ADDR_READ | (_FIFO_DATA << 1)
        self._rxf = bytearray(65)
        self._rdf_mv = memoryview(self._rdf)
        self._rxf_mv = memoryview(self._rxf)
        self._txf_mv = memoryview(self._txf)
        self.tx = bytearray(18)  # frame to the card
        self.rx = bytearray(64)  # frame from the card
        self.rx_bits = 0  # valid bits in the last received byte (0 = all 8)
        self.coll_pos = 0  # first collision, in received bits (0 = none)
        self._cl = bytearray(5)  # CLn + BCC during anticollision
        self.uid = bytearray(10)
        self.uid_len = 0
        self.sak = 0
        self._reload = -1
        cs(1)
        if rst is not None:
            rst(1)
        self.init()

    # -- SPI (datasheet 8.1.2) --------------------------------------------------------------

    def _write(self, reg, value):
        w = self._w2
        w[0] = (reg << 1) & 0x7E
        w[1] = value
        self._cs(0)
        self._spi.write(w)
        self._cs(1)

    def _read(self, reg):
        w = self._w2
        w[0] = _ADDR_READ | ((reg << 1) & 0x7E)
        w[1] = 0
        self._cs(0)
        self._spi.write_readinto(w, self._r2)
        self._cs(1)
        return self._r2[1]

    def _write_fifo(self, buf, n):
        f = self._txf
        for i in range(n):
            f[i + 1] = buf[i]
        self._cs(0)
        self._spi.write(self._txf_mv[:n + 1])
        self._cs(1)

    def _read_fifo(self, n):
        self._cs(0)
        self._spi.write_readinto(self._rdf_mv[64 - n:], self._rxf_mv[:n + 1])
        self._cs(1)
        rx = self.rx
        f = self._rxf
        for i in range(n):
            rx[i] = f[i + 1]

    def _read_status(self):
        """ErrorReg, FIFOLevelReg, ControlReg, CollReg into self._rs[1:5]."""
        self._cs(0)
        self._spi.write_readinto(_RD_STATUS, self._rs)
        self._cs(1)

    # -- set-up -----------------------------------------------------------------------------

    def init(self):
        """Soft reset and the settings for ISO 14443-A at 106 kbit/s."""
        self._write(_COMMAND, _SOFT_RESET)
        # 10.3.1.10: PowerDown stays set until the reset (oscillator restart) is done
        for _ in range(100):
            self._sleep(50)
            if not self._read(_COMMAND) & _POWER_DOWN:
                break
        else:
            raise ReaderError("MFRC522 does not come out of reset")
        self._write(_T_MODE, 0x8D)
        self._write(_T_PRESCALER, 0x3E)
        self._write(_T_RELOAD_H, 0)
        self._write(_T_RELOAD_L, _RELOAD_LONG)
        self._reload = _RELOAD_LONG
        self._write(_TX_ASK, 0x40)  # Force100ASK: type A needs 100 % ASK whatever RFCfg says
        self._write(_MODE, 0x3D)  # CRC preset 0x6363 (ISO 14443-3 CRC_A)
        self._write(_COLL, 0x00)  # ValuesAfterColl = 0: bits after a collision read as 0
        version = self._read(_VERSION)
        if version in (0x00, 0xFF):
            raise ReaderError("no MFRC522 on the bus (VersionReg %02x)" % version)
        self.version = version
        tx = self._read(_TX_CONTROL)
        if tx & 0x03 != 0x03:
            self._write(_TX_CONTROL, tx | 0x03)  # antenna on: Tx1RFEn, Tx2RFEn

    def antenna(self, on):
        tx = self._read(_TX_CONTROL)
        self._write(_TX_CONTROL, (tx | 0x03) if on else (tx & 0xFC))

    def _timeout(self, reload):
        if reload != self._reload:
            self._write(_T_RELOAD_L, reload)
            self._reload = reload

    # -- exchanges --------------------------------------------------------------------------

    def _wait(self, mask, first_us):
        self._sleep(first_us)
        waited = first_us
        while waited < _MAX_WAIT_US:
            irq = self._read(_COM_IRQ)
            if irq & mask:
                return irq
            self._sleep(_POLL_US)
            waited += _POLL_US
        raise ReaderError("no interrupt from the MFRC522")

    def transceive(self, n, bits=0, align=0, expect=2, coll_ok=False):
        """Send self.tx[:n] (`bits` valid bits in the last byte, 0 = 8) and receive into
        self.rx. Returns the count of bytes received, 0 when nothing answered in time."""
        w = self._write
        w(_COMMAND, _IDLE)
        w(_COM_IRQ, 0x7F)  # Set1 = 0: clear every interrupt bit
        w(_FIFO_LEVEL, 0x80)  # FlushBuffer
        self._write_fifo(self.tx, n)
        w(_COMMAND, _TRANSCEIVE)
        w(_BIT_FRAMING, 0x80 | (align << 4) | bits)  # StartSend
        # sleep through our frame, the card's FDT and its expected answer, then poll
        air = (n * 9 + expect * 9 + 4) * _BIT_US_X100 // 100 + _FDT_US
        irq = self._wait(_RX_IRQ | _TIMER_IRQ, air)
        if not irq & _RX_IRQ:
            return 0
        self._read_status()
        err = self._rs[1]
        count = self._rs[2] & 0x7F
        self.rx_bits = self._rs[3] & 0x07
        self.coll_pos = 0
        if err & _FRAME_ERRS:
            raise ReaderError("frame error %02x" % err)
        if err & _COLL_ERR:
            coll = self._rs[4]
            if not coll_ok or coll & 0x20:
                raise ReaderError("collision")
            self.coll_pos = (coll & 0x1F) or 32
        if count:
            self._read_fifo(count)
        return count

    def crc(self, buf, n):
        """CRC_A of buf[:n] by the chip's coprocessor (CalcCRC), into self._rs[1:3]."""
        w = self._write
        w(_COMMAND, _IDLE)
        w(_DIV_IRQ, 0x04)  # Set2 = 0: clear CRCIRq
        w(_FIFO_LEVEL, 0x80)
        self._write_fifo(buf, n)
        w(_COMMAND, _CALC_CRC)
        for _ in range(50):
            if self._read(_DIV_IRQ) & _CRC_IRQ:
                break
            self._sleep(5)
        else:
            raise ReaderError("CalcCRC did not finish")
        self._cs(0)
        self._spi.write_readinto(_RD_CRC, self._rs)
        self._cs(1)
        w(_COMMAND, _IDLE)

    def _append_crc(self, n):
        self.crc(self.tx, n)
        self.tx[n] = self._rs[1]
        self.tx[n + 1] = self._rs[2]
        return n + 2

    def _check_crc(self, n):
        if n < 3:
            raise ReaderError("short answer")
        self.crc(self.rx, n - 2)
        if self._rs[1] != self.rx[n - 2] or self._rs[2] != self.rx[n - 1]:
            raise ReaderError("CRC_A error")

    # -- ISO 14443-3 ------------------------------------------------------------------------

    def request(self, wakeup=False):
        """REQA (or WUPA): the ATQA as an int, None when no card answers. Allocation-free: the
        idle poll runs this every 50 ms."""
        self._timeout(_RELOAD_SHORT)
        self.tx[0] = _WUPA if wakeup else _REQA
        try:
            n = self.transceive(1, bits=7, expect=2, coll_ok=True)
        except ReaderError:
            return 0  # garbled ATQA (two card types answering): a card is there all the same
        if n != 2:
            return None
        return self.rx[0] | (self.rx[1] << 8)

    def _cascade(self, sel):
        """Anticollision and SELECT at one cascade level (ISO 14443-3 6.5.3); the SAK."""
        cl = self._cl
        for i in range(5):
            cl[i] = 0
        tx = self.tx
        known = 0  # bits of CLn already known
        for _ in range(33):  # each collision teaches at least one bit
            nbytes = known >> 3
            nbits = known & 7
            tx[0] = sel
            tx[1] = ((2 + nbytes) << 4) | nbits  # NVB
            sent = nbytes + (1 if nbits else 0)
            for i in range(sent):
                tx[2 + i] = cl[i]
            n = self.transceive(2 + sent, bits=nbits, align=nbits, expect=5 - nbytes,
                                coll_ok=True)
            if n == 0:
                raise ReaderError("no answer to anticollision")
            keep = (1 << nbits) - 1  # bits of the first byte we sent ourselves
            for i in range(n):
                j = nbytes + i
                if j >= 5:
                    break
                if i == 0:
                    cl[j] = (cl[j] & keep) | (self.rx[0] & (0xFF ^ keep))
                else:
                    cl[j] = self.rx[i]
            if not self.coll_pos:
                break
            pos = known + self.coll_pos  # 1-based bit of CLn where two cards differ
            if pos <= known or pos > 32:
                raise ReaderError("collision not resolvable")
            bit = pos - 1
            cl[bit >> 3] |= 1 << (bit & 7)  # take the card that sent a 1 there
            known = pos
        else:
            raise ReaderError("anticollision did not converge")
        if cl[0] ^ cl[1] ^ cl[2] ^ cl[3] ^ cl[4]:
            raise ReaderError("BCC error")
        tx[0] = sel
        tx[1] = 0x70
        for i in range(5):
            tx[2 + i] = cl[i]
        n = self.transceive(self._append_crc(7), expect=3)
        if n == 0:
            raise ReaderError("no answer to SELECT")
        self._check_crc(n)
        return self.rx[0]

    def select(self):
        """After an ATQA: anticollision and SELECT through the cascade levels. Fills self.uid
        / self.uid_len / self.sak; returns the SAK."""
        self._timeout(_RELOAD_LONG)
        uid = self.uid
        n = 0
        for level in range(3):
            sak = self._cascade(_SEL[level])
            cl = self._cl
            if sak & 0x04:  # cascade bit: more UID to come, this CLn starts with CT
                if cl[0] != _CT:
                    raise ReaderError("cascade tag missing")
                uid[n] = cl[1]
                uid[n + 1] = cl[2]
                uid[n + 2] = cl[3]
                n += 3
                continue
            for i in range(4):
                uid[n + i] = cl[i]
            self.uid_len = n + 4
            self.sak = sak
            return sak
        raise ReaderError("UID longer than three cascade levels")

    def read(self, addr, into):
        """READ (0x30): 16 bytes from NTAG page `addr` (four pages) or MIFARE block `addr`,
        CRC_A checked, into `into[0:16]`."""
        tx = self.tx
        tx[0] = _READ
        tx[1] = addr
        n = self.transceive(self._append_crc(2), expect=18)
        if n == 0:
            raise ReaderError("no answer to READ")
        if n == 1 and self.rx_bits == 4:
            raise ReaderError("NAK %x" % (self.rx[0] & 0x0F))
        if n != 18:
            raise ReaderError("READ answer of %d bytes" % n)
        self._check_crc(n)
        for i in range(16):
            into[i] = self.rx[i]

    def auth_classic(self, block, key):
        """MIFARE Classic authentication with key A for `block`'s sector (MFAuthent,
        10.3.1.9). ReaderError when the card refuses the key (it goes back to IDLE)."""
        tx = self.tx
        tx[0] = _AUTH_A
        tx[1] = block
        for i in range(6):
            tx[2 + i] = key[i]
        off = self.uid_len - 4  # Crypto1 uses the last four UID bytes
        for i in range(4):
            tx[8 + i] = self.uid[off + i]
        w = self._write
        w(_COMMAND, _IDLE)
        w(_COM_IRQ, 0x7F)
        w(_FIFO_LEVEL, 0x80)
        self._write_fifo(tx, 12)
        w(_COMMAND, _MF_AUTHENT)
        irq = self._wait(_IDLE_IRQ | _TIMER_IRQ, 1500)
        if irq & _IDLE_IRQ and self._read(_STATUS2) & _MF_CRYPTO1_ON:
            return
        w(_COMMAND, _IDLE)  # MFAuthent does not end by itself when the card is silent
        raise ReaderError("authentication refused")

    def halt(self):
        """HLTA (50 00 + CRC): the card goes to HALT and answers only WUPA; silence for 1 ms
        is the acknowledgement. Also drops Crypto1 (Status2Reg.MFCrypto1On)."""
        self._timeout(_RELOAD_SHORT)
        tx = self.tx
        tx[0] = 0x50
        tx[1] = 0x00
        self.transceive(self._append_crc(2), expect=0)
        w = self._write
        w(_COMMAND, _IDLE)
        if self._read(_STATUS2) & _MF_CRYPTO1_ON:
            self._write(_STATUS2, 0x00)

    def uid_bytes(self):
        return bytes(self.uid[:self.uid_len])


_SAK_CLASSIC_1K = const(0x08)
_SAK_TYPE2 = const(0x00)
_SEEN = const(4)


class RC522Reader:
    """The runtime's card reader (docs/architecture.md, "Peripheral interface").

    `read_card()` is called every 50 ms while the terminal is idle. It returns (pan, expiry)
    from a demo card (drivers/democard.py) on an NTAG213/215 (pages 4 to 9) or a MIFARE
    Classic 1K (blocks 4 and 5, sector 1 authenticated with key A), and None otherwise: no card,
    a read cut short (card pulled away), a collision, a CRC error. Every READ is CRC_A checked
    and the record carries its own CRC32, so a damaged read is None, never a wrong PAN; a
    transient fault is retried on the next poll. A card that reads whole but carries no demo
    record (a foreign tag or key, a record failing its checks) raises CardUnreadable, once.

    A card is read once per presentation. After a read the card is halted (HLTA): it answers
    only WUPA from then on, so the cheap REQA poll does not see it. The UIDs dealt with (read,
    or found foreign or locked) are remembered; while one of them may still be in the field,
    each poll also sends a WUPA: an answer from a remembered card is halted again and ignored,
    and a WUPA with no answer at all means the field is empty (the card was removed), which
    forgets them. So a card held on the reader is read once; taken away and presented again,
    it is read again.
    """

    def __init__(self, mfrc522, *, classic_key=b"\xff" * 6, forget_ms=200):
        self.chip = mfrc522
        self._watch = PollWatch(forget_ms)
        self.classic_key = bytes(classic_key)
        self._seen = []
        self._retry = False  # the last attempt failed mid-way: wake the card with WUPA
        self._rec = bytearray(32)
        self._blk = bytearray(16)

    def read_card(self):
        chip = self.chip
        if self._watch.lapsed():
            self._seen = []  # nobody watched the field: a card there now is a new presentation
        try:
            atqa = chip.request(False)
            if atqa is None and (self._seen or self._retry):
                atqa = chip.request(True)
                if atqa is None:
                    self._seen = []  # nobody in the field: the card was removed
                    self._retry = False
                    return None
            if atqa is None:
                return None
            chip.select()
            uid = chip.uid_bytes()
            if uid in self._seen:
                chip.halt()
                return None
            try:
                result = self._read_record(chip)
            except CardUnreadable:
                self._retry = False
                self._remember(uid)
                try:
                    chip.halt()
                except ReaderError:
                    pass
                raise
        except ReaderError:
            # card pulled away, collision, CRC error: try to park it, retry on the next poll
            self._retry = True
            try:
                chip.halt()
            except ReaderError:
                pass
            return None
        self._retry = False
        self._remember(uid)
        chip.halt()
        return result

    def _remember(self, uid):
        self._seen.append(uid)
        if len(self._seen) > _SEEN:
            self._seen.pop(0)

    def _read_record(self, chip):
        rec = self._rec
        blk = self._blk
        sak = chip.sak & 0x7F
        if sak == _SAK_TYPE2:
            first = democard.NTAG_FIRST_PAGE
            chip.read(first, blk)  # pages 4-7
            rec[0:16] = blk
            chip.read(first + 4, blk)  # pages 8-11
            rec[16:32] = blk
        elif sak == _SAK_CLASSIC_1K:
            first = democard.CLASSIC_FIRST_BLOCK
            try:
                chip.auth_classic(first, self.classic_key)
            except ReaderError:
                raise CardUnreadable("Classic card: not our key")  # a foreign card
            chip.read(first, blk)
            rec[0:16] = blk
            chip.read(first + 1, blk)
            rec[16:32] = blk
        else:
            raise CardUnreadable("tag type (SAK %02X) carries no demo record" % sak)
        try:
            return democard.decode(rec)
        except democard.CardFormatError as e:
            raise CardUnreadable(str(e))
