"""Kraken's private REST methods (``/0/private/<Method>``) for one authenticated account.

Each method names the permission it needs; the app checks it before calling. Trading
methods become engine commands and answer once the command is durable and applied.
Queries of orders and trades read the read models, after waiting (briefly) until those
show every command applied so far: a client sees its own orders at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cambio.api.kraken.errors import KrakenError
from cambio.api.kraken.history import CLOSED, OPEN, PAGE, History
from cambio.api.kraken.orders import add_order, invalid
from cambio.api.kraken.params import flag, names
from cambio.model.commands import CancelAll, CancelOrder, Command
from cambio.model.config import MarketConfig
from cambio.model.decimals import format_units
from cambio.model.events import (
    CommandRejected,
    Event,
    OrderAccepted,
    OrderClosed,
    OrderRejected,
)
from cambio.model.ids import format_id, parse_id
from cambio.runtime.host import EngineHost

Params = dict[str, Any]


@dataclass(frozen=True)
class Method:
    permission: str
    run: Callable[[int, Params], Awaitable[Any]]


Execute = Callable[[Command], Awaitable[tuple[int, list[Event]]]]


class PrivateApi:
    def __init__(
        self,
        config: MarketConfig,
        host: Callable[[], EngineHost],
        execute: Execute,
        read_models_current: Callable[[], Awaitable[None]],
        history: History,
    ) -> None:
        self.config = config
        self.host = host
        self.execute = execute
        self.current = read_models_current
        self.history = history
        funds, orders, trade = "query_funds", "query_orders", "trade"
        self.methods: dict[str, Method] = {
            "Balance": Method(funds, self.balance),
            "BalanceEx": Method(funds, self.balance_ex),
            "AddOrder": Method(trade, self.add_order),
            "CancelOrder": Method(trade, self.cancel_order),
            "CancelAll": Method(trade, self.cancel_all),
            "OpenOrders": Method(orders, self.open_orders),
            "ClosedOrders": Method(orders, self.closed_orders),
            "QueryOrders": Method(orders, self.query_orders),
            "TradesHistory": Method(orders, self.trades_history),
        }

    # ------------------------------------------------------------------ funds
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

    # ------------------------------------------------------------------ trading
    async def _run(self, cmd: Command) -> list[Event]:
        _, events = await self.execute(cmd)
        for ev in events:
            if isinstance(ev, OrderRejected | CommandRejected):
                raise KrakenError(ev.error)
        return events

    async def add_order(self, account: int, params: Params) -> Any:
        cmd, text = add_order(self.config, account, params)
        events = await self._run(cmd)
        accepted = [ev for ev in events if isinstance(ev, OrderAccepted)]
        if not accepted:  # validate=true: checked, nothing placed, no txid
            return {"descr": {"order": text}}
        return {"descr": {"order": text}, "txid": [format_id("O", accepted[0].order_id)]}

    async def cancel_order(self, account: int, params: Params) -> Any:
        txid = str(params.get("txid") or "").strip()
        cl_ord_id = params.get("cl_ord_id") or None
        if cl_ord_id is not None:
            cmd = CancelOrder(account=account, cl_ord_id=str(cl_ord_id))
        elif txid.lstrip("-").isdigit():
            cmd = CancelOrder(account=account, userref=int(txid))
        else:
            try:
                cmd = CancelOrder(account=account, order_id=parse_id("O", txid))
            except ValueError:
                raise KrakenError("EOrder:Unknown order") from None
        events = await self._run(cmd)
        return {"count": sum(isinstance(ev, OrderClosed) for ev in events)}

    async def cancel_all(self, account: int, params: Params) -> Any:
        events = await self._run(CancelAll(account=account))
        return {"count": sum(isinstance(ev, OrderClosed) for ev in events)}

    # ------------------------------------------------------------------ queries
    def _filters(self, params: Params) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if params.get("userref") not in (None, ""):
            try:
                out["userref"] = int(params["userref"])
            except (TypeError, ValueError):
                raise invalid("userref") from None
        if params.get("cl_ord_id"):
            out["cl_ord_id"] = str(params["cl_ord_id"])
        return out

    def _orders(self, rows: list[Any], with_trades: bool) -> dict[str, Any]:
        trades = self.history.trade_ids([r.order_id for r in rows]) if with_trades else {}
        return {
            format_id("O", r.order_id): self.history.order(
                r, trades.get(r.order_id, []) if with_trades else None
            )
            for r in rows
        }

    async def open_orders(self, account: int, params: Params) -> Any:
        await self.current()
        rows, _ = self.history.orders(account, OPEN, **self._filters(params))
        return {"open": self._orders(rows, flag(params, "trades"))}

    async def closed_orders(self, account: int, params: Params) -> Any:
        await self.current()
        try:
            offset = int(params.get("ofs") or 0)
        except ValueError:
            raise invalid("ofs") from None
        rows, count = self.history.orders(
            account, CLOSED, offset=offset, limit=PAGE, **self._filters(params)
        )
        return {"closed": self._orders(rows, flag(params, "trades")), "count": count}

    async def query_orders(self, account: int, params: Params) -> Any:
        wanted = names(params, "txid")
        if not wanted or len(wanted) > 50:
            raise invalid("txid")
        ids = {}
        for txid in wanted:
            try:
                ids[txid] = parse_id("O", txid)
            except ValueError:
                raise KrakenError("EOrder:Invalid order") from None
        await self.current()
        rows, _ = self.history.orders(
            account, OPEN + CLOSED, ids=list(ids.values()), **self._filters(params)
        )
        found = self._orders(rows, flag(params, "trades"))
        # keyed by the ids exactly as requested (ccxt looks its own id up)
        by_id = {parse_id("O", k): v for k, v in found.items()}
        return {txid: by_id[i] for txid, i in ids.items() if i in by_id}

    async def trades_history(self, account: int, params: Params) -> Any:
        await self.current()
        try:
            offset = int(params.get("ofs") or 0)
        except ValueError:
            raise invalid("ofs") from None
        rows, count = self.history.trades(account, offset)
        return {
            "trades": {format_id("T", r.trade_id): self.history.trade(r) for r in rows},
            "count": count,
        }
