"""Provisioning tool: every field checked before anything runs, nothing written on bad input,
secrets never printed, the exact mpremote command, the board-side install run on MicroPython."""

import hashlib
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap

from boards import sim
from firmware import keystore, settings, startup
from tools import provision

ROOT = Path(__file__).resolve().parents[1]
MICROPYTHON = Path(sys.executable).with_name("micropython")

MAC_KEY = "2B7E151628AED2A6ABF7158809CF4F3C"
# Secrets of the good file: none of these may ever appear in the tool's output.
PASSWORD = "Sw0rdfish-Provision"
PIN_KEY = "C0FFEE00112233445566778899AABBCC"
CLASSIC_KEY = "A0B1C2D3E4F5"
SECRETS = (PASSWORD, MAC_KEY, MAC_KEY.lower(), PIN_KEY, PIN_KEY.lower(), CLASSIC_KEY)


def aes_kcv(key_hex):
    """Computed here on its own, not with the tool's function."""
    enc = Cipher(algorithms.AES(bytes.fromhex(key_hex)), modes.ECB()).encryptor()
    return enc.update(b"\0" * 16).hex()[:6]


def good_values(**changes):
    values = {
        "board": "esp32_devkitc", "wifi_ssid": "shop-wifi", "wifi_password": PASSWORD,
        "host": "acquirer.example.com", "port": 8583, "terminal_id": "TERM0042",
        "merchant_id": "000000000054321", "merchant_name": "CORNER SHOP", "currency": "GBP",
        "currency_code": "826", "mac_key": MAC_KEY, "mac_key_kcv": aes_kcv(MAC_KEY),
        "pin_key": PIN_KEY, "pin_key_kcv": aes_kcv(PIN_KEY).upper(), "classic_key": CLASSIC_KEY,
        "ntp_host": "", "utc_offset_min": 60,
    }
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


DEVICE_ID = "a4cf12345678"


class FakeMpremote:
    """Records each call; by default answers like mpremote after a good write. The board's
    unique-ID query is answered with device_id (None: the board does not answer it)."""

    def __init__(self, returncode=0, stdout=None, stderr="", device_id=DEVICE_ID):
        self.calls = []  # the writes
        self.queries = []  # the unique-ID queries
        self.sent = []
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr
        self.device_id = device_id

    def __call__(self, cmd, **kwargs):
        if "cp" not in cmd:
            self.queries.append((cmd, kwargs))
            assert "DEVICE_ID" in cmd[-1] and cmd[-2] == "exec"
            if self.device_id is None:
                return subprocess.CompletedProcess(cmd, 1, "", "Traceback: no unique_id")
            return subprocess.CompletedProcess(cmd, 0, "DEVICE_ID %s\n" % self.device_id, "")
        self.calls.append((cmd, kwargs))
        data = Path(cmd[cmd.index("cp") + 2]).read_bytes()
        self.sent.append(data)
        stdout = self.stdout
        if stdout is None:
            stdout = "cp x :config.json.new\nsha256sum :config.json\n%s\n" % (
                hashlib.sha256(data).hexdigest())
        return subprocess.CompletedProcess(cmd, self.returncode, stdout, self.stderr)


def run_main(tmp_path, capsys, values, *args, runner=None):
    path = tmp_path / "provision.local.json"
    path.write_text(values if isinstance(values, str) else json.dumps(values))
    runner = runner or FakeMpremote()
    code = provision.main(["--port", "/dev/ttyUSB0", "--file", str(path), *args], runner=runner)
    out, err = capsys.readouterr()
    for secret in SECRETS:
        assert secret not in out and secret not in err, secret
    return code, out, err, runner


# Each rule: the field, a bad value, the words the refusal must carry.
BAD = [
    ("terminal_id", "TERM001", "exactly 8 printable ASCII"),
    ("terminal_id", "TERM\u00e901", "exactly 8 printable ASCII"),
    ("merchant_id", "12345", "exactly 15 printable ASCII"),
    ("merchant_name", "", "1 to 24 printable ASCII"),
    ("merchant_name", "X" * 25, "1 to 24 printable ASCII"),
    ("currency", "gbp", "3 uppercase letters"),
    ("currency_code", "82", "3 digits"),
    ("currency_code", "8A6", "3 digits"),
    ("host", "", "without spaces"),
    ("host", "acquirer .example.com", "without spaces"),
    ("host", "a" * 254, "1 to 253"),
    ("port", 0, "1 to 65535"),
    ("port", 65536, "1 to 65535"),
    ("port", "8583", "must be int"),
    ("ntp_host", "pool ntp.org", "without spaces"),
    ("utc_offset_min", -721, "-720 to 840"),
    ("utc_offset_min", 841, "-720 to 840"),
    ("mac_key", MAC_KEY[:-1], "exactly 32 hex digits"),
    ("mac_key", MAC_KEY[:-1] + "X", "exactly 32 hex digits"),
    ("pin_key", PIN_KEY + "00", "exactly 32 hex digits"),
    ("classic_key", CLASSIC_KEY + "0", "exactly 12 hex digits"),
    ("classic_key", CLASSIC_KEY[:-1] + "G", "exactly 12 hex digits"),
    ("wifi_ssid", "s" * 33, "at most 32 bytes"),
    ("wifi_ssid", "\u00e9" * 17, "at most 32 bytes"),
    ("wifi_password", PASSWORD[:7], "8 to 63 printable ASCII"),
    ("wifi_password", PASSWORD * 4, "8 to 63 printable ASCII"),
    ("wifi_password", PASSWORD + "\u00e9", "8 to 63 printable ASCII"),
    ("wifi_password", 12345678, "must be str"),
    ("board", "common", "board profile in boards/"),
    ("board", "__init__", "board profile in boards/"),
    ("board", "esp32_nosuch", "board profile in boards/"),
    ("board", "../boards/sim", "board profile"),
    ("mac_key_kcv", "000000", "does not match mac_key"),
    ("pin_key_kcv", "12345", "pin_key_kcv must be 6 hex digits"),
    ("pin_key_kcv", "12345G", "pin_key_kcv must be 6 hex digits"),
    ("pin_key_kcv", 123456, "pin_key_kcv must be 6 hex digits"),
    ("classic_key_kcv", "000000", "unknown setting 'classic_key_kcv'"),
    ("terminal", "TERM0042", "unknown setting 'terminal'"),
]


@pytest.mark.parametrize("field,value,words", BAD)
def test_bad_field_is_named_and_nothing_runs(tmp_path, capsys, field, value, words):
    code, out, err, runner = run_main(tmp_path, capsys, good_values(**{field: value}))
    assert code == 2
    assert runner.calls == [] and runner.queries == []
    assert field in err and words in err and "nothing written" in err
    if field in ("wifi_password", "mac_key", "pin_key", "classic_key"):
        assert str(value) not in out + err
    assert "verified" not in out


GOOD = [
    ("wifi_password", ""), ("wifi_password", "12345678"), ("wifi_password", "p" * 63),
    ("wifi_password", "0123456789abcdef" * 4), ("wifi_ssid", ""), ("wifi_ssid", "\u00e9" * 16),
    ("host", "10.0.0.2"), ("ntp_host", "pool.ntp.org"), ("port", 1), ("port", 65535),
    ("utc_offset_min", -720), ("utc_offset_min", 840), ("merchant_name", "X" * 24),
    ("board", "sim"), ("board", "esp32_s3_devkitc"), ("mac_key_kcv", None),
    ("pin_key_kcv", None), ("mac_key", MAC_KEY.lower()),
]


@pytest.mark.parametrize("field,value", GOOD)
def test_good_values_are_written(tmp_path, capsys, field, value):
    code, out, err, runner = run_main(tmp_path, capsys, good_values(**{field: value}))
    assert code == 0, err
    assert len(runner.calls) == 1 and "verified" in out


@pytest.mark.parametrize("missing", [("host",), ("terminal_id",), ("host", "terminal_id")])
def test_host_and_terminal_id_are_required(tmp_path, capsys, missing):
    """Their defaults are the simulated board's: a board left with them pays to itself as
    TERM0001."""
    code, out, err, runner = run_main(tmp_path, capsys,
                                      good_values(**{name: None for name in missing}))
    assert code == 2 and runner.calls == [] and runner.queries == []
    assert len(err.strip().splitlines()) == 1 and "nothing written" in err
    for name in missing:
        assert "%s missing: give" % name in err
    with pytest.raises(provision.InputError, match=missing[0]):
        provision.config_values(good_values(**{name: None for name in missing}))


def test_kcv_is_the_classic_aes_check_value():
    assert aes_kcv(MAC_KEY).upper() == "7DF76B"
    assert provision.kcv(MAC_KEY) == "7DF76B"
    assert provision.kcv(PIN_KEY) == aes_kcv(PIN_KEY).upper()


def test_kcv_mismatch_and_kcv_without_key(tmp_path, capsys):
    code, _, err, runner = run_main(tmp_path, capsys,
                                    good_values(pin_key_kcv=aes_kcv(MAC_KEY)))
    assert code == 2 and runner.calls == []
    assert "pin_key_kcv does not match pin_key" in err
    code, _, err, runner = run_main(tmp_path, capsys, good_values(mac_key=None))
    assert code == 2 and runner.calls == [] and "mac_key_kcv given without mac_key" in err


def _unwrapped(text, device_id=DEVICE_ID):
    assert text.startswith("W:") and len(text) == 50
    return aes_key_unwrap(keystore.device_key(bytes.fromhex(device_id)),
                          bytes.fromhex(text[2:])).hex().upper()


def test_success_writes_only_the_given_fields_and_shows_secrets_masked(tmp_path, capsys):
    values = good_values()
    code, out, err, runner = run_main(tmp_path, capsys, values)
    assert code == 0, err
    (cmd, kwargs), = runner.calls
    (query, _), = runner.queries
    assert query[4] == "/dev/ttyUSB0" and "boards.esp32_devkitc" in query[-1]
    written = json.loads(runner.sent[0])
    expected = {k: v for k, v in values.items() if not k.endswith("_kcv")}
    assert list(written) == list(expected)
    # The AES keys are wrapped for this board (cryptography unwraps them: a peer check), the
    # rest is as given; the KCVs were checked on the clear keys.
    assert _unwrapped(written["mac_key"]) == MAC_KEY and _unwrapped(written["pin_key"]) == PIN_KEY
    assert {k: v for k, v in written.items() if k not in ("mac_key", "pin_key")} == \
        {k: v for k, v in expected.items() if k not in ("mac_key", "pin_key")}
    (tmp_path / "config.json").write_bytes(runner.sent[0])
    assert settings.load(str(tmp_path / "config.json")) == dict(settings.DEFAULTS, **written)
    # The firmware's load unwraps them with the board's ID, and refuses them on another board.
    loaded = startup.load_settings(str(tmp_path), None, lambda: bytes.fromhex(DEVICE_ID))
    assert loaded == dict(settings.DEFAULTS, **expected)
    with pytest.raises(settings.SettingsError, match="integrity check failed"):
        startup.load_settings(str(tmp_path), None, lambda: bytes.fromhex("a4cf12345679"))
    assert kwargs["capture_output"] and kwargs["text"]
    assert not Path(cmd[cmd.index("cp") + 2]).exists(), "the temporary file is removed"
    digest = hashlib.sha256(runner.sent[0]).hexdigest()
    assert "verified" in out and digest in out
    assert "mac_key: **** (KCV 7DF76B, wrapped for device %s)" % DEVICE_ID in out
    assert "pin_key: **** (KCV %s, wrapped" % aes_kcv(PIN_KEY).upper() in out
    assert "classic_key: ****" in out and "wifi_password: ********" in out
    assert 'terminal_id: "TERM0042"' in out
    assert written["mac_key"] not in out and written["pin_key"] not in out


def test_the_mpremote_command(tmp_path):
    cmd = provision.build_command("socket://127.0.0.1:7000", "/tmp/c.json", "ab" * 32)
    assert cmd[:6] == [sys.executable, "-m", "mpremote", "connect", "socket://127.0.0.1:7000",
                       "resume"]
    assert cmd[6:11] == ["fs", "cp", "-f", "/tmp/c.json", ":config.json.new"]
    assert cmd[11:13] == ["+", "exec"] and "ab" * 32 in cmd[13]
    assert cmd[14:] == ["+", "fs", "sha256sum", ":config.json"]
    assert "soft-reset" not in cmd and "reset" not in cmd
    with_reset = provision.build_command("COM3", "/tmp/c.json", "ab" * 32, reset=True)
    assert with_reset == cmd[:4] + ["COM3"] + cmd[5:] + ["+", "reset"]


def test_dry_run_prints_the_exact_command_and_writes_nothing(tmp_path, capsys):
    values = good_values()
    code, out, err, runner = run_main(tmp_path, capsys, values, "--dry-run", "--reset")
    assert code == 0, err
    assert runner.calls == [] and runner.queries == []
    query = shlex.join(provision.device_id_command("/dev/ttyUSB0", "esp32_devkitc"))
    assert "  " + query + "\n" in out
    assert "SHA-256 known once the keys are wrapped" in out
    assert "mac_key: **** (KCV 7DF76B, wrapped for device (the board's ID))" in out
    assert "wifi_password: ********" in out
    # With the board's ID given, the exact file and its hash.
    code, out, err, runner = run_main(tmp_path, capsys, values, "--dry-run", "--reset",
                                      "--device-id", DEVICE_ID)
    assert code == 0 and runner.calls == [] and runner.queries == []
    config = {k: v for k, v in values.items() if not k.endswith("_kcv")}
    wrapped = provision.wrap_keys(config, bytes.fromhex(DEVICE_ID))
    assert _unwrapped(wrapped["mac_key"]) == MAC_KEY
    digest = hashlib.sha256(provision.config_bytes(wrapped)).hexdigest()
    # The reset is deploy's, which shows the boot log, not mpremote's `reset`.
    command = shlex.join(provision.build_command("/dev/ttyUSB0", "TMPFILE", digest, False))
    assert "  " + command + "\n" in out
    assert "then reset the board and show its boot log (8 s)" in out
    assert "mac_key: **** (KCV 7DF76B, wrapped for device %s)" % DEVICE_ID in out
    assert wrapped["mac_key"] not in out


def test_dry_run_refuses_bad_input_too(tmp_path, capsys):
    code, out, err, runner = run_main(tmp_path, capsys, good_values(port=0), "--dry-run")
    assert code == 2 and runner.calls == [] and "port must be 1 to 65535" in err


def test_unreadable_or_malformed_file(tmp_path, capsys):
    runner = FakeMpremote()
    code = provision.main(["--port", "COM3", "--file", str(tmp_path / "missing.json")],
                          runner=runner)
    assert code == 2 and runner.calls == []
    assert "provision.template.json" in capsys.readouterr().err
    secret_json = '{"wifi_password": "%s", "mac_key": "%s",' % (PASSWORD, MAC_KEY)
    code, _, err, runner = run_main(tmp_path, capsys, secret_json)
    assert code == 2 and runner.calls == [] and "not valid JSON" in err
    code, _, err, runner = run_main(tmp_path, capsys, "[1, 2]")
    assert code == 2 and runner.calls == [] and "JSON object" in err


def test_mpremote_failure_is_reported_without_secrets(tmp_path, capsys):
    # Whatever mpremote says (here: an echo of the file), the keys and password are scrubbed.
    echo = "Traceback: %s %s %s %s" % (PASSWORD, MAC_KEY, PIN_KEY.lower(), CLASSIC_KEY)
    code, out, err, runner = run_main(tmp_path, capsys, good_values(),
                                      runner=FakeMpremote(returncode=1, stdout=echo))
    assert code == 1 and "mpremote failed" in err and "Traceback" in err
    assert "verified" not in out


def test_mpremote_timeout_is_a_write_error(tmp_path, capsys):
    def runner(cmd, **kwargs):
        raise subprocess.TimeoutExpired(cmd, kwargs["timeout"])

    code, out, err, _ = run_main(tmp_path, capsys, good_values(), runner=runner)
    assert code == 1 and "did not finish" in err and "verified" not in out


def test_read_back_mismatch_is_refused(tmp_path, capsys):
    code, out, err, runner = run_main(tmp_path, capsys, good_values(),
                                      runner=FakeMpremote(stdout="%s\n" % ("0" * 64)))
    assert code == 1 and "does not read back as sent" in err and "verified" not in out
    code, out, err, runner = run_main(tmp_path, capsys, good_values(),
                                      runner=FakeMpremote(stdout="cp x :config.json.new\n"))
    assert code == 1 and "does not read back as sent" in err


def test_provision_function_for_the_virtual_board():
    runner = FakeMpremote()
    digest = provision.provision("socket://127.0.0.1:7000", good_values(), runner=runner,
                                 reset=True)
    (cmd, _), = runner.calls
    assert digest == hashlib.sha256(runner.sent[0]).hexdigest()
    assert cmd[4] == "socket://127.0.0.1:7000" and cmd[-2:] == ["+", "reset"]
    assert len(runner.queries) == 1
    # Given the board's ID, it is not asked again.
    provision.provision("COM3", good_values(), runner=runner,
                        device_id=bytes.fromhex(DEVICE_ID))
    assert len(runner.queries) == 1 and len(runner.calls) == 2
    assert _unwrapped(json.loads(runner.sent[1])["pin_key"]) == PIN_KEY
    with pytest.raises(provision.InputError, match="terminal_id"):
        provision.provision("COM3", good_values(terminal_id="T"), runner=runner)
    assert len(runner.calls) == 2


def test_no_unique_id_or_another_board_writes_nothing(tmp_path, capsys):
    runner = FakeMpremote(device_id=None)
    code, out, err, runner = run_main(tmp_path, capsys, good_values(), runner=runner)
    assert code == 1 and "cannot read the board's unique ID" in err and runner.calls == []
    code, out, err, runner = run_main(tmp_path, capsys, good_values(), "--device-id",
                                      "a4cf12345679")
    assert code == 1 and "not a4cf12345679" in err and runner.calls == []
    code, out, err, runner = run_main(tmp_path, capsys, good_values(), "--device-id", "xyz")
    assert code == 2 and "--device-id must be hex" in err and runner.queries == []
    # Without keys in the file there is nothing to wrap: no query.
    values = {k: v for k, v in good_values().items() if "_key" not in k}
    code, out, err, runner = run_main(tmp_path, capsys, values)
    assert code == 0 and runner.queries == [] and len(runner.calls) == 1


def test_a_wrapped_key_in_the_file_is_refused(tmp_path, capsys):
    wrapped = provision.wrap_keys({"mac_key": MAC_KEY}, bytes.fromhex(DEVICE_ID))["mac_key"]
    code, out, err, runner = run_main(tmp_path, capsys,
                                      good_values(mac_key=wrapped, mac_key_kcv=None))
    assert code == 2 and "mac_key must be given in clear" in err and runner.queries == []


@pytest.mark.skipif(not MICROPYTHON.exists(), reason="no MicroPython unix port")
def test_device_id_code_on_micropython():
    """What the board runs: the unique ID through the board profile, as the firmware gets it;
    on the simulated (virtual) board, POS_DEVICE_ID or the fixed sim ID."""
    import os

    code = provision.device_id_code("sim")
    for env, expected in (({"POS_DEVICE_ID": DEVICE_ID}, DEVICE_ID),
                          ({"POS_DEVICE_ID": ""}, sim.SIM_DEVICE_ID.hex())):
        proc = subprocess.run([str(MICROPYTHON), "-c", code], cwd=ROOT, capture_output=True,
                              text=True, timeout=30, env=dict(os.environ, **env))
        assert proc.stdout == "DEVICE_ID %s\n" % expected, proc.stderr
        assert provision.read_device_id("p", "sim", lambda cmd, proc=proc, **kw: proc) == \
            bytes.fromhex(expected)


def test_template_has_test_values_only_and_is_documented():
    template = json.loads((ROOT / "provision.template.json").read_text())
    config = provision.config_values(template, "provision.template.json")
    for key in ("mac_key", "pin_key", "classic_key"):
        assert config[key] == settings.DEFAULTS[key], "the template carries the test keys"
    for field in ("wifi_ssid", "wifi_password", "host", "port", "terminal_id", "merchant_id",
                  "merchant_name", "currency", "currency_code", "mac_key", "pin_key",
                  "classic_key", "board", "mac_key_kcv", "pin_key_kcv"):
        assert field in template, field
    doc = (ROOT / "docs" / "provisioning.md").read_text()
    for field in template:
        assert "| `%s` |" % field in doc, field


def test_the_template_file_is_not_ignored_and_the_local_file_is():
    ignored = subprocess.run(["git", "check-ignore", "-q", "provision.local.json"], cwd=ROOT)
    assert ignored.returncode == 0
    ignored = subprocess.run(["git", "check-ignore", "-q", "provision.template.json"], cwd=ROOT)
    assert ignored.returncode == 1


@pytest.mark.skipif(not MICROPYTHON.exists(), reason="no MicroPython unix port")
def test_install_code_on_micropython(tmp_path):
    """The code the board runs: installs a matching file over config.json, refuses (and
    removes) one whose hash differs, leaving the old config.json in place."""
    data = provision.config_bytes({"terminal_id": "TERM0042"})
    (tmp_path / "config.json").write_text('{"terminal_id": "TERM0001"}')
    (tmp_path / "config.json.new").write_bytes(data)
    (tmp_path / "install.py").write_text(provision.install_code(hashlib.sha256(data).hexdigest()))
    proc = subprocess.run([str(MICROPYTHON), "install.py"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "config.json").read_bytes() == data
    assert not (tmp_path / "config.json.new").exists()
    (tmp_path / "config.json.new").write_bytes(data[:-2])
    proc = subprocess.run([str(MICROPYTHON), "install.py"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode != 0 and "SHA-256 mismatch" in proc.stdout + proc.stderr
    assert (tmp_path / "config.json").read_bytes() == data
    assert not (tmp_path / "config.json.new").exists()


# ---- the host's CA certificate (--ca) ------------------------------------------------------


class CaMpremote(FakeMpremote):
    """A write with the host_ca file first: every copied file kept by its board name, and the
    read-back answered for each (or with `ca_digest` for the CA's, to fake a bad read-back)."""

    def __init__(self, ca_digest=None, **kwargs):
        super().__init__(**kwargs)
        self.files = {}
        self.ca_digest = ca_digest

    def __call__(self, cmd, **kwargs):
        if "cp" not in cmd:
            return super().__call__(cmd, **kwargs)
        self.calls.append((cmd, kwargs))
        lines = []
        for i, word in enumerate(cmd):
            if word == "cp":
                self.files[cmd[i + 3][1:-len(".new")]] = Path(cmd[i + 2]).read_bytes()
            if word == "sha256sum":
                data = self.files[cmd[i + 1][1:]]
                digest = hashlib.sha256(data).hexdigest()
                if cmd[i + 1] != ":config.json" and self.ca_digest:
                    digest = self.ca_digest
                lines.append(digest)
        return subprocess.CompletedProcess(cmd, 0, "\n".join(lines) + "\n", "")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    from tools.host import tlsca

    return tlsca.write_pki(tmp_path_factory.mktemp("pki"))


def test_ca_in_pem_or_der_is_written_as_der_before_the_config(tmp_path, capsys, pki):
    der = pki["ca.der"].read_bytes()
    for given in (pki["ca.pem"], pki["ca.der"]):
        runner = CaMpremote()
        code, out, err, _ = run_main(tmp_path, capsys, good_values(), "--ca", str(given),
                                     runner=runner)
        assert code == 0, err
        (cmd, _), = runner.calls
        assert runner.files["host_ca.der"] == der
        first = cmd.index("cp")
        assert cmd[first + 3] == ":host_ca.der.new" and cmd.index(":config.json.new") > first
        assert cmd[first + 4:first + 6] == ["+", "exec"]
        assert hashlib.sha256(der).hexdigest() in cmd[first + 6]
        assert 'os.rename("host_ca.der.new","host_ca.der")' in cmd[first + 6]
        assert "host_ca: host_ca.der, %d bytes of DER (SHA-256 %s)" % (
            len(der), hashlib.sha256(der).hexdigest()) in out
        assert not Path(cmd[first + 2]).exists(), "the temporary CA file is removed"


def test_ca_goes_to_the_file_the_host_ca_setting_names(tmp_path, capsys, pki):
    runner = CaMpremote()
    code, _, err, _ = run_main(tmp_path, capsys, good_values(host_ca="acquirer-ca.der"),
                               "--ca", str(pki["ca.der"]), runner=runner)
    assert code == 0, err
    assert set(runner.files) == {"acquirer-ca.der", "config.json"}


def test_without_ca_the_summary_says_none_was_written(tmp_path, capsys):
    code, out, _, runner = run_main(tmp_path, capsys, good_values())
    assert code == 0 and "host_ca: not written (no --ca)" in out


def test_a_host_certificate_or_garbage_is_not_a_ca(tmp_path, capsys, pki):
    junk = tmp_path / "junk.der"
    junk.write_bytes(b"\x30\x03\x02\x01\x00")
    for given, words in ((pki["host.pem"], "not a CA certificate"),
                         (junk, "not a certificate (PEM or DER)"),
                         (tmp_path / "missing.der", "cannot read")):
        runner = CaMpremote()
        code, _, err, _ = run_main(tmp_path, capsys, good_values(), "--ca", str(given),
                                   runner=runner)
        assert code == 2 and words in err and "nothing written" in err, err
        assert runner.calls == [] and runner.queries == []


def test_an_expired_ca_is_refused(tmp_path, capsys):
    from tools.host import tlsca

    cert, key = tlsca.issue_ca(days=1)
    old = tlsca.x509.CertificateBuilder().subject_name(cert.subject).issuer_name(cert.subject) \
        .public_key(key.public_key()).serial_number(1) \
        .not_valid_before(cert.not_valid_before_utc.replace(year=2020)) \
        .not_valid_after(cert.not_valid_before_utc.replace(year=2021)) \
        .add_extension(tlsca.x509.BasicConstraints(ca=True, path_length=0), critical=True) \
        .sign(key, tlsca.hashes.SHA256())
    path = tmp_path / "old.der"
    path.write_bytes(old.public_bytes(tlsca.serialization.Encoding.DER))
    code, _, err, runner = run_main(tmp_path, capsys, good_values(), "--ca", str(path),
                                    runner=CaMpremote())
    assert code == 2 and "not valid now" in err and runner.calls == []


def test_a_ca_that_does_not_read_back_is_a_write_error(tmp_path, capsys, pki):
    code, _, err, _ = run_main(tmp_path, capsys, good_values(), "--ca", str(pki["ca.der"]),
                               runner=CaMpremote(ca_digest="00" * 32))
    assert code == 1 and "host_ca.der on the board does not read back as sent" in err


def test_dry_run_with_ca_prints_its_install(tmp_path, capsys, pki):
    code, out, err, runner = run_main(tmp_path, capsys, good_values(), "--dry-run",
                                      "--device-id", DEVICE_ID, "--ca", str(pki["ca.pem"]))
    assert code == 0 and runner.calls == [] and runner.queries == []
    assert "CAFILE :host_ca.der.new" in out and "host_ca: host_ca.der" in out


@pytest.mark.skipif(not MICROPYTHON.exists(), reason="no MicroPython unix port")
def test_ca_install_code_on_micropython(tmp_path, pki):
    der = pki["ca.der"].read_bytes()
    (tmp_path / "host_ca.der.new").write_bytes(der)
    (tmp_path / "install.py").write_text(provision.install_code(
        hashlib.sha256(der).hexdigest(), "host_ca.der.new", "host_ca.der"))
    proc = subprocess.run([str(MICROPYTHON), "install.py"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "host_ca.der").read_bytes() == der
    assert not (tmp_path / "host_ca.der.new").exists()


@pytest.mark.skipif(not MICROPYTHON.exists(), reason="no MicroPython unix port")
def test_reset_shows_the_boot_log_with_the_new_settings(tmp_path):
    """make provision (--reset) on the virtual board: after the write the board is reset as make
    deploy resets it, and what it prints at boot, reading the new config.json, is shown."""
    board = tmp_path / "board"
    board.mkdir()
    (board / "main.py").write_text(
        'import json\nprint("boot: terminal", json.load(open("config.json"))["terminal_id"])\n')
    vboard = subprocess.Popen([sys.executable, "-m", "tools.vboard", "--dir", str(board),
                               "--romfs-kb", "0"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        url = vboard.stdout.readline().strip()
        assert url.startswith("socket://"), url
        local = tmp_path / "provision.local.json"
        local.write_text(json.dumps({"board": "sim", "host": "10.0.0.2",
                                     "terminal_id": "TERM0077"}))
        proc = subprocess.run([sys.executable, "-m", "tools.provision", "--port", url, "--file",
                               str(local), "--reset", "--log-seconds", "120", "--until",
                               "boot: terminal TERM0077"], cwd=ROOT, capture_output=True,
                              text=True, timeout=300)
    finally:
        vboard.terminate()
        vboard.wait(30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verified" in proc.stdout
    log = proc.stdout.split("--- boot log", 1)[1]
    assert "boot: terminal TERM0077" in log and "--- end of boot log ---" in log
    assert "no firmware to boot with these settings: deploy it" in log
