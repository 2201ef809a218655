"""Key wrap against an independent implementation (`cryptography`'s RFC 3394 keywrap), and
the boot log's warning for keys stored in clear. CPython only; the portable half, with the
published vectors, is test_keystore.py."""

from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_wrap,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from boards import sim
from firmware import keystore, startup
from firmware.settings import DEFAULTS

_keks = st.sampled_from((16, 32)).flatmap(lambda n: st.binary(min_size=n, max_size=n))
_keys = st.integers(2, 8).flatmap(lambda n: st.binary(min_size=8 * n, max_size=8 * n))


@settings(max_examples=300, deadline=None)
@given(_keks, _keys)
def test_wrap_matches_cryptography(kek, key):
    wrapped = keystore.wrap(kek, key)
    assert wrapped == aes_key_wrap(kek, key)
    assert keystore.unwrap(kek, wrapped) == key
    assert aes_key_unwrap(kek, wrapped) == key


@settings(max_examples=100, deadline=None)
@given(_keks, _keks, _keys)
def test_both_refuse_a_wrong_kek(kek, other, key):
    if kek[:16] == other[:16] and len(kek) == len(other):
        return
    wrapped = aes_key_wrap(kek, key)
    try:
        aes_key_unwrap(other, wrapped)
        theirs = True
    except InvalidUnwrap:
        theirs = False
    try:
        keystore.unwrap(other, wrapped)
        ours = True
    except keystore.KeyWrapError:
        ours = False
    assert ours is theirs is False


def _config(tmp_path, values):
    import json

    (tmp_path / "config.json").write_text(json.dumps(values))
    return str(tmp_path)


def test_boot_warns_once_for_clear_keys_and_never_prints_them(tmp_path, capsys):
    startup.load_settings(_config(tmp_path, {"merchant_name": "SHOP"}), None, None)
    out = capsys.readouterr().out
    assert out.count("keys stored in clear") == 1
    names = [name for name in keystore.KEY_SETTINGS if name in DEFAULTS]
    assert "(%s)" % ", ".join(names) in out
    assert not any(DEFAULTS[name] in out for name in names)


def test_no_warning_when_every_key_is_wrapped(tmp_path, capsys):
    kek = keystore.device_key(sim.SIM_DEVICE_ID)
    wrapped = {name: keystore.wrap_hex(kek, DEFAULTS[name])
               for name in keystore.KEY_SETTINGS if name in DEFAULTS}
    values = startup.load_settings(_config(tmp_path, wrapped), None, sim.device_id)
    assert capsys.readouterr().out == ""
    for name in wrapped:
        assert values[name] == DEFAULTS[name].upper()


def test_a_partly_wrapped_config_names_only_the_clear_key(tmp_path, capsys):
    kek = keystore.device_key(sim.SIM_DEVICE_ID)
    config = {"mac_key": keystore.wrap_hex(kek, DEFAULTS["mac_key"])}
    startup.load_settings(_config(tmp_path, config), None, sim.device_id)
    out = capsys.readouterr().out
    assert "keys stored in clear (pin_key" in out and "mac_key" not in out
