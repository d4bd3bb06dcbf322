"""Trading over Kraken's REST API with unmodified clients: two accounts trade against each
other through krakenex and ccxt; orders, trades, fees and balances are checked to the unit,
and refused requests change nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import ccxt
import pytest
from test_kraken_rest import Krakenex, admin
from test_server import start


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("trading") / "data"
    proc, info = start(data)
    try:
        alice = admin(data, "account", "create", "alice", "--deposit", "USD=100000",
                      "--deposit", "XBT=1.5")  # fmt: skip
        bob = admin(data, "account", "create", "bob", "--deposit", "USD=100000",
                    "--deposit", "XBT=2")  # fmt: skip
        carol = admin(data, "account", "create", "carol", "--deposit", "USD=50000",
                      "--deposit", "XBT=1")  # fmt: skip
        yield {"info": info, "alice": alice, "bob": bob, "carol": carol}
    finally:
        proc.terminate()
        proc.wait(30)


def kx(market: dict[str, Any], who: str) -> Krakenex:
    k = Krakenex(key=market[who]["api_key"], secret=market[who]["api_secret"])
    k.uri = market["info"]["api_url"]
    return k


def call(k: Krakenex, method: str, **params: Any) -> Any:
    return k.query_private(method, params)


def test_krakenex_two_accounts_trade_to_the_unit(market: dict[str, Any]) -> None:
    alice, bob = kx(market, "alice"), kx(market, "bob")
    order = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "volume": "0.5"}
    placed = call(alice, "AddOrder", price="50000", userref=7, **order)
    assert placed["error"] == []
    assert placed["result"]["descr"]["order"] == "buy 0.50000000 XBTUSD @ limit 50000.0"
    (txid,) = placed["result"]["txid"]

    before = call(alice, "Balance")["result"]
    refused = [
        call(alice, "AddOrder", price="50000.05", **order)["error"],
        call(alice, "AddOrder", price="50000", **{**order, "volume": "100"})["error"],
        call(alice, "AddOrder", price="50000", **{**order, "pair": "NOPE"})["error"],
        call(alice, "AddOrder", price="50000", **{**order, "type": "hold"})["error"],
        call(alice, "AddOrder", price="50000", **{**order, "volume": "0.00001"})["error"],
    ]
    assert refused == [
        ["EOrder:Invalid price:XXBTZUSD price can only be specified up to 1 decimals."],
        ["EOrder:Insufficient funds"],
        ["EQuery:Unknown asset pair"],
        ["EGeneral:Invalid arguments:type"],
        ["EGeneral:Invalid arguments:volume minimum not met"],
    ]
    validated = call(alice, "AddOrder", price="50000", validate="true", **order)["result"]
    assert "txid" not in validated and validated["descr"]["order"].startswith("buy 0.5")
    assert call(alice, "Balance")["result"] == before  # refusals and validation change nothing

    sold = call(bob, "AddOrder", pair="XBTUSD", type="sell", ordertype="market", volume="0.2")
    assert sold["error"] == []

    opened = call(alice, "OpenOrders", trades="true")["result"]["open"]
    assert list(opened) == [txid]
    mine = opened[txid]
    assert (mine["status"], mine["vol"], mine["vol_exec"], mine["userref"]) == (
        "open", "0.50000000", "0.20000000", 7
    )  # fmt: skip
    assert (mine["cost"], mine["fee"], mine["price"]) == ("10000.00000", "16.0000", "50000.0")
    (trade_id,) = mine["trades"]
    assert list(call(alice, "QueryOrders", txid=txid)["result"]) == [txid]

    bobs = call(bob, "TradesHistory")["result"]
    assert bobs["count"] == 1
    trade = bobs["trades"][trade_id]
    assert (trade["type"], trade["ordertype"], trade["vol"], trade["price"]) == (
        "sell", "market", "0.20000000", "50000.0"
    )  # fmt: skip
    assert (trade["fee"], trade["maker"], trade["pair"]) == ("26.0000", False, "XXBTZUSD")

    assert call(alice, "CancelOrder", txid=txid)["result"] == {"count": 1}
    assert call(alice, "CancelOrder", txid=txid)["error"] == ["EOrder:Unknown order"]
    closed = call(alice, "ClosedOrders")["result"]
    assert closed["count"] == 1 and closed["closed"][txid]["status"] == "canceled"
    assert closed["closed"][txid]["vol_exec"] == "0.20000000"

    # 0.2 BTC at 50,000: alice (maker) pays 0.16 %, bob (taker) 0.26 %
    assert call(alice, "Balance")["result"] == {"XXBT": "1.7000000000", "ZUSD": "89984.0000"}
    assert call(bob, "Balance")["result"] == {"XXBT": "1.8000000000", "ZUSD": "109974.0000"}


def test_ccxt_creates_fetches_and_cancels_orders(market: dict[str, Any]) -> None:
    ex = ccxt.kraken(
        {
            "apiKey": market["carol"]["api_key"],
            "secret": market["carol"]["api_secret"],
            "enableRateLimit": False,
        }
    )
    ex.urls["api"]["public"] = ex.urls["api"]["private"] = market["info"]["api_url"]
    ex.load_markets()

    def pause() -> None:  # ccxt's nonce is in milliseconds, like Kraken's clients
        time.sleep(0.002)

    order = ex.create_order("BTC/USD", "limit", "buy", 0.01, 40000)
    assert order["id"].startswith("O") and order["amount"] == 0.01 and order["price"] == 40000
    pause()
    assert [o["id"] for o in ex.fetch_open_orders("BTC/USD")] == [order["id"]]
    pause()
    fetched = ex.fetch_order(order["id"])
    assert (fetched["status"], fetched["price"], fetched["amount"]) == ("open", 40000.0, 0.01)
    pause()
    ex.cancel_order(order["id"])
    pause()
    assert ex.fetch_order(order["id"])["status"] == "canceled"
    pause()
    with pytest.raises(ccxt.OrderNotFound):
        ex.cancel_order(order["id"])
    pause()
    with pytest.raises(ccxt.InsufficientFunds):
        ex.create_order("BTC/USD", "limit", "buy", 5, 40000)
    pause()
    # a taker fill against a resting sell from another account
    seller = kx(market, "bob")
    assert call(seller, "AddOrder", pair="XBTUSD", type="sell", ordertype="limit",
                price="60000", volume="0.05")["error"] == []  # fmt: skip
    bought = ex.create_order("BTC/USD", "market", "buy", 0.05)
    pause()
    trades = ex.fetch_my_trades("BTC/USD")
    assert [(t["order"], t["side"], t["price"], t["amount"]) for t in trades] == [
        (bought["id"], "buy", 60000.0, 0.05)
    ]
    assert trades[0]["fee"] == {"currency": "USD", "cost": 7.8}  # 0.26 % of 3,000
    pause()
    ex.create_order("BTC/USD", "limit", "buy", 0.01, 30000)
    pause()
    ex.cancel_all_orders()
    pause()
    assert ex.fetch_open_orders("BTC/USD") == []
    pause()
    balance = ex.fetch_balance()
    assert balance["total"]["BTC"] == 1.05 and balance["total"]["USD"] == 50000 - 3000 - 7.8


def test_market_data_shows_the_trades_above(market: dict[str, Any]) -> None:
    # after the two tests above: 0.2 BTC sold at 50,000 (a market sell), then 0.05 BTC
    # bought at 60,000 (a market buy)
    ex = ccxt.kraken({"enableRateLimit": False})
    ex.urls["api"]["public"] = ex.urls["api"]["private"] = market["info"]["api_url"]
    ex.load_markets()
    trades = ex.fetch_trades("BTC/USD")
    assert [(t["price"], t["amount"], t["side"], t["type"]) for t in trades] == [
        (50000.0, 0.2, "sell", "market"),
        (60000.0, 0.05, "buy", "market"),
    ]
    assert ex.fetch_trades("BTC/USD", since=trades[1]["timestamp"] + 1) == []
    ticker = ex.fetch_ticker("BTC/USD")
    assert (ticker["last"], ticker["high"], ticker["low"]) == (60000.0, 60000.0, 50000.0)
    assert ticker["baseVolume"] == 0.25 and ticker["vwap"] == 52000.0
    candles = ex.fetch_ohlcv("BTC/USD", "1m")
    assert sum(c[5] for c in candles) == 0.25
    assert max(c[2] for c in candles) == 60000.0 and min(c[3] for c in candles) == 50000.0
    k = kx(market, "alice")
    spread = k.query_public("Spread", {"pair": "XBTUSD"})["result"]
    assert spread["XXBTZUSD"] == []  # the book is empty again: no touch to show
    assert k.query_public("OHLC", {"pair": "XBTUSD", "interval": 7})["error"] == [
        "EGeneral:Invalid arguments:interval"
    ]
