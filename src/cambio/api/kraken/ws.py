"""Kraken's WebSocket API v2 at ``/v2``: public and private channels and trading methods on
one endpoint (private requests carry a token from REST GetWebSocketsToken).

Every request is answered with its ``req_id`` echoed (ccxt resolves its futures by it),
``success``, ``time_in`` and ``time_out``; an error is a string. Channels: status (sent on
connect and on every change), book (snapshot, then diffs with the CRC32 checksum),
trade, ticker, ohlc, instrument; level3 (the book order by order, for any valid token);
private executions and balances. Methods: ping, subscribe,
unsubscribe, add_order, batch_add, amend_order, edit_order, cancel_order, batch_cancel,
cancel_all, cancel_all_orders_after.
Orders placed here go through the same parameter checks as REST AddOrder.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from cambio.api.envelope import halted
from cambio.api.kraken.candles import INTERVALS, SNAPSHOT, Candle
from cambio.api.kraken.candles import entry as candle_entry
from cambio.api.kraken.errors import KrakenError
from cambio.api.kraken.feed import BACKLOG, Feed, Subscriber
from cambio.api.kraken.history import OPEN, History
from cambio.api.kraken.level3 import DEPTHS as LEVEL3_DEPTHS
from cambio.api.kraken.orders import add_order
from cambio.api.kraken.params import BadParams
from cambio.api.kraken.tokens import Tokens
from cambio.api.kraken.trading import Trading, cancel_command, order_id_of
from cambio.api.kraken.wsformat import number, timestamp
from cambio.model.commands import CancelOrder
from cambio.model.config import PairSpec
from cambio.model.decimals import DecimalFormatError
from cambio.model.ids import format_id
from cambio.runtime.sequencer import SequencerStopped
from cambio.runtime.service import ExchangeService

log = logging.getLogger("cambio.api.ws")
DEPTHS = (10, 25, 100, 500, 1000)
PUBLIC = ("book", "trade", "ticker", "ohlc", "instrument", "status", "level3")
PRIVATE = ("executions", "balances")
_ids = itertools.count(1)


class Refused(Exception):
    """A request answered with success false and this error string."""


class WsApi:
    def __init__(
        self,
        service: ExchangeService,
        feed: Feed,
        tokens: Tokens,
        history: History,
        trading: Trading,
        backlog: int = BACKLOG,
    ) -> None:
        self.service = service
        self.feed = feed
        self.tokens = tokens
        self.history = history
        self.config = service.config
        self.trading = trading
        self.backlog = backlog

    # ------------------------------------------------------------------ connection
    async def endpoint(self, ws: WebSocket) -> None:
        await ws.accept()
        sub = Subscriber(next(_ids), self.backlog)
        sender = sub.sender = asyncio.create_task(self._send_loop(ws, sub))
        status = {**self.feed.status(), "connection_id": sub.connection_id, "version": "2.0.0"}
        sub.send({"channel": "status", "type": "update", "data": [status]})
        self.feed.status_subscribers.add(sub)
        try:
            while not sub.closed:
                text = await ws.receive_text()
                await self._handle(sub, text)
        except WebSocketDisconnect:
            pass
        finally:
            self.feed.forget(sub)
            sub.drop()
            with contextlib.suppress(Exception):
                await sender

    async def _send_loop(self, ws: WebSocket, sub: Subscriber) -> None:
        try:
            while (message := await sub.outbox.get()) is not None:
                await ws.send_text(message.decode())
        except asyncio.CancelledError:  # dropped, perhaps while stuck writing
            pass
        except Exception:  # the peer went away
            sub.drop()
            return
        with contextlib.suppress(Exception):
            await ws.close(code=1008 if sub.closed else 1000)

    # ------------------------------------------------------------------ requests
    async def _handle(self, sub: Subscriber, text: str) -> None:
        time_in = timestamp(time.time_ns())
        try:
            request = json.loads(text)
            if not isinstance(request, dict):
                raise ValueError
        except (ValueError, RecursionError):
            sub.send(
                {
                    "error": "Malformed request",
                    "success": False,
                    "time_in": time_in,
                    "time_out": timestamp(time.time_ns()),
                }
            )
            return
        method = request.get("method")
        params = request.get("params") or {}
        head: dict[str, Any] = {"method": method}
        if "req_id" in request:
            head["req_id"] = request["req_id"]

        def reply(result: Any = None, error: str | None = None) -> None:
            msg = dict(head)
            if error is None:
                msg |= {"result": result, "success": True}
            else:
                msg |= {"error": error, "success": False}
            msg |= {"time_in": time_in, "time_out": timestamp(time.time_ns())}
            sub.send(msg)

        try:
            if method == "ping":
                sub.send(
                    {
                        **head,
                        "method": "pong",
                        "time_in": time_in,
                        "time_out": timestamp(time.time_ns()),
                    }
                )
            elif method in ("subscribe", "unsubscribe"):
                await self._subscription(sub, method, params, reply)
            elif method in TRADING:
                account = self._authorize(params, "trade", sub)
                for result in await getattr(self, TRADING[method])(account, params):
                    reply(result)
            else:
                reply(error=f"Unsupported method: {method}")
        except Refused as exc:
            reply(error=str(exc))
        except KrakenError as exc:
            reply(error=", ".join(exc.errors))
        except (BadParams, DecimalFormatError, ValueError, TypeError, OverflowError) as exc:
            reply(error=f"EGeneral:Invalid arguments:{exc}")
        except SequencerStopped as exc:
            reply(error=", ".join(halted(exc)))
        except Exception:  # a bug: logged, answered, and the connection lives on
            log.exception("internal error handling %s", method)
            reply(error="EGeneral:Internal error")

    def _authorize(self, params: dict[str, Any], permission: str, sub: Subscriber) -> int:
        """The account a request's token stands for (`permission` "" asks only for a
        valid token). A token that opened a private
        subscription stays good on its connection after 15 minutes, as on Kraken."""
        token = str(params.get("token") or "")
        found = self.tokens.check(token)
        if found is None and sub.grant is not None and token == sub.token:
            found = sub.grant
        if found is None:
            raise Refused("EAPI:Invalid token")
        if permission and permission not in found.permissions:
            raise Refused("EGeneral:Permission denied")
        if sub.grant is None:
            sub.token, sub.grant = token, found
        return found.account

    def _pair(self, symbol: Any) -> PairSpec:
        p = self.feed.by_symbol.get(str(symbol))
        if p is None:
            raise Refused(f"Currency pair not supported {symbol}")
        return p

    async def _subscription(
        self, sub: Subscriber, method: str, params: dict[str, Any], reply: Any
    ) -> None:
        channel = params.get("channel")
        if channel not in PUBLIC + PRIVATE:
            raise Refused("Subscription name invalid")
        on = method == "subscribe"
        if channel in PRIVATE:
            permission = "query_orders" if channel == "executions" else "query_funds"
            account = self._authorize(params, permission, sub)
            table = self.feed.executions if channel == "executions" else self.feed.balances
            (table[account].add if on else table[account].discard)(sub)
            result: dict[str, Any] = {"channel": channel}
            if channel == "executions" and on:
                result["maxratecount"] = 180
            reply(result)
            if on and params.get("snapshot", params.get("snap_orders", True)):
                await self._private_snapshot(sub, channel, account)
            return
        if channel == "status":
            reply({"channel": "status"})
            return
        if channel == "instrument":
            reply({"channel": "instrument", "snapshot": True})
            if on:
                sub.send({"channel": "instrument", "type": "snapshot", "data": self._instruments()})
            return
        symbols = params.get("symbol")
        if not isinstance(symbols, list) or not symbols:
            raise Refused("EGeneral:Invalid arguments:symbol")
        pairs = [self._pair(s) for s in symbols]
        depth = int(params.get("depth", 10))
        if channel == "book" and depth not in DEPTHS:
            raise Refused("Subscription depth not supported")
        if channel == "ohlc":
            await self._ohlc(sub, on, pairs, params, reply)
            return
        if channel == "level3":
            self._level3(sub, on, pairs, params, reply)
            return
        for p in pairs:
            result = {"channel": channel, "symbol": p.symbol}
            if channel == "book":
                result |= {"depth": depth, "snapshot": params.get("snapshot", True)}
                if on:
                    self.feed.books[p.index][sub] = depth
                else:
                    self.feed.books[p.index].pop(sub, None)
            else:
                table = self.feed.trades if channel == "trade" else self.feed.tickers
                (table[p.index].add if on else table[p.index].discard)(sub)
                result["snapshot"] = params.get("snapshot", channel == "ticker")
            reply(result)
            if on and result["snapshot"]:
                await self._public_snapshot(sub, channel, p, depth)

    async def _ohlc(
        self, sub: Subscriber, on: bool, pairs: list[PairSpec], params: dict[str, Any], reply: Any
    ) -> None:
        interval = params.get("interval", 1)
        if interval not in INTERVALS or isinstance(interval, bool):
            raise Refused("Subscription ohlc interval not supported")
        snapshot = bool(params.get("snapshot", True))
        if on:
            await self.service.read_models_current()
        for p in pairs:
            if not on:
                self.feed.candles.unsubscribe(sub, p.index, interval)
                reply({"channel": "ohlc", "symbol": p.symbol, "interval": interval})
                continue
            rows = self.history.candles(p.id, interval, 0, SNAPSHOT)
            candles = [
                Candle(r.time, r.open, r.high, r.low, r.close, r.volume, r.pv, r._mapping["count"])
                for r in rows
            ]
            self.feed.candles.subscribe(sub, p.index, interval, candles[-1] if candles else None)
            reply({"channel": "ohlc", "symbol": p.symbol, "interval": interval,
                   "snapshot": snapshot})  # fmt: skip
            if snapshot:
                now = time.time_ns()
                data = [candle_entry(p, interval, c, now) for c in candles]
                sub.send({"channel": "ohlc", "type": "snapshot", "timestamp": timestamp(now),
                          "data": data})  # fmt: skip

    def _level3(
        self, sub: Subscriber, on: bool, pairs: list[PairSpec], params: dict[str, Any], reply: Any
    ) -> None:
        self._authorize(params, "", sub)  # public data, but Kraken serves it to keys only
        depth = params.get("depth", 10)
        if depth not in LEVEL3_DEPTHS or isinstance(depth, bool):
            raise Refused("Subscription depth not supported")
        snapshot = bool(params.get("snapshot", True))
        for p in pairs:
            if not on:
                self.feed.level3.unsubscribe(sub, p)
                reply({"channel": "level3", "symbol": p.symbol, "depth": depth})
                continue
            entry = self.feed.level3.subscribe(sub, p, depth)
            reply({"channel": "level3", "symbol": p.symbol, "depth": depth,
                   "snapshot": snapshot})  # fmt: skip
            if snapshot:
                sub.send({"channel": "level3", "type": "snapshot", "data": [entry]})

    async def _public_snapshot(
        self, sub: Subscriber, channel: str, p: PairSpec, depth: int
    ) -> None:
        if channel == "book":
            data = [self.feed.book_snapshot(p, depth)]
        elif channel == "ticker":
            await self.service.read_models_current()
            last = self.history.last_trade(p.id)
            entry = self.feed.ticker(p)
            if last is not None:
                entry["last"] = number(last[0], p.pair_decimals)
            data = [entry]
        else:
            await self.service.read_models_current()
            rows = self.history.public_trades(p.id, 0, 50, newest=True)
            data = [
                {
                    "symbol": p.symbol,
                    "side": r.side,
                    "price": number(r.price, p.pair_decimals),
                    "qty": number(r.qty, p.lot_decimals),
                    "ord_type": "market" if r.ordertype == "market" else "limit",
                    "trade_id": r.trade_id,
                    "timestamp": timestamp(r.ts),
                }
                for r in rows
            ]
        sub.send({"channel": channel, "type": "snapshot", "data": data})

    async def _private_snapshot(self, sub: Subscriber, channel: str, account: int) -> None:
        if channel == "balances":
            data: list[dict[str, Any]] = self.feed.balance_snapshot(account)
        else:
            await self.service.read_models_current()
            rows, _ = self.history.orders(account, OPEN)
            data = []
            for r in rows:
                p = self.config.pair(r.pair)
                data.append(
                    {
                        "order_id": format_id("O", r.order_id),
                        "symbol": p.symbol,
                        "side": r.side,
                        "order_type": r.ordertype,
                        "order_qty": number(r.qty, p.lot_decimals),
                        "limit_price": number(r.price, p.pair_decimals),
                        "cum_qty": number(r.filled, p.lot_decimals),
                        "order_status": "new" if r.filled == 0 else "partially_filled",
                        "order_userref": r.userref or 0,
                        "exec_type": "new",
                        "timestamp": timestamp(r.opened_ts),
                    }
                )
        sub.sequence += 1
        sub.send({"channel": channel, "type": "snapshot", "data": data, "sequence": sub.sequence})

    def _instruments(self) -> dict[str, Any]:
        funding = self.service.host.query("status")["funding"]
        modes = self.service.host.query("status")["markets"]
        assets = [
            {
                "id": a.symbol,
                "status": "enabled" if all(funding[a.id]) else "depositonly",
                "precision": a.decimals,
                "precision_display": a.display_decimals,
                "borrowable": False,
                "collateral_value": 1.0,
                "margin_rate": 0.0,
            }
            for a in self.config.assets
        ]
        pairs = []
        for p in self.config.pairs:
            base, quote = self.config.assets[p.base], self.config.assets[p.quote]
            pairs.append(
                {
                    "symbol": p.symbol,
                    "base": base.symbol,
                    "quote": quote.symbol,
                    "status": modes[p.id],
                    "qty_precision": p.lot_decimals,
                    "qty_increment": number(1, p.lot_decimals),
                    "price_precision": p.pair_decimals,
                    "price_increment": number(p.tick, p.pair_decimals),
                    "cost_precision": p.cost_decimals,
                    "cost_min": p.costmin_text,
                    "qty_min": p.ordermin_text,
                    "marginable": False,
                    "has_index": False,
                }
            )
        return {"assets": assets, "pairs": pairs}

    # ------------------------------------------------------------------ trading
    async def add_order(self, account: int, params: dict[str, Any]) -> list[Any]:
        rest = _rest_params(params)
        cmd, _ = add_order(self.config, account, rest)
        accepted = await self.trading.place(cmd)
        result: dict[str, Any] = {"order_id": format_id("O", accepted.order_id) if accepted else ""}
        if params.get("cl_ord_id"):
            result["cl_ord_id"] = params["cl_ord_id"]
        if params.get("order_userref") is not None:
            result["order_userref"] = params["order_userref"]
        return [result]

    async def batch_add(self, account: int, params: dict[str, Any]) -> list[Any]:
        """2 to 15 orders on one symbol, answered in one message: per order its id or its
        error. Every order's fields are checked before any is placed."""
        orders = params.get("orders")
        if not isinstance(orders, list) or not 2 <= len(orders) <= 15:
            raise Refused("EGeneral:Invalid arguments:orders")
        common = {"symbol": params.get("symbol", ""), "validate": params.get("validate", False)}
        cmds = []
        for order in orders:
            if not isinstance(order, dict):
                raise Refused("EGeneral:Invalid arguments:orders")
            cmds.append(add_order(self.config, account, _rest_params({**order, **common}))[0])
        entries: list[dict[str, Any]] = []
        for order, result in zip(orders, await self.trading.place_batch(cmds), strict=True):
            if isinstance(result, KrakenError):
                entries.append({"error": ", ".join(result.errors)})
                continue
            entry: dict[str, Any] = {"order_id": format_id("O", result.order_id) if result else ""}
            if order.get("cl_ord_id"):
                entry["cl_ord_id"] = order["cl_ord_id"]
            if order.get("order_userref") is not None:
                entry["order_userref"] = order["order_userref"]
            entries.append(entry)
        return [entries]

    async def batch_cancel(self, account: int, params: dict[str, Any]) -> list[Any]:
        """Up to 50 orders by id (or userref) and cl_ord_id: how many were cancelled."""
        cmds = []
        for ref in params.get("orders") or []:
            cmds.append(cancel_command(account, ref, "orders"))
        for cl_ord_id in params.get("cl_ord_id") or []:
            cmds.append(CancelOrder(account=account, cl_ord_id=str(cl_ord_id)))
        if not 1 <= len(cmds) <= 50:
            raise Refused("EGeneral:Invalid arguments:orders")
        return [{"count": await self.trading.cancel_many(account, cmds)}]

    async def edit_order(self, account: int, params: dict[str, Any]) -> list[Any]:
        """Legacy edit: a new order replaces `order_id` (see Trading.edit)."""
        order_id = order_id_of(params.get("order_id") or "")
        changes: dict[str, Any] = {"validate": bool(params.get("validate", False))}
        for ws_name, rest_name in WS_EDIT_FIELDS.items():
            if params.get(ws_name) is not None:
                changes[rest_name] = _text(params[ws_name])
        if params.get("symbol"):
            changes["pair"] = params["symbol"]
        if params.get("post_only"):
            changes["oflags"] = "post"
        edit = await self.trading.edit(account, order_id, changes)
        new = format_id("O", edit.accepted.order_id) if edit.accepted else ""
        return [{"order_id": new, "original_order_id": format_id("O", order_id)}]

    async def cancel_order(self, account: int, params: dict[str, Any]) -> list[Any]:
        out = []
        for order_id in params.get("order_id") or []:
            await self.trading.cancel(CancelOrder(account=account, order_id=order_id_of(order_id)))
            out.append({"order_id": order_id})
        for cl_ord_id in params.get("cl_ord_id") or []:
            await self.trading.cancel(CancelOrder(account=account, cl_ord_id=str(cl_ord_id)))
            out.append({"cl_ord_id": cl_ord_id})
        for userref in params.get("order_userref") or []:
            await self.trading.cancel(CancelOrder(account=account, userref=int(userref)))
            out.append({"order_userref": userref})
        if not out:
            raise Refused("EGeneral:Invalid arguments:order_id")
        return out

    async def cancel_all(self, account: int, params: dict[str, Any]) -> list[Any]:
        return [{"count": await self.trading.cancel_all(account)}]

    async def cancel_after(self, account: int, params: dict[str, Any]) -> list[Any]:
        now, trigger = await self.trading.cancel_all_after(account, params.get("timeout", ""))
        return [
            {"currentTime": timestamp(now), "triggerTime": timestamp(trigger) if trigger else "0"}
        ]

    async def amend_order(self, account: int, params: dict[str, Any]) -> list[Any]:
        order_id = 0
        if params.get("order_id"):
            order_id = order_id_of(params["order_id"])
        cl_ord_id = params.get("cl_ord_id") or None
        amended = await self.trading.amend(
            account, order_id, cl_ord_id, params, bool(params.get("post_only", False))
        )
        return [
            {
                "amend_id": format_id("A", amended.amend_id),
                "order_id": format_id("O", amended.order_id),
            }
        ]


TRADING = {
    "add_order": "add_order",
    "batch_add": "batch_add",
    "batch_cancel": "batch_cancel",
    "edit_order": "edit_order",
    "cancel_order": "cancel_order",
    "cancel_all": "cancel_all",
    "cancel_all_orders_after": "cancel_after",
    "amend_order": "amend_order",
}


WS_EDIT_FIELDS = {
    "order_qty": "volume", "limit_price": "price", "display_qty": "displayvol",
    "order_userref": "userref",
}  # fmt: skip


def _text(value: Any) -> str:
    """A JSON number or string as decimal text (floats keep their shortest repr)."""
    return value if isinstance(value, str) else repr(value)


def _rest_params(p: dict[str, Any]) -> dict[str, Any]:
    """WebSocket add_order fields as REST AddOrder parameters."""
    rest: dict[str, Any] = {
        "pair": p.get("symbol", ""),
        "type": p.get("side", ""),
        "ordertype": p.get("order_type", ""),
        "volume": _text(p.get("order_qty", "")),
        "timeinforce": p.get("time_in_force", "gtc"),
        "validate": bool(p.get("validate", False)),
    }
    ordertype = str(rest["ordertype"])
    trigger = (p.get("triggers") or {}).get("price")
    if ordertype in ("limit", "iceberg") and p.get("limit_price") is not None:
        rest["price"] = _text(p["limit_price"])
    elif trigger is not None:
        rest["price"] = _text(trigger)
        if p.get("limit_price") is not None:
            rest["price2"] = _text(p["limit_price"])
    flags = []
    if p.get("post_only"):
        flags.append("post")
    if p.get("fee_preference") == "base":
        flags.append("fcib")
    if p.get("no_mpp"):
        flags.append("nompp")
    if flags:
        rest["oflags"] = ",".join(flags)
    if p.get("display_qty") is not None:
        rest["displayvol"] = _text(p["display_qty"])
    if p.get("order_userref") is not None:
        rest["userref"] = p["order_userref"]
    if p.get("cl_ord_id"):
        rest["cl_ord_id"] = p["cl_ord_id"]
    if p.get("stp_type"):
        rest["stptype"] = str(p["stp_type"]).replace("_", "-")
    return rest
