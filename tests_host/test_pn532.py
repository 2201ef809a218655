# portable: micropython
"""PN532 driver on all three transports against the chip model: bytes on the wire, faults,
EMV and demo-tag reads, and the reader's rules (None on any fault, one read per tap)."""

import gc

import micropython

from drivers import CardUnreadable, democard
from drivers.pn532 import PN532Error, PN532Reader, PN532Timeout
from drivers.pn532_i2c import PN532_I2C
from drivers.pn532_spi import PN532_SPI
from drivers.pn532_uart import PN532_UART
from tools.models import emvcard
from tools.models.bus import SimI2C, SimPin, SimSPI, SimUART, VirtualClock
from tools.models.pn532 import PN532Model, frame, mirror

PAN = "4761739001010010"
EXP = "2812"

GET_FIRMWARE = b"\x00\x00\xff\x02\xfe\xd4\x02\x2a\x00"
SAM_CONFIG = b"\x00\x00\xff\x05\xfb\xd4\x14\x01\x14\x01\x02\x00"
RF_CONFIG = b"\x00\x00\xff\x06\xfa\xd4\x32\x05\xff\x01\x01\xf4\x00"
LIST_TARGET = b"\x00\x00\xff\x04\xfc\xd4\x4a\x01\x00\xe1\x00"
ACK = b"\x00\x00\xff\x00\xff\x00"
NACK = b"\x00\x00\xff\xff\x00\x00"


class Ntag:
    """A tiny NTAG213 stand-in: READ 0x30 returns 4 pages, wrapping like the real tag."""

    iso_dep = False
    sak = 0x00
    atqa = b"\x44\x00"

    def __init__(self, record=None, uid=b"\x04\x11\x22\x33\x44\x55\x66"):
        self.uid = uid
        self.pages = bytearray(45 * 4)
        if record is not None:
            self.pages[16:16 + len(record)] = record

    def command(self, data):
        if len(data) == 2 and data[0] == 0x30:
            page = data[1]
            return bytes(self.pages[(page + i) % 45 * 4 + j] for i in range(4) for j in range(4))
        return None


class Tap:
    """Records the raw bytes a transport carries, then passes them to the model."""

    def __init__(self, model, record):
        self.model = model
        self.record = record
        self.raw = []  # one bytearray per SPI transaction / UART chunk
        self.selected = False

    def select(self, active):
        if active and self.record:
            self.raw.append(bytearray())
        self.model.select(active)

    def transfer(self, byte):
        if self.record:
            self.raw[-1].append(byte)
        return self.model.transfer(byte)

    def uart_rx(self, data):
        if self.record:
            self.raw.append(bytes(data))
        self.model.uart_rx(data)

    def uart_tx(self):
        return self.model.uart_tx()


def make(kind, irq=False, cards=None, record=False):
    clock = VirtualClock()
    model = PN532Model(clock, cards=cards)
    tap = Tap(model, record)
    pin = None
    if irq:
        pin = SimPin("irq", SimPin.IN)
        model.attach_irq(pin)
    if kind == "i2c":
        bus = SimI2C(clock, 400000)
        bus.attach(0x24, model)
        pn = PN532_I2C(bus, irq=pin, clock=clock)
    elif kind == "spi":
        bus = SimSPI(clock, 5000000)
        cs = SimPin("cs", SimPin.OUT, value=1)
        bus.attach(tap, cs)
        pn = PN532_SPI(bus, cs, irq=pin, clock=clock)
    else:
        bus = SimUART(clock, tap, baudrate=115200)
        pn = PN532_UART(bus, clock=clock)
    return clock, model, pn, tap


KINDS = ("i2c", "spi", "uart")


def test_frames_on_the_wire_at_start_up():
    for kind in KINDS:
        clock, model, pn, tap = make(kind, record=True)
        assert pn.firmware == (0x32, 1, 6, 7)
        assert model.host_frames[:3] == [GET_FIRMWARE, SAM_CONFIG, RF_CONFIG], kind
        assert pn.list_target() is False
        assert model.host_frames[3] == LIST_TARGET
        if kind == "spi":
            # Data write: direction byte 0x01 then the frame, each byte mirrored on the
            # MSB-first bus so the PN532 sees it LSB first.
            writes = [bytes(r) for r in tap.raw if r and r[0] == mirror(0x01)]
            assert writes[0] == bytes(mirror(b) for b in b"\x01" + GET_FIRMWARE)
            assert writes[3] == bytes(mirror(b) for b in b"\x01" + LIST_TARGET)
            statuses = [r for r in tap.raw if r and r[0] == mirror(0x02)]
            assert statuses and all(len(r) == 2 for r in statuses)
        if kind == "uart":
            wire = b"".join(tap.raw)
            # HSU wake-up: 0x55 0x55 and dummy zeros before the first frame (UM 7.2.11).
            assert wire.startswith(b"\x55\x55" + bytes(14) + GET_FIRMWARE)
            assert SAM_CONFIG in wire and LIST_TARGET in wire


def test_model_frames_carry_both_checksums():
    want = b"\x00\x00\xff\x06\xfa\xd5\x03\x32\x01\x06\x07\xe8\x00"
    assert frame(b"\xd5\x03\x32\x01\x06\x07") == want


def test_no_card_poll_is_cheap_and_none():
    for kind in KINDS:
        clock, model, pn, tap = make(kind)
        reader = PN532Reader(pn)
        reader.read_card()  # the first poll turns the field on (5 ms guard time)
        start = clock.us
        assert reader.read_card() is None
        assert clock.us - start < 6000, (kind, clock.us - start)


class _NoCardI2C:
    """A bus that answers every read with a prepared frame, allocating nothing itself."""

    def __init__(self):
        self.offer = ACK
        self.nocard = frame(b"\xd5\x4b\x00")

    def writeto(self, addr, buf, stop=True):
        self.offer = ACK
        return len(buf)

    def readfrom_into(self, addr, buf, stop=True):
        f = self.offer
        buf[0] = 0x01
        n = len(buf)
        for i in range(1, n):
            buf[i] = f[i - 1] if i - 1 < len(f) else 0
        if n - 1 >= len(f):
            self.offer = self.nocard if f is ACK else ACK


def test_no_card_poll_allocates_nothing():
    bus = _NoCardI2C()
    bus.offer = None
    clock = VirtualClock()
    # Start-up commands are not on the poll path: feed them by a model, then swap the bus.
    model = PN532Model(clock)
    sim = SimI2C(clock)
    sim.attach(0x24, model)
    pn = PN532_I2C(sim, clock=clock)
    pn._i2c = bus
    bus.offer = ACK
    reader = PN532Reader(pn)
    for _ in range(3):
        assert reader.read_card() is None
    gc.collect()
    micropython.heap_lock()
    try:
        for _ in range(10):
            reader.read_card()
    finally:
        micropython.heap_unlock()


def test_nack_no_ack_and_garbage_are_retried():
    for kind in KINDS:
        clock, model, pn, tap = make(kind)
        for fault in ("nack", "no_ack", "garbage"):
            before = pn.retransmissions
            n = len(model.host_frames)
            model.fault(fault)
            assert pn.firmware_version() == (0x32, 1, 6, 7), (kind, fault)
            assert pn.retransmissions == before + 1, (kind, fault)
            sent = model.host_frames[n:]
            if fault == "garbage":
                assert sent == [GET_FIRMWARE, NACK], (kind, sent)
            else:
                assert sent == [GET_FIRMWARE, GET_FIRMWARE], (kind, sent)


def test_bad_host_checksum_gets_no_ack():
    clock = VirtualClock()
    model = PN532Model(clock)
    bad = bytearray(GET_FIRMWARE)
    bad[7] ^= 1
    model.i2c_write(bytes(bad), True)
    clock.advance(20000)
    assert model.i2c_read(1) == b"\x00"
    assert model.bad_frames == 1


def test_timeouts_raise_clear_exceptions():
    for kind in KINDS:
        clock, model, pn, tap = make(kind)
        model.fault("no_response")
        start = clock.us
        try:
            pn.firmware_version()
            raise AssertionError("no timeout")
        except PN532Timeout as e:
            assert "no response" in str(e)
        assert clock.us - start < 200000
        # The chip is usable again afterwards.
        assert pn.firmware_version()[0] == 0x32
        for _ in range(3):
            model.fault("no_ack")
        try:
            pn.sam_configuration()
            raise AssertionError("no timeout")
        except PN532Timeout as e:
            assert "no ACK" in str(e)


def test_no_chip_on_the_bus():
    clock = VirtualClock()
    try:
        PN532_I2C(SimI2C(clock), clock=clock)
        raise AssertionError("no error")
    except PN532Timeout:
        pass
    assert clock.us < 200000


def test_error_frame_is_an_error():
    clock, model, pn, tap = make("i2c")
    model.fault("error")
    try:
        pn.firmware_version()
        raise AssertionError("no error")
    except PN532Error as e:
        assert "error frame" in str(e)


def test_infinite_passive_retries_would_block_the_poll():
    # MxRtyPassiveActivation 0xFF: with no card the PN532 never answers InListPassiveTarget;
    # the driver still returns (timeout), but the idle loop would stall 200 ms a poll.
    clock = VirtualClock()
    model = PN532Model(clock)
    bus = SimI2C(clock)
    bus.attach(0x24, model)
    pn = PN532_I2C(bus, clock=clock, passive_retries=0xFF)
    try:
        pn.list_target()
        raise AssertionError("no timeout")
    except PN532Timeout:
        pass


def test_emv_read_of_every_profile_on_every_transport():
    for kind in KINDS:
        for irq in (False, True):
            if kind == "uart" and irq:
                continue
            clock, model, pn, tap = make(kind, irq=irq)
            reader = PN532Reader(pn)
            for profile in emvcard.PROFILES:
                card = profile(PAN, EXP)
                model.put(card)
                start = clock.us
                assert reader.read_card() == (PAN, EXP), (kind, profile)
                assert clock.us - start < 500000, (kind, profile, clock.us - start)
                model.remove(card)
                assert reader.read_card() is None
                assert reader.read_card() is None


def test_ntag_demo_read():
    for kind in KINDS:
        tag = Ntag(democard.encode(PAN, EXP))
        clock, model, pn, tap = make(kind, cards=[tag])
        reader = PN532Reader(pn)
        assert reader.read_card() == (PAN, EXP)
        assert (0x40, b"\x01\x30\x04") in model.commands
        assert (0x40, b"\x01\x30\x08") in model.commands


def test_card_format_code_is_let_go_after_a_read():
    # EMV and the demo record are imported for a read only: from .mpy files they would hold
    # 8 KB of the heap a purchase needs.
    import sys

    for card in (Ntag(democard.encode(PAN, EXP)), emvcard.PROFILES[0](PAN, EXP)):
        clock, model, pn, tap = make("i2c", cards=[card])
        assert PN532Reader(pn).read_card() == (PAN, EXP)
        assert "drivers.emv" not in sys.modules and "drivers.democard" not in sys.modules


def test_foreign_or_blank_tag_is_none():
    clock, model, pn, tap = make("i2c", cards=[Ntag()])
    assert PN532Reader(pn).read_card() is None


def test_same_card_is_read_once_per_tap():
    clock, model, pn, tap = make("spi")
    reader = PN532Reader(pn)
    card = emvcard.visa_like(PAN, EXP)
    model.put(card)
    assert reader.read_card() == (PAN, EXP)
    n = len(card.log)
    for _ in range(5):
        assert reader.read_card() is None  # still in the field: not read again
    assert len(card.log) == n
    model.remove(card)
    assert reader.read_card() is None
    model.put(card)  # back after one empty poll: a card at the edge of the field
    assert reader.read_card() is None
    model.remove(card)
    assert reader.read_card() is None
    assert reader.read_card() is None
    model.put(card)
    assert reader.read_card() == (PAN, EXP)


def test_card_leaving_mid_read_is_none_then_read_again():
    for kind in KINDS:
        for profile in emvcard.PROFILES:
            for step in (1, 3, 4):
                clock, model, pn, tap = make(kind)
                reader = PN532Reader(pn)
                card = profile(PAN, EXP)
                model.put(card)
                model.leave_after(step)
                assert reader.read_card() is None, (kind, profile, step)
                model.put(card)
                assert reader.read_card() == (PAN, EXP), (kind, profile, step)
        clock, model, pn, tap = make(kind)
        tag = Ntag(democard.encode(PAN, EXP))
        model.put(tag)
        model.leave_after(2)
        reader = PN532Reader(pn)
        assert reader.read_card() is None
        model.put(tag)
        assert reader.read_card() == (PAN, EXP)


def _not_read(reader):
    """Polls until the reader says the card is not read: (polls, the reason)."""
    for polls in range(1, 10):
        try:
            assert reader.read_card() is None
        except CardUnreadable as e:
            return polls, str(e)
    raise AssertionError("never CardUnreadable")


def test_a_card_that_cannot_be_read_is_said_once_after_three_tries():
    clock, model, pn, tap = make("i2c")
    reader = PN532Reader(pn)
    card = emvcard.visa_like(PAN, EXP)
    card.aids = [(b"\xA0\x00\x00\x00\x03\x10\x10", b"VISA", 1)]
    card.records = {}  # READ RECORD answers 6A83: no PAN
    model.put(card)
    polls, why = _not_read(reader)
    assert polls == 3 and why == "status 6A83", why
    assert PAN not in why
    for _ in range(5):
        assert reader.read_card() is None  # said once: left alone while it stays
    model.remove(card)
    reader.read_card()
    reader.read_card()  # the field seen empty twice: a new presentation may come
    other = emvcard.visa_like(PAN, EXP)
    other.pdol = b"\x9F\x66\x04"  # it then refuses our GPO data: 6700
    other._pdol_len = lambda: 5
    model.put(other)
    assert _not_read(reader) == (3, "status 6700")
    model.remove(other)
    reader.read_card()
    reader.read_card()
    bad = Ntag(bytes(32))  # a tag, no demo record on it
    model.put(bad)
    assert _not_read(reader) == (3, "not a demo card")


def test_faults_during_a_read_are_none():
    for fault in ("no_response", "error"):
        clock, model, pn, tap = make("i2c")
        reader = PN532Reader(pn)
        model.put(emvcard.track2_only(PAN, EXP))
        model.fault("no_ack")  # retried: harmless
        assert reader.read_card() == (PAN, EXP)
        model.remove(model.field[0])
        reader.read_card()
        reader.read_card()
        model.put(emvcard.track2_only(PAN, EXP))
        model.faults = [None, fault]  # the poll works, the first APDU fails
        assert reader.read_card() is None
        assert reader.read_card() == (PAN, EXP)


def test_a_dead_reader_is_raised_after_many_polls():
    clock, model, pn, tap = make("i2c")
    reader = PN532Reader(pn)
    faults = 0
    try:
        for _ in range(30):
            model.fault("no_response")
            assert reader.read_card() is None
            faults += 1
        raise AssertionError("never raised")
    except PN532Timeout:
        assert faults == 19


def test_tags_py_ntag_and_classic():
    from tools.models import tags

    rec = democard.encode(PAN, EXP)
    ntag = tags.NTAG213(b"\x04\x11\x22\x33\x44\x55\x66")
    for i in range(6):
        ntag.write_page(4 + i, rec[4 * i:4 * i + 4])
    classic = tags.MifareClassic1K(b"\x11\x22\x33\x44")
    classic.write_block(4, rec[:16])
    classic.write_block(5, rec[16:] + bytes(8))
    for card in (ntag, classic):
        clock, model, pn, tap = make("i2c", cards=[card])
        reader = PN532Reader(pn)
        assert reader.read_card() == (PAN, EXP), card
        assert reader.read_card() is None  # halted by InRelease, woken by WUPA: same tap
        assert pn.target_uid == card.uid
