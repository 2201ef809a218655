# portable: micropython
"""The TCA8418 keypad controller driver against the chip model, at the I2C level, on a virtual
clock: its set-up, every key, contact bounce, a held key, the interrupt pin, the stall of an
event loop (the timer's polls go on) and of the whole program (the chip's FIFO holds 5 keys),
an overflow counted, a missing chip, and a poll that allocates nothing."""

import asyncio

import micropython

from drivers.tca8418 import TCA8418Error, TCA8418Keypad
from tools.models import tca8418 as chip_model
from tools.models.bus import SimI2C, SimPin, VirtualClock, VirtualTimer
from tools.models.keypad import KeypadMatrix

ALL = "123A456B789C*0#D"
STALL_TEXT = "1234567890*#ABCD98765432"  # 8 keys a second for 3 s


def _rig(seed=1, timer=True, int_pin=False, **opts):
    clock = VirtualClock()
    # The membrane: its pins are the chip's, which scans them itself.
    rows = [SimPin("row%d" % i, SimPin.OUT, value=1) for i in range(4)]
    cols = [SimPin("col%d" % i, SimPin.IN, SimPin.PULL_UP) for i in range(4)]
    membrane = KeypadMatrix(rows, cols, clock, seed=seed)
    chip = chip_model.TCA8418(clock, membrane)
    i2c = SimI2C(clock, 400000)
    i2c.attach(chip_model.ADDRESS, chip)
    if timer:
        opts["timer"] = VirtualTimer(clock)
    if int_pin:
        opts["int_pin"] = chip.int_pin
    keypad = TCA8418Keypad(i2c, **opts)
    return clock, membrane, chip, keypad


def _type(membrane, text, start_ms, every_ms, hold_ms):
    for i in range(len(text)):
        membrane.press(text[i], start_ms + i * every_ms, hold_ms)
    return start_ms + len(text) * every_ms + 200


def _drain(keypad):
    out = []
    label = keypad.get()
    while label is not None:
        out.append(label)
        label = keypad.get()
    return "".join(out)


def test_set_up_puts_rows_and_columns_in_keypad_mode_with_debounce_on():
    clock, membrane, chip, keypad = _rig()
    regs = chip.regs
    assert regs[chip_model.KP_GPIO1] == 0x0F and regs[chip_model.KP_GPIO2] == 0x0F
    assert regs[chip_model.KP_GPIO3] == 0
    assert regs[chip_model.DEBOUNCE_DIS1] == 0 and regs[chip_model.DEBOUNCE_DIS2] == 0
    assert regs[chip_model.CFG] == chip_model.CFG_KE_IEN | chip_model.CFG_OVR_FLOW_IEN | \
        chip_model.CFG_INT_CFG
    assert regs[chip_model.INT_STAT] == 0


def test_every_key_and_its_event_codes():
    clock, membrane, chip, keypad = _rig(timer=False)
    membrane.press("1", 10, 80)
    clock.us = 200000
    chip.run()
    assert chip.fifo == [0x81, 0x01]  # key 1 (R0 C0) pressed, then released
    keypad.poll()
    assert _drain(keypad) == "1"
    membrane.press("D", 300, 80)
    clock.us = 500000
    chip.run()
    assert chip.fifo == [0x80 | 34, 34]  # R3 C3: 3 * 10 + 3 + 1
    keypad.poll()
    assert _drain(keypad) == "D"
    end = _type(membrane, ALL, 600, 200, 100)
    clock.us = end * 1000
    for t in range(600, end, 100):  # polled every 100 ms: the FIFO holds what comes between
        clock.us = t * 1000
        keypad.poll()
    keypad.poll()
    assert _drain(keypad) == ALL and keypad.dropped == 0


def test_bounce_gives_one_key_per_press_and_a_held_key_is_one_key():
    for seed in range(1, 11):
        clock, membrane, chip, keypad = _rig(seed=seed)
        membrane.press("7", 3, 80)
        membrane.press("#", 500, 3000)
        keypad._timer.run(4000)
        assert _drain(keypad) == "7#", seed


def _session(clock, keypad, end_ms, stall_from, stall_ms, timer_stalls):
    """The keys the cashier's screen gets: the event loop takes them every 100 ms, except
    for `stall_ms` from `stall_from`, while it is held (the timer's polls go on) or, with
    `timer_stalls`, while the whole program is (inside one C call: no poll either)."""
    timer = keypad._timer
    got = ""
    while clock.us // 1000 < end_ms:
        now = clock.us // 1000
        if stall_from <= now < stall_from + stall_ms:
            if timer_stalls:
                clock.us += stall_ms * 1000
            else:
                timer.run(stall_ms)
        else:
            timer.run(100)
        got += _drain(keypad)
    return got


def test_timer_polls_keep_every_key_through_a_held_event_loop():
    for seed in range(1, 6):
        clock, membrane, chip, keypad = _rig(seed=seed)
        end = _type(membrane, STALL_TEXT, 10 + seed, 125, 40)
        got = _session(clock, keypad, end, 500, 2000, timer_stalls=False)
        assert got == STALL_TEXT, (seed, got)
        assert keypad.dropped == 0


def test_a_stall_of_the_whole_program_keeps_five_keys_in_the_chip():
    # Inside one long C call (a TLS handshake's crypto, a flash erase) no Python runs, the
    # timer's callback neither: the chip's 10-event FIFO holds 5 presses and releases; the
    # rest are lost, and the driver says so.
    clock, membrane, chip, keypad = _rig(seed=3)
    end = _type(membrane, STALL_TEXT, 13, 125, 40)
    got = _session(clock, keypad, end, 500, 2000, timer_stalls=True)
    assert got == STALL_TEXT[:4] + STALL_TEXT[4:9] + STALL_TEXT[20:], got
    assert keypad.dropped >= 1 and chip.overflows == 22
    # 0.6 s is what the FIFO covers at this pace: such a stall loses nothing.
    clock, membrane, chip, keypad = _rig(seed=4)
    end = _type(membrane, STALL_TEXT, 13, 125, 40)
    got = _session(clock, keypad, end, 500, 600, timer_stalls=True)
    assert got == STALL_TEXT and keypad.dropped == 0


def test_int_pin_is_low_while_events_wait():
    clock, membrane, chip, keypad = _rig(timer=False, int_pin=True)
    assert chip.int_pin.value() == 1
    membrane.press("5", 10, 60)
    clock.us = 55000  # past the bounce and the chip's 30 ms debounce
    assert chip.int_pin.value() == 0  # the press is in the FIFO
    keypad.poll()
    assert _drain(keypad) == "5"
    clock.us = 300000
    keypad.poll()  # the release, read and cleared
    assert chip.int_pin.value() == 1 and not chip.fifo
    transactions = chip.transactions
    keypad.poll()  # INT high: the driver does not touch the bus
    assert chip.transactions == transactions


def test_iterator_yields_the_keys():
    clock, membrane, chip, keypad = _rig()
    _type(membrane, "42*#", 20, 150, 60)
    keypad._timer.run(1000)
    got = []

    async def collect():
        async for label in keypad:
            got.append(label)
            if len(got) == 4:
                break

    asyncio.run(collect())
    assert "".join(got) == "42*#"


def test_missing_chip_is_a_clear_error():
    clock = VirtualClock()
    try:
        TCA8418Keypad(SimI2C(clock, 400000))
    except TCA8418Error as e:
        assert "0x34" in str(e)
    else:
        raise AssertionError("no error")


class _Registers:
    """An I2C bus with a TCA8418 that answers from preallocated registers and events, so that
    the driver's own allocations are all heap_lock sees (the model's bus allocates)."""

    def __init__(self, events):
        self.regs = bytearray(0x2F)
        self.events = bytearray(events)
        self.next = 0

    def readfrom_mem_into(self, addr, reg, buf):
        if reg == 0x04:
            buf[0] = self.events[self.next] if self.next < len(self.events) else 0
            self.next += 1
        elif reg == 0x03:
            buf[0] = len(self.events) - self.next if self.next < len(self.events) else 0
        else:
            buf[0] = self.regs[reg]

    def writeto_mem(self, addr, reg, buf):
        self.regs[reg] = buf[0]


def test_poll_allocates_nothing():
    bus = _Registers(b"")
    keypad = TCA8418Keypad(bus)
    bus.events = bytearray(b"\x97\x17\x98\x18")  # 9 (R2 C2: 23) down, up; C (R2 C3: 24)
    bus.next = 0
    micropython.heap_lock()
    try:
        keypad.poll()
    finally:
        micropython.heap_unlock()
    assert _drain(keypad) == "9C"
