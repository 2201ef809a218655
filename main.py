"""Entry point: start-up (settings -> board profile), then the runtime. Logs a crash, then
resets the board.

The board profile is chosen by the `board` setting (config.json on flash); on the simulated
board (MicroPython unix port) the POS_BOARD environment variable selects it instead. The start-up
code is imported, used and dropped before the runtime is imported (firmware/startup.py).
"""

import sys


def main():
    try:
        from firmware import startup

        try:
            board, settings, tls = startup.start()
        except (startup.SettingsError, OSError) as e:
            # A setting, a file or a part that a reset would find wrong again: say it, stop.
            log(e)
            return startup.halt(e)
        del startup  # its last reference: start() took it out of sys.modules
        from firmware import app

        runtime = app.Runtime(board, settings, tls)
    except MemoryError as e:
        return out_of_memory(e)
    app.run(runtime)


CRASH_LOG = "crash.log"
CRASH_LOG_MAX = 8192  # bytes; then it becomes crash.log.1: a crash loop must not fill the flash


def log(exc):
    sys.print_exception(exc)
    try:
        import os

        try:
            if os.stat(CRASH_LOG)[6] > CRASH_LOG_MAX:
                os.rename(CRASH_LOG, CRASH_LOG + ".1")
        except OSError:
            pass  # no log yet
        with open(CRASH_LOG, "a") as f:
            sys.print_exception(exc, f)
    except OSError:
        pass


def out_of_memory(exc):
    """The code does not fit the heap: a reset would fail the same way, so say so and wait (the
    REPL's Ctrl-C still reaches the board, to deploy it as ROMFS)."""
    log(exc)
    print("memory: the firmware does not fit the heap; put the code in flash, in ROMFS or "
          "frozen: make firmware ROMFS=1, make flash, make deploy CODE=romfs (docs/romfs.md)")
    import time

    while True:
        time.sleep(60)


def crashed(exc):
    log(exc)
    try:
        import machine

        machine.reset()
    except (ImportError, AttributeError):
        sys.exit(1)  # the unix port: the simulator sees the exit and reports it


try:
    main()
except KeyboardInterrupt:
    pass
except Exception as e:  # noqa: BLE001 - anything: log it and reset, never hang at the counter
    crashed(e)
