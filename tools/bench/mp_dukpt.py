"""Micro-benchmarks of AES DUKPT (firmware/dukpt.py) beside one AES-CMAC, run ON MicroPython
(the unix port):

    micropython -X heapsize=200000 tools/bench/mp_dukpt.py

Prints one line per operation, as tools/bench/mp_core.py does: microseconds per call and heap
bytes allocated per call (GC heap growth with collection disabled, garbage included). A
working key costs one AES-ECB (and one key schedule, as cryptolib has no re-key) per one-bit of
the counter plus one: 1 + 8 for counter 0x00FF0000, 1 + 16 for 0xFFFF0000, the worst case.
The derivations run 20 times, not 50: with collection disabled, 50 worst cases (each about
5.5 kB of cipher objects on this 64-bit port) do not fit in the 200 kB heap.
"""

import sys

sys.path.insert(0, "")

from binascii import unhexlify  # noqa: E402

from firmware import cmac, dukpt  # noqa: E402
from tools.bench.mptime import measure as _measure  # noqa: E402

BDK = unhexlify("FEDCBA9876543210F1F1F1F1F1F1F1F1")
IKID = unhexlify("1234567890123456")
FRAME = bytes(range(64))


def measure(name, fn, n):
    _measure(name, fn, n, 36)


def main():
    initial = dukpt.initial_key(BDK, IKID)
    key = unhexlify("1273671EA26AC29AFA4D1084127652A1")
    pin = dukpt.PIN_ENCRYPTION
    for counter in ("00000001", "00FF0000", "FFFF0000"):
        terminal = dukpt.TerminalKeys(initial, IKID + unhexlify(counter))
        measure("dukpt.working_key counter %s" % counter,
                lambda t=terminal: t.working_key(pin), 20)
    terminal = dukpt.TerminalKeys(initial, IKID + unhexlify("00FF0000"))
    tk = terminal.transaction_key()
    measure("dukpt.derive_working_key (1 AES)", lambda: terminal.derive_working_key(tk, pin), 50)
    ksn = IKID + unhexlify("00FF0000")
    measure("dukpt.derive (host) counter 00FF0000", lambda: dukpt.derive(BDK, ksn, pin), 20)
    measure("dukpt.next_counter", lambda: dukpt.next_counter(0x00FF0000), 50)
    measure("cmac 64 bytes", lambda: cmac.cmac(key, FRAME), 50)
    measure("dukpt.kcv (AES-CMAC)", lambda: dukpt.kcv(key), 50)


main()
