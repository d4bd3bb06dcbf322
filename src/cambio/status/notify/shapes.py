"""Atlassian Statuspage's JSON objects, built from the status store's rows.

One place builds them so the public API (/api/v2/*.json) and the webhooks send the same
shapes. Field lists follow Statuspage's documentation (the public v2 API's component and
incident objects; the webhook payload's incident, which adds the postmortem_* and
scheduled_* fields). Readers written for Statuspage (exporters, bots, widgets) look keys
up by name and often fail on a missing one, so every documented key is always present,
null when we have no value.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cambio.status.model import PageInfo, iso
from cambio.status.store import Row

COMPONENT_KEYS = (
    "id",
    "name",
    "status",
    "created_at",
    "updated_at",
    "position",
    "description",
    "showcase",
    "start_date",
    "group_id",
    "page_id",
    "group",
    "only_show_if_degraded",
)
INCIDENT_UPDATE_KEYS = (
    "id",
    "status",
    "body",
    "incident_id",
    "created_at",
    "updated_at",
    "display_at",
    "affected_components",
    "deliver_notifications",
    "custom_tweet",
    "tweet_id",
)
AFFECTED_COMPONENT_KEYS = ("code", "name", "old_status", "new_status")
INCIDENT_KEYS = (
    "id",
    "name",
    "status",
    "created_at",
    "updated_at",
    "monitoring_at",
    "resolved_at",
    "impact",
    "shortlink",
    "started_at",
    "page_id",
    "incident_updates",
    "components",
)
# what a scheduled maintenance adds to an incident
MAINTENANCE_KEYS = (
    "scheduled_for",
    "scheduled_until",
    "scheduled_remind_prior",
    "scheduled_reminded_at",
    "scheduled_auto_in_progress",
    "scheduled_auto_completed",
)
# what the webhook payload's incident adds (for incidents and maintenances alike)
WEBHOOK_INCIDENT_KEYS = (
    "backfilled",
    "impact_override",
    "postmortem_body",
    "postmortem_body_last_updated_at",
    "postmortem_ignored",
    "postmortem_notified_subscribers",
    "postmortem_notified_twitter",
    "postmortem_published_at",
)


def component_json(row: Row, page: PageInfo, children: list[str] | None = None) -> dict[str, Any]:
    """Statuspage's component object. A group (`group: true`) also carries `components`,
    the ids of its children, as Statuspage's v2 API does; pass them as `children`."""
    out: dict[str, Any] = {
        "id": row["id"],
        "name": row["name"],
        "status": row["status"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "position": row["position"],
        "description": row.get("description"),
        # uptime bars are shown for every real component, never for a group's header
        "showcase": not row.get("is_group", False),
        # the day uptime counting starts: the day we started watching the component
        "start_date": datetime.fromtimestamp(row["created_at"], UTC).date().isoformat(),
        "group_id": row.get("group_id"),
        "page_id": page.id,
        "group": bool(row.get("is_group", False)),
        "only_show_if_degraded": False,
    }
    if out["group"]:
        out["components"] = list(children or [])
    return out


def affected_json(entry: Row) -> dict[str, Any]:
    """One `affected_components` entry: {code, name, old_status, new_status}. The
    automation may record a component by `code`, `id` or `component_id`."""
    code = entry.get("code") or entry.get("id") or entry.get("component_id")
    return {
        "code": code,
        "name": entry.get("name"),
        "old_status": entry.get("old_status"),
        "new_status": entry.get("new_status"),
    }


def update_json(update: Row) -> dict[str, Any]:
    """Statuspage's incident update (one entry of the timeline)."""
    at = iso(update["created_at"])
    affected = update.get("affected_components") or []
    return {
        "id": update["id"],
        "status": update["status"],
        "body": update["body"],
        "incident_id": update["incident_id"],
        "created_at": at,
        # updates are never edited here, so updated_at and display_at are created_at
        "updated_at": at,
        "display_at": at,
        # Statuspage sends null, not [], when an update changed no component
        "affected_components": [affected_json(a) for a in affected] if affected else None,
        "deliver_notifications": True,
        "custom_tweet": None,
        "tweet_id": None,
    }


def incident_json(incident: Row, page: PageInfo, webhook: bool = False) -> dict[str, Any]:
    """Statuspage's incident (or scheduled maintenance) object from StatusStore.incident()
    (its "updates" newest first, its "components"). A maintenance adds the scheduled_*
    fields; `webhook=True` gives the webhook payload's fuller incident, which always has
    the scheduled_* and postmortem_* fields (null where they do not apply)."""
    out: dict[str, Any] = {
        "id": incident["id"],
        "name": incident["name"],
        "status": incident["status"],
        "created_at": iso(incident["created_at"]),
        "updated_at": iso(incident["updated_at"]),
        "monitoring_at": iso(incident.get("monitoring_at")),
        "resolved_at": iso(incident.get("resolved_at")),
        "impact": incident["impact"],
        "shortlink": f"{page.url.rstrip('/')}/incidents/{incident['id']}",
        "started_at": iso(incident.get("started_at") or incident["created_at"]),
        "page_id": page.id,
        "incident_updates": [update_json(u) for u in incident.get("updates", [])],
        "components": [component_json(c, page) for c in incident.get("components", [])],
    }
    maintenance = incident.get("kind") == "maintenance"
    if maintenance or webhook:
        out |= {
            "scheduled_for": iso(incident.get("scheduled_for")),
            "scheduled_until": iso(incident.get("scheduled_until")),
            "scheduled_remind_prior": bool(incident.get("scheduled_remind_prior"))
            if maintenance
            else False,
            "scheduled_reminded_at": iso(incident.get("scheduled_reminded_at")),
            "scheduled_auto_in_progress": bool(incident.get("scheduled_auto_in_progress"))
            if maintenance
            else False,
            "scheduled_auto_completed": bool(incident.get("scheduled_auto_completed"))
            if maintenance
            else False,
        }
    if webhook:
        published = incident.get("postmortem_published_at")
        out |= {
            "backfilled": False,
            "impact_override": None,
            "postmortem_body": incident.get("postmortem_body"),
            "postmortem_body_last_updated_at": iso(published),
            "postmortem_ignored": False,
            # a published postmortem goes out as an incident update, to every subscriber
            "postmortem_notified_subscribers": published is not None,
            "postmortem_notified_twitter": False,
            "postmortem_published_at": iso(published),
        }
    return out
