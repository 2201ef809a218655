"""Runs every portable test file on the MicroPython unix port, each in its own process with its
own ESP32-like heap (as each would run on a fresh board), two at a time, and sums the results.

    python tests_host/mpsuite.py [--heapsize N] [test_file.py ...]

Ends with the line `N passed, N failed`; exit status 1 on any failure. Each file's line gives its
peak heap (tests_host/mprun.py) beside the heap it is given. A file must pass with 10% of that
heap to spare: it runs in 90% of it, and one that fails there but passes in the whole heap
fails for its margin, with the figures (a longer checkout path, another interpreter build, a
little more code must not tip a file over).

The firmware, boards and drivers are imported as the board imports them: compiled to .mpy
(tools/build.py, into a temporary folder put first on sys.path through POS_TEST_IMAGE).
Compiling core.py or app.py from source takes more heap than running them, so a source import
measured the compiler, not the firmware. `--source` imports the sources instead (for
tracebacks with source lines).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
MICROPYTHON = Path(sys.executable).with_name("micropython")
MARK = "# portable: micropython"
_RESULT = re.compile(r"^(\d+) passed, (\d+) failed$", re.M)
_PEAK = re.compile(r"^peak heap (\d+) bytes$", re.M)
MARGIN = 0.9  # of its heap, a file must pass in


def portable_files():
    # The marker line may carry a heapsize: a prefix, not the whole line.
    return sorted(p.name for p in HERE.glob("test_*.py")
                  if any(line.startswith(MARK) for line in p.read_text().splitlines()[:5]))


def file_heapsize(name, default):
    """A file that carries the chip models (which no board does) asks for more heap on its
    marker line: `# portable: micropython heapsize=400000`."""
    for line in (HERE / name).read_text().splitlines()[:5]:
        if line.startswith(MARK) and "heapsize=" in line:
            return int(line.split("heapsize=")[1].split()[0])
    return default


def _run(name, heapsize, image):
    env = dict(os.environ)
    if image:
        env["POS_TEST_IMAGE"] = str(image)
    proc = subprocess.run([str(MICROPYTHON), "-X", "heapsize=%d" % heapsize,
                           str(HERE / "mprun.py"), name],
                          cwd=HERE.parent, capture_output=True, text=True, timeout=600, env=env)
    found = _RESULT.findall(proc.stdout)
    peak = _PEAK.findall(proc.stdout)
    output = proc.stdout + proc.stderr
    if not found:
        return 0, 1, None, output
    passed, failed = int(found[-1][0]), int(found[-1][1])
    if proc.returncode and not failed:
        failed = 1
    return passed, failed, int(peak[-1]) if peak else None, output


def run_one(name, heapsize, image=None):
    """(name, passed, failed, peak, heap, output): run in MARGIN of its heap, and again in the
    whole heap when that fails, to tell a failing test from a file without its margin."""
    heapsize = file_heapsize(name, heapsize)
    tight = int(heapsize * MARGIN)
    passed, failed, peak, output = _run(name, tight, image)
    if failed:
        passed, failed, whole_peak, output = _run(name, heapsize, image)
        if not failed:
            failed = 1
            output = ("FAIL %s: not 10%% of its heap to spare: fails in %d bytes, passes in "
                      "its %d (peak %s bytes); give it more (`# portable: micropython "
                      "heapsize=N`) or make it need less\n" % (name, tight, heapsize,
                                                               whole_peak)) + output
        peak = whole_peak
    return name, passed, failed, peak, heapsize, output


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--heapsize", type=int, default=200000)
    parser.add_argument("--source", action="store_true",
                        help="import the firmware from source, not as .mpy")
    parser.add_argument("files", nargs="*")
    args = parser.parse_args(argv)
    names = args.files or portable_files()
    total_passed = total_failed = 0
    image = None
    if not args.source:
        sys.path.insert(0, str(HERE.parent))
        from tools.build import PACKAGES, build

        image = Path(tempfile.mkdtemp(prefix="pos_mpy_"))
        build(image, packages=PACKAGES, line_numbers=True)  # a failure's traceback needs them
    with ThreadPoolExecutor(max_workers=2) as pool:
        for name, passed, failed, peak, heapsize, output in pool.map(
                lambda n: run_one(n, args.heapsize, image), names):
            total_passed += passed
            total_failed += failed
            print("%-28s %3d passed, %d failed   peak heap %7s of %d" % (
                name, passed, failed, "{:,}".format(peak) if peak else "?", heapsize))
            if failed:
                print(output)
    print("%d passed, %d failed" % (total_passed, total_failed))
    if image:
        shutil.rmtree(image, ignore_errors=True)
    return 1 if total_failed else 0


if __name__ == "__main__":
    sys.exit(main())
