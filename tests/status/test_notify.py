"""Notifications end to end: a real SMTP server (aiosmtpd) and a real webhook receiver
(http.server) on loopback; the clock is driven by hand through `now`."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loopback import Inbox, Receiver, free_port

from cambio.status.model import PageInfo
from cambio.status.notify.outbox import (
    MAX_ATTEMPTS,
    Notifications,
    SmtpSettings,
    backoff,
    sign,
    verify_signature,
)
from cambio.status.notify.shapes import component_json, incident_json
from cambio.status.store import ComponentSpec, StatusStore

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
PAGE = PageInfo(id="pg0000000001", name="cambio status", url="http://status.test:8081")


# ---------------------------------------------------------------- the store
@pytest.fixture
def store(tmp_path: Path) -> Iterator[StatusStore]:
    st = StatusStore(tmp_path / "status" / "status.db")
    st.sync_components(
        [
            ComponentSpec("markets", "Trading", is_group=True),
            ComponentSpec("market:XXBTZUSD", "BTC/USD trading", group="markets"),
            ComponentSpec("market:XETHZUSD", "ETH/USD trading", group="markets"),
            ComponentSpec("api:rest", "REST API", description="The Kraken-compatible API"),
        ],
        T0,
    )
    yield st
    st.close()


def deliver(n: Notifications, now: float) -> int:
    return asyncio.run(n.deliver_due(now))


def open_incident(store: StatusStore, now: float, **fields: Any) -> str:
    return store.create_incident(
        {"kind": "incident", "name": "BTC/USD halted", "status": "investigating"}
        | {"impact": "major"}
        | fields,
        "We are investigating a halt of BTC/USD trading.",
        ["market:XXBTZUSD"],
        now,
    )


def link(text: str, kind: str) -> str:
    found = re.search(rf"{re.escape(PAGE.url)}/subscriptions/{kind}/(\w+)", text)
    assert found, text
    return found.group(1)


# ---------------------------------------------------------------- email
def test_double_opt_in_then_updates_then_unsubscribe(
    store: StatusStore, smtp: tuple[Inbox, SmtpSettings]
) -> None:
    inbox, settings = smtp
    n = Notifications(store, PAGE, settings, "status@cambio.test")

    sub = n.subscribe_email("Alice@Example.COM", T0)
    assert sub["target"] == "Alice@example.com"  # the domain normalized, the local part kept
    assert sub["confirmed_at"] is None
    assert deliver(n, T0) == 1
    (mail,) = inbox.mails
    assert inbox.envelopes == [("status@cambio.test", ["Alice@example.com"])]
    assert mail["Subject"] == "[cambio status] Confirm your subscription"
    token = link(mail.get_content(), "confirm")
    assert token == sub["token"]

    # not active before the link is followed: an incident update mails nobody
    iid = open_incident(store, T0 + 60)
    incident = store.incident(iid)
    assert incident is not None
    assert store.subscribers("email") == []
    assert n.incident_updated(incident, T0 + 60, ("major", "Partial System Outage")) == 0
    assert deliver(n, T0 + 60) == 0
    assert len(inbox.mails) == 1

    # asking again neither duplicates the subscriber nor re-sends the link within the hour
    again = n.subscribe_email("Alice@example.com", T0 + 120)
    assert again["id"] == sub["id"]
    assert deliver(n, T0 + 120) == 0

    confirmed = n.confirm(token, T0 + 180)
    assert confirmed is not None and confirmed["confirmed_at"] == T0 + 180
    assert [s["id"] for s in store.subscribers("email")] == [sub["id"]]
    # a confirmed address subscribing again gets nothing new
    assert n.subscribe_email("Alice@example.com", T0 + 7200)["id"] == sub["id"]
    assert deliver(n, T0 + 7200) == 0

    store.add_update(
        iid,
        "identified",
        "The matching engine stalled on a bad snapshot; restoring it now.",
        T0 + 240,
        fields={"next_update_at": T0 + 240 + 1800},
    )
    incident = store.incident(iid)
    assert incident is not None
    assert n.incident_updated(incident, T0 + 240, ("major", "Partial System Outage")) == 1
    assert deliver(n, T0 + 240) == 1
    mail = inbox.mails[-1]
    body = mail.get_content()
    assert mail["Subject"] == "[cambio status] BTC/USD halted: Identified"
    assert "The matching engine stalled on a bad snapshot; restoring it now." in body
    assert "We are investigating" not in body  # only the newest update
    assert "Status: Identified" in body
    assert "Affected: BTC/USD trading" in body
    assert "Next update by 2026-01-01 00:34 UTC" in body
    unsubscribe = link(body, "unsubscribe")
    assert unsubscribe == sub["token"]
    # a long header is folded before the URL; unfolded, it is the link in angle brackets
    assert (
        mail["List-Unsubscribe"].strip() == f"<{PAGE.url}/subscriptions/unsubscribe/{unsubscribe}>"
    )

    # a mail queued but not yet sent when the person leaves is dropped, not sent
    store.add_update(iid, "monitoring", "A fix is in place.", T0 + 300)
    incident = store.incident(iid)
    assert incident is not None
    assert n.incident_updated(incident, T0 + 300, ("major", "Partial System Outage")) == 1
    assert n.unsubscribe(unsubscribe, T0 + 301) is not None
    assert deliver(n, T0 + 302) == 0
    assert store.deliveries(sub["id"])[-1]["state"] == "dropped"

    # and nothing more is queued for them
    store.add_update(iid, "resolved", "Resolved.", T0 + 400)
    incident = store.incident(iid)
    assert incident is not None
    assert n.incident_updated(incident, T0 + 400, ("none", "All Systems Operational")) == 0
    assert deliver(n, T0 + 400) == 0
    assert len(inbox.mails) == 2


def test_email_validation(store: StatusStore) -> None:
    n = Notifications(store, PAGE, SmtpSettings("127.0.0.1", 1), "status@cambio.test")
    for bad in ("not an address", "a@", "@b.com", "Bob <bob@example.com>", "a@b@c.com"):
        with pytest.raises(ValueError):
            n.subscribe_email(bad, T0)
    assert store.subscribers(active=False) == []


def test_no_smtp_queues_and_reports(store: StatusStore) -> None:
    # the operator's CLI subscribes without SMTP settings: the mail waits in the outbox;
    # a deliverer without SMTP counts it as a failed attempt, with the reason
    cli = Notifications(store, PAGE, None, "status@cambio.test")
    sub = cli.subscribe_email("bob@example.com", T0)
    assert deliver(cli, T0) == 0
    (item,) = store.deliveries(sub["id"])
    assert (item["state"], item["last_error"]) == ("pending", "no SMTP server configured")


def test_smtp_down_is_retried_then_delivered(
    store: StatusStore, smtp: tuple[Inbox, SmtpSettings]
) -> None:
    inbox, settings = smtp
    down = SmtpSettings("127.0.0.1", free_port())  # nothing listens there
    n = Notifications(store, PAGE, down, "status@cambio.test")
    sub = n.subscribe_email("carol@example.com", T0)
    assert deliver(n, T0) == 0
    (item,) = store.deliveries(sub["id"])
    assert item["state"] == "pending" and item["attempts"] == 1
    assert item["next_attempt_at"] == T0 + 30
    assert item["last_error"]
    # the server is back (the same outbox, a working relay)
    up = Notifications(store, PAGE, settings, "status@cambio.test")
    assert deliver(up, T0 + 29) == 0
    assert deliver(up, T0 + 30) == 1
    assert len(inbox.mails) == 1
    assert store.deliveries(sub["id"])[0]["state"] == "delivered"


# ---------------------------------------------------------------- webhooks
def test_webhooks_component_and_incident_payloads_signed(
    store: StatusStore, receiver: Receiver, smtp: tuple[Inbox, SmtpSettings]
) -> None:
    inbox, settings = smtp
    n = Notifications(store, PAGE, settings, "status@cambio.test")
    hook = n.subscribe_webhook(f"{receiver.url}/hook", T0)
    assert hook["confirmed_at"] == T0 and len(hook["secret"]) == 64
    mailer = n.subscribe_email("dave@example.com", T0)
    n.confirm(mailer["token"], T0)
    deliver(n, T0)
    assert len(inbox.mails) == 1  # the confirmation

    change = store.set_status("market:XXBTZUSD", "partial_outage", T0 + 10)
    assert change is not None
    assert n.component_changed(change, T0 + 10) == 1
    assert deliver(n, T0 + 10) == 1
    (got,) = receiver.at("/hook")
    assert verify_signature(hook["secret"], got.body, got.headers["X-Cambio-Signature"])
    assert not verify_signature(hook["secret"], got.body + b" ", got.headers["X-Cambio-Signature"])
    assert not verify_signature("0" * 64, got.body, got.headers["X-Cambio-Signature"])
    assert got.headers["X-Cambio-Timestamp"] == str(int(T0 + 10))
    assert got.headers["Content-Type"] == "application/json"
    payload = got.json()
    assert set(payload) == {"meta", "page", "component", "component_update"}
    assert set(payload["meta"]) == {"unsubscribe", "documentation", "generated_at"}
    assert payload["meta"]["unsubscribe"] == f"{PAGE.url}/subscriptions/unsubscribe/{hook['token']}"
    assert payload["meta"]["generated_at"] == "2026-01-01T00:00:10.000+00:00"
    # the page's status is computed from the store: a partial outage is "major"
    assert payload["page"] == {
        "id": PAGE.id,
        "status_indicator": "major",
        "status_description": "Partial System Outage",
    }
    update = payload["component_update"]
    assert set(update) == {
        "id",
        "component_id",
        "component_type",
        "old_status",
        "new_status",
        "created_at",
    }
    assert update["component_id"] == change["component"]["id"] == payload["component"]["id"]
    assert (update["old_status"], update["new_status"]) == ("operational", "partial_outage")
    assert payload["component"]["name"] == "BTC/USD trading"
    assert payload["component"]["status"] == "partial_outage"
    assert len(inbox.mails) == 1  # component-only changes do not email (Statuspage)

    iid = open_incident(store, T0 + 20)
    incident = store.incident(iid)
    assert incident is not None
    assert n.incident_updated(incident, T0 + 20, ("major", "Partial System Outage")) == 2
    assert deliver(n, T0 + 20) == 2
    got = receiver.at("/hook")[-1]
    assert verify_signature(hook["secret"], got.body, got.headers["X-Cambio-Signature"])
    payload = got.json()
    assert set(payload) == {"meta", "page", "incident"}
    shaped = payload["incident"]
    assert shaped["id"] == iid and shaped["status"] == "investigating"
    assert shaped["shortlink"] == f"{PAGE.url}/incidents/{iid}"
    assert shaped["incident_updates"][0]["body"].startswith("We are investigating")
    assert [c["name"] for c in shaped["components"]] == ["BTC/USD trading"]
    for key in ("postmortem_body", "postmortem_published_at", "scheduled_for", "backfilled"):
        assert key in shaped
    assert len(inbox.mails) == 2 and "BTC/USD halted" in str(inbox.mails[-1]["Subject"])


def test_webhook_retried_with_backoff_then_delivered(
    store: StatusStore, receiver: Receiver
) -> None:
    receiver.plan["/flaky"] = [500, 503, 200]
    n = Notifications(store, PAGE, None, "status@cambio.test")
    hook = n.subscribe_webhook(f"{receiver.url}/flaky", T0)
    change = store.set_status("api:rest", "degraded_performance", T0)
    assert change is not None
    n.component_changed(change, T0)

    assert deliver(n, T0) == 0
    (item,) = store.deliveries(hook["id"])
    assert (item["state"], item["attempts"], item["last_error"]) == ("pending", 1, "HTTP 500")
    assert item["next_attempt_at"] == T0 + 30
    assert deliver(n, T0 + 29) == 0  # not due yet: nothing is sent
    assert len(receiver.at("/flaky")) == 1

    assert deliver(n, T0 + 30) == 0
    (item,) = store.deliveries(hook["id"])
    assert (item["attempts"], item["last_error"]) == (2, "HTTP 503")
    assert item["next_attempt_at"] == T0 + 30 + 60  # doubled

    assert deliver(n, T0 + 90) == 1
    (item,) = store.deliveries(hook["id"])
    assert (item["state"], item["attempts"], item["delivered_at"]) == ("delivered", 3, T0 + 90)
    sent = receiver.at("/flaky")
    assert len(sent) == 3
    # every try sends the same bytes, signed the same way
    assert len({r.body for r in sent}) == 1
    assert all(
        verify_signature(hook["secret"], r.body, r.headers["X-Cambio-Signature"]) for r in sent
    )
    assert deliver(n, T0 + 10_000) == 0  # delivered once only


def test_webhook_that_always_fails_is_marked_failed(store: StatusStore, receiver: Receiver) -> None:
    receiver.plan["/down"] = [500]
    receiver.plan["/moved"] = [302]  # a redirect is a failure too, and is not followed
    n = Notifications(store, PAGE, None, "status@cambio.test")
    down = n.subscribe_webhook(f"{receiver.url}/down", T0)
    moved = n.subscribe_webhook(f"{receiver.url}/moved", T0)
    change = store.set_status("api:rest", "major_outage", T0)
    assert change is not None
    assert n.component_changed(change, T0) == 2

    now = T0
    waits = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        assert deliver(n, now) == 0
        (item,) = store.deliveries(down["id"])
        assert item["attempts"] == attempt
        if attempt < MAX_ATTEMPTS:
            assert item["state"] == "pending"
            waits.append(item["next_attempt_at"] - now)
            now = item["next_attempt_at"]
    assert waits == [30, 60, 120, 240, 480, 960, 1920]
    assert waits == [backoff(k) for k in range(1, MAX_ATTEMPTS)]
    for sub, error in ((down, "HTTP 500"), (moved, "HTTP 302")):
        (item,) = store.deliveries(sub["id"])
        assert (item["state"], item["attempts"], item["last_error"]) == (
            "failed",
            MAX_ATTEMPTS,
            error,
        )
    assert len(receiver.at("/down")) == MAX_ATTEMPTS
    assert receiver.at("/ok") == []  # the redirect was not followed
    assert deliver(n, now + 100_000) == 0  # nothing more is tried


def test_unreachable_webhook_records_the_error(store: StatusStore) -> None:
    n = Notifications(store, PAGE, None, "status@cambio.test")
    hook = n.subscribe_webhook(f"http://127.0.0.1:{free_port()}/x", T0)
    change = store.set_status("api:rest", "major_outage", T0)
    assert change is not None
    n.component_changed(change, T0)
    assert deliver(n, T0) == 0
    (item,) = store.deliveries(hook["id"])
    assert item["state"] == "pending" and item["last_error"].startswith("ConnectError")


def test_webhook_url_validation(store: StatusStore) -> None:
    n = Notifications(store, PAGE, None, "status@cambio.test")
    for bad in ("ftp://example.com/x", "example.com/hook", "http://", "not a url", "/relative"):
        with pytest.raises(ValueError):
            n.subscribe_webhook(bad, T0)
    a = n.subscribe_webhook("https://hooks.example.com/status", T0)
    b = n.subscribe_webhook("https://hooks.example.com/status", T0 + 1)
    assert a["id"] == b["id"]  # not added twice


def test_verify_signature() -> None:
    body = b'{"a":1}'
    header = sign("s3cret", body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert verify_signature("s3cret", body, header)
    assert verify_signature("s3cret", body, header + "\r\n")  # header whitespace
    assert not verify_signature("s3cret", b'{"a":2}', header)
    assert not verify_signature("other", body, header)
    assert not verify_signature("s3cret", body, header.removeprefix("sha256="))
    assert not verify_signature("s3cret", body, "")


# ---------------------------------------------------------------- shapes
# Statuspage's documented fields (public API v2 and webhook payloads), written out here
# independently of shapes.py
COMPONENT = {
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
}
INCIDENT = {
    "id",
    "name",
    "status",
    "impact",
    "created_at",
    "updated_at",
    "monitoring_at",
    "resolved_at",
    "started_at",
    "shortlink",
    "page_id",
    "incident_updates",
    "components",
}
UPDATE = {
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
}
SCHEDULED = {
    "scheduled_for",
    "scheduled_until",
    "scheduled_remind_prior",
    "scheduled_reminded_at",
    "scheduled_auto_in_progress",
    "scheduled_auto_completed",
}
WEBHOOK_EXTRA = SCHEDULED | {
    "backfilled",
    "impact_override",
    "postmortem_body",
    "postmortem_body_last_updated_at",
    "postmortem_ignored",
    "postmortem_notified_subscribers",
    "postmortem_notified_twitter",
    "postmortem_published_at",
}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def test_component_json_has_exactly_statuspages_fields(store: StatusStore) -> None:
    rows = {r["key"]: r for r in store.components()}
    btc = component_json(rows["market:XXBTZUSD"], PAGE)
    assert set(btc) == COMPONENT
    assert btc["id"] == rows["market:XXBTZUSD"]["id"] and len(btc["id"]) == 12
    assert btc["page_id"] == PAGE.id
    assert btc["status"] == "operational"
    assert btc["group"] is False and btc["group_id"] == rows["markets"]["id"]
    assert btc["position"] == 2 and btc["showcase"] is True
    assert btc["start_date"] == "2026-01-01"
    assert ISO.match(btc["created_at"]) and ISO.match(btc["updated_at"])
    assert component_json(rows["api:rest"], PAGE)["description"] == "The Kraken-compatible API"
    # a group carries its children's ids, as Statuspage's v2 API
    children = [rows["market:XXBTZUSD"]["id"], rows["market:XETHZUSD"]["id"]]
    group = component_json(rows["markets"], PAGE, children)
    assert set(group) == COMPONENT | {"components"}
    assert group["group"] is True and group["components"] == children
    json.dumps(group)  # plain JSON types only


def test_incident_json_has_exactly_statuspages_fields(store: StatusStore) -> None:
    iid = open_incident(store, T0)
    affected = [
        {"code": "c1", "name": "BTC/USD trading", "old_status": "operational"}
        | {"new_status": "partial_outage"}
    ]
    store.add_update(iid, "resolved", "All good.", T0 + 600, affected=affected)
    incident = store.incident(iid)
    assert incident is not None
    shaped = incident_json(incident, PAGE)
    assert set(shaped) == INCIDENT
    assert shaped["page_id"] == PAGE.id and shaped["impact"] == "major"
    assert shaped["shortlink"] == f"{PAGE.url}/incidents/{iid}"
    assert shaped["status"] == "resolved"
    assert shaped["resolved_at"] == "2026-01-01T00:10:00.000+00:00"
    assert shaped["started_at"] == shaped["created_at"] == "2026-01-01T00:00:00.000+00:00"
    assert shaped["monitoring_at"] is None
    newest, first = shaped["incident_updates"]
    assert set(newest) == set(first) == UPDATE
    assert newest["body"] == "All good." and newest["incident_id"] == iid
    assert newest["affected_components"] == affected
    assert first["affected_components"] is None  # Statuspage's null when none changed
    assert [set(c) for c in shaped["components"]] == [COMPONENT]
    for ts in ("created_at", "updated_at"):
        assert ISO.match(shaped[ts])
    assert set(incident_json(incident, PAGE, webhook=True)) == INCIDENT | WEBHOOK_EXTRA
    json.dumps(shaped)


def test_maintenance_json_adds_scheduled_fields(store: StatusStore) -> None:
    mid = store.create_incident(
        {
            "kind": "maintenance",
            "name": "Engine upgrade",
            "status": "scheduled",
            "impact": "maintenance",
            "scheduled_for": T0 + 3600,
            "scheduled_until": T0 + 7200,
        },
        "We will upgrade the matching engine.",
        ["market:XXBTZUSD", "market:XETHZUSD"],
        T0,
    )
    maintenance = store.incident(mid)
    assert maintenance is not None
    shaped = incident_json(maintenance, PAGE)
    assert set(shaped) == INCIDENT | SCHEDULED
    assert shaped["scheduled_for"] == "2026-01-01T01:00:00.000+00:00"
    assert shaped["scheduled_until"] == "2026-01-01T02:00:00.000+00:00"
    assert shaped["scheduled_remind_prior"] is True
    assert shaped["scheduled_auto_in_progress"] is True
    assert shaped["scheduled_reminded_at"] is None
    assert [c["name"] for c in shaped["components"]] == ["BTC/USD trading", "ETH/USD trading"]
    assert set(incident_json(maintenance, PAGE, webhook=True)) == INCIDENT | WEBHOOK_EXTRA
