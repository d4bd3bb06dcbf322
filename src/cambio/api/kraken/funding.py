"""Kraken's funding calls: deposit methods and addresses, withdrawals and their status.

cambio keeps no chain wallet. A deposit address is an identifier the exchange hands out;
the operator credits what arrives (``cambio admin account deposit``). A withdrawal goes
only to an address the account registered ahead under a name (Kraken's withdrawal
"key"; ``cambio admin address add``). It holds the amount plus the asset's fee at once,
and the operator completes it with the network's txid or returns it; until then its
owner may cancel it (WithdrawCancel). Statuses use Kraken's words: Pending, Success,
Failure (with ``status-prop`` canceled or return).
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import Row

from cambio.api.keys import KeyStore
from cambio.api.kraken.errors import KrakenError
from cambio.api.kraken.history import History
from cambio.api.kraken.params import flag, optional_integer
from cambio.api.kraken.trading import Trading
from cambio.model.commands import RequestWithdrawal, ReturnWithdrawal
from cambio.model.config import AssetSpec, MarketConfig
from cambio.model.decimals import DecimalFormatError, format_units, to_units
from cambio.runtime.host import EngineHost

Params = dict[str, Any]
DEPOSIT_PAGE = 25
WITHDRAWAL_PAGE = 500
_REFID_ALPHABET = string.ascii_letters + string.digits


def refid() -> str:
    """A new funding reference in Kraken's current shape (``FTQcuak-V6Za8qrWnhzTx67yYHz8Tg``)."""
    pick = secrets.choice
    return (
        "F"
        + "".join(pick(_REFID_ALPHABET) for _ in range(6))
        + "-"
        + "".join(pick(_REFID_ALPHABET) for _ in range(22))
    )


class FundingApi:
    def __init__(
        self,
        config: MarketConfig,
        host: Callable[[], EngineHost],
        trading: Trading,
        current: Callable[[], Awaitable[None]],
        history: History,
        keys: KeyStore,
    ) -> None:
        self.config = config
        self.host = host
        self.trading = trading
        self.current = current
        self.history = history
        self.keys = keys

    # ------------------------------------------------------------------ helpers
    def _asset(self, params: Params) -> AssetSpec:
        try:
            return self.config.asset(str(params.get("asset") or ""))
        except KeyError:
            raise KrakenError("EFunding:Unknown asset") from None

    @staticmethod
    def _text(asset: AssetSpec, units: int) -> str:
        return format_units(units, asset.units, asset.decimals)

    @staticmethod
    def _units(asset: AssetSpec, text: Any, error: str) -> int:
        """Decimal text in the asset's own precision, as engine units."""
        try:
            value = to_units(str(text), asset.decimals)
        except DecimalFormatError:
            raise KrakenError(error) from None
        return int(value * 10 ** (asset.units - asset.decimals))

    def _available(self, account: int, asset: AssetSpec) -> int:
        held = self.host().query("balances", account)
        avail: int = held.get(asset.id, (0, 0, 0))[0]
        return avail

    # ------------------------------------------------------------------ deposits
    async def deposit_methods(self, account: int, params: Params) -> Any:
        asset = self._asset(params)
        return [
            {
                "method": asset.method,
                "limit": False,
                "fee": self._text(asset, 0),
                "gen-address": bool(asset.network),
                "minimum": self._text(asset, 0),
            }
        ]

    async def deposit_addresses(self, account: int, params: Params) -> Any:
        asset = self._asset(params)
        method = str(params.get("method") or asset.method)
        if not asset.network or method.lower() != asset.method.lower():
            raise KrakenError("EFunding:No funding method")
        found = self.keys.deposit_addresses(account, asset.id, asset.network, flag(params, "new"))
        out = []
        for address, made in found:
            entry: dict[str, Any] = {"address": address, "expiretm": "0"}
            if made:
                entry["new"] = True
            out.append(entry)
        return out

    async def deposit_status(self, account: int, params: Params) -> Any:
        return await self._status(account, params, "deposit", DEPOSIT_PAGE, "deposit")

    # ------------------------------------------------------------------ withdrawals
    async def withdraw_methods(self, account: int, params: Params) -> Any:
        assets = [self._asset(params)] if params.get("asset") else list(self.config.assets)
        return [
            {
                "asset": a.id,
                "method": a.method,
                "network": a.network or None,
                "minimum": self._text(a, a.withdraw_min),
                "fee": self._text(a, a.withdraw_fee),
            }
            for a in assets
        ]

    async def withdraw_addresses(self, account: int, params: Params) -> Any:
        only = self._asset(params).id if params.get("asset") else None
        wanted_key = params.get("key")
        out = []
        for asset_id, key, address in self.keys.withdraw_addresses(account, only):
            if wanted_key and key != wanted_key:
                continue
            method = self.config.asset(asset_id).method
            out.append(
                {"address": address, "asset": asset_id, "method": method, "key": key,
                 "verified": True}
            )  # fmt: skip
        return out

    def _address(self, account: int, asset: AssetSpec, key: str) -> str:
        for _, name, address in self.keys.withdraw_addresses(account, asset.id):
            if name == key:
                return address
        raise KrakenError("EFunding:Unknown withdraw key")

    async def withdraw_info(self, account: int, params: Params) -> Any:
        asset = self._asset(params)
        self._address(account, asset, str(params.get("key") or ""))
        amount = self._units(asset, params.get("amount", ""), "EFunding:Invalid amount")
        limit = max(0, self._available(account, asset) - asset.withdraw_fee)
        return {
            "method": asset.method,
            "limit": self._text(asset, limit),
            "amount": self._text(asset, amount),
            "fee": self._text(asset, asset.withdraw_fee),
        }

    async def withdraw(self, account: int, params: Params) -> Any:
        asset = self._asset(params)
        key = str(params.get("key") or "")
        address = self._address(account, asset, key)
        if params.get("address") not in (None, "") and str(params["address"]) != address:
            raise KrakenError("EFunding:Invalid withdrawal address")
        amount = self._units(asset, params.get("amount", ""), "EFunding:Invalid amount")
        if amount <= 0 or amount < asset.withdraw_min:
            raise KrakenError("EFunding:Invalid amount")
        if params.get("max_fee") not in (None, ""):
            ceiling = self._units(asset, params["max_fee"], "EGeneral:Invalid arguments:max_fee")
            if asset.withdraw_fee > ceiling:
                raise KrakenError("EFunding:Max fee exceeded")
        ref = refid()
        cmd = RequestWithdrawal(
            account=account, asset=asset.id, amount=amount, fee=asset.withdraw_fee, ref=ref,
            key=key, address=address,
        )  # fmt: skip
        await self.trading.run(cmd)
        return {"refid": ref}

    async def withdraw_status(self, account: int, params: Params) -> Any:
        return await self._status(account, params, "withdrawal", WITHDRAWAL_PAGE, "withdrawals")

    async def withdraw_cancel(self, account: int, params: Params) -> Any:
        self._asset(params)
        ref = str(params.get("refid") or "")
        if not ref:
            raise KrakenError("EFunding:Invalid reference id")
        await self.trading.run(ReturnWithdrawal(ref=ref, reason="canceled", account=account))
        return True

    # ------------------------------------------------------------------ status
    async def _status(
        self, account: int, params: Params, kind: str, page: int, cursor_key: str
    ) -> Any:
        asset = self._asset(params).id if params.get("asset") else None
        start = optional_integer(params, "start") or 0
        end = optional_integer(params, "end")
        limit = optional_integer(params, "limit") or page
        if not 0 < limit <= page:
            raise KrakenError("EGeneral:Invalid arguments:limit")
        cursor = params.get("cursor")
        paged = cursor not in (None, "", False, "false", "False")
        text = str(cursor)
        ours = paged and text.isascii() and text.isdigit() and len(text) <= 18
        before = int(text) if ours else None
        await self.current()
        rows = self.history.funding(
            account, kind, asset=asset, start_ns=start * 10**9,
            end_ns=None if end is None else end * 10**9 + 10**9 - 1, before_seq=before,
            limit=limit + 1,
        )  # fmt: skip
        more = len(rows) > limit
        entries = [self._entry(r) for r in rows[:limit]]
        if not paged:
            return entries
        next_cursor = str(rows[limit - 1].seq) if more else None
        return {cursor_key: entries, "next_cursor": next_cursor}

    def _entry(self, row: Row[Any]) -> dict[str, Any]:
        asset = self.config.asset(row.asset)
        out: dict[str, Any] = {
            "method": asset.method,
            "aclass": "currency",
            "asset": asset.id,
            "refid": row.refid,
            "txid": row.txid,
            "info": row.address,
            "amount": self._text(asset, row.amount),
            "fee": self._text(asset, row.fee),
            "time": row.opened_ts // 10**9,
            "status": row.status,
        }
        if row.status_prop:
            out["status-prop"] = row.status_prop
        if row.kind == "withdrawal":
            out["network"] = asset.network or None
            out["key"] = row.key
        return out
