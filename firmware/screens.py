"""Screen layouts for the 128x64 OLED: 8 lines of 16 characters (8x8 font).

Messages are in words a cashier can act on: what happened, and what to do next.
"""

from micropython import const

from firmware import let_go
from firmware.receipt import format_amount

COLS = 16
# The idle screen's last row whenever host_tls is "plain": card data crosses the network readable.
PLAIN_WARNING = "!PLAIN TCP DEMO!"
# The idle screen's network lines until NTP has set the clock: no card is read meanwhile.
SETTING_CLOCK = const(("Setting clock...", "Please wait"))

def _right(text):
    # MicroPython's str has no rjust.
    return " " * (COLS - len(text)) + text


def _fit(lines):
    return [line[:COLS] for line in lines[:8]]


def idle(settings, now, status, net=None):
    """`net`: two lines saying why the network is down (firmware/wifi.py), or None."""
    lines = [settings["merchant_name"], "%04d-%02d-%02d %02d:%02d" % now[:5]]
    lines += net if net else [""]
    if status["recovering"]:
        lines += ["Recovering...", "Please wait"]
    elif status["unprinted"]:
        lines += ["PAPER OUT", "Load paper"]
    elif status["reversals"]:
        lines += ["Reversal", "pending: wait"]
    elif net and net[0] == SETTING_CLOCK[0]:
        pass  # not "Ready": a card waits for the clock (firmware/opening.py, clock_known)
    else:
        lines += ["Ready", "Tap card"]
    if status["queued"]:
        lines += ["", "%d to send" % status["queued"]]
    if settings["host_tls"] == "plain":
        # The bottom row, always. A full screen gives up the gap above "N to send" for it.
        if len(lines) == 8:
            del lines[6]
        lines += [""] * (7 - len(lines)) + [PLAIN_WARNING]
    return _fit(lines)


def card_error():
    return _fit(["Card not read", "", "Try again"])


def amount(settings, digits, last4, note=""):
    value = int(digits) if digits else 0
    return _fit(["PURCHASE", "Card ..." + last4, "", "Enter amount:",
                 _right(format_amount(value, settings["currency"])), "", note,
                 "#=OK *=Cancel"])


def pin(settings, amount_value, count, note=""):
    return _fit(["PURCHASE", format_amount(amount_value, settings["currency"]), "",
                 "Enter PIN:", _right("*" * count), "", note, "#=OK *=Cancel"])


def processing(what):
    return _fit([what, "", "Please wait", "Do not remove", "power"])


def approved(settings, amount_value, note="Printing..."):
    return _fit(["APPROVED", format_amount(amount_value, settings["currency"]), "", note])


def declined(rc):
    from firmware import reasons  # a table for declines only: let go after

    try:
        first, second = reasons.reason(rc)
    finally:
        let_go("reasons")
    return _fit(["DECLINED" if rc not in ("25", "94") else "NOT DONE", "", first, second])


def not_completed(note):
    return _fit(["NOT COMPLETED", "Not charged", "", note])


def unreachable():
    return _fit(["Host unreachable", "Not charged", "", "Try again later"])


def paper_out(waiting):
    return _fit(["PAPER OUT", "", "Load paper", "%d receipt(s)" % waiting, "will print"])


def out_of_memory():
    return _fit(["OUT OF MEMORY", "", "Restarting..."])


def message(*lines):
    return _fit(list(lines))
