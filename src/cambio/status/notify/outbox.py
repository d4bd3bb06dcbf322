"""Subscribers and the notifications they get, through the store's outbox.

Producing and delivering are split: `component_changed` and `incident_updated` only write
one outbox row per subscriber (in the store, so nothing is lost if the service stops), and
`deliver_due` sends what is due. A failed delivery is retried with exponential backoff
(30 s, 1 min, 2 min, ... up to `MAX_ATTEMPTS` tries) and then marked failed with its last
error, so an operator can see which subscriber never got what.

Channels, as Atlassian Statuspage's:

* email: double opt-in (a confirmation mail with a link; nothing else is sent before the
  link is followed), one mail per incident or maintenance update with an unsubscribe link
  and a List-Unsubscribe header. Component-only status changes do not email.
* webhook: a POST of Statuspage's payload ({meta, page, component, component_update} or
  {meta, page, incident}) on every component status change and incident update. Each body
  is signed: ``X-Cambio-Signature: sha256=<hex HMAC-SHA256 of the body with the
  subscriber's secret>``; `verify_signature` checks it. A 2xx within 30 s is delivered;
  anything else (a 3xx too, as Statuspage) is a failure.

Email goes out through aiosmtplib: `deliver_due` is a coroutine in the service's event
loop, and an asyncio SMTP client (with STARTTLS and AUTH) sends there without tying up a
thread per slow mail server. Webhooks go out through httpx's async client.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiosmtplib
import httpx
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import update

from cambio.status import model
from cambio.status.model import OPEN_INCIDENT, PageInfo, iso, new_id, words
from cambio.status.notify.shapes import component_json, incident_json
from cambio.status.store import Row, StatusStore, outbox

MAX_ATTEMPTS = 8
FIRST_RETRY_S = 30.0
MAX_RETRY_S = 3600.0
WEBHOOK_TIMEOUT_S = 30.0  # Statuspage's: a receiver must answer within 30 s
WEBHOOK_CONCURRENCY = 8  # a slow receiver must not hold up the others
# an unconfirmed address asking again gets a new confirmation mail at most this often,
# so the form cannot be used to flood someone's mailbox
RECONFIRM_AFTER_S = 3600.0
SIGNATURE_HEADER = "X-Cambio-Signature"
TIMESTAMP_HEADER = "X-Cambio-Timestamp"


@dataclass(frozen=True)
class SmtpSettings:
    """Where mail goes out. `starttls` upgrades the connection before AUTH and fails if
    the server cannot; without it the connection stays plain (a local relay)."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout: float = 30.0


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for `body`: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str) -> bool:
    """Whether `header` (X-Cambio-Signature) signs exactly `body` with `secret`. The
    comparison takes the same time wherever the strings differ, so a receiver using it
    does not leak how much of a forged signature was right."""
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().encode())


def backoff(failures: int) -> float:
    """Seconds to wait after the `failures`-th failed attempt: 30 s, doubling, capped."""
    return min(FIRST_RETRY_S * 2.0 ** (failures - 1), MAX_RETRY_S)


def current_page_status(store: StatusStore) -> tuple[str, str]:
    """(indicator, description) of the page now, from the store: the worst component,
    raised to any open incident's impact."""
    statuses = [c["status"] for c in store.components() if not c["is_group"]]
    impacts = [i["impact"] for i in store.incidents("incident", OPEN_INCIDENT)]
    return model.page_status(statuses, impacts)


class Notifications:
    """Subscribers (email, webhook) and what they are sent. Times are passed in as `now`
    (epoch seconds); run one `deliver_due` at a time per store."""

    def __init__(
        self,
        store: StatusStore,
        page: PageInfo,
        smtp: SmtpSettings | None,
        sender: str,
        documentation_url: str | None = None,
    ) -> None:
        self.store = store
        self.page = page
        self.smtp = smtp
        self.sender = sender
        self.url = page.url.rstrip("/")
        # what meta.documentation points webhook receivers to
        self.documentation_url = documentation_url or f"{self.url}/#webhooks"
        self._delivering = asyncio.Lock()
        try:
            self._tz: ZoneInfo | None = ZoneInfo(page.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            self._tz = None

    # ------------------------------------------------------------------ links
    def confirm_url(self, token: str) -> str:
        return f"{self.url}/subscriptions/confirm/{token}"

    def unsubscribe_url(self, token: str) -> str:
        return f"{self.url}/subscriptions/unsubscribe/{token}"

    # ------------------------------------------------------------------ subscribers
    def subscribe_email(self, address: str, now: float) -> Row:
        """Subscribe an address (double opt-in): an unconfirmed subscriber and a mail with
        the confirmation link. An address already subscribed is not added twice; one still
        unconfirmed gets the link again if its last one is over an hour old.

        Only queues: the operator's CLI may subscribe someone without SMTP settings, and
        the service that has them sends the mail. Raises ValueError for an address that is
        not one."""
        try:
            # syntax only: a DNS look-up would make subscribing depend on the network and
            # tell nothing the confirmation mail does not
            normalized = validate_email(address, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise ValueError(f"not an email address: {exc}") from exc
        sub = self.store.add_subscriber("email", normalized, now)
        if sub["confirmed_at"] is not None:
            return sub
        sent = [d["created_at"] for d in self.store.deliveries(sub["id"])]
        if sent and now - max(sent) < RECONFIRM_AFTER_S:
            return sub
        link = self.confirm_url(sub["token"])
        body = (
            f"Someone (hopefully you) asked to get {self.page.name} updates at "
            f"{normalized}: incidents and maintenance, as they happen.\n\n"
            f"To confirm, open this link:\n{link}\n\n"
            "If it was not you, ignore this mail: nothing more will be sent.\n"
        )
        self.store.enqueue(
            sub["id"],
            f"[{self.page.name}] Confirm your subscription",
            {"channel": "email", "body": body, "headers": {}},
            now,
        )
        return sub

    def confirm(self, token: str, now: float) -> Row | None:
        """Confirm a subscription from its link; the subscriber, or None if unknown."""
        return self.store.confirm(token, now)

    def unsubscribe(self, token: str, now: float) -> Row | None:
        """End a subscription from its link; the subscriber, or None if unknown."""
        return self.store.unsubscribe(token, now)

    def subscribe_webhook(self, url: str, now: float) -> Row:
        """Add a webhook (the operator adds it, so it is confirmed at once). The row has
        the HMAC `secret` the receiver verifies signatures with: show it to the operator.

        Raises ValueError unless `url` is an absolute http(s) URL."""
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise ValueError(f"not a URL: {exc}") from exc
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"a webhook needs an http(s) URL, not {url!r}")
        return self.store.add_subscriber(
            "webhook", str(parsed), now, secret=secrets.token_hex(32), confirmed=True
        )

    # ------------------------------------------------------------------ events
    def _meta(self, sub: Row, now: float) -> dict[str, Any]:
        return {
            "unsubscribe": self.unsubscribe_url(sub["token"]),
            "documentation": self.documentation_url,
            "generated_at": iso(now),
        }

    def _page(self, page_status: tuple[str, str]) -> dict[str, Any]:
        indicator, description = page_status
        return {
            "id": self.page.id,
            "status_indicator": indicator,
            "status_description": description,
        }

    def _enqueue_webhook(self, sub: Row, subject: str, payload: dict[str, Any], now: float) -> None:
        # the body is serialized once, here: every retry sends the same bytes (and so the
        # same signature), and a receiver can de-duplicate on them
        body = json.dumps(payload, separators=(",", ":"))
        self.store.enqueue(sub["id"], subject, {"channel": "webhook", "body": body}, now)

    def component_changed(
        self, change: Row, now: float, page_status: tuple[str, str] | None = None
    ) -> int:
        """Queue Statuspage's component webhook for a change StatusStore.set_status
        returned, to every webhook subscriber (email subscribers are not told of
        component-only changes, as Statuspage). The page status defaults to the store's
        current one. How many were queued."""
        hooks = self.store.subscribers("webhook")
        if not hooks:
            return 0
        status = page_status or current_page_status(self.store)
        component = change["component"]
        update_json = {
            "id": new_id(),
            "component_id": component["id"],
            "component_type": "Group" if component.get("is_group") else "Component",
            "old_status": change["old_status"],
            "new_status": change["new_status"],
            "created_at": iso(component.get("updated_at", now)),
        }
        subject = f"{component['name']}: {change['old_status']} -> {change['new_status']}"
        for sub in hooks:
            payload = {
                "meta": self._meta(sub, now),
                "page": self._page(status),
                "component_update": update_json,
                "component": component_json(component, self.page),
            }
            self._enqueue_webhook(sub, subject, payload, now)
        return len(hooks)

    def incident_updated(
        self, incident: Row, now: float, page_status: tuple[str, str] | None = None
    ) -> int:
        """Queue the newest update of an incident or maintenance (StatusStore.incident())
        for every subscriber: a mail to each confirmed address, Statuspage's incident
        payload to each webhook (with the page's status, from the store unless given).
        How many were queued."""
        word = words(incident["status"])
        subject = f"[{self.page.name}] {incident['name']}: {word}"
        queued = 0
        for sub in self.store.subscribers("email"):
            unsubscribe = self.unsubscribe_url(sub["token"])
            mail = {
                "channel": "email",
                "body": self._incident_text(incident, unsubscribe),
                "headers": {"List-Unsubscribe": f"<{unsubscribe}>"},
            }
            self.store.enqueue(sub["id"], subject, mail, now)
            queued += 1
        hooks = self.store.subscribers("webhook")
        if hooks:
            shape = incident_json(incident, self.page, webhook=True)
            page = self._page(page_status or current_page_status(self.store))
            for sub in hooks:
                payload = {
                    "meta": self._meta(sub, now),
                    "page": page,
                    "incident": shape,
                }
                self._enqueue_webhook(sub, subject, payload, now)
                queued += 1
        return queued

    def _when(self, ts: float) -> str:
        if self._tz is None:
            return f"{iso(ts)}"
        return datetime.fromtimestamp(ts, self._tz).strftime("%Y-%m-%d %H:%M %Z")

    def _incident_text(self, incident: Row, unsubscribe: str) -> str:
        updates = incident.get("updates") or []
        newest = updates[0] if updates else None
        word = words(incident["status"])
        lines = [incident["name"], "", f"Status: {word}"]
        if incident.get("kind") != "maintenance":
            lines.append(f"Impact: {incident['impact']}")
        names = [c["name"] for c in incident.get("components") or []]
        lines.append(f"Affected: {', '.join(names) if names else 'no component'}")
        if incident.get("scheduled_for") is not None:
            window = f"Scheduled: from {self._when(incident['scheduled_for'])}"
            if incident.get("scheduled_until") is not None:
                window += f" until {self._when(incident['scheduled_until'])}"
            lines.append(window)
        lines.append("")
        if newest is not None:
            lines += [f"Update, {self._when(newest['created_at'])}:", newest["body"], ""]
        if incident.get("next_update_at") is not None:
            lines += [f"Next update by {self._when(incident['next_update_at'])}.", ""]
        lines += [
            f"Follow it: {self.url}/incidents/{incident['id']}",
            "",
            "--",
            f"You get this because you subscribed to {self.page.name} at {self.url}.",
            f"Unsubscribe: {unsubscribe}",
        ]
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------------ delivery
    async def deliver_due(self, now: float) -> int:
        """Send every outbox entry due at `now`; how many were delivered. Entries for
        subscribers who left (or were deleted) are dropped, not sent."""
        async with self._delivering:
            delivered = 0
            # a round's failures are retried later, so `due` empties within a few rounds
            for _ in range(100):
                batch = self.store.due(now)
                if not batch:
                    break
                delivered += await self._deliver(batch, now)
            return delivered

    async def _deliver(self, batch: list[Row], now: float) -> int:
        mails: list[tuple[Row, Row]] = []
        hooks: list[tuple[Row, Row]] = []
        for item in batch:
            sub = self.store.subscriber(item["subscriber_id"])
            if sub is None or sub["unsubscribed_at"] is not None:
                self._drop(item["id"], "subscriber gone" if sub is None else "unsubscribed")
            elif sub["kind"] == "email":
                mails.append((item, sub))
            else:
                hooks.append((item, sub))
        results = await asyncio.gather(self._send_mails(mails, now), self._send_hooks(hooks, now))
        return sum(results)

    def _drop(self, outbox_id: int, why: str) -> None:
        # not a failure: nobody wants it any more. A state of its own keeps it out of
        # the failures an operator has to look at.
        with self.store.engine.begin() as conn:
            conn.execute(
                update(outbox)
                .where(outbox.c.id == outbox_id)
                .values(state="dropped", last_error=why)
            )

    def _outcome(self, item: Row, now: float, error: str | None) -> int:
        if error is None:
            self.store.delivered(item["id"], now)
            return 1
        failures = item["attempts"] + 1
        final = failures >= MAX_ATTEMPTS
        self.store.retry(item["id"], now + backoff(failures), error, final=final)
        return 0

    def _message(self, item: Row, sub: Row) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = sub["target"]
        msg["Subject"] = item["subject"]
        msg["Date"] = formatdate(item["created_at"], usegmt=True)
        msg["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        for name, value in item["payload"].get("headers", {}).items():
            msg[name] = value
        msg.set_content(item["payload"]["body"])
        return msg

    async def _send_mails(self, items: list[tuple[Row, Row]], now: float) -> int:
        if not items:
            return 0
        if self.smtp is None:
            return sum(self._outcome(item, now, "no SMTP server configured") for item, _ in items)
        delivered = 0
        client: aiosmtplib.SMTP | None = None
        try:
            # one connection for the whole batch: a mail server may limit connections
            for item, sub in items:
                error: str | None = None
                try:
                    if client is None:
                        client = await self._connect(self.smtp)
                    await client.send_message(self._message(item, sub))
                except (aiosmtplib.SMTPException, OSError, ValueError) as exc:
                    error = f"{type(exc).__name__}: {exc}"
                    # a refused recipient leaves the session usable; anything else may
                    # not have, so the next mail starts a new one
                    if not isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and client:
                        client.close()
                        client = None
                delivered += self._outcome(item, now, error)
        finally:
            if client is not None and client.is_connected:
                try:
                    await client.quit()
                except (aiosmtplib.SMTPException, OSError):
                    client.close()
        return delivered

    @staticmethod
    async def _connect(smtp: SmtpSettings) -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(
            hostname=smtp.host,
            port=smtp.port,
            username=smtp.username,
            password=smtp.password,
            # True: upgrade or fail; False: never try (aiosmtplib's None would upgrade
            # whenever offered, and fail on a relay with a certificate we cannot check)
            start_tls=smtp.starttls,
            timeout=smtp.timeout,
        )
        await client.connect()  # also logs in when a username is set
        return client

    async def _send_hooks(self, items: list[tuple[Row, Row]], now: float) -> int:
        if not items:
            return 0
        limit = asyncio.Semaphore(WEBHOOK_CONCURRENCY)
        timeout = httpx.Timeout(WEBHOOK_TIMEOUT_S)
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:

            async def one(item: Row, sub: Row) -> str | None:
                async with limit:
                    return await self._post(client, item, sub, now)

            errors = await asyncio.gather(*(one(item, sub) for item, sub in items))
        return sum(
            self._outcome(item, now, error) for (item, _), error in zip(items, errors, strict=True)
        )

    async def _post(self, client: httpx.AsyncClient, item: Row, sub: Row, now: float) -> str | None:
        """POST one webhook; None when the receiver took it, else the error."""
        body = item["payload"]["body"].encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "cambio-status",
            SIGNATURE_HEADER: sign(sub["secret"] or "", body),
            TIMESTAMP_HEADER: str(int(now)),
        }
        try:
            # httpx's timeout is per phase; the receiver has 30 s in all, as Statuspage's
            response = await asyncio.wait_for(
                client.post(sub["target"], content=body, headers=headers), WEBHOOK_TIMEOUT_S
            )
        except TimeoutError:
            return f"no answer within {WEBHOOK_TIMEOUT_S:g} s"
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"
