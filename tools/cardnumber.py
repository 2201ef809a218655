"""What can be a card: the card number (PAN) and expiry rules the terminal applies to a card it
reads (drivers/emv.py: 12 to 19 digits passing the Luhn check of ISO/IEC 7812, expiry YYMM with
a month from 01 to 12), for the tools that make cards: a scenario's cards and taps
(tools/sim/scenario.py) and demo tags (tools/demotag.py).

Each check returns None for a good value, else the reason in a few words, which never holds the
card number: the caller names the card, by its last four digits as the terminal's records do.
"""


def luhn_digit(digits):
    """The check digit that makes `digits` + it pass the Luhn check."""
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c)
        if i % 2 == 0:  # doubled: the check digit to come takes the place before them
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str(-total % 10)


def luhn_ok(pan):
    return luhn_digit(pan[:-1]) == pan[-1]


def pan_error(pan):
    """Why `pan` cannot be a card number, or None."""
    if not (isinstance(pan, str) and pan.isdigit() and pan.isascii() and 12 <= len(pan) <= 19):
        return "a card number (PAN) must be 12 to 19 digits"
    if not luhn_ok(pan):
        return "the card number fails the Luhn check (its last digit would be %s)" % (
            luhn_digit(pan[:-1]))
    return None


def expiry_error(expiry):
    """Why `expiry` cannot be a card's expiry date (YYMM), or None."""
    if not (isinstance(expiry, str) and len(expiry) == 4 and expiry.isdigit()
            and expiry.isascii()):
        return "expiry must be YYMM, 4 digits"
    if not 1 <= int(expiry[2:]) <= 12:
        return "expiry %s: month %s is not 01 to 12 (YYMM)" % (expiry, expiry[2:])
    return None
