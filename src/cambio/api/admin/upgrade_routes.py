"""Operator endpoints for engine upgrades (cambio.upgrade.manager does the work)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from cambio.api.admin.context import AdminContext, AdminError, body_of, endpoint, iso_time
from cambio.upgrade.manager import UpgradeManager


def routes(ctx: AdminContext) -> list[Route]:
    def manager() -> UpgradeManager:
        if ctx.upgrades is None:
            raise AdminError("engine upgrades are not available on this server")
        return ctx.upgrades

    async def status(request: Request) -> dict[str, Any]:
        return manager().status()

    async def schedule(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        when = iso_time(str(body.get("at", "")), "at", ", e.g. 2026-12-01T02:00Z")
        return await manager().schedule(when, str(body.get("note") or ""))

    async def shadow(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        start = body.get("from", "snapshot")
        if start not in ("snapshot", "genesis") or not isinstance(body.get("candidate"), str):
            raise AdminError("give a candidate path, and from: snapshot or genesis")
        return await manager().start_shadow(body["candidate"], start == "snapshot")

    async def rehearsal(request: Request) -> dict[str, Any]:
        return await manager().rehearsal(await body_of(request))

    async def cutover(request: Request) -> dict[str, Any]:
        return await manager().cut_over(str((await body_of(request)).get("policy", "rollback")))

    async def rollback(request: Request) -> dict[str, Any]:
        reason = str((await body_of(request)).get("reason") or "operator's decision")
        return await manager().roll_back(reason)

    async def complete(request: Request) -> dict[str, Any]:
        return await manager().complete()

    async def abort(request: Request) -> dict[str, Any]:
        reason = str((await body_of(request)).get("reason") or "operator's decision")
        return await manager().abort(reason)

    return [
        Route("/v1/upgrade", endpoint(status), methods=["GET"]),
        Route("/v1/upgrade/rehearsal", endpoint(rehearsal), methods=["POST"]),
        Route("/v1/upgrade/schedule", endpoint(schedule), methods=["POST"]),
        Route("/v1/upgrade/shadow", endpoint(shadow), methods=["POST"]),
        Route("/v1/upgrade/cutover", endpoint(cutover), methods=["POST"]),
        Route("/v1/upgrade/rollback", endpoint(rollback), methods=["POST"]),
        Route("/v1/upgrade/complete", endpoint(complete), methods=["POST"]),
        Route("/v1/upgrade/abort", endpoint(abort), methods=["POST"]),
    ]
