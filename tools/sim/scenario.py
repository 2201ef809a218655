"""Scripted scenarios (docs/simulated-board.md, "Scripted"): validation and the runner."""

import asyncio
import json

from tools import cardnumber
from tools.sim.session import KEY_LABELS, SimError, SimSession

HOST_FAULTS = {"drop_request", "drop_response", "delay_response", "disconnect", "bad_mac",
               "crash_after_commit", "host_down", "host_up", "heal"}
HOST_TARGETS = {"query", "reversal", "advice"}
NTP_FAULTS = {"drop", "delay", "heal"}  # the sim's time server (tools/host/ntp.py)
# step kind -> (allowed values or None for any, extra keys allowed)
STEP_KINDS = {
    "tap": (None, {"timeout_ms"}),
    "keys": (None, set()),
    "host": (HOST_FAULTS, {"ms", "for", "times"}),
    "ntp": (NTP_FAULTS, {"ms", "times"}),
    "net": ({"up", "down"}, set()),
    "paper": ({"in", "out"}, set()),
    "power": ({"cut", "on"}, set()),
    "wait": ({"idle", "settled", "sent", "received", "display"}, {"timeout_ms", "mti", "text"}),
    "sleep_ms": (None, set()),
}


# A card of a scenario: the host's account (tools/host/ledger.py seeds it) and what the reader
# model presents. Required: what the host and the reader cannot do without.
CARD_FIELDS = ("pan", "expiry", "pin", "balance", "status", "limit", "label", "profile")
CARD_STATUSES = ("active", "blocked")
PIN_DIGITS = (4, 12)  # ISO 9564-1: what the keypad can enter (firmware/pinblock.py)


class ScenarioError(ValueError):
    """The scenario cannot be run (its reason is one line)."""


def _nonneg_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def validate_step(i, step):
    where = "step %d" % (i + 1)
    if not isinstance(step, dict):
        raise ScenarioError("%s: not an object" % where)
    kinds = [k for k in step if k in STEP_KINDS]
    if len(kinds) != 1:
        raise ScenarioError("%s: unknown step %s" % (where, json.dumps(step)))
    kind = kinds[0]
    values, extras = STEP_KINDS[kind]
    unknown = set(step) - {kind} - extras
    if unknown:
        raise ScenarioError("%s: unknown field(s) %s in %s step" % (where, sorted(unknown), kind))
    value = step[kind]
    if values is not None and value not in values:
        raise ScenarioError("%s: %s must be one of %s" % (where, kind, sorted(values)))
    if kind == "tap" and not (isinstance(value, str) and value.isdigit()
                              and 12 <= len(value) <= 19):
        raise ScenarioError("%s: tap needs a PAN of 12 to 19 digits" % where)
    if kind == "tap" and cardnumber.pan_error(value):
        raise ScenarioError("%s: tap: %s" % (where, cardnumber.pan_error(value)))
    if kind == "keys":
        if not isinstance(value, str) or any(c not in KEY_LABELS for c in value):
            raise ScenarioError("%s: keys must use only the labels %s" % (where, KEY_LABELS))
    if kind == "sleep_ms" and not _nonneg_int(value):
        raise ScenarioError("%s: sleep_ms must be a non-negative integer" % where)
    for name in ("timeout_ms", "ms"):
        if name in step and not _nonneg_int(step[name]):
            raise ScenarioError("%s: %s must be a non-negative integer" % (where, name))
    if kind in ("host", "ntp"):
        if "for" in step and step["for"] not in HOST_TARGETS:
            raise ScenarioError("%s: for must be one of %s" % (where, sorted(HOST_TARGETS)))
        times = step.get("times", 1)
        if times != "all" and not (_nonneg_int(times) and times >= 1):
            raise ScenarioError("%s: times must be a positive integer or \"all\"" % where)
        if value in ("delay_response", "delay") and "ms" not in step:
            raise ScenarioError("%s: %s needs ms" % (where, value))


def _card_error(card):
    """Why a scenario's card cannot be a card at the host and in the reader, or None."""
    from boards.sim import CARD_PROFILES

    unknown = sorted(set(card) - set(CARD_FIELDS))
    if unknown:
        return "unknown field(s) %s (a card has %s)" % (unknown, ", ".join(CARD_FIELDS))
    problem = cardnumber.pan_error(card["pan"])
    if problem:
        return problem
    if card.get("profile", "emv_visa") not in CARD_PROFILES:
        return "profile must be one of %s" % ", ".join(CARD_PROFILES)
    missing = [name for name in ("expiry", "pin", "balance") if name not in card]
    if missing:
        return "%s missing" % ", ".join(missing)
    problem = cardnumber.expiry_error(card["expiry"])
    if problem:
        return problem
    pin = card["pin"]
    if not (isinstance(pin, str) and pin.isdigit() and pin.isascii()
            and PIN_DIGITS[0] <= len(pin) <= PIN_DIGITS[1]):
        return "pin must be %d to %d digits, as a string" % PIN_DIGITS
    if not _nonneg_int(card["balance"]):
        return "balance must be a whole number of minor units, 0 or more, not %s" % (
            json.dumps(card["balance"]))
    if card.get("status", "active") not in CARD_STATUSES:
        return "status must be one of %s" % ", ".join(CARD_STATUSES)
    if card.get("limit") is not None and not _nonneg_int(card["limit"]):
        return "limit must be a whole number of minor units, 0 or more, or null"
    if not isinstance(card.get("label", ""), str):
        return "label must be a string"
    return None


def validate_card(card):
    """Check one of a scenario's cards; raise ScenarioError naming it by its last four
    digits."""
    if not isinstance(card, dict) or not isinstance(card.get("pan"), str):
        raise ScenarioError("each card needs a pan: %s" % json.dumps(card))
    problem = _card_error(card)
    if problem:
        raise ScenarioError("card ...%s: %s" % (card["pan"][-4:], problem))


def validate(scenario):
    """Check a parsed scenario; raise ScenarioError with a one-line reason."""
    if not isinstance(scenario, dict):
        raise ScenarioError("scenario must be a JSON object")
    unknown = set(scenario) - {"config", "cards", "steps"}
    if unknown:
        raise ScenarioError("unknown top-level field(s) %s" % sorted(unknown))
    config = scenario.get("config", {})
    if not isinstance(config, dict):
        raise ScenarioError("config must be an object")
    try:
        from firmware.settings import DEFAULTS, merge
    except ImportError as exc:
        raise ScenarioError("cannot load firmware settings: %s" % exc)
    try:
        merge(DEFAULTS, config, "config")
    except ValueError as exc:
        raise ScenarioError(str(exc))
    if config.get("debug_repl"):
        # aiorepl would read a closed stdin (the firmware's is /dev/null here) in a busy loop.
        raise ScenarioError("config: debug_repl needs a console; the simulated board has none")
    cards = scenario.get("cards")
    if cards is not None:
        if not isinstance(cards, list):
            raise ScenarioError("cards must be a list")
        for card in cards:
            validate_card(card)
    steps = scenario.get("steps", [])
    if not isinstance(steps, list):
        raise ScenarioError("steps must be a list")
    for i, step in enumerate(steps):
        validate_step(i, step)
        if "ntp" in step and config.get("ntp_host") != "sim":
            raise ScenarioError("step %d: an ntp step needs \"ntp_host\": \"sim\" in config"
                                % (i + 1))


def load(path):
    try:
        with open(path) as f:
            text = f.read()
    except OSError as exc:
        raise ScenarioError("cannot read %s: %s" % (path, exc.strerror or exc))
    try:
        scenario = json.loads(text)
    except ValueError as exc:
        raise ScenarioError("%s: bad JSON: %s" % (path, exc))
    validate(scenario)
    return scenario


async def run(scenario, out_dir, heapsize=None, main=None, on_event=None, **firmware):
    """Run a validated scenario; return None when it ran to its end, else the one-line reason.

    firmware: code, micropython (SimSession's)."""
    session = SimSession(out_dir, scenario.get("config"), scenario.get("cards"), heapsize, main,
                         on_event, **firmware)
    failure = None
    try:
        await session.start()
        for i, step in enumerate(scenario.get("steps", [])):
            try:
                await session.step(step)
            except SimError as exc:
                failure = "step %d: %s" % (i + 1, exc)
                session.events.emit("failed", step=i + 1, reason=str(exc))
                break
    finally:
        await session.stop()
    return failure


def run_file(path, out_dir, heapsize=None, main=None, **firmware):
    scenario = load(path)
    return asyncio.run(run(scenario, out_dir, heapsize, main, **firmware))
