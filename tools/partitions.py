"""The ESP32 partition table that gives MicroPython a ROMFS partition, for a board profile.

    python -m tools.partitions --board esp32_devkitc [--romfs-kb N] [--out FILE] [--csv]

`--out FILE` writes the binary table (what `make flash` writes at 0x8000, right after the
firmware); without it, or with `--csv`, the table is printed as an ESP-IDF CSV.

The layout is MicroPython v1.28.0's own (ports/esp32/partitions-4MiBplus.csv, used by both
ESP32_GENERIC and ESP32_GENERIC_S3: nvs, phy_init, factory) plus a partition labelled "romfs"
(data, subtype 0x8f) at 0x200000, where the stock "vfs" filesystem starts. Why there:
- the ESP32 port finds its ROM partition by label "romfs" (esp32_partition.c, mp_vfs_rom_ioctl)
  and memory-maps all of it (esp_partition_mmap), in 64 KB MMU pages: offset and size are
  multiples of 64 KB, so the mapping is the partition and nothing more;
- the stock table has no "vfs" entry: since v1.26 MicroPython creates "vfs" at boot from the
  end of the last partition to the end of the flash it detects (main.c, boardctrl_startup),
  so a romfs put first shrinks vfs by its size on any flash size, 4 MB or 16 MB;
- the stock images' headers say 4 MB flash (boards/sdkconfig.base), and ESP-IDF's bootloader
  refuses a table with a partition past the header's size (flash_partitions.c), so the whole
  table must end within 4 MB, whatever flash the board has.

Binary format (ESP-IDF docs, API Guides, "Partition Tables", "Generating Binary Partition
Table"): 32-byte entries (magic AA 50, type, subtype, offset u32 LE, size u32 LE, 16-byte
label, flags u32 LE), then an MD5 entry (EB EB, 14 bytes FF, MD5 of the entries before it),
then FF up to 0xC00 bytes.

Exit status: 0 done; 2 bad input (one line on stderr).
"""

import argparse
import hashlib
import struct
import sys
from collections import namedtuple
from pathlib import Path

TABLE_OFFSET = 0x8000
TABLE_LEN = 0xC00
_ENTRY = struct.Struct("<2sBBII16sI")
_MAGIC = b"\xaa\x50"
_MD5_MAGIC = b"\xeb\xeb"
_END = b"\xff" * _ENTRY.size

APP, DATA = 0x00, 0x01
TYPE_NAMES = {APP: "app", DATA: "data"}
# ESP-IDF's names for the subtypes the stock table uses (esp_partition.h).
SUBTYPE_NAMES = {(APP, 0x00): "factory", (DATA, 0x01): "phy", (DATA, 0x02): "nvs",
                 (DATA, 0x81): "fat"}
ROMFS_LABEL = "romfs"
ROMFS_SUBTYPE = 0x8F  # as in the port's own partitions-4MiB-romfs.csv; it looks up the label
VFS_LABEL = "vfs"

KB = 1024
MB = 1024 * KB
# Offset alignments: ESP-IDF (gen_esp32part.py) wants 64 KB for apps, 4 KB (a flash sector)
# for data; the port maps romfs in 64 KB MMU pages (CONFIG_MMU_PAGE_SIZE).
APP_ALIGN = 0x10000
DATA_ALIGN = 0x1000
ROMFS_ALIGN = 0x10000

Partition = namedtuple("Partition", "name type subtype offset size flags", defaults=(0,))

# MicroPython v1.28.0, ports/esp32/partitions-4MiBplus.csv (ESP32_GENERIC, ESP32_GENERIC_S3).
STOCK = (
    Partition("nvs", DATA, 0x02, 0x9000, 0x6000),
    Partition("phy_init", DATA, 0x01, 0xF000, 0x1000),
    Partition("factory", APP, 0x00, 0x10000, 0x1F0000),
)
# CONFIG_ESPTOOLPY_FLASHSIZE_4MB (boards/sdkconfig.base): the size in the stock images' header,
# which bounds the table; the flash beyond it is found at boot and goes to vfs.
IMAGE_FLASH = 4 * MB

# Board profile -> the least flash it is sold with, which the vfs shown in the CSV is for.
# ESP32-DevKitC: ESP32-WROOM-32, 4 MB. ESP32-S3-DevKitC-1: N8 and up, 8 MB or more.
Board = namedtuple("Board", "flash")
BOARDS = {
    "esp32_devkitc": Board(4 * MB),
    "esp32_s3_devkitc": Board(8 * MB),
}

# 2.3 times the firmware's compiled code as a ROMFS image today (about 110 KB).
DEFAULT_ROMFS_KB = 256
# What the filesystem keeps at least (config.json, keys, the journal, littlefs's spare blocks).
MIN_VFS = 512 * KB


class TableError(ValueError):
    """A table that would not work; the message is the one line the maker reads."""


def layout(board, romfs_kb=DEFAULT_ROMFS_KB):
    """The partitions for `board`: the stock ones, then romfs where the stock vfs begins."""
    if board not in BOARDS:
        raise TableError("unknown board %r: one of %s" % (board, ", ".join(sorted(BOARDS))))
    if isinstance(romfs_kb, bool) or not isinstance(romfs_kb, int) or romfs_kb <= 0:
        raise TableError("--romfs-kb must be a positive whole number of KB, not %r" % (romfs_kb,))
    if romfs_kb * KB % ROMFS_ALIGN:
        raise TableError("--romfs-kb %d is not a multiple of %d: the port maps the romfs "
                         "partition in 64 KB pages" % (romfs_kb, ROMFS_ALIGN // KB))
    start = stock_vfs_offset()
    parts = list(STOCK) + [Partition(ROMFS_LABEL, DATA, ROMFS_SUBTYPE, start, romfs_kb * KB)]
    vfs = vfs_region(parts, IMAGE_FLASH)
    if vfs[1] < MIN_VFS:
        raise TableError("--romfs-kb %d leaves %d KB for the filesystem within the image's %d MB "
                         "(at least %d KB): at most --romfs-kb %d"
                         % (romfs_kb, vfs[1] // KB, IMAGE_FLASH // MB, MIN_VFS // KB,
                            (IMAGE_FLASH - MIN_VFS - start) // KB))
    check(parts, IMAGE_FLASH)
    return parts


def stock_vfs_offset():
    """Where the stock image's vfs begins: the end of its last partition."""
    return max(p.offset + p.size for p in STOCK)


def vfs_region(parts, flash_size):
    """(offset, size) of the "vfs" partition MicroPython >= 1.26 creates at boot for `parts`
    on `flash_size` bytes of flash (main.c: from the end of the last partition to the end)."""
    end = max(p.offset + p.size for p in parts)
    return end, max(0, flash_size - end)


def check(parts, flash_size):
    """Raises TableError unless `parts` is a table ESP-IDF and the port accept."""
    names = [p.name for p in parts]
    for p in parts:
        if not p.name or len(p.name.encode()) > 15:
            raise TableError("partition label %r must be 1 to 15 bytes" % p.name)
        if names.count(p.name) > 1:
            raise TableError("partition label %r used twice" % p.name)
        if p.size <= 0:
            raise TableError("partition %s has size %d" % (p.name, p.size))
        align = APP_ALIGN if p.type == APP else DATA_ALIGN
        if p.name == ROMFS_LABEL:
            align = ROMFS_ALIGN
            if p.type != DATA or p.size % ROMFS_ALIGN:
                raise TableError("romfs must be a data partition of a multiple of 64 KB")
        if p.offset % align:
            raise TableError("partition %s at 0x%x is not aligned to 0x%x"
                             % (p.name, p.offset, align))
        if p.offset < TABLE_OFFSET + 0x1000:
            raise TableError("partition %s at 0x%x overlaps the table's sector at 0x%x"
                             % (p.name, p.offset, TABLE_OFFSET))
        if p.offset + p.size > flash_size:
            raise TableError("partition %s ends at 0x%x, past the %d MB of flash (the bootloader "
                             "refuses the table)" % (p.name, p.offset + p.size, flash_size // MB))
    ordered = sorted(parts, key=lambda p: p.offset)
    for a, b in zip(ordered, ordered[1:]):
        if b.offset < a.offset + a.size:
            raise TableError("partitions %s (0x%x-0x%x) and %s (at 0x%x) overlap"
                             % (a.name, a.offset, a.offset + a.size, b.name, b.offset))
    if (len(parts) + 1) * _ENTRY.size > TABLE_LEN:
        raise TableError("%d partitions do not fit in 0x%x bytes" % (len(parts), TABLE_LEN))


def to_binary(parts):
    """The table as the bootloader reads it at 0x8000: entries, MD5 entry, 0xFF padding."""
    entries = b"".join(_ENTRY.pack(_MAGIC, p.type, p.subtype, p.offset, p.size,
                                   p.name.encode(), p.flags) for p in parts)
    table = entries + _MD5_MAGIC + b"\xff" * 14 + hashlib.md5(entries).digest()
    return table + b"\xff" * (TABLE_LEN - len(table))


def parse(data):
    """The partitions of a binary table (as written at 0x8000), its MD5 entry checked.

    Raises TableError when the bytes are not a valid table."""
    parts, md5_seen = [], False
    for at in range(0, min(len(data), TABLE_LEN) - _ENTRY.size + 1, _ENTRY.size):
        raw = data[at:at + _ENTRY.size]
        if raw == _END:
            if not parts:
                raise TableError("the partition table is empty")
            return parts
        if raw[:2] == _MD5_MAGIC:
            if md5_seen or raw[16:] != hashlib.md5(data[:at]).digest():
                raise TableError("the partition table's MD5 entry does not match its entries")
            md5_seen = True
            continue
        magic, ptype, subtype, offset, size, label, flags = _ENTRY.unpack(raw)
        if magic != _MAGIC or md5_seen:
            raise TableError("no partition entry at table byte 0x%x" % at)
        parts.append(Partition(label.rstrip(b"\x00").decode("ascii", "replace"), ptype,
                               subtype, offset, size, flags))
    raise TableError("the partition table has no end marker")


def to_csv(parts, board=None):
    """The table in ESP-IDF's CSV columns, with a comment on where vfs goes."""
    lines = ["# ESP-IDF partition table%s: MicroPython v1.28.0's partitions-4MiBplus.csv"
             % (" for " + board if board else "")]
    romfs = [p for p in parts if p.name == ROMFS_LABEL]
    if romfs:
        lines.append("# plus romfs (%d KB), where the stock vfs began." % (romfs[0].size // KB))
    if board and not any(p.name == VFS_LABEL for p in parts):
        offset, size = vfs_region(parts, BOARDS[board].flash)
        lines.append("# No vfs entry: MicroPython >= 1.26 creates it at boot, 0x%x to the end of "
                     "flash" % offset)
        lines.append("# (%d KB with %d MB of flash)." % (size // KB, BOARDS[board].flash // MB))
    lines.append("# Name,   Type, SubType, Offset,   Size,     Flags")
    for p in parts:
        subtype = SUBTYPE_NAMES.get((p.type, p.subtype), "0x%02x" % p.subtype)
        cells = [p.name + ",", TYPE_NAMES.get(p.type, "0x%02x" % p.type) + ",", subtype + ",",
                 "0x%x," % p.offset, "0x%x," % p.size]
        widths = (10, 6, 9, 10, 10)
        lines.append("".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
                     + (" 0x%x" % p.flags if p.flags else ""))
    return "\n".join(lines) + "\n"


def _romfs_kb(text):
    try:
        return int(text, 10)
    except ValueError:
        raise TableError("--romfs-kb must be a whole number of KB, not %r" % text)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tools.partitions",
        description="The ESP32 partition table with a romfs partition for a board profile "
                    "(MicroPython v1.28.0's layout, romfs where vfs began; vfs shrinks by it).")
    parser.add_argument("--board", required=True, help="board profile: " + ", ".join(BOARDS))
    parser.add_argument("--romfs-kb", default=str(DEFAULT_ROMFS_KB),
                        help="romfs size in KB, a multiple of 64 (default %(default)s)")
    parser.add_argument("--out", type=Path, help="write the binary table (0xC00 bytes) here")
    parser.add_argument("--csv", action="store_true",
                        help="print the table as ESP-IDF CSV (the default without --out)")
    args = parser.parse_args(argv)
    try:
        parts = layout(args.board, _romfs_kb(args.romfs_kb))
    except TableError as e:
        print("partitions: %s" % e, file=sys.stderr)
        return 2
    if args.out:
        try:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_bytes(to_binary(parts))
        except OSError as e:
            print("partitions: cannot write %s: %s" % (args.out, e.strerror), file=sys.stderr)
            return 2
    if args.csv or not args.out:
        sys.stdout.write(to_csv(parts, args.board))
    return 0


if __name__ == "__main__":
    sys.exit(main())
