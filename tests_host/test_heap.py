"""The heap on the simulated board: what the simulation says it holds, and the firmware's heap
check at boot, which shows why and waits instead of running into a MemoryError mid-purchase.

Heap sizes are found by a first run, not written down: they move with the firmware's code."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SIM_LINE = re.compile(r"sim: the simulation holds (\d+) bytes of heap: start-up program (\d+), "
                      r"board module (\d+), chip models and board link (\d+), "
                      r"flash block device (\d+), ROMFS image (\d+)")


def _run(tmp, name, steps, code, heapsize=None, config=None):
    scenario = tmp / (name + ".json")
    scenario.write_text(json.dumps({"config": config or {}, "steps": steps}))
    out = tmp / name
    cmd = [sys.executable, "-m", "tools.sim", "--scenario", str(scenario), "--out", str(out),
           "--code", code]
    if heapsize:
        cmd += ["--heapsize", str(heapsize)]
    subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    events = [json.loads(line) for line in (out / "events.jsonl").open()]
    return out, events


def _logs(events):
    return [e["text"] for e in events if e["kind"] == "log"]


def _boot_heap(tmp, code):
    """The live heap once the simulated board is idle after boot, and the simulation's line."""
    out, events = _run(tmp, "probe_" + code, [{"wait": "idle", "timeout_ms": 20000}], code,
                       config={"heap_report": True})
    live = int(re.search(r"idle (\d+)", (out / "firmware.log").read_text()).group(1))
    line = next(SIM_LINE.search(text) for text in _logs(events) if SIM_LINE.search(text))
    return out, live, line


@pytest.mark.parametrize("code", ["romfs", "mpy"])
def test_the_simulation_logs_all_it_holds(tmp_path, code):
    out, live, line = _boot_heap(tmp_path, code)
    total, boot, module, models, bdev, rom = (int(g) for g in line.groups())
    assert total == boot + module + models + bdev + rom
    assert boot > 0 and module > 4096 and models > 0 and bdev > 0  # module: the erase buffer
    if code == "romfs":
        # The image's bytes, in the heap here and in flash on a board (the partition object
        # and the rounding to GC blocks add a few hundred bytes).
        image = (out / "image.romfs").stat().st_size
        assert image <= rom <= image + 512
    else:
        assert rom == 0
    assert total < live  # the firmware holds the rest


@pytest.mark.parametrize("code,fix", [("mpy", "put the code in flash, in ROMFS or frozen"),
                                      ("romfs", "this board needs more RAM")])
def test_a_heap_too_small_for_a_purchase_shows_why_and_waits(tmp_path, code, fix):
    _, live, _ = _boot_heap(tmp_path, code)
    # Room to boot, not for a purchase (16 KB on 32 bits, twice that on this 64-bit port).
    out, events = _run(tmp_path, "short_" + code,
                       [{"sleep_ms": 2500}, {"tap": "4761739001010010", "timeout_ms": 1500}],
                       code, heapsize=live + 16384)
    shown = [e["lines"] for e in events if e["kind"] == "display"]
    assert shown and shown[-1][:2] == ["NOT ENOUGH", "MEMORY"]
    assert [text for text in _logs(events) if text.startswith("memory: ") and fix in text]
    # It waits: no reset loop, and no purchase starts (the card stays unread).
    assert not [e for e in events if e["kind"] in ("firmware_exit", "card_read")]
    assert "Traceback" not in (out / "firmware.log").read_text()


def test_esp32_free_heap_leaves_wifi_and_tls_their_share(monkeypatch):
    # gc.mem_free() on the ESP32 counts the IDF heap's largest free block, which the GC heap
    # may grow into; Wi-Fi and TLS need 40 KB of the IDF heap, which the firmware must not count.
    import gc
    import types

    from boards import esp32_devkitc

    regions = [(200000, 30000, 20000, 0), (100000, 30000, 25000, 0)]
    fake = types.SimpleNamespace(HEAP_DATA=4, idf_heap_info=lambda caps: regions)
    monkeypatch.setitem(sys.modules, "esp32", fake)
    monkeypatch.setattr(gc, "mem_free", lambda: 10000 + 25000, raising=False)
    # 10 000 free in the GC heap; the IDF has 60 000 free, of which the reserve is not ours.
    assert esp32_devkitc.free_heap() == 10000 + 60000 - esp32_devkitc.IDF_RESERVE
    regions[:] = [(200000, 35000, 25000, 0)]
    assert esp32_devkitc.free_heap() == 10000  # nothing to grow into without starving TLS
