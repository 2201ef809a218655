"""What runs once at power-on, before the terminal opens: the settings (config.json over the
defaults, checked, keys unwrapped) and the board, assembled by its profile.

main.py calls `start()` and then lets go of this module: `start()` takes it, the settings'
defaults and rules, the key unwrapping and the board assembly out of sys.modules, so that none
of that code stays in the heap beside the runtime (docs/architecture.md, "Memory").
"""

import gc
import sys

from micropython import const

from firmware import settings as settings_mod

# Collect after every 8 KB allocated (MicroPython collects only when the heap is full): then the
# garbage of the moment is freed where it lies and the next allocations fill those holes, instead
# of objects that live on being strewn over the whole heap, which fragments it. A collection takes
# a few ms; the smallest heap a purchase needs drops by about 8 KB on 32 bits (make bench-heap).
_COLLECT_EVERY = const(8192)
_COLS = const(16)  # the display's line (firmware/screens.py)

# Imported only to boot: dropped once the board is built (the board profile stays: the runtime
# calls its set_clock and free_heap).
BOOT_ONLY = ("firmware.startup", "firmware.settings", "firmware.keystore", "boards.common")


SettingsError = settings_mod.SettingsError


def _env_board():
    getenv = getattr(__import__("os"), "getenv", None)  # the unix port has it, the ESP32 not
    return getenv("POS_BOARD") if getenv else None


def board_name():
    """The board profile: POS_BOARD where the port has an environment (the simulated board),
    else the `board` setting of config.json."""
    return _env_board() or settings_mod.load("config.json")["board"]


def _profile(name):
    try:
        return __import__("boards." + name, None, None, ["build"])
    except ImportError:
        raise SettingsError("board: no profile %s on this board (boards/%s)" % (name, name))


def fallback_board():
    """The profile to say a boot error with when the configured one cannot be had: the
    simulated board's, else the DevKit profile of the chip this runs on."""
    name = _env_board()
    if name:
        return name
    # "Generic ESP32S3 module with ESP32S3" on an S3 image; CPython has no _machine.
    machine = getattr(__import__("sys").implementation, "_machine", "")
    return "esp32_s3_devkitc" if "S3" in machine else "esp32_devkitc"


def load_settings(root, overrides=None, device_id=None):
    """config.json over the defaults, then the board's overrides; wrapped keys ("W:...")
    unwrapped with the device key of device_id() (the board profile's), so the clear keys are
    in RAM only. Keys stored in clear still load, with one warning in the boot log."""
    from firmware import keystore

    values = settings_mod.load((root + "/" if root else "") + "config.json")
    if overrides:
        values = settings_mod.merge(values, overrides, "board overrides")
        settings_mod.validate(values, "board overrides")
    try:
        clear = keystore.unwrap_settings(values, device_id)
    except keystore.KeyWrapError as e:
        raise settings_mod.SettingsError("settings: %s" % e)
    if clear:
        print("settings: keys stored in clear (%s): provision them wrapped (docs/provisioning.md)"
              % ", ".join(clear))
    return values


def start(name=None):
    """The board, its settings and the host link's TLS arguments (host_tls), from the profile
    `name` (default board_name()); then the start-up modules are dropped from sys.modules (see
    BOOT_ONLY)."""
    if hasattr(gc, "threshold"):  # MicroPython's; CPython (tests) has its own collector
        gc.threshold(_COLLECT_EVERY)
    profile = _profile(name or board_name())
    root = profile.mount() if hasattr(profile, "mount") else ""
    overrides = profile.config_overrides() if hasattr(profile, "config_overrides") else None
    settings = load_settings(root, overrides, getattr(profile, "device_id", None))
    board = profile.build(settings)
    tls = host_tls(settings, root)  # at boot: a bad CA file stops here, not mid-purchase
    drop(BOOT_ONLY)
    return board, settings, tls


def host_tls(settings, root):
    """open_connection's TLS arguments: none for host_tls "plain"; for "verify" a client context
    that trusts only the CA certificate in the flash file host_ca and wants host_name in the
    host's certificate. Raises SettingsError when the CA file is missing or not a certificate."""
    if settings["host_tls"] == "plain":
        return {}
    import ssl

    path = (root + "/" if root else "") + settings["host_ca"]
    try:
        with open(path, "rb") as f:
            cadata = f.read()
    except OSError:
        raise settings_mod.SettingsError(
            "host_ca: no file %s on the flash (host_tls is verify: provision it with --ca)"
            % path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.verify_mode = ssl.CERT_REQUIRED
    try:
        # DER only: MicroPython's mbedtls takes PEM solely with a trailing NUL.
        context.load_verify_locations(cadata=cadata)
    except (ValueError, OSError):
        raise settings_mod.SettingsError("host_ca: %s is not a DER certificate" % path)
    return {"ssl": context, "server_hostname": settings["host_name"]}


def drop(modules):
    """Forget modules: out of sys.modules and off their package, so the heap they hold is free
    once nothing else refers to them."""
    for module in modules:
        sys.modules.pop(module, None)
        package, _, leaf = module.rpartition(".")
        parent = sys.modules.get(package)
        if parent is not None and leaf in parent.__dict__:
            delattr(parent, leaf)
    gc.collect()


def halt(error):
    """A boot error a reset would only repeat (a setting, a missing file, a module that does not
    answer): say it on the display and in the log, and stop; the REPL stays open for a fix
    (make provision, make deploy). The display is the fallback profile's, with the default
    settings: the configured ones are what failed."""
    import asyncio

    message = str(error)
    print("boot: stopped: %s" % message)
    board = None
    try:
        board = _profile(fallback_board()).display_board(dict(settings_mod.DEFAULTS))
    except Exception as e:  # noqa: BLE001 - no display either: the log has said it
        print("boot: no display to say it on (%r)" % e)
    asyncio.run(_hold(board, message))


async def _hold(board, message):
    import asyncio

    if board is not None:
        start = getattr(board, "start", None)
        if start is not None:
            await start()
        board.display.show(stopped(message))
    while True:
        await asyncio.sleep(60)


def stopped(message):
    """The screen for a boot error (only start-up shows one): what is wrong, in the 5 lines
    the screen has for it, and what to do."""
    words = message.split()
    lines = [""]
    for word in words:
        while len(word) > _COLS:  # a file name longer than a line
            lines.append(word[:_COLS])
            word = word[_COLS:]
        if len(lines[-1]) + len(word) + (1 if lines[-1] else 0) > _COLS:
            lines.append(word)
        else:
            lines[-1] = (lines[-1] + " " + word).strip()
    # Words are cut to the line, so the 8 lines fit the screen as they are.
    return ["CANNOT START"] + [line for line in lines if line][:5] + ["", "Fix, then reset"]
