"""Simulated board: the firmware on the MicroPython unix port, peripherals modelled by tools/sim.

The peripherals are reached over one TCP link to the sim (127.0.0.1:$POS_SIM_LINK) carrying JSON
lines (docs/architecture.md, "Simulated board link"). The flash is a real littlefs2 filesystem on
a block device kept in the file $POS_FLASH, mounted at /flash, so a power cut (SIGKILL of this
process) tests the same durability rules as the ESP32's flash.

Environment:
  POS_SIM_LINK  TCP port of the sim's board link (required by `Board.start()`)
  POS_FLASH     littlefs image file (created and formatted on first use)
  POS_CONFIG    JSON object of settings overriding the flash config (scenario config)
"""

import json
import os

try:
    import asyncio
except ImportError:  # very old MicroPython builds
    import uasyncio as asyncio

try:
    import vfs
except ImportError:  # CPython: importable, but there is no littlefs to mount
    vfs = None

BLOCK_SIZE = 4096
BLOCK_COUNT = 128  # 512 KB image, the size of a small ESP32 data partition
ROOT = "/flash"


class PaperOut(Exception):
    """The printer has no paper; nothing (or only part) of the job was printed."""


def _getenv(name, default=None):
    value = os.getenv(name)
    return default if value is None or value == "" else value


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
        if existing != size:
            # Erased NOR flash reads as 0xFF.
            with open(path, "wb") as f:
                chunk = b"\xff" * block_size
                for _ in range(block_count):
                    f.write(chunk)
        self.fresh = existing != size
        # Allocated once: an erase must not need a 4 KB block of a fragmented heap.
        self._erased = b"\xff" * block_size
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
    bdev = FileBlockDevice(path)
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
        line = json.dumps(obj) + "\n"
        if self._writer is None:
            if len(self._pending) < 64:
                self._pending.append(line)
            return
        self._write(line)

    def _write(self, line):
        try:
            self._writer.write(line.encode())
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


class Reader:
    """Card reader: the card the sim put in the field, taken once when read."""

    def __init__(self, link):
        self._link = link
        self._card = None

    def _present(self, card):
        self._card = (str(card["pan"]), str(card.get("expiry", "")))

    def read_card(self):
        card = self._card
        if card is None:
            return None
        self._card = None
        self._link.send({"card_read": card[0][-4:]})
        return card


class Keypad:
    """Async iterator over the key labels the sim pushes."""

    def __init__(self):
        self._keys = []
        self._event = asyncio.Event()

    def _push(self, label):
        if len(self._keys) < 32:  # a ring buffer on the real keypad: overflow drops keys
            self._keys.append(label)
        self._event.set()

    def __aiter__(self):
        return self

    async def __anext__(self):
        while not self._keys:
            self._event.clear()
            await self._event.wait()
        return self._keys.pop(0)


class Display:
    """16 x 8 character screen; only changes go to the sim."""

    def __init__(self, link):
        self._link = link
        self.lines = None

    def show(self, lines):
        lines = [str(line) for line in lines]
        if lines == self.lines:
            return
        self.lines = lines
        self._link.send({"display": lines})


class Printer:
    """Thermal printer model: the sim answers each job with printed or paper_out."""

    def __init__(self, link):
        self._link = link
        self._paper = True
        self._job = 0
        self._results = {}  # job -> "printed" | "paper_out"
        self._event = asyncio.Event()
        self._paper_event = asyncio.Event()
        self.on_paper = None  # optional callback(bool) run when the sim reports a paper change

    def paper_ok(self):
        return self._paper

    async def wait_paper(self):
        """Return once paper is in."""
        while not self._paper:
            self._paper_event.clear()
            await self._paper_event.wait()

    def _set_paper(self, ok):
        changed = ok != self._paper
        self._paper = ok
        self._paper_event.set()
        if changed and self.on_paper is not None:
            self.on_paper(ok)

    def _result(self, job, result):
        self._results[job] = result
        self._event.set()

    async def print_text(self, text):
        self._job += 1
        job = self._job
        self._link.send({"print": text, "job": job})
        while job not in self._results:
            self._event.clear()
            await self._event.wait()
        result = self._results.pop(job)
        if result != "printed":
            self._paper = False
            raise PaperOut(result)


class Board:
    """The simulated board: the peripheral interface of docs/architecture.md."""

    name = "sim"

    def __init__(self, settings, flash=None):
        self.settings = settings
        self.root = ROOT
        self.flash = flash
        self._link = _Link(self)
        self.reader = Reader(self._link)
        self.keypad = Keypad()
        self.display = Display(self._link)
        self.printer = Printer(self._link)

    async def start(self):
        """Open the link to the sim and say hello; call first, inside the event loop."""
        port = _getenv("POS_SIM_LINK")
        if port is None:
            raise OSError("POS_SIM_LINK is not set: run the simulated board with tools/sim")
        await self._link.open("127.0.0.1", int(port))
        self._link.send({"hello": 1})

    def report(self, state):
        self._link.send({"state": state})

    def log(self, text):
        self._link.send({"log": str(text)})

    def _dispatch(self, msg):
        if "key" in msg:
            self.keypad._push(str(msg["key"]))
        elif "card" in msg:
            self.reader._present(msg["card"])
        elif "paper" in msg:
            self.printer._set_paper(msg["paper"] == "in")
        elif "printed" in msg:
            self.printer._result(msg["printed"], "printed")
        elif "paper_out" in msg:
            self.printer._result(msg["paper_out"], "paper_out")


_flash = None


def mount():
    """Mount the littlefs image named by POS_FLASH at /flash (once); return the root path."""
    global _flash
    if _flash is None and vfs is not None:
        _flash = mount_flash(_getenv("POS_FLASH", "sim_flash.img"))
    return ROOT


def build(settings):
    """Mount the flash (if `mount()` has not), apply POS_CONFIG over settings (in place) and
    return the board."""
    mount()
    overrides = config_overrides()
    if isinstance(settings, dict):
        settings.update(overrides)
    return Board(settings, _flash)
