"""Receipt layout for a 58 mm thermal printer: 32 columns of the printer's 12x24 font.

Shows what the source document asks a slip to carry: time, amount, masked card number, merchant
name and ID, terminal ID and the references to look the transaction up (batch, trace number,
RRN, authorisation code). Only the last four digits of the card number ever reach paper.

Lines starting with `^` are printer directives (drivers/escpos.py): `^BIG text` prints double
size, `^QR data` a QR code (the RRN, so the transaction can be looked up by scanning the slip).
A printer that cannot do one prints its text plainly; directives never reach paper literally.
"""

WIDTH = 32

COPY_LABELS = ("MERCHANT COPY", "CUSTOMER COPY")


def format_amount(amount, currency):
    """Minor units to 'EUR 12.50' (two decimals: every currency we demo with has them)."""
    return "%s %d.%02d" % (currency, amount // 100, amount % 100)


# Each line made by one format, not by concatenation: a receipt is rendered while the heap is at
# its fullest (a purchase's answer just in), and every piece left behind would split it.
def _pair(left, right):
    if len(left) + len(right) >= WIDTH:
        return "%s\n%*s" % (left, WIDTH, right)
    return "%-*s%s" % (WIDTH - len(right), left, right)


def _center(text):
    text = text[:WIDTH]
    return "%*s" % ((WIDTH + len(text)) // 2, text)


def copy_label(copy, copies):
    """Copy 1 of 2 is the merchant's, the last copy is always the customer's."""
    if copies == 1:
        return COPY_LABELS[1]
    return COPY_LABELS[0] if copy == 1 else COPY_LABELS[1]


def render(settings, txn, copy, reprint):
    """Text of one approval receipt copy; txn holds stan, batch, amount, l4, t, rrn, auth."""
    t = txn["t"]
    lines = [
        "^BIG " + settings["merchant_name"][:WIDTH // 2],
        _center(copy_label(copy, settings["receipt_copies"])),
    ]
    if reprint:
        lines.append(_center("*** REPRINT ***"))
    lines += [
        "-" * WIDTH,
        _pair("MERCHANT ID", settings["merchant_id"]),
        _pair("TERMINAL ID", settings["terminal_id"]),
        _pair("CARD", "**** **** **** " + txn["l4"]),
        _pair("TYPE", "PURCHASE"),
        _pair("DATE", "%04d-%02d-%02d" % (t[0], t[1], t[2])),
        _pair("TIME", "%02d:%02d:%02d" % (t[3], t[4], t[5])),
        _pair("BATCH NO", "%06d" % txn["batch"]),
        _pair("TRACE NO", "%06d" % txn["stan"]),
        _pair("RRN", txn["rrn"]),
        _pair("AUTH CODE", txn["auth"]),
        "-" * WIDTH,
        _pair("AMOUNT", format_amount(txn["amount"], settings["currency"])),
        "",
        "^BIG APPROVED",
    ]
    if copy == 1 and settings["receipt_copies"] > 1:
        lines += ["", "", "SIGNATURE NOT REQUIRED", "PIN VERIFIED"]
    else:
        lines += ["", "^QR " + txn["rrn"], _center("THANK YOU"),
                  _center("KEEP FOR YOUR RECORDS")]
    lines += ["", "", "", ""]  # the fourth ends the text with its newline: no copy to add one
    return "\n".join(lines)
