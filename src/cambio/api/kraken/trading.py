"""Trading steps shared by the REST and WebSocket APIs: place, batch, amend, edit and
cancel orders, arm the dead man's switch, each charged to the trading rate counter and
with the engine's refusal surfaced as Kraken's error. Each protocol only shapes the
request and the answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from cambio.api.kraken.errors import KrakenError
from cambio.api.kraken.history import OPEN, History
from cambio.api.kraken.limits import RateLimits
from cambio.api.kraken.orders import add_order, invalid
from cambio.api.kraken.params import optional_integer
from cambio.model.commands import (
    AddOrder,
    AmendOrder,
    CancelAll,
    CancelAllAfter,
    CancelOrder,
    Command,
)
from cambio.model.config import MarketConfig
from cambio.model.decimals import DecimalFormatError, to_units
from cambio.model.errors import INSUFFICIENT_FUNDS
from cambio.model.events import (
    CommandRejected,
    DeadManSwitch,
    Event,
    OrderAccepted,
    OrderAmended,
    OrderClosed,
    OrderRejected,
)
from cambio.model.ids import parse_id

Execute = Callable[[Command], Awaitable[tuple[int, list[Event]]]]
UNKNOWN_ORDER = "EOrder:Unknown order"
EDITABLE = ("volume", "price", "price2", "oflags", "userref", "validate", "displayvol")


@dataclass
class Edit:
    """A legacy edit's outcome: the new order (None if only validated), its description
    and the AddOrder fields it was placed with."""

    accepted: OrderAccepted | None
    text: str
    fields: dict[str, Any]


AMEND_FIELDS = ("order_qty", "display_qty", "limit_price", "trigger_price")


class Trading:
    def __init__(
        self,
        config: MarketConfig,
        execute: Execute,
        current: Callable[[], Awaitable[None]],
        history: History,
        limits: RateLimits,
    ) -> None:
        self.config = config
        self.execute = execute
        self.current = current
        self.history = history
        self.limits = limits

    async def run(self, cmd: Command) -> list[Event]:
        """The command's events once durable and applied; a refusal raises its error."""
        _, events = await self.execute(cmd)
        for ev in events:
            if isinstance(ev, OrderRejected | CommandRejected):
                raise KrakenError(ev.error)
        return events

    async def place(self, cmd: AddOrder) -> OrderAccepted | None:
        """Place an order: its acceptance, or None when it was only validated."""
        pair = self.config.pair(cmd.pair).index
        self.limits.add(cmd.account, pair)
        accepted = _accepted(await self.run(cmd))
        if accepted is not None:
            self.limits.placed(accepted.order_id, pair)
        return accepted

    async def place_batch(self, cmds: list[AddOrder]) -> list[OrderAccepted | KrakenError | None]:
        """Place orders of one pair together (one group commit, in request order); each
        entry is its acceptance (None if only validated) or its own refusal."""
        if not cmds:
            return []
        pair = self.config.pair(cmds[0].pair).index
        self.limits.add(cmds[0].account, pair, len(cmds))
        results = await asyncio.gather(*(self.run(c) for c in cmds), return_exceptions=True)
        out: list[OrderAccepted | KrakenError | None] = []
        for result in results:
            if isinstance(result, KrakenError):
                out.append(result)
            elif isinstance(result, BaseException):
                raise result
            else:
                accepted = _accepted(result)
                if accepted is not None:
                    self.limits.placed(accepted.order_id, pair)
                out.append(accepted)
        return out

    async def edit(self, account: int, order_id: int, params: dict[str, Any]) -> Edit:
        """Legacy EditOrder: cancel the open order and place a new one (new id, back of the
        queue) with the given AddOrder fields (EDITABLE) over the old one's. The engine
        checks the new order before the old one is cancelled, so a bad edit changes
        nothing; only funds are not checked first, as the old order still holds them."""
        await self.current()
        rows, _ = self.history.orders(account, OPEN, ids=[order_id])
        if not rows:
            raise KrakenError(UNKNOWN_ORDER)
        old = self.history.order(rows[0])
        descr = old["descr"]
        fields: dict[str, Any] = {
            "pair": rows[0].pair, "type": descr["type"], "ordertype": descr["ordertype"],
            "volume": old["vol"], "price": descr["price"], "oflags": old["oflags"],
        }  # fmt: skip
        if descr["ordertype"].endswith("-limit"):
            fields["price2"] = descr["price2"]
        if old.get("userref") is not None:
            fields["userref"] = old["userref"]
        fields |= {k: params[k] for k in EDITABLE if params.get(k) not in (None, "")}
        if params.get("pair") not in (None, ""):
            try:
                same = self.config.pair(str(params["pair"])).id == rows[0].pair
            except KeyError:
                raise KrakenError("EQuery:Unknown asset pair") from None
            if not same:
                raise invalid("pair")
        cmd, text = add_order(self.config, account, fields)
        try:
            await self.run(msgspec.structs.replace(cmd, validate=True))
        except KrakenError as exc:
            if exc.errors != [INSUFFICIENT_FUNDS]:
                raise
        if cmd.validate:
            return Edit(None, text, fields)
        self.limits.amend(account, order_id, self.config.pair(cmd.pair).index, edit=True)
        if not await self.cancel(CancelOrder(account=account, order_id=order_id)):
            raise KrakenError(UNKNOWN_ORDER)
        accepted = await self.place(cmd)
        return Edit(accepted, text, fields)

    async def cancel(self, cmd: CancelOrder) -> int:
        """Cancel one order (or all with a userref); how many closed."""
        if cmd.order_id:
            self.limits.cancel(cmd.account, [cmd.order_id])
        return _closed(await self.run(cmd))

    async def cancel_many(self, account: int, cmds: list[CancelOrder]) -> int:
        """Cancel several orders at once; how many closed. Unknown ones are skipped."""
        self.limits.cancel(account, [c.order_id for c in cmds if c.order_id])
        results = await asyncio.gather(*(self.run(c) for c in cmds), return_exceptions=True)
        count = 0
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, KrakenError):
                raise result
            if isinstance(result, list):
                count += _closed(result)
        return count

    async def cancel_all(self, account: int) -> int:
        return _closed(await self.run(CancelAll(account=account)))

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
            raise KrakenError(UNKNOWN_ORDER)
        pair = self.config.pair(pair_id)
        self.limits.amend(account, order_id, pair.index)
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
            raise KrakenError(UNKNOWN_ORDER)
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


def order_id_of(txid: Any) -> int:
    """The order a txid names; text that is no order id names no order."""
    try:
        return parse_id("O", str(txid))
    except ValueError:
        raise KrakenError(UNKNOWN_ORDER) from None


def cancel_command(account: int, ref: Any, name: str) -> CancelOrder:
    """Cancel by txid, or by userref when `ref` is digits (Kraken's 32-bit userref;
    anything wider is refused as parameter `name`)."""
    text = str(ref).strip()
    if text.lstrip("-").isascii() and text.lstrip("-").isdigit():
        userref = optional_integer({name: text}, name)
        if userref is None or not -(2**31) <= userref < 2**31:
            raise invalid(name)
        return CancelOrder(account=account, userref=userref)
    return CancelOrder(account=account, order_id=order_id_of(text))


def _accepted(events: list[Event]) -> OrderAccepted | None:
    return next((ev for ev in events if isinstance(ev, OrderAccepted)), None)


def _closed(events: list[Event]) -> int:
    return sum(isinstance(ev, OrderClosed) for ev in events)
