"""tools/partitions.py against a peer: esp-idf-defs (pinned in requirements.txt), an extract of
ESP-IDF's own gen_esp32part.py, reads the binary tables (MD5 checked) and the CSV, and verifies
them (alignment, overlaps, labels); the bytes ESP-IDF's docs fix (API Guides, "Partition
Tables": 32-byte entries, the MD5 entry, 0xFF to 0xC00) are checked here byte by byte; the
vfs partition MicroPython creates at boot is computed with its own rule (ports/esp32/main.c)."""

import hashlib
import re
import struct
from pathlib import Path

import pytest
from esp_idf_defs.partitions import InputError, PartitionTable

from tools import flash, partitions

ROOT = Path(__file__).resolve().parents[1]
KB, MB = 1024, 1024 * 1024

# MicroPython v1.28.0, ports/esp32/partitions-4MiBplus.csv, as the release has it: the table of
# both ESP32_GENERIC and ESP32_GENERIC_S3 (boards/sdkconfig.base).
STOCK_CSV = """\
# Name,   Type, SubType, Offset,  Size, Flags
nvs,      data, nvs,     0x9000,  0x6000,
phy_init, data, phy,     0xf000,  0x1000,
factory,  app,  factory, 0x10000, 0x1F0000,
"""
# The boards' flash: ESP32-WROOM-32 4 MB; ESP32-S3-DevKitC-1 N8 8 MB. The stock images' header
# says 4 MB for both, and the bootloader holds the table to that.
FLASH = {"esp32_devkitc": 4 * MB, "esp32_s3_devkitc": 8 * MB}
HEADER_FLASH = 4 * MB


def rows(table):
    return [(p.name, p.type, p.subtype, p.offset, p.size) for p in table]


def peer(binary):
    table = PartitionTable.from_binary(binary)
    table.verify(partition_table_offset=0x8000)
    table.verify_size_fits(HEADER_FLASH)
    return table


def micropython_vfs(table, flash_size):
    """The "vfs" partition MicroPython >= 1.26 registers when the table has none: from the end
    of the last partition to the end of flash (main.c, boardctrl_startup)."""
    assert "vfs" not in [p.name for p in table]
    end = max(p.offset + p.size for p in table)
    return end, flash_size - end


STOCK = rows(PartitionTable.from_csv(STOCK_CSV))


def build(board, romfs_kb=None):
    kb = partitions.DEFAULT_ROMFS_KB if romfs_kb is None else romfs_kb
    return partitions.to_binary(partitions.layout(board, kb))


# -- the tables, read by the peer -------------------------------------------------------------

@pytest.mark.parametrize("board", sorted(FLASH))
@pytest.mark.parametrize("romfs_kb", [64, 256, 384, 1536])
def test_table_is_the_stock_one_plus_romfs(board, romfs_kb):
    table = peer(build(board, romfs_kb))
    assert rows(table)[:3] == STOCK
    assert rows(table)[3:] == [("romfs", 0x01, 0x8F, 0x200000, romfs_kb * KB)]
    romfs = table["romfs"]
    # The port maps the whole partition (esp_partition_mmap) in 64 KB MMU pages.
    assert romfs.offset % 0x10000 == 0 and romfs.size % 0x10000 == 0
    assert not romfs.encrypted and not romfs.readonly


@pytest.mark.parametrize("board", sorted(FLASH))
def test_vfs_shrinks_by_the_romfs_and_nothing_else(board):
    stock = PartitionTable.from_csv(STOCK_CSV)
    for romfs_kb in (64, 256, 1536):
        ours = peer(build(board, romfs_kb))
        stock_vfs, our_vfs = micropython_vfs(stock, FLASH[board]), micropython_vfs(ours,
                                                                                   FLASH[board])
        assert stock_vfs == (0x200000, FLASH[board] - 0x200000)
        assert our_vfs == (stock_vfs[0] + romfs_kb * KB, stock_vfs[1] - romfs_kb * KB)
        assert our_vfs[1] >= 512 * KB
        assert partitions.vfs_region(partitions.layout(board, romfs_kb), FLASH[board]) == our_vfs


@pytest.mark.parametrize("board", sorted(FLASH))
def test_bytes_as_esp_idf_documents_them(board):
    data = build(board)
    assert len(data) == 0xC00
    entries = [data[i:i + 32] for i in range(0, 4 * 32, 32)]
    for entry in entries:
        assert entry[:2] == b"\xaa\x50"
        label = entry[12:28]
        assert label.rstrip(b"\x00").isascii() and b"\x00" in label  # NUL-padded, at most 15
        assert struct.unpack_from("<I", entry, 28)[0] == 0  # flags: not encrypted, not readonly
    md5 = data[4 * 32:5 * 32]
    assert md5 == b"\xeb\xeb" + b"\xff" * 14 + hashlib.md5(data[:4 * 32]).digest()
    assert data[5 * 32:] == b"\xff" * (0xC00 - 5 * 32)
    assert struct.unpack_from("<BBII", data, 3 * 32 + 2) == (0x01, 0x8F, 0x200000, 0x40000)


@pytest.mark.parametrize("board", sorted(FLASH))
def test_csv_and_binary_agree_through_the_peer(board, capsys):
    assert partitions.main(["--board", board, "--csv"]) == 0
    text = capsys.readouterr().out
    assert PartitionTable.from_csv(text).to_binary() == build(board)
    assert "0x%x" % micropython_vfs(peer(build(board)), FLASH[board])[0] in text


def test_parse_reads_what_the_peer_writes():
    # v1.25.0's partitions-4MiB-romfs.csv, the port's own romfs layout, as ESP-IDF writes it.
    csv = STOCK_CSV.replace("0x1F0000", "0x1D0000") + (
        "romfs, data, 0x8f, 0x1E0000, 0x20000,\nvfs, data, fat, 0x200000, 0x200000,\n")
    theirs = PartitionTable.from_csv(csv)
    assert [tuple(p[:5]) for p in partitions.parse(theirs.to_binary())] == rows(theirs)


def test_parse_refuses_broken_tables():
    good = build("esp32_devkitc")
    bad_md5 = bytearray(good)
    bad_md5[4 * 32 + 20] ^= 0xFF
    no_end = good[:5 * 32] + bytes(0xC00 - 5 * 32)
    for data, reason in [(bytes(bad_md5), "MD5"), (no_end, "no partition entry"),
                         (b"\xff" * 0xC00, "empty"), (good[:5 * 32], "no end marker")]:
        with pytest.raises(partitions.TableError, match=reason):
            partitions.parse(data)
    with pytest.raises(InputError):  # the peer agrees on the MD5
        PartitionTable.from_binary(bytes(bad_md5))


# -- what check() refuses -------------------------------------------------------------------------

P = partitions.Partition
ROMFS = P("romfs", 1, 0x8F, 0x200000, 0x40000)


@pytest.mark.parametrize("extra, reason", [
    (P("romfs", 1, 0x8F, 0x1F0000, 0x40000), "overlap"),
    (P("romfs", 1, 0x8F, 0x201000, 0x40000), "not aligned to 0x10000"),
    (P("romfs", 1, 0x8F, 0x200000, 0x41000), "multiple of 64 KB"),
    (P("romfs", 1, 0x8F, 0x3F0000, 0x20000), "past the 4 MB"),
    (P("data", 1, 0x81, 0x240800, 0x1000), "not aligned to 0x1000"),
    (P("ota_0", 0, 0x10, 0x248000, 0x10000), "not aligned to 0x10000"),
    (P("nvs", 1, 0x02, 0x240000, 0x1000), "used twice"),
    (P("a_label_too_long", 1, 0x81, 0x240000, 0x1000), "1 to 15 bytes"),
    (P("early", 1, 0x81, 0x8000, 0x1000), "table's sector"),
])
def test_check_refuses(extra, reason):
    parts = list(partitions.STOCK) + ([ROMFS] if extra.name != "romfs" else []) + [extra]
    with pytest.raises(partitions.TableError, match=reason):
        partitions.check(parts, 4 * MB)


def test_check_accepts_what_it_builds():
    for board in FLASH:
        partitions.check(partitions.layout(board), HEADER_FLASH)


# -- the command line ------------------------------------------------------------------------

@pytest.mark.parametrize("args, reason", [
    (["--board", "sim"], "unknown board 'sim'"),
    (["--board", "esp32_devkitc", "--romfs-kb", "abc"], "whole number"),
    (["--board", "esp32_devkitc", "--romfs-kb", "0"], "positive"),
    (["--board", "esp32_devkitc", "--romfs-kb", "-64"], "positive"),
    (["--board", "esp32_devkitc", "--romfs-kb", "100"], "multiple of 64"),
    (["--board", "esp32_s3_devkitc", "--romfs-kb", "1600"], "at most --romfs-kb 1536"),
])
def test_bad_input_is_one_line_and_status_2(tmp_path, capsys, args, reason):
    out_file = tmp_path / "t.bin"
    assert partitions.main(args + ["--out", str(out_file)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and reason in err
    assert not out_file.exists()


def test_out_writes_the_binary_and_prints_nothing(tmp_path, capsys):
    out_file = tmp_path / "sub" / "t.bin"
    assert partitions.main(["--board", "esp32_s3_devkitc", "--romfs-kb", "384",
                            "--out", str(out_file)]) == 0
    assert capsys.readouterr().out == ""
    assert out_file.read_bytes() == build("esp32_s3_devkitc", 384)


def test_flash_and_partitions_know_the_same_boards():
    assert set(partitions.BOARDS) <= set(flash.BOARDS)
    for board in partitions.BOARDS:
        assert (ROOT / "boards" / (board + ".py")).exists()


# -- docs/romfs.md shows what the tool prints --------------------------------------------------

@pytest.mark.parametrize("board", sorted(FLASH))
def test_docs_show_the_current_table(board):
    doc = (ROOT / "docs" / "romfs.md").read_text()
    blocks = re.findall(r"```\n(# ESP-IDF partition table.*?)```", doc, re.S)
    wanted = partitions.to_csv(partitions.layout(board), board)
    assert wanted in blocks, "docs/romfs.md: paste `python -m tools.partitions --board %s`" % board
