"""Builds MicroPython v1.28.0 for a board, with the terminal frozen in or able to mount a ROMFS
(make firmware [ROMFS=1]).

    python -m tools.firmware --board esp32_devkitc [--romfs] [--micropython out/micropython]
        [--variant SPIRAM_OCT] [--builder auto|idf|docker] [--out build/firmware] [--dry-run]

By default firmware/, drivers/ and the board's profiles are frozen with MicroPython's manifest
(boards/manifests/BOARD.py, which includes manifest.py): frozen code runs from flash, where
code imported from .mpy files is copied into the heap. main.py and boot.py stay on the
filesystem (docs/firmware.md says how they get there).

With --romfs nothing of ours is frozen (the port's own manifest only) and the image has
MICROPY_VFS_ROM, which no micropython.org ESP32 image has: it mounts the "romfs" partition that
`make flash` writes, where `make deploy CODE=romfs` puts the code (docs/romfs.md). MicroPython
takes that setting from a board folder, so the tool writes one of its own, OUT/boards/
BOARD_ROMFS (e.g. ESP32_GENERIC_ROMFS), and builds with BOARD_DIR= (ports/esp32/Makefile): a
few lines that include the stock board's files by path from the checkout, define
MICROPY_VFS_ROM and keep the stock partition table (partitions-4MiBplus.csv), which
`make flash` checks and then replaces with tools/partitions.py's.

1. Finds a builder: ESP-IDF on this PC (IDF_PATH set and idf.py on PATH, as after
   `. $IDF_PATH/export.sh`), else Docker with Espressif's espressif/idf image if its engine
   answers (`docker version`); with neither it stops and says what to install.
2. Clones MicroPython at v1.28.0 into --micropython unless a checkout is there, and checks that
   the checkout is at that tag (`git describe`): a checkout at another version is refused.
3. Builds mpy-cross, the port's submodules and the image (`make -C ports/esp32 BOARD=...
   FROZEN_MANIFEST=...`, or `BOARD_DIR=...` for --romfs) in
   ports/esp32/build-BOARD[-romfs][-VARIANT], one build folder per board profile and kind
   (MicroPython's build only regenerates frozen code when a frozen file is newer).
4. Checks the image is a full one for the board's chip (tools/flash.py's check; for --romfs
   also the one `make flash` makes before writing its table) and copies it to
   build/firmware/BOARD-frozen.bin (BOARD-romfs.bin), then prints the `make flash` line.

`--dry-run` prints every command, one per line (for --romfs the board folder's files as
`cat > FILE <<'EOF'` commands), and runs none: it only looks for idf.py and asks Docker
whether its engine answers, to choose between them.

Exit status: 0 done; 2 refused (nothing to build with, wrong checkout, wrong image); otherwise
the failing command's own status.
"""

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from tools import flash

ROOT = Path(__file__).resolve().parents[1]
MICROPYTHON_TAG = "v1.28.0"
MICROPYTHON_URL = "https://github.com/micropython/micropython.git"
DEFAULT_SRC = ROOT / "out" / "micropython"
DEFAULT_OUT = ROOT / "build" / "firmware"
# ports/esp32/README.md at v1.28.0: v5.5.1 recommended, v5.3 to v5.4.2 supported;
# main/idf_component.yml refuses anything older than 5.3.0.
IDF_VERSION = "v5.5.1"
IDF_SUPPORTED = ((5, 3, 0), (5, 4, 0), (5, 4, 1), (5, 4, 2), (5, 5, 1))
IDF_OLDEST = IDF_SUPPORTED[0]
# The table ESP32_GENERIC and ESP32_GENERIC_S3 use (boards/sdkconfig.base): tools/partitions.py's
# STOCK, which `make flash` requires of an image before writing its own.
STOCK_PARTITIONS = "partitions-4MiBplus.csv"
DOCKER_IMAGE = "espressif/idf:" + IDF_VERSION
# Where the container sees the MicroPython checkout, this repository and the ROMFS board folder.
DOCKER_MPY, DOCKER_PROJECT, DOCKER_BOARD = "/micropython", "/project", "/board"
_PROBE_TIMEOUT_S = 20


class Refused(Exception):
    """Nothing was built; the message is the one line the maker reads."""


def micropython_board(board):
    """MicroPython's BOARD for a board profile: the official download tools/flash.py names."""
    chip = flash.BOARDS[board][0]
    return flash.DOWNLOADS[chip]


def manifest_path(board):
    return ROOT / "boards" / "manifests" / (board + ".py")


def image_name(board, romfs=False):
    return "%s-%s.bin" % (board, "romfs" if romfs else "frozen")


def build_dir(board, variant=None, romfs=False):
    """The port's build folder, relative to ports/esp32: one per board profile, kind and
    variant."""
    return "build-%s%s%s" % (board, "-romfs" if romfs else "", "-" + variant if variant else "")


def romfs_board_name(board):
    """The name of the board folder --romfs writes; the build reports it in
    sys.implementation._build."""
    return micropython_board(board) + "_ROMFS"


def romfs_board_dir(board, out=DEFAULT_OUT):
    return Path(out).resolve() / "boards" / romfs_board_name(board)


def romfs_board_files(board, variant=None):
    """{file name: text} of the board folder for --romfs. Nothing of MicroPython's is copied:
    its files are included by path from the checkout the build runs in."""
    stock = "boards/" + micropython_board(board)
    head = "Written by tools/firmware.py (make firmware ROMFS=1): %s with ROMFS." % stock
    files = {
        "mpconfigboard.cmake": (
            "# %s\n"
            "# The stock board's IDF_TARGET and sdkconfig files (CMAKE_SOURCE_DIR: ports/esp32).\n"
            "include(${CMAKE_SOURCE_DIR}/%s/mpconfigboard.cmake)\n"
            "# After the stock board's sdkconfig files, so that its partition table wins.\n"
            "list(APPEND SDKCONFIG_DEFAULTS ${MICROPY_BOARD_DIR}/sdkconfig.romfs)\n"
            % (head, stock)),
        "mpconfigboard.h": (
            "// %s\n"
            "// The stock board's settings (ports/esp32 is on the include path).\n"
            "#include \"%s/mpconfigboard.h\"\n"
            "// vfs.VfsRom and vfs.rom_ioctl: the partition labelled romfs is mounted at /rom.\n"
            "#define MICROPY_VFS_ROM (1)\n"
            % (head, stock)),
        "sdkconfig.romfs": (
            "# %s\n"
            "# The stock table (nvs, phy_init, factory 0x1F0000), which make flash checks and\n"
            "# replaces with tools/partitions.py's (romfs at 0x200000); not the port's\n"
            "# partitions-4MiB-romfs.csv, whose app partition is 128 KB smaller.\n"
            "CONFIG_PARTITION_TABLE_CUSTOM=y\n"
            "CONFIG_PARTITION_TABLE_CUSTOM_FILENAME=\"%s\"\n"
            % (head, STOCK_PARTITIONS)),
    }
    if variant:
        files["mpconfigvariant_%s.cmake" % variant] = (
            "# %s\n"
            "# The stock board's variant, as BOARD_VARIANT=%s gives it.\n"
            "include(${CMAKE_SOURCE_DIR}/%s/mpconfigvariant_%s.cmake)\n"
            % (head, variant, stock, variant))
    return files


def write_board_folder(folder, files):
    """Writes `files` into `folder`, leaving a file whose text is the same untouched (a newer
    mpconfigboard.h would rebuild everything) and removing any other file."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in folder.iterdir():
        if path.name not in files:
            path.unlink()
    for name, text in files.items():
        path = folder / name
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)


def board_folder_commands(folder, files):
    """The board folder as shell lines, for --dry-run."""
    lines = [shlex.join(["mkdir", "-p", str(folder)])]
    for name, text in files.items():
        lines += ["cat > %s <<'EOF'" % shlex.quote(str(folder / name)), text + "EOF"]
    return lines


def run_command(cmd, capture=False, timeout=None):
    """Runs cmd (output passed through unless captured); returns (status, captured stdout)."""
    sys.stdout.flush()
    try:
        result = subprocess.run(cmd, capture_output=capture, text=True, timeout=timeout)
    except FileNotFoundError:
        return 127, ""
    except subprocess.TimeoutExpired:
        return 124, ""
    return result.returncode, (result.stdout or "") if capture else ""


def idf_version(idf_path):
    """(major, minor, patch) from $IDF_PATH/tools/cmake/version.cmake, or None."""
    try:
        text = (Path(idf_path) / "tools" / "cmake" / "version.cmake").read_text()
    except OSError:
        return None
    parts = [re.search(r"set\(IDF_VERSION_%s\s+(\d+)\)" % name, text)
             for name in ("MAJOR", "MINOR", "PATCH")]
    return tuple(int(m.group(1)) for m in parts) if all(parts) else None


def _version_text(version):
    return "v" + ".".join(str(n) for n in version)


def local_idf():
    """None if the ESP-IDF of IDF_PATH can build, else why not (Refused if it is too old)."""
    idf_path = os.environ.get("IDF_PATH")
    if not idf_path:
        return "IDF_PATH is not set"
    if not shutil.which("idf.py"):
        return "IDF_PATH is set but idf.py is not on PATH (run . $IDF_PATH/export.sh)"
    version = idf_version(idf_path)
    if version is not None and version < IDF_OLDEST:
        raise Refused("ESP-IDF %s at %s is too old: MicroPython %s needs %s to %s (%s "
                      "recommended)" % (_version_text(version), idf_path, MICROPYTHON_TAG,
                                        _version_text(IDF_OLDEST),
                                        _version_text(IDF_SUPPORTED[-1]), IDF_VERSION))
    if version is not None and version not in IDF_SUPPORTED:
        print("firmware: ESP-IDF %s is not one MicroPython %s was tested with (%s); trying it"
              % (_version_text(version), MICROPYTHON_TAG,
                 ", ".join(_version_text(v) for v in IDF_SUPPORTED)), file=sys.stderr)
    return None


def docker_answers(run):
    """None if a Docker engine answers, else why not."""
    if not shutil.which("docker"):
        return "no docker command"
    status, _ = run(["docker", "version", "--format", "{{.Server.Version}}"], capture=True,
                    timeout=_PROBE_TIMEOUT_S)
    if status != 0:
        return "docker is installed but its engine does not answer (start it)"
    return None


def choose_builder(wanted, run):
    """'idf' or 'docker', or Refused naming what to install."""
    idf_why = "not asked for" if wanted == "docker" else local_idf()
    if idf_why is None:
        return "idf"
    if wanted == "idf":
        raise Refused("no ESP-IDF to build with: %s; install ESP-IDF %s "
                      "(docs/firmware.md)" % (idf_why, IDF_VERSION))
    docker_why = docker_answers(run)
    if docker_why is None:
        return "docker"
    if wanted == "docker":
        raise Refused("cannot build with Docker: %s" % docker_why)
    raise Refused("nothing to build MicroPython with: install ESP-IDF %s and run "
                  ". $IDF_PATH/export.sh, or Docker (it pulls %s); %s, %s"
                  % (IDF_VERSION, DOCKER_IMAGE, idf_why, docker_why))


def clone_command(src):
    return ["git", "clone", "--depth", "1", "--branch", MICROPYTHON_TAG, MICROPYTHON_URL,
            str(src)]


def tag_command(src):
    return ["git", "-C", str(src), "describe", "--tags", "--exact-match", "HEAD"]


def _make_args(board, variant, manifest=None, board_dir=None):
    if board_dir is None:
        args = ["BOARD=" + micropython_board(board), "BUILD=" + build_dir(board, variant),
                "FROZEN_MANIFEST=" + manifest]
    else:
        # No FROZEN_MANIFEST: the port's own boards/manifest.py, the code goes in the ROMFS.
        # BOARD given, not taken from the folder's name: a BOARD= on `make firmware`'s command
        # line reaches this make through MAKEFLAGS.
        args = ["BOARD=" + romfs_board_name(board), "BOARD_DIR=" + board_dir,
                "BUILD=" + build_dir(board, variant, romfs=True)]
    return args + (["BOARD_VARIANT=" + variant] if variant else [])


def build_commands(board, src, builder, variant=None, uid=None, board_dir=None):
    """The commands that build the image, in order (mpy-cross, submodules, the image).
    board_dir: the --romfs board folder (romfs_board_dir), or None for the frozen build."""
    src = Path(src).resolve()
    if builder == "docker":
        mpy, manifest = DOCKER_MPY, "%s/boards/manifests/%s.py" % (DOCKER_PROJECT, board)
        board_arg = DOCKER_BOARD if board_dir is not None else None
    else:
        mpy, manifest = str(src), str(manifest_path(board))
        board_arg = str(board_dir) if board_dir is not None else None
    port = mpy + "/ports/esp32"
    make = (_make_args(board, variant, board_dir=board_arg) if board_arg
            else _make_args(board, variant, manifest))
    inner = [["make", "-C", mpy + "/mpy-cross"],
             ["make", "-C", port] + make + ["submodules"],
             ["make", "-C", port] + make]
    if builder != "docker":
        return inner
    docker = ["docker", "run", "--rm"]
    if uid is not None:
        docker += ["-u", uid]  # files in the checkout stay the maker's, not root's
    # HOME: idf.py's cache for a user the image does not know; the git check is for shared
    # machines, and this throwaway container only sees the maker's own checkout.
    docker += ["-e", "HOME=/tmp", "-e", "IDF_GIT_SAFE_DIR=*",
               "-v", "%s:%s" % (src, DOCKER_MPY), "-v", "%s:%s" % (ROOT, DOCKER_PROJECT)]
    if board_dir is not None:
        docker += ["-v", "%s:%s" % (Path(board_dir).resolve(), DOCKER_BOARD)]
    docker += ["-w", DOCKER_MPY, DOCKER_IMAGE]
    return [docker + cmd for cmd in inner]


def built_image(board, src, variant=None, romfs=False):
    """Where the port's Makefile leaves the full image (makeimg.py: bootloader, partition
    table and application in one file)."""
    return (Path(src).resolve() / "ports" / "esp32" / build_dir(board, variant, romfs)
            / "firmware.bin")


def _shown(path):
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def flash_line(board, image, romfs=False):
    """The `make flash` line for the image: a frozen one keeps its own table (it has no ROMFS
    to use ours, and tools/flash.py refuses it without --no-romfs)."""
    return "make flash PORT=/dev/ttyUSB0 FIRMWARE=%s BOARD=%s%s" % (
        _shown(image), board, "" if romfs else " FLASH_ARGS=--no-romfs")


def deploy_line(board, romfs=False):
    return "make deploy PORT=/dev/ttyUSB0 BOARD=%s CODE=%s" % (board,
                                                                "romfs" if romfs else "frozen")


def check_checkout(src, run):
    """Refused unless src is a git checkout at MICROPYTHON_TAG."""
    if not (Path(src) / ".git").exists():
        raise Refused("%s is not a git checkout of MicroPython: remove it, or give "
                      "MICROPYTHON_SRC=a checkout at %s" % (_shown(src), MICROPYTHON_TAG))
    status, out = run(tag_command(src), capture=True)
    found = out.strip() if status == 0 else "no tag"
    if found != MICROPYTHON_TAG:
        raise Refused("%s is at %s, not %s: git -C %s fetch --depth 1 origin tag %s && "
                      "git -C %s checkout %s, or remove it to clone afresh"
                      % (_shown(src), found, MICROPYTHON_TAG, _shown(src), MICROPYTHON_TAG,
                         _shown(src), MICROPYTHON_TAG))


def check_variant(board, src, variant):
    """Refused unless the stock board has the variant the --romfs board folder includes, and
    the variant keeps the stock partition table (OTA and D2WD do not: make flash refuses them)."""
    port = Path(src) / "ports" / "esp32"
    stock = port / "boards" / micropython_board(board)
    cmake = stock / ("mpconfigvariant_%s.cmake" % variant)
    if not cmake.is_file():
        found = sorted(p.stem[len("mpconfigvariant_"):]
                       for p in stock.glob("mpconfigvariant_*.cmake"))
        raise Refused("MicroPython's %s has no variant %s (it has: %s)"
                      % (micropython_board(board), variant, ", ".join(found) or "none"))
    # The sdkconfig files the variant adds, named relative to ports/esp32.
    for name in re.findall(r"boards/[\w./-]+", cmake.read_text()):
        path = port / name
        text = path.read_text() if path.is_file() else ""
        table = re.search(r'CONFIG_PARTITION_TABLE_CUSTOM_FILENAME="([^"]+)"', text)
        if table and table.group(1) != STOCK_PARTITIONS:
            raise Refused("variant %s uses %s, not %s: make flash could not put its romfs "
                          "table after it" % (variant, table.group(1), STOCK_PARTITIONS))


def check_romfs_image(data, image, board):
    """Refused unless `make flash` would write its romfs table after this image."""
    try:
        flash.romfs_table(data, _shown(image), board)
    except flash.Refused as e:
        raise Refused("the ROMFS build is not one make flash can give a romfs partition: %s"
                      % e)


def _uid():
    if hasattr(os, "getuid"):
        return "%d:%d" % (os.getuid(), os.getgid())
    return None


def main(argv=None, run=run_command):
    parser = argparse.ArgumentParser(prog="python -m tools.firmware",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--board", default="esp32_devkitc", choices=sorted(flash.BOARDS),
                        help="board profile (default esp32_devkitc)")
    parser.add_argument("--romfs", action="store_true",
                        help="nothing of ours frozen, MICROPY_VFS_ROM on: an image that mounts "
                             "the romfs partition make flash writes (BOARD-romfs.bin)")
    parser.add_argument("--micropython", type=Path, default=DEFAULT_SRC,
                        help="MicroPython checkout, cloned at %s if missing (default "
                             "out/micropython)" % MICROPYTHON_TAG)
    parser.add_argument("--variant", default=None,
                        help="MicroPython BOARD_VARIANT, e.g. SPIRAM_OCT for an S3 with octal "
                             "PSRAM")
    parser.add_argument("--builder", choices=("auto", "idf", "docker"), default="auto",
                        help="local ESP-IDF or Docker (default: the local IDF if there is one)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="where the image goes, and --romfs's board folder (default "
                             "build/firmware)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the commands, run none")
    args = parser.parse_args(argv)
    board, src, romfs = args.board, args.micropython.resolve(), args.romfs
    image = built_image(board, src, args.variant, romfs)
    dest = args.out.resolve() / image_name(board, romfs)
    board_dir = romfs_board_dir(board, args.out) if romfs else None
    board_files = romfs_board_files(board, args.variant) if romfs else {}
    try:
        builder = choose_builder(args.builder, run)
        steps = [] if src.exists() else [clone_command(src)]
        steps += [tag_command(src)]
        build = build_commands(board, src, builder, args.variant, _uid(), board_dir)
        if args.dry_run:
            for cmd in steps:
                print(shlex.join(cmd))
            if romfs:
                print("\n".join(board_folder_commands(board_dir, board_files)))
            for cmd in build + [["cp", str(image), str(dest)]]:
                print(shlex.join(cmd))
            print("# then: " + flash_line(board, dest, romfs))
            print("# then: " + deploy_line(board, romfs))
            return 0
        if not src.exists():
            status, _ = run(clone_command(src))
            if status != 0:
                print("firmware: git clone of MicroPython %s failed (exit %d)"
                      % (MICROPYTHON_TAG, status), file=sys.stderr)
                return status
        check_checkout(src, run)
        if romfs:
            if args.variant:
                check_variant(board, src, args.variant)
            write_board_folder(board_dir, board_files)
            print("firmware: board folder %s (BOARD_DIR)" % _shown(board_dir), flush=True)
        for cmd in build:
            print("+ " + shlex.join(cmd), flush=True)
            status, _ = run(cmd)
            if status != 0:
                print("firmware: exit %d from: %s (docs/firmware.md, Troubleshooting)"
                      % (status, shlex.join(cmd)), file=sys.stderr)
                return status
        try:
            data = image.read_bytes()
        except FileNotFoundError:
            raise Refused("the build left no %s" % image)
        flash.check_firmware(data, image, board)
        if romfs:
            check_romfs_image(data, image, board)
    except (Refused, flash.Refused) as e:
        print("firmware: %s" % e, file=sys.stderr)
        return 2
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(image, dest)
    if romfs:
        what = "with ROMFS (MICROPY_VFS_ROM), the port's own frozen modules only"
    else:
        what = "with %s frozen" % _shown(manifest_path(board))
    print("firmware: %s (%d bytes), MicroPython %s %s %s"
          % (_shown(dest), len(data), MICROPYTHON_TAG, micropython_board(board), what))
    print("next: " + flash_line(board, dest, romfs))
    print("then: " + deploy_line(board, romfs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
