"""The operator API: loopback only, bearer token from DIR/admin.token (mode 0600).

    POST /v1/commands   a command as JSON ({"type": "deposit", "account": 1, ...}, the
                        msgspec form of cambio.model.commands); answers once it is
                        durable and applied: {"seq": n, "events": [[tag, fields...], ...]}
    GET  /v1/state      applied seq, journal position, state hash, hash chain
    POST /v1/snapshot   take a snapshot now; its seq

Every answer uses Kraken's envelope ({"error": [...], "result": ...}); the sequencer's
seq and ts overwrite whatever a submitted command carries.
"""

from __future__ import annotations

import hmac

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from cambio.api.envelope import error, ok
from cambio.model.commands import AnyCommand
from cambio.runtime.sequencer import InvalidCommand, OutcomeUnknown, SequencerStopped
from cambio.runtime.service import ExchangeService

_command = msgspec.json.Decoder(AnyCommand)


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


def admin_app(service: ExchangeService, token: str) -> ASGIApp:
    async def commands(request: Request) -> Response:
        assert service.sequencer is not None
        try:
            cmd = _command.decode(await request.body())
        except msgspec.DecodeError as exc:
            return error(f"EGeneral:Invalid arguments:{exc}")
        try:
            seq, events = await service.sequencer.execute(cmd)
        except InvalidCommand as exc:
            return error(f"EGeneral:Invalid arguments:{exc}")
        except OutcomeUnknown:
            # journaled before the exchange halted: the restart applies it; do not resend
            return error("EService:Unavailable", "EGeneral:Outcome unknown:journaled")
        except SequencerStopped:
            return error("EService:Unavailable")
        return ok({"seq": seq, "events": events})

    async def state(request: Request) -> Response:
        assert service.sequencer is not None and service.recovered is not None
        journal = service.recovered.journal
        return ok(
            {
                "applied_seq": service.sequencer.applied_seq,
                "journal_seq": journal.last_seq,
                "events_recorded_seq": journal.outputs_through,
                "projected_seq": service.projection.projected_seq if service.projection else 0,
                "state_hash": service.host.state_hash(),
                "chain": service.host.chain(),
                "group_commits": service.sequencer.batches,
            }
        )

    async def snapshot(request: Request) -> Response:
        try:
            return ok({"seq": await service.snapshot_now()})
        except SequencerStopped:
            return error("EService:Unavailable")

    app = Starlette(
        routes=[
            Route("/v1/commands", commands, methods=["POST"]),
            Route("/v1/state", state, methods=["GET"]),
            Route("/v1/snapshot", snapshot, methods=["POST"]),
        ]
    )
    return BearerToken(app, token)
