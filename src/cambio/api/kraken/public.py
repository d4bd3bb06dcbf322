"""Kraken's public REST methods (``/0/public/<Method>``), answered from the market
configuration and the live engine. Numbers are decimal strings with the pair's or the
asset's decimals, exactly as Kraken formats them."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from cambio.api.kraken.errors import KrakenError
from cambio.api.kraken.history import History
from cambio.api.kraken.market_data import MarketData
from cambio.api.kraken.params import integer, names
from cambio.model.config import AssetSpec, FeeTier, MarketConfig, PairSpec
from cambio.model.decimals import format_units
from cambio.runtime.host import EngineHost

Params = dict[str, Any]
Public = Callable[[Params], Awaitable[Any]]

UNKNOWN_PAIR = "EQuery:Unknown asset pair"
UNKNOWN_ASSET = "EQuery:Unknown asset"
# what SystemStatus may say (Kraken's four); limit_only is a pair status only
SYSTEM_STATUS = {"limit_only": "online"}


def rfc3339(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def percent(ppm: int) -> float:
    return ppm / 10_000


class PublicApi:
    def __init__(
        self,
        config: MarketConfig,
        host: Callable[[], EngineHost],
        history: History,
        current: Callable[[], Awaitable[None]],
        advisories: Callable[[], dict[str, list[dict[str, Any]]]] | None = None,
    ) -> None:
        self.config = config
        self.host = host
        self.advisories = advisories  # the status page's maintenance and incidents
        data = MarketData(config, host, history, current, self.pair)
        usd = config.usd_asset
        self.usd_scale = 10 ** config.assets[usd].decimals if usd >= 0 else 1
        self.methods: dict[str, Public] = {
            "Time": self.time,
            "SystemStatus": self.system_status,
            "Assets": self.assets,
            "AssetPairs": self.asset_pairs,
            "Depth": self.depth,
            "Ticker": data.ticker,
            "OHLC": data.ohlc,
            "Trades": data.trades,
            "Spread": data.spread,
        }

    def _fees(self, tiers: tuple[FeeTier, ...]) -> list[list[float | int]]:
        """[[30-day USD volume, percent], ...] (tier volumes are in USD asset units)."""
        return [[t.volume // self.usd_scale, percent(t.ppm)] for t in tiers]

    # ------------------------------------------------------------------ lookups
    def pair(self, name: str) -> PairSpec:
        try:
            return self.config.pair(name)
        except KeyError:
            raise KrakenError(UNKNOWN_PAIR) from None

    def asset(self, name: str) -> AssetSpec:
        try:
            return self.config.asset(name)
        except KeyError:
            raise KrakenError(UNKNOWN_ASSET) from None

    # ------------------------------------------------------------------ methods
    async def time(self, params: Params) -> Any:
        now = time.time()
        return {
            "unixtime": int(now),
            "rfc1123": time.strftime("%a, %d %b %y %H:%M:%S +0000", time.gmtime(now)),
        }

    async def system_status(self, params: Params) -> Any:
        """The engine's mode, and beside it what the status page announces (scheduled
        maintenance within 72 h, open incidents), as Kraken's SystemStatus does."""
        mode = self.host().query("status")["global"]
        out = {"status": SYSTEM_STATUS.get(mode, mode), "timestamp": rfc3339(time.time_ns())}
        if self.advisories is not None:
            out |= self.advisories()
        return out

    async def assets(self, params: Params) -> Any:
        wanted = [self.asset(n) for n in names(params, "asset")] or list(self.config.assets)
        funding = self.host().query("status")["funding"]
        out = {}
        for a in wanted:
            deposits, withdrawals = funding[a.id]
            status = (
                "enabled"
                if deposits and withdrawals
                else "deposit_only"
                if deposits
                else "withdrawal_only"
                if withdrawals
                else "funding_temporarily_disabled"
            )
            out[a.id] = {
                "aclass": "currency",
                "altname": a.altname,
                "decimals": a.decimals,
                "display_decimals": a.display_decimals,
                "status": status,
            }
        return out

    async def asset_pairs(self, params: Params) -> Any:
        asked = names(params, "pair")
        wanted = [self.pair(n) for n in asked] or list(self.config.pairs)
        # keyed by id, except a pair asked for in the v2 slash form ("BTC/USD"), which Kraken
        # echoes (python-kraken-sdk's order book looks its pair up by that key)
        keys = {p.id: n if "/" in n else p.id for p, n in zip(wanted, asked, strict=False)}
        modes = self.host().query("status")["markets"]
        assets = self.config.assets
        usd = assets[self.config.usd_asset].id if self.config.usd_asset >= 0 else "ZUSD"
        out = {}
        for p in wanted:
            out[keys.get(p.id, p.id)] = {
                "altname": p.altname,
                "wsname": p.wsname,
                "aclass_base": "currency",
                "base": assets[p.base].id,
                "aclass_quote": "currency",
                "quote": assets[p.quote].id,
                "lot": "unit",
                "cost_decimals": p.cost_decimals,
                "pair_decimals": p.pair_decimals,
                "lot_decimals": p.lot_decimals,
                "lot_multiplier": 1,
                "leverage_buy": list(p.leverage_buy),
                "leverage_sell": list(p.leverage_sell),
                "fees": self._fees(p.taker_tiers),
                "fees_maker": self._fees(p.maker_tiers),
                "fee_volume_currency": usd,
                "margin_call": p.margin_call,
                "margin_stop": p.margin_stop,
                "ordermin": p.ordermin_text,
                "costmin": p.costmin_text,
                "tick_size": p.tick_size_text,
                "status": modes[p.id],
            }
        return out

    async def depth(self, params: Params) -> Any:
        p = self.pair(str(params.get("pair") or ""))
        count = max(1, min(integer(params, "count", 100), 500))
        host = self.host()
        book = host.query("depth", p.id, count)
        ts = int(host.query("status")["ts"] // 1_000_000_000)

        def side(levels: list[list[int]]) -> list[list[Any]]:
            return [
                [format_units(price, p.pair_decimals), format_units(qty, p.lot_decimals), ts]
                for price, qty in levels
            ]

        return {p.id: {"asks": side(book["asks"]), "bids": side(book["bids"])}}
