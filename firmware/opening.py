"""What the runtime does once at boot, before the terminal opens: the heap check, the journal's
replay into the core, whether the clock can be trusted, and the boot log's lines on the host
link and the clock.

Runtime.run imports it and lets go of it after (firmware.let_go): from .mpy files its code would
otherwise hold heap for the rest of the day (docs/architecture.md, "Memory").
"""

from firmware import screens
from firmware.app import CLOCK_FLOOR, calendar


def open_terminal(runtime, short):
    """Replay the journal, log the host link and the clock; False (the display says why) when
    the free heap is `short` of what a purchase needs: the caller then waits instead of
    opening."""
    if short:
        # A MemoryError mid-purchase and a reset loop would follow: say so.
        in_flash = code_in_flash()
        runtime.log("memory: %d bytes short of the heap a purchase needs; %s" % (short, (
            "the code runs from flash already: this board needs more RAM (PSRAM)"
            if in_flash else "put the code in flash, in ROMFS or frozen: make firmware "
            "ROMFS=1, make flash, make deploy CODE=romfs (docs/romfs.md)")))
        runtime.board.display.show(no_memory(in_flash))
        return False
    journal, terminal = runtime.journal, runtime.terminal
    for record in journal.replay():
        terminal.restore(record)
    if journal.torn:
        # A power cut tore the last write: rewrite before anything is appended after it.
        journal.rewrite(terminal.snapshot())
        runtime.log("journal: torn tail cut off")
    runtime.clock_set = clock_known(runtime)
    settings = runtime.settings
    if runtime.tls:
        runtime.log("host link: TLS to %s:%d, certificate from %s's CA for %s" % (
            settings["host"], settings["port"], settings["host_ca"], settings["host_name"]))
    else:
        runtime.log("security: host link is PLAIN TCP (host_tls=plain): card data and MACs "
                    "travel unencrypted; demo only")
    log_clock(runtime)
    return True


def clock_known(runtime):
    """Whether the clock can be trusted before NTP answers: always without an ntp_host (as
    before), never where the runtime keeps the correction (it starts unknown), else if the
    board's RTC reads a real date (the ESP32 keeps it across every reset but power-on)."""
    if not runtime.settings["ntp_host"]:
        return True
    if getattr(runtime.board, "set_clock", None) is None:
        return False
    return runtime.wall_clock.unix() >= CLOCK_FLOOR


def code_in_flash():
    """The firmware runs from flash (a ROMFS at /rom, or frozen into the MicroPython image),
    not from .mpy files that importing copied into the heap."""
    return __file__.startswith(("/rom/", ".frozen"))


def no_memory(in_flash):
    """The screen when the free heap is short of what a purchase needs, with the fix: the code
    out of the heap, or a board with more RAM when it is out already."""
    fix = ["Use a board", "with PSRAM"] if in_flash else [
        "Put the code in", "flash: ROMFS or", "frozen. See", "docs/romfs.md"]
    return screens.message("NOT ENOUGH", "MEMORY", "", *fix)


def log_clock(runtime):
    """Why purchases wait, or what the clock was found to be, at boot."""
    settings, clock = runtime.settings, runtime.wall_clock
    rtc = getattr(runtime.board, "set_clock", None) is not None
    shown = "%04d-%02d-%02d %02d:%02d:%02d UTC" % calendar(clock.unix())[:6]
    if not settings["ntp_host"]:
        if rtc and clock.unix() < CLOCK_FLOOR:
            runtime.log("clock: %s and no ntp_host: TLS will find the host's certificate "
                        "not yet valid" % shown)
    elif runtime.clock_set:
        runtime.log("clock: %s, kept by the RTC across the reset" % shown)
    else:
        runtime.log("clock: not set (%s); purchases wait for NTP from %s:%d: the host's "
                    "certificate and the receipts need the date" % (
                        shown if rtc else "this board's correction is unknown",
                        settings["ntp_host"], settings["ntp_port"]))
