"""Provisioning: writes a board's settings file `config.json` from a local JSON file (mpremote).

    python -m tools.provision --port PORT [--file provision.local.json] [--dry-run] [--reset]
                              [--device-id HEX]

PORT is what `mpremote connect` takes: a serial device (/dev/ttyUSB0, COM3) or
`socket://127.0.0.1:PORT` (the virtual board). The file (default `provision.local.json`, which
git ignores; start from `provision.template.json`) names the settings to write; the fields are
described in docs/provisioning.md. Every value is checked first, with the firmware's own rules
(firmware/settings.py: merge, then validate), the board profile against boards/, and each
`<key>_kcv` given against its key; on any bad input nothing is written and the exit status is 2.
`host` and `terminal_id` must be given: their defaults are the simulated board's (127.0.0.1, the
board itself, and TERM0001).

On the board the file is copied to `config.json.new`, checked there against its SHA-256 and
renamed over `config.json` (littlefs replaces atomically: the board never boots a half-written
file), then `config.json` is read back by its SHA-256. mpremote `resume` avoids the soft reset;
`--reset` resets the board at the end so the firmware boots with the new settings, and shows its
boot log for `--log-seconds` (default 8; 0: none) or until a line holds `--until`, as `make
deploy` does (tools/deploy.py's reset, which also says where the board imports `firmware` from).

The AES keys are written wrapped for this board (RFC 3394 under its device key: the AES-CMAC
of its unique ID, firmware/keystore.py), as "W:" + hex: the board's unique ID is asked first
(`machine.unique_id()` through its board profile's `device_id()`; on the virtual board,
POS_DEVICE_ID or the simulated board's fixed ID). The KCV check is on the clear key, before
wrapping. `--device-id HEX` gives the ID for a dry run (which talks to no board), and is
checked against the board's in a real run.

`--ca FILE` also writes the CA certificate the host link trusts (host_tls "verify") as the
board's host_ca file (the setting's name, default `host_ca.der`): PEM or DER in, DER on the
board, checked first to be a CA certificate within its validity dates; installed before
config.json the same way (copied as NAME.new, SHA-256 checked on the board, renamed, read back).

Keys and the Wi-Fi password are never printed: the summary shows `****` and each AES key's
check value (KCV), and any mpremote output is scrubbed of them before it is shown.
"""

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from firmware import settings
from tools import deploy

ROOT = Path(__file__).resolve().parents[1]
BOARDS = ROOT / "boards"
NOT_PROFILES = ("__init__", "common")
AES_KEYS = tuple(name for name in settings.KEYS if name in settings.DEFAULTS)
SECRETS = AES_KEYS + ("classic_key", "wifi_password")
REMOTE_NEW = "config.json.new"
REMOTE = "config.json"
TIMEOUT_S = 120
# Settings whose defaults are the simulated board's (the board itself as host, TERM0001): a real
# board left with them would send its purchases nowhere, under another terminal's ID.
REQUIRED = {"host": "the acquirer host's address (the default %s is the board itself)",
            "terminal_id": "this terminal's own ID (the default %s is the simulated board's)"}
LOG_SECONDS = 8.0


class InputError(ValueError):
    """Bad provisioning input: nothing was written."""


class WriteError(RuntimeError):
    """mpremote failed or the board's config.json does not read back as sent."""


def kcv(key_hex):
    """The classic key check value: the first 3 bytes of AES-128-ECB of 16 zero bytes, hex."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    encryptor = Cipher(algorithms.AES(bytes.fromhex(key_hex)), modes.ECB()).encryptor()
    return (encryptor.update(bytes(16)) + encryptor.finalize())[:3].hex().upper()


def board_profiles(boards_dir=BOARDS):
    return sorted(p.stem for p in Path(boards_dir).glob("*.py") if p.stem not in NOT_PROFILES)


def config_values(values, source="provisioning file", boards_dir=BOARDS):
    """The settings to write (the `_kcv` fields checked and dropped), or InputError naming the
    field. The rules are the firmware's, so the board accepts what passes here."""
    if not isinstance(values, dict):
        raise InputError("%s: must hold a JSON object" % source)
    missing = ["%s missing: give %s" % (name, why % settings.DEFAULTS[name])
               for name, why in REQUIRED.items() if name not in values]
    if missing:
        raise InputError("%s: %s" % (source, "; ".join(missing)))
    checks = {}
    config = {}
    for name, value in values.items():
        if name.endswith("_kcv") and name[:-4] in AES_KEYS:
            checks[name[:-4]] = value
        else:
            config[name] = value
    try:
        settings.validate(settings.merge(settings.DEFAULTS, config, source), source)
    except settings.SettingsError as e:
        raise InputError(str(e)) from None
    if "board" in config and config["board"] not in board_profiles(boards_dir):
        raise InputError("%s: board must be a board profile in boards/ (one of %s)"
                         % (source, ", ".join(board_profiles(boards_dir))))
    for key, check in checks.items():
        field = key + "_kcv"
        if not (isinstance(check, str) and len(check) == 6
                and all(c in "0123456789abcdefABCDEF" for c in check)):
            raise InputError("%s: %s must be 6 hex digits" % (source, field))
        if key not in config:
            raise InputError("%s: %s given without %s" % (source, field, key))
        if kcv(config[key]) != check.upper():
            raise InputError("%s: %s does not match %s (its KCV is %s): wrong key or wrong check"
                             % (source, field, key, kcv(config[key])))
    for name in wrapped_names(config):
        if config[name][:2] == "W:":
            raise InputError("%s: %s must be given in clear (32 hex digits): provisioning wraps "
                             "it for the board" % (source, name))
    return config


def wrapped_names(config):
    """The AES key settings of config, which are written wrapped."""
    return [name for name in settings.KEYS if name in config]


def device_kek(unique_id):
    """The board's device key, by the firmware's own derivation (firmware/keystore.py, run on
    CPython over the tests' cryptolib stand-in)."""
    shims = str(ROOT / "tests_host" / "shims")
    if shims not in sys.path:
        sys.path.append(shims)
    from firmware import keystore

    return keystore.device_key(unique_id)


def wrap_keys(config, unique_id):
    """config with its AES keys wrapped for the board with this unique ID ("W:" + hex). The
    wrap is `cryptography`'s RFC 3394, the firmware unwraps with its own (a peer check)."""
    from cryptography.hazmat.primitives.keywrap import aes_key_wrap

    kek = device_kek(unique_id)
    out = dict(config)
    for name in wrapped_names(config):
        out[name] = "W:" + aes_key_wrap(kek, bytes.fromhex(config[name])).hex().upper()
    return out


def device_id_code(board):
    """Runs on the board: prints its unique ID as the firmware will see it (the board profile's
    device_id(), else machine.unique_id() for a board whose firmware is not deployed yet)."""
    return ('import binascii\n'
            'try:\n'
            ' from boards.{board} import device_id\n'
            'except ImportError:\n'
            ' from machine import unique_id as device_id\n'
            'print("DEVICE_ID", binascii.hexlify(device_id()).decode())\n').format(board=board)


def device_id_command(port, board):
    return [sys.executable, "-m", "mpremote", "connect", port, "resume",
            "exec", device_id_code(board)]


def read_device_id(port, board, runner=subprocess.run):
    """The board's unique ID (bytes), asked over mpremote; WriteError if it does not answer."""
    try:
        proc = runner(device_id_command(port, board), capture_output=True, text=True,
                      timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise WriteError("mpremote did not finish in %d s" % TIMEOUT_S) from None
    except OSError as e:
        raise WriteError("cannot run mpremote: %s" % e.strerror) from None
    for line in (proc.stdout or "").splitlines():
        parts = line.split()
        if proc.returncode == 0 and len(parts) == 2 and parts[0] == "DEVICE_ID":
            try:
                return bytes.fromhex(parts[1])
            except ValueError:
                break
    raise WriteError("cannot read the board's unique ID (exit %d):\n%s" % (
        proc.returncode, ((proc.stdout or "") + (proc.stderr or "")).rstrip()))


def parse_device_id(text):
    try:
        unique_id = bytes.fromhex(text)
    except ValueError:
        unique_id = b""
    if not unique_id:
        raise InputError("--device-id must be hex digits (the board's unique ID)")
    return unique_id


def config_bytes(config):
    return (json.dumps(config, indent=1, ensure_ascii=False) + "\n").encode()


def summary(config, unique_id=None):
    """Lines describing what is written, secrets masked. unique_id: the board's the AES keys
    are wrapped for (None: not known yet, a dry run without --device-id)."""
    lines = []
    for name, value in config.items():
        if name in settings.KEYS:
            shown = "**** (KCV %s, wrapped for device %s)" % (
                kcv(value), unique_id.hex() if unique_id is not None else "(the board's ID)")
        elif name == "wifi_password":
            shown = "********" if value else "(none: open network)"
        elif name in SECRETS:
            shown = "****"
        else:
            shown = json.dumps(value, ensure_ascii=False)
        lines.append("  %s: %s" % (name, shown))
    return lines


def ca_der(path):
    """The CA certificate in the file at path (PEM or DER) as DER, or InputError: it must be a
    CA certificate (basic constraints CA) and valid now."""
    import datetime

    from cryptography import x509

    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise InputError("%s: cannot read: %s" % (path, e.strerror)) from None
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            cert = x509.load_pem_x509_certificate(data)
        else:
            cert = x509.load_der_x509_certificate(data)
    except ValueError:
        raise InputError("%s: not a certificate (PEM or DER)" % path) from None
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise InputError("%s: not a CA certificate (no basic constraints CA:TRUE): give the CA "
                         "that issued the host's certificate, not the host's own" % path)
    now = datetime.datetime.now(datetime.timezone.utc)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise InputError("%s: the CA certificate is not valid now (%s to %s)" % (
            path, cert.not_valid_before_utc.date(), cert.not_valid_after_utc.date()))
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.DER)


def install_code(digest, new=REMOTE_NEW, cur=REMOTE):
    """Runs on the board: install config.json.new over config.json only if it is what was sent
    (or `new` over `cur`: the host_ca file)."""
    return ('import os,hashlib,binascii\n'
            'f=open("{new}","rb")\n'
            'h=binascii.hexlify(hashlib.sha256(f.read()).digest()).decode()\n'
            'f.close()\n'
            'if h!="{digest}":\n'
            ' os.remove("{new}")\n'
            ' raise OSError("{new}: SHA-256 mismatch, not installed")\n'
            # littlefs renames over a file atomically; FAT refuses, so it gets remove + rename.
            'try:\n'
            ' os.rename("{new}","{cur}")\n'
            'except OSError:\n'
            ' os.remove("{cur}")\n'
            ' os.rename("{new}","{cur}")\n').format(new=new, cur=cur, digest=digest)


def build_command(port, tmpfile, digest, reset=False, ca=None):
    """One mpremote invocation: copy, check and install on the board, read back the hash.
    `ca`: (tmpfile, digest, name on the board) of the host_ca file, installed first."""
    cmd = [sys.executable, "-m", "mpremote", "connect", port, "resume"]
    if ca is not None:
        ca_file, ca_digest, name = ca
        cmd += ["fs", "cp", "-f", str(ca_file), ":" + name + ".new",
                "+", "exec", install_code(ca_digest, name + ".new", name),
                "+", "fs", "sha256sum", ":" + name, "+"]
    cmd += ["fs", "cp", "-f", str(tmpfile), ":" + REMOTE_NEW,
           "+", "exec", install_code(digest),
           "+", "fs", "sha256sum", ":" + REMOTE]
    if reset:
        cmd += ["+", "reset"]
    return cmd


def _scrub(text, config):
    for name in SECRETS:
        value = config.get(name)
        if value:
            for form in {value, value.upper(), value.lower()}:
                text = text.replace(form, "****")
    return text


def _read_back(stdout, nth=1):
    """The nth last 64-hex-digit line mpremote printed (fs sha256sum), or None."""
    for line in reversed(stdout.splitlines()):
        line = line.strip().lower()
        if len(line) == 64 and all(c in "0123456789abcdef" for c in line):
            nth -= 1
            if nth == 0:
                return line
    return None


def provision(port, values, *, runner=subprocess.run, reset=False, source="provisioning file",
              boards_dir=BOARDS, device_id=None, ca=None):
    """Check values (the provisioning file's object) and write them as the board's config.json,
    the AES keys wrapped for the board with unique ID device_id (bytes; None: asked first);
    `ca` (DER bytes, from ca_der()) first, as the board's host_ca file.

    Returns the SHA-256 (hex) of the config.json written and read back. Raises InputError before
    anything runs on bad input, WriteError when mpremote fails or the read-back differs. runner
    is called as subprocess.run(cmd, capture_output=True, text=True, timeout=...)."""
    clear = config_values(values, source, boards_dir)
    config = clear
    if wrapped_names(clear):
        if device_id is None:
            device_id = read_device_id(port, clear.get("board", settings.DEFAULTS["board"]),
                                       runner)
        config = wrap_keys(clear, device_id)
    data = config_bytes(config)
    digest = hashlib.sha256(data).hexdigest()
    fd, tmpfile = tempfile.mkstemp(prefix="config-", suffix=".json")  # mode 0600
    ca_install = ca_file = None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        if ca is not None:
            fd, ca_file = tempfile.mkstemp(prefix="host_ca-", suffix=".der")
            with os.fdopen(fd, "wb") as f:
                f.write(ca)
            ca_install = (ca_file, hashlib.sha256(ca).hexdigest(),
                          clear.get("host_ca", settings.DEFAULTS["host_ca"]))
        proc = runner(build_command(port, tmpfile, digest, reset, ca_install),
                      capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise WriteError("mpremote did not finish in %d s" % TIMEOUT_S) from None
    except OSError as e:
        raise WriteError("cannot run mpremote: %s" % e.strerror) from None
    finally:
        os.remove(tmpfile)
        if ca_file is not None:
            os.remove(ca_file)
    output = _scrub(_scrub((proc.stdout or "") + (proc.stderr or ""), config), clear)
    if proc.returncode != 0:
        raise WriteError("mpremote failed (exit %d):\n%s" % (proc.returncode, output.rstrip()))
    found = _read_back(proc.stdout or "")
    if found != digest:
        raise WriteError("config.json on the board does not read back as sent "
                         "(SHA-256 %s, sent %s)" % (found, digest))
    if ca_install is not None and _read_back(proc.stdout or "", 2) != ca_install[1]:
        raise WriteError("%s on the board does not read back as sent (SHA-256 %s, sent %s)"
                         % (ca_install[2], _read_back(proc.stdout or "", 2), ca_install[1]))
    return digest


def load_file(path):
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        hint = " (copy provision.template.json to it and fill it in)" if not Path(path).exists() \
            else ""
        raise InputError("%s: cannot read: %s%s" % (path, e.strerror, hint)) from None
    try:
        return json.loads(text)
    except ValueError as e:
        # The decoder's message gives the position only, never the text around it.
        raise InputError("%s: not valid JSON: line %d column %d"
                         % (path, e.lineno, e.colno)) from None


def main(argv=None, runner=subprocess.run):
    parser = argparse.ArgumentParser(prog="python -m tools.provision",
                                     description="Write a board's config.json.")
    parser.add_argument("--port", required=True,
                        help="mpremote device: /dev/ttyUSB0, COM3, socket://127.0.0.1:PORT")
    parser.add_argument("--file", default="provision.local.json",
                        help="provisioning file (default: provision.local.json)")
    parser.add_argument("--dry-run", action="store_true",
                        help="check and print what would be done; write nothing")
    parser.add_argument("--reset", action="store_true",
                        help="reset the board afterwards and show its boot log")
    parser.add_argument("--log-seconds", type=float, default=LOG_SECONDS,
                        help="with --reset: how long to show the boot log (default %(default)g; "
                        "0: none)")
    parser.add_argument("--until", default=None, help="stop the boot log at this text")
    parser.add_argument("--device-id", metavar="HEX",
                        help="the board's unique ID: for --dry-run, or checked against the board")
    parser.add_argument("--ca", metavar="FILE",
                        help="the CA certificate (PEM or DER) the host link trusts: written as "
                        "the board's host_ca file (e.g. out/certs/ca.der from make certs)")
    args = parser.parse_args(argv)
    # With a boot log to show, deploy's reset does it (the line held open across it), not
    # mpremote's `reset`, after which the first lines would be gone.
    follow = args.reset and args.log_seconds > 0
    try:
        values = load_file(args.file)
        ca = ca_der(args.ca) if args.ca is not None else None
        unique_id = parse_device_id(args.device_id) if args.device_id is not None else None
        if args.dry_run:
            config = config_values(values, args.file)
            print("dry run: would run")
            if wrapped_names(config):
                board = config.get("board", settings.DEFAULTS["board"])
                print("  " + shlex.join(device_id_command(args.port, board)))
            if wrapped_names(config) and unique_id is None:
                digest = "known once the keys are wrapped for the board"
            else:
                written = wrap_keys(config, unique_id) if wrapped_names(config) else config
                digest = hashlib.sha256(config_bytes(written)).hexdigest()
            ca_install = None if ca is None else (
                "CAFILE", hashlib.sha256(ca).hexdigest(),
                config.get("host_ca", settings.DEFAULTS["host_ca"]))
            print("  " + shlex.join(build_command(args.port, "TMPFILE", digest,
                                                  args.reset and not follow, ca_install)))
            if follow:
                print("  then reset the board and show its boot log (%g s), as make deploy does"
                      % args.log_seconds)
            print("with TMPFILE holding config.json (SHA-256 %s):" % digest)
            print("\n".join(summary(config, unique_id)))
            print(_ca_line(ca, ca_install))
            return 0
        config = config_values(values, args.file)
        if wrapped_names(config):
            # Asked here, so that the summary names it.
            found = read_device_id(args.port, config.get("board", settings.DEFAULTS["board"]),
                                   runner)
            if unique_id is not None and found != unique_id:
                raise WriteError("the board's unique ID is %s, not %s (--device-id); nothing "
                                 "written" % (found.hex(), unique_id.hex()))
            unique_id = found
        digest = provision(args.port, values, runner=runner, reset=args.reset and not follow,
                           source=args.file, device_id=unique_id, ca=ca)
    except InputError as e:
        print("provision: %s; nothing written" % e, file=sys.stderr)
        return 2
    except WriteError as e:
        print("provision: %s" % e, file=sys.stderr)
        return 1
    print("wrote config.json to %s, verified (SHA-256 %s):" % (args.port, digest))
    print("\n".join(summary(config, unique_id)))
    print(_ca_line(ca, ca is not None and (None, hashlib.sha256(ca).hexdigest(), config.get(
        "host_ca", settings.DEFAULTS["host_ca"]))))
    if not args.reset:
        print("the firmware is stopped at the REPL: reset the board (or use --reset) to boot it")
    if follow:
        return show_boot(args.port, args.log_seconds, args.until)
    return 0


def show_boot(port, seconds, until=None, out=sys.stdout):
    """Reset the board and show its boot log, as make deploy does; 0, or 1 when the board did
    not come back from the reset."""
    try:
        (origin, path), _ = deploy.reset_check_and_log(port, seconds, out, until)
    except deploy.DeployError as e:
        print("provision: config.json is written and verified, but %s" % e, file=sys.stderr)
        return 1
    if origin is None:
        print("provision: the board has no firmware to boot with these settings: deploy it "
              "(make deploy PORT=%s)" % port, file=out)
    else:
        print("provision: the board booted firmware from %s (%s)" % (path, deploy.ORIGINS[origin]),
              file=out)
    return 0


def _ca_line(ca, ca_install):
    if ca is None:
        return "  host_ca: not written (no --ca): the board must hold it already for TLS"
    return "  host_ca: %s, %d bytes of DER (SHA-256 %s)" % (ca_install[2], len(ca), ca_install[1])


if __name__ == "__main__":
    sys.exit(main())
