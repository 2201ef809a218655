"""`make vboard` (python -m tools.vboard): bad input is refused in one line with exit status 2,
before any board process starts."""

import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _vboard(*args):
    return subprocess.run([sys.executable, "-m", "tools.vboard", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def _refused(proc, words):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vboard: "), proc.stderr
    assert words in lines[0], lines[0]
    assert "Traceback" not in proc.stdout + proc.stderr


def test_a_port_in_use(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        _refused(_vboard("--dir", str(tmp_path / "b"), "--port", str(port)),
                 "--port %d is in use" % port)


@pytest.mark.parametrize("port", ["-1", "65536"])
def test_a_port_out_of_range(tmp_path, port):
    _refused(_vboard("--dir", str(tmp_path / "b"), "--port", port), "0 to 65535")


def test_a_file_for_the_boards_folder(tmp_path):
    (tmp_path / "b").write_text("notes")
    _refused(_vboard("--dir", str(tmp_path / "b")), "is a file, not a folder")
    assert (tmp_path / "b").read_text() == "notes"


def test_a_rom_partition_not_made_of_blocks(tmp_path):
    _refused(_vboard("--dir", str(tmp_path / "b"), "--romfs-kb", "10"), "4 KB blocks")


def test_an_environment_entry_without_a_value(tmp_path):
    _refused(_vboard("--dir", str(tmp_path / "b"), "--env", "POS_BOARD"), "NAME=VALUE")
