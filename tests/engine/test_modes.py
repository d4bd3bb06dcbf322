"""Market and global modes (reference §6.7, §1.5) and funding switches per asset.

| mode        | new orders                         | cancels | matching |
| online      | all types                          | yes     | yes      |
| limit_only  | only limit orders                  | yes     | yes      |
| post_only   | only post-only limit orders        | yes     | no       |
| cancel_only | none (Market in cancel_only mode)  | yes     | no       |
| maintenance | none (EService:Unavailable)        | none    | no       |
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from _driver import (
    BUYER,
    SELLER,
    Driver,
    accepted_id,
    closed,
    funded,
    of,
    one,
    print_trade,
    rejection,
    state_view,
    trades,
)

from cambio.model import errors as E
from cambio.model.commands import (
    CANCEL_ONLY,
    LIMIT_ONLY,
    MAINTENANCE,
    MARKET,
    ONLINE,
    POST_ONLY,
    STOP_LOSS,
    STOP_LOSS_LIMIT,
    AmendOrder,
    CancelAll,
    CancelAllAfter,
    CancelOrder,
    Deposit,
    RequestWithdrawal,
    SetFunding,
    SetGlobalMode,
    SetMarketMode,
)
from cambio.model.events import (
    CommandRejected,
    Deposited,
    Event,
    FundingChanged,
    GlobalModeChanged,
    MarketModeChanged,
    OrderAccepted,
    OrderAmended,
    OrderClosed,
    OrderRejected,
    WithdrawalHeld,
)

USD = "ZUSD"
BTC = "XXBT"
D = Decimal


@pytest.fixture
def d() -> Driver:
    return funded()


def market_mode(d: Driver, mode: str, pair: str = "XBTUSD") -> None:
    ev = d.apply(SetMarketMode(pair=pair, mode=mode, reason="test"))
    e = one(ev, MarketModeChanged)
    assert e.mode == mode and e.pair == d.pair(pair).index
    assert d.ex.mode_of(d.ex.market(pair)) in (mode, d.ex.global_mode)


def global_mode(d: Driver, mode: str) -> None:
    ev = d.apply(SetGlobalMode(mode=mode, reason="test"))
    assert one(ev, GlobalModeChanged).mode == mode


def _every_order_kind(d: Driver) -> list[list[Event]]:
    """One attempt at each kind of new order: limit, post-only limit, market, stop-loss."""
    return [
        d.buy(BUYER, "0.1", "29000"),
        d.buy(BUYER, "0.1", "29000", post_only=True),
        d.buy(BUYER, "0.1", ordertype=MARKET),
        d.sell(SELLER, "0.1", ordertype=STOP_LOSS, price=d.px("28000")),
    ]


# ---------------------------------------------------------------------------- online


def test_online_accepts_everything(d: Driver) -> None:
    d.sell(SELLER, "1", "30000")
    print_trade(d, "29500")
    for ev in _every_order_kind(d):
        assert of(ev, OrderAccepted), ev


# ---------------------------------------------------------------------------- cancel_only


def test_cancel_only_refuses_every_new_order(d: Driver) -> None:
    print_trade(d, "29500")
    market_mode(d, CANCEL_ONLY)
    before = state_view(d)
    for ev in _every_order_kind(d):
        assert rejection(ev) == "EService:Market in cancel_only mode"
    assert state_view(d) == before


def test_cancel_only_allows_cancels(d: Driver) -> None:
    a = accepted_id(d.buy(BUYER, "1", "29000"))
    b = accepted_id(d.buy(BUYER, "1", "28000", userref=5))
    c = accepted_id(d.buy(BUYER, "1", "27000"))
    market_mode(d, CANCEL_ONLY)
    assert closed(d.apply(CancelOrder(account=BUYER, order_id=a)), a).status == "canceled"
    assert closed(d.apply(CancelOrder(account=BUYER, userref=5)), b).status == "canceled"
    assert closed(d.apply(CancelAll(account=BUYER)), c).status == "canceled"
    assert d.held(BUYER, USD) == 0


def test_cancel_only_refuses_amend(d: Driver) -> None:
    a = accepted_id(d.buy(BUYER, "1", "29000"))
    market_mode(d, CANCEL_ONLY)
    ev = d.apply(AmendOrder(account=BUYER, order_id=a, order_qty=d.lots("0.5")))
    assert rejection(ev) == "EService:Market in cancel_only mode"


def test_cancel_only_is_per_market(d: Driver) -> None:
    market_mode(d, CANCEL_ONLY)
    ev = d.buy(BUYER, "0.1", "2000", pair="ETHUSD")
    assert of(ev, OrderAccepted)


def test_back_online_accepts_and_matches_again(d: Driver) -> None:
    d.sell(SELLER, "1", "30000")
    market_mode(d, CANCEL_ONLY)
    assert rejection(d.buy(BUYER, "1", "30000")) == E.CANCEL_ONLY
    market_mode(d, ONLINE)
    ev = d.buy(BUYER, "1", "30000")
    assert len(trades(ev)) == 1


# ---------------------------------------------------------------------------- post_only


def test_post_only_mode_accepts_only_post_only_limits(d: Driver) -> None:
    print_trade(d, "29500")
    market_mode(d, POST_ONLY)
    limit, post, market, stop = _every_order_kind(d)
    assert rejection(limit) == "EService:Market in post_only mode"
    assert of(post, OrderAccepted) and not of(post, OrderClosed)
    assert rejection(market) == "EService:Market in post_only mode"
    assert rejection(stop) == "EService:Market in post_only mode"


def test_post_only_mode_never_trades(d: Driver) -> None:
    d.sell(SELLER, "1", "30000")
    market_mode(d, POST_ONLY)
    ev = d.buy(BUYER, "1", "30000", post_only=True)
    oid = accepted_id(ev)
    assert not trades(ev)
    c = closed(ev, oid)
    assert c.status == "canceled" and c.reason == "Post only order"
    assert d.bal(BUYER, USD) == (Decimal("1000000"), D("0"))


def test_post_only_mode_allows_cancel(d: Driver) -> None:
    a = accepted_id(d.buy(BUYER, "1", "29000"))
    market_mode(d, POST_ONLY)
    assert closed(d.apply(CancelOrder(account=BUYER, order_id=a)), a).status == "canceled"


# ---------------------------------------------------------------------------- limit_only


def test_limit_only_mode_accepts_limits_and_they_match(d: Driver) -> None:
    d.sell(SELLER, "1", "30000")
    market_mode(d, LIMIT_ONLY)
    ev = d.buy(BUYER, "0.5", "30000")
    assert of(ev, OrderAccepted) and len(trades(ev)) == 1
    ev = d.buy(BUYER, "0.1", "29000", post_only=True)
    assert of(ev, OrderAccepted)


@pytest.mark.parametrize("ordertype", [MARKET, STOP_LOSS, STOP_LOSS_LIMIT])
def test_limit_only_mode_refuses_other_types(d: Driver, ordertype: str) -> None:
    print_trade(d, "30000")
    d.buy(BUYER, "1", "29000")
    market_mode(d, LIMIT_ONLY)
    ev = d.sell(
        SELLER,
        "0.1",
        ordertype=ordertype,
        price=d.px("28000") if ordertype != MARKET else None,
        price2=d.px("27900") if ordertype == STOP_LOSS_LIMIT else 0,
    )
    assert rejection(ev) == "EService:Market in limit_only mode"


def test_limit_only_mode_allows_cancel(d: Driver) -> None:
    a = accepted_id(d.buy(BUYER, "1", "29000"))
    market_mode(d, LIMIT_ONLY)
    assert closed(d.apply(CancelOrder(account=BUYER, order_id=a)), a).status == "canceled"


# ---------------------------------------------------------------------------- maintenance


def test_maintenance_refuses_orders_and_cancels(d: Driver) -> None:
    print_trade(d, "29500")
    a = accepted_id(d.buy(BUYER, "1", "29000", userref=9))
    market_mode(d, MAINTENANCE)
    before = state_view(d)
    for ev in _every_order_kind(d):
        assert rejection(ev) == "EService:Unavailable"
    assert rejection(d.apply(CancelOrder(account=BUYER, order_id=a))) == "EService:Unavailable"
    assert rejection(d.apply(CancelOrder(account=BUYER, userref=9))) == "EService:Unavailable"
    ev = d.apply(AmendOrder(account=BUYER, order_id=a, order_qty=d.lots("0.5")))
    assert rejection(ev) == "EService:Unavailable"
    assert state_view(d) == before
    assert d.is_open(a)


def test_global_maintenance_refuses_cancel_all(d: Driver) -> None:
    # §6.7: in maintenance no cancel is accepted (EService:Unavailable)
    a = accepted_id(d.buy(BUYER, "1", "29000"))
    global_mode(d, MAINTENANCE)
    ev = d.apply(CancelAll(account=BUYER))
    assert rejection(ev) == "EService:Unavailable"
    assert d.is_open(a)


def test_cancel_all_leaves_orders_in_a_maintenance_market(d: Driver) -> None:
    a = accepted_id(d.buy(BUYER, "1", "29000"))
    e = accepted_id(d.buy(BUYER, "1", "2000", pair="ETHUSD"))
    market_mode(d, MAINTENANCE)
    d.apply(CancelAll(account=BUYER))
    assert d.is_open(a), "no cancel in a market in maintenance"
    assert not d.is_open(e)


def test_dead_mans_switch_does_not_cancel_during_maintenance(d: Driver) -> None:
    a = accepted_id(d.buy(BUYER, "1", "29000"))
    d.apply(CancelAllAfter(account=BUYER, timeout_s=60))
    market_mode(d, MAINTENANCE)
    d.advance(120)
    assert d.is_open(a)


def test_dead_mans_switch_armed_across_maintenance_cancels_when_back(d: Driver) -> None:
    # §6.8: "if armed across engine downtime, orders are cancelled when the engine returns"
    a = accepted_id(d.buy(BUYER, "1", "29000"))
    d.apply(CancelAllAfter(account=BUYER, timeout_s=60))
    global_mode(d, MAINTENANCE)
    d.advance(120)  # the deadline passes during maintenance
    global_mode(d, ONLINE)
    d.advance(1)
    assert not d.is_open(a), "an expired dead man's switch must cancel once trading is back"


# ---------------------------------------------------------------------------- global mode


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        (CANCEL_ONLY, "EService:Market in cancel_only mode"),
        (MAINTENANCE, "EService:Unavailable"),
        (POST_ONLY, "EService:Market in post_only mode"),
    ],
)
def test_global_mode_applies_to_every_market(d: Driver, mode: str, error: str) -> None:
    global_mode(d, mode)
    for pair, price in (("XBTUSD", "29000"), ("ETHUSD", "2000"), ("XBTEUR", "27000")):
        assert rejection(d.buy(BUYER, "0.1", price, pair=pair)) == error


def test_stricter_of_global_and_market_mode_wins(d: Driver) -> None:
    market_mode(d, LIMIT_ONLY)
    global_mode(d, POST_ONLY)
    assert rejection(d.buy(BUYER, "0.1", "29000")) == E.POST_ONLY_MODE
    global_mode(d, ONLINE)
    assert rejection(d.buy(BUYER, "0.1", ordertype=MARKET)) == E.LIMIT_ONLY_MODE
    market_mode(d, ONLINE)
    global_mode(d, CANCEL_ONLY)
    assert rejection(d.buy(BUYER, "0.1", "29000")) == E.CANCEL_ONLY
    market_mode(d, MAINTENANCE)
    assert rejection(d.buy(BUYER, "0.1", "29000")) == E.UNAVAILABLE


def test_global_back_online(d: Driver) -> None:
    global_mode(d, MAINTENANCE)
    global_mode(d, ONLINE)
    assert of(d.buy(BUYER, "0.1", "29000"), OrderAccepted)


def test_unknown_mode_and_pair_are_refused(d: Driver) -> None:
    ev = d.apply(SetMarketMode(pair="XBTUSD", mode="sleeping"))
    assert of(ev, CommandRejected) and not of(ev, MarketModeChanged)
    ev = d.apply(SetMarketMode(pair="NOPE", mode=ONLINE))
    assert one(ev, CommandRejected).error == E.UNKNOWN_PAIR
    ev = d.apply(SetGlobalMode(mode="sleeping"))
    assert of(ev, CommandRejected) and d.ex.global_mode == ONLINE


def test_modes_do_not_touch_other_accounts_orders_or_balances(d: Driver) -> None:
    a = accepted_id(d.buy(BUYER, "1", "29000"))
    s = accepted_id(d.sell(SELLER, "1", "31000"))
    before = state_view(d)
    for mode in (LIMIT_ONLY, POST_ONLY, CANCEL_ONLY, MAINTENANCE, ONLINE):
        market_mode(d, mode)
        global_mode(d, mode)
    assert state_view(d) == before
    assert d.is_open(a) and d.is_open(s)


def test_amend_in_post_only_mode_may_not_take(d: Driver) -> None:
    d.sell(SELLER, "1", "30000")
    a = accepted_id(d.buy(BUYER, "1", "29000"))
    market_mode(d, POST_ONLY)
    ev = d.apply(AmendOrder(account=BUYER, order_id=a, limit_price=d.px("30000")))
    assert of(ev, OrderRejected) and not trades(ev)
    ev = d.apply(AmendOrder(account=BUYER, order_id=a, limit_price=d.px("29500")))
    assert one(ev, OrderAmended).price == d.px("29500")


# ---------------------------------------------------------------------------- funding switches


def test_deposits_off_for_one_asset(d: Driver) -> None:
    ev = d.apply(SetFunding(asset="XBT", deposits=False))
    f = one(ev, FundingChanged)
    assert (f.asset, f.deposits, f.withdrawals) == (d.asset(BTC), False, True)
    before = state_view(d)
    ev = d.apply(Deposit(account=BUYER, asset=BTC, amount=d.amt(BTC, "1")))
    err = one(ev, CommandRejected).error
    assert err.startswith("EFunding:")
    assert state_view(d) == before
    # other assets unaffected; withdrawals of the same asset still allowed
    assert of(d.apply(Deposit(account=BUYER, asset=USD, amount=d.amt(USD, "1"))), Deposited)
    ev = d.apply(RequestWithdrawal(account=SELLER, asset=BTC, amount=d.amt(BTC, "1"), ref="w1"))
    assert of(ev, WithdrawalHeld)
    # and back on
    d.apply(SetFunding(asset="XBT", deposits=True))
    assert of(d.apply(Deposit(account=BUYER, asset=BTC, amount=d.amt(BTC, "1"))), Deposited)


def test_withdrawals_off_for_one_asset(d: Driver) -> None:
    ev = d.apply(SetFunding(asset="ZUSD", withdrawals=False))
    f = one(ev, FundingChanged)
    assert (f.deposits, f.withdrawals) == (True, False)
    ev = d.apply(RequestWithdrawal(account=BUYER, asset=USD, amount=d.amt(USD, "1"), ref="w1"))
    assert one(ev, CommandRejected).error.startswith("EFunding:")
    assert d.bal(BUYER, USD) == (Decimal("1000000"), D("0"))
    ev = d.apply(RequestWithdrawal(account=SELLER, asset=BTC, amount=d.amt(BTC, "1"), ref="w2"))
    assert of(ev, WithdrawalHeld)
    assert of(d.apply(Deposit(account=BUYER, asset=USD, amount=d.amt(USD, "1"))), Deposited)


def test_funding_switches_do_not_stop_trading(d: Driver) -> None:
    d.apply(SetFunding(asset="XBT", deposits=False, withdrawals=False))
    d.apply(SetFunding(asset="USD", deposits=False, withdrawals=False))
    d.sell(SELLER, "1", "30000")
    assert len(trades(d.buy(BUYER, "1", "30000"))) == 1


def test_set_funding_unknown_asset(d: Driver) -> None:
    ev = d.apply(SetFunding(asset="DOGE", deposits=False))
    assert one(ev, CommandRejected).error == E.UNKNOWN_ASSET
