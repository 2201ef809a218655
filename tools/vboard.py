"""Virtual board: the MicroPython unix port behind a TCP bridge, reachable like a board on USB.

    python -m tools.vboard --dir DIR [--port 0] [--romfs-kb 256] [--heapsize N] [--env NAME=VALUE]
                           [--peripherals]

It prints `socket://127.0.0.1:PORT` and the path of its serial device, then serves until
stopped. Then

    mpremote connect socket://127.0.0.1:PORT fs ls
    mpremote connect DIR.tty repl

reach its REPL as they would a board's, so the real deploy and provisioning commands (and
mpremote itself) are tested without a board. It behaves as an ESP32 running MicroPython does:
- DIR is the board's filesystem and its flash: the process runs in it, `:file` paths of mpremote
  land in it, its `lib/` is on sys.path (where `mpremote mip install` puts packages), and the
  `sim` profile keeps its settings and journal there (POS_FLASH=., boards/sim.py);
- it has a ROM partition (--romfs-kb, default the DevKitC's in tools/partitions.py; 0: none, as
  a stock MicroPython image): the file DIR.romfs-partition beside DIR, erased (0xFF) when made or
  resized and kept across resets as flash is. `vfs.rom_ioctl` answers as the ESP32 port does,
  so `mpremote romfs deploy` writes it, and a valid image in it is mounted at /rom at boot, with
  sys.path as the port sets it (tools/boardboot.py). The unix port cannot map a file: the
  partition's bytes are read into the heap, which grows by their size unless --heapsize is given;
- at power on and after a hard reset (`machine.reset()`, what `mpremote reset` runs) it prints a
  reset line, runs boot.py, then main.py, then the REPL. A soft reset (Ctrl-D or `sys.exit()` at
  the REPL, `machine.soft_reset()`) prints `MPY: soft reboot` and runs boot.py, and main.py only
  when it came from the friendly REPL: one from the raw REPL (what mpremote does before a
  command, unless `resume`) comes back to the raw REPL, as MicroPython's pyexec does;
- the serial line is a UART's: bytes go through as they are, and Ctrl-C interrupts running code
  (a KeyboardInterrupt) where MicroPython takes it as its interrupt character, that is while code
  runs and `micropython.kbd_intr(-1)` has not turned it off (mpremote's `mount` does, for its
  binary protocol); at the REPL's prompt it is a character;
- its USB serial port is also a serial device, DIR.tty (a link to a pseudo-terminal), for what
  needs a real one: `mpremote repl` watches its device's file descriptor, which pyserial's
  socket:// transport has none of.
One TCP client at a time, as a serial port has: a new connection takes the line over; the serial
device sees the same line. Everything the board prints is also appended to --log (the board's
console when no one is connected). With --peripherals the simulated board's screen, keypad,
card reader and printer come with it (tools/sim/peripherals.py; `make vboard`).

Only relative paths stay inside DIR: this is a process on the PC, not a sandbox.
"""

import argparse
import ctypes
import errno
import os
import pty
import selectors
import signal
import socket
import subprocess
import sys
import time
import tty
from pathlib import Path

from tools import boardboot, partitions

REPO = Path(__file__).resolve().parents[1]
MICROPYTHON = REPO / ".venv" / "bin" / "micropython"
# The simulated board's heap (firmware, drivers and the chip models: tools/sim/session.py has
# 400 000), plus what the virtual board adds: its boot shims, main.py compiled from source and
# the REPL. At 400 000 the printer model's buffers no longer fit after a purchase. A ROM
# partition's bytes come on top (see romfs_kb).
DEFAULT_HEAPSIZE = 420000
# The ROM partition an ESP32 DevKitC gets from our table (tools/partitions.py).
DEFAULT_ROMFS_KB = next(p.size for p in partitions.layout("esp32_devkitc")
                        if p.name == partitions.ROMFS_LABEL) // 1024
# The port's partition is a block device of 4 KB blocks (ports/esp32/esp32_partition.c).
ROM_BLOCK = 4096
# A board that resets this often in a row is crash-looping: it goes on (a board does), but a
# second apart, so a client can still break in with Ctrl-C and mend it.
QUICK_RESETS = 5
# What the REPLs print (MicroPython's shared/runtime/pyexec.c), and a soft reset's line.
RAW_REPL = b"raw REPL; CTRL-B to exit\r\n"
FRIENDLY_PROMPT = b">>> "
SOFT_REBOOT = b"MPY: soft reboot\r\n"
CTRL_A, CTRL_C = b"\x01", b"\x03"
# What the unix port prints for a Ctrl-C that landed in a scheduled callback (the keypad's scan
# timer, tools/models/bus.py SimTimer), which swallows it: the program never sees it. The
# program's own is silent: main.py and the boot's runner catch it, and the REPL prints a
# traceback only once it no longer takes Ctrl-C (see catches_sigint).
SWALLOWED = b"KeyboardInterrupt"
HARD_RESET = getattr(signal, "SIG" + boardboot.RESET_SIGNAL)
SOFT_RESET = getattr(signal, "SIG" + boardboot.SOFT_RESET_SIGNAL)


class BoardError(ValueError):
    """The virtual board cannot start as asked: one line, with what to do."""


def partition_path(folder):
    """The ROM partition's file: beside the board's folder, which is its filesystem."""
    folder = Path(folder)
    return folder.with_name(folder.name + ".romfs-partition")


def serial_path(folder):
    """The board's serial device, a link to its pseudo-terminal: beside the board's folder."""
    folder = Path(folder)
    return folder.with_name(folder.name + ".tty")


class Interrupt:
    """A Ctrl-C on its way to the program, until a REPL's prompt shows that it arrived. On the
    unix port one can land in a scheduled callback, which swallows it: it is sent again; should
    the port go down with one in flight, it is sent to the new boot with the bytes that followed
    it, as if it had come a moment later, so `mpremote` finds the REPL it asked for as on a
    board."""

    def __init__(self):
        self.after = bytearray()  # what the client sent after the Ctrl-C
        self.replay = False  # the board went down: send all again once its code runs
        self._tail = b""

    def swallowed(self, data):
        """True when the board's output shows the Ctrl-C swallowed."""
        text = self._tail + data
        if SWALLOWED in text:
            self._tail = b""  # each is seen once
            return True
        self._tail = text[-len(SWALLOWED):]
        return False


class ReplWatch:
    """Which REPL the board's output last showed, the raw one (mpremote's) or the friendly one:
    a soft reset from the raw REPL skips main.py."""

    def __init__(self):
        self.raw = False
        self._tail = b""

    def feed(self, data):
        """True when data shows a prompt."""
        text = self._tail + data
        raw, friendly = text.rfind(RAW_REPL), text.rfind(FRIENDLY_PROMPT)
        if raw != friendly:
            self.raw = raw > friendly
        self._tail = text[-len(RAW_REPL):]
        return raw != friendly


def reset_kind(rc):
    """How the board process ended: 'hard' (machine.reset()), 'soft' (a soft reset: Ctrl-D or
    sys.exit() at the REPL, machine.soft_reset()) or 'crash' (killed: the port itself died)."""
    if rc == -HARD_RESET:
        return "hard"
    if rc >= 0 or rc == -SOFT_RESET:
        return "soft"
    return "crash"


def catches_sigint(pid):
    """True while the process has a SIGINT handler: MicroPython's unix port installs one while
    code runs, with Ctrl-C as its interrupt character, and removes it at the REPL's prompt and
    for kbd_intr(-1) (Linux's /proc; elsewhere Ctrl-C stays a character)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (signal.SIGINT - 1) & 1)
    except (OSError, ValueError):
        pass
    return False


def _board_folder(folder):
    """The board's folder, made if missing; BoardError when it cannot be the board's flash."""
    folder = Path(folder).resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise BoardError("--dir %s is a file, not a folder: give a folder for the board's "
                         "filesystem" % folder) from None
    except OSError as e:
        raise BoardError("--dir %s cannot be made: %s" % (folder, e.strerror)) from None
    if not os.access(folder, os.W_OK | os.X_OK) or not os.access(folder.parent, os.W_OK):
        raise BoardError("--dir %s: not writable (the board's flash, with its ROM partition and "
                         "serial device beside it): give a folder you can write" % folder)
    return folder


def _listen(port):
    if not 0 <= port <= 65535:
        raise BoardError("--port %d: a TCP port is 0 to 65535 (0: any free one)" % port)
    try:
        return socket.create_server(("127.0.0.1", port))
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise BoardError("--port %d is in use (another virtual board? stop it, or give "
                             "another port: make vboard VBOARD_PORT=...)" % port) from None
        raise BoardError("--port %d: cannot listen on 127.0.0.1: %s" % (port, e.strerror)) \
            from None


class VirtualBoard:
    """The board process and its serial line (a pseudo-terminal), bridged to one TCP client and
    to its serial device."""

    def __init__(self, folder, heapsize=None, env=None, log=None, port=0,
                 romfs_kb=DEFAULT_ROMFS_KB, on_output=None):
        """heapsize: the unix port's -X heapsize (None: DEFAULT_HEAPSIZE plus the partition);
        romfs_kb: the ROM partition's size, a multiple of 4 KB blocks (0: no ROM partition);
        env: the board process's environment over POS_FLASH=. (its folder is its flash);
        on_output(bytes): called with what the board prints. Raises BoardError on bad input."""
        if romfs_kb < 0 or romfs_kb * 1024 % ROM_BLOCK:
            raise BoardError("--romfs-kb %d: the ROM partition is made of 4 KB blocks"
                             % romfs_kb)
        self.listener = _listen(port)
        try:
            self.folder = _board_folder(folder)
            self.romfs = partition_path(self.folder) if romfs_kb else None
            if self.romfs is not None:
                boardboot.blank_partition(self.romfs, romfs_kb * 1024)
            self.log = open(log, "ab") if log else None
        except OSError as e:
            self.listener.close()
            raise BoardError("%s: %s" % (e.filename, e.strerror)) from None
        except BoardError:
            self.listener.close()
            raise
        self.port = self.listener.getsockname()[1]
        self.heapsize = DEFAULT_HEAPSIZE + romfs_kb * 1024 if heapsize is None else heapsize
        self.env = {"POS_FLASH": "."}
        self.env.update(env or {})
        self.on_output = on_output
        self.client = None
        self.proc = None
        self.master = None
        self.repl = ReplWatch()
        self.boots = 0
        self.quick_resets = 0
        self._held = None  # a raw-REPL soft reboot's output, until its raw REPL prompt
        self._interrupt = None  # an Interrupt in flight
        self._asked_raw = False
        self._want_power = None
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.serial_device = self._open_serial_device()
        self.stopped = False

    @property
    def url(self):
        return "socket://127.0.0.1:%d" % self.port

    @property
    def powered(self):
        return self.proc is not None

    def set_power(self, on):
        """Power the board off (the process killed, as a power cut) or on, from another thread:
        the bridge does it within its next turn."""
        self._want_power = bool(on)

    # ---- the board process ------------------------------------------------------------------

    def power_on(self, raw_repl=False):
        """Start the board process: boot.py, main.py and the REPL; raw_repl: after a soft reset
        from the raw REPL, boot.py and then the raw REPL again."""
        master, slave = pty.openpty()
        tty.setraw(slave)  # a UART: no echo, no line editing, no signals, bytes as they are
        env = dict(os.environ)
        env.update(self.env)
        run = ("boot.py",) if raw_repl else ("boot.py", "main.py")
        boot = boardboot.boot_source(str(self.folder / "lib"), romfs=self.romfs, run=run)
        self.proc = subprocess.Popen(
            [str(MICROPYTHON), "-X", "heapsize=%d" % self.heapsize, "-i", "-c", boot],
            cwd=str(self.folder), env=env, stdin=slave, stdout=slave, stderr=slave,
            start_new_session=True, preexec_fn=_die_with_parent)
        os.close(slave)
        self.master = master
        os.set_blocking(master, False)
        self.selector.register(master, selectors.EVENT_READ, "board")
        self.repl = ReplWatch()
        self._held = bytearray() if raw_repl else None
        self._asked_raw = False
        self.boots += 1
        self.started = time.monotonic()

    def power_off(self):
        if self.master is not None:
            self.selector.unregister(self.master)
            os.close(self.master)
            self.master = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def _board_exited(self):
        rc = self.proc.wait()
        raw = self.repl.raw
        self.power_off()
        kind = reset_kind(rc)
        if self._interrupt is not None and rc != 0:
            # Down while a Ctrl-C was on its way: the port's fault, not a reset anyone asked for.
            self._interrupt.replay = True
            kind = "crash"
        if kind == "soft":
            self._emit(SOFT_REBOOT)
            self.power_on(raw_repl=raw)
            return
        quick = time.monotonic() - self.started < 2
        self.quick_resets = self.quick_resets + 1 if quick else 0
        if self.quick_resets >= QUICK_RESETS:
            time.sleep(1)
        why = b"machine.reset()" if kind == "hard" else b"the port died, exit %d" % rc
        self._emit(b"\r\nrst: virtual board reset (%s), boot %d\r\n" % (why, self.boots + 1))
        self.power_on()

    def _from_board(self, data):
        if self.repl.feed(data):
            self._interrupt = None  # it arrived
        elif self._interrupt is not None and self._interrupt.swallowed(data):
            self._signal_interrupt()
        if self._held is None:
            self._emit(data)
            return
        # After a soft reset from the raw REPL: the port's REPL starts friendly, with its
        # banner; Ctrl-A takes it to the raw REPL, and the banner is not shown, as a board's
        # pyexec stays in the raw REPL across the reset.
        start = len(self._held)
        self._held += data
        if not self._asked_raw and self._held.find(FRIENDLY_PROMPT, max(0, start - 4)) >= 0:
            self._asked_raw = True
            _write_all(self.master, CTRL_A)
        at = self._held.find(RAW_REPL)
        if at < 0:
            return
        held, self._held = bytes(self._held), None
        banner = held.rfind(b"MicroPython ", 0, at)
        prompt = held.find(FRIENDLY_PROMPT, max(banner, 0), at)
        if banner >= 0 and prompt >= 0:
            held = held[:banner] + held[prompt + len(FRIENDLY_PROMPT):].lstrip(b"\r\n")
        self._emit(held)

    # ---- the serial line --------------------------------------------------------------------

    def _open_serial_device(self):
        """A pseudo-terminal whose other end is this line, linked at DIR.tty. The bridge keeps
        its device open, so the line stays up between clients (what no one reads is dropped
        when its buffer is full, as a UART's bytes are)."""
        master, slave = pty.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._serial = (master, slave)
        self.selector.register(master, selectors.EVENT_READ, "serial")
        link = serial_path(self.folder)
        if link.is_symlink():
            link.unlink()
        try:
            link.symlink_to(os.ttyname(slave))
        except OSError as e:
            self.close()
            raise BoardError("%s: %s" % (link, e.strerror)) from None
        return link

    def _emit(self, data):
        if self.log:
            self.log.write(data)
            self.log.flush()
        if self.on_output is not None:
            self.on_output(data)
        if self._serial is not None:
            try:
                os.write(self._serial[0], data)
            except OSError:
                pass  # no one reads the serial device: dropped, as a UART's bytes are
        if self.client is not None:
            try:
                self.client.sendall(data)
            except OSError:
                self._drop_client()

    def _to_board(self, data):
        """Bytes from a client to the board's line; Ctrl-C, where MicroPython would take it as
        its interrupt character, as a KeyboardInterrupt instead."""
        if self._interrupt is not None:
            self._interrupt.after += data.partition(CTRL_C)[0]
        if self.master is None:
            return  # powered off, or resetting: the line is dead
        while data:
            at = data.find(CTRL_C)
            if at < 0:
                _write_all(self.master, data)
                return
            _write_all(self.master, data[:at])
            data = data[at + 1:]
            if catches_sigint(self.proc.pid):
                self._interrupt = Interrupt()
                self._interrupt.after += data.partition(CTRL_C)[0]
                interrupt_main_thread(self.proc.pid)
            else:
                _write_all(self.master, CTRL_C)

    def _signal_interrupt(self):
        if self.proc is not None and catches_sigint(self.proc.pid):
            interrupt_main_thread(self.proc.pid)

    def _replay_interrupt(self):
        """After a crash with a Ctrl-C in flight: once the new boot's code runs (it takes Ctrl-C
        then), the Ctrl-C and what followed it."""
        if self.proc is None or not catches_sigint(self.proc.pid):
            return
        self._interrupt.replay = False
        interrupt_main_thread(self.proc.pid)
        _write_all(self.master, bytes(self._interrupt.after))

    def _drop_client(self):
        if self.client is not None:
            self.selector.unregister(self.client)
            self.client.close()
            self.client = None

    def _apply_power(self):
        want, self._want_power = self._want_power, None
        if want and self.proc is None:
            self._emit(b"\r\nrst: virtual board powered on, boot %d\r\n" % (self.boots + 1))
            self.power_on()
        elif want is False and self.proc is not None:
            self.power_off()
            self._interrupt = None

    def serve(self):
        self.power_on()
        while not self.stopped:
            if self._want_power is not None:
                self._apply_power()
            if self._interrupt is not None and self._interrupt.replay:
                self._replay_interrupt()
            for key, _ in self.selector.select(timeout=0.2):
                if key.data == "accept":
                    conn, _ = self.listener.accept()
                    self._drop_client()  # a new connection takes the line over
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    self.client = conn
                    self.selector.register(conn, selectors.EVENT_READ, "client")
                elif key.data == "client":
                    if key.fileobj is not self.client:
                        continue  # dropped earlier in this batch (a failed send, a new client)
                    try:
                        data = self.client.recv(4096)
                    except OSError:
                        data = b""
                    if not data:
                        self._drop_client()
                    else:
                        self._to_board(data)
                elif key.data == "serial":
                    try:
                        self._to_board(os.read(self._serial[0], 4096))
                    except OSError:
                        pass
                elif key.data == "board":
                    if key.fileobj != self.master:
                        continue  # powered off earlier in this batch
                    try:
                        data = os.read(self.master, 4096)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        data = b""  # EIO: the process closed its end
                    if data:
                        self._from_board(data)
                    elif self.proc.poll() is None:
                        time.sleep(0.01)
            if self.proc is not None and self.proc.poll() is not None and not self.stopped:
                self._drain()
                self._board_exited()

    def _drain(self):
        while self.master is not None:
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            if not data:
                return
            self._from_board(data)

    def close(self):
        self.stopped = True
        self.power_off()
        self._drop_client()
        self.listener.close()
        serial, self._serial = getattr(self, "_serial", None), None
        if serial is not None:
            self.selector.unregister(serial[0])
            for fd in serial:
                os.close(fd)
            link = serial_path(self.folder)
            if link.is_symlink():
                link.unlink()
        if self.log:
            self.log.close()
            self.log = None


try:
    _PRCTL = ctypes.CDLL(None).prctl
except (OSError, AttributeError):  # not Linux
    _PRCTL = None


try:
    _TGKILL = ctypes.CDLL(None).tgkill  # glibc 2.30 and later
except (OSError, AttributeError):  # not Linux, or an older C library
    _TGKILL = None


def interrupt_main_thread(pid):
    """Ctrl-C as MicroPython takes it: a SIGINT to the program's main thread (on Linux its thread
    ID is the process ID). The unix port raises the KeyboardInterrupt in whichever thread the
    signal reaches, and a board's timer thread (tools/models/bus.py SimTimer) must not take it:
    it would die, perhaps holding a lock the main thread then waits on for ever."""
    if _TGKILL is None or _TGKILL(pid, pid, int(signal.SIGINT)) != 0:
        os.kill(pid, signal.SIGINT)


def _die_with_parent():
    """The board process dies with the bridge (Linux's PR_SET_PDEATHSIG), so a bridge that is
    killed leaves no board running on its own. Runs between fork and exec: imports nothing."""
    if _PRCTL is not None:
        _PRCTL(1, int(signal.SIGKILL))


def _write_all(fd, data):
    while data:
        try:
            n = os.write(fd, data)
        except BlockingIOError:
            time.sleep(0.001)
            continue
        data = data[n:]


def _parse_env(items):
    env = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise BoardError("--env wants NAME=VALUE, got %r" % item)
        env[name] = value
    return env


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.vboard",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--dir", required=True, help="the board's filesystem (a folder)")
    parser.add_argument("--port", type=int, default=0, help="TCP port (0: any free one)")
    parser.add_argument("--romfs-kb", type=int, default=DEFAULT_ROMFS_KB,
                        help="ROM partition size in KB, a multiple of 4 (default %(default)s, "
                             "the ESP32 DevKitC's; 0: no ROM partition)")
    parser.add_argument("--heapsize", type=int, default=None,
                        help="heap in bytes (default %d plus the ROM partition's size)"
                             % DEFAULT_HEAPSIZE)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="environment of the board process (e.g. POS_SIM_LINK=...)")
    parser.add_argument("--log", help="append everything the board prints to this file")
    parser.add_argument("--peripherals", action="store_true",
                        help="the simulated board's screen, keypad, card reader and printer, in "
                             "this terminal when it is one (tools/sim/peripherals.py)")
    args = parser.parse_args(argv)
    try:
        board = VirtualBoard(args.dir, args.heapsize, _parse_env(args.env), args.log,
                             args.port, args.romfs_kb)
    except BoardError as e:
        print("vboard: %s" % e, file=sys.stderr)
        return 2
    if args.peripherals:
        from tools.sim import peripherals

        return peripherals.run(board)
    signal.signal(signal.SIGTERM, lambda *_: setattr(board, "stopped", True))
    print(board.url, flush=True)
    print("serial device %s" % board.serial_device, flush=True)
    try:
        board.serve()
    except KeyboardInterrupt:
        pass
    finally:
        board.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
