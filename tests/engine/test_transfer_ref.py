"""Transfers with a ref happen at most once: the engine refuses a ref it has seen (from any
transfer, deposit or withdrawal), remembers it only when the transfer went through, and
keeps remembering it across a snapshot. Transfers without a ref are as before, and a
Transfer command encodes as before when it has none (old journals decode unchanged)."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest
from _driver import BUYER, SELLER, Driver, of, one, state_view

from cambio.engine import Exchange
from cambio.model import errors as E
from cambio.model.commands import AnyCommand, Deposit, RequestWithdrawal, Transfer
from cambio.model.events import CommandRejected, Transferred
from cambio.model.ledger import FEE_ACCOUNT

USD = "ZUSD"
D = Decimal


@pytest.fixture
def d() -> Driver:
    d = Driver()
    d.fund(BUYER, USD, "1000")
    return d


def credit(d: Driver, amount: str, ref: str, src: int = BUYER) -> Transfer:
    return Transfer(src=src, dst=SELLER, asset=USD, amount=d.amt(USD, amount), kind="credit",
                    reason="outage refund", ref=ref)  # fmt: skip


def test_a_transfer_with_a_ref_happens_once(d: Driver) -> None:
    t = one(d.apply(credit(d, "10", "comp-1/2/ZUSD")), Transferred)
    assert (t.kind, t.reason, t.amount) == ("credit", "outage refund", d.amt(USD, "10"))
    before = state_view(d)
    ev = d.apply(credit(d, "10", "comp-1/2/ZUSD"))
    assert one(ev, CommandRejected).error == E.FUNDING_INVALID_REF
    assert state_view(d) == before
    assert d.bal(SELLER, USD) == (D("10"), D("0"))
    # another ref is another transfer; no ref at all, as many as asked for
    assert of(d.apply(credit(d, "10", "comp-1/2/XXBT")), Transferred)
    assert of(d.apply(credit(d, "1", "")), Transferred)
    assert of(d.apply(credit(d, "1", "")), Transferred)
    assert d.bal(SELLER, USD) == (D("22"), D("0"))


def test_the_ref_is_checked_before_the_funds(d: Driver) -> None:
    d.apply(credit(d, "10", "r"))
    # the source is now empty too, but the answer is that it was done already
    ev = d.apply(credit(d, "10", "r", src=FEE_ACCOUNT))
    assert one(ev, CommandRejected).error == E.FUNDING_INVALID_REF


def test_a_refused_transfer_does_not_use_its_ref(d: Driver) -> None:
    # the fee account has nothing: refused; once it has funds, the same ref goes through
    ev = d.apply(credit(d, "5", "comp-2/2/ZUSD", src=FEE_ACCOUNT))
    assert one(ev, CommandRejected).error == E.INSUFFICIENT_FUNDS
    d.apply(Transfer(src=BUYER, dst=FEE_ACCOUNT, asset=USD, amount=d.amt(USD, "5")))
    t = one(d.apply(credit(d, "5", "comp-2/2/ZUSD", src=FEE_ACCOUNT)), Transferred)
    assert (t.src, t.dst) == (FEE_ACCOUNT, SELLER)
    assert d.total(FEE_ACCOUNT, USD) == 0


def test_refs_are_one_namespace_with_deposits_and_withdrawals(d: Driver) -> None:
    d.apply(Deposit(account=BUYER, asset=USD, amount=d.amt(USD, "1"), ref="dep-1"))
    d.apply(RequestWithdrawal(account=BUYER, asset=USD, amount=d.amt(USD, "1"), ref="wd-1"))
    for ref in ("dep-1", "wd-1"):
        assert one(d.apply(credit(d, "1", ref)), CommandRejected).error == E.FUNDING_INVALID_REF
    d.apply(credit(d, "1", "tr-1"))
    ev = d.apply(Deposit(account=BUYER, asset=USD, amount=1, ref="tr-1"))
    assert one(ev, CommandRejected).error == E.FUNDING_INVALID_REF


def test_a_restored_engine_remembers_transfer_refs(d: Driver) -> None:
    d.apply(credit(d, "10", "comp-3/2/ZUSD"))
    restored = Exchange.restore(d.cfg, d.ex.snapshot())
    assert restored.state_hash() == d.ex.state_hash()
    cmd = msgspec.structs.replace(credit(d, "10", "comp-3/2/ZUSD"), seq=d.seq + 1, ts=d.ts)
    assert one(restored.apply(cmd), CommandRejected).error == E.FUNDING_INVALID_REF


def test_a_transfer_without_ref_encodes_as_before() -> None:
    plain = Transfer(src=1, dst=2, asset=USD, amount=5, kind="adjustment", reason="x")
    encoded = msgspec.msgpack.encode(plain)
    assert b"ref" not in encoded  # omitted when empty: old engines read it, old bytes stay
    old = msgspec.msgpack.encode({"type": "transfer", "src": 1, "dst": 2, "asset": USD,
                                  "amount": 5, "kind": "adjustment", "reason": "x"})  # fmt: skip
    decoded = msgspec.msgpack.decode(old, type=AnyCommand)
    assert decoded == plain and isinstance(decoded, Transfer) and decoded.ref == ""
