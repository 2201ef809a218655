"""What the cashier reads for a response code: two short lines on the decline screen
(firmware/screens.py, declined), which imports this for a decline and lets go of it after."""

from micropython import const

# Response code -> what the cashier reads (two short lines).
_REASONS = const((
    ("05", "Declined", "by card issuer"),
    ("14", "Invalid card", "Use another card"),
    ("25", "Not completed", "Not charged"),
    ("51", "Insufficient", "funds"),
    ("54", "Card expired", "Use another card"),
    ("55", "Wrong PIN", "Try again"),
    ("61", "Over card limit", "Lower amount"),
    ("63", "Security error", "Call support"),
    ("75", "PIN tries", "exceeded"),
    ("91", "Bank unavailable", "Try later"),
    ("94", "Duplicate", "Not charged"),
    ("96", "Bank sys. error", "Try later"),
))


def reason(rc):
    for code, first, second in _REASONS:
        if code == rc:
            return first, second
    return "Declined", "code " + rc
