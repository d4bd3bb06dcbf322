"""What the exchange's own API says of the status page: SystemStatus's
`upcoming_maintenance` (maintenances scheduled to start within 72 hours) and `emergency`
(unresolved incidents), as Kraken's SystemStatus carries them beside the engine's mode.

Read from the status store (DATA/status/status.db) and cached for a second: the page and
the API show the same things. Missing or unreadable, it is empty: the exchange never
depends on its status page.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from cambio.status.model import OPEN_INCIDENT, iso
from cambio.status.store import StatusStore

log = logging.getLogger("cambio.status")
HORIZON_S = 72 * 3600


class Advisories:
    def __init__(self, root: Path, ttl_s: float = 1.0) -> None:
        self.path = root / "status" / "status.db"
        self.ttl_s = ttl_s
        self._store: StatusStore | None = None
        self._cached: tuple[float, dict[str, list[dict[str, Any]]]] | None = None

    def current(self) -> dict[str, list[dict[str, Any]]]:
        now = time.time()
        if self._cached is not None and now - self._cached[0] < self.ttl_s:
            return self._cached[1]
        found: dict[str, list[dict[str, Any]]] = {"upcoming_maintenance": [], "emergency": []}
        try:
            found = self._read(now)
        except SQLAlchemyError as exc:  # a broken page must not break the exchange's API
            log.warning("status advisories unreadable: %r", exc)
        self._cached = (now, found)
        return found

    def _read(self, now: float) -> dict[str, list[dict[str, Any]]]:
        if self._store is None:
            if not self.path.exists():
                return {"upcoming_maintenance": [], "emergency": []}
            self._store = StatusStore(self.path)
        store = self._store
        page = store.get("page") or {}
        url = page.get("url", "")

        def item(i: dict[str, Any]) -> dict[str, Any]:
            start = i["scheduled_for"] or i["started_at"]
            return {"id": i["id"], "name": i["name"], "status": i["status"],
                    "impact": i["impact"], "start": iso(start), "end": iso(i["scheduled_until"]),
                    "url": f"{url}/incidents/{i['id']}"}  # fmt: skip

        upcoming = [
            item(m) for m in store.incidents("maintenance", ("scheduled",))
            if m["scheduled_for"] is not None and m["scheduled_for"] - now <= HORIZON_S
        ]  # fmt: skip
        emergency = [item(i) for i in store.incidents("incident", OPEN_INCIDENT)]
        return {"upcoming_maintenance": upcoming, "emergency": emergency}

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
