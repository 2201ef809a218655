"""Runs scenarios through `python -m tools.sim` a few side by side (each is mostly waiting), for
the end-to-end tests."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# Runs at a time. Each is a firmware in real time beside its host, with protocol timeouts of
# seconds: ten at once beside the other test files made a 2-core machine so busy that a TLS
# handshake outlasted the response timeout, and the outcomes changed.
AT_ONCE = 3


def run_all(scenarios, base, timeout=240, at_once=AT_ONCE):
    """{name: scenario file} -> {name: (exit status, output, record dir)}, `at_once` at a
    time; `timeout` bounds each run."""
    waiting = list(scenarios.items())
    running = []
    results = {}
    while waiting or running:
        while waiting and len(running) < at_once:
            name, path = waiting.pop(0)
            running.append((name, subprocess.Popen(
                [sys.executable, "-m", "tools.sim", "--scenario", str(path), "--out",
                 str(Path(base) / name)],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
        name, proc = running.pop(0)
        out, _ = proc.communicate(timeout=timeout)
        results[name] = (proc.returncode, out, Path(base) / name)
    return results


def _texts(value, skip=()):
    """The strings of a JSON value, the fields named in skip left out."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            if k not in skip:
                yield from _texts(v, skip)
    elif isinstance(value, list):
        for v in value:
            yield from _texts(v, skip)


def record_leaks(out_dir, cards, pins=(), secrets=()):
    """What a run's record keeps that a terminal must not: a list of findings (empty = clean).

    Looks in the terminal's side of the record: flash.img (the board's flash, littlefs, deleted
    blocks included), firmware.log, crash.log, receipts/*.txt and events.jsonl; not in the
    host's ledger (ledger.json, host.db: the acquirer keeps card numbers) and, in events.jsonl,
    not in the wire frames' `hex` (the network carries the card number to the host).
    - each card's PAN: as text, alone or with its expiry (PAN+YYMM, track 2's PAN=YYMM and
      PAN D YYMM are all caught by the PAN), as BCD bytes, and as the hex of its text;
    - each PIN in pins as a contiguous digit string (use PINs long enough not to turn up by
      chance in a timestamp or a picture);
    - a digit key event while the firmware's last reported mode was "pin" (the PIN typed key by
      key);
    - each string in secrets (keys, upper and lower case)."""
    import json

    out = Path(out_dir)
    files = [out / name for name in ("flash.img", "firmware.log", "crash.log")]
    files += sorted((out / "receipts").glob("*.txt"))
    blobs = {}
    for path in files:
        if path.is_file():
            blobs[path.name] = path.read_bytes()
    events = []
    if (out / "events.jsonl").is_file():
        events = [json.loads(line) for line in (out / "events.jsonl").open() if line.strip()]
        text = "\n".join(s for e in events for s in _texts(
            e, ("hex",) if e["kind"] in ("host_tx", "host_rx", "net_partial") else ()))
        blobs["events.jsonl"] = text.encode()
    needles = []
    for card in cards:
        pan = card["pan"]
        needles.append(("PAN ...%s" % pan[-4:], pan.encode()))
        needles.append(("PAN ...%s as hex text" % pan[-4:], pan.encode().hex().encode()))
        if len(pan) % 2 == 0:
            needles.append(("PAN ...%s as BCD" % pan[-4:], bytes.fromhex(pan)))
    for pin in pins:
        needles.append(("PIN %s" % ("*" * len(pin)), pin.encode()))
    for i, secret in enumerate(secrets):
        for form in {secret.upper(), secret.lower()}:
            needles.append(("secret %d" % (i + 1), form.encode()))
    findings = ["%s in %s" % (what, name) for name, data in sorted(blobs.items())
                for what, needle in needles if needle in data]
    mode = None
    for e in events:
        if e["kind"] == "state" and isinstance(e.get("state"), dict):
            mode = e["state"].get("mode")
        elif e["kind"] in ("power", "firmware_exit", "boot"):
            mode = None
        elif e["kind"] == "key" and mode == "pin" and str(e.get("label")).isdigit():
            findings.append("PIN digit key event at %d ms" % e["t_ms"])
    return findings
