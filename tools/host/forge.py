"""A hostile host or network for tests (CPython only): `ForgingHost`, a HostSimulator that answers
the next purchase (or status query) with forged bytes instead of, or before, its genuine answer.

    host = ForgingHost(db, cards=None, port=0)          # or SimSession(host_factory=...)
    host.forge(Forgery("bad MAC", lambda ctx: frame(flip_mac(approval(ctx)))))

Each `Forgery` is used once, by the next request of its MTI (`on`: "0200" by default, "0600"),
in queue order. `build(ctx)` returns the bytes written on the connection, length prefix
included (use `frame()` for a well-formed one), so garbage can be anything. `ctx` carries the
request (`req_mti`, `req`: fields as tools/host/spec.py decodes them), the answer's MTI
(`resp_mti`), the genuine answer when there is one (`genuine`: frame without prefix, or None)
and the key the host would MAC its answer under (`mac_key`, for correctly MACed forgeries: "the
key holder"): for a request with a KSN (field 53) the MAC_VERIFICATION key the host derives for
that KSN, else its static key. `approval_fields` echoes the request's KSN.

`commit`: whether the genuine request reaches the ledger. False (the default) is an attacker in
the middle who swallows the request: the host never hears of it, so a status query finds no
record. True lets the host decide it (money may move); `genuine_after` then writes the genuine
answer after the forged bytes on the same connection (the terminal reads one response per
exchange, so it sees only the forged one). The connection is closed after the write.

Every response the host sends (genuine ones) is kept in `sent` as `(mti, frame)`: what an
eavesdropper captures for a replay.
"""

import random

from . import spec
from .server import TARGETS, HostSimulator

# A field value no genuine answer carries, so a forged approval shows on a receipt if printed.
FORGED_RRN = "999999999999"
FORGED_AUTH = "FORGED"


class Forgery:
    def __init__(self, name, build, on=spec.PURCHASE, commit=False, genuine_after=False):
        if on not in TARGETS:
            raise ValueError("a forgery answers a request MTI: one of %s" % sorted(TARGETS))
        if genuine_after and not commit:
            raise ValueError("genuine_after needs commit (there is no genuine answer)")
        self.name = name
        self.build = build
        self.on = on
        self.commit = commit
        self.genuine_after = genuine_after

    def __repr__(self):
        return "Forgery(%r, on=%s, commit=%s)" % (self.name, self.on, self.commit)


class ForgingHost(HostSimulator):
    """HostSimulator plus `forge(forgery)`; `forged` lists `(forgery name, request fields, wire
    bytes)` for each forgery used; `sent` every genuine response written."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.forgeries = []
        self.forged = []
        self.sent = []

    def forge(self, forgery):
        self.forgeries.append(forgery)
        self._note("control", "forge %s for the next %s" % (forgery.name, forgery.on))

    def _take_forgery(self, mti):
        for forgery in self.forgeries:
            if forgery.on == mti or (forgery.on == spec.REVERSAL
                                     and mti == spec.REVERSAL_REPEAT):
                self.forgeries.remove(forgery)
                return forgery
        return None

    async def _exchange(self, frame, reader, writer):
        try:
            mti, req = spec.decode_frame(frame)
        except spec.DecodeError:
            mti, req = None, None
        forgery = self._take_forgery(mti) if mti is not None else None
        if forgery is None:
            return await self._genuine(frame, reader, writer)
        resp_mti = spec.REVERSAL_RESP if mti == spec.REVERSAL_REPEAT else "%04d" % (int(mti) + 10)
        genuine = None
        rc = None
        if forgery.commit:
            resp_mti, resp_fields, note = self._process(mti, frame)
            genuine = self.encode_response(resp_mti, resp_fields)
            rc = resp_fields.get("39")
            note = "committed (genuine rc %s), " % rc
        else:
            note = "intercepted (never reached the ledger), "
        ctx = {"req_mti": mti, "req": dict(req), "resp_mti": resp_mti, "genuine": genuine,
               "mac_key": self.response_key(req), "host": self}
        wire = bytes(forgery.build(ctx))
        self.forged.append((forgery.name, dict(req), wire))
        info = {"mti": mti, "stan": req.get("11"), "tid": req.get("41"), "amount": req.get("4"),
                "fault": "forged:" + forgery.name}
        self._exchange_done(info, resp_mti, rc, note + "answered with %d forged bytes%s" % (
            len(wire), ", then the genuine answer" if forgery.genuine_after else ""))
        writer.write(wire)
        if forgery.genuine_after:
            writer.write(spec.frame_with_length(genuine))
            self.sent.append((resp_mti, genuine))
        await writer.drain()
        return False

    async def _genuine(self, frame, reader, writer):
        # The parent's exchange, with the response it writes captured (an eavesdropper's copy).
        real_write = writer.write

        def write(data):
            data = bytes(data)
            if len(data) > 2:
                self.sent.append((data[2:6].decode("ascii", "replace"), data[2:]))
            real_write(data)

        writer.write = write
        try:
            return await super()._exchange(frame, reader, writer)
        finally:
            writer.write = real_write


# ---- builders -------------------------------------------------------------------------------


def frame(message):
    """The 2-byte length prefix, then `message`."""
    return spec.frame_with_length(message)


def approval_fields(ctx, **changes):
    """The fields of an approval answering ctx's request: its 3, 4, 7, 11, 41 (and KSN, 53)
    echoed, 39 = 00, a forged RRN and auth code; `changes` ({"f11": "000099", "f49": "840"})
    override or add fields (None removes one)."""
    req = ctx["req"]
    fields = {k: req[k] for k in ("3", "4", "7", "11", "41", "53") if k in req}
    fields["39"] = "00"
    fields["37"] = FORGED_RRN
    fields["38"] = FORGED_AUTH
    for key, value in changes.items():
        key = key.lstrip("f")
        if value is None:
            fields.pop(key, None)
        else:
            fields[key] = value
    return fields


def approval(ctx, key=None, mti=None, **changes):
    """A forged approval (frame without prefix), MACed under `key` (default: the host's own key,
    i.e. a correct MAC)."""
    return spec.encode_msg(mti or ctx["resp_mti"], approval_fields(ctx, **changes),
                           ctx["mac_key"] if key is None else key)


def flip_mac(message, bit=0):
    """`message` with one bit of its MAC (the last 8 bytes) flipped."""
    out = bytearray(message)
    out[-1 - (bit // 8) % 8] ^= 1 << (bit % 8)
    return bytes(out)


def strip_mac(message):
    """`message` without its MAC field: the last 8 bytes dropped and the MAC's bitmap bit (64,
    or 128 with a secondary bitmap) cleared, so the frame is well formed but unauthenticated."""
    out = bytearray(message[:-spec.MAC_LEN])
    if out[4] & 0x80:
        out[19] &= 0xFE  # bit 128: last bit of the secondary bitmap
    else:
        out[11] &= 0xFE  # bit 64: last bit of the primary bitmap
    return bytes(out)


def random_bytes(n, seed):
    """n seeded random bytes (no valid length prefix needed: they are the whole wire)."""
    return random.Random(seed).randbytes(n)


def huge_prefix(body=b"0210"):
    """A length prefix far above any message (65535), then a few bytes."""
    return b"\xff\xff" + bytes(body)


def truncated(message, keep=None):
    """A prefix announcing all of `message`, then only its first `keep` bytes (half)."""
    keep = len(message) // 2 if keep is None else keep
    return frame(message)[:2 + keep]
