# portable: micropython
"""Settings: defaults, overrides from the flash config file, clear errors on bad input."""

from firmware import settings


def _write(text):
    path = "/tmp/pos_test_config.json"
    with open(path, "w") as f:
        f.write(text)
    return path


def _raises(fn, *args):
    try:
        fn(*args)
    except settings.SettingsError as e:
        return str(e)
    raise AssertionError("no SettingsError")


def test_missing_file_gives_defaults():
    assert settings.load("/tmp/pos_no_such_config.json") == settings.DEFAULTS


def test_file_overrides_defaults():
    values = settings.load(_write('{"response_timeout_ms": 2000, "merchant_name": "SHOP"}'))
    assert values["response_timeout_ms"] == 2000 and values["merchant_name"] == "SHOP"
    assert values["query_attempts"] == settings.DEFAULTS["query_attempts"]


def test_unknown_name_and_wrong_type_are_refused():
    assert "unknown setting" in _raises(settings.load, _write('{"respons_timeout_ms": 1}'))
    assert "must be int" in _raises(settings.load, _write('{"query_attempts": "3"}'))
    assert "must be bool" in _raises(settings.load, _write('{"heap_report": 1}'))
    assert "must be int" in _raises(settings.load, _write('{"port": true}'))
    assert "not valid JSON" in _raises(settings.load, _write('{"port": '))
    assert "JSON object" in _raises(settings.load, _write('[1]'))
