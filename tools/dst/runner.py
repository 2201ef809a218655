"""Run seeds (in parallel), shrink a failing one, render a timeline."""

import multiprocessing
import sys
import time

from .world import FAULT_KINDS, World

SUMMARY_KEYS = ("purchases", "transactions", "approved") + FAULT_KINDS + (
    "power_cuts", "torn", "boots", "compactions", "events")


def run_seed(seed, purchases=None, disabled=(), trace=False):
    return World(seed, purchases=purchases, disabled=disabled, trace=trace).run()


def _job(seed):
    w = run_seed(seed)
    return seed, {k: w.stats[k] for k in SUMMARY_KEYS}, list(w.checker.violations)


def run_seeds(seeds, workers=2, progress=True, out=sys.stderr):
    """Every seed once. Returns (totals dict, {seed: violations})."""
    seeds = list(seeds)
    totals = {k: 0 for k in SUMMARY_KEYS}
    failures = {}
    start = time.monotonic()
    done = 0

    def take(result):
        nonlocal done
        seed, stats, violations = result
        for k in SUMMARY_KEYS:
            totals[k] += stats[k]
        if violations:
            failures[seed] = violations
        done += 1
        if progress and (done % 50 == 0 or done == len(seeds)):
            _bar(out, done, len(seeds), time.monotonic() - start, len(failures))

    if workers > 1 and len(seeds) > 1:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(workers) as pool:
            for result in pool.imap_unordered(_job, seeds, chunksize=25):
                take(result)
    else:
        for seed in seeds:
            take(_job(seed))
    if progress:
        out.write("\n")
    totals["seeds"] = len(seeds)
    totals["violations"] = sum(len(v) for v in failures.values())
    totals["failing_seeds"] = len(failures)
    totals["seconds"] = time.monotonic() - start
    return totals, failures


def _bar(out, done, total, elapsed, failing):
    width = 40
    filled = width * done // total
    rate = done / elapsed if elapsed else 0
    out.write("\r[%s%s] %d/%d seeds  %.1f s  %.0f seeds/s  %d failing" % (
        "#" * filled, "." * (width - filled), done, total, elapsed, rate, failing))
    out.flush()


def fails(seed, purchases=None, disabled=()):
    w = run_seed(seed, purchases, disabled)
    return w if w.checker.violations else None


def shrink(seed, budget=400):
    """Smallest purchase count and fault schedule (faults masked one by one) that still fail.

    Returns (purchases, disabled ordinals, failing world) or None if the seed passes.
    """
    w = fails(seed)
    if w is None:
        return None
    runs = 1
    total = w.purchases_total
    purchases = total
    for n in range(1, total):
        runs += 1
        found = fails(seed, n)
        if found is not None:
            purchases, w = n, found
            break
    disabled = set()
    ordinal = 1
    while ordinal <= w.fault_no and runs < budget:
        trial = disabled | {ordinal}
        runs += 1
        found = fails(seed, purchases, trial)
        if found is not None:
            disabled, w = trial, found
        ordinal += 1
    return purchases, sorted(disabled), w


def faults_injected(w):
    return sum(w.stats[k] for k in FAULT_KINDS) + w.stats["power_cuts"]


def timeline(w, screens=False):
    lines = [line for line in w.lines if screens or " SHOW " not in line]
    return "\n".join(lines)


def ledger_table(w):
    rows = w.host.ledger.export() if w.host.ledger.db is not None else []
    out = ["host ledger (tid, batch, stan, amount, status, rc, receipt_confirmed):"]
    for r in rows:
        out.append("  %s %s %s %8d %-8s %s %s" % (r["tid"], r["batch"], r["stan"], r["amount"],
                                                 r["status"], r["rc"], r["receipt_confirmed"]))
    return "\n".join(out)


def replay(seed, purchases=None, disabled=(), screens=False):
    """The readable record of one run: world shape, timeline of both sides, verdict."""
    w = World(seed, purchases=purchases, disabled=disabled, trace=True)
    # Keep the ledger open for the report: run() closes it, so read the ledger first.
    saved_close = w.host.ledger.close
    w.host.ledger.close = lambda: None
    w.run()
    head = ("seed %d: %d purchases, fault intensity %.2f, power cut after a journal write %.2f,"
            " timed cuts every ~%d ms, paper-out %.2f, %d receipt copies%s" % (
                seed, w.purchases_total, w.intensity, w.cut_rate, w.cut_every_ms, w.paper_rate,
                w.settings["receipt_copies"],
                ", faults masked %s" % sorted(disabled) if disabled else ""))
    stats = ", ".join("%s %d" % (k, w.stats[k]) for k in SUMMARY_KEYS if w.stats[k])
    verdict = ["violations:"] + ["  %s at %d ms: %s" % (r, t, m)
                                 for r, m, t in w.checker.violations] \
        if w.checker.violations else ["no violation"]
    text = "\n".join([head, stats, "", timeline(w, screens), "", ledger_table(w), ""] + verdict)
    saved_close()
    return w, text
