"""The idle screen's function keys: A reprints the last approval receipt, B shows the batch
totals, C what the terminal still owes. Pressed seldom: the core imports this for a key and lets
go of it after (docs/architecture.md, "Memory")."""

from firmware import screens
from firmware.receipt import format_amount


def press(terminal, actions, label):
    if label == "A" and terminal.last and terminal._ready():
        # Reprint the last approval receipt (customer copy), marked as a reprint.
        terminal.print_queue.append([None, terminal.copies, True])
        terminal._print_next(actions)
    elif label == "B":
        count, total = terminal.totals()
        terminal._message(actions, screens.message(
            "BATCH %06d" % terminal.batch, "Approved: %d" % count,
            format_amount(total, terminal.settings["currency"]), "", "# = back"))
    elif label == "C":
        st = terminal.status()
        terminal._message(actions, screens.message(
            "STATUS", "To send: %d" % st["queued"], "Reversals: %d" % st["reversals"],
            "To print: %d" % st["unprinted"], "Next trace:", "%06d" % terminal.next_stan))
