"""The demo key ceremony (tools/host/ceremony.py): the published vector, provisioning accepts its
output, and a terminal keyed with it is understood by the host, which holds only the BDK."""

import json

import pytest

from firmware import dukpt
from tools import provision
from tools.host import ceremony, keys


def test_the_published_initial_key(capsys):
    assert ceremony.main(["--derivation-id", "90123456"]) == 0
    fields = json.loads(capsys.readouterr().out)
    assert fields["initial_key_id"] == "1234567890123456"
    assert fields["initial_key"] == "1273671EA26AC29AFA4D1084127652A1"
    assert fields["initial_key_kcv"] == provision.kcv(fields["initial_key"])


def test_a_new_terminal_is_keyed_and_the_host_derives_the_same_keys():
    fields = ceremony.initial_key_fields("00000002")
    config = provision.config_values(dict(fields, board="sim", host="127.0.0.1",
                                          terminal_id="TERM0002"))
    assert "initial_key_kcv" not in config and config["key_scheme"] == "dukpt"
    ikid = bytes.fromhex(fields["initial_key_id"])
    terminal = dukpt.TerminalKeys(bytes.fromhex(fields["initial_key"]), ikid + bytes(4))
    for _ in range(3):
        ksn = bytes(terminal.next_transaction())
        for usage in (dukpt.PIN_ENCRYPTION, dukpt.MAC_GENERATION, dukpt.MAC_VERIFICATION):
            assert bytes(terminal.working_key(usage)) == keys.dukpt_key(ksn, usage)


@pytest.mark.parametrize("args, message", [
    (["--derivation-id", "123"], "8 hex digits"),
    (["--derivation-id", "00000001", "--bdk-id", "CAFEBABE"], "no BDK with ID CAFEBABE"),
])
def test_bad_input_is_refused(capsys, args, message):
    assert ceremony.main(args) == 2
    assert message in capsys.readouterr().err
