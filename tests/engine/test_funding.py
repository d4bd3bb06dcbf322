"""Deposits, withdrawals (hold, complete, return), transfers (reference §4.4, §1.5).

The driver checks conservation after every command: the sum over every account (fee
account 0 included) of available + held equals deposits minus completed withdrawals.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from _driver import BUYER, SELLER, Driver, accepted_id, of, one, rejection, state_view

from cambio.model import errors as E
from cambio.model.commands import (
    CancelOrder,
    CompleteWithdrawal,
    Deposit,
    RequestWithdrawal,
    ReturnWithdrawal,
    Transfer,
)
from cambio.model.events import (
    CommandRejected,
    Deposited,
    Event,
    Transferred,
    WithdrawalCompleted,
    WithdrawalHeld,
    WithdrawalReturned,
)
from cambio.model.ledger import FEE_ACCOUNT

USD = "ZUSD"
BTC = "XXBT"
D = Decimal


@pytest.fixture
def d() -> Driver:
    return Driver()


def deposit(d: Driver, account: int, asset: str, amount: str, ref: str = "") -> list[Event]:
    return d.apply(Deposit(account=account, asset=asset, amount=d.amt(asset, amount), ref=ref))


def withdraw(
    d: Driver, account: int, asset: str, amount: str, ref: str, fee: str = "0"
) -> list[Event]:
    return d.apply(
        RequestWithdrawal(
            account=account,
            asset=asset,
            amount=d.amt(asset, amount),
            fee=d.amt(asset, fee),
            ref=ref,
        )
    )


def rejected(events: list[Event]) -> str:
    return one(events, CommandRejected).error


# ---------------------------------------------------------------------------- deposits


def test_deposit_credits_available(d: Driver) -> None:
    ev = deposit(d, BUYER, USD, "1234.5678", ref="dep-1")
    e = one(ev, Deposited)
    assert (e.account, e.asset, e.amount, e.ref) == (
        BUYER,
        d.asset(USD),
        d.amt(USD, "1234.5678"),
        "dep-1",
    )
    assert e.ledger_id > 0
    assert d.bal(BUYER, USD) == (D("1234.5678"), D("0"))


def test_deposits_accumulate_and_get_distinct_ledger_ids(d: Driver) -> None:
    a = one(deposit(d, BUYER, USD, "1"), Deposited)
    b = one(deposit(d, BUYER, USD, "2"), Deposited)
    c = one(deposit(d, SELLER, BTC, "0.5"), Deposited)
    assert len({a.ledger_id, b.ledger_id, c.ledger_id}) == 3
    assert d.avail(BUYER, USD) == D("3")
    assert d.avail(SELLER, BTC) == D("0.5")


@pytest.mark.parametrize("name", ["XXBT", "XBT", "BTC", "xbt"])
def test_deposit_asset_by_id_altname_or_symbol(d: Driver, name: str) -> None:
    ev = d.apply(Deposit(account=BUYER, asset=name, amount=d.amt(BTC, "1")))
    assert one(ev, Deposited).asset == d.asset(BTC)


def test_deposit_unknown_asset(d: Driver) -> None:
    ev = d.apply(Deposit(account=BUYER, asset="DOGE", amount=1))
    assert rejected(ev) == E.FUNDING_UNKNOWN_ASSET


@pytest.mark.parametrize("amount", [0, -5])
def test_deposit_invalid_amount(d: Driver, amount: int) -> None:
    ev = d.apply(Deposit(account=BUYER, asset=USD, amount=amount))
    assert rejected(ev) == E.FUNDING_INVALID_AMOUNT
    assert d.bal(BUYER, USD) == (D("0"), D("0"))


def test_duplicate_deposit_ref_is_refused(d: Driver) -> None:
    deposit(d, BUYER, USD, "100", ref="tx-1")
    before = state_view(d)
    ev = deposit(d, BUYER, USD, "100", ref="tx-1")
    assert rejected(ev).startswith("EFunding:")
    assert not of(ev, Deposited)
    assert state_view(d) == before
    assert d.avail(BUYER, USD) == D("100")
    # even for another account or asset
    assert rejected(deposit(d, SELLER, BTC, "1", ref="tx-1")).startswith("EFunding:")


# ---------------------------------------------------------------------------- withdrawals


def test_withdrawal_holds_then_completes(d: Driver) -> None:
    deposit(d, BUYER, USD, "1000")
    ev = withdraw(d, BUYER, USD, "300", ref="w-1", fee="5")
    h = one(ev, WithdrawalHeld)
    assert (h.account, h.amount, h.fee, h.ref) == (
        BUYER,
        d.amt(USD, "300"),
        d.amt(USD, "5"),
        "w-1",
    )
    assert d.bal(BUYER, USD) == (D("695"), D("305"))
    ev = d.apply(CompleteWithdrawal(ref="w-1", txid="0xfeed"))
    c = one(ev, WithdrawalCompleted)
    assert (c.amount, c.fee, c.txid) == (d.amt(USD, "300"), d.amt(USD, "5"), "0xfeed")
    assert d.bal(BUYER, USD) == (D("695"), D("0"))
    # the withdrawal fee goes to the fee account
    assert d.bal(FEE_ACCOUNT, USD) == (D("5"), D("0"))
    # 1000 deposited - 300 withdrawn = 700 left on the exchange
    assert d.total(BUYER, USD) + d.total(FEE_ACCOUNT, USD) == D("700")


def test_withdrawal_returned_releases_the_hold(d: Driver) -> None:
    deposit(d, BUYER, USD, "1000")
    withdraw(d, BUYER, USD, "300", ref="w-1", fee="5")
    ev = d.apply(ReturnWithdrawal(ref="w-1", reason="address rejected"))
    r = one(ev, WithdrawalReturned)
    assert r.ref == "w-1" and r.reason == "address rejected"
    assert r.amount == d.amt(USD, "300") and r.fee == d.amt(USD, "5")
    assert d.bal(BUYER, USD) == (D("1000"), D("0"))
    assert d.bal(FEE_ACCOUNT, USD) == (D("0"), D("0"))


def test_an_owners_cancel_finds_only_its_own_withdrawal(d: Driver) -> None:
    deposit(d, BUYER, USD, "1000")
    withdraw(d, BUYER, USD, "300", ref="w-1")
    someone_else = ReturnWithdrawal(ref="w-1", reason="canceled", account=SELLER)
    assert rejected(d.apply(someone_else)) == E.FUNDING_UNKNOWN_REF
    assert d.bal(BUYER, USD) == (D("700"), D("300"))  # still held
    one(d.apply(ReturnWithdrawal(ref="w-1", reason="canceled", account=BUYER)), WithdrawalReturned)
    assert d.bal(BUYER, USD) == (D("1000"), D("0"))


def test_withdrawal_cannot_complete_after_return_or_twice(d: Driver) -> None:
    deposit(d, BUYER, USD, "1000")
    withdraw(d, BUYER, USD, "100", ref="w-1")
    withdraw(d, BUYER, USD, "100", ref="w-2")
    d.apply(ReturnWithdrawal(ref="w-1"))
    assert rejected(d.apply(CompleteWithdrawal(ref="w-1"))) == E.FUNDING_UNKNOWN_REF
    d.apply(CompleteWithdrawal(ref="w-2"))
    assert rejected(d.apply(CompleteWithdrawal(ref="w-2"))) == E.FUNDING_UNKNOWN_REF
    assert rejected(d.apply(ReturnWithdrawal(ref="w-2"))) == E.FUNDING_UNKNOWN_REF
    assert d.bal(BUYER, USD) == (D("900"), D("0"))


def test_complete_unknown_withdrawal(d: Driver) -> None:
    assert rejected(d.apply(CompleteWithdrawal(ref="nope"))) == E.FUNDING_UNKNOWN_REF
    assert rejected(d.apply(ReturnWithdrawal(ref="nope"))) == E.FUNDING_UNKNOWN_REF


def test_duplicate_withdrawal_ref_is_refused(d: Driver) -> None:
    deposit(d, BUYER, USD, "1000")
    withdraw(d, BUYER, USD, "100", ref="w-1")
    before = state_view(d)
    assert rejected(withdraw(d, BUYER, USD, "100", ref="w-1")).startswith("EFunding:")
    assert state_view(d) == before
    # a completed ref stays used
    d.apply(CompleteWithdrawal(ref="w-1"))
    assert rejected(withdraw(d, BUYER, USD, "100", ref="w-1")).startswith("EFunding:")
    # and a deposit ref cannot be reused for a withdrawal
    deposit(d, BUYER, USD, "1", ref="dep-9")
    assert rejected(withdraw(d, BUYER, USD, "1", ref="dep-9")).startswith("EFunding:")
    assert d.bal(BUYER, USD) == (D("901"), D("0"))


def test_withdrawal_needs_a_ref(d: Driver) -> None:
    deposit(d, BUYER, USD, "1000")
    assert rejected(withdraw(d, BUYER, USD, "100", ref="")).startswith("EFunding:")
    assert d.bal(BUYER, USD) == (D("1000"), D("0"))


def test_withdrawal_insufficient_funds(d: Driver) -> None:
    deposit(d, BUYER, USD, "100")
    before = state_view(d)
    # amount + fee must be available
    err = rejected(withdraw(d, BUYER, USD, "99", ref="w-1", fee="2"))
    assert "Insufficient funds" in err
    assert rejected(withdraw(d, SELLER, USD, "1", ref="w-2")).endswith("Insufficient funds")
    assert state_view(d) == before
    # exactly everything is fine
    assert of(withdraw(d, BUYER, USD, "98", ref="w-3", fee="2"), WithdrawalHeld)
    assert d.bal(BUYER, USD) == (D("0"), D("100"))


def test_funds_held_by_orders_cannot_be_withdrawn(d: Driver) -> None:
    deposit(d, BUYER, USD, "1000")
    oid = accepted_id(d.buy(BUYER, "0.03", "30000"))  # 900 + fee held
    assert d.held(BUYER, USD) >= D("900")
    assert "Insufficient funds" in rejected(withdraw(d, BUYER, USD, "200", ref="w-1"))
    d.apply(CancelOrder(account=BUYER, order_id=oid))
    assert of(withdraw(d, BUYER, USD, "200", ref="w-1"), WithdrawalHeld)


def test_withdrawal_hold_cannot_be_traded(d: Driver) -> None:
    deposit(d, BUYER, USD, "1000")
    withdraw(d, BUYER, USD, "900", ref="w-1")
    assert rejection(d.buy(BUYER, "0.01", "30000")) == E.INSUFFICIENT_FUNDS
    assert d.bal(BUYER, USD) == (D("100"), D("900"))


@pytest.mark.parametrize(("amount", "fee"), [("0", "0"), ("-1", "0"), ("1", "-1")])
def test_withdrawal_invalid_amount(d: Driver, amount: str, fee: str) -> None:
    deposit(d, BUYER, USD, "1000")
    ev = withdraw(d, BUYER, USD, amount, ref="w-1", fee=fee)
    assert rejected(ev) == E.FUNDING_INVALID_AMOUNT
    assert d.bal(BUYER, USD) == (D("1000"), D("0"))


def test_withdrawal_unknown_asset(d: Driver) -> None:
    ev = d.apply(RequestWithdrawal(account=BUYER, asset="DOGE", amount=1, ref="w"))
    assert rejected(ev) == E.FUNDING_UNKNOWN_ASSET


# ---------------------------------------------------------------------------- transfers


def test_transfer_moves_available_funds(d: Driver) -> None:
    deposit(d, BUYER, USD, "1000")
    ev = d.apply(
        Transfer(src=BUYER, dst=7, asset=USD, amount=d.amt(USD, "250"), reason="subaccount")
    )
    t = one(ev, Transferred)
    assert (t.src, t.dst, t.amount, t.kind, t.reason) == (
        BUYER,
        7,
        d.amt(USD, "250"),
        "transfer",
        "subaccount",
    )
    assert d.bal(BUYER, USD) == (D("750"), D("0"))
    assert d.bal(7, USD) == (D("250"), D("0"))


def test_transfer_insufficient_funds(d: Driver) -> None:
    deposit(d, BUYER, USD, "100")
    before = state_view(d)
    ev = d.apply(Transfer(src=BUYER, dst=SELLER, asset=USD, amount=d.amt(USD, "100.0001")))
    assert rejected(ev) == E.INSUFFICIENT_FUNDS
    ev = d.apply(Transfer(src=99, dst=SELLER, asset=USD, amount=1))  # never funded
    assert rejected(ev) == E.INSUFFICIENT_FUNDS
    assert state_view(d) == before


def test_transfer_cannot_move_held_funds(d: Driver) -> None:
    deposit(d, BUYER, USD, "1000")
    withdraw(d, BUYER, USD, "600", ref="w-1")
    ev = d.apply(Transfer(src=BUYER, dst=SELLER, asset=USD, amount=d.amt(USD, "500")))
    assert rejected(ev) == E.INSUFFICIENT_FUNDS
    ev = d.apply(Transfer(src=BUYER, dst=SELLER, asset=USD, amount=d.amt(USD, "400")))
    assert of(ev, Transferred)
    assert d.bal(BUYER, USD) == (D("0"), D("600"))


@pytest.mark.parametrize(("src", "dst", "amount"), [(1, 1, 5), (1, 2, 0), (1, 2, -5)])
def test_transfer_invalid(d: Driver, src: int, dst: int, amount: int) -> None:
    deposit(d, BUYER, USD, "100")
    before = state_view(d)
    ev = d.apply(Transfer(src=src, dst=dst, asset=USD, amount=amount))
    assert of(ev, CommandRejected) and not of(ev, Transferred)
    assert state_view(d) == before


def test_transfer_unknown_asset(d: Driver) -> None:
    deposit(d, BUYER, USD, "100")
    ev = d.apply(Transfer(src=BUYER, dst=SELLER, asset="DOGE", amount=1))
    assert rejected(ev) == E.FUNDING_UNKNOWN_ASSET


def test_round_trip_keeps_everything_conserved(d: Driver) -> None:
    deposit(d, BUYER, USD, "1000")
    deposit(d, SELLER, BTC, "2")
    d.sell(SELLER, "1", "500")
    assert d.buy(BUYER, "1", "500")
    ev = d.apply(Transfer(src=BUYER, dst=SELLER, asset=BTC, amount=d.amt(BTC, "0.5")))
    assert of(ev, Transferred)
    assert of(withdraw(d, SELLER, BTC, "1.4", ref="w-btc", fee="0.0005"), WithdrawalHeld)
    assert of(d.apply(CompleteWithdrawal(ref="w-btc")), WithdrawalCompleted)
    assert of(withdraw(d, SELLER, USD, "400", ref="w-usd"), WithdrawalHeld)
    assert of(d.apply(CompleteWithdrawal(ref="w-usd")), WithdrawalCompleted)
    # BTC: 2 deposited, 1.4 left the exchange; the 0.0005 fee stayed, in the fee account
    total_btc = sum(d.total(a, BTC) for a in (FEE_ACCOUNT, BUYER, SELLER))
    assert total_btc == D("0.6")
    assert d.total(FEE_ACCOUNT, BTC) == D("0.0005")
    assert d.total(SELLER, BTC) == D("0.0995")
    total_usd = sum(d.total(a, USD) for a in (FEE_ACCOUNT, BUYER, SELLER))
    assert total_usd == D("600")
