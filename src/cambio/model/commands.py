"""Commands: every input to the engine, as sequenced, journaled values.

The sequencer stamps each command with ``seq`` (its position in the journal) and ``ts``
(nanoseconds since the Unix epoch) before the engine sees it; the engine reads time only
from there. Amounts are integers (see cambio.model.config for the units); pairs and assets
are referred to by their Kraken id (the engine resolves altnames too).
"""

from __future__ import annotations

import msgspec

# Sides
BUY = 0
SELL = 1

# Order types (AddOrder.ordertype)
LIMIT = "limit"
MARKET = "market"
ICEBERG = "iceberg"
STOP_LOSS = "stop-loss"
TAKE_PROFIT = "take-profit"
STOP_LOSS_LIMIT = "stop-loss-limit"
TAKE_PROFIT_LIMIT = "take-profit-limit"
TRAILING_STOP = "trailing-stop"
TRAILING_STOP_LIMIT = "trailing-stop-limit"
ORDER_TYPES = (
    LIMIT,
    MARKET,
    ICEBERG,
    STOP_LOSS,
    TAKE_PROFIT,
    STOP_LOSS_LIMIT,
    TAKE_PROFIT_LIMIT,
    TRAILING_STOP,
    TRAILING_STOP_LIMIT,
)

# Time in force
GTC = "GTC"
IOC = "IOC"
GTD = "GTD"
FOK = "FOK"

# Self-trade prevention
STP_CANCEL_NEWEST = "cancel-newest"
STP_CANCEL_OLDEST = "cancel-oldest"
STP_CANCEL_BOTH = "cancel-both"

# How AddOrder.price / price2 are to be read (Kraken's "+", "-" and "#" prefixes)
PRICE_ABS = 0  # an absolute price in price units
PRICE_PLUS = 1  # "+x": above the reference (last trade) / trailing offset
PRICE_MINUS = 2  # "-x": below the reference
PRICE_AUTO = 3  # "#x": the direction that makes sense for the order's side

# Market and global modes, least to most restrictive
ONLINE = "online"
LIMIT_ONLY = "limit_only"
POST_ONLY = "post_only"
CANCEL_ONLY = "cancel_only"
MAINTENANCE = "maintenance"
MODES = (ONLINE, LIMIT_ONLY, POST_ONLY, CANCEL_ONLY, MAINTENANCE)

# Promotion scopes
SCOPE_SPOT = "spot"
SCOPE_MARGIN = "margin"
SCOPE_ALL = "all"


class Command(msgspec.Struct, tag=True, kw_only=True, omit_defaults=True, gc=False):
    """Base of every command: its journal position and sequenced time (ns)."""

    seq: int = 0
    ts: int = 0


class Tick(Command, tag="tick"):
    """The passage of time: fires timers (GTD expiry, dead man's switch, promotions)."""


class Deposit(Command, tag="deposit"):
    """Credit `amount` units of `asset` to `account` (a confirmed deposit)."""

    account: int
    asset: str
    amount: int
    ref: str = ""


class RequestWithdrawal(Command, tag="withdraw"):
    """Hold `amount` (+ `fee`) for a withdrawal identified by `ref` (unique), to `address`
    (registered by the account under the name `key`)."""

    account: int
    asset: str
    amount: int
    ref: str
    fee: int = 0
    key: str = ""
    address: str = ""


class CompleteWithdrawal(Command, tag="withdraw_done"):
    """The withdrawal `ref` left the exchange (in transaction `txid` on its network): the
    held amount and fee are debited."""

    ref: str
    txid: str = ""


# a pending withdrawal's stage (the engine's `withdrawals` query answers it): queued,
# then sent to custody (SendWithdrawal), then broadcast (MarkWithdrawalBroadcast)
STAGE_QUEUED, STAGE_SENT, STAGE_BROADCAST = 0, 1, 2


class SendWithdrawal(Command, tag="withdraw_send"):
    """The funding worker hands the queued withdrawal `ref` to custody. From then on only
    custody's outcome ends it: its owner can no longer cancel, the operator no longer
    return it. Refused while the asset's withdrawals are off (a halt holds the queue)."""

    ref: str


class MarkWithdrawalBroadcast(Command, tag="withdraw_broadcast"):
    """Custody signed and broadcast the sent withdrawal `ref` as transaction `txid`."""

    ref: str
    txid: str


class ReturnWithdrawal(Command, tag="withdraw_return"):
    """The withdrawal `ref` was cancelled or failed: its hold is released. With `account`
    set (a client's own cancel), only that account's withdrawal is found. A withdrawal
    already sent to custody returns only with `failed` (custody says it was not paid)."""

    ref: str
    reason: str = ""
    account: int = 0
    failed: bool = False


class Transfer(Command, tag="transfer"):
    """Move funds between two accounts (`kind`: transfer, adjustment, credit...). A
    non-empty `ref` makes it happen at most once: a transfer whose ref was seen before
    (any transfer, deposit or withdrawal ref) is refused, so a retried credit never pays
    twice."""

    src: int
    dst: int
    asset: str
    amount: int
    kind: str = "transfer"
    reason: str = ""
    ref: str = ""


class AddOrder(Command, tag="add_order"):
    """Place an order. `price`/`price2` in price units (or ppm of price when *_pct).

    `price_dp`/`qty_dp`, when not -1, say the value was given with that many decimals and
    must be rescaled (and precision-checked) by the engine; -1 means native units.
    """

    account: int
    pair: str
    side: int
    qty: int
    ordertype: str = LIMIT
    qty_dp: int = -1
    price: int = 0
    price_dp: int = -1
    price_kind: int = PRICE_ABS
    price_pct: bool = False
    price2: int = 0
    price2_dp: int = -1
    price2_kind: int = PRICE_ABS
    price2_pct: bool = False
    display_qty: int = 0  # iceberg visible size, lots
    tif: str = GTC
    expire_ts: int = 0  # GTD expiry (ns)
    post_only: bool = False
    fee_in_base: bool = False  # fcib (default: fee in quote, fciq)
    no_mpp: bool = False  # nompp
    quote_qty: bool = False  # viqc: qty is quote units (market buys only)
    stp: str = STP_CANCEL_NEWEST
    userref: int | None = None
    cl_ord_id: str | None = None
    validate: bool = False


class AmendOrder(Command, tag="amend_order"):
    """Change an open order in place (Kraken AmendOrder). Zero means "unchanged"."""

    account: int
    order_id: int = 0
    cl_ord_id: str | None = None
    order_qty: int = 0  # new total quantity (lots), filled part included
    display_qty: int = 0
    limit_price: int = 0
    trigger_price: int = 0
    post_only: bool = False


class CancelOrder(Command, tag="cancel_order"):
    """Cancel one order by id, every order carrying `userref`, or the one with `cl_ord_id`."""

    account: int
    order_id: int = 0
    userref: int | None = None
    cl_ord_id: str | None = None


class CancelAll(Command, tag="cancel_all"):
    account: int


class CancelAllAfter(Command, tag="cancel_all_after"):
    """Dead man's switch: cancel all the account's orders `timeout_s` from now (0 disarms)."""

    account: int
    timeout_s: int


class SetMarketMode(Command, tag="set_market_mode"):
    pair: str
    mode: str
    reason: str = ""


class SetGlobalMode(Command, tag="set_global_mode"):
    mode: str
    reason: str = ""


class Halt(Command, tag="halt"):
    """Stop the exchange without losing anything: every market to maintenance (the
    global mode), withdrawals of every asset off. Orders, balances and pending
    withdrawals stay exactly as they are; a staged reopening in progress is dropped."""

    reason: str = ""


class Resume(Command, tag="resume"):
    """Reopen after a halt: online at once, or `staged` as exchanges do after maintenance:
    cancel_only for `cancel_only_s`, then post_only for `post_only_s`, then online (the
    steps fire on the first command at or after their time). Withdrawals stay off until
    the operator turns them on (SetFunding)."""

    reason: str = ""
    staged: bool = False
    cancel_only_s: int = 300
    post_only_s: int = 300


class SetFunding(Command, tag="set_funding"):
    """Turn deposits and/or withdrawals of an asset on or off (None: unchanged)."""

    asset: str
    deposits: bool | None = None
    withdrawals: bool | None = None
    reason: str = ""


class CreatePromotion(Command, tag="create_promo"):
    """A time-bound fee promotion: maker/taker rates (ppm) capped for the matching trades."""

    promo_id: str
    maker_ppm: int
    taker_ppm: int
    end_ts: int
    start_ts: int = 0
    scope: str = SCOPE_SPOT
    pairs: list[str] = []
    accounts: list[int] = []
    reason: str = ""


class EndPromotion(Command, tag="end_promo"):
    promo_id: str
    reason: str = ""


# an upgrade's phases, in the order they normally come (cambio.upgrade)
UPGRADE_PHASES = (
    "rehearsing",
    "scheduled",
    "shadowing",
    "in_progress",
    "verifying",
    "completed",
    "rolled_back",
    "aborted",
)


class MarkUpgrade(Command, tag="upgrade"):
    """An engine upgrade moved to `phase` (cambio.upgrade): journaled so the record says
    which engine produced which events, and so status pages can follow. Changes nothing
    in the engine's state."""

    phase: str
    candidate: str = ""  # the candidate build, as the operator named it
    detail: str = ""  # JSON: the figures of the phase (progress, ETA, pause, divergence)


AnyCommand = (
    Tick
    | Deposit
    | RequestWithdrawal
    | CompleteWithdrawal
    | ReturnWithdrawal
    | SendWithdrawal
    | MarkWithdrawalBroadcast
    | Transfer
    | AddOrder
    | AmendOrder
    | CancelOrder
    | CancelAll
    | CancelAllAfter
    | SetMarketMode
    | SetGlobalMode
    | SetFunding
    | Halt
    | Resume
    | CreatePromotion
    | EndPromotion
    | MarkUpgrade
)
