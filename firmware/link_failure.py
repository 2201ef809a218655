"""What a host connection that failed was, for the log: a security event (the host's certificate
refused, the TLS handshake failed) or a host only unreachable. Imported by the runtime on a
failure and let go after: a healthy link never needs it (docs/architecture.md, "Memory")."""


def describe(kind, e, tls):
    """The log line for the exchange `kind` whose connection failed with `e`."""
    failure = _tls_failure(e) if tls else None
    if failure:
        # Never an answer: a host that cannot prove who it is has not been reached.
        return "security: %s (%s: %s); not sent" % (failure, kind, _reason(e))
    return "%s: host unreachable (%r)" % (kind, e)


def _tls_failure(e):
    """The security event a failed TLS connection is, or None when the host was only
    unreachable (refused, no route, timeout)."""
    # mbedtls's verdict on the certificate (wrong CA, wrong name, expired) is a ValueError on
    # MicroPython; CPython's SSLCertVerificationError is a ValueError too.
    if isinstance(e, ValueError):
        return "host certificate refused"
    # Other TLS errors: mbedtls's negative codes on MicroPython, ssl.SSLError on CPython.
    code = e.args[0] if e.args else None
    if type(e).__name__.startswith("SSL") or isinstance(code, int) and code < 0:
        return "TLS handshake with the host failed"
    return None


def _reason(e):
    text = e.args[-1] if e.args else e
    return " ".join(str(text).split())
