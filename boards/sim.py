"""Simulated board: the firmware on the MicroPython unix port, peripherals modelled by tools/sim.

The peripherals are reached over one TCP link to the sim (127.0.0.1:$POS_SIM_LINK) carrying JSON
lines (docs/architecture.md, "Simulated board link"). The flash is a real littlefs2 filesystem on
a block device kept in the file $POS_FLASH, mounted at /flash, so a power cut (SIGKILL of this
process) tests the same durability rules as the ESP32's flash.

Environment:
  POS_SIM_LINK  TCP port of the sim's board link (required by `Board.start()`)
  POS_FLASH     littlefs image file (created and formatted on first use)
  POS_CONFIG    JSON object of settings overriding the flash config (scenario config)
  POS_HOST_CA   the CA certificate the host link trusts, DER in hex: written to the flash as the
                host_ca file at mount, as provisioning (tools/provision.py --ca) writes it
  POS_DEVICE_ID this board's unique ID, hex (the device key's input: firmware/keystore.py);
                unset, every simulated board has SIM_DEVICE_ID
"""

import binascii
import gc
import json
import os
import sys

try:
    import asyncio
except ImportError:  # very old MicroPython builds
    import uasyncio as asyncio

try:
    import vfs
except ImportError:  # CPython: importable, but there is no littlefs to mount
    vfs = None

from drivers import CardUnreadable

BLOCK_SIZE = 4096
BLOCK_COUNT = 128  # 512 KB image, the size of a small ESP32 data partition
ROOT = "/flash"
# Heap this module took to import, set by the sim's start-up program (tools/boardboot.py), which
# imports it before main.py does: the simulation's weight, never the firmware's.
IMPORT_HEAP = 0
BOOT_HEAP = 0  # the start-up program's own heap: on a board, the port's C start-up code
_bdev_heap = 0  # the flash's block device (on a board, C code and no heap)
# Erased NOR flash reads as 0xFF. Allocated at import, while the heap is in one piece: an erase
# must not need 4 KB in one block of a fragmented heap.
_ERASED = b"\xff" * BLOCK_SIZE


def _getenv(name, default=None):
    value = os.getenv(name)
    return default if value is None or value == "" else value


# The unix port has no machine.unique_id(): a simulated board's ID is fixed unless POS_DEVICE_ID
# names another (6 bytes, as the ESP32's: its Wi-Fi MAC address).
SIM_DEVICE_ID = b"\x02\x51\x4d\x00\x00\x01"


def device_id():
    """This board's unique ID (bytes): POS_DEVICE_ID (hex), else SIM_DEVICE_ID."""
    text = _getenv("POS_DEVICE_ID")
    if text is None:
        return SIM_DEVICE_ID
    try:
        return binascii.unhexlify(text)
    except ValueError:
        raise ValueError("POS_DEVICE_ID must be hex digits")


def config_overrides():
    """Settings from POS_CONFIG (JSON object), or {} when it is not set."""
    text = _getenv("POS_CONFIG")
    if not text:
        return {}
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("POS_CONFIG must hold a JSON object")
    return data


class FileBlockDevice:
    """Block device over an image file, MicroPython's extended block protocol (littlefs).

    Every write goes straight to the file (unbuffered FileIO, then flush): a block that littlefs
    counts as written is in the OS's hands, so SIGKILL of the process loses nothing of it.
    """

    def __init__(self, path, block_size=BLOCK_SIZE, block_count=BLOCK_COUNT):
        self.block_size = block_size
        self.block_count = block_count
        size = block_size * block_count
        try:
            existing = os.stat(path)[6]
        except OSError:
            existing = -1
        self._erased = _ERASED if block_size == BLOCK_SIZE else b"\xff" * block_size
        if existing != size:
            with open(path, "wb") as f:
                for _ in range(block_count):
                    f.write(self._erased)
        self.fresh = existing != size
        self._f = open(path, "r+b")

    def readblocks(self, block, buf, off=0):
        self._f.seek(block * self.block_size + off)
        n = self._f.readinto(buf)
        if n is None or n < len(buf):
            raise OSError(5)  # EIO: short read means a truncated image

    def writeblocks(self, block, buf, off=None):
        if off is None:
            # Simple protocol: erase then write whole blocks.
            off = 0
        self._f.seek(block * self.block_size + off)
        self._f.write(buf)
        self._f.flush()

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return self.block_count
        if op == 5:  # block size
            return self.block_size
        if op == 6:  # erase block
            self._f.seek(arg * self.block_size)
            self._f.write(self._erased)
            self._f.flush()
            return 0
        if op in (1, 2, 3):  # init, deinit, sync: writes are already through
            return 0
        return None


def mount_flash(path, root=ROOT):
    """Mount the littlefs image at root, formatting it on first use (or if it is not littlefs)."""
    global _bdev_heap
    gc.collect()
    before = gc.mem_alloc()
    bdev = FileBlockDevice(path)
    gc.collect()
    _bdev_heap = gc.mem_alloc() - before
    try:
        fs = vfs.VfsLfs2(bdev)
    except OSError:
        vfs.VfsLfs2.mkfs(bdev)
        fs = vfs.VfsLfs2(bdev)
    vfs.mount(fs, root)
    return bdev


class _Link:
    """The JSON-lines link to tools/sim; sends are synchronous, the reader is a task."""

    def __init__(self, board):
        self._board = board
        self._reader = None
        self._writer = None
        self._draining = False
        self._pending = []  # lines sent before the link was open

    async def open(self, host, port):
        self._reader, self._writer = await asyncio.open_connection(host, port)
        pending, self._pending = self._pending, []
        for line in pending:
            self._write(line)
        asyncio.create_task(self._read_loop())

    def send(self, obj):
        if self._writer is None:
            # Kept for the link about to open; dropped when there is none (the virtual board).
            if self._pending is not None and len(self._pending) < 64:
                self._pending.append(json.dumps(obj) + "\n")
            return
        line = json.dumps(obj) + "\n"
        self._write(line)

    def send_parts(self, parts):
        """One line from byte strings, written piece by piece: the OLED's 1 KB of pixels goes
        out without the several copies json.dumps and encode would make of it."""
        if self._writer is None:
            return
        for part in parts:
            self._write(part)

    def _write(self, line):
        try:
            self._writer.write(line if isinstance(line, bytes) else line.encode())
        except OSError:
            return
        # MicroPython's Stream.write writes what the socket takes and keeps the rest in out_buf;
        # one drain task at a time pushes it out (two would queue the same socket twice).
        if getattr(self._writer, "out_buf", None) and not self._draining:
            self._draining = True
            asyncio.create_task(self._drain())

    async def _drain(self):
        try:
            while getattr(self._writer, "out_buf", None):
                await self._writer.drain()
        except OSError:
            pass
        finally:
            self._draining = False

    async def _read_loop(self):
        try:
            await self._read_lines()
        except Exception as e:  # noqa: BLE001 - the runtime stops and main.py resets the board
            self._board.fatal = e

    async def _read_lines(self):
        while True:
            try:
                line = await self._reader.readline()
            except OSError:
                line = b""
            if not line:
                # The sim went away: a real board would lose its peripherals' power too.
                self._board._dispatch({"link": "closed"})
                return
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if isinstance(msg, dict):
                self._board._dispatch(msg)


def _fast_timebase(clock, uart):
    """The printer driver's time source on the simulated board. The driver paces its bytes to
    the mechanism (line_ms per line); here that modelled time runs ten times faster than real
    time, so a receipt takes about 0.2 s instead of 2 s and a 200-purchase campaign stays short,
    while paper running out in the middle of a receipt can still be shown."""
    from tools.models.escpos import VirtualTimebase

    class FastTimebase(VirtualTimebase):
        async def wait_ms(self, ms):
            self.sleep_ms(ms)  # the model's time: the whole wait
            if hasattr(asyncio, "sleep_ms"):
                await asyncio.sleep_ms(ms // 10)
            else:  # CPython, in tests
                await asyncio.sleep(ms / 10000)

    return FastTimebase(clock, uart)


# What a tapped card can be: an EMV contactless card (tools/models/emvcard.py) or a demo tag.
CARD_PROFILES = ("emv_visa", "emv_mastercard", "emv_track2_only", "emv_long_pdol",
                 "emv_multi_sfi", "ntag213", "ntag215", "classic1k", "ntag215_blank")


def _card_model(card):
    """The virtual card for a tap: a demo tag, or an EMV card, per the card's `profile`."""
    from tools.models import emvcard, tags

    pan, expiry = str(card["pan"]), str(card.get("expiry", "3012"))
    profile = card.get("profile", "emv_visa")
    if profile == "ntag213":
        return tags.demo_ntag(pan, expiry, kind=tags.NTAG213)
    if profile == "ntag215":
        return tags.demo_ntag(pan, expiry)
    if profile == "classic1k":
        return tags.demo_classic(pan, expiry)
    if profile == "ntag215_blank":  # no demo record on it: the reader says "not read"
        return tags.blank_ntag(pan, expiry)
    for make in emvcard.PROFILES:
        if profile == "emv_" + make.__name__.replace("_like", ""):
            return make(pan, expiry)
    raise ValueError("unknown card profile %r" % profile)


def _plain(value):
    # Paper entries hold tuples and bytes; JSON wants lists and text.
    if isinstance(value, (bytes, bytearray)):
        return {"hex": binascii.hexlify(value).decode()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


class _Reader:
    """The reader driver, plus the link: a card read leaves the field and the sim hears of it."""

    def __init__(self, board, driver):
        self._board = board
        self._driver = driver

    def read_card(self):
        board = self._board
        try:
            card = self._driver.read_card()
        except CardUnreadable as e:
            if board.card is not None:
                board.field_remove(board.card)
                board.card = None
                board.send({"card_unread": str(e)})
            raise
        if card is not None and board.card is not None:
            board.field_remove(board.card)
            board.card = None
            board.send({"card_read": card[0][-4:]})
        return card


class _Display:
    """The display driver; after each change the sim gets the text and the OLED's pixels."""

    def __init__(self, board, driver, oled):
        self._board = board
        self._driver = driver
        self._oled = oled
        self.lines = None

    def show(self, lines):
        self._driver.show(lines)
        lines = [str(line) for line in lines]
        if lines != self.lines:
            self.lines = lines
            self._board.send_parts(self._parts(lines))

    def _parts(self, lines):
        yield b'{"fb": "'
        # Base64 96 bytes at a time (no padding inside: 96 is a multiple of 3), so the 1 KB of
        # pixels never needs 1.4 KB in one block of the heap.
        pixels = memoryview(self._oled.gddram)
        for at in range(0, len(pixels), 96):
            yield binascii.b2a_base64(pixels[at:at + 96])[:-1]
        yield b'", "display": '
        yield json.dumps(lines).encode()
        yield b"}\n"


class _Printer:
    """The ESC/POS driver; after each job the sim gets what reached the model's paper."""

    def __init__(self, board, driver, model):
        self._board = board
        self._driver = driver
        self._model = model
        self._job = 0
        model.on_entry = self._printed

    def _printed(self, entry):
        # Each line goes to the PC as it is printed: the paper of a whole receipt held here
        # would weigh on the heap that is the firmware's to measure.
        self._board.send({"paper_entry": _plain(entry)})

    def paper_ok(self):
        return self._driver.paper_ok()

    async def print_text(self, text):
        self._job += 1
        try:
            await self._driver.print_text(text)
        except Exception:
            self.report(False)
            raise
        self.report(True)

    def report(self, ok):
        # An entry a line: the whole receipt in one JSON line would need a few KB at once, of
        # a heap that is the firmware's to measure.
        for entry in self._model.take_paper():
            self._board.send({"paper_entry": _plain(entry)})
        self._board.send({"paper_report": [], "job": self._job, "ok": ok})


def buses(settings, models=None):
    """The simulated board's buses and pins, wired to the chip models: keyword arguments for
    boards.common.assemble, as every profile's buses() gives them (tools/hwcheck.py takes them
    one by one); `models`, a dict, gets the chip models. The board below uses them; so do the
    tests of tools/hwcheck.py."""
    from tools.models.bus import SimI2C, SimPin, SimSPI, SimUART, VirtualClock
    from tools.models.escpos import EscPosModel
    from tools.models.keypad import KeypadMatrix
    from tools.models.ssd1306 import SSD1306

    clock = VirtualClock(real=True)
    spi = SimSPI(clock, baudrate=5000000)
    i2c = SimI2C(clock, freq=400000)
    printer = EscPosModel(clock, baudrate=settings["printer_baud"],
                          buffer_bytes=settings["printer_buffer"],
                          line_ms=settings["printer_line_ms"])
    uart = SimUART(clock, printer, baudrate=settings["printer_baud"])
    printer.uart = uart
    rows = [SimPin("row%d" % i, SimPin.OUT, value=1) for i in range(4)]
    cols = [SimPin("col%d" % i, SimPin.IN, SimPin.PULL_UP) for i in range(4)]
    cs = SimPin("reader_cs", SimPin.OUT, value=1)
    rst = SimPin("reader_rst", SimPin.OUT, value=1)
    oled = SSD1306(128, settings["display_height"], clock=clock)
    i2c.attach(settings["display_addr"], oled)
    kind = settings["reader"]
    if kind == "rc522":
        from tools.models.mfrc522 import MFRC522Model

        reader = MFRC522Model(clock)
        spi.attach(reader, cs)
        field = (reader.field.add, reader.field.remove)
    else:
        from tools.models.pn532 import PN532Model

        reader = PN532Model(clock, keep=0)  # no history: hours of polling would fill the heap
        if kind == "pn532_spi":
            spi.attach(reader, cs)
        else:
            i2c.attach(0x24, reader)
        field = (reader.put, reader.remove)
    wiring = {"spi": spi, "i2c": i2c, "uart": uart, "rows": rows, "cols": cols,
              "keypad_timer": _keypad_timer(),
              "reader_cs": cs, "reader_rst": rst, "clock": clock, "sleep_us": clock.advance,
              "timebase": _fast_timebase(clock, uart), "ticks_ms": lambda: clock.now() // 1000}
    membrane = KeypadMatrix(rows, cols, clock)
    if settings["keypad"] == "tca8418":
        from tools.models.tca8418 import TCA8418

        # The membrane on the controller's rows and columns: it scans them, not the board.
        i2c.attach(settings["keypad_addr"], TCA8418(clock, membrane))
    if models is not None:
        models.update({"clock": clock, "printer": printer, "oled": oled, "reader": reader,
                       "field": field, "keypad": membrane})
    return wiring


def _keypad_timer():
    """The keypad's scan timer: on the unix port a thread that schedules the scan as the ESP32's
    timer interrupt does (tools/models/bus.py, SimTimer); on CPython, in tests, none (the keypad
    then scans from its iterator)."""
    if sys.implementation.name != "micropython":
        return None
    from tools.models.bus import SimTimer

    return SimTimer(1)


class Board:
    """The simulated board: the real drivers over simulated buses wired to the chip models
    (tools/models), with the link to tools/sim for what a person does and sees."""

    name = "sim"

    def __init__(self, settings, flash=None):
        from boards.common import assemble

        gc.collect()
        before = gc.mem_alloc()
        self.settings = settings
        self.root = _root
        self.flash = flash
        self.card = None
        self.fatal = None  # an error in the link's task: firmware/app.py stops on it
        self._link = _Link(self)
        models = {}
        wiring = buses(settings, models)
        self.clock = models["clock"]
        self.printer_model = models["printer"]
        self.oled = models["oled"]
        self.matrix = models["keypad"]
        self.field_add, self.field_remove = models["field"]
        from tools.models import emvcard, tags  # noqa: F401 - now, to be counted (a tap's cards)

        gc.collect()
        # The models are the simulated board's own weight: a real board carries none of it.
        self.model_heap = gc.mem_alloc() - before
        parts = assemble(settings, root=_root, **wiring)
        gc.collect()
        before = gc.mem_alloc()
        self.reader = _Reader(self, parts.reader)
        self.keypad = parts.keypad
        self.display = _Display(self, parts.display, self.oled)
        self.printer = _Printer(self, parts.printer, self.printer_model)
        # A finger holds a key past the debounce time, and lifts it for longer than the
        # debounce time too: a shorter gap reads as one long press (9999 typed as 9).
        self._hold_ms = settings["keypad_debounce_ms"] + 20
        self._lift_ms = settings["keypad_debounce_ms"] + 20
        # Wi-Fi only when the config names a network: the WLAN model's access point is that
        # network and the sim can take it down ({"ap": "down"}). Otherwise the PC's loopback.
        # The model is the simulation's weight too: on a board, network.WLAN is C code.
        self.wlan = self.ap = None
        if settings["wifi_ssid"]:
            from tools.models.wlan import WLAN, AccessPoint

            self.ap = AccessPoint(settings["wifi_ssid"], settings["wifi_password"])
            self.wlan = WLAN(aps=[self.ap], ticks_ms=self.ticks_ms)
        gc.collect()
        self.model_heap += gc.mem_alloc() - before

    def ticks_ms(self):
        return self.clock.now() // 1000

    def send(self, obj):
        self._link.send(obj)

    def send_parts(self, parts):
        self._link.send_parts(parts)

    async def start(self):
        """Open the link to the sim and say hello; call first, inside the event loop."""
        port = _getenv("POS_SIM_LINK")
        if port is None:
            # A board alone on the virtual board (tools/vboard.py, `make vboard`): it boots and
            # serves its REPL, but no one taps a card or presses a key.
            self._link._pending = None
            print("sim: no board link (POS_SIM_LINK): peripherals idle")
        else:
            gc.collect()
            before = gc.mem_alloc()
            await self._link.open("127.0.0.1", int(port))
            asyncio.create_task(self._report_typed())
            gc.collect()
            # Its socket, streams and tasks (reading the link, reporting the finger's keys).
            self.model_heap += gc.mem_alloc() - before
            self._link.send({"hello": 1})
        self.log(heap_report(self.model_heap))
        if port is None:
            print(heap_report(self.model_heap))

    async def _report_typed(self):
        # How many keys the finger has typed, for the sim's "keys" step to go on: sent from a
        # task, as the finger types in the keypad's timer callback, which must not write to
        # the link in the middle of another line.
        typed = 0
        while True:
            await asyncio.sleep(0.02)
            if self.matrix.typed != typed:
                typed = self.matrix.typed
                self._link.send({"typed": typed})

    def report(self, state):
        self._link.send({"state": state})

    def log(self, text):
        self._link.send({"log": str(text)})

    def _dispatch(self, msg):
        if "key" in msg:
            # One finger, typing each key after the last, held until the scans have seen it
            # (tools/models/keypad.py, type_key): a PC busy elsewhere stalls this process, and a
            # press timed by the PC's clock alone could end before any scan saw it.
            self.matrix.type_key(str(msg["key"]), self._hold_ms, self._lift_ms)
        elif "card" in msg:
            if self.card is not None:
                self.field_remove(self.card)
            self.card = _card_model(msg["card"])
            self.field_add(self.card)
        elif "ap" in msg and self.ap is not None:
            self.ap.up = msg["ap"] == "up"
        elif "paper" in msg:
            if msg["paper"] == "in":
                self.printer_model.load_paper()
            else:
                self.printer_model.set_paper_out()


def heap_report(model_heap):
    """The boot log's line of all that the simulation holds in the heap, which a board does not:
    the firmware's share of a heap is what it was given minus this."""
    rom = getattr(vfs, "rom_heap", 0)
    total = BOOT_HEAP + IMPORT_HEAP + model_heap + _bdev_heap + rom
    return ("sim: the simulation holds %d bytes of heap: start-up program %d, board module %d, "
            "chip models and board link %d, flash block device %d, ROMFS image %d (flash on a "
            "board)" % (total, BOOT_HEAP, IMPORT_HEAP, model_heap, _bdev_heap, rom))


_flash = None
_root = ROOT


def mount():
    """Mount the littlefs image named by POS_FLASH at /flash (once); return the root path.

    POS_FLASH=. makes the working folder the flash, mounted at the root as the ESP32 port's is:
    the virtual board (tools/vboard.py) holds what was deployed and provisioned there.
    """
    global _flash, _root
    if _getenv("POS_FLASH") == ".":
        _root = ""
    elif _flash is None and vfs is not None:
        _flash = mount_flash(_getenv("POS_FLASH", "sim_flash.img"))
        _install_host_ca(_root)
    return _root


def _install_host_ca(root):
    """POS_HOST_CA onto the flash as the host_ca file (written only when it differs: a flash
    write per boot would wear it; replaced atomically by a littlefs rename)."""
    text = _getenv("POS_HOST_CA")
    if not text:
        return
    from firmware.settings import DEFAULTS

    path = root + "/" + config_overrides().get("host_ca", DEFAULTS["host_ca"])
    data = binascii.unhexlify(text)
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return
    except OSError:
        pass
    with open(path + ".new", "wb") as f:
        f.write(data)
    os.rename(path + ".new", path)


def display_board(settings):
    """The board, its display to say a boot error on (firmware/startup.py): the default
    settings, not POS_CONFIG's, which may be what failed."""
    mount()
    return Board(settings, _flash)


def build(settings):
    """Mount the flash (if `mount()` has not), apply POS_CONFIG over settings (in place) and
    return the board."""
    mount()
    overrides = config_overrides()
    if isinstance(settings, dict):
        # Wrapped keys excepted: firmware.startup.load_settings has unwrapped them already.
        settings.update({name: value for name, value in overrides.items()
                         if not (isinstance(value, str) and value.startswith("W:"))})
    return Board(settings, _flash)
