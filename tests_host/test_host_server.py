"""The host simulator end to end over TCP: decisions, host side rules, faults, robustness."""

import asyncio
import contextlib
import datetime
import json
import os
import sqlite3
import time

import pytest

from tools.host import keys, spec
from tools.host.client import HostClient
from tools.host.ledger import load_cards
from tools.host.server import HostSimulator

GOOD = "4761739001010010"  # balance 50000
POOR = "4761739001010028"  # balance 500
EXPIRED = "4761739001010036"
BLOCKED = "4761739001010044"
LOCKOUT = "4761739001010051"
LIMITED = "4761739001010069"  # limit 1000
QUICK = 0.3  # s: the client's wait where no response is expected


@contextlib.asynccontextmanager
async def running_host(tmp_path, cards=None, clock=None, name="host.db", counter=0):
    host = HostSimulator(str(tmp_path / name), cards, clock=clock)
    await host.start()
    try:
        # A DUKPT terminal (the test initial key); `counter`: its last counter used before.
        yield host, HostClient(host.port, counter=counter)
    finally:
        await host.stop()


def run(coro):
    asyncio.run(asyncio.wait_for(coro, 15))


def balance(host, pan):
    return host.ledger.card(pan)["balance"]


def rc(response):
    return response[1]["39"]


# -- decisions


def test_default_cards_have_labels():
    cards = load_cards()
    assert {c["pan"] for c in cards} == {GOOD, POOR, EXPIRED, BLOCKED, LOCKOUT, LIMITED}
    assert all(c.get("label") for c in cards)
    assert cards[0] == {**cards[0], "pan": GOOD, "expiry": "2812", "pin": "1234",
                        "balance": 50000, "status": "active"}


def test_approval_moves_balance(tmp_path):
    async def body():
        async with running_host(tmp_path) as (host, client):
            mti, f = await client.purchase(GOOD, "1234", 1250, 1)
            assert mti == "0210" and f["39"] == "00"
            assert f["11"] == "000001" and f["4"] == "000000001250" and f["41"] == "TERM0001"
            assert f["3"] == "000000" and len(f["37"]) == 12 and f["37"].isdigit()
            assert len(f["38"]) == 6
            assert balance(host, GOOD) == 50000 - 1250
            _, g = await client.purchase(GOOD, "1234", 750, 2)
            assert g["39"] == "00" and g["37"] != f["37"]
            assert balance(host, GOOD) == 50000 - 2000
            assert host.export_ledger() == [
                {"tid": "TERM0001", "batch": "000001", "stan": "000001", "rrn": f["37"],
                 "type": "purchase", "amount": 1250, "pan_last4": "0010", "status": "approved",
                 "rc": "00", "receipt_confirmed": False},
                {"tid": "TERM0001", "batch": "000001", "stan": "000002", "rrn": g["37"],
                 "type": "purchase", "amount": 750, "pan_last4": "0010", "status": "approved",
                 "rc": "00", "receipt_confirmed": False}]
            assert host.ledger.totals("TERM0001", "000001") == {
                "tid": "TERM0001", "batch": "000001", "count": 2, "amount": 2000}
            json.dumps(host.export_ledger())
    run(body())


@pytest.mark.parametrize("pan, pin, amount, code", [
    ("4000000000000002", "1234", 100, "14"),   # unknown PAN
    (BLOCKED, "1234", 100, "05"),
    (EXPIRED, "1234", 100, "54"),
    (GOOD, "4321", 100, "55"),
    (LIMITED, "1234", 1001, "61"),
    (POOR, "1234", 501, "51"),
])
def test_declines(tmp_path, pan, pin, amount, code):
    async def body():
        async with running_host(tmp_path) as (host, client):
            before = host.ledger.card(pan)
            mti, f = await client.purchase(pan, pin, amount, 1)
            assert (mti, f["39"]) == ("0210", code)
            assert "38" not in f and len(f["37"]) == 12
            if before:
                assert balance(host, pan) == before["balance"]
            [txn] = host.export_ledger()
            assert txn["status"] == "declined" and txn["rc"] == code
            assert txn["pan_last4"] == pan[-4:]
    run(body())


def test_limits_are_inclusive(tmp_path):
    async def body():
        async with running_host(tmp_path) as (host, client):
            assert rc(await client.purchase(LIMITED, "1234", 1000, 1)) == "00"
            assert rc(await client.purchase(POOR, "1234", 500, 2)) == "00"
            assert balance(host, POOR) == 0
            assert rc(await client.purchase(POOR, "1234", 1, 3)) == "51"
    run(body())


def test_expiry_is_checked_against_the_current_month(tmp_path):
    now = [datetime.datetime(2028, 12, 31, 23, 59, tzinfo=datetime.timezone.utc)]
    cards = [{"pan": GOOD, "expiry": "2812", "pin": "1234", "balance": 5000, "status": "active"}]

    async def body():
        async with running_host(tmp_path, cards, clock=lambda: now[0]) as (host, client):
            assert rc(await client.purchase(GOOD, "1234", 100, 1)) == "00"
            now[0] = datetime.datetime(2029, 1, 1, tzinfo=datetime.timezone.utc)
            assert rc(await client.purchase(GOOD, "1234", 100, 2)) == "54"
    run(body())


def test_wrong_pin_lockout_after_three(tmp_path):
    async def body():
        async with running_host(tmp_path) as (host, client):
            # A correct PIN between wrong ones resets the count.
            assert rc(await client.purchase(LOCKOUT, "0000", 100, 1)) == "55"
            assert rc(await client.purchase(LOCKOUT, "0000", 100, 2)) == "55"
            assert rc(await client.purchase(LOCKOUT, "1234", 100, 3)) == "00"
            assert rc(await client.purchase(LOCKOUT, "1111", 100, 4)) == "55"
            assert rc(await client.purchase(LOCKOUT, "2222", 100, 5)) == "55"
            assert rc(await client.purchase(LOCKOUT, "3333", 100, 6)) == "75"
            assert host.ledger.card(LOCKOUT)["locked"]
            # Locked: even the right PIN is refused; other cards are not affected.
            assert rc(await client.purchase(LOCKOUT, "1234", 100, 7)) == "75"
            assert rc(await client.purchase(GOOD, "1234", 100, 8)) == "00"
            assert balance(host, LOCKOUT) == 50000 - 100
    run(body())


def test_scenario_cards_replace_the_defaults(tmp_path):
    cards = [{"pan": "5555000011112222", "expiry": "3001", "pin": "9999", "balance": 300,
              "status": "active"}]

    async def body():
        async with running_host(tmp_path, cards) as (host, client):
            assert rc(await client.purchase("5555000011112222", "9999", 300, 1, "3001")) == "00"
            assert rc(await client.purchase(GOOD, "1234", 100, 2)) == "14"
    run(body())


def test_full_pan_and_pin_never_in_transactions(tmp_path):
    async def body():
        async with running_host(tmp_path) as (host, client):
            await client.purchase(GOOD, "1234", 100, 1)
            await client.purchase(GOOD, "9876", 100, 2)
            await client.purchase("4000000000000002", "1234", 100, 3)
            db = sqlite3.connect(host.db_path)
            dump = repr(db.execute("SELECT * FROM transactions").fetchall())
            dump += repr(db.execute("SELECT * FROM absent").fetchall())
            db.close()
            assert GOOD not in dump and "4000000000000002" not in dump and "9876" not in dump
            assert all(GOOD not in line and "9876" not in line for line in host.log)
    run(body())


# -- host side rules


def test_duplicate_stan_is_declined_94_and_charged_once(tmp_path):
    async def body():
        async with running_host(tmp_path) as (host, client):
            first = await client.purchase(GOOD, "1234", 1250, 42)
            again = await client.purchase(GOOD, "1234", 1250, 42)
            assert rc(first) == "00" and rc(again) == "94" and "38" not in again[1]
            assert balance(host, GOOD) == 50000 - 1250
            assert [t["status"] for t in host.export_ledger()] == ["approved"]
            # The same STAN in another batch or from another terminal is a new transaction.
            client.batch = "000002"
            assert rc(await client.purchase(GOOD, "1234", 1250, 42)) == "00"
            other = HostClient(host.port, tid="TERM0002",
                               initial_key_id=bytes.fromhex("1234567800000002"))
            assert rc(await other.purchase(GOOD, "1234", 1250, 42)) == "00"
            assert balance(host, GOOD) == 50000 - 3 * 1250
    run(body())


def test_query_answers_the_original(tmp_path):
    async def body():
        async with running_host(tmp_path) as (host, client):
            _, p = await client.purchase(GOOD, "1234", 1250, 1)
            mti, q = await client.query(1250, 1)
            assert mti == "0610"
            assert (q["39"], q["37"], q["38"], q["11"], q["4"]) == (
                "00", p["37"], p["38"], "000001", "000000001250")
            await client.purchase(POOR, "1234", 9999, 2)
            mti, q = await client.query(9999, 2)
            assert (mti, q["39"]) == ("0610", "51") and "38" not in q and "37" not in q
            assert balance(host, GOOD) == 50000 - 1250  # a query charges nothing
    run(body())


def test_query_no_record_then_late_original_is_94(tmp_path):
    async def body():
        async with running_host(tmp_path) as (host, client):
            mti, q = await client.query(1250, 5)
            assert (mti, q["39"]) == ("0610", "25") and "37" not in q
            late = await client.purchase(GOOD, "1234", 1250, 5)
            assert rc(late) == "94"
            assert balance(host, GOOD) == 50000
            assert host.export_ledger() == []
            assert rc(await client.query(1250, 5)) == "25"  # "no record" stays true
    run(body())


def test_reversal_restores_balance_and_is_idempotent(tmp_path):
    async def body():
        async with running_host(tmp_path) as (host, client):
            await client.purchase(GOOD, "1234", 1250, 1)
            assert balance(host, GOOD) == 50000 - 1250
            mti, r = await client.reversal(1250, 1)
            assert (mti, r["39"], r["11"]) == ("0410", "00", "000001")
            assert balance(host, GOOD) == 50000
            mti, r = await client.reversal(1250, 1, repeat=True)
            assert (mti, r["39"]) == ("0410", "00")
            mti, r = await client.reversal(1250, 1, repeat=True, reason="A0")
            assert balance(host, GOOD) == 50000
            [txn] = host.export_ledger()
            assert txn["status"] == "reversed" and txn["amount"] == 1250
            assert host.ledger.totals("TERM0001", "000001")["count"] == 0
    run(body())


def test_reversal_of_unknown_or_declined(tmp_path):
    async def body():
        async with running_host(tmp_path) as (host, client):
            assert rc(await client.reversal(1250, 9)) == "00"  # acknowledged, remembered
            assert rc(await client.purchase(GOOD, "1234", 1250, 9)) == "94"
            await client.purchase(POOR, "1234", 9999, 10)
            assert rc(await client.reversal(9999, 10)) == "00"
            assert balance(host, POOR) == 500 and balance(host, GOOD) == 50000
            assert [t["status"] for t in host.export_ledger()] == ["declined"]
    run(body())


def test_advice_sets_receipt_confirmed(tmp_path):
    async def body():
        async with running_host(tmp_path) as (host, client):
            _, p = await client.purchase(GOOD, "1234", 1250, 1)
            assert host.export_ledger()[0]["receipt_confirmed"] is False
            mti, a = await client.advice(1250, 1, p["37"], p["38"])
            assert (mti, a["39"], a["11"]) == ("0230", "00", "000001")
            assert host.export_ledger()[0]["receipt_confirmed"] is True
            assert rc(await client.advice(1250, 1, p["37"], p["38"])) == "00"
            assert host.export_ledger()[0]["receipt_confirmed"] is True
            assert balance(host, GOOD) == 50000 - 1250
            assert rc(await client.advice(1250, 77, "000000000000", "000000")) == "25"
    run(body())


def test_bad_request_mac_is_63_and_changes_nothing(tmp_path):
    async def body():
        async with running_host(tmp_path) as (host, client):
            mti, f = await client.purchase(GOOD, "1234", 1250, 1, corrupt_mac=True)
            assert (mti, f["39"], f["11"]) == ("0210", "63", "000001")  # response MAC is good
            await client.purchase(GOOD, "1234", 1250, 2)
            assert rc(await client.reversal(1250, 2, corrupt_mac=True)) == "63"
            assert rc(await client.query(1250, 3, corrupt_mac=True)) == "63"
            assert balance(host, GOOD) == 50000 - 1250  # the forged reversal moved nothing
            assert [t["stan"] for t in host.export_ledger()] == ["000002"]
            # A request with a bad MAC leaves no tombstone and no record: STAN 1 is still free.
            assert rc(await client.purchase(GOOD, "1234", 1250, 1)) == "00"
            assert rc(await client.purchase(GOOD, "1234", 1250, 3)) == "00"
            wrong_key = HostClient(host.port, initial_key=bytes(16), counter=100)
            with pytest.raises(spec.MacError):  # the host's answer is under its own key
                await wrong_key.purchase(GOOD, "1234", 1, 4)
            assert [line for line in host.log if "security: bad MAC" in line]
    run(body())


def test_several_requests_on_one_connection(tmp_path):
    async def body():
        async with running_host(tmp_path) as (host, client):
            reader, writer = await asyncio.open_connection("127.0.0.1", host.port)
            for stan in (1, 2):
                frame = client.encode("0200", client.purchase_fields(GOOD, "2812", "1234", 100,
                                                                     stan))
                writer.write(spec.frame_with_length(frame))
                n = int.from_bytes(await reader.readexactly(2), "big")
                assert client.decode(await reader.readexactly(n))[1]["39"] == "00"
            writer.close()
            assert balance(host, GOOD) == 50000 - 200
    run(body())


def test_garbage_does_not_kill_the_server(tmp_path):
    async def raw(port, data, read=True):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(data)
        await writer.drain()
        got = await asyncio.wait_for(reader.read(100), 2) if read else b""
        writer.close()
        return got

    async def body():
        async with running_host(tmp_path) as (host, client):
            mac = keys.MAC_KEY
            valid = spec.encode_msg("0200", client.purchase_fields(GOOD, "2812", "1234", 1, 1),
                                    mac)
            for data in (b"GET / HTTP/1.0\r\n\r\n",               # length 0x4745: too long
                         b"\x00\x00",                              # empty frame
                         b"\x00\x05hello",                         # not ISO 8583
                         b"\x00\x0c0200" + b"\xff" * 8,            # fields that are not there
                         b"\x00\x04" + b"0800",                    # no bitmap
                         spec.frame_with_length(b"9" + valid[1:]),  # unknown MTI
                         spec.frame_with_length(valid[:-3]),       # truncated message
                         b"\x00\x40short"):                        # announced more than sent
                assert await raw(host.port, data, read=not data.endswith(b"short")) == b""
            host.idle_timeout_s = 0.2  # a half-sent frame is closed after the idle timeout
            assert await raw(host.port, b"\x00") == b""
            assert await raw(host.port, b"\x00\x40short") == b""
            assert rc(await client.purchase(GOOD, "1234", 1250, 1)) == "00"
            garbage = [line for line in host.log if "closed" in line]
            assert len(garbage) >= 8
    run(body())


# -- faults


def test_fault_validation(tmp_path):
    host = HostSimulator(str(tmp_path / "h.db"))
    for bad in ({"host": "explode"}, {"host": "delay_response"}, {"host": "bad_mac", "for": "x"},
                {"host": "bad_mac", "times": 0}, {"host": "bad_mac", "times": "many"},
                {"tap": GOOD}):
        with pytest.raises(ValueError):
            host.inject(bad)
    host.ledger.close()


def test_drop_request(tmp_path):
    async def body():
        async with running_host(tmp_path) as (host, client):
            host.inject({"host": "drop_request"})
            client.timeout = QUICK
            assert await client.purchase(GOOD, "1234", 1250, 1) is None
            assert host.export_ledger() == [] and balance(host, GOOD) == 50000
            assert rc(await client.query(1250, 1)) == "25"
            assert rc(await client.purchase(GOOD, "1234", 1250, 2)) == "00"  # once only
            assert "fault=drop_request" in " ".join(host.log)
    run(body())


def test_drop_response_commits(tmp_path):
    async def body():
        async with running_host(tmp_path) as (host, client):
            host.inject({"host": "drop_response"})
            client.timeout = QUICK
            assert await client.purchase(GOOD, "1234", 1250, 1) is None
            assert balance(host, GOOD) == 50000 - 1250
            mti, q = await client.query(1250, 1)
            assert q["39"] == "00" and len(q["38"]) == 6
    run(body())


def test_delay_response(tmp_path):
    async def body():
        async with running_host(tmp_path) as (host, client):
            host.inject({"host": "delay_response", "ms": 400})
            t0 = time.monotonic()
            assert rc(await client.purchase(GOOD, "1234", 1250, 1)) == "00"
            assert time.monotonic() - t0 >= 0.4
            # The terminal that gives up first still finds the approval committed.
            # (A delay far beyond the client's wait: a loaded machine cannot blur the two.)
            host.inject({"host": "delay_response", "ms": 3000})
            client.timeout = 0.2
            t0 = time.monotonic()
            assert await client.purchase(GOOD, "1234", 1000, 2) is None
            assert time.monotonic() - t0 < 2.5
            assert balance(host, GOOD) == 50000 - 2250
            client.timeout = 2
            assert rc(await client.query(1000, 2)) == "00"
    run(body())


def test_disconnect_does_not_process(tmp_path):
    async def body():
        async with running_host(tmp_path) as (host, client):
            host.inject({"host": "disconnect"})
            client.timeout = 10
            t0 = time.monotonic()
            assert await client.purchase(GOOD, "1234", 1250, 1) is None
            assert time.monotonic() - t0 < 5  # closed at once, not a timeout
            assert host.export_ledger() == [] and balance(host, GOOD) == 50000
            assert rc(await client.purchase(GOOD, "1234", 1250, 1)) == "00"
    run(body())


def test_bad_mac_response(tmp_path):
    async def body():
        async with running_host(tmp_path) as (host, client):
            host.inject({"host": "bad_mac"})
            with pytest.raises(spec.MacError) as err:
                await client.purchase(GOOD, "1234", 1250, 1)
            assert err.value.mti == "0210" and err.value.fields["39"] == "00"
            assert balance(host, GOOD) == 50000 - 1250  # committed all the same
            assert rc(await client.query(1250, 1)) == "00"
    run(body())


def test_fault_aims_at_one_kind_of_exchange(tmp_path):
    async def body():
        async with running_host(tmp_path) as (host, client):
            client.timeout = QUICK
            host.inject({"host": "drop_response", "for": "query"})
            host.inject({"host": "bad_mac", "for": "reversal", "times": 2})
            host.inject({"host": "disconnect", "for": "advice"})
            _, p = await client.purchase(GOOD, "1234", 1250, 1)  # not aimed at: fine
            assert p["39"] == "00"
            assert await client.query(1250, 1) is None
            assert rc(await client.query(1250, 1)) == "00"
            for repeat in (False, True):  # 0400 and 0401 are both "reversal"
                with pytest.raises(spec.MacError):
                    await client.reversal(1250, 1, repeat=repeat)
            assert balance(host, GOOD) == 50000  # the first one reversed it
            assert rc(await client.reversal(1250, 1, repeat=True)) == "00"
            assert await client.advice(1250, 1, p["37"], p["38"]) is None
            assert host.export_ledger()[0]["receipt_confirmed"] is False  # not processed
            assert rc(await client.advice(1250, 1, p["37"], p["38"])) == "00"
            assert host.faults == []
    run(body())


def test_times_n_all_and_heal(tmp_path):
    async def body():
        async with running_host(tmp_path) as (host, client):
            host.inject({"host": "disconnect", "times": 2})
            assert await client.purchase(GOOD, "1234", 100, 1) is None
            assert await client.purchase(GOOD, "1234", 100, 2) is None
            assert rc(await client.purchase(GOOD, "1234", 100, 3)) == "00"
            host.inject({"host": "disconnect", "times": "all"})
            host.inject({"host": "disconnect", "for": "query", "times": "all"})
            for stan in range(4, 9):
                assert await client.purchase(GOOD, "1234", 100, stan) is None
                assert await client.query(100, stan) is None
            host.inject({"host": "heal"})
            assert rc(await client.purchase(GOOD, "1234", 100, 9)) == "00"
            assert rc(await client.query(100, 9)) == "00"
            assert balance(host, GOOD) == 50000 - 200
            exchanges = [line for line in host.log if ">" in line]
            assert sum("fault=disconnect" in line for line in exchanges) == 12
    run(body())


def test_host_down_up_and_heal(tmp_path):
    async def body():
        async with running_host(tmp_path) as (host, client):
            port = host.port
            host.inject({"host": "host_down"})
            with pytest.raises(ConnectionRefusedError):
                await client.purchase(GOOD, "1234", 100, 1)
            host.inject({"host": "host_down"})  # twice is harmless
            host.inject({"host": "host_up"})
            assert host.port == port
            assert rc(await client.purchase(GOOD, "1234", 100, 1)) == "00"
            host.inject({"host": "host_down"})
            host.inject({"host": "bad_mac"})
            with pytest.raises(ConnectionRefusedError):
                await client.purchase(GOOD, "1234", 100, 2)
            host.inject({"host": "heal"})  # up again, and the bad_mac is gone
            assert rc(await client.purchase(GOOD, "1234", 100, 2)) == "00"
    run(body())


def test_crash_after_commit_keeps_the_ledger(tmp_path):
    async def body():
        async with running_host(tmp_path) as (host, client):
            _, p = await client.purchase(GOOD, "1234", 500, 1)
            # A second connection, idle, is cut by the crash too.
            reader, writer = await asyncio.open_connection("127.0.0.1", host.port)
            host.inject({"host": "crash_after_commit", "ms": 400})
            t0 = time.monotonic()
            assert await client.purchase(GOOD, "1234", 1250, 2) is None
            assert await asyncio.wait_for(reader.read(10), 1) == b""
            writer.close()
            with pytest.raises(ConnectionRefusedError):
                await client.query(1250, 2)
            while time.monotonic() - t0 < 3:
                try:
                    answer = await client.query(1250, 2)
                    break
                except ConnectionRefusedError:
                    await asyncio.sleep(0.05)
            assert time.monotonic() - t0 >= 0.4
            assert answer[1]["39"] == "00"
            assert balance(host, GOOD) == 50000 - 1750
            assert rc(await client.query(500, 1)) == "00"
            assert [t["stan"] for t in host.export_ledger()] == ["000001", "000002"]
            assert rc(await client.purchase(GOOD, "1234", 1250, 2)) == "94"
            assert any("fault=crash_after_commit" in line for line in host.log)
        # And a new simulator on the same file sees it all (WAL, nothing reseeded), the KSNs
        # used too: the terminal goes on from its counter.
        async with running_host(tmp_path, counter=client.dukpt.counter) as (host, client):
            assert balance(host, GOOD) == 50000 - 1750
            assert rc(await client.query(1250, 2)) == "00"
        assert os.path.exists(tmp_path / "host.db")
    run(body())


def test_log_lines(tmp_path):
    lines = []

    async def body():
        host = HostSimulator(str(tmp_path / "h.db"), on_log=lines.append)
        await host.start()
        client = HostClient(host.port)
        host.inject({"host": "delay_response", "ms": 10})
        await client.purchase(GOOD, "1234", 1250, 123)
        await host.stop()
        assert host.export_ledger()[0]["stan"] == "000123"  # readable after stop()

    run(body())
    [line] = [line for line in lines if line.endswith("response delayed")]
    assert "0200>0210" in line and "stan=000123" in line and "rc=00" in line
    assert "fault=delay_response(10ms)" in line and "amount=1250" in line
    assert line[:12].count(":") == 2  # HH:MM:SS.mmm first
