"""make test-board against the virtual board: the portable test files run on the board, against
the firmware deployed there, each from a soft reset, with its peak heap; the board's settings
and journal are the same bytes after as before."""

import hashlib
import json
import re
import subprocess

from test_vboard import REPO, _tool, _VBoard

from tools import deploy as deploy_mod

# The portable files that write files of their own (journals, settings, keys): where they
# write must not be the board's.
FILES = ("test_journal.py", "test_settings.py", "test_keystore.py", "test_app.py",
         "test_cmac.py")


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_make_test_board_runs_the_portable_tests_on_the_board(tmp_path):
    image = tmp_path / "image"
    built = _tool("tools.build", "--board", "sim", "--romfs", "--out", str(image))
    assert built.returncode == 0, built.stderr
    board_dir = tmp_path / "board"
    board = _VBoard(board_dir, tmp_path / "console.log")
    try:
        deployed = _tool("tools.deploy", "--port", board.url, "--image", str(image),
                         "--log-seconds", "0")
        assert deployed.returncode == 0, deployed.stderr + deployed.stdout
        # The board's own settings and journal, written while it is stopped at its REPL.
        deploy_mod.stop_running(board.url)
        kept = {"config.json": json.dumps({"board": "sim", "merchant_name": "KEEP ME"}),
                "journal.bin": "\x00journal of the board\x01" * 40}
        for name, text in kept.items():
            (board_dir / name).write_text(text)
        before = {name: _sha(board_dir / name) for name in kept}
        run = subprocess.run(["make", "--no-print-directory", "test-board", "PORT=" + board.url,
                              "FILES=" + " ".join(FILES)], cwd=REPO, capture_output=True,
                             text=True, timeout=900)
        after = {name: _sha(board_dir / name) for name in kept}
    finally:
        board.proc.terminate()
        board.proc.wait(10)
    text = run.stdout
    assert run.returncode == 0, run.stderr + text
    assert after == before
    rows = re.findall(r"^(test_\w+\.py) +(\d+) passed, (\d+) failed   peak heap +([\d,]+)$",
                      text, re.M)
    assert [r[0] for r in rows] == list(FILES), text
    for name, passed, failed, peak in rows:
        assert int(passed) > 0 and failed == "0", text
        # The ROM partition, which the virtual board holds in its heap, is not counted.
        assert 0 < int(peak.replace(",", "")) < 200000, (name, peak)
    total = sum(int(r[1]) for r in rows)
    assert text.rstrip().endswith("%d passed, 0 failed" % total), text
    # The tests ran on the board: their files are there, compiled; their scratch folder is gone.
    assert (board_dir / "testboard" / "test_journal.mpy").is_file()
    assert not (board_dir / "testboard" / "work").exists()
    assert not (board_dir / "testboard" / "test_journal.py").exists()


def test_make_test_board_refuses_a_file_that_is_not_portable():
    run = _tool("tools.testboard", "--port", "socket://127.0.0.1:9", "test_vboard.py")
    assert run.returncode == 2
    assert "not a portable test file: test_vboard.py" in run.stderr
