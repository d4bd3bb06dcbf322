"""Halt and resume: the exchange stops without losing anything and reopens as exchanges
do after maintenance (cancel_only, then post_only, then online), timed by Ticks."""

from __future__ import annotations

import pytest
from _driver import BUYER, SEC, SELLER, Driver, accepted_id, funded, one, state_view

from cambio.engine import Exchange
from cambio.model import errors as E
from cambio.model.commands import (
    CANCEL_ONLY,
    MAINTENANCE,
    ONLINE,
    POST_ONLY,
    Halt,
    RequestWithdrawal,
    Resume,
    SetFunding,
    SetGlobalMode,
    SetMarketMode,
)
from cambio.model.events import (
    CommandRejected,
    Event,
    FundingChanged,
    GlobalModeChanged,
    OrderRejected,
    WithdrawalHeld,
)


@pytest.fixture
def d() -> Driver:
    return funded()


def modes(events: list[Event]) -> list[str]:
    return [e.mode for e in events if isinstance(e, GlobalModeChanged)]


def test_halt_keeps_every_order_balance_and_pending_withdrawal(d: Driver) -> None:
    resting = accepted_id(d.buy(BUYER, "1", "20000"))
    withdrawal = RequestWithdrawal(account=SELLER, asset="XXBT", amount=d.amt("XXBT", "1"),
                                   ref="w1")  # fmt: skip
    held = one(d.apply(withdrawal), WithdrawalHeld)
    d.apply(SetFunding(asset="ZUSD", withdrawals=False))  # already off: not repeated
    before = state_view(d)
    ev = d.apply(Halt(reason="engine upgrade"))
    assert modes(ev) == [MAINTENANCE] and one(ev, GlobalModeChanged).reason == "engine upgrade"
    off = [e for e in ev if isinstance(e, FundingChanged)]
    assert {e.asset for e in off} == {a.index for a in d.cfg.assets} - {d.asset("ZUSD")}
    assert all(not e.withdrawals and e.deposits for e in off)
    assert state_view(d) == before and d.is_open(resting)
    assert held.ref in d.ex.withdrawals
    # nothing trades, nothing leaves, cancels wait: orders are not touched by a halt
    assert one(d.sell(SELLER, "1", "20000"), OrderRejected).error == E.UNAVAILABLE
    ev = d.apply(RequestWithdrawal(account=SELLER, asset="XXBT", amount=1, ref="w2"))
    assert one(ev, CommandRejected).error.startswith("EFunding:")
    assert state_view(d) == before


def test_staged_resume_steps_through_cancel_only_and_post_only_on_ticks(d: Driver) -> None:
    d.apply(Halt(reason="maintenance"))
    start = d.ts
    ev = d.apply(Resume(reason="back", staged=True, cancel_only_s=60, post_only_s=120))
    assert modes(ev) == [CANCEL_ONLY]
    assert d.ex.global_mode == CANCEL_ONLY
    assert modes(d.tick_at(start + 59 * SEC)) == []
    ev = d.tick_at(start + 60 * SEC)
    assert modes(ev) == [POST_ONLY] and "staged reopening" in one(ev, GlobalModeChanged).reason
    assert one(d.buy(BUYER, "1", "20000"), OrderRejected).error == E.POST_ONLY_MODE
    assert accepted_id(d.buy(BUYER, "1", "20000", post_only=True))
    assert modes(d.tick_at(start + 179 * SEC)) == []
    assert modes(d.tick_at(start + 180 * SEC)) == [ONLINE]
    assert d.ex.stages == []
    # withdrawals stay off until the operator turns them on
    ev = d.apply(RequestWithdrawal(account=SELLER, asset="XXBT", amount=1, ref="w3"))
    assert one(ev, CommandRejected).error.startswith("EFunding:")


def test_a_late_tick_takes_every_step_that_is_due_in_order(d: Driver) -> None:
    d.apply(Halt())
    start = d.ts
    d.apply(Resume(staged=True, cancel_only_s=10, post_only_s=10))
    assert modes(d.tick_at(start + 3600 * SEC)) == [POST_ONLY, ONLINE]


def test_the_operator_takes_over_a_staged_reopening(d: Driver) -> None:
    d.apply(Halt())
    start = d.ts
    d.apply(Resume(staged=True, cancel_only_s=10, post_only_s=10))
    d.apply(SetGlobalMode(mode=CANCEL_ONLY, reason="something is wrong"))
    assert modes(d.tick_at(start + 3600 * SEC)) == []  # no step fires after that
    d.apply(Resume(staged=True, cancel_only_s=10, post_only_s=10))
    d.apply(Halt(reason="again"))
    assert modes(d.tick_at(start + 7200 * SEC)) == [] and d.ex.global_mode == MAINTENANCE


def test_a_staged_reopening_survives_snapshot_and_restore(d: Driver) -> None:
    d.apply(Halt())
    start = d.ts
    d.apply(Resume(reason="r", staged=True, cancel_only_s=10, post_only_s=10))
    d.ex = Exchange.restore(d.cfg, d.ex.snapshot())
    assert modes(d.tick_at(start + 10 * SEC)) == [POST_ONLY]
    d.ex = Exchange.restore(d.cfg, d.ex.snapshot())
    assert modes(d.tick_at(start + 20 * SEC)) == [ONLINE]


def test_a_plain_resume_is_online_at_once_and_per_market_modes_stay(d: Driver) -> None:
    d.apply(SetMarketMode(pair="XBTUSD", mode=POST_ONLY))
    d.apply(Halt())
    assert modes(d.apply(Resume(reason="done"))) == [ONLINE]
    assert d.ex.mode_of(d.ex.market("XBTUSD")) == POST_ONLY  # the market's own mode
    assert one(d.buy(BUYER, "1", "20000"), OrderRejected).error == E.POST_ONLY_MODE


def test_stage_durations_are_bounded(d: Driver) -> None:
    ev = d.apply(Resume(staged=True, cancel_only_s=-1))
    assert one(ev, CommandRejected).error.startswith(E.INVALID_ARGUMENTS)
    ev = d.apply(Resume(staged=True, post_only_s=10**9))
    assert one(ev, CommandRejected).error.startswith(E.INVALID_ARGUMENTS)
