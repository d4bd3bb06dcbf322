"""Batches, legacy edits, the trade balance and the rate limits, through the clients that
use them: ccxt's create_orders / cancel_orders (AddOrderBatch, CancelOrderBatch), the
SDK's create_order_batch / edit_order / cancel_order_batch, krakenex's TradeBalance; and
a starter-tier account hitting Kraken's counters, refused with Kraken's errors while
nothing changes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import ccxt
import pytest
from kraken.exceptions import KrakenInvalidArgumentsError
from kraken.spot import Trade, User
from test_kraken_rest import Krakenex, admin
from test_server import start

from cambio.model.ids import format_id


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("batch") / "data"
    proc, info = start(data)
    try:
        gina = admin(data, "account", "create", "gina", "--deposit", "USD=100000",
                     "--deposit", "XBT=10", "--tier", "unlimited")  # fmt: skip
        hank = admin(data, "account", "create", "hank", "--deposit", "USD=100000",
                     "--deposit", "XBT=10", "--tier", "starter")  # fmt: skip
        # a key per client: their nonce scales differ (ms vs 1e-8 s), as on Kraken
        gina_sdk = admin(data, "key", "create", "gina")
        hank_2 = admin(data, "key", "create", "hank")  # REST counters are per key
        yield {"data": data, "info": info, "gina": gina, "hank": hank, "gina_sdk": gina_sdk,
               "hank_2": hank_2}  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(30)


def kx(desk: dict[str, Any], who: str) -> Krakenex:
    k = Krakenex(key=desk[who]["api_key"], secret=desk[who]["api_secret"])
    k.uri = desk["info"]["api_url"]
    return k


def sdk(desk: dict[str, Any], who: str) -> tuple[Trade, User]:
    key = {"key": desk[who]["api_key"], "secret": desk[who]["api_secret"],
           "url": desk["info"]["api_url"]}  # fmt: skip
    return Trade(**key), User(**key)


def open_ids(k: Krakenex | User) -> set[str]:
    if isinstance(k, User):
        return set(k.get_open_orders()["open"])
    return set(k.query_private("OpenOrders")["result"]["open"])


def test_ccxt_creates_and_cancels_orders_in_batches(desk: dict[str, Any]) -> None:
    ex = ccxt.kraken({"apiKey": desk["gina"]["api_key"], "secret": desk["gina"]["api_secret"],
                      "enableRateLimit": False})  # fmt: skip
    ex.urls["api"]["public"] = ex.urls["api"]["private"] = desk["info"]["api_url"]
    ex.load_markets()
    made = ex.create_orders(
        [
            {"symbol": "BTC/USD", "type": "limit", "side": "buy", "amount": 0.1, "price": 40000},
            {"symbol": "BTC/USD", "type": "limit", "side": "buy", "amount": 0.2, "price": 41000},
            {"symbol": "BTC/USD", "type": "limit", "side": "sell", "amount": 0.3, "price": 70000},
        ]
    )
    ids = [o["id"] for o in made]
    assert len(set(ids)) == 3 and all(i.startswith("O") for i in ids)
    gina = kx(desk, "gina")
    assert open_ids(gina) == set(ids)
    opened = gina.query_private("QueryOrders", {"txid": ",".join(ids)})["result"]
    assert [opened[i]["descr"]["order"] for i in ids] == [
        "buy 0.10000000 XBTUSD @ limit 40000.0",
        "buy 0.20000000 XBTUSD @ limit 41000.0",
        "sell 0.30000000 XBTUSD @ limit 70000.0",
    ]
    time.sleep(0.002)
    ex.cancel_orders(ids[:2])
    assert open_ids(gina) == {ids[2]}
    gina.query_private("CancelAll")


def test_a_batch_refuses_bad_parameters_whole_and_engine_refusals_per_order(
    desk: dict[str, Any],
) -> None:
    trade, user = sdk(desk, "gina_sdk")
    before = user.get_balances()
    good = {"ordertype": "limit", "type": "buy", "volume": "0.1", "price": "40000"}
    with pytest.raises(KrakenInvalidArgumentsError):  # one bad order: nothing is placed
        trade.create_order_batch(orders=[good, {**good, "type": "hold"}], pair="XBTUSD")
    assert user.get_balances() == before and open_ids(user) == set()

    mixed = trade.create_order_batch(
        orders=[good, {**good, "volume": "1000"}, {**good, "price": "40000.05"}], pair="XBTUSD"
    )["orders"]
    assert mixed[0]["txid"].startswith("O") and mixed[0]["descr"]["order"].startswith("buy 0.1")
    assert mixed[1] == {"error": "EOrder:Insufficient funds"}
    assert mixed[2]["error"].startswith("EOrder:Invalid price")
    assert open_ids(user) == {mixed[0]["txid"]}
    time.sleep(0.002)
    with pytest.raises(Exception, match="Unknown order"):  # a malformed id: nothing happens
        trade.cancel_order_batch(orders=[mixed[0]["txid"], "OAAAAAA-AAAAA-AAAAAA"])
    time.sleep(0.002)
    unknown = format_id("O", 999_999)  # well formed, not an order: skipped, not counted
    assert trade.cancel_order_batch(orders=[mixed[0]["txid"], unknown]) == {"count": 1}


def test_sdk_edit_order_replaces_the_order(desk: dict[str, Any]) -> None:
    trade, user = sdk(desk, "gina_sdk")
    (txid,) = trade.create_order(
        ordertype="limit", side="sell", volume="0.5", pair="XBTUSD", price="80000", userref=5
    )["txid"]
    time.sleep(0.002)
    edited = trade.edit_order(txid=txid, pair="XBTUSD", volume="0.25", price="79000")
    assert edited["status"] == "ok" and edited["originaltxid"] == txid
    assert edited["txid"] != txid and edited["orders_cancelled"] == 1
    assert edited["descr"]["order"] == "sell 0.25000000 XBTUSD @ limit 79000.0"
    time.sleep(0.002)
    orders = user.get_orders_info(txid=[txid, edited["txid"]])
    assert orders[txid]["status"] == "canceled"
    new = orders[edited["txid"]]
    assert (new["status"], new["vol"], new["descr"]["price"], new["userref"]) == (
        "open", "0.25000000", "79000.0", 5,
    )  # fmt: skip
    time.sleep(0.002)
    with pytest.raises(Exception, match="Unknown order"):
        trade.edit_order(txid=txid, pair="XBTUSD", price="78000")  # already replaced
    trade.cancel_order(txid=edited["txid"])


def test_trade_balance_values_everything_in_usd(desk: dict[str, Any]) -> None:
    gina, hank = kx(desk, "gina"), kx(desk, "hank")
    before = gina.query_private("TradeBalance")["result"]
    assert before["eb"] == "100000.0000"  # no XBT/USD trade yet: XBT counts nothing
    gina.query_private("AddOrder", {"pair": "XBTUSD", "type": "sell", "ordertype": "limit",
                                    "price": "50000", "volume": "0.01"})  # fmt: skip
    hank.query_private("AddOrder", {"pair": "XBTUSD", "type": "buy", "ordertype": "market",
                                    "volume": "0.01"})  # fmt: skip
    time.sleep(0.1)
    after = gina.query_private("TradeBalance")["result"]
    # 9.99 XBT at 50,000 + 100,000 + 500 - 0.26 % maker fee... (0.16 %: 0.8 USD)
    assert after["eb"] == after["tb"] == after["e"] == after["mf"] == "599999.2000"
    assert after["m"] == "0.0000"
    assert gina.query_private("TradeBalance", {"asset": "XBT"})["error"] == [
        "EGeneral:Invalid arguments:asset"
    ]


def test_a_starter_account_meets_krakens_rate_limits(desk: dict[str, Any]) -> None:
    hank = kx(desk, "hank")
    answers = [hank.query_private("Balance")["error"] for _ in range(16)]
    assert answers[:14] == [[]] * 14  # 15 max; the test's earlier calls may have counted
    assert ["EAPI:Rate limit exceeded"] in answers
    time.sleep(3.5)  # decays 0.33/s
    assert hank.query_private("Balance")["error"] == []

    order = {"pair": "ETHUSD", "type": "buy", "ordertype": "limit", "price": "100",
             "volume": "0.01"}  # fmt: skip
    placed = [hank.query_private("AddOrder", order)["error"] for _ in range(62)]
    assert placed[:59] == [[]] * 59 and placed[-1] == ["EOrder:Rate limit exceeded"]
    refused_at = placed.index(["EOrder:Rate limit exceeded"])
    assert len(open_ids(kx(desk, "hank_2"))) == refused_at  # a refused order is not placed
    xbt = {**order, "pair": "XBTUSD", "price": "1000"}
    assert hank.query_private("AddOrder", xbt)["error"] == []  # another pair's counter
