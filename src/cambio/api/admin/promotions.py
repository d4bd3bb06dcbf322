"""Operator endpoints for fee promotions: rates in percent, times in ISO or month-end."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from cambio.api.admin.context import (
    AdminContext,
    AdminError,
    body_of,
    endpoint,
    instant,
    reason_of,
)
from cambio.model.commands import CreatePromotion, EndPromotion
from cambio.model.decimals import percent_text
from cambio.model.times import iso_ns


def shown_promotion(p: dict[str, Any]) -> dict[str, Any]:
    """A promotion as the operator reads it: percentages and ISO times."""
    shown = {
        k: v for k, v in p.items() if k not in ("maker_ppm", "taker_ppm", "start_ts", "end_ts")
    }
    return shown | {
        "maker": percent_text(p["maker_ppm"]),
        "taker": percent_text(p["taker_ppm"]),
        "start": iso_ns(p["start_ts"]) if p["start_ts"] else None,
        "until": iso_ns(p["end_ts"]) if p["end_ts"] else None,
    }


def percent(body: dict[str, Any], name: str) -> int:
    """A percentage in the body, as parts per million."""
    try:
        ppm = Decimal(str(body.get(name))) * 10_000
    except ArithmeticError:
        raise AdminError(f"{name}: a percentage, e.g. 0 or 0.1") from None
    if not ppm.is_finite() or ppm != ppm.to_integral_value() or not 0 <= ppm <= 1_000_000:
        raise AdminError(f"{name}: a percentage from 0 to 100, at most 4 decimals")
    return int(ppm)


def routes(ctx: AdminContext) -> list[Route]:
    def promotions() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = ctx.service.host.query("promotions")
        return found

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
            accounts=[ctx.account_of(a) for a in body.get("accounts") or []],
            reason=reason_of(body),
        )
        seq = await ctx.applied(cmd, "promotion")
        (made,) = [p for p in promotions() if p["promo_id"] == cmd.promo_id]
        return {"seq": seq, **shown_promotion(made)}

    async def list_promotions(request: Request) -> dict[str, Any]:
        return {"promotions": [shown_promotion(p) for p in promotions()]}

    async def end_promotion(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        cmd = EndPromotion(promo_id=str(body.get("promo_id")), reason=reason_of(body))
        return {"seq": await ctx.applied(cmd, "ending the promotion"), "promo_id": cmd.promo_id}

    return [
        Route("/v1/promotions", endpoint(create_promotion), methods=["POST"]),
        Route("/v1/promotions", endpoint(list_promotions), methods=["GET"]),
        Route("/v1/promotions/end", endpoint(end_promotion), methods=["POST"]),
    ]
