"""python -m tools.sim [--scenario FILE --out DIR] [--heapsize BYTES] [--code romfs|mpy]
                     [--micropython PATH]

With a scenario: run it (contracts.md, "Scripted simulation"); exit 0 when it ran to its end,
1 when a step failed (a wait not reached, a card never read), 2 when it cannot be run.
Without one: the interactive simulator (needs a terminal).
"""

import argparse
import os
import sys

from tools.sim.session import CODES, DEFAULT_HEAPSIZE, MICROPYTHON


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.sim",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", help="scenario JSON file (contracts.md)")
    parser.add_argument("--out", help="directory for events.jsonl, ledger.json, receipts/")
    heapsize = os.environ.get("POS_SIM_HEAPSIZE")
    parser.add_argument("--heapsize", type=int, default=int(heapsize) if heapsize else None,
                        help="MicroPython heap in bytes (default %d, plus the ROMFS image's "
                        "size with --code romfs)" % DEFAULT_HEAPSIZE)
    parser.add_argument("--code", choices=CODES, default=os.environ.get("POS_SIM_CODE", "romfs"),
                        help="the firmware's code as on a board: in a ROMFS image at /rom "
                        "(default) or as .mpy files on the filesystem")
    parser.add_argument("--micropython", default=str(MICROPYTHON),
                        help="the MicroPython unix port to run (default %(default)s); e.g. a "
                        "32-bit build, to measure the heap as an ESP32 has it")
    parser.add_argument("--source", action="store_const", const="main.py", dest="main",
                        help="run the firmware from source instead of the .mpy image")
    parser.add_argument("--main", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.scenario:
        from tools.sim.scenario import ScenarioError, run_file

        out = args.out or "out/sim"
        try:
            failure = run_file(args.scenario, out, args.heapsize, args.main, code=args.code,
                               micropython=args.micropython)
        except ScenarioError as exc:
            print("tools.sim: %s" % exc, file=sys.stderr)
            return 2
        if failure:
            print("tools.sim: %s" % failure, file=sys.stderr)
            return 1
        return 0
    from tools.sim.ui import run_ui

    return run_ui(out=args.out or "out/sim", heapsize=args.heapsize, main=args.main,
                  code=args.code, micropython=args.micropython)


if __name__ == "__main__":
    sys.exit(main())
