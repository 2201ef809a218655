# portable: micropython
"""Key material at rest (firmware/keystore.py): AES key wrap against RFC 3394's published
vectors, refusal of a wrong device key, the device key's derivation, wrapped key settings.

Runs on CPython (pytest) and on the MicroPython unix port (tests_host/mpsuite.py); the peer
checks against `cryptography` and the boot warning are in test_keystore_host.py."""

import os
from binascii import hexlify, unhexlify

from boards import sim
from firmware import keystore, settings, startup

# RFC 3394 section 4: (KEK, key data, wrapped). 4.1 and 4.3 wrap 128 bits of key data, 4.6
# 256 bits; 4.2, 4.4 and 4.5 need 192-bit AES keys, which the unix port's cryptolib lacks.
_VECTORS = (
    ("000102030405060708090A0B0C0D0E0F", "00112233445566778899AABBCCDDEEFF",
     "1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5"),
    ("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
     "00112233445566778899AABBCCDDEEFF",
     "64E8C3F9CE0F5BA263E9777905818A2A93C8191E7D6E8AE7"),
    ("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
     "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F",
     "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21"),
)
# The device key of the simulated board's fixed ID: pinned, so a change of the derivation
# (which would strand every provisioned board's keys) fails here first.
_SIM_KEK = "9059932C33B58E746D240BEB457D1EF2"
_MAC_KEY = settings.DEFAULTS["mac_key"]
_PIN_KEY = settings.DEFAULTS["pin_key"]
# The key settings this firmware has (DUKPT adds initial_key).
_IN_DEFAULTS = [name for name in keystore.KEY_SETTINGS if name in settings.DEFAULTS]


def _refused(fn, *args):
    try:
        fn(*args)
    except keystore.KeyWrapError as e:
        return str(e)
    raise AssertionError("no KeyWrapError")


def test_rfc3394_vectors_wrap_and_unwrap():
    for kek, key, wrapped in _VECTORS:
        kek, key, wrapped = unhexlify(kek), unhexlify(key), unhexlify(wrapped)
        assert keystore.wrap(kek, key) == wrapped
        assert keystore.unwrap(kek, wrapped) == key
        assert keystore.unwrap(kek, bytearray(wrapped)) == key


def test_wrong_kek_or_damaged_data_is_refused():
    kek, key, wrapped = (unhexlify(v) for v in _VECTORS[0])
    other = bytes([kek[0] ^ 1]) + kek[1:]
    assert "integrity check failed" in _refused(keystore.unwrap, other, wrapped)
    for i in (0, 8, len(wrapped) - 1):
        damaged = bytearray(wrapped)
        damaged[i] ^= 0x40
        assert "integrity check failed" in _refused(keystore.unwrap, kek, bytes(damaged))
    assert "24, 32, 40" in _refused(keystore.unwrap, kek, wrapped[:16])
    assert "24, 32, 40" in _refused(keystore.unwrap, kek, wrapped[:-1])
    assert "16, 24, 32" in _refused(keystore.wrap, kek, key[:8])


def test_device_key_is_stable_and_per_board():
    kek = keystore.device_key(sim.SIM_DEVICE_ID)
    assert len(kek) == 16
    assert hexlify(kek).decode().upper() == _SIM_KEK
    assert keystore.device_key(sim.SIM_DEVICE_ID) == kek
    assert keystore.device_key(b"\x02\x51\x4d\x00\x00\x02") != kek
    assert keystore.device_key(b"") != kek


def test_sim_board_device_id_from_the_environment():
    # The unix port has no machine.unique_id(): POS_DEVICE_ID (hex) or the fixed sim ID.
    if not hasattr(os, "putenv") and not hasattr(os, "environ"):
        return
    had = os.getenv("POS_DEVICE_ID")
    try:
        _setenv("POS_DEVICE_ID", "")
        assert sim.device_id() == sim.SIM_DEVICE_ID
        _setenv("POS_DEVICE_ID", "a4cf12345678")
        assert sim.device_id() == unhexlify("a4cf12345678")
        _setenv("POS_DEVICE_ID", "nothex")
        try:
            sim.device_id()
        except ValueError as e:
            assert "POS_DEVICE_ID" in str(e)
        else:
            raise AssertionError("bad POS_DEVICE_ID accepted")
    finally:
        _setenv("POS_DEVICE_ID", had or "")


def _setenv(name, value):
    if hasattr(os, "environ"):  # CPython
        os.environ[name] = value
    else:
        os.putenv(name, value)


def test_wrapped_key_settings_unwrap_and_clear_ones_are_named():
    kek = keystore.device_key(sim.SIM_DEVICE_ID)
    values = dict(settings.DEFAULTS)
    values["mac_key"] = keystore.wrap_hex(kek, _MAC_KEY)
    assert values["mac_key"].startswith("W:") and len(values["mac_key"]) == 50
    settings.validate(values)
    clear = keystore.unwrap_settings(values, lambda: sim.SIM_DEVICE_ID)
    assert values["mac_key"] == _MAC_KEY.upper()
    assert clear == _IN_DEFAULTS[1:]
    values["mac_key"] = keystore.wrap_hex(kek, _MAC_KEY)
    for name in _IN_DEFAULTS[1:]:
        values[name] = keystore.wrap_hex(kek, settings.DEFAULTS[name])
    calls = []

    def device_id():
        calls.append(1)
        return sim.SIM_DEVICE_ID

    assert keystore.unwrap_settings(values, device_id) == []
    assert values["pin_key"] == _PIN_KEY.upper() and len(calls) == 1
    # Nothing wrapped: the unique ID is not even asked for.
    assert keystore.unwrap_settings(dict(settings.DEFAULTS), None) == _IN_DEFAULTS


def test_a_key_wrapped_for_another_board_is_refused_by_name_never_by_value():
    kek = keystore.device_key(b"\x02\x51\x4d\x00\x00\x02")
    wrapped = keystore.wrap_hex(kek, _PIN_KEY)
    values = {"mac_key": _MAC_KEY, "pin_key": wrapped}
    message = _refused(keystore.unwrap_settings, values, lambda: sim.SIM_DEVICE_ID)
    assert message.startswith("pin_key: integrity check failed")
    assert wrapped[2:] not in message and _PIN_KEY not in message
    assert values["pin_key"] == wrapped  # no garbage key left behind
    message = _refused(keystore.unwrap_settings, {"mac_key": wrapped}, None)
    assert "mac_key" in message and "no device ID" in message


def test_validate_accepts_both_forms_only():
    kek = keystore.device_key(sim.SIM_DEVICE_ID)
    wrapped = keystore.wrap_hex(kek, _MAC_KEY)
    for good in (_MAC_KEY, _MAC_KEY.lower(), wrapped, wrapped.lower().replace("w:", "W:")):
        settings.validate({"mac_key": good, "pin_key": good})
    for bad in (wrapped[:-1], wrapped + "00", "w:" + wrapped[2:], "W:" + _MAC_KEY,
                "X:" + wrapped[2:], wrapped[:-1] + "G"):
        try:
            settings.validate({"mac_key": bad})
        except settings.SettingsError as e:
            assert "mac_key" in str(e) and bad not in str(e)
        else:
            raise AssertionError("accepted %s" % bad)


def test_load_settings_unwraps_config_json_keys():
    root = "/tmp/pos_keystore_test"
    try:
        os.mkdir(root)
    except OSError:
        pass
    kek = keystore.device_key(b"\xa4\xcf\x12\x34\x56\x78")
    with open(root + "/config.json", "w") as f:
        f.write('{"mac_key": "%s", "pin_key": "%s"}'
                % (keystore.wrap_hex(kek, _MAC_KEY), keystore.wrap_hex(kek, _PIN_KEY)))
    values = startup.load_settings(root, None, lambda: b"\xa4\xcf\x12\x34\x56\x78")
    assert values["mac_key"] == _MAC_KEY and values["pin_key"] == _PIN_KEY
    try:
        startup.load_settings(root, None, lambda: sim.SIM_DEVICE_ID)
    except settings.SettingsError as e:
        assert "mac_key: integrity check failed" in str(e)
    else:
        raise AssertionError("keys of another board loaded")
    # Board overrides (the simulated board's POS_CONFIG) may carry wrapped keys too.
    values = startup.load_settings(root, {"pin_key": keystore.wrap_hex(kek, "00" * 16)},
                               lambda: b"\xa4\xcf\x12\x34\x56\x78")
    assert values["pin_key"] == "00" * 16
    os.remove(root + "/config.json")
