"""Accounts: available and held balances per asset, fee tier and 30-day volume."""

from __future__ import annotations

import msgspec

from cambio.engine.order import Order


class Account(msgspec.Struct, kw_only=True):
    """One account. Balances are lists indexed by asset index (asset units)."""

    account_id: int
    avail: list[int]
    held: list[int]
    orders: dict[int, Order] = {}  # open and pending orders by id
    maker_ppm: int = 0  # current tier rates (before promotions)
    taker_ppm: int = 0
    next_tier_volume: int = 0  # 30-day volume at which the tier improves (0: top tier)
    volume30: int = 0  # USD units traded over the last 30 days (today included)
    volume_days: dict[int, int] = {}  # day number -> USD units traded that day
    dms_ts: int = 0  # dead man's switch deadline (ns); 0: disarmed

    def balance(self, asset: int) -> int:
        return self.avail[asset] + self.held[asset]
