"""A tiny terminal-side client of the host protocol, built on the wire spec: for tests, for the
`tools.host` command line and for checking a host by hand. Not the firmware's codec.
"""

import asyncio
import datetime

from . import keys, pinblock, spec


async def exchange(port, frame, host="127.0.0.1", timeout=2.0):
    """Send one frame (no prefix) on a new connection; the response frame, or None when the
    host closes or stays silent for `timeout` s. Raises ConnectionRefusedError when refused."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(spec.frame_with_length(frame))
        await writer.drain()
        head = await asyncio.wait_for(reader.readexactly(2), timeout)
        return await asyncio.wait_for(reader.readexactly(int.from_bytes(head, "big")), timeout)
    except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
        return None
    finally:
        writer.close()


def original_data(mti, stan, f7):
    """Field 90: original MTI (4) + STAN (6) + field 7 (10) + 22 zeros."""
    return mti + stan + f7 + "0" * 22


class HostClient:
    """Builds requests like the terminal does and exchanges them with a host on `port`.

    Each method returns `(mti, fields)` of the response (MAC checked: a bad MAC raises
    spec.MacError), or None when no response came.

    Keys: DUKPT by default, as the terminal (the test initial key and ID): each request takes
    the next counter (`counter`: the last one used), carries its KSN in field 53, is MACed
    under its MAC_GENERATION key, and the answer is checked under its MAC_VERIFICATION key.
    `static=True`: the static `mac_key` and `pin_key`, no field 53 (the host must list the
    terminal in `static_terminals`). `last_ksn` is the KSN of the last request. Without an
    `initial_key`, the one the test BDK gives `initial_key_id` (another terminal: another ID).
    """

    def __init__(self, port, *, host="127.0.0.1", tid="TERM0001", mid="MERCHANT0000001",
                 batch="000001", mac_key=keys.MAC_KEY, pin_key=keys.PIN_KEY, timeout=2.0,
                 static=False, initial_key=None, initial_key_id=keys.TEST_INITIAL_KEY_ID,
                 counter=0):
        self.port, self.host, self.tid, self.mid, self.batch = port, host, tid, mid, batch
        self.mac_key, self.pin_key, self.timeout = mac_key, pin_key, timeout
        if initial_key is None:  # the one the test BDK gives this initial key ID
            initial_key = keys.dukpt.initial_key(keys.TEST_BDK, bytes(initial_key_id))
        self.dukpt = None if static else keys.dukpt.TerminalKeys(
            initial_key, bytes(initial_key_id) + counter.to_bytes(4, "big"))
        self.last_ksn = None

    def next_ksn(self):
        """Move to the next counter; the new KSN (DUKPT only)."""
        self.last_ksn = self.dukpt.next_transaction()
        return self.last_ksn

    def key(self, usage, ksn=None):
        """The working key for `usage` under `ksn` (default: the last request's)."""
        return bytes(self.dukpt.working_key_for(ksn or self.last_ksn, usage))

    def _f7(self):
        return datetime.datetime.now(datetime.timezone.utc).strftime("%m%d%H%M%S")

    def purchase_fields(self, pan, expiry, pin, amount, stan, f7=None):
        """The 0200's fields; under DUKPT this takes the request's KSN (field 53) now, for the
        PIN block's key, and `send` keeps it."""
        now = datetime.datetime.now()
        fields = {"2": pan, "3": "000000", "4": amount, "7": f7 or self._f7(), "11": stan,
                  "12": now.strftime("%H%M%S"), "13": now.strftime("%m%d"), "14": expiry,
                  "22": "071", "25": "00", "41": self.tid, "42": self.mid, "49": "978",
                  "60": self.batch}
        pin_key = self.pin_key
        if self.dukpt is not None:
            fields["53"] = self.next_ksn()
            pin_key = self.key(keys.dukpt.PIN_ENCRYPTION)
        fields["52"] = pinblock.encipher(pin, pan, pin_key)
        return fields

    def encode(self, mti, fields, corrupt_mac=False):
        """The request's frame: under DUKPT with a fresh KSN unless `fields` carries one."""
        if self.dukpt is None:
            return spec.encode_msg(mti, fields, self.mac_key, corrupt_mac=corrupt_mac)
        fields = dict(fields)
        if "53" not in fields:
            fields["53"] = self.next_ksn()
        key = self.key(keys.dukpt.MAC_GENERATION, fields["53"])
        return spec.encode_msg(mti, fields, key, corrupt_mac=corrupt_mac)

    def decode(self, response, ksn=None):
        """`(mti, fields)` of an answer, its MAC checked (static key, or the MAC_VERIFICATION
        key of `ksn`, default the last request's); raises spec.MacError."""
        if self.dukpt is None:
            return spec.decode_msg(response, self.mac_key)
        return spec.decode_msg(response, self.key(keys.dukpt.MAC_VERIFICATION, ksn))

    def followup_fields(self, amount, stan, f7=None, **extra):
        f7 = f7 or self._f7()
        fields = {"3": "000000", "4": amount, "7": f7, "11": "%06d" % int(stan), "41": self.tid,
                  "42": self.mid, "60": self.batch,
                  "90": original_data(spec.PURCHASE, "%06d" % int(stan), f7)}
        fields.update(extra)
        return fields

    async def send(self, mti, fields, corrupt_mac=False):
        frame = self.encode(mti, fields, corrupt_mac=corrupt_mac)
        ksn = fields.get("53") or self.last_ksn
        response = await exchange(self.port, frame, self.host, self.timeout)
        return None if response is None else self.decode(response, ksn)

    async def purchase(self, pan, pin, amount, stan, expiry="2812", **kw):
        return await self.send(spec.PURCHASE, self.purchase_fields(pan, expiry, pin, amount,
                                                                   stan), **kw)

    async def query(self, amount, stan, **kw):
        return await self.send(spec.QUERY, self.followup_fields(amount, stan), **kw)

    async def reversal(self, amount, stan, repeat=False, reason="98", **kw):
        mti = spec.REVERSAL_REPEAT if repeat else spec.REVERSAL
        return await self.send(mti, self.followup_fields(amount, stan, **{"39": reason}), **kw)

    async def advice(self, amount, stan, rrn, auth_code, **kw):
        return await self.send(spec.ADVICE, self.followup_fields(
            amount, stan, **{"37": rrn, "38": auth_code}), **kw)
