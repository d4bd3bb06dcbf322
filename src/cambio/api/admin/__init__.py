"""The operator API: loopback only, bearer token from DIR/admin.token (mode 0600). One
module per area: system, accounts, controls, promotions, compensation, upgrade_routes.

    POST /v1/commands        a command as JSON ({"type": "deposit", "account": 1, ...}, the
                             msgspec form of cambio.model.commands); answers once it is
                             durable and applied: {"seq": n, "events": [[tag, ...], ...]}
    POST /v1/accounts        {"name", "deposits": {asset: "decimal"}, "permissions": [...]}
                             -> {"account", "api_key", "api_secret", "deposits": [...]}
                             ("tier": starter|intermediate|pro|unlimited, default pro)
    POST /v1/accounts/tier   {"account": id or name, "tier"}: rate limits, at once
    POST /v1/deposits        {"account": id or name, "asset", "amount": "decimal"}
    POST /v1/withdraw-addresses  {"account", "asset", "key", "address", "otp"?}: where the
                             account may withdraw to, under a name (Kraken's withdrawal
                             key); "otp": the holder's current code, if TOTP is on
    POST /v1/accounts/totp   {"account"} -> {"account", "secret", "uri"}: turn the
                             account's second factor on (refused if it is on already)
    POST /v1/accounts/totp/disable  {"account", "reason"} -> {"account", "disabled"}
    GET  /v1/withdrawals     ?status=Pending (default; "" for all): the withdrawals
    POST /v1/withdrawals/complete  {"refid", "txid"}: it left on the network
    POST /v1/withdrawals/return    {"refid", "reason"}: refused or failed; funds released
    POST /v1/keys            {"account": id or name, "permissions": [...]}
                             -> {"account", "api_key", "api_secret"}
    POST /v1/keys/revoke     {"api_key"} -> {"revoked": bool}
    GET  /v1/state           applied seq, journal position, state hash, hash chain
    POST /v1/snapshot        take a snapshot now; its seq
    POST /v1/mode            {"mode", "pair"?, "reason"}: a market's mode, or the global one
    POST /v1/funding         {"asset" (or "all"), "deposits"?: bool, "withdrawals"?: bool, "reason"}
    POST /v1/halt            {"reason"}: every market to maintenance, withdrawals off;
                             orders, balances and pending withdrawals stay as they are
    POST /v1/resume          {"reason", "staged"?, "cancel_only_s"?, "post_only_s"?}:
                             online at once, or cancel_only -> post_only -> online
    POST /v1/promotions      {"maker", "taker" (percent), "until" (ISO or month-end),
                             "start"?, "scope"? spot|margin|all, "pairs"?, "accounts"?,
                             "reason"}: a fee promotion
    GET  /v1/promotions      every promotion: state, rates in percent, times in ISO
    POST /v1/promotions/end  {"promo_id", "reason"}
    POST /v1/compensate      {"basis": "fees-paid"|"waived", "from"?, "until"? (ISO with
                             zone; a window, a "promotion" id, or both), "scope"?
                             spot|margin|all, "pairs"?, "accounts"?, "percent"? (100),
                             "id"?, "credit"?: bool, "reason" (with credit)}: what each
                             account paid in fees, or what promotions waived, from the
                             journal (cambio.ops.compensate); with credit, each amount is
                             paid from the fee account as a ledger entry of type credit,
                             once per compensation id, account and asset ("credits":
                             credited, already_paid or refused, with seq and error)
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

from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from cambio.api.admin import (
    accounts,
    compensation,
    controls,
    promotions,
    system,
    upgrade_routes,
)
from cambio.api.admin.context import AdminContext
from cambio.api.envelope import error
from cambio.api.keys import KeyStore
from cambio.api.kraken.history import History
from cambio.ops.metrics import Metrics
from cambio.ops.monitor import Monitor
from cambio.runtime.service import ExchangeService
from cambio.upgrade.manager import UpgradeManager


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


def admin_app(
    service: ExchangeService,
    keys: KeyStore,
    history: History,
    token: str,
    upgrades: UpgradeManager | None = None,
    metrics: Metrics | None = None,
    monitor: Monitor | None = None,
    require_2fa_withdrawals: bool = False,
) -> ASGIApp:
    ctx = AdminContext(service, keys, history, upgrades, metrics, monitor,
                       require_2fa_withdrawals=require_2fa_withdrawals)  # fmt: skip
    areas = (system, accounts, controls, promotions, compensation, upgrade_routes)
    app = Starlette(routes=[route for area in areas for route in area.routes(ctx)])
    return BearerToken(app, token)
