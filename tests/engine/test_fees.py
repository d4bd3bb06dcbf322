"""Fees (reference §6.1): maker/taker tiers by 30-day USD volume summed across pairs, fees
credited to the exchange's fee account 0, and time-bound fee promotions.

API / legacy schedule (maker / taker %): 0 -> 0.16 / 0.26, 50,000 -> 0.14 / 0.24,
100,000 -> 0.12 / 0.22, ...
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from _driver import (
    BUYER,
    DAY,
    MM_A,
    MM_B,
    SELLER,
    Driver,
    funded,
    of,
    one,
    print_trade,
    trades,
)

from cambio.model.commands import (
    SCOPE_ALL,
    SCOPE_MARGIN,
    SCOPE_SPOT,
    CreatePromotion,
    EndPromotion,
)
from cambio.model.events import (
    CommandRejected,
    Event,
    FeeTierChanged,
    PromotionChanged,
    Trade,
)
from cambio.model.ledger import FEE_ACCOUNT

USD = "ZUSD"
BTC = "XXBT"
D = Decimal
HOUR = 3600 * 10**9


@pytest.fixture
def d() -> Driver:
    d = funded()
    d.fund(BUYER, USD, "9000000")
    d.fund(SELLER, BTC, "900")
    return d


def trade(d: Driver, qty: str = "0.1", price: str = "30000", pair: str = "XBTUSD") -> Trade:
    """SELLER rests a sell (maker), BUYER takes it; returns the single trade.

    The default (0.1 BTC at 30,000: 3,000 USD) is small enough that a handful of them
    never moves anyone to the next tier."""
    d.order(SELLER, 1, qty, price, pair=pair)
    (t,) = trades(d.order(BUYER, 0, qty, price, pair=pair))
    assert t.maker_account == SELLER and t.taker_account == BUYER
    return t


def fees_pct(d: Driver, t: Trade) -> tuple[Decimal, Decimal]:
    """(maker %, taker %) a quote-fee trade was charged."""
    assert not t.maker_fee_base and not t.taker_fee_base
    return D(t.maker_fee) * 100 / t.cost, D(t.taker_fee) * 100 / t.cost


# ---------------------------------------------------------------------------- tiers


def test_base_tier_maker_and_taker(d: Driver) -> None:
    t = trade(d, "1")
    assert fees_pct(d, t) == (D("0.16"), D("0.26"))
    assert t.maker_fee == d.amt(USD, "48") and t.taker_fee == d.amt(USD, "78")


def test_fees_are_credited_to_fee_account_zero(d: Driver) -> None:
    total = 0
    for qty, price in (("1", "30000"), ("0.5", "30100"), ("0.25", "29950")):
        t = trade(d, qty, price)
        total += t.maker_fee + t.taker_fee
    d.fund(SELLER, "XETH", "2")
    t = trade(d, "2", "2000", pair="ETHUSD")
    total += t.maker_fee + t.taker_fee
    assert d.ex.balance(FEE_ACCOUNT, d.asset(USD)) == (total, 0)
    assert d.total(FEE_ACCOUNT, BTC) == 0


def test_tier_improves_once_30_day_volume_reaches_50k(d: Driver) -> None:
    first = trade(d, "1", "49999.9")  # volume 49,999.9: still the first tier
    assert fees_pct(d, first) == (D("0.16"), D("0.26"))
    d.order(SELLER, 1, "0.0001", "5000")
    ev = d.order(BUYER, 0, "0.0001", "5000")  # +0.5 USD: crosses 50,000
    assert len(trades(ev)) == 1
    changes = {e.account: e for e in of(ev, FeeTierChanged)}
    assert set(changes) == {BUYER, SELLER}
    assert (changes[BUYER].maker_ppm, changes[BUYER].taker_ppm) == (1400, 2400)
    t = trade(d)
    assert fees_pct(d, t) == (D("0.14"), D("0.24"))


def test_volume_below_threshold_keeps_the_tier(d: Driver) -> None:
    for _ in range(4):
        t = trade(d, "1", "12000")  # 48,000 in total
    assert not of(d.log, FeeTierChanged)
    assert fees_pct(d, t) == (D("0.16"), D("0.26"))
    t = trade(d, "1", "12000")  # 60,000: the next trade is cheaper
    t = trade(d)
    assert fees_pct(d, t) == (D("0.14"), D("0.24"))


def test_higher_tier_at_100k(d: Driver) -> None:
    trade(d, "2", "50000")
    t = trade(d)
    assert fees_pct(d, t) == (D("0.12"), D("0.22"))


def test_volume_summed_across_pairs_in_usd(d: Driver) -> None:
    d.fund(SELLER, "XETH", "100")
    trade(d, "10", "2000", pair="ETHUSD")  # 20,000 USD
    t = trade(d, "1")  # + 30,000 USD on XBTUSD = 50,000
    assert fees_pct(d, t) == (D("0.16"), D("0.26"))
    t = trade(d, "0.1", "2000", pair="ETHUSD")
    assert fees_pct(d, t) == (D("0.14"), D("0.24"))


def test_volume_of_a_non_usd_pair_is_valued_in_usd(d: Driver) -> None:
    # ETH/XBT volume counts at the XBT/USD price: 20 ETH @ 0.05 = 1 XBT = 30,000 USD
    print_trade(d, "30000")
    d.fund(SELLER, "XETH", "20")
    d.fund(BUYER, BTC, "2")
    t = trade(d, "20", "0.05", pair="ETHXBT")
    assert t.cost == d.amt(BTC, "1")
    t = trade(d, "0.7", "30000")  # + 21,000 USD = 51,000
    t = trade(d)
    assert fees_pct(d, t) == (D("0.14"), D("0.24"))


def test_volume_of_a_eur_pair_counts_in_usd(d: Driver) -> None:
    # §6.1: "Volume is summed in USD across pairs". 2 BTC on XBT/EUR at 27,000 EUR is
    # 54,000 EUR; valued at the XBT/USD price (30,000) that is 60,000 USD.
    print_trade(d, "30000")
    d.fund(BUYER, "ZEUR", "100000")
    t = trade(d, "2", "27000", pair="XBTEUR")
    assert t.cost == d.amt("ZEUR", "54000")
    t = trade(d)
    assert fees_pct(d, t) == (D("0.14"), D("0.24"))


def test_tier_falls_back_after_30_days(d: Driver) -> None:
    d.advance(3600)  # 01:00 on day 0
    trade(d, "1", "50000")
    assert fees_pct(d, trade(d, "0.01")) == (D("0.14"), D("0.24"))
    d.advance(29 * 86400)  # day 29: the day-0 volume still counts
    assert fees_pct(d, trade(d, "0.01")) == (D("0.14"), D("0.24"))
    ev = d.advance(2 * 86400)  # day 31: it no longer does
    back = {e.account: e for e in of(ev, FeeTierChanged)}
    assert (back[BUYER].maker_ppm, back[BUYER].taker_ppm) == (1600, 2600)
    assert SELLER in back
    assert fees_pct(d, trade(d, "0.01")) == (D("0.16"), D("0.26"))


def test_maker_and_taker_tiers_are_per_account(d: Driver) -> None:
    trade(d, "1", "50000")  # BUYER and SELLER both reach tier 2
    # MM_A (first tier) sells to BUYER (tier 2)
    d.order(MM_A, 1, "1", "30000")
    (t,) = trades(d.order(BUYER, 0, "1", "30000"))
    assert fees_pct(d, t) == (D("0.16"), D("0.24"))
    d.order(SELLER, 1, "1", "30000")
    (t,) = trades(d.order(MM_B, 0, "1", "30000"))
    assert fees_pct(d, t) == (D("0.14"), D("0.26"))


# ---------------------------------------------------------------------------- promotions


def promo(d: Driver, promo_id: str = "p", **kw: object) -> list[Event]:
    kw.setdefault("maker_ppm", 0)
    kw.setdefault("taker_ppm", 0)
    kw.setdefault("end_ts", d.ts + 10 * DAY)
    return d.apply(CreatePromotion(promo_id=promo_id, **kw))  # type: ignore[arg-type]


def test_promotion_starts_and_ends_with_ticks(d: Driver) -> None:
    start, end = d.ts + HOUR, d.ts + 2 * HOUR
    ev = promo(d, start_ts=start, end_ts=end)
    assert one(ev, PromotionChanged).state == "scheduled"
    assert fees_pct(d, trade(d)) == (D("0.16"), D("0.26"))
    ev = d.tick_at(start)
    assert one(ev, PromotionChanged).state == "active"
    t = trade(d)
    assert (t.maker_fee, t.taker_fee) == (0, 0)
    fee_before = d.total(FEE_ACCOUNT, USD)
    ev = d.tick_at(end)
    assert one(ev, PromotionChanged).state == "ended"
    assert fees_pct(d, trade(d)) == (D("0.16"), D("0.26"))
    assert d.total(FEE_ACCOUNT, USD) == fee_before + D("12.6")


def test_promotion_without_start_is_active_at_once(d: Driver) -> None:
    ev = promo(d)
    assert [e.state for e in of(ev, PromotionChanged)][-1] == "active"
    t = trade(d)
    assert (t.maker_fee, t.taker_fee) == (0, 0)
    assert d.total(FEE_ACCOUNT, USD) == 0


def test_promotion_reduced_rates(d: Driver) -> None:
    promo(d, maker_ppm=500, taker_ppm=1000)  # 0.05 % / 0.10 %
    assert fees_pct(d, trade(d)) == (D("0.05"), D("0.10"))


def test_promotion_never_raises_a_fee(d: Driver) -> None:
    # a promotion is a discount: rates above the account's tier leave the tier rate
    promo(d, maker_ppm=5000, taker_ppm=1000)
    assert fees_pct(d, trade(d)) == (D("0.16"), D("0.10"))


def test_promotion_scoped_to_accounts(d: Driver) -> None:
    promo(d, accounts=[BUYER])
    t = trade(d)
    assert t.taker_fee == 0
    assert t.maker_fee == d.amt(USD, "4.8")  # SELLER is not in the promotion
    d.order(MM_A, 1, "1", "30000")
    (t,) = trades(d.order(MM_B, 0, "1", "30000"))
    assert fees_pct(d, t) == (D("0.16"), D("0.26"))


def test_promotion_scoped_to_pairs(d: Driver) -> None:
    d.fund(SELLER, "XETH", "10")
    promo(d, pairs=["ETHUSD"])
    assert fees_pct(d, trade(d)) == (D("0.16"), D("0.26"))
    t = trade(d, "1", "2000", pair="ETHUSD")
    assert (t.maker_fee, t.taker_fee) == (0, 0)


def test_margin_only_promotion_does_not_change_spot_fees(d: Driver) -> None:
    ev = promo(d, scope=SCOPE_MARGIN)
    assert of(ev, PromotionChanged)
    assert fees_pct(d, trade(d)) == (D("0.16"), D("0.26"))


def test_all_scope_promotion_covers_spot(d: Driver) -> None:
    promo(d, scope=SCOPE_ALL)
    t = trade(d)
    assert (t.maker_fee, t.taker_fee) == (0, 0)


def test_no_spot_fees_until_end_of_month_margin_excluded(d: Driver) -> None:
    # T0 is 2023-11-15; the promotion ends at 2023-12-01 00:00 UTC
    end = int(datetime(2023, 12, 1, tzinfo=UTC).timestamp()) * 10**9
    assert d.ts < end
    ev = promo(d, "november", scope=SCOPE_SPOT, end_ts=end, reason="no spot fees in November")
    assert of(ev, PromotionChanged)[-1].state == "active"
    d.advance(5 * 86400)
    t = trade(d)
    assert (t.maker_fee, t.taker_fee) == (0, 0)
    d.fund(SELLER, "XETH", "1")
    t = trade(d, "1", "2000", pair="ETHUSD")
    assert (t.maker_fee, t.taker_fee) == (0, 0)
    d.tick_at(end - 1)
    assert (trade(d).taker_fee, trade(d).maker_fee) == (0, 0)
    ev = d.tick_at(end)
    assert one(ev, PromotionChanged).state == "ended"
    assert fees_pct(d, trade(d)) == (D("0.16"), D("0.26"))


def test_end_promotion_early(d: Driver) -> None:
    promo(d, "early")
    assert trade(d).taker_fee == 0
    ev = d.apply(EndPromotion(promo_id="early", reason="budget"))
    e = one(ev, PromotionChanged)
    assert e.state == "ended" and e.end_ts == d.ts
    assert fees_pct(d, trade(d)) == (D("0.16"), D("0.26"))
    # nothing to end twice, or if unknown
    assert of(d.apply(EndPromotion(promo_id="early")), CommandRejected)
    assert of(d.apply(EndPromotion(promo_id="nope")), CommandRejected)


def test_end_scheduled_promotion_before_it_starts(d: Driver) -> None:
    start = d.ts + HOUR
    promo(d, "later", start_ts=start, end_ts=start + HOUR)
    d.apply(EndPromotion(promo_id="later"))
    ev = d.tick_at(start)
    assert not of(ev, PromotionChanged)
    assert fees_pct(d, trade(d)) == (D("0.16"), D("0.26"))


def test_promotion_does_not_stop_volume_counting(d: Driver) -> None:
    promo(d, "free", end_ts=d.ts + HOUR)
    trade(d, "1", "50000")  # free, but still 50,000 of volume
    d.advance(2 * 3600)
    assert fees_pct(d, trade(d)) == (D("0.14"), D("0.24"))


@pytest.mark.parametrize(
    "kw",
    [
        {"end_ts": 0},  # already over
        {"maker_ppm": -1},
        {"taker_ppm": 1_000_001},
        {"scope": "futures"},
        {"pairs": ["NOPE"]},
    ],
)
def test_invalid_promotion_is_refused(d: Driver, kw: dict[str, object]) -> None:
    ev = promo(d, "bad", **kw)
    assert of(ev, CommandRejected) and not of(ev, PromotionChanged)
    assert fees_pct(d, trade(d)) == (D("0.16"), D("0.26"))


def test_duplicate_promotion_id_is_refused(d: Driver) -> None:
    promo(d, "dup", maker_ppm=1000, taker_ppm=1000)
    assert of(promo(d, "dup"), CommandRejected)
    assert fees_pct(d, trade(d)) == (D("0.10"), D("0.10"))
