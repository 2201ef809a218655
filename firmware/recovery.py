"""Boot recovery and compaction: the core's obligations rebuilt from the journal at boot
(requests in flight, receipts owed, reversals and confirmations to send), and the records that
rebuild them, the journal's content after compaction. Both come seldom: the core imports this
for them and lets go of it after (docs/architecture.md, "Memory")."""

from firmware.core import APPROVED, IDLE, REVERSING, SENDING


def boot(terminal, actions, records):
    for rec in records:
        terminal._apply(rec)
    terminal.keys.boot()
    for stan in terminal.order:
        txn = terminal.txns[stan]
        state = txn["state"]
        if state == SENDING:
            # In flight at the power cut: only the host knows; ask it (then print or reverse).
            terminal.recovery.append(stan)
        elif state == APPROVED:
            if txn["printed"] < terminal.copies:
                # The copy after the last one marked printed may have been cut off mid-way.
                terminal._queue_receipts(stan, txn["printed"] + 1, True)
            else:
                terminal.saf.append(["adv", stan])
        elif state == REVERSING:
            terminal.saf.append(["rev", stan])
    terminal._log("boot: batch %d next stan %d, %d to recover, %d to print, %d to send" % (
        terminal.batch, terminal.next_stan, len(terminal.recovery), len(terminal.print_queue),
        len(terminal.saf)))
    if terminal.keys.active:
        terminal._log("boot: DUKPT counter resumes after %d" % terminal.keys.last)
    terminal.mode = IDLE
    if terminal.recovery:
        terminal._start_recovery(actions)
    else:
        terminal._after_resolution(actions)
    terminal._saf_kick(actions)


def snapshot(terminal):
    """Records that rebuild the present state."""
    keep = []
    for stan in terminal.order:
        txn = terminal.txns[stan]
        state = txn["state"]
        keep.append({"r": "send", "stan": stan, "batch": txn["batch"], "amt": txn["amount"],
                     "l4": txn["l4"], "t": txn["t"], "f7": txn["f7"]})
        if state == APPROVED:
            keep.append({"r": "ok", "stan": stan, "rrn": txn["rrn"], "auth": txn["auth"]})
            if txn["printed"]:
                keep.append({"r": "pr", "stan": stan, "copy": txn["printed"]})
        elif state == REVERSING:
            keep.append({"r": "rev", "stan": stan, "reason": txn.get("reason", "98")})
    head = [{"r": "batch", "batch": terminal.batch, "next": terminal.next_stan,
             "n": terminal.closed_count, "sum": terminal.closed_total, "last": terminal.last}]
    reservation = terminal.keys.record()
    if reservation:
        head.append(reservation)
    return head + keep
