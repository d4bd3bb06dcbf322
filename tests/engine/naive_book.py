"""A naive, obviously-correct reference matcher for differential tests against the engine.

Everything is plain lists, recomputed from scratch every time: the book is one list of
resting orders per market; the best order is found by sorting on (price, time) on every
step; fill-or-kill is decided by running the whole match on a deep copy. No heaps, no lazy
deletion, no incremental holds. It knows nothing about funds or fees (the differential
test gives every account ample funds), only about which orders trade with which.

Rules modelled (reference §6.3, §6.4, §6.6):

* limit GTC / IOC / FOK (fill-or-kill is refused on other order types), market (with or
  without market-price protection), iceberg
  (matches one visible slice at a time; an exhausted slice is refilled with a fresh one at
  the back of its price level), post-only (cancelled on arrival if it would take);
* market-price protection: a market order never trades beyond the best opposite price at
  its arrival moved 5 % (the pair's band) against the taker, rounded to the tick towards
  that touch. ``no_mpp`` sells take any bid; ``no_mpp`` buys take any ask;
* self-trade prevention: cancel-newest (the arriving order's remainder is cancelled),
  cancel-oldest (the resting order is cancelled, matching goes on), cancel-both;
* cancel, and amend: a same-price quantity reduction (or display reduction) keeps time
  priority; anything else takes the order out and puts it back as a new arrival, which may
  trade.

Every outcome is a tuple (see `Ev`), in the order the engine is expected to emit it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

BUY = 0
SELL = 1
PPM = 1_000_000
INF = 1 << 62
MIN_ICEBERG_FRACTION = 15

NEWEST = "cancel-newest"
OLDEST = "cancel-oldest"
BOTH = "cancel-both"

# error strings and close reasons (the engine's, reference §1.5)
UNKNOWN_ORDER = "EOrder:Unknown order"
VOLUME_MINIMUM = "EGeneral:Invalid arguments:volume minimum not met"
COST_MINIMUM = "EOrder:Cost minimum not met"
INVALID_DISPLAYVOL = "EGeneral:Invalid arguments:displayvol"
TICK_SIZE = "EOrder:Tick size check failed"
POST_ONLY_AMEND = "EOrder:Post only order"
BAD_TIF = "EGeneral:Invalid arguments:timeinforce"
R_POST_ONLY = "Post only order"
R_IOC = "Immediate or cancel"
R_FOK = "Fill or kill"
R_STP = "Self trade prevention"
R_MPP = "Market price protection"
R_NO_LIQUIDITY = "No liquidity"
R_USER = "User requested"
R_AMEND = "Order quantity amended below filled"

# An event: ("accepted", order_id) | ("rejected", error) | ("trade", maker, taker, price,
# qty) | ("closed", order_id, status, reason, filled) | ("amended", order_id, new total
# qty, price, display, priority_kept)
Ev = tuple[object, ...]


@dataclass(frozen=True)
class PairRules:
    """What the naive book needs to know about a market (integers, engine units)."""

    tick: int
    ordermin: int  # lots
    costmin: int  # quote units
    quote_per_pq: int
    band_ppm: int


@dataclass
class NOrder:
    order_id: int
    account: int
    side: int
    price: int
    qty: int  # remaining
    tif: str
    stp: str
    post_only: bool
    display: int = 0  # 0: not an iceberg
    shown: int = 0  # iceberg: visible slice left
    filled: int = 0
    time: int = 0  # priority stamp: lower is older


@dataclass
class NaiveMarket:
    rules: PairRules
    orders: list[NOrder] = field(default_factory=list)  # resting, any order

    def side(self, side: int) -> list[NOrder]:
        """One side, best first: price (high bids / low asks first), then time."""
        mine = [o for o in self.orders if o.side == side]
        if side == BUY:
            return sorted(mine, key=lambda o: (-o.price, o.time))
        return sorted(mine, key=lambda o: (o.price, o.time))

    def best(self, side: int) -> int:
        """Best price on a side, 0 if empty."""
        s = self.side(side)
        return s[0].price if s else 0

    def levels(self, side: int) -> list[tuple[int, list[tuple[int, int, int, int, int]]]]:
        """[(price, [(order_id, account, qty, display, shown)...])] best first."""
        out: list[tuple[int, list[tuple[int, int, int, int, int]]]] = []
        for o in self.side(side):
            row = (o.order_id, o.account, o.qty, o.display, o.shown)
            if out and out[-1][0] == o.price:
                out[-1][1].append(row)
            else:
                out.append((o.price, [row]))
        return out


class NaiveExchange:
    """Markets by name; order ids 1, 2, 3... shared across markets, like the engine."""

    def __init__(self, rules: dict[str, PairRules]) -> None:
        self.markets = {name: NaiveMarket(r) for name, r in rules.items()}
        self.next_id = 1
        self.clock = 0

    def _stamp(self) -> int:
        self.clock += 1
        return self.clock

    def _find(self, order_id: int) -> tuple[str, NaiveMarket, NOrder] | None:
        for name, m in self.markets.items():
            for o in m.orders:
                if o.order_id == order_id:
                    return name, m, o
        return None

    # ------------------------------------------------------------------ new orders
    def add(
        self,
        pair: str,
        account: int,
        side: int,
        qty: int,
        *,
        ordertype: str = "limit",
        price: int = 0,
        display: int = 0,
        tif: str = "GTC",
        post_only: bool = False,
        no_mpp: bool = False,
        stp: str = NEWEST,
    ) -> list[Ev]:
        m = self.markets[pair]
        r = m.rules
        opposite = SELL if side == BUY else BUY
        if tif == "FOK" and ordertype != "limit":
            return [("rejected", BAD_TIF)]  # fill-or-kill is for limit orders only
        if ordertype == "market":
            touch = m.best(opposite)
            if no_mpp:
                limit = INF if side == BUY else 1
            elif not touch:
                limit = 0  # nothing to trade with
            elif side == BUY:
                lim = touch + touch * r.band_ppm // PPM
                limit = lim // r.tick * r.tick  # down: towards the touch
            else:
                lim = touch - touch * r.band_ppm // PPM
                limit = max(r.tick, -(-lim // r.tick) * r.tick)  # up: towards the touch
            ref_price = touch
        else:
            limit = price
            ref_price = price
        if ref_price and ref_price * qty * r.quote_per_pq < r.costmin:
            return [("rejected", COST_MINIMUM)]
        o = NOrder(
            order_id=self.next_id,
            account=account,
            side=side,
            price=limit,
            qty=qty,
            tif=tif,
            stp=stp,
            post_only=post_only,
            display=display,
            shown=display,
        )
        self.next_id += 1
        out: list[Ev] = [("accepted", o.order_id)]
        self._arrive(pair, o, resting_type=ordertype != "market", out=out)
        return out

    def _arrive(self, pair: str, o: NOrder, resting_type: bool, out: list[Ev]) -> None:
        """An order arrives (new, or re-entering after an amend): take, then rest/close."""
        m = self.markets[pair]
        opposite = SELL if o.side == BUY else BUY
        if o.post_only:
            touch = m.best(opposite)
            if touch and (o.price >= touch if o.side == BUY else o.price <= touch):
                out.append(("closed", o.order_id, "canceled", R_POST_ONLY, o.filled))
                return
        if o.tif == "FOK":
            trial = copy.deepcopy(m)
            t = copy.deepcopy(o)
            self._match(trial, t, [])
            if t.qty:
                out.append(("closed", o.order_id, "canceled", R_FOK, o.filled))
                return
        reason = self._match(m, o, out)
        if o.qty == 0:
            out.append(("closed", o.order_id, "closed", "", o.filled))
        elif reason:
            out.append(("closed", o.order_id, "canceled", reason, o.filled))
        elif resting_type:
            if o.tif in ("IOC", "FOK"):
                out.append(("closed", o.order_id, "canceled", R_IOC, o.filled))
            else:
                o.time = self._stamp()
                if o.display:
                    o.shown = min(o.display, o.qty)
                m.orders.append(o)
        else:
            why = R_MPP if m.side(opposite) else R_NO_LIQUIDITY
            out.append(("closed", o.order_id, "canceled", why, o.filled))

    def _match(self, m: NaiveMarket, t: NOrder, out: list[Ev]) -> str:
        """Take liquidity for taker `t` up to its limit; return a cancel reason or ""."""
        opposite = SELL if t.side == BUY else BUY
        while t.qty:
            book = m.side(opposite)
            if not book:
                return ""
            o = book[0]
            if (o.price > t.price) if t.side == BUY else (o.price < t.price):
                return ""
            if o.account == t.account:
                if t.stp == NEWEST:
                    return R_STP
                self._remove(m, o)
                out.append(("closed", o.order_id, "canceled", R_STP, o.filled))
                if t.stp == BOTH:
                    return R_STP
                continue
            visible = min(o.shown, o.qty) if o.display else o.qty
            q = min(visible, t.qty)
            out.append(("trade", o.order_id, t.order_id, o.price, q))
            o.qty -= q
            o.filled += q
            t.qty -= q
            t.filled += q
            if o.qty == 0:
                self._remove(m, o)
                out.append(("closed", o.order_id, "closed", "", o.filled))
            elif o.display:
                o.shown -= q
                if o.shown <= 0:
                    o.shown = min(o.display, o.qty)
                    o.time = self._stamp()  # a fresh slice queues at the back
        return ""

    @staticmethod
    def _remove(m: NaiveMarket, o: NOrder) -> None:
        m.orders = [x for x in m.orders if x.order_id != o.order_id]

    # ------------------------------------------------------------------ changes
    def cancel(self, account: int, order_id: int) -> list[Ev]:
        found = self._find(order_id)
        if found is None or found[2].account != account:
            return [("rejected", UNKNOWN_ORDER)]
        _, m, o = found
        self._remove(m, o)
        return [("closed", o.order_id, "canceled", R_USER, o.filled)]

    def amend(
        self,
        account: int,
        order_id: int,
        *,
        order_qty: int = 0,
        display_qty: int = 0,
        limit_price: int = 0,
        post_only: bool = False,
    ) -> list[Ev]:
        found = self._find(order_id)
        if found is None or found[2].account != account:
            return [("rejected", UNKNOWN_ORDER)]
        name, m, o = found
        r = m.rules
        new_total = order_qty or o.filled + o.qty
        new_rem = new_total - o.filled
        if new_rem > 0 and new_total < r.ordermin:
            return [("rejected", VOLUME_MINIMUM)]
        price = o.price
        if limit_price:
            if limit_price % r.tick:
                return [("rejected", TICK_SIZE)]
            price = limit_price
        display = o.display
        if display_qty:
            if not o.display:
                return [("rejected", INVALID_DISPLAYVOL)]
            display = display_qty
        if (
            o.display
            and new_rem > 0
            and (display * MIN_ICEBERG_FRACTION < new_total or display < r.ordermin)
        ):
            return [("rejected", INVALID_DISPLAYVOL)]
        if new_rem > 0 and (post_only or o.post_only) and price != o.price:
            touch = m.best(SELL if o.side == BUY else BUY)
            if touch and (price >= touch if o.side == BUY else price <= touch):
                return [("rejected", POST_ONLY_AMEND)]
        keep = new_rem > 0 and price == o.price and new_rem <= o.qty and display <= o.display
        out: list[Ev] = [("amended", o.order_id, new_total, price, display, keep)]
        if new_rem <= 0:
            self._remove(m, o)
            out.append(("closed", o.order_id, "canceled", R_AMEND, o.filled))
            return out
        if keep:
            o.qty = new_rem
            o.display = display
            o.shown = min(o.shown, display, new_rem)
            return out
        # priority lost: out of the book, back in as a new arrival
        self._remove(m, o)
        o.price, o.qty, o.display = price, new_rem, display
        o.shown = min(display, new_rem)
        self._arrive(name, o, resting_type=True, out=out)
        return out

    def book(self, pair: str) -> dict[str, list[tuple[int, list[tuple[int, int, int, int, int]]]]]:
        m = self.markets[pair]
        return {"bids": m.levels(BUY), "asks": m.levels(SELL)}

    def resting(self) -> list[tuple[int, int]]:
        """(order_id, account) of every resting order, ascending id."""
        return sorted((o.order_id, o.account) for m in self.markets.values() for o in m.orders)
