"""Entry point: start-up (settings -> board profile), then the runtime. Logs a crash, then
resets the board.

The board profile is chosen by the `board` setting (config.json on flash); on the simulated
board (MicroPython unix port) the POS_BOARD environment variable selects it instead. The start-up
code is imported, used and dropped before the runtime is imported (firmware/startup.py).
"""

import sys


def main():
    from firmware import startup

    board, settings = startup.start()
    del startup  # its last reference: start() took it out of sys.modules
    from firmware import app

    app.run(board, settings)


def crashed(exc):
    sys.print_exception(exc)
    try:
        with open("crash.log", "a") as f:
            sys.print_exception(exc, f)
    except OSError:
        pass
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
