"""Kraken's private REST methods (``/0/private/<Method>``) for one authenticated account.

Each method names the permission it needs; the app checks it before calling. Trading
methods become engine commands and answer once the command is durable and applied.
Queries of orders and trades read the read models, after waiting (briefly) until those
show every command applied so far: a client sees its own orders at once.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cambio.api.keys import KeyStore
from cambio.api.kraken.errors import KrakenError
from cambio.api.kraken.funding import FundingApi
from cambio.api.kraken.history import CLOSED, OPEN, PAGE, History
from cambio.api.kraken.orders import add_order, invalid
from cambio.api.kraken.params import flag, integer, names, optional_integer
from cambio.api.kraken.public import rfc3339
from cambio.api.kraken.trading import Trading, cancel_command, order_id_of
from cambio.custody.adapter import CustodyAdapter, Incoming
from cambio.model.commands import CancelOrder, Command
from cambio.model.config import FeeTier, MarketConfig
from cambio.model.decimals import format_units
from cambio.model.events import (
    Event,
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
        trading: Trading,
        read_models_current: Callable[[], Awaitable[None]],
        history: History,
        keys: KeyStore,
        custody: CustodyAdapter | None = None,
        require_2fa_withdrawals: bool = False,
        pending_deposits: Callable[[int], list[Incoming]] | None = None,
    ) -> None:
        self.config = config
        self.host = host
        self.current = read_models_current
        self.history = history
        self.trading = trading
        funding = FundingApi(
            config, host, trading, read_models_current, history, keys, custody,
            require_2fa=require_2fa_withdrawals, pending=pending_deposits,
        )  # fmt: skip
        funds, orders, trade, withdraw = "query_funds", "query_orders", "trade", "withdraw"
        self.methods: dict[str, Method] = {
            "DepositMethods": Method(funds, funding.deposit_methods),
            "DepositAddresses": Method(funds, funding.deposit_addresses),
            "DepositStatus": Method(funds, funding.deposit_status),
            "WithdrawMethods": Method(funds, funding.withdraw_methods),
            "WithdrawAddresses": Method(funds, funding.withdraw_addresses),
            "WithdrawInfo": Method(funds, funding.withdraw_info),
            "Withdraw": Method(withdraw, funding.withdraw),
            "WithdrawStatus": Method(funds, funding.withdraw_status),
            "WithdrawCancel": Method(withdraw, funding.withdraw_cancel),
            # cambio's extensions: Kraken registers withdrawal addresses on its website only
            "AddWithdrawAddress": Method(withdraw, funding.add_withdraw_address),
            "RemoveWithdrawAddress": Method(withdraw, funding.remove_withdraw_address),
            "Balance": Method(funds, self.balance),
            "BalanceEx": Method(funds, self.balance_ex),
            "TradeBalance": Method(funds, self.trade_balance),
            "AddOrder": Method(trade, self.add_order),
            "AddOrderBatch": Method(trade, self.add_order_batch),
            "EditOrder": Method(trade, self.edit_order),
            "CancelOrder": Method(trade, self.cancel_order),
            "CancelOrderBatch": Method(trade, self.cancel_order_batch),
            "CancelAll": Method(trade, self.cancel_all),
            "OpenOrders": Method(orders, self.open_orders),
            "ClosedOrders": Method(orders, self.closed_orders),
            "QueryOrders": Method(orders, self.query_orders),
            "TradesHistory": Method(orders, self.trades_history),
            "QueryTrades": Method(orders, self.query_trades),
            "Ledgers": Method(funds, self.ledgers),
            "QueryLedgers": Method(funds, self.query_ledgers),
            "TradeVolume": Method(funds, self.trade_volume),
            "AmendOrder": Method(trade, self.amend_order),
            "CancelAllOrdersAfter": Method(trade, self.cancel_all_after),
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

    async def trade_balance(self, account: int, params: Params) -> Any:
        """Spot only (no margin yet): equity is every balance valued in USD at the last
        trade of its USD market; assets without one count nothing."""
        usd = self.config.assets[self.config.usd_asset]
        if params.get("asset") not in (None, "") and self._asset_id(str(params["asset"])) != usd.id:
            raise invalid("asset")
        total = 0
        for asset_id, (avail, trade, withdrawing) in self.host().query("balances", account).items():
            total += self._usd_value(asset_id, avail + trade + withdrawing)
        text = format_units(total, usd.decimals)
        zero = format_units(0, usd.decimals)
        return {
            "eb": text, "tb": text, "m": zero, "uv": zero, "n": zero, "c": zero, "v": zero,
            "e": text, "mf": text,
        }  # fmt: skip

    def _usd_value(self, asset_id: str, units: int) -> int:
        usd = self.config.assets[self.config.usd_asset]
        asset = self.config.asset(asset_id)
        if asset.index == usd.index:
            return int(units // 10 ** (usd.units - usd.decimals))
        for pair in self.config.pairs:
            if pair.base == asset.index and pair.quote == usd.index:
                last = self.history.last_trade(pair.id)
                if last is not None:
                    scale = 10 ** (asset.units + pair.pair_decimals - usd.decimals)
                    return int(units * last[0] // scale)
        return 0

    # ------------------------------------------------------------------ trading
    async def add_order(self, account: int, params: Params) -> Any:
        cmd, text = add_order(self.config, account, params)
        accepted = await self.trading.place(cmd)
        if accepted is None:  # validate=true: checked, nothing placed, no txid
            return {"descr": {"order": text}}
        return {"descr": {"order": text}, "txid": [format_id("O", accepted.order_id)]}

    async def add_order_batch(self, account: int, params: Params) -> Any:
        """2 to 15 orders on one pair. Every order's parameters are checked before any is
        placed (one bad one refuses the batch); the engine's refusals are per entry."""
        orders = _json_list(params.get("orders"), "orders")
        if not 2 <= len(orders) <= 15 or not all(isinstance(o, dict) for o in orders):
            raise invalid("orders")
        common = {"pair": params.get("pair", ""), "validate": params.get("validate", False)}
        built = [add_order(self.config, account, {**o, **common}) for o in orders]
        results = await self.trading.place_batch([cmd for cmd, _ in built])
        entries: list[dict[str, Any]] = []
        for (_, text), result in zip(built, results, strict=True):
            if isinstance(result, KrakenError):
                entries.append({"error": ", ".join(result.errors)})
            elif result is None:
                entries.append({"descr": {"order": text}})
            else:
                entries.append({"txid": format_id("O", result.order_id), "descr": {"order": text}})
        return {"orders": entries}

    async def edit_order(self, account: int, params: Params) -> Any:
        txid = str(params.get("txid") or "")
        order_id = order_id_of(txid)
        edit = await self.trading.edit(account, order_id, params)
        if edit.accepted is None:  # validate=true
            return {"status": "ok", "descr": {"order": edit.text}}
        return {
            "status": "ok",
            "txid": format_id("O", edit.accepted.order_id),
            "originaltxid": txid,
            "volume": edit.fields["volume"],
            "price": edit.fields.get("price", "0"),
            "price2": edit.fields.get("price2", "0"),
            "orders_cancelled": 1,
            "descr": {"order": edit.text},
        }

    async def cancel_order(self, account: int, params: Params) -> Any:
        txid = str(params.get("txid") or "").strip()
        cl_ord_id = params.get("cl_ord_id") or None
        if cl_ord_id is not None:
            cmd = CancelOrder(account=account, cl_ord_id=str(cl_ord_id))
        else:
            cmd = cancel_command(account, txid, "txid")
        return {"count": await self.trading.cancel(cmd)}

    async def cancel_order_batch(self, account: int, params: Params) -> Any:
        """Up to 50 orders by txid (plain strings or {"txid": ...}) and/or cl_ord_ids."""
        cmds: list[CancelOrder] = []
        for item in _json_list(params.get("orders") or [], "orders"):
            txid = item.get("txid") if isinstance(item, dict) else item
            cmds.append(CancelOrder(account=account, order_id=order_id_of(txid)))
        for cl_ord_id in _json_list(params.get("cl_ord_ids") or [], "cl_ord_ids"):
            cmds.append(CancelOrder(account=account, cl_ord_id=str(cl_ord_id)))
        if not 1 <= len(cmds) <= 50:
            raise invalid("orders")
        return {"count": await self.trading.cancel_many(account, cmds)}

    async def cancel_all(self, account: int, params: Params) -> Any:
        return {"count": await self.trading.cancel_all(account)}

    # ------------------------------------------------------------------ queries
    def _filters(self, params: Params) -> dict[str, Any]:
        out: dict[str, Any] = {}
        userref = optional_integer(params, "userref")
        if userref is not None:
            out["userref"] = userref
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
        offset = integer(params, "ofs", 0)
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
        offset = integer(params, "ofs", 0)
        rows, count = self.history.trades(account, offset)
        return {
            "trades": {format_id("T", r.trade_id): self.history.trade(r) for r in rows},
            "count": count,
        }

    async def query_trades(self, account: int, params: Params) -> Any:
        wanted = names(params, "txid")
        if not wanted or len(wanted) > 20:
            raise invalid("txid")
        ids = {txid: _parse(txid, "T", "EGeneral:Invalid arguments:txid") for txid in wanted}
        await self.current()
        rows = {r.trade_id: r for r in self.history.trades_by_id(account, list(ids.values()))}
        return {txid: self.history.trade(rows[i]) for txid, i in ids.items() if i in rows}

    async def ledgers(self, account: int, params: Params) -> Any:
        assets = [self._asset_id(a) for a in names(params, "asset") if a.lower() != "all"]
        kind = str(params.get("type") or "all").lower()
        offset = integer(params, "ofs", 0)
        await self.current()
        rows, count = self.history.ledger(
            account, assets=assets, kind=None if kind == "all" else kind, offset=offset
        )
        entries = {format_id("L", r.ledger_id): self.history.ledger_entry(r) for r in rows}
        return {"ledger": entries, "count": count}

    async def query_ledgers(self, account: int, params: Params) -> Any:
        wanted = names(params, "id")
        if not wanted or len(wanted) > 20:
            raise invalid("id")
        ids = {lid: _parse(lid, "L", "EGeneral:Invalid arguments:id") for lid in wanted}
        await self.current()
        rows, _ = self.history.ledger(account, ids=list(ids.values()))
        found = {r.ledger_id: self.history.ledger_entry(r) for r in rows}
        return {lid: found[i] for lid, i in ids.items() if i in found}

    def _asset_id(self, name: str) -> str:
        try:
            return self.config.asset(name).id
        except KeyError:
            raise KrakenError("EQuery:Unknown asset") from None

    async def trade_volume(self, account: int, params: Params) -> Any:
        """30-day USD volume and, per asked pair, the tier's fee and the next tier."""
        usd = self.config.assets[self.config.usd_asset]
        volume = int(self.host().query("volume", account))
        fees: dict[str, Any] = {}
        fees_maker: dict[str, Any] = {}
        for name in names(params, "pair"):
            try:
                pair = self.config.pair(name)
            except KeyError:
                raise KrakenError("EQuery:Unknown asset pair") from None
            fees[pair.id] = _tier(pair.taker_tiers, volume, usd.decimals)
            fees_maker[pair.id] = _tier(pair.maker_tiers, volume, usd.decimals)
        out: dict[str, Any] = {
            "currency": usd.id,
            "volume": format_units(volume, usd.decimals),
        }
        if fees:
            out |= {"fees": fees, "fees_maker": fees_maker}
        return out

    async def amend_order(self, account: int, params: Params) -> Any:
        cl_ord_id = params.get("cl_ord_id") or None
        order_id = 0
        if cl_ord_id is None:
            order_id = order_id_of(params.get("txid") or "")
        amended = await self.trading.amend(
            account,
            order_id,
            None if cl_ord_id is None else str(cl_ord_id),
            params,
            flag(params, "post_only"),
        )
        return {"amend_id": format_id("A", amended.amend_id)}

    async def cancel_all_after(self, account: int, params: Params) -> Any:
        now, trigger = await self.trading.cancel_all_after(account, params.get("timeout", ""))
        return {"currentTime": rfc3339(now), "triggerTime": rfc3339(trigger) if trigger else "0"}


def _json_list(value: Any, name: str) -> list[Any]:
    """A list parameter: a JSON body's list, or a JSON array sent as a form field."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise invalid(name) from None
    if not isinstance(value, list):
        raise invalid(name)
    return value


def _parse(text: str, prefix: str, error: str) -> int:
    try:
        return parse_id(prefix, text)
    except ValueError:
        raise KrakenError(error) from None


def _tier(tiers: tuple[FeeTier, ...], volume: int, usd_decimals: int) -> dict[str, Any]:
    """Kraken's fee-tier object: percents as strings with 4 decimals, volumes in USD."""
    current = max((t for t in tiers if t.volume <= volume), key=lambda t: t.volume)
    nxt = min((t for t in tiers if t.volume > volume), key=lambda t: t.volume, default=None)

    def pct(ppm: int) -> str:
        return format_units(ppm, 4)  # ppm = 10^-4 percent

    return {
        "fee": pct(current.ppm),
        "minfee": pct(min(t.ppm for t in tiers)),
        "maxfee": pct(max(t.ppm for t in tiers)),
        "nextfee": None if nxt is None else pct(nxt.ppm),
        "nextvolume": None if nxt is None else format_units(nxt.volume, usd_decimals),
        "tiervolume": format_units(current.volume, usd_decimals),
    }
