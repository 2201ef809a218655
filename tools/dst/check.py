"""The safety contract S1-S6, checked as a world runs (tools/dst/world.py) and at quiescence.

As it runs:
- S1 when a receipt starts printing: an APPROVED receipt's transaction (batch, STAN) has its
  approval on the simulated flash, and the host holds it approved, not reversed, same amount;
- S3 when a receipt starts printing: the terminal has not decided (journaled) its reversal;
- S4 when a request is journaled: its STAN is new in the batch, and the purchase being keyed
  has no other request (one charge per payment);
- S5 when a request is journaled: nothing owed (in flight, reversal, receipt) is on flash for
  another transaction: obligations come before a new financial transaction;
- S6 after every step: the terminal's batch totals never exceed the host's.
At quiescence (faults healed, paper in, power on, nothing pending):
- S2 every transaction the host holds approved and not reversed has each receipt copy printed
  whole, and at most once without REPRINT;
- S3 nothing the host holds as declined or reversed has an APPROVED receipt;
- S4 each card's balance moved by exactly its approved, not reversed purchases;
- S5 the terminal holds nothing open, and the host has receipt_confirmed for every approval;
- S6 the terminal's batch totals equal the host's.
A violation stops the run (world.Stop) with the rule, a message and the time.
"""

import re

_STAN = re.compile(r"TRACE NO\s+(\d{6})")
_BATCH = re.compile(r"BATCH NO\s+(\d{6})")
_AMOUNT = re.compile(r"AMOUNT\s+[A-Z]{3} (\d+)\.(\d\d)")

_OPEN = ("sending", "rev")


class Checker:
    def __init__(self, world):
        self.world = world
        self.violations = []  # (rule, message, time ms)
        self.durable_ok = set()  # (batch, stan) with an approval that reached flash
        self.rev_decided = set()  # (batch, stan) whose reversal decision reached flash
        self.sent = {}  # (batch, stan) -> purchase number whose request it is
        self.by_purchase = {}  # purchase number -> (batch, stan)
        self.state = {}  # (batch, stan) -> flash state: sending, ok, rev, done
        self.printed = {}  # (batch, stan) -> copies marked printed on flash
        self.papers = []  # every receipt that began printing
        self.host_approved = 0

    def violation(self, rule, message, stop=True):
        from .world import Stop

        w = self.world
        self.violations.append((rule, message, w.now))
        w.log("CHECK", "VIOLATION %s: %s" % (rule, message))
        if stop:
            raise Stop()

    # ---- flash ------------------------------------------------------------------------------

    def _key(self, rec):
        term = self.world.term
        return (term.batch if term is not None else 1, rec["stan"])

    def before_journal(self, rec):
        r = rec["r"]
        if r != "send":
            return
        key = (rec["batch"], rec["stan"])
        if key in self.sent:
            self.violation("S4", "STAN %06d journaled twice in batch %d" % (rec["stan"],
                                                                           rec["batch"]))
        purchase = self.world.stats["purchases"]
        if purchase in self.by_purchase:
            self.violation("S4", "purchase #%d sent a second request (STAN %06d after %06d)" % (
                purchase, rec["stan"], self.by_purchase[purchase][1]))
        copies = self.world.settings["receipt_copies"]
        for other, state in self.state.items():
            if state in _OPEN or state == "ok" and self.printed.get(other, 0) < copies:
                self.violation("S5", "new purchase STAN %06d started while STAN %06d is %s on"
                               " flash" % (rec["stan"], other[1], state))

    def journaled(self, rec):
        r = rec["r"]
        if r in ("batch", "ksn"):
            return
        key = self._key(rec)
        if r == "send":
            key = (rec["batch"], rec["stan"])
            purchase = self.world.stats["purchases"]
            self.sent[key] = purchase
            self.by_purchase[purchase] = key
            self.state[key] = "sending"
            self.world.stats["transactions"] += 1
        elif r == "ok":
            self.durable_ok.add(key)
            self.state[key] = "ok"
            txn = self.world.host.ledger.find(self.world.settings["terminal_id"],
                                              "%06d" % key[0], "%06d" % key[1])
            if txn is None or txn["status"] != "approved":
                self.violation("S1", "approval of STAN %06d journaled, host holds %s" % (
                    key[1], txn and txn["status"]))
        elif r == "pr":
            self.printed[key] = rec["copy"]
        elif r == "rev":
            self.rev_decided.add(key)
            self.state[key] = "rev"
        elif r in ("dec", "unsent", "revd", "conf"):
            self.state[key] = "done"
            self._host_agrees(r, key)

    def _host_agrees(self, r, key):
        """The terminal closed a transaction: the host's books must say the same."""
        w = self.world
        txn = w.host.ledger.find(w.settings["terminal_id"], "%06d" % key[0], "%06d" % key[1])
        status = txn["status"] if txn else "absent"
        if r in ("dec", "unsent") and status == "approved":
            self.violation("S2", "terminal closed STAN %06d as not charged (%s), the host holds"
                           " it approved: charged without a receipt" % (key[1], r))
        elif r == "revd" and status == "approved":
            self.violation("S2", "terminal took the reversal of STAN %06d as done, the host"
                           " still holds it approved: charged without a receipt" % key[1])
        elif r == "conf" and (txn is None or not txn["receipt_confirmed"]):
            self.violation("S5", "terminal took the receipt confirmation of STAN %06d as done,"
                           " the host never recorded it (%s)" % (key[1], status))

    def torn(self, rec):
        """The last record never made it: forget what it taught us."""
        r = rec["r"]
        if r == "ksn":
            return
        key = (rec["batch"], rec["stan"]) if r == "send" else self._key(rec)
        if r == "send":
            purchase = self.sent.pop(key, None)
            self.by_purchase.pop(purchase, None)
            self.world.stats["transactions"] -= 1
            self.state.pop(key, None)
        elif r == "ok":
            self.durable_ok.discard(key)
            self.state[key] = "sending"
        elif r == "rev":
            self.rev_decided.discard(key)
            self.state[key] = "sending"
        elif r == "pr":
            self.printed[key] = rec["copy"] - 1
        elif r in ("dec", "unsent"):
            self.state[key] = "sending"
        elif r == "revd":
            self.state[key] = "rev"
        elif r == "conf":
            self.state[key] = "ok"

    def compacted(self):
        pass  # the snapshot keeps open transactions; the history above stays as it is

    # ---- printer -----------------------------------------------------------------------------

    def printing(self, job, text):
        w = self.world
        stan = _STAN.search(text)
        batch = _BATCH.search(text)
        amount = _AMOUNT.search(text)
        paper = {"job": job, "stan": None, "t": w.now, "whole": False, "reprint": "REPRINT" in
                 text, "approved": "APPROVED" in text, "epoch": w.epoch}
        if not (stan and batch and amount):
            paper["what"] = "unparsed receipt"
            self.papers.append(paper)
            self.violation("S1", "receipt without trace number, batch or amount: %r" % text[:80])
        key = (int(batch.group(1)), int(stan.group(1)))
        amt = int(amount.group(1)) * 100 + int(amount.group(2))
        paper.update(stan=key[1], batch=key[0], amount=amt, copy=job,
                     what="STAN %06d copy %s amount %d%s" % (key[1], job, amt,
                                                            " REPRINT" if paper["reprint"]
                                                            else ""))
        self.papers.append(paper)
        w.log("PRN", "starts printing %s" % paper["what"])
        if not paper["approved"]:
            return paper
        if key not in self.durable_ok:
            self.violation("S1", "receipt for STAN %06d printed before its approval was on"
                           " flash" % key[1])
        if key in self.rev_decided:
            self.violation("S3", "APPROVED receipt for STAN %06d printed after its reversal was"
                           " decided" % key[1])
        txn = w.host.ledger.find(w.settings["terminal_id"], "%06d" % key[0], "%06d" % key[1])
        if txn is None or txn["status"] != "approved":
            self.violation("S1" if txn is None or txn["status"] == "declined" else "S3",
                           "APPROVED receipt for STAN %06d, host holds %s" % (
                               key[1], txn and txn["status"]))
        if txn["amount"] != amt:
            self.violation("S1", "receipt for STAN %06d says %d, host approved %d" % (
                key[1], amt, txn["amount"]))
        return paper

    # ---- host --------------------------------------------------------------------------------

    def host_decided(self, mti, fields):
        pass

    def _host_totals(self):
        w = self.world
        term = w.term
        batch = term.batch if term is not None else 1
        t = w.host.ledger.totals(w.settings["terminal_id"], "%06d" % batch)
        return t["count"], t["amount"]

    # ---- every step ----------------------------------------------------------------------------

    def step(self, event):
        term = self.world.term
        if term is None:
            return
        count, amount = term.totals()
        if count or amount:
            hc, ha = self._host_totals()
            if count > hc or amount > ha:
                self.violation("S6", "terminal totals %d / %d exceed the host's %d / %d" % (
                    count, amount, hc, ha))

    # ---- quiescence ----------------------------------------------------------------------------

    def quiescence(self):
        w = self.world
        term = w.term
        ledger = w.host.ledger
        tid = w.settings["terminal_id"]
        copies = w.settings["receipt_copies"]
        rows = [r for r in ledger.db.execute(
            "SELECT * FROM transactions WHERE tid = ? ORDER BY id", (tid,)).fetchall()]
        whole = {}
        fresh = {}
        for p in self.papers:
            if p["stan"] is None or not p["approved"]:
                continue
            key = (p["batch"], p["stan"])
            if p["whole"]:
                whole.setdefault(key, set()).add(p["copy"])
                if not p["reprint"]:
                    fresh[(key, p["copy"])] = fresh.get((key, p["copy"]), 0) + 1
        status = {}
        for r in rows:
            key = (int(r["batch"]), int(r["stan"]))
            status[key] = r
            if r["status"] == "approved":
                w.stats["approved"] += 1
                missing = [c for c in range(1, copies + 1) if c not in whole.get(key, ())]
                if missing:
                    self.violation("S2", "host approved STAN %06d (amount %d) but copies %s"
                                   " were never printed whole" % (key[1], r["amount"], missing),
                                   stop=False)
                if not r["receipt_confirmed"]:
                    self.violation("S5", "host approved STAN %06d but never got its receipt"
                                   " confirmation" % key[1], stop=False)
                if key not in self.sent:
                    self.violation("S4", "host charged STAN %06d that the terminal never"
                                   " journaled" % key[1], stop=False)
        for (key, copy), n in fresh.items():
            if n > 1:
                self.violation("S2", "copy %d of STAN %06d printed %d times without REPRINT" % (
                    copy, key[1], n), stop=False)
        for p in self.papers:
            if p["stan"] is None or not p["approved"]:
                continue
            r = status.get((p["batch"], p["stan"]))
            if r is None or r["status"] != "approved":
                self.violation("S3", "APPROVED receipt for STAN %06d, host holds it %s" % (
                    p["stan"], r["status"] if r else "absent"), stop=False)
        for pan, initial in w.card_balance.items():
            card = ledger.card(pan)
            charged = ledger.db.execute(
                "SELECT COALESCE(SUM(amount), 0) FROM transactions WHERE card_id = ? AND"
                " status = 'approved'", (card["id"],)).fetchone()[0]
            if initial - card["balance"] != charged:
                self.violation("S4", "card ..%s: balance moved by %d, approved purchases %d" % (
                    pan[-4:], initial - card["balance"], charged), stop=False)
        if term.order:
            self.violation("S5", "open transactions at quiescence: %s" % w.pending(),
                           stop=False)
        mine = term.totals()
        host = self._host_totals()
        if mine != host:
            self.violation("S6", "batch totals: terminal %d / %d, host %d / %d" % (
                mine + host), stop=False)
