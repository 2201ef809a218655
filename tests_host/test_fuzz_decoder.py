"""Property tests (CPython, hypothesis) of firmware/iso8583.py against malformed input (issue 4):
`decode` raises nothing but ValueError whatever the bytes, what it accepts is well formed and
re-encodes to the same bytes, it never accepts what the host's independent decoder
(tools/host/spec.py, pyiso8583) refuses; `FrameReader` splits any chunking of a stream alike.
The seeded mutation campaign over the Terminal is tools/fuzz.py (and test_fuzz_portable.py)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware import iso8583
from tools import framing, fuzz

# Under the DUKPT key the host derives for the KSN they carry (fuzz._remac's key), so that the
# decoder's accepting path is reached.
_APPROVAL = iso8583.encode("0210", {**fuzz.response_fields("0210", 42, 1250), 53: fuzz.KSN1},
                           fuzz.host_key(fuzz.KSN1))
_QUERY = iso8583.encode("0600", {3: "000000", 4: "000000001250", 7: "1126101600",
                                 11: "000042", 41: "TERM0001", 42: "MERCHANT0000001",
                                 53: fuzz.KSN1, 60: "000001",
                                 90: "0200000042" + "1126101500" + "0" * 22},
                        fuzz.host_key(fuzz.KSN1))
_HOST = fuzz.host_oracle()


def _check(frame):
    got, problem = fuzz.decode_checked(frame)
    assert problem is None, (problem, frame.hex())
    if got is not None:
        theirs = _HOST(frame)
        assert theirs is not None, ("host decoder refuses", frame.hex())
        fields = dict(got[1])
        fields.pop(64, None)
        fields.pop(128, None)
        assert (got[0], fields) == theirs, frame.hex()
    return got


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes(data):
    _check(data)


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from([_APPROVAL, _QUERY]), st.integers(0, 2 ** 32 - 1), st.booleans())
def test_mutated_bodies_with_a_valid_mac(good, seed, remac):
    rng = fuzz.Rng(seed)
    body = fuzz.mutate_body(rng, bytearray(good[:-8]))
    frame = fuzz._remac(body) if remac else bytes(body) + good[-8:]
    _check(frame)


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from([_APPROVAL, _QUERY]),
       st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=4))
def test_byte_edits(good, edits):
    out = bytearray(good)
    for where, value in edits:
        out[where % len(out)] = value
    _check(bytes(out))
    # With the MAC recomputed the edits reach the field parser.
    _check(fuzz._remac(bytes(out[:-8])))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=4),
       st.lists(st.integers(1, 50), min_size=1, max_size=20))
def test_frame_reader_chunking(messages, steps):
    stream = b"".join(framing.frame(m) for m in messages)
    reader = framing.FrameReader()
    got = []
    pos = i = 0
    while pos < len(stream):
        step = steps[i % len(steps)]
        got += reader.feed(stream[pos : pos + step])
        pos += step
        i += 1
    assert got == messages and reader.pending() == 0
    assert fuzz.read_frame_sync(stream) == messages[0]


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300), st.integers(-1, 300))
def test_read_frame_never_raises(data, reset_at):
    got = fuzz.read_frame_sync(data, reset_at)
    if got is not None:
        n = (data[0] << 8) | data[1]
        assert 1 <= n <= framing.MAX_MESSAGE and got == data[2 : 2 + n]
    try:
        framing.FrameReader().feed(data)
    except ValueError:
        pass
