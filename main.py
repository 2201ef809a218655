"""Entry point: settings -> board profile -> runtime. Logs a crash, then resets the board.

The board profile is chosen by the `board` setting (config.json on flash); on the simulated
board (MicroPython unix port) the POS_BOARD environment variable selects it instead.
"""

import sys


def board_name():
    getenv = getattr(__import__("os"), "getenv", None)  # the unix port has it, the ESP32 not
    name = getenv("POS_BOARD") if getenv else None
    if name:
        return name
    from firmware import settings

    return settings.load("config.json")["board"]


def main():
    from firmware import app

    name = board_name()
    profile = __import__("boards." + name, None, None, ["build"])
    root = profile.mount() if hasattr(profile, "mount") else ""
    overrides = profile.config_overrides() if hasattr(profile, "config_overrides") else None
    settings = app.load_settings(root, overrides, getattr(profile, "device_id", None))
    board = profile.build(settings)
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
