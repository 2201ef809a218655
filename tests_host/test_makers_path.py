"""The README's maker's path, from a blank board to the first receipt, on the virtual board: the
commands of README.md's "The virtual board" section, read from its code blocks and run as
written, in order, with `make` (only the ports changed, to free ones, and the folder: the run
happens in a folder of its own, so its out/, build/ and host.db are its own).

The purchase is made at the board's screen as the README says (tap card 1, 1250#, 1234#),
through the screen's stdin steps, which `make vboard` takes when it has no terminal."""

import json
import os
import pty
import queue
import re
import select
import shlex
import socket
import subprocess
import threading
import time
import tty as tty_mod
from pathlib import Path

from test_flash import esp_image

from tools.sim.session import default_cards

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
VBOARD_PORT, HOST_PORT = "8266", "8583"
TIMEOUT_S = 240  # per command; generous for a loaded machine


def _section(title):
    start = README.index("\n### %s\n" % title)
    end = README.index("\n### ", start + 1)
    return README[start:end]


def _blocks(text):
    return re.findall(r"^```(\w*)\n(.*?)^```", text, re.M | re.S)


def _commands(block):
    """The block's command lines, less their comments."""
    lines = []
    for line in block.splitlines():
        line = line.split("  #")[0].strip()
        if line:
            lines.append(line)
    return lines


def _clone(folder):
    """A clone of the repository in folder, made of links to its files and virtual environment,
    whose out/, build/ and host.db are the folder's own."""
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    for name in sorted({path.split("/")[0] for path in tracked} | {".venv"}):
        if (REPO / name).exists() and name not in ("out", "build"):
            (folder / name).symlink_to(REPO / name)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


class Lines:
    """A process's stdout, line by line, waited on."""

    def __init__(self, proc):
        self.proc = proc
        self.seen = []
        self._q = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self._q.put(line.rstrip("\n"))
        self._q.put(None)

    def until(self, pattern, timeout=TIMEOUT_S):
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._q.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                line = None
                if time.monotonic() < deadline:
                    continue
            if line is None:
                raise AssertionError("no line matching %r; the last:\n%s" % (
                    pattern, "\n".join(self.seen[-40:])))
            self.seen.append(line)
            found = re.search(pattern, line)
            if found:
                return found


class Path_:
    """The README's commands in a folder of their own, make run with the repository's Makefile
    and virtual environment."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.ports = {VBOARD_PORT: _free_port(), HOST_PORT: _free_port()}
        self.background = []

    def argv(self, line):
        for port, free in self.ports.items():
            line = line.replace(":" + port, ":" + free)
        words = shlex.split(line)
        if words[0] == "make":
            # The environment is the repository's, made already (make must not remake it).
            words[1:1] = ["--no-print-directory", "-o", ".venv/.installed"]
            if words[-1] in ("vboard", "host"):
                words += ["PORT=" + self.ports[HOST_PORT],
                          "VBOARD_PORT=" + self.ports[VBOARD_PORT]]
        return words

    def run(self, line, timeout=TIMEOUT_S):
        done = subprocess.run(self.argv(line), cwd=self.tmp, env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        assert done.returncode == 0, "%s\n%s%s" % (line, done.stdout, done.stderr)
        return done.stdout

    def start(self, line):
        proc = subprocess.Popen(self.argv(line), cwd=self.tmp, env=self.env, text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.background.append(proc)
        return Lines(proc)

    def stop(self):
        for proc in self.background:
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()


def _step(board, n, step):
    board.proc.stdin.write(json.dumps(step) + "\n")
    board.proc.stdin.flush()
    found = board.until(r"^step %d (ok|failed.*)$" % n)
    assert found.group(1) == "ok", "%s: %s" % (step, found.group(1))


def test_the_readmes_makers_path_on_the_virtual_board(tmp_path):
    section = _section("The virtual board")
    blocks = _blocks(section)
    path, settings, mpremote = blocks[0][1], json.loads(blocks[1][1]), blocks[2][1]
    commands = _commands(path)
    assert commands[0] == "make vboard" and commands[-1] == "make host", commands
    buy = re.search(r"press `t(\d)` to tap card \d, type `(\d+#)`, then the PIN `(\d+#)`",
                    " ".join(section.split()))
    assert buy, "the README's purchase at the board's screen"
    # The image make firmware would have built (step 2 only prints what it would flash).
    image = tmp_path / "build" / "firmware" / "esp32_devkitc-romfs.bin"
    image.parent.mkdir(parents=True)
    image.write_bytes(esp_image(0))
    _clone(tmp_path)
    run = Path_(tmp_path)
    try:
        board = run.start(commands[0])
        url = board.until(r"^(socket://127\.0\.0\.1:\d+)$").group(1)
        assert url.endswith(":" + run.ports[VBOARD_PORT])
        tty = board.until(r"^serial device (\S+)$").group(1)
        assert tty == str(tmp_path / "out" / "vboard.tty")
        host = None
        for line in commands[1:]:
            if line == "make host":
                host = run.start(line)
                host.until(r"^host simulator on \S+:%s" % run.ports[HOST_PORT])
                continue
            out = run.run(line)
            if "DRY_RUN=1" in line:
                assert "esptool" in out and "write-flash" in out and "0x8000" in out, out
            if line.startswith("cp "):
                local = tmp_path / "provision.local.json"
                values = json.loads(local.read_text())
                values.update(settings, port=int(run.ports[HOST_PORT]))
                local.write_text(json.dumps(values))
            if line.startswith("make deploy"):
                assert "code romfs: the board imports firmware from /rom/firmware" in out, out
            if line.startswith("make provision"):
                assert "wrapped for device" in out, out
        assert host is not None
        # 5. the first transaction, at the board's screen.
        card = default_cards()[int(buy.group(1)) - 1]["pan"]
        steps = [{"wait": "idle", "timeout_ms": 120000}, {"tap": card},
                 {"keys": buy.group(2)}, {"keys": buy.group(3)},
                 {"wait": "settled", "timeout_ms": 120000}]
        for n, step in enumerate(steps, 1):
            _step(board, n, step)
        printed = "\n".join(board.seen)
        assert "\nreceipt:\n" in printed and "APPROVED" in printed.split("\nreceipt:\n", 1)[1]
        receipts = sorted((tmp_path / "out" / "vboard.record" / "receipts").glob("*.txt"))
        assert receipts and "APPROVED" in receipts[-1].read_text()
        # mpremote as the README shows it, the board's firmware running.
        lines = _commands(mpremote)
        for line in lines:
            if line.endswith(" repl"):
                _repl(run, line, tty)
                continue
            out = run.run(line)
            if line.endswith(" reset"):
                # The firmware boots again on its own, not held by the raw REPL.
                _step(board, len(steps) + 1, {"wait": "idle", "timeout_ms": 120000})
                steps.append(None)
            if " run " in line:
                assert "summary" in out.lower() or "OK" in out, out
        assert any(line.endswith(" reset") for line in lines)
    finally:
        run.stop()


def _repl(run, line, tty):
    """mpremote's REPL on the serial device, as a person has it: Ctrl-C stops the firmware, a
    line typed is answered, Ctrl-] leaves."""
    argv = run.argv(line)
    assert argv[-2] == "out/vboard.tty" and (run.tmp / argv[-2]).resolve() == Path(tty).resolve()
    master, slave = pty.openpty()
    tty_mod.setraw(slave)  # Ctrl-C a byte for mpremote even before its console is raw
    proc = subprocess.Popen(argv, cwd=run.tmp, env=run.env, stdin=slave, stdout=slave,
                            stderr=slave, start_new_session=True)
    os.close(slave)
    seen = b""
    try:
        deadline = time.monotonic() + TIMEOUT_S
        said = [b"Use Ctrl-] or Ctrl-x to exit this shell", b">>> ", b"6006"]
        typed = [b"\x03", b"print(6000 + 6)\r"]  # at mpremote's console, then at the prompt
        while said:
            assert time.monotonic() < deadline and proc.poll() is None, seen[-2000:]
            if select.select([master], [], [], 0.5)[0]:
                seen += os.read(master, 4096)
            if said[0] in seen:
                seen = seen[seen.index(said.pop(0)):]
                if typed:
                    os.write(master, typed.pop(0))
        os.write(master, b"\x1d")  # Ctrl-]
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
