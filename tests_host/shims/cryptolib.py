"""CPython stand-in for MicroPython's `cryptolib`, so firmware modules import unchanged.

Only what the firmware uses: `aes(key, 1)` (ECB) and `aes(key, 2, iv)` (CBC), each object
either encrypting or decrypting, never both, exactly as MicroPython enforces it: a mixed use
then fails here too instead of first on the board.
"""

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

MODE_ECB = 1
MODE_CBC = 2


class aes:  # noqa: N801 - the MicroPython name
    def __init__(self, key, mode, IV=None):  # noqa: N803 - MicroPython's keyword
        if len(key) not in (16, 24, 32):
            raise ValueError("key")
        if mode == MODE_ECB:
            m = modes.ECB()
        elif mode == MODE_CBC:
            if IV is None or len(IV) != 16:
                raise ValueError("IV")
            m = modes.CBC(bytes(IV))
        else:
            raise ValueError("mode")
        self._cipher = Cipher(algorithms.AES(bytes(key)), m)
        self._ctx = None
        self._encrypting = None

    def _run(self, encrypt, in_buf, out_buf):
        if self._encrypting is None:
            self._encrypting = encrypt
            self._ctx = self._cipher.encryptor() if encrypt else self._cipher.decryptor()
        elif self._encrypting != encrypt:
            # MicroPython raises ValueError("can't encrypt & decrypt") here.
            raise ValueError("can't encrypt & decrypt")
        data = bytes(in_buf)
        if len(data) % 16:
            raise ValueError("blksize % 16")
        result = self._ctx.update(data)
        if out_buf is None:
            return result
        if len(out_buf) < len(result):
            raise ValueError("output too small")
        out_buf[: len(result)] = result
        return None

    def encrypt(self, in_buf, out_buf=None):
        return self._run(True, in_buf, out_buf)

    def decrypt(self, in_buf, out_buf=None):
        return self._run(False, in_buf, out_buf)
