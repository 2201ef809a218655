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
        self._file = None
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

    def _encode(self, record):
        self.seq += 1
        payload = json.dumps(record).encode()
        head = struct.pack(">HI", len(payload), self.seq)
        crc = binascii.crc32(head[2:] + payload) & 0xFFFFFFFF
        return head + payload + struct.pack(">I", crc)

    def append(self, record):
        """Durably add one record: on return it survives a power cut."""
        if self._file is None:
            self._file = open(self.path, "ab")
        data = self._encode(record)
        self._file.write(data)
        self._file.flush()
        self.size += len(data)

    def rewrite(self, records):
        """Replace the journal by these records (compaction), atomically."""
        self.close()
        size = 0
        with open(self._tmp, "wb") as f:
            for record in records:
                data = self._encode(record)
                f.write(data)
                size += len(data)
        os.rename(self._tmp, self.path)
        self.size = size
        self.torn = False

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None
