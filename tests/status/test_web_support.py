"""Shared by the status web tests (no tests here): a store with a realistic history, a
clock the test sets, and the app served by a real uvicorn on loopback."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

from cambio.status.model import MAINTENANCE, MAJOR, OPERATIONAL, PARTIAL, PageInfo
from cambio.status.store import ComponentSpec, StatusStore

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC).timestamp()
DAY = 86_400.0
PAGE = PageInfo(id="cambiopage01", name="cambio status", url="http://status.example")
SCRIPT = "<script>alert('owned')</script>"

SPECS = [
    ComponentSpec("group:trading", "Trading", is_group=True),
    ComponentSpec("market:XXBTZUSD", "XBT/USD trading", "group:trading", "Order book for XBT/USD"),
    ComponentSpec("market:XETHZUSD", "ETH/USD trading", "group:trading"),
    ComponentSpec("group:withdrawals", "Withdrawals", is_group=True),
    ComponentSpec("withdrawals:XXBT", "XBT withdrawals", "group:withdrawals"),
    ComponentSpec("group:api", "API", is_group=True),
    ComponentSpec("api:rest", "REST API", "group:api"),
    ComponentSpec("website", "Website"),
]


@dataclass
class Clock:
    now: float = NOW

    def __call__(self) -> float:
        return self.now


@dataclass
class Scenario:
    store: StatusStore
    open_incident: str  # XBT/USD cancel-only, identified, an automatic update
    resolved_incident: str  # two days ago, with a published postmortem
    active_maintenance: str  # XBT withdrawals, in progress
    upcoming_maintenance: str  # the day after tomorrow

    def component(self, key: str) -> dict[str, object]:
        return next(c for c in self.store.components() if c["key"] == key)


def empty_store(tmp_path: Path, specs: list[ComponentSpec] | None = None) -> StatusStore:
    store = StatusStore(tmp_path / "status.db")
    store.sync_components(SPECS if specs is None else specs, NOW - 100 * DAY)
    return store


def scenario(tmp_path: Path) -> Scenario:
    """The exchange's last 100 days as the status store saw them (times relative to NOW):

    * XBT/USD: major outage 60 min three days ago; partial outage 100 min five days ago;
      maintenance 2 h ten days ago; partial outage (cancel_only) since 30 min ago, with an
      open incident whose timeline has an operator update (holding a <script>) and an
      automatic one, the next update promised 20 min from now;
    * a resolved incident two days ago with a postmortem;
    * XBT withdrawals under maintenance since 15 min ago (maintenance in progress, expected
      end in 45 min); a maintenance scheduled the day after tomorrow.
    """
    store = empty_store(tmp_path)
    xbt = "market:XXBTZUSD"
    for status, start, end in (
        (MAINTENANCE, NOW - 10 * DAY, NOW - 10 * DAY + 7200),
        (PARTIAL, NOW - 5 * DAY, NOW - 5 * DAY + 6000),
        (MAJOR, NOW - 3 * DAY, NOW - 3 * DAY + 3600),
    ):
        store.set_status(xbt, status, start)
        store.set_status(xbt, OPERATIONAL, end)

    resolved = store.create_incident(
        {"kind": "incident", "name": "Deposits delayed", "status": "investigating",
         "impact": "minor"},
        "Deposits are slow to credit.",
        ["withdrawals:XXBT"],
        NOW - 2 * DAY,
    )  # fmt: skip
    store.add_update(resolved, "resolved", "All deposits credited.", NOW - 2 * DAY + 3600)
    store.set_fields(
        resolved,
        postmortem_body="A node fell behind.\nWe added a second one.",
        postmortem_published_at=NOW - DAY,
        status="postmortem",
    )

    store.set_status(xbt, PARTIAL, NOW - 1800)
    incident = store.create_incident(
        {"kind": "incident", "name": "XBT/USD is cancel-only", "status": "investigating",
         "impact": "major", "next_update_at": NOW + 1200},
        f"The volatility breaker tripped. {SCRIPT}",
        [xbt],
        NOW - 1800,
    )  # fmt: skip
    store.add_update(
        incident,
        "identified",
        "Still cancel-only: 2 markets affected, 31 minutes so far.",
        NOW - 600,
        automatic=True,
        affected=[
            {"code": "x", "name": "XBT/USD trading", "old_status": "operational",
             "new_status": PARTIAL}
        ],
    )  # fmt: skip

    store.set_status("withdrawals:XXBT", MAINTENANCE, NOW - 900)
    active = store.create_incident(
        {"kind": "maintenance", "name": "Wallet upgrade", "status": "scheduled",
         "impact": "maintenance", "scheduled_for": NOW - 900, "scheduled_until": NOW + 2700},
        "We will upgrade the XBT wallet.",
        ["withdrawals:XXBT"],
        NOW - DAY,
    )  # fmt: skip
    store.add_update(
        active, "in_progress", "Under way.", NOW - 900, fields={"next_update_at": NOW + 900}
    )
    upcoming = store.create_incident(
        {"kind": "maintenance", "name": "Engine upgrade", "status": "scheduled",
         "impact": "maintenance", "scheduled_for": NOW + 2 * DAY,
         "scheduled_until": NOW + 2 * DAY + 3600},
        "A new engine; trading pauses for under a second.",
        ["market:XXBTZUSD", "market:XETHZUSD"],
        NOW - 3600,
    )  # fmt: skip
    return Scenario(store, incident, resolved, active, upcoming)


@contextmanager
def serve(app: ASGIApp) -> Iterator[str]:
    """The app on a real uvicorn on 127.0.0.1 (a free port), in a thread; its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
