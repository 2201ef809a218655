"""The TCA8418 model against a driver written by others: Adafruit's CircuitPython driver
(adafruit-circuitpython-tca8418, with its bus-device and register helpers; requirements-peers.txt,
installed without Blinka, whose hardware layer the model replaces). It sets the chip up its own
way, register by register, and reads the key events as its keypad example does: the model must
give it every key, pressed and released, with the datasheet's key numbers."""

import sys
import types

import pytest

from tools.models import tca8418 as chip_model
from tools.models.bus import SimI2C, SimPin, VirtualClock
from tools.models.keypad import KeypadMatrix


class BusioI2C:
    """CircuitPython's busio.I2C over the simulated bus: what Blinka would give the driver."""

    def __init__(self, bus):
        self.bus = bus

    def try_lock(self):
        return True

    def unlock(self):
        pass

    def scan(self):
        return self.bus.scan()

    def writeto(self, address, buffer, *, start=0, end=None):
        self.bus.writeto(address, bytes(buffer[start:end]))

    def readfrom_into(self, address, buffer, *, start=0, end=None):
        view = memoryview(buffer)[start:end]
        self.bus.readfrom_into(address, view)

    def writeto_then_readfrom(self, address, out_buffer, in_buffer, *, out_start=0, out_end=None,
                              in_start=0, in_end=None):
        self.bus.writeto(address, bytes(out_buffer[out_start:out_end]), False)
        view = memoryview(in_buffer)[in_start:in_end]
        self.bus.readfrom_into(address, view)


@pytest.fixture(scope="module")
def adafruit_tca8418():
    # The hardware modules the driver imports only for its GPIO pins and type hints.
    stubs = {"digitalio": types.ModuleType("digitalio"), "busio": types.ModuleType("busio")}
    stubs["digitalio"].Direction = type("Direction", (), {"INPUT": 0, "OUTPUT": 1})
    stubs["digitalio"].Pull = type("Pull", (), {"UP": 1, "DOWN": 2})
    stubs["digitalio"].DigitalInOut = object
    stubs["busio"].I2C = BusioI2C
    stubs["busio"].SPI = object
    saved = {name: sys.modules.get(name) for name in stubs}
    sys.modules.update(stubs)
    import adafruit_tca8418

    yield adafruit_tca8418
    for name, module in saved.items():
        if module is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = module


def _rig(adafruit_tca8418):
    clock = VirtualClock()
    rows = [SimPin("row%d" % i, SimPin.OUT, value=1) for i in range(4)]
    cols = [SimPin("col%d" % i, SimPin.IN, SimPin.PULL_UP) for i in range(4)]
    membrane = KeypadMatrix(rows, cols, clock)
    chip = chip_model.TCA8418(clock, membrane)
    bus = SimI2C(clock, 400000)
    bus.attach(chip_model.ADDRESS, chip)
    tca = adafruit_tca8418.TCA8418(BusioI2C(bus))
    # As the driver's keypad example sets it up: rows 0-3 and columns 0-3 as a matrix.
    for pin in (tca.R0, tca.R1, tca.R2, tca.R3, tca.C0, tca.C1, tca.C2, tca.C3):
        tca.keypad_mode[pin] = True
        tca.enable_int[pin] = True
        tca.event_mode_fifo[pin] = True
    tca.key_intenable = True
    return clock, membrane, chip, tca


def _events(tca):
    out = []
    if tca.key_int:
        while tca.events_count:
            out.append(tca.next_event)
        tca.key_int = True  # write 1: clear
    return out


def test_adafruit_driver_sets_the_model_up_and_reads_every_key(adafruit_tca8418):
    clock, membrane, chip, tca = _rig(adafruit_tca8418)
    assert chip.regs[chip_model.KP_GPIO1] == 0x0F and chip.regs[chip_model.KP_GPIO2] == 0x0F
    assert chip.regs[chip_model.DEBOUNCE_DIS1] == 0  # its "debounce on", inverted as ours
    assert chip.regs[chip_model.CFG] & chip_model.CFG_KE_IEN
    labels = "123A456B789C*0#D"
    for i, label in enumerate(labels):
        membrane.press(label, 10 + i * 150, 60)
    got = []
    for t in range(0, 10 + len(labels) * 150 + 200, 50):  # its example polls; so do we
        clock.us = t * 1000
        got += _events(tca)
    expected = []
    for i in range(len(labels)):
        number = (i // 4) * 10 + i % 4 + 1
        expected += [0x80 | number, number]
    assert got == expected
    assert not tca.key_int and tca.events_count == 0


def test_adafruit_driver_sees_an_overflow(adafruit_tca8418):
    clock, membrane, chip, tca = _rig(adafruit_tca8418)
    for i in range(8):  # 16 events for a 10-event FIFO, nobody reading
        membrane.press("5", 10 + i * 150, 60)
    clock.us = 2000 * 1000
    assert tca.overflow_int
    assert tca.events_count == 10
    assert _events(tca) == [0x80 | 12, 12] * 5  # the oldest kept (OVR_FLOW_M clear)
    tca.overflow_int = True
    assert not tca.overflow_int
