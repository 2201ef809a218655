"""The frozen build (make firmware) without ESP-IDF: each board's manifest evaluated as
MicroPython's build evaluates it, against the image `make build` makes for that board; and
tools/firmware.py's commands (--dry-run), builder choice, refusals and checkout check, for the
frozen build and the ROMFS one (make firmware ROMFS=1: its generated board folder).

The manifest API below follows MicroPython v1.28.0's docs/reference/manifest.rst and
tools/manifestfile.py (freeze mode); MicroPython itself is not needed. The port's manifest is
stood in for by a small one of the same shape (a frozen folder, an included directory, a
package with positional files and base_path, require)."""

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from tools import build, firmware, flash, partitions

ROOT = Path(__file__).resolve().parents[1]
ESP32_BOARDS = sorted(flash.BOARDS)


# -- MicroPython's manifest API, freeze mode ------------------------------------------------

class Options:
    """The `options` global: include()'s keyword arguments, then defaults()."""

    def __init__(self, **kwargs):
        self._kwargs, self._defaults = kwargs, {}

    def defaults(self, **kwargs):
        self._defaults = kwargs

    def __getattr__(self, name):
        return self._kwargs.get(name, self._defaults.get(name))


class Manifest:
    """Evaluates manifests; `frozen` is [(target path on the board, source file, opt)]."""

    def __init__(self, path_vars):
        self.path_vars = path_vars
        self.frozen, self.required, self.metadata_calls = [], [], []
        self._visited = set()
        self._dir = [os.getcwd()]

    def resolve(self, path):
        for name, value in self.path_vars.items():
            path = path.replace("$(%s)" % name, value)
        return os.path.normpath(os.path.join(self._dir[-1], path))

    def _add(self, full_path, target, opt):
        if not os.path.isfile(full_path):
            raise FileNotFoundError("cannot stat %s" % full_path)
        self.frozen.append((target.replace(os.sep, "/"), Path(full_path), opt))

    def _walk(self, base, sub, exts, opt):
        for dirpath, _, names in os.walk(os.path.join(base, sub) if sub else base):
            for name in sorted(names):
                if os.path.splitext(name)[1] in exts:
                    full = os.path.join(dirpath, name)
                    self._add(full, os.path.relpath(full, base), opt)

    def include(self, manifest_path, **kwargs):
        if not isinstance(manifest_path, str):
            for path in manifest_path:
                self.include(path, **kwargs)
            return
        path = self.resolve(manifest_path)
        if os.path.isdir(path):
            path = os.path.join(path, "manifest.py")
        if path in self._visited:
            return
        self._visited.add(path)
        with open(path) as f:
            code = f.read()
        self._dir.append(os.path.dirname(path))
        try:
            exec(compile(code, path, "exec"), self.api(kwargs))
        finally:
            self._dir.pop()

    def freeze(self, path, script=None, opt=None):
        base = self.resolve(path)
        if script is None:
            self._walk(base, None, (".py", ".mpy"), opt)
        elif isinstance(script, str) and os.path.isdir(os.path.join(base, script)):
            self._walk(base, script, (".py", ".mpy"), opt)
        else:
            for name in [script] if isinstance(script, str) else script:
                self._add(os.path.join(base, name), name, opt)

    def module(self, module_path, base_path=".", opt=None):
        if not module_path.endswith(".py"):
            raise ValueError("module must be .py file")
        self._add(os.path.join(self.resolve(base_path), module_path), module_path, opt)

    def package(self, package_path, files=None, base_path=".", opt=None):
        base = self.resolve(base_path)
        if files is None:
            self._walk(base, package_path, (".py",), opt)
        for name in files or ():
            target = os.path.join(package_path, name)
            self._add(os.path.join(base, target), target, opt)

    def require(self, name, version=None, library=None, **kwargs):
        self.required.append(name)  # micropython-lib: the port's business, not ours

    def metadata(self, **kwargs):
        self.metadata_calls.append(kwargs)

    def api(self, kwargs):
        return {"include": self.include, "freeze": self.freeze, "module": self.module,
                "package": self.package, "require": self.require,
                "metadata": self.metadata, "options": Options(**kwargs)}


@pytest.fixture
def micropython_tree(tmp_path):
    """$(MPY_DIR) and $(PORT_DIR) with a port manifest shaped like ports/esp32's."""
    mpy = tmp_path / "micropython"
    port = mpy / "ports" / "esp32"
    files = {
        port / "boards" / "manifest.py": 'freeze("$(PORT_DIR)/modules")\n'
                                         'include("$(MPY_DIR)/extmod/asyncio")\n'
                                         'require("bundle-networking")\n',
        port / "modules" / "_boot.py": "",
        port / "modules" / "flashbdev.py": "",
        mpy / "extmod" / "asyncio" / "manifest.py": 'package("asyncio", ("__init__.py", '
                                                    '"core.py"), base_path="..", opt=3)\n',
        mpy / "extmod" / "asyncio" / "__init__.py": "",
        mpy / "extmod" / "asyncio" / "core.py": "",
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return {"MPY_DIR": str(mpy), "PORT_DIR": str(port)}


def evaluate(board, path_vars):
    manifest = Manifest(path_vars)
    manifest.include(str(firmware.manifest_path(board)))
    return manifest


def ours(manifest):
    return [(target, path, opt) for target, path, opt in manifest.frozen
            if path.is_relative_to(ROOT)]


# -- the manifests against the images -------------------------------------------------------

def test_every_esp32_board_has_a_manifest_and_nothing_else_does():
    manifests = sorted(p.stem for p in (ROOT / "boards" / "manifests").glob("*.py"))
    assert manifests == ESP32_BOARDS
    assert ESP32_BOARDS == sorted(b for b, arch in build.ARCH.items() if arch is not None)


@pytest.mark.parametrize("board", ESP32_BOARDS)
def test_manifest_freezes_exactly_the_boards_image(board, micropython_tree, tmp_path):
    frozen = ours(evaluate(board, micropython_tree))
    _, _, rows = build.build_board(board, out=tmp_path / "image")
    image = sorted(name for name, _, _ in rows if name not in build.SOURCES)
    targets = [target for target, _, _ in frozen]
    assert len(targets) == len(set(targets)), "a module frozen twice"
    assert sorted(targets) == image
    for target, path, opt in frozen:
        assert path == ROOT / target, "frozen from the file the image compiles"
        assert opt is None, "mpy-cross's default, as tools/build.py compiles"


@pytest.mark.parametrize("board", ESP32_BOARDS)
def test_manifest_freezes_the_profiles_the_board_borrows_and_no_other(board, micropython_tree):
    profiles = {t[len("boards/"):-3] for t, _, _ in ours(evaluate(board, micropython_tree))
                if t.startswith("boards/")} - {"__init__", "common"}
    assert profiles == build.board_profiles(board)
    assert board in profiles


@pytest.mark.parametrize("board", ESP32_BOARDS)
def test_entry_points_and_tools_stay_out_of_the_image(board, micropython_tree):
    targets = {t for t, _, _ in ours(evaluate(board, micropython_tree))}
    assert not targets & {"main.py", "boot.py"}
    assert not [t for t in targets if t.split("/")[0] not in ("firmware", "drivers", "boards")]


@pytest.mark.parametrize("board", ESP32_BOARDS)
def test_the_ports_own_modules_stay_in_the_image(board, micropython_tree):
    manifest = evaluate(board, micropython_tree)
    port = {t for t, p, _ in manifest.frozen if not p.is_relative_to(ROOT)}
    assert port == {"_boot.py", "flashbdev.py", "asyncio/__init__.py", "asyncio/core.py"}
    assert manifest.required == ["bundle-networking"], "package.json lists no dependency"
    ours_top = {t.split("/")[0] for t, _, _ in ours(manifest)}
    assert not ours_top & {t.split("/")[0].removesuffix(".py") for t in port}


def test_the_shared_manifest_alone_refuses_to_freeze_no_profile(micropython_tree):
    with pytest.raises(ValueError, match="boards/manifests/BOARD.py"):
        Manifest(micropython_tree).include(str(ROOT / "manifest.py"))


# -- tools/firmware.py ----------------------------------------------------------------------

def executable(folder, name, script):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return path


@pytest.fixture
def bare_path(tmp_path, monkeypatch):
    """A PATH with git and make but neither idf.py nor docker, and no IDF_PATH."""
    bin_dir = tmp_path / "bin"
    for tool in ("git", "make", "sh"):
        found = subprocess.run(["sh", "-c", "command -v " + tool], capture_output=True,
                               text=True).stdout.strip()
        if found:
            bin_dir.mkdir(exist_ok=True)
            (bin_dir / tool).symlink_to(found)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("IDF_PATH", raising=False)
    return bin_dir


def local_idf(tmp_path, monkeypatch, bin_dir, version=(5, 5, 1)):
    idf = tmp_path / "esp-idf"
    (idf / "tools" / "cmake").mkdir(parents=True)
    (idf / "tools" / "cmake" / "version.cmake").write_text(
        "set(IDF_VERSION_MAJOR %d)\nset(IDF_VERSION_MINOR %d)\nset(IDF_VERSION_PATCH %d)\n"
        % version)
    executable(bin_dir, "idf.py", "exit 0\n")
    monkeypatch.setenv("IDF_PATH", str(idf))
    return idf


def dry_run(capsys, *args):
    status = firmware.main(["--dry-run", *args])
    out, err = capsys.readouterr()
    return status, [shlex.split(line) for line in out.splitlines()], err


def test_board_names_come_from_the_flash_tools_download_table():
    assert firmware.micropython_board("esp32_devkitc") == "ESP32_GENERIC"
    assert firmware.micropython_board("esp32_s3_devkitc") == "ESP32_GENERIC_S3"


def test_dry_run_with_a_local_idf(tmp_path, monkeypatch, bare_path, capsys):
    local_idf(tmp_path, monkeypatch, bare_path)
    src, out = tmp_path / "micropython", tmp_path / "out"
    status, lines, err = dry_run(capsys, "--board", "esp32_devkitc", "--micropython", str(src),
                                 "--out", str(out))
    assert status == 0, err
    port = str(src / "ports" / "esp32")
    make = ["BOARD=ESP32_GENERIC", "BUILD=build-esp32_devkitc",
            "FROZEN_MANIFEST=" + str(ROOT / "boards" / "manifests" / "esp32_devkitc.py")]
    assert lines == [
        ["git", "clone", "--depth", "1", "--branch", "v1.28.0",
         "https://github.com/micropython/micropython.git", str(src)],
        ["git", "-C", str(src), "describe", "--tags", "--exact-match", "HEAD"],
        ["make", "-C", str(src / "mpy-cross")],
        ["make", "-C", port] + make + ["submodules"],
        ["make", "-C", port] + make,
        ["cp", port + "/build-esp32_devkitc/firmware.bin", str(out / "esp32_devkitc-frozen.bin")],
        # A frozen image cannot mount a ROMFS: it keeps its own table.
        ["#", "then:", "make", "flash", "PORT=/dev/ttyUSB0",
         "FIRMWARE=" + str(out / "esp32_devkitc-frozen.bin"), "BOARD=esp32_devkitc",
         "FLASH_ARGS=--no-romfs"],
        ["#", "then:", "make", "deploy", "PORT=/dev/ttyUSB0", "BOARD=esp32_devkitc",
         "CODE=frozen"],
    ]
    assert not src.exists() and not out.exists(), "a dry run makes nothing"


def test_dry_run_with_docker(tmp_path, monkeypatch, bare_path, capsys):
    executable(bare_path, "docker", 'echo 28.2.2\n')
    src = tmp_path / "micropython"
    (src / ".git").mkdir(parents=True)
    status, lines, err = dry_run(capsys, "--board", "esp32_s3_devkitc", "--micropython",
                                 str(src), "--variant", "SPIRAM_OCT")
    assert status == 0, err
    assert lines[0][:3] == ["git", "-C", str(src)], "a checkout that is there is not cloned"
    docker = lines[1:4]
    for cmd in docker:
        assert cmd[:3] == ["docker", "run", "--rm"]
        assert cmd[cmd.index("-v") + 1] == "%s:/micropython" % src
        assert "%s:/project" % ROOT in cmd
        assert cmd[cmd.index("espressif/idf:v5.5.1") - 2:][:2] == ["-w", "/micropython"]
    inner = [cmd[cmd.index("espressif/idf:v5.5.1") + 1:] for cmd in docker]
    make = ["BOARD=ESP32_GENERIC_S3", "BUILD=build-esp32_s3_devkitc-SPIRAM_OCT",
            "FROZEN_MANIFEST=/project/boards/manifests/esp32_s3_devkitc.py",
            "BOARD_VARIANT=SPIRAM_OCT"]
    assert inner == [["make", "-C", "/micropython/mpy-cross"],
                     ["make", "-C", "/micropython/ports/esp32"] + make + ["submodules"],
                     ["make", "-C", "/micropython/ports/esp32"] + make]
    assert lines[4][0] == "cp" and lines[4][1].endswith(
        "ports/esp32/build-esp32_s3_devkitc-SPIRAM_OCT/firmware.bin")
    assert lines[4][2] == str(ROOT / "build" / "firmware" / "esp32_s3_devkitc-frozen.bin")
    assert "FIRMWARE=build/firmware/esp32_s3_devkitc-frozen.bin" in lines[5]
    assert not [cmd for cmd in lines if ":/board" in " ".join(cmd)], "no board folder mounted"


def test_a_local_idf_is_preferred_to_docker(tmp_path, monkeypatch, bare_path, capsys):
    local_idf(tmp_path, monkeypatch, bare_path)
    executable(bare_path, "docker", "exit 0\n")
    status, lines, _ = dry_run(capsys, "--micropython", str(tmp_path / "mp"))
    assert status == 0
    assert not [cmd for cmd in lines if cmd[0] == "docker"]
    status, lines, _ = dry_run(capsys, "--micropython", str(tmp_path / "mp"),
                               "--builder", "docker")
    assert status == 0 and [cmd for cmd in lines if cmd[0] == "docker"]


@pytest.mark.parametrize("docker, says", [
    (None, "no docker command"),
    ("echo 'Cannot connect to the Docker daemon' >&2; exit 1\n",
     "its engine does not answer"),
])
def test_refused_in_one_line_with_neither_idf_nor_docker(tmp_path, bare_path, capsys, docker,
                                                         says):
    if docker:
        executable(bare_path, "docker", docker)
    status, lines, err = dry_run(capsys, "--micropython", str(tmp_path / "mp"))
    assert status == 2 and lines == []
    assert len(err.splitlines()) == 1
    assert "install ESP-IDF v5.5.1" in err and "Docker" in err and says in err


def test_idf_path_without_export_is_named(tmp_path, monkeypatch, bare_path, capsys):
    monkeypatch.setenv("IDF_PATH", str(tmp_path / "esp-idf"))
    status, _, err = dry_run(capsys, "--builder", "idf")
    assert status == 2 and "export.sh" in err


def test_an_idf_older_than_micropython_supports_is_refused(tmp_path, monkeypatch, bare_path,
                                                           capsys):
    local_idf(tmp_path, monkeypatch, bare_path, version=(5, 2, 1))
    status, lines, err = dry_run(capsys)
    assert status == 2 and lines == []
    assert "v5.2.1" in err and "v5.3.0" in err


def test_an_untested_idf_is_tried_with_a_warning(tmp_path, monkeypatch, bare_path, capsys):
    local_idf(tmp_path, monkeypatch, bare_path, version=(5, 5, 2))
    status, lines, err = dry_run(capsys, "--micropython", str(tmp_path / "mp"))
    assert status == 0 and lines and "v5.5.2" in err


# -- a build with the commands faked, the checkout real -------------------------------------

def git_checkout(path, tag):
    path.mkdir(parents=True)
    git = ["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@t",
           "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"]
    for cmd in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "x"],
                ["tag", "-a", tag, "-m", tag]):
        subprocess.run(git + cmd, check=True, capture_output=True)
    return path


def full_image(chip_id, offset):
    """Enough of an ESP image for tools/flash.py's check: header with the chip ID, and a
    partition table entry where flash 0x8000 falls."""
    data = bytearray(b"\xff" * (0x8000 - offset + 32))
    data[:24] = bytes([0xE9, 1, 2, 0x20]) + bytes(8) + chip_id.to_bytes(2, "little") + bytes(10)
    data[0x8000 - offset:0x8000 - offset + 2] = b"\xaa\x50"
    return bytes(data)


class FakeBuild:
    """Runs git for real; records make and leaves the image the port's Makefile would."""

    def __init__(self, board, src, image):
        self.board, self.src, self.image, self.commands = board, src, image, []

    def __call__(self, cmd, capture=False, timeout=None):
        if cmd[0] == "git":
            return firmware.run_command(cmd, capture=capture, timeout=timeout)
        self.commands.append(cmd)
        if cmd[0] == "make" and cmd[-1].startswith("FROZEN_MANIFEST="):
            out = firmware.built_image(self.board, self.src)
            out.parent.mkdir(parents=True)
            out.write_bytes(self.image)
        return 0, ""


def test_a_build_copies_the_image_and_prints_the_flash_line(tmp_path, monkeypatch, bare_path,
                                                            capsys):
    local_idf(tmp_path, monkeypatch, bare_path)
    src, out = git_checkout(tmp_path / "micropython", "v1.28.0"), tmp_path / "out"
    image = full_image(0, 0x1000)
    fake = FakeBuild("esp32_devkitc", src, image)
    status = firmware.main(["--micropython", str(src), "--out", str(out)], run=fake)
    text, err = capsys.readouterr()
    assert status == 0, err
    assert [cmd[-1] for cmd in fake.commands][1] == "submodules"
    assert (out / "esp32_devkitc-frozen.bin").read_bytes() == image
    assert text.splitlines()[-2:] == [
        "next: make flash PORT=/dev/ttyUSB0 FIRMWARE=%s BOARD=esp32_devkitc "
        "FLASH_ARGS=--no-romfs" % (out / "esp32_devkitc-frozen.bin"),
        "then: make deploy PORT=/dev/ttyUSB0 BOARD=esp32_devkitc CODE=frozen"]
    assert not (out / "boards").exists()


def test_an_image_for_another_chip_is_not_kept(tmp_path, monkeypatch, bare_path, capsys):
    local_idf(tmp_path, monkeypatch, bare_path)
    src, out = git_checkout(tmp_path / "micropython", "v1.28.0"), tmp_path / "out"
    fake = FakeBuild("esp32_devkitc", src, full_image(9, 0))  # an S3 image
    status = firmware.main(["--micropython", str(src), "--out", str(out)], run=fake)
    assert status == 2 and "esp32s3" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("tag", ["v1.27.0", "v1.28.0-preview"])
def test_a_checkout_at_another_version_is_refused(tmp_path, monkeypatch, bare_path, capsys,
                                                   tag):
    local_idf(tmp_path, monkeypatch, bare_path)
    src = git_checkout(tmp_path / "micropython", tag)
    fake = FakeBuild("esp32_devkitc", src, b"")
    status = firmware.main(["--micropython", str(src)], run=fake)
    err = capsys.readouterr().err
    assert status == 2 and fake.commands == []
    assert "is at %s, not v1.28.0" % tag in err and "checkout v1.28.0" in err


def test_a_folder_that_is_no_checkout_is_refused(tmp_path, monkeypatch, bare_path, capsys):
    local_idf(tmp_path, monkeypatch, bare_path)
    src = tmp_path / "micropython"
    src.mkdir()
    fake = FakeBuild("esp32_devkitc", src, b"")
    status = firmware.main(["--micropython", str(src)], run=fake)
    assert status == 2 and fake.commands == []
    assert "not a git checkout" in capsys.readouterr().err


def test_make_firmware_passes_its_variables(bare_path):
    result = subprocess.run(["make", "-n", "firmware",
                             "BOARD=esp32_s3_devkitc", "MICROPYTHON_SRC=/src/mp",
                             "VARIANT=SPIRAM_OCT"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert ("-m tools.firmware --board esp32_s3_devkitc --micropython /src/mp "
            "--variant SPIRAM_OCT") in result.stdout


# -- the ROMFS build (make firmware ROMFS=1) ------------------------------------------------

def dry_run_script(capsys, *args):
    """(status, commands, {path: text} of the board folder's files, the shell text that writes
    them) from a --romfs dry run: its `cat > FILE <<'EOF'` commands are taken apart."""
    status = firmware.main(["--dry-run", "--romfs", *args])
    out, err = capsys.readouterr()
    assert status == 0, err
    commands, files, script, lines = [], {}, [], iter(out.splitlines())
    for line in lines:
        if line.startswith("cat > "):
            script.append(line)
            name, text = shlex.split(line[len("cat > "):-len("<<'EOF'")])[0], []
            for body in lines:
                script.append(body)
                if body == "EOF":
                    break
                text.append(body + "\n")
            files[name] = "".join(text)
        else:
            if line.startswith("mkdir "):
                script.append(line)
            commands.append(shlex.split(line))
    return commands, files, "\n".join(script) + "\n"


def test_romfs_dry_run_with_a_local_idf(tmp_path, monkeypatch, bare_path, capsys):
    local_idf(tmp_path, monkeypatch, bare_path)
    src, out = tmp_path / "micropython", tmp_path / "out"
    commands, files, script = dry_run_script(capsys, "--board", "esp32_devkitc",
                                             "--micropython", str(src), "--out", str(out))
    folder = out / "boards" / "ESP32_GENERIC_ROMFS"
    assert sorted(files) == [str(folder / n) for n in ("mpconfigboard.cmake", "mpconfigboard.h",
                                                       "sdkconfig.romfs")]
    header = files[str(folder / "mpconfigboard.h")]
    assert '#include "boards/ESP32_GENERIC/mpconfigboard.h"' in header
    assert "#define MICROPY_VFS_ROM (1)" in header.splitlines()
    cmake = files[str(folder / "mpconfigboard.cmake")]
    assert "include(${CMAKE_SOURCE_DIR}/boards/ESP32_GENERIC/mpconfigboard.cmake)" in cmake
    assert cmake.rstrip().splitlines()[-1] == (
        "list(APPEND SDKCONFIG_DEFAULTS ${MICROPY_BOARD_DIR}/sdkconfig.romfs)")
    # The stock table, which tools/flash.py requires (partitions.STOCK) and then replaces.
    sdkconfig = files[str(folder / "sdkconfig.romfs")]
    assert 'CONFIG_PARTITION_TABLE_CUSTOM_FILENAME="partitions-4MiBplus.csv"' in sdkconfig
    assert "partitions-4MiBplus.csv" in (ROOT / "tools" / "partitions.py").read_text()
    port = str(src / "ports" / "esp32")
    make = ["BOARD=ESP32_GENERIC_ROMFS", "BOARD_DIR=" + str(folder),
            "BUILD=build-esp32_devkitc-romfs"]
    assert commands[2:] == [
        ["mkdir", "-p", str(folder)],
        ["make", "-C", str(src / "mpy-cross")],
        ["make", "-C", port] + make + ["submodules"],
        ["make", "-C", port] + make,
        ["cp", port + "/build-esp32_devkitc-romfs/firmware.bin",
         str(out / "esp32_devkitc-romfs.bin")],
        ["#", "then:", "make", "flash", "PORT=/dev/ttyUSB0",
         "FIRMWARE=" + str(out / "esp32_devkitc-romfs.bin"), "BOARD=esp32_devkitc"],
        ["#", "then:", "make", "deploy", "PORT=/dev/ttyUSB0", "BOARD=esp32_devkitc",
         "CODE=romfs"],
    ]
    assert not src.exists() and not out.exists(), "a dry run makes nothing"
    # The printed lines are a shell script that writes what the tool writes.
    subprocess.run(["sh", "-c", script], check=True, env=dict(os.environ, PATH=os.defpath))
    assert {str(p): p.read_text() for p in folder.iterdir()} == files
    assert files == {str(folder / n): t
                     for n, t in firmware.romfs_board_files("esp32_devkitc").items()}


def test_romfs_dry_run_with_docker_and_a_variant(tmp_path, bare_path, capsys):
    executable(bare_path, "docker", "echo 28.2.2\n")
    src = tmp_path / "micropython"
    (src / ".git").mkdir(parents=True)
    commands, files, _ = dry_run_script(capsys, "--board", "esp32_s3_devkitc", "--micropython",
                                        str(src), "--variant", "SPIRAM_OCT")
    folder = ROOT / "build" / "firmware" / "boards" / "ESP32_GENERIC_S3_ROMFS"
    assert sorted(Path(f).name for f in files) == [
        "mpconfigboard.cmake", "mpconfigboard.h", "mpconfigvariant_SPIRAM_OCT.cmake",
        "sdkconfig.romfs"]
    assert ("include(${CMAKE_SOURCE_DIR}/boards/ESP32_GENERIC_S3/mpconfigvariant_SPIRAM_OCT"
            ".cmake)") in files[str(folder / "mpconfigvariant_SPIRAM_OCT.cmake")]
    assert '#include "boards/ESP32_GENERIC_S3/mpconfigboard.h"' in files[
        str(folder / "mpconfigboard.h")]
    docker = [cmd for cmd in commands if cmd[0] == "docker"]
    assert len(docker) == 3
    for cmd in docker:
        assert "%s:/board" % folder in cmd, "the board folder, wherever --out is"
    inner = docker[-1][docker[-1].index("espressif/idf:v5.5.1") + 1:]
    assert inner == ["make", "-C", "/micropython/ports/esp32", "BOARD=ESP32_GENERIC_S3_ROMFS",
                     "BOARD_DIR=/board", "BUILD=build-esp32_s3_devkitc-romfs-SPIRAM_OCT",
                     "BOARD_VARIANT=SPIRAM_OCT"]
    assert not [c for c in commands if any(a.startswith("FROZEN_MANIFEST=") for a in c)]


def test_make_firmware_romfs_passes_romfs(bare_path):
    for value, flag in (("1", True), ("", False), ("0", False)):
        result = subprocess.run(["make", "-n", "firmware", "ROMFS=" + value], cwd=ROOT,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert ("--romfs" in result.stdout) == flag, value


def romfs_image(romfs=True):
    """full_image() with what tools/flash.py wants before writing its romfs table: the stock
    table, the banner, and the qstrs of a MICROPY_VFS_ROM build."""
    data = bytearray(full_image(0, 0x1000))
    table = partitions.to_binary(partitions.STOCK)
    data[0x7000:0x7000 + len(table)] = table
    data += b"\xff" * (0xF000 - len(data)) + b"MicroPython v1.28.0 on 2026-04-06\x00"
    return bytes(data) + (b"VfsRom\x00rom_ioctl\x00" if romfs else b"")


class FakeRomfsBuild:
    """Runs git for real; records make, checks the board folder is there when make runs, and
    leaves the image the port's Makefile would."""

    def __init__(self, src, image, folder):
        self.src, self.image, self.folder, self.commands = src, image, folder, []

    def __call__(self, cmd, capture=False, timeout=None):
        if cmd[0] == "git":
            return firmware.run_command(cmd, capture=capture, timeout=timeout)
        self.commands.append(cmd)
        assert (self.folder / "mpconfigboard.h").is_file()
        if cmd[0] == "make" and cmd[-1].startswith("BUILD="):
            out = firmware.built_image("esp32_devkitc", self.src, romfs=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(self.image)
        return 0, ""


def test_a_romfs_build_writes_its_board_folder_and_checks_the_image(tmp_path, monkeypatch,
                                                                    bare_path, capsys):
    local_idf(tmp_path, monkeypatch, bare_path)
    src, out = git_checkout(tmp_path / "micropython", "v1.28.0"), tmp_path / "out"
    folder = out / "boards" / "ESP32_GENERIC_ROMFS"
    fake = FakeRomfsBuild(src, romfs_image(), folder)
    argv = ["--romfs", "--micropython", str(src), "--out", str(out)]
    assert firmware.main(argv, run=fake) == 0
    text = capsys.readouterr().out
    assert (out / "esp32_devkitc-romfs.bin").read_bytes() == romfs_image()
    assert not (out / "esp32_devkitc-frozen.bin").exists()
    assert text.splitlines()[-2:] == [
        "next: make flash PORT=/dev/ttyUSB0 FIRMWARE=%s BOARD=esp32_devkitc"
        % (out / "esp32_devkitc-romfs.bin"),
        "then: make deploy PORT=/dev/ttyUSB0 BOARD=esp32_devkitc CODE=romfs"]
    assert {p.name: p.read_text() for p in folder.iterdir()} == firmware.romfs_board_files(
        "esp32_devkitc")
    # Built again: the same files stay untouched (a newer mpconfigboard.h rebuilds everything),
    # a stray one goes.
    header = folder / "mpconfigboard.h"
    os.utime(header, ns=(1, 1))
    (folder / "mpconfigvariant_OLD.cmake").write_text("")
    assert firmware.main(argv, run=fake) == 0
    assert header.stat().st_mtime_ns == 1
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        firmware.romfs_board_files("esp32_devkitc"))


def test_a_romfs_build_that_make_flash_would_refuse_is_not_kept(tmp_path, monkeypatch,
                                                                bare_path, capsys):
    local_idf(tmp_path, monkeypatch, bare_path)
    src, out = git_checkout(tmp_path / "micropython", "v1.28.0"), tmp_path / "out"
    fake = FakeRomfsBuild(src, romfs_image(romfs=False), out / "boards" / "ESP32_GENERIC_ROMFS")
    status = firmware.main(["--romfs", "--micropython", str(src), "--out", str(out)], run=fake)
    err = capsys.readouterr().err
    assert status == 2 and "cannot mount a ROMFS" in err
    assert not (out / "esp32_devkitc-romfs.bin").exists()


@pytest.mark.parametrize("variant, files, says", [
    ("SPIRAM_OCT", {}, "no variant SPIRAM_OCT (it has: OTA)"),
    ("OTA", {"boards/ESP32_GENERIC/sdkconfig.ota":
             'CONFIG_PARTITION_TABLE_CUSTOM_FILENAME="partitions-4MiB-ota.csv"\n'},
     "variant OTA uses partitions-4MiB-ota.csv, not partitions-4MiBplus.csv"),
])
def test_a_romfs_variant_must_exist_and_keep_the_stock_table(tmp_path, monkeypatch, bare_path,
                                                             capsys, variant, files, says):
    local_idf(tmp_path, monkeypatch, bare_path)
    src = git_checkout(tmp_path / "micropython", "v1.28.0")
    port = src / "ports" / "esp32"
    (port / "boards" / "ESP32_GENERIC").mkdir(parents=True)
    (port / "boards" / "ESP32_GENERIC" / "mpconfigvariant_OTA.cmake").write_text(
        "set(SDKCONFIG_DEFAULTS\n    ${SDKCONFIG_DEFAULTS}\n"
        "    boards/ESP32_GENERIC/sdkconfig.ota\n)\n")
    for name, text in files.items():
        (port / name).write_text(text)
    fake = FakeRomfsBuild(src, b"", tmp_path / "out")
    status = firmware.main(["--romfs", "--variant", variant, "--micropython", str(src),
                            "--out", str(tmp_path / "out")], run=fake)
    assert status == 2 and fake.commands == []
    assert says in capsys.readouterr().err
