"""Runs scenarios through `python -m tools.sim` side by side (each is mostly waiting), for the
end-to-end tests."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_all(scenarios, base, timeout=240):
    """{name: scenario file} -> {name: (exit status, output, record dir)}, all run at once."""
    procs = {}
    for name, path in scenarios.items():
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "tools.sim", "--scenario", str(path), "--out",
             str(Path(base) / name)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    results = {}
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=timeout)
        results[name] = (proc.returncode, out, Path(base) / name)
    return results
