"""Exact rows for a short scripted scenario: what each table says about a few deposits, a
partial fill, a stop-loss-limit that is amended and then fires, a withdrawal and a
transfer. Plus the table set-up: a fresh database, SQLite's WAL mode, and the rebuild
when the stored schema version is not the code's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from _projection_stream import CONFIG, T0
from _store_helpers import Databases, dump, rows
from sqlalchemy import text, update

from cambio.engine import Exchange
from cambio.model.commands import (
    BUY,
    MARKET,
    SELL,
    STOP_LOSS_LIMIT,
    AddOrder,
    AmendOrder,
    Command,
    CompleteWithdrawal,
    Deposit,
    RequestWithdrawal,
    ReturnWithdrawal,
    Transfer,
)
from cambio.model.decimals import to_units
from cambio.model.events import Event
from cambio.store import ReadModels
from cambio.store.schema import projection_state

SEC = 1_000_000_000
XBTUSD = CONFIG.pair("XBTUSD")
USD, XBT = CONFIG.asset("ZUSD"), CONFIG.asset("XXBT")


def usd(text: str) -> int:
    return to_units(text, USD.units)


def xbt(text: str) -> int:
    return to_units(text, XBT.units)


def px(text: str) -> int:
    return to_units(text, XBTUSD.pair_decimals)


def lots(text: str) -> int:
    return to_units(text, XBTUSD.lot_decimals)


def scenario() -> list[tuple[int, int, list[Event]]]:
    ex = Exchange(CONFIG)
    items: list[tuple[int, int, list[Event]]] = []

    def run(cmd: Command, at: int) -> None:
        cmd.seq, cmd.ts = len(items) + 1, T0 + at * SEC
        items.append((cmd.seq, cmd.ts, ex.apply(cmd)))

    run(Deposit(account=1, asset="ZUSD", amount=usd("10000"), ref="dep1"), 0)
    run(Deposit(account=2, asset="XXBT", amount=xbt("1")), 1)
    run(Deposit(account=3, asset="ZUSD", amount=usd("5000")), 2)
    run(Deposit(account=4, asset="XXBT", amount=xbt("1")), 3)
    # order 1 rests; order 2 takes 0.2 of it at the maker's price
    run(AddOrder(account=2, pair="XBTUSD", side=SELL, qty=lots("0.5"), price=px("30000")), 10)
    run(AddOrder(account=1, pair="XBTUSD", side=BUY, qty=lots("0.2"), price=px("30100")), 70)
    # order 3: a stop-loss-limit, amended (trigger and limit) while pending
    run(
        AddOrder(
            account=1, pair="XBTUSD", side=SELL, qty=lots("0.1"), ordertype=STOP_LOSS_LIMIT,
            price=px("29000"), price2=px("28900"), userref=7,
        ),
        80,
    )  # fmt: skip
    run(
        AmendOrder(account=1, order_id=3, trigger_price=px("29500"), limit_price=px("29400")),
        90,
    )
    # a trade at 29500 (order 4 rests, order 5 takes it) fires order 3, which then rests
    run(AddOrder(account=3, pair="XBTUSD", side=BUY, qty=lots("0.05"), price=px("29500")), 130)
    run(AddOrder(account=4, pair="XBTUSD", side=SELL, qty=lots("0.05"), ordertype=MARKET), 140)
    run(RequestWithdrawal(account=1, asset="ZUSD", amount=usd("100"), ref="w1", fee=usd("1")), 150)
    run(CompleteWithdrawal(ref="w1", txid="0xabc"), 160)
    run(
        RequestWithdrawal(
            account=4, asset="XXBT", amount=xbt("0.01"), ref="w2", key="cold", address="bc1qx"
        ),
        165,
    )
    run(ReturnWithdrawal(ref="w2", reason="canceled", account=4), 166)
    run(
        Transfer(src=2, dst=3, asset="XXBT", amount=xbt("0.1"), kind="adjustment", reason="fix"),
        170,
    )
    return items


@pytest.fixture
def rm(dbs: Databases) -> Iterator[ReadModels]:
    models = ReadModels(dbs.url(), CONFIG)
    models.apply(scenario())
    yield models
    models.close()


def by(table: list[dict[str, Any]], key: str) -> dict[Any, dict[str, Any]]:
    return {r[key]: r for r in table}


def test_order_rows(rm: ReadModels) -> None:
    orders = by(rows(rm, "orders"), "order_id")
    assert len(orders) == 5
    cost = XBTUSD.cost(px("30000"), lots("0.2"))
    o1 = orders[1]
    assert (o1["account"], o1["pair"], o1["side"], o1["ordertype"]) == (
        2,
        "XXBTZUSD",
        "sell",
        "limit",
    )
    assert (o1["status"], o1["qty"], o1["filled"], o1["trades"]) == (
        "open",
        lots("0.5"),
        lots("0.2"),
        1,
    )
    assert (o1["cost"], o1["fee"]) == (cost, cost * 1600 // 1_000_000)  # maker 0.16 %
    assert (o1["opened_seq"], o1["opened_ts"], o1["closed_seq"]) == (5, T0 + 10 * SEC, 0)
    o2 = orders[2]
    assert (o2["status"], o2["reason"], o2["filled"], o2["cost"]) == (
        "closed",
        "",
        lots("0.2"),
        cost,
    )
    assert o2["fee"] == cost * 2600 // 1_000_000  # taker 0.26 %
    assert (o2["closed_seq"], o2["closed_ts"]) == (6, T0 + 70 * SEC)
    o3 = orders[3]
    assert o3["ordertype"] == "stop-loss-limit" and o3["userref"] == 7
    assert (o3["price"], o3["price2"]) == (px("29500"), px("29400"))  # amended
    assert (o3["amends"], o3["amend_id"]) == (1, 1)
    assert (o3["status"], o3["trigger_price"], o3["triggered_ts"]) == (
        "open", px("29500"), T0 + 140 * SEC
    )  # fmt: skip
    assert orders[5]["ordertype"] == "market" and orders[5]["price"] == 0


def test_trade_rows(rm: ReadModels) -> None:
    trades = rows(rm, "trades")
    assert [
        (r["trade_id"], r["maker"], r["account"], r["order_id"], r["side"]) for r in trades
    ] == [
        (1, False, 1, 2, "buy"),
        (1, True, 2, 1, "sell"),
        (2, False, 4, 5, "sell"),
        (2, True, 3, 4, "buy"),
    ]
    t = trades[0]
    assert (t["price"], t["qty"], t["seq"], t["ts"]) == (px("30000"), lots("0.2"), 6, T0 + 70 * SEC)


def test_ledger_rows(rm: ReadModels) -> None:
    ledger = rows(rm, "ledger")
    dep = ledger[0]
    assert (dep["account"], dep["asset"], dep["amount"], dep["balance"]) == (
        1, "ZUSD", usd("10000"), usd("10000")
    )  # fmt: skip
    assert (dep["type"], dep["ref"], dep["seq"]) == ("deposit", "dep1", 1)
    cost = XBTUSD.cost(px("30000"), lots("0.2"))
    taker_fee = cost * 2600 // 1_000_000
    trade = [r for r in ledger if r["ref_id"] == 1]
    assert len(trade) == 6 and {r["type"] for r in trade} == {"trade"}
    buyer_usd = next(r for r in trade if r["account"] == 1 and r["asset"] == "ZUSD")
    assert (buyer_usd["amount"], buyer_usd["fee"]) == (-cost - taker_fee, taker_fee)
    assert buyer_usd["balance"] == usd("10000") - cost - taker_fee
    fees = [r for r in trade if r["account"] == 0]
    assert sorted(r["amount"] for r in fees) == sorted([cost * 1600 // 1_000_000, taker_fee])
    wd = [r for r in ledger if r["type"] == "withdrawal"]
    assert [(r["account"], r["amount"], r["fee"], r["ref"]) for r in wd] == [
        (1, -usd("101"), usd("1"), "w1"),
        (0, usd("1"), 0, "w1"),
    ]
    assert wd[0]["balance"] == usd("10000") - cost - taker_fee - usd("101")
    tr = [r for r in ledger if r["type"] == "adjustment"]
    assert [(r["account"], r["amount"], r["ref"]) for r in tr] == [
        (2, -xbt("0.1"), "fix"),
        (3, xbt("0.1"), "fix"),
    ]
    assert tr[0]["balance"] == xbt("1") - xbt("0.2") - xbt("0.1")


def test_candle_and_volume_rows(rm: ReadModels) -> None:
    candles = [r for r in rows(rm, "ohlc") if r["interval"] == 1]
    t0 = T0 // SEC
    got = [(r["time"], r["open"], r["close"], r["volume"], r["count"]) for r in candles]
    assert got == [
        (t0 + 60, px("30000"), px("30000"), lots("0.2"), 1),
        (t0 + 120, px("29500"), px("29500"), lots("0.05"), 1),
    ]
    daily = next(r for r in rows(rm, "ohlc") if r["interval"] == 1440)
    assert (daily["time"], daily["open"], daily["high"], daily["low"], daily["close"]) == (
        t0, px("30000"), px("30000"), px("29500"), px("29500")
    )  # fmt: skip
    assert daily["pv"] == px("30000") * lots("0.2") + px("29500") * lots("0.05")
    volumes = by(rows(rm, "volumes"), "account")
    cost = XBTUSD.cost(px("30000"), lots("0.2"))
    assert volumes[1]["quote_volume"] == cost
    assert volumes[1]["usd_volume"] == cost // 10 ** (USD.units - USD.decimals)
    assert volumes[1]["day"] == T0 // (86_400 * SEC)


def test_balances_table(rm: ReadModels) -> None:
    balances = {(r["account"], r["asset"]): r["balance"] for r in rows(rm, "balances")}
    assert balances[(3, "XXBT")] == xbt("0.1") + xbt("0.05")
    assert balances[(4, "ZUSD")] > 0


def test_funding_rows(rm: ReadModels) -> None:
    funding = by(rows(rm, "funding"), "refid")
    assert {k: funding["dep1"][k] for k in ("kind", "account", "asset", "status")} == {
        "kind": "deposit", "account": 1, "asset": "ZUSD", "status": "Success",
    }  # fmt: skip
    assert funding["dep1"]["amount"] == usd("10000")
    assert {r["kind"] for r in funding.values()} == {"deposit", "withdrawal"}
    assert sum(r["kind"] == "deposit" for r in funding.values()) == 4  # unnamed ones: D<ledger>
    w1, w2 = funding["w1"], funding["w2"]
    assert (w1["status"], w1["status_prop"], w1["txid"]) == ("Success", "", "0xabc")
    assert (w1["amount"], w1["fee"], w1["closed_ts"]) == (usd("100"), usd("1"), T0 + 160 * SEC)
    assert (w2["status"], w2["status_prop"], w2["key"], w2["address"]) == (
        "Failure", "canceled", "cold", "bc1qx",
    )  # fmt: skip
    assert w2["opened_ts"] == T0 + 165 * SEC and w2["closed_ts"] == T0 + 166 * SEC


def test_a_fresh_database(dbs: Databases) -> None:
    rm = ReadModels(dbs.url(), CONFIG)
    assert rm.last_seq() == 0
    tables = dump(rm)
    assert set(tables) == {
        "orders", "trades", "ledger", "balances", "ohlc", "volumes", "fee_tiers", "funding",
        "projection_state",
    }  # fmt: skip
    assert all(not r for name, r in tables.items() if name != "projection_state")
    if dbs.backend == "sqlite":
        with rm.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
    rm.close()


def test_another_schema_version_is_rebuilt(dbs: Databases) -> None:
    url = dbs.url()
    rm = ReadModels(url, CONFIG)
    rm.apply(scenario())
    with rm.engine.begin() as conn:
        conn.execute(update(projection_state).values(version=0))
    rm.close()
    rm = ReadModels(url, CONFIG)
    assert rm.last_seq() == 0
    assert not rows(rm, "orders")
    assert rm.apply(scenario()) == len(scenario())
    rm.close()
