"""The status service's own store: one SQLite file (DATA/status/status.db), never the
exchange's, so the page lives through the exchange's outages.

Components (with the history of their statuses, for uptime bars), incidents and scheduled
maintenances (one table, Statuspage's shapes: `kind` says which) with their timeline of
updates, subscribers, and the outbox of notifications waiting to be delivered. Times are
epoch seconds (float). Every method is one transaction; several processes may use the
file at once (the service, and the operator's CLI posting an incident).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    insert,
    select,
    update,
)

from cambio.status.model import OPERATIONAL, new_id

_meta = MetaData()
components = Table(
    "components",
    _meta,
    Column("id", String, primary_key=True),
    Column("key", String, nullable=False, unique=True),  # market:XXBTZUSD, api:rest, ...
    Column("name", String, nullable=False),
    Column("description", String, nullable=True),
    Column("status", String, nullable=False),
    Column("position", Integer, nullable=False),
    Column("group_id", String, nullable=True),
    Column("is_group", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)
# one row per status a component held: since `start` until the next row's start
component_history = Table(
    "component_history",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("component_id", String, nullable=False, index=True),
    Column("status", String, nullable=False),
    Column("start", Float, nullable=False),
)
incidents = Table(
    "incidents",
    _meta,
    Column("id", String, primary_key=True),
    Column("kind", String, nullable=False),  # incident | maintenance
    Column("name", String, nullable=False),
    Column("status", String, nullable=False),
    Column("impact", String, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("monitoring_at", Float, nullable=True),
    Column("resolved_at", Float, nullable=True),
    Column("scheduled_for", Float, nullable=True),
    Column("scheduled_until", Float, nullable=True),
    Column("scheduled_remind_prior", Boolean, nullable=False, default=True),
    Column("scheduled_reminded_at", Float, nullable=True),
    Column("scheduled_auto_in_progress", Boolean, nullable=False, default=True),
    Column("scheduled_auto_completed", Boolean, nullable=False, default=True),
    # the cadence guarantee: the next update is promised by then
    Column("next_update_at", Float, nullable=True),
    Column("last_operator_update_at", Float, nullable=True),
    Column("source", String, nullable=False, default="operator"),  # operator|heartbeat|upgrade
    Column("source_key", String, nullable=True),
    Column("postmortem_body", Text, nullable=True),
    Column("postmortem_published_at", Float, nullable=True),
)
incident_updates = Table(
    "incident_updates",
    _meta,
    Column("id", String, primary_key=True),
    Column("incident_id", String, nullable=False, index=True),
    Column("status", String, nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("automatic", Boolean, nullable=False, default=False),
    Column("affected_components", Text, nullable=False, default="[]"),  # JSON
)
incident_components = Table(
    "incident_components",
    _meta,
    Column("incident_id", String, primary_key=True),
    Column("component_id", String, primary_key=True),
)
subscribers = Table(
    "subscribers",
    _meta,
    Column("id", String, primary_key=True),
    Column("kind", String, nullable=False),  # email | webhook
    Column("target", String, nullable=False),  # the address or the URL
    Column("token", String, nullable=False, unique=True),  # confirm / unsubscribe links
    Column("secret", String, nullable=True),  # a webhook's HMAC key
    Column("created_at", Float, nullable=False),
    Column("confirmed_at", Float, nullable=True),
    Column("unsubscribed_at", Float, nullable=True),
)
outbox = Table(
    "outbox",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subscriber_id", String, nullable=False, index=True),
    Column("subject", String, nullable=False),
    Column("payload", Text, nullable=False),  # JSON: what the channel sends
    Column("state", String, nullable=False, default="pending"),  # pending|delivered|failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False),
    Column("last_error", String, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("delivered_at", Float, nullable=True),
)
meta = Table(
    "meta",
    _meta,
    Column("key", String, primary_key=True),
    Column("value", Text, nullable=False),
)

Row = dict[str, Any]


@dataclass(frozen=True)
class ComponentSpec:
    """A component the exchange's configuration calls for."""

    key: str
    name: str
    group: str | None = None  # the key of its group
    description: str | None = None
    is_group: bool = False


class StatusStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 30})

        @event.listens_for(self.engine, "connect")
        def _pragmas(dbapi: Any, _: Any) -> None:
            cur = dbapi.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        self._lock = threading.Lock()
        _meta.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ meta
    def get(self, key: str, default: Any = None) -> Any:
        with self.engine.connect() as conn:
            row = conn.execute(select(meta.c.value).where(meta.c.key == key)).first()
        return default if row is None else json.loads(row.value)

    def put(self, key: str, value: Any) -> None:
        with self._lock, self.engine.begin() as conn:
            text = json.dumps(value)
            done = conn.execute(update(meta).where(meta.c.key == key).values(value=text))
            if not done.rowcount:
                conn.execute(insert(meta).values(key=key, value=text))

    # ------------------------------------------------------------------ components
    def sync_components(self, specs: Iterable[ComponentSpec], now: float) -> None:
        """Create the components the exchange calls for that do not exist yet (ids stay
        stable across restarts), in the given order; names follow the specs."""
        with self._lock, self.engine.begin() as conn:
            have = {r.key: r for r in conn.execute(select(components))}
            for position, spec in enumerate(specs, start=1):
                group_id = have[spec.group].id if spec.group and spec.group in have else None
                row = have.get(spec.key)
                if row is None:
                    cid = new_id()
                    conn.execute(
                        insert(components).values(
                            id=cid,
                            key=spec.key,
                            name=spec.name,
                            description=spec.description,
                            status=OPERATIONAL,
                            position=position,
                            group_id=group_id,
                            is_group=spec.is_group,
                            created_at=now,
                            updated_at=now,
                        )
                    )
                    conn.execute(
                        insert(component_history).values(
                            component_id=cid, status=OPERATIONAL, start=now
                        )
                    )
                    have[spec.key] = conn.execute(
                        select(components).where(components.c.id == cid)
                    ).one()
                else:
                    conn.execute(
                        update(components)
                        .where(components.c.id == row.id)
                        .values(
                            name=spec.name,
                            position=position,
                            group_id=group_id,
                            description=spec.description,
                        )
                    )

    def components(self) -> list[Row]:
        with self.engine.connect() as conn:
            q = select(components).order_by(components.c.position)
            return [dict(r._mapping) for r in conn.execute(q)]

    def set_status(self, key: str, status: str, now: float) -> Row | None:
        """Set a component's status; the change ({component, old_status, new_status}) if
        it changed, else None."""
        with self._lock, self.engine.begin() as conn:
            row = conn.execute(select(components).where(components.c.key == key)).first()
            if row is None or row.status == status:
                return None
            conn.execute(
                update(components)
                .where(components.c.id == row.id)
                .values(status=status, updated_at=now)
            )
            conn.execute(
                insert(component_history).values(component_id=row.id, status=status, start=now)
            )
            changed = dict(row._mapping) | {"status": status, "updated_at": now}
            return {"component": changed, "old_status": row.status, "new_status": status}

    def history(self, component_id: str, since: float) -> list[tuple[str, float]]:
        """(status, start) of the component from `since` (the one in force then first)."""
        h = component_history.c
        with self.engine.connect() as conn:
            before = conn.execute(
                select(h.status, h.start)
                .where(h.component_id == component_id, h.start <= since)
                .order_by(h.start.desc(), h.id.desc())
                .limit(1)
            ).first()
            after = conn.execute(
                select(h.status, h.start)
                .where(h.component_id == component_id, h.start > since)
                .order_by(h.start, h.id)
            ).all()
        out = [(before.status, since)] if before is not None else []
        return out + [(r.status, r.start) for r in after]

    # ------------------------------------------------------------------ incidents
    def create_incident(
        self, fields: Row, body: str, component_keys: list[str], now: float, automatic: bool = False
    ) -> str:
        """A new incident or maintenance (`fields`: kind, name, status, impact and the
        optional columns), with its first update; its id."""
        iid = new_id()
        with self._lock, self.engine.begin() as conn:
            row = {"id": iid, "created_at": now, "updated_at": now} | fields
            if row["kind"] == "incident" and row.get("started_at") is None:
                row["started_at"] = now
            if not automatic:
                row["last_operator_update_at"] = now
            conn.execute(insert(incidents).values(**row))
            ids = self._component_ids(conn, component_keys)
            for cid in ids:
                conn.execute(insert(incident_components).values(incident_id=iid, component_id=cid))
            self._add_update(conn, iid, str(row["status"]), body, now, automatic, [])
        return iid

    def add_update(
        self,
        incident_id: str,
        status: str,
        body: str,
        now: float,
        automatic: bool = False,
        affected: list[Row] | None = None,
        fields: Row | None = None,
    ) -> str:
        """Post an update to the timeline (and change the incident's status and any
        `fields`); the update's id."""
        with self._lock, self.engine.begin() as conn:
            changes: Row = {"status": status, "updated_at": now} | (fields or {})
            if not automatic:
                changes["last_operator_update_at"] = now
            current = conn.execute(select(incidents).where(incidents.c.id == incident_id)).one()
            stamp = {
                "monitoring": "monitoring_at",
                "resolved": "resolved_at",
                "completed": "resolved_at",
                "in_progress": "started_at",
            }.get(status)
            if stamp and getattr(current, stamp) is None:
                changes[stamp] = now
            conn.execute(update(incidents).where(incidents.c.id == incident_id).values(**changes))
            return self._add_update(conn, incident_id, status, body, now, automatic, affected or [])

    @staticmethod
    def _add_update(
        conn: Connection,
        incident_id: str,
        status: str,
        body: str,
        now: float,
        automatic: bool,
        affected: list[Row],
    ) -> str:
        uid = new_id()
        conn.execute(
            insert(incident_updates).values(
                id=uid,
                incident_id=incident_id,
                status=status,
                body=body,
                created_at=now,
                automatic=automatic,
                affected_components=json.dumps(affected),
            )
        )
        return uid

    def link_components(self, incident_id: str, keys: list[str]) -> None:
        """Add components to those an incident affects (those it has stay)."""
        ic = incident_components.c
        with self._lock, self.engine.begin() as conn:
            have = {
                r.component_id
                for r in conn.execute(select(ic.component_id).where(ic.incident_id == incident_id))
            }
            for cid in self._component_ids(conn, keys):
                if cid not in have:
                    conn.execute(
                        insert(incident_components).values(
                            incident_id=incident_id, component_id=cid
                        )
                    )

    def set_fields(self, incident_id: str, **fields: Any) -> None:
        with self._lock, self.engine.begin() as conn:
            conn.execute(update(incidents).where(incidents.c.id == incident_id).values(**fields))

    @staticmethod
    def _component_ids(conn: Connection, keys: list[str]) -> list[str]:
        if not keys:
            return []
        q = select(components.c.id, components.c.key).where(components.c.key.in_(keys))
        found = {r.key: r.id for r in conn.execute(q)}
        return [found[k] for k in keys if k in found]

    def incident(self, incident_id: str) -> Row | None:
        """An incident with its updates (newest first) and its components."""
        with self.engine.connect() as conn:
            row = conn.execute(select(incidents).where(incidents.c.id == incident_id)).first()
            return None if row is None else self._full(conn, dict(row._mapping))

    def incidents(
        self, kind: str, statuses: tuple[str, ...] | None = None, limit: int = 50
    ) -> list[Row]:
        """Incidents (or maintenances) newest first, optionally only in `statuses`."""
        i = incidents.c
        q = select(incidents).where(i.kind == kind)
        if statuses is not None:
            q = q.where(i.status.in_(statuses))
        q = q.order_by(i.created_at.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [self._full(conn, dict(r._mapping)) for r in conn.execute(q)]

    def find_open(self, source: str, source_key: str | None = None) -> Row | None:
        """The open incident or maintenance an automation opened (by source and key)."""
        i = incidents.c
        done = ("resolved", "postmortem", "completed")
        q = select(incidents).where(i.source == source, i.status.not_in(done))
        if source_key is not None:
            q = q.where(i.source_key == source_key)
        with self.engine.connect() as conn:
            row = conn.execute(q.order_by(i.created_at.desc()).limit(1)).first()
            return None if row is None else self._full(conn, dict(row._mapping))

    def _full(self, conn: Connection, row: Row) -> Row:
        u = incident_updates.c
        updates = conn.execute(
            select(incident_updates)
            .where(u.incident_id == row["id"])
            .order_by(u.created_at.desc(), u.id)
        ).all()
        row["updates"] = [
            dict(r._mapping) | {"affected_components": json.loads(r.affected_components)}
            for r in updates
        ]
        ic = incident_components.c
        q = select(components).join(incident_components, ic.component_id == components.c.id)
        row["components"] = [
            dict(r._mapping)
            for r in conn.execute(
                q.where(ic.incident_id == row["id"]).order_by(components.c.position)
            )
        ]
        return row

    def all_updates(self, limit: int = 100) -> list[tuple[Row, Row]]:
        """(incident, update) pairs, newest update first: the history feeds."""
        u, i = incident_updates.c, incidents.c
        q = (
            select(incident_updates, incidents.c.name, incidents.c.kind)
            .join(incidents, i.id == u.incident_id)
            .order_by(u.created_at.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return [
            ({"id": r.incident_id, "name": r.name, "kind": r.kind}, dict(r._mapping)) for r in rows
        ]

    # ------------------------------------------------------------------ subscribers
    def add_subscriber(
        self, kind: str, target: str, now: float, secret: str | None = None, confirmed: bool = False
    ) -> Row:
        """A subscriber (an existing active one for the same target is returned)."""
        s = subscribers.c
        with self._lock, self.engine.begin() as conn:
            found = conn.execute(
                select(subscribers).where(
                    s.kind == kind, s.target == target, s.unsubscribed_at.is_(None)
                )
            ).first()
            if found is not None:
                return dict(found._mapping)
            row = {
                "id": new_id(),
                "kind": kind,
                "target": target,
                "token": new_id() + new_id(),
                "secret": secret,
                "created_at": now,
                "confirmed_at": now if confirmed else None,
                "unsubscribed_at": None,
            }
            conn.execute(insert(subscribers).values(**row))
            return row

    def confirm(self, token: str, now: float) -> Row | None:
        return self._by_token(token, {"confirmed_at": now}, s_open=True)

    def unsubscribe(self, token: str, now: float) -> Row | None:
        return self._by_token(token, {"unsubscribed_at": now}, s_open=True)

    def _by_token(self, token: str, values: Row, s_open: bool) -> Row | None:
        s = subscribers.c
        with self._lock, self.engine.begin() as conn:
            row = conn.execute(select(subscribers).where(s.token == token)).first()
            if row is None or (s_open and row.unsubscribed_at is not None):
                return None
            if values.get("confirmed_at") and row.confirmed_at is not None:
                return dict(row._mapping)  # confirming twice keeps the first time
            conn.execute(update(subscribers).where(s.id == row.id).values(**values))
            return dict(row._mapping) | values

    def subscribers(self, kind: str | None = None, active: bool = True) -> list[Row]:
        s = subscribers.c
        q = select(subscribers)
        if kind is not None:
            q = q.where(s.kind == kind)
        if active:
            q = q.where(s.confirmed_at.is_not(None), s.unsubscribed_at.is_(None))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q.order_by(s.created_at))]

    def subscriber(self, subscriber_id: str) -> Row | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(subscribers).where(subscribers.c.id == subscriber_id)).first()
        return None if row is None else dict(row._mapping)

    # ------------------------------------------------------------------ outbox
    def enqueue(self, subscriber_id: str, subject: str, payload: Row, now: float) -> None:
        with self._lock, self.engine.begin() as conn:
            conn.execute(
                insert(outbox).values(
                    subscriber_id=subscriber_id,
                    subject=subject,
                    payload=json.dumps(payload),
                    state="pending",
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )

    def due(self, now: float, limit: int = 100) -> list[Row]:
        o = outbox.c
        q = (
            select(outbox)
            .where(o.state == "pending", o.next_attempt_at <= now)
            .order_by(o.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [dict(r._mapping) | {"payload": json.loads(r.payload)} for r in conn.execute(q)]

    def delivered(self, outbox_id: int, now: float) -> None:
        self._outbox(outbox_id, state="delivered", delivered_at=now, attempts=outbox.c.attempts + 1)

    def retry(self, outbox_id: int, at: float, error: str, final: bool) -> None:
        self._outbox(
            outbox_id,
            state="failed" if final else "pending",
            next_attempt_at=at,
            last_error=error[:500],
            attempts=outbox.c.attempts + 1,
        )

    def _outbox(self, outbox_id: int, **values: Any) -> None:
        with self._lock, self.engine.begin() as conn:
            conn.execute(update(outbox).where(outbox.c.id == outbox_id).values(**values))

    def deliveries(self, subscriber_id: str | None = None) -> list[Row]:
        o = outbox.c
        q = select(outbox).order_by(o.id)
        if subscriber_id is not None:
            q = q.where(o.subscriber_id == subscriber_id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) | {"payload": json.loads(r.payload)} for r in conn.execute(q)]
