"""A boot error a reset would only repeat (a bad setting, a missing file) is said on the display,
logged, and the board stops there: one boot, no crash loop, a crash log that cannot grow without
bound. On the simulated board (the real main.py on the MicroPython unix port), and main.py's
crash log on the unix port alone."""

import json
import os
import shutil
import subprocess

import pytest
from simruns import ROOT, run_all

MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"
SHOWN = [{"wait": "display", "text": "CANNOT START", "timeout_ms": 60000},
         {"sleep_ms": 1500}]  # time enough for a reset loop to show, were there one

SCENARIOS = {
    "bad_setting": {"config": {"merchant_id": "12345"}, "steps": SHOWN},
    # A key wrapped for another board's device key (a config.json copied between boards).
    "other_boards_key": {"config": {"mac_key": "W:" + "5a" * 24}, "steps": SHOWN},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("boot_errors")
    paths = {}
    for name, scenario in SCENARIOS.items():
        paths[name] = base / (name + ".json")
        paths[name].write_text(json.dumps(scenario))
    return run_all(paths, base)


def _events(path):
    return [json.loads(line) for line in (path / "events.jsonl").open()]


@pytest.mark.parametrize("name, said", [
    ("bad_setting", "merchant_id"),
    ("other_boards_key", "mac_key"),
])
def test_a_boot_error_is_shown_logged_and_the_board_stops(runs, name, said):
    rc, out, path = runs[name]
    assert rc == 0, out
    events = _events(path)
    screens = [e["lines"] for e in events if e["kind"] == "display"]
    assert screens and screens[-1][0] == "CANNOT START"
    assert screens[-1][-1] == "Fix, then reset"
    shown = " ".join(screens[-1][1:])
    assert said in shown
    log = (path / "firmware.log").read_text()
    assert any(line.startswith("boot: stopped:") and said in line for line in log.splitlines())
    assert sum(1 for e in events if e["kind"] == "boot") == 1, "the board reset"
    assert not [e for e in events if e["kind"] == "host_tx"]


def _run_main(folder):
    return subprocess.run([str(MICROPYTHON), "main.py"], cwd=folder, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.skipif(not MICROPYTHON.exists(), reason="needs the MicroPython unix port")
def test_a_crash_loop_keeps_the_crash_log_bounded(tmp_path):
    # main.py alone, without the firmware beside it: every boot crashes on its import, as a
    # board with a broken deploy does, and logs it.
    shutil.copy(ROOT / "main.py", tmp_path / "main.py")
    (tmp_path / "crash.log").write_text("x" * 9000 + "\n")
    for _ in range(3):
        proc = _run_main(tmp_path)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "ImportError" in proc.stdout + proc.stderr
    old = (tmp_path / "crash.log.1").read_text()
    assert old.startswith("x" * 9000)  # the full log moved aside, once
    log = (tmp_path / "crash.log").read_text()
    assert log.count("ImportError") == 3 and "xxx" not in log
    # Beyond the cap it moves aside again, so both together stay under twice the cap.
    (tmp_path / "crash.log").write_text(log + "y" * 8500)
    _run_main(tmp_path)
    assert (tmp_path / "crash.log.1").read_text().endswith("y" * 8500)
    assert sum(os.path.getsize(tmp_path / n) for n in ("crash.log", "crash.log.1")) < 2 * 9216
