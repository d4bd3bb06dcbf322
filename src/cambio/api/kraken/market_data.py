"""Kraken's public market-data methods: Ticker, OHLC, Trades, Spread.

Trades and candles come from the read models (cambio.store); the touch (best bid and
ask) from the live engine. "Today" starts at 00:00 UTC; "last 24 hours" is built from
one-minute candles, so it is exact to the minute.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from cambio.api.kraken.errors import KrakenError
from cambio.api.kraken.history import History
from cambio.api.kraken.params import integer, names
from cambio.model.config import MarketConfig, PairSpec
from cambio.model.decimals import format_units
from cambio.runtime.host import EngineHost

Params = dict[str, Any]
INTERVALS = (1, 5, 15, 30, 60, 240, 1440, 10080, 21600)
NS_CURSOR = 10**15  # a `since` above this is a nanosecond cursor, below it Unix seconds


class MarketData:
    def __init__(
        self,
        config: MarketConfig,
        host: Callable[[], EngineHost],
        history: History,
        current: Callable[[], Awaitable[None]],
        pair: Callable[[str], PairSpec],
    ) -> None:
        self.config = config
        self.host = host
        self.history = history
        self.current = current
        self.pair = pair

    def _price(self, p: PairSpec, units: int) -> str:
        return format_units(units, p.pair_decimals)

    def _vol(self, p: PairSpec, lots: int) -> str:
        return format_units(lots, p.lot_decimals)

    async def ohlc(self, params: Params) -> Any:
        p = self.pair(str(params.get("pair") or ""))
        interval = integer(params, "interval", 1, fraction_ok=True)
        if interval not in INTERVALS:
            raise KrakenError("EGeneral:Invalid arguments:interval")
        since = integer(params, "since", 0, fraction_ok=True)
        await self.current()
        rows = self.history.candles(p.id, interval, since, 720)
        out = [
            [
                r.time,
                self._price(p, r.open),
                self._price(p, r.high),
                self._price(p, r.low),
                self._price(p, r.close),
                self._price(p, r.pv // r.volume if r.volume else r.close),
                self._vol(p, r.volume),
                r.count,
            ]
            for r in rows
        ]
        return {
            p.id: out,
            "last": rows[-1].time if rows else since,
        }

    async def trades(self, params: Params) -> Any:
        p = self.pair(str(params.get("pair") or ""))
        since = integer(params, "since", 0, fraction_ok=True)
        since_ns = since if since > NS_CURSOR else since * 1_000_000_000
        count = max(1, min(integer(params, "count", 1000, fraction_ok=True), 1000))
        await self.current()
        rows = self.history.public_trades(p.id, since_ns, count)
        out = [
            [
                self._price(p, r.price),
                self._vol(p, r.qty),
                round(r.ts / 1e9, 4),
                "b" if r.side == "buy" else "s",
                "m" if r.ordertype == "market" else "l",
                "",
                r.trade_id,
            ]
            for r in rows
        ]
        return {p.id: out, "last": str(rows[-1].ts if rows else since_ns)}

    async def spread(self, params: Params) -> Any:
        """The current spread only: cambio keeps no history of the touch."""
        p = self.pair(str(params.get("pair") or ""))
        book = self.host().query("depth", p.id, 1)
        now = int(time.time())
        if not book["bids"] or not book["asks"]:
            return {p.id: [], "last": now}
        bid, ask = book["bids"][0][0], book["asks"][0][0]
        return {p.id: [[now, self._price(p, bid), self._price(p, ask)]], "last": now}

    async def ticker(self, params: Params) -> Any:
        pairs = [self.pair(n) for n in names(params, "pair")] or list(self.config.pairs)
        await self.current()
        now = int(time.time())
        today = now - now % 86400
        return {p.id: self._ticker(p, now, today) for p in pairs}

    def _ticker(self, p: PairSpec, now: int, today: int) -> dict[str, Any]:
        candles = self.history.candles(p.id, 1, now - 86400, 1440)
        book = self.host().query("depth", p.id, 1)
        windows = ([c for c in candles if c.time >= today], candles)
        vol = [sum(c.volume for c in w) for w in windows]
        pv = [sum(c.pv for c in w) for w in windows]
        last = self.history.last_trade(p.id)
        last_price, last_qty = last or (0, 0)

        def touch(levels: list[list[int]]) -> list[str]:
            if not levels:
                return ["0", "0", "0"]
            price, lots = levels[0]
            whole = lots // 10**p.lot_decimals
            return [self._price(p, price), str(whole), self._vol(p, lots)]

        def extreme(w: list[Any], pick: Any, attr: str) -> str:
            return self._price(p, pick(getattr(c, attr) for c in w) if w else last_price)

        return {
            "a": touch(book["asks"]),
            "b": touch(book["bids"]),
            "c": [self._price(p, last_price), self._vol(p, last_qty)],
            "v": [self._vol(p, v) for v in vol],
            "p": [
                self._price(p, x // v if v else last_price) for x, v in zip(pv, vol, strict=True)
            ],
            "t": [sum(c.count for c in w) for w in windows],
            "l": [extreme(w, min, "low") for w in windows],
            "h": [extreme(w, max, "high") for w in windows],
            "o": self._price(p, windows[0][0].open if windows[0] else last_price),
        }
