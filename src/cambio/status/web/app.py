"""The status service's web application: the page, Statuspage's JSON, the feeds.

`status_app` mounts everything on one Starlette app. It reads only the status store
(and calls the subscription callbacks the service passes in): no request ever waits on
the exchange, so the page keeps answering while the exchange is down. `clock` gives
"now" (epoch seconds), so tests control time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from cambio.status.model import PageInfo
from cambio.status.store import StatusStore
from cambio.status.web import api, feeds, pages
from cambio.status.web.cache import ReadCache


def status_app(
    store: StatusStore,
    page: PageInfo,
    clock: Callable[[], float],
    subscribe: Callable[[str, float], Any] | None = None,
    confirm: Callable[[str, float], Any] | None = None,
    unsubscribe: Callable[[str, float], Any] | None = None,
    cache_s: float = 0.0,
) -> ASGIApp:
    """The app. `subscribe(email, now)` starts a double opt-in (raise ValueError to refuse
    an address: the page shows the message); `confirm(token, now)` and
    `unsubscribe(token, now)` return something falsy for an unknown token. A None
    callback leaves its route (and, for subscribe, the form) out. `cache_s` > 0 keeps
    answers that long (cambio.status.web.cache), for the crowd an incident brings."""

    def healthz(_: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    routes: list[BaseRoute] = [
        *pages.routes(store, page, clock, subscribe, confirm, unsubscribe),
        *api.routes(store, page, clock),
        *feeds.routes(store, page, clock),
        Route("/healthz", healthz),
    ]
    app = Starlette(routes=routes)
    return ReadCache(app, cache_s) if cache_s > 0 else app
