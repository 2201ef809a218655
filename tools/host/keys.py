"""Default keys of the host simulator.

TEST KEYS ONLY. They are public (the MAC key is the NIST SP 800-38B example key) and match the
firmware's settings defaults (`mac_key`, `pin_key`) so that a fresh terminal talks to a fresh
simulator. Never use them for anything but tests and demos.
"""

# TEST KEYS ONLY: AES-128 key for the message MAC (AES-CMAC, fields 64 / 128).
MAC_KEY_HEX = "2B7E151628AED2A6ABF7158809CF4F3C"
# TEST KEYS ONLY: AES-128 key for the PIN block (ISO 9564-1 format 4, field 52).
PIN_KEY_HEX = "000102030405060708090A0B0C0D0E0F"

MAC_KEY = bytes.fromhex(MAC_KEY_HEX)
PIN_KEY = bytes.fromhex(PIN_KEY_HEX)
