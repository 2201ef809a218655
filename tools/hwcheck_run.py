"""Runs the hardware check (tools/hwcheck.py) on a board, from a soft reset, and exits with its
verdict.

    python -m tools.hwcheck_run --port PORT [--wait 15]
    make hwcheck PORT=/dev/ttyUSB0 [WAIT=15]

The board is stopped at its raw REPL first (tools/deploy.py stop_running: a port with no board
answering ends here, in one line), then mpremote soft-resets it, so the terminal's own timers
and heap are gone, and runs the check, which uses the board profile and settings on it; then it
resets the board to run the terminal again. Exit status: 0 every check passed, 1 one failed,
2 the check did not run to its end.
"""

import argparse
import re
import subprocess
import sys
from pathlib import Path

from tools import deploy as deploy_mod

REPO = Path(__file__).resolve().parents[1]
HWCHECK = REPO / "tools" / "hwcheck.py"
_SUMMARY = re.compile(r"^hwcheck: (\d+) of (\d+) OK", re.M)


def command(port, wait_s):
    """mpremote: a soft reset (no `resume`), the check's arguments, the check, a reset."""
    argv = "import sys\nsys.argv[:] = ['hwcheck.py', '--wait', '%d']" % wait_s
    return [sys.executable, "-m", "mpremote", "connect", port, "exec", argv,
            "+", "run", str(HWCHECK), "+", "reset"]


def verdict(text):
    """0, 1 or 2 from the check's output (its last line: `hwcheck: N of M OK`)."""
    found = _SUMMARY.findall(text)
    if not found:
        return 2
    ok, total = found[-1]
    return 0 if ok == total else 1


def run(port, wait_s, out=sys.stdout):
    deploy_mod.stop_running(port)
    proc = subprocess.Popen(command(port, wait_s), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=REPO)
    text = []
    for line in proc.stdout:
        out.write(line)
        out.flush()
        text.append(line)
    proc.wait()
    return verdict("".join(text))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.hwcheck_run",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--port", required=True,
                        help="serial port or socket://HOST:PORT (mpremote connect)")
    parser.add_argument("--wait", type=int, default=15,
                        help="seconds to wait for keys and for a card (default 15)")
    args = parser.parse_args(argv)
    try:
        status = run(args.port, args.wait)
    except deploy_mod.DeployError as e:
        print("hwcheck: %s" % e, file=sys.stderr)
        return 2
    if status == 2:
        print("hwcheck: the check did not finish on the board (its output above says why)",
              file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
