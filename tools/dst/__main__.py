"""Deterministic simulation campaign.

    python -m tools.dst --seeds N [--start S] [--workers 2] [--show 3]
    python -m tools.dst --replay SEED [--purchases N] [--disable 1,2] [--screens]

A campaign prints a progress bar on stderr, then a summary table; for each failing seed the
violations, the shrunk failing run (fewest purchases, faults masked one by one while it still
fails) with its timeline of both sides (the first --show seeds), and the command that replays it.
Exit status 1 when any seed fails.
"""

import argparse
import sys

from . import runner


def _table(totals):
    rows = [
        ("seeds", totals["seeds"]),
        ("purchases started (card taps)", totals["purchases"]),
        ("transactions (requests journaled and sent)", totals["transactions"]),
        ("approved at the host", totals["approved"]),
    ]
    for kind in runner.FAULT_KINDS:
        rows.append(("fault: %s" % kind, totals[kind]))
    rows += [
        ("power cuts", totals["power_cuts"]),
        ("  of which torn journal writes", totals["torn"]),
        ("boots", totals["boots"]),
        ("journal compactions", totals["compactions"]),
        ("events handled", totals["events"]),
        ("violations", totals["violations"]),
        ("failing seeds", totals["failing_seeds"]),
        ("wall time (s)", "%.1f" % totals["seconds"]),
    ]
    width = max(len(r[0]) for r in rows)
    lines = ["| %s | %s |" % ("what".ljust(width), "count".rjust(10)),
             "|-%s-|-%s:|" % ("-" * width, "-" * 9)]
    for name, value in rows:
        lines.append("| %s | %s |" % (name.ljust(width), str(value).rjust(10)))
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tools.dst", description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=1000, help="how many seeds (default 1000)")
    ap.add_argument("--start", type=int, default=0, help="first seed (default 0)")
    ap.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    ap.add_argument("--show", type=int, default=3,
                    help="failing seeds whose shrunk timeline is printed (default 3)")
    ap.add_argument("--replay", type=int, metavar="SEED", help="print one seed's timeline")
    ap.add_argument("--purchases", type=int, help="with --replay: purchases (shrunk run)")
    ap.add_argument("--disable", default="", help="with --replay: fault ordinals masked, 1,2")
    ap.add_argument("--screens", action="store_true", help="with --replay: display lines too")
    args = ap.parse_args(argv)

    if args.replay is not None:
        disabled = [int(x) for x in args.disable.split(",") if x.strip()]
        w, text = runner.replay(args.replay, args.purchases, disabled, args.screens)
        print(text)
        return 1 if w.checker.violations else 0

    seeds = range(args.start, args.start + args.seeds)
    print("dst: seeds %d..%d on %d worker(s)" % (seeds[0], seeds[-1], args.workers),
          file=sys.stderr)
    totals, failures = runner.run_seeds(seeds, workers=args.workers)
    print(_table(totals))
    for n, seed in enumerate(sorted(failures)):
        print()
        print("FAILING seed %d:" % seed)
        for rule, message, t in failures[seed]:
            print("  %s at %d ms: %s" % (rule, t, message))
        if n < args.show:
            shrunk = runner.shrink(seed)
            if shrunk is None:
                print("  (does not fail when run alone: not deterministic?)")
                continue
            purchases, disabled, _ = shrunk
            w, text = runner.replay(seed, purchases, disabled)
            print("  shrunk: %d purchase(s), %d fault(s) and power cut(s) left, masked %s" % (
                purchases, runner.faults_injected(w), disabled or "none"))
            print("  replay: python -m tools.dst --replay %d --purchases %d%s" % (
                seed, purchases, " --disable " + ",".join(map(str, disabled))
                if disabled else ""))
            print()
            print(text)
        else:
            print("  replay: python -m tools.dst --replay %d" % seed)
    print()
    print("dst: %d seeds in %.1f s, %d violation(s) in %d seed(s)" % (
        totals["seeds"], totals["seconds"], totals["violations"], totals["failing_seeds"]))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
