"""WebSocket tokens: GetWebSocketsToken hands one out; private WebSocket requests carry it.

A token names the key's account and permissions and must be used within 15 minutes;
tokens live in memory (a restart asks clients for new ones, as a reconnect does anyway).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

LIFETIME_S = 900


@dataclass(frozen=True)
class Grant:
    account: int
    permissions: frozenset[str]
    expires_ns: int


class Tokens:
    def __init__(self) -> None:
        self._grants: dict[str, Grant] = {}

    def issue(self, account: int, permissions: frozenset[str]) -> str:
        now = time.time_ns()
        self._grants = {t: g for t, g in self._grants.items() if g.expires_ns > now}
        token = secrets.token_urlsafe(32)
        self._grants[token] = Grant(account, permissions, now + LIFETIME_S * 1_000_000_000)
        return token

    def check(self, token: str) -> Grant | None:
        grant = self._grants.get(token)
        if grant is None or grant.expires_ns < time.time_ns():
            return None
        return grant
