"""Deploys a built image to a board over USB with mpremote, then resets it and shows its boot log.

    python -m tools.deploy --port PORT [--image build/esp32_devkitc] [--log-seconds 8]
    make deploy PORT=/dev/ttyUSB0 [BOARD=esp32_devkitc]

1. Asks the board for the SHA-256 of every file it holds under the image's names (one round
   trip), then copies only the files whose hash differs, with mpremote `fs cp` (mpremote's own
   skip-if-same check costs a round trip per file: 42 files took 13 s to find nothing to do).
2. Removes what an older image left in the firmware's folders and this one does not hold
   (a stale `firmware/x.py` would shadow the new `firmware/x.mpy`: MicroPython imports .py first).
3. Installs the micropython-lib packages listed in package.json with `mpremote mip install`.
   The firmware lists none: asyncio, socket, ssl, network, json, hashlib, binascii, struct,
   framebuf and cryptolib are built into MicroPython's ESP32 image.
4. Resets the board and prints its boot log, over the same line, for --log-seconds.

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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Run on the board: a line per folder ("d path") and per file ("f path sha256-hex") of what the
# image's top-level names hold there. One pass, one round trip, whatever the number of files.
_MANIFEST = """
import os, hashlib, binascii
_buf = bytearray(512)
def _hash(p):
    h = hashlib.sha256()
    with open(p, 'rb') as f:
        while True:
            n = f.readinto(_buf)
            if not n:
                break
            h.update(_buf[:n])
    return binascii.hexlify(h.digest()).decode()
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
for _p in %r:
    _walk(_p)
"""


class DeployError(Exception):
    pass


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


def image_entries(image):
    """What the image's top level holds, in a stable order (files first, then folders)."""
    image = Path(image)
    entries = sorted(image.iterdir(), key=lambda p: (p.is_dir(), p.name))
    return [p for p in entries if not p.name.startswith(".")]


def image_manifest(image):
    """(folders, {file: sha256 hex}) of the image, paths relative to it with / separators."""
    image = Path(image)
    folders, files = [], {}
    for p in sorted(image.rglob("*")):
        rel = p.relative_to(image).as_posix()
        if p.is_dir():
            folders.append(rel)
        else:
            files[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return folders, files


def parse_manifest(text):
    """The board's answer to _MANIFEST: (folders, {file: sha256 hex})."""
    folders, files = set(), {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "d":
            folders.add(parts[1])
        elif len(parts) == 3 and parts[0] == "f":
            files[parts[1]] = parts[2]
    return folders, files


def plan(image, board_folders, board_files):
    """What to do: (folders to make, files to copy, files to remove, files up to date)."""
    folders, files = image_manifest(image)
    make = [d for d in folders if d not in board_folders]
    copy = [f for f, digest in files.items() if board_files.get(f) != digest]
    fresh = [f for f in files if f not in copy]
    stale = sorted(f for f in board_files if f not in files)
    return make, copy, stale, fresh


def _run(cmd, runner, capture=True):
    result = runner(cmd, capture_output=capture, text=True)
    if result.returncode != 0:
        text = ((result.stderr or "") + (result.stdout or "")).strip().splitlines()
        raise DeployError("mpremote failed: %s" % (text[-1] if text else "exit %d"
                                                    % result.returncode))
    return result.stdout or ""


def sync_commands(port, image, make, copy, stale):
    """One mpremote run: make the missing folders, copy what changed (the hashes are already
    compared, hence --force), remove what the image no longer holds."""
    image = Path(image)
    commands = [["fs", "mkdir", ":" + d] for d in make]
    commands += [["fs", "cp", "--force", str(image / f), ":" + f] for f in copy]
    if stale:
        commands.append(["fs", "rm"] + [":" + f for f in stale])
    return mpremote(port, *commands) if commands else None


def copy_image(port, image, runner=subprocess.run):
    """Bring the board's copy of the image up to date; return what was done."""
    names = [p.name for p in image_entries(image)]
    out = _run(mpremote(port, ["exec", _MANIFEST % (names,)]), runner)
    make, copy, stale, fresh = plan(image, *parse_manifest(out))
    cmd = sync_commands(port, image, make, copy, stale)
    if cmd:
        _run(cmd, runner)
    return {"copied": copy, "up_to_date": fresh, "removed": stale}


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


def reset_and_log(port, seconds, out=sys.stdout, until=None):
    """Reset the board over its REPL line, then copy what it prints for `seconds` (or until a
    line contains `until`). Returns the text. The line stays open across the reset, as a USB
    serial adapter's does, so the first lines of the boot are not lost."""
    from mpremote.transport_serial import SerialTransport

    transport = SerialTransport(port, baudrate=115200)
    try:
        transport.enter_raw_repl(soft_reset=False)
        transport.exec_raw_no_follow("import machine\nmachine.reset()")
        serial = transport.serial
        serial.timeout = 0.1
        deadline = time.monotonic() + seconds
        text = b""
        while time.monotonic() < deadline:
            chunk = serial.read(256)
            if not chunk:
                continue
            text += chunk
            out.write(chunk.decode("utf-8", "replace").replace("\r", ""))
            out.flush()
            if until and until.encode() in text:
                break
        return text.decode("utf-8", "replace")
    finally:
        transport.close()


def deploy(port, image, package_json=REPO / "package.json", index=None, log_seconds=8.0,
           until=None, runner=subprocess.run, out=sys.stdout):
    """The four steps; returns a dict of what happened (for the summary and the tests)."""
    image = Path(image)
    if not (image / "main.py").is_file():
        raise DeployError("%s holds no built image: run `make build` first" % image)
    t0 = time.monotonic()
    report = copy_image(port, image, runner)
    report["copy_s"] = time.monotonic() - t0
    deps = package_deps(package_json)
    report["packages"] = deps
    if deps:
        _run(install_command(port, package_json, index), runner, capture=False)
    if log_seconds > 0:
        print("--- boot log (%g s) ---" % log_seconds, file=out, flush=True)
        report["boot_log"] = reset_and_log(port, log_seconds, out, until)
        print("\n--- end of boot log ---", file=out, flush=True)
    return report


# Run on the board after `mpremote mount .`: the code comes from the PC's folder (/remote, put
# first on sys.path), while the working folder goes back to the board's own, so the firmware
# reads the board's config.json and writes its journal to the board's flash, as deployed.
_DEV_HOME = "import os\n_home = os.getcwd()"
_DEV_RUN = ("import os, sys\nsys.path.insert(0, '/remote')\nos.chdir(_home)\n"
            "exec(open('/remote/main.py').read(), {'__name__': '__main__'})")


def dev_command(port, folder=REPO):
    """mpremote running main.py from the PC's folder, mounted on the board (make dev): edit a
    module, press Ctrl-C and run again, with no deploy in between. Sources compile on the board,
    which takes more heap than the .mpy image: on an ESP32 without PSRAM use it for one module
    at a time (keep the rest deployed), not for the whole firmware."""
    return mpremote(port, ["exec", _DEV_HOME], ["mount", str(folder)], ["exec", _DEV_RUN])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.deploy",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--port", required=True,
                        help="serial port or socket://HOST:PORT (mpremote connect)")
    parser.add_argument("--image", default=str(REPO / "build" / "esp32_devkitc"),
                        help="built image folder (make build BOARD=...)")
    parser.add_argument("--package-json", default=str(REPO / "package.json"))
    parser.add_argument("--index", default=None,
                        help="mip package index (default: micropython.org's)")
    parser.add_argument("--log-seconds", type=float, default=8.0,
                        help="how long to show the boot log after the reset (0: no reset)")
    parser.add_argument("--until", default=None, help="stop the boot log at this text")
    parser.add_argument("--dev", action="store_true",
                        help="run the firmware from this folder, mounted (mpremote mount)")
    args = parser.parse_args(argv)
    if args.dev:
        return subprocess.run(dev_command(args.port)).returncode
    try:
        report = deploy(args.port, args.image, args.package_json, args.index, args.log_seconds,
                        args.until)
    except (DeployError, OSError) as e:
        print("deploy: %s" % e, file=sys.stderr)
        return 2
    print("deploy: %d files copied, %d up to date, %d stale removed, in %.1f s" % (
        len(report["copied"]), len(report["up_to_date"]), len(report["removed"]),
        report["copy_s"]))
    if not report["packages"]:
        print("deploy: package.json lists no micropython-lib packages (the firmware uses only "
              "modules built into MicroPython)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
