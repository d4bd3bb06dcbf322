"""A trade's cost in USD, as the engine counts it for fee volume.

The events carry each trade's cost in its quote asset but not its USD value, so this
module repeats the engine's rule (cambio.engine.exchange, ``_link_usd_valuation`` and
``_usd_value``) from the trades alone: USD-quoted markets count their cost; a market quoted
in an asset Q with a Q/USD market counts cost x last Q/USD price; otherwise (a cross, like
XBT/EUR) cost x last B/USD price / last B/Q price for an asset B with both markets. Last
prices are the last trade prices, which every trade event updates in order. Each trade is
rounded down on its own, as the engine does, so per-day sums equal the engine's.

If an engine version values volume differently, this module must follow (the tests compare
the 30-day sums with the engine's own figure).
"""

from __future__ import annotations

from collections.abc import Sequence

from cambio.model.config import MarketConfig

NONE, QUOTE, VIA, CROSS = range(4)


class UsdValuation:
    """Per pair: how its cost is valued, from which markets' last prices, at what scale."""

    def __init__(self, config: MarketConfig) -> None:
        n = len(config.pairs)
        self.kind = [NONE] * n
        self.via = [-1] * n
        self.den = [-1] * n
        self.scale = [0] * n
        usd = config.usd_asset
        if usd < 0:
            return
        assets, pairs = config.assets, config.pairs
        usd_dp = assets[usd].decimals
        for i, spec in enumerate(pairs):
            q_units = assets[spec.quote].units
            if spec.quote == usd:
                self.kind[i], self.scale[i] = QUOTE, usd_dp - q_units
                continue
            ref = next((r for r in pairs if r.base == spec.quote and r.quote == usd), None)
            if ref is not None:
                self.kind[i], self.via[i] = VIA, ref.index
                self.scale[i] = usd_dp - q_units - ref.pair_decimals
                continue
            for via in pairs:
                if via.quote != usd:
                    continue
                den = next((d for d in pairs if d.base == via.base and d.quote == spec.quote), None)
                if den is not None:
                    self.kind[i], self.via[i], self.den[i] = CROSS, via.index, den.index
                    self.scale[i] = usd_dp - q_units + den.pair_decimals - via.pair_decimals
                    break

    def value(self, pair: int, cost: int, last: Sequence[int]) -> int:
        """The USD value of `cost` (quote units of `pair`), given every pair's last trade
        price with this trade's own price already counted; 0 without a reference."""
        kind = self.kind[pair]
        if kind == NONE:
            return 0
        v = cost if kind == QUOTE else cost * last[self.via[pair]]
        den = 1
        if kind == CROSS:
            den = last[self.den[pair]]
            if not den:
                return 0
        s = self.scale[pair]
        if s >= 0:
            return v * int(10**s) // den
        return v // (den * int(10 ** (-s)))
