"""Simulated buses with MicroPython's `machine` API, wired to chip models, and a virtual clock.

The drivers are handed these objects exactly as a board profile hands them `machine.SPI`,
`machine.I2C`, `machine.UART` and `machine.Pin`, so a driver cannot tell the difference. Every
transfer costs the time it would take on the wire (bits over the bus clock or baud rate); the
cost is added to a `VirtualClock` that the models read, so a card's answer, a printer's line
feed or a key's bounce happens after the time it would take on the real parts, and the tests can
report those times without sleeping through them.

Model interfaces (duck-typed):
- SPI device: `select(active)` when its chip-select pin changes (active low), and
  `transfer(byte) -> byte` for each full-duplex byte while selected.
- I2C device: `i2c_write(data, stop)` -> bool (ACK) and `i2c_read(n) -> bytes`.
- UART device: `uart_rx(data)` for bytes from the terminal (called as they arrive at the baud
  rate) and `uart_tx()` -> bytes the device has sent since the last call.
"""

try:
    from time import ticks_diff as _ticks_diff
    from time import ticks_us as _ticks_us
except ImportError:  # CPython
    from time import monotonic_ns as _mono

    def _ticks_us():
        return _mono() // 1000

    def _ticks_diff(a, b):
        return a - b

_ENODEV = 19
_ETIMEDOUT = 110


class VirtualTimer:
    """`machine.Timer` on a VirtualClock, for tests: `run(ms)` moves the clock on by `ms`, firing
    the callback every `period` ms of it, as the timer's interrupt would whatever else the
    program is doing (an event loop held for seconds included)."""

    PERIODIC = 1

    def __init__(self, clock):
        self.clock = clock
        self.period = None
        self.callback = None
        self.fired = 0

    def init(self, *, period, mode=PERIODIC, callback):
        self.period = period
        self.callback = callback

    def deinit(self):
        self.callback = None

    def run(self, ms):
        end = self.clock.us + ms * 1000
        while self.callback is not None and self.clock.us + self.period * 1000 <= end:
            self.clock.us += self.period * 1000
            self.fired += 1
            self.callback(self)
        self.clock.us = end


class SimTimer:
    """`machine.Timer` as the ESP32 port has it, for the simulated board on the unix port: every
    `period` ms a thread schedules the callback (micropython.schedule), as the timer's interrupt
    handler does there (ports/esp32/machine_timer.c), so it runs between two bytecodes of the
    program, its event loop held or not, and not inside a long C call. A tick that finds the
    schedule queue full is lost, as the ESP32's is.

    The unix port raises a Ctrl-C (SIGINT) in whichever thread the signal reaches; the virtual
    board aims it at the main thread (tools/vboard.py), so this one never takes it (it would
    die, perhaps holding the scheduler's lock); one that lands in the callback, which runs on
    the main thread, is printed and swallowed by the scheduler, and the virtual board sends it
    again."""

    PERIODIC = 1

    def __init__(self, timer_id=0):
        self.timer_id = timer_id
        self._generation = 0

    def init(self, *, period, mode=PERIODIC, callback):
        import _thread

        self._generation += 1
        _thread.start_new_thread(self._run, (self._generation, period, callback))

    def deinit(self):
        self._generation += 1

    def _run(self, generation, period, callback):
        import time

        import micropython

        while generation == self._generation:
            time.sleep_ms(period)
            try:
                micropython.schedule(callback, self)
            except RuntimeError:  # the queue is full
                pass


class VirtualClock:
    """Microseconds of modelled time. `advance(us)` is called for bus time; models schedule
    events with `at(us)`. `real=True` also lets real time count (the simulated board)."""

    def __init__(self, real=False):
        self.us = 0
        self.real = real
        self._then = _ticks_us()

    def now(self):
        if self.real:
            # Real time added as it passes: ticks_us wraps (every 2^30 us, 18 minutes, on a
            # 32-bit port), so only differences of a moment ago are taken.
            now = _ticks_us()
            self.us += _ticks_diff(now, self._then)
            self._then = now
        return self.us

    def advance(self, us):
        self.us += us


class SimPin:
    """`machine.Pin` stand-in. A model may drive an input (`drive(v)`), or watch an output
    (`on_change` callback with the new value)."""

    IN = 1
    OUT = 3
    PULL_UP = 1
    PULL_DOWN = 2
    OPEN_DRAIN = 7

    def __init__(self, name, mode=-1, pull=-1, value=None):
        self.name = name
        self.mode = mode
        self.pull = pull
        self._out = 1 if value is None else int(bool(value))
        self._driven = None  # what a model drives onto the pin, None = floating
        self.reader = None  # callable returning the level a model presents, or None
        self.on_change = None

    def init(self, mode=-1, pull=-1, value=None):
        if mode != -1:
            self.mode = mode
        if pull != -1:
            self.pull = pull
        if value is not None:
            self.value(value)

    def drive(self, level):
        self._driven = level

    def value(self, v=None):
        if v is None:
            if self.mode == self.OUT:
                return self._out
            if self.reader is not None:
                level = self.reader()
                if level is not None:
                    return level
            if self._driven is not None:
                return self._driven
            return 1 if self.pull == self.PULL_UP else 0
        v = 1 if v else 0
        changed = v != self._out
        self._out = v
        if changed and self.on_change is not None:
            self.on_change(v)
        return None

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def __call__(self, v=None):
        return self.value(v)


class SimSPI:
    """`machine.SPI` stand-in: full duplex, to whichever device's CS pin is low."""

    def __init__(self, clock, baudrate=1000000):
        self.clock = clock
        self.baudrate = baudrate
        self.devices = []  # [device]; each device has .selected
        self.bytes = 0

    def attach(self, device, cs):
        """Wire `device` behind chip-select pin `cs` (a SimPin the driver toggles)."""
        device.selected = False

        def changed(level):
            device.selected = level == 0
            device.select(device.selected)

        cs.on_change = changed
        self.devices.append(device)

    def init(self, baudrate=None, **kwargs):
        if baudrate:
            self.baudrate = baudrate

    def _xfer(self, byte):
        self.bytes += 1
        out = 0xFF  # MISO floats high when nobody drives it
        for device in self.devices:
            if device.selected:
                out = device.transfer(byte) & 0xFF
        return out

    def _cost(self, n):
        self.clock.advance(n * 8 * 1000000 // self.baudrate)

    def write(self, buf):
        for b in buf:
            self._xfer(b)
        self._cost(len(buf))

    def read(self, n, write=0x00):
        out = bytearray(n)
        self.readinto(out, write)
        return bytes(out)

    def readinto(self, buf, write=0x00):
        for i in range(len(buf)):
            buf[i] = self._xfer(write)
        self._cost(len(buf))

    def write_readinto(self, wbuf, rbuf):
        for i in range(len(wbuf)):
            rbuf[i] = self._xfer(wbuf[i])
        self._cost(len(wbuf))


class SimI2C:
    """`machine.I2C` stand-in. A missing device NACKs its address: OSError(ENODEV), as on the
    ESP32 port."""

    def __init__(self, clock, freq=400000):
        self.clock = clock
        self.freq = freq
        self.devices = {}
        self.bytes = 0

    def attach(self, addr, device):
        self.devices[addr] = device

    def scan(self):
        return sorted(self.devices)

    def _cost(self, n):
        # 9 clocks per byte (8 data + ACK), plus the address byte.
        self.clock.advance((n + 1) * 9 * 1000000 // self.freq)
        self.bytes += n + 1

    def _device(self, addr):
        device = self.devices.get(addr)
        if device is None:
            self._cost(0)
            raise OSError(_ENODEV)
        return device

    def writeto(self, addr, buf, stop=True):
        device = self._device(addr)
        self._cost(len(buf))
        if not device.i2c_write(bytes(buf), stop):
            raise OSError(_ENODEV)
        return len(buf)

    def writevto(self, addr, vector, stop=True):
        return self.writeto(addr, b"".join(bytes(v) for v in vector), stop)

    def readfrom_into(self, addr, buf, stop=True):
        device = self._device(addr)
        data = device.i2c_read(len(buf))
        self._cost(len(buf))
        for i in range(len(buf)):
            buf[i] = data[i] if i < len(data) else 0xFF

    def readfrom(self, addr, n, stop=True):
        buf = bytearray(n)
        self.readfrom_into(addr, buf, stop)
        return bytes(buf)

    def writeto_mem(self, addr, memaddr, buf, addrsize=8):
        self.writeto(addr, bytes([memaddr]) + bytes(buf))

    def readfrom_mem_into(self, addr, memaddr, buf, addrsize=8):
        self.writeto(addr, bytes([memaddr]), False)
        self.readfrom_into(addr, buf)


class SimUART:
    """`machine.UART` stand-in: 8N1 framing, 10 bits a byte at `baudrate`. Writes go into a
    TX FIFO that drains to the device at the baud rate as the virtual clock advances (call
    `pump()`, or any read/write/any does); the device's answers come back the same way."""

    def __init__(self, clock, device, baudrate=9600, txbuf=256):
        self.clock = clock
        self.device = device
        self.baudrate = baudrate
        self.txbuf = txbuf
        self._tx = bytearray()
        self._rx = bytearray()
        self._last = clock.now()
        self.bytes = 0

    def init(self, baudrate=None, **kwargs):
        if baudrate:
            self.baudrate = baudrate

    def byte_us(self):
        return 10 * 1000000 // self.baudrate

    def pump(self):
        """Move the bytes whose wire time has passed."""
        now = self.clock.now()
        n = (now - self._last) // self.byte_us()
        if n <= 0:
            return
        if self._tx:
            chunk = bytes(self._tx[:n])
            self._tx = self._tx[len(chunk):]
            self.device.uart_rx(chunk)
            self.bytes += len(chunk)
        self._last += n * self.byte_us()
        if not self._tx:
            self._last = now
        back = self.device.uart_tx()
        if back:
            self._rx.extend(back)

    def write(self, buf):
        """Queue what fits in the TX FIFO; return the count taken, as machine.UART does
        with a timeout of 0."""
        self.pump()
        room = self.txbuf - len(self._tx)
        take = min(room, len(buf))
        if take > 0:
            self._tx.extend(buf[:take])
        return take

    def flush(self):
        """Wait (in virtual time) until the TX FIFO has gone out."""
        self.clock.advance(len(self._tx) * self.byte_us())
        self.pump()

    def txdone(self):
        self.pump()
        return not self._tx

    def any(self):
        self.pump()
        return len(self._rx)

    def read(self, n=-1):
        self.pump()
        if not self._rx:
            return None
        if n is None or n < 0:
            n = len(self._rx)
        out = bytes(self._rx[:n])
        self._rx = self._rx[n:]
        return out

    def readinto(self, buf, n=-1):
        data = self.read(len(buf) if n < 0 else n)
        if not data:
            return None
        buf[:len(data)] = data
        return len(data)
