"""tools/deploy.py without a board: what each mode copies and removes, how it reads the board's
answer, when it refuses, and its board-side programs run on the unix port with the ROM
partition the virtual board has (tools/boardboot.py). The whole path against a board is in
test_vboard.py."""

import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tools import boardboot
from tools import deploy as deploy_mod

REPO = Path(__file__).resolve().parents[1]
MICROPYTHON = REPO / ".venv" / "bin" / "micropython"
ROMFS = b"\xd2\xcd\x31\x05hello"  # a header (magic, payload length 5) and its payload


def _sha(data):
    return hashlib.sha256(data).hexdigest()


def _image(tmp, romfs=False):
    """A built image: boot.py and main.py, and the packages (files) or DIR.romfs (romfs)."""
    image = tmp / "image"
    image.mkdir()
    (image / "main.py").write_text("main\n")
    (image / "boot.py").write_text("boot\n")
    if romfs:
        (tmp / "image.romfs").write_bytes(ROMFS)
        (tmp / "image.rom" / "firmware").mkdir(parents=True)
    else:
        (image / "firmware").mkdir()
        (image / "firmware" / "core.mpy").write_bytes(b"M\x06core")
        (image / "firmware" / "app.mpy").write_bytes(b"M\x06app")
    return image


def _board(folders=(), files=None, rom=None, frozen=None):
    return deploy_mod.BoardState(set(folders), dict(files or {}), rom, frozen)


def test_files_copies_only_what_differs_and_removes_stale_files(tmp_path):
    image = _image(tmp_path)
    _, files = deploy_mod.image_manifest(image)
    on_board = dict(files)
    on_board["firmware/app.mpy"] = "0" * 64  # changed
    on_board["firmware/old.py"] = "1" * 64  # left by an older image
    del on_board["main.py"]  # missing
    answer = "d firmware\n" + "".join("f %s %s\n" % kv for kv in on_board.items())
    board = deploy_mod.parse_probe(answer + "rom none\nfrozen -\n")
    steps = deploy_mod.plan(image, "files", board.folders, board.files)
    assert steps.make == [] and sorted(steps.copy) == ["firmware/app.mpy", "main.py"]
    assert steps.remove == ["firmware/old.py"]
    assert sorted(steps.fresh) == ["boot.py", "firmware/core.mpy"]
    commands = deploy_mod.sync_commands(image, steps)
    assert commands[0][0] == "exec" and "firmware/old.py" in commands[0][1]
    assert [c[:3] for c in commands[1:]] == [["fs", "cp", "--force"]] * 2
    cmd = deploy_mod.mpremote("socket://x:1", *commands)
    assert cmd[:6] == [sys.executable, "-m", "mpremote", "connect", "socket://x:1", "resume"]
    assert cmd.count("+") == 2
    # A fresh board: the folder is made before anything is copied into it.
    steps = deploy_mod.plan(image, "files", set(), {})
    assert steps.make == ["firmware"] and len(steps.copy) == 4 and steps.remove == []
    flat = sum(deploy_mod.sync_commands(image, steps), [])
    assert flat.index(":firmware") < flat.index(":firmware/app.mpy")


@pytest.mark.parametrize("mode", ["romfs", "frozen"])
def test_romfs_and_frozen_copy_boot_and_main_and_remove_the_code_folders(tmp_path, mode):
    image = _image(tmp_path, romfs=True)
    board_files = {"main.py": _sha(b"main\n"), "boot.py": "0" * 64,
                   "firmware/core.mpy": "2" * 64, "drivers/x.mpy": "3" * 64}
    # An empty boards/ is a namespace package: it hides /rom as well as a full one.
    steps = deploy_mod.plan(image, mode, {"firmware", "drivers", "boards"}, board_files)
    assert steps.copy == ["boot.py"] and steps.fresh == ["main.py"] and steps.make == []
    assert sorted(steps.remove) == ["boards", "drivers", "firmware"]
    # Only folders go whole: nothing of the image's own packages is copied.
    commands = deploy_mod.sync_commands(image, steps, tmp_path / "image.romfs")
    assert commands[0] == ["romfs", "deploy", str(tmp_path / "image.romfs")]
    assert commands[1][0] == "exec" and "_PATHS = ['boards', 'drivers', 'firmware']" \
        in commands[1][1]
    assert commands[2:] == [["fs", "cp", "--force", str(image / "boot.py"), ":boot.py"]]
    # A board with nothing stale and the image on it: nothing to run.
    steps = deploy_mod.plan(image, mode, set(), {"main.py": _sha(b"main\n"),
                                                 "boot.py": _sha(b"boot\n")})
    assert steps == deploy_mod.Plan([], [], [], ["boot.py", "main.py"])
    assert deploy_mod.sync_commands(image, steps) == []


def test_the_code_folders_include_the_virtual_boards_models():
    assert deploy_mod.code_folders() == ["boards", "drivers", "firmware"]
    assert deploy_mod.code_folders(board="sim") == ["boards", "drivers", "firmware", "tools"]
    assert deploy_mod.probe_names()[:2] == ["boot.py", "main.py"]


def test_the_probe_answer_says_what_rom_partition_the_board_has():
    assert deploy_mod.parse_probe("rom none\nfrozen -\n") == _board()
    assert deploy_mod.parse_probe("rom 0\nfrozen -\n").rom == deploy_mod.RomPartition(0, 0, None)
    board = deploy_mod.parse_probe("rom 1 262144 %s\nfrozen .frozen/firmware\n" % ("a" * 64))
    assert board.rom == deploy_mod.RomPartition(1, 262144, "a" * 64)
    assert board.frozen == ".frozen/firmware"
    assert deploy_mod.parse_probe("rom 1 262144 -\n").rom.digest is None


def test_auto_picks_frozen_then_romfs_then_files_with_a_warning():
    rom = deploy_mod.RomPartition(1, 262144, None)
    assert deploy_mod.choose_code("auto", _board(rom=rom)) == ("romfs", None)
    assert deploy_mod.choose_code("auto", _board(rom=rom, frozen=".frozen/firmware")) == (
        "frozen", None)
    for no_rom in (None, deploy_mod.RomPartition(0, 0, None)):
        mode, warning = deploy_mod.choose_code("auto", _board(rom=no_rom))
        assert mode == "files" and "heap" in warning and "docs/romfs.md" in warning
        assert "\n" not in warning
    _, warning = deploy_mod.choose_code("auto", _board(), "esp32_s3_devkitc")
    assert ("make firmware BOARD=esp32_s3_devkitc ROMFS=1, then make flash PORT=... "
            "BOARD=esp32_s3_devkitc FIRMWARE=build/firmware/esp32_s3_devkitc-romfs.bin") in warning
    assert deploy_mod.choose_code("files", _board()) == ("files", None)


def test_romfs_and_frozen_are_refused_on_a_board_that_cannot_run_them():
    with pytest.raises(deploy_mod.DeployError) as e:
        deploy_mod.choose_code("romfs", _board(), "esp32_devkitc")
    text = str(e.value)
    assert "no ROM partition" in text and "docs/romfs.md" in text
    assert "make firmware BOARD=esp32_devkitc ROMFS=1, then make flash" in text
    assert "CODE=files" in text and "\n" not in text
    # The virtual board gets its ROM partition from tools/vboard.py, not from a build.
    with pytest.raises(deploy_mod.DeployError, match="--romfs-kb") as e:
        deploy_mod.choose_code("romfs", _board(), "sim")
    assert "make firmware" not in str(e.value)
    with pytest.raises(deploy_mod.DeployError, match="no romfs partition"):
        deploy_mod.choose_code("romfs", _board(rom=deploy_mod.RomPartition(0, 0, None)))
    # Frozen code comes before /rom on sys.path: a ROMFS image would never be imported.
    with pytest.raises(deploy_mod.DeployError, match="CODE=frozen"):
        deploy_mod.choose_code("romfs", _board(rom=deploy_mod.RomPartition(1, 65536, None),
                                               frozen=".frozen/firmware"))
    with pytest.raises(deploy_mod.DeployError, match="make firmware"):
        deploy_mod.choose_code("frozen", _board())


def test_the_romfs_image_is_written_unless_the_board_holds_it_and_must_fit(tmp_path):
    image = tmp_path / "x.romfs"
    image.write_bytes(ROMFS)
    assert deploy_mod.romfs_length(ROMFS + b"\xff" * 100) == len(ROMFS)
    assert deploy_mod.romfs_length(b"\xff" * 16) is None
    part = deploy_mod.RomPartition(1, 4096, _sha(ROMFS))
    assert deploy_mod.romfs_needed(image, _board(rom=part)) is False
    assert deploy_mod.romfs_needed(image, _board(rom=part._replace(digest=None))) is True
    assert deploy_mod.romfs_needed(image, _board(rom=part._replace(digest="0" * 64))) is True
    with pytest.raises(deploy_mod.DeployError, match="does not fit.*CODE=files"):
        deploy_mod.romfs_needed(image, _board(rom=part._replace(size=8)))
    image.write_bytes(b"\xff" * 16)
    with pytest.raises(deploy_mod.DeployError, match="not a ROMFS image"):
        deploy_mod.romfs_needed(image, _board(rom=part))


def test_an_image_of_the_wrong_shape_is_refused(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    files = _image(tmp_path / "a")
    romfs = _image(tmp_path / "b", romfs=True)
    deploy_mod.check_image(files, "files")
    deploy_mod.check_image(romfs, "romfs")
    deploy_mod.check_image(files, "frozen")
    deploy_mod.check_image(romfs, "frozen")
    with pytest.raises(deploy_mod.DeployError, match="make build"):
        deploy_mod.check_image(romfs, "files")
    with pytest.raises(deploy_mod.DeployError, match="make romfs"):
        deploy_mod.check_image(files, "romfs")
    (tmp_path / "b" / "image.romfs").unlink()
    with pytest.raises(deploy_mod.DeployError, match="make romfs"):
        deploy_mod.check_image(romfs, "romfs")


def test_where_the_board_imports_firmware_from():
    origin = deploy_mod.code_origin
    assert origin("/rom/firmware", "/rom/firmware/__init__.mpy") == "romfs"
    assert origin(".frozen/firmware", "-") == "frozen"
    assert origin("firmware", "firmware/__init__.mpy") == "files"
    assert origin("firmware", "-") == "namespace"  # an empty firmware/ left on the filesystem
    assert origin("-", "-") is None
    assert deploy_mod.parse_origin(">OK\norigin /rom/firmware x\n") == ("romfs", "/rom/firmware")
    with pytest.raises(deploy_mod.DeployError):
        deploy_mod.parse_origin("Traceback")


def test_deploy_refuses_an_unbuilt_image_and_bad_package_json(tmp_path, capsys):
    assert deploy_mod.main(["--port", "socket://127.0.0.1:9", "--image", str(tmp_path)]) == 2
    assert "make build" in capsys.readouterr().err
    bad = tmp_path / "package.json"
    bad.write_text(json.dumps({"deps": ["aioble"]}))
    with pytest.raises(deploy_mod.DeployError, match="deps"):
        deploy_mod.package_deps(bad)


def test_the_firmware_needs_no_micropython_lib_package():
    assert deploy_mod.package_deps(REPO / "package.json") == []


def _on_the_port(tmp_path, program, partition=None):
    """Run `program` on the unix port as the virtual board boots (its ROM partition, its
    shims), in the board folder tmp_path/board."""
    board = tmp_path / "board"
    board.mkdir(exist_ok=True)
    boot = boardboot.boot_source(str(board / "lib"), romfs=partition, run=())
    result = subprocess.run([str(MICROPYTHON), "-X", "heapsize=400000", "-c", boot + program],
                            cwd=board, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


def test_the_board_side_programs_on_the_unix_port(tmp_path):
    partition = tmp_path / "board.romfs-partition"
    boardboot.blank_partition(partition, 8192)
    board = tmp_path / "board"
    (board / "firmware").mkdir(parents=True)
    (board / "firmware" / "__init__.py").write_text("")
    (board / "drivers").mkdir()  # empty: a namespace package
    (board / "main.py").write_text("main\n")
    names = deploy_mod.probe_names()
    # An erased partition: no image, nothing frozen; the files with their hashes.
    state = deploy_mod.parse_probe(_on_the_port(tmp_path, deploy_mod.probe_program(names),
                                                partition))
    assert state.rom == deploy_mod.RomPartition(1, 8192, None) and state.frozen is None
    assert state.folders == {"firmware", "drivers"}
    assert state.files == {"main.py": _sha(b"main\n"), "firmware/__init__.py": _sha(b"")}
    # A stock image has no vfs.rom_ioctl.
    stock = deploy_mod.parse_probe(_on_the_port(tmp_path, deploy_mod.probe_program(names)))
    assert stock.rom is None
    # An image in the partition: its hash over the length its header gives, not the 0xFF after.
    with open(partition, "r+b") as f:
        f.write(ROMFS)
    state = deploy_mod.parse_probe(_on_the_port(tmp_path, deploy_mod.probe_program(names),
                                                partition))
    assert state.rom.digest == _sha(ROMFS)
    out = _on_the_port(tmp_path, deploy_mod._ORIGIN)
    assert deploy_mod.parse_origin(out) == ("files", "firmware")
    steps = deploy_mod.plan(_image(tmp_path, romfs=True), "romfs", state.folders, state.files)
    remove = deploy_mod.sync_commands(tmp_path, steps)[0]
    _on_the_port(tmp_path, remove[1])
    assert sorted(p.name for p in board.iterdir()) == ["main.py"]
    assert deploy_mod.parse_origin(_on_the_port(tmp_path, deploy_mod._ORIGIN)) == (None, "-")


def _fake_board(probe_answer, calls):
    """A runner for deploy(): the probe gets `probe_answer`, every mpremote run succeeds."""
    def runner(cmd, **_):
        calls.append(cmd)
        out = probe_answer if "_NAMES = " in cmd[-1] else ""
        return subprocess.CompletedProcess(cmd, 0, out, "")
    return runner


def test_deploy_runs_one_probe_then_one_mpremote_run_and_checks_the_origin(tmp_path, monkeypatch):
    image = _image(tmp_path, romfs=True)
    calls, out = [], io.StringIO()
    answer = "d firmware\nf firmware/core.mpy %s\nrom 1 65536 -\nfrozen -\n" % ("0" * 64)
    monkeypatch.setattr(deploy_mod, "reset_check_and_log",
                        lambda *a, **k: (("romfs", "/rom/firmware"), ""))
    report = deploy_mod.deploy("socket://x:1", image, runner=_fake_board(answer, calls), out=out)
    assert report["code"] == "romfs" and report["romfs_written"]
    assert report["removed"] == ["firmware"] and sorted(report["copied"]) == ["boot.py", "main.py"]
    assert len(calls) == 2
    run = calls[1]
    assert run[6:9] == ["romfs", "deploy", str(tmp_path / "image.romfs")]
    assert run.count("+") == 3 and run[-2:] == [str(image / "main.py"), ":main.py"]
    # The board then imports firmware from somewhere else: the deploy fails, saying where.
    monkeypatch.setattr(deploy_mod, "reset_check_and_log",
                        lambda *a, **k: (("namespace", "firmware"), ""))
    with pytest.raises(deploy_mod.DeployError, match="from firmware .*folder without __init__.*"
                                                     "not ROMFS at /rom as deployed"):
        deploy_mod.deploy("socket://x:1", image, runner=_fake_board(answer, []), out=out)
    monkeypatch.setattr(deploy_mod, "reset_check_and_log", lambda *a, **k: ((None, "-"), ""))
    with pytest.raises(deploy_mod.DeployError, match="cannot import firmware"):
        deploy_mod.deploy("socket://x:1", image, runner=_fake_board(answer, []), out=out)
    # Refused: nothing but the probe ran.
    calls = []
    with pytest.raises(deploy_mod.DeployError, match="no ROM partition"):
        deploy_mod.deploy("socket://x:1", image, code="romfs",
                          runner=_fake_board("rom none\nfrozen -\n", calls), out=out)
    assert len(calls) == 1


def _tree(folder):
    """{path: sha256} of everything under folder: what a refused deploy must leave as it was."""
    return {p.relative_to(folder).as_posix(): _sha(p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _deploy_cli(*args):
    return subprocess.run([sys.executable, "-m", "tools.deploy"] + list(args), cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_the_probe_reads_the_profile_the_boards_config_names():
    assert deploy_mod.parse_probe("rom none\nfrozen -\nprofile -\n").profile is None
    assert deploy_mod.parse_probe("profile esp32_devkitc\n").profile == "esp32_devkitc"
    # A config.json without `board`: the firmware then takes the default profile.
    assert deploy_mod.parse_probe("profile =\n").profile == "sim"


def test_an_image_for_another_board_profile_is_refused_on_the_virtual_board(tmp_path):
    # A sim board, set up as one (config.json, its profile on its filesystem), without a ROM
    # partition: the DevKitC's .mpy files would replace boards/ and leave it no profile.
    from test_vboard import _VBoard

    board_dir = tmp_path / "board"
    (board_dir / "boards").mkdir(parents=True)
    (board_dir / "boards" / "sim.py").write_text("# the board's own profile\n")
    (board_dir / "config.json").write_text(json.dumps({"board": "sim"}))
    board = _VBoard(board_dir, tmp_path / "console.log", romfs_kb=0)
    try:
        before = _tree(board_dir)
        out = tmp_path / "devkitc"
        refused = _deploy_cli("--port", board.url, "--board", "esp32_devkitc", "--image",
                              str(out), "--code", "files", "--log-seconds", "0")
        assert refused.returncode == 2, refused.stderr + refused.stdout
        error = refused.stderr.strip()
        assert "\n" not in error and "board profile sim" in error, error
        assert "BOARD=sim" in error and "make provision" in error, error
        assert not out.exists()  # refused before building
        # A built image is read for the profiles it carries: the same refusal.
        built = _deploy_cli("--port", board.url, "--board", "sim", "--image", str(out),
                            "--code", "files", "--log-seconds", "0")
        assert built.returncode == 0, built.stderr + built.stdout
        (board_dir / "config.json").write_text(json.dumps({"board": "esp32_devkitc"}))
        before = _tree(board_dir)
        again = _deploy_cli("--port", board.url, "--image", str(out), "--log-seconds", "0")
        assert again.returncode == 2 and "board profile esp32_devkitc" in again.stderr
        assert "image is for sim" in again.stderr and "\n" not in again.stderr.strip()
        assert _tree(board_dir) == before
    finally:
        board.proc.terminate()
        board.proc.wait(10)


def test_a_port_with_no_board_is_refused_before_anything_is_built(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    out = tmp_path / "image"
    refused = _deploy_cli("--port", "socket://127.0.0.1:%d" % free, "--board", "sim",
                          "--image", str(out), "--log-seconds", "0")
    assert refused.returncode == 2
    error = refused.stderr.strip()
    assert error.startswith("deploy: cannot open socket://") and "\n" not in error, error
    assert "PORT=" in error and not out.exists()
