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
    """

    def __init__(self, port, *, host="127.0.0.1", tid="TERM0001", mid="MERCHANT0000001",
                 batch="000001", mac_key=keys.MAC_KEY, pin_key=keys.PIN_KEY, timeout=2.0):
        self.port, self.host, self.tid, self.mid, self.batch = port, host, tid, mid, batch
        self.mac_key, self.pin_key, self.timeout = mac_key, pin_key, timeout

    def _f7(self):
        return datetime.datetime.now(datetime.timezone.utc).strftime("%m%d%H%M%S")

    def purchase_fields(self, pan, expiry, pin, amount, stan, f7=None):
        now = datetime.datetime.now()
        return {"2": pan, "3": "000000", "4": amount, "7": f7 or self._f7(), "11": stan,
                "12": now.strftime("%H%M%S"), "13": now.strftime("%m%d"), "14": expiry,
                "22": "071", "25": "00", "41": self.tid, "42": self.mid, "49": "978",
                "52": pinblock.encipher(pin, pan, self.pin_key), "60": self.batch}

    def followup_fields(self, amount, stan, f7=None, **extra):
        f7 = f7 or self._f7()
        fields = {"3": "000000", "4": amount, "7": f7, "11": "%06d" % int(stan), "41": self.tid,
                  "42": self.mid, "60": self.batch,
                  "90": original_data(spec.PURCHASE, "%06d" % int(stan), f7)}
        fields.update(extra)
        return fields

    async def send(self, mti, fields, corrupt_mac=False):
        frame = spec.encode_msg(mti, fields, self.mac_key, corrupt_mac=corrupt_mac)
        response = await exchange(self.port, frame, self.host, self.timeout)
        return None if response is None else spec.decode_msg(response, self.mac_key)

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
