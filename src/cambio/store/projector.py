"""ReadModels: the engine's event stream projected into SQL tables (cambio.store.schema).

The runtime hands it batches of ``(seq, ts, events)``, one item per sequenced command, in
ascending order. A batch is folded in memory first (cambio.store.fold) and then written in
one transaction that also records the new ``last_seq``, so a batch is all or nothing and
re-applying anything already projected is a no-op: projection is idempotent by sequence
number, and any split of the stream into batches gives the same tables.

Between batches the projector keeps what the next batch starts from (open orders, running
balances, last trade prices) in memory, loading it from the tables on a miss, so a restart
just carries on from ``last_seq``. A database whose stored schema version is not
cambio.store.schema.SCHEMA_VERSION is dropped and rebuilt (last_seq 0): the runtime then
projects it again from the journal.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, case, insert, select, update

from cambio.crashpoints import crashpoint
from cambio.model.config import MarketConfig
from cambio.model.events import Event
from cambio.store import schema as s
from cambio.store.fold import Caches, Fold, ProjectionError, Row
from cambio.store.sql import Excluded, SetClause, Statements, connect
from cambio.store.valuation import UsdValuation

log = logging.getLogger("cambio.store")

Item = tuple[int, int, Sequence[Event]]

# order columns an event can change after the order was accepted
_ORDER_CHANGES = (
    "price", "price2", "trigger_price", "qty", "display_qty", "filled", "cost", "fee",
    "trades", "status", "reason", "triggered_ts", "closed_seq", "closed_ts", "amends",
    "amend_id",
)  # fmt: skip
_ORDER_COLUMNS = tuple(s.orders.columns.keys())
_UPDATE_ORDER = update(s.orders).where(s.orders.c.order_id == bindparam("b_order_id"))
_STATE = s.projection_state
_LAST_SEQ = select(_STATE.c.last_seq).where(_STATE.c.id == 1)
_SET_LAST = update(_STATE).where(_STATE.c.id == 1)


class _Loader:
    """Reads the state a batch starts from, inside the batch's transaction."""

    def __init__(self, conn: Connection, config: MarketConfig) -> None:
        self.conn = conn
        self.config = config

    def order(self, order_id: int) -> Row | None:
        q = select(s.orders).where(s.orders.c.order_id == order_id)
        row = self.conn.execute(q).mappings().first()
        return dict(row) if row is not None else None

    def balance(self, account: int, asset: str) -> int:
        b = s.balances.c
        q = select(b.balance).where(b.account == account, b.asset == asset)
        return self.conn.scalar(q) or 0

    def funding(self, refid: str) -> Row | None:
        row = self.conn.execute(select(s.funding).where(s.funding.c.refid == refid))
        found = row.mappings().first()
        return dict(found) if found is not None else None

    def last_prices(self) -> list[int]:
        t = s.trades.c
        out = []
        for p in self.config.pairs:
            q = select(t.price).where(t.pair == p.id).order_by(t.trade_id.desc()).limit(1)
            out.append(self.conn.scalar(q) or 0)
        return out


def _candle_merge(ex: Excluded) -> dict[str, Any]:
    c = s.ohlc.c
    return {
        "high": case((ex.high > c.high, ex.high), else_=c.high),
        "low": case((ex.low < c.low, ex.low), else_=c.low),
        "close": ex.close,
        "volume": c.volume + ex.volume,
        "pv": c.pv + ex.pv,
        "count": c.count + ex.count,
    }


def _volume_merge(ex: Excluded) -> dict[str, Any]:
    c = s.volumes.c
    return {
        "quote_volume": c.quote_volume + ex.quote_volume,
        "usd_volume": c.usd_volume + ex.usd_volume,
        "count": c.count + ex.count,
    }


def _replace(*cols: str) -> SetClause:
    return lambda ex: {name: getattr(ex, name) for name in cols}


class ReadModels:
    """The read models in the database at `url` (created if missing). One writer at a time:
    the runtime's projection thread, or `cambio rebuild` with the server stopped."""

    def __init__(self, url: str, config: MarketConfig) -> None:
        self.config = config
        self.engine = connect(url)
        self.sql = Statements(self.engine.dialect)
        self.valuation = UsdValuation(config)
        self.caches = Caches()
        self._create()

    def _create(self) -> None:
        s.metadata.create_all(self.engine)
        with self.engine.begin() as conn:
            version = conn.scalar(select(_STATE.c.version).where(_STATE.c.id == 1))
            if version is None:
                conn.execute(
                    insert(_STATE).values(id=1, version=s.SCHEMA_VERSION, last_seq=0, last_ts=0)
                )
                return
        if version != s.SCHEMA_VERSION:
            log.warning(
                "read models: schema %s, expected %s: rebuilding", version, s.SCHEMA_VERSION
            )
            self.reset()

    def last_seq(self) -> int:
        """The highest sequence number projected (0 if none)."""
        with self.engine.connect() as conn:
            return int(conn.scalar(_LAST_SEQ) or 0)

    def apply(self, batch: Sequence[Item]) -> int:
        """Project the items of `batch` not projected yet, in one transaction; return the
        new last_seq. Items must follow on from last_seq without a gap."""
        with self.engine.begin() as conn:
            last = int(conn.scalar(_LAST_SEQ) or 0)
            items = [item for item in batch if item[0] > last]
            if not items:
                return last
            for k, item in enumerate(items):
                if item[0] != last + 1 + k:
                    raise ProjectionError(
                        f"sequence {item[0]} does not follow {last + k} (projected up to {last})"
                    )
            fold = Fold(self.config, self.valuation, self.caches, _Loader(conn, self.config))
            fold.run(items)
            self._write(conn, fold)
            seq, ts = items[-1][0], items[-1][1]
            conn.execute(_SET_LAST, {"last_seq": seq, "last_ts": ts})
            crashpoint("projection.applying")  # rows written, transaction not committed
        fold.commit()
        return seq

    def _write(self, conn: Connection, fold: Fold) -> None:
        new: list[tuple[Any, ...]] = []
        changed: list[Row] = []
        for order_id, row in fold.orders.items():
            if order_id in fold.new_orders:
                new.append(tuple(row[name] for name in _ORDER_COLUMNS))
            else:
                change = {name: row[name] for name in _ORDER_CHANGES}
                change["b_order_id"] = order_id
                changed.append(change)
        sql = self.sql
        sql.insert(conn, s.orders, new)
        if changed:
            conn.execute(_UPDATE_ORDER, changed)
        sql.insert(conn, s.trades, fold.trades)
        sql.insert(conn, s.ledger, fold.ledger)
        sql.upsert(
            conn, s.balances, ("account", "asset"), fold.balance_rows(),
            _replace("balance", "ledger_id"),
        )  # fmt: skip
        sql.upsert(conn, s.ohlc, ("pair", "interval", "time"), fold.candles(), _candle_merge)
        sql.upsert(conn, s.volumes, ("account", "day", "pair"), fold.volume_rows(), _volume_merge)
        sql.upsert(
            conn, s.fee_tiers, ("account",), list(fold.fee_tiers.values()),
            _replace("volume", "maker_ppm", "taker_ppm", "seq", "ts"),
        )  # fmt: skip
        sql.upsert(
            conn, s.funding, ("refid",), list(fold.funding.values()),
            _replace("status", "status_prop", "txid", "closed_ts"),
        )  # fmt: skip

    def reset(self) -> None:
        """Drop and recreate every table: the read models start again from sequence 0."""
        s.metadata.drop_all(self.engine)
        self.caches.clear()
        self._create()

    def close(self) -> None:
        self.engine.dispose()
