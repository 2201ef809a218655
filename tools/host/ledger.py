"""The acquirer's books: cards and accounts, transactions, "no record" tombstones (SQLite, WAL).

One SQLite file. WAL journal with `synchronous=FULL`: every decision is committed before the
response leaves, so a host that crashes after the commit (fault `crash_after_commit`) finds it
again when it reopens the file. The full PAN lives only in the `cards` table; transactions keep
`pan_last4` and a reference to the card.

Host side rules (docs/protocol.md): a duplicate (TID, batch, STAN) is declined 94; a query or a
reversal that finds no record leaves a tombstone so that a late original is declined 94;
reversals are idempotent; an advice sets `receipt_confirmed` once. Every DUKPT KSN a terminal
used (table `ksns`) is kept, so a request that comes again under it is refused.
"""

import datetime
import json
import os
import secrets
import sqlite3

from . import pinblock

DEFAULT_CARDS_FILE = os.path.join(os.path.dirname(__file__), "cards.json")
# The first 16 bytes of every SQLite 3 database file (sqlite.org/fileformat.html).
SQLITE_HEADER = b"SQLite format 3\x00"
PIN_TRIES = 3  # the third wrong PIN in a row locks the card (75)

# Response codes (docs/protocol.md).
APPROVED = "00"
DO_NOT_HONOUR = "05"
INVALID_CARD = "14"
NO_RECORD = "25"
INSUFFICIENT_FUNDS = "51"
EXPIRED_CARD = "54"
INCORRECT_PIN = "55"
EXCEEDS_LIMIT = "61"
SECURITY_VIOLATION = "63"
PIN_TRIES_EXCEEDED = "75"
DUPLICATE = "94"
SYSTEM_MALFUNCTION = "96"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cards (
    id INTEGER PRIMARY KEY,
    pan TEXT NOT NULL UNIQUE,
    expiry TEXT NOT NULL,            -- YYMM
    pin TEXT NOT NULL,
    balance INTEGER NOT NULL,        -- minor units
    status TEXT NOT NULL CHECK (status IN ('active', 'blocked')),
    txn_limit INTEGER,               -- per-transaction limit, minor units; NULL: none
    wrong_pin_tries INTEGER NOT NULL DEFAULT 0,
    locked INTEGER NOT NULL DEFAULT 0,
    label TEXT
);
CREATE TABLE IF NOT EXISTS transactions (
    id INTEGER PRIMARY KEY,
    tid TEXT NOT NULL,
    batch TEXT NOT NULL,
    stan TEXT NOT NULL,
    rrn TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    processing_code TEXT NOT NULL,
    amount INTEGER NOT NULL,
    pan_last4 TEXT NOT NULL,
    card_id INTEGER REFERENCES cards(id),
    status TEXT NOT NULL CHECK (status IN ('approved', 'declined', 'reversed')),
    rc TEXT NOT NULL,
    auth_code TEXT,
    receipt_confirmed INTEGER NOT NULL DEFAULT 0,
    created TEXT NOT NULL,
    reversed_at TEXT,
    UNIQUE (tid, batch, stan)
);
CREATE TABLE IF NOT EXISTS absent (
    tid TEXT NOT NULL,
    batch TEXT NOT NULL,
    stan TEXT NOT NULL,
    reason TEXT NOT NULL,            -- 'query' or 'reversal': who found no record
    created TEXT NOT NULL,
    PRIMARY KEY (tid, batch, stan)
);
CREATE TABLE IF NOT EXISTS ksns (
    device TEXT NOT NULL,            -- DUKPT initial key ID (hex): the terminal's key
    counter INTEGER NOT NULL,        -- transaction counter of a request whose MAC verified
    created TEXT NOT NULL,
    PRIMARY KEY (device, counter)
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


class LedgerFileError(ValueError):
    """The ledger file cannot be used (the reason in one line); the file was left as it was."""


def check_file(path):
    """Refuses, before SQLite touches it, a path that is a folder or unreadable, and a file that
    is not an SQLite database or is another program's database: SQLite would take it over (our
    tables added, WAL switched on)."""
    if path == ":memory:":
        return
    try:
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        folder = os.path.dirname(path) or "."
        if not os.path.isdir(folder):
            raise LedgerFileError("%s: cannot make the ledger: no folder %s" % (path, folder))
        return
    except IsADirectoryError:
        raise LedgerFileError("%s: a folder, not a ledger file" % path) from None
    except OSError as e:
        raise LedgerFileError("%s: cannot open: %s" % (path, e.strerror)) from None
    if not head:
        return  # an empty file: SQLite makes a new database in it
    if head != SQLITE_HEADER:
        raise LedgerFileError("%s: not an SQLite database (left as it is): give another file"
                              % path)
    try:
        db = sqlite3.connect("file:%s?mode=ro" % _uri_path(path), uri=True)
        try:
            tables = {row[0] for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            db.close()
    except sqlite3.Error as e:
        raise LedgerFileError("%s: not a usable SQLite database (%s): give another file"
                              % (path, e)) from None
    if tables and "cards" not in tables:
        raise LedgerFileError("%s: another program's database (no cards table; left as it is): "
                              "give another file" % path)


def _uri_path(path):
    from urllib.request import pathname2url

    return pathname2url(os.path.abspath(path))


def load_cards(path=DEFAULT_CARDS_FILE):
    with open(path) as f:
        return json.load(f)


def _utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


class Ledger:
    """The host's books in the SQLite file `path`.

    `cards`: list of dicts (pan, expiry YYMM, pin, balance, status, optional limit and label)
    used to seed a fresh file; None: the default test cards (`cards.json`). A file that already
    has cards is never reseeded (a restart keeps the balances). `clock()` returns an aware UTC
    datetime (tests move it).
    """

    def __init__(self, path, cards=None, clock=_utcnow):
        self.path = path
        self.clock = clock
        self.db = None
        check_file(path)
        try:
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(_SCHEMA)
        except sqlite3.Error as e:
            self.close()
            raise LedgerFileError("%s: cannot use as the ledger: %s" % (path, e)) from None
        if self.db.execute("SELECT COUNT(*) FROM cards").fetchone()[0] == 0:
            self.seed(load_cards() if cards is None else cards)

    def close(self):
        if self.db is not None:
            self.db.close()
            self.db = None

    # -- plumbing

    def _begin(self):
        self.db.execute("BEGIN IMMEDIATE")

    def _commit(self):
        self.db.execute("COMMIT")

    def _rollback(self):
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")

    def _now_text(self):
        return self.clock().strftime("%Y-%m-%dT%H:%M:%SZ")

    def _next(self, name):
        self.db.execute("INSERT OR IGNORE INTO counters (name, value) VALUES (?, 0)", (name,))
        self.db.execute("UPDATE counters SET value = value + 1 WHERE name = ?", (name,))
        return self.db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()[0]

    def _new_rrn(self):
        # Julian date YDDD (4) + sequence (8): 12 digits, unique for 10^8 transactions.
        now = self.clock()
        return "%d%03d%08d" % (now.year % 10, now.timetuple().tm_yday, self._next("rrn") % 10**8)

    def seed(self, cards):
        self._begin()
        try:
            for c in cards:
                status = c.get("status", "active")
                if status not in ("active", "blocked"):
                    raise ValueError("card %s: status must be active or blocked" % c["pan"][-4:])
                self.db.execute(
                    "INSERT OR REPLACE INTO cards (pan, expiry, pin, balance, status, txn_limit,"
                    " label) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (str(c["pan"]), str(c["expiry"]), str(c["pin"]), int(c["balance"]), status,
                     c.get("limit"), c.get("label")))
            self._commit()
        except BaseException:
            self._rollback()
            raise

    # -- reads

    def card(self, pan):
        row = self.db.execute("SELECT * FROM cards WHERE pan = ?", (pan,)).fetchone()
        return dict(row) if row else None

    def find(self, tid, batch, stan):
        """The transaction (dict) with this key, or None."""
        row = self.db.execute("SELECT * FROM transactions WHERE tid = ? AND batch = ?"
                              " AND stan = ?", (tid, batch, stan)).fetchone()
        return dict(row) if row else None

    def is_absent(self, tid, batch, stan):
        return self.db.execute("SELECT 1 FROM absent WHERE tid = ? AND batch = ? AND stan = ?",
                               (tid, batch, stan)).fetchone() is not None

    def export(self):
        """The transactions as ledger.json holds them (docs/simulated-board.md), oldest first."""
        rows = self.db.execute("SELECT * FROM transactions ORDER BY id").fetchall()
        return [{"tid": r["tid"], "batch": r["batch"], "stan": r["stan"], "rrn": r["rrn"],
                 "type": r["type"], "amount": r["amount"], "pan_last4": r["pan_last4"],
                 "status": r["status"], "rc": r["rc"],
                 "receipt_confirmed": bool(r["receipt_confirmed"])} for r in rows]

    def totals(self, tid, batch):
        """Settlement totals of a batch: approved, not reversed purchases."""
        row = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM transactions WHERE tid = ? AND"
            " batch = ? AND type = 'purchase' AND status = 'approved'", (tid, batch)).fetchone()
        return {"tid": tid, "batch": batch, "count": row[0], "amount": row[1]}

    def ksn_used(self, device, counter):
        """Whether the KSN (device, counter) was taken before."""
        return self.db.execute("SELECT 1 FROM ksns WHERE device = ? AND counter = ?",
                               (device, counter)).fetchone() is not None

    # -- decisions; each one commits before it returns

    def take_ksn(self, device, counter):
        """Record the KSN of a request whose MAC verified, before anything is decided on it.
        Returns False (and records nothing) when this device used this counter before: a
        replay. Committed at once: a host that crashes after it refuses the KSN still."""
        self._begin()
        try:
            cur = self.db.execute("INSERT OR IGNORE INTO ksns (device, counter, created)"
                                  " VALUES (?, ?, ?)", (device, counter, self._now_text()))
            self._commit()
            return cur.rowcount == 1
        except BaseException:
            self._rollback()
            raise

    def authorise(self, *, tid, batch, stan, pan, expiry, pin_block, amount, pin_key,
                  processing_code="000000"):
        """Decide a purchase (0200). Returns the transaction dict (`rc`, `rrn`, `auth_code`...).

        A duplicate or tombstoned (TID, batch, STAN) is declined 94 and not recorded (the first
        record stays as it was); every other decision is recorded, approved or declined.
        """
        self._begin()
        try:
            if self.find(tid, batch, stan) or self.is_absent(tid, batch, stan):
                txn = {"rc": DUPLICATE, "rrn": self._new_rrn(), "auth_code": None,
                       "amount": amount, "processing_code": processing_code,
                       "status": "declined", "recorded": False}
                self._commit()
                return txn
            card = self.card(pan)
            rc = self._decide(card, expiry, pin_block, amount, pin_key, pan)
            auth_code = None
            if rc == APPROVED:
                auth_code = "%06d" % secrets.randbelow(10**6)
                self.db.execute("UPDATE cards SET balance = balance - ? WHERE id = ?",
                                (amount, card["id"]))
            txn = {"tid": tid, "batch": batch, "stan": stan, "rrn": self._new_rrn(),
                   "type": "purchase", "processing_code": processing_code, "amount": amount,
                   "pan_last4": pan[-4:], "card_id": card["id"] if card else None,
                   "status": "approved" if rc == APPROVED else "declined", "rc": rc,
                   "auth_code": auth_code, "created": self._now_text()}
            self.db.execute(
                "INSERT INTO transactions (tid, batch, stan, rrn, type, processing_code, amount,"
                " pan_last4, card_id, status, rc, auth_code, created) VALUES (:tid, :batch,"
                " :stan, :rrn, :type, :processing_code, :amount, :pan_last4, :card_id, :status,"
                " :rc, :auth_code, :created)", txn)
            self._commit()
            txn["recorded"] = True
            return txn
        except BaseException:
            self._rollback()
            raise

    def _decide(self, card, expiry, pin_block, amount, pin_key, pan):
        if card is None:
            return INVALID_CARD
        if card["status"] == "blocked":
            return DO_NOT_HONOUR
        if card["locked"]:
            return PIN_TRIES_EXCEEDED
        this_month = self.clock().strftime("%y%m")
        if card["expiry"] < this_month or (expiry is not None and expiry < this_month):
            return EXPIRED_CARD
        try:
            pin = pinblock.decipher(pin_block or b"", pan, pin_key)
        except pinblock.PinBlockError:
            pin = None  # a block that does not decipher is a wrong PIN
        if pin != card["pin"]:
            tries = card["wrong_pin_tries"] + 1
            locked = 1 if tries >= PIN_TRIES else 0
            self.db.execute("UPDATE cards SET wrong_pin_tries = ?, locked = ? WHERE id = ?",
                            (tries, locked, card["id"]))
            return PIN_TRIES_EXCEEDED if locked else INCORRECT_PIN
        if card["wrong_pin_tries"]:
            self.db.execute("UPDATE cards SET wrong_pin_tries = 0 WHERE id = ?", (card["id"],))
        if card["txn_limit"] is not None and amount > card["txn_limit"]:
            return EXCEEDS_LIMIT
        if card["balance"] < amount:
            return INSUFFICIENT_FUNDS
        return APPROVED

    def query(self, tid, batch, stan):
        """Status query (0600): the original transaction, or None after leaving a tombstone."""
        self._begin()
        try:
            txn = self.find(tid, batch, stan)
            if txn is None:
                self._tombstone(tid, batch, stan, "query")
            self._commit()
            return txn
        except BaseException:
            self._rollback()
            raise

    def _tombstone(self, tid, batch, stan, reason):
        self.db.execute("INSERT OR IGNORE INTO absent (tid, batch, stan, reason, created)"
                        " VALUES (?, ?, ?, ?, ?)", (tid, batch, stan, reason, self._now_text()))

    def reverse(self, tid, batch, stan):
        """Reversal (0400/0401). Returns what happened: 'reversed' (money moved back),
        'already' (was reversed before), 'declined' (nothing was charged), 'absent' (no record:
        tombstone left). Always acknowledged."""
        self._begin()
        try:
            txn = self.find(tid, batch, stan)
            if txn is None:
                self._tombstone(tid, batch, stan, "reversal")
                outcome = "absent"
            elif txn["status"] == "reversed":
                outcome = "already"
            elif txn["status"] == "declined":
                outcome = "declined"
            else:
                self.db.execute("UPDATE cards SET balance = balance + ? WHERE id = ?",
                                (txn["amount"], txn["card_id"]))
                self.db.execute("UPDATE transactions SET status = 'reversed', reversed_at = ?"
                                " WHERE id = ?", (self._now_text(), txn["id"]))
                outcome = "reversed"
            self._commit()
            return outcome
        except BaseException:
            self._rollback()
            raise

    def confirm_receipt(self, tid, batch, stan):
        """Advice (0220): sets receipt_confirmed. Returns the transaction, or None if unknown."""
        self._begin()
        try:
            txn = self.find(tid, batch, stan)
            if txn is not None and not txn["receipt_confirmed"]:
                self.db.execute("UPDATE transactions SET receipt_confirmed = 1 WHERE id = ?",
                                (txn["id"],))
                txn["receipt_confirmed"] = 1
            self._commit()
            return txn
        except BaseException:
            self._rollback()
            raise
