"""Append-only journal on flash, crash-safe under power loss.

Each record is `[length u16 | sequence u32 | payload | CRC32 u32]`, big-endian, the CRC over
sequence and payload; the payload is a small JSON object. Every append is flushed before it
returns: on littlefs a flushed write is durable, an unflushed one may vanish at a power cut.
Replay stops at the first record that is short or fails its CRC (a write torn by a power cut)
and sets `torn`: the caller must then rewrite the journal (compaction) before appending, or the
records after the torn one would be unreadable. Replay yields one record at a time: a full
journal held as a list would cost more heap than the terminal has.
Compaction rewrites the journal as a temp file, closes it and renames it over the old one:
littlefs renames atomically, so a power cut leaves either the old or the new journal.
"""

import binascii
import json
import os
import struct

from micropython import const

_HEADER = struct.calcsize(">HI")
_MAX_PAYLOAD = const(1024)  # a record is a few hundred bytes; anything longer is corruption


class Journal:
    def __init__(self, path):
        self.path = path
        self._tmp = path + ".tmp"
        self.seq = 0
        self.size = 0
        self.torn = False

    def replay(self):
        """Yield every valid record's payload dict, in order."""
        offset = 0
        try:
            f = open(self.path, "rb")
        except OSError:
            f = None
        if f is not None:
            with f:
                while True:
                    head = f.read(_HEADER)
                    if len(head) < _HEADER:
                        self.torn = len(head) > 0
                        break
                    length, seq = struct.unpack(">HI", head)
                    if length > _MAX_PAYLOAD:
                        self.torn = True
                        break
                    body = f.read(length + 4)
                    if len(body) < length + 4:
                        self.torn = True
                        break
                    payload = body[:length]
                    (crc,) = struct.unpack(">I", body[length:])
                    if binascii.crc32(head[2:] + payload) & 0xFFFFFFFF != crc:
                        self.torn = True
                        break
                    try:
                        record = json.loads(payload)
                    except ValueError:
                        self.torn = True
                        break
                    self.seq = seq
                    offset += _HEADER + length + 4
                    self.size = offset
                    yield record
        self.size = offset

    def _write(self, f, record):
        """One record into f, in three pieces: no copy of the whole record is made."""
        self.seq += 1
        payload = json.dumps(record).encode()
        head = struct.pack(">HI", len(payload), self.seq)
        crc = binascii.crc32(payload, binascii.crc32(head[2:])) & 0xFFFFFFFF
        f.write(head)
        f.write(payload)
        f.write(struct.pack(">I", crc))
        return _HEADER + len(payload) + 4

    def append(self, record):
        """Durably add one record: on return it survives a power cut (closing flushes). The
        file is opened for each record: an open file's buffer, kept, would split the heap."""
        with open(self.path, "ab") as f:
            self.size += self._write(f, record)

    def rewrite(self, records):
        """Replace the journal by these records (compaction), atomically."""
        size = 0
        with open(self._tmp, "wb") as f:
            for record in records:
                size += self._write(f, record)
        os.rename(self._tmp, self.path)
        self.size = size
        self.torn = False

    def close(self):
        pass  # nothing held open between records (see append)
