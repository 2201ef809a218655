# portable: micropython
"""Start-up's boot errors: a profile that cannot be had is a settings error, the fallback
profile can show it, and the screen says it whole enough to act on."""

from firmware import screens, startup


def test_an_unknown_profile_is_a_settings_error_naming_it():
    try:
        startup._profile("esp32_nowhere")
    except startup.SettingsError as e:
        assert "esp32_nowhere" in str(e)
    else:
        raise AssertionError("no SettingsError")


def test_the_fallback_profile_exists_and_can_show_an_error():
    profile = startup._profile(startup.fallback_board())
    assert callable(profile.display_board)


def test_the_stopped_screen_wraps_words_and_says_what_to_do():
    lines = startup.stopped("host_ca: no file a_very_long_certificate_name.der on the flash")
    assert lines[0] == "CANNOT START" and lines[-1] == "Fix, then reset"
    assert all(len(line) <= screens.COLS for line in lines)
    assert "".join(lines).replace(" ", "").startswith(
        "CANNOTSTARThost_ca:nofilea_very_long_certificate_name.der")


def test_a_long_message_keeps_its_beginning():
    lines = startup.stopped("word " * 40)
    assert len(lines) <= 8 and lines[1] == "word word word"
