"""The status page itself: server-rendered HTML, readable on a phone, with nothing to load.

The page must work when everything else is down, so it needs no JavaScript, no fonts,
no stylesheet and no image from anywhere: one HTML document with its CSS inline, system
fonts, one column. Routes:

* `/`: the overall status banner; active incidents with their whole timeline and the
  promised next update; active and upcoming maintenances with their window; components
  (groups fold with <details>) with 90 daily uptime bars (cambio.status.web.uptime);
  the last 14 days of incidents; how fresh the page is; the email subscribe form.
* `/incidents/{id}`: one incident or maintenance, its timeline and its postmortem.
* `/subscribe` (POST), `/subscriptions/confirm/{token}`, `/subscriptions/unsubscribe/{token}`
  (GET too: mail clients follow links): short answers around the callbacks the service
  passes in (cambio.status.notify does the work).

Templates are Jinja2 with autoescape on: incident bodies and names are operator text and
come out escaped, always.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from jinja2 import Environment, PackageLoader
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from cambio.status.figures import hhmm
from cambio.status.model import (
    DEGRADED,
    MAINTENANCE,
    MAJOR,
    OPERATIONAL,
    PARTIAL,
    PageInfo,
    iso,
    words,
    worst,
)
from cambio.status.store import Row, StatusStore
from cambio.status.web.api import Snapshot, snapshot
from cambio.status.web.uptime import Day, percent_text, uptime, window

__all__ = ["Day", "render_incident", "render_index", "routes", "uptime"]

UPTIME_DAYS = 90
PAST_DAYS = 14
MAX_FORM_BYTES = 4096  # the subscribe form is one address
SubscriptionCall = Callable[[str, float], Any]

# CSS class of a component status or an impact (colours in base.html)
TONE = {
    OPERATIONAL: "ok",
    DEGRADED: "minor",
    PARTIAL: "partial",
    MAJOR: "major",
    MAINTENANCE: "maint",
    "none": "ok",
    "minor": "minor",
    "major": "partial",
    "critical": "major",
    "maintenance": "maint",
}


# ---------------------------------------------------------------------- formatting
def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def utc(ts: float | None) -> str:
    """24 Nov 2026, 03:05 UTC"""
    return "" if ts is None else _dt(ts).strftime("%d %b %Y, %H:%M UTC")


def ago(seconds: float) -> str:
    """How long ago, in the largest unit that says it (seconds under two minutes)."""
    s = max(0, int(seconds))
    if s < 120:
        return f"{s} second{'' if s == 1 else 's'} ago"
    if s < 7200:
        return f"{s // 60} minutes ago"
    if s < 2 * 86_400:
        return f"{s // 3600} hours ago"
    return f"{s // 86_400} days ago"


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("cambio.status.web", "templates"),
        autoescape=True,  # every value is escaped unless a template says otherwise
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["utc"] = utc
    env.filters["iso"] = iso
    env.filters["words"] = lambda status: words(str(status))
    env.filters["tone"] = lambda status: TONE.get(status, "ok")
    return env


ENV = _environment()


# ---------------------------------------------------------------------- view models
@dataclass(frozen=True)
class ComponentView:
    row: Row
    percent: str  # "99.97 %" or "no data"
    days: list[Day]  # UPTIME_DAYS bars, oldest first


@dataclass(frozen=True)
class GroupView:
    """A group of components, or (row None) a component that stands alone."""

    row: Row | None
    children: list[ComponentView]

    @property
    def status(self) -> str:
        return worst([c.row["status"] for c in self.children])


@dataclass(frozen=True)
class PastDay:
    day: date
    incidents: list[Row]


def component_views(store: StatusStore, rows: list[Row], now: float) -> list[GroupView]:
    """Components in page order: a group with its children, or one alone."""
    start, end = window(now, UPTIME_DAYS)
    views: dict[str, ComponentView] = {}
    for row in rows:
        if not row["is_group"]:
            percent, days = uptime(store.history(row["id"], start), start, end)
            views[row["id"]] = ComponentView(row, percent_text(percent), days)
    out: list[GroupView] = []
    for row in rows:
        if row["is_group"]:
            children = [views[r["id"]] for r in rows if r["group_id"] == row["id"]]
            if children:  # an empty group says nothing
                out.append(GroupView(row, children))
        elif row["group_id"] is None or row["group_id"] not in {r["id"] for r in rows}:
            out.append(GroupView(None, [views[row["id"]]]))
    return out


def _began(row: Row) -> float:
    """When an incident or maintenance began, for the history by day."""
    if row["kind"] == "maintenance":
        return float(row["started_at"] or row["scheduled_for"] or row["created_at"])
    return float(row["started_at"] or row["created_at"])


def past_days(store: StatusStore, now: float, days: int = PAST_DAYS) -> list[PastDay]:
    """The last `days` UTC days, today first, with what began on each (maintenances not
    yet started are "upcoming", not history)."""
    today = _dt(now).date()
    first = today - timedelta(days=days - 1)
    since = datetime(first.year, first.month, first.day, tzinfo=UTC).timestamp()
    rows = [
        r
        for kind in ("incident", "maintenance")
        for r in store.incidents(kind, limit=200)
        if _began(r) >= since and r["status"] != "scheduled"
    ]
    rows.sort(key=_began, reverse=True)
    by_day: dict[date, list[Row]] = {}
    for r in rows:
        by_day.setdefault(_dt(_began(r)).date(), []).append(r)
    return [PastDay(d, by_day.get(d, [])) for d in (today - timedelta(n) for n in range(days))]


# ---------------------------------------------------------------------- rendering
def _common(page: PageInfo, snap: Snapshot) -> dict[str, Any]:
    return {
        "page": page,
        "snap": snap,
        "now": snap.now,
        "updated": utc(snap.updated_at),
        "updated_iso": iso(snap.updated_at),
        "age": ago(snap.now - snap.updated_at),
        "hhmm": lambda ts: hhmm(ts, snap.now),
    }


def render_index(
    store: StatusStore, page: PageInfo, now: float, subscribe_form: bool = True
) -> str:
    snap = snapshot(store, now)
    return ENV.get_template("index.html").render(
        _common(page, snap)
        | {
            "groups": component_views(store, snap.components, now),
            "past": past_days(store, now),
            "subscribe_form": subscribe_form,
            "uptime_days": UPTIME_DAYS,
        }
    )


def render_incident(store: StatusStore, page: PageInfo, now: float, incident_id: str) -> str | None:
    row = store.incident(incident_id)
    if row is None:
        return None
    snap = snapshot(store, now)
    published = row["postmortem_published_at"] is not None and bool(row["postmortem_body"])
    return ENV.get_template("incident.html").render(
        _common(page, snap) | {"incident": row, "postmortem": published}
    )


def render_message(
    page: PageInfo, snap: Snapshot, title: str, text: str, form: bool = False, email: str = ""
) -> str:
    return ENV.get_template("message.html").render(
        _common(page, snap) | {"title": title, "text": text, "subscribe_form": form, "email": email}
    )


# ---------------------------------------------------------------------- routes
def plausible_email(text: str) -> bool:
    """Enough to catch typing slips; the confirmation mail is the real check."""
    local, at, domain = text.rpartition("@")
    return (
        bool(at and local and "." in domain.strip("."))
        and len(text) <= 254
        and not any(c.isspace() or c in "<>,;\"'" for c in text)
    )


async def _call(fn: SubscriptionCall, *args: Any) -> Any:
    """Call a subscription callback off the event loop (it writes to SQLite); await its
    result if it is a coroutine function's."""
    result = await run_in_threadpool(fn, *args)
    if inspect.isawaitable(result):
        result = await result
    return result


def routes(
    store: StatusStore,
    page: PageInfo,
    clock: Callable[[], float],
    subscribe: SubscriptionCall | None = None,
    confirm: SubscriptionCall | None = None,
    unsubscribe: SubscriptionCall | None = None,
) -> list[Route]:
    def html(text: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(text, status_code=status)

    def message(title: str, text: str, status: int = 200, **extra: Any) -> HTMLResponse:
        return html(render_message(page, snapshot(store, clock()), title, text, **extra), status)

    def index(_: Request) -> HTMLResponse:
        return html(render_index(store, page, clock(), subscribe_form=subscribe is not None))

    def incident(request: Request) -> HTMLResponse:
        text = render_incident(store, page, clock(), request.path_params["id"])
        if text is None:
            return message("Not found", "There is no incident with this address.", 404)
        return html(text)

    async def subscribe_post(request: Request) -> Response:
        assert subscribe is not None
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            return await run_in_threadpool(message, "Too long", "That is not an address.", 413)
        fields = parse_qs(body.decode("utf-8", "replace"))
        email = (fields.get("email") or [""])[0].strip()
        if not plausible_email(email):
            return await run_in_threadpool(
                message,
                "Check the address",
                "That does not look like an email address.",
                400,
                form=True,
                email=email,
            )
        try:
            await _call(subscribe, email, clock())
        except ValueError as exc:  # the notifier refused the address
            return await run_in_threadpool(
                message, "Check the address", str(exc), 400, form=True, email=email
            )
        return await run_in_threadpool(
            message,
            "Check your inbox",
            f"We sent a link to {email}. Updates start once you open it.",
        )

    def token_route(
        fn: SubscriptionCall, ok: tuple[str, str], verb: str
    ) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            found = await _call(fn, request.path_params["token"], clock())
            if not found:
                text = f"This {verb} link is not valid, or no longer is."
                return await run_in_threadpool(message, "Link not valid", text, 404)
            return await run_in_threadpool(message, *ok)

        return endpoint

    out = [
        Route("/", index),
        Route("/incidents/{id}", incident),
    ]
    if subscribe is not None:
        out.append(Route("/subscribe", subscribe_post, methods=["POST"]))
    if confirm is not None:
        ok = ("Subscribed", "You will get an email for every incident and maintenance update.")
        out.append(
            Route(
                "/subscriptions/confirm/{token}",
                token_route(confirm, ok, "confirmation"),
                methods=["GET", "POST"],
            )
        )
    if unsubscribe is not None:
        ok = ("Unsubscribed", "You will get no more emails from this page.")
        # GET too: the link in every mail is followed by a click, and one click is all
        # unsubscribing should take; POST for List-Unsubscribe-Post (RFC 8058)
        out.append(
            Route(
                "/subscriptions/unsubscribe/{token}",
                token_route(unsubscribe, ok, "unsubscribe"),
                methods=["GET", "POST"],
            )
        )
    return out
