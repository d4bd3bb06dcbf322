"""Invariants that must hold after every command of any command stream.

Random streams over the default markets (XBT/USD, ETH/USD, ETH/XBT) with small balances,
so that rejections of every kind happen: deposits, withdrawals (hold, complete, return),
transfers, every order type (limit, market, iceberg, stop / take-profit (-limit),
trailing-stop (-limit)) with every flag, cancels by id / userref / cl_ord_id, cancel-all,
the dead man's switch, amends, market and global modes, funding switches, fee promotions,
and time passing (GTD expiry, timers, day rolls, the 30-day volume window).

After every command:

* conservation: per asset, the sum over all accounts (the fee account 0 included) of
  available + held equals deposits minus completed withdrawal amounts;
* nothing negative: no available or held balance below zero;
* the book: never crossed (best bid < best ask); every resting order is live, open, has a
  positive quantity and (icebergs) a visible slice within it;
* holds: held per (account, asset) equals the holds of that account's open and pending
  orders in that asset (quote for buys, base for sells) plus its pending withdrawals
  (amount + fee);
* the ledger: balances rebuilt purely from the events (cambio.model.ledger.postings)
  equal available + held for every account and asset; ledger, trade and order ids are
  dense and increasing; every posting set of a trade sums to zero per asset;
* orders: the live orders told by the events (accepted minus closed) are the engine's;
  each close reports the quantity its trades filled; a fill-or-kill order fills entirely
  or not at all; a post-only order never takes; a trade is at the maker's price and never
  beyond the taker's limit; only limit-priced orders rest; no trade happens in a market
  whose mode does not let orders match;
* timers: no GTD order outlives its expiry, no dead man's switch is overdue, promotion
  states agree with the clock, the 30-day volume window holds only the last 30 days;
* a rejected (or validate-only) command changed nothing: the state document is the same
  as before (or, when the command also moved time, as after a plain Tick at that time).

The stream builder and `Runner` are shared with test_replay.py.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from cambio.engine import Exchange
from cambio.engine.snapshot import StateDoc, state_doc
from cambio.model.commands import (
    BUY,
    CANCEL_ONLY,
    FOK,
    GTC,
    GTD,
    ICEBERG,
    IOC,
    LIMIT,
    LIMIT_ONLY,
    MAINTENANCE,
    MARKET,
    ONLINE,
    POST_ONLY,
    PRICE_ABS,
    PRICE_AUTO,
    PRICE_MINUS,
    PRICE_PLUS,
    SCOPE_ALL,
    SCOPE_MARGIN,
    SCOPE_SPOT,
    SELL,
    STOP_LOSS,
    STOP_LOSS_LIMIT,
    STP_CANCEL_BOTH,
    STP_CANCEL_NEWEST,
    STP_CANCEL_OLDEST,
    TAKE_PROFIT,
    TAKE_PROFIT_LIMIT,
    TRAILING_STOP,
    TRAILING_STOP_LIMIT,
    AddOrder,
    AmendOrder,
    CancelAll,
    CancelAllAfter,
    CancelOrder,
    Command,
    CompleteWithdrawal,
    CreatePromotion,
    Deposit,
    EndPromotion,
    RequestWithdrawal,
    ReturnWithdrawal,
    SetFunding,
    SetGlobalMode,
    SetMarketMode,
    Tick,
    Transfer,
)
from cambio.model.config import PPM, MarketConfig, load_config
from cambio.model.events import (
    CommandRejected,
    DeadManSwitch,
    Deposited,
    Event,
    OrderAccepted,
    OrderAmended,
    OrderClosed,
    OrderRejected,
    OrderTriggered,
    OrderValidated,
    PromotionChanged,
    Trade,
    Transferred,
    WithdrawalCompleted,
    WithdrawalHeld,
    WithdrawalReturned,
)
from cambio.model.ledger import TRADE_LEDGER_IDS, postings

CONFIG: MarketConfig = load_config()
T0 = 1_700_006_400 * 1_000_000_000  # a UTC midnight
MS = 1_000_000
SEC = 1_000 * MS
HOUR = 3_600 * SEC
DAY = 24 * HOUR

ACCOUNTS = (1, 2, 3)
ODD_ACCOUNTS = (0, 9)  # the fee account (may not trade) and one never funded
ASSETS = ("XXBT", "XETH", "ZUSD")
REFS = tuple(f"w{i}" for i in range(5))
PROMOS = ("p1", "p2", "p3")
MODES_WEIGHTED = (ONLINE, ONLINE, ONLINE, LIMIT_ONLY, POST_ONLY, CANCEL_ONLY, MAINTENANCE)
RESTRICTED = frozenset({POST_ONLY, CANCEL_ONLY, MAINTENANCE})


@dataclass(frozen=True)
class Mkt:
    name: str
    mid: int  # price units
    step: int  # price units per coarse step


MARKETS = (
    Mkt("XBTUSD", 300_000, 1_500),  # 30000.0 USD, steps of 150 USD
    Mkt("ETHUSD", 200_000, 1_000),  # 2000.00 USD, steps of 10 USD
    Mkt("ETHXBT", 6_667, 33),  # 0.06667 XBT
)


def unit(asset: str) -> int:
    return int(10 ** CONFIG.asset(asset).units)


# ---------------------------------------------------------------------- the stream
# A step is (time advance in ns, command). Some fields are placeholders that the Runner
# resolves against the state when the step runs (see Runner.resolve):
# * AddOrder.expire_ts, CreatePromotion.start_ts / end_ts: relative to the current time;
# * CancelOrder / AmendOrder.order_id < 0: the (-id)th live order (account 0: its owner).
Step = tuple[int, Command]


def rare(n: int) -> st.SearchStrategy[bool]:
    """True about once in `n` draws (not at a boundary value, which Hypothesis favours)."""
    return st.integers(0, n - 1).map(lambda x: x == n // 2)


_small_dt = st.sampled_from([0, 0, 0, 0, 0, 0, MS, 250 * MS, 2 * SEC])
_tick_dt = st.one_of(
    st.integers(1, 120).map(lambda s: s * SEC),
    st.integers(1, 48).map(lambda h: h * HOUR),
    st.integers(1, 35).map(lambda d: d * DAY),
)
_account = st.one_of(
    st.sampled_from(ACCOUNTS), st.sampled_from(ACCOUNTS), st.sampled_from(ODD_ACCOUNTS)
).flatmap(lambda a: rare(6).map(lambda odd: a if odd or a in ACCOUNTS else ACCOUNTS[0]))
_trader = st.sampled_from(ACCOUNTS)
_asset = st.sampled_from(ASSETS)
_mkt = st.sampled_from([MARKETS[0]] * 4 + list(MARKETS[1:]))  # XBT/USD busiest


def _usd_worth(asset: str) -> int:
    u = unit(asset)
    return {"XXBT": u // 30_000, "XETH": u // 2_000, "ZUSD": u}[asset]


@st.composite
def _amount(draw: st.DrawFn, asset: str) -> int:
    """A small amount: mostly 1..150 USD worth, sometimes dust."""
    scale = _usd_worth(asset)
    kind = draw(st.sampled_from(["usd"] * 6 + ["fraction", "units"]))
    if kind == "usd":
        return draw(st.integers(1, 150)) * scale
    if kind == "fraction":
        return draw(st.integers(1, 10**6)) * scale // 10**6 + 1
    return draw(st.integers(1, 5))


@st.composite
def funding_deposit(draw: st.DrawFn) -> Command:
    """A deposit that goes through: something to trade with."""
    asset = draw(_asset)
    return Deposit(
        account=draw(_trader), asset=asset, amount=draw(st.integers(50, 500)) * _usd_worth(asset)
    )


@st.composite
def deposits(draw: st.DrawFn) -> Command:
    asset = draw(_asset)
    odd = draw(rare(8))
    return Deposit(
        account=draw(_account),
        asset=draw(st.sampled_from(["ZEUR", "NOPE"])) if odd else asset,
        amount=draw(_amount(asset)),
        ref=draw(st.sampled_from(["d1", "d2", "w1"])) if draw(rare(5)) else "",
    )


@st.composite
def withdrawals(draw: st.DrawFn) -> Command:
    asset = draw(_asset)
    return RequestWithdrawal(
        account=draw(_account),
        asset=asset,
        amount=draw(_amount(asset)),
        ref=draw(st.sampled_from(REFS)),
        fee=draw(st.sampled_from([0, 0, 1, unit(asset) // 10_000])),
    )


@st.composite
def transfers(draw: st.DrawFn) -> Command:
    asset = draw(_asset)
    return Transfer(
        src=draw(_account),
        dst=draw(_account),
        asset=asset,
        amount=draw(_amount(asset)),
        kind=draw(st.sampled_from(["transfer", "adjustment"])),
    )


def _price(m: Mkt) -> st.SearchStrategy[int]:
    """Mostly near the mid (so orders cross), sometimes far out."""
    a = st.sampled_from([-1, 0, 0, 1]) | st.integers(-5, 5)
    return st.builds(lambda a, b: m.mid + a * m.step + b, a, st.integers(-3, 3))


RELATIVE = (PRICE_PLUS, PRICE_MINUS, PRICE_AUTO)
TOUCH_BASE = 100  # AddOrder.price = -(TOUCH_BASE + k): the opposite touch moved k/4 steps in


@st.composite
def orders(draw: st.DrawFn) -> Command:
    m = draw(_mkt)
    spec = CONFIG.pair(m.name)
    ot = draw(
        st.sampled_from(
            [LIMIT] * 6
            + [MARKET] * 3
            + [ICEBERG] * 2
            + [STOP_LOSS, TAKE_PROFIT, STOP_LOSS_LIMIT, TAKE_PROFIT_LIMIT]
            + [TRAILING_STOP, TRAILING_STOP_LIMIT]
        )
    )
    side = draw(st.sampled_from([BUY, SELL]))
    qty = spec.ordermin * draw(st.integers(1, 12)) + draw(
        st.sampled_from([0, 0, 0, 1, spec.ordermin // 3])
    )
    if draw(rare(40)):
        qty = draw(st.sampled_from([0, -1, spec.ordermin - 1]))
    kw: dict[str, Any] = {}
    if ot in (LIMIT, ICEBERG):
        if draw(rare(8)):
            kw["price_kind"] = draw(st.sampled_from(RELATIVE))
            if draw(st.booleans()):
                kw["price_pct"] = True
                kw["price"] = draw(st.integers(0, 30_000))
            else:
                kw["price"] = draw(st.integers(0, 3)) * m.step
        elif draw(st.booleans()):  # placeholder: relative to the opposite touch (Runner.resolve)
            kw["price"] = -TOUCH_BASE - draw(st.integers(-2, 6))
        else:
            kw["price"] = draw(_price(m))
    elif ot in (STOP_LOSS, TAKE_PROFIT, STOP_LOSS_LIMIT, TAKE_PROFIT_LIMIT):
        if draw(rare(5)):
            kw["price_kind"] = draw(st.sampled_from(RELATIVE))
            kw["price"] = draw(st.integers(0, 3)) * m.step
        else:
            kw["price"] = draw(_price(m))
        if ot in (STOP_LOSS_LIMIT, TAKE_PROFIT_LIMIT):
            kw["price2"] = draw(_price(m))
    elif ot in (TRAILING_STOP, TRAILING_STOP_LIMIT):
        kw["price_kind"] = PRICE_ABS if draw(rare(10)) else PRICE_PLUS
        if draw(st.booleans()):
            kw["price_pct"] = True
            kw["price"] = draw(st.integers(1_000, 60_000))
        else:
            kw["price"] = draw(st.integers(1, 4)) * m.step // 2
        if ot == TRAILING_STOP_LIMIT:
            kw["price2_kind"] = draw(st.sampled_from([PRICE_PLUS, PRICE_MINUS, PRICE_MINUS]))
            kw["price2"] = draw(st.integers(0, 2)) * m.step // 2
    elif ot == MARKET:
        kw["no_mpp"] = draw(rare(4))
        if side == BUY and draw(rare(4)):
            kw["quote_qty"] = True
            qty = spec.cost(m.mid, spec.ordermin) * draw(st.integers(1, 10))
    if ot == ICEBERG:
        low = max(spec.ordermin, -(-qty // 15))
        kw["display_qty"] = draw(st.sampled_from([low, low, low + spec.ordermin, qty, low - 1]))
    tif = draw(st.sampled_from([GTC] * 6 + [IOC, GTD, GTD, FOK]))
    if tif == FOK and ot != LIMIT and not draw(rare(10)):  # FOK: limit orders only
        tif = IOC
    if tif == GTD:
        kw["expire_ts"] = draw(st.sampled_from([SEC, 90 * SEC, HOUR, 3 * DAY, -1]))
    ids = draw(st.sampled_from(["none"] * 12 + ["userref"] * 5 + ["cl_ord_id"] * 2 + ["both"]))
    return AddOrder(
        account=draw(_account),
        pair=m.name,
        side=side,
        qty=qty,
        ordertype=ot,
        tif=tif,
        post_only=draw(rare(5 if ot in (LIMIT, ICEBERG) and tif in (GTC, GTD) else 30)),
        fee_in_base=draw(rare(4)),
        stp=draw(st.sampled_from([STP_CANCEL_NEWEST, STP_CANCEL_OLDEST, STP_CANCEL_BOTH])),
        userref=draw(st.sampled_from([1, 2])) if ids in ("userref", "both") else None,
        cl_ord_id=draw(st.sampled_from(["a", "b"])) if ids in ("cl_ord_id", "both") else None,
        validate=draw(rare(16)),
        **kw,
    )


_target = st.integers(-40, -1)  # the (-n)th live order, resolved when the step runs


@st.composite
def cancels(draw: st.DrawFn) -> Command:
    how = draw(st.sampled_from(["id"] * 6 + ["userref", "cl_ord_id", "all"]))
    account = 0 if draw(st.integers(0, 5)) else draw(_trader)  # 0: the order's owner
    if how == "all":
        return CancelAll(account=account or draw(_account))
    if how == "userref":
        return CancelOrder(account=account or 1, userref=draw(st.sampled_from([1, 2])))
    if how == "cl_ord_id":
        return CancelOrder(account=account or 1, cl_ord_id=draw(st.sampled_from(["a", "b"])))
    oid = draw(st.integers(1, 60)) if draw(rare(6)) else draw(_target)
    return CancelOrder(account=account, order_id=oid)


@st.composite
def amends(draw: st.DrawFn) -> Command:
    """Placeholders resolved against the target's market (Runner.resolve): order_qty and
    display_qty in ordermins, prices as codes 1..99 (see `price_code`)."""
    code = st.integers(1, 99)
    return AmendOrder(
        account=0 if draw(st.integers(0, 7)) else draw(_trader),
        order_id=draw(_target),
        order_qty=draw(st.sampled_from([0, 0]) | st.integers(0, 12)),
        display_qty=draw(st.sampled_from([0, 0, 0, 1, 3])),
        limit_price=draw(st.sampled_from([0, 0]) | code),
        trigger_price=draw(st.sampled_from([0, 0, 0]) | code),
        post_only=draw(rare(6)),
    )


def price_code(m: Mkt, code: int) -> int:
    """A price near the mid from a code 1..99: coarse steps code // 10 - 5, ticks % 10 - 5."""
    return m.mid + (code // 10 - 5) * m.step + code % 10 - 5


@st.composite
def operator(draw: st.DrawFn) -> Command:
    kind = draw(st.sampled_from(["market", "market", "global", "funding", "promo", "endpromo"]))
    if kind == "market":
        return SetMarketMode(pair=draw(_mkt).name, mode=draw(st.sampled_from(MODES_WEIGHTED)))
    if kind == "global":
        return SetGlobalMode(mode=draw(st.sampled_from(MODES_WEIGHTED)))
    if kind == "funding":
        return SetFunding(
            asset=draw(_asset),
            deposits=draw(st.sampled_from([None, True, True, False])),
            withdrawals=draw(st.sampled_from([None, True, True, False])),
        )
    if kind == "promo":
        return CreatePromotion(
            promo_id=draw(st.sampled_from(PROMOS)),
            maker_ppm=draw(st.sampled_from([0, 500, 1_000, 5_000])),
            taker_ppm=draw(st.sampled_from([0, 1_000, 2_000, 10_000])),
            start_ts=draw(st.sampled_from([0, 0, HOUR, DAY])),
            end_ts=draw(st.sampled_from([HOUR, DAY, 3 * DAY])),
            scope=draw(st.sampled_from([SCOPE_SPOT, SCOPE_SPOT, SCOPE_ALL, SCOPE_MARGIN])),
            pairs=draw(st.lists(st.sampled_from([m.name for m in MARKETS]), max_size=2)),
            accounts=draw(st.lists(st.sampled_from(ACCOUNTS), max_size=2)),
        )
    return EndPromotion(promo_id=draw(st.sampled_from(PROMOS)))


@st.composite
def timers(draw: st.DrawFn) -> Command:
    if draw(st.integers(0, 2)) == 0:
        return CancelAllAfter(
            account=draw(_account), timeout_s=draw(st.sampled_from([0, 5, 60, 86_400]))
        )
    ref = draw(st.sampled_from(REFS))
    if draw(st.booleans()):
        return CompleteWithdrawal(ref=ref)
    return ReturnWithdrawal(ref=ref, reason="test")


def _step(cmd: st.SearchStrategy[Command]) -> st.SearchStrategy[Step]:
    return st.tuples(_small_dt, cmd)


def _opening(account: int, asset: str) -> st.SearchStrategy[Step]:
    """An opening deposit of 10..410 USD worth of `asset`."""
    worth = _usd_worth(asset)
    return st.integers(10, 410).map(
        lambda k: (0, Deposit(account=account, asset=asset, amount=k * worth))
    )


_bootstrap = st.tuples(*[_opening(a, x) for a in ACCOUNTS for x in ASSETS]).map(list)

_STEP_KINDS: dict[str, tuple[int, st.SearchStrategy[Step]]] = {  # name: (weight, strategy)
    "order": (10, _step(orders())),
    "cancel": (2, _step(cancels())),
    "amend": (2, _step(amends())),
    "fund": (1, _step(funding_deposit())),
    "deposit": (1, _step(deposits())),
    "withdraw": (1, _step(withdrawals())),
    "transfer": (1, _step(transfers())),
    "timers": (1, _step(timers())),
    "operator": (1, _step(operator())),
    "tick": (1, st.tuples(_tick_dt, st.just(Tick()))),
}
_KIND_LIST = [k for k, (w, _) in _STEP_KINDS.items() for _ in range(w)]


@st.composite
def _any_step(draw: st.DrawFn) -> Step:
    return draw(_STEP_KINDS[draw(st.sampled_from(_KIND_LIST))][1])


def streams(min_size: int = 30, max_size: int = 120) -> st.SearchStrategy[list[Step]]:
    """Random command streams: a few deposits, then anything."""
    return st.builds(
        lambda a, b: a + b, _bootstrap, st.lists(_any_step(), min_size=min_size, max_size=max_size)
    )


# ---------------------------------------------------------------------- running them
class Runner:
    """Drives an engine through a stream: stamps seq/ts, resolves placeholders, records
    every applied command (so a run can be replayed exactly) and its events."""

    def __init__(self, config: MarketConfig = CONFIG, seq0: int = 0, ts0: int = T0) -> None:
        self.ex = Exchange(config)
        self.seq = seq0
        self.ts = ts0
        self.applied: list[Command] = []
        self.events: list[list[Event]] = []

    def resolve(self, cmd: Command) -> Command:
        ts = self.ts
        if isinstance(cmd, AddOrder):
            if cmd.expire_ts:
                cmd = msgspec.structs.replace(cmd, expire_ts=ts + cmd.expire_ts)
            if cmd.price < 0 and cmd.price_kind == PRICE_ABS:
                k = -cmd.price - TOUCH_BASE
                m = next(m for m in MARKETS if m.name == cmd.pair)
                spec = self.ex.config.pair(cmd.pair)
                md = next(md for md in state_doc(self.ex).markets if md.pair == spec.id)
                levels = md.asks if cmd.side == BUY else md.bids
                price = m.mid
                if levels:
                    step = k * m.step // 4
                    price = levels[0][0] + (step if cmd.side == BUY else -step)
                cmd = msgspec.structs.replace(cmd, price=max(spec.tick, price))
            return cmd
        if isinstance(cmd, CreatePromotion):
            start = ts + cmd.start_ts if cmd.start_ts else 0
            return msgspec.structs.replace(cmd, start_ts=start, end_ts=ts + cmd.end_ts)
        if isinstance(cmd, CancelOrder | AmendOrder) and cmd.order_id < 0:
            live = [(od.order_id, od.account, od.pair) for od in state_doc(self.ex).orders]
            if not live:
                oid, owner, pair = 1, 1, MARKETS[0].name
            else:
                oid, owner, pair = live[-cmd.order_id % len(live)]
            cmd = msgspec.structs.replace(cmd, order_id=oid, account=cmd.account or owner)
            if isinstance(cmd, AmendOrder):
                spec = self.ex.config.pair(pair)
                m = next(m for m in MARKETS if self.ex.config.pair(m.name).id == spec.id)
                cmd.order_qty *= spec.ordermin
                cmd.display_qty *= spec.ordermin
                if cmd.limit_price:
                    cmd.limit_price = price_code(m, cmd.limit_price)
                if cmd.trigger_price:
                    cmd.trigger_price = price_code(m, cmd.trigger_price)
            return cmd
        if isinstance(cmd, CancelOrder) and not cmd.account:
            return msgspec.structs.replace(cmd, account=1)
        return cmd

    def stamp(self, dt: int, cmd: Command) -> Command:
        """The command as it will be applied: placeholders resolved, seq and ts set."""
        self.seq += 1
        self.ts += dt
        c = self.resolve(msgspec.structs.replace(cmd))
        c.seq, c.ts = self.seq, self.ts
        return c

    def apply(self, cmd: Command) -> list[Event]:
        ev = self.ex.apply(cmd)
        self.applied.append(cmd)
        self.events.append(ev)
        return ev


def without_seq(doc: StateDoc) -> bytes:
    """The state document minus the sequence number (which every command advances)."""
    return msgspec.msgpack.encode(msgspec.structs.replace(doc, seq=0))


NEVER_RESTING = frozenset({MARKET, STOP_LOSS, TAKE_PROFIT, TRAILING_STOP})
MODE_RANK = {m: i for i, m in enumerate((ONLINE, LIMIT_ONLY, POST_ONLY, CANCEL_ONLY, MAINTENANCE))}


@dataclass
class Checker:
    """Everything the events have said so far, and the checks against the engine's state
    document (cambio.engine.snapshot.state_doc: the canonical, stable view of the state)."""

    config: MarketConfig
    supply: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    ledger: dict[tuple[int, int], int] = field(default_factory=lambda: defaultdict(int))
    pending_w: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    live: dict[int, OrderAccepted] = field(default_factory=dict)
    filled: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    traded_pairs: set[int] = field(default_factory=set)
    limit: dict[int, int] = field(default_factory=dict)  # live order -> known limit price
    dms: dict[int, int] = field(default_factory=dict)  # account -> armed deadline
    trades_in: dict[int, int] = field(default_factory=lambda: defaultdict(int))  # pair -> n
    armed_at: dict[int, int] = field(default_factory=dict)  # pending order -> trades_in then
    promos: dict[str, str] = field(default_factory=dict)  # promotion -> state
    total: dict[int, int] = field(default_factory=dict)  # live order -> total qty
    next_ledger: int = 1
    next_trade: int = 1
    next_order: int = 1

    def absorb(self, events: list[Event]) -> None:
        """Fold one command's events in, checking what can be checked per event."""
        self.traded_pairs = set()
        for e in events:
            for p in postings(e, self.config):
                self.ledger[(p.account, p.asset)] += p.amount
            if isinstance(e, Trade):
                assert e.ledger_id == self.next_ledger, e
                self.next_ledger += TRADE_LEDGER_IDS
                assert e.trade_id == self.next_trade, e
                self.next_trade += 1
                self._check_trade(e)
            elif isinstance(e, Deposited):
                assert e.ledger_id == self.next_ledger, e
                self.next_ledger += 1
                self.supply[e.asset] += e.amount
            elif isinstance(e, WithdrawalCompleted | Transferred):
                assert e.ledger_id == self.next_ledger, e
                self.next_ledger += 2
                if isinstance(e, WithdrawalCompleted):
                    self.supply[e.asset] -= e.amount
                    assert self.pending_w.pop(e.ref) == (e.account, e.asset, e.amount + e.fee)
            elif isinstance(e, WithdrawalHeld):
                assert e.ref not in self.pending_w
                self.pending_w[e.ref] = (e.account, e.asset, e.amount + e.fee)
            elif isinstance(e, WithdrawalReturned):
                assert self.pending_w.pop(e.ref) == (e.account, e.asset, e.amount + e.fee)
            elif isinstance(e, OrderAccepted):
                assert e.order_id == self.next_order, e
                self.next_order += 1
                self.live[e.order_id] = e
                self.total[e.order_id] = e.qty
                if e.ordertype in (LIMIT, ICEBERG):
                    self.limit[e.order_id] = e.price
                if e.status == "pending":
                    self.armed_at[e.order_id] = self.trades_in[e.pair]
            elif isinstance(e, DeadManSwitch):
                if e.trigger_ts:
                    self.dms[e.account] = e.trigger_ts
                else:
                    self.dms.pop(e.account, None)
            elif isinstance(e, PromotionChanged):
                self.promos[e.promo_id] = e.state
            elif isinstance(e, OrderTriggered):
                assert e.order_id in self.live, e
                if e.limit_price:
                    self.limit[e.order_id] = e.limit_price
            elif isinstance(e, OrderClosed):
                assert e.order_id in self.live, f"close of an order not live: {e}"
                acc = self.live.pop(e.order_id)
                total = self.total.pop(e.order_id)
                self.limit.pop(e.order_id, None)
                self.armed_at.pop(e.order_id, None)
                assert e.filled == self.filled.pop(e.order_id, 0), e
                if acc.tif == FOK:  # all or nothing
                    assert e.filled == 0 or (e.status == "closed" and e.filled == total), (
                        f"fill-or-kill order partly filled: {e}"
                    )
            elif isinstance(e, OrderAmended):
                assert e.order_id in self.live, e
                self.total[e.order_id] = e.qty
                if e.price and not e.trigger_price:
                    self.limit[e.order_id] = e.price
                if e.trigger_price:  # a pending order, possibly re-armed
                    self.armed_at[e.order_id] = self.trades_in[self.live[e.order_id].pair]

    def _check_trade(self, t: Trade) -> None:
        spec = self.config.pairs[t.pair]
        assert t.maker_order in self.live and t.taker_order in self.live, t
        assert t.maker_order != t.taker_order and t.maker_account != t.taker_account, t
        assert t.qty > 0 and t.price > 0 and t.price % spec.tick == 0, t
        assert t.cost == spec.cost(t.price, t.qty), t
        max_ppm = max(x.ppm for x in spec.maker_tiers + spec.taker_tiers)
        for fee, in_base in ((t.maker_fee, t.maker_fee_base), (t.taker_fee, t.taker_fee_base)):
            basis = t.qty * spec.base_per_lot if in_base else t.cost
            assert 0 <= fee <= basis * max_ppm // PPM, t
        per_asset: dict[int, int] = defaultdict(int)
        for p in postings(t, self.config):
            per_asset[p.asset] += p.amount
        assert all(v == 0 for v in per_asset.values()), t
        taker = self.live[t.taker_order]
        assert not taker.post_only, f"a post-only order took liquidity: {t}"
        assert t.price == self.limit.get(t.maker_order, t.price), f"maker off its price: {t}"
        lim = self.limit.get(t.taker_order)
        if lim is not None:
            beyond = t.price > lim if t.taker_side == BUY else t.price < lim
            assert not beyond, f"trade beyond the taker's limit {lim}: {t}"
        self.filled[t.maker_order] += t.qty
        self.filled[t.taker_order] += t.qty
        self.traded_pairs.add(t.pair)
        self.trades_in[t.pair] += 1

    def check_state(self, doc: StateDoc) -> None:
        cfg = self.config
        aidx = {a.id: a.index for a in cfg.assets}
        pidx = {p.id: p.index for p in cfg.pairs}
        n = len(cfg.assets)
        totals = [0] * n
        balances: dict[tuple[int, int], tuple[int, int]] = {}
        for ad in doc.accounts:
            for b in ad.balances:
                balances[(ad.account, aidx[b.asset])] = (b.available, b.held)
        for (aid, i), (av, he) in balances.items():
            assert av >= 0 and he >= 0, f"negative balance: account {aid} asset {i}: {av} {he}"
            totals[i] += av + he
        for key in set(balances) | set(self.ledger):
            av, he = balances.get(key, (0, 0))
            assert self.ledger.get(key, 0) == av + he, (
                f"ledger rebuilt from events disagrees: account/asset {key}: "
                f"{self.ledger.get(key, 0)} != {av} + {he}"
            )
        for i in range(n):
            assert totals[i] == self.supply[i], f"asset {i}: {totals[i]} != {self.supply[i]}"
        # holds: orders plus pending withdrawals
        held: dict[tuple[int, int], int] = defaultdict(int)
        orders = {od.order_id: od for od in doc.orders}
        for od in orders.values():
            assert od.hold >= 0 and od.qty > 0 and od.filled >= 0, od
            spec = cfg.pairs[pidx[od.pair]]
            held[(od.account, spec.quote if od.side == "buy" else spec.base)] += od.hold
        for acct, asset, amount in self.pending_w.values():
            held[(acct, asset)] += amount
        for key in set(balances) | set(held):
            assert balances.get(key, (0, 0))[1] == held.get(key, 0), (
                f"held of account/asset {key} is {balances.get(key, (0, 0))[1]}, "
                f"its orders and withdrawals hold {held.get(key, 0)}"
            )
        assert set(self.live) == set(orders), "the live orders differ from the events'"
        # books: never crossed; exactly the open orders, each once, where it says it is
        booked: list[int] = []
        for md in doc.markets:
            for side, levels in (("buy", md.bids), ("sell", md.asks)):
                prices = [lv[0] for lv in levels]
                want = sorted(prices, reverse=side == "buy")
                assert prices == want and len(set(prices)) == len(prices), md
                for price, *ids in levels:
                    assert ids, f"{md.pair}: empty level {price}"
                    for oid in ids:
                        od = orders[oid]
                        assert od.status == "open" and od.price == price and od.side == side, od
                        assert od.pair == md.pair, od
                        assert od.ordertype not in NEVER_RESTING, f"resting: {od}"
                        if od.display:
                            assert 0 < od.shown <= od.qty, f"iceberg slice out of range: {od}"
                        booked.append(oid)
            if md.bids and md.asks:
                assert md.bids[0][0] < md.asks[0][0], f"{md.pair} crossed"
        assert len(booked) == len(set(booked)), "an order rests twice"
        assert set(booked) == {o for o, od in orders.items() if od.status == "open"}
        # trades only where the mode lets orders match
        for md in doc.markets:
            if pidx[md.pair] in self.traded_pairs:
                mode = max(md.mode, doc.global_mode, key=MODE_RANK.__getitem__)
                assert mode not in RESTRICTED, f"a trade in {md.pair} in {mode} mode"
        # triggers: once a trade has happened since a pending order was armed, the last
        # price (the last trade's) must not be one that fires it
        last = {pidx[md.pair]: md.last_price for md in doc.markets}
        for od in orders.values():
            pair = pidx[od.pair]
            if od.status != "pending" or self.armed_at[od.order_id] == self.trades_in[pair]:
                continue
            fires = last[pair] >= od.trigger if od.trigger_dir == 1 else last[pair] <= od.trigger
            assert not fires, f"pending order not fired at last price {last[pair]}: {od}"
        # timers: nothing overdue survives a command
        now = doc.ts
        for od in orders.values():
            if od.tif == GTD:
                assert od.expire_ts > now, f"expired order still live at {now}: {od}"
        # an overdue switch waits only for orders it cannot cancel yet (market in maintenance)
        mode = {
            md.pair: max(md.mode, doc.global_mode, key=MODE_RANK.__getitem__) for md in doc.markets
        }
        waiting = {od.account for od in orders.values() if mode[od.pair] == MAINTENANCE}
        for aid, deadline in self.dms.items():
            assert deadline > now or aid in waiting, f"account {aid}: dead man's switch overdue"
        assert {
            ad.account: ad.dead_man_switch_ts for ad in doc.accounts if ad.dead_man_switch_ts
        } == (self.dms)
        for p in doc.promotions:
            assert p.state == self.promos.get(p.promo_id), p
            if p.state != "ended":
                assert now < p.end_ts, f"promotion past its end: {p}"
                assert (p.state == "active") == (now >= p.start_ts), f"promotion state: {p}"
        for ad in doc.accounts:
            assert all(d > doc.day - 30 for d, _ in ad.volume_days), ad
            assert all(v > 0 for _, v in ad.volume_days), ad


def is_rejection(events: list[Event]) -> bool:
    return any(isinstance(e, OrderRejected | CommandRejected | OrderValidated) for e in events)


def run_checked(stream: list[Step], seq0: int = 0) -> Runner:
    r = Runner(seq0=seq0)
    chk = Checker(CONFIG)
    doc = state_doc(r.ex)
    before = without_seq(doc)
    for dt, raw in stream:
        cmd = r.stamp(dt, raw)
        moved = cmd.ts > doc.ts  # timers may fire and the day roll before the command
        snap = r.ex.snapshot() if moved else b""
        events = r.apply(cmd)
        where = f"command #{len(r.applied)}: {cmd!r}\nevents: {events!r}"
        doc = state_doc(r.ex)
        chk.absorb(events)
        chk.check_state(doc)
        after = without_seq(doc)
        if is_rejection(events):
            event(f"rejected {type(cmd).__name__}")
            assert len(events) == 1 or moved, where  # only timers may add events
            if moved:  # compare with what a plain Tick at that time does
                twin = Exchange.restore(CONFIG, snap)
                twin.apply(Tick(seq=cmd.seq, ts=cmd.ts))
                before = without_seq(state_doc(twin))
            assert after == before, f"a rejection changed the state\n{where}"
        before = after
        for e in events:
            if isinstance(e, Trade | OrderTriggered):
                event(type(e).__name__)
            elif isinstance(e, OrderClosed) and e.reason:
                event(f"closed: {e.reason}")
    return r


# ---------------------------------------------------------------------- the tests
@given(stream=streams())
@example(  # regression: an iceberg resting after a partial fill as taker over-filled later
    stream=[
        (0, Deposit(account=1, asset="XBT", amount=10**12)),
        (0, Deposit(account=2, asset="USD", amount=10**16)),
        (0, AddOrder(account=1, pair="XBTUSD", side=SELL, qty=250_000, price=300_000)),
        (
            0,
            AddOrder(
                account=2,
                pair="XBTUSD",
                side=BUY,
                qty=300_000,
                price=300_000,
                ordertype=ICEBERG,
                display_qty=100_000,
            ),
        ),
        (0, AddOrder(account=1, pair="XBTUSD", side=SELL, qty=100_000, price=300_000)),
    ]
)
@example(  # regression: a FOK market buy (no price protection) that could not pay for it all
    # partly filled; FOK is now refused on market orders
    stream=[
        (0, Deposit(account=1, asset="USD", amount=100 * unit("ZUSD"))),
        (0, Deposit(account=2, asset="XBT", amount=unit("XXBT"))),
        (0, AddOrder(account=2, pair="XBTUSD", side=SELL, qty=1_000_000, price=300_000)),
        (
            0,
            AddOrder(
                account=1,
                pair="XBTUSD",
                side=BUY,
                qty=1_000_000,
                ordertype=MARKET,
                no_mpp=True,
                tif=FOK,
            ),
        ),
    ]
)
def test_invariants_hold_after_every_command(stream: list[Step]) -> None:
    run_checked(stream)


def test_checker_can_fail() -> None:
    """The checks are not vacuous: a balance changed behind the events' back is caught."""
    r = Runner()
    chk = Checker(CONFIG)
    chk.absorb(r.apply(r.stamp(0, Deposit(account=1, asset="USD", amount=10**13))))
    doc = state_doc(r.ex)
    chk.check_state(doc)
    next(ad for ad in doc.accounts if ad.account == 1).balances[0].available += 1
    with pytest.raises(AssertionError, match="ledger"):
        chk.check_state(doc)
