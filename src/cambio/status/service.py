"""`cambio status-page`: the status service's process.

Every `poll_s` seconds: read DATA/heartbeat.json, take what the journal recorded since
the last step (cambio.journal.tail), let the automation act (cambio.status.automation),
deliver due notifications; meanwhile serve the page, the JSON and the feeds. It never
needs the exchange to answer anything, so it keeps serving while the exchange is down.

DATA/status/ holds its store (status.db) and status.json ({"url", "pid"}), written once
it listens, by which `cambio serve` finds a status page already running for its data
directory (after a crash it outlives) instead of starting a second one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cambio.journal.tail import JournalTail
from cambio.model.config import MarketConfig
from cambio.ops.heartbeat import FILENAME as HEARTBEAT
from cambio.status.automation import Automation, Records, Settings
from cambio.status.components import catalogue
from cambio.status.model import PageInfo, new_id
from cambio.status.notify.outbox import Notifications, SmtpSettings
from cambio.status.store import StatusStore

log = logging.getLogger("cambio.status")
DIRNAME = "status"  # in the data directory
INFO = "status.json"


@dataclass
class StatusOptions:
    name: str = "cambio status"
    public_url: str | None = None  # for links in mail and feeds; default: where it listens
    poll_s: float = 1.0
    settings: Settings = field(default_factory=Settings)
    smtp: SmtpSettings | None = None
    sender: str = "status@cambio.invalid"


def read_heartbeat(path: Path) -> dict[str, Any] | None:
    try:
        beat = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return beat if isinstance(beat, dict) and "ts" in beat else None


class StatusService:
    def __init__(
        self,
        root: Path,
        config: MarketConfig,
        url: str,
        options: StatusOptions | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = root
        self.options = options or StatusOptions()
        self.clock = clock
        self.dir = root / DIRNAME
        self.store = StatusStore(self.dir / "status.db")
        page_id = self.store.get("page_id") or new_id()
        self.page = PageInfo(page_id, self.options.name, self.options.public_url or url)
        self.store.put("page_id", page_id)
        self.store.put("page", {"name": self.page.name, "url": self.page.url})
        now = clock()
        self.store.sync_components(catalogue(config), now)
        self.notifications = Notifications(self.store, self.page, self.options.smtp,
                                           self.options.sender)  # fmt: skip
        self.automation = Automation(
            self.store, config, self.options.settings,
            announce=self.notifications.incident_updated,
            component_changed=self.notifications.component_changed,
        )  # fmt: skip
        resume = self.store.get("journal_seq")
        # first start: the journal's past only teaches the reasons of today's modes
        self.catching_up_until = None if resume else now
        self.tail = JournalTail(root / "journal", int(resume or 1))

    def step(self) -> None:
        now = self.clock()
        beat = read_heartbeat(self.root / HEARTBEAT)
        records: Records = self.tail.poll()
        if self.catching_up_until is not None:
            old = [r for r in records if r[1] / 1e9 < self.catching_up_until - 60]
            self.automation.learn(old)
            records = records[len(old) :]
        self.automation.step(now, beat, records, self.tail.next_seq - 1)
        self.store.put("journal_seq", self.tail.next_seq)
        self.store.put("checked_at", now)  # the page says how fresh it is

    async def run(self) -> None:
        """Step and deliver, each in its own loop: a webhook receiver taking its 30 s
        must not hold back the next incident."""
        await asyncio.gather(self._loop(lambda: asyncio.to_thread(self.step), "step"),
                             self._loop(lambda: self.notifications.deliver_due(self.clock()),
                                        "delivery"))  # fmt: skip

    async def _loop(self, work: Callable[[], Awaitable[object]], what: str) -> None:
        while True:
            try:
                await work()
            except Exception:  # the page must outlive any one bad step
                log.exception("status %s failed; retrying", what)
            await asyncio.sleep(self.options.poll_s)

    def write_info(self, url: str) -> None:
        tmp = self.dir / (INFO + ".tmp")
        tmp.write_text(json.dumps({"url": url, "pid": os.getpid()}))
        os.replace(tmp, self.dir / INFO)

    def remove_info(self) -> None:
        info = self.dir / INFO
        try:
            if json.loads(info.read_text()).get("pid") == os.getpid():
                info.unlink()
        except (OSError, ValueError):
            pass


def running(root: Path) -> dict[str, Any] | None:
    """The status page serving this data directory, if its process is alive."""
    try:
        info = json.loads((root / DIRNAME / INFO).read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if isinstance(info, dict) else None
