"""python -m tools.sim [--scenario FILE --out DIR [--force]] [--heapsize BYTES]
                     [--code romfs|mpy] [--micropython PATH]

With a scenario: run it (docs/simulated-board.md, "Scripted"); exit 0 when it ran to its end,
1 when a step failed (a wait not reached, a card never read), 2 when it cannot be run. It ends
with a line saying what became of the transactions, the receipts printed and where the record
is. A DIR that holds anything already is refused (its record would be replaced) unless --force.
Without one: the interactive simulator (needs a terminal).
"""

import argparse
import asyncio
import os
import sys
from pathlib import Path

from tools.sim.session import CODES, DEFAULT_HEAPSIZE, MICROPYTHON


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.sim",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", help="scenario JSON file (docs/simulated-board.md)")
    parser.add_argument("--out", help="directory for events.jsonl, ledger.json, receipts/")
    parser.add_argument("--force", action="store_true",
                        help="with --scenario: replace the record a non-empty --out holds")
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
    # The board process runs in the record's folder: a path relative to here must not break.
    args.micropython = str(Path(args.micropython).resolve())
    if args.scenario:
        from tools.sim import scenario as scenarios
        from tools.sim.summary import summary

        out = args.out or "out/sim"
        try:
            scenario = scenarios.load(args.scenario)
            refused = out_refused(out, args.force)
            if refused:
                raise scenarios.ScenarioError(refused)
            failure = asyncio.run(scenarios.run(scenario, out, args.heapsize, args.main,
                                                code=args.code, micropython=args.micropython))
        except scenarios.ScenarioError as exc:
            print("tools.sim: %s" % exc, file=sys.stderr)
            return 2
        print("tools.sim: %s" % summary(out), flush=True)
        if failure:
            print("tools.sim: %s" % failure, file=sys.stderr)
            return 1
        return 0
    from tools.sim.ui import run_ui

    return run_ui(out=args.out or "out/sim", heapsize=args.heapsize, main=args.main,
                  code=args.code, micropython=args.micropython)


def out_refused(out, force=False):
    """Why a scripted run must not write into `out`, or None: a run replaces the record there
    (events.jsonl, ledger.json, receipts/, the flash image), which takes `force`."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        return "%s is a file, not a folder for the record: give another OUT" % out
    if not force and path.is_dir() and any(path.iterdir()):
        return ("%s holds something already, which this run would replace: give another OUT, "
                "or --force (make sim FORCE=1)" % out)
    return None


if __name__ == "__main__":
    sys.exit(main())
