"""Order semantics, from the reference (kraken-api.md §4.2, §4.3, §6.3-§6.6, §6.8, §1.5).

Every scenario runs through tests/engine/_driver.py, which checks after every command that
no balance is negative, that each asset is conserved (fee account 0 included) and that an
account without live orders holds nothing.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from importlib import resources

import pytest
from _driver import (
    BUYER,
    MM_A,
    MM_B,
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
    BUY,
    FOK,
    GTD,
    ICEBERG,
    IOC,
    MARKET,
    PRICE_AUTO,
    PRICE_MINUS,
    PRICE_PLUS,
    SELL,
    STOP_LOSS,
    STOP_LOSS_LIMIT,
    STP_CANCEL_BOTH,
    STP_CANCEL_OLDEST,
    TAKE_PROFIT,
    TAKE_PROFIT_LIMIT,
    TRAILING_STOP,
    TRAILING_STOP_LIMIT,
    AddOrder,
    AmendOrder,
    CancelAll,
    CancelAllAfter,
    CancelOrder,
)
from cambio.model.config import build_config
from cambio.model.events import (
    DeadManSwitch,
    OrderAccepted,
    OrderAmended,
    OrderClosed,
    OrderRejected,
    OrderTriggered,
    OrderValidated,
)

USD = "ZUSD"
BTC = "XXBT"
VOLUME_MINIMUM_ERRORS = {E.VOLUME_MINIMUM, E.ORDER_MINIMUM}  # §1.5 lists both spellings


@pytest.fixture
def d() -> Driver:
    return funded()


def D(text: str) -> Decimal:
    return Decimal(text)


# ---------------------------------------------------------------------------- limit


def test_limit_rests_and_holds_cost_plus_fee(d: Driver) -> None:
    ev = d.buy(BUYER, "1", "30000")
    acc = one(ev, OrderAccepted)
    assert acc.status == "open" and acc.ordertype == "limit"
    assert not trades(ev)
    assert d.book()["bids"] == [[d.px("30000"), d.lots("1")]]
    avail, held = d.bal(BUYER, USD)
    # at least the cost is held, at most cost + the highest fee (0.26 %)
    assert D("30000") <= held <= D("30078")
    assert avail + held == D("1000000")


def test_limit_crossing_trades_at_maker_price_with_maker_and_taker_fees(d: Driver) -> None:
    sid = accepted_id(d.sell(SELLER, "1", "30000"))
    ev = d.buy(BUYER, "1", "30100")
    bid = accepted_id(ev)
    (t,) = trades(ev)
    assert t.price == d.px("30000")  # price improvement goes to the taker
    assert t.qty == d.lots("1")
    assert t.maker_order == sid and t.taker_order == bid
    assert closed(ev, sid).status == "closed"
    assert closed(ev, bid).status == "closed"
    # fees: maker 0.16 %, taker 0.26 % of 30,000 USD
    assert d.bal(BUYER, USD) == (D("1000000") - D("30000") - D("78"), D("0"))
    assert d.bal(BUYER, BTC) == (D("1"), D("0"))
    assert d.bal(SELLER, USD) == (D("30000") - D("48"), D("0"))
    assert d.bal(SELLER, BTC) == (D("99"), D("0"))
    assert d.total(0, USD) == D("126")
    assert d.book() == {"bids": [], "asks": []}


def test_limit_price_time_priority(d: Driver) -> None:
    d.fund(MM_A, BTC, "1")
    first = accepted_id(d.sell(SELLER, "1", "30000"))
    second = accepted_id(d.sell(MM_A, "1", "30000"))
    better = accepted_id(d.sell(MM_B, "1", "29990"))
    ev = d.buy(BUYER, "2", "30000")
    assert [(t.maker_order, t.price) for t in trades(ev)] == [
        (better, d.px("29990")),
        (first, d.px("30000")),
    ]
    assert d.is_open(second) and not d.is_open(first)


def test_limit_partial_fill_rests_remainder(d: Driver) -> None:
    d.sell(SELLER, "0.4", "30000")
    ev = d.buy(BUYER, "1", "30000")
    bid = accepted_id(ev)
    assert sum(t.qty for t in trades(ev)) == d.lots("0.4")
    assert d.is_open(bid)
    assert d.book()["bids"] == [[d.px("30000"), d.lots("0.6")]]
    assert d.book()["asks"] == []
    # cancelling releases the whole remaining hold
    d.apply(CancelOrder(account=BUYER, order_id=bid))
    assert d.held(BUYER, USD) == 0


def test_limit_sell_without_funds_is_refused(d: Driver) -> None:
    before = state_view(d)
    assert rejection(d.sell(BUYER, "1", "30000")) == E.INSUFFICIENT_FUNDS
    assert state_view(d) == before


def test_limit_buy_beyond_available_is_refused(d: Driver) -> None:
    assert rejection(d.buy(BUYER, "40", "30000")) == E.INSUFFICIENT_FUNDS
    assert d.bal(BUYER, USD) == (D("1000000"), D("0"))


def test_unknown_pair_is_refused(d: Driver) -> None:
    ev = d.apply(AddOrder(account=BUYER, pair="NOPE", side=BUY, qty=10**8, price=300000))
    assert rejection(ev) == E.UNKNOWN_PAIR


def test_pair_accepted_by_id_altname_wsname_and_symbol(d: Driver) -> None:
    for name in ("XXBTZUSD", "XBTUSD", "XBT/USD", "BTC/USD"):
        ev = d.apply(AddOrder(account=BUYER, pair=name, side=BUY, qty=10**8, price=300000))
        assert one(ev, OrderAccepted).pair == d.pair("XBTUSD").index


# ---------------------------------------------------------------------------- market


def test_market_buy_sweeps_levels(d: Driver) -> None:
    d.sell(SELLER, "0.5", "30000")
    d.sell(SELLER, "0.5", "30100")
    ev = d.buy(BUYER, "1", ordertype=MARKET)
    oid = accepted_id(ev)
    assert [(t.price, t.qty) for t in trades(ev)] == [
        (d.px("30000"), d.lots("0.5")),
        (d.px("30100"), d.lots("0.5")),
    ]
    assert closed(ev, oid).status == "closed"
    cost = D("15000") + D("15050")
    assert d.bal(BUYER, USD) == (D("1000000") - cost - cost * D("0.0026"), D("0"))


def test_market_sell_hits_bids(d: Driver) -> None:
    d.buy(BUYER, "1", "30000")
    ev = d.sell(SELLER, "0.3", ordertype=MARKET)
    (t,) = trades(ev)
    assert t.price == d.px("30000") and t.qty == d.lots("0.3")
    assert d.bal(SELLER, USD) == (D("9000") - D("23.4"), D("0"))


def test_market_price_protection_stops_at_band(d: Driver) -> None:
    # the default band is 5 % from the touch: 30000 -> at most 31500
    d.sell(SELLER, "0.5", "30000")
    d.sell(SELLER, "0.5", "31500")
    d.sell(SELLER, "0.5", "31600")
    ev = d.buy(BUYER, "2", ordertype=MARKET)
    oid = accepted_id(ev)
    assert [t.price for t in trades(ev)] == [d.px("30000"), d.px("31500")]
    c = closed(ev, oid)
    assert c.status == "canceled"
    assert c.filled == d.lots("1")
    assert c.reason == E.REASON_MPP
    assert d.book()["asks"] == [[d.px("31600"), d.lots("0.5")]]


def test_market_sell_price_protection(d: Driver) -> None:
    d.buy(BUYER, "0.5", "30000")
    d.buy(BUYER, "0.5", "28000")  # more than 5 % below the touch
    ev = d.sell(SELLER, "1", ordertype=MARKET)
    oid = accepted_id(ev)
    assert [t.price for t in trades(ev)] == [d.px("30000")]
    assert closed(ev, oid).status == "canceled"
    assert d.bal(SELLER, BTC) == (D("99.5"), D("0"))


def test_market_nompp_goes_through_the_band(d: Driver) -> None:
    d.sell(SELLER, "0.5", "30000")
    d.sell(SELLER, "0.5", "40000")
    ev = d.buy(BUYER, "1", ordertype=MARKET, no_mpp=True)
    oid = accepted_id(ev)
    assert [t.price for t in trades(ev)] == [d.px("30000"), d.px("40000")]
    assert closed(ev, oid).status == "closed"


def test_market_sell_nompp_goes_through_the_band(d: Driver) -> None:
    d.buy(BUYER, "0.5", "30000")
    d.buy(BUYER, "0.5", "20000")
    ev = d.sell(SELLER, "1", ordertype=MARKET, no_mpp=True)
    assert [t.price for t in trades(ev)] == [d.px("30000"), d.px("20000")]
    assert closed(ev, accepted_id(ev)).status == "closed"


def test_market_on_empty_book_is_cancelled_and_releases_funds(d: Driver) -> None:
    ev = d.buy(BUYER, "1", ordertype=MARKET)
    oid = accepted_id(ev)
    c = closed(ev, oid)
    assert c.status == "canceled" and c.filled == 0
    assert not trades(ev)
    assert d.bal(BUYER, USD) == (D("1000000"), D("0"))


def test_market_viqc_buys_for_a_quote_amount(d: Driver) -> None:
    d.sell(SELLER, "1", "20000")
    q = d.amt(USD, "1000")
    ev = d.apply(
        AddOrder(account=BUYER, pair="XBTUSD", side=BUY, qty=q, ordertype=MARKET, quote_qty=True)
    )
    oid = accepted_id(ev)
    (t,) = trades(ev)
    assert t.price == d.px("20000")
    assert t.qty == d.lots("0.05")  # 1000 USD / 20000
    assert t.cost == q
    assert closed(ev, oid).status == "closed"
    assert d.bal(BUYER, BTC) == (D("0.05"), D("0"))
    assert d.bal(BUYER, USD) == (D("1000000") - D("1000") - D("2.6"), D("0"))


def test_market_viqc_with_decimal_quote_amount(d: Driver) -> None:
    d.sell(SELLER, "1", "20000")
    ev = d.apply(
        AddOrder(
            account=BUYER,
            pair="XBTUSD",
            side=BUY,
            qty=5000,  # 500.0 USD given with 1 decimal
            qty_dp=1,
            ordertype=MARKET,
            quote_qty=True,
        )
    )
    (t,) = trades(ev)
    assert t.qty == d.lots("0.025")


@pytest.mark.parametrize(("side", "ordertype"), [(SELL, MARKET), (BUY, "limit"), (SELL, "limit")])
def test_viqc_only_for_market_buys(d: Driver, side: int, ordertype: str) -> None:
    ev = d.apply(
        AddOrder(
            account=BUYER if side == BUY else SELLER,
            pair="XBTUSD",
            side=side,
            qty=d.lots("1"),
            price=d.px("30000") if ordertype == "limit" else 0,
            ordertype=ordertype,
            quote_qty=True,
        )
    )
    assert rejection(ev) == E.INVALID_ARGUMENTS + ":viqc"


# ---------------------------------------------------------------------------- iceberg


def test_iceberg_refill_goes_to_the_back_of_the_queue(d: Driver) -> None:
    ice = accepted_id(d.sell(SELLER, "1.5", "30000", ordertype=ICEBERG, display_qty=d.lots("0.1")))
    plain = accepted_id(d.sell(MM_A, "0.5", "30000"))
    ev = d.buy(BUYER, "0.3", "30000")
    # the visible 0.1 first; the refilled slice then queues behind the plain order
    assert [(t.maker_order, t.qty) for t in trades(ev)] == [
        (ice, d.lots("0.1")),
        (plain, d.lots("0.2")),
    ]


def test_iceberg_fills_completely_in_visible_slices(d: Driver) -> None:
    ice = accepted_id(d.sell(SELLER, "1.5", "30000", ordertype=ICEBERG, display_qty=d.lots("0.1")))
    ev = d.buy(BUYER, "1.5", "30000")
    ts = trades(ev)
    assert sum(t.qty for t in ts) == d.lots("1.5")
    assert all(t.maker_order == ice and t.qty <= d.lots("0.1") for t in ts)
    assert closed(ev, ice).status == "closed"
    assert d.bal(SELLER, BTC) == (D("98.5"), D("0"))


def test_iceberg_accepts_display_of_one_fifteenth(d: Driver) -> None:
    ev = d.sell(SELLER, "1.5", "30000", ordertype=ICEBERG, display_qty=d.lots("0.1"))
    assert one(ev, OrderAccepted).display_qty == d.lots("0.1")


def test_iceberg_partly_filled_on_entry_never_overfills(d: Driver) -> None:
    # an iceberg that takes 0.95 on arrival rests with 0.05 left: it can fill 0.05, no more
    d.sell(SELLER, "0.95", "30000")
    ice = accepted_id(d.buy(BUYER, "1", "30000", ordertype=ICEBERG, display_qty=d.lots("0.1")))
    assert d.is_open(ice)
    ev = d.sell(SELLER, "0.1", "30000")
    assert [t.qty for t in trades(ev)] == [d.lots("0.05")]
    c = closed(ev, ice)
    assert c.status == "closed" and c.filled == d.lots("1")
    assert d.bal(BUYER, BTC)[0] == D("1")
    assert d.book()["asks"] == [[d.px("30000"), d.lots("0.05")]]


@pytest.mark.parametrize("display", ["0.09", "0", "2"])
def test_iceberg_display_out_of_range_is_refused(d: Driver, display: str) -> None:
    ev = d.sell(SELLER, "1.5", "30000", ordertype=ICEBERG, display_qty=d.lots(display))
    assert rejection(ev) == E.INVALID_DISPLAYVOL


def test_display_qty_on_plain_limit_is_refused(d: Driver) -> None:
    ev = d.sell(SELLER, "1.5", "30000", display_qty=d.lots("0.5"))
    assert rejection(ev) == E.INVALID_DISPLAYVOL


# ---------------------------------------------------------------------------- triggers


def _bids_for_stops(d: Driver) -> None:
    d.buy(BUYER, "1", "28900")


def test_stop_loss_sell_fires_when_last_falls_to_stop(d: Driver) -> None:
    print_trade(d, "30000")
    ev = d.sell(SELLER, "0.5", ordertype=STOP_LOSS, price=d.px("29000"))
    sid = accepted_id(ev)
    assert one(ev, OrderAccepted).status == "pending"
    assert d.book()["asks"] == []  # not visible until triggered
    _bids_for_stops(d)
    d.order(MM_A, SELL, "0.01", "29500")
    ev = d.order(MM_B, BUY, "0.01", "29500")  # last 29500: above the stop
    assert not of(ev, OrderTriggered)
    d.order(MM_A, SELL, "0.01", "29000")
    ev = d.order(MM_B, BUY, "0.01", "29000")  # last 29000: reaches the stop
    trig = one(ev, OrderTriggered)
    assert trig.order_id == sid and trig.limit_price == 0
    sold = [t for t in trades(ev) if t.taker_order == sid]
    assert [(t.price, t.qty) for t in sold] == [(d.px("28900"), d.lots("0.5"))]
    assert closed(ev, sid).status == "closed"


def test_stop_loss_buy_fires_when_last_rises_to_stop(d: Driver) -> None:
    print_trade(d, "30000")
    sid = accepted_id(d.buy(BUYER, "0.5", ordertype=STOP_LOSS, price=d.px("31000")))
    d.sell(SELLER, "1", "31100")
    d.order(MM_A, SELL, "0.01", "30900")
    assert not of(d.order(MM_B, BUY, "0.01", "30900"), OrderTriggered)
    d.order(MM_A, SELL, "0.01", "31000")
    ev = d.order(MM_B, BUY, "0.01", "31000")
    assert one(ev, OrderTriggered).order_id == sid
    assert [(t.price, t.qty) for t in trades(ev) if t.taker_order == sid] == [
        (d.px("31100"), d.lots("0.5"))
    ]


def test_take_profit_sell_fires_when_last_rises(d: Driver) -> None:
    print_trade(d, "30000")
    tp = accepted_id(d.sell(SELLER, "0.5", ordertype=TAKE_PROFIT, price=d.px("31000")))
    d.buy(BUYER, "1", "30950")
    d.order(MM_A, SELL, "0.01", "29000")  # a fall does not fire a sell take-profit
    ev = d.order(MM_B, BUY, "0.01", "29000")
    assert not of(ev, OrderTriggered)
    assert d.is_open(tp)
    d.order(MM_B, BUY, "0.01", "31000")
    ev = d.order(MM_A, SELL, "0.01", "31000")
    assert one(ev, OrderTriggered).order_id == tp
    assert [(t.price, t.qty) for t in trades(ev) if t.taker_order == tp] == [
        (d.px("30950"), d.lots("0.5"))
    ]


def test_take_profit_buy_fires_when_last_falls(d: Driver) -> None:
    print_trade(d, "30000")
    tp = accepted_id(d.buy(BUYER, "0.5", ordertype=TAKE_PROFIT, price=d.px("29000")))
    d.sell(SELLER, "1", "29050")
    d.order(MM_B, BUY, "0.01", "29500")
    ev = d.order(MM_A, SELL, "0.01", "29500")
    assert not of(ev, OrderTriggered)
    d.order(MM_B, BUY, "0.01", "29000")
    ev = d.order(MM_A, SELL, "0.01", "29000")
    assert one(ev, OrderTriggered).order_id == tp
    assert [(t.price, t.qty) for t in trades(ev) if t.taker_order == tp] == [
        (d.px("29050"), d.lots("0.5"))
    ]


def test_stop_loss_limit_becomes_a_limit_at_price2(d: Driver) -> None:
    print_trade(d, "30000")
    ev = d.sell(SELLER, "0.5", ordertype=STOP_LOSS_LIMIT, price=d.px("29000"), price2=d.px("28800"))
    sid = accepted_id(ev)
    d.buy(BUYER, "0.2", "28900")
    d.order(MM_A, SELL, "0.01", "29000")
    ev = d.order(MM_B, BUY, "0.01", "29000")
    trig = one(ev, OrderTriggered)
    assert trig.order_id == sid and trig.limit_price == d.px("28800")
    assert [(t.price, t.qty) for t in trades(ev) if t.taker_order == sid] == [
        (d.px("28900"), d.lots("0.2"))
    ]
    # the rest rests as a limit sell at 28800
    assert d.is_open(sid)
    assert d.book()["asks"] == [[d.px("28800"), d.lots("0.3")]]


def test_take_profit_limit_rests_at_price2_when_not_marketable(d: Driver) -> None:
    print_trade(d, "30000")
    tp = accepted_id(
        d.sell(
            SELLER, "0.5", ordertype=TAKE_PROFIT_LIMIT, price=d.px("31000"), price2=d.px("31200")
        )
    )
    d.order(MM_B, BUY, "0.01", "31000")
    ev = d.order(MM_A, SELL, "0.01", "31000")
    assert one(ev, OrderTriggered).order_id == tp
    assert not [t for t in trades(ev) if t.taker_order == tp]
    assert d.book()["asks"] == [[d.px("31200"), d.lots("0.5")]]


def test_stop_already_reached_fires_on_entry(d: Driver) -> None:
    print_trade(d, "30000")
    d.buy(BUYER, "1", "29900")
    ev = d.sell(SELLER, "0.5", ordertype=STOP_LOSS, price=d.px("30500"))  # last <= stop
    sid = accepted_id(ev)
    assert one(ev, OrderTriggered).order_id == sid
    assert [t.price for t in trades(ev)] == [d.px("29900")]


@pytest.mark.parametrize(
    ("ordertype", "side"),
    [(STOP_LOSS, SELL), (STOP_LOSS, BUY), (TAKE_PROFIT, SELL), (TAKE_PROFIT, BUY)],
)
def test_trigger_exactly_at_last_price_fires_on_entry(d: Driver, ordertype: str, side: int) -> None:
    # "reference price reaches stop": equal counts as reached, from either side
    print_trade(d, "30000")
    d.buy(MM_B, "1", "29900")
    d.sell(MM_A, "1", "30100")
    ev = d.order(BUYER if side == BUY else SELLER, side, "0.1", ordertype=ordertype, price="30000")
    oid = accepted_id(ev)
    assert one(ev, OrderTriggered).order_id == oid
    assert [t.price for t in trades(ev)] == [d.px("30100" if side == BUY else "29900")]


def test_trailing_stop_sell_follows_the_peak_absolute_offset(d: Driver) -> None:
    print_trade(d, "30000")
    ts = accepted_id(
        d.sell(SELLER, "0.5", ordertype=TRAILING_STOP, price=d.px("500"), price_kind=PRICE_PLUS)
    )
    d.buy(BUYER, "1", "29000")
    # peak rises to 31000: the stop follows to 30500
    print_trade(d, "31000")
    # 30600 is less than 500 below the peak: nothing
    d.order(MM_A, SELL, "0.01", "30600")
    assert not of(d.order(MM_B, BUY, "0.01", "30600"), OrderTriggered)
    # 30500 is 500 below the peak: the original stop (29500) would not have fired
    d.order(MM_A, SELL, "0.01", "30500")
    ev = d.order(MM_B, BUY, "0.01", "30500")
    assert one(ev, OrderTriggered).order_id == ts
    assert [(t.price, t.qty) for t in trades(ev) if t.taker_order == ts] == [
        (d.px("29000"), d.lots("0.5"))
    ]


def test_trailing_stop_buy_follows_the_trough_percent_offset(d: Driver) -> None:
    print_trade(d, "30000")
    ts = accepted_id(
        d.buy(
            BUYER,
            "0.5",
            ordertype=TRAILING_STOP,
            price=50_000,  # +5 %
            price_kind=PRICE_PLUS,
            price_pct=True,
        )
    )
    d.sell(SELLER, "1", "30000")
    # trough falls to 28000: the buy stop follows to 28000 * 1.05 = 29400
    d.order(MM_B, BUY, "0.01", "28000")
    d.order(MM_A, SELL, "0.01", "28000")
    d.order(MM_B, BUY, "0.01", "29300")
    ev = d.order(MM_A, SELL, "0.01", "29300")
    assert not of(ev, OrderTriggered)
    d.order(MM_B, BUY, "0.01", "29400")
    ev = d.order(MM_A, SELL, "0.01", "29400")
    assert one(ev, OrderTriggered).order_id == ts
    assert [(t.price, t.qty) for t in trades(ev) if t.taker_order == ts] == [
        (d.px("30000"), d.lots("0.5"))
    ]


def test_trailing_stop_limit_limit_is_offset_from_trigger(d: Driver) -> None:
    print_trade(d, "30000")
    ts = accepted_id(
        d.sell(
            SELLER,
            "0.5",
            ordertype=TRAILING_STOP_LIMIT,
            price=d.px("500"),
            price_kind=PRICE_PLUS,
            price2=d.px("100"),
            price2_kind=PRICE_MINUS,
        )
    )
    d.order(MM_A, SELL, "0.01", "29500")
    ev = d.order(MM_B, BUY, "0.01", "29500")
    trig = one(ev, OrderTriggered)
    assert trig.order_id == ts
    assert trig.limit_price == d.px("29400")  # trigger 29500 - 100
    assert d.book()["asks"] == [[d.px("29400"), d.lots("0.5")]]


def test_amending_a_pending_trailing_stop_limit_holds_as_placement_does(d: Driver) -> None:
    """A pending buy trailing-stop-limit holds at trigger + limit offset; amending its
    quantity must hold at that same price (not at trigger + protection band)."""
    print_trade(d, "30000")

    def place(qty: str) -> int:
        return accepted_id(
            d.buy(
                BUYER, qty, ordertype=TRAILING_STOP_LIMIT, price=d.px("500"),
                price_kind=PRICE_PLUS, price2=d.px("3000"), price2_kind=PRICE_PLUS,
            )
        )  # fmt: skip

    held0 = d.held(BUYER, USD)
    small = place("0.5")
    one_half = d.held(BUYER, USD) - held0
    big = place("1")
    ev = d.apply(AmendOrder(account=BUYER, order_id=big, order_qty=d.lots("0.5")))
    assert one(ev, OrderAmended).order_id == big
    assert d.held(BUYER, USD) - held0 == 2 * one_half
    assert small != big


def test_trailing_stop_limit_percent_limit_offset(d: Driver) -> None:
    print_trade(d, "30000")
    ts = accepted_id(
        d.buy(
            BUYER,
            "0.5",
            ordertype=TRAILING_STOP_LIMIT,
            price=d.px("1000"),
            price_kind=PRICE_PLUS,
            price2=10_000,  # +1 %
            price2_kind=PRICE_PLUS,
            price2_pct=True,
        )
    )
    d.order(MM_B, BUY, "0.01", "31000")
    ev = d.order(MM_A, SELL, "0.01", "31000")
    trig = one(ev, OrderTriggered)
    assert trig.order_id == ts
    assert trig.limit_price == d.px("31310")  # 31000 + 1 %
    assert d.book()["bids"][0] == [d.px("31310"), d.lots("0.5")]


@pytest.mark.parametrize("kind", [PRICE_MINUS, PRICE_AUTO, 0])
def test_trailing_offset_must_use_plus(d: Driver, kind: int) -> None:
    print_trade(d, "30000")
    ev = d.sell(SELLER, "0.5", ordertype=TRAILING_STOP, price=d.px("500"), price_kind=kind)
    assert rejection(ev) == E.INVALID_PRICE_ARG


def test_trailing_stop_limit_price2_must_be_relative(d: Driver) -> None:
    print_trade(d, "30000")
    ev = d.sell(
        SELLER,
        "0.5",
        ordertype=TRAILING_STOP_LIMIT,
        price=d.px("500"),
        price_kind=PRICE_PLUS,
        price2=d.px("29000"),
    )
    assert one(ev, OrderRejected).error.startswith(E.INVALID_ARGUMENTS)


def test_pending_trigger_orders_hold_funds_and_release_on_cancel(d: Driver) -> None:
    print_trade(d, "30000")
    sid = accepted_id(d.sell(SELLER, "0.5", ordertype=STOP_LOSS, price=d.px("29000")))
    assert d.held(SELLER, BTC) >= D("0.5")
    bid = accepted_id(d.buy(BUYER, "0.5", ordertype=STOP_LOSS, price=d.px("31000")))
    assert d.held(BUYER, USD) >= D("15500")  # at least the cost at the trigger price
    for acct, oid in ((SELLER, sid), (BUYER, bid)):
        ev = d.apply(CancelOrder(account=acct, order_id=oid))
        assert closed(ev, oid).status == "canceled"
    assert d.held(SELLER, BTC) == 0 and d.held(BUYER, USD) == 0


# ---------------------------------------------------------------------------- relative prices


@pytest.mark.parametrize(
    ("side", "kind", "value", "pct", "expected"),
    [
        (BUY, PRICE_MINUS, "100", False, "29900"),
        (BUY, PRICE_PLUS, "100", False, "30100"),
        (BUY, PRICE_AUTO, "100", False, "29900"),  # '#' on a buy limit: below the market
        (SELL, PRICE_AUTO, "100", False, "30100"),  # '#' on a sell limit: above
        (SELL, PRICE_PLUS, "2", True, "30600"),  # +2 %
        (BUY, PRICE_MINUS, "2", True, "29400"),  # -2 %
    ],
)
def test_relative_limit_prices(
    d: Driver, side: int, kind: int, value: str, pct: bool, expected: str
) -> None:
    print_trade(d, "30000")
    raw = int(D(value) * 10_000) if pct else d.px(value)
    acct = BUYER if side == BUY else SELLER
    ev = d.apply(
        AddOrder(
            account=acct,
            pair="XBTUSD",
            side=side,
            qty=d.lots("0.1"),
            price=raw,
            price_kind=kind,
            price_pct=pct,
        )
    )
    assert one(ev, OrderAccepted).price == d.px(expected)


@pytest.mark.parametrize(
    ("ordertype", "side", "expected"),
    [
        (STOP_LOSS, SELL, "29900"),  # '#' on a sell stop: below the market
        (STOP_LOSS, BUY, "30100"),
        (TAKE_PROFIT, SELL, "30100"),
        (TAKE_PROFIT, BUY, "29900"),
    ],
)
def test_relative_auto_trigger_prices(d: Driver, ordertype: str, side: int, expected: str) -> None:
    print_trade(d, "30000")
    ev = d.order(
        BUYER if side == BUY else SELLER,
        side,
        "0.1",
        ordertype=ordertype,
        price=d.px("100"),
        price_kind=PRICE_AUTO,
    )
    acc = one(ev, OrderAccepted)
    assert acc.status == "pending" and acc.price == d.px(expected)


def test_relative_price_without_last_trade_is_refused(d: Driver) -> None:
    ev = d.buy(BUYER, "0.1", price=d.px("100"), price_kind=PRICE_MINUS)
    assert rejection(ev) == E.INVALID_PRICE_ARG


# ---------------------------------------------------------------------------- post-only


def test_post_only_that_would_take_is_accepted_then_cancelled(d: Driver) -> None:
    d.sell(SELLER, "1", "30000")
    ev = d.buy(BUYER, "1", "30000", post_only=True)
    oid = accepted_id(ev)  # accepted (txid returned) ...
    c = closed(ev, oid)  # ... and immediately cancelled
    assert c.status == "canceled"
    assert c.reason == "Post only order"
    assert not trades(ev)
    assert d.bal(BUYER, USD) == (D("1000000"), D("0"))
    assert d.book()["asks"] == [[d.px("30000"), d.lots("1")]]


def test_post_only_that_does_not_cross_rests(d: Driver) -> None:
    d.sell(SELLER, "1", "30000")
    ev = d.buy(BUYER, "1", "29990", post_only=True)
    oid = accepted_id(ev)
    assert not of(ev, OrderClosed)
    assert d.is_open(oid)
    ev = d.sell(MM_A, "1", "29990")
    (t,) = trades(ev)
    assert t.maker_order == oid


@pytest.mark.parametrize("ordertype", [MARKET, STOP_LOSS])
def test_post_only_is_for_limit_orders_only(d: Driver, ordertype: str) -> None:
    print_trade(d, "30000")
    ev = d.buy(BUYER, "1", ordertype=ordertype, price=d.px("31000"), post_only=True)
    assert one(ev, OrderRejected).error.startswith(E.INVALID_ARGUMENTS)


# ---------------------------------------------------------------------------- time in force


def test_ioc_fills_what_it_can_and_cancels_the_rest(d: Driver) -> None:
    d.sell(SELLER, "0.4", "30000")
    ev = d.buy(BUYER, "1", "30000", tif=IOC)
    oid = accepted_id(ev)
    assert sum(t.qty for t in trades(ev)) == d.lots("0.4")
    c = closed(ev, oid)
    assert c.status == "canceled" and c.filled == d.lots("0.4")
    assert d.book()["bids"] == []
    assert d.held(BUYER, USD) == 0


def test_ioc_lowercase_accepted(d: Driver) -> None:
    ev = d.buy(BUYER, "1", "30000", tif="ioc")
    assert closed(ev, accepted_id(ev)).status == "canceled"


def test_gtd_expires_on_tick(d: Driver) -> None:
    exp = d.ts + 60 * 10**9
    ev = d.buy(BUYER, "1", "30000", tif=GTD, expire_ts=exp)
    oid = accepted_id(ev)
    assert one(ev, OrderAccepted).expire_ts == exp
    assert not of(d.advance(59), OrderClosed)
    assert d.is_open(oid)
    ev = d.advance(1)
    c = closed(ev, oid)
    assert c.status == "expired"
    assert not d.is_open(oid)
    assert d.book()["bids"] == []
    assert d.bal(BUYER, USD) == (D("1000000"), D("0"))


def test_gtd_expires_before_a_later_command_runs(d: Driver) -> None:
    oid = accepted_id(d.buy(BUYER, "1", "30000", tif=GTD, expire_ts=d.ts + 10 * 10**9))
    d.ts += 20 * 10**9
    ev = d.sell(SELLER, "1", "30000")  # the bid expired before this sell arrived
    assert closed(ev, oid).status == "expired"
    assert not trades(ev)


@pytest.mark.parametrize("offset_s", [0, -10])
def test_gtd_needs_a_future_expiry(d: Driver, offset_s: int) -> None:
    ev = d.buy(BUYER, "1", "30000", tif=GTD, expire_ts=d.ts + offset_s * 10**9)
    assert rejection(ev) == E.INVALID_EXPIRETM


def test_fok_without_enough_liquidity_is_killed(d: Driver) -> None:
    d.sell(SELLER, "0.5", "30000")
    ev = d.buy(BUYER, "1", "30000", tif=FOK)
    oid = accepted_id(ev)
    assert not trades(ev)
    c = closed(ev, oid)
    assert c.status == "canceled" and c.filled == 0
    assert d.book()["asks"] == [[d.px("30000"), d.lots("0.5")]]
    assert d.held(BUYER, USD) == 0


@pytest.mark.parametrize("ordertype", [MARKET, ICEBERG])
def test_fok_is_for_limit_orders_only(d: Driver, ordertype: str) -> None:
    """The reference allows FOK on limit-price orders; a market FOK with a budget could not
    promise all-or-nothing. Refused, nothing held."""
    d.sell(SELLER, "1", "30000")
    extra = {"display_qty": d.lots("0.1")} if ordertype == ICEBERG else {}
    price = "30000" if ordertype == ICEBERG else None
    ev = d.buy(BUYER, "1", price, ordertype=ordertype, tif=FOK, **extra)
    assert rejection(ev) == E.INVALID_ARGUMENTS + ":timeinforce"
    assert not trades(ev) and d.held(BUYER, USD) == 0


def test_fok_with_enough_liquidity_fills_completely(d: Driver) -> None:
    d.sell(SELLER, "0.5", "30000")
    d.sell(SELLER, "0.5", "30010")
    ev = d.buy(BUYER, "1", "30010", tif=FOK)
    assert sum(t.qty for t in trades(ev)) == d.lots("1")
    assert closed(ev, accepted_id(ev)).status == "closed"


# ---------------------------------------------------------------------------- self-trade prevention


def test_stp_cancel_newest_is_the_default(d: Driver) -> None:
    old = accepted_id(d.sell(MM_A, "1", "30000"))
    ev = d.buy(MM_A, "1", "30000")
    new = accepted_id(ev)
    assert not trades(ev)
    assert closed(ev, new).status == "canceled"
    assert d.is_open(old)
    assert d.book()["asks"] == [[d.px("30000"), d.lots("1")]]
    assert d.book()["bids"] == []


def test_stp_cancel_oldest_cancels_resting_and_continues(d: Driver) -> None:
    old = accepted_id(d.sell(MM_A, "1", "30000"))
    other = accepted_id(d.sell(SELLER, "1", "30000"))
    ev = d.buy(MM_A, "1", "30000", stp=STP_CANCEL_OLDEST)
    new = accepted_id(ev)
    assert closed(ev, old).status == "canceled"
    (t,) = trades(ev)
    assert (t.maker_order, t.taker_order, t.qty) == (other, new, d.lots("1"))
    assert closed(ev, new).status == "closed"


def test_stp_cancel_both(d: Driver) -> None:
    old = accepted_id(d.sell(MM_A, "1", "30000"))
    other = accepted_id(d.sell(SELLER, "1", "30000"))
    ev = d.buy(MM_A, "1", "30000", stp=STP_CANCEL_BOTH)
    new = accepted_id(ev)
    assert not trades(ev)
    assert closed(ev, old).status == "canceled"
    assert closed(ev, new).status == "canceled"
    assert d.is_open(other)


def test_stp_does_not_block_other_accounts(d: Driver) -> None:
    d.sell(SELLER, "1", "30000")
    ev = d.buy(MM_A, "1", "30000")
    assert len(trades(ev)) == 1


def test_stp_cancel_newest_keeps_fills_before_own_order(d: Driver) -> None:
    d.sell(SELLER, "0.5", "29990")
    own = accepted_id(d.sell(MM_A, "1", "30000"))
    ev = d.buy(MM_A, "1", "30000")
    new = accepted_id(ev)
    assert [t.qty for t in trades(ev)] == [d.lots("0.5")]
    c = closed(ev, new)
    assert c.status == "canceled" and c.filled == d.lots("0.5")
    assert d.is_open(own)


# ---------------------------------------------------------------------------- amend


def _two_bids(d: Driver) -> tuple[int, int]:
    d.fund(MM_A, USD, "1")
    a = accepted_id(d.buy(BUYER, "1", "30000"))
    b = accepted_id(d.buy(MM_A, "1", "30000"))
    return a, b


def test_amend_qty_down_keeps_priority(d: Driver) -> None:
    a, b = _two_bids(d)
    ev = d.apply(AmendOrder(account=BUYER, order_id=a, order_qty=d.lots("0.5")))
    am = one(ev, OrderAmended)
    assert am.order_id == a and am.qty == d.lots("0.5") and am.priority_kept
    assert d.queue(BUY, "30000") == [a, b]
    ev = d.sell(SELLER, "0.5", "30000")
    assert [t.maker_order for t in trades(ev)] == [a]
    assert closed(ev, a).status == "closed"
    assert d.held(BUYER, USD) == 0


def test_amend_qty_up_loses_priority(d: Driver) -> None:
    a, b = _two_bids(d)
    ev = d.apply(AmendOrder(account=BUYER, order_id=a, order_qty=d.lots("2")))
    assert not one(ev, OrderAmended).priority_kept
    assert d.queue(BUY, "30000") == [b, a]
    ev = d.sell(SELLER, "1", "30000")
    assert [t.maker_order for t in trades(ev)] == [b]
    assert d.held(BUYER, USD) >= D("60000")


def test_amend_price_loses_priority_and_moves_level(d: Driver) -> None:
    a, b = _two_bids(d)
    ev = d.apply(AmendOrder(account=BUYER, order_id=a, limit_price=d.px("30010")))
    am = one(ev, OrderAmended)
    assert am.price == d.px("30010") and not am.priority_kept
    assert d.book()["bids"] == [[d.px("30010"), d.lots("1")], [d.px("30000"), d.lots("1")]]
    # back to the old price: it queues behind b now
    d.apply(AmendOrder(account=BUYER, order_id=a, limit_price=d.px("30000")))
    assert d.queue(BUY, "30000") == [b, a]


def test_amend_price_that_crosses_trades(d: Driver) -> None:
    d.sell(SELLER, "1", "30100")
    a = accepted_id(d.buy(BUYER, "1", "30000"))
    ev = d.apply(AmendOrder(account=BUYER, order_id=a, limit_price=d.px("30100")))
    (t,) = trades(ev)
    assert t.taker_order == a and t.price == d.px("30100")
    assert closed(ev, a).status == "closed"


def test_amend_post_only_price_that_would_take_is_refused(d: Driver) -> None:
    d.sell(SELLER, "1", "30100")
    a = accepted_id(d.buy(BUYER, "1", "30000", post_only=True))
    before = state_view(d)
    ev = d.apply(AmendOrder(account=BUYER, order_id=a, limit_price=d.px("30100")))
    assert of(ev, OrderRejected) and not trades(ev)
    assert state_view(d) == before


def test_amend_qty_below_filled_cancels_the_remainder(d: Driver) -> None:
    a = accepted_id(d.buy(BUYER, "1", "30000"))
    d.sell(SELLER, "0.6", "30000")
    ev = d.apply(AmendOrder(account=BUYER, order_id=a, order_qty=d.lots("0.5")))
    assert one(ev, OrderAmended).order_id == a
    c = closed(ev, a)
    assert c.status == "canceled" and c.filled == d.lots("0.6")
    assert not d.is_open(a)
    assert d.held(BUYER, USD) == 0
    assert d.book()["bids"] == []


def test_amend_qty_to_exactly_filled_leaves_nothing_open(d: Driver) -> None:
    a = accepted_id(d.buy(BUYER, "1", "30000"))
    d.sell(SELLER, "0.6", "30000")
    ev = d.apply(AmendOrder(account=BUYER, order_id=a, order_qty=d.lots("0.6")))
    assert closed(ev, a).filled == d.lots("0.6")
    assert not d.is_open(a)
    assert d.book()["bids"] == []
    assert d.held(BUYER, USD) == 0


def test_amend_iceberg_display_qty(d: Driver) -> None:
    ice = accepted_id(d.sell(SELLER, "1.5", "30000", ordertype=ICEBERG, display_qty=d.lots("0.1")))
    ev = d.apply(AmendOrder(account=SELLER, order_id=ice, display_qty=d.lots("0.5")))
    assert one(ev, OrderAmended).display_qty == d.lots("0.5")
    ev = d.buy(BUYER, "0.5", "30000")
    assert [t.qty for t in trades(ev)] == [d.lots("0.5")]


def test_amend_display_qty_of_plain_limit_is_refused(d: Driver) -> None:
    a = accepted_id(d.buy(BUYER, "1", "30000"))
    ev = d.apply(AmendOrder(account=BUYER, order_id=a, display_qty=d.lots("0.5")))
    assert rejection(ev) == E.INVALID_DISPLAYVOL


def test_amend_by_cl_ord_id(d: Driver) -> None:
    a = accepted_id(d.buy(BUYER, "1", "30000", cl_ord_id="my-order-1"))
    ev = d.apply(AmendOrder(account=BUYER, cl_ord_id="my-order-1", order_qty=d.lots("0.7")))
    assert one(ev, OrderAmended).order_id == a
    assert d.book()["bids"] == [[d.px("30000"), d.lots("0.7")]]


def test_amend_trigger_price_of_pending_stop(d: Driver) -> None:
    print_trade(d, "30000")
    sid = accepted_id(d.sell(SELLER, "0.5", ordertype=STOP_LOSS, price=d.px("29000")))
    d.buy(BUYER, "1", "29400")
    ev = d.apply(AmendOrder(account=SELLER, order_id=sid, trigger_price=d.px("29500")))
    assert one(ev, OrderAmended).trigger_price == d.px("29500")
    d.order(MM_A, SELL, "0.01", "29500")
    ev = d.order(MM_B, BUY, "0.01", "29500")
    assert one(ev, OrderTriggered).order_id == sid


def test_amend_unknown_or_foreign_order(d: Driver) -> None:
    a = accepted_id(d.buy(BUYER, "1", "30000"))
    assert rejection(d.apply(AmendOrder(account=BUYER, order_id=999, order_qty=1))) == (
        E.UNKNOWN_ORDER
    )
    ev = d.apply(AmendOrder(account=SELLER, order_id=a, order_qty=d.lots("0.5")))
    assert rejection(ev) == E.UNKNOWN_ORDER


def test_amend_qty_up_beyond_funds_is_refused(d: Driver) -> None:
    a = accepted_id(d.buy(BUYER, "1", "30000"))
    before = state_view(d)
    ev = d.apply(AmendOrder(account=BUYER, order_id=a, order_qty=d.lots("40")))
    assert rejection(ev) == E.INSUFFICIENT_FUNDS
    assert state_view(d) == before


# ---------------------------------------------------------------------------- cancel


def test_cancel_by_id(d: Driver) -> None:
    a = accepted_id(d.buy(BUYER, "1", "30000"))
    ev = d.apply(CancelOrder(account=BUYER, order_id=a))
    c = closed(ev, a)
    assert c.status == "canceled" and c.reason == "User requested"
    assert d.book()["bids"] == [] and d.held(BUYER, USD) == 0


def test_cancel_unknown_order(d: Driver) -> None:
    assert rejection(d.apply(CancelOrder(account=BUYER, order_id=12345))) == E.UNKNOWN_ORDER


def test_cancel_already_closed_order(d: Driver) -> None:
    a = accepted_id(d.buy(BUYER, "1", "30000"))
    d.apply(CancelOrder(account=BUYER, order_id=a))
    ev = d.apply(CancelOrder(account=BUYER, order_id=a))
    assert rejection(ev) in (E.UNKNOWN_ORDER, E.INVALID_ORDER)


def test_cancel_someone_elses_order_is_unknown(d: Driver) -> None:
    a = accepted_id(d.buy(BUYER, "1", "30000"))
    assert rejection(d.apply(CancelOrder(account=SELLER, order_id=a))) == E.UNKNOWN_ORDER
    assert d.is_open(a)


def test_cancel_by_userref_cancels_every_order_carrying_it(d: Driver) -> None:
    a = accepted_id(d.buy(BUYER, "1", "30000", userref=7))
    b = accepted_id(d.buy(BUYER, "1", "29000", userref=7))
    c = accepted_id(d.buy(BUYER, "1", "28000", userref=8))
    ev = d.apply(CancelOrder(account=BUYER, userref=7))
    assert sorted(e.order_id for e in of(ev, OrderClosed)) == [a, b]
    assert d.is_open(c)


def test_cancel_by_userref_is_per_account(d: Driver) -> None:
    a = accepted_id(d.buy(BUYER, "1", "30000", userref=7))
    d.apply(CancelOrder(account=SELLER, userref=7))
    assert d.is_open(a)


def test_cancel_by_cl_ord_id(d: Driver) -> None:
    a = accepted_id(d.buy(BUYER, "1", "30000", cl_ord_id="abc"))
    b = accepted_id(d.buy(BUYER, "1", "30000", cl_ord_id="def"))
    ev = d.apply(CancelOrder(account=BUYER, cl_ord_id="abc"))
    assert [e.order_id for e in of(ev, OrderClosed)] == [a]
    assert d.is_open(b)
    assert rejection(d.apply(CancelOrder(account=BUYER, cl_ord_id="abc"))) == E.UNKNOWN_ORDER


def test_cancel_pending_trigger_order(d: Driver) -> None:
    print_trade(d, "30000")
    sid = accepted_id(d.sell(SELLER, "0.5", ordertype=STOP_LOSS, price=d.px("29000")))
    assert closed(d.apply(CancelOrder(account=SELLER, order_id=sid)), sid).status == "canceled"
    d.buy(BUYER, "1", "28000")
    d.order(MM_A, SELL, "0.01", "29000")
    assert not of(d.order(MM_B, BUY, "0.01", "29000"), OrderTriggered)


def test_cancel_all_cancels_only_that_accounts_orders(d: Driver) -> None:
    print_trade(d, "30000")
    mine = [
        accepted_id(d.buy(BUYER, "1", "29000")),
        accepted_id(d.buy(BUYER, "1", "28000")),
        accepted_id(d.buy(BUYER, "1", ordertype=STOP_LOSS, price=d.px("31000"))),
    ]
    theirs = accepted_id(d.sell(SELLER, "1", "31000"))
    ev = d.apply(CancelAll(account=BUYER))
    assert sorted(e.order_id for e in of(ev, OrderClosed)) == mine
    assert all(not d.is_open(o) for o in mine)
    assert d.is_open(theirs)
    assert d.held(BUYER, USD) == 0


# ---------------------------------------------------------------------------- dead man's switch


def test_dead_mans_switch_fires_on_tick(d: Driver) -> None:
    a = accepted_id(d.buy(BUYER, "1", "29000"))
    b = accepted_id(d.buy(BUYER, "1", "28000"))
    other = accepted_id(d.sell(SELLER, "1", "31000"))
    ev = d.apply(CancelAllAfter(account=BUYER, timeout_s=60))
    assert one(ev, DeadManSwitch).trigger_ts == d.ts + 60 * 10**9
    assert not of(d.advance(59), OrderClosed)
    ev = d.advance(1)
    assert sorted(e.order_id for e in of(ev, OrderClosed)) == [a, b]
    assert d.is_open(other)
    assert d.held(BUYER, USD) == 0
    # disarmed after firing: a new order survives past the old deadline
    c = accepted_id(d.buy(BUYER, "1", "29000"))
    d.advance(120)
    assert d.is_open(c)


def test_dead_mans_switch_is_reset_by_each_call(d: Driver) -> None:
    a = accepted_id(d.buy(BUYER, "1", "29000"))
    d.apply(CancelAllAfter(account=BUYER, timeout_s=60))
    d.advance(30)
    d.apply(CancelAllAfter(account=BUYER, timeout_s=60))  # now deadline is +90 s
    d.advance(40)  # +70 s: the first deadline passed
    assert d.is_open(a)
    ev = d.advance(20)  # +90 s
    assert closed(ev, a).status == "canceled"


def test_dead_mans_switch_disarmed_by_zero(d: Driver) -> None:
    a = accepted_id(d.buy(BUYER, "1", "29000"))
    d.apply(CancelAllAfter(account=BUYER, timeout_s=60))
    ev = d.apply(CancelAllAfter(account=BUYER, timeout_s=0))
    assert one(ev, DeadManSwitch).trigger_ts == 0
    d.advance(3600)
    assert d.is_open(a)


@pytest.mark.parametrize("timeout", [86_400, -1])
def test_dead_mans_switch_timeout_out_of_range(d: Driver, timeout: int) -> None:
    ev = d.apply(CancelAllAfter(account=BUYER, timeout_s=timeout))
    assert not of(ev, DeadManSwitch)
    assert ev and all("Invalid arguments" in getattr(e, "error", "") for e in ev)


# ---------------------------------------------------------------------------- client ids


def test_userref_and_cl_ord_id_are_echoed(d: Driver) -> None:
    ev = d.buy(BUYER, "1", "30000", userref=42)
    acc = one(ev, OrderAccepted)
    assert acc.userref == 42 and acc.cl_ord_id is None
    ev = d.buy(BUYER, "1", "30000", cl_ord_id="client-1")
    acc = one(ev, OrderAccepted)
    assert acc.cl_ord_id == "client-1" and acc.userref is None
    # and on rejections
    rej = one(d.buy(BUYER, "1000", "30000", userref=43), OrderRejected)
    assert rej.userref == 43 and rej.error == E.INSUFFICIENT_FUNDS
    rej = one(d.buy(BUYER, "1000", "30000", cl_ord_id="client-2"), OrderRejected)
    assert rej.cl_ord_id == "client-2"


def test_userref_and_cl_ord_id_are_mutually_exclusive(d: Driver) -> None:
    ev = d.buy(BUYER, "1", "30000", userref=1, cl_ord_id="x")
    assert one(ev, OrderRejected).error.startswith(E.INVALID_ARGUMENTS)


# ---------------------------------------------------------------------------- fee currency


def test_fcib_taker_buy_pays_fee_in_base(d: Driver) -> None:
    d.sell(SELLER, "1", "30000")
    ev = d.buy(BUYER, "1", "30000", fee_in_base=True)
    (t,) = trades(ev)
    assert t.taker_fee_base and not t.maker_fee_base
    assert t.taker_fee == d.amt(BTC, "0.0026")
    assert d.bal(BUYER, BTC) == (D("0.9974"), D("0"))
    assert d.bal(BUYER, USD) == (D("970000"), D("0"))
    assert d.total(0, BTC) == D("0.0026")
    assert d.total(0, USD) == D("48")  # the maker paid in quote


def test_fcib_maker_sell_pays_fee_in_base(d: Driver) -> None:
    d.sell(SELLER, "1", "30000", fee_in_base=True)
    ev = d.buy(BUYER, "1", "30000")
    (t,) = trades(ev)
    assert t.maker_fee_base and not t.taker_fee_base
    assert t.maker_fee == d.amt(BTC, "0.0016")
    assert d.bal(SELLER, BTC) == (D("100") - D("1.0016"), D("0"))
    assert d.bal(SELLER, USD) == (D("30000"), D("0"))
    assert d.total(0, BTC) == D("0.0016")


def test_fciq_sell_pays_fee_in_quote(d: Driver) -> None:
    d.buy(BUYER, "1", "30000")
    ev = d.sell(SELLER, "1", "30000", fee_in_base=False)
    (t,) = trades(ev)
    assert not t.taker_fee_base
    assert t.taker_fee == d.amt(USD, "78")
    assert d.bal(SELLER, USD) == (D("29922"), D("0"))
    assert d.bal(SELLER, BTC) == (D("99"), D("0"))


def test_fcib_partial_fills_release_everything_in_the_end(d: Driver) -> None:
    sid = accepted_id(d.sell(SELLER, "1", "30000", fee_in_base=True))
    d.buy(BUYER, "0.3", "30000", fee_in_base=True)
    d.buy(BUYER, "0.3", "30000")
    ev = d.apply(CancelOrder(account=SELLER, order_id=sid))
    assert closed(ev, sid).filled == d.lots("0.6")
    assert d.held(SELLER, BTC) == 0
    assert d.bal(SELLER, BTC)[0] == D("100") - D("0.6") - D("0.6") * D("0.0016")


# ---------------------------------------------------------------------------- sizes and precision


def test_volume_below_ordermin(d: Driver) -> None:
    ev = d.buy(BUYER, "0.00009999", "30000")
    assert rejection(ev) in VOLUME_MINIMUM_ERRORS


def test_volume_at_ordermin_accepted(d: Driver) -> None:
    assert one(d.buy(BUYER, "0.0001", "30000"), OrderAccepted)


def test_cost_below_costmin(d: Driver) -> None:
    # 0.0001 BTC at 4999.9 = 0.49999 USD < 0.5
    assert rejection(d.buy(BUYER, "0.0001", "4999.9")) == E.COST_MINIMUM
    assert one(d.buy(BUYER, "0.0001", "5000"), OrderAccepted)


def test_price_with_too_many_decimals(d: Driver) -> None:
    ev = d.apply(
        AddOrder(account=BUYER, pair="XBTUSD", side=BUY, qty=10**8, price=3000005, price_dp=2)
    )
    assert rejection(ev) == (
        "EOrder:Invalid price:XBTUSD price can only be specified up to 1 decimals."
    )


def test_price_decimals_error_echoes_the_requested_pair_form(d: Driver) -> None:
    # §1.5: "EOrder:Invalid price:<PAIR> ..." where PAIR echoes the request form
    ev = d.apply(
        AddOrder(account=BUYER, pair="XXBTZUSD", side=BUY, qty=10**8, price=3000005, price_dp=2)
    )
    assert rejection(ev) == (
        "EOrder:Invalid price:XXBTZUSD price can only be specified up to 1 decimals."
    )


def test_price_with_trailing_zero_decimals_is_fine(d: Driver) -> None:
    ev = d.apply(
        AddOrder(account=BUYER, pair="XBTUSD", side=BUY, qty=10**8, price=3000000, price_dp=2)
    )
    assert one(ev, OrderAccepted).price == d.px("30000")


def test_volume_with_too_many_decimals(d: Driver) -> None:
    ev = d.apply(
        AddOrder(
            account=BUYER, pair="XBTUSD", side=BUY, qty=123456789, qty_dp=9, price=d.px("30000")
        )
    )
    assert rejection(ev) == E.INVALID_VOLUME


def test_volume_given_with_decimals_is_rescaled(d: Driver) -> None:
    ev = d.apply(AddOrder(account=BUYER, pair="XBTUSD", side=BUY, qty=15, qty_dp=1, price=300000))
    assert one(ev, OrderAccepted).qty == d.lots("1.5")


@pytest.mark.parametrize("qty", [0, -1])
def test_non_positive_volume(d: Driver, qty: int) -> None:
    ev = d.apply(AddOrder(account=BUYER, pair="XBTUSD", side=BUY, qty=qty, price=300000))
    assert rejection(ev) == E.INVALID_VOLUME


@pytest.mark.parametrize("price", [0, -10])
def test_non_positive_price(d: Driver, price: int) -> None:
    ev = d.apply(AddOrder(account=BUYER, pair="XBTUSD", side=BUY, qty=10**8, price=price))
    assert rejection(ev) == E.INVALID_PRICE_ARG


def _coarse_tick_driver() -> Driver:
    text = resources.files("cambio.model").joinpath("markets.toml").read_text("utf-8")
    doc = tomllib.loads(text)
    for p in doc["pair"]:
        if p["altname"] == "XBTUSD":
            p["tick_size"] = "0.5"
    d = Driver(build_config(doc))
    d.fund(BUYER, USD, "1000000")
    return d


def test_price_off_the_tick_grid() -> None:
    d = _coarse_tick_driver()
    assert rejection(d.buy(BUYER, "1", "30000.3")) == E.TICK_SIZE
    assert one(d.buy(BUYER, "1", "30000.5"), OrderAccepted)


def test_amend_price_off_the_tick_grid() -> None:
    d = _coarse_tick_driver()
    a = accepted_id(d.buy(BUYER, "1", "30000.5"))
    ev = d.apply(AmendOrder(account=BUYER, order_id=a, limit_price=d.px("30000.3")))
    assert rejection(ev) == E.TICK_SIZE


# ---------------------------------------------------------------------------- validate


def test_validate_changes_nothing(d: Driver) -> None:
    sid = accepted_id(d.sell(SELLER, "1", "30000"))
    before = state_view(d)
    ev = d.buy(BUYER, "1", "30000", validate=True)
    assert [type(e) for e in ev] == [OrderValidated]
    assert state_view(d) == before
    # ids are assigned in sequence: the validated order did not consume one
    ev = d.buy(BUYER, "1", "30000")
    assert accepted_id(ev) == sid + 1
    assert len(trades(ev)) == 1


def test_validate_still_reports_errors(d: Driver) -> None:
    before = state_view(d)
    ev = d.buy(BUYER, "1000", "30000", validate=True)
    assert rejection(ev) == E.INSUFFICIENT_FUNDS
    assert state_view(d) == before


def test_rejected_order_changes_nothing(d: Driver) -> None:
    d.sell(SELLER, "1", "30000")
    before = state_view(d)
    for ev in (
        d.buy(BUYER, "0.00001", "30000"),
        d.buy(BUYER, "1000", "30000"),
        d.buy(BUYER, "1", "30000", tif="XYZ"),
        d.buy(BUYER, "1", "30000", stp="bogus"),
        d.buy(BUYER, "1", "30000", ordertype="settle-everything"),
    ):
        assert of(ev, OrderRejected) and len(ev) == 1
    assert state_view(d) == before
