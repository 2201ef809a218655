# portable: micropython
"""Settings value rules (settings.validate): each rule's good and bad values, each refusal naming
the setting and never showing the value; load() applies them to config.json."""

from firmware import settings

SECRET = "5EC2E75EC2E75EC2E75EC2E75EC2E75E"

GOOD = (
    ("terminal_id", ("TERM0001", "A B-C~!0")),
    ("merchant_id", ("000000000012345", "MERCHANT 123456")),
    ("merchant_name", ("X", "DEMO CAFE", "A" * 24)),
    ("currency", ("EUR", "USD")),
    ("currency_code", ("978", "840", "000")),
    ("host", ("127.0.0.1", "acquirer.example.com", "a" * 253, "::1")),
    ("port", (1, 8583, 65535)),
    ("ntp_host", ("", "pool.ntp.org")),
    ("ntp_port", (1, 123, 65535)),
    ("utc_offset_min", (-720, 0, 60, 840)),
    ("mac_key", ("2B7E151628AED2A6ABF7158809CF4F3C", "2b7e151628aed2a6abf7158809cf4f3c")),
    ("pin_key", ("000102030405060708090A0B0C0D0E0F",)),
    ("classic_key", ("FFFFFFFFFFFF", "a0a1a2a3a4a5")),
    ("wifi_ssid", ("", "cafe", "x" * 32, "caf\u00e9" + "x" * 27)),
    ("wifi_password", ("", "12345678", "p" * 63, "pass word!", "0123456789abcdef" * 4)),
    ("board", ("sim", "esp32_devkitc", "esp32_s3_devkitc")),
    ("keypad", ("matrix", "tca8418")),
    ("keypad_addr", (52, 8, 119)),
    ("keypad_debounce_ms", (5, 30, 200)),
)

BAD = (
    ("terminal_id", ("", "TERM001", "TERM00011", "TERM\t001", "TERM\u00e901"), "exactly 8"),
    ("merchant_id", ("00000000001234", "0000000000123456", "00000000001234\n"), "exactly 15"),
    ("merchant_name", ("", "A" * 25, "CAF\u00c9 DEMO"), "1 to 24"),
    ("currency", ("eur", "EU", "EURO", "E1R"), "3 uppercase letters"),
    ("currency_code", ("97", "9780", "97A", "-97"), "3 digits"),
    ("host", ("", "a" * 254, "my host", "host\n"), "without spaces"),
    ("port", (0, -1, 65536), "1 to 65535"),
    ("ntp_host", (" ", "pool ntp"), "without spaces"),
    ("ntp_port", (0, 70000), "1 to 65535"),
    ("utc_offset_min", (-721, 841), "-720 to 840"),
    ("mac_key", (SECRET[:-1], SECRET + "0", SECRET[:-1] + "G", ""), "32 hex digits"),
    ("pin_key", (SECRET[:-2], " " + SECRET[1:]), "32 hex digits"),
    ("classic_key", ("FFFFFFFFFFF", "FFFFFFFFFFFFF", "FFFFFFFFFFFZ"), "12 hex digits"),
    ("wifi_ssid", ("x" * 33, "caf\u00e9" + "x" * 28), "32 bytes"),
    ("wifi_password", ("1234567", "p" * 64, "p" * 65, "pass\u00e9word", "0123456789abcdeg" * 4),
     "8 to 63"),
    ("board", ("", "boards.sim", "../sim", "Sim", "sim.py"), "board profile"),
    ("keypad", ("", "Matrix", "tca8419"), "matrix or tca8418"),
    ("keypad_addr", (0, 7, 120, 255), "7-bit I2C address"),
    ("keypad_debounce_ms", (0, 4, 201), "5 to 200 ms"),
)


def _refusal(values):
    try:
        settings.validate(values, "config.json")
    except settings.SettingsError as e:
        return str(e)
    raise AssertionError("no SettingsError for %r" % (sorted(values),))


def test_defaults_pass():
    settings.validate(settings.DEFAULTS)


def test_good_values_pass():
    for name, values in GOOD:
        for value in values:
            settings.validate({name: value})


def test_bad_values_name_the_setting_and_the_rule():
    for name, values, rule in BAD:
        for value in values:
            message = _refusal({name: value})
            assert message.startswith("config.json: %s must be " % name), message
            assert rule in message, message


def test_refusal_never_shows_the_value():
    for name, value in (("mac_key", SECRET[:-1]), ("pin_key", SECRET + "00"),
                        ("wifi_password", "sEcr3t!"), ("classic_key", SECRET[:11])):
        assert value not in _refusal({name: value})


def test_settings_without_a_rule_are_left_to_merge():
    settings.validate({"response_timeout_ms": 0, "reader": "anything"})


def test_load_applies_the_rules():
    path = "/tmp/pos_test_validate_config.json"
    with open(path, "w") as f:
        f.write('{"terminal_id": "T1", "mac_key": "%s"}' % SECRET)
    try:
        settings.load(path)
    except settings.SettingsError as e:
        assert str(e) == path + ": terminal_id must be exactly 8 printable ASCII characters"
        assert SECRET not in str(e)
    else:
        raise AssertionError("load accepted a bad terminal_id")
    with open(path, "w") as f:
        f.write('{"terminal_id": "TERM0042", "port": 9000}')
    values = settings.load(path)
    assert values["terminal_id"] == "TERM0042" and values["port"] == 9000
