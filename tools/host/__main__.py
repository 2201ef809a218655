"""Run the host simulator for a real terminal on the network, with a small control prompt.

    python -m tools.host --port 8583 --db host.db [--cards FILE] [--bind 0.0.0.0]
                         [--tls out/certs | --plain]

TLS by default, with the test CA's host certificate (python -m tools.host.tlsca; made on first
use): the board needs that CA's ca.der as its host_ca file and host_name "localhost", which the
certificate carries whatever address the board dials.

Commands on stdin (one per line): a fault with `key=value` options, e.g. `drop_response`,
`delay_response 4000`, `bad_mac for=query times=2`, `disconnect times=all`,
`crash_after_commit 3000`, `host_down`, `host_up`, `heal`; `ledger`, `totals [TID BATCH]`,
`faults`, `help`, `quit`.

Bad input (a port out of range or in use, a ledger file that cannot be opened or is not a
ledger) is refused in one line, exit status 2; a file that is not a ledger is left as it was.
"""

import argparse
import asyncio
import contextlib
import errno
import json
import os
import signal
import sys
import threading

from . import keys
from .ledger import LedgerFileError, load_cards
from .server import FAULT_KINDS, HostSimulator


class StartError(Exception):
    """The host simulator cannot start: the reason, in one line."""


def port_number(text):
    """--port as a number, 0 (any free port) to 65535."""
    if not text.isdigit() or int(text) > 65535:
        raise StartError("--port must be a number from 0 to 65535 (0: any free port), not %r"
                         % text)
    return int(text)


def listen_error(exc, bind, port):
    """Why the listening socket could not be had, in one line."""
    if exc.errno == errno.EADDRINUSE:
        return ("port %d is in use on %s: another host simulator or program holds it; stop it "
                "or give another port (make host PORT=...)" % (port, bind))
    if exc.errno == errno.EACCES:
        return "port %d needs privileges here (ports below 1024): give one from 1024 up" % port
    if exc.errno == errno.EADDRNOTAVAIL:
        return "cannot listen on %s: not an address of this machine (--bind)" % bind
    return "cannot listen on %s:%d: %s" % (bind, port, exc.strerror or exc)

HELP = """commands:
  drop_request | drop_response | disconnect | bad_mac   [for=query|reversal|advice] [times=N|all]
  delay_response MS | crash_after_commit MS             [for=...] [times=...]
  host_down | host_up | heal        refuse / accept connections; heal ends every fault
  ledger                            the transactions (as ledger.json)
  totals TID BATCH                  settlement totals of a batch
  faults                            the faults in force
  help | quit"""


def parse_command(line):
    """`bad_mac for=query times=2` -> {"host": "bad_mac", "for": "query", "times": 2}."""
    words = line.split()
    step = {"host": words[0]}
    for word in words[1:]:
        if "=" in word:
            key, value = word.split("=", 1)
        else:
            key, value = "ms", word
        if key not in ("for", "times", "ms"):
            raise ValueError("unknown option %r" % key)
        step[key] = int(value) if value.isdigit() else value
    return step


def _stdin_lines(loop, queue):
    # A daemon thread, not run_in_executor: asyncio.run() would wait at exit for a blocked read.
    for line in sys.stdin:
        loop.call_soon_threadsafe(queue.put_nowait, line)
    loop.call_soon_threadsafe(queue.put_nowait, None)


async def control(host, out=print):
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()
    threading.Thread(target=_stdin_lines, args=(loop, queue), daemon=True).start()
    while True:
        line = await queue.get()
        if line is None:  # stdin closed (e.g. run in the background): serve until interrupted
            await asyncio.Event().wait()
        line = line.strip()
        if not line:
            continue
        word = line.split()[0]
        try:
            if word in ("quit", "exit"):
                return
            elif word == "help":
                out(HELP)
            elif word == "ledger":
                out(json.dumps(host.export_ledger(), indent=1))
            elif word == "totals":
                args = line.split()[1:]
                tid, batch = args if len(args) == 2 else ("TERM0001", "000001")
                out(json.dumps(host.ledger.totals(tid, batch)))
            elif word == "faults":
                faults = ", ".join("%s for=%s left=%s" % (f, f.target, f.left or "all")
                                   for f in host.faults)
                out((faults or "no faults") + (", host down" if host.down else ""))
            elif word in FAULT_KINDS:
                host.inject(parse_command(line))
            else:
                out("unknown command %r; type help" % word)
        except (ValueError, KeyError) as exc:
            out("error: %s" % exc)


async def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.host", description=__doc__.split(
        "\n")[0])
    parser.add_argument("--port", default="8583", help="TCP port (default 8583; 0: any free "
                        "one)")
    parser.add_argument("--bind", default="0.0.0.0", help="address to listen on")
    parser.add_argument("--db", default="host.db", help="SQLite ledger file (kept across runs)")
    parser.add_argument("--cards", help="cards JSON (default: tools/host/cards.json); seeds a "
                        "fresh ledger file only")
    parser.add_argument("--static-terminal", action="append", default=[], metavar="TID",
                        help="a terminal ID whose static-key MACs (key_scheme static) are taken;"
                        " repeat for more (default: none, DUKPT only)")
    parser.add_argument("--tls", default="out/certs", metavar="DIR",
                        help="serve TLS with DIR/host.pem and DIR/host.key.pem, made with the "
                        "test CA if missing (default: out/certs; the board trusts DIR/ca.der)")
    parser.add_argument("--plain", action="store_true",
                        help="plain TCP, for a board set to host_tls plain (demo only)")
    args = parser.parse_args(argv)
    port = port_number(args.port)
    try:
        cards = load_cards(args.cards) if args.cards else None
    except OSError as e:
        raise StartError("%s: cannot read: %s" % (args.cards, e.strerror)) from None
    except ValueError as e:
        raise StartError("%s: not valid JSON: %s" % (args.cards, e)) from None
    tls = None
    if not args.plain:
        from .tlsca import ensure

        try:
            files, _ = ensure(args.tls)
        except OSError as e:
            raise StartError("cannot make the TLS certificate in %s: %s"
                             % (args.tls, e.strerror or e)) from None
        tls = (str(files["host.pem"]), str(files["host.key.pem"]))
    fresh = not os.path.exists(args.db)
    try:
        host = HostSimulator(args.db, cards, host=args.bind, port=port, on_log=print,
                             static_terminals=args.static_terminal, tls=tls)
    except LedgerFileError as e:
        raise StartError(str(e)) from None
    try:
        await host.start()
    except OSError as e:
        host.ledger.close()
        if fresh:
            # A ledger made by a start that failed would be seeded already: a later --cards
            # would be ignored.
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(args.db + suffix)
        raise StartError(listen_error(e, args.bind, port)) from None
    print("TLS with %s (CA %s)" % (tls[0], files["ca.der"]) if tls else
          "PLAIN TCP: card data and MACs travel unencrypted (demo only)", flush=True)
    print("host simulator on %s:%d, ledger %s (TEST KEYS: DUKPT BDK ID %s, static MAC %s...,"
          " PIN %s... for %s); type help"
          % (args.bind, host.port, args.db, keys.TEST_BDK_ID.hex().upper(),
             keys.MAC_KEY_HEX[:4], keys.PIN_KEY_HEX[:4],
             ", ".join(args.static_terminal) or "no terminal"), flush=True)
    control_task = asyncio.ensure_future(control(host))
    with contextlib.suppress(NotImplementedError, AttributeError):  # not on Windows
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, control_task.cancel)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await control_task
    finally:
        await host.stop()


def run(argv=None):
    """The command: its exit status."""
    try:
        asyncio.run(main(argv))
    except StartError as e:
        print("tools.host: %s" % e, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(run())
