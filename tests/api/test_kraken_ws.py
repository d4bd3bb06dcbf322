"""Kraken WebSocket v2 with real clients: a raw client checks every book checksum against
its own book kept from the wire text, and ccxt.pro (as shipped) watches books, trades,
tickers, orders, fills and balances, and trades over the socket."""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Iterator
from typing import Any

import ccxt.pro as ccxtpro
import httpx
import pytest
import websockets
from test_kraken_rest import Krakenex, admin
from test_server import start


@pytest.fixture(scope="module")
def venue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("ws") / "data"
    proc, info = start(data)
    try:
        maker = admin(data, "account", "create", "maker", "--deposit", "USD=1000000",
                      "--deposit", "XBT=100")  # fmt: skip
        taker = admin(data, "account", "create", "taker", "--deposit", "USD=1000000",
                      "--deposit", "XBT=100")  # fmt: skip
        ws = info["api_url"].replace("http://", "ws://") + "/v2"
        yield {"info": info, "maker": maker, "taker": taker, "ws": ws, "data": data}
    finally:
        proc.terminate()
        proc.wait(30)


def kx(venue: dict[str, Any], who: str) -> Krakenex:
    k = Krakenex(key=venue[who]["api_key"], secret=venue[who]["api_secret"])
    k.uri = venue["info"]["api_url"]
    return k


def order(k: Krakenex, side: str, price: str, volume: str, **extra: Any) -> str:
    reply = k.query_private("AddOrder", {"pair": "XBTUSD", "type": side, "ordertype": "limit",
                                         "price": price, "volume": volume, **extra})  # fmt: skip
    assert reply["error"] == [], reply
    txid: str = reply["result"]["txid"][0]
    return txid


def crc(book: dict[str, dict[str, str]]) -> int:
    """The reference's algorithm, from the wire's own strings."""
    asks = sorted(book["asks"].items(), key=lambda kv: float(kv[0]))[:10]
    bids = sorted(book["bids"].items(), key=lambda kv: -float(kv[0]))[:10]
    text = "".join(
        price.replace(".", "").lstrip("0") + qty.replace(".", "").lstrip("0")
        for price, qty in asks + bids
    )
    return zlib.crc32(text.encode())


async def next_message(sock: Any, channel: str) -> dict[str, Any]:
    while True:
        msg: dict[str, Any] = json.loads(await asyncio.wait_for(sock.recv(), 10), parse_float=str)
        if msg.get("channel") == channel:
            return msg


def test_book_checksums_hold_on_every_message(venue: dict[str, Any]) -> None:
    maker, taker = kx(venue, "maker"), kx(venue, "taker")
    for i in range(12):  # more than the 10 levels the checksum covers, both sides
        order(maker, "buy", str(40000 + 10 * i), "0.01")
        order(maker, "sell", str(60000 + 10 * i), "0.02")

    async def run() -> int:
        async with websockets.connect(venue["ws"]) as sock:
            status = await next_message(sock, "status")
            assert status["data"][0]["system"] == "online"
            await sock.send(json.dumps({"method": "subscribe", "req_id": 7,
                                        "params": {"channel": "book", "symbol": ["BTC/USD"],
                                                   "depth": 10}}))  # fmt: skip
            ack = json.loads(await sock.recv())
            assert (ack["method"], ack["success"], ack["req_id"]) == ("subscribe", True, 7)
            assert ack["result"] == {"channel": "book", "symbol": "BTC/USD", "depth": 10,
                                     "snapshot": True}  # fmt: skip
            snap = (await next_message(sock, "book"))["data"][0]
            assert snap["asks"][0] == {"price": "60000.0", "qty": "0.02000000"}
            book = {
                side: {lv["price"]: lv["qty"] for lv in snap[side]} for side in ("bids", "asks")
            }
            assert crc(book) == snap["checksum"]
            # changes: a new best bid, a cancel, a partial and a full fill
            txid = order(maker, "buy", "45000", "0.5")
            order(taker, "sell", "40110", "0.2")  # takes 0.2 of the 45,000 bid
            assert maker.query_private("CancelOrder", {"txid": txid})["error"] == []
            order(taker, "buy", "60000", "0.02")  # takes the whole best ask
            checked = 0
            while checked < 4:
                update = (await next_message(sock, "book"))["data"][0]
                for side in ("bids", "asks"):
                    for level in update[side]:
                        if float(level["qty"]) == 0:
                            book[side].pop(level["price"], None)
                        else:
                            book[side][level["price"]] = level["qty"]
                    keep = sorted(book[side], key=float, reverse=side == "bids")[:10]
                    book[side] = {price: book[side][price] for price in keep}
                assert crc(book) == update["checksum"], update
                checked += 1
            return checked

    assert asyncio.run(run()) == 4


def test_requests_echo_req_id_and_errors_are_strings(venue: dict[str, Any]) -> None:
    async def run() -> None:
        async with websockets.connect(venue["ws"]) as sock:
            await next_message(sock, "status")
            await sock.send(json.dumps({"method": "ping", "req_id": 11}))
            pong = json.loads(await sock.recv())
            assert (pong["method"], pong["req_id"]) == ("pong", 11)
            cases = [
                ({"channel": "book", "symbol": ["NOPE/USD"]}, "Currency pair not supported"),
                ({"channel": "book", "symbol": ["BTC/USD"], "depth": 7}, "depth not supported"),
                ({"channel": "nothing"}, "Subscription name invalid"),
                ({"channel": "executions", "token": "forged"}, "EAPI:Invalid token"),
            ]
            for n, (params, error) in enumerate(cases, 20):
                await sock.send(json.dumps({"method": "subscribe", "params": params, "req_id": n}))
                reply = json.loads(await sock.recv())
                assert (reply["req_id"], reply["success"]) == (n, False)
                assert isinstance(reply["error"], str) and error in reply["error"]

    asyncio.run(run())


def test_ccxt_pro_watches_and_trades_over_the_socket(venue: dict[str, Any]) -> None:
    base = venue["info"]["api_url"]
    ws = base.replace("http://", "ws://")

    async def run() -> None:
        key = venue["taker"]
        ex = ccxtpro.kraken(
            {"apiKey": key["api_key"], "secret": key["api_secret"], "enableRateLimit": False}
        )
        ex.urls["api"]["public"] = ex.urls["api"]["private"] = base
        ex.urls["api"]["ws"] = {"public": ws, "private": ws + "/auth", "publicV2": ws + "/v2",
                                "privateV2": ws + "/v2"}  # fmt: skip
        try:
            await ex.load_markets()
            book = await ex.watch_order_book("BTC/USD", 10)
            rest = await ex.fetch_order_book("BTC/USD", 10)
            for side in ("bids", "asks"):  # REST levels carry a timestamp too
                assert book[side][:10] == [level[:2] for level in rest[side][:10]]
            balance = await ex.watch_balance()
            usd_before = balance["total"]["USD"]
            trades = asyncio.ensure_future(ex.watch_trades("BTC/USD"))
            fills = asyncio.ensure_future(ex.watch_my_trades())
            await asyncio.sleep(0.2)
            placed = await ex.create_order_ws("BTC/USD", "limit", "buy", 0.01, 60010)
            assert placed["id"].startswith("O")
            seen = await trades
            assert [(t["price"], t["amount"], t["side"]) for t in seen] == [(60010.0, 0.01, "buy")]
            mine = await fills
            assert [(t["order"], t["price"], t["amount"]) for t in mine] == [
                (placed["id"], 60010.0, 0.01)
            ]
            assert mine[0]["fee"] == {"cost": 1.56026, "currency": "USD"}  # 0.26 % of 600.10
            ticker = await ex.watch_ticker("BTC/USD")
            assert (ticker["last"], ticker["ask"], ticker["askVolume"]) == (60010.0, 60010.0, 0.01)
            orders = asyncio.ensure_future(ex.watch_orders())
            await asyncio.sleep(0.2)
            resting = await ex.create_order_ws("BTC/USD", "limit", "buy", 0.01, 30000)
            updates = await orders
            assert resting["id"] in [o["id"] for o in updates]
            released = asyncio.ensure_future(ex.watch_balance())
            await asyncio.sleep(0.2)
            await ex.cancel_order_ws(resting["id"])
            balance = await asyncio.wait_for(released, 10)
            assert balance["total"]["USD"] == usd_before - 600.1 - 1.56026
        finally:
            await ex.close()

    asyncio.run(run())


def test_status_is_pushed_when_the_exchange_mode_changes(venue: dict[str, Any]) -> None:
    token = (venue["data"] / "admin.token").read_text().strip()

    def set_mode(mode: str) -> None:
        reply = httpx.post(
            venue["info"]["admin_url"] + "/v1/commands",
            json={"type": "set_global_mode", "mode": mode},
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        assert reply["error"] == [], reply

    async def run() -> list[str]:
        async with websockets.connect(venue["ws"]) as sock:
            first = await next_message(sock, "status")
            seen = [first["data"][0]["system"]]
            await asyncio.to_thread(set_mode, "cancel_only")
            seen.append((await next_message(sock, "status"))["data"][0]["system"])
            await asyncio.to_thread(set_mode, "online")
            seen.append((await next_message(sock, "status"))["data"][0]["system"])
            return seen

    assert asyncio.run(run()) == ["online", "cancel_only", "online"]


def test_trade_snapshot_is_the_newest_trades_oldest_first(venue: dict[str, Any]) -> None:
    rest = kx(venue, "maker").query_public("Trades", {"pair": "XBTUSD"})["result"]["XXBTZUSD"]
    assert rest, "the tests above traded"

    async def run() -> list[dict[str, Any]]:
        async with websockets.connect(venue["ws"]) as sock:
            await next_message(sock, "status")
            await sock.send(json.dumps({"method": "subscribe", "params": {
                "channel": "trade", "symbol": ["BTC/USD"], "snapshot": True}}))  # fmt: skip
            data: list[dict[str, Any]] = (await next_message(sock, "trade"))["data"]
            return data

    snapshot = asyncio.run(run())
    assert [t["trade_id"] for t in snapshot] == [row[6] for row in rest][-50:]
    assert [t["price"] for t in snapshot] == [row[0] for row in rest][-50:]


def test_batch_add_batch_cancel_and_edit_order_over_the_socket(venue: dict[str, Any]) -> None:
    maker = kx(venue, "maker")
    token = maker.query_private("GetWebSocketsToken")["result"]["token"]

    async def run() -> None:
        async with websockets.connect(venue["ws"]) as sock:
            await next_message(sock, "status")

            async def ask(method: str, req_id: int, **params: Any) -> dict[str, Any]:
                await sock.send(json.dumps({"method": method, "req_id": req_id,
                                            "params": {**params, "token": token}}))  # fmt: skip
                while True:
                    reply: dict[str, Any] = json.loads(await asyncio.wait_for(sock.recv(), 10))
                    if reply.get("req_id") == req_id:
                        return reply

            leg = {"order_type": "limit", "side": "buy", "order_qty": 0.01}
            pair = [{**leg, "limit_price": 1000}, {**leg, "side": "hold"}]
            bad = await ask("batch_add", 1, symbol="BTC/USD", orders=pair)
            assert (bad["success"], bad["error"]) == (False, "EGeneral:Invalid arguments:type")
            made = await ask("batch_add", 2, symbol="BTC/USD", orders=[
                {**leg, "limit_price": 1000, "cl_ord_id": "a-1"},
                {**leg, "limit_price": 1001, "order_qty": 100000},
                {**leg, "limit_price": 1002, "order_userref": 9},
            ])  # fmt: skip
            assert made["success"] is True and made["method"] == "batch_add"
            first, broke, third = made["result"]
            assert first["cl_ord_id"] == "a-1" and first["order_id"].startswith("O")
            assert broke == {"error": "EOrder:Insufficient funds"}
            assert third["order_userref"] == 9

            edited = await ask("edit_order", 3, order_id=first["order_id"], symbol="BTC/USD",
                               order_qty=0.02, limit_price=999)  # fmt: skip
            assert edited["success"] is True, edited
            new_id = edited["result"]["order_id"]
            assert edited["result"]["original_order_id"] == first["order_id"] and new_id
            gone = await ask("edit_order", 4, order_id=first["order_id"], limit_price=998)
            assert (gone["success"], gone["error"]) == (False, "EOrder:Unknown order")

            opened = maker.query_private("QueryOrders", {"txid": f"{new_id},{third['order_id']}"})
            assert opened["result"][new_id]["descr"]["order"] == (
                "buy 0.02000000 XBTUSD @ limit 999.0"
            )
            cancelled = await ask("batch_cancel", 5, orders=[new_id, third["order_id"]])
            assert cancelled["result"] == {"count": 2}
            still_open = maker.query_private("OpenOrders")["result"]["open"]
            assert not {new_id, third["order_id"]} & set(still_open)

    asyncio.run(run())


def test_ohlc_snapshot_then_candles_updated_by_each_trade(venue: dict[str, Any]) -> None:
    maker, taker = kx(venue, "maker"), kx(venue, "taker")
    order(maker, "sell", "55000", "0.01")
    order(taker, "buy", "55000", "0.01")  # a trade before subscribing

    async def run() -> None:
        async with websockets.connect(venue["ws"]) as sock:
            await next_message(sock, "status")
            await sock.send(json.dumps({"method": "subscribe", "req_id": 3, "params": {
                "channel": "ohlc", "symbol": ["BTC/USD"], "interval": 5}}))  # fmt: skip
            ack = json.loads(await sock.recv())
            assert ack["success"] is True and ack["result"]["interval"] == 5
            snap = await next_message(sock, "ohlc")
            assert snap["type"] == "snapshot" and snap["data"]
            last = snap["data"][-1]
            assert last["close"] == "55000.0" and last["interval"] == 5
            before_volume, before_trades = float(last["volume"]), last["trades"]
            order(maker, "sell", "55100", "0.02")
            await asyncio.to_thread(order, taker, "buy", "55100", "0.02")
            update = await next_message(sock, "ohlc")
            assert update["type"] == "update"
            (candle,) = update["data"]
            assert candle["close"] == "55100.0" and candle["high"] >= "55100.0"
            if candle["interval_begin"] == last["interval_begin"]:  # same 5 minutes
                assert candle["trades"] == before_trades + 1
                assert float(candle["volume"]) == pytest.approx(before_volume + 0.02)
            await sock.send(json.dumps({"method": "subscribe", "req_id": 4, "params": {
                "channel": "ohlc", "symbol": ["BTC/USD"], "interval": 7}}))  # fmt: skip
            bad = json.loads(await sock.recv())
            assert bad["success"] is False and "interval" in bad["error"]

    asyncio.run(run())


def test_ccxt_pro_watch_ohlcv_sees_each_trade_in_its_candle(venue: dict[str, Any]) -> None:
    maker, taker = kx(venue, "maker"), kx(venue, "taker")
    base = venue["info"]["api_url"]
    ws = base.replace("http://", "ws://")
    order(maker, "sell", "56600", "0.01")
    order(taker, "buy", "56600", "0.01")  # ccxt cannot route an empty snapshot

    async def run() -> None:
        ex = ccxtpro.kraken({"enableRateLimit": False})
        ex.urls["api"]["public"] = base
        ex.urls["api"]["ws"] = {"public": ws, "private": ws, "publicV2": ws + "/v2",
                                "privateV2": ws + "/v2"}  # fmt: skip
        try:
            await ex.load_markets()
            first = await asyncio.wait_for(ex.watch_ohlcv("BTC/USD", "1m"), 10)  # snapshot
            assert first[-1][4] == 56600.0
            order(maker, "sell", "56700", "0.03")
            updated = asyncio.ensure_future(ex.watch_ohlcv("BTC/USD", "1m"))
            await asyncio.sleep(0.2)
            await asyncio.to_thread(order, taker, "buy", "56700", "0.03")
            candles = await asyncio.wait_for(updated, 10)
            _, _, high, _, close, _ = candles[-1]
            assert (close, high >= 56700) == (56700.0, True)
        finally:
            await ex.close()

    asyncio.run(run())
