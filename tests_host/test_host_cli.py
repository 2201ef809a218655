"""`make host` (python -m tools.host): bad input is refused in one line with exit status 2, and
a file that is not a ledger is left byte for byte as it was."""

import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _host(*args, stdin=""):
    return subprocess.run([sys.executable, "-m", "tools.host", "--bind", "127.0.0.1", "--plain",
                           *args], cwd=ROOT, input=stdin, capture_output=True, text=True,
                          timeout=120)


def _refused(proc, words):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tools.host: "), proc.stderr
    assert words in lines[0], lines[0]
    assert "Traceback" not in proc.stdout + proc.stderr


def test_a_good_start_serves_and_quits(tmp_path):
    proc = _host("--port", "0", "--db", str(tmp_path / "host.db"), stdin="quit\n")
    assert proc.returncode == 0, proc.stderr
    assert "host simulator on 127.0.0.1:" in proc.stdout and proc.stderr == ""


@pytest.mark.parametrize("port", ["65536", "70000", "-1", "http", ""])
def test_a_port_out_of_range(tmp_path, port):
    proc = _host("--port", port, "--db", str(tmp_path / "host.db"))
    _refused(proc, "--port must be a number from 0 to 65535")
    assert not (tmp_path / "host.db").exists()


def test_a_port_in_use(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        proc = _host("--port", str(port), "--db", str(tmp_path / "host.db"))
    _refused(proc, "port %d is in use on 127.0.0.1" % port)
    # No ledger is left by the failed start: seeded already, it would ignore a later --cards.
    assert list(tmp_path.iterdir()) == []


def test_a_ledger_path_that_cannot_be_opened(tmp_path):
    _refused(_host("--port", "0", "--db", str(tmp_path / "no" / "host.db")), "no folder")
    _refused(_host("--port", "0", "--db", str(tmp_path)), "a folder, not a ledger file")


@pytest.mark.parametrize("content", [
    b"these are the shop's notes, not a ledger\n",
    bytes(range(256)) * 16,
    b"SQLite format 3\x00" + b"\xff" * 84,  # a header and nothing of a database after it
])
def test_a_file_that_is_not_a_database_is_left_as_it_was(tmp_path, content):
    path = tmp_path / "host.db"
    path.write_bytes(content)
    proc = _host("--port", "0", "--db", str(path))
    _refused(proc, str(path))
    assert "SQLite database" in proc.stderr
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["host.db"]


def test_another_programs_database_is_left_as_it_was(tmp_path):
    path = tmp_path / "host.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE stock (item TEXT, count INTEGER)")
    db.execute("INSERT INTO stock VALUES ('coffee', 12)")
    db.commit()
    db.close()
    before = path.read_bytes()
    _refused(_host("--port", "0", "--db", str(path)), "another program's database")
    assert path.read_bytes() == before


def test_the_ledger_of_a_previous_run_is_taken_again(tmp_path):
    path = tmp_path / "host.db"
    assert _host("--port", "0", "--db", str(path), stdin="quit\n").returncode == 0
    proc = _host("--port", "0", "--db", str(path), stdin="ledger\nquit\n")
    assert proc.returncode == 0, proc.stderr
    assert "[]" in proc.stdout
