"""Double-entry postings: a Trade's six legs sum to zero per asset with the fees credited
to fee account 0; deposits and completed withdrawals are the only boundary crossings; and
the postings of every event rebuild the engine's balances exactly."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest

from cambio.engine import Exchange
from cambio.model.commands import (
    BUY,
    SELL,
    AddOrder,
    Command,
    CompleteWithdrawal,
    Deposit,
    RequestWithdrawal,
    Transfer,
)
from cambio.model.config import MarketConfig, load_config
from cambio.model.events import (
    Deposited,
    Event,
    OrderAccepted,
    Trade,
    Transferred,
    WithdrawalCompleted,
    WithdrawalHeld,
)
from cambio.model.ledger import FEE_ACCOUNT, TRADE_LEDGER_IDS, Posting, postings, trade_postings


@pytest.fixture(scope="module")
def cfg() -> MarketConfig:
    return load_config()


def make_trade(
    cfg: MarketConfig,
    *,
    taker_side: int = BUY,
    maker_fee_base: bool = False,
    taker_fee_base: bool = False,
) -> Trade:
    p = cfg.pair("XBTUSD")
    qty = 50_000_000  # 0.5 BTC
    price = 300_000  # 30000.0
    cost = p.cost(price, qty)
    base_amt = qty * p.base_per_lot
    return Trade(
        trade_id=1,
        ledger_id=100,
        pair=p.index,
        price=price,
        qty=qty,
        cost=cost,
        taker_side=taker_side,
        maker_order=1,
        maker_account=2,
        taker_order=2,
        taker_account=1,
        maker_fee=(base_amt if maker_fee_base else cost) * 1600 // 1_000_000,
        taker_fee=(base_amt if taker_fee_base else cost) * 2600 // 1_000_000,
        maker_fee_base=maker_fee_base,
        taker_fee_base=taker_fee_base,
    )


def per_asset(ps: list[Posting]) -> dict[int, int]:
    sums: dict[int, int] = defaultdict(int)
    for x in ps:
        sums[x.asset] += x.amount
    return dict(sums)


@pytest.mark.parametrize("taker_side", [BUY, SELL])
@pytest.mark.parametrize("maker_fee_base", [False, True])
@pytest.mark.parametrize("taker_fee_base", [False, True])
def test_trade_postings_sum_to_zero_per_asset(
    cfg: MarketConfig, taker_side: int, maker_fee_base: bool, taker_fee_base: bool
) -> None:
    t = make_trade(
        cfg, taker_side=taker_side, maker_fee_base=maker_fee_base, taker_fee_base=taker_fee_base
    )
    ps = trade_postings(t, cfg)
    assert len(ps) == TRADE_LEDGER_IDS == 6
    assert all(v == 0 for v in per_asset(ps).values())
    assert sorted(x.ledger_id for x in ps) == list(range(t.ledger_id, t.ledger_id + 6))
    assert postings(t, cfg) == ps


@pytest.mark.parametrize("taker_side", [BUY, SELL])
@pytest.mark.parametrize("maker_fee_base", [False, True])
@pytest.mark.parametrize("taker_fee_base", [False, True])
def test_trade_fee_legs_credit_fee_account(
    cfg: MarketConfig, taker_side: int, maker_fee_base: bool, taker_fee_base: bool
) -> None:
    p = cfg.pair("XBTUSD")
    t = make_trade(
        cfg, taker_side=taker_side, maker_fee_base=maker_fee_base, taker_fee_base=taker_fee_base
    )
    ps = trade_postings(t, cfg)
    fee_legs = [x for x in ps if x.account == FEE_ACCOUNT]
    assert len(fee_legs) == 2
    expected = sorted(
        [
            (p.base if maker_fee_base else p.quote, t.maker_fee),
            (p.base if taker_fee_base else p.quote, t.taker_fee),
        ]
    )
    assert sorted((x.asset, x.amount) for x in fee_legs) == expected
    assert all(x.fee == 0 for x in fee_legs)
    # each trader's legs record the fee they paid, in the right asset
    for account, fee, in_base in (
        (2, t.maker_fee, maker_fee_base),
        (1, t.taker_fee, taker_fee_base),
    ):
        legs = {x.asset: x for x in ps if x.account == account}
        assert set(legs) == {p.base, p.quote}
        assert legs[p.base if in_base else p.quote].fee == fee
        assert legs[p.quote if in_base else p.base].fee == 0


def test_taker_buy_legs(cfg: MarketConfig) -> None:
    p = cfg.pair("XBTUSD")
    t = make_trade(cfg, taker_side=BUY)
    base_amt = t.qty * p.base_per_lot
    legs = {(x.account, x.asset): x.amount for x in trade_postings(t, cfg)}
    assert legs[(1, p.base)] == base_amt  # the taker bought
    assert legs[(1, p.quote)] == -t.cost - t.taker_fee
    assert legs[(2, p.base)] == -base_amt  # the maker sold
    assert legs[(2, p.quote)] == t.cost - t.maker_fee
    assert legs[(FEE_ACCOUNT, p.quote)] in (t.maker_fee, t.taker_fee)


def test_taker_sell_with_fee_in_base(cfg: MarketConfig) -> None:
    p = cfg.pair("XBTUSD")
    t = make_trade(cfg, taker_side=SELL, taker_fee_base=True)
    base_amt = t.qty * p.base_per_lot
    legs = {(x.account, x.asset): x.amount for x in trade_postings(t, cfg) if x.account}
    assert legs[(1, p.base)] == -base_amt - t.taker_fee
    assert legs[(1, p.quote)] == t.cost
    assert legs[(2, p.base)] == base_amt
    assert legs[(2, p.quote)] == -t.cost - t.maker_fee


def test_deposit_and_withdrawal_cross_the_boundary(cfg: MarketConfig) -> None:
    (dep,) = postings(Deposited(ledger_id=5, account=3, asset=2, amount=700, ref="r"), cfg)
    assert (dep.account, dep.asset, dep.amount, dep.type) == (3, 2, 700, "deposit")
    wd = postings(
        WithdrawalCompleted(ledger_id=9, account=3, asset=2, amount=500, fee=7, ref="w", txid=""),
        cfg,
    )
    assert sorted((x.account, x.amount) for x in wd) == [(FEE_ACCOUNT, 7), (3, -507)]
    assert sum(x.amount for x in wd) == -500  # only the amount leaves; the fee stays
    assert {x.ledger_id for x in wd} == {9, 10}


def test_transfer_sums_to_zero(cfg: MarketConfig) -> None:
    ps = postings(
        Transferred(ledger_id=3, src=1, dst=2, asset=0, amount=99, kind="transfer", reason=""),
        cfg,
    )
    assert sorted((x.account, x.amount) for x in ps) == [(1, -99), (2, 99)]
    assert {x.ledger_id for x in ps} == {3, 4}


def test_events_that_move_no_funds_have_no_postings(cfg: MarketConfig) -> None:
    held = WithdrawalHeld(account=1, asset=0, amount=5, fee=0, ref="x", key="", address="")
    assert postings(held, cfg) == []


# ---------------------------------------------------------------------------- from the engine


def test_postings_rebuild_engine_balances(cfg: MarketConfig) -> None:
    """Random trading through the engine; the ledger rebuilt from the events matches the
    engine's balances (available + held) for every account and asset, and ledger ids are
    never reused."""
    ex = Exchange(cfg)
    rng = random.Random(2024)
    seq = 0
    events: list[Event] = []
    ts = 1_700_000_000 * 10**9

    def apply(cmd: Command) -> list[Event]:
        nonlocal seq, ts
        seq += 1
        ts += 10**9
        cmd.seq, cmd.ts = seq, ts
        ev = ex.apply(cmd)
        events.extend(ev)
        return ev

    usd = cfg.asset("ZUSD")
    btc = cfg.asset("XXBT")
    accounts = [1, 2, 3, 4]
    for a in accounts:
        apply(Deposit(account=a, asset="ZUSD", amount=500_000 * 10**usd.units))
        apply(Deposit(account=a, asset="XXBT", amount=10 * 10**btc.units))
    for _ in range(600):
        a = rng.choice(accounts)
        side = rng.choice((BUY, SELL))
        price = 300_000 + rng.randrange(-50, 51) * 10
        qty = rng.randrange(1, 200) * 1_000_000
        apply(
            AddOrder(
                account=a,
                pair="XBTUSD",
                side=side,
                qty=qty,
                price=price,
                fee_in_base=rng.random() < 0.3,
            )
        )
    apply(Transfer(src=1, dst=5, asset="ZUSD", amount=1000 * 10**usd.units, kind="adjustment"))
    apply(RequestWithdrawal(account=2, asset="XXBT", amount=10**btc.units, fee=10**8, ref="w1"))
    apply(CompleteWithdrawal(ref="w1"))

    assert sum(isinstance(e, Trade) for e in events) > 50
    assert any(isinstance(e, OrderAccepted) and e.fee_in_base for e in events)
    ledger: dict[tuple[int, int], int] = defaultdict(int)
    ids: list[int] = []
    for e in events:
        for x in postings(e, cfg):
            ledger[(x.account, x.asset)] += x.amount
            ids.append(x.ledger_id)
    assert len(ids) == len(set(ids))
    for account in [FEE_ACCOUNT, *accounts, 5]:
        for asset in range(len(cfg.assets)):
            avail, held = ex.balance(account, asset)
            assert ledger[(account, asset)] == avail + held, (account, asset)
    assert ledger[(FEE_ACCOUNT, usd.index)] > 0
    assert ledger[(FEE_ACCOUNT, btc.index)] > 0
