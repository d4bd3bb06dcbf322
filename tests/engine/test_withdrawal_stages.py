"""A withdrawal's way through custody: queued -> sent -> broadcast -> completed, or
returned only when custody says it failed; snapshots keep the stage."""

from __future__ import annotations

from decimal import Decimal

import pytest
from _driver import Driver, one
from hypothesis import given, settings
from hypothesis import strategies as st

from cambio.engine import Exchange
from cambio.engine.queries import answer
from cambio.model import errors as E
from cambio.model.commands import (
    CompleteWithdrawal,
    Halt,
    MarkWithdrawalBroadcast,
    RequestWithdrawal,
    Resume,
    ReturnWithdrawal,
    SendWithdrawal,
    SetFunding,
)
from cambio.model.events import (
    CommandRejected,
    Event,
    WithdrawalBroadcast,
    WithdrawalReturned,
    WithdrawalSent,
)

BTC = "XXBT"
ALICE = 7
ADDRESS = "bc1qexample"


@pytest.fixture
def d() -> Driver:
    d = Driver()
    d.fund(ALICE, BTC, "2")
    assert not rejection(request(d, "W1"))
    return d


def request(d: Driver, ref: str, amount: str = "1") -> list[Event]:
    return d.apply(
        RequestWithdrawal(
            account=ALICE,
            asset=BTC,
            amount=d.amt(BTC, amount),
            fee=d.amt(BTC, "0.0001"),
            ref=ref,
            address=ADDRESS,
        )
    )


def rejection(events: list[Event]) -> str | None:
    """The engine's refusal of a non-order command, or None if it was taken."""
    found = [e for e in events if isinstance(e, CommandRejected)]
    return found[0].error if found else None


def pending(d: Driver) -> dict[str, dict[str, object]]:
    return {w["ref"]: w for w in answer(d.ex, "withdrawals", [])}


def test_the_queue_shows_each_withdrawal_with_its_address_and_stage(d: Driver) -> None:
    (w,) = pending(d).values()
    assert (w["ref"], w["address"], w["stage"], w["asset"]) == ("W1", ADDRESS, 0, BTC)
    assert w["amount"] == d.amt(BTC, "1")


def test_sent_withdrawal_cannot_be_cancelled_by_its_owner_or_returned_by_hand(
    d: Driver,
) -> None:
    assert one(d.apply(SendWithdrawal(ref="W1")), WithdrawalSent).account == ALICE
    own = d.apply(ReturnWithdrawal(ref="W1", reason="canceled", account=ALICE))
    assert rejection(own) == E.FUNDING_CANCEL_DENIED
    assert rejection(d.apply(ReturnWithdrawal(ref="W1"))) == E.FUNDING_CANCEL_DENIED
    assert rejection(d.apply(SendWithdrawal(ref="W1"))) == E.FUNDING_CANCEL_DENIED
    assert d.held(ALICE, BTC) == Decimal("1.0001")  # still held: custody decides now
    assert pending(d)["W1"]["stage"] == 1


def test_broadcast_then_complete_debits_once(d: Driver) -> None:
    before = d.total(ALICE, BTC)
    d.apply(SendWithdrawal(ref="W1"))
    ev = one(d.apply(MarkWithdrawalBroadcast(ref="W1", txid="ab" * 32)), WithdrawalBroadcast)
    assert ev.txid == "ab" * 32
    assert pending(d)["W1"]["txid"] == "ab" * 32
    assert not rejection(d.apply(CompleteWithdrawal(ref="W1", txid="ab" * 32)))
    assert d.total(ALICE, BTC) == before - Decimal("1.0001")
    assert rejection(d.apply(CompleteWithdrawal(ref="W1"))) == E.FUNDING_UNKNOWN_REF


def test_a_failed_payout_returns_the_funds(d: Driver) -> None:
    before = d.avail(ALICE, BTC)
    d.apply(SendWithdrawal(ref="W1"))
    d.apply(MarkWithdrawalBroadcast(ref="W1", txid="cd" * 32))
    back = d.apply(ReturnWithdrawal(ref="W1", reason="failed on the network", failed=True))
    assert one(back, WithdrawalReturned).amount == d.amt(BTC, "1")
    assert (d.avail(ALICE, BTC), d.held(ALICE, BTC)) == (before + Decimal("1.0001"), 0)
    # an owner cannot claim a failure: `failed` is custody's word only
    request(d, "W2")
    d.apply(SendWithdrawal(ref="W2"))
    mine = d.apply(ReturnWithdrawal(ref="W2", account=ALICE, failed=True))
    assert rejection(mine) == E.FUNDING_CANCEL_DENIED


def test_broadcast_needs_a_sent_withdrawal_and_a_txid(d: Driver) -> None:
    assert rejection(d.apply(MarkWithdrawalBroadcast(ref="W1", txid="ef"))) == (
        E.FUNDING_INVALID_REF
    )
    d.apply(SendWithdrawal(ref="W1"))
    assert rejection(d.apply(MarkWithdrawalBroadcast(ref="W1", txid=""))) == (E.FUNDING_INVALID_REF)
    assert rejection(d.apply(MarkWithdrawalBroadcast(ref="nope", txid="ef"))) == (
        E.FUNDING_UNKNOWN_REF
    )


def test_a_halt_holds_the_queue_but_not_what_custody_already_has(d: Driver) -> None:
    request(d, "W2", "0.5")
    d.apply(SendWithdrawal(ref="W1"))
    d.apply(Halt(reason="engine upgrade"))
    assert rejection(d.apply(SendWithdrawal(ref="W2"))) == E.FUNDING_DISABLED
    # a payout already broadcast cannot be recalled: its confirmation still settles
    d.apply(MarkWithdrawalBroadcast(ref="W1", txid="01" * 32))
    assert not rejection(d.apply(CompleteWithdrawal(ref="W1", txid="01" * 32)))
    assert pending(d)["W2"]["stage"] == 0  # kept exactly, still the owner's to cancel
    d.apply(Resume(reason="trading back"))
    assert rejection(d.apply(SendWithdrawal(ref="W2"))) == E.FUNDING_DISABLED
    d.apply(SetFunding(asset=BTC, withdrawals=True, reason="withdrawals back"))
    assert not rejection(d.apply(SendWithdrawal(ref="W2")))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["send", "broadcast", "complete", "fail", "cancel", "snap"])))
def test_any_path_keeps_stage_through_snapshots_and_conserves(steps: list[str]) -> None:
    d = Driver()
    d.fund(ALICE, BTC, "2")
    request(d, "W1")
    for step in steps:
        if step == "send":
            d.apply(SendWithdrawal(ref="W1"))
        elif step == "broadcast":
            d.apply(MarkWithdrawalBroadcast(ref="W1", txid="aa" * 32))
        elif step == "complete":
            d.apply(CompleteWithdrawal(ref="W1", txid="aa" * 32))
        elif step == "fail":
            d.apply(ReturnWithdrawal(ref="W1", reason="failed", failed=True))
        elif step == "cancel":
            d.apply(ReturnWithdrawal(ref="W1", reason="canceled", account=ALICE))
        else:
            before = (pending(d), d.ex.state_hash())
            d.ex = Exchange.restore(d.ex.config, d.ex.snapshot())
            assert (pending(d), d.ex.state_hash()) == before
        d.check()  # conservation and no negative balance, after every step
