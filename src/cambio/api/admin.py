"""The operator API: loopback only, bearer token from DIR/admin.token (mode 0600).

    POST /v1/commands        a command as JSON ({"type": "deposit", "account": 1, ...}, the
                             msgspec form of cambio.model.commands); answers once it is
                             durable and applied: {"seq": n, "events": [[tag, ...], ...]}
    POST /v1/accounts        {"name", "deposits": {asset: "decimal"}, "permissions": [...]}
                             -> {"account", "api_key", "api_secret", "deposits": [...]}
                             ("tier": starter|intermediate|pro|unlimited, default pro)
    POST /v1/accounts/tier   {"account": id or name, "tier"}: rate limits, at once
    POST /v1/deposits        {"account": id or name, "asset", "amount": "decimal"}
    POST /v1/withdraw-addresses  {"account", "asset", "key", "address"}: where the account
                             may withdraw to, under a name (Kraken's withdrawal key)
    GET  /v1/withdrawals     ?status=Pending (default; "" for all): the withdrawals
    POST /v1/withdrawals/complete  {"refid", "txid"}: it left on the network
    POST /v1/withdrawals/return    {"refid", "reason"}: refused or failed; funds released
    POST /v1/keys            {"account": id or name, "permissions": [...]}
                             -> {"account", "api_key", "api_secret"}
    POST /v1/keys/revoke     {"api_key"} -> {"revoked": bool}
    GET  /v1/state           applied seq, journal position, state hash, hash chain
    POST /v1/snapshot        take a snapshot now; its seq
    POST /v1/mode            {"mode", "pair"?, "reason"}: a market's mode, or the global one
    POST /v1/funding         {"asset", "deposits"?: bool, "withdrawals"?: bool, "reason"}
    POST /v1/halt            {"reason"}: every market to maintenance, withdrawals off;
                             orders, balances and pending withdrawals stay as they are
    POST /v1/resume          {"reason", "staged"?, "cancel_only_s"?, "post_only_s"?}:
                             online at once, or cancel_only -> post_only -> online
    POST /v1/promotions      {"maker", "taker" (percent), "until" (ISO or month-end),
                             "start"?, "scope"? spot|margin|all, "pairs"?, "accounts"?,
                             "reason"}: a fee promotion
    GET  /v1/promotions      every promotion: state, rates in percent, times in ISO
    POST /v1/promotions/end  {"promo_id", "reason"}
    GET  /v1/alerts          the monitor's breaches (newest first) and settings
    GET  /metrics            Prometheus text format (cambio.ops.metrics), same token
    GET  /v1/upgrade         the engine upgrade: phase, candidate, shadow lag and
                             divergence, last cutover and rollback (cambio.upgrade.manager)
    POST /v1/upgrade/rehearsal  {"state": started|progress|finished, ...}: a rehearsal
                             run beside this server reports (cambio upgrade rehearse)
    POST /v1/upgrade/schedule  {"at": ISO time, "note"}: announce the cutover window
    POST /v1/upgrade/shadow  {"candidate": path, "from": "snapshot"|"genesis"}
    POST /v1/upgrade/cutover {"policy": "rollback"|"cancel_only"}
    POST /v1/upgrade/rollback {"reason"}   POST /v1/upgrade/complete
    POST /v1/upgrade/abort   {"reason"}

Every answer uses Kraken's envelope ({"error": [...], "result": ...}); the sequencer's
seq and ts overwrite whatever a submitted command carries. Assets are Kraken ids or
altnames (XXBT or XBT); amounts are decimal strings.
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from cambio.api.envelope import error, halted, ok
from cambio.api.keys import (
    DEFAULT_PERMISSIONS,
    KeyStore,
    KeyStoreError,
    check_permissions,
)
from cambio.api.kraken.history import History
from cambio.api.kraken.limits import DEFAULT_TIER
from cambio.model.commands import (
    MAINTENANCE,
    MODES,
    AnyCommand,
    Command,
    CompleteWithdrawal,
    CreatePromotion,
    Deposit,
    EndPromotion,
    Halt,
    Resume,
    ReturnWithdrawal,
    SetFunding,
    SetGlobalMode,
    SetMarketMode,
)
from cambio.model.decimals import format_units, to_units
from cambio.model.events import CommandRejected
from cambio.ops.metrics import CONTENT_TYPE, Metrics
from cambio.ops.monitor import Monitor
from cambio.runtime.sequencer import InvalidCommand, SequencerStopped
from cambio.runtime.service import ExchangeService
from cambio.upgrade.manager import UpgradeManager, UpgradeRefused

_command = msgspec.json.Decoder(AnyCommand)


class AdminError(Exception):
    """A request the operator API refuses: answered as EGeneral:Invalid arguments."""


class BearerToken:
    """Refuses every request that does not carry ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                await error("EAPI:Invalid key", status_code=401)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def iso_time(text: str, name: str, also: str = "") -> datetime:
    """An ISO time that names its zone (an operator's "02:00" is ambiguous)."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise AdminError(f"{name}: an ISO time with its zone{also}") from None
    if when.tzinfo is None:
        raise AdminError(f"{name}: give the time zone (Z or +hh:mm)")
    return when


def instant(text: str, now: datetime, name: str) -> int:
    """An ISO time with its zone, or "month-end" (the first instant of next month, UTC),
    as ns since the epoch."""
    if text == "month-end":
        first = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        when = (first + timedelta(days=32)).replace(day=1)
    else:
        when = iso_time(text, name, ", or month-end")
    return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000


def shown_promotion(p: dict[str, Any]) -> dict[str, Any]:
    """A promotion as the operator reads it: percentages and ISO times."""

    def iso(ns: int) -> str | None:
        return datetime.fromtimestamp(ns / 1e9, UTC).isoformat() if ns else None

    shown = {
        k: v for k, v in p.items() if k not in ("maker_ppm", "taker_ppm", "start_ts", "end_ts")
    }
    return shown | {
        "maker": str(Decimal(p["maker_ppm"]) / 10_000),
        "taker": str(Decimal(p["taker_ppm"]) / 10_000),
        "start": iso(p["start_ts"]),
        "until": iso(p["end_ts"]),
    }


def admin_app(
    service: ExchangeService,
    keys: KeyStore,
    history: History,
    token: str,
    upgrades: UpgradeManager | None = None,
    metrics: Metrics | None = None,
    monitor: Monitor | None = None,
) -> ASGIApp:
    config = service.config

    def account_of(value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if isinstance(value, str):
            found = keys.account_named(value)
            if found is not None:
                return found
        raise AdminError(f"unknown account {value!r}")

    def deposit_command(account: int, asset_name: str, amount: str) -> Deposit:
        try:
            asset = config.asset(asset_name)
        except KeyError:
            raise AdminError(f"unknown asset {asset_name!r}") from None
        try:
            units = to_units(str(amount), asset.units)
        except ValueError as exc:
            raise AdminError(f"amount: {exc}") from None
        if units <= 0:
            raise AdminError(f"amount: {amount} is not positive")
        ref = f"admin-{account}-{asset.id}-{time.time_ns()}"
        return Deposit(account=account, asset=asset.id, amount=units, ref=ref)

    async def body_of(request: Request) -> dict[str, Any]:
        try:
            value = json.loads(await request.body() or b"{}")
        except (ValueError, RecursionError) as exc:
            raise AdminError(f"body: {exc}") from None
        if not isinstance(value, dict):
            raise AdminError("body must be a JSON object")
        return value

    def permissions_of(body: dict[str, Any]) -> tuple[str, ...]:
        value = body.get("permissions") or list(DEFAULT_PERMISSIONS)
        if isinstance(value, str):
            value = [p for p in value.split(",") if p]
        permissions = tuple(str(p) for p in value)
        check_permissions(permissions)  # before anything is created
        return permissions

    async def applied(cmd: Command, what: str) -> int:
        """The command's seq once applied; the engine's refusal as an AdminError."""
        seq, events = await service.execute(cmd)
        if events and isinstance(events[0], CommandRejected):
            raise AdminError(f"{what} refused: {events[0].error}")
        return seq

    async def deposit(account: int, asset: str, amount: str) -> dict[str, Any]:
        seq = await applied(deposit_command(account, asset, amount), "deposit")
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
            deposit_command(0, asset, amount)
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
        account = account_of(body.get("account"))
        tier = str(body.get("tier"))
        keys.set_tier(account, tier)
        return {"account": account, "tier": tier}

    async def add_address(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        account = account_of(body.get("account"))
        try:
            asset = config.asset(str(body.get("asset"))).id
        except KeyError:
            raise AdminError(f"unknown asset {body.get('asset')!r}") from None
        key, address = str(body.get("key") or ""), str(body.get("address") or "")
        keys.add_withdraw_address(account, asset, key, address)
        return {"account": account, "asset": asset, "key": key, "address": address}

    async def list_withdrawals(request: Request) -> dict[str, Any]:
        await service.read_models_current()
        status = request.query_params.get("status", "Pending")
        rows = history.funding(None, "withdrawal", status=status or None, limit=1000)
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
        return {"refid": cmd.ref, "seq": await applied(cmd, "withdrawal")}

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
            account_of(body.get("account")), str(body.get("asset")), str(body.get("amount"))
        )

    async def create_key(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        account = account_of(body.get("account"))
        key = keys.create_key(account, permissions_of(body))
        return {"account": account, "api_key": key.api_key, "api_secret": key.secret}

    async def revoke_key(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        return {"revoked": keys.revoke(str(body.get("api_key", "")))}

    async def commands(request: Request) -> dict[str, Any]:
        try:
            cmd = _command.decode(await request.body())
        except msgspec.DecodeError as exc:
            raise AdminError(str(exc)) from None
        seq, events = await service.execute(cmd)
        return {"seq": seq, "events": events}

    async def state(request: Request) -> dict[str, Any]:
        assert service.sequencer is not None and service.recovered is not None
        journal = service.recovered.journal
        return {
            "applied_seq": service.sequencer.applied_seq,
            "journal_seq": journal.last_seq,
            "events_recorded_seq": journal.outputs_through,
            "projected_seq": service.projection.projected_seq if service.projection else 0,
            "state_hash": service.host.state_hash(),
            "chain": service.host.chain(),
            "group_commits": service.sequencer.batches,
        }

    async def snapshot(request: Request) -> dict[str, Any]:
        return {"seq": await service.snapshot_now()}

    # ------------------------------------------------------------------ controls
    def reason_of(body: dict[str, Any]) -> str:
        reason = body.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise AdminError("reason: say why, in a line the status page can show")
        return reason.strip()

    def switch(body: dict[str, Any], name: str) -> bool | None:
        value = body.get(name)
        if value is None or isinstance(value, bool):
            return value
        raise AdminError(f"{name}: true or false")

    async def set_mode(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        mode, reason, pair = body.get("mode"), reason_of(body), body.get("pair")
        if mode not in MODES:
            raise AdminError(f"mode: one of {', '.join(MODES)}")
        cmd: Command = (
            SetGlobalMode(mode=mode, reason=reason)
            if pair is None
            else SetMarketMode(pair=str(pair), mode=mode, reason=reason)
        )
        return {"seq": await applied(cmd, "mode"), "mode": mode, "pair": pair}

    async def set_funding(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        deposits, withdrawals = switch(body, "deposits"), switch(body, "withdrawals")
        if deposits is None and withdrawals is None:
            raise AdminError("turn deposits or withdrawals on or off")
        cmd = SetFunding(asset=str(body.get("asset")), deposits=deposits,
                         withdrawals=withdrawals, reason=reason_of(body))  # fmt: skip
        return {"seq": await applied(cmd, "funding"), "asset": config.asset(cmd.asset).id,
                "deposits": deposits, "withdrawals": withdrawals}  # fmt: skip

    async def halt(request: Request) -> dict[str, Any]:
        reason = reason_of(await body_of(request))
        return {"seq": await applied(Halt(reason=reason), "halt"), "global_mode": MAINTENANCE}

    async def resume(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        staged = switch(body, "staged") or False
        durations = {}
        for name in ("cancel_only_s", "post_only_s"):
            value = body.get(name, 300)
            if not isinstance(value, int) or isinstance(value, bool):
                raise AdminError(f"{name}: whole seconds")
            durations[name] = value
        cmd = Resume(reason=reason_of(body), staged=staged, **durations)
        seq = await applied(cmd, "resume")
        return {"seq": seq, "staged": staged, **durations,
                "global_mode": service.host.query("status")["global"]}  # fmt: skip

    # ------------------------------------------------------------------ fee promotions
    def percent(body: dict[str, Any], name: str) -> int:
        try:
            ppm = Decimal(str(body.get(name))) * 10_000
        except ArithmeticError:
            raise AdminError(f"{name}: a percentage, e.g. 0 or 0.1") from None
        if not ppm.is_finite() or ppm != ppm.to_integral_value() or not 0 <= ppm <= 1_000_000:
            raise AdminError(f"{name}: a percentage from 0 to 100, at most 4 decimals")
        return int(ppm)

    async def create_promotion(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        now = datetime.now(UTC)
        end = instant(str(body.get("until", "")), now, "until")
        start = instant(str(body["start"]), now, "start") if body.get("start") else 0
        cmd = CreatePromotion(
            promo_id=f"promo-{secrets.token_hex(4)}",
            maker_ppm=percent(body, "maker"),
            taker_ppm=percent(body, "taker"),
            end_ts=end,
            start_ts=start,
            scope=str(body.get("scope", "spot")),
            pairs=[str(p) for p in body.get("pairs") or []],
            accounts=[account_of(a) for a in body.get("accounts") or []],
            reason=reason_of(body),
        )
        seq = await applied(cmd, "promotion")
        (made,) = [p for p in service.host.query("promotions") if p["promo_id"] == cmd.promo_id]
        return {"seq": seq, **shown_promotion(made)}

    async def list_promotions(request: Request) -> dict[str, Any]:
        return {"promotions": [shown_promotion(p) for p in service.host.query("promotions")]}

    async def end_promotion(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        cmd = EndPromotion(promo_id=str(body.get("promo_id")), reason=reason_of(body))
        return {"seq": await applied(cmd, "ending the promotion"), "promo_id": cmd.promo_id}

    def manager() -> UpgradeManager:
        if upgrades is None:
            raise AdminError("engine upgrades are not available on this server")
        return upgrades

    async def upgrade_status(request: Request) -> dict[str, Any]:
        return manager().status()

    async def upgrade_schedule(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        when = iso_time(str(body.get("at", "")), "at", ", e.g. 2026-12-01T02:00Z")
        return await manager().schedule(when, str(body.get("note") or ""))

    async def upgrade_shadow(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        start = body.get("from", "snapshot")
        if start not in ("snapshot", "genesis") or not isinstance(body.get("candidate"), str):
            raise AdminError("give a candidate path, and from: snapshot or genesis")
        return await manager().start_shadow(body["candidate"], start == "snapshot")

    async def upgrade_rehearsal(request: Request) -> dict[str, Any]:
        return await manager().rehearsal(await body_of(request))

    async def upgrade_cutover(request: Request) -> dict[str, Any]:
        return await manager().cut_over(str((await body_of(request)).get("policy", "rollback")))

    async def upgrade_rollback(request: Request) -> dict[str, Any]:
        reason = str((await body_of(request)).get("reason") or "operator's decision")
        return await manager().roll_back(reason)

    async def upgrade_complete(request: Request) -> dict[str, Any]:
        return await manager().complete()

    async def upgrade_abort(request: Request) -> dict[str, Any]:
        reason = str((await body_of(request)).get("reason") or "operator's decision")
        return await manager().abort(reason)

    async def alerts(request: Request) -> dict[str, Any]:
        if monitor is None:
            raise AdminError("no monitor on this server")
        return monitor.report()

    async def prometheus(request: Request) -> Response:
        if metrics is None:
            return Response("no metrics on this server\n", status_code=404)
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    def endpoint(handler: Any) -> Any:
        async def run(request: Request) -> Response:
            try:
                return ok(await handler(request))
            except (AdminError, KeyStoreError, InvalidCommand) as exc:
                return error(f"EGeneral:Invalid arguments:{exc}")
            except UpgradeRefused as exc:
                return error(f"EUpgrade:{exc}")
            except SequencerStopped as exc:
                return error(*halted(exc))

        return run

    app = Starlette(
        routes=[
            Route("/v1/commands", endpoint(commands), methods=["POST"]),
            Route("/v1/accounts", endpoint(create_account), methods=["POST"]),
            Route("/v1/accounts/tier", endpoint(set_tier), methods=["POST"]),
            Route("/v1/deposits", endpoint(create_deposit), methods=["POST"]),
            Route("/v1/withdraw-addresses", endpoint(add_address), methods=["POST"]),
            Route("/v1/withdrawals", endpoint(list_withdrawals), methods=["GET"]),
            Route("/v1/withdrawals/complete", endpoint(complete_withdrawal), methods=["POST"]),
            Route("/v1/withdrawals/return", endpoint(return_withdrawal), methods=["POST"]),
            Route("/v1/keys", endpoint(create_key), methods=["POST"]),
            Route("/v1/keys/revoke", endpoint(revoke_key), methods=["POST"]),
            Route("/v1/state", endpoint(state), methods=["GET"]),
            Route("/v1/snapshot", endpoint(snapshot), methods=["POST"]),
            Route("/metrics", prometheus, methods=["GET"]),
            Route("/v1/alerts", endpoint(alerts), methods=["GET"]),
            Route("/v1/promotions", endpoint(create_promotion), methods=["POST"]),
            Route("/v1/promotions", endpoint(list_promotions), methods=["GET"]),
            Route("/v1/promotions/end", endpoint(end_promotion), methods=["POST"]),
            Route("/v1/mode", endpoint(set_mode), methods=["POST"]),
            Route("/v1/funding", endpoint(set_funding), methods=["POST"]),
            Route("/v1/halt", endpoint(halt), methods=["POST"]),
            Route("/v1/resume", endpoint(resume), methods=["POST"]),
            Route("/v1/upgrade", endpoint(upgrade_status), methods=["GET"]),
            Route("/v1/upgrade/rehearsal", endpoint(upgrade_rehearsal), methods=["POST"]),
            Route("/v1/upgrade/schedule", endpoint(upgrade_schedule), methods=["POST"]),
            Route("/v1/upgrade/shadow", endpoint(upgrade_shadow), methods=["POST"]),
            Route("/v1/upgrade/cutover", endpoint(upgrade_cutover), methods=["POST"]),
            Route("/v1/upgrade/rollback", endpoint(upgrade_rollback), methods=["POST"]),
            Route("/v1/upgrade/complete", endpoint(upgrade_complete), methods=["POST"]),
            Route("/v1/upgrade/abort", endpoint(upgrade_abort), methods=["POST"]),
        ]
    )
    return BearerToken(app, token)
