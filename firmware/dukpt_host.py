"""AES DUKPT's host side (ANSI X9.24-3-2017), on MicroPython's `cryptolib`: what the BDK holder
(the host simulator, an HSM) derives, key check values, and `TerminalKeys`, a terminal that keeps
its own counter (the host's test client, the tests). Reached through firmware.dukpt too
(`dukpt.derive`): the board imports only firmware/dukpt.py, which has the terminal's side.
"""

from cryptolib import aes
from micropython import const

from .cmac import cmac
from .dukpt import (
    INITIAL_KEY_ID_LEN,
    WorkingKeys,
    _check_key,
    _check_ksn,
    _check_usage,
    _header,
    _ksn_counter,
    _transaction_key,
    _wipe,
    _working_key,
    next_counter,
)

_INITIAL_KEY = const(0x8001)
_ECB = const(1)
_BLOCK = const(16)


def initial_key(bdk, initial_key_id):
    """The terminal's 16-byte initial key (a new bytearray) from the AES-128 BDK and the 8-byte
    initial key ID (BDK ID + derivation ID)."""
    _check_key(bdk)
    if len(initial_key_id) != INITIAL_KEY_ID_LEN:
        raise ValueError("initial key ID")
    data = bytearray(_BLOCK)
    _header(data, _INITIAL_KEY)
    for i in range(INITIAL_KEY_ID_LEN):
        data[8 + i] = initial_key_id[i]
    key = bytearray(_BLOCK)
    aes(bdk, _ECB).encrypt(data, key)
    return key


def derive(bdk, ksn, usage):
    """The working key (a new 16-byte bytearray) for `usage` under the terminal and counter that
    the 12-byte `ksn` names, from the BDK: the key the terminal derived for that transaction.

    Raises ValueError on a bad key, KSN (counter 0 or more than 16 one-bits) or usage.
    """
    _check_key(bdk)
    _check_ksn(ksn)
    _check_usage(usage)
    initial = initial_key(bdk, ksn[:INITIAL_KEY_ID_LEN])
    data = bytearray(_BLOCK)
    key = bytearray(_BLOCK)
    out = bytearray(_BLOCK)
    _transaction_key(initial, ksn, data, key)
    _working_key(key, ksn, usage, data, out)
    _wipe(initial)
    _wipe(key)
    return out


class TerminalKeys(WorkingKeys):
    """The terminal's DUKPT state: its initial key and its 12-byte KSN.

    `ksn` is the initial key ID + the counter of the last transaction (0 right after the key is
    loaded). Per transaction: `next_transaction()` (then persist the counter, before any key is
    used, so a power cut cannot make the terminal use a counter twice), `transaction_key()`,
    and one `derive_working_key()` per usage. Keys are returned as new bytearrays so that the
    caller can zero them after use.
    """

    @property
    def ksn(self):
        """The current KSN (bytes): what the message to the host carries."""
        return bytes(self._ksn)

    @property
    def counter(self):
        """The current transaction counter (0: no transaction since the key was loaded)."""
        return _ksn_counter(self._ksn)

    def next_transaction(self):
        """Move to the next valid counter and return the new KSN. Raises CounterExhausted
        (and stays on the last counter) when there is none."""
        counter = next_counter(_ksn_counter(self._ksn))
        for i in range(4):
            self._ksn[11 - i] = (counter >> (8 * i)) & 0xFF
        return bytes(self._ksn)

    def transaction_key(self):
        """The derivation key for the current counter (X9.24-3's "transaction key"): up to 16
        AES operations from the initial key. Raises ValueError before the first transaction."""
        if not _ksn_counter(self._ksn):
            raise ValueError("no transaction: call next_transaction() first")
        key = bytearray(_BLOCK)
        _transaction_key(self._initial, self._ksn, self._data, key)
        return key

    def derive_working_key(self, transaction_key, usage):
        """The working key for `usage` (PIN_ENCRYPTION, MAC_GENERATION, ...) from the current
        counter's transaction key: one AES operation."""
        _check_key(transaction_key)
        _check_usage(usage)
        out = bytearray(_BLOCK)
        _working_key(transaction_key, self._ksn, usage, self._data, out)
        return out

    def working_key(self, usage):
        """`derive_working_key(transaction_key(), usage)`, the transaction key wiped after."""
        key = self.transaction_key()
        try:
            return self.derive_working_key(key, usage)
        finally:
            _wipe(key)

    def wipe(self):
        """Zero the initial key held in RAM (the object is unusable afterwards)."""
        _wipe(self._initial)


# -- key check values -------------------------------------------------------------------------


def kcv(key):
    """The AES key check value of X9.24-1-2017: the first 5 bytes of AES-CMAC(key, 16 zero
    bytes). The one to show for new AES keys (for DUKPT: the BDK, the initial key)."""
    return cmac(key, bytes(_BLOCK))[:5]


def kcv_legacy(key):
    """The legacy (pre-2017) AES key check value: the first 3 bytes of AES-ECB(key, zero block),
    as tools/provision.py checks the static keys. Kept for equipment that shows only this."""
    block = bytearray(_BLOCK)
    aes(key, _ECB).encrypt(block, block)
    return bytes(block[:3])
