"""The WebSocket v2 level3 channel against a real server: a client following Kraken's
rules keeps the book order by order through queueing, partial and full fills, cancels,
amends, an iceberg's refills and levels entering the window, and every message's checksum
(which covers queue order) matches its book; python-kraken-sdk subscribes with its own
token handling."""

from __future__ import annotations

import asyncio
import json
import zlib
from decimal import Decimal
from typing import Any

import websockets
from kraken.spot import SpotWSClient
from test_kraken_ws import kx, next_message, order, venue  # noqa: F401  (venue: a fixture)
from test_level3 import Side


def token(v: dict[str, Any], who: str) -> str:
    reply = kx(v, who).query_private("GetWebSocketsToken")
    assert reply["error"] == [], reply
    return str(reply["result"]["token"])


def level3_checksum(asks: Side, bids: Side) -> int:
    """Kraken's level3 algorithm from the wire's own strings: each of the top 10 levels,
    asks then bids, every order in queue order, price then qty, '.' and leading 0s
    removed."""
    text = "".join(
        (price.replace(".", "").lstrip("0") + qty.replace(".", "").lstrip("0"))
        for side in (asks, bids)
        for price, orders in side.best(10, key=Decimal)
        for _, qty in orders
    )
    return zlib.crc32(text.encode())


def load(snapshot: dict[str, Any]) -> tuple[Side, Side]:
    bids, asks = Side(bids=True), Side(bids=False)
    for side, key in ((bids, "bids"), (asks, "asks")):
        for o in snapshot[key]:
            side.apply("add", o["limit_price"], o["order_id"], o["order_qty"])
    return bids, asks


async def subscribe(sock: Any, tok: str, depth: int = 10) -> dict[str, Any]:
    await sock.send(json.dumps({"method": "subscribe", "req_id": 3, "params": {
        "channel": "level3", "symbol": ["BTC/USD"], "depth": depth, "token": tok}}))  # fmt: skip
    ack = await next_message_of(sock, "subscribe")
    assert ack["success"] is True, ack
    assert ack["result"] == {"channel": "level3", "symbol": "BTC/USD", "depth": depth,
                             "snapshot": True}  # fmt: skip
    msg = await next_message(sock, "level3")
    assert msg["type"] == "snapshot"
    data: dict[str, Any] = msg["data"][0]
    return data


async def next_message_of(sock: Any, method: str) -> dict[str, Any]:
    while True:
        msg: dict[str, Any] = json.loads(await asyncio.wait_for(sock.recv(), 10), parse_float=str)
        if msg.get("method") == method:
            return msg


def test_level3_book_follows_every_order_with_matching_checksums(
    venue: dict[str, Any],  # noqa: F811
) -> None:
    maker, taker = kx(venue, "maker"), kx(venue, "taker")
    for i in range(12):  # more levels than the window, both sides
        order(maker, "buy", str(40000 + 10 * i), "0.01")
        order(maker, "sell", str(60000 + 10 * i), "0.02")
    tok = token(venue, "maker")

    async def run() -> None:
        async with websockets.connect(venue["ws"]) as sock:
            snap = await subscribe(sock, tok)
            bids, asks = load(snap)
            assert len(bids.levels) == len(asks.levels) == 10
            assert level3_checksum(asks, bids) == snap["checksum"]
            first = snap["asks"][0]
            assert set(first) == {"order_id", "limit_price", "order_qty", "timestamp"}
            assert (first["limit_price"], first["order_qty"]) == ("60000.0", "0.02000000")

            queued = order(maker, "sell", "60000", "0.03")  # behind the first at 60,000
            order(taker, "buy", "60000", "0.01")  # a partial fill of the first in line
            iceberg = order(maker, "buy", "40120", "0.05", ordertype="iceberg", displayvol="0.01")
            behind = order(maker, "buy", "40120", "0.01")
            order(taker, "sell", "40120", "0.01")  # takes its slice: the next goes behind
            amended = order(maker, "sell", "60010", "0.04")
            reply = maker.query_private("AmendOrder", {"txid": amended, "order_qty": "0.03"})
            assert reply["error"] == [], reply
            assert maker.query_private("CancelOrder", {"txid": queued})["error"] == []
            order(taker, "buy", "60000", "0.01")  # fills the rest of 60,000: level 11 enters
            await sock.send(json.dumps({"method": "ping", "req_id": 99}))

            events: dict[str, int] = {}
            while True:
                msg = json.loads(await asyncio.wait_for(sock.recv(), 10), parse_float=str)
                if msg.get("method") == "pong":
                    break
                if msg.get("channel") != "level3":
                    continue
                update = msg["data"][0]
                for key, side in (("bids", bids), ("asks", asks)):
                    for o in update[key]:
                        events[o["event"]] = events.get(o["event"], 0) + 1
                        side.apply(o["event"], o["limit_price"], o["order_id"], o["order_qty"])
                    side.truncate(10, key=Decimal)
                assert level3_checksum(asks, bids) == update["checksum"], update
            assert events.keys() == {"add", "modify", "delete"}

            ask_prices = [price for price, _ in asks.best(10, key=Decimal)]
            assert ask_prices == [f"{60010 + 10 * i}.0" for i in range(10)]  # 60,100 entered
            (top_bid, in_line), *_ = bids.best(10, key=Decimal)
            assert top_bid == "40120.0"
            assert in_line == [[behind, "0.01000000"], [iceberg, "0.01000000"]]

        async with websockets.connect(venue["ws"]) as fresh:  # a new snapshot agrees
            again = load(await subscribe(fresh, token(venue, "taker")))
            assert again[0].best(10, key=Decimal) == bids.best(10, key=Decimal)
            assert again[1].best(10, key=Decimal) == asks.best(10, key=Decimal)

    asyncio.run(run())


def test_level3_needs_a_token_and_a_supported_depth(venue: dict[str, Any]) -> None:  # noqa: F811
    async def run() -> None:
        async with websockets.connect(venue["ws"]) as sock:
            for params, error in (
                ({}, "EAPI:Invalid token"),
                ({"token": "forged"}, "EAPI:Invalid token"),
                ({"token": token(venue, "taker"), "depth": 25}, "Subscription depth not supported"),
            ):
                await sock.send(json.dumps({"method": "subscribe", "req_id": 5, "params": {
                    "channel": "level3", "symbol": ["BTC/USD"], **params}}))  # fmt: skip
                ack = await next_message_of(sock, "subscribe")
                assert (ack["success"], ack["error"], ack["req_id"]) == (False, error, 5)

    asyncio.run(run())


def test_python_kraken_sdk_subscribes_to_level3(venue: dict[str, Any]) -> None:  # noqa: F811
    base = venue["info"]["api_url"]
    ws = base.replace("http://", "ws://")
    messages: list[dict[str, Any]] = []

    async def on_message(message: dict[str, Any]) -> None:
        messages.append(message)

    async def run() -> None:
        key = venue["taker"]
        # as for Kraken's own ws-l3 endpoint, level3 gets a client of its own
        client = SpotWSClient(key=key["api_key"], secret=key["api_secret"], rest_url=base,
                              ws_url=ws, auth_ws_url=ws, callback=on_message)  # fmt: skip
        await client.start()
        try:
            await client.subscribe(params={"channel": "level3", "symbol": ["BTC/USD"]})
            for _ in range(100):
                if any(m.get("channel") == "level3" for m in messages):
                    break
                await asyncio.sleep(0.05)
        finally:
            await client.close()

    asyncio.run(run())
    acks = [m for m in messages if m.get("method") == "subscribe"]
    assert [a["success"] for a in acks] == [True], messages
    (snap,) = [m for m in messages if m.get("channel") == "level3"]
    assert snap["type"] == "snapshot" and snap["data"][0]["symbol"] == "BTC/USD"
    assert isinstance(snap["data"][0]["checksum"], int)
