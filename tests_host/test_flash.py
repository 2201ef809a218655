"""tools/flash.py without a board: the image checks on synthetic images built with the real ESP
header layout, the commands --dry-run prints, the chip-id output parser on the lines esptool 5
prints, the flashing sequence with esptool faked, and the pinned esptool as a peer (its
subcommands exist, its image parser and chip tables agree with ours). The ROMFS checks: what
makes an image unable to use the generated table, the table file (read with esp-idf-defs, an
extract of ESP-IDF's gen_esp32part.py), the read-back that guards --no-erase, and the ROMFS
detection on a real MicroPython build (the unix port in .venv)."""

import hashlib
import shlex
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tools import flash

ROOT = Path(__file__).resolve().parents[1]
PORT = "/dev/ttyUSB0"
ESPTOOL = [sys.executable, "-m", "esptool"]


# MicroPython v1.28.0, ports/esp32/partitions-4MiBplus.csv: (label, type, subtype, offset, size).
STOCK = [("nvs", 1, 2, 0x9000, 0x6000), ("phy_init", 1, 1, 0xF000, 0x1000),
         ("factory", 0, 0, 0x10000, 0x1F0000)]
# v1.25.0's partitions-4MiB-romfs.csv (no released board uses it): the factory app shrunk.
ROMFS_CSV_V125 = [("nvs", 1, 2, 0x9000, 0x6000), ("phy_init", 1, 1, 0xF000, 0x1000),
                  ("factory", 0, 0, 0x10000, 0x1D0000), ("romfs", 1, 0x8F, 0x1E0000, 0x20000),
                  ("vfs", 1, 0x81, 0x200000, 0x200000)]
BANNER = b"MicroPython v1.28.0 on 2026-04-06"


def table_bytes(entries):
    """A binary partition table as ESP-IDF documents it: entries, MD5 entry, 0xFF to 0xC00."""
    body = b"".join(struct.pack("<2sBBII16sI", b"\xaa\x50", ptype, subtype, offset, size,
                                label.encode(), 0)
                    for label, ptype, subtype, offset, size in entries)
    body += b"\xeb\xeb" + b"\xff" * 14 + hashlib.md5(body).digest()
    return body + b"\xff" * (0xC00 - len(body))


def esp_image(chip_id, *, offset=0x1000, partition_table=True, table=STOCK, romfs=True,
              banner=BANNER, flash_size=0x20):
    """A full image as MicroPython's makeimg.py lays it out: a bootloader image (header, one
    segment, checksum, SHA-256), 0xFF up to flash 0x8000, the partition table, 0xFF up to
    0x10000, then an app whose bytes hold the banner and the qstrs a ROMFS build has."""
    segment = bytes(range(1, 17))
    # 1 segment, DIO, flash size in the high nibble (0x20: 4 MB) and 40 MHz.
    image = struct.pack("<BBBBI", 0xE9, 1, 2, flash_size, 0x40080400)
    # wp_pin, 3 drive-strength bytes, chip ID (u16 at byte 12), min_rev, min/max_rev_full,
    # 4 reserved, append_digest.
    image += struct.pack("<BBBBHBHH4BB", 0xEE, 0, 0, 0, chip_id, 0, 0, 0, 0, 0, 0, 0, 1)
    image += struct.pack("<II", 0x3FFF0000, len(segment)) + segment
    checksum = 0xEF
    for byte in segment:
        checksum ^= byte
    image += b"\x00" * (15 - len(image) % 16) + bytes([checksum])  # last byte of a 16-byte row
    image += hashlib.sha256(image).digest()
    if partition_table:
        image += b"\xff" * (0x8000 - offset - len(image))
        image += table_bytes(table)
        image += b"\xff" * (0x10000 - offset - len(image))
        image += b"\xe9\x03\x02\x20" + bytes(28) + banner + b"\x00VfsLfs2\x00"
        if romfs:
            image += b"VfsRom\x00rom_ioctl\x00/rom/lib\x00"
    return image


@pytest.fixture(autouse=True)
def table_dir(tmp_path, monkeypatch):
    """The generated table (and the table read back) go to the test's folder, not out/."""
    monkeypatch.setattr(flash, "TABLE_DIR", tmp_path / "flash")
    return tmp_path / "flash"


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def read_peer(table):
    """The entries of a binary table as esp-idf-defs reads it (MD5 checked), verified."""
    from esp_idf_defs import PartitionTable

    parsed = PartitionTable.from_binary(table)
    parsed.verify(partition_table_offset=0x8000)
    return [(p.name, p.type, p.subtype, p.offset, p.size) for p in parsed]


def dry_run(capsys, firmware, board, *extra):
    status = flash.main(["--port", PORT, "--firmware", str(firmware), "--board", board,
                         "--dry-run", *extra])
    out, err = capsys.readouterr()
    return status, out.splitlines(), err


# -- the image's chip, from its header ------------------------------------------------------

@pytest.mark.parametrize("chip, chip_id", [("esp32", 0), ("esp32s3", 9), ("esp32c3", 5)])
def test_image_chip_read_from_extended_header(chip, chip_id):
    assert flash.image_chip(esp_image(chip_id)) == chip


def test_chip_id_is_a_little_endian_u16_at_byte_12():
    data = bytearray(esp_image(9))
    assert data[12:14] == b"\x09\x00"
    data[13] = 1  # 0x0109: no such chip, so the high byte must not be ignored
    with pytest.raises(ValueError, match="chip ID 265"):
        flash.image_chip(bytes(data))


@pytest.mark.parametrize("data, reason", [
    (b"", "is empty"),
    (b"\xe9\x01\x02", "too short"),
    (b"\x7fELF\x01\x01\x01" + bytes(40), "ELF"),
    (b"UF2\nWQ]\x9e" + bytes(40), "UF2"),
    (b"MicroPython v1.28.0 release notes\n" * 4, "first byte 0x4D, not 0xE9"),
])
def test_image_chip_refuses_what_is_not_an_esp_image(data, reason):
    with pytest.raises(ValueError, match=reason):
        flash.image_chip(data)


# -- the file checks through the CLI ------------------------------------------------------

@pytest.mark.parametrize("board, chip_id, offset", [
    ("esp32_devkitc", 0, 0x1000), ("esp32_s3_devkitc", 9, 0x0)])
def test_matching_image_accepted(tmp_path, capsys, board, chip_id, offset):
    firmware = write(tmp_path, "fw.bin", esp_image(chip_id, offset=offset))
    status, _, err = dry_run(capsys, firmware, board)
    assert (status, err) == (0, "")


def test_s3_image_refused_for_esp32_board(tmp_path, capsys):
    firmware = write(tmp_path, "ESP32_GENERIC_S3-v1.28.0.bin", esp_image(9, offset=0))
    status, out, err = dry_run(capsys, firmware, "esp32_devkitc")
    assert status == 2 and out == []
    assert err.count("\n") == 1
    assert "is a firmware image for esp32s3, but board esp32_devkitc has an esp32" in err
    assert "ESP32_GENERIC image" in err and str(firmware) in err


def test_esp32_image_refused_for_s3_board(tmp_path, capsys):
    firmware = write(tmp_path, "ESP32_GENERIC-v1.28.0.bin", esp_image(0))
    status, _, err = dry_run(capsys, firmware, "esp32_s3_devkitc")
    assert status == 2
    assert "for esp32, but board esp32_s3_devkitc has an esp32s3" in err
    assert "https://micropython.org/download/ESP32_GENERIC_S3/" in err


def test_c3_image_refused_for_esp32_board(tmp_path, capsys):
    status, _, err = dry_run(capsys, write(tmp_path, "c3.bin", esp_image(5)), "esp32_devkitc")
    assert status == 2 and "for esp32c3, but board esp32_devkitc has an esp32" in err


@pytest.mark.parametrize("data, reason", [
    (b"", "is empty"),
    (b"\xe9" + bytes(10), "too short"),
    (b"PK\x03\x04" + bytes(100), "not an ESP firmware image"),
])
def test_non_images_refused(tmp_path, capsys, data, reason):
    status, out, err = dry_run(capsys, write(tmp_path, "x.bin", data), "esp32_devkitc")
    assert status == 2 and out == [] and reason in err and err.count("\n") == 1


def test_app_only_image_refused(tmp_path, capsys):
    # micropython.bin of a build: a valid ESP32 image, but no partition table after it.
    firmware = write(tmp_path, "micropython.bin", esp_image(0, partition_table=False))
    status, _, err = dry_run(capsys, firmware, "esp32_devkitc")
    assert status == 2 and "no partition table" in err and "0x10000" in err


def test_image_built_for_the_other_offset_refused(tmp_path, capsys):
    # An ESP32 image laid out from 0x0 has its partition table 0x1000 too late for 0x1000.
    firmware = write(tmp_path, "fw.bin", esp_image(0, offset=0x0))
    status, _, err = dry_run(capsys, firmware, "esp32_devkitc")
    assert status == 2 and "file offset 0x7000" in err


def test_missing_file_refused(tmp_path, capsys):
    status, _, err = dry_run(capsys, tmp_path / "nope.bin", "esp32_devkitc")
    assert status == 2 and "no such file" in err and "ESP32_GENERIC" in err


# -- the commands ---------------------------------------------------------------------------

def test_dry_run_esp32(tmp_path, capsys, table_dir):
    firmware = write(tmp_path, "fw.bin", esp_image(0))
    status, out, _ = dry_run(capsys, firmware, "esp32_devkitc")
    assert status == 0
    table = table_dir / "partitions-esp32_devkitc.bin"
    assert [shlex.split(line) for line in out] == [
        ESPTOOL + ["--port", PORT, "chip-id"],
        ESPTOOL + ["--chip", "esp32", "--port", PORT, "erase-flash"],
        ESPTOOL + ["--chip", "esp32", "--port", PORT, "--baud", "460800", "--after", "no-reset",
                   "write-flash", "0x1000", str(firmware)],
        ESPTOOL + ["--chip", "esp32", "--port", PORT, "--baud", "460800",
                   "write-flash", "0x8000", str(table)],
    ]
    assert read_peer(table.read_bytes())[3] == ("romfs", 1, 0x8F, 0x200000, 0x40000)


def test_dry_run_s3_no_erase_and_baud(tmp_path, capsys, table_dir):
    firmware = write(tmp_path, "fw s3.bin", esp_image(9, offset=0))
    status, out, _ = dry_run(capsys, firmware, "esp32_s3_devkitc", "--no-erase",
                             "--baud", "921600", "--romfs-kb", "384")
    assert status == 0
    assert [shlex.split(line) for line in out] == [
        ESPTOOL + ["--port", PORT, "chip-id"],
        ESPTOOL + ["--chip", "esp32s3", "--port", PORT, "read-flash", "0x8000", "0xc00",
                   str(table_dir / "on-board-esp32_s3_devkitc.bin")],
        ESPTOOL + ["--chip", "esp32s3", "--port", PORT, "--baud", "921600", "--after",
                   "no-reset", "write-flash", "0x0", str(firmware)],
        ESPTOOL + ["--chip", "esp32s3", "--port", PORT, "--baud", "921600",
                   "write-flash", "0x8000", str(table_dir / "partitions-esp32_s3_devkitc.bin")],
    ]
    table = read_peer((table_dir / "partitions-esp32_s3_devkitc.bin").read_bytes())
    assert table[3] == ("romfs", 1, 0x8F, 0x200000, 384 * 1024)


def test_dry_run_no_romfs_is_the_image_alone(tmp_path, capsys, table_dir):
    firmware = write(tmp_path, "ESP32_GENERIC-v1.28.0.bin", esp_image(0, romfs=False))
    status, out, err = dry_run(capsys, firmware, "esp32_devkitc", "--no-romfs")
    assert (status, err) == (0, "")
    assert [shlex.split(line) for line in out] == [
        ESPTOOL + ["--port", PORT, "chip-id"],
        ESPTOOL + ["--chip", "esp32", "--port", PORT, "erase-flash"],
        ESPTOOL + ["--chip", "esp32", "--port", PORT, "--baud", "460800",
                   "write-flash", "0x1000", str(firmware)],
    ]
    assert not table_dir.exists()


def test_a_new_board_is_one_table_row(tmp_path, capsys, monkeypatch):
    # Without a layout in tools/partitions.py it goes on with the image's own table.
    monkeypatch.setitem(flash.BOARDS, "esp32_c3_devkitm", ("esp32c3", 0x0))
    firmware = write(tmp_path, "c3.bin", esp_image(5, offset=0))
    status, out, _ = dry_run(capsys, firmware, "esp32_c3_devkitm", "--no-erase", "--no-romfs")
    assert status == 0
    assert shlex.split(out[-1]) == ESPTOOL + ["--chip", "esp32c3", "--port", PORT, "--baud",
                                              "460800", "write-flash", "0x0", str(firmware)]


def test_unknown_board_is_an_argparse_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        flash.main(["--port", PORT, "--firmware", "x.bin", "--board", "sim", "--dry-run"])
    assert e.value.code == 2


# -- ROMFS: which images can take the generated table --------------------------------------

def refused(capsys, tmp_path, image, board="esp32_devkitc", *extra):
    firmware = write(tmp_path, "fw.bin", image)
    status, out, err = dry_run(capsys, firmware, board, *extra)
    assert status == 2 and out == [] and err.count("\n") == 1, (status, out, err)
    return err


@pytest.mark.parametrize("board, chip_id, offset", [
    ("esp32_devkitc", 0, 0x1000), ("esp32_s3_devkitc", 9, 0x0)])
def test_stock_image_without_romfs_refused_with_the_way_out(tmp_path, capsys, table_dir, board,
                                                           chip_id, offset):
    # What a micropython.org v1.28.0 image is: no MICROPY_VFS_ROM, so no VfsRom among its qstrs.
    image = esp_image(chip_id, offset=offset, romfs=False)
    err = refused(capsys, tmp_path, image, board)
    assert "cannot mount a ROMFS" in err and "v1.28.0" in err
    assert "`make firmware BOARD=%s ROMFS=1`" % board in err
    assert "`make firmware BOARD=%s`" % board in err and "FLASH_ARGS=--no-romfs" in err
    assert not table_dir.exists()
    status, _, err = dry_run(capsys, write(tmp_path, "fw.bin", image), board, "--no-romfs")
    assert (status, err) == (0, "")


def test_rom_ioctl_alone_is_not_enough(tmp_path, capsys):
    # The unix port's build shape: VfsRom without rom_ioctl (or the other way round).
    image = esp_image(0, romfs=False) + b"rom_ioctl\x00"
    assert "cannot mount a ROMFS" in refused(capsys, tmp_path, image)


def test_image_older_than_auto_vfs_refused(tmp_path, capsys):
    image = esp_image(0, banner=b"MicroPython v1.25.0 on 2025-04-15")
    err = refused(capsys, tmp_path, image)
    assert "v1.25.0" in err and "v1.26" in err
    assert "make firmware BOARD=esp32_devkitc ROMFS=1" in err


def test_development_build_without_a_version_accepted(tmp_path, capsys):
    image = esp_image(0, banner=b"MicroPython 9458e3a23f on 2026-07-05")
    status, _, err = dry_run(capsys, write(tmp_path, "fw.bin", image), "esp32_devkitc")
    assert (status, err) == (0, "")


def test_image_with_its_own_romfs_partition_refused(tmp_path, capsys):
    err = refused(capsys, tmp_path, esp_image(0, table=ROMFS_CSV_V125))
    assert "has a romfs partition in its own table" in err and "--no-romfs" in err


def test_image_with_another_layout_refused(tmp_path, capsys):
    bigger_app = STOCK[:2] + [("factory", 0, 0, 0x10000, 0x2F0000)]
    err = refused(capsys, tmp_path, esp_image(0, table=bigger_app))
    assert "not MicroPython's stock one" in err and "factory 0x10000+0x2f0000" in err
    assert "--no-romfs" in err


def test_image_with_a_broken_table_refused(tmp_path, capsys):
    image = bytearray(esp_image(0))
    image[0x8000 - 0x1000 + 0x60 + 16] ^= 1  # a bit of the MD5
    assert "MD5" in refused(capsys, tmp_path, bytes(image))


def test_table_past_the_headers_flash_size_refused(tmp_path, capsys):
    # A 2 MB header (the D2WD variant's): the bootloader would refuse romfs at 0x200000.
    err = refused(capsys, tmp_path, esp_image(0, flash_size=0x10))
    assert "declares 2 MB" in err and "romfs" in err


@pytest.mark.parametrize("kb, reason", [
    ("100", "multiple of 64"), ("0", "positive"), ("1600", "at most --romfs-kb 1536")])
def test_bad_romfs_size_refused(tmp_path, capsys, kb, reason):
    assert reason in refused(capsys, tmp_path, esp_image(0), "esp32_devkitc", "--romfs-kb", kb)


def test_flash_size_nibble_agrees_with_esptool():
    from esptool.targets import CHIP_DEFS

    for chip in ("esp32", "esp32s3"):
        for name, value in CHIP_DEFS[chip].FLASH_SIZES.items():
            if name.endswith("MB") and "-" not in name:
                data = bytes([0xE9, 1, 2, value])
                assert flash.image_flash_size(data) == int(name[:-2]) * 1024 * 1024, name


def test_romfs_names_found_in_a_real_build_as_it_answers():
    # The unix port in .venv is a real MicroPython build: the qstrs flash.py looks for are in
    # its bytes exactly when its vfs module has those names.
    import micropython_run

    data = Path(micropython_run.__file__).read_bytes()
    micropython = Path(sys.executable).with_name("micropython")
    done = subprocess.run([str(micropython), "-c",
                           "import vfs; print(hasattr(vfs, 'VfsRom'), hasattr(vfs, 'rom_ioctl'))"],
                          capture_output=True, text=True, timeout=60)
    answers = done.stdout.split()
    assert answers in (["True", "False"], ["True", "True"], ["False", "False"]), done
    assert [q in data for q in flash._ROMFS_QSTRS] == [a == "True" for a in answers]
    assert b"MicroPython " in data


# -- what esptool 5 prints while connecting -------------------------------------------------

# Shapes from esptool 5.6: cmds.py detect_chip ("Detecting chip type..." then, on the same line,
# " " + CHIP_NAME), __init__.py ("Connected to ... on ...:", f"{'Chip type:':<20}..."), and
# the targets' get_chip_description.
S3_CHIP_ID_OUTPUT = """esptool v5.6.0
Connected to ESP32-S3 on /dev/ttyACM0:
Chip type:          ESP32-S3 (QFN56) (revision v0.2)
Features:           Wi-Fi, BT 5 (LE), Dual Core + LP Core, 240MHz, Embedded PSRAM 8MB (AP_3v3)
Crystal frequency:  40MHz
USB mode:           USB-Serial/JTAG
MAC:                f4:12:fa:43:65:70

Warning: ESP32-S3 has no chip ID. Reading MAC address instead.
MAC:                f4:12:fa:43:65:70

Hard resetting via RTS pin...
"""

ESP32_VERBOSE_OUTPUT = """esptool v5.6.0
Serial port /dev/ttyUSB0:
Connecting.....
Detecting chip type... ESP32
Connected to ESP32 on /dev/ttyUSB0:
Chip type:          ESP32-D0WD-V3 (revision v3.1)
"""


@pytest.mark.parametrize("text, chip", [
    (S3_CHIP_ID_OUTPUT, "esp32s3"),
    (ESP32_VERBOSE_OUTPUT, "esp32"),
    ("Connecting....\nDetecting chip type... ESP32-C3\n", "esp32c3"),
    ("Detecting chip type... Autodetection failed, trying again...\n"
     "Detecting chip type... ESP32-S2\n", "esp32s2"),
    ("\x1b[1mConnected to ESP32-C6 on COM3:\x1b[0m\n", "esp32c6"),
    # "Chip type:" alone: the package description, or the bare name in Secure Download Mode.
    ("Chip type:          ESP32-D0WD-V3 (revision v3.1)\n", "esp32"),
    ("Chip type:          ESP32-S0WD (revision v1.0)\n", "esp32"),
    ("Chip type:          ESP32-PICO-V3-02 (revision v3.0)\n", "esp32"),
    ("Chip type:          Unknown ESP32 (revision v3.1)\n", "esp32"),
    ("Chip type:          ESP32-S3-PICO-1 (LGA56) (revision v0.2)\n", "esp32s3"),
    ("Chip type:          ESP32-S3 in Secure Download Mode\n", "esp32s3"),
    ("Chip type:          ESP32-C3 (QFN32) (revision v0.4)\n", "esp32c3"),
    ("Chip type:          ESP8685 (QFN28) (revision v0.4)\n", "esp32c3"),
    ("Chip type:          ESP32-C61NF4R2 (revision v1.0)\n", "esp32c61"),
    ("Chip type:          ESP32-C6FH4 (QFN32) (revision v0.1)\n", "esp32c6"),
    ("Chip type:          ESP32-S2FH4 (revision v0.0)\n", "esp32s2"),
])
def test_chip_from_esptool_output(text, chip):
    assert flash.chip_from_esptool_output(text) == chip


@pytest.mark.parametrize("text", [
    "",
    "A fatal error occurred: Could not open /dev/ttyUSB0, the port is busy or doesn't exist.\n",
    "Detecting chip type... Unexpected chip ID value 99.\n",
    "Chip type:          ESP8266EX\n",
])
def test_chip_from_esptool_output_none(text):
    assert flash.chip_from_esptool_output(text) is None


# -- the sequence, with esptool faked --------------------------------------------------------

class FakeEsptool:
    def __init__(self, chip_output, fail=None, status=1, board_table=b"\xff" * 0xC00):
        self.chip_output = chip_output
        self.fail = fail
        self.status = status
        self.board_table = board_table
        self.ran = []

    def __call__(self, command, *, capture=False):
        sub = flash._subcommand(command)
        self.ran.append(sub)
        if sub == self.fail:
            return self.status, ""
        if sub == "read-flash":
            Path(command[-1]).write_bytes(self.board_table)
        return 0, self.chip_output if capture else ""


def flash_for_real(tmp_path, fake, *extra, image=None):
    firmware = write(tmp_path, "fw.bin", image or esp_image(0))
    return flash.main(["--port", PORT, "--firmware", str(firmware), "--board", "esp32_devkitc",
                       *extra], run=fake)


def test_flashes_after_asking_the_chip(tmp_path, capsys):
    fake = FakeEsptool(ESP32_VERBOSE_OUTPUT)
    assert flash_for_real(tmp_path, fake) == 0
    assert fake.ran == ["chip-id", "erase-flash", "write-flash", "write-flash"]
    out = capsys.readouterr().out
    assert "romfs partition 256 KB at 0x200000" in out and "make provision" in out


def test_no_romfs_flashes_the_image_alone(tmp_path):
    fake = FakeEsptool(ESP32_VERBOSE_OUTPUT)
    assert flash_for_real(tmp_path, fake, "--no-romfs") == 0
    assert fake.ran == ["chip-id", "erase-flash", "write-flash"]


def test_wrong_chip_on_the_port_writes_nothing(tmp_path, capsys):
    fake = FakeEsptool(S3_CHIP_ID_OUTPUT)
    assert flash_for_real(tmp_path, fake) == 2
    assert fake.ran == ["chip-id"]
    err = capsys.readouterr().err
    assert "is an esp32s3, but board esp32_devkitc has an esp32" in err


def test_unreadable_chip_output_writes_nothing(tmp_path):
    fake = FakeEsptool("something else entirely\n")
    assert flash_for_real(tmp_path, fake) == 2 and fake.ran == ["chip-id"]


@pytest.mark.parametrize("fail, ran", [
    ("chip-id", ["chip-id"]),
    ("erase-flash", ["chip-id", "erase-flash"]),
    ("write-flash", ["chip-id", "erase-flash", "write-flash"]),
    ("read-flash", ["chip-id", "read-flash"]),
])
def test_esptool_failure_exits_with_its_status_and_a_hint(tmp_path, capsys, fail, ran):
    fake = FakeEsptool(ESP32_VERBOSE_OUTPUT, fail=fail, status=7)
    extra = ["--no-erase"] if fail == "read-flash" else []
    assert flash_for_real(tmp_path, fake, *extra) == 7
    assert fake.ran == ran
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "esptool %s failed (exit 7)" % fail in err and "dialout" in err and "BOOT" in err


def test_no_erase_keeps_files_when_the_board_has_the_same_table(tmp_path, table_dir):
    fake = FakeEsptool(ESP32_VERBOSE_OUTPUT, board_table=table_bytes(
        STOCK + [("romfs", 1, 0x8F, 0x200000, 0x40000)]))
    assert flash_for_real(tmp_path, fake, "--no-erase") == 0
    assert fake.ran == ["chip-id", "read-flash", "write-flash", "write-flash"]


def test_no_erase_refused_when_the_table_would_move_the_filesystem(tmp_path, capsys):
    # A board on the stock layout: its littlefs begins at 0x200000, where romfs would go.
    fake = FakeEsptool(ESP32_VERBOSE_OUTPUT, board_table=table_bytes(STOCK))
    assert flash_for_real(tmp_path, fake, "--no-erase") == 2
    assert fake.ran == ["chip-id", "read-flash"]
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "another partition table" in err and "without --no-erase" in err


def test_no_erase_no_romfs_compares_with_the_images_own_table(tmp_path):
    fake = FakeEsptool(ESP32_VERBOSE_OUTPUT, board_table=table_bytes(STOCK))
    assert flash_for_real(tmp_path, fake, "--no-erase", "--no-romfs") == 0
    assert fake.ran == ["chip-id", "read-flash", "write-flash"]
    fake = FakeEsptool(ESP32_VERBOSE_OUTPUT, board_table=table_bytes(
        STOCK + [("romfs", 1, 0x8F, 0x200000, 0x40000)]))
    assert flash_for_real(tmp_path, fake, "--no-erase", "--no-romfs") == 2
    assert fake.ran == ["chip-id", "read-flash"]


# -- the pinned esptool as a peer -------------------------------------------------------------

@pytest.mark.parametrize("subcommand", ["chip-id", "erase-flash", "write-flash", "read-flash"])
def test_subcommands_exist_in_pinned_esptool(subcommand):
    # --after no-reset, as the firmware's write-flash passes it, must parse too.
    done = subprocess.run(ESPTOOL + ["--after", "no-reset", subcommand, "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert subcommand in done.stdout


def test_chip_tables_match_esptool():
    from esptool.targets import CHIP_DEFS

    ours = dict(flash.CHIPS)
    theirs = {chip: (cls.IMAGE_CHIP_ID, cls.CHIP_NAME)
              for chip, cls in CHIP_DEFS.items() if chip != "esp8266"}
    assert ours == theirs
    for board, (chip, offset) in flash.BOARDS.items():
        assert (ROOT / "boards" / (board + ".py")).exists()
        assert offset == CHIP_DEFS[chip].BOOTLOADER_FLASH_OFFSET


@pytest.mark.parametrize("chip, chip_id", [("esp32", 0), ("esp32s3", 9), ("esp32c3", 5)])
def test_esptool_image_parser_agrees(chip, chip_id):
    from esptool.bin_image import LoadFirmwareImage
    from esptool.targets import CHIP_DEFS

    data = esp_image(chip_id)
    assert flash.image_chip(data) == chip
    image = LoadFirmwareImage(chip, data)
    assert image.chip_id == CHIP_DEFS[chip].IMAGE_CHIP_ID
    assert len(image.segments) == 1
    assert image.checksum == image.calculate_checksum()
    assert image.stored_digest == image.calc_digest
