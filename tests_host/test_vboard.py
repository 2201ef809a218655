"""The maker's path on the virtual board: build, deploy, provision, then a purchase on the
deployed copy, all through the real commands (python -m tools.build / deploy / provision, which
run mpremote) against the MicroPython unix port behind tools/vboard.py's TCP bridge.

The code goes the default way, into the board's ROM partition as a ROMFS image, and the board
runs it from /rom. Beside it, a board with no ROM partition (a stock MicroPython) refuses that
way and takes the code as .mpy files on its filesystem instead.

The deployed firmware runs the `sim` board profile: its peripherals are the chip models, driven
by the sim's board link (tools/sim/session.py BoardModel), and its flash is the board's folder.
"""

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from firmware import keystore
from tools import deploy as deploy_mod
from tools.host import tlsca
from tools.host.server import HostSimulator
from tools.sim.session import BoardModel, EventLog, SimSession

REPO = Path(__file__).resolve().parents[1]
PAN = "4761739001010010"  # a default test card (tools/host/cards.json), PIN 1234
# This virtual board's unique ID (the unix port has no machine.unique_id(): boards/sim.py reads
# POS_DEVICE_ID): provisioning wraps the keys for it.
DEVICE_ID = "a4cf0b0a0d01"


def _tool(*args, timeout=120):
    return subprocess.run([sys.executable, "-m"] + list(args), cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


class _VBoard:
    """The vboard process, shaped as SimSession's firmware (running, power_cut)."""

    def __init__(self, folder, log, link_port=None, romfs_kb=None):
        cmd = [sys.executable, "-m", "tools.vboard", "--dir", str(folder), "--log", str(log),
               "--env", "POS_FLASH=.", "--env", "POS_DEVICE_ID=" + DEVICE_ID]
        if link_port is not None:
            cmd += ["--env", "POS_SIM_LINK=%d" % link_port]
        if romfs_kb is not None:
            cmd += ["--romfs-kb", str(romfs_kb)]
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip()

    @property
    def running(self):
        return self.proc.poll() is None

    async def power_cut(self):
        self.proc.terminate()
        self.proc.wait(10)


class _Counter(SimSession):
    """A SimSession whose firmware is whatever the vboard runs from its folder."""

    async def start(self):
        # The host serves TLS with a test CA's certificate; provisioning gives the board the CA.
        self.pki, _ = tlsca.ensure(self.out / "certs")
        self.host = HostSimulator(str(self.out / "host.db"), cards=None, port=0, tls=(
            str(self.pki["host.pem"]), str(self.pki["host.key.pem"])))
        await self.host.start()
        self.board = BoardModel(self.events, self.out / "receipts")
        await self.board.start()
        self.firmware = _VBoard(self.out / "board", self.out / "console.log", self.board.port)


def _in_thread(fn, *args, **kw):
    return asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args, **kw))


def _stale_code(board_dir):
    """What an older deploy of .mpy files left: a module that must not be imported."""
    (board_dir / "firmware").mkdir(parents=True, exist_ok=True)
    (board_dir / "firmware" / "stale.py").write_text("raise ImportError\n")


async def _without_rom_partition(tmp, files_image, romfs_image, figures):
    """A board whose MicroPython has no ROM partition: CODE=romfs is refused with the fix, and
    the default falls back to .mpy files on its filesystem, with a warning."""
    board_dir = tmp / "bare"
    _stale_code(board_dir)
    bare = _VBoard(board_dir, tmp / "bare.log", romfs_kb=0)
    try:
        assert not (tmp / "bare.romfs-partition").exists()
        refused = await _in_thread(_tool, "tools.deploy", "--port", bare.url, "--image",
                                   str(romfs_image), "--code", "romfs", "--log-seconds", "0")
        assert refused.returncode == 2
        error = refused.stderr.strip()
        assert "\n" not in error and "no ROM partition" in error, error
        assert "docs/romfs.md" in error and "make flash" in error and "CODE=files" in error
        assert (board_dir / "firmware" / "stale.py").exists()  # refused before touching it
        t0 = time.monotonic()
        auto = await _in_thread(_tool, "tools.deploy", "--port", bare.url, "--image",
                                str(files_image), "--log-seconds", "0")
        figures["files_deploy_s"] = time.monotonic() - t0
        assert auto.returncode == 0, auto.stderr + auto.stdout
        assert "deploy: warning: the board has no ROM partition" in auto.stdout
        n_files = sum(1 for p in files_image.rglob("*") if p.is_file())
        assert "deploy: %d files copied, 0 up to date, 1 stale removed" % n_files in auto.stdout
        assert "imports firmware from firmware (.mpy files on its filesystem)" in auto.stdout
        for p in files_image.rglob("*"):
            if p.is_file():
                assert (board_dir / p.relative_to(files_image)).read_bytes() == p.read_bytes()
        assert not (board_dir / "firmware" / "stale.py").exists()
    finally:
        await bare.power_cut()


async def _maker_path(tmp):
    figures = {}
    counter = _Counter(tmp)
    counter.events = EventLog(tmp / "events.jsonl")
    await counter.start()
    board_dir = tmp / "board"
    partition = tmp / "board.romfs-partition"
    url = counter.firmware.url
    bare = None
    try:
        assert url.startswith("socket://127.0.0.1:")
        # The ROM partition is a file beside the board's folder (its filesystem), erased.
        assert partition.stat().st_size == 256 * 1024
        # 1. build: the real command, with its size table; --romfs as make deploy does for a
        # board with a ROM partition, and .mpy files for the board without one.
        image, files_image = tmp / "image", tmp / "files"
        built, built_files = await asyncio.gather(
            _in_thread(_tool, "tools.build", "--board", "sim", "--romfs", "--out", str(image)),
            _in_thread(_tool, "tools.build", "--board", "sim", "--out", str(files_image)))
        assert built.returncode == 0, built.stderr
        assert built_files.returncode == 0, built_files.stderr
        total = re.search(r"^total\s+(\d+)\s+(\d+)$", built.stdout, re.M)
        assert total and int(total.group(2)) > 0
        assert "firmware/core.py" in built.stdout and "ROMFS image image.romfs" in built.stdout
        romfs = (tmp / "image.romfs").read_bytes()
        assert sorted(p.name for p in image.iterdir()) == ["boot.py", "main.py"]
        bare = asyncio.ensure_future(_without_rom_partition(tmp, files_image, image, figures))

        # 2. deploy, full, the default way: the image into the ROM partition, boot.py and
        # main.py on the filesystem, and the firmware/ an older deploy left removed whole (it
        # would hide /rom). Then the reset and the check of where firmware comes from.
        _stale_code(board_dir)
        t0 = time.monotonic()
        full = await _in_thread(_tool, "tools.deploy", "--port", url, "--image", str(image),
                                "--log-seconds", "0")
        figures["full_deploy_s"] = time.monotonic() - t0
        assert full.returncode == 0, full.stderr + full.stdout
        assert "deploy: ROMFS image written" in full.stdout
        assert "deploy: 2 files copied, 0 up to date, 1 stale removed" in full.stdout
        assert "removed from the filesystem, where they would hide the code: firmware/" \
            in full.stdout
        assert "code romfs: the board imports firmware from /rom/firmware" in full.stdout
        assert "no micropython-lib packages" in full.stdout
        assert "warning" not in full.stdout
        assert partition.read_bytes()[:len(romfs)] == romfs
        assert sorted(p.name for p in board_dir.iterdir() if p.suffix == ".py") == [
            "boot.py", "main.py"]
        assert not (board_dir / "firmware").exists()

        # 3. provision: settings from a local file, validated, written atomically.
        values = json.loads((REPO / "provision.template.json").read_text())
        values.update({"board": "sim", "host": "127.0.0.1", "host_name": "localhost",
                       "port": counter.host.port,
                       "ntp_host": "", "wifi_ssid": "", "wifi_password": "",
                       "merchant_name": "VBOARD CAFE"})
        local = tmp / "provision.local.json"
        local.write_text(json.dumps(values))
        prov = await _in_thread(_tool, "tools.provision", "--port", url, "--file", str(local),
                                "--ca", str(counter.pki["ca.pem"]))
        assert prov.returncode == 0, prov.stderr + prov.stdout
        assert (board_dir / "host_ca.der").read_bytes() == counter.pki["ca.der"].read_bytes()
        assert values["mac_key"] not in prov.stdout + prov.stderr
        written = json.loads((board_dir / "config.json").read_text())
        assert written["host"] == "127.0.0.1" and written["board"] == "sim"
        # The keys went on the board wrapped for its unique ID, which the tool asked it for.
        assert "wrapped for device %s" % DEVICE_ID in prov.stdout
        kek = keystore.device_key(bytes.fromhex(DEVICE_ID))
        for name in ("mac_key", "pin_key"):
            assert written[name].startswith("W:") and values[name] not in written[name]
            assert keystore.unwrap(kek, bytes.fromhex(written[name][2:])).hex().upper() == \
                values[name].upper()

        # 4. deploy again after main.py changed: only that file goes, the partition is not
        # rewritten (the board's image hashes the same); then the boot log, which shows the
        # firmware booting from /rom with the new settings.
        (image / "main.py").write_text((image / "main.py").read_text() + "\n# changed\n")
        t0 = time.monotonic()
        again = await _in_thread(_tool, "tools.deploy", "--port", url, "--image", str(image),
                                 "--log-seconds", "30", "--until", "boot: batch")
        figures["incremental_deploy_s"] = time.monotonic() - t0
        assert again.returncode == 0, again.stderr + again.stdout
        assert "ROMFS image already on the board, not rewritten" in again.stdout
        assert "deploy: 1 files copied, 1 up to date, 0 stale removed" in again.stdout
        assert "code romfs: the board imports firmware from /rom/firmware" in again.stdout
        assert "boot: batch" in again.stdout, again.stdout
        # The board unwrapped them (the purchase below is approved: its MAC key is right).
        clear = re.search(r"keys stored in clear \(([^)]*)\)", again.stdout)
        assert not clear or not {"mac_key", "pin_key"} & set(clear.group(1).split(", "))

        # 5. a purchase on the deployed copy, against the host simulator.
        deadline = time.monotonic() + 30
        while not counter.is_idle():
            assert time.monotonic() < deadline, "the deployed firmware never reached idle"
            await asyncio.sleep(0.05)
        assert any("VBOARD CAFE" in line for line in counter.board.lines)
        await counter.tap(PAN)
        await counter.keys("1250#")
        await counter.keys("1234#")
        await counter.wait("settled", 60000)

        # 6. make dev: the same board runs the firmware from the PC's folder, mounted.
        counter.board.drop_link()
        # Unbuffered: mpremote's output must reach the pipe before it is stopped.
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        dev = subprocess.Popen(deploy_mod.dev_command(url), cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 60
            while not counter.is_idle():
                assert dev.poll() is None, dev.stdout.read().decode()
                assert time.monotonic() < deadline, "make dev: the firmware never reached idle"
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
        finally:
            dev.terminate()
            dev.wait(10)
        assert "boot: batch 1 next stan 2" in dev.stdout.read().decode()
        await bare
    finally:
        if bare is not None and not bare.done():
            bare.cancel()
            await asyncio.gather(bare, return_exceptions=True)
        await counter.stop()
    ledger = json.loads((tmp / "ledger.json").read_text())
    approved = [t for t in ledger if t["rc"] == "00"]
    assert len(approved) == 1 and approved[0]["amount"] == 1250
    assert approved[0]["receipt_confirmed"] is True
    receipts = sorted((tmp / "receipts").glob("*.txt"))
    assert receipts and "APPROVED" in receipts[-1].read_text()
    assert "VBOARD CAFE" in receipts[-1].read_text()
    # The journal is on the board's folder, as it would be on the board's flash.
    assert (board_dir / "journal.bin").stat().st_size > 0
    return figures


def test_build_deploy_provision_and_a_purchase_on_the_virtual_board(tmp_path):
    figures = asyncio.run(_maker_path(tmp_path))
    print("virtual board: full ROMFS deploy %.1f s, incremental %.1f s (with the boot log), "
          ".mpy files deploy %.1f s" % (figures["full_deploy_s"],
                                        figures["incremental_deploy_s"],
                                        figures["files_deploy_s"]))
