"""The terminal's transaction logic: a deterministic state machine.

Events in, actions out (see docs/architecture.md). No hardware, sockets, sleeping or wall clock in
here: the clock and the random source are injected, so the same code runs on the board, on the
simulated board and under a deterministic simulator with virtual time.

The safety contract (S1 to S7 in the brief) is kept by ordering actions: the runtime executes a
`journal` action durably before the next one, so the request is on flash before it is sent, the
approval before the receipt prints, the printed mark after it has printed. Obligations (pending
reversals, unprinted receipts, unsent confirmations) are rebuilt from the journal at boot.
"""


from micropython import const

from firmware import dukpt, iso8583, let_go, msgkeys, pinblock, receipt, screens

PROC_PURCHASE = "000000"
# Reversal reasons (field 39 of the 0400): no response, response failed its MAC.
REASON_NO_RESPONSE = "98"
REASON_BAD_MAC = "A0"

# Transaction states, as rebuilt from the journal.
SENDING = "sending"  # request journaled; outcome unknown
APPROVED = "approved"  # approval journaled; receipts and confirmation may be owed
DECLINED = "declined"  # host said no, or has no record: nothing charged
UNSENT = "unsent"  # the connection never opened: nothing left the terminal
REVERSING = "reversing"  # reversal owed to the host
REVERSED = "reversed"  # reversal acknowledged
CONFIRMED = "confirmed"  # receipts printed and confirmation acknowledged
_FINAL = (DECLINED, UNSENT, REVERSED, CONFIRMED)

# Screens / modes of the front end.
IDLE = "idle"
AMOUNT = "amount"
PIN = "pin"
WAIT = "wait"  # purchase sent, waiting for the response
QUERY = "query"  # asking the host what became of it
PRINTING = "printing"
MESSAGE = "message"  # a result on screen until message_ms or a key

_DIGITS = const("0123456789")
# Status query answers that tell what became of the purchase: approved, no record, or the
# original's decline. Anything else (63 the query itself refused, 91, 96) is no answer.
_QUERY_OUTCOMES = const(("00", "25", "05", "14", "51", "54", "55", "61", "75", "94"))
# A reversal or advice is done at the host when answered 00 (or 25: the host has no such
# transaction, so there is nothing to reverse or confirm).
_ACKNOWLEDGED = const(("00", "25"))
# Answers to a purchase that say nothing of it: no answer (the status query goes). 63: the host
# refused the request itself (its MAC failed, or its KSN was used before: a replayed copy of
# ours got there first). 94: the host holds this STAN already, and the terminal never sends a
# STAN twice, so another copy of this very request was decided first: it may be charged (a
# duplicated static-key request's second answer, taken as a decline, left a charge without a
# receipt in the DST).
_NO_DECISION = const(("63", "94"))


class Terminal:
    def __init__(self, settings, clock, random_bytes):
        self.settings = settings
        self.clock = clock
        self.random_bytes = random_bytes
        # DUKPT (a key per message, its KSN in field 53) or the static keys: firmware/msgkeys.py.
        self.keys = msgkeys.MessageKeys(settings)
        self.copies = settings["receipt_copies"]
        # The clear PIN lives only here, and is zeroed as soon as the PIN block is built.
        self.pin_buf = bytearray(settings["pin_max"])
        self.pin_len = 0
        self.txns = {}  # stan -> transaction dict, this batch's, rebuilt from the journal
        self.order = []  # stans in journal order
        self.batch = 1
        self.next_stan = 1
        self.closed_count = 0  # approved, printed and confirmed: no longer held in memory
        self.closed_total = 0
        self.last = None  # the last approved transaction, for a reprint on request
        self.mode = IDLE
        self.card = None
        self.digits = ""
        self.amount = 0
        self.current = None  # the purchase being worked on
        self.recovery = []  # stans in flight at boot, to resolve by status query
        self.query_tries = 0
        self.query_started = 0
        self.query_reason = REASON_NO_RESPONSE
        self.print_queue = []  # [stan, copy, reprint]
        self.printing = None
        self.paper_out = False
        self.saf = []  # ["rev" | "adv", stan], first in first out
        self.saf_busy = None  # the entry in flight
        self.saf_tries = 0
        self.saf_sent = {}  # stan -> times a reversal went out this boot (0400 then 0401)
        self.log = []  # lines for the runtime's log; never a PAN or a PIN
        self.shown_minute = None
        self.net = None  # two lines on the network while it is down (firmware/wifi.py), or None

    # ---- journal replay -------------------------------------------------------------------

    def _apply(self, rec):
        """Fold one journal record into the transaction table (at boot and as it is written)."""
        kind = rec["r"]
        if kind == "ksn":  # a reservation of DUKPT counters
            self.keys.apply(rec)
            return
        if kind == "batch":
            self.batch = rec["batch"]
            self.next_stan = rec["next"]
            self.closed_count = rec["n"]
            self.closed_total = rec["sum"]
            self.last = rec.get("last")
            return
        stan = rec["stan"]
        if kind == "send":
            txn = {"stan": stan, "batch": rec["batch"], "amount": rec["amt"], "l4": rec["l4"],
                   "t": rec["t"], "f7": rec["f7"], "state": SENDING, "printed": 0,
                   "rrn": "", "auth": "", "rc": ""}
            self.txns[stan] = txn
            self.order.append(stan)
            # Only forward (STANs wrap after 999999): a compacted journal holds an older open
            # transaction's "send" after the batch record, whose next STAN is past it.
            if (stan - self.next_stan) % 999999 < 500000:
                self.next_stan = stan % 999999 + 1
            return
        txn = self.txns.get(stan)
        if txn is None:
            return
        if kind == "ok":
            txn["state"] = APPROVED
            txn["rrn"] = rec["rrn"]
            txn["auth"] = rec["auth"]
            txn["rc"] = "00"
        elif kind == "pr":
            txn["printed"] = rec["copy"]
            if rec["copy"] == self.copies:
                self.last = {"stan": stan, "batch": txn["batch"], "amount": txn["amount"],
                             "l4": txn["l4"], "t": txn["t"], "rrn": txn["rrn"],
                             "auth": txn["auth"]}
        elif kind == "conf":
            txn["state"] = CONFIRMED
        elif kind == "dec":
            txn["state"] = DECLINED
            txn["rc"] = rec["rc"]
        elif kind == "unsent":
            txn["state"] = UNSENT
        elif kind == "rev":
            txn["state"] = REVERSING
            txn["reason"] = rec["reason"]
        elif kind == "revd":
            txn["state"] = REVERSED
            self.saf_sent.pop(stan, None)
        if txn["state"] in _FINAL:
            # Resolved: only the batch totals need it now. Memory holds open transactions only;
            # the journal keeps the records until the next compaction.
            if txn["state"] == CONFIRMED:
                self.closed_count += 1
                self.closed_total += txn["amount"]
            del self.txns[stan]
            self.order.remove(stan)

    def _journal(self, actions, rec):
        self._apply(rec)
        actions.append(("journal", rec))

    def snapshot(self):
        """Records that rebuild the present state: the journal's content after compaction,
        which comes seldom (firmware/recovery.py)."""
        from firmware import recovery

        try:
            return recovery.snapshot(self)
        finally:
            let_go("recovery")

    # ---- status ---------------------------------------------------------------------------

    def totals(self):
        """Batch totals: approved and not reversed (count, amount in minor units)."""
        count, total = self.closed_count, self.closed_total
        for stan in self.order:
            txn = self.txns[stan]
            if txn["state"] == APPROVED:
                count += 1
                total += txn["amount"]
        return count, total

    def status(self):
        unprinted = len(self.print_queue) + (1 if self.printing else 0)
        reversals = 0
        for entry in self.saf:
            if entry[0] == "rev":
                reversals += 1
        return {
            "mode": self.mode,
            "idle": self.mode == IDLE and not self.recovery and not self.printing,
            "recovering": len(self.recovery),
            "unprinted": unprinted,
            "reversals": reversals,
            "queued": len(self.saf),
        }

    def wants_card(self):
        return self.mode == IDLE and self._ready()

    def _ready(self):
        """A new purchase may start: nothing owed that must come first (S5)."""
        if self.recovery or self.print_queue or self.printing:
            return False
        for entry in self.saf:
            if entry[0] == "rev":
                return False
        return True

    # ---- events ---------------------------------------------------------------------------

    def handle(self, event):
        actions = []
        kind = event[0]
        if kind == "boot":
            self._boot(actions, event[1])
        elif kind == "card":
            self._card(actions, event[1], event[2])
        elif kind == "unread":
            self._unread(actions, event[1])
        elif kind == "key":
            self._key(actions, event[1])
        elif kind == "rx":
            self._rx(actions, event[1])
        elif kind in ("unsent", "closed"):
            self._link_failed(actions, event[1], kind == "unsent")
        elif kind == "timer":
            self._timer(actions, event[1])
        elif kind == "printed":
            self._printed(actions)
        elif kind == "print_failed":
            self._print_failed(actions, event[2])
        elif kind == "paper":
            self._paper_in(actions)
        elif kind == "tick":
            self._tick(actions)
        elif kind == "net":
            self.net = event[1]
            if self.status()["idle"]:
                self._show_idle(actions)
        return actions

    def restore(self, record):
        """Fold one journal record in, before the boot event (the runtime streams them)."""
        self._apply(record)

    def _boot(self, actions, records):
        from firmware import recovery  # once per boot: let go after

        try:
            recovery.boot(self, actions, records)
        finally:
            let_go("recovery")

    def _log(self, line):
        self.log.append(line)

    def _show(self, actions, lines):
        actions.append(("show", lines))

    def _show_idle(self, actions):
        now = self.clock.now()
        self.shown_minute = now[4]
        self._show(actions, screens.idle(self.settings, now, self.status(), self.net))

    def _to_idle(self, actions):
        self.mode = IDLE
        self.card = None
        self.current = None
        actions.append(("disarm", "entry"))
        actions.append(("disarm", "msg"))
        if self.print_queue and not self.printing and not self.paper_out:
            self._print_next(actions)
            return
        self._show_idle(actions)

    def _message(self, actions, lines):
        self.mode = MESSAGE
        self._show(actions, lines)
        actions.append(("arm", "msg", self.settings["message_ms"]))

    def _tick(self, actions):
        if self.mode == IDLE and self.clock.now()[4] != self.shown_minute:
            self._show_idle(actions)

    # ---- entry ----------------------------------------------------------------------------

    def _card(self, actions, pan, expiry):
        if not self.wants_card():
            return
        if not self.keys.purchase_left():
            self._keys_used_up(actions)
            return
        if not (12 <= len(pan) <= 19 and _all_digits(pan) and len(expiry) == 4
                and _all_digits(expiry)):
            self._message(actions, screens.card_error())
            return
        self.card = (pan, expiry)
        self.digits = ""
        self.mode = AMOUNT
        self._show(actions, screens.amount(self.settings, "", pan[-4:]))
        actions.append(("arm", "entry", self.settings["entry_timeout_ms"]))

    def _unread(self, actions, why):
        """A card was presented and the reader got no card number from it (`why` holds none)."""
        if not self.wants_card():
            return
        self._log("card not read: %s" % why)
        self._message(actions, screens.card_error())

    def _key(self, actions, label):
        mode = self.mode
        if mode == AMOUNT:
            self._amount_key(actions, label)
        elif mode == PIN:
            self._pin_key(actions, label)
        elif mode == MESSAGE and label in "#*":
            self._to_idle(actions)
        elif mode == IDLE and label in ("A", "B", "C"):
            self._function_key(actions, label)

    def _amount_key(self, actions, label):
        note = ""
        if label == "*":
            self._message(actions, screens.message("CANCELLED", "", "Not charged"))
            return
        if label == "D":
            self.digits = ""
        elif label in _DIGITS and len(label) == 1:
            if len(self.digits) < self.settings["amount_digits"] and (self.digits or label != "0"):
                self.digits += label
        elif label == "#":
            value = int(self.digits) if self.digits else 0
            if value == 0:
                note = "Enter an amount"
            elif value > self.settings["max_amount"]:
                note = "Over max amount"
            else:
                self.amount = value
                self.pin_len = 0
                self.mode = PIN
                self._show(actions, screens.pin(self.settings, value, 0))
                actions.append(("arm", "entry", self.settings["entry_timeout_ms"]))
                return
        actions.append(("arm", "entry", self.settings["entry_timeout_ms"]))
        self._show(actions, screens.amount(self.settings, self.digits, self.card[0][-4:], note))

    def _pin_key(self, actions, label):
        note = ""
        if label == "*":
            self._clear_pin()
            self._message(actions, screens.message("CANCELLED", "", "Not charged"))
            return
        if label == "D":
            self._clear_pin()
        elif label in _DIGITS and len(label) == 1:
            if self.pin_len < self.settings["pin_max"]:
                self.pin_buf[self.pin_len] = ord(label)
                self.pin_len += 1
        elif label == "#":
            if self.pin_len >= self.settings["pin_min"]:
                self._send_purchase(actions)
                return
            note = "PIN too short"
        actions.append(("arm", "entry", self.settings["entry_timeout_ms"]))
        self._show(actions, screens.pin(self.settings, self.amount, self.pin_len, note))

    def _clear_pin(self):
        for i in range(len(self.pin_buf)):
            self.pin_buf[i] = 0
        self.pin_len = 0

    def _function_key(self, actions, label):
        from firmware import function_keys  # pressed seldom: let go after

        try:
            function_keys.press(self, actions, label)
        finally:
            let_go("function_keys")

    # ---- purchase -------------------------------------------------------------------------

    def _stamp(self):
        now = self.clock.now()
        return now, "%02d%02d%02d%02d%02d" % (now[1], now[2], now[3], now[4], now[5])

    def _send_purchase(self, actions):
        pan, expiry = self.card
        ksn = None
        if self.keys.active:
            if not self.keys.purchase_left():
                self._clear_pin()
                self._keys_used_up(actions)
                return
            ksn = self._next_ksn(actions)
        pin_key = self.keys.pin_block_key(ksn)
        block = pinblock.encipher(pin_key, self.pin_buf, self.pin_len, pan,
                                  self.random_bytes(8))
        self._clear_pin()
        if ksn is not None:
            msgkeys.wipe(pin_key)
        now, f7 = self._stamp()
        stan = self.next_stan
        self._journal(actions, {"r": "send", "stan": stan, "batch": self.batch,
                                "amt": self.amount, "l4": pan[-4:], "t": list(now[:6]),
                                "f7": f7})
        txn = self.txns[stan]
        fields = {
            2: pan, 3: PROC_PURCHASE, 4: "%012d" % self.amount, 7: f7, 11: "%06d" % stan,
            12: f7[4:], 13: f7[:4], 14: expiry, 22: "071", 25: "00",
            41: self.settings["terminal_id"], 42: self.settings["merchant_id"],
            49: self.settings["currency_code"], 52: block, 60: "%06d" % self.batch,
        }
        frame = self.keys.encode("0200", fields, ksn)
        self.card = None  # the PAN is not kept past the request
        self.current = stan
        # A bad MAC on an earlier purchase says nothing about this one.
        self.query_reason = REASON_NO_RESPONSE
        txn["expect"] = ("0200", self._key_fields(txn))
        actions.append(("disarm", "entry"))
        actions.append(("send", "purchase", frame))
        actions.append(("arm", "resp", self.settings["response_timeout_ms"]))
        self.mode = WAIT
        self._show(actions, screens.processing("Authorising..."))
        self._log("purchase stan %06d amount %d sent" % (stan, self.amount))

    # ---- keys -----------------------------------------------------------------------------

    def _keys_used_up(self, actions):
        self._log("security: DUKPT counter exhausted: new purchases refused (new key needed)")
        self._message(actions, screens.message("Keys used up", "", "Call support"))

    def _next_ksn(self, actions):
        # The reservation, if one is due, is on flash before the request leaves.
        ksn, reservation = self.keys.next()
        if reservation is not None:
            self._journal(actions, reservation)
        return ksn

    def _request_frame(self, actions, mti, fields):
        """A query, reversal or advice: under a fresh KSN (DUKPT), or the static key; None when
        the DUKPT counter is exhausted (logged; not sent)."""
        ksn = None
        if self.keys.active:
            try:
                ksn = self._next_ksn(actions)
            except dukpt.CounterExhausted:
                self._log("security: DUKPT counter exhausted: %s for stan %s not sent" % (
                    mti, fields[11]))
                return None
        return self.keys.encode(mti, fields, ksn)

    def _key_fields(self, txn):
        return {3: PROC_PURCHASE, 4: "%012d" % txn["amount"], 11: "%06d" % txn["stan"],
                41: self.settings["terminal_id"], 49: self.settings["currency_code"]}

    def _original(self, txn):
        return iso8583.original_data("0200", txn["stan"], txn["f7"])

    def _rx(self, actions, frame):
        try:
            mti, fields = self.keys.decode(frame)
        except iso8583.MacError as e:
            self._log("security: response with a bad MAC ignored (%s)" % e)
            if self.mode in (WAIT, QUERY):
                self.query_reason = REASON_BAD_MAC
                if self.mode == WAIT:
                    self._start_query(actions)
            return
        except ValueError as e:
            self._log("malformed frame ignored: %s" % e)
            return
        stan = _to_int(fields.get(11))
        txn = self.txns.get(stan)
        if txn is None:
            self._log("response %s for unknown stan ignored" % mti)
            return
        if mti == "0210" or mti == "0610":
            # Only a transaction still unknown can be resolved: once it is journaled as
            # reversing (or anything else), a late approval is logged and ignored (S3).
            if (txn["state"] != SENDING or stan != self.current
                    or self.mode not in (WAIT, QUERY) or self.mode == WAIT and mti == "0610"):
                self._log("late %s for stan %06d ignored (state %s)" % (mti, stan, txn["state"]))
                return
            expect_mti = "0200" if mti == "0210" else "0600"
            if not iso8583.matches(expect_mti, self._key_fields(txn), mti, fields):
                self._log("mismatched %s ignored" % mti)
                return
            if mti == "0210" and fields.get(39) in _NO_DECISION:
                self._log("purchase answered %s: no answer" % fields.get(39))
                if self.mode == WAIT:
                    self._start_query(actions)
                return
            if mti == "0610" and fields.get(39) not in _QUERY_OUTCOMES:
                # 63 (the host refused the query itself), 96, 91: it says nothing about the
                # purchase, so it counts as no answer; the query timer asks again.
                self._log("status query answered %s: no answer" % fields.get(39))
                return
            self._resolved(actions, txn, fields)
        elif mti == "0410" or mti == "0230":
            busy = self.saf_busy
            want = "rev" if mti == "0410" else "adv"
            if busy is None or busy[0] != want or busy[1] != stan:
                self._log("late %s for stan %06d ignored" % (mti, stan))
                return
            req = "0400" if mti == "0410" else "0220"
            if not iso8583.matches(req, self._key_fields(txn), mti, fields):
                self._log("mismatched %s ignored" % mti)
                return
            if fields.get(39) not in _ACKNOWLEDGED:
                # Refused (63: the request's MAC failed on the way) or not processed (96):
                # not done at the host, so not done here; retried with backoff.
                self._log("%s answered %s: not acknowledged" % (mti, fields.get(39)))
                actions.append(("disarm", "saf"))
                self._saf_failed(actions)
                return
            self._saf_done(actions, txn)
        else:
            self._log("unexpected %s ignored" % mti)

    def _resolved(self, actions, txn, fields):
        """The host answered the purchase or the status query: act on its response code."""
        actions.append(("disarm", "resp"))
        actions.append(("disarm", "query"))
        rc = fields.get(39, "")
        stan = txn["stan"]
        if rc == "00":
            self._journal(actions, {"r": "ok", "stan": stan, "rrn": fields.get(37, ""),
                                    "auth": fields.get(38, "")})
            self._log("stan %06d approved" % stan)
            recovering = self._end_recovery(stan)
            self._queue_receipts(stan, 1, False)
            if recovering:
                self._after_resolution(actions)
            else:
                self.mode = PRINTING
                self._print_next(actions)
            return
        self._journal(actions, {"r": "dec", "stan": stan, "rc": rc})
        self._log("stan %06d declined rc %s" % (stan, rc))
        if self._end_recovery(stan):
            self._after_resolution(actions)
        else:
            self._message(actions, screens.declined(rc))

    def _end_recovery(self, stan):
        if self.recovery and self.recovery[0] == stan:
            self.recovery.pop(0)
            return True
        return False

    def _link_failed(self, actions, kind, unsent):
        if kind == "purchase" and self.mode == WAIT:
            txn = self.txns[self.current]
            if unsent:
                # The connection never opened: the host cannot have the request.
                actions.append(("disarm", "resp"))
                self._journal(actions, {"r": "unsent", "stan": txn["stan"]})
                self._log("stan %06d not sent: host unreachable" % txn["stan"])
                self._message(actions, screens.unreachable())
            else:
                self._start_query(actions)
        elif kind == "query" and self.mode == QUERY:
            # Fails fast; wait a little before the next try instead of hammering.
            actions.append(("disarm", "query"))
            actions.append(("arm", "query", self.settings["retry_base_ms"]))
        elif kind in ("reversal", "advice") and self.saf_busy is not None:
            self._saf_failed(actions)

    def _timer(self, actions, name):
        if name == "resp" and self.mode == WAIT:
            self._log("stan %06d: no response in time" % self.current)
            self._start_query(actions)
        elif name == "query" and self.mode == QUERY:
            self._query_again(actions)
        elif name == "entry" and self.mode in (AMOUNT, PIN):
            self._clear_pin()
            self._message(actions, screens.message("TIMED OUT", "", "Not charged"))
        elif name == "msg" and self.mode == MESSAGE:
            self._to_idle(actions)
        elif name == "saf" and self.saf_busy is not None:
            self._saf_failed(actions)
        elif name == "saf_retry":
            self._saf_kick(actions)

    # ---- status query and reversal --------------------------------------------------------

    def _start_recovery(self, actions):
        self.current = self.recovery[0]
        self.query_reason = REASON_NO_RESPONSE
        self._show_idle(actions)
        self._start_query(actions)

    def _start_query(self, actions):
        actions.append(("disarm", "resp"))
        self.mode = QUERY
        self.query_tries = 0
        self.query_started = self.clock.ticks_ms()
        self._send_query(actions)

    def _send_query(self, actions):
        txn = self.txns[self.current]
        self.query_tries += 1
        fields = self._key_fields(txn)
        fields[7] = self._stamp()[1]
        fields[42] = self.settings["merchant_id"]
        fields[60] = "%06d" % txn["batch"]
        fields[90] = self._original(txn)
        frame = self._request_frame(actions, "0600", fields)
        if frame is not None:
            actions.append(("send", "query", frame))
        actions.append(("arm", "query", self.settings["query_timeout_ms"]))
        if not self.recovery:
            self._show(actions, screens.processing("Checking (%d/%d)" % (
                self.query_tries, self.settings["query_attempts"])))
        self._log("stan %06d status query %d" % (txn["stan"], self.query_tries))

    def _query_again(self, actions):
        elapsed = self.clock.ticks_ms() - self.query_started
        if (self.query_tries < self.settings["query_attempts"]
                and elapsed < self.settings["query_window_ms"]):
            self._send_query(actions)
            return
        # Still unknown: reverse it. From here on no approval for it is ever printed (S3).
        stan = self.current
        self._journal(actions, {"r": "rev", "stan": stan, "reason": self.query_reason})
        self.saf.append(["rev", stan])
        self._log("stan %06d unknown after %d queries: reversal queued" % (
            stan, self.query_tries))
        if self._end_recovery(stan):
            self._after_resolution(actions)
        else:
            self._message(actions, screens.not_completed("Reversal sent"))
        self._saf_kick(actions)

    def _after_resolution(self, actions):
        """Boot recovery: next in-flight transaction, then owed receipts, then idle."""
        if self.recovery:
            self._start_recovery(actions)
            return
        self.current = None
        if self.print_queue:
            self.mode = PRINTING
            self._print_next(actions)
        else:
            self._to_idle(actions)

    # ---- receipts -------------------------------------------------------------------------

    def _queue_receipts(self, stan, first_copy, reprint_first):
        for copy in range(first_copy, self.copies + 1):
            self.print_queue.append([stan, copy, reprint_first and copy == first_copy])

    def _print_next(self, actions):
        if not self.print_queue:
            return
        if self.paper_out:
            self.mode = IDLE
            self._show(actions, screens.paper_out(len(self.print_queue)))
            return
        job = self.print_queue.pop(0)
        self.printing = job
        self.mode = PRINTING
        stan, copy, reprint = job
        txn = self.last if stan is None else self.txns[stan]
        self._show(actions, screens.approved(self.settings, txn["amount"],
                                             "Printing %d/%d" % (copy, self.copies)))
        actions.append(("print", copy, receipt.render(self.settings, txn, copy, reprint)))

    def _printed(self, actions):
        job = self.printing
        if job is None:
            return
        self.printing = None
        stan, copy, reprint = job
        if stan is not None:
            self._journal(actions, {"r": "pr", "stan": stan, "copy": copy})
            if copy == self.copies:
                self.saf.append(["adv", stan])
                self._saf_kick(actions)
        if self.print_queue:
            self._print_next(actions)
        elif self.recovery:
            self._start_recovery(actions)
        elif stan is not None and self.current == stan:
            txn = self.txns[stan]
            self._message(actions, screens.approved(self.settings, txn["amount"],
                                                    "Take receipt"))
        else:
            self._to_idle(actions)

    def _print_failed(self, actions, partial):
        job = self.printing
        if job is None:
            return
        self.printing = None
        # Some of this copy may be on paper already: print it again, whole, marked as a reprint.
        if partial:
            job[2] = True
        self.print_queue.insert(0, job)
        self.paper_out = True
        self.mode = IDLE
        self.current = None
        self._log("printer out of paper: %d receipt(s) waiting" % len(self.print_queue))
        self._show(actions, screens.paper_out(len(self.print_queue)))

    def _paper_in(self, actions):
        self.paper_out = False
        if self.print_queue and not self.printing and self.mode in (IDLE, PRINTING):
            self._print_next(actions)

    # ---- store and forward ----------------------------------------------------------------

    def _saf_kick(self, actions):
        if self.saf_busy is not None or not self.saf:
            return
        entry = self.saf[0]
        self.saf_busy = entry
        what, stan = entry
        txn = self.txns[stan]
        fields = self._key_fields(txn)
        fields[7] = self._stamp()[1]
        fields[42] = self.settings["merchant_id"]
        fields[60] = "%06d" % txn["batch"]
        fields[90] = self._original(txn)
        if what == "rev":
            sent = self.saf_sent.get(stan, 0)
            fields[39] = txn.get("reason", REASON_NO_RESPONSE)
            mti = "0400" if sent == 0 else "0401"
            kind = "reversal"
        else:
            fields[37] = txn["rrn"]
            fields[38] = txn["auth"]
            mti = "0220"
            kind = "advice"
        frame = self._request_frame(actions, mti, fields)
        if frame is None:
            self.saf_busy = None  # owed still: it goes when a new key is loaded
            return
        if what == "rev":
            self.saf_sent[stan] = sent + 1
        actions.append(("send", kind, frame))
        actions.append(("arm", "saf", self.settings["query_timeout_ms"]))

    def _saf_done(self, actions, txn):
        what, stan = self.saf_busy
        self.saf_busy = None
        self.saf_tries = 0
        self.saf.pop(0)
        actions.append(("disarm", "saf"))
        if what == "rev":
            self._journal(actions, {"r": "revd", "stan": stan})
            self._log("stan %06d reversal acknowledged" % stan)
        else:
            self._journal(actions, {"r": "conf", "stan": stan})
            self._log("stan %06d receipt confirmation acknowledged" % stan)
        if self.mode == IDLE and not self.printing:
            self._show_idle(actions)
        self._saf_kick(actions)

    def _saf_failed(self, actions):
        # Never dropped: back off and try again, as long as it takes.
        self.saf_busy = None
        actions.append(("disarm", "saf"))
        delay = self.settings["retry_base_ms"] << min(self.saf_tries, 10)
        self.saf_tries += 1
        actions.append(("arm", "saf_retry", min(delay, self.settings["retry_max_ms"])))


def _all_digits(text):
    for ch in text:
        if ch not in _DIGITS:
            return False
    return True


def _to_int(text):
    if text is None or not _all_digits(text) or not text:
        return None
    return int(text)
