# portable: micropython
"""AES-CMAC against the RFC 4493 test vectors (also NIST SP 800-38B D.1).

Runs on CPython (pytest) and on the MicroPython unix port (tests_host/mprun.py)."""

from binascii import unhexlify

from firmware.cmac import cmac

_KEY = unhexlify("2b7e151628aed2a6abf7158809cf4f3c")
_MSG = unhexlify(
    "6bc1bee22e409f96e93d7e117393172a"
    "ae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52ef"
    "f69f2445df4f9b17ad2b417be66c3710"
)
_VECTORS = (
    (0, "bb1d6929e95937287fa37d129b756746"),
    (16, "070a16b46b4d4144f79bdd9dd04a287c"),
    (40, "dfa66747de9ae63030ca32611497c827"),
    (64, "51f0bebf7e3b9d92fc49741779363cfe"),
)


def test_rfc4493():
    for length, expected in _VECTORS:
        assert cmac(_KEY, _MSG[:length]) == unhexlify(expected), length


def test_accepts_memoryview_and_bytearray():
    view = memoryview(_MSG)[:40]
    assert cmac(_KEY, view) == unhexlify(_VECTORS[2][1])
    assert cmac(bytearray(_KEY), bytearray(_MSG)) == unhexlify(_VECTORS[3][1])


def test_every_length_differs():
    # Padding must make a short block differ from its zero-extended twin (10* padding, K2).
    seen = set()
    for length in range(0, 34):
        seen.add(cmac(_KEY, _MSG[:length]))
    assert len(seen) == 34
    assert cmac(_KEY, b"\x00" * 15) != cmac(_KEY, b"\x00" * 16)
