"""The line a scripted run ends with: what became of its transactions at the host, the receipts
the printer model printed and where the record is. Read from the record itself (ledger.json,
events.jsonl), so that it says what the files say."""

import json
from collections import Counter
from pathlib import Path

# The host's outcomes (tools/host/ledger.py), in the order they are told.
OUTCOMES = ("approved", "declined", "reversed")


def _plural(n, word):
    return "%d %s%s" % (n, word, "" if n == 1 else "s")


def summary(out_dir):
    """One line: `2 transactions (1 approved, 1 declined), 2 receipts printed (0 reprints);
    record in DIR (events.jsonl, ledger.json, receipts/)`."""
    out = Path(out_dir)
    try:
        ledger = json.loads((out / "ledger.json").read_text())
    except (OSError, ValueError):
        ledger = None
    receipts = reprints = 0
    try:
        with open(out / "events.jsonl") as f:
            for line in f:
                event = json.loads(line)
                if event.get("kind") == "receipt":
                    receipts += 1
                    reprints += "REPRINT" in event.get("text", "")
    except (OSError, ValueError):
        pass
    if ledger is None:
        told = "no ledger.json"
    else:
        counts = Counter(t.get("status") for t in ledger)
        outcomes = ["%d %s" % (counts[o], o) for o in OUTCOMES if counts[o]]
        outcomes += ["%d %s" % (n, o) for o, n in sorted(counts.items(), key=str)
                     if o not in OUTCOMES]
        told = _plural(len(ledger), "transaction") + (
            " (%s)" % ", ".join(outcomes) if outcomes else "")
    return "%s, %s printed (%s); record in %s (events.jsonl, ledger.json, receipts/)" % (
        told, _plural(receipts, "receipt"), _plural(reprints, "reprint"), out)
