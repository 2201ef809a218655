"""Docs stay true to the code."""

from tools import settings_doc


def test_settings_doc_is_current():
    assert settings_doc.main(["--check"]) == 0, "run: python -m tools.settings_doc"
