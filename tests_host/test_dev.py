"""`make dev` on the virtual board: the firmware run from this folder, mounted on the board
(mpremote mount), boots with the board's own settings and flash and takes a purchase over TLS
against the host simulator, its sources compiled on the board."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

from test_vboard import PAN, REPO, _Counter, _in_thread, _tool

from tools.sim.session import EventLog


async def _dev_purchase(tmp):
    counter = _Counter(tmp)
    counter.events = EventLog(tmp / "events.jsonl")
    await counter.start()
    url = counter.firmware.url
    dev = None
    try:
        # boot.py and main.py only: make dev brings the code.
        image = tmp / "image"
        built = await _in_thread(_tool, "tools.build", "--board", "sim", "--romfs", "--out",
                                 str(image))
        assert built.returncode == 0, built.stderr
        full = await _in_thread(_tool, "tools.deploy", "--port", url, "--image", str(image),
                                "--log-seconds", "0")
        assert full.returncode == 0, full.stderr + full.stdout
        values = json.loads((REPO / "provision.template.json").read_text())
        values.update({"board": "sim", "host": "127.0.0.1", "host_name": "localhost",
                       "port": counter.host.port, "ntp_host": "",
                       "merchant_name": "DEV CAFE"})
        local = tmp / "provision.local.json"
        local.write_text(json.dumps(values))
        prov = await _in_thread(_tool, "tools.provision", "--port", url, "--file", str(local),
                                "--ca", str(counter.pki["ca.pem"]))
        assert prov.returncode == 0, prov.stderr + prov.stdout

        counter.board.drop_link()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        # make dev's command; in a session of its own, so that mpremote under it is stopped too.
        dev = subprocess.Popen([sys.executable, "-m", "tools.deploy", "--port", url, "--dev"],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env=env, start_new_session=True)
        deadline = time.monotonic() + 120
        while not counter.is_idle():
            assert dev.poll() is None, dev.stdout.read().decode()
            assert time.monotonic() < deadline, "make dev: the firmware never reached idle"
            await asyncio.sleep(0.05)
        assert any("DEV CAFE" in line for line in counter.board.lines)
        await counter.tap(PAN)
        await counter.keys("1250#")
        await counter.keys("1234#")
        await counter.wait("settled", 120000)
        assert dev.poll() is None
    finally:
        if dev is not None:
            os.killpg(dev.pid, signal.SIGTERM)
            dev.wait(10)
        await counter.stop()
    log = dev.stdout.read().decode()
    assert "Local directory %s is mounted at /remote" % REPO in log
    assert "MemoryError" not in log and "Traceback" not in log, log
    ledger = json.loads((tmp / "ledger.json").read_text())
    approved = [t for t in ledger if t["rc"] == "00"]
    assert len(approved) == 1 and approved[0]["amount"] == 1250, ledger
    return log


def test_make_dev_boots_from_the_mounted_folder_and_takes_a_purchase(tmp_path):
    log = asyncio.run(_dev_purchase(tmp_path))
    print(log[-2000:])
