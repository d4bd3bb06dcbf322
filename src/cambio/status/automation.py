"""What the status service does by itself, every step, from the exchange's real state.

* **Components** follow the last heartbeat (cambio.status.components). Each change goes
  to the webhooks.
* **Modes**: when markets or funding leave normal (a halt, a breaker, an operator's mode
  change), one incident "identified" opens by itself, named by the reason the journal
  recorded; each further change is an update on its timeline, and it resolves when every
  component is back. During an engine upgrade's maintenance the changes go on the
  maintenance's timeline instead.
* **Silence**: no heartbeat for `stale_s` seconds opens an incident "investigating" and
  marks every component major_outage; it resolves when heartbeats return. A heartbeat
  that said "stopping" before going quiet was a planned stop: a maintenance instead.
* **Upgrades**: the journaled phases create and advance a maintenance, announced with the
  rehearsal's measured ETA (scheduled -> in_progress at the cutover -> verifying ->
  completed; rolled back or aborted say so). Its window is the ETA, at least
  `upgrade_window_s` (15 min): a 0.1 s cutover is not a window anyone can plan around.
* **Maintenance clock**: a reminder `remind_s` (60 min) before the start; auto start;
  auto complete at the expected end, unless it is overrunning: then an update says so,
  with a new expected end (the upgrade's ETA if there is one), never silently.
* **Cadence**: every open incident and every maintenance under way promises its next
  update (`cadence_s`, 30 min, per impact with `cadence_by_impact`); when the time comes
  and nobody posted, the service posts the live figures itself (cambio.status.figures)
  and promises the next.

Every new incident, maintenance and update is announced (`announce`: email and webhooks).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cambio.model.config import MarketConfig
from cambio.model.events import (
    AnyEvent,
    FundingChanged,
    GlobalModeChanged,
    MarketModeChanged,
    UpgradePhase,
)
from cambio.status import figures
from cambio.status.components import desired, leaf_keys
from cambio.status.model import (
    MAINTENANCE_STATUSES,
    OPEN_INCIDENT,
    OPEN_MAINTENANCE,
    OPERATIONAL,
    incident_impact,
    words,
)
from cambio.status.store import Row, StatusStore

log = logging.getLogger("cambio.status")
Records = list[tuple[int, int, list[AnyEvent]]]


@dataclass
class Settings:
    stale_s: float = 15.0  # no heartbeat this long: the exchange is down
    cadence_s: float = 1800.0  # the promised time between updates
    cadence_by_impact: dict[str, float] = field(default_factory=dict)  # e.g. critical: 900
    remind_s: float = 3600.0  # a maintenance's reminder, this long before it starts
    overrun_s: float = 1800.0  # an overrunning maintenance's new end, without a better ETA
    upgrade_window_s: float = 900.0  # an upgrade's announced window, at least


class Automation:
    def __init__(
        self,
        store: StatusStore,
        config: MarketConfig,
        settings: Settings | None = None,
        announce: Callable[[Row, float], object] | None = None,
        component_changed: Callable[[Row, float], object] | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.settings = settings or Settings()
        self._announce = announce
        self._component_changed = component_changed
        self.reasons: dict[str, str] = {}  # component key (or "global") -> last reason
        self.started_at: float | None = None
        self.was_alive = True
        self.pending: list[tuple[float, int, list[Row]]] = []  # (seen, beat's seq, changes)
        self.names = {s["key"]: s["name"] for s in store.components()}

    # ------------------------------------------------------------------ helpers
    def cadence(self, impact: str) -> float:
        return self.settings.cadence_by_impact.get(impact, self.settings.cadence_s)

    def announce(self, incident_id: str, now: float) -> None:
        if self._announce is not None:
            incident = self.store.incident(incident_id)
            if incident is not None:
                self._announce(incident, now)

    def _open(self, fields: Row, body: str, keys: list[str], now: float) -> str:
        impact = fields.get("impact") or incident_impact(self._statuses(keys))
        fields = {"impact": impact, "next_update_at": now + self.cadence(impact)} | fields
        iid = self.store.create_incident(fields, body, keys, now, automatic=True)
        log.info("opened %s %s: %s", fields["kind"], iid, fields["name"])
        self.announce(iid, now)
        return iid

    def _update(self, incident: Row, status: str, body: str, now: float, **extra: Any) -> None:
        done = status in ("resolved", "completed")
        fields = {"next_update_at": None if done else now + self.cadence(incident["impact"])}
        self.store.add_update(incident["id"], status, body, now, automatic=True,
                              fields=fields | extra)  # fmt: skip
        self.announce(incident["id"], now)

    def _statuses(self, keys: list[str]) -> list[str]:
        by_key = {c["key"]: c["status"] for c in self.store.components()}
        return [by_key[k] for k in keys if k in by_key]

    # ------------------------------------------------------------------ the step
    def learn(self, records: Records) -> None:
        """The journal's past: only the reasons it recorded, nothing announced."""
        for _seq, _ts, events in records:
            for e in events:
                if not isinstance(e, UpgradePhase):
                    self._journal([e], 0.0)

    def step(self, now: float, beat: dict[str, Any] | None, records: Records,
             journal_seq: int | None = None) -> None:  # fmt: skip
        """One step at `now`: the last heartbeat, the journal's new records, and how far
        the journal has been read (None: take the reasons as they are)."""
        if self.started_at is None:
            self.started_at = now
        alive = beat is not None and now - float(beat.get("ts", 0)) <= self.settings.stale_s
        for _seq, ts, events in records:
            self._journal(events, ts / 1e9)
        changes = self._components(now, beat, alive)
        self._silence(now, beat, alive)
        if alive and changes and self.was_alive:  # not the restoration after a silence
            assert beat is not None
            self.pending.append((now, int(beat.get("seq", 0)), changes))
        self.was_alive = alive
        # a change's reason is in the journal's events of the heartbeat's seq, which are
        # recorded with the journal's next write: wait for them (a few seconds at most)
        while self.pending:
            seen, seq, found = self.pending[0]
            if journal_seq is not None and journal_seq < seq and now - seen < 5:
                break
            self.pending.pop(0)
            self._modes(now, found)
        self._maintenance_clock(now, beat)
        self._cadence(now, beat, alive)

    # ------------------------------------------------------------------ components
    def _components(self, now: float, beat: dict[str, Any] | None, alive: bool) -> list[Row]:
        if beat is None and now - (self.started_at or now) < self.settings.stale_s:
            return []  # just started: give the exchange its first heartbeat's time
        changes = []
        for key, status in desired(self.config, beat, alive).items():
            change = self.store.set_status(key, status, now)
            if change is not None:
                changes.append(change)
                if self._component_changed is not None:
                    self._component_changed(change, now)
        return changes

    def _describe(self, changes: list[Row]) -> str:
        """The changes in a few lines: components grouped by new status and reason."""
        groups: dict[tuple[str, str], list[str]] = {}
        for change in changes:
            key = change["component"]["key"]
            reason = self.reasons.get(key) or (
                self.reasons.get("global", "") if key.startswith("market:") else ""
            )
            groups.setdefault((change["new_status"], reason), []).append(self.names.get(key, key))
        lines = []
        for (status, reason), names in groups.items():
            said = words(status)
            lines.append(f"{said}{f' ({reason})' if reason else ''}: {', '.join(names)}.")
        return " ".join(lines)

    def _modes(self, now: float, changes: list[Row]) -> None:
        upgrade = self.store.find_open("upgrade")
        if upgrade is not None and upgrade["status"] in OPEN_MAINTENANCE:
            self._update(upgrade, upgrade["status"], self._describe(changes), now)
            return
        keys = [c["key"] for c in self.store.components() if not c["is_group"]]
        degraded = [c["component"]["key"] for c in changes if c["new_status"] != OPERATIONAL]
        still = [k for k, s in zip(keys, self._statuses(keys), strict=True) if s != OPERATIONAL]
        incident = self.store.find_open("modes")
        body = self._describe(changes)
        if incident is None:
            if not degraded:
                return
            named = next((self.reasons[k] for k in degraded if k in self.reasons), None)
            name = named or self.reasons.get("global") or "Trading or funding restricted"
            self._open({"kind": "incident", "name": name[:120], "status": "identified",
                        "source": "modes"}, body, still, now)  # fmt: skip
            return
        if still:
            self.store.link_components(incident["id"], still)
            impact = incident_impact(self._statuses(still))
            self._update(incident, incident["status"], body, now, impact=impact)
        else:
            self._update(incident, "resolved", body + " Everything is back to normal.", now)

    # ------------------------------------------------------------------ silence
    def _silence(self, now: float, beat: dict[str, Any] | None, alive: bool) -> None:
        everything = leaf_keys(self.config)
        if beat is None and now - (self.started_at or now) < self.settings.stale_s:
            return
        planned = beat is not None and bool(beat.get("stopping"))
        down = self.store.find_open("heartbeat")
        stop = self.store.find_open("stop")
        last = figures.hhmm(float(beat["ts"])) if beat else "this page started"
        if not alive and planned and stop is None and down is None:
            self._open({"kind": "maintenance", "name": "The exchange is stopped for "
                        "maintenance", "status": "in_progress", "source": "stop",
                        "impact": "maintenance", "started_at": now,
                        "scheduled_for": now, "scheduled_auto_completed": False},
                       f"The operator stopped the exchange at {last}. Balances and orders "
                       "are kept; it resumes where it stopped.", everything, now)  # fmt: skip
        elif not alive and not planned and down is None:
            self._open({"kind": "incident", "name": "The exchange is not responding",
                        "status": "investigating", "source": "heartbeat",
                        "impact": "critical",
                        "started_at": float(beat["ts"]) if beat else now},
                       f"Automatic: no sign of life from the exchange since {last}. Trading, "
                       "deposits, withdrawals and the API are unavailable. Balances and "
                       "orders are kept in the journal and survive an outage. We are "
                       "investigating.", everything, now)  # fmt: skip
        elif alive:
            assert beat is not None
            back = (f"The exchange is answering again since {figures.hhmm(now)}. "
                    + figures.markets_line(beat))  # fmt: skip
            if down is not None:
                took = figures.duration(now - float(down["started_at"] or down["created_at"]))
                self._update(down, "resolved", f"{back} It was unreachable for about {took}.",
                             now)  # fmt: skip
            if stop is not None:
                self._update(stop, "completed", back, now)

    # ------------------------------------------------------------------ the journal
    def _journal(self, events: list[AnyEvent], ts: float) -> None:
        for e in events:
            if isinstance(e, MarketModeChanged):
                self.reasons[f"market:{self.config.pairs[e.pair].id}"] = e.reason
            elif isinstance(e, GlobalModeChanged):
                self.reasons["global"] = e.reason
                for p in self.config.pairs:  # a global change speaks for every market
                    self.reasons.pop(f"market:{p.id}", None)
            elif isinstance(e, FundingChanged):
                asset = self.config.assets[e.asset].id
                for kind in ("deposits", "withdrawals"):
                    self.reasons[f"{kind}:{asset}"] = e.reason
            elif isinstance(e, UpgradePhase):
                self._upgrade(e, ts)

    def _upgrade(self, e: UpgradePhase, now: float) -> None:
        try:
            detail: dict[str, Any] = json.loads(e.detail) if e.detail else {}
        except ValueError:
            detail = {}
        if not isinstance(detail, dict):
            detail = {}
        m = self.store.find_open("upgrade")
        markets = [f"market:{p.id}" for p in self.config.pairs]
        if e.phase == "scheduled":
            at = _epoch(detail.get("at")) or now
            expected = detail.get("expected_s")
            # the window customers plan around: the measured ETA, but never a blink
            until = at + max(float(expected or 0), self.settings.upgrade_window_s)
            took = figures.duration(float(expected)) if expected is not None else "unknown"
            body = (f"The trading engine will be upgraded at {figures.hhmm(at)}. Expected to "
                    f"take {took}, as measured by a full rehearsal on a copy of the journal "
                    f"({detail.get('basis') or 'replay speed'}). Trading pauses only for the "
                    "switch itself; orders and balances are kept. "
                    + str(detail.get("note") or "")).strip()  # fmt: skip
            # its phases start and end it, not the clock: the switch happens when the
            # operator runs the cutover (and an overrun is said once it is under way)
            fields = {"scheduled_for": at, "scheduled_until": until,
                      "scheduled_auto_in_progress": False,
                      "scheduled_auto_completed": False}  # fmt: skip
            if m is None:
                self._open({"kind": "maintenance", "name": "Trading engine upgrade",
                            "status": "scheduled", "source": "upgrade", "impact": "maintenance",
                            "next_update_at": None} | fields, body, markets, now)  # fmt: skip
            else:
                self._update(m, m["status"], body, now, **fields)
            return
        said = {
            "shadowing": ("The new engine is catching up with live trading beside the "
                          "current one; nothing changes for traders yet."),
            "in_progress": "The switch to the new engine has started.",
            "verifying": "The new engine is live; the previous one checks its every event.",
            "completed": "The upgrade is complete.",
            "rolled_back": "The upgrade was rolled back: the previous engine is live again.",
            "aborted": "The upgrade was called off; nothing changed.",
        }  # fmt: skip
        if e.phase not in said:
            return
        status = {"shadowing": None, "in_progress": "in_progress", "verifying": "verifying",
                  "completed": "completed", "rolled_back": "completed",
                  "aborted": "completed"}[e.phase]  # fmt: skip
        body = said[e.phase]
        if detail.get("pause_ms") is not None:
            body += f" Trading paused for {float(detail['pause_ms']):.0f} ms."
        if detail.get("reason"):
            body += f" Reason: {detail['reason']}."
        if m is None:
            if status in (None, "completed"):
                return  # nothing announced, nothing under way: nothing to say
            self._open({"kind": "maintenance", "name": "Trading engine upgrade",
                        "status": status, "source": "upgrade", "impact": "maintenance",
                        "scheduled_for": now, "scheduled_auto_completed": False},
                       body, markets, now)  # fmt: skip
            return
        self._update(m, status or m["status"], body, now)

    # ------------------------------------------------------------------ maintenance clock
    def _maintenance_clock(self, now: float, beat: dict[str, Any] | None) -> None:
        s = self.settings
        for m in self.store.incidents("maintenance", MAINTENANCE_STATUSES[:3]):
            start, end = m["scheduled_for"], m["scheduled_until"]
            if m["status"] == "scheduled" and start is not None:
                remind = m["scheduled_remind_prior"] and m["scheduled_reminded_at"] is None
                if remind and start - s.remind_s <= now < start:
                    self._update(m, "scheduled", f"Reminder: this maintenance starts at "
                                 f"{figures.hhmm(start)}, in {figures.duration(start - now)}.",
                                 now, scheduled_reminded_at=now, next_update_at=None)  # fmt: skip
                elif m["scheduled_auto_in_progress"] and now >= start:
                    self._update(m, "in_progress", "The maintenance has started.", now)
            elif m["status"] in OPEN_MAINTENANCE and end is not None and now >= end:
                keys = [c["key"] for c in m["components"]]
                ok = all(st == OPERATIONAL for st in self._statuses(keys))
                if m["scheduled_auto_completed"] and ok:
                    self._update(m, "completed", "The maintenance is complete.", now)
                else:
                    self._overrun(m, now, beat)

    def _overrun(self, m: Row, now: float, beat: dict[str, Any] | None) -> None:
        new_end, basis = now + self.settings.overrun_s, "our next check"
        detail = (beat or {}).get("upgrade_detail") or {}
        eta = (detail.get("rehearsal") or {}).get("eta_s")
        if m["source"] == "upgrade" and eta is not None:
            new_end, basis = now + float(eta), "the measured replay speed"
        self._update(m, m["status"], f"This maintenance is taking longer than planned: it "
                     f"was expected to end at {figures.hhmm(m['scheduled_until'])}. New "
                     f"estimate: {figures.hhmm(new_end)} (from {basis}).", now,
                     scheduled_until=new_end)  # fmt: skip

    # ------------------------------------------------------------------ cadence
    def _cadence(self, now: float, beat: dict[str, Any] | None, alive: bool) -> None:
        open_ = self.store.incidents("incident", OPEN_INCIDENT) + self.store.incidents(
            "maintenance", OPEN_MAINTENANCE
        )
        for i in open_:
            due = i["next_update_at"]
            if due is None or now < due:
                continue
            since = i["started_at"] or i["created_at"]
            last = i["last_operator_update_at"]
            quiet = "Automatic update: no update from the team " + (
                f"since {figures.hhmm(last)}." if last else "yet.")  # fmt: skip
            body = quiet + " " + figures.live(self.config, beat, alive, now, since,
                                              i["scheduled_until"])  # fmt: skip
            nxt = now + self.cadence(i["impact"])
            self._update(i, i["status"], f"{body} Next update by {figures.hhmm(nxt)}.", now)


def _epoch(text: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(text)).timestamp() if text else None
    except ValueError:
        return None
