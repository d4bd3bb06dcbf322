"""python-kraken-sdk 3.5.1 as shipped, pointed at a real `cambio serve` the way the
reference (§7.5) shows: its REST clients, and its order-book client, which keeps a book
from the WebSocket feed and validates every checksum itself."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kraken.spot import Market, SpotClient, SpotOrderBookClient, SpotWSClient, Trade, User
from test_kraken_rest import admin
from test_server import start


@pytest.fixture(scope="module")
def sdk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("sdk") / "data"
    proc, info = start(data)
    base = info["api_url"]
    saved = SpotClient.URL, SpotWSClient.WS_URL, SpotWSClient.AUTH_WS_URL
    SpotClient.URL = base  # also covers the Market() the order-book client makes itself
    SpotWSClient.WS_URL = SpotWSClient.AUTH_WS_URL = base.replace("http://", "ws://")
    try:
        frank = admin(data, "account", "create", "frank", "--deposit", "USD=100000",
                      "--deposit", "XBT=10")  # fmt: skip
        key = {"key": frank["api_key"], "secret": frank["api_secret"], "url": base}
        yield {"base": base, "key": key}
    finally:
        SpotClient.URL, SpotWSClient.WS_URL, SpotWSClient.AUTH_WS_URL = saved
        proc.terminate()
        proc.wait(30)


def test_sdk_rest_clients(sdk: dict[str, Any]) -> None:
    market = Market(url=sdk["base"])
    assert list(market.get_assets(assets=["XBT"])) == ["XXBT"]
    assert market.get_asset_pairs(pair=["XBTUSD"])["XXBTZUSD"]["lot_decimals"] == 8
    assert market.get_system_status()["status"] == "online"
    user, trade = User(**sdk["key"]), Trade(**sdk["key"])
    assert user.get_balances()["XXBT"]["balance"] == "10.0000000000"
    placed = trade.create_order(
        ordertype="limit", side="buy", volume="0.01", pair="XBTUSD", price="30000"
    )
    (txid,) = placed["txid"]
    time.sleep(0.002)  # the SDK's nonce has a finer scale, but keep calls apart anyway
    assert list(user.get_open_orders()["open"]) == [txid]
    time.sleep(0.002)
    assert trade.cancel_order(txid=txid) == {"count": 1}
    book = market.get_order_book(pair="XBTUSD")["XXBTZUSD"]
    assert book == {"asks": [], "bids": []}


def test_sdk_order_book_client_validates_every_checksum(sdk: dict[str, Any]) -> None:
    trade = Trade(**sdk["key"])
    for i in range(12):  # more levels than the checksum covers, on both sides
        for side, price in (("buy", 40000 + 10 * i), ("sell", 60000 + 10 * i)):
            trade.create_order(
                ordertype="limit", side=side, volume="0.01", pair="XBTUSD", price=str(price)
            )
            time.sleep(0.002)
    messages: list[dict[str, Any]] = []

    async def on_update(pair: str, message: dict[str, Any]) -> None:
        messages.append(message)

    async def run() -> dict[str, Any]:
        client = SpotOrderBookClient(depth=10, callback=on_update)
        await client.start()
        try:
            await client.add_book(pairs=["BTC/USD"])
            await asyncio.sleep(0.5)
            for i in range(5):  # five new best bids, each an update
                order = {"ordertype": "limit", "side": "buy", "volume": "0.02", "pair": "XBTUSD"}
                await asyncio.to_thread(trade.create_order, price=str(45000 + 10 * i), **order)
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)
            book: dict[str, Any] = client.get(pair="BTC/USD")
            return book
        finally:
            await client.close()

    book = asyncio.run(run())
    assert [m for m in messages if "error" in m] == []  # a mismatch would be reported here
    assert len(messages) >= 6 and book["valid"]
    assert list(book["bid"])[:2] == ["45040.0", "45030.0"]
