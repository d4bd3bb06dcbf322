"""The public, Kraken-compatible API (``/0/public/*``). Only Time for now; the rest of
Kraken's REST and WebSocket surface is built on the same service."""

from __future__ import annotations

import time
from email.utils import formatdate

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cambio.api.envelope import ok
from cambio.runtime.service import ExchangeService


def public_app(service: ExchangeService) -> Starlette:
    async def server_time(request: Request) -> Response:
        now = time.time()
        return ok({"unixtime": int(now), "rfc1123": formatdate(now, usegmt=True)})

    return Starlette(routes=[Route("/0/public/Time", server_time, methods=["GET", "POST"])])
