"""Default keys of the host simulator, and its DUKPT key derivation (the host holds the BDKs).

TEST KEYS ONLY. They are public (the MAC key is the NIST SP 800-38B example key, the BDK the
X9.24-3 test BDK) and match the firmware's settings defaults (`mac_key`, `pin_key`,
`initial_key`, `initial_key_id`) so that a fresh terminal talks to a fresh simulator. Never use
them for anything but tests and demos.

The DUKPT derivation is the firmware's own (`firmware/dukpt.py`, tested against the published
vectors), run on CPython over the `cryptolib` stand-in in tests_host/shims.
"""

import os
import sys

try:
    import cryptolib  # noqa: F401
except ImportError:  # CPython: the firmware's dukpt runs over the test shims' cryptolib
    _SHIMS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "tests_host", "shims")
    if _SHIMS not in sys.path:
        sys.path.append(_SHIMS)

from firmware import dukpt  # noqa: E402

# TEST KEYS ONLY: AES-128 key for the message MAC (AES-CMAC, fields 64 / 128).
MAC_KEY_HEX = "2B7E151628AED2A6ABF7158809CF4F3C"
# TEST KEYS ONLY: AES-128 key for the PIN block (ISO 9564-1 format 4, field 52).
PIN_KEY_HEX = "000102030405060708090A0B0C0D0E0F"

MAC_KEY = bytes.fromhex(MAC_KEY_HEX)
PIN_KEY = bytes.fromhex(PIN_KEY_HEX)

# TEST KEYS ONLY: the AES-128 test BDK of ANSI X9.24-3-2017 (its published test vectors), under
# its BDK ID: the first 4 bytes of every KSN (field 53) of the terminals it serves. The
# firmware's default initial key (setting `initial_key`) is derived from it with the initial key
# ID 1234567890123456.
TEST_BDK_ID = bytes.fromhex("12345678")
TEST_BDK = bytes.fromhex("FEDCBA9876543210F1F1F1F1F1F1F1F1")
BDKS = {TEST_BDK_ID: TEST_BDK}
# The firmware's defaults (`initial_key_id`, `initial_key`), for test clients.
TEST_INITIAL_KEY_ID = bytes.fromhex("1234567890123456")
TEST_INITIAL_KEY = bytes.fromhex("1273671EA26AC29AFA4D1084127652A1")


class UnknownBDK(KeyError):
    """The KSN names a BDK ID the host does not hold."""


def dukpt_key(ksn, usage, bdks=None):
    """The working key (bytes) for `usage` (dukpt.MAC_GENERATION, ...) of the terminal and
    counter that the 12-byte `ksn` names, derived from the BDK its first 4 bytes name. Raises
    UnknownBDK, or ValueError on a KSN that is not one (length, counter 0 or over 16 one-bits).
    """
    ksn = bytes(ksn)
    if len(ksn) != dukpt.KSN_LEN:
        raise ValueError("KSN length %d" % len(ksn))
    bdk = (BDKS if bdks is None else bdks).get(ksn[:4])
    if bdk is None:
        raise UnknownBDK(ksn[:4].hex().upper())
    return bytes(dukpt.derive(bdk, ksn, usage))
