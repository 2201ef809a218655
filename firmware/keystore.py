"""Key material at rest: AES key wrap (RFC 3394, NIST SP 800-38F KW) under a device key.

A key setting (`mac_key`, `pin_key`, `initial_key`) may be stored in config.json as
"W:" + the hex of the key wrapped under this board's device key. `unwrap_settings` turns them
back into clear hex right after the settings are loaded (firmware/startup.py `load_settings`), so
the clear keys live in RAM only.

The device key (KEK) is the AES-CMAC of the board's unique ID (`device_id()` of the board
profile: `machine.unique_id()` on the ESP32) under a constant compiled into the firmware.
THIS IS OBFUSCATION, NOT PROTECTION: the unique ID can be read from the chip (it is the Wi-Fi
MAC address) and the constant from the firmware image, so whoever has the flash and the
firmware can unwrap the keys. What it does buy: a copy of config.json is useless on another
board or in a backup, and the keys never sit on flash as plain hex. Real protection needs the
ESP32's flash encryption (and secure boot), which keeps the flash contents and this constant
unreadable off the chip.

Unwrapping checks RFC 3394's integrity check value: a key wrapped for another board, or
damaged, raises KeyWrapError instead of yielding a garbage key. Runs on MicroPython
(`cryptolib` AES-ECB) and on CPython (tests_host/shims/cryptolib.py).
"""

from binascii import hexlify, unhexlify

from cryptolib import aes
from micropython import const

from firmware.cmac import cmac
from firmware.settings import KEYS

_ECB = const(1)
# RFC 3394 2.2.3.1: the default initial value, the integrity check on unwrapping.
_IV = b"\xa6\xa6\xa6\xa6\xa6\xa6\xa6\xa6"
# The key-derivation constant: fixed for every board of this firmware (see the docstring).
_DERIVATION_KEY = unhexlify("5d1c6a0e93b24f7f8a37c2e1b4069d58")

PREFIX = "W:"
# The settings that hold AES keys; those the firmware's settings do not have are skipped.
KEY_SETTINGS = KEYS


class KeyWrapError(ValueError):
    pass


def device_key(unique_id):
    """The 16-byte KEK of the board with this unique ID (bytes)."""
    return cmac(_DERIVATION_KEY, unique_id)


def _xor_t(block, t):
    # A ^= t, t as a 64-bit big-endian number (RFC 3394 2.2.1: t = n*j + i).
    i = 7
    while t:
        block[i] ^= t & 0xFF
        t >>= 8
        i -= 1


def wrap(kek, key):
    """RFC 3394 wrap of key (a multiple of 8 bytes, at least 16) under kek: len(key) + 8 bytes."""
    n = len(key) // 8
    if n < 2 or len(key) % 8:
        raise KeyWrapError("a key to wrap is 16, 24, 32... bytes")
    cipher = aes(kek, _ECB)
    out = bytearray(_IV + bytes(key))
    block = bytearray(16)
    for j in range(6):
        for i in range(1, n + 1):
            block[:8] = out[:8]
            block[8:] = out[8 * i:8 * i + 8]
            cipher.encrypt(block, block)
            _xor_t(block, n * j + i)
            out[:8] = block[:8]
            out[8 * i:8 * i + 8] = block[8:]
    return bytes(out)


def unwrap(kek, wrapped):
    """The key wrapped under kek; KeyWrapError if the integrity check fails (wrong KEK: the key
    was wrapped for another device; or damaged data)."""
    n = len(wrapped) // 8 - 1
    if n < 2 or len(wrapped) % 8:
        raise KeyWrapError("a wrapped key is 24, 32, 40... bytes")
    cipher = aes(kek, _ECB)  # a cryptolib object either encrypts or decrypts: this one decrypts
    out = bytearray(wrapped)
    block = bytearray(16)
    for j in range(5, -1, -1):
        for i in range(n, 0, -1):
            block[:8] = out[:8]
            _xor_t(block, n * j + i)
            block[8:] = out[8 * i:8 * i + 8]
            cipher.decrypt(block, block)
            out[:8] = block[:8]
            out[8 * i:8 * i + 8] = block[8:]
    diff = 0
    for i in range(8):
        diff |= out[i] ^ _IV[i]
    if diff:
        raise KeyWrapError("integrity check failed: wrapped for another device, or damaged")
    return bytes(out[8:])


def wrap_hex(kek, key_hex):
    """The stored form of a clear hex key: "W:" + hex of the wrapped key (uppercase)."""
    return PREFIX + hexlify(wrap(kek, unhexlify(key_hex))).decode().upper()


def unwrap_settings(values, device_id):
    """Unwrap the "W:" key settings of values in place with the device key of device_id()
    (called only when a key is wrapped). Returns the names of the keys that were stored in
    clear. SettingsError-like ValueError (KeyWrapError) names the key, never its value."""
    clear = []
    kek = None
    for name in KEY_SETTINGS:
        value = values.get(name)
        if not isinstance(value, str) or value == "":
            continue
        if not value.startswith(PREFIX):
            clear.append(name)
            continue
        if kek is None:
            if device_id is None:
                raise KeyWrapError("%s is wrapped but this board has no device ID" % name)
            kek = device_key(device_id())
        try:
            values[name] = hexlify(unwrap(kek, unhexlify(value[len(PREFIX):]))).decode().upper()
        except KeyWrapError as e:
            raise KeyWrapError("%s: %s" % (name, e))
        except ValueError:
            raise KeyWrapError("%s: not a wrapped key (W: and hex)" % name)
    return clear
