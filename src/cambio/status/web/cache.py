"""A short-lived cache in front of the page: during an incident everyone reloads it at
once, and each view would otherwise read components, 90 days of history and the recent
incidents from the store. Answers to GET are kept for `ttl_s` (1 s: the page is never
staler than the service's own step), per path and query; the subscription routes and
anything but a 200 pass straight through. One request renders an expired page while
the others that want it wait for that one (no stampede of renders every second).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNCACHED = ("/subscribe", "/subscriptions/", "/healthz")
MAX_ENTRIES = 1024  # distinct URLs kept at once (query strings could be anything)


class ReadCache:
    def __init__(self, app: ASGIApp, ttl_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.app = app
        self.ttl_s = ttl_s
        self.clock = clock
        self.entries: dict[bytes, tuple[float, list[Message]]] = {}
        self.rendering: dict[bytes, asyncio.Future[list[Message]]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or scope["method"] != "GET" or path.startswith(UNCACHED):
            await self.app(scope, receive, send)
            return
        key = path.encode() + b"?" + scope.get("query_string", b"")
        now = self.clock()
        hit = self.entries.get(key)
        if hit is not None and now - hit[0] < self.ttl_s:
            await self._replay(hit[1], send)
            return
        pending = self.rendering.get(key)
        if pending is not None:  # someone renders it right now: take theirs
            theirs = await asyncio.shield(pending)
            if theirs:
                await self._replay(theirs, send)
            else:  # theirs failed (their client left mid-answer, say): render our own
                await self.app(scope, receive, send)
            return
        done: asyncio.Future[list[Message]] = asyncio.get_running_loop().create_future()
        self.rendering[key] = done
        kept: list[Message] = []

        async def keep(message: Message) -> None:
            kept.append(message)
            await send(message)

        try:
            await self.app(scope, receive, keep)
        except BaseException:
            kept = []
            raise
        finally:
            del self.rendering[key]
            done.set_result(kept)
        if kept and kept[0].get("status") == 200:
            if len(self.entries) >= MAX_ENTRIES:
                self.entries.clear()
            self.entries[key] = (now, kept)

    @staticmethod
    async def _replay(messages: list[Message], send: Send) -> None:
        for message in messages:
            await send(message)
