"""The read models agree with the engine that produced the events, and with naive
recomputations from the events themselves.

One stream of ~3,000 commands over ~46 days (every market, order type and funding event,
see _projection_stream) is projected in uneven batches; then the ledger is checked against
the engine's balances, the orders against the engine's open orders and the close events,
the trades against the Trade events, OHLC against a naive recomputation, and the per-day
volumes against the engine's own 30-day fee volume.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import pytest
from _projection_stream import CONFIG, DAY, build
from _store_helpers import Databases, project, rows

from cambio.model.events import (
    Deposited,
    Trade,
    WithdrawalCompleted,
    WithdrawalHeld,
    WithdrawalReturned,
)
from cambio.store import ReadModels
from cambio.store.fold import INTERVALS
from cambio.store.valuation import CROSS, NONE, QUOTE, VIA, UsdValuation

STREAM = build(3000)
ASSETS = [a.id for a in CONFIG.assets]
PAIRS = [p.id for p in CONFIG.pairs]


@pytest.fixture
def rm(dbs: Databases) -> Iterator[ReadModels]:
    models = ReadModels(dbs.url(), CONFIG)
    project(models, STREAM.items, (1, 7, 100, 500, 3, 40))
    yield models
    models.close()


def trades() -> list[tuple[int, int, Trade]]:
    return [(seq, ts, e) for seq, ts, e in STREAM.events if isinstance(e, Trade)]


def test_last_seq_is_the_last_item(rm: ReadModels) -> None:
    assert rm.last_seq() == STREAM.items[-1][0] == len(STREAM.items)


def test_running_balances_end_at_the_engine_balances(rm: ReadModels) -> None:
    last: dict[tuple[int, str], int] = {}
    for r in rows(rm, "ledger"):  # ledger id order
        key = (r["account"], r["asset"])
        assert r["balance"] == last.get(key, 0) + r["amount"], r
        last[key] = r["balance"]
    engine = STREAM.engine
    for account in engine.accounts:
        for i, asset in enumerate(ASSETS):
            avail, held = engine.balance(account, i)
            assert last.get((account, asset), 0) == avail + held, (account, asset)
    balances = {(r["account"], r["asset"]): r["balance"] for r in rows(rm, "balances")}
    assert balances == last
    assert any(account == 0 for account, _ in last)  # the fee account collected fees


def test_postings_sum_to_deposits_minus_withdrawals(rm: ReadModels) -> None:
    ledger = rows(rm, "ledger")
    sums: dict[str, int] = defaultdict(int)
    for r in ledger:
        sums[r["asset"]] += r["amount"]
    external = {ASSETS[i]: v for i, v in STREAM.external.items()}
    assert {a: v for a, v in sums.items() if v} == {a: v for a, v in external.items() if v}
    assert [r["ledger_id"] for r in ledger] == list(range(1, len(ledger) + 1))
    types = {r["type"] for r in ledger}
    assert {"trade", "deposit", "withdrawal", "transfer", "adjustment"} <= types


def test_orders_match_the_engine_and_the_close_events(rm: ReadModels) -> None:
    orders = {r["order_id"]: r for r in rows(rm, "orders")}
    assert orders.keys() == STREAM.accepted.keys()
    engine = STREAM.engine
    still_open = 0
    for order_id, r in orders.items():
        o = engine.order(order_id)
        if o is not None:
            still_open += 1
            assert r["status"] == o.status and r["closed_seq"] == 0
            assert r["filled"] == o.filled
            if not o.budget:
                assert r["qty"] - r["filled"] == o.qty
            assert r["display_qty"] == o.display
            if r["ordertype"] in ("limit", "iceberg"):
                assert r["price"] == o.price
        else:
            closed = STREAM.closed[order_id]
            assert (r["status"], r["reason"]) == (closed.status, closed.reason)
            assert r["filled"] == closed.filled
            assert r["closed_seq"] > 0 and r["closed_ts"] >= r["opened_ts"]
    assert still_open > 0
    statuses = {r["status"] for r in orders.values()}
    assert {"open", "closed", "canceled", "expired"} <= statuses
    # fill progress is the sum of the order's trades, on both sides
    fills: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for _, _, t in trades():
        for oid, fee in ((t.maker_order, t.maker_fee), (t.taker_order, t.taker_fee)):
            f = fills[oid]
            f[0] += t.qty
            f[1] += t.cost
            f[2] += fee
            f[3] += 1
    for order_id, r in orders.items():
        assert [r["filled"], r["cost"], r["fee"], r["trades"]] == fills.get(order_id, [0, 0, 0, 0])
    assert sum(r["trades"] for r in orders.values()) == 2 * len(trades())


def test_amends_and_triggers_are_recorded(rm: ReadModels) -> None:
    orders = rows(rm, "orders")
    amended = [r for r in orders if r["amends"]]
    assert amended and all(r["amend_id"] > 0 for r in amended)
    triggered = [r for r in orders if r["triggered_ts"]]
    assert triggered and all(r["trigger_price"] > 0 for r in triggered)
    assert all(r["status"] != "pending" for r in triggered)


def test_one_row_per_side_of_each_trade(rm: ReadModels) -> None:
    table = rows(rm, "trades")
    ts = trades()
    assert len(table) == 2 * len(ts)
    by_key = {(r["trade_id"], r["maker"]): r for r in table}
    orders = {r["order_id"]: r for r in rows(rm, "orders")}
    for seq, stamp, t in ts:
        for maker in (True, False):
            r = by_key[(t.trade_id, maker)]
            account = t.maker_account if maker else t.taker_account
            order_id = t.maker_order if maker else t.taker_order
            fee = t.maker_fee if maker else t.taker_fee
            assert (r["account"], r["order_id"], r["fee"]) == (account, order_id, fee)
            assert (r["price"], r["qty"], r["cost"]) == (t.price, t.qty, t.cost)
            assert (r["seq"], r["ts"], r["pair"]) == (seq, stamp, PAIRS[t.pair])
            o = orders[order_id]
            assert (o["account"], o["pair"], o["side"]) == (account, r["pair"], r["side"])
            assert r["ledger_id"] == t.ledger_id + (0 if maker else 2)


def naive_candles() -> dict[tuple[str, int, int], tuple[int, ...]]:
    out: dict[tuple[str, int, int], list[int]] = {}
    for _, ts, t in trades():
        for iv in INTERVALS:
            key = (PAIRS[t.pair], iv, ts // 1_000_000_000 // (iv * 60) * iv * 60)
            c = out.setdefault(key, [t.price, t.price, t.price, t.price, 0, 0, 0])
            c[1] = max(c[1], t.price)
            c[2] = min(c[2], t.price)
            c[3] = t.price
            c[4] += t.qty
            c[5] += t.price * t.qty
            c[6] += 1
    return {k: tuple(v) for k, v in out.items()}


def test_ohlc_equals_a_naive_recomputation(rm: ReadModels) -> None:
    cols = ("open", "high", "low", "close", "volume", "pv", "count")
    table = {
        (r["pair"], r["interval"], r["time"]): tuple(r[c] for c in cols) for r in rows(rm, "ohlc")
    }
    naive = naive_candles()
    assert table == naive
    assert {iv for _, iv, _ in table} == set(INTERVALS)
    weekly = [k for k in table if k[1] == 10080]
    assert len({k[2] for k in weekly}) > 3  # the stream spans several weeks


def test_volumes_give_the_engine_30_day_fee_volume(rm: ReadModels) -> None:
    table = rows(rm, "volumes")
    quote: dict[tuple[int, int, str], list[int]] = defaultdict(lambda: [0, 0])
    for _, ts, t in trades():
        for account in (t.maker_account, t.taker_account):
            v = quote[(account, ts // DAY, PAIRS[t.pair])]
            v[0] += t.cost
            v[1] += 1
    assert {
        (r["account"], r["day"], r["pair"]): [r["quote_volume"], r["count"]] for r in table
    } == (quote)
    today = STREAM.items[-1][1] // DAY
    thirty: dict[int, int] = defaultdict(int)
    for r in table:
        if today - 29 <= r["day"] <= today:
            thirty[r["account"]] += r["usd_volume"]
    for account, a in STREAM.engine.accounts.items():
        assert thirty.get(account, 0) == a.volume30, account
    assert any(v for v in thirty.values())
    assert len({r["day"] for r in table}) > 30  # days have rolled out of the window
    # every way of valuing a trade in USD was exercised
    kinds = UsdValuation(CONFIG).kind
    valued = {kinds[PAIRS.index(r["pair"])] for r in table if r["usd_volume"]}
    assert valued == {QUOTE, VIA, CROSS}
    assert NONE not in valued


def test_fee_tiers_are_the_engines(rm: ReadModels) -> None:
    table = rows(rm, "fee_tiers")
    assert table
    for r in table:
        a = STREAM.engine.accounts[r["account"]]
        assert (r["maker_ppm"], r["taker_ppm"]) == (a.maker_ppm, a.taker_ppm)


def test_funding_rows_follow_every_withdrawal_to_its_end(rm: ReadModels) -> None:
    expected: dict[str, tuple[str, int, str]] = {}  # refid -> (status, amount, asset)
    for _, _, e in STREAM.events:
        if isinstance(e, WithdrawalHeld):
            expected[e.ref] = ("Pending", e.amount, ASSETS[e.asset])
        elif isinstance(e, WithdrawalCompleted):
            expected[e.ref] = ("Success", *expected[e.ref][1:])
        elif isinstance(e, WithdrawalReturned):
            expected[e.ref] = ("Failure", *expected[e.ref][1:])
    withdrawals = {
        r["refid"]: (r["status"], r["amount"], r["asset"])
        for r in rows(rm, "funding")
        if r["kind"] == "withdrawal"
    }
    assert withdrawals == expected
    assert {s for s, _, _ in expected.values()} == {"Pending", "Success", "Failure"}
    deposits = [r for r in rows(rm, "funding") if r["kind"] == "deposit"]
    assert len(deposits) == sum(isinstance(e, Deposited) for _, _, e in STREAM.events)
