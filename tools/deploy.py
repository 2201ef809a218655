"""Deploys the firmware to a board over USB with mpremote, resets it, checks where it imports the
firmware from, and shows its boot log.

    python -m tools.deploy --port PORT (--board BOARD | --image DIR) [--code auto]
    make deploy PORT=/dev/ttyUSB0 [BOARD=esp32_devkitc] [CODE=auto|romfs|files|frozen]

Where the code of firmware/, drivers/ and the board's profile goes (--code):
- romfs: a ROMFS image (build/BOARD.romfs, `make romfs`) written to the board's ROM partition
  with `mpremote romfs deploy`; MicroPython mounts it at /rom and runs it in place from flash.
  Needs a MicroPython built with ROMFS and our partition table (docs/romfs.md).
- files: .mpy files on the filesystem (build/BOARD/, `make build`); their code is copied into
  the heap when imported, which an ESP32 without PSRAM has too little of.
- frozen: the code is in the MicroPython image (`make firmware`, docs/firmware.md): only boot.py
  and main.py go.
- auto (default): frozen when the board's MicroPython has the firmware frozen in, else romfs when
  it has a ROM partition, else files, with a warning.

1. One round trip asks the board what it has: its ROM partitions (`vfs.rom_ioctl`), the size of
   the first and the SHA-256 of the image in it, whether `firmware` is frozen in, and the SHA-256
   of every file under boot.py, main.py and the code's folders (mpremote's own skip-if-same
   check costs a round trip per file: 42 files took 13 s to find nothing to do), and the board
   profile its config.json names: code for another profile is refused (it would take the
   board's own profile away, and the board would reset in a loop). All before building.
2. romfs: writes the image unless the board's is byte-identical (`mpremote romfs deploy`
   rewrites the whole partition: about 4 s for 100 KB on the virtual board).
3. Copies the files whose hash differs; removes what an older image left (a stale
   `firmware/x.py` would shadow the new `firmware/x.mpy`: MicroPython imports .py first); in
   romfs and frozen modes, removes the firmware/, drivers/ and boards/ folders whole: sys.path
   is ['', '.frozen', '/rom', ...], so a folder of that name on the filesystem, even an empty one
   (a namespace package), hides the code in /rom or frozen in.
4. Installs the micropython-lib packages listed in package.json with `mpremote mip install`.
   The firmware lists none: asyncio, socket, ssl, network, json, hashlib, binascii, struct,
   framebuf and cryptolib are built into MicroPython's ESP32 image.
5. Resets the board, asks it where `firmware` comes from (/rom, .frozen or the filesystem) and
   fails unless it is what was deployed; resets it again and prints its boot log for
   --log-seconds (0: none).

With --board the image is built first, for the mode chosen (tools/build.py); with --image a
built one is deployed (DIR, and DIR.romfs for romfs).
Settings (config.json) are not part of the image and are never touched: see tools/provision.py.
PORT is what mpremote's `connect` takes: /dev/ttyUSB0, COM3, or socket://HOST:PORT (the
virtual board, tools/vboard.py).
"""

import argparse
import hashlib
import json
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

from firmware.settings import DEFAULTS
from tools import build as build_mod
from tools.boardboot import ROMFS_HEADER

REPO = Path(__file__).resolve().parents[1]
MODES = ("auto", "romfs", "files", "frozen")
# After a reset, the wait before the Ctrl-C that reaches the REPL: one that lands in the start-up
# code (the virtual board's tools/boardboot.py, the ESP32's _boot.py) stops it before /rom or
# the filesystem is mounted; one sent before the board runs Python is lost, and sent again.
SETTLE_S = 2.0
# How long to keep trying for the raw REPL of a board that is booting or crash-looping.
REPL_S = 20.0

# Run on the board. `_NAMES` is put before it. Lines: "d path" per folder and "f path sha256"
# per file under those names; "rom none" (no vfs.rom_ioctl), or "rom N SIZE SHA256|-" (N ROM
# partitions, the first's size, the SHA-256 of the image in it over the length its header
# gives); "frozen PATH|-" (where a frozen `firmware` package is). One round trip.
_PROBE = """
import os, sys, hashlib, binascii
_buf = bytearray(512)
def _hex(h):
    return binascii.hexlify(h.digest()).decode()
def _hash(p):
    h = hashlib.sha256()
    with open(p, 'rb') as f:
        while True:
            n = f.readinto(_buf)
            if not n:
                break
            h.update(_buf[:n])
    return _hex(h)
def _walk(p):
    try:
        mode = os.stat(p)[0]
    except OSError:
        return
    if mode & 0x4000:
        print('d', p)
        for it in os.ilistdir(p):
            _walk(p + '/' + it[0])
    else:
        print('f', p, _hash(p))
for _p in _NAMES:
    _walk(_p)
def _rom():
    try:
        import vfs
        ioctl = vfs.rom_ioctl
    except (ImportError, AttributeError):
        return 'none'
    n = ioctl(1)
    if n <= 0:
        return '0'
    dev = ioctl(2, 0)
    size = dev.ioctl(4, 0) * dev.ioctl(5, 0) if hasattr(dev, 'ioctl') else len(dev)
    try:
        rom = memoryview(dev)
    except TypeError:
        rom = None
    def read(at, k):
        if rom is not None:
            return rom[at:at + k]
        b = bytearray(k)
        dev.readblocks(at // 4096, b, at % 4096)
        return b
    head = bytes(read(0, 12))
    if head[0] != 0xD2 or head[1] != 0xCD or head[2] != 0x31:
        return '%d %d -' % (n, size)
    at, length = 3, 0
    while True:
        b = head[at]
        at += 1
        length = length << 7 | b & 0x7F
        if not b & 0x80:
            break
    end = at + length
    if end > size:
        return '%d %d -' % (n, size)
    h = hashlib.sha256()
    for i in range(0, end, 4096):
        h.update(read(i, min(4096, end - i)))
    return '%d %d %s' % (n, size, _hex(h))
print('rom', _rom())
def _frozen():
    saved, had = sys.path[:], sys.modules.pop('firmware', None)
    sys.path[:] = ['.frozen']
    try:
        import firmware
        return firmware.__path__
    except ImportError:
        return '-'
    finally:
        sys.path[:] = saved
        sys.modules.pop('firmware', None)
        if had is not None:
            sys.modules['firmware'] = had
print('frozen', _frozen())
def _profile():
    try:
        with open('config.json') as f:
            import json
            return json.load(f).get('board', '=')
    except Exception:
        return '-'
print('profile', _profile())
"""

# Run on the board: remove files and whole folders, `_PATHS`, in one round trip (mpremote's
# `fs rm -r` takes three per file).
_REMOVE = """
import os
def _rm(p):
    if os.stat(p)[0] & 0x4000:
        for it in os.ilistdir(p):
            _rm(p + '/' + it[0])
        os.rmdir(p)
    else:
        os.remove(p)
for _p in _PATHS:
    _rm(_p)
"""

# Run on the board after the reset: where `firmware` is imported from (its __path__ and
# __file__; a folder without __init__ is a namespace package, with no __file__).
_ORIGIN = """
try:
    import firmware as _f
    print('origin', _f.__path__, getattr(_f, '__file__', '-'))
except Exception:
    print('origin - -')
"""

# What each origin means, for the messages.
ORIGINS = {
    "romfs": "ROMFS at /rom",
    "frozen": "frozen into its MicroPython",
    "files": ".mpy files on its filesystem",
    "namespace": "a firmware/ folder without __init__ on its filesystem",
}


class DeployError(Exception):
    pass


# What the board has: folders {path}, files {path: sha256}; rom None (no vfs.rom_ioctl) or a
# RomPartition; frozen: the frozen firmware's __path__, or None; profile: the board profile its
# config.json names, or None when it has none (a board not yet provisioned).
BoardState = namedtuple("BoardState", "folders files rom frozen profile", defaults=(None,))
RomPartition = namedtuple("RomPartition", "count size digest")
# What to do on the filesystem: folders to make, files to copy, paths to remove (files, and
# folders whole), files already up to date.
Plan = namedtuple("Plan", "make copy remove fresh")


def mpremote(port, *commands):
    """The mpremote command line: connect without a soft reset, then commands joined by +.

    `resume` keeps the board from soft-resetting on connect; mpremote still interrupts a running
    main.py with Ctrl-C to reach the raw REPL."""
    cmd = [sys.executable, "-m", "mpremote", "connect", port, "resume"]
    for i, command in enumerate(commands):
        if i:
            cmd.append("+")
        cmd += list(command)
    return cmd


def image_manifest(image, files_only=False):
    """(folders, {file: sha256 hex}) of the image, paths relative to it with / separators;
    files_only: its top-level files alone (boot.py and main.py)."""
    image = Path(image)
    folders, files = [], {}
    for p in sorted(image.iterdir() if files_only else image.rglob("*")):
        rel = p.relative_to(image).as_posix()
        if p.is_dir():
            if not files_only:
                folders.append(rel)
        elif not p.name.startswith("."):
            files[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return folders, files


def code_folders(image=None, board=None):
    """The top-level folders the firmware's code lives in: firmware/, drivers/, boards/, and
    for the virtual board tools/ (its chip models); those of a built image too."""
    packages = build_mod.SIM_PACKAGES if board == "sim" else build_mod.PACKAGES
    names = {p.split("/")[0] for p in packages}
    if image is not None:
        image = Path(image)
        for folder in (image, image.with_name(image.name + ".rom")):
            if folder.is_dir():
                names.update(p.name for p in folder.iterdir() if p.is_dir())
    return sorted(names)


def probe_names(image=None, board=None):
    """What the probe looks at on the board: boot.py, main.py and the code's folders."""
    return list(build_mod.SOURCES) + code_folders(image, board)


def probe_program(names):
    return "_NAMES = %r\n%s" % (list(names), _PROBE)


def parse_probe(text):
    """The board's answer to _PROBE, as a BoardState."""
    folders, files, rom, frozen, profile = set(), {}, None, None, None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "d":
            folders.add(parts[1])
        elif len(parts) == 3 and parts[0] == "f":
            files[parts[1]] = parts[2]
        elif parts == ["rom", "0"]:
            rom = RomPartition(0, 0, None)
        elif len(parts) == 4 and parts[0] == "rom":
            rom = RomPartition(int(parts[1]), int(parts[2]), None if parts[3] == "-" else parts[3])
        elif len(parts) == 2 and parts[0] == "frozen" and parts[1] != "-":
            frozen = parts[1]
        elif len(parts) == 2 and parts[0] == "profile" and parts[1] != "-":
            # "=": a config.json without `board`, which then means the default profile.
            profile = DEFAULTS["board"] if parts[1] == "=" else parts[1]
    return BoardState(folders, files, rom, frozen, profile)


def romfs_length(data):
    """The length of the ROMFS image at the start of `data` (its header: the magic, then a
    varint of the payload's size), or None when it holds none."""
    if not data.startswith(ROMFS_HEADER):
        return None
    at, length = len(ROMFS_HEADER), 0
    while at < len(data):
        byte = data[at]
        at += 1
        length = length << 7 | byte & 0x7F
        if not byte & 0x80:
            return at + length
    return None


def _romfs_fix(profile):
    """The commands that give a board a ROM partition, as tools/flash.py names them."""
    if profile in build_mod.ARCH and build_mod.ARCH[profile] is None:
        return "start the virtual board with one (make vboard; tools/vboard.py --romfs-kb)"
    board = profile or "BOARD"
    return ("make firmware BOARD=%s ROMFS=1, then make flash PORT=... BOARD=%s "
            "FIRMWARE=build/firmware/%s-romfs.bin" % (board, board, board))


def choose_code(requested, board, profile=None):
    """The mode to deploy with, and a warning line (or None). Raises DeployError, with the fix,
    when the board cannot run the code that way. profile: the board profile, for the fix."""
    has_rom = board.rom is not None and board.rom.count > 0
    if requested == "auto":
        if board.frozen:
            return "frozen", None
        if has_rom:
            return "romfs", None
        return "files", ("the board has no ROM partition: the code goes on its filesystem as "
                         ".mpy files, where it takes heap an ESP32 without PSRAM lacks; for "
                         "code in flash: %s (docs/romfs.md; CODE=files chooses this without "
                         "the warning)" % _romfs_fix(profile))
    if requested == "romfs":
        if board.frozen:
            raise DeployError("the board's MicroPython has the firmware frozen in, which comes "
                              "before /rom on sys.path: deploy with CODE=frozen, or flash one "
                              "without it: %s (docs/romfs.md)" % _romfs_fix(profile))
        if not has_rom:
            what = "no vfs.rom_ioctl" if board.rom is None else "no romfs partition"
            raise DeployError("the board has no ROM partition (%s): %s (its table has the "
                              "romfs partition: docs/romfs.md), or deploy with CODE=files"
                              % (what, _romfs_fix(profile)))
    if requested == "frozen" and not board.frozen:
        raise DeployError("the board's MicroPython has no firmware frozen in: flash the image "
                          "make firmware builds (make flash ... FLASH_ARGS=--no-romfs: "
                          "docs/firmware.md), or deploy with CODE=romfs or CODE=files")
    return requested, None


def image_profiles(image):
    """The board profiles a built image carries (boards/NAME.mpy in it, or in DIR.rom for a
    ROMFS build); None for boot.py and main.py alone (frozen code)."""
    image = Path(image)
    for folder in (image / "boards", image.with_name(image.name + ".rom") / "boards"):
        if folder.is_dir():
            return {p.stem for p in folder.iterdir()
                    if p.suffix in (".mpy", ".py") and p.stem not in ("__init__", "common")}
    return None


def check_profile(state, board=None, image=None):
    """Refuses code for another board profile than the one the board's config.json names: it
    would remove the board's own profile, and the board would reset in a loop."""
    if state.profile is None:
        return
    if board is not None:
        wanted, fits = board, state.profile == board
    else:
        carried = image_profiles(image)
        if carried is None:
            return
        wanted, fits = "/".join(sorted(carried)), state.profile in carried
    if not fits:
        raise DeployError("the board is set up for board profile %s (its config.json), this "
                          "image is for %s: deploy with BOARD=%s, or provision the board for "
                          "%s first (make provision, \"board\" in the file)"
                          % (state.profile, wanted, state.profile, wanted))


def romfs_needed(romfs_file, board):
    """True when the image must be written, False when the board holds it byte for byte.
    Raises DeployError when it does not fit the partition."""
    data = Path(romfs_file).read_bytes()
    if romfs_length(data) != len(data):
        raise DeployError("%s is not a ROMFS image: run make romfs" % romfs_file)
    if len(data) > board.rom.size:
        raise DeployError("the ROMFS image (%d bytes) does not fit the board's ROM partition "
                          "(%d bytes): a larger one (python -m tools.partitions --romfs-kb, "
                          "make flash: docs/romfs.md), or deploy with CODE=files"
                          % (len(data), board.rom.size))
    return hashlib.sha256(data).hexdigest() != board.rom.digest


def plan(image, mode, board_folders, board_files, names=None):
    """What to do on the filesystem (a Plan) to deploy `image` in `mode`.

    files: the whole image; what the board holds under the probed names (board_files) and the
    image does not is removed file by file. romfs, frozen: boot.py and main.py only, and the
    code's folders `names` (default code_folders(image)) removed whole."""
    if mode == "files":
        folders, files = image_manifest(image)
        make = [d for d in folders if d not in board_folders]
        remove = sorted(f for f in board_files if f not in files)
    else:
        _, files = image_manifest(image, files_only=True)
        make = []
        names = code_folders(image) if names is None else names
        remove = [d for d in names if d in board_folders]
        remove += sorted(f for f in board_files if f in names)  # a file where a folder goes
    copy = [f for f, digest in files.items() if board_files.get(f) != digest]
    fresh = [f for f in files if f not in copy]
    return Plan(make, copy, remove, fresh)


def sync_commands(image, steps, romfs_file=None):
    """The mpremote commands (for one run) that write the ROMFS image if given, remove, make
    the missing folders and copy what changed (the hashes are already compared: --force)."""
    image = Path(image)
    commands = [["romfs", "deploy", str(romfs_file)]] if romfs_file else []
    if steps.remove:
        commands.append(["exec", "_PATHS = %r\n%s" % (list(steps.remove), _REMOVE)])
    commands += [["fs", "mkdir", ":" + d] for d in steps.make]
    commands += [["fs", "cp", "--force", str(image / f), ":" + f] for f in steps.copy]
    return commands


def _run(cmd, runner, capture=True):
    result = runner(cmd, capture_output=capture, text=True)
    if result.returncode != 0:
        text = ((result.stderr or "") + (result.stdout or "")).strip().splitlines()
        raise DeployError("mpremote failed: %s" % (text[-1] if text else "exit %d"
                                                    % result.returncode))
    return result.stdout or ""


def probe(port, names, runner=subprocess.run):
    return parse_probe(_run(mpremote(port, ["exec", probe_program(names)]), runner))


def build_image(board, mode, image=None, arch=None, out=sys.stdout):
    """Build what `mode` deploys for `board` (tools/build.py) into image (default
    build/BOARD); return the image folder."""
    if mode == "frozen":
        # Only boot.py and main.py go: the packages are in the MicroPython image.
        image = Path(image) if image else REPO / "build" / board
        build_mod.build(image, packages=())
        print("deploy: built %s (boot.py, main.py)" % image, file=out)
        return image
    image, arch, rows = build_mod.build_board(board, image, arch, romfs=mode == "romfs")
    print("deploy: built %s for %s" % (image, arch or "any architecture (bytecode)"), file=out)
    print(build_mod.size_table(rows), file=out)
    return image


def check_image(image, mode):
    """Refuses an image folder that is not what `mode` deploys."""
    image = Path(image)
    if not (image / "main.py").is_file():
        raise DeployError("%s holds no built image: run `make build` (or `make romfs`) first"
                          % image)
    has_code = (image / "firmware").is_dir()
    if mode == "files" and not has_code:
        raise DeployError("%s holds no firmware/ (a ROMFS build?): run `make build` for "
                          "CODE=files" % image)
    if mode == "romfs":
        if has_code:
            raise DeployError("%s holds firmware/ (a build for CODE=files): run `make romfs`"
                              % image)
        if not build_mod.romfs_path(image).is_file():
            raise DeployError("no %s: run `make romfs`" % build_mod.romfs_path(image))


def code_origin(path, file):
    """Where the board imported `firmware` from, by its __path__ and __file__ ('-': none)."""
    if path == "-":
        return None
    if path.startswith("/rom/"):
        return "romfs"
    if path.startswith(".frozen"):
        return "frozen"
    return "files" if file != "-" else "namespace"


def parse_origin(text):
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "origin":
            return code_origin(parts[1], parts[2]), parts[1]
    raise DeployError("the board did not say where it imports firmware from: %r" % text[-200:])


def _raw_repl(transport, deadline, when="after the reset"):
    """Into the raw REPL of a board that may still be booting (a Ctrl-C sent before main.py
    runs is lost), trying again until the deadline."""
    from mpremote.transport import TransportError

    while True:
        try:
            transport.enter_raw_repl(soft_reset=False, timeout_overall=2)
            return
        except TransportError:
            if time.monotonic() > deadline:
                raise DeployError("the board's REPL did not answer %s" % when)


def _follow(serial, seconds, out, until=None):
    deadline = time.monotonic() + seconds
    text = b""
    while time.monotonic() < deadline:
        chunk = serial.read(256)
        if not chunk:
            continue
        text += chunk
        if out is not None:
            out.write(chunk.decode("utf-8", "replace").replace("\r", ""))
            out.flush()
        if until and until.encode() in text:
            break
    return text.decode("utf-8", "replace")


def reset_check_and_log(port, seconds, out=sys.stdout, until=None):
    """Reset the board, ask it where it imports `firmware` from, reset it again and copy what
    it prints for `seconds` (or until a line contains `until`). Returns ((origin, path), log).
    The line stays open across the resets, as a USB serial adapter's does, so the first lines
    of the boot are not lost."""
    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport

    try:
        transport = SerialTransport(port, baudrate=115200)
    except TransportError as e:
        raise DeployError("cannot open %s: %s" % (port, e))
    try:
        transport.enter_raw_repl(soft_reset=False)
        transport.exec_raw_no_follow("import machine\nmachine.reset()")
        serial = transport.serial
        serial.timeout = 0.1
        _follow(serial, SETTLE_S, None)
        _raw_repl(transport, time.monotonic() + REPL_S)
        origin = parse_origin(transport.exec(_ORIGIN).decode("utf-8", "replace"))
        transport.exec_raw_no_follow("import machine\nmachine.reset()")
        if seconds <= 0:
            return origin, ""
        print("--- boot log (%g s) ---" % seconds, file=out, flush=True)
        log = _follow(serial, seconds, out, until)
        print("\n--- end of boot log ---", file=out, flush=True)
        return origin, log
    except TransportError as e:
        raise DeployError("the board stopped answering around its reset: %s" % e)
    finally:
        transport.close()


def package_deps(path):
    """(name, version) of each micropython-lib package package.json lists."""
    with open(path) as f:
        data = json.load(f)
    deps = data.get("deps", [])
    if not isinstance(deps, list) or not all(
            isinstance(d, list) and len(d) == 2 and all(isinstance(x, str) for x in d)
            for d in deps):
        raise DeployError("%s: deps must be a list of [name, version] pairs" % path)
    return [tuple(d) for d in deps]


def install_command(port, package_json, index=None):
    args = ["mip", "install", "--target", "lib"]
    if index:
        args += ["--index", index]
    return mpremote(port, args + [str(package_json)])


def deploy(port, image=None, code="auto", board=None, arch=None,
           package_json=REPO / "package.json", index=None, log_seconds=8.0, until=None,
           runner=subprocess.run, out=sys.stdout, check_port=False):
    """The five steps; returns a dict of what happened (for the summary and the tests).
    board: build for it first (into image, default build/BOARD); else image is deployed.
    check_port: first stop the board at its raw REPL (stop_running), a board answering."""
    if board is None:
        if image is None:
            raise DeployError("give --board to build, or --image for a built image")
        if not (Path(image) / "main.py").is_file():
            raise DeployError("%s holds no built image: run `make build` (or `make romfs`) "
                              "first" % image)
    t0 = time.monotonic()
    if check_port:
        stop_running(port)  # PORT checked, and the board stopped, before anything is built
    state = probe(port, probe_names(image if board is None else None, board), runner)
    probe_s = time.monotonic() - t0
    check_profile(state, board, image)
    mode, warning = choose_code(code, state, board)
    if warning:
        print("deploy: warning: %s" % warning, file=out, flush=True)
    if board is not None:
        image = build_image(board, mode, image, arch, out)
    image = Path(image)
    check_image(image, mode)
    report = {"code": mode, "warning": warning, "romfs_written": False}
    romfs_file = None
    if mode == "romfs":
        romfs_file = build_mod.romfs_path(image)
        if romfs_needed(romfs_file, state):
            report["romfs_written"] = True
        else:
            romfs_file = None
    steps = plan(image, mode, state.folders, state.files,
                 code_folders(image, board) if mode != "files" else None)
    commands = sync_commands(image, steps, romfs_file)
    t0 = time.monotonic()
    if commands:
        _run(mpremote(port, *commands), runner)
    report.update(copied=steps.copy, up_to_date=steps.fresh, removed=steps.remove,
                  copy_s=probe_s + time.monotonic() - t0)
    deps = package_deps(package_json)
    report["packages"] = deps
    if deps:
        _run(install_command(port, package_json, index), runner, capture=False)
    (origin, path), report["boot_log"] = reset_check_and_log(port, log_seconds, out, until)
    report["origin"], report["origin_path"] = origin, path
    if origin is None:
        raise DeployError("after the reset the board cannot import firmware, deployed as %s: "
                          "its boot log says why (--log-seconds)" % ORIGINS[mode])
    if origin != mode:
        raise DeployError("after the reset the board imports firmware from %s (%s), not %s as "
                          "deployed" % (path, ORIGINS[origin], ORIGINS[mode]))
    return report


# The built-in modules the firmware, its drivers and the simulated board import.
DEV_BUILTINS = ("_thread", "array", "binascii", "collections", "cryptolib", "errno",
                "framebuf", "gc", "hashlib", "io", "json", "machine", "math", "micropython",
                "network", "os", "random", "re", "select", "socket", "struct", "sys", "time",
                "tls", "vfs")
# Run on the board before `mpremote mount .`: each built-in module put into sys.modules.
# MicroPython lets a file extend a built-in, so each `import time` otherwise searches sys.path,
# a round trip over the mount each time, and two at once (the virtual board's keypad timer is a
# thread) garble the mount's protocol: a MemoryError, a path with a NUL, a stuck raw REPL.
_DEV_HOME = """import os, sys
_home = os.getcwd()
for _n in %r:
    if _n not in sys.modules:
        try:
            _m = __import__(_n)
        except ImportError:
            continue
        if not hasattr(_m, '__file__'):
            sys.modules[_n] = _m
""" % (DEV_BUILTINS,)
# Run on the board after `mpremote mount .`: the code comes from the PC's folder (/remote, put
# first on sys.path), while the working folder goes back to the board's own, so the firmware
# reads the board's config.json and writes its journal to the board's flash, as deployed.
_DEV_RUN = ("import os, sys\nsys.path.insert(0, '/remote')\nos.chdir(_home)\n"
            "exec(open('/remote/main.py').read(), {'__name__': '__main__'})")


def dev_command(port, folder=REPO):
    """mpremote running main.py from the PC's folder, mounted on the board (make dev): edit a
    module, press Ctrl-C and run again, with no deploy in between. Sources compile on the board,
    which takes more heap than the .mpy image: on an ESP32 without PSRAM use it for one module
    at a time (keep the rest deployed), not for the whole firmware."""
    return mpremote(port, ["exec", _DEV_HOME], ["mount", str(folder)], ["exec", _DEV_RUN])


def stop_running(port, seconds=REPL_S):
    """Stop what the board runs, into its raw REPL, trying until it answers: a Ctrl-C can be
    lost (sent while the board boots, or taken by a thread of the virtual board's chip models),
    and mpremote sends only one before it gives up."""
    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport

    try:
        transport = SerialTransport(port, baudrate=115200)
    except TransportError as e:
        raise DeployError("cannot open %s: %s: give the board's port (PORT=/dev/ttyUSB0, or "
                          "the socket:// address make vboard prints)" % (port, e))
    try:
        _raw_repl(transport, time.monotonic() + seconds,
                  "in %d s: is it a board running MicroPython?" % seconds)
    finally:
        transport.close()


def dev(port, runner=subprocess.run):
    """make dev: the board stopped at its raw REPL, then the firmware run from this folder."""
    stop_running(port)
    return runner(dev_command(port)).returncode


def _summary(report):
    lines = []
    if report["code"] == "romfs":
        lines.append("deploy: ROMFS image %s" % ("written" if report["romfs_written"]
                                                 else "already on the board, not rewritten"))
    lines.append("deploy: %d files copied, %d up to date, %d stale removed, in %.1f s" % (
        len(report["copied"]), len(report["up_to_date"]), len(report["removed"]),
        report["copy_s"]))
    if report["code"] != "files" and report["removed"]:
        lines.append("deploy: removed from the filesystem, where they would hide the code: %s"
                     % ", ".join(p + "/" for p in report["removed"]))
    lines.append("deploy: code %s: the board imports firmware from %s (%s)" % (
        report["code"], report["origin_path"], ORIGINS[report["origin"]]))
    if not report["packages"]:
        lines.append("deploy: package.json lists no micropython-lib packages (the firmware "
                     "uses only modules built into MicroPython)")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.deploy",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--port", required=True,
                        help="serial port or socket://HOST:PORT (mpremote connect)")
    parser.add_argument("--board", default=None, choices=sorted(build_mod.ARCH),
                        help="build for this board profile first (make deploy BOARD=...)")
    parser.add_argument("--arch", default=None, choices=build_mod.ARCHES,
                        help="with --board: mpy-cross -march, overriding the board's")
    parser.add_argument("--image", default=None,
                        help="built image folder (default build/BOARD with --board)")
    parser.add_argument("--code", default="auto", choices=MODES,
                        help="where the code goes: romfs, files, frozen, or auto (default)")
    parser.add_argument("--package-json", default=str(REPO / "package.json"))
    parser.add_argument("--index", default=None,
                        help="mip package index (default: micropython.org's)")
    parser.add_argument("--log-seconds", type=float, default=8.0,
                        help="how long to show the boot log after the reset (0: none)")
    parser.add_argument("--until", default=None, help="stop the boot log at this text")
    parser.add_argument("--dev", action="store_true",
                        help="run the firmware from this folder, mounted (mpremote mount)")
    args = parser.parse_args(argv)
    if args.dev:
        try:
            return dev(args.port)
        except DeployError as e:
            print("deploy: %s" % e, file=sys.stderr)
            return 2
    try:
        report = deploy(args.port, args.image, args.code, args.board, args.arch,
                        args.package_json, args.index, args.log_seconds, args.until,
                        check_port=True)
    except (DeployError, OSError) as e:
        print("deploy: %s" % e, file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as e:
        print("deploy: build failed: %s" % (e.stderr or e.stdout or e).strip(), file=sys.stderr)
        return 2
    print(_summary(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
