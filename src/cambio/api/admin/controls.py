"""Operator endpoints for market modes, funding switches, halt and resume, and the
monitor's alerts."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from cambio.api.admin.context import (
    AdminContext,
    AdminError,
    body_of,
    endpoint,
    reason_of,
    switch,
)
from cambio.model.commands import (
    MAINTENANCE,
    MODES,
    Command,
    Halt,
    Resume,
    SetFunding,
    SetGlobalMode,
    SetMarketMode,
)


def routes(ctx: AdminContext) -> list[Route]:
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
        return {"seq": await ctx.applied(cmd, "mode"), "mode": mode, "pair": pair}

    async def set_funding(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        deposits, withdrawals = switch(body, "deposits"), switch(body, "withdrawals")
        if deposits is None and withdrawals is None:
            raise AdminError("turn deposits or withdrawals on or off")
        asset, reason = str(body.get("asset")), reason_of(body)
        # "all": one command per asset, as after a halt when every withdrawal comes back
        assets = [a.id for a in ctx.config.assets] if asset == "all" else [asset]
        seqs = []
        for name in assets:
            cmd = SetFunding(asset=name, deposits=deposits, withdrawals=withdrawals,
                             reason=reason)  # fmt: skip
            seqs.append(await ctx.applied(cmd, "funding"))
        shown = "all" if asset == "all" else ctx.config.asset(asset).id
        return {"seq": seqs[-1], "asset": shown, "deposits": deposits,
                "withdrawals": withdrawals}  # fmt: skip

    async def halt(request: Request) -> dict[str, Any]:
        reason = reason_of(await body_of(request))
        return {"seq": await ctx.applied(Halt(reason=reason), "halt"), "global_mode": MAINTENANCE}

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
        seq = await ctx.applied(cmd, "resume")
        return {"seq": seq, "staged": staged, **durations,
                "global_mode": ctx.service.host.query("status")["global"]}  # fmt: skip

    async def alerts(request: Request) -> dict[str, Any]:
        if ctx.monitor is None:
            raise AdminError("no monitor on this server")
        return ctx.monitor.report()

    return [
        Route("/v1/mode", endpoint(set_mode), methods=["POST"]),
        Route("/v1/funding", endpoint(set_funding), methods=["POST"]),
        Route("/v1/halt", endpoint(halt), methods=["POST"]),
        Route("/v1/resume", endpoint(resume), methods=["POST"]),
        Route("/v1/alerts", endpoint(alerts), methods=["GET"]),
    ]
