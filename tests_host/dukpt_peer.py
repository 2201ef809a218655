"""The host's side of the terminal's keys, for tests that read and build frames by hand; runs on
CPython and on MicroPython (the host simulator does the same in tools/host/server.py).

The terminal's default settings hold the X9.24-3 test initial key, derived from the test BDK
below: a request's KSN (field 53) gives its MAC_GENERATION and PIN_ENCRYPTION keys, and its
answer is MACed under the MAC_VERIFICATION key of the same KSN, which it echoes. Frames without
field 53 (key_scheme "static") use the static MAC key.
"""

from binascii import unhexlify

from firmware import dukpt, iso8583
from firmware.settings import DEFAULTS

BDK = unhexlify("FEDCBA9876543210F1F1F1F1F1F1F1F1")  # TEST KEY: the X9.24-3 test BDK
STATIC_MAC_KEY = unhexlify(DEFAULTS["mac_key"])
STATIC_PIN_KEY = unhexlify(DEFAULTS["pin_key"])


def key(ksn, usage):
    """The working key (bytes) the host derives for `usage` under `ksn`."""
    return bytes(dukpt.derive(BDK, ksn, usage))


def _request_key(mti, fields):
    ksn = fields.get(53)
    return STATIC_MAC_KEY if ksn is None else key(ksn, dukpt.MAC_GENERATION)


def decode_request(frame):
    """(mti, fields) of a request the terminal sent, its MAC checked as the host checks it."""
    return iso8583.decode(frame, _request_key)


def pin_key(fields):
    """The PIN block's key for a decoded 0200."""
    ksn = fields.get(53)
    return STATIC_PIN_KEY if ksn is None else key(ksn, dukpt.PIN_ENCRYPTION)


def encode_answer(mti, fields, ksn, mac_key=None):
    """An answer MACed as the host MACs it: `ksn` (the request's field 53) echoed in field 53
    and the MAC under its MAC_VERIFICATION key; `ksn` None: no field 53, static key. `mac_key`
    given: MACed under that key instead (a forgery)."""
    fields = dict(fields)
    if ksn is not None:
        fields[53] = ksn
    if mac_key is None:
        mac_key = STATIC_MAC_KEY if ksn is None else key(ksn, dukpt.MAC_VERIFICATION)
    return iso8583.encode(mti, fields, mac_key)


def ksn(counter, initial_key_id=DEFAULTS["initial_key_id"]):
    """The 12-byte KSN of this terminal's `counter`."""
    return unhexlify(initial_key_id) + bytes(((counter >> 24) & 0xFF, (counter >> 16) & 0xFF,
                                              (counter >> 8) & 0xFF, counter & 0xFF))


def counter(ksn):
    return (ksn[8] << 24) | (ksn[9] << 16) | (ksn[10] << 8) | ksn[11]
