"""Benchmarks: `make bench` (about a quarter of an hour) and `make bench-heap`.

    python -m tools.bench [--micropython PATH] [--purchases 1000]
                          micro-benchmarks of the hot paths and the modelled bus and card times
                          on MicroPython; the heap that importing each part holds, from .mpy files
                          and from ROMFS; the firmware's heap budget over a thousand purchases on
                          the simulated board (tools/bench/budget.py)
    python -m tools.bench --min-heap [--purchases 3] [--campaign] [--code romfs|mpy]
                          the smallest -X heapsize at which the purchases (or a generated campaign
                          with faults) pass, confirmed by repeated runs (tools/bench/budget.py)

Heap figures are the interpreter's: a 64-bit unix port's objects are up to twice an ESP32's, so
give a 32-bit build (`make bench MICROPYTHON=path/to/micropython-i386`) for the ESP32's sizes.
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from tools.bench import budget

ROOT = Path(__file__).resolve().parents[2]

HARDWARE = ("hw_mfrc522", "hw_pn532", "hw_display_keypad", "hw_printer")

# The heap that importing each part holds, run once with the code as .mpy files on the path and
# once from a ROMFS image mounted at /rom (bytecode and constants then stay in flash).
CODE_HEAP = """
import sys, gc
if %(rom)r:
    import vfs
    f = open(%(rom)r, 'rb')
    image = f.read()
    f.close()
    vfs.mount(vfs.VfsRom(image), '/rom')
    sys.path[:0] = ['/rom']
else:
    sys.path[:0] = [%(folder)r]
def held(*names):
    gc.collect()
    before = gc.mem_alloc()
    for name in names:
        __import__(name)
    gc.collect()
    return gc.mem_alloc() - before
print(held('firmware.app', 'drivers.keypad', 'drivers.display', 'drivers.ssd1306',
           'drivers.escpos'),
      held('drivers.pn532', 'drivers.pn532_i2c'), held('drivers.emv', 'drivers.democard'),
      held('drivers.mfrc522'),
      held('firmware.startup', 'firmware.settings', 'firmware.keystore', 'boards.common'),
      held('firmware.wifi'), held('firmware.sntp'),
      held('boards.sim', 'tools.models.bus', 'tools.models.pn532', 'tools.models.emvcard',
           'tools.models.tags', 'tools.models.keypad', 'tools.models.ssd1306',
           'tools.models.escpos'))
"""
PARTS = ("firmware, keypad, display, printer", "PN532 reader on I2C",
         "EMV, demo record (for a card read only)", "RC522 reader",
         "start-up (dropped after boot)", "Wi-Fi", "NTP client (for a query only)",
         "chip models (simulated board only)")


def micro(micropython):
    print("== hot paths on MicroPython (%s, -X heapsize=200000)" % micropython)
    for script in ("mp_core.py", "mp_dukpt.py", "mp_msgkeys.py"):
        subprocess.run([str(micropython), "-X", "heapsize=200000", "tools/bench/" + script],
                       cwd=ROOT, check=True)
    for name in HARDWARE:
        print("== %s: modelled bus and card time (tools/models, virtual clock)" % name)
        subprocess.run([str(micropython), "-X", "heapsize=400000",
                        "tools/bench/%s.py" % name], cwd=ROOT, check=True)


def code_heap(micropython):
    from tools.build import SIM_PACKAGES, build, build_romfs, romfs_path

    print("== the heap importing each part holds (%s, %s)"
          % (micropython, budget.interpreter(micropython)))
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "image"
        build_romfs(image, packages=SIM_PACKAGES)
        files = Path(tmp) / "files"  # as make build compiles them: without line numbers
        build(files, packages=SIM_PACKAGES, sources=())
        figures = {}
        for code, args in ((".mpy files", {"rom": "", "folder": str(files)}),
                           ("ROMFS", {"rom": str(romfs_path(image)), "folder": ""})):
            out = subprocess.run([str(micropython), "-X", "heapsize=1000000", "-c",
                                  CODE_HEAP % args], cwd=tmp, check=True, capture_output=True,
                                 text=True).stdout
            figures[code] = [int(n) for n in out.split()]
    print("%-40s %12s %12s" % ("", ".mpy files", "ROMFS"))
    for i, part in enumerate(PARTS):
        print("%-40s %12s %12s" % (part, "{:,}".format(figures[".mpy files"][i]),
                                   "{:,}".format(figures["ROMFS"][i])))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.bench",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--micropython", default=str(budget.MICROPYTHON),
                        help="the unix port to measure with (default %(default)s)")
    parser.add_argument("--purchases", type=int, default=None,
                        help="purchases (default 1000 for the budget, 3 for --min-heap)")
    parser.add_argument("--min-heap", action="store_true")
    parser.add_argument("--campaign", action="store_true")
    parser.add_argument("--code", choices=budget.CODES, default="romfs")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--step", type=int, default=1024, help="--min-heap: bytes (sharpness)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="--min-heap: runs at once (they mostly wait: 4 suit two cores)")
    budget.add_config_argument(parser)
    args = parser.parse_args(argv)
    args.micropython = str(Path(args.micropython).resolve())
    if args.min_heap:
        return budget.min_heap(args.purchases or 3, args.campaign, args.code, args.micropython,
                               args.seed, args.runs, args.step, args.config, args.jobs)
    micro(args.micropython)
    code_heap(args.micropython)
    budget.budget(args.micropython, args.purchases or 1000, args.config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
