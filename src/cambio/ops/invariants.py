"""The invariants that make funds safe, checked on the canonical state document.

* conservation: per asset, the balances of all accounts (the fee account included) add
  up to what came in (deposits) minus what went out (completed withdrawals);
* nothing negative: no available or held balance below zero;
* no crossed book: in every market the best bid is below the best ask.

They read `StateDoc` (cambio.engine.snapshot), not engine internals, so they hold any
engine build to the same rules, wherever it runs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import msgspec

from cambio.engine.snapshot import StateDoc
from cambio.model.events import Deposited, Event, WithdrawalCompleted


class Flows(msgspec.Struct):
    """Funds that crossed the exchange's boundary, per asset index, from the events."""

    deposited: dict[int, int] = {}
    withdrawn: dict[int, int] = {}

    def add(self, events: Sequence[Event]) -> None:
        for ev in events:
            if type(ev) is Deposited:
                self.deposited[ev.asset] = self.deposited.get(ev.asset, 0) + ev.amount
            elif type(ev) is WithdrawalCompleted:
                self.withdrawn[ev.asset] = self.withdrawn.get(ev.asset, 0) + ev.amount


def check(
    doc: StateDoc, flows: Flows, asset_ids: Sequence[str]
) -> tuple[dict[str, dict[str, int]], list[str]]:
    """Per asset totals ({asset: {deposited, withdrawn, balances, fees}}) and the problems
    found (empty when every invariant holds). `asset_ids` maps asset index to Kraken id."""
    problems: list[str] = []
    balances: dict[str, int] = defaultdict(int)
    fees: dict[str, int] = defaultdict(int)
    for acct in doc.accounts:
        for b in acct.balances:
            if b.available < 0 or b.held < 0:
                problems.append(
                    f"negative balance: account {acct.account} {b.asset} "
                    f"available {b.available} held {b.held}"
                )
            balances[b.asset] += b.available + b.held
            if acct.account == 0:
                fees[b.asset] += b.available + b.held
    per_asset: dict[str, dict[str, int]] = {}
    for index, asset in enumerate(asset_ids):
        dep = flows.deposited.get(index, 0)
        wd = flows.withdrawn.get(index, 0)
        total = balances.get(asset, 0)
        per_asset[asset] = {
            "deposited": dep,
            "withdrawn": wd,
            "balances": total,
            "fees": fees.get(asset, 0),
        }
        if total != dep - wd:
            problems.append(
                f"conservation: {asset} balances {total} != deposited {dep} - withdrawn {wd}"
            )
    for m in doc.markets:
        if m.bids and m.asks and m.bids[0][0] >= m.asks[0][0]:
            problems.append(f"crossed book: {m.pair} bid {m.bids[0][0]} >= ask {m.asks[0][0]}")
    return per_asset, problems
