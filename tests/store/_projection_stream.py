"""A realistic event stream for the read-model tests: a real engine driven by a scripted
opening and then a seeded-random mix of commands over every default market.

Opening: every trader funded in every asset, one trade per market (so every market has a
last price and USD valuation has its references), a mode change and a fee promotion.
Then: limit orders (GTC/IOC/GTD/FOK, post-only, fee in base, icebergs, userref and
cl_ord_id), market orders (some by quote volume), stop and trailing orders, cancels (by
id, userref, cl_ord_id, all), amends, deposits, withdrawals (held, completed, returned),
transfers, dead man's switches and ticks, with time moving over `days` days so that GTD
orders expire, candles of every interval close and the 30-day volume window rolls.

`build(n, seed, days)` returns the (seq, ts, events) items, the engine at the end, and the
facts the tests check against (deposits, withdrawals, how each order ended).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache

from cambio.engine import Exchange
from cambio.model.commands import (
    BUY,
    FOK,
    GTC,
    GTD,
    ICEBERG,
    IOC,
    LIMIT,
    MARKET,
    ONLINE,
    POST_ONLY,
    PRICE_PLUS,
    SELL,
    STOP_LOSS,
    STOP_LOSS_LIMIT,
    TAKE_PROFIT,
    TRAILING_STOP,
    AddOrder,
    AmendOrder,
    CancelAll,
    CancelAllAfter,
    CancelOrder,
    Command,
    CompleteWithdrawal,
    CreatePromotion,
    Deposit,
    RequestWithdrawal,
    ReturnWithdrawal,
    SetMarketMode,
    Tick,
    Transfer,
)
from cambio.model.config import MarketConfig, load_config
from cambio.model.decimals import to_units
from cambio.model.events import (
    Deposited,
    Event,
    OrderAccepted,
    OrderClosed,
    WithdrawalCompleted,
    WithdrawalHeld,
    WithdrawalReturned,
)

CONFIG: MarketConfig = load_config()
T0 = 1_700_006_400 * 1_000_000_000  # 2023-11-15 00:00 UTC
SEC = 1_000_000_000
MIN = 60 * SEC
HOUR = 60 * MIN
DAY = 24 * HOUR
TRADERS = tuple(range(1, 9))
Item = tuple[int, int, list[Event]]

# pair: (mid, smallest and largest order size), human units
MARKETS = {
    "XBTUSD": ("30000", "0.001", "0.8"),
    "XBTEUR": ("27600", "0.001", "0.8"),
    "ETHUSD": ("2000", "0.01", "10"),
    "ETHXBT": ("0.06667", "0.01", "10"),
    "SOLUSD": ("100", "0.1", "150"),
    "USDTUSD": ("1.0001", "10", "20000"),
}
BALANCES = {
    "ZUSD": "5000000",
    "ZEUR": "3000000",
    "XXBT": "300",
    "XETH": "3000",
    "SOL": "60000",
    "USDT": "4000000",
}


@dataclass
class Stream:
    items: list[Item] = field(default_factory=list)
    engine: Exchange = field(default_factory=lambda: Exchange(CONFIG))
    external: dict[int, int] = field(default_factory=dict)  # asset -> deposits - withdrawals
    closed: dict[int, OrderClosed] = field(default_factory=dict)
    accepted: dict[int, OrderAccepted] = field(default_factory=dict)

    @property
    def events(self) -> list[tuple[int, int, Event]]:
        return [(seq, ts, e) for seq, ts, evs in self.items for e in evs]


class _Builder:
    def __init__(self, n: int, seed: int, days: float) -> None:
        self.rng = random.Random(seed)
        self.n = n
        self.mean_dt = int(days * DAY / max(n, 1))
        self.s = Stream()
        self.ts = T0
        self.live: dict[int, OrderAccepted] = {}
        self.pending_wd: list[str] = []
        self.next_ref = 0
        self.mid = {
            name: to_units(mid, CONFIG.pair(name).pair_decimals)
            for name, (mid, _, _) in MARKETS.items()
        }

    def apply(self, cmd: Command, dt: int = 0) -> list[Event]:
        self.ts += dt
        cmd.seq = len(self.s.items) + 1
        cmd.ts = self.ts
        events = self.s.engine.apply(cmd)
        self.s.items.append((cmd.seq, cmd.ts, events))
        ext = self.s.external
        for e in events:
            if isinstance(e, OrderAccepted):
                self.live[e.order_id] = e
                self.s.accepted[e.order_id] = e
            elif isinstance(e, OrderClosed):
                self.live.pop(e.order_id)
                self.s.closed[e.order_id] = e
            elif isinstance(e, Deposited):
                ext[e.asset] = ext.get(e.asset, 0) + e.amount
            elif isinstance(e, WithdrawalCompleted):
                ext[e.asset] = ext.get(e.asset, 0) - e.amount
            elif isinstance(e, WithdrawalHeld):
                self.pending_wd.append(e.ref)
            elif isinstance(e, WithdrawalReturned):
                self.pending_wd.remove(e.ref)
        for e in events:
            if isinstance(e, WithdrawalCompleted):
                self.pending_wd.remove(e.ref)
        return events

    def ref(self, prefix: str) -> str:
        self.next_ref += 1
        return f"{prefix}{self.next_ref}"

    # ------------------------------------------------------------ the opening
    def opening(self) -> None:
        for account in TRADERS:
            for asset, amount in BALANCES.items():
                units = CONFIG.asset(asset).units
                self.apply(Deposit(account=account, asset=asset, amount=to_units(amount, units)))
        for name in MARKETS:
            qty = self.lots(name, MARKETS[name][1]) * 3
            self.apply(AddOrder(account=1, pair=name, side=SELL, qty=qty, price=self.mid[name]))
            self.apply(AddOrder(account=2, pair=name, side=BUY, qty=qty, price=self.mid[name]))
        self.apply(SetMarketMode(pair="SOLUSD", mode=POST_ONLY, reason="test"))
        self.apply(SetMarketMode(pair="SOLUSD", mode=ONLINE, reason="test"))
        self.apply(
            CreatePromotion(
                promo_id="p1", maker_ppm=0, taker_ppm=500, start_ts=self.ts + DAY,
                end_ts=self.ts + 3 * DAY, pairs=["ETHUSD"],
            )
        )  # fmt: skip

    def lots(self, pair: str, text: str) -> int:
        return to_units(text, CONFIG.pair(pair).lot_decimals)

    # ------------------------------------------------------------ the random part
    def step(self) -> None:
        r = self.rng
        dt = r.randint(0, 2 * self.mean_dt)
        x = r.random()
        if x < 0.45:
            self.apply(self.limit_order(), dt)
        elif x < 0.53:
            self.apply(self.market_order(), dt)
        elif x < 0.56:
            self.apply(self.trigger_order(), dt)
        elif x < 0.68:
            self.apply(self.cancel(), dt)
        elif x < 0.78:
            self.apply(self.amend(), dt)
        elif x < 0.81:
            account, asset = r.choice(TRADERS), r.choice(list(BALANCES))
            amount = self.amount(asset, Decimal("0.01"))
            ref = self.ref("d") if r.random() < 0.5 else ""
            self.apply(Deposit(account=account, asset=asset, amount=amount, ref=ref), dt)
        elif x < 0.84:
            asset = r.choice(list(BALANCES))
            amount = self.amount(asset, Decimal("0.005"))
            fee = amount // 1000
            cmd = RequestWithdrawal(
                account=r.choice(TRADERS), asset=asset, amount=amount, ref=self.ref("w"), fee=fee
            )
            self.apply(cmd, dt)
        elif x < 0.87 and self.pending_wd:
            ref = r.choice(self.pending_wd)
            if r.random() < 0.7:
                self.apply(CompleteWithdrawal(ref=ref), dt)
            else:
                self.apply(ReturnWithdrawal(ref=ref, reason="address"), dt)
        elif x < 0.89:
            src, dst = r.sample(TRADERS, 2)
            asset = r.choice(list(BALANCES))
            kind = r.choice(["transfer", "adjustment"])
            amount = self.amount(asset, Decimal("0.002"))
            self.apply(Transfer(src=src, dst=dst, asset=asset, amount=amount, kind=kind), dt)
        elif x < 0.895:
            self.apply(CancelAll(account=r.choice(TRADERS)), dt)
        elif x < 0.90:
            timeout = r.choice([0, 30, 600])
            self.apply(CancelAllAfter(account=r.choice(TRADERS), timeout_s=timeout), dt)
        else:
            self.apply(Tick(), dt + r.randint(0, 3 * self.mean_dt))

    def amount(self, asset: str, fraction: Decimal) -> int:
        units = CONFIG.asset(asset).units
        top = to_units(BALANCES[asset], units) * fraction
        return max(1, int(top * Decimal(self.rng.random())))

    def pick_pair(self) -> str:
        return self.rng.choice(["XBTUSD"] * 4 + ["ETHUSD"] * 2 + list(MARKETS))

    def qty(self, name: str) -> int:
        _, lo, hi = MARKETS[name]
        return self.rng.randint(self.lots(name, lo), self.lots(name, hi))

    def price(self, name: str, spread: int = 8) -> int:
        """Near the mid, which drifts: a mid step is about 5 basis points."""
        r, spec = self.rng, CONFIG.pair(name)
        step = max(spec.tick, self.mid[name] // 2000)
        self.mid[name] += r.choice([-1, 0, 0, 1]) * step
        p = self.mid[name] + r.randint(-spread, spread) * step
        return max(spec.tick, p - p % spec.tick)

    def limit_order(self) -> AddOrder:
        r = self.rng
        name = self.pick_pair()
        qty = self.qty(name)
        tif = r.choice([GTC] * 8 + [IOC, GTD, GTD, FOK])
        ot = ICEBERG if r.random() < 0.06 and tif != FOK else LIMIT
        cmd = AddOrder(
            account=r.choice(TRADERS), pair=name, side=r.choice([BUY, SELL]), qty=qty,
            ordertype=ot, price=self.price(name), tif=tif,
            post_only=tif in (GTC, GTD) and r.random() < 0.1, fee_in_base=r.random() < 0.15,
        )  # fmt: skip
        if ot == ICEBERG:
            cmd.display_qty = max(-(-qty // 10), CONFIG.pair(name).ordermin)
        if tif == GTD:
            cmd.expire_ts = self.ts + r.choice([MIN, HOUR, DAY, 3 * DAY])
        tag = r.random()
        if tag < 0.15:
            cmd.userref = r.randint(1, 3)
        elif tag < 0.25:
            cmd.cl_ord_id = self.ref("c")
        return cmd

    def market_order(self) -> AddOrder:
        r = self.rng
        name = self.pick_pair()
        side = r.choice([BUY, SELL])
        cmd = AddOrder(
            account=r.choice(TRADERS), pair=name, side=side, qty=self.qty(name),
            ordertype=MARKET, fee_in_base=r.random() < 0.15,
        )  # fmt: skip
        if side == BUY and r.random() < 0.25:
            spec = CONFIG.pair(name)
            cmd.quote_qty = True
            cmd.qty = spec.cost(self.mid[name], self.qty(name))
        return cmd

    def trigger_order(self) -> AddOrder:
        r = self.rng
        name = self.pick_pair()
        side = r.choice([BUY, SELL])
        ot = r.choice([STOP_LOSS, TAKE_PROFIT, STOP_LOSS_LIMIT, TRAILING_STOP])
        cmd = AddOrder(
            account=r.choice(TRADERS), pair=name, side=side, qty=self.qty(name), ordertype=ot,
            price=self.price(name, 20),
        )  # fmt: skip
        if ot == STOP_LOSS_LIMIT:
            cmd.price2 = self.price(name, 20)
        elif ot == TRAILING_STOP:
            cmd.price_kind, cmd.price_pct = PRICE_PLUS, True
            cmd.price = r.randint(1_000, 20_000)  # 0.1 % .. 2 %
        return cmd

    def target(self) -> OrderAccepted | None:
        if not self.live:
            return None
        return self.live[self.rng.choice(sorted(self.live))]

    def cancel(self) -> Command:
        o = self.target()
        if o is None:
            return Tick()
        how = self.rng.random()
        if how < 0.1 and o.cl_ord_id is not None:
            return CancelOrder(account=o.account, cl_ord_id=o.cl_ord_id)
        if how < 0.2 and o.userref is not None:
            return CancelOrder(account=o.account, userref=o.userref)
        return CancelOrder(account=o.account, order_id=o.order_id)

    def amend(self) -> Command:
        o = self.target()
        if o is None:
            return Tick()
        r, name = self.rng, CONFIG.pairs[o.pair].altname
        cmd = AmendOrder(account=o.account, order_id=o.order_id)
        if r.random() < 0.6:
            cmd.order_qty = max(1, o.qty * r.randint(3, 15) // 10)
        if o.ordertype in (LIMIT, ICEBERG) and r.random() < 0.5:
            cmd.limit_price = self.price(name)
        elif o.status == "pending" and o.ordertype != TRAILING_STOP and r.random() < 0.5:
            cmd.trigger_price = self.price(name, 20)
        if o.ordertype == ICEBERG and cmd.order_qty:
            cmd.display_qty = max(-(-cmd.order_qty // 10), CONFIG.pair(name).ordermin)
        return cmd


@lru_cache(maxsize=8)
def build(n: int, seed: int = 1, days: float = 40.0) -> Stream:
    """`n` commands after the opening (cached: streams are deterministic)."""
    b = _Builder(n, seed, days)
    b.opening()
    for _ in range(n):
        b.step()
    return b.s
