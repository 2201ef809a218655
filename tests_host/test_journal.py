# portable: micropython
"""The flash journal: durable appends, replay, torn tails cut off, atomic compaction."""

import os

from firmware.journal import Journal

_DIR = "/tmp"


def _path(name):
    path = _DIR + "/pos_journal_" + name
    for p in (path, path + ".tmp"):
        try:
            os.remove(p)
        except OSError:
            pass
    return path


def test_append_and_replay():
    path = _path("a")
    j = Journal(path)
    assert list(j.replay()) == [] and not j.torn
    j.append({"r": "send", "stan": 1})
    j.append({"r": "ok", "stan": 1})
    j.close()
    again = Journal(path)
    assert list(again.replay()) == [{"r": "send", "stan": 1}, {"r": "ok", "stan": 1}]
    assert again.seq == 2 and again.size == os.stat(path)[6]


def test_torn_tail_is_cut_and_later_appends_survive():
    path = _path("b")
    j = Journal(path)
    j.append({"r": "send", "stan": 1})
    j.append({"r": "ok", "stan": 1})
    j.close()
    size = os.stat(path)[6]
    with open(path, "rb") as f:
        data = f.read()
    # A power cut in the middle of the second record: only part of it reached flash.
    for cut in range(size - 1, size // 2, -3):
        with open(path, "wb") as f:
            f.write(data[:cut])
        j = Journal(path)
        records = list(j.replay())
        assert records == [{"r": "send", "stan": 1}] and j.torn, cut
        j.rewrite(records)  # what the runtime does with the terminal's snapshot
        j.append({"r": "dec", "stan": 1})
        j.close()
        assert list(Journal(path).replay()) == [{"r": "send", "stan": 1},
                                                {"r": "dec", "stan": 1}]


def test_flipped_bit_stops_replay():
    path = _path("c")
    j = Journal(path)
    for stan in range(3):
        j.append({"r": "send", "stan": stan})
    j.close()
    with open(path, "rb") as f:
        data = bytearray(f.read())
    data[len(data) // 2] ^= 0x10
    with open(path, "wb") as f:
        f.write(data)
    records = list(Journal(path).replay())
    assert len(records) < 3
    assert records == [{"r": "send", "stan": s} for s in range(len(records))]


def test_rewrite_replaces_atomically_and_keeps_sequence_growing():
    path = _path("d")
    j = Journal(path)
    for stan in range(20):
        j.append({"r": "send", "stan": stan})
    big = j.size
    seq = j.seq
    j.rewrite([{"r": "batch", "n": 20}])
    assert j.size < big
    j.append({"r": "send", "stan": 21})
    j.close()
    again = Journal(path)
    assert list(again.replay()) == [{"r": "batch", "n": 20}, {"r": "send", "stan": 21}]
    assert again.seq > seq
