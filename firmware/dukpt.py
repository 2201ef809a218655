"""AES DUKPT (ANSI X9.24-3-2017) with AES-128 keys, on MicroPython's `cryptolib`.

DUKPT (Derived Unique Key Per Transaction) gives every transaction its own PIN, MAC and data
keys, so a key that leaks from one transaction opens no other. The acquirer's host derives the
same keys from its Base Derivation Key (BDK) and the Key Serial Number (KSN) that the terminal
sends in the clear with each message, so no key travels and no per-terminal key table is kept.
One BDK serves a whole fleet, yet each terminal holds only its own initial key: a terminal that
is opened gives away its own keys and nobody else's.

The terminal stores its initial key (to be wrapped at rest by a device key; not done here) and
its KSN: the 8-byte initial key ID (BDK ID 4 bytes + derivation ID 4 bytes) and the 32-bit
transaction counter. It never holds the BDK: `initial_key()` and `derive()` are host-side
(firmware/dukpt_host.py, reached as `dukpt.derive` too).

Every key is AES-ECB(derivation key, derivation data), one 16-byte block for an AES-128 key:

    byte  0     01    version
    byte  1     01    key block counter (one block makes a 128-bit key)
    bytes 2-3         key usage indicator (below; 8001 initial key, 8000 derivation key)
    bytes 4-5   0002  algorithm indicator: AES-128
    bytes 6-7   0080  length of the derived key in bits
    bytes 8-15        initial key: the initial key ID; any other key: derivation ID
                      (initial key ID bytes 4-7) + counter (big-endian)

The transaction (derivation) key for a counter walks its one-bits from the top: starting from
the initial key, each set bit adds itself to a working counter and derives the next key under
usage 8000 with that working counter. Hence X9.24-3's limit of 16 one-bits: at most 16 AES
operations per transaction. The working key is then derived from the transaction key with
the full counter and the wanted usage.

Unlike the standard's terminal (which keeps 32 future derivation keys and erases the initial
key after loading, so that a terminal opened today cannot recompute yesterday's keys), this
terminal side recomputes the transaction key from the initial key each time: no forward
secrecy, in exchange for 16 bytes of state besides the counter.
"""

from cryptolib import aes
from micropython import const

# Key usage indicators (X9.24-3-2017) for working keys.
KEY_ENCRYPTION = const(0x0002)
PIN_ENCRYPTION = const(0x1000)
MAC_GENERATION = const(0x2000)  # AES-CMAC, terminal to host
MAC_VERIFICATION = const(0x2001)  # AES-CMAC, host to terminal
MAC_BOTH = const(0x2002)
DATA_ENCRYPTION = const(0x3000)
DATA_DECRYPTION = const(0x3001)
DATA_BOTH = const(0x3002)
_WORKING_USAGES = (KEY_ENCRYPTION, PIN_ENCRYPTION, MAC_GENERATION, MAC_VERIFICATION, MAC_BOTH,
                   DATA_ENCRYPTION, DATA_DECRYPTION, DATA_BOTH)
_KEY_DERIVATION = const(0x8000)

_ECB = const(1)
_BLOCK = const(16)
_AES128 = const(0x0002)
_AES128_BITS = const(0x0080)

KSN_LEN = const(12)
INITIAL_KEY_ID_LEN = const(8)
# X9.24-3: a counter with more one-bits is never used (it would cost more AES operations).
MAX_ONE_BITS = const(16)
_COUNTER_MAX = 0xFFFFFFFF  # a plain global: above the ESP32's small-int range (2^30 - 1)


class CounterExhausted(ValueError):
    """No valid transaction counter is left: the terminal needs a new initial key."""


def _ones16(v):
    n = 0
    while v:
        v &= v - 1
        n += 1
    return n


def one_bits(counter):
    """The number of one-bits in a 32-bit counter."""
    # In 16-bit halves: a counter above 2^30 is a long int on the ESP32, its halves are not.
    return _ones16(counter >> 16) + _ones16(counter & 0xFFFF)


def counter_valid(counter):
    """True when `counter` can be used for a transaction: 1 to 2^32 - 1, at most 16 one-bits."""
    return 0 < counter <= _COUNTER_MAX and one_bits(counter) <= MAX_ONE_BITS


def next_counter(counter):
    """The smallest valid transaction counter above `counter` (0 after the key is loaded).

    Values with more than 16 one-bits are skipped. Raises CounterExhausted after the last one
    (0xFFFF0000), ValueError on a counter outside 0 to 2^32 - 1.
    """
    if counter < 0 or counter > _COUNTER_MAX:
        raise ValueError("counter")
    counter += 1
    # Every value between c and c + (lowest one-bit of c) has all of c's one-bits and more, so
    # when c has too many, none of those can do either.
    while one_bits(counter) > MAX_ONE_BITS:
        counter += counter & -counter
    if counter > _COUNTER_MAX:
        raise CounterExhausted("counter")
    return counter


def _ksn_counter(ksn):
    return (ksn[8] << 24) | (ksn[9] << 16) | (ksn[10] << 8) | ksn[11]


def _check_key(key):
    if len(key) != _BLOCK:
        raise ValueError("AES-128 key")


def _check_ksn(ksn):
    if len(ksn) != KSN_LEN:
        raise ValueError("KSN")
    if not counter_valid(_ksn_counter(ksn)):
        raise ValueError("KSN counter")


def _check_usage(usage):
    if usage not in _WORKING_USAGES:
        raise ValueError("key usage")


def _header(data, usage):
    data[0] = 0x01
    data[1] = 0x01
    data[2] = usage >> 8
    data[3] = usage & 0xFF
    data[4] = _AES128 >> 8
    data[5] = _AES128 & 0xFF
    data[6] = _AES128_BITS >> 8
    data[7] = _AES128_BITS & 0xFF


def _transaction_key(initial, ksn, data, key):
    # Writes into `key` the derivation key for the KSN's counter; `data` is 16 bytes of scratch.
    for i in range(_BLOCK):
        key[i] = initial[i]
    _header(data, _KEY_DERIVATION)
    for i in range(4):
        data[8 + i] = ksn[4 + i]  # derivation ID
        data[12 + i] = 0  # the working counter, built up bit by bit
    for i in range(4):
        b = ksn[8 + i]
        mask = 0x80
        while mask:
            if b & mask:
                data[12 + i] |= mask
                # The cipher has expanded the key: its buffer can take the result.
                aes(key, _ECB).encrypt(data, key)
            mask >>= 1


def _working_key(transaction_key, ksn, usage, data, out):
    _header(data, usage)
    for i in range(8):
        data[8 + i] = ksn[4 + i]  # derivation ID + full counter
    aes(transaction_key, _ECB).encrypt(data, out)


def _wipe(buf):
    for i in range(len(buf)):
        buf[i] = 0


# -- terminal side ----------------------------------------------------------------------------


class WorkingKeys:
    """The terminal's DUKPT state: its initial key and the 12-byte KSN it was loaded with (the
    initial key ID + counter). It derives the working key for any KSN of that initial key ID;
    the counter is the caller's (firmware/msgkeys.py). Keys are returned as new bytearrays so
    that the caller can zero them after use."""

    def __init__(self, initial_key, ksn):
        _check_key(initial_key)
        if len(ksn) != KSN_LEN:
            raise ValueError("KSN")
        counter = _ksn_counter(ksn)
        if counter and not counter_valid(counter):
            raise ValueError("KSN counter")
        self._initial = bytearray(initial_key)
        self._ksn = bytearray(ksn)
        self._data = bytearray(_BLOCK)  # derivation data, reused by every derivation

    def working_key_for(self, ksn, usage):
        """The working key for `usage` under another KSN of this terminal (the KSN of an earlier
        request, to check its answer, or of the next one): up to 17 AES operations, the
        transaction key wiped after. Raises ValueError on a KSN of another initial key ID, a
        counter that is never used (0, more than 16 one-bits) or a bad usage."""
        _check_ksn(ksn)
        _check_usage(usage)
        for i in range(INITIAL_KEY_ID_LEN):
            if ksn[i] != self._ksn[i]:
                raise ValueError("KSN of another initial key")
        key = bytearray(_BLOCK)
        out = bytearray(_BLOCK)
        _transaction_key(self._initial, ksn, self._data, key)
        _working_key(key, ksn, usage, self._data, out)
        _wipe(key)
        return out


def __getattr__(name):
    # The host's side (initial_key, derive, kcv, TerminalKeys with its own counter) is in
    # firmware/dukpt_host.py, for the host, tools and tests: on a board it would only take heap.
    # Module __getattr__ is what asyncio's lazy names rest on too, on every port.
    from firmware import dukpt_host

    return getattr(dukpt_host, name)
