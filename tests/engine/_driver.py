"""A tiny test driver for the engine: stamps seq/ts, applies commands, checks invariants.

Amounts are given as decimal strings in human units ("1.5" BTC, "30000.0" USD) and turned
into the engine's integers here, so tests read like the reference. After every command the
driver checks that no balance is negative, that per-asset conservation holds (sum over all
accounts, fee account 0 included, of available + held == deposits - completed
withdrawals), and that an account with no live orders holds nothing but its pending
withdrawals.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any, TypeVar

from cambio.engine import Exchange
from cambio.model.commands import (
    BUY,
    AddOrder,
    Command,
    Deposit,
    Tick,
)
from cambio.model.config import MarketConfig, PairSpec, load_config
from cambio.model.decimals import to_units
from cambio.model.events import (
    Deposited,
    Event,
    OrderAccepted,
    OrderClosed,
    OrderRejected,
    Trade,
    Transferred,
    WithdrawalCompleted,
    WithdrawalHeld,
    WithdrawalReturned,
)

T = TypeVar("T", bound=Event)

T0 = 1_700_006_400 * 1_000_000_000  # 2023-11-15 00:00:00 UTC, midnight of a UTC day
SEC = 1_000_000_000
DAY = 86_400 * SEC

_CONFIG: MarketConfig | None = None


def config() -> MarketConfig:
    """The packaged default market configuration (loaded once)."""
    global _CONFIG
    if _CONFIG is None:
        _CONFIG = load_config()
    return _CONFIG


def of(events: list[Event], kind: type[T]) -> list[T]:
    """The events of one type, in order."""
    return [e for e in events if isinstance(e, kind)]


def one(events: list[Event], kind: type[T]) -> T:
    """The single event of a type (fails the test if there is not exactly one)."""
    found = of(events, kind)
    assert len(found) == 1, f"expected one {kind.__name__}, got {events}"
    return found[0]


class Driver:
    """Drives one Exchange; every apply() is followed by the invariant checks."""

    def __init__(self, cfg: MarketConfig | None = None, start_ts: int = T0) -> None:
        self.cfg = cfg or config()
        self.ex = Exchange(self.cfg)
        self.seq = 0
        self.ts = start_ts
        self.external: dict[int, int] = defaultdict(int)  # deposits - completed withdrawals
        self.pending_wd: dict[str, tuple[int, int, int]] = {}  # ref -> account, asset, total
        self.live: dict[int, int] = {}  # open/pending order id -> account (from the events)
        self.accounts: set[int] = {0}  # every account the events mention
        self.log: list[Event] = []

    # ---------------------------------------------------------------- units
    def asset(self, name: str) -> int:
        return self.cfg.asset(name).index

    def amt(self, asset: str, text: str) -> int:
        """An asset amount in engine units from a decimal string."""
        return to_units(text, self.cfg.asset(asset).units)

    def pair(self, name: str = "XBTUSD") -> PairSpec:
        return self.cfg.pair(name)

    def px(self, text: str, pair: str = "XBTUSD") -> int:
        """A price in price units of `pair`."""
        return to_units(text, self.pair(pair).pair_decimals)

    def lots(self, text: str, pair: str = "XBTUSD") -> int:
        """A base quantity in lots of `pair`."""
        return to_units(text, self.pair(pair).lot_decimals)

    def bal(self, account: int, asset: str) -> tuple[Decimal, Decimal]:
        """(available, held) in human units of the asset."""
        a = self.cfg.asset(asset)
        avail, held = self.ex.balance(account, a.index)
        q = Decimal(10) ** a.units
        return Decimal(avail) / q, Decimal(held) / q

    def avail(self, account: int, asset: str) -> Decimal:
        return self.bal(account, asset)[0]

    def held(self, account: int, asset: str) -> Decimal:
        return self.bal(account, asset)[1]

    def total(self, account: int, asset: str) -> Decimal:
        a, h = self.bal(account, asset)
        return a + h

    # ---------------------------------------------------------------- driving
    def apply(self, cmd: Command, at: int | None = None) -> list[Event]:
        """Stamp `cmd` (next seq; `at` or the current time) and apply it."""
        self.seq += 1
        if at is not None:
            assert at >= self.ts, "time only moves forward"
            self.ts = at
        cmd.seq = self.seq
        cmd.ts = self.ts
        events = self.ex.apply(cmd)
        self.log.extend(events)
        self._track(events)
        self.check()
        return events

    def advance(self, seconds: float) -> list[Event]:
        """Let time pass by `seconds` and send a Tick."""
        return self.apply(Tick(), at=self.ts + int(seconds * SEC))

    def tick_at(self, ts: int) -> list[Event]:
        return self.apply(Tick(), at=ts)

    def fund(self, account: int, asset: str, text: str) -> list[Event]:
        ev = self.apply(Deposit(account=account, asset=asset, amount=self.amt(asset, text)))
        assert of(ev, Deposited), ev
        return ev

    def order(
        self,
        account: int,
        side: int,
        qty: str,
        price: str | int | None = None,
        pair: str = "XBTUSD",
        **kw: Any,
    ) -> list[Event]:
        """AddOrder with qty as a decimal string; price a decimal string (absolute price)
        or an int passed through as is (price units, offsets, ppm)."""
        if isinstance(price, str):
            kw["price"] = self.px(price, pair)
        elif price is not None:
            kw["price"] = price
        return self.apply(
            AddOrder(account=account, pair=pair, side=side, qty=self.lots(qty, pair), **kw)
        )

    def buy(self, account: int, qty: str, price: str | int | None = None, **kw: Any) -> list[Event]:
        return self.order(account, BUY, qty, price, **kw)

    def sell(
        self, account: int, qty: str, price: str | int | None = None, **kw: Any
    ) -> list[Event]:
        return self.order(account, 1 - BUY, qty, price, **kw)

    # ---------------------------------------------------------------- reading
    def book(self, pair: str = "XBTUSD") -> dict[str, Any]:
        return self.ex.market(pair).book.depth()

    def queue(self, side: int, price: str, pair: str = "XBTUSD") -> list[int]:
        """Order ids resting at `price` on `side`, in time priority."""
        p = self.px(price, pair)
        for level_price, orders in self.ex.market(pair).book.levels(side):
            if level_price == p:
                return [o.order_id for o in orders]
        return []

    def is_open(self, order_id: int) -> bool:
        """Open or pending, by the engine's own account and by the events."""
        engine = self.ex.order(order_id) is not None
        assert engine == (order_id in self.live), f"order {order_id}: engine and events disagree"
        return engine

    # ---------------------------------------------------------------- invariants
    def _track(self, events: list[Event]) -> None:
        for e in events:
            if isinstance(e, OrderAccepted):
                self.live[e.order_id] = e.account
                self.accounts.add(e.account)
            elif isinstance(e, OrderClosed):
                assert self.live.pop(e.order_id, None) == e.account, f"closed twice? {e}"
            elif isinstance(e, Transferred):
                self.accounts.update((e.src, e.dst))
            elif isinstance(e, Deposited):
                self.accounts.add(e.account)
                self.external[e.asset] += e.amount
            elif isinstance(e, WithdrawalHeld):
                self.pending_wd[e.ref] = (e.account, e.asset, e.amount + e.fee)
            elif isinstance(e, WithdrawalCompleted):
                self.external[e.asset] -= e.amount
                self.pending_wd.pop(e.ref, None)
            elif isinstance(e, WithdrawalReturned):
                self.pending_wd.pop(e.ref, None)

    def check(self) -> None:
        """No negative balance; conservation per asset; no hold left without a reason."""
        ex = self.ex
        n = len(self.cfg.assets)
        sums = [0] * n
        live_accounts = set(self.live.values())
        wd_held: dict[tuple[int, int], int] = defaultdict(int)
        for acct, asset, total in self.pending_wd.values():
            wd_held[(acct, asset)] += total
        for aid in sorted(self.accounts):
            for i in range(n):
                avail, held = ex.balance(aid, i)
                assert avail >= 0, f"negative available: account {aid} asset {i}: {avail}"
                assert held >= 0, f"negative held: account {aid} asset {i}: {held}"
                sums[i] += avail + held
                if aid not in live_accounts:
                    assert held == wd_held[(aid, i)], (
                        f"account {aid} has no live order but holds {held} of asset {i}"
                    )
        for i in range(n):
            assert sums[i] == self.external[i], (
                f"conservation broken for asset {i}: {sums[i]} != {self.external[i]}"
            )


def accepted_id(events: list[Event]) -> int:
    """The id of the order an AddOrder's events accepted."""
    return one(events, OrderAccepted).order_id


def rejection(events: list[Event]) -> str:
    """The error string of an order command's single rejection."""
    return one(events, OrderRejected).error


def closed(events: list[Event], order_id: int) -> OrderClosed:
    found = [e for e in events if isinstance(e, OrderClosed) and e.order_id == order_id]
    assert len(found) == 1, f"order {order_id} not closed exactly once in {events}"
    return found[0]


def trades(events: list[Event]) -> list[Trade]:
    return of(events, Trade)


# Accounts used by the scenarios
BUYER = 1
SELLER = 2
MM_A = 3  # market makers: funded in everything, used to print trades (move the last price)
MM_B = 4


def funded(cfg: MarketConfig | None = None) -> Driver:
    """A driver with the usual accounts funded: BUYER has USD, SELLER has BTC, MM_A/MM_B
    have plenty of USD, BTC and ETH."""
    d = Driver(cfg)
    d.fund(BUYER, "ZUSD", "1000000")
    d.fund(SELLER, "XXBT", "100")
    for mm in (MM_A, MM_B):
        d.fund(mm, "ZUSD", "10000000")
        d.fund(mm, "XXBT", "1000")
        d.fund(mm, "XETH", "10000")
    return d


def state_view(d: Driver) -> tuple[Any, ...]:
    """What a rejected or validate-only command must leave untouched."""
    ex = d.ex
    n = len(d.cfg.assets)
    balances = tuple(
        (aid, tuple(ex.balance(aid, i) for i in range(n))) for aid in sorted(d.accounts)
    )
    markets = tuple(
        (str(ex.market(p.index).book.depth()), ex.market(p.index).last_price) for p in d.cfg.pairs
    )
    return balances, markets, tuple(sorted(d.live))


def print_trade(d: Driver, price: str, qty: str = "0.01", pair: str = "XBTUSD") -> None:
    """Make the last trade price of `pair` equal `price` (MM_A sells to MM_B)."""
    d.order(MM_A, 1 - BUY, qty, price, pair=pair)
    ev = d.order(MM_B, BUY, qty, price, pair=pair)
    t = trades(ev)
    assert t and all(x.price == d.px(price, pair) for x in t), ev
    assert d.ex.market(pair).last_price == d.px(price, pair)
