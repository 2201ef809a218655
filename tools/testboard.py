"""Runs the project's portable tests on a board: the files tests_host/mpsuite.py runs on the unix
port, against the firmware deployed on the board.

    python -m tools.testboard --port PORT [test_file.py ...]
    make test-board PORT=/dev/ttyUSB0 [FILES="test_cmac.py test_dukpt.py"]

1. Stops the board at its raw REPL (a port with no board answering ends here, in one line).
2. Copies the test files, their helpers and the chip models they drive, compiled to bytecode
   .mpy (any MicroPython port runs it; a source file would be compiled on the board, in its
   heap), into /testboard on its filesystem; only files whose SHA-256 differs go. The firmware
   is not copied: the tests import the board's own, from /rom, frozen or its files.
3. Runs each file from a soft reset (a fresh heap, no timer of the terminal's running), in
   /testboard/work, so what a test writes never lands on the board's config.json or journal;
   prints each file's result and peak heap (sampled every millisecond by a thread, as
   tests_host/mprun.py does), then `N passed, N failed`.
4. Removes /testboard/work. The board is left at its REPL, the terminal not running (nothing
   here runs main.py, so nothing touches its settings or journal): `mpremote reset` starts it.
Exit status: 0 all passed, 1 a test failed, 2 the board could not be reached.
"""

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from tools import build as build_mod
from tools import deploy as deploy_mod

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests_host"
ROOT = "testboard"  # on the board's filesystem
# What the portable tests import beside the firmware: their helpers, and the tools and chip
# models a real board does not carry.
HELPERS = ("fakes.py", "dukpt_peer.py", "pinblock_peer.py")
TOOLS = ("__init__.py", "framing.py", "fuzz.py", "hwcheck.py", "cardnumber.py",
         "host/__init__.py", "host/spec.py")
_RESULT = re.compile(r"^(\d+) passed, (\d+) failed$", re.M)
_PEAK = re.compile(r"^peak heap (\d+) bytes$", re.M)

# Run on the board, from a soft reset, with _NAME set: one test file, as tests_host/mprun.py
# runs it on the unix port.
_RUN = """
import gc, os, sys
def _mk(p):
    try:
        os.mkdir(p)
    except OSError:
        pass
# From the filesystem's root, the working folder after a reset ('/' on an ESP32).
_home = os.getcwd()
_base = _home.rstrip('/') + '/%(root)s'
_mk(_base + '/work')
os.chdir(_base + '/work')
sys.path.insert(0, _base)
_peak = [gc.mem_alloc(), 1]
def _watch(peak):
    import time
    while peak[1]:
        used = gc.mem_alloc()
        if used > peak[0]:
            peak[0] = used
        time.sleep_ms(1)
try:
    import _thread
    _thread.start_new_thread(_watch, (_peak,))
except ImportError:
    pass
gc.threshold(2048)
_passed = _failed = 0
try:
    _module = __import__(_NAME)
except Exception as e:
    print('FAIL %%s (import): %%r' %% (_NAME, e))
    sys.print_exception(e)
    _module, _failed = None, 1
for _attr in sorted(dir(_module)) if _module else ():
    if _attr.startswith('test_'):
        try:
            getattr(_module, _attr)()
            _passed += 1
        except Exception as e:
            _failed += 1
            print('FAIL %%s::%%s: %%r' %% (_NAME, _attr, e))
            sys.print_exception(e)
        _peak[0] = max(_peak[0], gc.mem_alloc())
_peak[1] = 0
os.chdir(_home)
# Less the virtual board's ROM partition, which it holds in the heap (flash on a board).
import vfs
print('peak heap %%d bytes' %% (_peak[0] - getattr(vfs, 'rom_heap', 0)))
print('%%d passed, %%d failed' %% (_passed, _failed))
"""

# Run on the board at the end: the scratch folder the tests wrote in, removed.
_CLEAN = """
import os
def _rm(p):
    if os.stat(p)[0] & 0x4000:
        for it in os.ilistdir(p):
            _rm(p + '/' + it[0])
        os.rmdir(p)
    else:
        os.remove(p)
try:
    _rm('%s/work')
except OSError:
    pass
""" % ROOT


def portable_files():
    """The files tests_host/mpsuite.py runs on the unix port (its marker on their first lines)."""
    sys.path.insert(0, str(TESTS))
    try:
        import mpsuite
    finally:
        sys.path.remove(str(TESTS))
    return mpsuite.portable_files()


def stage(names, folder):
    """The files to copy, compiled, under folder/testboard: the tests, helpers and models."""
    top = Path(folder) / ROOT
    sources = [(TESTS / n, top / n) for n in list(names) + list(HELPERS)]
    sources += [(REPO / "tools" / t, top / "tools" / t) for t in TOOLS]
    sources += [(p, top / "tools" / "models" / p.name)
                for p in sorted((REPO / "tools" / "models").glob("*.py"))
                if not p.name.endswith("_png.py")]
    for src, dest in sources:
        dest.parent.mkdir(parents=True, exist_ok=True)
        build_mod.compile_source(src.read_text(), dest.with_suffix(".mpy"),
                                 src.relative_to(REPO).as_posix())
    return folder


def copy(port, folder, runner=subprocess.run):
    """Copy what differs from the board's /testboard; returns how many files went."""
    state = deploy_mod.probe(port, [ROOT], runner)
    steps = deploy_mod.plan(folder, "files", state.folders, state.files)
    commands = deploy_mod.sync_commands(folder, steps)
    if commands:
        deploy_mod._run(deploy_mod.mpremote(port, *commands), runner)
    return len(steps.copy)


def run_file(port, name, runner=subprocess.run):
    """(passed, failed, peak heap or None, output) of one test file, from a soft reset."""
    program = "_NAME = %r\n%s" % (name[:-3], _RUN % {"root": ROOT})
    # No `resume`: mpremote soft-resets the board first, for a heap of the file's own.
    cmd = [sys.executable, "-m", "mpremote", "connect", port, "exec", program]
    result = runner(cmd, capture_output=True, text=True, timeout=1800)
    output = (result.stdout or "") + (result.stderr or "")
    found, peak = _RESULT.findall(output), _PEAK.findall(output)
    if not found:
        return 0, 1, None, output
    passed, failed = int(found[-1][0]), int(found[-1][1])
    return passed, failed, int(peak[-1]) if peak else None, output


def run(port, names, out=sys.stdout):
    """Every step; returns (passed, failed)."""
    deploy_mod.stop_running(port)
    with tempfile.TemporaryDirectory(prefix="pos_testboard_") as tmp:
        copied = copy(port, stage(names, tmp))
    print("test-board: %d files copied to :%s/" % (copied, ROOT), file=out, flush=True)
    total_passed = total_failed = 0
    for name in names:
        passed, failed, peak, output = run_file(port, name)
        total_passed += passed
        total_failed += failed
        print("%-28s %3d passed, %d failed   peak heap %7s" % (
            name, passed, failed, "{:,}".format(peak) if peak else "?"), file=out, flush=True)
        if failed:
            print(output, file=out, flush=True)
    deploy_mod._run(deploy_mod.mpremote(port, ["exec", _CLEAN]), subprocess.run)
    print("test-board: the board is at its REPL; `mpremote connect PORT reset` runs the "
          "terminal again", file=out)
    print("%d passed, %d failed" % (total_passed, total_failed), file=out, flush=True)
    return total_passed, total_failed


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.testboard",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--port", required=True,
                        help="serial port or socket://HOST:PORT (mpremote connect)")
    parser.add_argument("files", nargs="*", help="test files (default: every portable one)")
    args = parser.parse_args(argv)
    names = args.files or portable_files()
    unknown = [n for n in names if n not in portable_files()]
    if unknown:
        print("test-board: not a portable test file: %s (tests_host/mpsuite.py runs those "
              "marked '# portable: micropython')" % " ".join(unknown), file=sys.stderr)
        return 2
    try:
        _, failed = run(args.port, names)
    except deploy_mod.DeployError as e:
        print("test-board: %s" % e, file=sys.stderr)
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
