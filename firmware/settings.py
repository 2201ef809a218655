"""Terminal settings: every setting in one place, with its default and unit.

The defaults suit a demo against the host simulator. A file `config.json` at the root of the flash
filesystem overrides them (written by provisioning); unknown names are an error, so a typo in the
file is reported instead of silently ignored. Keys here are TEST KEYS ONLY.
"""

import json

# name: default,  # unit / meaning (tools/settings_doc.py reads these comments into
# docs/settings.md; as comments they cost the board no heap)
DEFAULTS = {
    "board": "sim",  # board profile module in boards/
    "merchant_name": "DEMO CAFE",  # printed on receipts and shown on the idle screen
    "merchant_id": "000000000012345",  # ISO 8583 field 42, 15 characters
    "terminal_id": "TERM0001",  # ISO 8583 field 41, 8 characters
    "currency_code": "978",  # ISO 4217 numeric, field 49
    "currency": "EUR",  # ISO 4217 alpha, shown with amounts
    "wifi_ssid": "",  # Wi-Fi network name; empty = no Wi-Fi (the simulated board's loopback)
    "wifi_password": "",  # Wi-Fi password, 8 to 63 characters, empty for an open network (SECRET)
    "wifi_retry_ms": 2000,  # first delay between Wi-Fi connection attempts, doubled per try
    "wifi_timeout_ms": 15000,  # ms one Wi-Fi connection attempt may take
    "ntp_host": "pool.ntp.org",  # NTP server for the receipt's date and time; empty = none
    "ntp_port": 123,  # NTP server UDP port
    "utc_offset_min": 0,  # local time minus UTC, minutes (receipts show local time)
    "host": "127.0.0.1",  # acquirer host address
    "port": 8583,  # acquirer host TCP port
    "connect_timeout_ms": 5000,  # ms to open the connection to the host (TLS handshake too)
    # The host link. "plain" sends card data and MACs unencrypted: a demo against the host
    # simulator only, and the idle screen says so on every board.
    "host_tls": "verify",  # verify (TLS, host certificate checked) or plain (TCP, demo only)
    "host_ca": "host_ca.der",  # file on the flash holding the CA certificate (DER) host_tls trusts
    "host_name": "localhost",  # name (DNS or IP) the host's certificate must carry
    # Field practice: 30 s (China UnionPay default, settable 20 to 90 s).
    "response_timeout_ms": 30000,  # ms to wait for the response to a purchase
    "query_timeout_ms": 10000,  # ms to wait for the answer to one status query
    "query_attempts": 3,  # status queries before deciding to reverse
    "query_window_ms": 60000,  # ms from the first query after which no new query starts
    "retry_base_ms": 2000,  # first retry delay of the store-and-forward queue, doubled per try
    "retry_max_ms": 60000,  # longest retry delay of the store-and-forward queue
    "max_amount": 99999999,  # largest amount accepted at entry, minor units
    "amount_digits": 8,  # most digits accepted at amount entry
    "pin_min": 4,  # fewest PIN digits
    "pin_max": 12,  # most PIN digits (ISO 9564 allows 4 to 12)
    "entry_timeout_ms": 60000,  # ms without a key before amount or PIN entry is cancelled
    "message_ms": 4000,  # ms a result (approved, declined, ...) stays on screen
    "receipt_copies": 2,  # 1 = customer copy only, 2 = merchant and customer copies
    # A receipt is ~700 bytes: at 9600 baud about 1 s on the wire, a few seconds of paper feed.
    "print_timeout_ms": 20000,  # ms a receipt may take before the printer counts as silent
    # ~5 records of ~100 bytes per purchase: compaction every 15 or so, a short boot replay.
    "journal_max_bytes": 8192,  # journal size that triggers compaction, bytes
    "mac_key": "2B7E151628AED2A6ABF7158809CF4F3C",  # AES-128 MAC key, hex (TEST KEY)
    "pin_key": "000102030405060708090A0B0C0D0E0F",  # AES-128 PIN key, hex (TEST KEY)
    # Static keys serve every message; DUKPT derives a MAC and PIN key per message from the
    # initial key and the message's KSN (docs/protocol.md, "Keys"), so a key seen once opens
    # nothing else, and the host refuses a KSN used before.
    "key_scheme": "dukpt",  # dukpt (AES DUKPT, X9.24-3: initial_key) or static (mac_key, pin_key)
    # The published X9.24-3 test initial key: test BDK FEDCBA9876543210F1F1F1F1F1F1F1F1 with
    # the initial key ID below.
    "initial_key": "1273671EA26AC29AFA4D1084127652A1",  # DUKPT initial key, hex (TEST KEY)
    "initial_key_id": "1234567890123456",  # DUKPT initial key ID, hex: BDK ID + derivation ID
    "poll_ms": 50,  # card reader poll period while waiting for a card
    "reader": "pn532_i2c",  # card reader: rc522 (SPI), pn532_i2c, pn532_spi
    "classic_key": "FFFFFFFFFFFF",  # MIFARE Classic key A of demo cards, hex (TEST KEY)
    "display": "ssd1306_i2c",  # OLED bus: ssd1306_i2c (ssd1306_spi needs DC/RES pins)
    "display_height": 64,  # OLED rows: 64 or 32
    "display_addr": 60,  # OLED I2C address (60 = 0x3C, 61 = 0x3D)
    "keypad": "matrix",  # keypad: matrix (8 GPIOs, scanned on a timer) or tca8418 (I2C, own FIFO)
    "keypad_addr": 52,  # TCA8418 I2C address (52 = 0x34)
    "keypad_debounce_ms": 30,  # a key counts after reading stable this long, ms (matrix)
    "printer_baud": 9600,  # printer UART speed (9600 or 19200 on most TTL printers)
    # Measured per printer: the overrun guard trusts it, so never guess it low.
    "printer_line_ms": 60,  # ms the mechanism takes per text line
    "printer_buffer": 256,  # printer receive buffer, bytes
    "printer_status": "dle",  # status query: dle (DLE EOT), escv (ESC v 0) or none
    "printer_cut": False,  # the printer has a cutter (GS V)
    "heap_report": False,  # log gc heap figures after each transaction
    "debug_repl": False,  # a REPL in the running firmware (aiorepl, on the console); debug only
}


class SettingsError(ValueError):
    pass


def merge(base, overrides, source):
    """Return a copy of base with overrides applied; reject unknown names and wrong types."""
    out = dict(base)
    for name, value in overrides.items():
        if name not in DEFAULTS:
            raise SettingsError("%s: unknown setting %r" % (source, name))
        default = DEFAULTS[name]
        # bool is a subclass of int: check it first so True is not taken for a number.
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, str)
        if not ok:
            raise SettingsError("%s: %s must be %s" % (source, name, type(default).__name__))
        out[name] = value
    return out


def _printable(text):
    for c in text:
        if not " " <= c <= "~":
            return False
    return True


def _hex(text, digits):
    return len(text) == digits and all(c in "0123456789abcdefABCDEF" for c in text)


def _host(text):
    return 0 < len(text) <= 253 and _printable(text) and " " not in text


def _port(number):
    return 1 <= number <= 65535


def _upper3(text):
    return len(text) == 3 and all("A" <= c <= "Z" for c in text)


def _name(text):
    return text != "" and all(c == "_" or "a" <= c <= "z" or "0" <= c <= "9" for c in text)


def _file_name(text):
    # A file at the root of the flash: no folders, nothing the shell or mpremote reads specially.
    return 0 < len(text) <= 32 and text[0] != "." and all(
        c in "_-." or "a" <= c <= "z" or "A" <= c <= "Z" or "0" <= c <= "9" for c in text)


def _wifi_password(text):
    # WPA2: a passphrase of 8 to 63 printable ASCII characters, or the 256-bit PSK as 64 hex.
    return text == "" or (8 <= len(text) <= 63 and _printable(text)) or _hex(text, 64)


# name, rule, what a good value is. The messages never show the value: some are secrets.
_RULES = (
    ("terminal_id", lambda v: len(v) == 8 and _printable(v),
     "exactly 8 printable ASCII characters"),
    ("merchant_id", lambda v: len(v) == 15 and _printable(v),
     "exactly 15 printable ASCII characters"),
    ("merchant_name", lambda v: 1 <= len(v) <= 24 and _printable(v),
     "1 to 24 printable ASCII characters"),
    ("currency", _upper3, "3 uppercase letters (ISO 4217 alpha)"),
    ("currency_code", lambda v: len(v) == 3 and all("0" <= c <= "9" for c in v),
     "3 digits (ISO 4217 numeric)"),
    ("host", _host, "1 to 253 printable ASCII characters without spaces"),
    ("port", _port, "1 to 65535"),
    ("host_tls", lambda v: v in ("verify", "plain"), "verify or plain"),
    ("host_ca", _file_name, "a file name of 1 to 32 letters, digits, '_', '-' or '.'"),
    ("host_name", _host, "1 to 253 printable ASCII characters without spaces"),
    ("ntp_host", lambda v: v == "" or _host(v),
     "empty or 1 to 253 printable ASCII characters without spaces"),
    ("ntp_port", _port, "1 to 65535"),
    ("utc_offset_min", lambda v: -720 <= v <= 840, "-720 to 840 minutes"),
    ("mac_key", lambda v: _hex(v, 32), "exactly 32 hex digits"),
    ("pin_key", lambda v: _hex(v, 32), "exactly 32 hex digits"),
    ("classic_key", lambda v: _hex(v, 12), "exactly 12 hex digits"),
    ("key_scheme", lambda v: v in ("dukpt", "static"), "dukpt or static"),
    ("initial_key", lambda v: _hex(v, 32), "exactly 32 hex digits"),
    ("initial_key_id", lambda v: _hex(v, 16), "exactly 16 hex digits"),
    ("wifi_ssid", lambda v: len(v.encode()) <= 32, "at most 32 bytes (UTF-8)"),
    ("wifi_password", _wifi_password,
     "empty, 8 to 63 printable ASCII characters, or exactly 64 hex digits"),
    ("board", _name, "a board profile module name (lowercase letters, digits, _)"),
    ("keypad", lambda v: v in ("matrix", "tca8418"), "matrix or tca8418"),
    ("keypad_addr", lambda v: 8 <= v <= 119, "a 7-bit I2C address, 8 to 119"),
    ("keypad_debounce_ms", lambda v: 5 <= v <= 200, "5 to 200 ms"),
)


# The AES key settings. Each may be stored in clear (its rule above) or wrapped under the
# board's device key: "W:" and the 48 hex digits of the RFC 3394 wrap (firmware/keystore.py,
# which unwraps them at boot).
KEYS = ("mac_key", "pin_key", "initial_key")


def validate(values, source="settings"):
    """Check the values of the settings that have a rule (merge() has checked the types);
    raise SettingsError naming the first bad setting and what it must be."""
    for name, rule, what in _RULES:
        if name not in values:
            continue
        value = values[name]
        if name in KEYS and value[:2] == "W:":
            if not _hex(value[2:], 48):
                raise SettingsError("%s: %s must be W: and 48 hex digits (a wrapped key)"
                                    % (source, name))
        elif not rule(value):
            raise SettingsError("%s: %s must be %s" % (source, name, what))


def load(path):
    """Defaults, overridden by the JSON file at path if it exists; names, types and values
    checked (SettingsError names the first bad setting)."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return dict(DEFAULTS)
    try:
        overrides = json.loads(text)
    except ValueError:
        raise SettingsError("%s: not valid JSON" % path)
    if not isinstance(overrides, dict):
        raise SettingsError("%s: must hold a JSON object" % path)
    values = merge(DEFAULTS, overrides, path)
    validate(values, path)
    return values
