"""The cadence guarantee on a controllable clock, through to subscribers: nobody posts
for 30 minutes, the service posts the live figures itself and every subscriber gets
them, by email (a real SMTP server) and by signed webhook (a real receiver)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from loopback import Inbox, Receiver

from cambio.model.config import load_config
from cambio.model.events import MarketModeChanged
from cambio.status.automation import Automation, Settings
from cambio.status.components import catalogue
from cambio.status.model import PageInfo
from cambio.status.notify.outbox import Notifications, SmtpSettings, verify_signature
from cambio.status.store import StatusStore

CONFIG = load_config()
T0 = 1_800_000_000.0


def test_thirty_silent_minutes_bring_an_automatic_update_to_every_subscriber(
    tmp_path: Path, smtp: tuple[Inbox, SmtpSettings], receiver: Receiver
) -> None:
    inbox, settings = smtp
    store = StatusStore(tmp_path / "status.db")
    store.sync_components(catalogue(CONFIG), T0)
    page = PageInfo("pg0000000001", "cambio status", "http://status.test")
    n = Notifications(store, page, settings, "status@cambio.test")
    auto = Automation(store, CONFIG, Settings(cadence_s=1800), announce=n.incident_updated,
                      component_changed=n.component_changed)  # fmt: skip
    mail = n.subscribe_email("dave@example.com", T0)
    n.confirm(mail["token"], T0)
    hook = n.subscribe_webhook(receiver.url + "/status", T0)
    markets = {p.wsname: "online" for p in CONFIG.pairs}

    def step(now: float, events: list[MarketModeChanged] | None = None) -> None:
        beat = {"ts": now, "global": "online", "markets": dict(markets), "funding": {},
                "api": {"rest": True, "ws": True}, "withdrawals_queued": 0}  # fmt: skip
        records = [(1, int(now * 1e9), events)] if events else []
        auto.step(now, beat, records)
        asyncio.run(n.deliver_due(now))

    step(T0)
    markets["ETH/USD"] = "cancel_only"
    xeth = CONFIG.pair("XETHZUSD")
    step(T0 + 1, [MarketModeChanged(pair=xeth.index, mode="cancel_only", reason="ETH "
                                    "price feed lost")])  # fmt: skip
    opened = len(inbox.mails)  # the confirmation, then the incident
    assert opened == 2 and "ETH price feed lost" in inbox.mails[-1]["Subject"]
    for minute in range(1, 30):
        step(T0 + 1 + minute * 60)
    assert len(inbox.mails) == opened  # promised for 30 minutes: nothing yet
    step(T0 + 1 + 30 * 60)
    assert len(inbox.mails) == opened + 1
    body = " ".join(inbox.mails[-1].get_content().split())  # as read, not as wrapped
    assert "Automatic update: no update from the team yet." in body
    assert "cancel-only (orders can be cancelled, not placed): ETH/USD" in body
    assert "Next update by 09:00 UTC" in body
    incidents = [r for r in receiver.requests if "incident" in r.json()]
    assert len(incidents) == 2
    last = incidents[-1]
    assert verify_signature(hook["secret"], last.body, last.headers["X-Cambio-Signature"])
    updates = last.json()["incident"]["incident_updates"]
    assert updates[0]["body"].startswith("Automatic update")
