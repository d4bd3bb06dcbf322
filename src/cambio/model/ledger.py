"""Double-entry postings: every balance change an event implies, with its ledger id.

The engine applies these changes itself in its hot path; this module spells them out for
everything else (read models, audits, tests), so the ledger can be rebuilt from events.
Each posting moves `amount` (signed, asset units) into or out of `account`; the postings
of one event always sum to zero per asset, except deposits and completed withdrawals,
which cross the exchange's boundary.
"""

from __future__ import annotations

import msgspec

from cambio.model.commands import BUY
from cambio.model.config import MarketConfig
from cambio.model.events import (
    Deposited,
    Event,
    Trade,
    Transferred,
    WithdrawalCompleted,
)

FEE_ACCOUNT = 0  # the exchange's own account: collects trading and withdrawal fees
TRADE_LEDGER_IDS = 6  # ledger ids consumed by one trade


class Posting(msgspec.Struct, frozen=True):
    ledger_id: int
    account: int
    asset: int
    amount: int  # balance change, fee already deducted
    fee: int  # the part of the change that is a fee (Kraken's ledger `fee` field)
    type: str  # trade, deposit, withdrawal, transfer, adjustment...


def trade_postings(t: Trade, config: MarketConfig) -> list[Posting]:
    """The six postings of a fill: maker base/quote, taker base/quote, two fee credits."""
    pair = config.pairs[t.pair]
    base_amt = t.qty * pair.base_per_lot
    out: list[Posting] = []
    fee_credits: list[Posting] = []
    for k, (account, is_buyer, fee, fee_base) in enumerate(
        (
            (t.maker_account, t.taker_side != BUY, t.maker_fee, t.maker_fee_base),
            (t.taker_account, t.taker_side == BUY, t.taker_fee, t.taker_fee_base),
        )
    ):
        sign = 1 if is_buyer else -1
        lid = t.ledger_id + 2 * k
        base_fee = fee if fee_base else 0
        quote_fee = 0 if fee_base else fee
        out.append(Posting(lid, account, pair.base, sign * base_amt - base_fee, base_fee, "trade"))
        out.append(
            Posting(lid + 1, account, pair.quote, -sign * t.cost - quote_fee, quote_fee, "trade")
        )
        fee_credits.append(
            Posting(
                t.ledger_id + 4 + k,
                FEE_ACCOUNT,
                pair.base if fee_base else pair.quote,
                fee,
                0,
                "trade",
            )
        )
    return out + fee_credits


def postings(event: Event, config: MarketConfig) -> list[Posting]:
    """Every balance change `event` implies (none for events that move no funds)."""
    if isinstance(event, Trade):
        return trade_postings(event, config)
    if isinstance(event, Deposited):
        return [Posting(event.ledger_id, event.account, event.asset, event.amount, 0, "deposit")]
    if isinstance(event, WithdrawalCompleted):
        return [
            Posting(
                event.ledger_id,
                event.account,
                event.asset,
                -event.amount - event.fee,
                event.fee,
                "withdrawal",
            ),
            Posting(event.ledger_id + 1, FEE_ACCOUNT, event.asset, event.fee, 0, "withdrawal"),
        ]
    if isinstance(event, Transferred):
        return [
            Posting(event.ledger_id, event.src, event.asset, -event.amount, 0, event.kind),
            Posting(event.ledger_id + 1, event.dst, event.asset, event.amount, 0, event.kind),
        ]
    return []
