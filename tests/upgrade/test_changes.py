"""Declared changes: a divergence is excused only when every difference is declared."""

from __future__ import annotations

import pytest

from cambio.model.events import Deposited, Event, Trade
from cambio.runtime.replay import Mismatch
from cambio.upgrade.changes import ChangesError, explain, load

FEE = load("""
[[change]]
name = "taker fee rounds up"
description = "ceil instead of half-even"
events = ["trade"]
fields = ["taker_fee"]
""")


def trade(taker_fee: int, qty: int = 5) -> Trade:
    return Trade(trade_id=1, ledger_id=1, pair=0, price=100, qty=qty, cost=500, taker_side=0,
                 maker_order=1, maker_account=1, taker_order=2, taker_account=2, maker_fee=0,
                 taker_fee=taker_fee, maker_fee_base=False, taker_fee_base=False)  # fmt: skip


def test_a_difference_only_in_a_declared_field_is_declared() -> None:
    assert explain(Mismatch(7, [trade(1)], [trade(2)]), FEE) is FEE[0]


@pytest.mark.parametrize(
    "recorded, replayed",
    [
        ([trade(1)], [trade(2, qty=6)]),  # an undeclared field differs as well
        ([trade(1)], [trade(1), trade(1)]),  # another number of events
        ([trade(1)], [Deposited(ledger_id=1, account=1, asset=0, amount=1, ref="x")]),
    ],
    ids=["undeclared-field", "event-count", "event-kind"],
)
def test_anything_else_is_a_divergence(recorded: list[Event], replayed: list[Event]) -> None:
    assert explain(Mismatch(7, recorded, replayed), FEE) is None


def test_no_file_declares_nothing_and_a_bad_file_is_refused() -> None:
    assert load(None) == [] and explain(Mismatch(1, [trade(1)], [trade(2)]), []) is None
    with pytest.raises(ChangesError, match=r"intended_changes\.toml"):
        load('[[change]]\nname = "x"\nevents = ["trade"]\nfieldz = ["qty"]\n')
    with pytest.raises(ChangesError):
        load("[[change]\n")
