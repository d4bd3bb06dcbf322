"""Reconciliation: the ledger (what the journal's events say) against custody (what the
wallet says happened), transaction by transaction. Part of ``cambio verify``.

A problem is a disagreement that means money is wrong somewhere:

* a deposit credited to another account or amount than the chain paid, or credited from
  a transaction custody never saw;
* a payout custody made for a withdrawal the ledger never sent to it, or for another
  amount or address;
* a withdrawal both paid (custody confirmed it) and returned to its owner: paid twice;
* a withdrawal the ledger completed that custody did not confirm (or with another txid),
  or one the ledger returned while custody may still confirm it.

Work in flight is listed, not failed: confirmed deposits not yet credited, withdrawals
sent but not yet paid, confirmed but not yet completed, failed but not yet returned (the
worker resumes all of these). Per asset it reports what custody holds against what the
ledger owes; funds credited by the operator (``cambio admin account deposit``) have no
chain transaction, so a shortfall is a note for the operator, not a ledger error.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from cambio.custody.adapter import CONFIRMED, FAILED, CustodyAdapter
from cambio.model.config import AssetSpec, MarketConfig
from cambio.model.decimals import format_units
from cambio.model.events import (
    Deposited,
    Event,
    WithdrawalCompleted,
    WithdrawalHeld,
    WithdrawalReturned,
    WithdrawalSent,
)
from cambio.model.ids import is_chain_txid


@dataclass
class LedgerFunding:
    """The funding facts of the journal's events, fed batch by batch."""

    deposits: dict[str, Deposited] = field(default_factory=dict)
    held: dict[str, WithdrawalHeld] = field(default_factory=dict)
    sent: set[str] = field(default_factory=set)
    completed: dict[str, WithdrawalCompleted] = field(default_factory=dict)
    returned: dict[str, WithdrawalReturned] = field(default_factory=dict)

    def add(self, events: Iterable[Event]) -> None:
        for e in events:
            kind = type(e)
            if kind is Deposited:
                assert isinstance(e, Deposited)
                self.deposits[e.ref] = e
            elif kind is WithdrawalHeld:
                assert isinstance(e, WithdrawalHeld)
                self.held[e.ref] = e
            elif kind is WithdrawalSent:
                assert isinstance(e, WithdrawalSent)
                self.sent.add(e.ref)
            elif kind is WithdrawalCompleted:
                assert isinstance(e, WithdrawalCompleted)
                self.completed[e.ref] = e
            elif kind is WithdrawalReturned:
                assert isinstance(e, WithdrawalReturned)
                self.returned[e.ref] = e


def reconcile(
    ledger: LedgerFunding,
    custody: CustodyAdapter,
    owner_of: Callable[[str], int | None],
    config: MarketConfig,
    supply: dict[str, int],
) -> tuple[dict[str, Any], list[str], list[str]]:
    """(report, problems, in-flight notes). `supply`: what the ledger owes per asset id."""
    problems: list[str] = []
    notes: list[str] = []
    index = {a.id: a.index for a in config.assets}
    credited = dict.fromkeys(index, 0)
    on_chain_seen: set[str] = set()

    for tx in custody.incoming(0):
        on_chain_seen.add(tx.txid)
        owner = owner_of(tx.address)
        d = ledger.deposits.get(tx.txid)
        if d is None:
            if owner is not None and tx.confirmations >= config.asset(tx.asset).confirmations:
                notes.append(f"deposit {tx.txid[:16]}… confirmed, not yet credited")
            continue
        if (
            owner is None
            or d.account != owner
            or d.amount != tx.amount
            or (d.asset != index[tx.asset])
        ):
            problems.append(
                f"deposit {tx.txid}: the chain paid {tx.amount} {tx.asset} to account {owner}, "
                f"the ledger credited {d.amount} to account {d.account}"
            )
        credited[tx.asset] += d.amount
    for ref in ledger.deposits:
        if is_chain_txid(ref) and ref not in on_chain_seen:
            problems.append(f"deposit {ref}: credited, but custody never saw the transaction")

    payouts = custody.payouts()
    paid = dict.fromkeys(index, 0)
    for wid, n in Counter(p.withdrawal_id for p in payouts).items():
        if n > 1:
            problems.append(f"withdrawal {wid}: {n} payouts")
    for p in payouts:
        ref = p.withdrawal_id
        held = ledger.held.get(ref)
        if ref not in ledger.sent or held is None:
            problems.append(f"withdrawal {ref}: custody paid it, the ledger never sent it")
            continue
        if (held.amount, held.address) != (p.amount, p.address):
            problems.append(
                f"withdrawal {ref}: the ledger holds {held.amount} to {held.address}, custody "
                f"paid {p.amount} to {p.address}"
            )
        done, back = ledger.completed.get(ref), ledger.returned.get(ref)
        if p.state == CONFIRMED:
            paid[p.asset] += p.amount
            if back is not None:
                problems.append(f"withdrawal {ref}: paid on chain ({p.txid}) AND returned")
            elif done is None:
                notes.append(f"withdrawal {ref}: confirmed, completion pending")
            elif done.txid != p.txid:
                problems.append(f"withdrawal {ref}: completed as {done.txid}, paid as {p.txid}")
        elif p.state == FAILED:
            if done is not None:
                problems.append(f"withdrawal {ref}: completed, but custody says it failed")
            elif back is None:
                notes.append(f"withdrawal {ref}: failed on chain, return pending")
        else:  # signed or broadcast
            if done is not None or back is not None:
                problems.append(f"withdrawal {ref}: settled while custody still has it {p.state}")
            else:
                notes.append(f"withdrawal {ref}: {p.state}, awaiting confirmation")
    paid_ids = {p.withdrawal_id for p in payouts}
    for ref in ledger.sent - paid_ids:
        if ref in ledger.completed or ref in ledger.returned:
            problems.append(f"withdrawal {ref}: sent to custody and settled with no payout")
        else:
            notes.append(f"withdrawal {ref}: sent, not yet paid (the worker resumes it)")

    per_asset = {}
    for asset in custody_assets(config):
        text = partial(_shown, config.asset(asset))
        holds, owes = custody.balance(asset), supply.get(asset, 0)
        per_asset[asset] = {
            "custody_holds": text(holds),
            "ledger_owes": text(owes),
            "credited_from_chain": text(credited[asset]),
            "paid_out": text(paid[asset]),
        }
        if holds < owes:
            notes.append(
                f"{asset}: custody holds {text(holds)}, the ledger owes {text(owes)} "
                "(operator credits are not on chain)"
            )
    report = {"deposits": len(on_chain_seen), "payouts": len(payouts), "per_asset": per_asset}
    return report, problems, notes


def _shown(spec: AssetSpec, value: int) -> str:
    return format_units(value, spec.units, spec.decimals)


def custody_assets(config: MarketConfig) -> list[str]:
    return [a.id for a in config.assets if a.network]
