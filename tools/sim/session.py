"""Simulated board orchestration: the firmware process, its peripherals, its network, its power.

`SimSession` ties together
- the host simulator (tools/host, in this process),
- `NetProxy`: the terminal's network; forwards to the host, records every frame, can go down,
- `BoardModel`: the other end of the firmware's board link (boards/sim.py): card reader field,
  keypad, display, printer with paper, the firmware's state reports,
- `Firmware`: the MicroPython unix port running main.py on a littlefs image (power cut = SIGKILL).

Every observable thing becomes an event `{"t_ms", "kind", ...}` (docs/simulated-board.md, "The
record in DIR"), written to events.jsonl and passed to listeners (the interactive UI).
"""

import asyncio
import base64
import json
import os
import signal
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MICROPYTHON = REPO / ".venv" / "bin" / "micropython"
# The unix port is 64-bit: objects and GC blocks are twice the ESP32's, so 200 000 bytes here hold
# about what 100 000 hold on the chip (the Makefile's HEAP says the same). The simulated board
# also carries what no board does: the chip models (their code and state) and the link to the
# PC; at boot it logs what it holds (boards/sim.py). Hence 400 000; `make bench` prints the
# breakdown. With the code in ROMFS the image's bytes are in the heap too (flash on a board):
# the default heap grows by its size.
DEFAULT_HEAPSIZE = 400000
# How the firmware's code reaches the unix port, as on a board: compiled to .mpy files on the
# filesystem, or in a ROMFS image mounted at /rom (tools/build.py, docs/romfs.md).
CODES = ("romfs", "mpy")
KEY_LABELS = "0123456789ABCD*#"
# boards/sim.py holds each key for the debounce time + 20 ms and lifts it for as long: a `keys`
# step ends when its last key has been pressed and released, so a step after it comes after.
KEY_TIMEOUT_S = 30  # a key the firmware's scans have not seen by then: the keypad is dead
TAP_TIMEOUT_MS = 30000


# What the record shows instead of a secret setting, and instead of a digit typed at the PIN
# prompt: the record is read by people and kept with test results.
MASK = "****"
PIN_DIGIT = "\u2022"  # a bullet


class SimError(Exception):
    """A step could not be carried out (a failed wait, a card never read)."""


def masked_settings(config):
    """config for the record: the keys (clear or wrapped), the MIFARE key and the Wi-Fi
    password as MASK."""
    from firmware.settings import KEYS

    secret = KEYS + ("classic_key", "wifi_password")
    return {name: MASK if name in secret and value else value for name, value in config.items()}


def _entry(value):
    """A paper entry back from JSON: lists to tuples, {"hex": ...} to bytes."""
    if isinstance(value, dict) and "hex" in value:
        return bytes.fromhex(value["hex"])
    if isinstance(value, list):
        return tuple(_entry(v) for v in value)
    return value


def default_cards():
    """The project's default test cards (tools/host/cards.json)."""
    path = REPO / "tools" / "host" / "cards.json"
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return []


def describe_frame(frame):
    """`{"mti", "stan", "rc"?}` of an ISO message (without length prefix); tolerant."""
    info = {"mti": None, "stan": None}
    try:
        from tools.host.spec import decode_frame

        mti, fields = decode_frame(frame)
        info["mti"] = mti
        info["stan"] = fields.get("11")
        if "39" in fields:
            info["rc"] = fields["39"]
        return info
    except Exception:  # noqa: BLE001 - anything undecodable is still recorded
        head = bytes(frame[:4])
        if len(head) == 4 and head.isdigit():
            info["mti"] = head.decode()
        return info


async def _finish(tasks):
    """Cancel connection handlers and wait for them (quietly: they catch their cancellation)."""
    for task in list(tasks):
        task.cancel()
    if tasks:
        await asyncio.gather(*list(tasks), return_exceptions=True)


class EventLog:
    """Ordered event record: events.jsonl plus listeners."""

    def __init__(self, path=None):
        self.t0 = time.monotonic()
        self.listeners = []
        self.events = []
        self._f = open(path, "w") if path else None

    def emit(self, kind, **fields):
        event = {"t_ms": int((time.monotonic() - self.t0) * 1000), "kind": kind}
        event.update(fields)
        self.events.append(event)
        if self._f:
            self._f.write(json.dumps(event) + "\n")
            self._f.flush()
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - a UI bug must not stop the simulation
                pass
        return event

    def close(self):
        if self._f:
            self._f.close()
            self._f = None


class NetProxy:
    """The terminal's network: TCP 127.0.0.1:port -> the host simulator, frames recorded.

    With `tls` (a server ssl.SSLContext holding the host's certificate) it is also the host's TLS
    front end: the terminal's TLS session ends here, so what it records and forwards to the host
    simulator on loopback is the plaintext the host processes."""

    def __init__(self, events, upstream_port, tls=None):
        self.events = events
        self.upstream_port = upstream_port  # callable: the host's current port
        self.tls = tls
        self.up = True
        self.port = None
        self._server = None
        self._conns = set()
        self._tasks = set()

    async def start(self):
        # With TLS, asyncio completes the handshake before _handle runs: a host that is down
        # then shows as a connection reset after it, as an accepted plain connection does.
        # Closing, the front end sends its close_notify and drops the connection 0.1 s later,
        # as servers commonly do, not waiting for the terminal's: MicroPython's poll does not
        # wake for a close_notify that came in with the last record, so the terminal would
        # wait out its response timer instead of seeing the host hang up.
        tls = {"ssl": self.tls, "ssl_shutdown_timeout": 0.1} if self.tls else {}
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, **tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self):
        self._close_all()
        if self._server:
            self._server.close()
        await _finish(self._tasks)
        if self._server:
            await self._server.wait_closed()

    def set_up(self, up):
        self.up = up
        if not up:
            self._close_all()

    def _close_all(self):
        for writer in list(self._conns):
            try:
                writer.transport.abort()
            except Exception:  # noqa: BLE001
                pass
        self._conns.clear()

    async def _handle(self, t_reader, t_writer):
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            await self._connect(t_reader, t_writer)
        except asyncio.CancelledError:
            t_writer.transport.abort()  # the sim is stopping
        finally:
            self._tasks.discard(task)

    async def _connect(self, t_reader, t_writer):
        if not self.up:
            t_writer.transport.abort()
            return
        try:
            h_reader, h_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port())
        except OSError:
            t_writer.transport.abort()  # host down: the terminal sees the connection fail
            return
        if not self.up:  # went down while connecting
            h_writer.transport.abort()
            t_writer.transport.abort()
            return
        pair = (t_writer, h_writer)
        self._conns.update(pair)
        try:
            await asyncio.gather(
                self._pump(t_reader, h_writer, "host_tx"),
                self._pump(h_reader, t_writer, "host_rx"),
            )
        finally:
            for w in pair:
                self._conns.discard(w)
                try:
                    w.close()
                except Exception:  # noqa: BLE001
                    pass

    async def _pump(self, src, dst, kind):
        buf = b""
        try:
            while True:
                data = await src.read(4096)
                if not data:
                    break
                if not self.up:
                    break
                dst.write(data)
                buf += data
                while len(buf) >= 2:
                    n = int.from_bytes(buf[:2], "big")
                    if len(buf) < 2 + n:
                        break
                    whole, buf = buf[:2 + n], buf[2 + n:]
                    info = describe_frame(whole[2:])
                    self.events.emit(kind, hex=whole.hex(), **info)
                await dst.drain()
            try:
                if dst.can_write_eof():
                    dst.write_eof()
                elif self.tls is not None:
                    dst.close()  # TLS has no half-close: the host hung up, so does its front end
            except (OSError, RuntimeError):
                pass
        except (OSError, ConnectionError, RuntimeError):
            pass
        finally:
            if buf:
                self.events.emit("net_partial", direction=kind, hex=buf.hex())


class BoardModel:
    """The sim's end of the board link: peripherals as the firmware sees them."""

    def __init__(self, events, receipts_dir=None):
        self.events = events
        self.receipts_dir = Path(receipts_dir) if receipts_dir else None
        self.port = None
        self.lines = []
        self.framebuffer = None  # the OLED's GDDRAM, as the firmware's display model holds it
        self.paper = True
        self.field = None  # card in the reader's field: {"pan", "expiry"}
        self.state = None  # the firmware's last state report (None: not booted / no link)
        self.receipts = []
        self.firmware_log = []
        self._writer = None
        self._server = None
        self._tasks = set()
        self._read = asyncio.Event()
        self._receipt_no = 0
        self._paper_entries = []  # a job's paper, an entry a line, until its paper_report
        self._pin_entry = False  # digits now go to the PIN prompt, as far as the sim can tell
        # Keys sent to this boot's board, and how many its finger has typed (its "typed").
        self.keys_sent = 0
        self.keys_typed = 0
        self._typed = asyncio.Event()

    async def start(self):
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self):
        self.drop_link()
        if self._server:
            self._server.close()
        await _finish(self._tasks)
        if self._server:
            await self._server.wait_closed()

    @property
    def connected(self):
        return self._writer is not None

    def drop_link(self):
        if self._writer is not None:
            try:
                self._writer.transport.abort()
            except Exception:  # noqa: BLE001
                pass
        self._writer = None
        self.state = None

    def send(self, obj):
        if self._writer is None:
            return False
        try:
            self._writer.write((json.dumps(obj) + "\n").encode())
        except (OSError, RuntimeError):
            return False
        return True

    async def _handle(self, reader, writer):
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            await self._serve_link(reader, writer)
        except asyncio.CancelledError:
            writer.transport.abort()  # the sim is stopping
        finally:
            self._tasks.discard(task)

    async def _serve_link(self, reader, writer):
        self.drop_link()  # one firmware at a time: a new boot replaces the old link
        self._writer = writer
        self.keys_sent = self.keys_typed = 0  # a new boot: keys pressed before it are gone
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    msg = json.loads(line)
                except ValueError:
                    self.events.emit("link_error", text=line.decode("utf-8", "replace")[:200])
                    continue
                if isinstance(msg, dict):
                    self._on_message(msg)
        except (OSError, ConnectionError):
            pass
        finally:
            if self._writer is writer:
                self._writer = None
                self.state = None
            self._typed.set()  # nobody is typing any more

    def _on_message(self, msg):
        if "typed" in msg:
            self.keys_typed = int(msg["typed"])
            self._typed.set()
        if "hello" in msg:
            self.events.emit("boot")
            # What the board's hardware would tell a fresh boot: paper sensor, card in the field.
            if not self.paper:
                self.send({"paper": "out"})
            if self.field is not None:
                self.send({"card": self.field})
        if "display" in msg:
            self.lines = [str(x) for x in msg["display"]]
            if "fb" in msg:
                self.framebuffer = base64.b64decode(msg["fb"])
            self.events.emit("display", lines=self.lines)
        if "paper_entry" in msg:
            self._paper_entries.append(msg["paper_entry"])
        if "paper_report" in msg:
            entries, self._paper_entries = self._paper_entries, []
            self._paper(entries + list(msg["paper_report"]), msg.get("job"), bool(msg.get("ok")))
        if "card_read" in msg:
            self.field = None
            self._read.set()
            self.events.emit("card_read", pan_last4=str(msg["card_read"])[-4:])
        if "card_unread" in msg:
            # The reader gave up on the card: the cashier takes it away.
            self.field = None
            self._read.set()
            self.events.emit("card_unread", reason=str(msg["card_unread"]))
        if "state" in msg:
            state = msg["state"]
            mode = state.get("mode") if isinstance(state, dict) else None
            if mode == "pin":
                self._pin_entry = True
            elif mode != "amount":  # ("amount" may be a report older than the "#" typed)
                self._pin_entry = False
            if state != self.state:
                self.state = state
                self.events.emit("state", state=state)
        if "log" in msg:
            text = str(msg["log"])
            self.firmware_log.append(text)
            self.events.emit("log", text=text)

    def _paper(self, entries, job, ok):
        """What reached the printer model's paper during a job (or a failed job's part):
        one receipt, as text and as a picture of the paper."""
        from tools.models.escpos import EscPosModel

        entries = [_entry(e) for e in entries]
        lines = [EscPosModel.line_text(e) for e in entries if e[0] != "cut"]
        text = "\n".join(line for line in lines if line is not None)
        if text.strip():
            self._receipt_no += 1
            self.receipts.append(text)
            if self.receipts_dir is not None:
                self.receipts_dir.mkdir(parents=True, exist_ok=True)
                base = self.receipts_dir / ("%03d" % self._receipt_no)
                base.with_suffix(".txt").write_text(text)
                from tools.models.escpos_png import render_png

                render_png(entries, str(base.with_suffix(".png")))
            self.events.emit("receipt", text=text)
        if not ok:
            self.events.emit("print_failed", job=job, reason="printer")

    # --- inputs -------------------------------------------------------------------------------

    async def wait_typed(self, timeout_s):
        """Until the board's finger has typed every key sent to it (or the link is gone);
        False when that takes longer than timeout_s."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self._writer is not None and self.keys_typed < self.keys_sent:
            self._typed.clear()
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(self._typed.wait(), left)
            except asyncio.TimeoutError:
                return False
        return True

    def press(self, label):
        sent = self.send({"key": label})
        if sent:
            self.keys_sent += 1
        shown = label
        if self._pin_entry and label in "0123456789":
            shown = PIN_DIGIT  # the PIN stays between the keypad and the PIN block
        elif label == "#" and isinstance(self.state, dict) and self.state.get("mode") == "amount":
            # Enter ends the amount: the next digits are the PIN, before the firmware's report
            # of the "pin" mode has come back over the link.
            self._pin_entry = True
        self.events.emit("key", label=shown, **({} if sent else {"lost": True}))

    def present(self, card):
        """Put a card in the field (it stays until the firmware reads it)."""
        self.field = {"pan": card["pan"], "expiry": card.get("expiry", "3012"),
                      "profile": card.get("profile", "emv_visa")}
        self._read.clear()
        self.events.emit("tap", pan_last4=card["pan"][-4:])
        self.send({"card": self.field})

    async def wait_read(self, timeout_s):
        await asyncio.wait_for(self._read.wait(), timeout_s)

    def remove_card(self):
        self.field = None

    def set_paper(self, paper_in):
        self.paper = paper_in
        self.events.emit("paper", state="in" if paper_in else "out")
        self.send({"paper": "in" if paper_in else "out"})


class Firmware:
    """The firmware process: MicroPython unix port running main.py; power = process alive."""

    def __init__(self, events, env, log_path, heapsize=DEFAULT_HEAPSIZE, main="main.py",
                 cwd=REPO, on_exit=None, boot=None, micropython=MICROPYTHON):
        self.events = events
        self.env = env
        self.log_path = log_path
        self.heapsize = heapsize
        self.main = main
        self.boot = boot  # a -c program that runs main itself (tools/boardboot.py)
        self.micropython = micropython
        self.cwd = cwd
        self.on_exit = on_exit
        self.powered = False
        self.proc = None
        self.boots = 0
        self._watch = None

    async def power_on(self):
        if self.powered:
            return
        self.powered = True
        self.events.emit("power", state="on")
        await self._spawn()

    async def _spawn(self):
        env = dict(os.environ)
        env.update(self.env)
        program = ["-c", self.boot] if self.boot else [str(self.main)]
        self.proc = await asyncio.create_subprocess_exec(
            str(self.micropython), "-X", "heapsize=%d" % self.heapsize, *program,
            cwd=str(self.cwd), env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        self.boots += 1
        self._console = asyncio.ensure_future(self._copy_console(self.proc, self.boots))
        self._watch = asyncio.ensure_future(self._watch_exit(self.proc))

    async def _copy_console(self, proc, boot):
        """Firmware stdout/stderr to firmware.log; each traceback also becomes an event."""
        with open(self.log_path, "ab") as log:
            log.write(b"--- boot %d ---\n" % boot)
            log.flush()
            trace = None
            while True:
                line = await proc.stdout.readline()
                if not line:
                    break
                log.write(line)
                log.flush()
                text = line.decode("utf-8", "replace").rstrip("\n")
                if trace is not None:
                    trace.append(text)
                    if not text.startswith(" "):
                        self.events.emit("firmware_error", text="\n".join(trace))
                        trace = None
                elif text.startswith("Traceback"):
                    trace = [text]
            if trace:
                self.events.emit("firmware_error", text="\n".join(trace))

    async def _watch_exit(self, proc):
        rc = await proc.wait()
        if proc is not self.proc or not self.powered:
            return
        # The firmware stopped by itself (crash, reset): a board resets and boots again.
        self.events.emit("firmware_exit", rc=rc)
        if self.on_exit:
            self.on_exit()
        if self.boots >= 50:
            self.events.emit("log", text="sim: firmware keeps exiting; not restarting it")
            return
        await asyncio.sleep(0.5)
        if self.powered and proc is self.proc:
            await self._spawn()

    async def power_cut(self):
        if not self.powered:
            return
        self.powered = False
        proc = self.proc
        if proc is not None and proc.returncode is None:
            try:
                proc.send_signal(signal.SIGKILL)  # no flush, no goodbye
            except ProcessLookupError:
                pass
            await proc.wait()
        self.events.emit("power", state="cut")

    @property
    def running(self):
        return self.proc is not None and self.proc.returncode is None


def loaded_modules(image, config):
    """The compiled modules of the folder `image` that the simulated board loads with the
    settings `config`, as (the firmware's, the simulation's own) lists of paths: the other
    reader's driver and model, the keypad controller unless set, and Wi-Fi and NTP when unset,
    are left out."""
    from firmware.settings import DEFAULTS

    def setting(name):
        return config.get(name, DEFAULTS[name])

    reader = setting("reader")
    unused = {"drivers/pn532_uart"} | {"drivers/" + kind for kind in ("pn532_i2c", "pn532_spi")
                                       if kind != reader}
    unused.add("firmware/dukpt_host")  # DUKPT's host side: never imported on a board
    if reader == "rc522":
        unused |= {"drivers/pn532", "drivers/emv", "tools/models/pn532"}
    else:
        unused |= {"drivers/mfrc522", "tools/models/mfrc522"}
    if setting("display") != "ssd1306_spi":
        unused.add("drivers/ssd1306_spi")
    if setting("keypad") != "tca8418":
        unused |= {"drivers/tca8418", "tools/models/tca8418"}
    if not setting("wifi_ssid"):
        unused |= {"firmware/wifi", "tools/models/wlan"}
    if not setting("ntp_host"):
        unused.add("firmware/sntp")
    if not setting("debug_repl"):
        unused.add("firmware/debug_repl")
    firmware, own = [], []
    for package in ("firmware", "drivers", "boards", "tools", "tools/models"):
        for path in sorted((Path(image) / package).glob("*.mpy")):
            name = "%s/%s" % (package, path.stem)
            if name not in unused:
                (own if package.startswith("tools") or name == "boards/sim" else firmware
                 ).append(path)
    return firmware, own


def add_names(folder, config, mount):
    """tools/firmware_names.mpy and tools/sim_names.mpy in the compiled image `folder`: modules
    of the names the firmware's modules, and then the simulation's, intern (what the settings
    `config` load: loaded_modules), for the start-up program to intern them in that order
    (tools/boardboot.py, _PRELOAD). `mount`: where the board finds `folder` (/rom, or the
    folder itself): importing a module interns its file's path there."""
    from tools.boardboot import mpy_qstrs, names_source
    from tools.build import compile_source

    folder = Path(folder)
    firmware, own = loaded_modules(folder, config)
    seen = set()
    for modules, name in ((firmware, "firmware_names"), (own, "sim_names")):
        names = []
        for path in modules:
            for qstr in mpy_qstrs(path):
                if qstr not in seen:
                    seen.add(qstr)
                    names.append(qstr)
        copied = ["%s/%s" % (mount, p.relative_to(folder).as_posix()) for p in modules]
        copied += sorted({p.stem for p in modules} - seen)  # its name in its package
        compile_source(names_source(names, copied), folder / "tools" / (name + ".mpy"),
                       "tools/%s.py" % name)


class SimSession:
    """A whole simulated counter: host, network, board, firmware. One step method per step kind."""

    def __init__(self, out_dir, config=None, cards=None, heapsize=None, main=None,
                 on_event=None, host_factory=None, code="romfs", micropython=None):
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        for name in ("events.jsonl", "ledger.json", "flash.img", "host.db", "firmware.log"):
            try:
                (self.out / name).unlink()
            except FileNotFoundError:
                pass
        receipts = self.out / "receipts"
        if receipts.is_dir():
            for p in receipts.iterdir():
                if p.is_file():
                    p.unlink()
        self.config = dict(config or {})
        self.cards = list(cards) if cards is not None else None
        self.known_cards = {c["pan"]: c for c in (self.cards or default_cards())}
        self._since_input = 0  # events before the last input step: where a message wait looks
        if code not in CODES:
            raise ValueError("code: one of %s, not %r" % (", ".join(CODES), code))
        self.heapsize = heapsize
        self.main = main
        self.code = code
        self.micropython = Path(micropython) if micropython else MICROPYTHON
        self.events = EventLog(self.out / "events.jsonl")
        if on_event:
            self.events.listeners.append(on_event)
        self.host_factory = host_factory
        self.host = None
        self.proxy = None
        self.board = None
        self.firmware = None
        self.ntp = None

    async def start(self):
        factory = self.host_factory
        if factory is None:
            try:
                from tools.host import HostSimulator as factory
            except ImportError:
                from tools.host.server import HostSimulator as factory
        # A scenario whose terminal keeps static keys: the host takes static MACs from it.
        from firmware.settings import DEFAULTS

        static = self.config.get("key_scheme", DEFAULTS["key_scheme"]) == "static"
        self.host = factory(str(self.out / "host.db"), cards=self.cards, port=0,
                            static_terminals=[self.config.get("terminal_id",
                                                              DEFAULTS["terminal_id"])]
                            if static else ())
        await self.host.start()
        # The terminal's host link: TLS with the host's certificate checked (the default), the
        # certificate from a test CA made in the run's folder, whose certificate the board
        # profile puts on the flash as provisioning would (POS_HOST_CA, boards/sim.py).
        tls = ca_der = None
        if self.config.get("host_tls", DEFAULTS["host_tls"]) == "verify":
            from tools.host import tlsca
            from tools.host.server import server_tls

            files, _ = tlsca.ensure(self.out / "certs")
            tls = server_tls((str(files["host.pem"]), str(files["host.key.pem"])))
            ca_der = files["ca.der"].read_bytes()
        self.proxy = NetProxy(self.events, lambda: self.host.port, tls)
        await self.proxy.start()
        self.board = BoardModel(self.events, self.out / "receipts")
        await self.board.start()
        config = dict(self.config)
        config["host"] = "127.0.0.1"
        config["port"] = self.proxy.port
        if config.get("ntp_host") == "sim":
            # The board's time server on loopback, like its host: the firmware sets its clock
            # from it at boot (firmware/sntp.py). Opt-in: with it, the approved example runs
            # out of heap in the printer model at 400 000 bytes (docs/architecture.md).
            from tools.host.ntp import NtpServer

            self.ntp = await NtpServer(
                on_reply=lambda addr: self.events.emit("ntp", client_port=addr[1])).start()
            config["ntp_host"], config["ntp_port"] = "127.0.0.1", self.ntp.port
        else:
            config["ntp_host"] = ""  # never the internet's pool.ntp.org from a simulation
        env = {
            "POS_BOARD": "sim",
            "POS_SIM_LINK": str(self.board.port),
            "POS_FLASH": str((self.out / "flash.img").resolve()),
            "POS_CONFIG": json.dumps(config),
        }
        if ca_der is not None:
            env["POS_HOST_CA"] = ca_der.hex()
        # Run in the out dir (MicroPython puts the script's own dir on sys.path), so whatever the
        # firmware writes to its working directory (crash.log) lands in the record, not the repo.
        from tools.boardboot import boot_source
        from tools.build import SIM_PACKAGES, build, build_romfs, romfs_path

        heapsize = self.heapsize or DEFAULT_HEAPSIZE
        image = (self.out / "image").resolve()
        rom = None
        names = ("tools.firmware_names", "tools.sim_names")
        if self.main is not None:
            # From source: compiled as imported, so no names to intern ahead of them.
            main_path, here = (REPO / self.main).resolve(), str(REPO)
            names = (None, None)
        elif self.code == "romfs":
            # As on a board with a ROM partition: the packages in a ROMFS image at /rom, main.py
            # and boot.py as source on the filesystem.
            build_romfs(image, packages=SIM_PACKAGES,
                        staged=lambda rom: add_names(rom, config, "/rom"))
            rom = romfs_path(image)
            main_path, here = image / "main.py", ""
            if self.heapsize is None:
                heapsize += rom.stat().st_size
        else:
            # As on a board: the firmware precompiled to .mpy, main.py and boot.py as source.
            build(image, packages=SIM_PACKAGES)
            add_names(image, config, str(image))
            main_path, here = image / "main.py", str(image)
        # Started the way the port starts a board (tools/boardboot.py); the sim's own profile
        # is imported first and weighed, so that the boot log can say what the firmware holds.
        boot = boot_source(str(self.out.resolve() / "lib"), romfs=rom, board=False,
                           run=[str(main_path)], here=here,
                           preload=("boards.sim",) + names)
        self.events.emit("config", settings=masked_settings(config), heapsize=heapsize,
                         code="source" if self.main else self.code)
        self.firmware = Firmware(self.events, env, self.out / "firmware.log", heapsize,
                                 main_path, cwd=self.out.resolve(),
                                 on_exit=self.board.drop_link, boot=boot,
                                 micropython=self.micropython)
        await self.firmware.power_on()

    async def stop(self):
        """Power off, write ledger.json, stop the host."""
        if self.firmware:
            await self.firmware.power_cut()
        if self.board:
            await self.board.stop()
        if self.proxy:
            await self.proxy.stop()
        if self.ntp:
            self.ntp.stop()
        if self.host:
            try:
                ledger = self.host.export_ledger()
                with open(self.out / "ledger.json", "w") as f:
                    json.dump(ledger, f, indent=1)
            finally:
                await self.host.stop()
        self.events.close()

    # --- steps --------------------------------------------------------------------------------

    async def step(self, step):
        """Run one scenario step (a dict as in docs/simulated-board.md). Raises SimError when it
        fails."""
        if "wait" not in step and "sleep_ms" not in step:
            self._since_input = len(self.events.events)
        if "tap" in step:
            await self.tap(step["tap"], step.get("timeout_ms", TAP_TIMEOUT_MS))
        elif "keys" in step:
            await self.keys(step["keys"])
        elif "host" in step:
            self.host_fault(step)
        elif "ntp" in step:
            self.ntp_fault(step)
        elif "net" in step:
            self.net(step["net"] == "up")
        elif "paper" in step:
            self.paper(step["paper"] == "in")
        elif "power" in step:
            await self.power(step["power"] == "on")
        elif step.get("wait") in ("sent", "received"):
            await self.wait_message(step["wait"], step.get("mti"), step.get("timeout_ms", 60000))
        elif step.get("wait") == "display":
            await self.wait_display(str(step.get("text", "")), step.get("timeout_ms", 60000))
        elif "wait" in step:
            await self.wait(step["wait"], step.get("timeout_ms", 60000))
        elif "sleep_ms" in step:
            await asyncio.sleep(step["sleep_ms"] / 1000)
        else:
            raise SimError("unknown step %s" % json.dumps(step))

    async def tap(self, pan, timeout_ms=TAP_TIMEOUT_MS):
        card = self.known_cards.get(pan, {"pan": pan, "expiry": "3012"})
        self.board.present(card)
        try:
            await self.board.wait_read(timeout_ms / 1000)
        except asyncio.TimeoutError:
            self.board.remove_card()
            raise SimError("tap %s: card not read within %d ms" % (pan[-4:], timeout_ms))

    def tap_nowait(self, pan):
        card = self.known_cards.get(pan, {"pan": pan, "expiry": "3012"})
        self.board.present(card)

    async def keys(self, labels):
        # One key at a time, each typed once the board's finger has typed the last: the
        # firmware's scans have seen it pressed and released (boards/sim.py, "typed").
        for label in labels:
            self.board.press(label)
            if not await self.board.wait_typed(KEY_TIMEOUT_S):
                raise SimError("key %s: not typed within %d s (no keypad scans)"
                               % (label, KEY_TIMEOUT_S))

    def host_fault(self, step):
        fields = {k: v for k, v in step.items() if k != "host"}
        self.events.emit("host", fault=step["host"], **fields)
        self.host.inject(dict(step))

    def ntp_fault(self, step):
        if self.ntp is None:
            raise SimError("ntp step: no time server (config ntp_host \"sim\")")
        self.events.emit("ntp_fault", fault=step["ntp"],
                         **{k: v for k, v in step.items() if k != "ntp"})
        self.ntp.inject(step["ntp"], step.get("ms", 0), step.get("times", 1))

    def net(self, up):
        self.proxy.set_up(up)
        self.events.emit("net", state="up" if up else "down")

    def paper(self, paper_in):
        self.board.set_paper(paper_in)

    async def power(self, on):
        if on:
            await self.firmware.power_on()
        else:
            await self.firmware.power_cut()
            self.board.drop_link()

    def is_idle(self):
        state = self.board.state
        return bool(self.firmware.running and isinstance(state, dict)
                    and state.get("idle") is True)

    def is_settled(self):
        state = self.board.state
        return (self.is_idle() and not state.get("queued") and not state.get("unprinted"))

    async def wait_message(self, what, mti, timeout_ms):
        """Until the terminal sends ("sent") or receives ("received") a message, of type `mti`
        if given, since the last step that was not a wait (a fast host may answer before this
        step begins): a power cut can then be timed to a point of the flow whatever the
        machine's speed."""
        kind = "host_tx" if what == "sent" else "host_rx"
        start = self._since_input
        deadline = time.monotonic() + timeout_ms / 1000
        while not any(e["kind"] == kind and (mti is None or e.get("mti") == mti)
                      for e in self.events.events[start:]):
            if time.monotonic() >= deadline:
                raise SimError("wait %s %s: not within %d ms" % (what, mti or "", timeout_ms))
            await asyncio.sleep(0.005)
        self.events.emit("wait_done", what=what, **({"mti": mti} if mti else {}))

    async def wait_display(self, text, timeout_ms):
        """Until a line of the screen holds `text`."""
        deadline = time.monotonic() + timeout_ms / 1000
        while not any(text in line for line in self.board.lines or ()):
            if time.monotonic() >= deadline:
                raise SimError("wait display %r: not shown within %d ms" % (text, timeout_ms))
            await asyncio.sleep(0.02)
        self.events.emit("wait_done", what="display", text=text)

    async def wait(self, what, timeout_ms):
        check = self.is_idle if what == "idle" else self.is_settled
        # Give the firmware a moment to report what the last input changed.
        await asyncio.sleep(0.1)
        deadline = time.monotonic() + timeout_ms / 1000
        while not check():
            if time.monotonic() >= deadline:
                raise SimError("wait %s: not reached within %d ms (last state %s)"
                               % (what, timeout_ms, json.dumps(self.board.state)))
            await asyncio.sleep(0.02)
        self.events.emit("wait_done", what=what)


def _exc_line(exc):
    return "%s: %s" % (type(exc).__name__, exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: python -m tools.sim")
