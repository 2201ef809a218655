"""A local test CA and the host simulator's TLS certificate (TEST CERTIFICATES ONLY).

    python -m tools.host.tlsca --out DIR [--days N]

Writes into DIR (created if needed):

    ca.pem, ca.der          the test CA's certificate: what the terminal trusts (setting host_ca)
    ca.key.pem              the test CA's private key (to issue more host certificates)
    host.pem, host.der      the host's certificate for "localhost": SAN DNS localhost, IP 127.0.0.1
    host.key.pem            the host's private key (the host simulator's `tls=(certfile, keyfile)`)

Idempotent: files that are there and still valid (the host certificate signed by the CA in DIR,
more than a day before expiry) are kept; anything missing, mismatched or near expiry is issued
again. EC P-256 keys and ECDSA-SHA256 signatures: Mbed TLS on the unix port and the ESP32 port
verify them, the certificates are about half the size of RSA-2048 ones (less to parse, less heap
on the board), and the ESP32's handshake spends its time in the ECDHE exchange either way.

`issue_ca`, `issue_host` and `write_pki` are for tests, which make their own CAs (a second CA, an
expired host certificate, a certificate for another name) in temporary folders.
"""

import argparse
import datetime
import ipaddress
import sys
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DAYS = 825  # the longest validity browsers accept for a server certificate; plenty for a demo
HOST_NAMES = ("localhost",)
HOST_IPS = ("127.0.0.1",)


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def issue_ca(name="POS test CA", days=DAYS):
    """(certificate, key) of a self-signed CA."""
    key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def issue_host(ca_cert, ca_key, names=HOST_NAMES, ips=HOST_IPS, days=DAYS, not_before=None):
    """(certificate, key) for the host, signed by the CA. `not_before` (aware datetime) lets a
    test make a certificate that has already expired."""
    key = _key()
    start = not_before or _now() - datetime.timedelta(minutes=5)
    san = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i))
                                               for i in ips]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                        names[0] if names else ips[0])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert, key


def _key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(path, data, private=False):
    path.write_bytes(data)
    if private:
        path.chmod(0o600)


def write_pki(out, ca=None, host=None):
    """Write the files of the module docstring into out; `ca`/`host` are (cert, key) pairs, made
    here when not given. Returns a dict of the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = ca or issue_ca()
    host_cert, host_key = host or issue_host(ca_cert, ca_key)
    pem, der = serialization.Encoding.PEM, serialization.Encoding.DER
    _write(out / "ca.pem", ca_cert.public_bytes(pem))
    _write(out / "ca.der", ca_cert.public_bytes(der))
    _write(out / "ca.key.pem", _key_pem(ca_key), private=True)
    _write(out / "host.pem", host_cert.public_bytes(pem))
    _write(out / "host.der", host_cert.public_bytes(der))
    _write(out / "host.key.pem", _key_pem(host_key), private=True)
    return paths(out)


def paths(out):
    out = Path(out)
    return {name: out / name for name in ("ca.pem", "ca.der", "ca.key.pem", "host.pem",
                                          "host.der", "host.key.pem")}


def _still_good(out):
    """The files in out hold a CA and a host certificate it signed, both valid for a day more,
    and the host key matches its certificate."""
    files = paths(out)
    try:
        ca = x509.load_pem_x509_certificate(files["ca.pem"].read_bytes())
        host = x509.load_pem_x509_certificate(files["host.pem"].read_bytes())
        host_key = serialization.load_pem_private_key(files["host.key.pem"].read_bytes(), None)
        files["ca.der"].stat()
        files["host.der"].stat()
        files["ca.key.pem"].stat()
        host.verify_directly_issued_by(ca)
    except (OSError, ValueError, TypeError, InvalidSignature):
        return False
    soon = _now() + datetime.timedelta(days=1)
    return (host_key.public_key() == host.public_key()
            and ca.not_valid_after_utc > soon and host.not_valid_after_utc > soon)


def split_names(extra):
    """Extra host names for the certificate: (DNS names, IP addresses)."""
    names, ips = list(HOST_NAMES), list(HOST_IPS)
    for item in extra:
        try:
            ipaddress.ip_address(item)
        except ValueError:
            names.append(item)
        else:
            ips.append(item)
    return tuple(dict.fromkeys(names)), tuple(dict.fromkeys(ips))


def _covers(out, names, ips):
    host = x509.load_pem_x509_certificate(paths(out)["host.pem"].read_bytes())
    san = host.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    have_names = set(san.get_values_for_type(x509.DNSName))
    have_ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return set(names) <= have_names and set(ips) <= have_ips


def _load_ca(out):
    files = paths(out)
    try:
        cert = x509.load_pem_x509_certificate(files["ca.pem"].read_bytes())
        key = serialization.load_pem_private_key(files["ca.key.pem"].read_bytes(), None)
    except (OSError, ValueError, TypeError):
        return None
    if cert.public_key() != key.public_key():
        return None
    return cert, key


def ensure(out, extra=()):
    """Make the test PKI in out unless a good one is there; `extra` names (DNS or IP) go into
    the host certificate besides localhost and 127.0.0.1 (the PC's address, for a real board).
    A host certificate missing a name is made again under the same CA, so boards that trust
    it keep trusting. Returns (paths, made)."""
    names, ips = split_names(extra)
    if _still_good(out):
        if _covers(out, names, ips):
            return paths(out), False
        ca = _load_ca(out)
        return write_pki(out, ca=ca, host=issue_host(*ca, names=names, ips=ips)), True
    ca = issue_ca()
    return write_pki(out, ca=ca, host=issue_host(*ca, names=names, ips=ips)), True


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.host.tlsca",
                                     description="Make the test CA and the host's certificate.")
    parser.add_argument("--out", default="out/certs", help="folder (default: out/certs)")
    parser.add_argument("--name", action="append", default=[], metavar="NAME_OR_IP",
                        help="another name or IP address of the host (the PC's, for a real "
                        "board; the board's host_name setting must be one of them)")
    args = parser.parse_args(argv)
    files, made = ensure(args.out, args.name)
    names, ips = split_names(args.name)
    print("%s test CA and host certificate in %s (%s):" % (
        "made" if made else "kept", args.out, ", ".join(names + ips)))
    for path in files.values():
        print("  %s" % path)
    print("the terminal trusts ca.der (setting host_ca; python -m tools.provision --ca %s)"
          % files["ca.der"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
