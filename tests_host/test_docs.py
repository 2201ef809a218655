"""Docs stay true to the code."""

from firmware.settings import DEFAULTS
from tools import settings_doc


def test_every_setting_has_its_meaning_on_its_line():
    assert sorted(settings_doc.meanings()) == sorted(DEFAULTS)


def test_settings_doc_is_current():
    assert settings_doc.main(["--check"]) == 0, "run: python -m tools.settings_doc"


def test_wiring_doc_is_current():
    from tools import wiring

    assert wiring.main(["--check"]) == 0, "run: python -m tools.wiring"


def test_no_gpio_used_twice_on_a_board():
    from tools import wiring

    for module, _ in wiring.BOARDS:
        pins = wiring.pins_of(module)
        used = [pins["reader_cs"], pins["reader_rst"], pins["spi"]["sck"], pins["spi"]["mosi"],
                pins["spi"]["miso"], pins["i2c"]["sda"], pins["i2c"]["scl"], pins["uart"]["tx"],
                pins["uart"]["rx"]] + list(pins["keypad_rows"]) + list(pins["keypad_cols"])
        assert len(used) == len(set(used)), module
        assert not set(used) & {6, 7, 8, 9, 10, 11} or module != "esp32_devkitc", "flash pins"
