"""Operator endpoints on the engine itself: raw commands, state and hashes, snapshots,
and Prometheus metrics."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cambio.api.admin.context import AdminContext, AdminError, endpoint
from cambio.model.commands import AnyCommand
from cambio.ops.metrics import CONTENT_TYPE

_command = msgspec.json.Decoder(AnyCommand)


def routes(ctx: AdminContext) -> list[Route]:
    service = ctx.service

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

    async def prometheus(request: Request) -> Response:
        if ctx.metrics is None:
            return Response("no metrics on this server\n", status_code=404)
        return Response(ctx.metrics.render(), media_type=CONTENT_TYPE)

    return [
        Route("/v1/commands", endpoint(commands), methods=["POST"]),
        Route("/v1/state", endpoint(state), methods=["GET"]),
        Route("/v1/snapshot", endpoint(snapshot), methods=["POST"]),
        Route("/metrics", prometheus, methods=["GET"]),
    ]
