"""make hwcheck against the virtual board: tools/hwcheck.py's main() run on the board by
tools/hwcheck_run.py, with the `sim` profile and the settings deployed there. No one presses a
key or taps a card on it, so those two checks fail, and the others pass on the chip models."""

import json
import socket
import subprocess

from test_vboard import REPO, _tool, _VBoard


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_make_hwcheck_runs_the_check_on_the_board(tmp_path):
    image = tmp_path / "image"
    built = _tool("tools.build", "--board", "sim", "--romfs", "--out", str(image))
    assert built.returncode == 0, built.stderr
    board_dir = tmp_path / "board"
    board = _VBoard(board_dir, tmp_path / "console.log")
    try:
        deployed = _tool("tools.deploy", "--port", board.url, "--image", str(image),
                         "--log-seconds", "0")
        assert deployed.returncode == 0, deployed.stderr + deployed.stdout
        (board_dir / "config.json").write_text(json.dumps({"board": "sim"}))
        check = subprocess.run(["make", "hwcheck", "PORT=" + board.url, "WAIT=1"], cwd=REPO,
                               capture_output=True, text=True, timeout=300)
    finally:
        board.proc.terminate()
        board.proc.wait(10)
    text = check.stdout
    assert check.returncode == 2 and "Error 1" in check.stderr, check.stderr + text  # 1: failed
    assert "TypeError" not in text and "Traceback" not in text, text
    table = [line for line in text.splitlines() if line[:12].strip() in (
        "i2c bus", "display", "keypad", "card reader", "printer") and line[13:17].strip()]
    verdicts = [(line[:12].strip(), line[13:17].strip()) for line in table[-5:]]
    assert verdicts == [("i2c bus", "OK"), ("display", "OK"), ("keypad", "FAIL"),
                        ("card reader", "FAIL"), ("printer", "OK")], text
    assert "answering: 0x24 0x3C" in text or "answering: 0x3C 0x24" in text, text
    assert "hwcheck: 3 of 5 OK" in text


def test_make_hwcheck_with_no_board_on_the_port_says_so_in_a_line():
    check = _tool("tools.hwcheck_run", "--port", "socket://127.0.0.1:%d" % _free_port(),
                  "--wait", "1")
    assert check.returncode == 2
    error = check.stderr.strip()
    assert error.startswith("hwcheck: ") and "\n" not in error, error
