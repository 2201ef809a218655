"""Malformed-input fuzzing of the host link: the ISO 8583 decoder, the framing and the core's
response matching (issue 4).

    python -m tools.fuzz --inputs 100000 [--seed 1]

Mutation-based and seeded: every input is derived from a valid frame of the current exchange
(approval, decline, reversal or advice acknowledgement) by one deliberate change, or is random.
The properties, per input:

- the decoder raises nothing but ValueError (MacError included); what it accepts is well formed
  (known fields, right lengths and characters) and re-encodes to the same bytes;
- `frame`/`FrameReader` and the runtime's `_read_frame` agree on every stream and never raise
  anything but ValueError (FrameReader) or nothing at all (`_read_frame`: None for garbage);
- the Terminal never raises, and an input ends a transaction (journals `ok`, `dec`, `revd` or
  `conf`, prints) exactly when it is a valid-MAC frame answering the exchange in flight: MTI,
  TID (41), STAN (11), processing code (3) and amount (4) equal to the request's, and (DUKPT,
  the default keys) its KSN (53) the one of the terminal's latest request of that kind, its MAC
  under that KSN's MAC_VERIFICATION key as the host derives it from the BDK. An approval
  is accepted only for the current purchase in WAIT (0210) or QUERY (0210, 0610); after a
  reversal was decided nothing approves it. Exact approvals must be accepted (positive control);
- every input takes bounded time (CPython: a per-input alarm; everywhere: the slowest is kept).

The engine is portable: tests_host/test_fuzz_portable.py runs a short campaign of it on
MicroPython and on CPython with the same inputs (its own xorshift generator, not `random`).
Whether a frame is valid is decided by the firmware's decoder, whose own properties are
checked on every input (and by tests_host/test_fuzz_decoder.py); on CPython every frame is also
decoded by the host's independent decoder (tools/host/spec.py on pyiso8583): a frame the
firmware takes and the host refuses, or reads differently, is a failure.
"""

import gc
import sys

if sys.implementation.name != "micropython":
    import os

    _SHIMS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "tests_host", "shims")
    if _SHIMS not in sys.path:
        sys.path.append(_SHIMS)

from binascii import hexlify, unhexlify  # noqa: E402

from firmware import core, dukpt, iso8583  # noqa: E402
from firmware.app import _read_frame  # noqa: E402
from firmware.cmac import cmac  # noqa: E402
from firmware.settings import DEFAULTS  # noqa: E402
from tools import framing  # noqa: E402

try:
    from time import ticks_diff, ticks_ms
except ImportError:
    import time as _time

    def ticks_ms():
        return int(_time.perf_counter() * 1000)

    def ticks_diff(a, b):
        return a - b


KEY = unhexlify(DEFAULTS["mac_key"])  # the static key (frames without a KSN)
OTHER_KEY = unhexlify("000102030405060708090A0B0C0D0E0F")
BDK = unhexlify("FEDCBA9876543210F1F1F1F1F1F1F1F1")  # TEST KEY: X9.24-3's, the host's BDK
KSN1 = unhexlify(DEFAULTS["initial_key_id"] + "00000001")  # the terminal's first KSN
TID = DEFAULTS["terminal_id"]
PAN = "4761739001010010"
_SPEC = iso8583._SPEC
_FORMAT_N, _FORMAT_B = 0 << 12, 3 << 12  # iso8583's formats (consts there, so not importable)
_MATCH = (41, 11, 3, 4)
MAX_MS = 2000  # the slowest input allowed (the portable test checks it; CPython also alarms)

CATEGORIES = ("approval", "decline", "mismatch", "other_tid", "replay", "bad_mac", "bytes",
              "remac", "truncated", "random", "huge")
CONTEXTS = ("wait", "query", "recovery", "reversed", "advice", "idle")
# Response codes of docs/protocol.md, a few that are not, and ones no host sends.
_RCS = ("05", "14", "25", "51", "54", "55", "61", "63", "75", "91", "94", "96", "0 ", "  ",
        "01", "XX", "0o")
_MTIS = ("0200", "0210", "0211", "0230", "0410", "0610", "0110", "0810", "0600", "0400",
         "1210", "0201", "0212", "9210")


class Rng:
    """xorshift32: the same inputs on CPython and MicroPython for the same seed."""

    def __init__(self, seed):
        self.s = (seed * 2654435761 + 0x9E3779B9) & 0xFFFFFFFF or 1

    def bits32(self):
        s = self.s
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        self.s = s
        return s

    def below(self, n):
        return self.bits32() % n

    def chance(self, per_cent):
        return self.below(100) < per_cent

    def choice(self, seq):
        return seq[self.below(len(seq))]

    def bytes(self, n):
        out = bytearray(n)
        for i in range(n):
            out[i] = self.bits32() & 0xFF
        return bytes(out)


# ---- an oracle for "is this frame a valid message", independent of the firmware if possible ----

def host_key(ksn, usage=dukpt.MAC_VERIFICATION):
    """The working key (bytes) the host derives from the BDK for `ksn`. Raises ValueError on a
    KSN that is none. (Not cached: small objects kept across inputs fragment the MicroPython
    heap that the huge inputs need whole.)"""
    return bytes(dukpt.derive(BDK, ksn, usage))


def answer_key(mti, fields):
    """An answer's key as the host holds it: the MAC_VERIFICATION key of the KSN it carries
    (None without a valid one). Whether that KSN is the one the terminal expects is the
    harness's question (`Harness.expected`)."""
    ksn = fields.get(53)
    if ksn is None:
        return None
    try:
        return host_key(ksn)
    except ValueError:
        return None


def _request_key(mti, fields):
    ksn = fields.get(53)
    return KEY if ksn is None else host_key(ksn, dukpt.MAC_GENERATION)


def _firmware_oracle(frame):
    try:
        return iso8583.decode(frame, answer_key)
    except ValueError:
        return None


def host_oracle():
    """The host simulator's decoder (pyiso8583 + cryptography CMAC): CPython only."""
    from tools.host import spec

    def oracle(frame):
        try:
            ksn = spec.decode_frame(bytes(frame))[1].get("53")
            key = host_key(ksn)
            mti, fields = spec.decode_msg(bytes(frame), key)
        except (ValueError, TypeError):
            return None
        except Exception:  # noqa: BLE001 - pyiso8583 quirks: count as "not a valid frame"
            return None
        out = {}
        for k, v in fields.items():
            out[int(k)] = v
        return mti, out

    return oracle


# ---- the decoder's own properties ---------------------------------------------------------------


def _only_128(frame):
    # A secondary bitmap that holds only the MAC (128): valid, but `encode` would not make it.
    if len(frame) < 20 or not frame[4] & 0x80:
        return False
    return bytes(frame[12:19]) == bytes(7) and frame[19] == 1


def check_decoded(frame, mti, fields):
    """Raises AssertionError unless (mti, fields) is well formed and encodes back to `frame`."""
    assert len(mti) == 4 and mti.isdigit(), mti
    mac_field = 128 if frame[4] & 0x80 else 64
    assert mac_field in fields, "no MAC field"
    for field, value in fields.items():
        fmt, prefix, size = iso8583._spec(_SPEC[field])
        if fmt == _FORMAT_B:
            assert isinstance(value, bytes)
        else:
            assert isinstance(value, str)
            if fmt == _FORMAT_N:
                assert value == "" or value.isdigit(), (field, value)
            for ch in value:
                assert 0x20 <= ord(ch) <= 0x7E, (field, value)
        assert len(value) <= size and (prefix or len(value) == size), (field, value)
    if _only_128(frame):
        return
    rest = {}
    for field, value in fields.items():
        if field != mac_field:
            rest[field] = value
    again = iso8583.encode(mti, rest, KEY)
    assert again[:-8] == bytes(frame[:-8]), "decode/encode differ"


def decode_checked(frame):
    """Decode with and without the key; returns (result_with_key or None, crash text or None)."""
    got = None
    for key in (answer_key, None):
        try:
            mti, fields = iso8583.decode(frame, key)
        except ValueError:
            if key is None:
                if got is not None:
                    return got, "accepted with the key, refused without"
            continue
        except Exception as e:  # noqa: BLE001 - the property under test
            return None, "decode raised %r" % (e,)
        try:
            check_decoded(frame, mti, fields)
        except AssertionError as e:
            return None, "decoded badly: %r" % (e,)
        except Exception as e:  # noqa: BLE001
            return None, "decoded unencodable: %r" % (e,)
        if key is answer_key:
            got = (mti, fields)
    return got, None


# ---- framing ------------------------------------------------------------------------------------


class _Stream:
    def __init__(self, data, reset_at=-1):
        self.data = data
        self.pos = 0
        self.reset_at = reset_at

    async def readexactly(self, n):
        if 0 <= self.reset_at < self.pos + n:
            raise OSError(104)
        if self.pos + n > len(self.data):
            self.pos = len(self.data)
            raise EOFError("short")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out


def read_frame_sync(data, reset_at=-1):
    """Runs the runtime's `_read_frame` over `data` (it never has to wait on a fake stream)."""
    coro = _read_frame(_Stream(data, reset_at))
    try:
        coro.send(None)
    except StopIteration as e:
        return e.args[0] if e.args else None
    raise AssertionError("_read_frame waited on a stream that never blocks")


def framing_input(rng, base):
    """One stream (bytes): a few frames, then maybe a corruption. Returns the problem or None."""
    msgs = []
    for _ in range(1 + rng.below(3)):
        kind = rng.below(4)
        if kind == 0:
            msgs.append(base)
        elif kind == 1:
            msgs.append(rng.bytes(1 + rng.below(64)))
        elif kind == 2:
            msgs.append(rng.bytes(rng.choice((1, 4095, 4096, 255, 256))))
        else:
            msgs.append(base[: 1 + rng.below(len(base))])
    stream = bytearray()
    for m in msgs:
        stream += framing.frame(m)
    how = rng.below(6)
    if how == 1:  # a length prefix byte changed
        i = rng.below(2)
        stream[i] = rng.bits32() & 0xFF
    elif how == 2:  # huge or zero length
        stream = bytearray(rng.choice((b"\x00\x00", b"\xff\xff", b"\x10\x01", b"\x10\x00",
                                       b"\x80\x00")) + stream[2:])
    elif how == 3:  # truncated
        stream = stream[: rng.below(len(stream))]
    elif how == 4:  # random garbage appended
        stream += rng.bytes(rng.below(8))
    stream = bytes(stream)
    # frame() refuses what it cannot carry.
    for n in (0, framing.MAX_MESSAGE + 1):
        try:
            framing.frame(bytes(n))
            return "frame() took a %d-byte message" % n
        except ValueError:
            pass
    # FrameReader over random chunks == FrameReader over the whole stream.
    whole = framing.FrameReader()
    try:
        want = whole.feed(stream)
        want_err = None
    except ValueError as e:
        want, want_err = None, e
    except Exception as e:  # noqa: BLE001
        return "FrameReader raised %r" % (e,)
    chunked = framing.FrameReader()
    got = []
    got_err = None
    pos = 0
    try:
        while pos < len(stream):
            step = 1 + rng.below(40)
            got += chunked.feed(stream[pos : pos + step])
            pos += step
    except ValueError as e:
        got_err = e
    except Exception as e:  # noqa: BLE001
        return "FrameReader (chunks) raised %r" % (e,)
    if (want_err is None) != (got_err is None):
        return "FrameReader: chunking changed the outcome"
    if want_err is None and got != want:
        return "FrameReader: chunking changed the messages"
    if want_err is None and how == 0:
        if want != msgs:
            return "FrameReader did not give back the frames"
    # The runtime's reader: the first message, or None for garbage or a short stream.
    try:
        first = read_frame_sync(stream)
        reset = read_frame_sync(stream, rng.below(len(stream) + 1))
    except Exception as e:  # noqa: BLE001
        return "_read_frame raised %r" % (e,)
    if reset is not None and not isinstance(reset, bytes):
        return "_read_frame gave %r" % (reset,)
    n = (stream[0] << 8) | stream[1] if len(stream) >= 2 else -1
    if 1 <= n <= framing.MAX_MESSAGE and len(stream) >= 2 + n:
        if first != stream[2 : 2 + n]:
            return "_read_frame: wrong message"
        ok = whole_first = None
        reader = framing.FrameReader()
        try:
            ok = reader.feed(stream[: 2 + n])
            whole_first = ok[0] if ok else None
        except ValueError:
            pass
        if whole_first != first:
            return "_read_frame and FrameReader disagree"
    elif first is not None:
        return "_read_frame accepted a bad or short frame"
    return None


# ---- the Terminal -------------------------------------------------------------------------------


class Clock:
    def __init__(self):
        self.ms = 0

    def now(self):
        return (2026, 11, 26, 10, 15 + self.ms // 60000 % 40, self.ms // 1000 % 60)

    def ticks_ms(self):
        return self.ms


def response_fields(mti, stan, amount, rc="00"):
    """The fields of the host's answer `mti` to the purchase `stan` of `amount`."""
    fields = {3: "000000", 4: "%012d" % amount, 7: "1126101501", 11: "%06d" % stan, 39: rc,
              41: TID}
    if rc == "00" and mti in ("0210", "0610"):
        fields[37] = "633010000042"
        fields[38] = "A1B2C3"
    return fields


class Harness:
    """One Terminal driven into one context; remembers what it sent and what it journaled."""

    def __init__(self, context, amount, stan_base=0):
        self.context = context
        self.clock = Clock()
        self.settings = dict(DEFAULTS)
        self.t = core.Terminal(self.settings, self.clock, lambda n: bytes(n))
        self.journal = []
        self.sent = []  # (kind, mti, fields)
        self.last_actions = []
        self.approvals = []  # frames that approved earlier purchases (for replays)
        self.reversed = []  # stans whose reversal was decided
        self.ksn_for = {}  # answer MTI -> KSN of the latest request it answers, as sent
        self.amount = amount
        records = []
        if stan_base:
            records.append({"r": "batch", "batch": 1, "next": stan_base, "n": 0, "sum": 0,
                            "last": None})
        if context == "recovery":
            stan = stan_base or 1
            records.append({"r": "send", "stan": stan, "batch": 1, "amt": amount,
                            "l4": PAN[-4:], "t": [2026, 11, 26, 10, 15, 0], "f7": "1126101500"})
        self.do(("boot", records))
        if context == "recovery":
            self.stan = records[-1]["stan"]
            return
        if context in ("idle", "advice"):
            self.purchase(amount)
            self.approve()
            self.finish_printing()
            if context == "idle":
                self.ack_saf()
                self.do(("timer", "msg"))
            self.purchase_done = True
            return
        self.purchase(amount)
        if context in ("query", "reversed"):
            self.do(("timer", "resp"))
        if context == "reversed":
            for _ in range(self.settings["query_attempts"]):
                self.clock.ms += self.settings["query_timeout_ms"]
                self.do(("timer", "query"))
            assert self.journal[-1]["r"] == "rev", self.journal[-1]
            self.reversed.append(self.stan)

    def do(self, event):
        actions = self.t.handle(event)
        self.last_actions = actions
        for a in actions:
            if a[0] == "journal":
                self.journal.append(a[1])
            elif a[0] == "send":
                mti, fields = iso8583.decode(a[2], _request_key)
                self.sent.append((a[1], mti, fields))
                if 53 in fields:
                    self.ksn_for[iso8583.answer_mti(mti)] = fields[53]
        return actions

    def purchase(self, amount):
        self.do(("card", PAN, "2812"))
        for ch in str(amount) + "#1234#":
            self.do(("key", ch))
        kind, mti, fields = self.sent[-1]
        assert (kind, mti) == ("purchase", "0200"), (kind, mti)
        self.stan = int(fields[11])
        self.amount = amount

    def response(self, mti, rc="00", stan=None, amount=None):
        """The host's answer `mti`, with the KSN of the latest request it answers (or, when
        there was none, of the latest request of any kind)."""
        fields = response_fields(mti, self.stan if stan is None else stan,
                                 self.amount if amount is None else amount, rc)
        ksn = self.ksn_for.get(mti) or (self.sent[-1][2].get(53) if self.sent else None)
        if ksn is not None:
            fields[53] = ksn
        return fields

    def mac_key(self, mti):
        """The key the terminal takes an answer `mti` under: that of its expected KSN."""
        ksn = self.ksn_for.get(mti)
        return KEY if ksn is None else host_key(ksn)

    def encode(self, mti, fields, key=None):
        """An answer MACed as the host MACs it (the key of the KSN it carries), or under `key`."""
        if key is None:
            key = host_key(fields[53]) if 53 in fields else KEY
        return iso8583.encode(mti, fields, key)

    def approve(self):
        frame = self.encode("0210", self.response("0210"))
        self.do(("rx", frame))
        assert self.journal[-1]["r"] == "ok" or any(
            r["r"] == "ok" for r in self.journal[-3:]), "control approval refused"
        self.approvals.append(frame)

    def finish_printing(self):
        for _ in range(10):
            if not self.t.printing:
                return
            self.do(("printed", 0))

    def ack_saf(self):
        for _ in range(4):
            busy = self.t.saf_busy
            if busy is None:
                return
            mti = "0410" if busy[0] == "rev" else "0230"
            save = self.stan
            self.stan = busy[1]
            self.do(("rx", self.encode(mti, self.response(mti))))
            self.stan = save

    def still_in_context(self):
        mode = self.t.mode
        if self.context == "wait":
            return mode == core.WAIT
        if self.context in ("query", "recovery"):
            return mode == core.QUERY
        if self.context == "reversed":
            return self.stan in self.t.txns and self.t.txns[self.stan]["state"] == core.REVERSING
        if self.context == "advice":
            return self.t.saf_busy is not None and self.t.saf_busy[0] == "adv"
        return True

    def expected(self, decoded):
        """What a frame that decodes to `decoded` (or None) must do: None, or the journal kind
        it must write ('ok', 'dec', 'revd', 'conf') and the stan it is for."""
        if decoded is None:
            return None
        mti, fields = decoded
        t = self.t
        if mti in ("0210", "0610"):
            stan = t.current
            txn = t.txns.get(stan) if stan is not None else None
            if txn is None or txn["state"] != core.SENDING or stan in self.reversed:
                return None
            if not (t.mode == core.QUERY or t.mode == core.WAIT and mti == "0210"):
                return None
            amount = txn["amount"]
        elif mti in ("0410", "0230"):
            busy = t.saf_busy
            if busy is None or busy[0] != ("rev" if mti == "0410" else "adv"):
                return None
            stan = busy[1]
            amount = t.txns[stan]["amount"]
        else:
            return None
        want = {41: TID, 11: "%06d" % stan, 3: "000000", 4: "%012d" % amount}
        for field in _MATCH:
            if fields.get(field) != want[field]:
                return None
        # DUKPT: only under the KSN of the terminal's latest request of that kind.
        if fields.get(53) is None or fields.get(53) != self.ksn_for.get(mti):
            return None
        # docs/protocol.md, "What the terminal takes from an answer" (written out here again on
        # purpose: the oracle does not borrow the firmware's own lists).
        rc = fields.get(39)
        if mti == "0210" and rc in ("63", "94"):  # refused, or another copy decided: no answer
            return None
        if mti == "0410":
            return ("revd", stan) if rc in ("00", "25") else None
        if mti == "0230":
            return ("conf", stan) if rc in ("00", "25") else None
        if mti == "0610" and rc not in ("00", "25", "05", "14", "51", "54", "55", "61", "75",
                                        "94"):
            return None
        return ("ok" if rc == "00" else "dec"), stan


# ---- frame generation ---------------------------------------------------------------------------


def _remac(body, key=None):
    """`body` with a MAC under `key` (default: the key of the terminal's first KSN)."""
    return bytes(body) + cmac(host_key(KSN1) if key is None else key, body)[:8]


def _set_bit(frame, field, on):
    byte = 4 + (field - 1) // 8
    bit = 0x80 >> ((field - 1) % 8)
    if byte < len(frame):
        if on:
            frame[byte] |= bit
        else:
            frame[byte] &= ~bit & 0xFF


def _answer_mti(h):
    if h.context == "advice":
        return "0230"
    if h.context == "reversed":
        return "0410"
    if h.context in ("query", "recovery"):
        return "0610" if h.t.mode == core.QUERY and h.t.current == h.stan else "0210"
    return "0210"


def make_input(rng, h, category):
    """One frame for the harness `h` in its present state."""
    mti = _answer_mti(h)
    if h.context in ("reversed", "idle") and rng.chance(50):
        mti = rng.choice(("0210", "0610"))  # a late approval for what was decided otherwise
    fields = h.response(mti)
    key = h.mac_key(mti)  # what re-MACed frames are MACed under: the key the terminal expects
    if category == "approval":
        return h.encode(mti, fields)
    if category == "decline":
        fields = h.response(mti, rc=rng.choice(_RCS))
        return h.encode(mti, fields)
    if category in ("mismatch", "other_tid"):
        changes = 1 + rng.below(2) if category == "mismatch" else 1
        for _ in range(changes):
            what = 0 if category == "other_tid" else rng.below(6)
            if what == 0:
                fields[41] = rng.choice(("TERM0002", "term0001", "TERM000 ", " TERM001",
                                         "TERM0011", "00000000", "TERM0001"[:7] + "2"))
            elif what == 1:
                fields[11] = "%06d" % rng.choice(((h.stan + 1) % 1000000, h.stan - 1,
                                                  h.stan + 1000, rng.below(1000000), 0))
            elif what == 2:
                fields[4] = "%012d" % rng.choice((h.amount + 1, h.amount - 1, h.amount * 10,
                                                  0, rng.below(10 ** 9), 10 ** 12 - 1))
            elif what == 3:
                fields[3] = rng.choice(("200000", "000001", "010000", "300000", "999999"))
            elif what == 4:
                mti = rng.choice(_MTIS)
            else:
                fields.pop(rng.choice(_MATCH), None)
        if fields.get(41) == TID and category == "other_tid":
            fields[41] = "TERM0002"
        return h.encode(mti, fields)
    if category == "replay":
        if h.approvals and rng.chance(60):
            return rng.choice(h.approvals)
        stan = rng.choice((h.stan - 1, h.stan + 1, h.stan - 2)) % 1000000
        return h.encode(mti, h.response(mti, stan=stan))
    good = h.encode(mti, fields)
    if category == "bad_mac":
        how = rng.below(4)
        if how == 0:
            return h.encode(mti, fields, OTHER_KEY)
        if how == 1:
            out = bytearray(good)
            out[len(out) - 1 - rng.below(8)] ^= 1 << rng.below(8)
            return bytes(out)
        if how == 2:  # MAC dropped, bitmap says none
            out = bytearray(good[:-8])
            _set_bit(out, 64, False)
            return bytes(out)
        other = h.encode(mti, h.response(mti, amount=h.amount + 1))
        return good[:-8] + other[-8:]  # the MAC of another message
    if category == "bytes":
        out = bytearray(good)
        for _ in range(1 + rng.below(4)):
            how = rng.below(3)
            i = rng.below(len(out))
            if how == 0:
                out[i] = rng.bits32() & 0xFF
            elif how == 1:
                out = out[:i] + rng.bytes(1 + rng.below(3)) + out[i:]
            elif len(out) > 1:
                out = out[:i] + out[i + 1 :]
        return bytes(out)
    if category == "remac":
        return _remac(mutate_body(rng, bytearray(good[:-8])), key)
    if category == "truncated":
        cut = rng.below(len(good))
        if rng.chance(50):
            return good[:cut]
        return _remac(good[: max(cut - 8, 0)], key) if cut > 20 else good[:cut]
    if category == "random":
        n = rng.below(120)
        out = bytearray(rng.bytes(n))
        if rng.chance(60) and n >= 12:
            out = bytearray(mti.encode()) + out[4:]
            if rng.chance(50):
                out = out[:4] + good[4:12] + out[12:]
        return _remac(out, key) if rng.chance(50) else bytes(out)
    # huge
    n = rng.choice((1000, 4096, 4097, 8192))
    body = bytearray(good[:-8])
    # field 60 (LLL) claims 999 bytes, or the body is padded far past its bitmap.
    if rng.chance(50):
        _set_bit(body, 60, True)
        body += b"999" + rng.bytes(n)
    else:
        body += bytes(n)
    return _remac(body, key) if rng.chance(50) else bytes(body)


def _field_offsets(body):
    """[(field, start, length-prefix start or -1, end)] of a well-formed body (no MAC)."""
    out = []
    secondary = body[4] & 0x80
    pos = 20 if secondary else 12
    for field in range(2, 129 if secondary else 65):
        byte = body[4 + (field - 1) // 8]
        if not byte & (0x80 >> ((field - 1) % 8)) or field in (64, 128):
            continue
        fmt, prefix, size = iso8583._spec(_SPEC[field])
        start = pos
        if prefix:
            size = int(body[pos : pos + prefix])
            pos += prefix
        out.append((field, start, prefix, pos + size))
        pos += size
    return out


def mutate_body(rng, body):
    """A structural change to a well-formed body (MTI to the byte before the MAC)."""
    offsets = _field_offsets(body)
    how = rng.below(10)
    if how == 0:  # bitmap bit for a field that is not there (known or unknown)
        _set_bit(body, rng.choice((2, 12, 14, 22, 37, 38, 42, 49, 52, 60, 90, 5, 63, 65, 100,
                                   1 + rng.below(64))), True)
    elif how == 1 and offsets:  # a present field's bit cleared
        _set_bit(body, rng.choice(offsets)[0], False)
    elif how == 2 and offsets:  # a non-digit in a numeric (or any) field
        field, start, prefix, end = rng.choice(offsets)
        if end > start + prefix:
            body[start + prefix + rng.below(end - start - prefix)] = rng.choice(
                (0x20, 0x41, 0x2D, 0x2B, 0x2E, 0x00, 0xFF, 0x3A, 0x2F, 0x7F, 0xB9))
    elif how == 3:  # field 2 or 60 added with a length prefix past its maximum or not digits
        field = rng.choice((2, 60))
        digits = 2 if field == 2 else 3
        claimed = rng.choice((b"99", b"20", b"-1", b" 5", b"1a", b"00", b"999", b"000",
                              b"9999", b"1000", b"1e3", b"0x1"))[:digits]
        data = b"1" * rng.below(40)
        pos = len(body)
        for f, start, _prefix, _end in offsets:
            if f > field:
                pos = start
                break
        body = body[:pos] + claimed + data + body[pos:]
        _set_bit(body, field, True)
    elif how == 4:  # truncated inside a field
        if len(body) > 13:
            body = body[: 12 + rng.below(len(body) - 12)]
    elif how == 5:  # bytes inserted
        i = 4 + rng.below(len(body) - 3)
        body = body[:i] + rng.bytes(1 + rng.below(6)) + body[i:]
    elif how == 6:  # secondary bitmap announced (or its bytes inserted) for a primary message
        _set_bit(body, 1, True)
        if rng.chance(50):
            body = body[:12] + rng.choice((bytes(8), b"\x00" * 7 + b"\x01", b"\x40" + bytes(7),
                                           rng.bytes(8))) + body[12:]
    elif how == 7:  # a random byte anywhere, MTI and bitmaps included
        body[rng.below(len(body))] = rng.bits32() & 0xFF
    elif how == 8:  # non-digit or short MTI
        body[rng.below(4)] = rng.choice((0x41, 0x20, 0x2F, 0x3A, 0x00))
    else:  # a field's content swapped with another's of another length
        if len(offsets) >= 2:
            a = rng.choice(offsets)
            b = rng.choice(offsets)
            chunk = bytes(body[b[1] : b[3]])
            body = body[: a[1]] + chunk + body[a[3] :]
    return body


# ---- the campaign -------------------------------------------------------------------------------


class Stats:
    def __init__(self):
        self.inputs = 0
        self.categories = {}
        self.contexts = {}
        self.outcomes = {}
        self.crashes = 0
        self.false_approvals = 0
        self.false_resolutions = 0
        self.refused_valid = 0
        self.decoder_errors = 0
        self.framing_errors = 0
        self.hangs = 0
        self.stricter = 0  # frames the host decoder takes and the firmware refuses (fail-safe)
        self.stricter_examples = []
        self.slowest_ms = 0
        self.findings = []  # (what, context, category, input hex)

    def bump(self, table, key):
        table[key] = table.get(key, 0) + 1

    def find(self, what, context, category, data):
        if len(self.findings) < 20:
            self.findings.append((what, context, category, hexlify(bytes(data[:300])).decode()))

    def failures(self):
        return (self.crashes + self.false_approvals + self.false_resolutions + self.refused_valid
                + self.decoder_errors + self.framing_errors + self.hangs)


def _terminal_input(rng, stats, harnesses, oracle, context, category, stan_base):
    h = harnesses.get(context)
    if h is None or not h.still_in_context():
        # A collection first: the new terminal's long-lived objects then fill the heap's low
        # holes instead of scattering among garbage (the huge inputs need 8 kB in one piece).
        harnesses.pop(context, None)
        h = None
        gc.collect()
        h = Harness(context, 1 + rng.below(999999), stan_base)
        harnesses[context] = h
    frame = make_input(rng, h, category)
    _, problem = decode_checked(frame)
    if problem:
        stats.decoder_errors += 1
        stats.find(problem, context, category, frame)
    mine = _firmware_oracle(frame)
    expect = h.expected(mine)
    if oracle is not None:
        theirs = oracle(frame)
        if mine is not None and theirs is None:
            stats.decoder_errors += 1
            stats.find("firmware accepts what the host decoder refuses", context, category,
                       frame)
        elif mine is None and theirs is not None:
            stats.stricter += 1
            if len(stats.stricter_examples) < 3:
                stats.stricter_examples.append(hexlify(frame).decode())
        elif mine is not None:
            fields = dict(mine[1])
            fields.pop(64, None)
            fields.pop(128, None)
            if (mine[0], fields) != theirs:
                stats.decoder_errors += 1
                stats.find("firmware and host decoders disagree", context, category, frame)
    before = len(h.journal)
    try:
        actions = h.do(("rx", frame))
    except Exception as e:  # noqa: BLE001 - the property under test
        stats.crashes += 1
        stats.find("Terminal raised %r" % (e,), context, category, frame)
        harnesses.pop(context)
        return
    printed = False
    for a in actions:
        if a[0] == "print":
            printed = True
    done = []
    for rec in h.journal[before:]:
        if rec["r"] in ("ok", "dec", "revd", "conf"):
            done.append((rec["r"], rec["stan"]))
    outcome = done[0][0] if done else "ignored"
    stats.bump(stats.outcomes, outcome)
    approved = printed or ("ok" in [d[0] for d in done])
    if approved and (expect is None or expect[0] != "ok"):
        stats.false_approvals += 1
        stats.find("treated as an approval (expected %r)" % (expect,), context, category, frame)
    elif done and [expect] != done:
        stats.false_resolutions += 1
        stats.find("resolved %r, expected %r" % (done, expect), context, category, frame)
    elif expect is not None and (not done or (expect[0] == "ok") != printed):
        stats.refused_valid += 1
        stats.find("valid answer %r refused (printed %r)" % (expect, printed), context,
                   category, frame)
    if done or printed:
        h.finish_printing()
    # What the runtime would have written out and dropped: keeps a long run in a small heap.
    h.t.log.clear()
    if len(h.journal) > 20:
        h.journal = h.journal[-10:]
    if len(h.sent) > 4:
        h.sent = h.sent[-2:]


def run(inputs, seed=1, oracle=None, alarm=None, log=None):
    """Runs `inputs` inputs; returns Stats. `oracle(frame)` -> (mti, fields without the MAC) or
    None is an independent decoder to compare the firmware's with (None: no comparison; a frame
    the firmware accepts and the oracle refuses is a failure, the reverse is only counted as
    "stricter"); `alarm(seconds)` arms a per-input
    timeout that raises (CPython: signal.setitimer) and `alarm(0)` disarms it."""
    rng = Rng(seed)
    stats = Stats()
    harnesses = {}
    base = iso8583.encode("0210", response_fields("0210", 42, 1250), KEY)
    stan_base = 1 + rng.below(999990)
    for i in range(inputs):
        category = context = "-"
        start = ticks_ms()
        if alarm:
            alarm(MAX_MS / 1000)
        try:
            if i % 10 == 9:
                category, context = "framing", "-"
                stats.bump(stats.categories, category)
                problem = framing_input(rng, base)
                if problem:
                    stats.framing_errors += 1
                    stats.find(problem, context, category, base)
            else:
                category = rng.choice(CATEGORIES)
                context = rng.choice(CONTEXTS)
                stats.bump(stats.categories, category)
                stats.bump(stats.contexts, context)
                _terminal_input(rng, stats, harnesses, oracle, context, category,
                                stan_base if rng.chance(50) else 0)
        except _Timeout:
            stats.hangs += 1
            stats.find("took longer than %d ms" % MAX_MS, context, category, b"")
            harnesses = {}
        finally:
            if alarm:
                alarm(0)
        took = ticks_diff(ticks_ms(), start)
        if took > stats.slowest_ms:
            stats.slowest_ms = took
        if took > MAX_MS:
            stats.hangs += 1
        stats.inputs += 1
        if i % 64 == 63:
            gc.collect()
        if log and (i + 1) % 20000 == 0:
            log("%d inputs, %d failures" % (i + 1, stats.failures()))
    return stats


class _Timeout(Exception):
    pass


def summary(stats, seconds):
    lines = ["inputs            %d" % stats.inputs]
    lines.append("categories        " + ", ".join(
        "%s %d" % (k, stats.categories[k]) for k in sorted(stats.categories)))
    lines.append("contexts          " + ", ".join(
        "%s %d" % (k, stats.contexts[k]) for k in sorted(stats.contexts)))
    lines.append("terminal outcomes " + ", ".join(
        "%s %d" % (k, stats.outcomes[k]) for k in sorted(stats.outcomes)))
    lines.append("crashes           %d" % stats.crashes)
    lines.append("false approvals   %d" % stats.false_approvals)
    lines.append("false resolutions %d" % stats.false_resolutions)
    lines.append("valid refused     %d" % stats.refused_valid)
    lines.append("decoder errors    %d" % stats.decoder_errors)
    lines.append("stricter than host decoder %d (refused by the firmware, fail-safe)" % (
        stats.stricter))
    lines.append("framing errors    %d" % stats.framing_errors)
    lines.append("hangs             %d (slowest input %d ms)" % (stats.hangs, stats.slowest_ms))
    lines.append("time              %.1f s (%.0f inputs/s)" % (
        seconds, stats.inputs / seconds if seconds else 0))
    for data in stats.stricter_examples:
        lines.append("  e.g. %s" % data)
    for what, context, category, data in stats.findings:
        lines.append("FOUND %s [%s/%s] %s" % (what, context, category, data))
    return "\n".join(lines)


def main(argv=None):
    import argparse
    import signal
    import time

    parser = argparse.ArgumentParser(prog="python -m tools.fuzz", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("--inputs", type=int, default=100000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--firmware-oracle", action="store_true",
                        help="judge frames with the firmware's decoder, not the host's")
    args = parser.parse_args(argv)

    def on_alarm(signum, frame):
        raise _Timeout()

    signal.signal(signal.SIGALRM, on_alarm)

    def alarm(seconds):
        signal.setitimer(signal.ITIMER_REAL, seconds)

    oracle = None if args.firmware_oracle else host_oracle()
    start = time.perf_counter()
    stats = run(args.inputs, args.seed, oracle, alarm,
                log=lambda text: print(text, file=sys.stderr, flush=True))
    print("seed              %d (oracle: %s)" % (
        args.seed, "firmware decoder" if oracle is None else "host decoder, pyiso8583"))
    print(summary(stats, time.perf_counter() - start))
    return 1 if stats.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
