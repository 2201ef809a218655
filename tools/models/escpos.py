"""Model of a 58 mm ESC/POS thermal printer (CSN-A2 / QR204 class) behind a SimUART.

What the real part does and the model copies:
- A small receive buffer (`buffer_bytes`, 256 here; the CSN-A2's is of that order). Bytes that
  arrive while it is full are lost: `overrun` is set and `lost` counts them. There is no flow
  control on the 3-wire TTL cable, so only the sender's pacing prevents this.
- A command processor that takes bytes from the buffer whenever the mechanism is free, and a
  mechanism that needs `line_ms` (virtual time) per 24-dot text line, twice that at double
  height, `line_ms` per 24-dot band of raster rows and of QR code, `line_ms` per fed line.
- Commands: ESC @, ESC !, ESC E, ESC a, ESC 7, ESC d, ESC v 0, GS !, GS v 0 (raster),
  GS ( k (QR model/size/ECC/store/print: recorded as a box with its data, not encoded), GS V,
  LF, DLE EOT n. Unknown ESC/GS commands are skipped with one parameter byte and listed in
  `unknown`.
- Real-time status: DLE EOT n and ESC v 0 are answered as soon as they arrive, even while the
  buffer is full or the mechanism stopped (as DLE EOT is specified; that ESC v 0 is answered the
  same way on the cheap parts is an assumption). Bits: DLE EOT 4 0x60 paper end; DLE EOT 2 0x04
  cover open, 0x20 stopped at paper end; every DLE EOT answer has bits 1 and 4 set. ESC v 0:
  bit 2 = no paper.
- Faults: `paper_lines` (paper left, in text lines; at zero the mechanism stops and the status
  says paper end, and `load_paper()` resumes), `cover_open`, `status_mode` "ok" / "garbage"
  (random bytes answered, at `garbage_rate`) / "silent", `powered` (off: hears nothing, prints
  nothing).

What was printed: `paper` is a list of entries, one per printed thing, in order:
`("text", text, (align, bold, width, height))`, `("raster", width, height, data, align)`,
`("qr", data, modules, module_dots, align)`, `("cut",)`; `text()` is what a person reads,
`jobs()` the same split at cuts and inits. MicroPython-compatible: the simulated board can run it
inside the firmware process.

`rig(baudrate, **model_options)` wires a model to a SimUART on a VirtualClock and returns it
with a `VirtualTimebase` for the driver (its sleeps advance the virtual clock), so a test or a
benchmark prints a receipt in modelled time without sleeping through it.
"""

try:
    import asyncio
except ImportError:  # pragma: no cover
    asyncio = None

from tools.models.bus import SimUART, VirtualClock

WIDTH_DOTS = 384
COLUMNS = 32  # 12x24 font
QR_CAPACITY_M = (14, 26, 42, 62, 84, 106, 122, 152, 180, 213)

_ESC = 0x1B
_GS = 0x1D
_DLE = 0x10
_LF = 0x0A

# ESC commands that take no parameter, and those that take more than one.
_ESC_NONE = b"@2<"
_ESC_LEN = {0x37: 5, 0x24: 4, 0x2A: 5}  # ESC 7 n1 n2 n3; ESC $ nL nH; ESC * (bit image header)


def qr_modules(n):
    for i in range(len(QR_CAPACITY_M)):
        if n <= QR_CAPACITY_M[i]:
            return 17 + 4 * (i + 1)
    return 17 + 4 * 10


class EscPosModel:
    def __init__(self, clock, *, baudrate=9600, buffer_bytes=256, line_ms=60, cut_ms=300,
                 paper_lines=None, seed=1):
        self.clock = clock
        self.baudrate = baudrate
        self.buffer_bytes = buffer_bytes
        self.line_us = line_ms * 1000
        self.cut_us = cut_ms * 1000
        self.paper_rows = None if paper_lines is None else paper_lines * 24
        self.cover_open = False
        self.status_mode = "ok"
        self.garbage_rate = 1.0
        self.powered = True
        self.uart = None  # the SimUART feeding it, for the bytes' arrival times
        self.on_line = None  # callback(model) after each printed entry: tests schedule faults
        # callback(entry) that takes each printed entry instead of `paper` (pictures excepted:
        # their bands join up there), for a caller that streams the paper away
        self.on_entry = None
        self.overrun = False
        self.lost = 0
        self.max_fill = 0
        self.received = 0
        self.unknown = []
        self.heat = None
        self.paper = []
        self._job_starts = [0]
        self._buf = bytearray()
        self._out = bytearray()
        self._rt = bytearray(3)  # last three bytes received, for real-time commands
        self._cmd = bytearray()
        self._busy_until = 0
        self._pt = 0  # processor time
        self._rng = seed or 1
        self.first_rx_us = None
        self.last_done_us = 0
        self._reset_modes()

    # ---- state ------------------------------------------------------------------------------

    def _reset_modes(self):
        self.align = 0
        self.bold = False
        self.width = 1
        self.height = 1
        self.qr_data = b""
        self.qr_size = 3
        self._line = []
        self._line_style = None

    @property
    def paper_out(self):
        return self.paper_rows is not None and self.paper_rows <= 0

    def set_paper_out(self):
        self.paper_rows = 0

    def load_paper(self, lines=None):
        self.paper_rows = None if lines is None else lines * 24
        self._pt = max(self._pt, self.clock.now())  # the processor resumes from now

    def _stopped(self):
        return self.paper_out or self.cover_open or not self.powered

    def _random(self):
        self._rng = (self._rng * 1103515245 + 12345) & 0x7FFFFFFF
        return self._rng >> 16

    # ---- UART side --------------------------------------------------------------------------

    def uart_rx(self, data):
        if not self.powered:
            return
        byte_us = 10 * 1000000 // self.baudrate
        n = len(data)
        # SimUART hands over, at its next pump, every byte whose wire time has passed; they
        # arrived one byte time apart from where its wire clock stood (read, not changed).
        uart = self.uart
        if uart is not None:
            base = uart._last
        else:
            base = self.clock.now() - n * byte_us
        for i in range(n):
            t = base + (i + 1) * byte_us  # when this byte finished arriving
            if self.first_rx_us is None:
                self.first_rx_us = t
            self._run(t)
            b = data[i]
            self.received += 1
            rt = self._rt
            rt[0], rt[1], rt[2] = rt[1], rt[2], b
            if rt[0] == _DLE and rt[1] == 0x04 and 1 <= b <= 4:
                self._answer(self._dle_eot(b))
            elif rt[0] == _ESC and rt[1] == 0x76 and b == 0:
                self._answer(0x04 if self.paper_out else 0x00)
            if len(self._buf) >= self.buffer_bytes:
                self.overrun = True
                self.lost += 1
                continue
            if not self._buf and self._pt < t:
                self._pt = t
            self._buf.append(b)
            if len(self._buf) > self.max_fill:
                self.max_fill = len(self._buf)

    def uart_tx(self):
        self._run(self.clock.now())
        out = bytes(self._out)
        self._out = bytearray()
        return out

    def _dle_eot(self, n):
        v = 0x12
        if n == 1 and self._stopped():
            v |= 0x08  # offline
        elif n == 2:
            if self.cover_open:
                v |= 0x04
            if self.paper_out:
                v |= 0x20
        elif n == 4 and self.paper_out:
            v |= 0x60
        return v

    def _answer(self, value):
        if self.status_mode == "silent":
            return
        if self.status_mode == "garbage" and self._random() % 1000 < self.garbage_rate * 1000:
            for _ in range(1 + self._random() % 2):
                self._out.append(self._random() & 0xFF)
            return
        self._out.append(value)

    # ---- processor and mechanism ------------------------------------------------------------

    def _run(self, t):
        """Process buffered bytes up to virtual time t."""
        buf = self._buf
        i = 0
        while i < len(buf) and not self._stopped():
            if self._busy_until > t:
                break
            if self._pt < self._busy_until:
                self._pt = self._busy_until
            b = buf[i]
            i += 1
            self._byte(b)
        if i:
            self._buf = buf[i:]

    def _mech(self, rows):
        """The mechanism prints or feeds `rows` dot rows from processor time on."""
        start = self._pt if self._pt > self._busy_until else self._busy_until
        self._busy_until = start + rows * self.line_us // 24
        self.last_done_us = self._busy_until
        if self.paper_rows is not None:
            self.paper_rows -= rows

    def _emit(self, entry, rows):
        if self.on_entry is None or entry[0] == "raster":
            self.paper.append(entry)
        else:
            self.on_entry(entry)
        self._mech(rows)
        if self.on_line is not None:
            self.on_line(self)

    def _print_line(self):
        style = self._line_style or (self.align, self.bold, self.width, self.height)
        self._emit(("text", "".join(self._line), style), 24 * style[3])
        self._line = []
        self._line_style = None

    def _byte(self, b):
        cmd = self._cmd
        if cmd:
            cmd.append(b)
            need = self._need(cmd)
            if need and len(cmd) >= need:
                self._cmd = bytearray()
                self._execute(cmd)
            return
        if b in (_ESC, _GS, _DLE):
            cmd.append(b)
        elif b == _LF:
            self._print_line()
        elif b >= 0x20:
            if self._line_style is None:
                self._line_style = (self.align, self.bold, self.width, self.height)
            elif self.bold:
                s = self._line_style
                self._line_style = (s[0], True, s[2], s[3])
            if len(self._line) * self._line_style[2] >= COLUMNS:
                self._print_line()  # line buffer full: the printer wraps
                self._line_style = (self.align, self.bold, self.width, self.height)
            self._line.append(chr(b))

    def _need(self, cmd):
        """Total length of the command in cmd, 0 while not yet known."""
        if len(cmd) < 2:
            return 0
        lead, op = cmd[0], cmd[1]
        if lead == _ESC:
            if op in _ESC_NONE:
                return 2
            return _ESC_LEN.get(op, 3)
        if lead == _DLE:
            return 3 if op in (0x04, 0x05) else 2
        if op == 0x56:  # GS V m [n]
            if len(cmd) < 3:
                return 0
            return 4 if cmd[2] in (65, 66) else 3
        if op == 0x76:  # GS v 0 m xL xH yL yH data
            if len(cmd) < 8:
                return 0
            return 8 + (cmd[4] + cmd[5] * 256) * (cmd[6] + cmd[7] * 256)
        if op == 0x28:  # GS ( x pL pH ...
            if len(cmd) < 5:
                return 0
            return 5 + cmd[3] + cmd[4] * 256
        return 3

    def _execute(self, cmd):
        lead, op = cmd[0], cmd[1]
        arg = cmd[2] if len(cmd) > 2 else 0
        if lead == _ESC:
            if op == 0x40:  # ESC @
                self._init()
            elif op == 0x21:  # ESC ! : bit 3 bold, 4 double height, 5 double width
                self.bold = bool(arg & 0x08)
                self.height = 2 if arg & 0x10 else 1
                self.width = 2 if arg & 0x20 else 1
            elif op == 0x45:
                self.bold = bool(arg & 1)
            elif op == 0x61:
                self.align = arg % 48 if arg >= 48 else arg
            elif op == 0x37:
                self.heat = (cmd[2], cmd[3], cmd[4])
            elif op == 0x64:  # ESC d n: print the line buffer, feed n lines
                if self._line:
                    self._print_line()
                    arg -= 1
                for _ in range(arg):
                    self._emit(("text", "", (0, False, 1, 1)), 24)
            elif op == 0x76:
                pass  # ESC v 0, answered on arrival
            elif op not in (0x32, 0x33, 0x2D, 0x4A, 0x7B, 0x47, 0x4D, 0x74, 0x52, 0x20):
                self.unknown.append(bytes(cmd))
        elif lead == _GS:
            if op == 0x21:  # GS ! : high nibble width - 1, low nibble height - 1
                self.width = (arg >> 4) + 1
                self.height = (arg & 0x0F) + 1
            elif op == 0x56:
                if self._line:
                    self._print_line()
                self.paper.append(("cut",))
                start = self._pt if self._pt > self._busy_until else self._busy_until
                self._busy_until = start + self.cut_us
                self._job_starts.append(len(self.paper))
            elif op == 0x76:
                wb = cmd[4] + cmd[5] * 256
                h = cmd[6] + cmd[7] * 256
                last = self.paper[-1] if self.paper else None
                if last and last[0] == "raster" and last[1] == wb * 8 and last[4] == self.align:
                    # Bands sent one after another are one picture on the paper.
                    self.paper[-1] = ("raster", wb * 8, last[2] + h, last[3] + bytes(cmd[8:]),
                                      self.align)
                    self._mech(h)
                else:
                    self._emit(("raster", wb * 8, h, bytes(cmd[8:]), self.align), h)
            elif op == 0x28 and cmd[2] == 0x6B:
                self._qr(cmd)
            else:
                self.unknown.append(bytes(cmd))
        # DLE EOT / DLE ENQ in sequence: already answered on arrival

    def _qr(self, cmd):
        fn = cmd[6] if len(cmd) > 6 else 0
        if fn == 0x43:
            self.qr_size = cmd[7]
        elif fn == 0x50:
            self.qr_data = bytes(cmd[8:])
        elif fn == 0x51:
            modules = qr_modules(len(self.qr_data))
            self._emit(("qr", self.qr_data.decode(), modules, self.qr_size, self.align),
                       modules * self.qr_size)

    def _init(self):
        self._reset_modes()
        if len(self.paper) > self._job_starts[-1]:
            self._job_starts.append(len(self.paper))

    # ---- what was printed -------------------------------------------------------------------

    def take_paper(self):
        """The entries printed since the last call, removed from the model (the simulated
        board hands them to the PC after each job, so a long run does not fill the heap)."""
        self._run(self.clock.now())
        entries = self.paper
        self.paper = []
        self._job_starts = [0]
        return entries

    def idle(self):
        """Everything received has been printed (mechanism at rest, buffer empty)."""
        self._run(self.clock.now())
        return not self._buf and not self._cmd and self._busy_until <= self.clock.now()

    @staticmethod
    def line_text(entry, images=False):
        kind = entry[0]
        if kind == "text":
            text, style = entry[1], entry[2]
            if not text:
                return ""
            cols = COLUMNS // style[2]
            if style[0] == 1:
                return " " * ((cols - len(text)) // 2) + text
            if style[0] == 2:
                return " " * (cols - len(text)) + text
            return text
        if not images or kind == "cut":
            return None
        if kind == "qr":
            return "[QR %s]" % entry[1]
        return "[IMAGE %dx%d]" % (entry[1], entry[2])

    def _text(self, entries, images):
        out = []
        for entry in entries:
            line = self.line_text(entry, images)
            if line is not None:
                out.append(line)
        return "\n".join(out)

    def text(self, images=False):
        """The printed receipt text as a person reads it: one line per printed line, centred
        lines padded to the column width; pictures left out (or as [QR data] / [IMAGE wxh])."""
        self._run(self.clock.now())
        return self._text(self.paper, images)

    def jobs(self, images=False):
        """Texts of the jobs, split at cuts and at ESC @ (each receipt starts with one)."""
        self._run(self.clock.now())
        bounds = self._job_starts + [len(self.paper)]
        out = []
        for i in range(len(bounds) - 1):
            part = [e for e in self.paper[bounds[i]:bounds[i + 1]] if e[0] != "cut"]
            if part:
                out.append(self._text(part, images))
        return out


class VirtualTimebase:
    """The driver's time source in tests: sleeping advances the virtual clock and moves the
    UART's bytes, so a receipt prints in modelled time."""

    def __init__(self, clock, uart):
        self.clock = clock
        self.uart = uart

    def ticks_ms(self):
        return self.clock.now() // 1000

    def sleep_ms(self, ms):
        self.clock.advance(ms * 1000)
        self.uart.pump()

    async def wait_ms(self, ms):
        self.sleep_ms(ms)
        await asyncio.sleep(0)


def rig(baudrate=9600, **options):
    """(model, uart, timebase): a printer model on a SimUART on a fresh VirtualClock."""
    clock = VirtualClock()
    model = EscPosModel(clock, baudrate=baudrate, **options)
    uart = SimUART(clock, model, baudrate=baudrate)
    model.uart = uart
    return model, uart, VirtualTimebase(clock, uart)
