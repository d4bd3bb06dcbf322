"""Operator endpoint for compensation: what a promotion or an outage cost each account,
computed from the journal (cambio.ops.compensate), and optionally credited.

The computation reads the server's own journal, read-only, in a worker thread (a big
journal takes a while, and the event loop keeps serving meanwhile). Credits are Transfer
commands from the fee account, kind ``credit``, with the operator's reason and a ref per
compensation, account and asset, which the engine accepts once: a second run of the same
compensation reports those credits as already paid instead of paying them again.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
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
    switch,
)
from cambio.model import errors as E
from cambio.model.commands import SCOPE_ALL, Tick, Transfer
from cambio.model.decimals import format_units
from cambio.model.events import CommandRejected, Transferred
from cambio.model.ledger import FEE_ACCOUNT
from cambio.ops.compensate import (
    CREDIT_KIND,
    WAIVED,
    Compensation,
    CompensationError,
    Query,
    compensate_journal,
    credit_ref,
    parse_percent,
)
from cambio.runtime.service import ExchangeService


async def journal_complete(service: ExchangeService) -> int:
    """A seq up to which the journal now records every command's events, and every
    command sequenced before this call is at or before it.

    A batch's events ride along with the next journal write. A first Tick marks "now";
    a second one, sequenced once the first is applied, is written with the events of
    everything up to the first (unless a write in between took them, and that one was
    durable first), and is answered only once that write is durable."""
    seq, _ = await service.execute(Tick())
    await service.execute(Tick())
    return seq


def listed(body: dict[str, Any], name: str) -> list[Any]:
    """A list in the body; a string is read as comma-separated."""
    value = body.get(name) or []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list):
        raise AdminError(f"{name}: a list")
    return value


def routes(ctx: AdminContext) -> list[Route]:
    def query_of(body: dict[str, Any]) -> Query:
        now = datetime.now(UTC)
        pairs = []
        for name in listed(body, "pairs"):
            try:
                pairs.append(ctx.config.pair(str(name)).index)
            except KeyError:
                raise AdminError(f"unknown pair {name!r}") from None
        accounts = {
            ctx.account_of(int(a) if isinstance(a, str) and a.isdigit() else a)
            for a in listed(body, "accounts")
        }
        promotion = body.get("promotion")
        try:
            return Query(
                basis=str(body.get("basis")),
                from_ts=instant(str(body["from"]), now, "from") if body.get("from") else None,
                until_ts=instant(str(body["until"]), now, "until") if body.get("until") else None,
                promotion=str(promotion) if promotion else None,
                scope=str(body.get("scope") or SCOPE_ALL),
                pairs=tuple(sorted(set(pairs))),
                accounts=tuple(sorted(accounts)),
                percent_ppm=parse_percent(str(body.get("percent", "100"))),
                comp_id=str(body.get("id") or ""),
            )
        except CompensationError as exc:
            raise AdminError(str(exc)) from None

    async def pay(comp: Compensation, reason: str) -> list[dict[str, Any]]:
        """Credit every positive amount; what became of each."""
        assets = ctx.config.assets
        cmds = [
            Transfer(
                src=FEE_ACCOUNT,
                dst=account,
                asset=assets[asset].id,
                amount=units,
                kind=CREDIT_KIND,
                reason=reason,
                ref=credit_ref(comp.query.id, account, assets[asset].id),
            )
            for account, asset, units in comp.amounts()
        ]
        # submitted together, in order: the sequencer writes them in a few group commits
        answers = await asyncio.gather(*(ctx.service.execute(cmd) for cmd in cmds))
        out = []
        for cmd, (seq, events) in zip(cmds, answers, strict=True):
            spec = ctx.config.asset(cmd.asset)
            row: dict[str, Any] = {
                "account": cmd.dst, "asset": cmd.asset, "units": cmd.amount,
                "amount": format_units(cmd.amount, spec.units), "ref": cmd.ref, "seq": seq,
            }  # fmt: skip
            if events and isinstance(events[0], Transferred):
                row["status"] = "credited"
            elif events and isinstance(events[0], CommandRejected):
                if events[0].error == E.FUNDING_INVALID_REF:
                    row["status"] = "already_paid"
                else:
                    row["status"], row["error"] = "refused", events[0].error
            else:
                row["status"], row["error"] = "refused", repr(events)
            out.append(row)
        return out

    async def compensate(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        query = query_of(body)
        credit = bool(switch(body, "credit"))
        reason = reason_of(body) if credit else ""
        through = await journal_complete(ctx.service)
        assert ctx.service.recovered is not None
        journal = ctx.service.recovered.journal
        try:
            comp = await asyncio.to_thread(compensate_journal, ctx.config, journal, query, through)
        except CompensationError as exc:
            raise AdminError(str(exc)) from None
        report = comp.report(ctx.config)
        report["credit"] = credit
        if not credit:
            return report
        if not comp.closed:
            raise AdminError(
                "the window is still open (until is after now, or the promotion has not "
                "ended): trades still to come would count, so nothing is credited; give an "
                "until in the past"
            )
        if comp.problems and query.basis == WAIVED:
            raise AdminError(
                "the journal's fees do not match the rates rebuilt from it, so the waived "
                "amounts cannot be trusted; nothing is credited: " + "; ".join(comp.problems)
            )
        credits = await pay(comp, reason)
        report["reason"] = reason
        report["credits"] = credits
        report["credited"] = sum(1 for c in credits if c["status"] == "credited")
        report["already_paid"] = sum(1 for c in credits if c["status"] == "already_paid")
        report["refused"] = sum(1 for c in credits if c["status"] == "refused")
        return report

    return [Route("/v1/compensate", endpoint(compensate), methods=["POST"])]
