"""The acquirer host simulator: asyncio TCP server, ISO 8583 (tools/host/spec.py), SQLite ledger,
and the faults a demonstrator or a scenario asks for (docs/protocol.md; the `host` steps of
docs/simulated-board.md).

Framing: 2-byte big-endian length, then the message. Any number of requests per connection (the
terminal sends one). A frame that is too long, empty or undecodable is logged and its connection
closed; nothing a client sends stops the server.

Faults: `inject({"host": KIND, ...})` with the scenario step's own dict. KIND is one of
`drop_request`, `drop_response`, `delay_response` (`ms`), `disconnect`, `bad_mac`,
`crash_after_commit` (`ms`: downtime), which aim at the next exchange of one kind (`"for"`:
`"financial"` (default, 0200), `"query"` (0600), `"reversal"` (0400/0401), `"advice"` (0220)),
`"times"`: N (default 1) or `"all"` (until heal); or `host_down` / `host_up` (refuse / accept
connections) and `heal` (ends every fault, host_down included).
"""

import asyncio
import datetime
import socket
import ssl

from . import keys, spec
from .keys import dukpt
from .ledger import APPROVED, NO_RECORD, SECURITY_VIOLATION, SYSTEM_MALFUNCTION, Ledger

MAX_FRAME = 2048  # the largest protocol message is ~1.2 kB (field 60 may reach 999 bytes)
IDLE_TIMEOUT_S = 300  # a connection that sends nothing for this long is closed

TARGETED_FAULTS = ("drop_request", "drop_response", "delay_response", "disconnect", "bad_mac",
                   "crash_after_commit")
CONTROL_FAULTS = ("host_down", "host_up", "heal")
FAULT_KINDS = TARGETED_FAULTS + CONTROL_FAULTS

# Which exchanges a fault's "for" aims at.
TARGETS = {
    spec.PURCHASE: "financial",
    spec.QUERY: "query",
    spec.REVERSAL: "reversal",
    spec.REVERSAL_REPEAT: "reversal",
    spec.ADVICE: "advice",
}
_FOR_ALIASES = {None: "financial", "financial": "financial", "purchase": "financial",
                "query": "query", "reversal": "reversal", "advice": "advice"}

# Fields a request must carry to be processed (others are optional for the host).
_REQUIRED = {
    spec.PURCHASE: ("2", "3", "4", "11", "41", "60"),
    spec.QUERY: ("3", "4", "11", "41", "60"),
    spec.REVERSAL: ("3", "4", "11", "41", "60"),
    spec.REVERSAL_REPEAT: ("3", "4", "11", "41", "60"),
    spec.ADVICE: ("3", "4", "11", "41", "60"),
}


class Fault:
    """One injected fault: `kind`, `target` ('financial', 'query', ...), `ms`, `left` (None:
    all)."""

    def __init__(self, step):
        if not isinstance(step, dict) or "host" not in step:
            raise ValueError("a fault is a dict with a 'host' key: %r" % (step,))
        self.kind = step["host"]
        if self.kind not in FAULT_KINDS:
            raise ValueError("unknown host fault %r (one of %s)" % (self.kind,
                                                                  ", ".join(FAULT_KINDS)))
        target = step.get("for")
        if target not in _FOR_ALIASES:
            raise ValueError("fault 'for' must be query, reversal or advice, not %r" % target)
        self.target = _FOR_ALIASES[target]
        times = step.get("times", 1)
        if times == "all":
            self.left = None
        elif isinstance(times, int) and not isinstance(times, bool) and times >= 1:
            self.left = times
        else:
            raise ValueError("fault 'times' must be a positive integer or 'all', not %r" % times)
        self.ms = step.get("ms")
        if self.kind == "delay_response" and self.ms is None:
            raise ValueError("delay_response needs 'ms'")
        if self.kind == "crash_after_commit" and self.ms is None:
            self.ms = 1000
        if self.ms is not None and (not isinstance(self.ms, (int, float)) or self.ms < 0):
            raise ValueError("fault 'ms' must be a number >= 0, not %r" % (self.ms,))

    def __str__(self):
        return self.kind + ("(%dms)" % self.ms if self.ms is not None else "")


def server_tls(tls):
    """`tls` as HostSimulator takes it: None (plain TCP), an ssl.SSLContext, or (certfile,
    keyfile) in PEM (tools/host/tlsca.py makes a test pair)."""
    if tls is None or isinstance(tls, ssl.SSLContext):
        return tls
    certfile, keyfile = tls
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    return context


class HostSimulator:
    """The host: `await start()`, then `port`; `inject(step)`; `export_ledger()`;
    `await stop()`.

    `log` holds one readable line per exchange (and per control event); `exchanges` the same as
    dicts; `on_log(line)` is called for each line. `clock()` (aware UTC datetime) is shared with
    the ledger, for expiry checks and timestamps.

    Keys: a request with a KSN (field 53) is checked under the DUKPT keys the host derives from
    the BDK its BDK ID names (`bdks`: {4-byte BDK ID: BDK}) and answered under that KSN's
    MAC_VERIFICATION key; a KSN used before is refused (63). A request without one is checked
    under the static `mac_key` and `pin_key`, but only from the terminal IDs in
    `static_terminals` (True: any; the default, none): otherwise the public static key of
    one terminal would let anybody forge requests for every DUKPT terminal.
    """

    def __init__(self, db_path, cards=None, *, mac_key=keys.MAC_KEY, pin_key=keys.PIN_KEY,
                 bdks=None, static_terminals=(), host="127.0.0.1", port=0, clock=None,
                 on_log=None, max_frame=MAX_FRAME, idle_timeout_s=IDLE_TIMEOUT_S, tls=None):
        self.db_path = db_path
        self.mac_key = mac_key
        self.pin_key = pin_key
        self.bdks = dict(keys.BDKS if bdks is None else bdks)
        self.static_terminals = (static_terminals if static_terminals is True
                                 else frozenset(static_terminals))
        self.host = host
        self.port = port
        self.clock = clock or (lambda: datetime.datetime.now(datetime.timezone.utc))
        self.on_log = on_log
        self.max_frame = max_frame
        self.idle_timeout_s = idle_timeout_s
        self.tls = server_tls(tls)  # None: plain TCP
        self.ledger = Ledger(db_path, cards, clock=self.clock)
        self.log = []
        self.exchanges = []
        self.faults = []
        self.down = False  # host_down in force
        self.crashed = False  # crash_after_commit downtime in progress
        self._sock = None
        self._server = None
        self._serve_task = None
        self._restart_task = None
        self._conns = {}  # writer -> handler task
        self._started = False

    # -- lifecycle

    async def start(self):
        self._started = True
        if not self.down:
            self._listen()
        # Let the server task take the socket so that accept() is live when start() returns.
        await asyncio.sleep(0)
        if self._serve_task is not None:
            await asyncio.shield(self._serve_task)

    async def stop(self):
        self._started = False
        if self._restart_task is not None:
            self._restart_task.cancel()
        self._unlisten()
        tasks = self._drop_connections()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self.ledger.close()

    @property
    def listening(self):
        return self._sock is not None

    def _listen(self):
        if self._sock is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except (OSError, OverflowError):
            sock.close()  # not left for the garbage collector: the caller may try again
            raise
        # listen() now, synchronously: connections queue up even before asyncio serves them.
        sock.listen(64)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self._sock = sock
        self._serve_task = asyncio.get_running_loop().create_task(self._serve(sock))

    async def _serve(self, sock):
        # With TLS, asyncio runs the handshake before _handle: a terminal that refuses the
        # certificate never gets as far as a frame.
        self._server = await asyncio.start_server(self._handle, sock=sock, ssl=self.tls)

    def _unlisten(self):
        # Closing the listening socket makes the OS refuse new connections (ECONNREFUSED).
        if self._serve_task is not None and not self._serve_task.done():
            self._serve_task.cancel()
        self._serve_task = None
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _drop_connections(self):
        tasks = []
        for writer, task in list(self._conns.items()):
            writer.transport.abort()
            tasks.append(task)
        return tasks

    # -- faults

    def inject(self, step):
        """Apply a scenario step `{"host": KIND, ...}` (see the module docstring)."""
        fault = Fault(step)
        if fault.kind == "host_down":
            self.down = True
            self._unlisten()
        elif fault.kind == "host_up":
            self._host_up()
        elif fault.kind == "heal":
            self.faults.clear()
            self._host_up()
        else:
            self.faults.append(fault)
        self._note("control", "inject %s for=%s times=%s" % (
            fault, fault.target, "all" if fault.left is None else fault.left)
            if fault.kind in TARGETED_FAULTS else "control " + fault.kind)

    def _host_up(self):
        self.down = False
        if self._started and not self.crashed:
            self._listen()

    def _take_fault(self, target):
        for fault in self.faults:
            if fault.target == target:
                if fault.left is not None:
                    fault.left -= 1
                    if fault.left == 0:
                        self.faults.remove(fault)
                return fault
        return None

    def _crash(self, ms):
        """Die at once (every connection, the listener, the database handle), come back after
        `ms` on the same port and the same SQLite file."""
        self.crashed = True
        self._unlisten()
        self._drop_connections()
        self.ledger.close()
        self._restart_task = asyncio.get_running_loop().create_task(self._restart(ms))

    async def _restart(self, ms):
        await asyncio.sleep(ms / 1000)
        self.ledger = Ledger(self.db_path, clock=self.clock)
        self.crashed = False
        self._restart_task = None
        self._note("control", "restarted after crash (ledger reopened)")
        if not self.down and self._started:
            self._listen()

    # -- ledger

    def export_ledger(self):
        """The list that ledger.json holds (docs/simulated-board.md); works after stop() or
        during a crash too (reads the file)."""
        if self.ledger.db is not None:
            return self.ledger.export()
        ledger = Ledger(self.db_path, clock=self.clock)
        try:
            return ledger.export()
        finally:
            ledger.close()

    # -- connections

    async def _handle(self, reader, writer):
        self._conns[writer] = asyncio.current_task()
        peer = writer.get_extra_info("peername")
        try:
            while not self.crashed:
                frame = await self._read_frame(reader, peer)
                if frame is None or self.crashed:
                    break
                if not await self._exchange(frame, reader, writer):
                    break
        except asyncio.CancelledError:
            pass
        except (ConnectionError, OSError):
            pass
        except Exception as exc:  # never let one connection take the server down
            self._note("error", "connection %s: %r" % (peer, exc))
        finally:
            self._conns.pop(writer, None)
            writer.transport.abort() if self.crashed else writer.close()

    async def _read_frame(self, reader, peer):
        try:
            head = await asyncio.wait_for(reader.readexactly(2), self.idle_timeout_s)
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                self._note("garbage", "%s: 1 byte then close" % (peer,))
            return None
        except asyncio.TimeoutError:
            self._note("garbage", "%s: idle, closed" % (peer,))
            return None
        length = int.from_bytes(head, "big")
        if not 0 < length <= self.max_frame:
            self._note("garbage", "%s: frame length %d out of bounds, closed" % (peer, length))
            return None
        try:
            return await asyncio.wait_for(reader.readexactly(length), self.idle_timeout_s)
        except (asyncio.IncompleteReadError, asyncio.TimeoutError):
            self._note("garbage", "%s: truncated frame (%d announced), closed" % (peer, length))
            return None

    async def _wait_for_close(self, reader):
        try:
            while await asyncio.wait_for(reader.read(4096), self.idle_timeout_s):
                pass
        except (asyncio.TimeoutError, ConnectionError, OSError):
            pass

    async def _exchange(self, frame, reader, writer):
        """One request. Returns whether to keep reading on this connection."""
        try:
            mti, fields = spec.decode_frame(frame)
        except spec.DecodeError as exc:
            self._note("garbage", "%s, closed (%s)" % (exc, frame[:24].hex()))
            return False
        target = TARGETS.get(mti)
        if target is None:
            self._note("garbage", "unsupported MTI %s stan=%s, closed" % (mti, fields.get("11")))
            return False
        fault = self._take_fault(target)
        kind = fault.kind if fault else None
        info = {"mti": mti, "stan": fields.get("11"), "tid": fields.get("41"),
                "amount": fields.get("4"), "fault": str(fault) if fault else None}
        if kind == "disconnect":
            self._exchange_done(info, None, None, "closed after reading, not processed")
            return False
        if kind == "drop_request":
            self._exchange_done(info, None, None, "request ignored")
            await self._wait_for_close(reader)
            return False

        resp_mti, resp_fields, note = self._process(mti, frame)
        response = self.encode_response(resp_mti, resp_fields, corrupt_mac=(kind == "bad_mac"))
        rc = resp_fields.get("39")
        if kind == "drop_response":
            self._exchange_done(info, resp_mti, rc, note + "; committed, response dropped")
            await self._wait_for_close(reader)
            return False
        if kind == "crash_after_commit":
            self._exchange_done(info, resp_mti, rc, note + "; committed, host crashed")
            self._crash(fault.ms)
            return False
        if kind == "delay_response":
            self._exchange_done(info, resp_mti, rc, note + "; committed, response delayed")
            await asyncio.sleep(fault.ms / 1000)
            if self.crashed or writer.is_closing():
                return False
        else:
            self._exchange_done(info, resp_mti, rc, note)
        writer.write(spec.frame_with_length(response))
        await writer.drain()
        return True

    # -- decisions

    def _process(self, mti, frame):
        """Decide a request (committing to the ledger). Returns (mti, fields, note); the answer
        goes out MACed by `encode_response`. A refusal on security grounds (bad MAC, unknown
        BDK, replayed KSN, static key from a DUKPT terminal) answers 63, its note starting
        "security:"."""
        resp_mti = "%04d" % (int(mti) + 10)
        if mti == spec.REVERSAL_REPEAT:
            resp_mti = spec.REVERSAL_RESP
        try:
            _, req = spec.decode_frame(frame)
        except spec.DecodeError as exc:
            return resp_mti, self._echo({}, SYSTEM_MALFUNCTION), "undecodable: %s" % exc
        ksn = req.get("53")
        pin_key = self.pin_key
        if ksn is None:
            if not (self.static_terminals is True or req.get("41") in self.static_terminals):
                return (resp_mti, self._echo(req, SECURITY_VIOLATION),
                        "security: static MAC refused: terminal %s is not a static-key one"
                        % req.get("41"))
            mac_key = self.mac_key
        else:
            try:
                mac_key = keys.dukpt_key(ksn, dukpt.MAC_GENERATION, self.bdks)
            except keys.UnknownBDK:
                return (resp_mti, self._echo(req, SECURITY_VIOLATION),
                        "security: unknown BDK ID %s" % ksn[:4].hex().upper())
            except ValueError as exc:
                return (resp_mti, self._echo(req, SECURITY_VIOLATION),
                        "security: bad KSN %s (%s)" % (ksn.hex().upper(), exc))
        try:
            _, req = spec.decode_msg(frame, mac_key)
        except spec.MacError as exc:
            return (resp_mti, self._echo(exc.fields, SECURITY_VIOLATION),
                    "security: bad MAC: %s" % exc)
        if ksn is not None:
            # Only once the MAC verified: a forger must not burn the terminal's next KSNs.
            if not self.ledger.take_ksn(ksn[:8].hex().upper(), int.from_bytes(ksn[8:], "big")):
                return (resp_mti, self._echo(req, SECURITY_VIOLATION),
                        "security: replayed KSN %s refused" % ksn.hex().upper())
            if mti == spec.PURCHASE:
                pin_key = keys.dukpt_key(ksn, dukpt.PIN_ENCRYPTION, self.bdks)
        missing = [k for k in _REQUIRED[mti] if k not in req]
        if missing:
            return (resp_mti, self._echo(req, SYSTEM_MALFUNCTION),
                    "missing fields %s" % ",".join(missing))
        tid, batch, stan = req["41"], req["60"], req["11"]
        if mti == spec.PURCHASE:
            txn = self.ledger.authorise(
                tid=tid, batch=batch, stan=stan, pan=req["2"], expiry=req.get("14"),
                pin_block=req.get("52"), amount=int(req["4"]), pin_key=pin_key,
                processing_code=req["3"])
            resp = self._echo(req, txn["rc"])
            resp["37"] = txn["rrn"]
            if txn["rc"] == APPROVED:
                resp["38"] = txn["auth_code"]
            note = "card ..%s %s" % (req["2"][-4:], "recorded" if txn["recorded"]
                                     else "duplicate, not recorded")
            return resp_mti, resp, note
        if mti == spec.QUERY:
            txn = self.ledger.query(tid, batch, stan)
            if txn is None:
                return resp_mti, self._echo(req, NO_RECORD), "no record, tombstone left"
            # Amount and processing code of the record: a mismatch shows at the terminal.
            resp = self._echo(req, txn["rc"])
            resp["3"], resp["4"] = txn["processing_code"], "%012d" % txn["amount"]
            if txn["rc"] == APPROVED:
                resp["37"], resp["38"] = txn["rrn"], txn["auth_code"]
            return resp_mti, resp, "original %s (%s)" % (txn["rc"], txn["status"])
        if mti in (spec.REVERSAL, spec.REVERSAL_REPEAT):
            outcome = self.ledger.reverse(tid, batch, stan)
            return (resp_mti, self._echo(req, APPROVED),
                    "reversal (reason %s): %s" % (req.get("39"), outcome))
        txn = self.ledger.confirm_receipt(tid, batch, stan)  # advice
        if txn is None:
            return resp_mti, self._echo(req, NO_RECORD), "advice for unknown transaction"
        return resp_mti, self._echo(req, APPROVED), "receipt confirmed"

    def encode_response(self, resp_mti, resp_fields, corrupt_mac=False):
        """The answer's frame, MACed under the MAC_VERIFICATION key of the KSN it echoes (field
        53), or the static key when it echoes none or one the host cannot derive."""
        return spec.encode_msg(resp_mti, resp_fields, self.response_key(resp_fields),
                               corrupt_mac=corrupt_mac)

    def response_key(self, resp_fields):
        """The MAC key of an answer carrying `resp_fields` (see `encode_response`)."""
        ksn = resp_fields.get("53")
        if ksn is None:
            return self.mac_key
        try:
            return keys.dukpt_key(ksn, dukpt.MAC_VERIFICATION, self.bdks)
        except (KeyError, ValueError):
            return self.mac_key

    def _echo(self, req, rc):
        resp = {k: req[k] for k in ("3", "4", "7", "11", "41", "53") if k in req}
        if "7" not in resp:
            resp["7"] = self.clock().strftime("%m%d%H%M%S")
        resp["39"] = rc
        return resp

    # -- log

    def _exchange_done(self, info, resp_mti, rc, note):
        info = dict(info, resp_mti=resp_mti, rc=rc, note=note)
        amount = info["amount"]
        text = "%s>%s stan=%s tid=%s amount=%s rc=%s fault=%s %s" % (
            info["mti"], resp_mti or "----", info["stan"] or "-", info["tid"] or "-",
            int(amount) if amount and amount.isdigit() else "-", rc or "--",
            info["fault"] or "none", note)
        self._note("exchange", text, info)

    def _note(self, kind, text, info=None):
        now = self.clock()
        line = "%s %s" % (now.strftime("%H:%M:%S.") + "%03d" % (now.microsecond // 1000), text)
        self.log.append(line)
        self.exchanges.append(dict(info or {}, kind=kind, t=now.isoformat(), line=line))
        if self.on_log is not None:
            try:
                self.on_log(line)
            except Exception:
                pass
