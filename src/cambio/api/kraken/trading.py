"""Trading steps shared by the REST and WebSocket APIs: run a command and surface the
engine's refusal as Kraken's error, amend an order given decimal text, arm the dead
man's switch. Each protocol only shapes the request and the answer."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from cambio.api.kraken.errors import KrakenError
from cambio.api.kraken.history import History
from cambio.api.kraken.orders import invalid
from cambio.model.commands import AmendOrder, CancelAllAfter, Command
from cambio.model.config import MarketConfig
from cambio.model.decimals import DecimalFormatError, to_units
from cambio.model.events import (
    CommandRejected,
    DeadManSwitch,
    Event,
    OrderAmended,
    OrderRejected,
)

Execute = Callable[[Command], Awaitable[tuple[int, list[Event]]]]
AMEND_FIELDS = ("order_qty", "display_qty", "limit_price", "trigger_price")


class Trading:
    def __init__(
        self,
        config: MarketConfig,
        execute: Execute,
        current: Callable[[], Awaitable[None]],
        history: History,
    ) -> None:
        self.config = config
        self.execute = execute
        self.current = current
        self.history = history

    async def run(self, cmd: Command) -> list[Event]:
        """The command's events once durable and applied; a refusal raises its error."""
        _, events = await self.execute(cmd)
        for ev in events:
            if isinstance(ev, OrderRejected | CommandRejected):
                raise KrakenError(ev.error)
        return events

    async def amend(
        self,
        account: int,
        order_id: int,
        cl_ord_id: str | None,
        values: dict[str, Any],
        post_only: bool,
    ) -> OrderAmended:
        """Amend with Kraken's decimal fields (AMEND_FIELDS; absent or empty: unchanged),
        converted with the order's own pair's decimals."""
        await self.current()
        pair_id = self.history.order_pair(account, order_id, cl_ord_id)
        if pair_id is None:
            raise KrakenError("EOrder:Unknown order")
        pair = self.config.pair(pair_id)
        fields: dict[str, int] = {}
        for name in AMEND_FIELDS:
            if values.get(name) in (None, ""):
                continue
            decimals = pair.lot_decimals if name.endswith("qty") else pair.pair_decimals
            try:
                fields[name] = to_units(str(values[name]), decimals)
            except DecimalFormatError:
                raise invalid(name) from None
            if fields[name] <= 0:
                raise invalid(name)
        cmd = AmendOrder(
            account=account, order_id=order_id, cl_ord_id=cl_ord_id, post_only=post_only, **fields
        )
        amended = [ev for ev in await self.run(cmd) if isinstance(ev, OrderAmended)]
        if not amended:
            raise KrakenError("EOrder:Unknown order")
        return amended[0]

    async def cancel_all_after(self, account: int, timeout: Any) -> tuple[int, int]:
        """Arm (or with 0, disarm) the dead man's switch: (now, trigger time or 0) in ns."""
        try:
            seconds = int(str(timeout))
        except ValueError:
            raise invalid("timeout") from None
        if not 0 <= seconds < 86400:
            raise invalid("timeout")
        events = await self.run(CancelAllAfter(account=account, timeout_s=seconds))
        armed = [ev.trigger_ts for ev in events if isinstance(ev, DeadManSwitch)]
        return time.time_ns(), armed[0] if armed else 0
