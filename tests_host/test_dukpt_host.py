"""AES DUKPT at the host simulator (tools/host/server.py, tools/host/keys.py): it derives each
request's keys from the BDK its KSN names, answers under the MAC_VERIFICATION key of that KSN,
and refuses (63, a "security:" log line, nothing in the ledger) a replayed KSN, an unknown BDK
ID, a bad MAC, and static MACs from terminals not listed as static-key ones. The terminal's
side is test_dukpt_terminal.py; here the real core talks to the host's real request handling.
"""

import asyncio
import datetime

from firmware import core, dukpt
from firmware.settings import DEFAULTS
from tools.host import keys, spec
from tools.host.client import HostClient, exchange
from tools.host.server import HostSimulator

GOOD = "4761739001010010"  # balance 50000, PIN 1234 (tools/host/cards.json)


def run(coro):
    asyncio.run(asyncio.wait_for(coro, 15))


async def _host(tmp_path, **kw):
    host = HostSimulator(str(tmp_path / "host.db"), **kw)
    await host.start()
    return host


def _balance(host, pan=GOOD):
    return host.ledger.card(pan)["balance"]


def _security(host):
    return [line for line in host.log if "security:" in line]


def test_replayed_request_is_refused_and_the_ledger_does_not_change(tmp_path):
    async def body():
        host = await _host(tmp_path)
        try:
            client = HostClient(host.port)
            fields = client.purchase_fields(GOOD, "2812", "1234", 1250, "000001")
            frame = client.encode("0200", fields)
            first = client.decode(await exchange(host.port, frame), fields["53"])
            assert first[1]["39"] == "00" and first[1]["53"] == fields["53"]
            ledger = host.export_ledger()
            # The same bytes again (a recorded request replayed): refused, nothing moves.
            again = client.decode(await exchange(host.port, frame), fields["53"])
            assert again[1]["39"] == "63" and "38" not in again[1]
            assert host.export_ledger() == ledger and _balance(host) == 50000 - 1250
            assert "replayed KSN" in _security(host)[-1]
            # A reversal replayed after it was acknowledged moves nothing either.
            rev = client.encode("0400", client.followup_fields(1250, 1, **{"39": "98"}))
            assert client.decode(await exchange(host.port, rev))[1]["39"] == "00"
            assert _balance(host) == 50000
            assert client.decode(await exchange(host.port, rev))[1]["39"] == "63"
            assert [t["status"] for t in host.export_ledger()] == ["reversed"]
            # A new STAN under a KSN used before (a forger reusing a captured KSN): refused.
            fields2 = client.purchase_fields(GOOD, "2812", "1234", 999, "000002")
            fields2["53"] = fields["53"]
            frame2 = client.encode("0200", fields2)
            assert client.decode(await exchange(host.port, frame2), fields["53"])[1]["39"] == "63"
            assert _balance(host) == 50000 and len(host.export_ledger()) == 1
        finally:
            await host.stop()

    run(body())


def test_replay_refused_after_a_host_restart(tmp_path):
    async def body():
        host = await _host(tmp_path)
        client = HostClient(host.port)
        frame = client.encode("0200", client.purchase_fields(GOOD, "2812", "1234", 100,
                                                                     "000001"))
        assert client.decode(await exchange(host.port, frame))[1]["39"] == "00"
        await host.stop()
        host = await _host(tmp_path)  # the KSNs used are in the SQLite file
        try:
            assert client.decode(await exchange(host.port, frame))[1]["39"] == "63"
        finally:
            await host.stop()

    run(body())


def test_bad_mac_does_not_burn_the_ksn(tmp_path):
    # A forger who sends garbage under the terminal's next KSN must not make the host refuse
    # the terminal's genuine request under it: only a verified request takes its KSN.
    async def body():
        host = await _host(tmp_path)
        try:
            client = HostClient(host.port)
            fields = client.purchase_fields(GOOD, "2812", "1234", 100, "000001")
            bad = client.encode("0200", fields, corrupt_mac=True)
            assert client.decode(await exchange(host.port, bad))[1]["39"] == "63"
            assert "bad MAC" in _security(host)[-1]
            good = client.encode("0200", fields)
            assert client.decode(await exchange(host.port, good))[1]["39"] == "00"
        finally:
            await host.stop()

    run(body())


def test_unknown_bdk_id_is_refused(tmp_path):
    async def body():
        host = await _host(tmp_path)
        try:
            # A terminal whose initial key comes from a BDK the host does not hold.
            stranger = HostClient(host.port, initial_key_id=bytes.fromhex("87654321000000AA"),
                                  initial_key=bytes(range(16)))
            frame = stranger.encode("0200", stranger.purchase_fields(GOOD, "2812", "1234", 100,
                                                                     "000001"))
            mti, fields = spec.decode_msg(await exchange(host.port, frame), keys.MAC_KEY)
            assert fields["39"] == "63"
            assert "unknown BDK ID 87654321" in _security(host)[-1]
            assert host.export_ledger() == [] and _balance(host) == 50000
        finally:
            await host.stop()

    run(body())


def test_static_mac_refused_unless_the_terminal_is_a_static_one(tmp_path):
    # The static keys are public test keys shared by every terminal: taking them from any
    # terminal would let anybody forge a reversal or a purchase for a DUKPT one.
    async def body():
        host = await _host(tmp_path)
        try:
            static = HostClient(host.port, static=True)
            mti, fields = await static.purchase(GOOD, "1234", 100, 1)
            assert fields["39"] == "63" and "static MAC refused" in _security(host)[-1]
            assert host.export_ledger() == []
        finally:
            await host.stop()
        host = await _host(tmp_path, static_terminals=["TERM0001"])
        try:
            static = HostClient(host.port, static=True)
            assert (await static.purchase(GOOD, "1234", 100, 1))[1]["39"] == "00"
            other = HostClient(host.port, static=True, tid="TERM0002")
            assert (await other.purchase(GOOD, "1234", 100, 1))[1]["39"] == "63"
        finally:
            await host.stop()

    run(body())


# ---- the real core against the host's real request handling -----------------------------------


class _Clock:
    def now(self):
        return (2026, 11, 26, 10, 15, 0)

    def ticks_ms(self):
        return 0


def _terminal():
    t = core.Terminal(dict(DEFAULTS), _Clock(), lambda n: bytes(n))
    t.handle(("boot", []))
    return t


def _pay(t, pin):
    t.handle(("card", GOOD, "2812"))
    for ch in "1250#":
        t.handle(("key", ch))
    for ch in pin:
        t.handle(("key", ch))
    return [a for a in t.handle(("key", "#")) if a[0] == "send"][0][2]


def _host_answers(host, frame):
    mti, _ = spec.decode_frame(frame)
    resp_mti, resp_fields, note = host._process(mti, frame)
    return host.encode_response(resp_mti, resp_fields), resp_fields, note


def test_core_and_host_agree_on_every_key(tmp_path):
    host = HostSimulator(str(tmp_path / "h.db"),
                         clock=lambda: datetime.datetime(2026, 11, 26, tzinfo=datetime.UTC))
    try:
        t = _terminal()
        # The PIN block deciphers at the host under its PIN_ENCRYPTION key: a wrong PIN is 55.
        response, fields, _ = _host_answers(host, _pay(t, "9999"))
        assert fields["39"] == "55"
        actions = t.handle(("rx", response))
        assert [a[1]["r"] for a in actions if a[0] == "journal"] == ["dec"]
        t.handle(("timer", "msg"))
        # The right PIN: approved, and the core takes the host's answer (MAC_VERIFICATION).
        request = _pay(t, "1234")
        response, fields, _ = _host_answers(host, request)
        assert fields["39"] == "00"
        actions = t.handle(("rx", response))
        assert [a[0] for a in actions if a[0] in ("journal", "print")][:2] == ["journal",
                                                                                "print"]
        advice = []
        while t.printing:
            advice += [a[2] for a in t.handle(("printed", 0)) if a[0] == "send"]
        t.handle(("rx", _host_answers(host, advice[0])[0]))
        assert not t.saf and t.totals() == (1, 1250)
        t.handle(("timer", "msg"))
        # The next purchase, duplicated on the wire: the host decides the first copy and
        # refuses the second (its KSN used). Its refusal reaches the core first: no answer
        # (nothing journaled, nothing printed; the status query goes), then the genuine one.
        request = _pay(t, "1234")
        genuine, _, _ = _host_answers(host, request)
        refusal, fields, note = _host_answers(host, request)
        assert fields["39"] == "63" and "replayed KSN" in note
        actions = t.handle(("rx", refusal))
        assert not [a for a in actions if a[0] in ("journal", "print")]
        assert [a[2][:4] for a in actions if a[0] == "send"] == [b"0600"]
        actions = t.handle(("rx", genuine))
        assert [a[0] for a in actions if a[0] in ("journal", "print")][:2] == ["journal",
                                                                                "print"]
        assert _balance(host) == 50000 - 2500
        # What the host derives is what the terminal derived: the request's KSN names them.
        ksn = spec.decode_frame(request)[1]["53"]
        assert keys.dukpt_key(ksn, dukpt.MAC_GENERATION) == bytes(
            t.keys.terminal.working_key_for(ksn, dukpt.MAC_GENERATION))
    finally:
        host.ledger.close()
