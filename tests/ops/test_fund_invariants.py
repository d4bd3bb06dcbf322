"""The fund-safety invariants on the canonical state document: they hold for a real
engine's state and each one catches its own kind of breach."""

from __future__ import annotations

import msgspec
import pytest

from cambio.engine import Exchange
from cambio.engine.snapshot import BalanceDoc, StateDoc, state_doc
from cambio.model.commands import (
    BUY,
    SELL,
    AddOrder,
    Command,
    CompleteWithdrawal,
    Deposit,
    RequestWithdrawal,
)
from cambio.model.config import load_config
from cambio.ops.invariants import Flows, check

CONFIG = load_config()
ASSETS = [a.id for a in CONFIG.assets]


def traded() -> tuple[StateDoc, Flows]:
    ex = Exchange(CONFIG)
    flows = Flows()
    cmds: list[Command] = [
        Deposit(account=1, asset="ZUSD", amount=10**16, ref="a"),
        Deposit(account=2, asset="XXBT", amount=10**14, ref="b"),
        AddOrder(account=2, pair="XXBTZUSD", side=SELL, qty=2_000_000, price=5_000_000),
        AddOrder(account=2, pair="XXBTZUSD", side=SELL, qty=1_000_000, price=5_100_000),
        AddOrder(account=1, pair="XXBTZUSD", side=BUY, qty=1_000_000, price=5_000_000),
        AddOrder(account=1, pair="XXBTZUSD", side=BUY, qty=1_000_000, price=4_900_000),
        RequestWithdrawal(account=1, asset="ZUSD", amount=10**12, ref="w", fee=10**9),
        CompleteWithdrawal(ref="w"),
    ]
    for seq, cmd in enumerate(cmds, 1):
        cmd.seq, cmd.ts = seq, seq * 10**9
        flows.add(ex.apply(cmd))
    return state_doc(ex), flows


def test_a_real_engine_state_holds_every_invariant() -> None:
    doc, flows = traded()
    per_asset, problems = check(doc, flows, ASSETS)
    assert problems == []
    assert per_asset["ZUSD"]["deposited"] == 10**16 and per_asset["ZUSD"]["withdrawn"] == 10**12
    assert per_asset["ZUSD"]["balances"] == 10**16 - 10**12
    assert per_asset["ZUSD"]["fees"] > 0  # the trade's fee and the withdrawal fee


def copy(doc: StateDoc) -> StateDoc:
    return msgspec.msgpack.decode(msgspec.msgpack.encode(doc), type=StateDoc)


@pytest.mark.parametrize("breach", ["minted", "negative", "crossed"])
def test_each_breach_is_reported(breach: str) -> None:
    doc, flows = traded()
    bad = copy(doc)
    if breach == "minted":
        bad.accounts[0].balances.append(BalanceDoc("SOL", 5, 0))
        expected = "conservation: SOL"
    elif breach == "negative":
        b = bad.accounts[-1].balances[0]
        bad.accounts[-1].balances[0] = BalanceDoc(b.asset, -1, b.held + b.available + 1)
        expected = "negative balance"
    else:
        market = next(m for m in bad.markets if m.pair == "XXBTZUSD")
        market.bids.insert(0, [market.asks[0][0] + 10, 999])
        expected = "crossed book: XXBTZUSD"
    problems = check(bad, flows, ASSETS)[1]
    assert len(problems) == 1 and problems[0].startswith(expected), problems
