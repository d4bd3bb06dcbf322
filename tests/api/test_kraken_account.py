"""Ledgers, fees, amends and the dead man's switch over Kraken's REST API, with krakenex
and ccxt as shipped."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import ccxt
import pytest
from test_kraken_rest import Krakenex, admin
from test_server import start


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("account") / "data"
    proc, info = start(data)
    try:
        dana = admin(data, "account", "create", "dana", "--deposit", "USD=20000",
                     "--deposit", "XBT=1")  # fmt: skip
        eve = admin(data, "account", "create", "eve", "--deposit", "XBT=1")
        yield {"info": info, "dana": dana, "eve": eve}
    finally:
        proc.terminate()
        proc.wait(30)


def kx(world: dict[str, Any], who: str) -> Krakenex:
    k = Krakenex(key=world[who]["api_key"], secret=world[who]["api_secret"])
    k.uri = world["info"]["api_url"]
    return k


def ok(reply: dict[str, Any]) -> Any:
    assert reply["error"] == [], reply
    return reply["result"]


def test_ledgers_and_trades_tell_every_balance_change(world: dict[str, Any]) -> None:
    dana, eve = kx(world, "dana"), kx(world, "eve")
    ok(eve.query_private("AddOrder", {"pair": "XBTUSD", "type": "sell", "ordertype": "limit",
                                      "price": "40000", "volume": "0.1"}))  # fmt: skip
    ok(dana.query_private("AddOrder", {"pair": "XBTUSD", "type": "buy", "ordertype": "market",
                                       "volume": "0.1"}))  # fmt: skip
    ledger = ok(dana.query_private("Ledgers"))
    assert ledger["count"] == 4  # two deposits, the trade's base and quote legs
    entries = sorted(ledger["ledger"].values(), key=lambda e: (e["time"], e["type"], e["asset"]))
    usd_trade = next(e for e in entries if e["type"] == "trade" and e["asset"] == "ZUSD")
    assert (usd_trade["amount"], usd_trade["fee"], usd_trade["balance"]) == (
        "-4000.0000",
        "10.4000",
        "15989.6000",
    )  # fmt: skip  (0.1 BTC at 40,000, then the 0.26 % taker fee: balance = 20000 + amount - fee)
    only_xbt = ok(dana.query_private("Ledgers", {"asset": "XBT"}))
    assert {e["asset"] for e in only_xbt["ledger"].values()} == {"XXBT"}
    some_id = next(iter(ledger["ledger"]))
    assert list(ok(dana.query_private("QueryLedgers", {"id": some_id}))) == [some_id]
    (trade_id,) = ok(dana.query_private("TradesHistory"))["trades"]
    assert list(ok(dana.query_private("QueryTrades", {"txid": trade_id}))) == [trade_id]

    ex = ccxt.kraken({"apiKey": world["dana"]["api_key"], "secret": world["dana"]["api_secret"],
                      "enableRateLimit": False})  # fmt: skip
    ex.urls["api"]["public"] = ex.urls["api"]["private"] = world["info"]["api_url"]
    ex.load_markets()
    time.sleep(0.002)
    moves = ex.fetch_ledger()
    assert sorted((m["currency"], m["amount"]) for m in moves) == [
        ("BTC", 0.1),
        ("BTC", 1.0),
        ("USD", 4000.0),
        ("USD", 20000.0),
    ]  # fmt: skip  (ccxt reports unsigned amounts with a direction)
    time.sleep(0.002)
    fee = ex.fetch_trading_fee("BTC/USD")
    assert (fee["maker"], fee["taker"]) == (0.0016, 0.0026)


def test_trade_volume_reports_the_tier(world: dict[str, Any]) -> None:
    volume = ok(kx(world, "dana").query_private("TradeVolume", {"pair": "XBTUSD"}))
    assert volume["currency"] == "ZUSD" and volume["volume"] == "4000.0000"
    assert volume["fees"]["XXBTZUSD"]["fee"] == "0.2600"
    assert volume["fees"]["XXBTZUSD"]["nextfee"] == "0.2400"
    assert volume["fees"]["XXBTZUSD"]["nextvolume"] == "50000.0000"
    assert volume["fees_maker"]["XXBTZUSD"]["fee"] == "0.1600"


def test_amend_keeps_the_id_and_changes_the_order(world: dict[str, Any]) -> None:
    dana = kx(world, "dana")
    placed = ok(dana.query_private("AddOrder", {"pair": "XBTUSD", "type": "buy",
                "ordertype": "limit", "price": "30000", "volume": "0.2"}))  # fmt: skip
    (txid,) = placed["txid"]
    amended = ok(dana.query_private("AmendOrder", {"txid": txid, "order_qty": "0.3",
                                                   "limit_price": "31000"}))  # fmt: skip
    assert amended["amend_id"].startswith("A")
    order = ok(dana.query_private("QueryOrders", {"txid": txid}))[txid]
    assert (order["vol"], order["descr"]["price"], order["misc"]) == ("0.30000000", "31000.0",
                                                                      "amended")  # fmt: skip
    bad = dana.query_private("AmendOrder", {"txid": txid, "limit_price": "31000.05"})
    assert bad["error"] == ["EGeneral:Invalid arguments:limit_price"]
    assert dana.query_private("AmendOrder", {"txid": "OAAAAA-BBBBB-CCCCCC"})["error"] == [
        "EOrder:Unknown order"
    ]


def test_dead_mans_switch_arms_and_disarms(world: dict[str, Any]) -> None:
    dana = kx(world, "dana")
    armed = ok(dana.query_private("CancelAllOrdersAfter", {"timeout": 60}))
    now = datetime.fromisoformat(armed["currentTime"].replace("Z", "+00:00"))
    trigger = datetime.fromisoformat(armed["triggerTime"].replace("Z", "+00:00"))
    assert 55 <= (trigger - now).total_seconds() <= 65
    assert ok(dana.query_private("CancelAllOrdersAfter", {"timeout": 0}))["triggerTime"] == "0"
    assert dana.query_private("CancelAllOrdersAfter", {"timeout": "x"})["error"] == [
        "EGeneral:Invalid arguments:timeout"
    ]
