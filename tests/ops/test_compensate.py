"""Compensation computed from the journal's events (cambio.ops.compensate), checked against
real engines: the same commands run through engines with and without promotions, and the
`waived` amounts must be exactly the fees the promotions took off (a differential test);
`fees-paid` must be what the events charged; windows, filters and the percentage select
and scale what they say; a journal whose fees the rebuild cannot explain is reported."""

from __future__ import annotations

import tomllib
from collections import defaultdict
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cambio.engine import Exchange
from cambio.journal.segments import Journal
from cambio.model.commands import (
    BUY,
    SCOPE_ALL,
    SCOPE_MARGIN,
    SCOPE_SPOT,
    SELL,
    AddOrder,
    Command,
    CreatePromotion,
    Deposit,
    EndPromotion,
    Tick,
)
from cambio.model.config import MarketConfig, build_config, load_config
from cambio.model.decimals import to_units
from cambio.model.events import (
    Event,
    FeeTierChanged,
    OrderRejected,
    PromotionChanged,
    Trade,
)
from cambio.ops.compensate import (
    FEES_PAID,
    WAIVED,
    Applied,
    Compensation,
    CompensationError,
    Query,
    compensate,
    compensate_journal,
    credit_ref,
    parse_percent,
)

SEC = 1_000_000_000
HOUR = 3600 * SEC
DAY = 24 * HOUR
T0 = 1_700_006_400 * SEC  # 2023-11-15 00:00 UTC
FAR = T0 + 10_000 * DAY
ACCOUNTS = (1, 2, 3, 4)


def _config(edit: Any = None) -> MarketConfig:
    text = resources.files("cambio.model").joinpath("markets.toml").read_text("utf-8")
    doc = tomllib.loads(text)
    if edit is not None:
        edit(doc)
    return build_config(doc)


def _custom_ethusd(doc: dict[str, Any]) -> None:
    # ETH/USD on a schedule of its own, with other steps for makers than for takers
    (eth,) = [p for p in doc["pair"] if p["id"] == "XETHZUSD"]
    eth["fees"] = [[0, "0.30"], [40000, "0.20"], [150000, "0.11"]]
    eth["fees_maker"] = [[0, "0.20"], [20000, "0.12"], [90000, "0"]]


def _odd_maker_steps(doc: dict[str, Any]) -> None:
    # the default schedule with maker steps the taker schedule does not have: the engine
    # moves an account's maker rate only when its taker tier or the day changes
    doc["fees"]["maker"] = [[0, "0.16"], [20000, "0.11"], [70000, "0.05"]]


DEFAULT = load_config()
CONFIGS = {
    "default": DEFAULT,
    "custom-pair-fees": _config(_custom_ethusd),
    "odd-maker-steps": _config(_odd_maker_steps),
}

# ---------------------------------------------------------------------------- helpers

Script = list[tuple[int, Command]]  # (ts, command), ts never decreasing


class Venue:
    """One engine fed a script, keeping (seq, ts, events) as the journal records them."""

    def __init__(self, config: MarketConfig) -> None:
        self.config = config
        self.ex = Exchange(config)
        self.applied: list[Applied] = []

    def run(self, script: Script, without: Sequence[str] = ()) -> Venue:
        """Apply `script`; the promotions named in `without` are left out (a Tick at the
        same time takes their commands' places, so seqs and times stay aligned)."""
        for seq, (ts, cmd) in enumerate(script, 1):
            if isinstance(cmd, CreatePromotion | EndPromotion) and cmd.promo_id in without:
                cmd = Tick()
            cmd = msgspec.structs.replace(cmd, seq=seq, ts=ts)
            self.applied.append((seq, ts, self.ex.apply(cmd)))
        return self

    def events(self) -> list[Event]:
        return [e for _, _, evs in self.applied for e in evs]

    def trades(self) -> list[Trade]:
        return [e for e in self.events() if isinstance(e, Trade)]

    def fees(self, ts_from: int = 0, ts_until: int = FAR) -> dict[tuple[int, int], int]:
        """Fees charged per (account, asset index), from the trades in [from, until)."""
        out: dict[tuple[int, int], int] = defaultdict(int)
        for _, ts, evs in self.applied:
            if not ts_from <= ts < ts_until:
                continue
            for t in evs:
                if isinstance(t, Trade):
                    spec = self.config.pairs[t.pair]
                    for acct, fee, base in (
                        (t.maker_account, t.maker_fee, t.maker_fee_base),
                        (t.taker_account, t.taker_fee, t.taker_fee_base),
                    ):
                        out[(acct, spec.base if base else spec.quote)] += fee
        return {k: v for k, v in out.items() if v}

    def compensate(self, basis: str, **kw: Any) -> Compensation:
        if "promotion" not in kw:
            kw.setdefault("from_ts", 0)
            kw.setdefault("until_ts", FAR)
        result = compensate(self.config, self.applied, Query(basis, **kw))
        assert result.problems == [], result.problems
        return result


def paid(result: Compensation) -> dict[tuple[int, int], int]:
    """What the compensation would pay, per (account, asset index)."""
    return {(acct, asset): units for acct, asset, units in result.amounts()}


def minus(a: dict[tuple[int, int], int], b: dict[tuple[int, int], int]) -> dict[Any, int]:
    keys = set(a) | set(b)
    diff = {k: a.get(k, 0) - b.get(k, 0) for k in keys}
    return {k: v for k, v in diff.items() if v}


def funding(config: MarketConfig, ts: int = T0) -> Script:
    """Accounts 1-4 with far more of every asset than any test trades."""
    return [
        # 2**60 units each: 115,000 XBT, 115 million USD; four of them fit in int64
        (ts, Deposit(account=acct, asset=a.id, amount=1 << 60))
        for acct in ACCOUNTS
        for a in config.assets
    ]


def order(
    config: MarketConfig, account: int, pair: str, side: int, qty: str, price: str, **kw: Any
) -> AddOrder:
    spec = config.pair(pair)
    return AddOrder(account=account, pair=spec.id, side=side,
                    qty=to_units(qty, spec.lot_decimals),
                    price=to_units(price, spec.pair_decimals), **kw)  # fmt: skip


def promo(promo_id: str, maker: int, taker: int, end_ts: int, **kw: Any) -> CreatePromotion:
    return CreatePromotion(promo_id=promo_id, maker_ppm=maker, taker_ppm=taker, end_ts=end_ts,
                           **kw)  # fmt: skip


def usd(units: str) -> int:
    return to_units(units, DEFAULT.asset("ZUSD").units)


USD = DEFAULT.asset("ZUSD").index
XBT = DEFAULT.asset("XXBT").index


# ---------------------------------------------------------------------------- differential


def test_a_free_promotion_is_worth_exactly_the_fees_of_the_same_trades_without_it() -> None:
    cfg = DEFAULT
    t = T0 + HOUR
    script = [
        *funding(cfg),
        (t, promo("free", 0, 0, T0 + 10 * DAY, reason="outage")),
        # 1 XBT at 30,000: maker 0.16 % (48), taker 0.26 % (78)
        (t, order(cfg, 2, "XBTUSD", SELL, "1", "30000")),
        (t + SEC, order(cfg, 1, "XBTUSD", BUY, "1", "30000")),
        # a fee in base (fcib) on the taker side: 0.26 % of 0.5 XBT
        (t + 2 * SEC, order(cfg, 3, "XBTUSD", BUY, "0.5", "29990")),
        (t + 3 * SEC, order(cfg, 4, "XBTUSD", SELL, "0.5", "29990", fee_in_base=True)),
    ]
    with_it = Venue(cfg).run(script)
    without = Venue(cfg).run(script, without=["free"])
    assert with_it.fees() == {}  # free: nothing charged
    expected = without.fees()
    assert expected == {
        (2, USD): usd("48"),
        (1, USD): usd("78"),
        (3, USD): usd("14995") * 1600 // 10**6,  # maker 0.16 % of 14,995 USD
        (4, XBT): 5 * 10**12 * 2600 // 10**6,  # taker 0.26 % of 0.5 XBT, in XBT
    }
    worth = with_it.compensate(WAIVED, promotion="free")
    assert paid(worth) == expected
    assert worth.trades == 2 and {a: s.trades for a, s in worth.shares.items()} == {
        1: 1, 2: 1, 3: 1, 4: 1,
    }  # fmt: skip
    # the same without naming the promotion: everything waived in the window
    assert paid(with_it.compensate(WAIVED)) == expected
    # what was actually paid: nothing; in the engine without the promotion, the fees
    assert paid(with_it.compensate(FEES_PAID)) == {}
    assert paid(without.compensate(FEES_PAID)) == expected
    assert paid(without.compensate(WAIVED)) == {}  # no promotion, nothing waived


def test_a_taker_keeps_the_rate_it_started_matching_at_across_a_tier_step() -> None:
    # BUYER (no volume yet) sweeps two makers: its first fill (54,000 USD) moves it past
    # 50,000 into the next tier, but the engine fixed its rate when the order started
    # matching, so its second fill is still charged 0.26 %. The rebuild must do the same.
    cfg = DEFAULT
    t = T0 + HOUR
    script = [
        *funding(cfg),
        (t, promo("free", 0, 0, T0 + DAY)),
        (t, order(cfg, 2, "XBTUSD", SELL, "1.8", "30000")),
        (t, order(cfg, 3, "XBTUSD", SELL, "1", "30001")),
        (t, order(cfg, 1, "XBTUSD", BUY, "2.8", "30001")),
    ]
    without = Venue(cfg).run(script, without=["free"])
    first, second = without.trades()
    assert first.taker_fee == first.cost * 2600 // 10**6
    assert second.taker_fee == second.cost * 2600 // 10**6  # not 0.24 %
    # the step to the next tier came between the two fills
    between = without.events()
    between = between[between.index(first) : between.index(second)]
    steps = [e for e in between if isinstance(e, FeeTierChanged) and e.account == 1]
    assert [(e.maker_ppm, e.taker_ppm) for e in steps] == [(1400, 2400)]
    with_it = Venue(cfg).run(script)
    assert paid(with_it.compensate(WAIVED, promotion="free")) == without.fees()
    assert paid(without.compensate(WAIVED)) == {}  # and no problem: the rates agree


# a script: funded accounts, promotions p1 and p2, and steps: an order resting a few price
# steps off the market's price (asks above, bids below), or one taking liquidity through
# the levels up to 4 steps away (sweeping several makers), then a wait of seconds to weeks
# (tiers rise with volume and fall back after 30 days)
MARKETS = {  # pair: (price, price step, sizes)
    "XBTUSD": ("30000", "10", ("0.01", "0.4", "1", "2.5")),
    "XBTEUR": ("27000", "10", ("0.01", "0.6", "1.5")),
    "ETHUSD": ("2000", "1", ("0.1", "5", "20", "60")),
    "ETHXBT": ("0.066", "0.0001", ("0.1", "10", "40")),
}
orders = st.tuples(
    st.sampled_from(ACCOUNTS),
    st.sampled_from(sorted(MARKETS)),
    st.sampled_from((BUY, SELL)),
    st.integers(0, 3),  # size index (clamped)
    st.integers(1, 3),  # a resting order's steps from the market's price
    st.booleans(),  # fee in base
    st.booleans(),  # takes liquidity
)
waits = st.sampled_from((0, SEC, 10 * 60 * SEC, 7 * HOUR, 3 * DAY, 12 * DAY))
promotions = st.fixed_dictionaries(
    {
        "maker": st.sampled_from((0, 500, 1200, 2000)),
        "taker": st.sampled_from((0, 1000, 2300, 3000)),
        "scope": st.sampled_from((SCOPE_SPOT, SCOPE_SPOT, SCOPE_ALL, SCOPE_MARGIN)),
        "pairs": st.one_of(
            st.just([]), st.lists(st.sampled_from(sorted(MARKETS)), max_size=2, unique=True)
        ),
        "accounts": st.one_of(
            st.just([]), st.lists(st.sampled_from(ACCOUNTS), max_size=2, unique=True)
        ),
        "at": st.integers(0, 12),  # the step that creates it
        "delay": st.sampled_from((0, 0, HOUR, 2 * DAY)),  # its start after creation
        "length": st.sampled_from((HOUR, 2 * DAY, 20 * DAY, 60 * DAY)),
        "ended_at": st.one_of(st.none(), st.integers(0, 30)),  # an early end
    }
)


def build_script(
    cfg: MarketConfig, steps: list[tuple[Any, int]], promos: dict[str, dict[str, Any]]
) -> Script:
    script = funding(cfg)
    ts = T0 + HOUR
    last = len(steps) - 1
    for i, (o, wait) in enumerate(steps):
        for pid, p in promos.items():
            if min(p["at"], last) == i:
                start = ts + p["delay"]
                script.append((ts, promo(pid, p["maker"], p["taker"], start + p["length"],
                                         start_ts=start if p["delay"] else 0, scope=p["scope"],
                                         pairs=p["pairs"], accounts=p["accounts"])))  # fmt: skip
            if p["ended_at"] == i and min(p["at"], last) < i:
                script.append((ts, EndPromotion(promo_id=pid, reason="early")))
        account, pair, side, size, away, in_base, takes = o
        price, step, sizes = MARKETS[pair]
        spec = cfg.pair(pair)
        qty = to_units(sizes[min(size, len(sizes) - 1)], spec.lot_decimals)
        if takes:
            away, qty = -4, 3 * qty
        off = away * to_units(step, spec.pair_decimals)
        px = to_units(price, spec.pair_decimals) + (off if side == SELL else -off)
        script.append((ts, AddOrder(account=account, pair=spec.id, side=side, qty=qty,
                                    price=px, fee_in_base=in_base)))  # fmt: skip
        ts += wait
    return script


@pytest.mark.parametrize("name", sorted(CONFIGS))
@settings(max_examples=100, deadline=None)
@given(
    steps=st.lists(st.tuples(orders, waits), min_size=10, max_size=45),
    p1=promotions,
    p2=promotions,
)
def test_waived_is_what_each_promotion_took_off_the_same_trades(
    name: str, steps: list[tuple[Any, int]], p1: dict[str, Any], p2: dict[str, Any]
) -> None:
    cfg = CONFIGS[name]
    script = build_script(cfg, steps, {"p1": p1, "p2": p2})
    both = Venue(cfg).run(script)
    none = Venue(cfg).run(script, without=["p1", "p2"])
    only1 = Venue(cfg).run(script, without=["p2"])
    only2 = Venue(cfg).run(script, without=["p1"])
    # the promotions change fees only: the same trades and tiers happen in every engine
    shape = [
        [
            (type(e), e.trade_id, e.qty, e.price, e.maker_account, e.taker_account)
            if isinstance(e, Trade)
            else e
            for e in v.events()
            if isinstance(e, Trade | FeeTierChanged | OrderRejected)
        ]
        for v in (both, none, only1, only2)
    ]
    assert shape[0] == shape[1] == shape[2] == shape[3]
    assert not [e for e in both.events() if isinstance(e, OrderRejected)]
    created = {e.promo_id for e in both.events() if isinstance(e, PromotionChanged)}
    assert created == {"p1", "p2"}

    fees = both.fees()
    assert paid(both.compensate(FEES_PAID)) == fees
    assert paid(both.compensate(WAIVED)) == minus(none.fees(), fees)
    # one promotion's worth: the fee the trade would have had without it alone
    assert paid(both.compensate(WAIVED, promotion="p1")) == minus(only2.fees(), fees)
    assert paid(both.compensate(WAIVED, promotion="p2")) == minus(only1.fees(), fees)
    assert paid(only1.compensate(WAIVED, promotion="p1")) == minus(none.fees(), only1.fees())
    # without promotions nothing was waived (and the rebuilt rates explain every fee)
    assert paid(none.compensate(WAIVED)) == {}
    # margin: no margin trades exist
    assert both.compensate(WAIVED, scope=SCOPE_MARGIN).shares == {}


# ---------------------------------------------------------------------------- selection


@pytest.fixture(scope="module")
def day() -> Venue:
    """Three trades an hour apart (0.5 XBT at 30,000: maker 24, taker 39 USD), then one
    on ETH/USD (20,000 USD: maker 32, taker 52); account 2 makes, account 1 takes, except
    in the third (3 makes, 4 takes). Nobody reaches the next tier (50,000) before the
    last trade."""
    cfg = DEFAULT
    script = funding(cfg)
    for k, (maker, taker) in enumerate(((2, 1), (2, 1), (3, 4))):
        ts = T0 + (k + 1) * HOUR
        script.append((ts, order(cfg, maker, "XBTUSD", SELL, "0.5", "30000")))
        script.append((ts, order(cfg, taker, "XBTUSD", BUY, "0.5", "30000")))
    ts = T0 + 4 * HOUR
    script.append((ts, order(cfg, 2, "ETHUSD", SELL, "10", "2000")))
    script.append((ts, order(cfg, 1, "ETHUSD", BUY, "10", "2000")))
    return Venue(cfg).run(script)


def test_the_window_counts_commands_from_its_start_up_to_not_including_its_end(
    day: Venue,
) -> None:
    # [02:00, 03:00): the second trade only; the third (at 03:00) is out
    got = day.compensate(FEES_PAID, from_ts=T0 + 2 * HOUR, until_ts=T0 + 3 * HOUR)
    assert paid(got) == {(2, USD): usd("24"), (1, USD): usd("39")}
    assert got.trades == 1
    got = day.compensate(FEES_PAID, from_ts=T0 + 2 * HOUR, until_ts=T0 + 3 * HOUR + 1)
    assert got.trades == 2
    assert paid(got) == {(2, USD): usd("24"), (1, USD): usd("39"), (3, USD): usd("24"),
                         (4, USD): usd("39")}  # fmt: skip


def test_filters_pairs_accounts_scope(day: Venue) -> None:
    eth = DEFAULT.pair("ETHUSD").index
    got = day.compensate(FEES_PAID, pairs=(eth,))
    # 20,000 USD: maker 32, taker 52
    assert paid(got) == {(2, USD): usd("32"), (1, USD): usd("52")} and got.trades == 1
    got = day.compensate(FEES_PAID, accounts=(1, 3))
    assert paid(got) == {(1, USD): usd("130"), (3, USD): usd("24")}
    assert got.trades == 4 and got.shares[1].trades == 3
    assert paid(day.compensate(FEES_PAID, scope=SCOPE_SPOT)) == day.fees()
    got = day.compensate(FEES_PAID, scope=SCOPE_MARGIN)
    assert (got.trades, got.shares, got.amounts()) == (0, {}, [])


def test_the_percentage_scales_each_amount_rounding_down(day: Venue) -> None:
    half = day.compensate(FEES_PAID, percent_ppm=parse_percent("50"))
    full = day.fees()
    assert paid(half) == {k: v // 2 for k, v in full.items()}
    third = day.compensate(FEES_PAID, accounts=(4,), percent_ppm=parse_percent("33.3333"))
    assert paid(third) == {(4, USD): usd("12.999987")}  # 39 x 0.333333
    report = third.report(DEFAULT)
    assert report["percent"] == "33.3333"
    assert report["per_account"] == [
        {"account": 4, "trades": 1,
         "amounts": {"ZUSD": {"units": usd("12.999987"), "amount": "12.9999870000"}}},
    ]  # fmt: skip
    assert report["totals"] == {"ZUSD": {"units": usd("12.999987"), "amount": "12.9999870000"}}


def test_report_shape(day: Venue) -> None:
    got = day.compensate(FEES_PAID, from_ts=T0, until_ts=T0 + 2 * HOUR + 1)
    report = got.report(DEFAULT)
    assert report["basis"] == "fees-paid" and report["id"].startswith("comp-")
    # times to the microsecond (the nanosecond past 02:00 does not show)
    assert (report["from"], report["until"]) == (
        "2023-11-15T00:00:00+00:00", "2023-11-15T02:00:00+00:00",
    )  # fmt: skip
    assert report["trades"] == 2 and report["closed"] is True
    assert report["through_seq"] == len(day.applied)
    assert report["totals"] == {"ZUSD": {"units": usd("126"), "amount": "126.0000000000"}}
    assert [a["account"] for a in report["per_account"]] == [1, 2]
    assert report["problems"] == [] and report["promotion"] is None


def test_a_window_not_yet_over_is_not_closed(day: Venue) -> None:
    _, last_ts, _ = day.applied[-1]
    assert not day.compensate(FEES_PAID, from_ts=T0, until_ts=last_ts + 1).closed
    assert day.compensate(FEES_PAID, from_ts=T0, until_ts=last_ts).closed


def test_a_fee_the_rebuild_cannot_explain_is_reported(day: Venue) -> None:
    tampered: list[Applied] = []
    for seq, ts, evs in day.applied:
        evs = [
            msgspec.structs.replace(e, taker_fee=e.taker_fee + 1)
            if isinstance(e, Trade) and e.trade_id == 2
            else e
            for e in evs
        ]
        tampered.append((seq, ts, evs))
    got = compensate(DEFAULT, tampered, Query(WAIVED, from_ts=0, until_ts=FAR))
    assert len(got.problems) == 1 and "trade 2" in got.problems[0], got.problems


# ---------------------------------------------------------------------------- promotions


def test_a_promotion_bounds_the_window_and_says_when_it_is_over() -> None:
    cfg = DEFAULT
    t = T0 + HOUR
    script = [
        *funding(cfg),
        (t, order(cfg, 2, "XBTUSD", SELL, "1", "30000")),  # before it: not counted
        (t, order(cfg, 1, "XBTUSD", BUY, "1", "30000")),
        (t + HOUR, promo("p", 0, 1000, t + 10 * DAY, accounts=[1])),
        (t + 2 * HOUR, order(cfg, 2, "XBTUSD", SELL, "1", "30000")),
        (t + 2 * HOUR, order(cfg, 1, "XBTUSD", BUY, "1", "30000")),
    ]
    v = Venue(cfg).run(script)
    got = v.compensate(WAIVED, promotion="p")
    # account 1 took at 0.10 % instead of 0.26 %: 48 USD; account 2 was not covered
    assert paid(got) == {(1, USD): usd("48")} and got.trades == 1
    assert not got.closed  # still running: more trades may come
    report = got.report(cfg)
    assert report["promotion"]["taker"] == "0.1" and report["promotion"]["state"] == "active"
    assert report["from"] == "2023-11-15T02:00:00+00:00"
    v = Venue(cfg).run([*script, (t + 3 * HOUR, EndPromotion(promo_id="p", reason="over"))])
    got = v.compensate(WAIVED, promotion="p")
    assert got.closed and got.report(cfg)["until"] == "2023-11-15T04:00:00+00:00"
    # a window narrows it further
    assert v.compensate(WAIVED, promotion="p", until_ts=t + 2 * HOUR).trades == 0


def test_unknown_promotion_and_bad_queries_are_refused(day: Venue) -> None:
    with pytest.raises(CompensationError, match="unknown promotion"):
        compensate(DEFAULT, day.applied, Query(WAIVED, promotion="nope"))
    for kw in (
        {"basis": "refund", "from_ts": 0, "until_ts": 1},
        {"basis": WAIVED},  # no window and no promotion
        {"basis": WAIVED, "from_ts": 5, "until_ts": 5},
        {"basis": WAIVED, "from_ts": 0, "until_ts": 1, "scope": "futures"},
        {"basis": WAIVED, "from_ts": 0, "until_ts": 1, "comp_id": "no spaces"},
    ):
        with pytest.raises(CompensationError):
            Query(**kw)
    for text in ("0", "-5", "1000.1", "1e-9", "lots"):
        with pytest.raises(CompensationError):
            parse_percent(text)


def test_the_id_names_the_compensation_not_how_it_is_narrowed() -> None:
    q = Query(FEES_PAID, from_ts=1, until_ts=2)
    assert q.id == Query(FEES_PAID, from_ts=1, until_ts=2).id  # deterministic
    assert q.id.startswith("comp-") and len(q.id) == 21
    narrowed = Query(FEES_PAID, from_ts=1, until_ts=2, pairs=(0,), accounts=(7,),
                     scope=SCOPE_SPOT, percent_ppm=500_000)  # fmt: skip
    assert narrowed.id == q.id  # so a second, narrower run pays nobody twice
    assert Query(FEES_PAID, from_ts=1, until_ts=3).id != q.id
    assert Query(WAIVED, from_ts=1, until_ts=2).id != q.id
    assert Query(FEES_PAID, from_ts=1, until_ts=2, promotion="p").id != q.id
    assert Query(FEES_PAID, from_ts=1, until_ts=2, comp_id="outage-2026-11").id == (
        "outage-2026-11"
    )
    assert credit_ref("outage-2026-11", 7, "ZUSD") == "outage-2026-11/7/ZUSD"


def test_read_from_a_journal_on_disk(tmp_path: Path, day: Venue) -> None:
    # as the sequencer writes it: each record carries its commands and the events of the
    # previous record's commands
    journal = Journal(tmp_path / "journal")
    replay = Exchange(DEFAULT)
    commands = [c for _, c in funding(DEFAULT)]
    cmds = [msgspec.structs.replace(c, seq=i, ts=T0) for i, c in enumerate(commands, 1)]
    journal.append(cmds[:10])
    outs = [replay.apply(c) for c in cmds[:10]]
    journal.append(cmds[10:], 1, outs)
    outs = [replay.apply(c) for c in cmds[10:]]
    t = T0 + HOUR
    more = [order(DEFAULT, 2, "XBTUSD", SELL, "1", "30000"),
            order(DEFAULT, 1, "XBTUSD", BUY, "1", "30000")]  # fmt: skip
    more = [msgspec.structs.replace(c, seq=len(cmds) + i, ts=t) for i, c in enumerate(more, 1)]
    journal.append(more, 11, outs)
    outs = [replay.apply(c) for c in more]
    got = compensate_journal(DEFAULT, journal, Query(FEES_PAID, from_ts=0, until_ts=FAR))
    # the trade's events are not recorded yet: not counted, and the answer says how far
    # it read
    assert got.trades == 0 and got.through_seq == len(cmds)
    journal.append([], len(cmds) + 1, outs)
    reread = Journal(tmp_path / "journal", readonly=True)
    got = compensate_journal(DEFAULT, reread, Query(FEES_PAID, from_ts=0, until_ts=FAR))
    assert paid(got) == {(2, USD): usd("48"), (1, USD): usd("78")}
    assert got.through_seq == len(cmds) + 2 and got.through_ts == t
    journal.close()
