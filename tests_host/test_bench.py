"""Every benchmark runs once, so that none breaks unseen (make bench, make bench-heap); the
heap budget and the smallest-heap search with few purchases and a coarse step."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tools.bench import budget

ROOT = Path(__file__).resolve().parents[1]
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"
SCRIPTS = sorted(p.name for p in (ROOT / "tools" / "bench").glob("*.py")
                 if p.name.startswith(("mp_", "hw_")))


@pytest.mark.parametrize("script", SCRIPTS)
def test_micropython_bench_script_runs(script):
    proc = subprocess.run([str(MICROPYTHON), "-X", "heapsize=400000", "tools/bench/" + script],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip()


def test_code_heap_table(capsys):
    from tools.bench.__main__ import PARTS, code_heap

    code_heap(str(MICROPYTHON))
    out = capsys.readouterr().out
    for part in PARTS:
        mpy, rom = re.search(re.escape(part) + r"\s+([\d,]+)\s+([\d,]+)", out).groups()
        # Code in ROMFS stays in flash: importing from it holds less than from .mpy files.
        assert int(rom.replace(",", "")) < int(mpy.replace(",", ""))


def test_budget_with_two_purchases(capsys):
    got = budget.budget(str(MICROPYTHON), 2)
    for code in budget.CODES:
        figures = got[code]
        assert 0 < figures["boot"] <= figures[1] <= figures["peak"]
        assert figures["sim"] > 0
    assert got["romfs"]["boot"] < got["mpy"]["boot"]
    assert "live heap after 1 purchase" in capsys.readouterr().out


def test_smallest_heap_search(capsys):
    # A step fine enough that the search must come down to heaps that fail: the boundary lies
    # some 30 KB above the idle heap the search starts from (64-bit port).
    assert budget.min_heap(1, False, "romfs", str(MICROPYTHON), runs=1, step=8192, jobs=2) == 0
    out = capsys.readouterr().out
    passed = [int(h) for h in re.findall(r"heapsize=(\d+)\s+pass", out)]
    failed = [int(h) for h in re.findall(r"heapsize=(\d+)\s+FAIL", out)]
    share = re.search(r"smallest heap: (\d+) bytes .* firmware's share is (\d+)", out)
    assert share and passed and failed
    assert max(failed) < int(share.group(1)) <= min(passed)
    assert 0 < int(share.group(2)) < int(share.group(1))


def test_bench_cli_refuses_bad_arguments():
    proc = subprocess.run([sys.executable, "-m", "tools.bench", "--code", "nonsense"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
