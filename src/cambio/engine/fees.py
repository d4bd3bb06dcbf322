"""Fee tiers by 30-day USD volume, and time-bound fee promotions."""

from __future__ import annotations

import msgspec

from cambio.model.config import FeeTier


def tier_rate(tiers: tuple[FeeTier, ...], volume: int) -> tuple[int, int]:
    """(ppm, next tier's volume or 0 at the top) for a 30-day volume."""
    rate, nxt = tiers[0].ppm, 0
    for t in tiers:
        if volume >= t.volume:
            rate = t.ppm
        else:
            nxt = t.volume
            break
    return rate, nxt


class Promotion(msgspec.Struct, kw_only=True):
    """A fee promotion: caps maker/taker rates for the trades it covers, while active."""

    promo_id: str
    maker_ppm: int
    taker_ppm: int
    start_ts: int
    end_ts: int
    scope: str  # spot, margin or all
    pairs: list[int]  # pair indexes; empty: all pairs
    accounts: list[int]  # empty: all accounts
    reason: str
    state: str = "scheduled"  # scheduled, active, ended


def promo_rate(promos: list[Promotion], account: int, rate: int, maker: bool) -> int:
    """The rate after the active promotions covering `account` (the lowest applies)."""
    for p in promos:
        if not p.accounts or account in p.accounts:
            cap = p.maker_ppm if maker else p.taker_ppm
            if cap < rate:
                rate = cap
    return rate
