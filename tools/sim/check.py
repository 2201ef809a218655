"""Check a simulation record (events.jsonl, ledger.json) against the safety contract.

    python -m tools.sim.check DIR        (or: python tools/sim/check.py DIR)

Verifies, on the record alone:
- every approval receipt belongs to a transaction the host holds as approved (S1, S3);
- every approved transaction has each receipt copy printed at least once, and at most once
  without REPRINT (S2; further copies are reprints);
- receipt_confirmed is true for every approved transaction;
- no full card number (13 to 19 digits passing the Luhn check) in any receipt or event (S7;
  the wire frames' `hex` is the one place a PAN belongs).
Prints one line per violation; exit status 1 when there is any.
"""

import json
import re
import sys
from pathlib import Path

_RRN = re.compile(r"^RRN\s+(\S+)\s*$", re.M)
_STAN = re.compile(r"TRACE NO\s+(\d{6})")
_COPY = re.compile(r"^\s*([A-Z]+ COPY)\s*$", re.M)
_DIGITS = re.compile(r"\d{13,19}")


def luhn_ok(digits):
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            if k != "hex":
                yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def load(out_dir):
    out = Path(out_dir)
    events = [json.loads(line) for line in open(out / "events.jsonl") if line.strip()]
    ledger = json.load(open(out / "ledger.json"))
    return events, ledger


def receipt_copies(events):
    for e in events:
        if e["kind"] == "config" and "receipt_copies" in e.get("settings", {}):
            return e["settings"]["receipt_copies"]
    try:
        from firmware.settings import DEFAULTS

        return DEFAULTS["receipt_copies"]
    except ImportError:
        return 1


def check(out_dir):
    """List of violations (strings); empty when the record is clean."""
    events, ledger = load(out_dir)
    violations = []
    by_rrn = {t.get("rrn"): t for t in ledger if t.get("rrn")}
    by_stan = {}
    for t in ledger:
        by_stan.setdefault(t.get("stan"), []).append(t)
    copies = receipt_copies(events)
    printed = {}  # id(txn) -> {copy label: [reprint flags]}
    for e in events:
        for text in _strings(e):
            for run in _DIGITS.findall(text):
                if luhn_ok(run):
                    violations.append("S7: full card number ...%s in a %s event at %d ms"
                                      % (run[-4:], e["kind"], e["t_ms"]))
        if e["kind"] != "receipt":
            continue
        text = e["text"]
        if "APPROVED" not in text:
            continue
        rrn = _RRN.search(text)
        stan = _STAN.search(text)
        txn = by_rrn.get(rrn.group(1)) if rrn else None
        if txn is None and stan and len(by_stan.get(stan.group(1), [])) == 1:
            txn = by_stan[stan.group(1)][0]
        where = "receipt at %d ms (stan %s)" % (e["t_ms"], stan.group(1) if stan else "?")
        if txn is None:
            violations.append("S1: %s matches no host transaction" % where)
            continue
        if txn.get("status") != "approved":
            violations.append("S1/S3: %s printed APPROVED for a %s transaction"
                              % (where, txn.get("status")))
            continue
        label = _COPY.search(text)
        label = label.group(1) if label else "COPY"
        printed.setdefault(id(txn), {}).setdefault(label, []).append("REPRINT" in text)
    for t in ledger:
        if t.get("status") != "approved":
            continue
        name = "stan %s rrn %s" % (t.get("stan"), t.get("rrn"))
        got = printed.get(id(t), {})
        if not t.get("receipt_confirmed"):
            violations.append("S2: %s approved but receipt_confirmed is false" % name)
        if not got:
            violations.append("S2: %s approved but no receipt printed" % name)
            continue
        if len(got) < copies:
            violations.append("S2: %s approved, %d of %d receipt copies printed"
                              % (name, len(got), copies))
        for label, flags in got.items():
            unmarked = flags.count(False)
            if unmarked > 1:
                violations.append("S2: %s %s printed %d times without REPRINT"
                                  % (name, label, unmarked))
    return violations


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m tools.sim.check DIR", file=sys.stderr)
        return 2
    try:
        violations = check(argv[0])
    except (OSError, ValueError) as exc:
        print("check: cannot read the record in %s: %s" % (argv[0], exc), file=sys.stderr)
        return 2
    for v in violations:
        print(v)
    if violations:
        return 1
    events, ledger = load(argv[0])
    print("ok: %d transactions, %d receipts, no violations"
          % (len(ledger), sum(1 for e in events if e["kind"] == "receipt")))
    return 0


if __name__ == "__main__":
    if __package__ in (None, ""):
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    sys.exit(main())
