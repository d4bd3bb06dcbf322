"""Atlassian Statuspage's vocabulary, and how the exchange's modes map onto it.

Component statuses (best to worst): operational, degraded_performance, partial_outage,
major_outage; under_maintenance beside them. The mapping (also in docs/runbook.md):

| exchange state                              | component status      |
|---------------------------------------------|-----------------------|
| market online                               | operational           |
| market post_only or limit_only              | degraded_performance  |
| market cancel_only                          | partial_outage        |
| market maintenance (or the exchange halted) | under_maintenance     |
| deposits / withdrawals of an asset on       | operational           |
| ... off while the exchange is halted        | under_maintenance     |
| ... off otherwise                           | major_outage          |
| API (REST, WebSocket), website: serving     | operational           |
| no heartbeat for `stale_s` seconds          | major_outage (all)    |
| stopped by the operator (last heartbeat     | under_maintenance     |
|   said "stopping")                          |   (all)               |
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime

OPERATIONAL = "operational"
DEGRADED = "degraded_performance"
PARTIAL = "partial_outage"
MAJOR = "major_outage"
MAINTENANCE = "under_maintenance"
COMPONENT_STATUSES = (OPERATIONAL, DEGRADED, PARTIAL, MAJOR, MAINTENANCE)

# incidents and maintenances, in Statuspage's order
INCIDENT_STATUSES = ("investigating", "identified", "monitoring", "resolved", "postmortem")
MAINTENANCE_STATUSES = ("scheduled", "in_progress", "verifying", "completed")
OPEN_INCIDENT = ("investigating", "identified", "monitoring")
OPEN_MAINTENANCE = ("in_progress", "verifying")  # under way: the cadence applies
IMPACTS = ("none", "minor", "major", "critical")

# how each status reads on the page, in mail and in feeds
STATUS_WORDS = {
    OPERATIONAL: "Operational",
    DEGRADED: "Degraded performance",
    PARTIAL: "Partial outage",
    MAJOR: "Major outage",
    MAINTENANCE: "Under maintenance",
    # incidents
    "investigating": "Investigating",
    "identified": "Identified",
    "monitoring": "Monitoring",
    "resolved": "Resolved",
    "postmortem": "Postmortem",
    # maintenances
    "scheduled": "Scheduled",
    "in_progress": "In progress",
    "verifying": "Verifying",
    "completed": "Completed",
}


def words(status: str) -> str:
    return STATUS_WORDS.get(status, status)


MODE_STATUS = {
    "online": OPERATIONAL,
    "post_only": DEGRADED,
    "limit_only": DEGRADED,
    "reduce_only": DEGRADED,
    "cancel_only": PARTIAL,
    "maintenance": MAINTENANCE,
}

# worst component -> the page's indicator and its words (Statuspage's)
_SEVERITY = {OPERATIONAL: 0, MAINTENANCE: 1, DEGRADED: 2, PARTIAL: 3, MAJOR: 4}
INDICATOR = {
    OPERATIONAL: ("none", "All Systems Operational"),
    MAINTENANCE: ("maintenance", "Service Under Maintenance"),
    DEGRADED: ("minor", "Minor Service Outage"),
    PARTIAL: ("major", "Partial System Outage"),
    MAJOR: ("critical", "Major System Outage"),
}
_BY_INDICATOR = {indicator: (indicator, said) for indicator, said in INDICATOR.values()}
IMPACT_OF = {
    OPERATIONAL: "none",
    MAINTENANCE: "maintenance",
    DEGRADED: "minor",
    PARTIAL: "major",
    MAJOR: "critical",
}


def worst(statuses: list[str]) -> str:
    """The most severe of component statuses (an outage outranks maintenance)."""
    return max(statuses, key=_SEVERITY.__getitem__, default=OPERATIONAL)


def incident_impact(statuses: list[str]) -> str:
    """An incident's impact from the statuses of the components it affects. Unplanned,
    a component under maintenance is out of service to customers: a major impact."""
    impact = IMPACT_OF[worst(statuses)]
    return "major" if impact == "maintenance" else impact


def page_status(components: list[str], open_incident_impacts: list[str]) -> tuple[str, str]:
    """(indicator, description) of the page: the worst component, raised to an open
    incident's impact (a page with an open incident is not "All Systems Operational")."""
    indicator, said = INDICATOR[worst(components)]
    rank = {"none": 0, "maintenance": 0, "minor": 1, "major": 2, "critical": 3}
    for impact in open_incident_impacts:
        if rank.get(impact, 0) > rank[indicator]:
            indicator, said = _BY_INDICATOR[impact]
    return indicator, said


_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_id() -> str:
    """A 12-character lowercase id, as Statuspage's."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))


def iso(ts: float | None) -> str | None:
    """Epoch seconds as ISO 8601 with its offset (Statuspage's timestamps), or None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class PageInfo:
    """The page itself, as Statuspage's `page` object (every JSON answer starts with it)."""

    id: str
    name: str
    url: str  # where the page is served, e.g. http://127.0.0.1:8081
    time_zone: str = "Etc/UTC"
