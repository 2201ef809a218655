"""Virtual board: the MicroPython unix port behind a TCP bridge, reachable like a board on USB.

    python -m tools.vboard --dir DIR [--port 0] [--romfs-kb 256] [--heapsize N] [--env NAME=VALUE]

It prints `socket://127.0.0.1:PORT` and serves until stopped. Then

    mpremote connect socket://127.0.0.1:PORT resume fs ls

reaches its raw REPL as it would a board's, so the real deploy and provisioning commands (and
mpremote itself) are tested without a board. It behaves as an ESP32 running MicroPython does:
- DIR is the board's filesystem: the process runs in it, `:file` paths of mpremote land in it,
  and its `lib/` is on sys.path (where `mpremote mip install` puts packages);
- it has a ROM partition (--romfs-kb, default the DevKitC's in tools/partitions.py; 0: none, as
  a stock MicroPython image): the file DIR.romfs-partition beside DIR, erased (0xFF) when made or
  resized and kept across resets as flash is. `vfs.rom_ioctl` answers as the ESP32 port does,
  so `mpremote romfs deploy` writes it, and a valid image in it is mounted at /rom at boot, with
  sys.path as the port sets it (tools/boardboot.py). The unix port cannot map a file: the
  partition's bytes are read into the heap, which grows by their size unless --heapsize is given;
- at power on and after every reset it runs boot.py, then main.py, then the REPL;
- Ctrl-C interrupts main.py (the terminal's line discipline turns it into KeyboardInterrupt);
- `machine.reset()` (what `mpremote reset` runs) and a soft reset (Ctrl-D) restart the process:
  the bridge prints a reset line and the new boot's output, as a board's USB serial port does.
One client at a time, as a serial port has: a new connection takes the line over. Everything the
board prints is also appended to --log (the board's console when no one is connected).

Only relative paths stay inside DIR: this is a process on the PC, not a sandbox.
"""

import argparse
import os
import pty
import selectors
import signal
import socket
import subprocess
import sys
import termios
import time
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


def partition_path(folder):
    """The ROM partition's file: beside the board's folder, which is its filesystem."""
    folder = Path(folder)
    return folder.with_name(folder.name + ".romfs-partition")


class VirtualBoard:
    """The board process and its serial line (a pseudo-terminal), bridged to one TCP client."""

    def __init__(self, folder, heapsize=None, env=None, log=None, port=0,
                 romfs_kb=DEFAULT_ROMFS_KB):
        """heapsize: the unix port's -X heapsize (None: DEFAULT_HEAPSIZE plus the partition);
        romfs_kb: the ROM partition's size, a multiple of 4 KB blocks (0: no ROM partition)."""
        if romfs_kb < 0 or romfs_kb * 1024 % ROM_BLOCK:
            raise ValueError("the ROM partition is made of 4 KB blocks: --romfs-kb %d" % romfs_kb)
        self.folder = Path(folder).resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.romfs = partition_path(self.folder) if romfs_kb else None
        if self.romfs is not None:
            boardboot.blank_partition(self.romfs, romfs_kb * 1024)
        self.heapsize = DEFAULT_HEAPSIZE + romfs_kb * 1024 if heapsize is None else heapsize
        self.env = dict(env or {})
        self.log = open(log, "ab") if log else None
        self.listener = socket.create_server(("127.0.0.1", port))
        self.port = self.listener.getsockname()[1]
        self.client = None
        self.proc = None
        self.master = None
        self.boots = 0
        self.quick_resets = 0
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.stopped = False

    @property
    def url(self):
        return "socket://127.0.0.1:%d" % self.port

    # ---- the board process ------------------------------------------------------------------

    def power_on(self):
        master, slave = pty.openpty()
        # The serial line: no echo, bytes as they are (a UART does not turn \n into \r\n). The
        # REPL sets its own modes while it reads; ISIG stays on so Ctrl-C interrupts main.py.
        attrs = termios.tcgetattr(slave)
        attrs[1] &= ~termios.OPOST
        attrs[3] &= ~(termios.ECHO | termios.ICANON)
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        env = dict(os.environ)
        env.update(self.env)
        boot = boardboot.boot_source(str(self.folder / "lib"), romfs=self.romfs)
        self.proc = subprocess.Popen(
            [str(MICROPYTHON), "-X", "heapsize=%d" % self.heapsize, "-i", "-c", boot],
            cwd=str(self.folder), env=env, stdin=slave, stdout=slave, stderr=slave,
            start_new_session=True, preexec_fn=_controlling_tty(slave))
        os.close(slave)
        self.master = master
        os.set_blocking(master, False)
        self.selector.register(master, selectors.EVENT_READ, "board")
        self.boots += 1
        self.started = time.monotonic()

    def power_off(self):
        if self.master is not None:
            self.selector.unregister(self.master)
            os.close(self.master)
            self.master = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def _board_exited(self):
        rc = self.proc.wait()
        self.power_off()
        quick = time.monotonic() - self.started < 2
        self.quick_resets = self.quick_resets + 1 if quick else 0
        if self.quick_resets >= QUICK_RESETS:
            time.sleep(1)
        self._emit(b"\r\nrst: virtual board reset (exit %d), boot %d\r\n"
                   % (rc, self.boots + 1))
        self.power_on()

    # ---- the serial line --------------------------------------------------------------------

    def _emit(self, data):
        if self.log:
            self.log.write(data)
            self.log.flush()
        if self.client is not None:
            try:
                self.client.sendall(data)
            except OSError:
                self._drop_client()

    def _drop_client(self):
        if self.client is not None:
            self.selector.unregister(self.client)
            self.client.close()
            self.client = None

    def serve(self):
        self.power_on()
        while not self.stopped:
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
                    elif self.master is not None:
                        _write_all(self.master, data)
                elif key.data == "board":
                    try:
                        data = os.read(self.master, 4096)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        data = b""  # EIO: the process closed its end
                    if data:
                        self._emit(data)
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
            self._emit(data)

    def close(self):
        self.stopped = True
        self.power_off()
        self._drop_client()
        self.listener.close()
        if self.log:
            self.log.close()


def _controlling_tty(fd):
    """Make the pty the child's controlling terminal, so Ctrl-C on the line raises SIGINT."""
    import fcntl

    def setup():
        fcntl.ioctl(fd, termios.TIOCSCTTY, 0)

    return setup


def _write_all(fd, data):
    while data:
        try:
            n = os.write(fd, data)
        except BlockingIOError:
            time.sleep(0.001)
            continue
        data = data[n:]


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
    args = parser.parse_args(argv)
    env = {}
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error("--env wants NAME=VALUE, got %r" % item)
        env[name] = value
    try:
        board = VirtualBoard(args.dir, args.heapsize, env, args.log, args.port, args.romfs_kb)
    except ValueError as e:
        parser.error(str(e))
    signal.signal(signal.SIGTERM, lambda *_: setattr(board, "stopped", True))
    print(board.url, flush=True)
    try:
        board.serve()
    except KeyboardInterrupt:
        pass
    finally:
        board.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
