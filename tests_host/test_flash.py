"""tools/flash.py without a board: the image checks on synthetic images built with the real ESP
header layout, the commands --dry-run prints, the chip-id output parser on the lines esptool 5
prints, the flashing sequence with esptool faked, and the pinned esptool as a peer (its
subcommands exist, its image parser and chip tables agree with ours)."""

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


def esp_image(chip_id, *, offset=0x1000, partition_table=True):
    """A full image as MicroPython's makeimg.py lays it out: a bootloader image (header, one
    segment, checksum, SHA-256), 0xFF up to flash 0x8000, then a partition table entry."""
    segment = bytes(range(1, 17))
    image = struct.pack("<BBBBI", 0xE9, 1, 2, 0x20, 0x40080400)  # 1 segment, DIO, 4 MB 40 MHz
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
        image += struct.pack("<2sBBII16sI", b"\xaa\x50", 0, 0, 0x10000, 0x1F0000, b"factory", 0)
    return image


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


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

def test_dry_run_esp32(tmp_path, capsys):
    firmware = write(tmp_path, "fw.bin", esp_image(0))
    status, out, _ = dry_run(capsys, firmware, "esp32_devkitc")
    assert status == 0
    assert [shlex.split(line) for line in out] == [
        ESPTOOL + ["--port", PORT, "chip-id"],
        ESPTOOL + ["--chip", "esp32", "--port", PORT, "erase-flash"],
        ESPTOOL + ["--chip", "esp32", "--port", PORT, "--baud", "460800",
                   "write-flash", "0x1000", str(firmware)],
    ]


def test_dry_run_s3_no_erase_and_baud(tmp_path, capsys):
    firmware = write(tmp_path, "fw s3.bin", esp_image(9, offset=0))
    status, out, _ = dry_run(capsys, firmware, "esp32_s3_devkitc", "--no-erase",
                             "--baud", "921600")
    assert status == 0
    assert [shlex.split(line) for line in out] == [
        ESPTOOL + ["--port", PORT, "chip-id"],
        ESPTOOL + ["--chip", "esp32s3", "--port", PORT, "--baud", "921600",
                   "write-flash", "0x0", str(firmware)],
    ]


def test_a_new_board_is_one_table_row(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(flash.BOARDS, "esp32_c3_devkitm", ("esp32c3", 0x0))
    firmware = write(tmp_path, "c3.bin", esp_image(5, offset=0))
    status, out, _ = dry_run(capsys, firmware, "esp32_c3_devkitm", "--no-erase")
    assert status == 0
    assert shlex.split(out[-1]) == ESPTOOL + ["--chip", "esp32c3", "--port", PORT, "--baud",
                                              "460800", "write-flash", "0x0", str(firmware)]


def test_unknown_board_is_an_argparse_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        flash.main(["--port", PORT, "--firmware", "x.bin", "--board", "sim", "--dry-run"])
    assert e.value.code == 2


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
    def __init__(self, chip_output, fail=None, status=1):
        self.chip_output = chip_output
        self.fail = fail
        self.status = status
        self.ran = []

    def __call__(self, command, *, capture=False):
        sub = flash._subcommand(command)
        self.ran.append(sub)
        if sub == self.fail:
            return self.status, ""
        return 0, self.chip_output if capture else ""


def flash_for_real(tmp_path, fake, *extra):
    firmware = write(tmp_path, "fw.bin", esp_image(0))
    return flash.main(["--port", PORT, "--firmware", str(firmware), "--board", "esp32_devkitc",
                       *extra], run=fake)


def test_flashes_after_asking_the_chip(tmp_path):
    fake = FakeEsptool(ESP32_VERBOSE_OUTPUT)
    assert flash_for_real(tmp_path, fake) == 0
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
])
def test_esptool_failure_exits_with_its_status_and_a_hint(tmp_path, capsys, fail, ran):
    fake = FakeEsptool(ESP32_VERBOSE_OUTPUT, fail=fail, status=7)
    assert flash_for_real(tmp_path, fake) == 7
    assert fake.ran == ran
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "esptool %s failed (exit 7)" % fail in err and "dialout" in err and "BOOT" in err


def test_no_erase_skips_it(tmp_path):
    fake = FakeEsptool(ESP32_VERBOSE_OUTPUT)
    assert flash_for_real(tmp_path, fake, "--no-erase") == 0
    assert fake.ran == ["chip-id", "write-flash"]


# -- the pinned esptool as a peer -------------------------------------------------------------

@pytest.mark.parametrize("subcommand", ["chip-id", "erase-flash", "write-flash"])
def test_subcommands_exist_in_pinned_esptool(subcommand):
    done = subprocess.run(ESPTOOL + [subcommand, "--help"], capture_output=True, text=True,
                          timeout=60)
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
