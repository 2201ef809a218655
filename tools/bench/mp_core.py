"""Micro-benchmarks of the firmware's hot paths, run ON MicroPython (the unix port):

    micropython -X heapsize=200000 tools/bench/mp_core.py

Prints one line per operation: microseconds per call and heap bytes allocated per call (GC heap
growth with collection disabled, so garbage is counted too: what the call costs the allocator).
"""

import sys

sys.path.insert(0, "")

from binascii import unhexlify  # noqa: E402

from firmware import cmac, iso8583, pinblock  # noqa: E402
from firmware.journal import Journal  # noqa: E402
from firmware.settings import DEFAULTS  # noqa: E402
from tools.bench.mptime import measure  # noqa: E402

KEY = unhexlify(DEFAULTS["mac_key"])
PIN_KEY = unhexlify(DEFAULTS["pin_key"])
PAN = "4761739001010010"
FIELDS = {2: PAN, 3: "000000", 4: "000000001250", 7: "1126101500", 11: "000042",
          12: "101500", 13: "1126", 14: "2812", 22: "071", 25: "00", 41: "TERM0001",
          42: "000000000012345", 49: "978", 52: bytes(16), 60: "000001"}


def main():
    frame = iso8583.encode("0200", FIELDS, KEY)
    pin = bytearray(b"1234")
    measure("iso8583.encode 0200", lambda: iso8583.encode("0200", FIELDS, KEY), 50)
    measure("iso8583.decode 0200", lambda: iso8583.decode(frame, KEY), 50)
    measure("cmac 64 bytes", lambda: cmac.cmac(KEY, frame[:64]), 50)
    measure("pinblock.encipher", lambda: pinblock.encipher(PIN_KEY, pin, 4, PAN, bytes(8)), 50)
    path = "/tmp/pos_bench_journal.bin"
    journal = Journal(path)
    journal.rewrite([])
    record = {"r": "send", "stan": 42, "batch": 1, "amt": 1250, "l4": "0010",
              "t": [2026, 11, 26, 10, 15, 0], "f7": "1126101500"}
    measure("journal.append (file)", lambda: journal.append(record), 50)
    journal.close()


main()
