"""Operator endpoints for accounts, their second factor (TOTP), API keys, deposits,
withdrawal addresses and withdrawals."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from cambio.api.admin.context import (
    AdminContext,
    AdminError,
    body_of,
    endpoint,
    permissions_of,
    reason_of,
)
from cambio.api.kraken.limits import DEFAULT_TIER
from cambio.model.commands import CompleteWithdrawal, ReturnWithdrawal
from cambio.model.decimals import format_units


def routes(ctx: AdminContext) -> list[Route]:
    config, keys = ctx.config, ctx.keys

    async def deposit(account: int, asset: str, amount: str) -> dict[str, Any]:
        seq = await ctx.applied(ctx.deposit_command(account, asset, amount), "deposit")
        return {"asset": config.asset(asset).id, "amount": amount, "seq": seq}

    async def create_account(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise AdminError("name: a non-empty string")
        deposits = body.get("deposits") or {}
        if not isinstance(deposits, dict):
            raise AdminError("deposits: an object of asset: amount")
        permissions = permissions_of(body)
        tier = str(body.get("tier") or DEFAULT_TIER)  # checked by create_account, first
        for asset, amount in deposits.items():  # all checked before anything changes
            ctx.deposit_command(0, asset, amount)
        account = keys.create_account(name, tier)
        key = keys.create_key(account, permissions)
        done = [await deposit(account, a, amt) for a, amt in deposits.items()]
        return {
            "account": account,
            "api_key": key.api_key,
            "api_secret": key.secret,
            "permissions": sorted(key.permissions),
            "tier": tier,
            "deposits": done,
        }

    async def set_tier(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        account = ctx.account_of(body.get("account"))
        tier = str(body.get("tier"))
        keys.set_tier(account, tier)
        return {"account": account, "tier": tier}

    async def add_address(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        account = ctx.account_of(body.get("account"))
        try:
            asset = config.asset(str(body.get("asset"))).id
        except KeyError:
            raise AdminError(f"unknown asset {body.get('asset')!r}") from None
        key, address = str(body.get("key") or ""), str(body.get("address") or "")
        otp = body.get("otp")
        # the holder's code even here: the operator acts for the holder, and under the
        # policy no address is added without the holder's second factor
        keys.add_withdraw_address(
            account, asset, key, address, otp=None if otp in (None, "") else str(otp),
            require_otp=ctx.require_2fa_withdrawals,
        )  # fmt: skip
        return {"account": account, "asset": asset, "key": key, "address": address}

    async def totp_enable(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        made = keys.totp_enable(ctx.account_of(body.get("account")))
        return {"account": made.account, "secret": made.secret, "uri": made.uri}

    async def totp_disable(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        account = ctx.account_of(body.get("account"))
        reason = reason_of(body)
        if not keys.totp_disable(account, reason):
            raise AdminError(f"account {account} has no TOTP enabled")
        return {"account": account, "disabled": True, "reason": reason}

    async def list_withdrawals(request: Request) -> dict[str, Any]:
        await ctx.service.read_models_current()
        status = request.query_params.get("status", "Pending")
        rows = ctx.history.funding(None, "withdrawal", status=status or None, limit=1000)
        return {
            "withdrawals": [
                {
                    "refid": r.refid,
                    "account": r.account,
                    "asset": r.asset,
                    "amount": format_units(r.amount, config.asset(r.asset).units),
                    "fee": format_units(r.fee, config.asset(r.asset).units),
                    "key": r.key,
                    "address": r.address,
                    "status": r.status,
                    "txid": r.txid,
                    "time": r.opened_ts / 1e9,
                }
                for r in rows
            ]
        }

    async def settle(cmd: CompleteWithdrawal | ReturnWithdrawal) -> dict[str, Any]:
        return {"refid": cmd.ref, "seq": await ctx.applied(cmd, "withdrawal")}

    async def complete_withdrawal(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        return await settle(
            CompleteWithdrawal(ref=str(body.get("refid", "")), txid=str(body.get("txid") or ""))
        )

    async def return_withdrawal(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        reason = str(body.get("reason") or "returned by the operator")
        return await settle(ReturnWithdrawal(ref=str(body.get("refid", "")), reason=reason))

    async def create_deposit(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        return await deposit(
            ctx.account_of(body.get("account")), str(body.get("asset")), str(body.get("amount"))
        )

    async def create_key(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        account = ctx.account_of(body.get("account"))
        key = keys.create_key(account, permissions_of(body))
        return {"account": account, "api_key": key.api_key, "api_secret": key.secret}

    async def revoke_key(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        return {"revoked": keys.revoke(str(body.get("api_key", "")))}

    return [
        Route("/v1/accounts", endpoint(create_account), methods=["POST"]),
        Route("/v1/accounts/tier", endpoint(set_tier), methods=["POST"]),
        Route("/v1/accounts/totp", endpoint(totp_enable), methods=["POST"]),
        Route("/v1/accounts/totp/disable", endpoint(totp_disable), methods=["POST"]),
        Route("/v1/deposits", endpoint(create_deposit), methods=["POST"]),
        Route("/v1/withdraw-addresses", endpoint(add_address), methods=["POST"]),
        Route("/v1/withdrawals", endpoint(list_withdrawals), methods=["GET"]),
        Route("/v1/withdrawals/complete", endpoint(complete_withdrawal), methods=["POST"]),
        Route("/v1/withdrawals/return", endpoint(return_withdrawal), methods=["POST"]),
        Route("/v1/keys", endpoint(create_key), methods=["POST"]),
        Route("/v1/keys/revoke", endpoint(revoke_key), methods=["POST"]),
    ]
