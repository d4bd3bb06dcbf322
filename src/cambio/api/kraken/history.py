"""Orders and trades as Kraken shows them, read from the read models (cambio.store).

Amounts stay integers in the tables; here they become Kraken's decimal strings: volumes
with the pair's lot decimals, prices with its pair decimals, costs and fees with its cost
decimals, times as Unix seconds with a fraction. Ids become Kraken-style strings
(cambio.model.ids).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Row, func, select

from cambio.api.kraken.orders import describe
from cambio.model.config import MarketConfig, PairSpec
from cambio.model.decimals import format_units
from cambio.model.ids import format_id
from cambio.store import schema as s
from cambio.store.sql import connect

OPEN = ("open", "pending")
CLOSED = ("closed", "canceled", "expired")
PAGE = 50


def seconds(ns: int) -> float:
    return round(ns / 1e9, 4)


class History:
    def __init__(self, config: MarketConfig, url: str) -> None:
        self.config = config
        self.engine = connect(url)
        self.pairs = {p.id: p for p in config.pairs}

    # ------------------------------------------------------------------ reading
    def orders(
        self,
        account: int,
        statuses: tuple[str, ...],
        *,
        ids: list[int] | None = None,
        userref: int | None = None,
        cl_ord_id: str | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> tuple[list[Row[Any]], int]:
        """The account's orders in `statuses`, newest first; and how many there are."""
        o = s.orders
        where = [o.c.account == account, o.c.status.in_(statuses)]
        if ids is not None:
            where.append(o.c.order_id.in_(ids))
        if userref is not None:
            where.append(o.c.userref == userref)
        if cl_ord_id is not None:
            where.append(o.c.cl_ord_id == cl_ord_id)
        q = select(o).where(*where).order_by(o.c.order_id.desc()).offset(offset)
        with self.engine.connect() as conn:
            rows = list(conn.execute(q if limit is None else q.limit(limit)))
            count = int(conn.scalar(select(func.count()).select_from(o).where(*where)) or 0)
        return rows, count

    def trade_ids(self, order_ids: list[int]) -> dict[int, list[str]]:
        t = s.trades
        out: dict[int, list[str]] = defaultdict(list)
        q = select(t.c.order_id, t.c.trade_id).where(t.c.order_id.in_(order_ids))
        with self.engine.connect() as conn:
            for order_id, trade_id in conn.execute(q.order_by(t.c.trade_id)):
                out[order_id].append(format_id("T", trade_id))
        return out

    def trades(self, account: int, offset: int = 0) -> tuple[list[Row[Any]], int]:
        """The account's trades (one row per side it took part in), newest first."""
        t, o = s.trades, s.orders
        q = (
            select(t, o.c.ordertype)
            .join(o, o.c.order_id == t.c.order_id)
            .where(t.c.account == account)
            .order_by(t.c.trade_id.desc())
            .offset(offset)
            .limit(PAGE)
        )
        counted = select(func.count()).select_from(t).where(t.c.account == account)
        with self.engine.connect() as conn:
            return list(conn.execute(q)), int(conn.scalar(counted) or 0)

    def candles(self, pair: str, interval: int, since: int, limit: int) -> list[Row[Any]]:
        """The newest `limit` candles of `pair` starting after `since` (s), oldest first."""
        c = s.ohlc
        q = (
            select(c)
            .where(c.c.pair == pair, c.c.interval == interval, c.c.time > since)
            .order_by(c.c.time.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return list(reversed(list(conn.execute(q))))

    def public_trades(
        self, pair: str, since_ns: int, count: int, *, newest: bool = False
    ) -> list[Row[Any]]:
        """Trades of `pair` after `since_ns`, oldest first: one row per trade (the taker's
        side), with the taker order's type. The first `count` of them, or with `newest`
        the last `count`."""
        t, o = s.trades, s.orders
        q = (
            select(t.c.trade_id, t.c.price, t.c.qty, t.c.side, t.c.ts, o.c.ordertype)
            .join(o, o.c.order_id == t.c.order_id)
            .where(t.c.pair == pair, t.c.maker.is_(False), t.c.ts > since_ns)
            .order_by(t.c.trade_id.desc() if newest else t.c.trade_id)
            .limit(count)
        )
        with self.engine.connect() as conn:
            rows: list[Row[Any]] = list(conn.execute(q))
        return rows[::-1] if newest else rows

    def last_trade(self, pair: str) -> tuple[int, int] | None:
        """(price, qty) of the pair's last trade."""
        t = s.trades
        q = (
            select(t.c.price, t.c.qty)
            .where(t.c.pair == pair, t.c.maker.is_(False))
            .order_by(t.c.trade_id.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        return None if row is None else (int(row.price), int(row.qty))

    def ledger(
        self,
        account: int,
        *,
        ids: list[int] | None = None,
        assets: list[str] | None = None,
        kind: str | None = None,
        offset: int = 0,
    ) -> tuple[list[Row[Any]], int]:
        """The account's ledger entries, newest first (a page of PAGE), and their count."""
        g = s.ledger
        where = [g.c.account == account]
        if ids is not None:
            where.append(g.c.ledger_id.in_(ids))
        if assets:
            where.append(g.c.asset.in_(assets))
        if kind:
            where.append(g.c.type == kind)
        q = select(g).where(*where).order_by(g.c.ledger_id.desc()).offset(offset).limit(PAGE)
        with self.engine.connect() as conn:
            rows = list(conn.execute(q))
            count = int(conn.scalar(select(func.count()).select_from(g).where(*where)) or 0)
        return rows, count

    def funding(
        self,
        account: int | None,
        kind: str,
        *,
        asset: str | None = None,
        start_ns: int = 0,
        end_ns: int | None = None,
        status: str | None = None,
        before_seq: int | None = None,
        limit: int = PAGE,
    ) -> list[Row[Any]]:
        """Deposits or withdrawals (`kind`), newest first; every account's when None."""
        f = s.funding
        where = [f.c.kind == kind, f.c.opened_ts >= start_ns]
        if account is not None:
            where.append(f.c.account == account)
        if asset is not None:
            where.append(f.c.asset == asset)
        if end_ns is not None:
            where.append(f.c.opened_ts <= end_ns)
        if status is not None:
            where.append(f.c.status == status)
        if before_seq is not None:
            where.append(f.c.seq < before_seq)
        q = select(f).where(*where).order_by(f.c.seq.desc()).limit(limit)
        with self.engine.connect() as conn:
            return list(conn.execute(q))

    def trades_by_id(self, account: int, ids: list[int]) -> list[Row[Any]]:
        t, o = s.trades, s.orders
        q = (
            select(t, o.c.ordertype)
            .join(o, o.c.order_id == t.c.order_id)
            .where(t.c.account == account, t.c.trade_id.in_(ids))
        )
        with self.engine.connect() as conn:
            return list(conn.execute(q))

    def ledger_entry(self, row: Row[Any]) -> dict[str, Any]:
        """Kraken's ledger entry: ``amount`` before the fee, so that the balance is the
        previous one + amount - fee (the row's amount has the fee taken off already)."""
        asset = self.config.asset(row.asset)
        return {
            "refid": format_id("T", row.ref_id) if row.type == "trade" else row.ref,
            "time": seconds(row.ts),
            "type": row.type,
            "subtype": "",
            "aclass": "currency",
            "asset": row.asset,
            "amount": format_units(row.amount + row.fee, asset.units, asset.decimals),
            "fee": format_units(row.fee, asset.units, asset.decimals),
            "balance": format_units(row.balance, asset.units, asset.decimals),
        }

    def order_pair(self, account: int, order_id: int, cl_ord_id: str | None) -> str | None:
        o = s.orders
        where = [o.c.account == account]
        where.append(o.c.cl_ord_id == cl_ord_id if cl_ord_id else o.c.order_id == order_id)
        with self.engine.connect() as conn:
            pair = conn.scalar(select(o.c.pair).where(*where).order_by(o.c.order_id.desc()))
        return None if pair is None else str(pair)

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ formatting
    def _quote(self, pair: PairSpec, units: int) -> str:
        return format_units(units, self.config.assets[pair.quote].units, pair.cost_decimals)

    def _fee(self, pair: PairSpec, units: int, in_base: bool) -> str:
        asset = self.config.assets[pair.base if in_base else pair.quote]
        return format_units(units, asset.units, asset.decimals)

    def _avg_price(self, pair: PairSpec, cost: int, lots: int) -> str:
        if not lots:
            return format_units(0, pair.pair_decimals)
        return format_units(cost // (lots * pair.quote_per_pq), pair.pair_decimals)

    def order(self, row: Row[Any], trades: list[str] | None = None) -> dict[str, Any]:
        pair = self.pairs[row.pair]
        price = format_units(row.price, pair.pair_decimals)
        price2 = format_units(row.price2, pair.pair_decimals)
        vol = format_units(row.qty, pair.lot_decimals)
        text = describe(pair, row.side, row.ordertype, vol, price, price2)
        flags = ["fcib" if row.fee_in_base else "fciq"] + (["post"] if row.post_only else [])
        out: dict[str, Any] = {
            "refid": None,
            "userref": row.userref,
            "status": row.status,
            "opentm": seconds(row.opened_ts),
            "starttm": 0,
            "expiretm": seconds(row.expire_ts) if row.expire_ts else 0,
            "descr": {
                "pair": pair.altname,
                "type": row.side,
                "ordertype": row.ordertype,
                "price": price if row.ordertype != "market" else "0",
                "price2": price2,
                "leverage": "none",
                "order": text,
                "close": "",
            },
            "vol": vol,
            "vol_exec": format_units(row.filled, pair.lot_decimals),
            "cost": self._quote(pair, row.cost),
            "fee": self._fee(pair, row.fee, row.fee_in_base),
            "price": self._avg_price(pair, row.cost, row.filled),
            "stopprice": format_units(row.trigger_price, pair.pair_decimals),
            "limitprice": price2 if row.ordertype.endswith("-limit") else price,
            "misc": "amended" if row.amends else "",
            "oflags": ",".join(flags),
        }
        if row.cl_ord_id is not None:
            out["cl_ord_id"] = row.cl_ord_id
        if row.status in CLOSED:
            out["closetm"] = seconds(row.closed_ts)
            out["reason"] = row.reason or None
        if trades is not None:
            out["trades"] = trades
        return out

    def trade(self, row: Row[Any]) -> dict[str, Any]:
        pair = self.pairs[row.pair]
        return {
            "ordertxid": format_id("O", row.order_id),
            "postxid": format_id("P", row.trade_id),
            "pair": pair.id,
            "time": seconds(row.ts),
            "type": row.side,
            "ordertype": row.ordertype,
            "price": format_units(row.price, pair.pair_decimals),
            "cost": self._quote(pair, row.cost),
            "fee": self._fee(pair, row.fee, row.fee_in_base),
            "vol": format_units(row.qty, pair.lot_decimals),
            "margin": self._quote(pair, 0),
            "leverage": "0",
            "misc": "",
            "trade_id": row.trade_id,
            "maker": bool(row.maker),
        }
