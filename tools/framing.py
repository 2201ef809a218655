"""The host link's framing (docs/protocol.md): each ISO 8583 message preceded by its length,
2 bytes big-endian. The firmware reads it in firmware/app.py (`_read_frame`); this second
reading, a streaming one, is what the tests and the fuzzer (tools/fuzz.py) frame messages with
and check the firmware's against. Runs on MicroPython and CPython."""

MAX_MESSAGE = 4096  # bigger than any message of ours by far; bounds the receive buffer


def frame(message):
    """Prefix `message` with its 2-byte big-endian length, as the host link carries it."""
    n = len(message)
    if n < 1 or n > MAX_MESSAGE:
        raise ValueError("message length %d" % n)
    return n.to_bytes(2, "big") + message


def message_length(prefix):
    """Length announced by a 2-byte prefix (e.g. from `await reader.readexactly(2)`); raises
    ValueError when it is zero or above MAX_MESSAGE, i.e. not a message of ours."""
    if len(prefix) != 2:
        raise ValueError("length prefix")
    n = (prefix[0] << 8) | prefix[1]
    if n < 1 or n > MAX_MESSAGE:
        raise ValueError("message length %d" % n)
    return n


class FrameReader:
    """Splits a byte stream into length-prefixed messages. `feed(data)` returns the list of
    messages completed so far (often empty). A bad length raises ValueError: the stream cannot
    be resynchronised then, the connection must be closed. The buffer never holds more than
    one message plus what a single feed brought."""

    def __init__(self, max_message=MAX_MESSAGE):
        self._max = max_message
        self._buf = bytearray()

    def feed(self, data):
        buf = self._buf
        buf.extend(data)
        done = []
        while len(buf) >= 2:
            n = (buf[0] << 8) | buf[1]
            if n < 1 or n > self._max:
                self._buf = bytearray()
                raise ValueError("message length %d" % n)
            if len(buf) < 2 + n:
                break
            done.append(bytes(buf[2 : 2 + n]))
            buf = buf[2 + n :]
        self._buf = buf
        return done

    def pending(self):
        """Bytes received that do not make a whole message yet."""
        return len(self._buf)
