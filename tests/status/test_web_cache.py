"""The page's one-second cache: repeated views within the second are answered from it,
the next second reads the store again; subscriptions, errors and other methods are
never cached."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send
from test_web_support import serve

from cambio.status.model import PageInfo
from cambio.status.store import ComponentSpec, StatusStore
from cambio.status.web.app import status_app
from cambio.status.web.cache import ReadCache

T0 = 1_800_000_000.0


def test_views_within_the_ttl_come_from_the_cache(tmp_path: Path) -> None:
    store = StatusStore(tmp_path / "status.db")
    store.sync_components([ComponentSpec("api:rest", "REST API")], T0)
    now = [0.0]
    app = status_app(store, PageInfo("p", "cambio status", "http://s"), lambda: T0,
                     lambda email, at: {"ok": True})  # fmt: skip
    with serve(ReadCache(app, 1.0, clock=lambda: now[0])) as url:
        check(store, now, httpx.Client(base_url=url))


def check(store: StatusStore, now: list[float], client: httpx.Client) -> None:

    def rest() -> str:
        comps = client.get("/api/v2/components.json").json()["components"]
        return str(comps[0]["status"])

    assert rest() == "operational"
    store.set_status("api:rest", "major_outage", T0 + 1)
    now[0] = 0.9
    assert rest() == "operational"  # the cached answer, within its second
    now[0] = 1.0
    assert rest() == "major_outage"
    assert client.get("/incidents/nope").status_code == 404
    store.create_incident({"kind": "incident", "name": "x", "status": "investigating",
                           "impact": "minor"}, "b", [], T0)  # fmt: skip
    assert client.get("/healthz").text == "ok"
    answer = client.post("/subscribe", data={"email": "a@example.com"})
    assert answer.status_code == 200 and client.post("/subscribe", data={}).status_code == 400


def test_a_crowd_at_expiry_renders_the_page_once() -> None:
    renders = []

    async def slow_page(scope: Scope, receive: Receive, send: Send) -> None:
        renders.append(scope["path"])
        await asyncio.sleep(0.2)  # a page that takes a while to render
        await PlainTextResponse(f"render {len(renders)}")(scope, receive, send)

    cache = ReadCache(slow_page, 1.0)

    async def crowd() -> list[str]:
        transport = httpx.ASGITransport(app=cache)
        async with httpx.AsyncClient(transport=transport, base_url="http://s") as client:
            replies = await asyncio.gather(*(client.get("/") for _ in range(20)))
        return [r.text for r in replies]

    assert asyncio.run(crowd()) == ["render 1"] * 20
    assert renders == ["/"]
