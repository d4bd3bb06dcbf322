"""One batch of events folded into rows, in memory, before anything is written.

`Fold` walks a batch's events in order and builds what the batch adds or changes: order
rows (new and touched), trade sides, ledger postings with running balances, balances,
one-minute candles (rolled up to Kraken's intervals at the end), per-day volumes and fee
tiers. Rows that existed before the batch (open orders, balances, last prices) come from
the projector's caches or, on a miss, from its `Loader`; the fold works on copies, so a
failed write leaves the caches as they were.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from cambio.model.commands import BUY, SELL
from cambio.model.config import MarketConfig
from cambio.model.events import (
    Deposited,
    Event,
    FeeTierChanged,
    OrderAccepted,
    OrderAmended,
    OrderClosed,
    OrderTriggered,
    Trade,
    Transferred,
    WithdrawalBroadcast,
    WithdrawalCompleted,
    WithdrawalHeld,
    WithdrawalReturned,
)
from cambio.model.ids import is_chain_txid
from cambio.model.ledger import postings
from cambio.store.valuation import UsdValuation

Row = dict[str, Any]
INTERVALS = (1, 5, 15, 30, 60, 240, 1440, 10080, 21600)  # Kraken's OHLC intervals, minutes
DAY_NS = 86_400 * 1_000_000_000
_MIN_NS = 60 * 1_000_000_000
FINAL = frozenset({"closed", "canceled", "expired"})
RESTING = frozenset({"limit", "iceberg"})
SIDES = {BUY: "buy", SELL: "sell"}


def _funding_row(
    refid: str, kind: str, account: int, asset: str, amount: int, fee: int, status: str,
    seq: int, ts: int,
) -> Row:  # fmt: skip
    return {
        "refid": refid, "kind": kind, "account": account, "asset": asset, "amount": amount,
        "fee": fee, "status": status, "status_prop": "", "key": "", "address": "",
        "txid": "", "opened_ts": ts, "closed_ts": 0, "seq": seq,
    }  # fmt: skip


class ProjectionError(Exception):
    """The events do not fit the read models (an order never accepted, a gap...)."""


class Loader(Protocol):
    """Reads the state a batch starts from (inside the batch's transaction)."""

    def order(self, order_id: int) -> Row | None: ...
    def balance(self, account: int, asset: str) -> int: ...
    def funding(self, refid: str) -> Row | None: ...
    def last_prices(self) -> list[int]: ...


class Caches:
    """State kept between batches: open and pending orders, balances, last prices."""

    def __init__(self) -> None:
        self.orders: dict[int, Row] = {}
        self.balances: dict[tuple[int, str], int] = {}
        self.last_prices: list[int] | None = None

    def clear(self) -> None:
        self.orders = {}
        self.balances = {}
        self.last_prices = None


class Fold:
    """The rows one batch adds or changes (see the module docstring)."""

    def __init__(
        self, config: MarketConfig, valuation: UsdValuation, caches: Caches, load: Loader
    ) -> None:
        self.config = config
        self._load = load
        self.pair_ids = [p.id for p in config.pairs]
        self.asset_ids = [a.id for a in config.assets]
        self.valuation = valuation
        self.caches = caches
        self.orders: dict[int, Row] = {}  # every order row the batch touched
        self.new_orders: set[int] = set()  # ... of which these are new
        self.trades: list[tuple[Any, ...]] = []  # in the column order of schema.trades
        self.ledger: list[tuple[Any, ...]] = []  # ... and of schema.ledger
        self.balances: dict[tuple[int, str], tuple[int, int]] = {}  # -> (balance, ledger_id)
        self.minutes: dict[tuple[int, int], list[int]] = {}  # (pair, minute) -> candle
        self.volumes: dict[tuple[int, int, int], list[int]] = {}  # (account, day, pair)
        self.fee_tiers: dict[int, Row] = {}
        self.funding: dict[str, Row] = {}  # deposit and withdrawal rows, by refid
        self.last_prices: list[int] | None = None
        self._handlers: dict[type[Event], Callable[[Any, int, int], None]] = {
            OrderAccepted: self._accepted,
            OrderTriggered: self._triggered,
            OrderAmended: self._amended,
            OrderClosed: self._closed,
            Trade: self._trade,
            FeeTierChanged: self._fee_tier,
            Deposited: self._deposited,
            WithdrawalHeld: self._withdrawal_held,
            WithdrawalCompleted: self._withdrawal_completed,
            WithdrawalReturned: self._withdrawal_returned,
            WithdrawalBroadcast: self._withdrawal_broadcast,
            Transferred: self._transferred,
        }

    def run(self, items: Sequence[tuple[int, int, Sequence[Event]]]) -> None:
        handlers = self._handlers
        for seq, ts, events in items:
            for e in events:
                h = handlers.get(type(e))
                if h is not None:
                    h(e, seq, ts)

    # ---------------------------------------------------------------- caches
    def _order(self, order_id: int) -> Row:
        row = self.orders.get(order_id)
        if row is None:
            cached = self.caches.orders.get(order_id)
            row = dict(cached) if cached is not None else self._load.order(order_id)
            if row is None:
                raise ProjectionError(f"order {order_id} was never accepted")
            self.orders[order_id] = row
        return row

    def _prices(self) -> list[int]:
        if self.last_prices is None:
            cached = self.caches.last_prices
            self.last_prices = list(cached) if cached is not None else self._load.last_prices()
        return self.last_prices

    # ---------------------------------------------------------------- events
    def _accepted(self, e: OrderAccepted, seq: int, ts: int) -> None:
        if e.order_id in self.orders or e.order_id in self.caches.orders:
            raise ProjectionError(f"order {e.order_id} accepted twice")
        self.new_orders.add(e.order_id)
        self.orders[e.order_id] = {
            "order_id": e.order_id, "account": e.account, "pair": self.pair_ids[e.pair],
            "side": SIDES[e.side], "ordertype": e.ordertype, "price": e.price,
            "price2": e.price2, "trigger_price": 0, "qty": e.qty, "display_qty": e.display_qty,
            "filled": 0, "cost": 0, "fee": 0, "trades": 0, "status": e.status, "reason": "",
            "tif": e.tif, "expire_ts": e.expire_ts, "post_only": e.post_only,
            "fee_in_base": e.fee_in_base, "stp": e.stp, "userref": e.userref,
            "cl_ord_id": e.cl_ord_id, "opened_seq": seq, "opened_ts": ts, "triggered_ts": 0,
            "closed_seq": 0, "closed_ts": 0, "amends": 0, "amend_id": 0,
        }  # fmt: skip

    def _triggered(self, e: OrderTriggered, seq: int, ts: int) -> None:
        row = self._order(e.order_id)
        row["status"] = "open"
        row["trigger_price"] = e.trigger_price
        row["triggered_ts"] = ts
        if e.limit_price:
            row["price2"] = e.limit_price

    def _amended(self, e: OrderAmended, seq: int, ts: int) -> None:
        row = self._order(e.order_id)
        row["qty"] = e.qty
        row["display_qty"] = e.display_qty
        if row["ordertype"] in RESTING:
            row["price"] = e.price
        else:  # a trigger order: `price` is its trigger, `price2` its limit
            if e.trigger_price:
                row["price"] = e.trigger_price
            if row["ordertype"].endswith("-limit"):
                row["price2"] = e.price
        row["amends"] += 1
        row["amend_id"] = e.amend_id

    def _closed(self, e: OrderClosed, seq: int, ts: int) -> None:
        row = self._order(e.order_id)
        row["status"] = e.status
        row["reason"] = e.reason
        row["closed_seq"] = seq
        row["closed_ts"] = ts

    def _deposited(self, e: Deposited, seq: int, ts: int) -> None:
        self._postings(e, seq, ts, 0, e.ref)
        refid = e.ref or f"D{e.ledger_id}"
        asset = self.asset_ids[e.asset]
        row = _funding_row(refid, "deposit", e.account, asset, e.amount, 0, "Success", seq, ts)
        txid = e.ref if is_chain_txid(e.ref) else ""
        self.funding[refid] = row | {"closed_ts": ts, "txid": txid}

    def _withdrawal_held(self, e: WithdrawalHeld, seq: int, ts: int) -> None:
        row = _funding_row(e.ref, "withdrawal", e.account, self.asset_ids[e.asset], e.amount,
                           e.fee, "Pending", seq, ts)  # fmt: skip
        self.funding[e.ref] = row | {"key": e.key, "address": e.address}

    def _withdrawal(self, refid: str) -> Row:
        row = self.funding.get(refid)
        if row is None:
            loaded = self._load.funding(refid)
            if loaded is None:
                raise ProjectionError(f"withdrawal {refid!r} was never requested")
            row = self.funding[refid] = loaded
        return row

    def _withdrawal_completed(self, e: WithdrawalCompleted, seq: int, ts: int) -> None:
        self._postings(e, seq, ts, 0, e.ref)
        self._withdrawal(e.ref).update(status="Success", txid=e.txid, closed_ts=ts)

    def _withdrawal_broadcast(self, e: WithdrawalBroadcast, seq: int, ts: int) -> None:
        # Kraken's "Settled": on the network, not yet final
        self._withdrawal(e.ref).update(status="Settled", txid=e.txid)

    def _withdrawal_returned(self, e: WithdrawalReturned, seq: int, ts: int) -> None:
        prop = "canceled" if e.reason == "canceled" else "return"
        self._withdrawal(e.ref).update(status="Failure", status_prop=prop, closed_ts=ts)

    def _transferred(self, e: Transferred, seq: int, ts: int) -> None:
        self._postings(e, seq, ts, 0, e.reason)

    def _fee_tier(self, e: FeeTierChanged, seq: int, ts: int) -> None:
        self.fee_tiers[e.account] = {
            "account": e.account, "volume": e.volume, "maker_ppm": e.maker_ppm,
            "taker_ppm": e.taker_ppm, "seq": seq, "ts": ts,
        }  # fmt: skip

    def _trade(self, t: Trade, seq: int, ts: int) -> None:
        pair = self.pair_ids[t.pair]
        maker_side = SELL if t.taker_side == BUY else BUY
        sides = (
            (True, t.maker_order, t.maker_account, maker_side, t.maker_fee, t.maker_fee_base),
            (False, t.taker_order, t.taker_account, t.taker_side, t.taker_fee, t.taker_fee_base),
        )
        for k, (maker, order_id, account, side, fee, fee_base) in enumerate(sides):
            row = self._order(order_id)
            row["filled"] += t.qty
            row["cost"] += t.cost
            row["fee"] += fee
            row["trades"] += 1
            self.trades.append(
                (
                    t.trade_id, maker, account, order_id, pair, SIDES[side], t.price, t.qty,
                    t.cost, fee, fee_base, t.ledger_id + 2 * k, seq, ts,
                )
            )  # fmt: skip
        self._postings(t, seq, ts, t.trade_id, "")
        # candles: one-minute buckets now, rolled up to the other intervals at the end
        key = (t.pair, ts // _MIN_NS)
        c = self.minutes.get(key)
        p, q = t.price, t.qty
        if c is None:
            self.minutes[key] = [p, p, p, p, q, p * q, 1]
        else:
            if p > c[1]:
                c[1] = p
            elif p < c[2]:
                c[2] = p
            c[3] = p
            c[4] += q
            c[5] += p * q
            c[6] += 1
        # volume: the engine values the cost after counting this trade's price
        last = self._prices()
        last[t.pair] = p
        usd = self.valuation.value(t.pair, t.cost, last)
        day = ts // DAY_NS
        for account in (t.maker_account, t.taker_account):
            v = self.volumes.get((account, day, t.pair))
            if v is None:
                self.volumes[(account, day, t.pair)] = [t.cost, usd, 1]
            else:
                v[0] += t.cost
                v[1] += usd
                v[2] += 1

    def _postings(self, e: Event, seq: int, ts: int, ref_id: int, ref: str) -> None:
        balances = self.balances
        for p in postings(e, self.config):
            asset = self.asset_ids[p.asset]
            key = (p.account, asset)
            prev = balances.get(key)
            if prev is not None:
                bal = prev[0]
            else:
                cached = self.caches.balances.get(key)
                bal = cached if cached is not None else self._load.balance(p.account, asset)
            bal += p.amount
            balances[key] = (bal, p.ledger_id)
            self.ledger.append(
                (
                    p.ledger_id, p.account, asset, p.amount, p.fee, bal, p.type, ref_id, ref,
                    seq, ts,
                )
            )  # fmt: skip

    # ---------------------------------------------------------------- results
    def candles(self) -> list[Row]:
        """The batch's candles for every interval, one row per (pair, interval, time)."""
        out: dict[tuple[int, int, int], list[int]] = {}
        for (pair, minute), c in self.minutes.items():  # in time order per pair
            for iv in INTERVALS:
                key = (pair, iv, minute // iv * iv * 60)
                agg = out.get(key)
                if agg is None:
                    out[key] = list(c)
                else:
                    agg[1] = max(agg[1], c[1])
                    agg[2] = min(agg[2], c[2])
                    agg[3] = c[3]
                    agg[4] += c[4]
                    agg[5] += c[5]
                    agg[6] += c[6]
        return [
            {
                "pair": self.pair_ids[pair], "interval": iv, "time": time, "open": c[0],
                "high": c[1], "low": c[2], "close": c[3], "volume": c[4], "pv": c[5],
                "count": c[6],
            }
            for (pair, iv, time), c in out.items()
        ]  # fmt: skip

    def volume_rows(self) -> list[Row]:
        return [
            {
                "account": account, "day": day, "pair": self.pair_ids[pair],
                "quote_volume": v[0], "usd_volume": v[1], "count": v[2],
            }
            for (account, day, pair), v in self.volumes.items()
        ]  # fmt: skip

    def balance_rows(self) -> list[Row]:
        return [
            {"account": account, "asset": asset, "balance": bal, "ledger_id": lid}
            for (account, asset), (bal, lid) in self.balances.items()
        ]

    def commit(self) -> None:
        """The batch is written: carry its state over into the caches."""
        caches = self.caches
        for order_id, row in self.orders.items():
            if row["status"] in FINAL:
                caches.orders.pop(order_id, None)
            else:
                caches.orders[order_id] = row
        for key, (bal, _) in self.balances.items():
            caches.balances[key] = bal
        if self.last_prices is not None:
            caches.last_prices = self.last_prices
