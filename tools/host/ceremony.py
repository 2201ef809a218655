"""The demo key ceremony: a terminal's DUKPT initial key, from the host's BDK.

    python -m tools.host.ceremony --derivation-id 00000002 [--bdk-id 12345678]

Prints the three provisioning fields (`initial_key_id`, `initial_key`, `initial_key_kcv`) as
JSON, to paste into that terminal's provision.local.json. The BDK never leaves the host: the
terminal only ever holds its own initial key (wrapped on its flash), from which it cannot work
back to the BDK or to another terminal's keys. Give every terminal, and every re-keying of a
terminal, a new derivation ID: the transaction counter starts again at 0 under a new ID only.

TEST KEYS ONLY: the host simulator's BDKs are public test keys (tools/host/keys.py). A real
ceremony happens in an HSM, with split knowledge; see docs/security.md.
"""

import argparse
import json
import sys

from firmware import dukpt
from tools.host import keys


def _hex(text, digits, what):
    try:
        value = bytes.fromhex(text)
    except ValueError:
        value = b""
    if len(value) * 2 != digits:
        raise ValueError("%s must be %d hex digits" % (what, digits))
    return value


TEST_BDK_ID = keys.TEST_BDK_ID.hex().upper()


def initial_key_fields(derivation_id, bdk_id=TEST_BDK_ID, bdks=None):
    """The provisioning fields of the terminal with that derivation ID under that BDK."""
    bdks = keys.BDKS if bdks is None else bdks
    bdk_id_bytes = _hex(bdk_id, 8, "the BDK ID")
    ikid = bdk_id_bytes + _hex(derivation_id, 8, "the derivation ID")
    bdk = bdks.get(bdk_id_bytes)
    if bdk is None:
        raise ValueError("the host holds no BDK with ID %s" % bdk_id.upper())
    key = bytes(dukpt.initial_key(bdk, ikid))
    return {"key_scheme": "dukpt", "initial_key_id": ikid.hex().upper(),
            "initial_key": key.hex().upper(),
            "initial_key_kcv": bytes(dukpt.kcv_legacy(key)).hex().upper()}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.host.ceremony",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--derivation-id", required=True, help="8 hex digits, new per terminal")
    parser.add_argument("--bdk-id", default=TEST_BDK_ID,
                        help="8 hex digits (default: the test BDK's)")
    args = parser.parse_args(argv)
    try:
        fields = initial_key_fields(args.derivation_id, args.bdk_id)
    except ValueError as e:
        print("ceremony: %s" % e, file=sys.stderr)
        return 2
    print(json.dumps(fields, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
