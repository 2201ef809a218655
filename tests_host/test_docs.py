"""Docs stay true to the code."""

from firmware.settings import DEFAULTS
from tools import settings_doc


def test_every_setting_has_its_meaning_on_its_line():
    assert sorted(settings_doc.meanings()) == sorted(DEFAULTS)


def test_settings_doc_is_current():
    assert settings_doc.main(["--check"]) == 0, "run: python -m tools.settings_doc"
