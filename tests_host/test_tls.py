"""TLS to the host, with the host's certificate verified (settings host_tls, host_ca, host_name).

The real runtime (firmware/app.py with the real core, journal and host link) runs on the
MicroPython unix port (tests_host/tls_terminal.py: one purchase on a board of fakes) against
the host simulator serving TLS (HostSimulator(tls=...)); certificates come from tools/host/tlsca
made fresh in a temporary folder. Both sides are checked: what the terminal showed and logged,
and what the host's ledger holds. Two runs repeat the good and the refused case on CPython,
whose ssl module reports the same failures differently.
"""

import asyncio
import datetime
import json
import os
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from firmware import screens
from firmware.settings import DEFAULTS, SettingsError, validate
from tools.host import tlsca
from tools.host.server import HostSimulator, server_tls

REPO = Path(__file__).resolve().parents[1]
MICROPYTHON = REPO / ".venv" / "bin" / "micropython"
RUNNER = REPO / "tests_host" / "tls_terminal.py"
HEAPSIZE = 200000  # the unix port's stand-in for an ESP32 without PSRAM (Makefile HEAP)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """The test CA with its host certificate; a second CA with its own; an expired host
    certificate from the first CA; a certificate from the first CA for another name."""
    base = tmp_path_factory.mktemp("pki")
    good = tlsca.write_pki(base / "good")
    ca = (tlsca.x509.load_pem_x509_certificate(good["ca.pem"].read_bytes()),
          serialization.load_pem_private_key(good["ca.key.pem"].read_bytes(), None))
    other = tlsca.write_pki(base / "other")
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=30)
    expired = tlsca.write_pki(base / "expired", ca=ca,
                              host=tlsca.issue_host(*ca, days=10, not_before=past))
    elsewhere = tlsca.write_pki(base / "elsewhere", ca=ca,
                                host=tlsca.issue_host(*ca, names=("pos.example",), ips=()))
    return {"good": good, "other": other, "expired": expired, "elsewhere": elsewhere}


def _serving(files):
    return (str(files["host.pem"]), str(files["host.key.pem"]))


def purchase(tmp_path, *, serve, ca=None, settings=None, python=None, ca_bytes=None):
    """One purchase by the runtime against a host simulator serving `serve` (a pki entry, or
    None for plain TCP); the board's flash holds `ca`'s ca.der as host_ca.der. Returns the
    runner's result and the host's ledger."""
    async def run():
        host = HostSimulator(str(tmp_path / "host.db"), port=0,
                             tls=_serving(serve) if serve else None)
        await host.start()
        root = tmp_path / "flash"
        root.mkdir(exist_ok=True)
        if ca is not None or ca_bytes is not None:
            (root / "host_ca.der").write_bytes(ca_bytes if ca_bytes is not None
                                               else ca["ca.der"].read_bytes())
        values = {"port": host.port, "connect_timeout_ms": 2000}
        values.update(settings or {})
        cmd = ([python, str(RUNNER)] if python else
               [str(MICROPYTHON), "-X", "heapsize=%d" % HEAPSIZE, str(RUNNER)])
        # CPython takes cryptolib and micropython from the shims, as conftest.py arranges.
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            (str(REPO), str(REPO / "tests_host" / "shims"))))
        proc = await asyncio.create_subprocess_exec(
            *cmd, json.dumps({"settings": values, "root": str(root)}), cwd=str(REPO), env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            ledger = host.export_ledger()
            await host.stop()
        text = out.decode()
        lines = [line for line in text.splitlines() if line.startswith("RESULT ")]
        assert lines, text
        return json.loads(lines[-1][len("RESULT "):]), ledger

    return asyncio.run(run())


def _approved(result, ledger):
    assert result["error"] is None, result
    assert ["APPROVED", "EUR 12.50"] == result["screens"][-3][:2], result["screens"]
    assert len(result["receipts"]) == 1
    assert [(t["amount"], t["rc"]) for t in ledger] == [(1250, "00")]


def _refused(result, ledger, words):
    assert result["error"] is None, result
    assert ["Host unreachable", "Not charged"] in [s[:2] for s in result["screens"]]
    assert not result["receipts"]
    assert ledger == []  # the host never saw a request: nothing charged
    events = [line for line in result["log"] if line.startswith("security: ")]
    assert events and "host certificate refused" in events[0], result["log"]
    assert words in events[0], events
    assert not any(line.endswith("approved") for line in result["log"])


# ---- on the MicroPython unix port -------------------------------------------------------------

def test_purchase_over_tls_with_the_host_certificate_verified(tmp_path, pki):
    result, ledger = purchase(tmp_path, serve=pki["good"], ca=pki["good"])
    _approved(result, ledger)
    assert result["log"][0].startswith("host link: TLS to 127.0.0.1:")
    assert result["log"][0].endswith(", certificate from host_ca.der's CA for localhost")
    assert not any("PLAIN" in line for line in result["log"])
    assert screens.PLAIN_WARNING not in result["screens"][0]


def test_host_certificate_from_another_ca_is_refused(tmp_path, pki):
    result, ledger = purchase(tmp_path, serve=pki["other"], ca=pki["good"])
    _refused(result, ledger, "not correctly signed by the trusted CA")


def test_host_certificate_for_another_name_is_refused(tmp_path, pki):
    result, ledger = purchase(tmp_path, serve=pki["elsewhere"], ca=pki["good"])
    _refused(result, ledger, "Common Name (CN) does not match")


def test_wrong_host_name_setting_is_refused(tmp_path, pki):
    result, ledger = purchase(tmp_path, serve=pki["good"], ca=pki["good"],
                              settings={"host_name": "acquirer.example"})
    _refused(result, ledger, "does not match")


def test_host_name_may_be_the_certificate_s_ip_address(tmp_path, pki):
    result, ledger = purchase(tmp_path, serve=pki["good"], ca=pki["good"],
                              settings={"host_name": "127.0.0.1"})
    _approved(result, ledger)


def test_expired_host_certificate_is_refused(tmp_path, pki):
    # mbedtls checks the validity dates on the unix port (MBEDTLS_HAVE_TIME_DATE); on a board
    # that depends on its clock being set (NTP), which is why the clock is set at boot.
    result, ledger = purchase(tmp_path, serve=pki["expired"], ca=pki["expired"])
    _refused(result, ledger, "validity has expired")


def test_a_host_that_does_not_speak_tls_fails_the_handshake_and_gets_nothing(tmp_path, pki):
    # The plain host reads the ClientHello as a frame length (0x1603: too long) and closes.
    result, ledger = purchase(tmp_path, serve=None, ca=pki["good"])
    assert ["Host unreachable", "Not charged"] in [s[:2] for s in result["screens"]]
    assert ledger == [] and not result["receipts"]
    assert any(line.startswith("security: TLS handshake with the host failed (purchase: ")
               for line in result["log"]), result["log"]


def test_plain_works_and_the_idle_screen_warns(tmp_path):
    result, ledger = purchase(tmp_path, serve=None, settings={"host_tls": "plain"})
    _approved(result, ledger)
    assert result["log"][0].startswith("security: host link is PLAIN TCP")
    idle = [s for s in result["screens"] if s[0] == DEFAULTS["merchant_name"]]
    assert idle and all(s[-1] == "!PLAIN TCP DEMO!" and len(s) == 8 for s in idle), idle


def test_missing_ca_file_is_a_settings_error_at_boot(tmp_path):
    result, ledger = purchase(tmp_path, serve=None)
    assert result["error"].startswith("host_ca: no file ") and "host_ca.der" in result["error"]
    assert result["screens"] == [] and ledger == []


def test_a_ca_file_that_is_not_der_is_a_settings_error_at_boot(tmp_path, pki):
    result, _ = purchase(tmp_path, serve=None, ca_bytes=pki["good"]["ca.pem"].read_bytes())
    assert result["error"].endswith("host_ca.der is not a DER certificate"), result


# ---- the same runtime on CPython's ssl --------------------------------------------------------

def test_cpython_purchase_over_tls(tmp_path, pki):
    result, ledger = purchase(tmp_path, serve=pki["good"], ca=pki["good"], python=sys.executable)
    _approved(result, ledger)


def test_cpython_refuses_another_ca(tmp_path, pki):
    result, ledger = purchase(tmp_path, serve=pki["other"], ca=pki["good"],
                              python=sys.executable)
    _refused(result, ledger, "CERTIFICATE_VERIFY_FAILED")


# ---- the parts -------------------------------------------------------------------------------

def test_tlsca_is_idempotent_and_remakes_what_is_broken(tmp_path):
    files, made = tlsca.ensure(tmp_path / "certs")
    assert made
    first = {name: path.read_bytes() for name, path in files.items()}
    files, made = tlsca.ensure(tmp_path / "certs")
    assert not made and first == {name: path.read_bytes() for name, path in files.items()}
    files["host.key.pem"].write_bytes(b"broken")
    _, made = tlsca.ensure(tmp_path / "certs")
    assert made
    cert = tlsca.x509.load_der_x509_certificate(files["host.der"].read_bytes())
    san = cert.extensions.get_extension_for_class(tlsca.x509.SubjectAlternativeName).value
    assert san.get_values_for_type(tlsca.x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(tlsca.x509.IPAddress)] == ["127.0.0.1"]
    assert oct(files["host.key.pem"].stat().st_mode & 0o777) == "0o600"


def test_tlsca_command_writes_into_out(tmp_path, capsys):
    assert tlsca.main(["--out", str(tmp_path / "c")]) == 0
    assert "made test CA" in capsys.readouterr().out
    assert tlsca.main(["--out", str(tmp_path / "c")]) == 0
    assert "kept test CA" in capsys.readouterr().out


def test_host_simulator_takes_a_context_or_a_pair(pki):
    context = server_tls(_serving(pki["good"]))
    assert server_tls(context) is context and server_tls(None) is None


def test_settings_rules():
    good = dict(DEFAULTS)
    validate(good)
    for name, value in (("host_tls", "none"), ("host_tls", ""), ("host_ca", ""),
                        ("host_ca", "certs/ca.der"), ("host_ca", ".hidden"),
                        ("host_ca", "x" * 33), ("host_name", ""), ("host_name", "a b")):
        with pytest.raises(SettingsError, match=name):
            validate(dict(good, **{name: value}))
    validate(dict(good, host_tls="plain", host_ca="acquirer-ca.der", host_name="10.0.0.5"))


def test_the_host_certificate_takes_the_pcs_address_under_the_same_ca(tmp_path):
    from cryptography import x509

    from tools.host import tlsca

    tlsca.ensure(tmp_path)
    ca_before = (tmp_path / "ca.der").read_bytes()
    files, made = tlsca.ensure(tmp_path, ["192.168.1.10", "pos-host.lan"])
    assert made and (tmp_path / "ca.der").read_bytes() == ca_before
    host = x509.load_pem_x509_certificate(files["host.pem"].read_bytes())
    san = host.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"localhost", "pos-host.lan"}
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {
        "127.0.0.1", "192.168.1.10"}
    assert tlsca.ensure(tmp_path, ["192.168.1.10"]) == (files, False)
