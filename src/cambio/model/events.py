"""Events: everything the engine says, in order. Read models, market data, audits and
upgrade rehearsals are all built from these.

Ids (orders, trades, ledger entries) are integers assigned by the engine in sequence;
the API formats them as Kraken-style strings (cambio.model.ids). A `Trade` is the
double-entry ledger record of a fill: its legs (and their ledger ids, ``ledger_id`` up
to ``ledger_id + 5``) are spelled out by cambio.model.ledger.trade_postings.
"""

from __future__ import annotations

import msgspec

# the fields by which an event names accounts (monitors and upgrade reports look for them)
ACCOUNT_FIELDS = ("account", "maker_account", "taker_account", "src", "dst")


class Event(msgspec.Struct, tag=True, array_like=True, gc=False):
    """Base of every event. Encoded as arrays (tag first, then fields in order), so new
    fields are only ever appended, with defaults."""


class OrderAccepted(Event, tag="order_accepted"):
    """An order entered the engine (open, or pending until its trigger fires)."""

    order_id: int
    account: int
    pair: int
    side: int
    ordertype: str
    qty: int
    price: int  # limit price (limit types) or trigger price (stop types); 0 for market
    price2: int  # limit price of *-limit types once known, else 0
    display_qty: int
    tif: str
    expire_ts: int
    post_only: bool
    fee_in_base: bool
    stp: str
    userref: int | None
    cl_ord_id: str | None
    status: str  # "open" or "pending" (trigger orders)


class OrderRejected(Event, tag="order_rejected"):
    """An order-related command was refused; nothing changed."""

    account: int
    error: str
    order_id: int = 0
    userref: int | None = None
    cl_ord_id: str | None = None


class OrderValidated(Event, tag="order_validated"):
    """AddOrder with validate=true passed every check; nothing changed."""

    account: int


class OrderTriggered(Event, tag="order_triggered"):
    """A stop/take-profit/trailing order's trigger fired at `trigger_price`."""

    order_id: int
    account: int
    trigger_price: int
    limit_price: int  # for *-limit types, 0 for market execution


class OrderAmended(Event, tag="order_amended"):
    order_id: int
    account: int
    amend_id: int
    qty: int  # new total quantity
    display_qty: int
    price: int
    trigger_price: int
    priority_kept: bool


class OrderClosed(Event, tag="order_closed"):
    """An order left the book: status closed (filled), canceled or expired."""

    order_id: int
    account: int
    status: str
    reason: str
    filled: int


class Trade(Event, tag="trade"):
    """A fill between a resting (maker) and an arriving (taker) order."""

    trade_id: int
    ledger_id: int
    pair: int
    price: int
    qty: int
    cost: int  # quote units, exact
    taker_side: int
    maker_order: int
    maker_account: int
    taker_order: int
    taker_account: int
    maker_fee: int
    taker_fee: int
    maker_fee_base: bool  # fee charged in the base asset (fcib) instead of the quote
    taker_fee_base: bool


class Deposited(Event, tag="deposited"):
    ledger_id: int
    account: int
    asset: int
    amount: int
    ref: str


class WithdrawalHeld(Event, tag="withdrawal_held"):
    account: int
    asset: int
    amount: int
    fee: int
    ref: str
    key: str
    address: str


class WithdrawalCompleted(Event, tag="withdrawal_completed"):
    """Ledger ids: ``ledger_id`` debits the account, ``ledger_id + 1`` credits the fee."""

    ledger_id: int
    account: int
    asset: int
    amount: int
    fee: int
    ref: str
    txid: str


class WithdrawalReturned(Event, tag="withdrawal_returned"):
    account: int
    asset: int
    amount: int
    fee: int
    ref: str
    reason: str


class WithdrawalSent(Event, tag="withdrawal_sent"):
    """The withdrawal went to custody: it can no longer be cancelled."""

    account: int
    ref: str


class WithdrawalBroadcast(Event, tag="withdrawal_broadcast"):
    """Custody broadcast the withdrawal as `txid`; it completes once confirmed."""

    account: int
    ref: str
    txid: str


class Transferred(Event, tag="transferred"):
    """Ledger ids: ``ledger_id`` debits `src`, ``ledger_id + 1`` credits `dst`."""

    ledger_id: int
    src: int
    dst: int
    asset: int
    amount: int
    kind: str
    reason: str


class CommandRejected(Event, tag="command_rejected"):
    """A non-order command was refused; nothing changed."""

    error: str


class MarketModeChanged(Event, tag="market_mode"):
    pair: int
    mode: str
    reason: str


class GlobalModeChanged(Event, tag="global_mode"):
    mode: str
    reason: str


class FundingChanged(Event, tag="funding"):
    asset: int
    deposits: bool
    withdrawals: bool
    reason: str


class PromotionChanged(Event, tag="promotion"):
    """A promotion was created, started or ended."""

    promo_id: str
    state: str  # "scheduled", "active", "ended"
    maker_ppm: int
    taker_ppm: int
    start_ts: int
    end_ts: int
    scope: str
    pairs: list[int]
    accounts: list[int]
    reason: str


class DeadManSwitch(Event, tag="dead_man_switch"):
    """The account's cancel-all-after timer was (re)armed (trigger_ts) or disarmed (0)."""

    account: int
    trigger_ts: int


class FeeTierChanged(Event, tag="fee_tier"):
    """The account's 30-day volume moved it to another fee tier."""

    account: int
    volume: int
    maker_ppm: int
    taker_ppm: int


class UpgradePhase(Event, tag="upgrade"):
    """An engine upgrade's phase, as the operator's tooling journaled it."""

    phase: str
    candidate: str
    detail: str


AnyEvent = (
    OrderAccepted
    | OrderRejected
    | OrderValidated
    | OrderTriggered
    | OrderAmended
    | OrderClosed
    | Trade
    | Deposited
    | WithdrawalHeld
    | WithdrawalCompleted
    | WithdrawalReturned
    | WithdrawalSent
    | WithdrawalBroadcast
    | Transferred
    | CommandRejected
    | MarketModeChanged
    | GlobalModeChanged
    | FundingChanged
    | PromotionChanged
    | DeadManSwitch
    | FeeTierChanged
    | UpgradePhase
)
