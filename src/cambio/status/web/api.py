"""Atlassian Statuspage's public read API (v2), in its exact shapes, from our own store.

Aggregators, widgets, Prometheus exporters and bots already parse these paths, so a
customer can point any of them at our page. Every answer starts with `page`; summary and
status also carry `status` (see `Snapshot`):

| path                                            | content                                   |
|-------------------------------------------------|-------------------------------------------|
| /api/v2/summary.json                            | page, components, unresolved incidents,   |
|                                                 | upcoming + active maintenances, status    |
| /api/v2/status.json                             | page, status                              |
| /api/v2/components.json                         | page, components                          |
| /api/v2/incidents.json                          | page, the 50 most recent incidents        |
| /api/v2/incidents/unresolved.json               | page, incidents not resolved              |
| /api/v2/scheduled-maintenances.json             | page, the 50 most recent maintenances     |
| /api/v2/scheduled-maintenances/upcoming.json    | page, maintenances not started            |
| /api/v2/scheduled-maintenances/active.json      | page, maintenances in progress/verifying  |

The objects themselves (component, incident, incident_update) come from
`cambio.status.notify.shapes`, which webhooks use too: one definition of Statuspage's
shapes for every channel. This module adds the page-level parts (page, status) and
chooses what each path lists.

Answers carry `Access-Control-Allow-Origin: *`: status widgets on other sites read them
from the browser.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cambio.status import store as tables
from cambio.status.model import (
    OPEN_INCIDENT,
    OPEN_MAINTENANCE,
    PageInfo,
    iso,
    page_status,
    worst,
)
from cambio.status.notify.shapes import component_json, incident_json
from cambio.status.store import Row, StatusStore

RECENT = 50  # incidents.json and scheduled-maintenances.json: Statuspage's 50 most recent
UPCOMING = ("scheduled",)
OPEN_MAINTENANCE_OR_UPCOMING = (*UPCOMING, *OPEN_MAINTENANCE)
CORS = {"Access-Control-Allow-Origin": "*"}

Json = dict[str, Any]


@dataclass(frozen=True)
class Snapshot:
    """What a request shows, read from the store once (not once per part) so the
    banner, the components and the incidents of one answer come from the same reads.

    `indicator`/`description` are model.page_status over the components that are not
    groups (a group's status is only a summary of its children) and the impacts of the
    unresolved incidents. `updated_at` is when the page last changed (a component, an
    incident, a maintenance or an update), or when the service last checked the
    exchange (meta key `checked_at`, written by the automation) if that is later: the
    page says how fresh it is, and a quiet page is still a fresh one.
    """

    now: float
    components: list[Row]
    unresolved: list[Row]  # incidents: investigating, identified, monitoring
    maintenances: list[Row]  # scheduled, in progress or verifying
    indicator: str
    description: str
    updated_at: float

    @property
    def upcoming(self) -> list[Row]:
        return [m for m in self.maintenances if m["status"] in UPCOMING]

    @property
    def active(self) -> list[Row]:
        return [m for m in self.maintenances if m["status"] in OPEN_MAINTENANCE]


def snapshot(store: StatusStore, now: float) -> Snapshot:
    comps = store.components()
    unresolved = store.incidents("incident", OPEN_INCIDENT)
    maintenances = store.incidents("maintenance", OPEN_MAINTENANCE_OR_UPCOMING)
    indicator, description = page_status(
        [c["status"] for c in comps if not c["is_group"]], [i["impact"] for i in unresolved]
    )
    return Snapshot(
        now=now,
        components=comps,
        unresolved=unresolved,
        maintenances=maintenances,
        indicator=indicator,
        description=description,
        updated_at=last_change(store, now),
    )


def last_change(store: StatusStore, now: float) -> float:
    """The latest time anything on the page changed (or the service checked the
    exchange); `now` for an empty store. Read straight from the store's tables: the
    store has no query for it and the page must not scan every incident to find it."""
    with store.engine.connect() as conn:
        times = [
            conn.execute(select(func.max(tables.components.c.updated_at))).scalar(),
            conn.execute(select(func.max(tables.incidents.c.updated_at))).scalar(),
            conn.execute(select(func.max(tables.incident_updates.c.created_at))).scalar(),
        ]
    checked = store.get("checked_at")
    if isinstance(checked, int | float):
        times.append(float(checked))
    known = [float(t) for t in times if t is not None]
    return max(known) if known else now


# ---------------------------------------------------------------------- shapes
def page_json(page: PageInfo, snap: Snapshot) -> Json:
    return {
        "id": page.id,
        "name": page.name,
        "url": page.url,
        "time_zone": page.time_zone,
        "updated_at": iso(snap.updated_at),
    }


def status_json(snap: Snapshot) -> Json:
    return {"indicator": snap.indicator, "description": snap.description}


def components_json(page: PageInfo, rows: list[Row]) -> list[Json]:
    """Statuspage's components, groups included: a group lists its children's ids and
    shows the worst of their statuses, as Statuspage's groups do (the store keeps a
    status only for the components themselves)."""
    children: dict[str, list[Row]] = {}
    for row in rows:
        if row["group_id"]:
            children.setdefault(row["group_id"], []).append(row)
    out = []
    for row in rows:
        kids = children.get(row["id"], [])
        if row["is_group"] and kids:
            row = row | {"status": worst([k["status"] for k in kids])}
        out.append(component_json(row, page, [k["id"] for k in kids]))
    return out


def incident_url(page: PageInfo, incident_id: str) -> str:
    """An incident's own page: its `shortlink` in the JSON, its link in the feeds."""
    return f"{page.url.rstrip('/')}/incidents/{incident_id}"


def summary_json(page: PageInfo, snap: Snapshot) -> Json:
    return {
        "page": page_json(page, snap),
        "components": components_json(page, snap.components),
        "incidents": [incident_json(i, page) for i in snap.unresolved],
        "scheduled_maintenances": [incident_json(m, page) for m in snap.maintenances],
        "status": status_json(snap),
    }


# ---------------------------------------------------------------------- routes
def routes(store: StatusStore, page: PageInfo, clock: Callable[[], float]) -> list[Route]:
    """The /api/v2 routes. Handlers are plain functions: Starlette runs them in its
    thread pool, so the store's blocking SQLite reads never stall the event loop."""

    def answer(body: Json) -> JSONResponse:
        return JSONResponse(body, headers=CORS)

    def listing(key: str, rows: list[Row], snap: Snapshot) -> JSONResponse:
        return answer({"page": page_json(page, snap), key: [incident_json(r, page) for r in rows]})

    def summary(_: Request) -> JSONResponse:
        return answer(summary_json(page, snapshot(store, clock())))

    def status(_: Request) -> JSONResponse:
        snap = snapshot(store, clock())
        return answer({"page": page_json(page, snap), "status": status_json(snap)})

    def components(_: Request) -> JSONResponse:
        snap = snapshot(store, clock())
        return answer(
            {"page": page_json(page, snap), "components": components_json(page, snap.components)}
        )

    def incidents(_: Request) -> JSONResponse:
        snap = snapshot(store, clock())
        return listing("incidents", store.incidents("incident", limit=RECENT), snap)

    def unresolved(_: Request) -> JSONResponse:
        snap = snapshot(store, clock())
        return listing("incidents", snap.unresolved, snap)

    def maintenances(_: Request) -> JSONResponse:
        snap = snapshot(store, clock())
        rows = store.incidents("maintenance", limit=RECENT)  # any status
        return listing("scheduled_maintenances", rows, snap)

    def upcoming(_: Request) -> JSONResponse:
        snap = snapshot(store, clock())
        return listing("scheduled_maintenances", snap.upcoming, snap)

    def active(_: Request) -> JSONResponse:
        snap = snapshot(store, clock())
        return listing("scheduled_maintenances", snap.active, snap)

    base = "/api/v2"
    return [
        Route(f"{base}/summary.json", summary),
        Route(f"{base}/status.json", status),
        Route(f"{base}/components.json", components),
        Route(f"{base}/incidents.json", incidents),
        Route(f"{base}/incidents/unresolved.json", unresolved),
        Route(f"{base}/scheduled-maintenances.json", maintenances),
        Route(f"{base}/scheduled-maintenances/upcoming.json", upcoming),
        Route(f"{base}/scheduled-maintenances/active.json", active),
    ]
