"""The status service acting by itself, on a controllable clock: components following the
heartbeat, the incident a silent exchange opens and resolves, a planned stop, incidents
from mode changes named by their journaled reason, maintenances from upgrade phases with
reminder, start and overrun, and the cadence guarantee with live figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cambio.model.config import load_config
from cambio.model.events import (
    FundingChanged,
    GlobalModeChanged,
    MarketModeChanged,
    UpgradePhase,
)
from cambio.status.automation import Automation, Settings
from cambio.status.components import catalogue
from cambio.status.figures import hhmm
from cambio.status.store import Row, StatusStore

CONFIG = load_config()
XBT = CONFIG.pair("XXBTZUSD")
T0 = 1_800_000_000.0  # 2027-01-15T08:00Z


class World:
    """A status store and its automation, a heartbeat the test writes, and the clock."""

    def __init__(self, tmp: Path) -> None:
        self.store = StatusStore(tmp / "status.db")
        self.store.sync_components(catalogue(CONFIG), T0)
        self.announced: list[tuple[str, str, str]] = []  # (incident name, status, body)
        self.changed: list[Row] = []
        self.auto = Automation(self.store, CONFIG, Settings(stale_s=15, cadence_s=1800),
                               announce=self._announce,
                               component_changed=lambda c, now: self.changed.append(c))  # fmt: skip
        self.now = T0
        self.markets = {p.wsname: "online" for p in CONFIG.pairs}
        self.funding = {a.id: {"deposits": True, "withdrawals": True} for a in CONFIG.assets}
        self.global_mode = "online"
        self.beat_ts: float | None = T0
        self.extra: dict[str, Any] = {}
        self.seq = 0

    def _announce(self, incident: Row, now: float) -> None:
        self.announced.append(
            (incident["name"], incident["status"], incident["updates"][0]["body"])
        )

    def beat(self) -> dict[str, Any] | None:
        if self.beat_ts is None:
            return None
        return {"ts": self.beat_ts, "global": self.global_mode, "markets": dict(self.markets),
                "funding": json.loads(json.dumps(self.funding)), "api": {"rest": True, "ws": True},
                "stopping": False, "withdrawals_queued": 2} | self.extra  # fmt: skip

    def step(self, seconds: float = 1.0, events: list[Any] | None = None,
             beating: bool = True) -> None:  # fmt: skip
        self.now += seconds
        if beating:
            self.beat_ts = self.now
        records = []
        if events:
            self.seq += 1
            records = [(self.seq, int(self.now * 1e9), events)]
        self.auto.step(self.now, self.beat(), records)

    def status(self, key: str) -> str:
        (found,) = [c["status"] for c in self.store.components() if c["key"] == key]
        return str(found)

    def open(self, kind: str = "incident") -> list[Row]:
        statuses = ("investigating", "identified", "monitoring") if kind == "incident" else (
            "scheduled", "in_progress", "verifying")  # fmt: skip
        return self.store.incidents(kind, statuses)


@pytest.fixture
def w(tmp_path: Path) -> World:
    world = World(tmp_path)
    world.step()
    return world


def test_components_follow_the_modes_in_the_heartbeat(w: World) -> None:
    assert w.status(f"market:{XBT.id}") == "operational"
    w.markets["XBT/USD"] = "cancel_only"
    w.funding["XXBT"]["withdrawals"] = False
    w.step()
    assert w.status(f"market:{XBT.id}") == "partial_outage"
    assert w.status("withdrawals:XXBT") == "major_outage"
    assert w.status("deposits:XXBT") == "operational"
    assert {(c["component"]["key"], c["old_status"], c["new_status"]) for c in w.changed} == {
        (f"market:{XBT.id}", "operational", "partial_outage"),
        ("withdrawals:XXBT", "operational", "major_outage"),
    }
    w.global_mode = "maintenance"
    w.markets = dict.fromkeys(w.markets, "maintenance")
    w.step()  # halted: funding that is off is part of the maintenance
    assert w.status(f"market:{XBT.id}") == "under_maintenance"
    assert w.status("withdrawals:XXBT") == "under_maintenance"
    w.markets["XBT/USD"] = "post_only"
    w.step()
    assert w.status(f"market:{XBT.id}") == "degraded_performance"


def test_a_silent_exchange_opens_an_incident_and_its_return_resolves_it(w: World) -> None:
    w.step(15, beating=False)
    assert not w.open()  # 15 s of silence: still within the grace
    w.step(1, beating=False)
    (incident,) = w.open()
    assert (incident["name"], incident["status"], incident["impact"]) == (
        "The exchange is not responding", "investigating", "critical")  # fmt: skip
    assert {c["status"] for c in w.store.components() if not c["is_group"]} == {"major_outage"}
    assert "no sign of life from the exchange since 08:00 UTC" in incident["updates"][0]["body"]
    assert incident["next_update_at"] == pytest.approx(w.now + 1800)
    w.step(60, beating=False)
    assert len(w.open()) == 1  # one incident, not one per step
    w.step()
    assert not w.open()
    done = w.store.incident(incident["id"])
    assert done is not None and done["status"] == "resolved"
    assert "unreachable for about 1 min" in done["updates"][0]["body"]
    assert w.status(f"market:{XBT.id}") == "operational"
    assert [a[1] for a in w.announced] == ["investigating", "resolved"]


def test_a_planned_stop_is_a_maintenance_not_an_incident(w: World) -> None:
    w.extra = {"stopping": True}
    w.step()
    w.step(20, beating=False)
    assert not w.open()
    (m,) = w.open("maintenance")
    assert m["status"] == "in_progress" and m["name"].startswith("The exchange is stopped")
    assert w.status("api:rest") == "under_maintenance"
    w.extra = {}
    w.step()
    assert not w.open("maintenance") and w.status("api:rest") == "operational"


def test_a_mode_change_opens_an_incident_named_by_its_reason(w: World) -> None:
    w.markets["XBT/USD"] = "cancel_only"
    w.step(events=[MarketModeChanged(pair=XBT.index, mode="cancel_only",
                                     reason="XBT/USD moved 12% in 60 s: price band")])  # fmt: skip
    (incident,) = w.open()
    assert incident["name"] == "XBT/USD moved 12% in 60 s: price band"
    assert (incident["status"], incident["impact"]) == ("identified", "major")
    assert [c["key"] for c in incident["components"]] == [f"market:{XBT.id}"]
    w.funding["XETH"]["withdrawals"] = False
    w.step(events=[FundingChanged(asset=CONFIG.asset("XETH").index, deposits=True,
                                  withdrawals=False, reason="ETH node resyncing")])  # fmt: skip
    (incident,) = w.open()
    assert "Major outage (ETH node resyncing): ETH withdrawals." in incident["updates"][0]["body"]
    assert incident["impact"] == "critical"
    w.markets["XBT/USD"] = "online"
    w.funding["XETH"]["withdrawals"] = True
    w.step(events=[GlobalModeChanged(mode="online", reason="all clear")])
    assert not w.open()
    assert w.announced[-1][1] == "resolved"


def test_upgrade_phases_drive_a_maintenance_with_the_measured_eta(w: World) -> None:
    at = T0 + 3 * 3600
    detail = {"at": "2027-01-15T11:00:00+00:00", "expected_s": 5400, "basis": "replay at "
              "120,000 commands/s", "note": "New matching engine."}  # fmt: skip
    w.step(events=[UpgradePhase(phase="scheduled", candidate="v2", detail=json.dumps(detail))])
    (m,) = w.open("maintenance")
    assert (m["status"], m["scheduled_for"], m["scheduled_until"]) == ("scheduled", at,
                                                                       at + 5400)  # fmt: skip
    assert "1 h 30 min" in m["updates"][0]["body"] and "120,000" in m["updates"][0]["body"]
    w.now = at - 3600 - 1
    w.step()  # the reminder, 60 minutes before
    (m,) = w.open("maintenance")
    assert m["updates"][0]["body"].startswith("Reminder: this maintenance starts at 11:00 UTC")
    w.step(events=[UpgradePhase(phase="shadowing", candidate="v2", detail="{}")])
    w.now = at
    w.step()  # the clock does not start an upgrade: the operator's cutover does
    assert w.open("maintenance")[0]["status"] == "scheduled"
    w.step(events=[UpgradePhase(phase="in_progress", candidate="v2", detail="{}")])
    assert w.open("maintenance")[0]["status"] == "in_progress"
    w.step(events=[UpgradePhase(phase="verifying", candidate="v2",
                                detail=json.dumps({"pause_ms": 4.2}))])  # fmt: skip
    (m,) = w.open("maintenance")
    assert m["status"] == "verifying" and "paused for 4 ms" in m["updates"][0]["body"]
    w.step(events=[UpgradePhase(phase="completed", candidate="v2", detail="{}")])
    assert not w.open("maintenance")
    assert [s for _, s, _ in w.announced] == ["scheduled", "scheduled", "scheduled",
                                              "in_progress", "verifying", "completed"]  # fmt: skip
    # a blink of a cutover still gets a window customers can plan around
    w.step(events=[UpgradePhase(phase="scheduled", candidate="v3", detail=json.dumps(
        detail | {"expected_s": 0.13}))])  # fmt: skip
    (m,) = w.open("maintenance")
    assert m["scheduled_until"] - m["scheduled_for"] == 900


def test_an_overrunning_maintenance_says_so_with_a_new_estimate(w: World) -> None:
    detail = {"at": "2027-01-15T08:00:30+00:00", "expected_s": 1200, "basis": "replay"}
    w.step(events=[UpgradePhase(phase="scheduled", candidate="v2", detail=json.dumps(detail))])
    w.step(40, events=[UpgradePhase(phase="in_progress", candidate="v2", detail="{}")])
    w.extra = {"upgrade_detail": {"phase": "shadowing", "rehearsal": {"eta_s": 900}}}
    w.step(1200)
    (m,) = w.open("maintenance")
    body = m["updates"][0]["body"]
    assert body.startswith("This maintenance is taking longer than planned")
    assert "expected to end at 08:20 UTC" in body and "measured replay speed" in body
    assert m["scheduled_until"] == pytest.approx(w.now + 900)


def test_the_cadence_posts_live_figures_when_nobody_does(w: World) -> None:
    w.markets["XBT/USD"] = "cancel_only"
    w.step(events=[MarketModeChanged(pair=XBT.index, mode="cancel_only", reason="breaker")])
    (incident,) = w.open()
    w.step(29 * 60)
    assert len(w.open()[0]["updates"]) == 1  # promised for 30 minutes: not yet
    w.extra = {"upgrade_detail": {"phase": "shadowing", "rehearsal": {
        "done": 450_000, "total": 1_000_000, "rate": 120_000, "eta_s": 5}}}  # fmt: skip
    w.step(61)
    (incident,) = w.open()
    auto = incident["updates"][0]
    assert auto["automatic"]
    body = auto["body"]
    for expected in ("Automatic update: no update from the team", "Ongoing for 30 min",
                     "cancel-only (orders can be cancelled, not placed): XBT/USD",
                     "Withdrawals queued, paid once withdrawals reopen: 2",
                     "Rehearsal: 45% (450,000 of 1,000,000 commands at 120,000/s)",
                     f"Next update by {hhmm(w.now + 1800)}"):  # fmt: skip
        assert expected in body, body
    assert incident["next_update_at"] == pytest.approx(w.now + 1800)
    # an operator's update keeps the promise by itself: nothing automatic meanwhile
    w.store.add_update(incident["id"], "monitoring", "A fix is out.", w.now + 60,
                       fields={"next_update_at": w.now + 60 + 1800})  # fmt: skip
    w.step(1800)
    assert not w.open()[0]["updates"][0]["automatic"]
    w.step(61)
    assert w.open()[0]["updates"][0]["automatic"]
