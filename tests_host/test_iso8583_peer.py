"""The firmware's ISO 8583 codec against pyiso8583 with the project's one wire spec
(tools/host/spec.py): every message type of docs/protocol.md, both directions, byte for byte,
MAC included; plus fuzzing that `decode` only ever raises ValueError. CPython only."""

import iso8583 as pyiso
from hypothesis import given, settings
from hypothesis import strategies as st
from test_iso8583 import MESSAGES

from firmware import iso8583
from tools.host import spec
from tools.host.keys import MAC_KEY
from tools.host.spec import SPEC


def _as_spec_doc(fields):
    return {str(k): (v.hex().upper() if isinstance(v, bytes) else v) for k, v in fields.items()}


def _from_spec_fields(fields):
    return {int(k): v for k, v in fields.items()}


def test_every_message_ours_to_pyiso8583():
    for mti, fields in MESSAGES:
        ours = iso8583.encode(mti, fields, MAC_KEY)
        doc, _ = pyiso.decode(bytearray(ours), SPEC)
        assert doc["t"] == mti
        mac_field = "128" if 90 in fields else "64"
        assert doc.pop(mac_field) == ours[-8:].hex().upper()
        for key in ("h", "t", "p", "1"):
            doc.pop(key, None)
        assert doc == _as_spec_doc(fields)
        # The host's own decoder, MAC check included.
        assert spec.decode_msg(ours, MAC_KEY) == (mti, {str(k): v for k, v in fields.items()})


def test_every_message_pyiso8583_to_ours():
    for mti, fields in MESSAGES:
        theirs = spec.encode_msg(mti, {str(k): v for k, v in fields.items()}, MAC_KEY)
        assert theirs == iso8583.encode(mti, fields, MAC_KEY)
        got_mti, got = iso8583.decode(theirs, MAC_KEY)
        got.pop(128 if 90 in fields else 64)
        assert (got_mti, got) == (mti, fields)
        # And from pyiso8583's encoder directly, with the MAC computed over its output.
        doc = _as_spec_doc(fields)
        doc["t"] = mti
        doc["128" if 90 in fields else "64"] = "00" * 8
        raw, _ = pyiso.encode(doc, SPEC)
        raw = bytes(raw[:-8]) + spec.mac(raw[:-8], MAC_KEY)
        assert iso8583.decode(raw, MAC_KEY)[1][11] == fields[11]


def test_bad_mac_rejected_like_the_host():
    mti, fields = MESSAGES[1]
    bad = spec.encode_msg(mti, {str(k): v for k, v in fields.items()}, MAC_KEY, corrupt_mac=True)
    try:
        iso8583.decode(bad, MAC_KEY)
    except iso8583.MacError:
        pass
    else:
        raise AssertionError("bad MAC accepted")


def _n(size):
    return st.text("0123456789", min_size=size, max_size=size)


_printable = "".join(chr(c) for c in range(0x20, 0x7F))


def _text(size):
    return st.text(_printable, min_size=size, max_size=size)


# Values of every field as they travel (fixed fields at full length).
_FIELD_VALUES = {
    2: st.text("0123456789", min_size=1, max_size=19),
    3: _n(6), 4: _n(12), 7: _n(10), 11: _n(6), 12: _n(6), 13: _n(4), 14: _n(4), 22: _n(3),
    25: _n(2), 37: _text(12), 38: _text(6), 39: _text(2), 41: _text(8), 42: _text(15),
    49: _n(3), 52: st.binary(min_size=16, max_size=16),
    60: st.text(_printable, max_size=999), 90: _n(42),
}
_messages = st.tuples(
    _n(4),
    st.dictionaries(st.sampled_from(sorted(_FIELD_VALUES)), st.just(None)).flatmap(
        lambda keys: st.fixed_dictionaries({k: _FIELD_VALUES[k] for k in keys})
    ),
)


@settings(max_examples=300, deadline=None)
@given(_messages)
def test_random_messages_agree(message):
    mti, fields = message
    ours = iso8583.encode(mti, fields, MAC_KEY)
    assert ours == spec.encode_msg(mti, {str(k): v for k, v in fields.items()}, MAC_KEY)
    got_mti, got = iso8583.decode(ours, MAC_KEY)
    got.pop(128 if any(k > 64 for k in fields) else 64)
    assert (got_mti, got) == (mti, fields)


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=300))
def test_decode_arbitrary_bytes_raises_only_valueerror(data):
    for key in (MAC_KEY, None):
        try:
            iso8583.decode(data, key)
        except ValueError:
            pass


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from(MESSAGES), st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)),
                                           min_size=1, max_size=4),
       st.integers(0, 400))
def test_mutated_messages(message, edits, cut):
    """Mutations of real messages reach deep into the parser. Whatever our decoder accepts
    (MAC not checked) pyiso8583 with the host's checks reads identically."""
    mti, fields = message
    buf = bytearray(iso8583.encode(mti, fields, MAC_KEY))
    for pos, value in edits:
        if pos < len(buf):
            buf[pos] = value
    buf = buf[: max(cut, 12)]
    try:
        iso8583.decode(buf, MAC_KEY)
    except ValueError:
        pass
    try:
        got_mti, got = iso8583.decode(buf, None)
    except ValueError:
        return
    their_mti, theirs = spec.decode_frame(buf)
    assert (got_mti, got) == (their_mti, _from_spec_fields(theirs))
