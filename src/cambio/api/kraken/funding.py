"""Kraken's funding calls: deposit methods and addresses, withdrawals and their status.

Deposit addresses come from the custody backend (cambio.custody; ``serve --custody``),
which sees what arrives; the funding worker credits it once confirmed. Without one
(``--custody none``) an address is only an identifier and the operator credits deposits
(``cambio admin account deposit``). A withdrawal goes only to an address the account
registered ahead under a name (Kraken's withdrawal "key"; ``cambio admin address add``).
It holds the amount plus the asset's fee at once; the worker sends it to custody (or the
operator completes or returns it by hand). Until it is sent its owner may cancel it
(WithdrawCancel); after that, ``EFunding:Withdrawal already processing``. Statuses use
Kraken's words: Pending (queued or with custody), Settled (broadcast, with its txid),
Success, Failure (with ``status-prop`` canceled or return).

Two-factor (cambio.api.keys): an account may have TOTP (``cambio admin account totp
enable``). Then Withdraw, and adding or removing a withdrawal address, need the current
code in the ``otp`` parameter, where Kraken's clients already put it; a code is good
once. It is checked after every other check and before anything is journaled, so a
refused request changes nothing and a request refused for another reason does not use
the code up. Refusals: no code or a wrong or used one ``EAPI:Invalid OTP``; five wrong
in a row ``EGeneral:Temporary lockout`` (15 minutes). With the policy
``require_2fa`` (``serve --require-2fa-withdrawals``) an account without TOTP may not
withdraw or add addresses, checked first like a permission: ``EGeneral:Permission
denied:two-factor authentication required``. Read-only calls (WithdrawInfo,
WithdrawAddresses...) and WithdrawCancel never ask for a code.

cambio's extensions (Kraken registers addresses only on its website), with the withdraw
permission: ``AddWithdrawAddress`` (asset, key, address, otp) answers the new entry as
WithdrawAddresses lists it; the address must be 1 to 128 printable ASCII characters
without spaces (``EGeneral:Invalid arguments:address``), the name new for the asset
(``EGeneral:Invalid arguments:key``), and an account holds at most 100 per asset
(``EFunding:Too many addresses``). ``RemoveWithdrawAddress`` (asset, key, otp) answers
true (``EFunding:Unknown withdraw key`` if there is none); withdrawals already requested
keep their address.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from sqlalchemy import Row

from cambio.api.keys import (
    AddressTaken,
    InvalidAddress,
    KeyStore,
    SecondFactorRefused,
    TooManyAddresses,
)
from cambio.api.kraken.errors import KrakenError
from cambio.api.kraken.history import History
from cambio.api.kraken.params import flag, optional_integer
from cambio.api.kraken.trading import Trading
from cambio.custody.adapter import CustodyAdapter, Incoming
from cambio.custody.simchain import address_like
from cambio.model.commands import RequestWithdrawal, ReturnWithdrawal
from cambio.model.config import AssetSpec, MarketConfig
from cambio.model.decimals import DecimalFormatError, format_units, to_units
from cambio.runtime.host import EngineHost

Params = dict[str, Any]
DEPOSIT_PAGE = 25
WITHDRAWAL_PAGE = 500
_REFID_ALPHABET = string.ascii_letters + string.digits
# SecondFactorRefused.reason -> the answer. Kraken's reference lists no OTP error (clients'
# issue trackers show Kraken answering a bad OTP with EAPI:Invalid signature, which sends
# people hunting signing bugs): "EAPI:Invalid OTP" names the cause in Kraken's form. The
# policy refusal keeps Kraken's "Permission denied" in front with the reason after it, as
# Kraken's own "EEarnings:Permission denied:..." does; python-kraken-sdk matches it as a
# substring (KrakenPermissionDeniedError), ccxt as a plain ExchangeError.
OTP_ERRORS = {
    "missing": "EAPI:Invalid OTP",
    "invalid": "EAPI:Invalid OTP",
    "locked": "EGeneral:Temporary lockout",
    "not-enrolled": "EGeneral:Permission denied:two-factor authentication required",
}


def refid() -> str:
    """A new funding reference in Kraken's current shape (``FTQcuak-V6Za8qrWnhzTx67yYHz8Tg``)."""
    pick = secrets.choice
    return (
        "F"
        + "".join(pick(_REFID_ALPHABET) for _ in range(6))
        + "-"
        + "".join(pick(_REFID_ALPHABET) for _ in range(22))
    )


def _otp(params: Params) -> str | None:
    """The `otp` parameter as text (a JSON body may send it as a number), None if absent."""
    value = params.get("otp")
    return None if value is None or value == "" else str(value)


def _text(params: Params, name: str) -> str:
    """A string parameter ("" if absent); a list or an object is refused, not stringified."""
    value = params.get(name)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    raise KrakenError(f"EGeneral:Invalid arguments:{name}")


class FundingApi:
    def __init__(
        self,
        config: MarketConfig,
        host: Callable[[], EngineHost],
        trading: Trading,
        current: Callable[[], Awaitable[None]],
        history: History,
        keys: KeyStore,
        custody: CustodyAdapter | None = None,
        require_2fa: bool = False,
        pending: Callable[[int], list[Incoming]] | None = None,
    ) -> None:
        self.config = config
        self.custody = custody
        self.pending = pending  # the funding worker's deposits not yet credited
        # the policy: TOTP mandatory to withdraw and to add withdrawal addresses
        self.require_2fa = require_2fa
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
        custody = self.custody
        if custody is None:
            make = partial(address_like, asset.network)
        else:
            make = partial(custody.new_address, asset.id, f"account {account}")
        found = self.keys.deposit_addresses(account, asset.id, make, flag(params, "new"))
        out = []
        for address, made in found:
            entry: dict[str, Any] = {"address": address, "expiretm": "0"}
            if made:
                entry["new"] = True
            out.append(entry)
        return out

    async def deposit_status(self, account: int, params: Params) -> Any:
        found = await self._status(account, params, "deposit", DEPOSIT_PAGE, "deposit")
        if self.pending is None or (isinstance(found, dict) and params.get("cursor") != "true"):
            return found  # deposits on their way are on the first page only
        asset = self._asset(params).id if params.get("asset") else None
        arriving = [
            self._arriving(tx) for tx in reversed(self.pending(account))
            if asset is None or tx.asset == asset
        ]  # fmt: skip
        if isinstance(found, dict):
            found["deposit"] = arriving + found["deposit"]
            return found
        return arriving + found

    def _arriving(self, tx: Incoming) -> dict[str, Any]:
        """A deposit custody has seen and the ledger has not credited yet."""
        asset = self.config.asset(tx.asset)
        return {
            "method": asset.method, "aclass": "currency", "asset": asset.id, "refid": tx.txid,
            "txid": tx.txid, "info": tx.address, "amount": self._text(asset, tx.amount),
            "fee": self._text(asset, 0), "time": int(tx.seen_at), "status": "Pending",
            "confirmations": tx.confirmations, "confirmations_needed": asset.confirmations,
        }  # fmt: skip

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
        self._policy(account)
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
        self._second_factor(account, params)  # last check: a refusal above keeps the code
        ref = refid()
        cmd = RequestWithdrawal(
            account=account, asset=asset.id, amount=amount, fee=asset.withdraw_fee, ref=ref,
            key=key, address=address,
        )  # fmt: skip
        await self.trading.run(cmd)
        return {"refid": ref}

    def _policy(self, account: int) -> None:
        """Under the policy an account without TOTP is refused first, like a key without
        the permission: whatever else the request says, the answer is the same."""
        if self.require_2fa and not self.keys.totp_enabled(account):
            raise KrakenError(OTP_ERRORS["not-enrolled"])

    def _second_factor(self, account: int, params: Params) -> None:
        try:
            self.keys.second_factor(account, _otp(params), required=self.require_2fa)
        except SecondFactorRefused as exc:
            raise KrakenError(OTP_ERRORS[exc.reason]) from None

    async def add_withdraw_address(self, account: int, params: Params) -> Any:
        """cambio's extension: register a withdrawal address under a name (`key`)."""
        self._policy(account)
        asset = self._asset(params)
        key, address = _text(params, "key"), _text(params, "address")
        try:
            self.keys.add_withdraw_address(
                account, asset.id, key, address, otp=_otp(params), require_otp=self.require_2fa
            )
        except InvalidAddress as exc:
            raise KrakenError(f"EGeneral:Invalid arguments:{exc.field}") from None
        except AddressTaken:
            raise KrakenError("EGeneral:Invalid arguments:key") from None
        except TooManyAddresses:
            raise KrakenError("EFunding:Too many addresses") from None
        except SecondFactorRefused as exc:
            raise KrakenError(OTP_ERRORS[exc.reason]) from None
        return {"address": address, "asset": asset.id, "method": asset.method, "key": key,
                "verified": True}  # fmt: skip

    async def remove_withdraw_address(self, account: int, params: Params) -> Any:
        """cambio's extension: forget the withdrawal address named `key`."""
        asset = self._asset(params)
        key = _text(params, "key")
        try:
            removed = self.keys.remove_withdraw_address(account, asset.id, key, otp=_otp(params))
        except SecondFactorRefused as exc:
            raise KrakenError(OTP_ERRORS[exc.reason]) from None
        if not removed:
            raise KrakenError("EFunding:Unknown withdraw key")
        return True

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
