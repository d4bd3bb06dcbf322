"""Kraken's private REST methods (``/0/private/<Method>``) for one authenticated account.
Each method names the permission it needs; the app checks it before calling."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cambio.model.config import MarketConfig
from cambio.model.decimals import format_units
from cambio.runtime.host import EngineHost

Params = dict[str, Any]


@dataclass(frozen=True)
class Method:
    permission: str
    run: Callable[[int, Params], Awaitable[Any]]


class PrivateApi:
    def __init__(self, config: MarketConfig, host: Callable[[], EngineHost]) -> None:
        self.config = config
        self.host = host
        self.methods: dict[str, Method] = {
            "Balance": Method("query_funds", self.balance),
            "BalanceEx": Method("query_funds", self.balance_ex),
        }

    def _amount(self, asset_id: str, units: int) -> str:
        spec = self.config.asset(asset_id)
        return format_units(units, spec.units, spec.decimals)

    async def balance(self, account: int, params: Params) -> Any:
        """Per asset: the balance, orders' holds included, pending withdrawals excluded."""
        held = self.host().query("balances", account)
        return {a: self._amount(a, avail + trade) for a, (avail, trade, _) in held.items()}

    async def balance_ex(self, account: int, params: Params) -> Any:
        held = self.host().query("balances", account)
        return {
            a: {"balance": self._amount(a, avail + trade), "hold_trade": self._amount(a, trade)}
            for a, (avail, trade, _) in held.items()
        }
